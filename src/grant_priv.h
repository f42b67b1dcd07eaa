/*
 * grant_priv.h - what the grant module's files share; no other file includes
 * it (everyone else uses grant.h). The module is five files:
 *   grant.c        the transition table and the function that applies it,
 *                  the pair locks, backoff, the answer line about a grant
 *   grantcreate.c  grant_create()
 *   grantend.c     grant_end(), grant_force_close(): one grant's end, its
 *                  membership settled, retries, the check after
 *                  replication_grace; a pair's unfinished ends
 *   grantexpiry.c  grant_expire_batch()
 *   grantaudit.c   the audit events about a grant
 * Names: a function shared between these files carries the grant_ prefix
 * and is declared below under the file that defines it; they take a pair's
 * lock and key through grant.h (grant_pair_lock, grant_pair_key).
 * Threads: engine worker threads; the pair lock of a grant is held by whoever
 * works on it (the comments say which functions expect it held).
 */
#ifndef JITD_GRANT_PRIV_H
#define JITD_GRANT_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include "grant.h"

/* What one removal step found and did. */
struct settle {
	const char *outcome;    /* removal outcome (audit log) */
	char *value;            /* value removed, when it was not member_value; freed */
	char uri[256];          /* the server that answered, "" if none was asked */
	bool verify;            /* answered by another server than the one that
				 * wrote the membership: check again later */
};

/* ---- grant.c ---- */

/* from -> to (checked against the table), compare-and-set in the store. */
int grant_transition(struct grant_ctx *g, const struct grant_rec *r, enum grant_state from,
		     enum grant_state to, enum grant_state end_state, const char *err);
/* ACTIVE -> ENDING(end_state) asked by a client (client, reason, peer;
 * client NULL: nobody), who is recorded with it (store_set_state_by). */
int grant_begin_end(struct grant_ctx *g, const struct grant_rec *r, enum grant_state end_state,
		    const char *err, const char *client, const char *reason,
		    const struct jit_peer *peer);
/* ACTIVE -> ENDING(EXPIRED) if still due; JIT_ENOTFOUND if not. */
int grant_expire_due(struct grant_ctx *g, const struct grant_rec *r, int64_t now);
/* The answer line (caller frees): grant id as stored, or `internal`. */
char *grant_reply(struct grant_ctx *g, const char *id, bool duplicate);
/* Commits the store transaction if rc is JIT_OK, else rolls it back. */
int grant_end_tx(struct grant_ctx *g, int rc);

/* ---- grantaudit.c ---- */

/* Sets o[k] to string v unless v is NULL. */
void grant_set_str(json_t *o, const char *k, const char *v);
/* Writes one audit event about r; logs if it fails. */
/* The `granted` line of r, with approval_signed and approved_at when p's
 * approval was a verified signature. */
int grant_audit_granted(struct grant_ctx *g, const struct grant_rec *r, const char *outcome,
			const struct grant_params *p);
/* grant_audit() with the members of extra (may be NULL) added. */
int grant_audit_extra(struct grant_ctx *g, const char *event, const struct grant_rec *r,
		      const char *outcome, const struct dir_result *dres, const char *who,
		      const struct jit_peer *peer, const char *why, json_t *extra);
int grant_audit(struct grant_ctx *g, const char *event, const struct grant_rec *r,
		const char *outcome, const struct dir_result *dres, const char *who,
		const struct jit_peer *peer, const char *why);
/* The final audit event of ending grant r (new reference); frees st->value. */
json_t *grant_end_audit_obj(struct grant_rec *r, struct settle *st, const struct dir_result *dres,
			    const char *reason, const char *client, const struct jit_peer *peer);

/* ---- grantend.c ---- */

/* Ending grant r's membership, its pair lock held: is it held by something
 * else (grant_settle_kept), its removal (grant_settle_remove), both in turn. */
int grant_settle_kept(struct grant_ctx *g, const struct grant_rec *r, struct settle *st);
/* r's member_value where the store's "same membership" must match it byte
 * for byte (memberUid, which compares case), else NULL (the same user, by
 * uuid: store_pair_live_same). */
const char *grant_exact_value(const struct grant_rec *r);
/* Was an attempt of r's add never answered, or is its outcome unknown (a
 * pending row recovered at start-up)? Then its end is checked once more
 * after replication_grace, whatever the removal found. */
bool grant_add_unsure(const struct grant_ctx *g, const struct grant_rec *r);
int grant_settle_remove(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			struct dir_result *dres);
int grant_settle_membership(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			    struct dir_result *dres);
/* True when r now waits for the check after replication_grace, or stays
 * ending because that check could not be recorded (its removal is retried). */
bool grant_schedule_verify(struct grant_ctx *g, struct grant_rec *r, const struct settle *st,
			   int64_t now);
/* The removal of ending grant r failed with rc: schedules the retry.
 * again, again_peer: the client that asked again for an end already under
 * way (its revoke_failed line names it as retried_by), or NULL. */
void grant_removal_failed(struct grant_ctx *g, struct grant_rec *r, int rc,
			  const struct dir_result *dres, const char *reason, const char *client,
			  const struct jit_peer *peer, const char *again,
			  const struct jit_peer *again_peer, int64_t now);
/* Adds retried_by_client (again, if not NULL), retried_by_peer_uid and
 * retried_by_peer_pid (again_peer, if not NULL) to o. */
void grant_set_retried_by(json_t *o, const char *again, const struct jit_peer *again_peer);
/* The final line of ending grant r could not be written: retry later. */
void grant_final_audit_failed(struct grant_ctx *g, struct grant_rec *r, int64_t now);
/* The removal outcome the final audit line of r reports. */
const char *grant_end_outcome(const struct grant_rec *r, const struct settle *st);
/* grant_end() of r, its pair lock held; returns the answer line. */
char *grant_end_locked(struct grant_ctx *g, struct grant_rec *r, enum grant_state end_state,
		       bool scheduled, const char *reason, const char *client,
		       const struct jit_peer *peer);
/* Runs the pair's unfinished ends to their end (pair lock held). */
void grant_settle_pair(struct grant_ctx *g, const char *pair_key);

#endif
