/*
 * storequery.c - the store's operations on grant rows, for the callers of
 * store.h: insert and look-up, the compare-and-set state changes, pair
 * queries, due queries, `list` by index ranges, counts, recovery. Each runs
 * one of storestmt.c's statements; writes take store.c's write lock.
 * Trust: every value is bound as a parameter, never spliced into SQL; rows
 * come back through row_to_rec(), which checks them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storepriv.h"
#include "util.h"

#define STORE_DEFAULT_LIMIT 1000
/* Robustness: list/due results are read completely before any callback
 * runs (so callbacks may use the store); this bounds the memory that takes. */
#define STORE_MAX_LIMIT 100000

static bool state_final(enum grant_state s)
{
	return s >= GS_EXPIRED && s < GS__COUNT;
}

/* Binds the names of the states in mask to ?first .. ?first+6. */
static int bind_mask(sqlite3_stmt *s, int first, unsigned mask)
{
	int rc = SQLITE_OK;
	for (int i = 0; i < GS__COUNT && rc == SQLITE_OK; i++)
		rc = bind_txt(s, first + i, (mask & GS_BIT(i)) ? state_names[i] : NULL);
	return rc;
}

/* run_write for an UPDATE of one row: JIT_ENOTFOUND if it matched none. */
static int update_one(struct store *st, enum stmt_id id, int bind_rc)
{
	int changes = 0;
	int ret = run_write(st, id, bind_rc, &changes);

	if (ret == JIT_OK && changes == 0)
		ret = JIT_ENOTFOUND;
	return ret;
}

int store_insert(struct store *st, const struct grant_rec *r)
{
	sqlite3_stmt *s = st->stmt[S_INSERT];
	int rc, ret = JIT_OK;

	if ((unsigned)r->state >= GS__COUNT ||
	    (r->end_state != GS_PENDING && !state_final(r->end_state))) {
		log_err("store: insert %s: bad state %d/%d", r->id ? r->id : "?", (int)r->state,
			(int)r->end_state);
		return JIT_EINTERNAL;
	}
	bool own = !st->in_tx;

	if (own && (ret = lock_writes(st)) != JIT_OK)
		return ret;
	if (bind_rec(s, r) != SQLITE_OK) {
		ret = db_fail(st, "insert: bind");
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		log_debug("store: insert %s: %s", r->id ? r->id : "?", sqlite3_errmsg(st->db));
		ret = JIT_EEXISTS;
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		/* NOT NULL or CHECK: the caller built an incomplete record. */
		(void)db_fail(st, "insert");
		ret = JIT_EINTERNAL;
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(st, "insert");
	}
out:
	stmt_done(s);
	if (own)
		unlock_writes(st);
	return ret;
}

/* Runs a bound query that yields at most one grant row. */
static int get_one(struct store *st, enum stmt_id id, const char *key, struct grant_rec **out)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc, ret;

	if (!key)
		return JIT_ENOTFOUND;
	if (bind_txt(s, 1, key) != SQLITE_OK) {
		ret = db_fail(st, stmt_sql[id].name);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		char why[256];
		ret = row_to_rec(st, s, out, why, sizeof(why));
		if (ret != JIT_OK && why[0])
			log_err("store: %s", why);
	} else if (rc == SQLITE_DONE)
		ret = JIT_ENOTFOUND;
	else
		ret = db_fail(st, stmt_sql[id].name);
out:
	stmt_done(s);
	return ret;
}

int store_get(struct store *st, const char *id, struct grant_rec **out)
{
	return get_one(st, S_GET, id, out);
}

int store_get_by_request_id(struct store *st, const char *request_id, struct grant_rec **out)
{
	return get_one(st, S_GET_REQ, request_id, out);
}

int store_set_state(struct store *st, const char *id, enum grant_state from, enum grant_state to,
		    enum grant_state end_state, int64_t now, const char *last_error)
{
	return store_set_state_by(st, id, from, to, end_state, now, last_error, NULL);
}

