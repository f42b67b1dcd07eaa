/*
 * grantexpiry.c - the scheduler's expiry of several grants at once
 * (grant_expire_batch): one transaction marks the due ones ending, the
 * memberships of one group leave in one modify, one audit write carries
 * their `expired` lines, one transaction closes them; what a batch cannot do
 * goes the one-grant way of grantend.c. Pair locks: the free ones first, then
 * the others in address order. Trust: as grantend.c.
 */
#include <stdlib.h>
#include <string.h>
#include "fault.h"
#include "grant_priv.h"
#include "log.h"
#include "timing.h"
#include "util.h"

static int cmp_lock(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(pthread_mutex_t *const *)a;
	uintptr_t y = (uintptr_t)*(pthread_mutex_t *const *)b;
	return x < y ? -1 : x > y;
}

/* Takes the distinct stripes of locks[0..n) in address order (so that two
 * batches never wait for each other crosswise); returns how many distinct. */
static size_t lock_stripes(pthread_mutex_t **locks, size_t n)
{
	size_t m = 0;
	qsort(locks, n, sizeof(*locks), cmp_lock);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || locks[m - 1] != locks[i])
			locks[m++] = locks[i];
	for (size_t i = 0; i < m; i++)
		pthread_mutex_lock(locks[i]);
	return m;
}

/* Marks the due ones of r[0..n) ending (expired) in one transaction; drops
 * (frees, NULLs) the others. False if nothing could be recorded. */
