/*
 * dirrules.c - deny_users (by DN and uid) and eligible_group against the
 * directory (see dirrules.h). Runs in worker threads. Trust: the
 * directory's answers decide; an error or no answer refuses (fail closed).
 */
#include <stdio.h>
#include <strings.h>
#include "dirrules.h"

int dirrules_check(struct dir_conn *dc, const struct policy_dirrules *pr, const char *name,
		   const struct dir_user *u, struct dir_result *dres, char *msg, size_t msglen,
		   const char **rule)
{
	bool member = false;

	if (!pr)
		return JIT_OK;
	if (policy_user_denied(pr, name, u->dn, u->uid, msg, msglen) != JIT_OK) {
		*rule = "deny_users";
		return JIT_EPOLICY;
	}
	if (!pr->eligible_dn)
		return JIT_OK;
	const char *value = strcasecmp(pr->eligible_attr, "memberUid") == 0 ? u->uid : u->dn;
	int rc = value ? dir_is_member(dc, pr->eligible_dn, pr->eligible_attr, value, &member, dres)
		       : JIT_OK;
	*rule = "eligible_group";
	if (rc != JIT_OK) {
		/* fail closed: no answer about eligibility is no elevation */
		snprintf(msg, msglen, "eligible_group: cannot check membership of %.200s: %.120s",
			 pr->eligible_dn, dres->message[0] ? dres->message : jit_err_message(rc));
		return rc;
	}
	if (!member) {
		snprintf(msg, msglen, "eligible_group: \"%.64s\" is not a member of %.200s", name,
			 pr->eligible_dn);
		return JIT_EPOLICY;
	}
	*rule = NULL;
	return JIT_OK;
}