int store_set_state_by(struct store *st, const char *id, enum grant_state from,
		       enum grant_state to, enum grant_state end_state, int64_t now,
		       const char *last_error, const struct store_end_by *by)
{
	enum stmt_id sid = to == GS_ENDING ? S_TO_ENDING :
			   state_final(to) ? S_TO_FINAL :
					     S_TO_OTHER;
	sqlite3_stmt *s = st->stmt[sid];
	int rc;

	if ((unsigned)from >= GS__COUNT || (unsigned)to >= GS__COUNT ||
	    (to == GS_ENDING && !state_final(end_state))) {
		log_err("store: set_state %s: bad states %d -> %d (%d)", id, (int)from, (int)to,
			(int)end_state);
		return JIT_EINTERNAL;
	}
	rc = bind_txt(s, 1, id);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, state_names[from]);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, state_names[to]);
	if (rc == SQLITE_OK && sid == S_TO_ENDING)
		rc = bind_txt(s, 4, state_names[end_state]);
	if (rc == SQLITE_OK && sid != S_TO_OTHER)
		rc = sqlite3_bind_int64(s, 5, now);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 6, last_error);
	if (sid == S_TO_ENDING) {
		bool who = by != NULL && by->client != NULL;
		if (rc == SQLITE_OK)
			rc = bind_txt(s, 7, who ? by->client : NULL);
		if (rc == SQLITE_OK)
			rc = bind_txt(s, 8, who ? by->reason : NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(s, 9, who ? by->peer_uid : 0);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(s, 10, who ? by->peer_pid : 0);
	}
	return update_one(st, sid, rc);
}

int store_set_retry(struct store *st, const char *id, int64_t attempts, int64_t next_attempt,
		    const char *last_error)
{
	return store_set_retry_kind(st, id, attempts, next_attempt, last_error, false);
}

int store_set_retry_kind(struct store *st, const char *id, int64_t attempts,
			 int64_t next_attempt, const char *last_error, bool refused)
{
	sqlite3_stmt *s = st->stmt[S_RETRY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, attempts);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, next_attempt);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, last_error);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(s, 5, refused ? 1 : 0);
	return update_one(st, S_RETRY, rc); /* JIT_ENOTFOUND: no longer ENDING */
}

int store_count_failing(struct store *st, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_COUNT_FAILING];
	int ret = JIT_OK;

	if (sqlite3_step(s) != SQLITE_ROW)
		ret = db_fail(st, "count_failing");
	else
		*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return ret;
}

int store_count_overdue(struct store *st, int64_t before, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_COUNT_OVERDUE];
	int ret = JIT_OK;

	if (sqlite3_bind_int64(s, 1, before) != SQLITE_OK || bind_txt(s, 2, st->dirs) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		ret = db_fail(st, "count_overdue");
	else
		*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return ret;
}

int store_retry_now(struct store *st, const char *directory, int64_t now, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_RETRY_NOW];
	int changes = 0;
	int rc = bind_txt(s, 1, directory);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	rc = run_write(st, S_RETRY_NOW, rc, &changes);
	if (rc == JIT_OK)
		*n = changes;
	return rc;
}

int64_t store_list_limit(int64_t limit)
{
	if (limit <= 0)
		return STORE_DEFAULT_LIMIT;
	return limit > STORE_MAX_LIMIT ? STORE_MAX_LIMIT : limit;
}

int store_retry_sooner(struct store *st, int64_t now, int64_t plain, int64_t horizon,
		       int64_t grace, int64_t limit, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_RETRY_SOONER];
	int changes = 0;
	int rc = sqlite3_bind_int64(s, 1, now);

	if (plain > horizon)
		plain = horizon;
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 5, plain);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, horizon);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, grace);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, store_list_limit(limit));
	rc = run_write(st, S_RETRY_SOONER, rc, &changes);
	if (rc == JIT_OK)
		*n = changes;
	return rc;
}