static bool batch_mark_ending(struct grant_ctx *g, struct grant_rec **r, size_t n, int64_t now)
{
	int rc = store_begin(g->st);
	for (size_t i = 0; i < n && rc == JIT_OK; i++) {
		if (!r[i])
			continue;
		rc = grant_expire_due(g, r[i], now);
		if (rc == JIT_ENOTFOUND) { /* extended meanwhile: it stays */
			grant_rec_free(r[i]);
			r[i] = NULL;
			rc = JIT_OK;
		}
	}
	if (grant_end_tx(g, rc) != JIT_OK) {
		log_err("scheduler: cannot record the end of %zu due grant(s); next tick", n);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (r[i]) {
			r[i]->state = GS_ENDING;
			r[i]->end_state = GS_EXPIRED;
		}
	return true;
}

/* Closes the grants of r[0..n) that are set (their `expired` lines are on
 * disk) in one transaction. */
static void batch_close(struct grant_ctx *g, struct grant_rec **r, const char **outcome, size_t n)
{
	int rc = store_begin(g->st);
	for (size_t i = 0; i < n && rc == JIT_OK; i++)
		if (r[i])
			rc = grant_transition(g, r[i], GS_ENDING, GS_EXPIRED, GS_EXPIRED, NULL);
	if (grant_end_tx(g, rc) != JIT_OK) {
		/* Robustness: they stay ending; the retry removes nothing more
		 * (already absent) and records them again. */
		log_err("scheduler: cannot record the end of %zu expired grant(s); retrying", n);
		return;
	}
	FAULT_POINT("grant.after_final");
	for (size_t i = 0; i < n; i++)
		if (r[i])
			log_info("expired %s: %s <- %s (%s)", r[i]->id, r[i]->group_name, r[i]->user,
				 outcome[i]);
}

/* How far settle_together() took a grant of the batch. */
enum settled {
	SETTLE_NOT,             /* not at all: grant_settle_membership */
	SETTLE_CHECKED,         /* nothing else holds it: grant_settle_remove */
	SETTLE_DONE,            /* kept or removed: st and dres filled */
};

/*
 * The removals of a batch that one modify per group can do: the grants of
 * one group leave it together (dir_revoke_many). how[i] says what is left
 * to do for grant i (enum settled). With several servers every grant goes
 * alone: the server that wrote its membership is asked first.
 */
static void settle_together(struct grant_ctx *g, struct grant_rec **r, size_t n,
			    struct settle *st, struct dir_result *dres, enum settled *how)
{
	struct dir_member *m = xcalloc(n, sizeof(*m));
	size_t *idx = xcalloc(n, sizeof(*idx));
	bool *seen = xcalloc(n, sizeof(*seen));
	bool *done = xcalloc(n, sizeof(*done));
	char **value = xcalloc(n, sizeof(*value));

	if (dir_conn_uri_count(g->dc) > 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (r[i] != NULL && grant_settle_kept(g, r[i], &st[i]) == JIT_OK)
			how[i] = st[i].outcome != NULL ? SETTLE_DONE : SETTLE_CHECKED;
		/* else an error: grant_settle_membership meets it again. A grant
		 * whose add is unsure goes alone: grant_settle_remove asks for
		 * its check after replication_grace. */
		seen[i] = how[i] != SETTLE_CHECKED || grant_add_unsure(g, r[i]);
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		if (seen[i])
			continue;
		for (size_t j = i; j < n; j++) {
			if (seen[j] || strcasecmp(r[j]->group_dn, r[i]->group_dn) != 0 ||
			    strcasecmp(r[j]->member_attr, r[i]->member_attr) != 0)
				continue;
			seen[j] = true;
			m[k] = (struct dir_member){ r[j]->group_dn, r[j]->member_attr,
						    r[j]->member_value, r[j]->user_uuid,
						    r[j]->placeholder };
			idx[k++] = j;
		}
		if (k < 2)
			continue; /* alone: grant_settle_membership does the same work */
		struct dir_result res = { 0 };
		if (dir_revoke_many(g->dc, m, k, done, value, &res) != JIT_OK)
			continue; /* each one alone: it meets the error and retries */
		size_t nd = 0;
		for (size_t q = 0; q < k; q++)
			nd += done[q];
		if (nd > 0)
			log_info("%zu expired membership(s) left %s with one modify", nd,
				 r[i]->group_dn);
		for (size_t q = 0; q < k; q++) {
			size_t j = idx[q];
			if (!done[q])
				continue;
			how[j] = SETTLE_DONE;
			dres[j] = res;
			st[j].outcome = "removed";
			if (strcasecmp(value[q], r[j]->member_value) == 0)
				free(value[q]);
			else
				st[j].value = value[q];
			value[q] = NULL;
		}
	}
out:
	free(m);
	free(idx);
	free(seen);
	free(done);
	free(value);
}

/* grant_expire_batch() of ids[0..n) whose pair locks the caller holds. */
static void expire_locked(struct grant_ctx *g, char *const *ids, size_t n)
{
	struct grant_rec **r = xcalloc(n, sizeof(*r));
	json_t **objs = xcalloc(n, sizeof(*objs));
	const char **events = xcalloc(n, sizeof(*events));
	const char **outcome = xcalloc(n, sizeof(*outcome));
	struct settle *st = xcalloc(n, sizeof(*st));
	struct dir_result *dres = xcalloc(n, sizeof(*dres));
	enum settled *how = xcalloc(n, sizeof(*how)); /* SETTLE_NOT */
	size_t nw = 0;
	int64_t now = now_s();

	/* Reload under the locks: another worker may have moved them on. */
	for (size_t i = 0; i < n; i++) {
		if (store_get(g->st, ids[i], &r[i]) != JIT_OK)
			continue;
		if (r[i]->state == GS_ACTIVE && r[i]->expires_at <= now)
			continue;
		if (r[i]->state == GS_ENDING) /* a retry: the one-grant path */
			free(grant_end_locked(g, r[i], r[i]->end_state, true, NULL, NULL, NULL));
		grant_rec_free(r[i]);
		r[i] = NULL;
	}
	FAULT_POINT("grant.before_ending");
	int64_t t = mono_us();
	if (!batch_mark_ending(g, r, n, now))
		goto out;
	timing_since(STEP_EXPIRE_RECORD_ENDING, t);
	FAULT_POINT("grant.after_ending");
	t = mono_us();
	settle_together(g, r, n, st, dres, how);
	for (size_t i = 0; i < n; i++) {
		if (!r[i])
			continue;
		int rc = JIT_OK;
		if (how[i] == SETTLE_CHECKED)
			rc = grant_settle_remove(g, r[i], &st[i], &dres[i]);
		else if (how[i] == SETTLE_NOT)
			rc = grant_settle_membership(g, r[i], &st[i], &dres[i]);
		/* the time of this grant's answer, not the batch's start: the
		 * grace and the backoff count from it (grants removed one by one
		 * can take longer than the grace in all) */
		int64_t answered = now_s();
		if (rc != JIT_OK || grant_schedule_verify(g, r[i], &st[i], answered)) {
			if (rc != JIT_OK)
				grant_removal_failed(g, r[i], rc, &dres[i], NULL, NULL, NULL, NULL, NULL,
						     answered);
			free(st[i].value);
			st[i].value = NULL;
			grant_rec_free(r[i]);
			r[i] = NULL;
			continue;
		}
		outcome[i] = grant_end_outcome(r[i], &st[i]);
		events[nw] = grant_state_name(GS_EXPIRED);
		objs[nw++] = grant_end_audit_obj(r[i], &st[i], &dres[i], NULL, NULL, NULL);
	}
	timing_since(STEP_EXPIRE_REMOVE, t);
	FAULT_POINT("grant.after_dir_remove");
	/* Evidence first, as in grant_end_locked(): the lines, then the rows. */
	if (nw > 0) {
		t = mono_us();
		int rc = FAULT_FAIL("fail.batch_audit") ? JIT_EIO
							: audit_write_many(g->audit, nw, events, objs);
		timing_since(STEP_EXPIRE_AUDIT, t);
		if (rc != JIT_OK) {
			/* the backoff counts from the failure, not the batch's
			 * start (its removals may have taken longer) */
			int64_t failed_at = now_s();
			for (size_t i = 0; i < n; i++)
				if (r[i])
					grant_final_audit_failed(g, r[i], failed_at);
			goto out;
		}
	}
	FAULT_POINT("grant.after_final_audit");
	if (nw > 0) {
		t = mono_us();
		batch_close(g, r, outcome, n);
		timing_since(STEP_EXPIRE_RECORD_ENDED, t);
	}
out:
	for (size_t i = 0; i < n; i++)
		grant_rec_free(r[i]);
	for (size_t i = 0; i < nw; i++)
		json_decref(objs[i]);
	free(r);
	free(objs);
	free(events);
	free(outcome);
	for (size_t i = 0; i < n; i++)
		free(st[i].value);
	free(st);
	free(dres);
	free(how);
}

/*
 * Two workers ending two batches must not wait for each other's whole
 * batch: first the grants whose pair locks are free now (tried, never
 * waited for), then, holding nothing, the others with their locks taken
 * in address order.
 */
void grant_expire_batch(struct grant_ctx *g, char *const *ids, char *const *pair_keys, size_t n)
{
	pthread_mutex_t **lk = xcalloc(n, sizeof(*lk));
	pthread_mutex_t **held = xcalloc(n, sizeof(*held));
	char **now_ids = xcalloc(n, sizeof(*now_ids));
	char **later = xcalloc(n, sizeof(*later));
	size_t nh = 0, nn = 0, nlater = 0;

	/* a row's pair key never changes */
	for (size_t i = 0; i < n; i++)
		lk[i] = grant_pair_lock(g->pair_locks, pair_keys[i]);
	for (size_t i = 0; i < n; i++) {
		bool mine = false;
		for (size_t k = 0; !mine && k < nh; k++)
			mine = held[k] == lk[i];
		if (!mine && pthread_mutex_trylock(lk[i]) == 0) {
			held[nh++] = lk[i];
			mine = true;
		}
		if (mine)
			now_ids[nn++] = ids[i];
		else
			later[nlater++] = ids[i];
	}
	expire_locked(g, now_ids, nn);
	for (size_t k = nh; k > 0; k--)
		pthread_mutex_unlock(held[k - 1]);
	if (nlater > 0) {
		/* later[] holds ids[] pointers, in order: walk both together */
		nh = 0;
		for (size_t i = 0, m = 0; i < n && m < nlater; i++)
			if (ids[i] == later[m]) {
				held[nh++] = lk[i];
				m++;
			}
		nh = lock_stripes(held, nh);
		expire_locked(g, later, nlater);
		for (size_t k = nh; k > 0; k--)
			pthread_mutex_unlock(held[k - 1]);
	}
	free(lk);
	free(held);
	free(now_ids);
	free(later);
}
