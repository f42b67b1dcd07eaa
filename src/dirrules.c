/*
 * dirrules.c - deny_users (by DN and uid) and eligible_group against the
 * directory (see dirrules.h). Runs in worker threads. Trust: the
 * directory's answers decide; an error or no answer refuses (fail closed).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "dirrules.h"

int dirrules_check(struct dir_conn *dc, const struct policy_dirrules *pr, const char *name,
		   const struct dir_user *u, struct dir_result *dres, char *msg, size_t msglen,
		   const char **rule)
{
	bool member = false;

	if (!pr)
		return JIT_OK;
	if (u->uid_others_cut && (pr->n_deny > 0 || pr->approved_by)) {
		/* fail closed: an alias not seen may be the one a rule names */
		*rule = pr->n_deny > 0 ? "deny_users" : "forbid_self_approval";
		snprintf(msg, msglen, "%s: \"%.64s\" has more uid values than jitd reads (64 "
			 "besides the first) or one it cannot read: not all could be checked",
			 *rule, name);
		return JIT_EPOLICY;
	}
	/* Every value of the entry's uid_attr: an entry with uid "asmith"
	 * and "alice" is alice, whichever the server lists first. */
	for (size_t i = 0; i == 0 || (u->uid_others && u->uid_others[i - 1]); i++) {
		const char *uid = i == 0 ? u->uid : u->uid_others[i - 1];
		if (policy_user_denied(pr, name, u->dn, uid, msg, msglen) != JIT_OK) {
			*rule = "deny_users";
			return JIT_EPOLICY;
		}
		if (pr->approved_by && uid && policy_name_eq(pr->approved_by, uid)) {
			/* the name as asked was compared before; this is the
			 * entry's own uid ("alice" approving " alice", or an
			 * alias of alice) */
			*rule = "forbid_self_approval";
			snprintf(msg, msglen, "forbid_self_approval: approved_by must differ from "
				 "user (\"%.64s\" is %.64s in the directory)", name, uid);
			return JIT_EPOLICY;
		}
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

const char *dirrules_first(const struct policy_dirrules *pr)
{
	if (!pr || pr->eligible_dn)
		return "eligible_group";
	return pr->n_deny > 0 ? "deny_users" : "forbid_self_approval";
}

/* Is u the entry the grant recorded (by its uuid when both have one)? */
static bool same_entry(const struct dir_user *u, const char *uuid, const char *dn)
{
	if (uuid && u->uuid)
		return strcasecmp(uuid, u->uuid) == 0;
	return dn && policy_dn_equal(dn, u->dn);
}

int dirrules_recheck(struct dir_conn *dc, const struct policy_dirrules *pr, const char *name,
		     const char *uuid, const char *dn, struct dir_result *dres, char *msg,
		     size_t msglen, const char **rule)
{
	struct dir_user u = { 0 };
	int rc = dir_resolve_user(dc, name, &u, dres);

	/* the rule the look-up serves: fail closed under its name */
	*rule = dirrules_first(pr);
	if (rc != JIT_OK) {
		const char *why = dres->message[0] ? dres->message : jit_err_message(rc);
		if (rc == JIT_EUNKUSER)
			why = "no single directory entry matches this user";
		snprintf(msg, msglen, "%s: cannot look \"%.64s\" up again: %.160s", *rule, name, why);
		return rc;
	}
	if (!same_entry(&u, uuid, dn)) {
		snprintf(msg, msglen, "%s: \"%.64s\" now names another directory entry "
			 "(%.200s) than the grant's", *rule, name, u.dn);
		rc = JIT_EPOLICY;
	} else if (u.disabled) {
		*rule = "account_disabled";
		snprintf(msg, msglen, "the account is disabled in the directory");
		rc = JIT_EPOLICY;
	} else {
		*rule = NULL;
		rc = dirrules_check(dc, pr, name, &u, dres, msg, msglen, rule);
	}
	dir_user_clear(&u);
	return rc;
}