int store_set_added_via(struct store *st, const char *id, const char *uri, const char *also)
{
	int rc = bind_txt(st->stmt[S_ADDED_VIA], 1, id);

	if (rc == SQLITE_OK)
		rc = bind_txt(st->stmt[S_ADDED_VIA], 2, uri);
	if (rc == SQLITE_OK)
		rc = bind_txt(st->stmt[S_ADDED_VIA], 3, also);
	return update_one(st, S_ADDED_VIA, rc);
}

int store_set_verify(struct store *st, const char *id, const char *removed_via,
		     const char *outcome, int64_t verify_at)
{
	sqlite3_stmt *s = st->stmt[S_VERIFY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, removed_via);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, verify_at);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, outcome);
	return update_one(st, S_VERIFY, rc); /* JIT_ENOTFOUND: no longer ENDING */
}

int store_set_expiry(struct store *st, const char *id, int64_t from, int64_t expires_at,
		     int64_t duration, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, expires_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, duration);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 5, now);
	return update_one(st, S_EXPIRY, rc);
}

int store_expire_due(struct store *st, const char *id, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRE_DUE];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	return update_one(st, S_EXPIRE_DUE, rc);
}

/* The body of both pair queries: S_PAIR_LIVE_SAME binds the holder too. */
static int pair_live(struct store *st, int which, const char *pair_key, const char *exclude_id,
		     unsigned state_mask, const char *uuid, const char *exact_value,
		     int64_t *count, bool *any_jitd)
{
	sqlite3_stmt *s = st->stmt[which];
	bool same = which == S_PAIR_LIVE_SAME;
	int ret = JIT_OK;

	if (bind_txt(s, 1, pair_key) != SQLITE_OK || bind_txt(s, 2, exclude_id) != SQLITE_OK ||
	    bind_mask(s, 3, state_mask) != SQLITE_OK ||
	    (same &&
	     (bind_txt(s, 10, uuid) != SQLITE_OK || bind_txt(s, 11, exact_value) != SQLITE_OK))) {
		ret = db_fail(st, same ? "pair_live_same: bind" : "pair_live: bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, same ? "pair_live_same" : "pair_live");
		goto out;
	}
	*count = sqlite3_column_int64(s, 0);
	*any_jitd = sqlite3_column_int64(s, 1) != 0;
out:
	stmt_done(s);
	return ret;
}

int store_pair_live(struct store *st, const char *pair_key, const char *exclude_id,
		    unsigned state_mask, int64_t *count, bool *any_jitd)
{
	return pair_live(st, S_PAIR_LIVE, pair_key, exclude_id, state_mask, NULL, NULL, count,
			 any_jitd);
}

int store_pair_live_same(struct store *st, const char *pair_key, const char *exclude_id,
			 unsigned state_mask, const char *uuid, const char *exact_value,
			 int64_t *count, bool *any_jitd)
{
	return pair_live(st, S_PAIR_LIVE_SAME, pair_key, exclude_id, state_mask, uuid,
			 exact_value, count, any_jitd);
}

int store_count_user_live(struct store *st, const char *user_dn, int64_t *count)
{
	sqlite3_stmt *s = st->stmt[S_USER_LIVE];
	int ret = JIT_OK;

	if (bind_txt(s, 1, user_dn) != SQLITE_OK) {
		ret = db_fail(st, "user_live: bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, "user_live");
		goto out;
	}
	*count = sqlite3_column_int64(s, 0);
out:
	stmt_done(s);
	return ret;
}

int store_user_live_groups(struct store *st, const char *user_dn,
			   bool (*fn)(const char *directory, const char *group_dn,
				      const char *member_attr, void *arg),
			   void *arg, bool *hit)
{
	sqlite3_stmt *s = st->stmt[S_USER_LIVE_GROUPS];
	int ret = JIT_OK, rc;

	*hit = false;
	if (bind_txt(s, 1, user_dn) != SQLITE_OK) {
		ret = db_fail(st, "user_live_groups: bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && !*hit)
		*hit = fn((const char *)sqlite3_column_text(s, 0),
			  (const char *)sqlite3_column_text(s, 1),
			  (const char *)sqlite3_column_text(s, 2), arg);
	if (!*hit && rc != SQLITE_DONE)
		ret = db_fail(st, "user_live_groups");
out:
	stmt_done(s);
	return ret;
}

/* Binds pair_key, uuid and exact_value as ?1 to ?3 of a SAME_HOLDER write. */
static int bind_holder(sqlite3_stmt *s, const char *pair_key, const char *uuid,
		       const char *exact_value)
{
	int rc = bind_txt(s, 1, pair_key);

	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, uuid);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, exact_value);
	return rc;
}

int store_pair_clear_standing(struct store *st, const char *pair_key, const char *uuid,
			      const char *exact_value)
{
	return run_write(st, S_PAIR_CLEAR,
			 bind_holder(st->stmt[S_PAIR_CLEAR], pair_key, uuid, exact_value), NULL);
}

int store_pair_take_unknown(struct store *st, const char *pair_key, const char *except_id,
			    const char *uuid, const char *exact_value)
{
	sqlite3_stmt *s = st->stmt[S_PAIR_UNKNOWN];
	int rc = bind_txt(s, 1, pair_key);

	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, except_id);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, uuid);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, exact_value);
	return run_write(st, S_PAIR_UNKNOWN, rc, NULL);
}

