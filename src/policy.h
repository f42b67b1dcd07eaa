/*
 * policy.h - may this client do this operation on this group, for this
 * long, for this user? Pure decisions over the immutable config and the
 * peer's kernel credentials (SO_PEERCRED).
 *
 * Two halves (docs/policy.md explains every rule):
 *  - policy_check(): everything decidable from the request and the config
 *    (client ops, groups, max_duration; the group's durations, ticket,
 *    reason, approver, self-approval and user-name rules). The listener
 *    runs it before a request reaches the engine, and the engine runs it
 *    again on what it receives.
 *  - struct policy_dirrules: the rules that need the directory's answer
 *    about the user (deny_users by DN, eligible_group, max_active_per_user).
 *    The engine copies them out of the config for a worker thread.
 * A refusal names the rule (its config key) so that the `refused` audit
 * event can carry it.
 */
#ifndef JITD_POLICY_H
#define JITD_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"
#include "config.h"
#include "proto.h"

struct jit_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[256];      /* supplementary groups of the peer's user */
	int n_groups;
	/* The groups could not all be read (the name service failed, or more
	 * than fit): a clients entry by gid that is not among them cannot be
	 * ruled out, so policy_client() matches no entry from there on. */
	bool groups_unknown;
};

/* Fills the supplementary groups of p->uid (getgrouplist); sets
 * p->groups_unknown when they could not all be read. */
void policy_peer_groups(struct jit_peer *p, const struct jit_config *cfg);

/* The same for the engine's main loop, which also runs the expiries, and
 * the listener's one loop: the groups of a uid (with that process gid,
 * for the same configuration) read in the last POLICY_GROUPS_TTL_MS are
 * reused (at most POLICY_GROUPS_CACHE uids), so a slow name service (an
 * LDAP-backed one that is down) costs one read per uid and period, not one
 * per request or connection. One thread per process only. */
#define POLICY_GROUPS_TTL_MS 5000
#define POLICY_GROUPS_CACHE 16
void policy_peer_groups_cached(struct jit_peer *p, const struct jit_config *cfg, int64_t now_ms);

/* Does any clients entry match by gid (and so read the peer's groups)? */
bool policy_uses_groups(const struct jit_config *cfg);

/* The first clients entry matching the peer, or NULL (=> unauthorized). */
const struct jit_client_cfg *policy_client(const struct jit_config *cfg,
					   const struct jit_peer *p);

/* Does the client entry allow group name? */
bool policy_group_allowed(const struct jit_client_cfg *c, const char *group);

/*
 * Checks a parsed request against the config for client c (may be NULL):
 * op allowed, group known and allowed, and for a grant every rule of the
 * group and the client's max_duration (a grant without duration gets the
 * group's default_duration: *duration is set for grants). Returns JIT_OK, or
 * the refusal code with msg filled and *rule set to the name of the rule
 * that refused (a config key such as "min_duration"; NULL when no rule is
 * involved, e.g. an unknown group).
 */
int policy_check(const struct jit_config *cfg, const struct jit_client_cfg *c,
		 const struct jit_request *req, int64_t *duration, char *msg, size_t msglen,
		 const char **rule) JIT_WUR;

/* Is req the request grant r was made from? (A request_id used again with
 * other user, group, ticket, reason, requested_by or approved_by is not:
 * it is refused, never answered as a duplicate.) */
bool policy_same_request(const struct jit_request *req, const struct grant_rec *r);

/* Does an extension to a total of `total` seconds stay within the group's
 * and the client's max_duration? JIT_OK, or JIT_EDURMAX with msg and *rule. */
int policy_check_extend(const struct jit_group_cfg *g, const struct jit_client_cfg *c,
			int64_t total, char *msg, size_t msglen, const char **rule) JIT_WUR;

/* Two user names as the directory compares them: case over all of Unicode,
 * leading and trailing blanks ignored, a run of inner blanks as one. NULL:
 * not equal. Used only where "equal" refuses (deny_users, self-approval). */
bool policy_name_eq(const char *a, const char *b);

/* The approver rules for an extension of grant r (group g): require_approver
 * needs the extension's approved_by, forbid_self_approval refuses one that
 * names the grant's user (as asked, or its uid for memberUid) or its
 * requested_by. Pure. JIT_OK, or JIT_EPOLICY with msg and *rule. */
int policy_extend_approval(const struct jit_group_cfg *g, const struct jit_request *req,
			   const struct grant_rec *r, char *msg, size_t msglen,
			   const char **rule) JIT_WUR;

/* deny_users against the user an active grant r holds (its name as asked,
 * its DN, and its uid when the member attribute is memberUid), for an
 * extension: a reload that denies the user stops extensions at once.
 * Pure (no directory). JIT_OK or JIT_EPOLICY with msg. */
int policy_extend_denied(const struct jit_group_cfg *g, const struct grant_rec *r, char *msg,
			 size_t msglen) JIT_WUR;

/*
 * max_requests_per_minute of a client entry: a token bucket holding at most
 * per_minute tokens, refilled at per_minute per 60 s. A fresh bucket
 * (zeroed) is full. True (and one token used) if a request may pass.
 */
struct policy_bucket {
	double tokens;
	int64_t last_ms;        /* 0: never used */
};
bool policy_bucket_take(struct policy_bucket *b, int per_minute, int64_t now_ms);

/* The rules a worker applies once the directory has named the user. */
struct policy_dirrules {
	char *group;            /* the group's name, for messages */
	char *eligible_dn;      /* NULL: anyone */
	char *eligible_attr;    /* the directory's member attribute */
	char **deny;            /* deny_users: names and DNs */
	size_t n_deny;
	int max_active;         /* 0: no limit */
	char *approved_by;      /* forbid_self_approval: the approver, NULL: no check */
};

/* A copy of group g's directory-side rules, or NULL if it has none.
 * approved_by: the request's approver (may be NULL), compared with the
 * user's uid as the directory returns it when g forbids self-approval. */
struct policy_dirrules *policy_dirrules_new(const struct jit_config *cfg,
					    const struct jit_group_cfg *g, const char *approved_by);
void policy_dirrules_free(struct policy_dirrules *r); /* NULL-safe */
/* Do a and b check the same (eligible group, deny list, approver)? */
bool policy_dirrules_same(const struct policy_dirrules *a, const struct policy_dirrules *b);

/* deny_users against the resolved user: its name as asked, its DN and its
 * uid_attr value (may be NULL). JIT_OK or JIT_EPOLICY with msg. */
int policy_user_denied(const struct policy_dirrules *r, const char *name, const char *dn,
		       const char *uid, char *msg, size_t msglen) JIT_WUR;

/* Equality of two DNs as a directory's matching rules see them: their
 * dn_key()s (escapes decoded, case folded over Unicode, insignificant
 * spaces dropped, a multi-valued RDN's order ignored); text that does not
 * parse as a DN is compared case-blind, blind to spaces around ',', '='
 * and '+'. */
bool policy_dn_equal(const char *a, const char *b);

#endif
