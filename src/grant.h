/*
 * grant.h - the grant state machine, run by the engine's worker threads.
 *
 *   pending --add ok--> active --end--> ending --removed/kept--> expired|completed|revoked
 *   pending --refused--> failed          ending(failed) --removed/kept--> failed
 *   pending --outcome unknown--> ending(failed)
 *
 * Every transition is persisted in the store before the side effect it
 * authorises (the directory write that follows it), and every step can be
 * re-run after a crash from what the store holds: recovery is this same
 * machine (store_recover() turns `pending` into ending(failed)).
 *
 * All work on one (directory, group, member value) pair is serialised by a
 * pair lock, so "is another grant still holding this membership?" and the
 * directory write that depends on the answer happen atomically.
 *
 * Implemented by grant.c (the transition table and the function that
 * applies it), grantcreate.c, grantend.c, grantexpiry.c and grantaudit.c,
 * which share grant_priv.h; callers include this header only.
 */
#ifndef JITD_GRANT_H
#define JITD_GRANT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "audit.h"
#include "directory.h"
#include "policy.h"
#include "proto.h"
#include "store.h"

/* What one worker thread brings to a transition. */
struct grant_ctx {
	struct dir_conn *dc;
	struct store *st;
	struct audit *audit;
	pthread_mutex_t *pair_locks;    /* GRANT_PAIR_LOCKS stripes, shared */
	int64_t retry_min, retry_max;   /* seconds */
	int64_t replication_grace;      /* seconds: see grant_settle_remove() in grantend.c */
};
#define GRANT_PAIR_LOCKS 4096

/* Everything a new grant needs, copied from the request and the config. */
struct grant_params {
	const struct jit_request *req;
	int64_t duration;
	const char *group_name, *group_dn, *directory, *member_attr, *placeholder;
	const char *client;
	struct jit_peer peer;
	const struct policy_dirrules *rules; /* deny_users, eligible_group,
					      * max_active_per_user; may be NULL */
	bool approval_signed;   /* req's approval_sig was verified (approval_key_file) */
	bool racing;            /* admitted as a retry racing its first attempt: its
				 * approval's age was not checked then */
	int64_t approval_max_age; /* with approval_key_file: the group's; else 0 */
	/* racing: is another attempt of the request still in progress? */
	bool (*first_running)(const void *arg);
	const void *first_arg;
};

/* Creates a grant (grant op). Returns the answer line for the client. */
char *grant_create(struct grant_ctx *g, const struct grant_params *p);

/*
 * Ends grant id towards end_state (EXPIRED, COMPLETED, REVOKED) or retries
 * the removal of an `ending` grant. scheduled: called by the scheduler (then
 * an ACTIVE grant whose expires_at is in the future was extended and is left
 * alone). Returns the answer line (for a client) — always non-NULL.
 */
char *grant_end(struct grant_ctx *g, const char *id, enum grant_state end_state, bool scheduled,
		const char *reason, const char *client, const struct jit_peer *peer);

/*
 * At a stop, for a client's end that no worker reached: records active
 * grant id as ending towards end_state (COMPLETED, REVOKED), without the
 * directory, so that the next start makes the removal (the client is told
 * shutting_down, and its retry finds the grant ending or ended). The
 * client, its reason and peer are recorded with it, for its final line.
 */
void grant_end_at_next_start(struct grant_ctx *g, const char *id, enum grant_state end_state,
			     const char *reason, const char *client, const struct jit_peer *peer);

/*
 * revoke with "force": closes grant id, which must be `ending` (its removal
 * keeps failing), as `revoked` without touching the directory, after an
 * operator removed the membership by hand. Audit event `revoked` with
 * outcome `forced` and who asked. A final grant is answered as it is;
 * `pending` / `active` get not_active. Returns the answer line.
 */
char *grant_force_close(struct grant_ctx *g, const char *id, const char *reason,
			const char *client, const struct jit_peer *peer);
/*
 * The same for a grant whose directory the configuration no longer names
 * (nothing can end it: no worker has that directory): an `active` one is
 * first made `ending` (end state revoked), then closed as above. Main
 * thread, g with the engine's store and audit log and no connection or
 * pair locks (no worker touches such a grant). Returns the answer line.
 */
char *grant_force_close_unconfigured(struct grant_ctx *g, const char *id, const char *reason,
				     const char *client, const struct jit_peer *peer);

/*
 * The scheduler's expiry of grants ids[0..n) of one directory (their pair
 * keys in pair_keys[0..n), as the scheduler read them), each ended as
 * grant_end(id, GS_EXPIRED, scheduled) would (a grant extended meanwhile
 * stays; an ending one is retried alone), with the disk syncs shared: one
 * transaction marks the due ones ending, the memberships of one group are
 * removed together (dir_revoke_many) or one at a time, one audit write
 * carries their `expired` lines, one transaction closes them. Pair locks:
 * first the grants whose locks are free (trylock), then, holding none, the
 * rest with their locks taken in address order.
 */
void grant_expire_batch(struct grant_ctx *g, char *const *ids, char *const *pair_keys, size_t n);

/* The pair key of (directory, group, attribute, value) (heap string) and
 * the stripe of pair_locks that serialises all work on it. For other
 * threads (reconcile.c) that change memberships jitd manages. */
char *grant_pair_key(const char *directory, const char *group_dn, const char *attr,
		     const char *value);
pthread_mutex_t *grant_pair_lock(pthread_mutex_t *pair_locks, const char *pair_key);
/* Do (directory, group, attribute) a and b name one group as the pair key
 * compares them? */
bool grant_same_pair_group(const char *dir_a, const char *dn_a, const char *attr_a,
			   const char *dir_b, const char *dn_b, const char *attr_b);

/* The audit fields common to every event about grant r (new reference). */
json_t *grant_audit_fields(const struct grant_rec *r);

/* Next retry delay after `attempts` failures: retry_min doubling, capped. */
int64_t grant_backoff(int64_t attempts, int64_t retry_min, int64_t retry_max);

#endif