int store_pair_take_writers(struct store *st, const char *pair_key, const char *except_id,
			    const char *uuid, const char *exact_value, const char *added_via,
			    const char *also)
{
	sqlite3_stmt *s = st->stmt[S_PAIR_WRITERS];
	int rc = bind_txt(s, 1, pair_key);

	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, except_id);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, added_via);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, also);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 5, uuid);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 6, exact_value);
	return run_write(st, S_PAIR_WRITERS, rc, NULL);
}

int store_pair_set_standing(struct store *st, const char *pair_key, const char *uuid,
			    const char *exact_value)
{
	return run_write(st, S_PAIR_SET,
			 bind_holder(st->stmt[S_PAIR_SET], pair_key, uuid, exact_value), NULL);
}


/* How often skipped rows are logged (a due one is read again at every tick). */
#define SKIP_LOG_MS (60 * 1000)
/* At most this many of them named per read that logs. */
#define SKIP_LOG_ROWS 10

enum bad_rows { BAD_FAIL, BAD_SKIP };

/* A row collect_and_call() skips: counted, and logged when the throttle
 * lets this read's bad rows through. */
static void skip_row(struct store *st, const char *why, int64_t nth, bool *loud)
{
	int64_t held = 0; /* unused: a read let through names its rows again */

	st->skipped++;
	if (nth == 1)
		*loud = throttle_pass(&st->skip_log, mono_ms(), SKIP_LOG_MS, &held);
	if (*loud && nth <= SKIP_LOG_ROWS)
		log_err("store: %s: row skipped; this grant cannot be ended until the row is "
			"repaired (logged once a minute while it stays)", why);
}

/*
 * Steps a bound query to the end, collecting its rows, then resets it and
 * only then calls cb on each: a callback may use this store (even the same
 * query) and holds no read transaction open while it works. A row that
 * cannot be read fails the whole query, or with BAD_SKIP is left out
 * (store_due() says why). want > 0: at most that many rows are taken.
 */
