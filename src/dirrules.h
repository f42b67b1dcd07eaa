/*
 * dirrules.h - the policy rules that need the directory's answer about
 * the user (struct policy_dirrules: deny_users by DN and uid,
 * eligible_group), run by the engine's worker threads on their own
 * directory connection: for a new grant (grantcreate.c) once the user is
 * resolved, and for an extension of a grant of a group with
 * eligible_group (extend.c, run by workers.c), which resolves the user
 * again first.
 *
 * Both return JIT_OK, or the refusal's code with msg (starting with the
 * rule's name) and *rule set; the caller audits and answers. They fail
 * closed: no answer from the directory is no elevation.
 */
#ifndef JITD_DIRRULES_H
#define JITD_DIRRULES_H

#include <stddef.h>
#include "directory.h"
#include "err.h"
#include "policy.h"

/* deny_users and eligible_group for entry u, asked for as name. pr may be
 * NULL (no rules). dres: the directory's answer when it failed (else
 * left as the caller zeroed it). */
int dirrules_check(struct dir_conn *dc, const struct policy_dirrules *pr, const char *name,
		   const struct dir_user *u, struct dir_result *dres, char *msg, size_t msglen,
		   const char **rule) JIT_WUR;

/*
 * For an extension of a grant held by name (entry uuid, else dn, as the
 * grant recorded them): resolves name again, which must still name that
 * entry (else refused under dirrules_first(pr)), not disabled (rule
 * account_disabled), then dirrules_check().
 */
/* The rule a failed look-up for pr is refused under: eligible_group if pr
 * has one, else deny_users if it has a list, else forbid_self_approval. */
const char *dirrules_first(const struct policy_dirrules *pr);
int dirrules_recheck(struct dir_conn *dc, const struct policy_dirrules *pr, const char *name,
		     const char *uuid, const char *dn, struct dir_result *dres, char *msg,
		     size_t msglen, const char **rule) JIT_WUR;

#endif
