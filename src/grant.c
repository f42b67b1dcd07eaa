/*
 * grant.c - the grant state machine (grant.h has the diagram): the one table
 * of allowed transitions and the function that applies them, the pair locks,
 * the retry backoff, the answer line about a grant; the machine's steps are
 * in grantcreate.c, grantend.c and grantexpiry.c. Robustness: each transition
 * is committed to the store before the directory write it authorises, so a
 * crash at any point leaves a row from which the same machine finishes the job.
 * Trust: only store rows reach here; a move not in the table is fatal.
 */
#include <string.h>
#include "grant_priv.h"
#include "log.h"
#include "util.h"

/* The allowed transitions: the one table the machine obeys. */
static const struct {
	enum grant_state from, to;
} transitions[] = {
	{ GS_PENDING, GS_ACTIVE },     /* directory add done (or standing) */
	{ GS_PENDING, GS_FAILED },     /* directory refused the add */
	{ GS_PENDING, GS_ENDING },     /* add outcome unknown, or recovery */
	{ GS_ACTIVE, GS_ENDING },      /* expiry, complete, revoke */
	{ GS_ENDING, GS_EXPIRED },
	{ GS_ENDING, GS_COMPLETED },
	{ GS_ENDING, GS_REVOKED },
	{ GS_ENDING, GS_FAILED },
};

static void check_legal(const struct grant_rec *r, enum grant_state from, enum grant_state to)
{
	bool ok = false;
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			ok = true;
	if (!ok)
		fatal("grant %s: illegal transition %s -> %s", r->id, grant_state_name(from),
		      grant_state_name(to));
}

int grant_transition(struct grant_ctx *g, const struct grant_rec *r, enum grant_state from,
		     enum grant_state to, enum grant_state end_state, const char *err)
{
	check_legal(r, from, to);
	return store_set_state(g->st, r->id, from, to, end_state, now_s(), err);
}

int grant_begin_end(struct grant_ctx *g, const struct grant_rec *r, enum grant_state end_state,
		    const char *err, const char *client, const char *reason,
		    const struct jit_peer *peer)
{
	struct store_end_by by = { client, reason, peer ? (int64_t)peer->uid : 0,
				   peer ? (int64_t)peer->pid : 0 };

	check_legal(r, GS_ACTIVE, GS_ENDING);
	return store_set_state_by(g->st, r->id, GS_ACTIVE, GS_ENDING, end_state, now_s(), err,
				  &by);
}

/* ACTIVE -> ENDING(EXPIRED) if still due: a transition with a
 * compare-and-set on expires_at too. JIT_ENOTFOUND if no longer due. */
int grant_expire_due(struct grant_ctx *g, const struct grant_rec *r, int64_t now)
{
	check_legal(r, GS_ACTIVE, GS_ENDING);
	return store_expire_due(g->st, r->id, now);
}

int64_t grant_backoff(int64_t attempts, int64_t retry_min, int64_t retry_max)
{
	int64_t d = retry_min > 0 ? retry_min : 1;
	for (int64_t i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d < retry_max ? d : retry_max;
}

static pthread_mutex_t *pair_lock(struct grant_ctx *g, const char *pair_key)
{
	uint32_t h = 2166136261u; /* FNV-1a: spreads keys over the stripes */
	for (const unsigned char *p = (const unsigned char *)pair_key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &g->pair_locks[h % GRANT_PAIR_LOCKS];
}

/* The pair key: dir_pair_key() (the group DN and a DN value in one
 * canonical form, case-folded). Store migration 7 rewrote the keys of
 * rows made before with this function. */
static char *make_pair_key(const char *dir, const char *group_dn, const char *attr,
			   const char *value)
{
	return dir_pair_key(dir, group_dn, attr, value);
}

char *grant_reply(struct grant_ctx *g, const char *id, bool duplicate)
{
	struct grant_rec *r = NULL;
	if (store_get(g->st, id, &r) != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "grant recorded but cannot be read back");
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "grant", proto_grant_json(r));
	if (duplicate)
		json_object_set_new(o, "duplicate", json_true());
	grant_rec_free(r);
	return proto_dump_line(o);
}

/* Ends the transaction begun with store_begin(): commits if rc (what the
 * statements in it returned) is JIT_OK, else rolls back and returns rc. */
int grant_end_tx(struct grant_ctx *g, int rc)
{
	if (rc != JIT_OK) {
		store_rollback(g->st);
		return rc;
	}
	return store_commit(g->st);
}

char *grant_pair_key(const char *directory, const char *group_dn, const char *attr,
		     const char *value)
{
	return make_pair_key(directory, group_dn, attr, value);
}

bool grant_same_pair_group(const char *dir_a, const char *dn_a, const char *attr_a,
			   const char *dir_b, const char *dn_b, const char *attr_b)
{
	char *a = make_pair_key(dir_a, dn_a, attr_a, "");
	char *b = make_pair_key(dir_b, dn_b, attr_b, "");
	bool same = strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}

pthread_mutex_t *grant_pair_lock(pthread_mutex_t *pair_locks, const char *pair_key)
{
	struct grant_ctx g = { .pair_locks = pair_locks };
	return pair_lock(&g, pair_key);
}