static int collect_and_call_n(struct store *st, enum stmt_id id, int bind_rc, enum bad_rows bad,
			      int64_t want, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[id];
	struct grant_rec **recs = NULL;
	size_t n = 0, cap = 0;
	int64_t nbad = 0;
	bool loud = false;
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	int ret = JIT_OK;

	for (; rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		char why[256];
		if (want > 0 && (int64_t)n >= want) {
			rc = SQLITE_DONE; /* the rest is not wanted */
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = xrealloc(recs, cap * sizeof(*recs));
		}
		if ((ret = row_to_rec(st, s, &recs[n], why, sizeof(why))) == JIT_OK) {
			n++;
			continue;
		}
		if (bad == BAD_SKIP && why[0]) {
			skip_row(st, why, ++nbad, &loud);
			ret = JIT_OK;
			continue;
		}
		if (why[0])
			log_err("store: %s", why);
		break;
	}
	if (loud && nbad > SKIP_LOG_ROWS)
		log_err("store: %lld more unreadable row(s) skipped", (long long)(nbad - SKIP_LOG_ROWS));
	if (bad == BAD_SKIP && nbad > st->due_bad) /* twice: a few reads reach any number */
		st->due_bad = nbad > STORE_MAX_LIMIT / 2 ? STORE_MAX_LIMIT : 2 * nbad;
	if (ret == JIT_OK && rc != SQLITE_DONE)
		ret = db_fail(st, stmt_sql[id].name);
	stmt_done(s);
	for (size_t i = 0; i < n; i++) {
		if (ret == JIT_OK)
			ret = cb(recs[i], arg);
		grant_rec_free(recs[i]);
	}
	free(recs);
	return ret;
}

static int collect_and_call(struct store *st, enum stmt_id id, int bind_rc, enum bad_rows bad,
			    store_cb cb, void *arg)
{
	return collect_and_call_n(st, id, bind_rc, bad, 0, cb, arg);
}

int64_t store_rows_skipped(const struct store *st)
{
	return st->skipped;
}

int store_list(struct store *st, const struct store_filter *f, store_cb cb, void *arg)
{
	static const enum stmt_id which[4] = { S_LIST, S_LIST_USER, S_LIST_GROUP, S_LIST_BOTH };
	enum stmt_id id = which[(f->user ? 1 : 0) | (f->group ? 2 : 0)];
	sqlite3_stmt *s = st->stmt[id];
	int rc = bind_mask(s, 1, f->state_mask ? f->state_mask : GS_LIVE_MASK);

	/* ?8 and ?9 exist in every variant (the highest index is ?10). */
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 8, f->user);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 9, f->group);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 10, store_list_limit(f->limit));
	return collect_and_call(st, id, rc, BAD_FAIL, cb, arg);
}

int store_group_live(struct store *st, const char *prefix, int64_t limit, store_cb cb, void *arg)
{
	size_t n = prefix ? strlen(prefix) : 0;
	if (n == 0 || prefix[n - 1] != '\n')
		return JIT_EINTERNAL;
	char *above = xstrdup(prefix);
	above[n - 1] = '\n' + 1;
	sqlite3_stmt *s = st->stmt[S_GROUP_LIVE];
	int rc = bind_txt(s, 1, prefix);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, above);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, store_list_limit(limit));
	rc = collect_and_call(st, S_GROUP_LIVE, rc, BAD_FAIL, cb, arg);
	free(above);
	return rc;
}

/* names as one string for IN_DIRS: each between DIR_SEPs (heap). */
static char *dir_set(const char *const *names, size_t n)
{
	size_t len = 2;
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	char *set = xmalloc(len), *p = set;
	*p++ = DIR_SEP;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		memcpy(p, names[i], l);
		p += l;
		*p++ = DIR_SEP;
	}
	*p = '\0';
	return set;
}

void store_set_directories(struct store *st, const char *const *names, size_t n)
{
	free(st->dirs);
	st->dirs = dir_set(names, n);
}

int store_due_in(struct store *st, int64_t now, int64_t limit, const char *const *names,
		 size_t n, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[S_DUE];
	char *set = dir_set(names, n);
	int rc = sqlite3_bind_int64(s, 1, now);

	limit = store_list_limit(limit);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, limit + st->due_bad);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 3, set, -1, SQLITE_TRANSIENT);
	int ret = collect_and_call_n(st, S_DUE, rc, BAD_SKIP, limit, cb, arg);
	free(set);
	return ret;
}

int store_due(struct store *st, int64_t now, int64_t limit, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[S_DUE];
	int rc = sqlite3_bind_int64(s, 1, now);

	limit = store_list_limit(limit);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, limit + st->due_bad);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, st->dirs);
	return collect_and_call_n(st, S_DUE, rc, BAD_SKIP, limit, cb, arg);
}

int store_due_elsewhere(struct store *st, int64_t now, int64_t *n, char *dir, size_t dirlen)
{
	sqlite3_stmt *s = st->stmt[S_DUE_ELSEWHERE];
	int rc = sqlite3_bind_int64(s, 1, now);
	int ret = JIT_OK;

	*n = 0;
	if (dirlen > 0)
		dir[0] = '\0';
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, st->dirs);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *d = sqlite3_column_text(s, 1);
		*n = sqlite3_column_int64(s, 0);
		if (d && dirlen > 0)
			snprintf(dir, dirlen, "%s", (const char *)d);
	} else {
		ret = db_fail(st, "due_elsewhere");
	}
	stmt_done(s);
	return ret;
}

int store_pair_ending(struct store *st, const char *pair_key, store_cb cb, void *arg)
{
	return collect_and_call(st, S_PAIR_ENDING, bind_txt(st->stmt[S_PAIR_ENDING], 1, pair_key),
				BAD_FAIL, cb, arg);
}

int store_expiring(struct store *st, int64_t now, int64_t before, int64_t limit, store_cb cb,
		   void *arg)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRING];
	int rc = sqlite3_bind_int64(s, 1, now + before);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, before);
	limit = store_list_limit(limit);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, limit + st->due_bad);
	return collect_and_call_n(st, S_EXPIRING, rc, BAD_SKIP, limit, cb, arg);
}

int store_created_after(struct store *st, int64_t t, int64_t limit, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[S_CREATED_AFTER];
	int rc = sqlite3_bind_int64(s, 1, t);

	limit = store_list_limit(limit);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, limit + st->due_bad);
	return collect_and_call_n(st, S_CREATED_AFTER, rc, BAD_SKIP, limit, cb, arg);
}

int store_reschedule(struct store *st, const struct grant_rec *r, int64_t created_at,
		     int64_t expires_at)
{
	sqlite3_stmt *s = st->stmt[S_RESCHEDULE];
	int rc = bind_txt(s, 1, r->id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, created_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, expires_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, r->created_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 5, r->expires_at);
	return update_one(st, S_RESCHEDULE, rc);
}

int store_set_warned(struct store *st, const char *id, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_WARNED];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	return update_one(st, S_WARNED, rc);
}

int store_clear_warned(struct store *st, const char *id, int64_t when)
{
	sqlite3_stmt *s = st->stmt[S_UNWARN];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, when);
	return update_one(st, S_UNWARN, rc);
}

int store_next_due(struct store *st, int64_t *when)
{
	sqlite3_stmt *s = st->stmt[S_NEXT_DUE];
	int64_t best = INT64_MAX;
	int ret = JIT_OK;

	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, "next_due");
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		if (sqlite3_column_type(s, i) == SQLITE_NULL)
			continue; /* no row in that state */
		int64_t v = sqlite3_column_int64(s, i);
		if (v < best)
			best = v;
	}
	*when = best;
out:
	stmt_done(s);
	return ret;
}

int store_counts(struct store *st, int64_t counts[GS__COUNT])
{
	sqlite3_stmt *s = st->stmt[S_COUNTS];
	int64_t c[GS__COUNT] = { 0 };
	enum grant_state gs;
	int rc, ret = JIT_OK;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		if (grant_state_parse(name, &gs) != JIT_OK) {
			log_err("store: counts: bad state %s", name ? name : "NULL");
			ret = JIT_EIO;
			goto out;
		}
		c[gs] = sqlite3_column_int64(s, 1);
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(st, "counts");
		goto out;
	}
	memcpy(counts, c, sizeof(c));
out:
	stmt_done(s);
	return ret;
}

int store_recover(struct store *st, int64_t now, int64_t *n)
{
	int changes = 0;
	int ret =
		run_write(st, S_RECOVER, sqlite3_bind_int64(st->stmt[S_RECOVER], 1, now), &changes);

	if (ret == JIT_OK)
		*n = changes;
	return ret;
}
