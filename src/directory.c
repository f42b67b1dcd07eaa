/*
 * directory.c - the operations of directory.h on one connection (run through
 * dir_run(), ldapconn.c): resolve a user, check / add / remove a member, list
 * a group's members (AD range retrieval).
 * Trust boundary: all the server sends is untrusted; user names reach filters
 * only through escape.c, attribute names only once dir_attr_ok() accepts them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <ldap.h>

#include "directory_int.h"
#include "escape.h"
#include "log.h"
#include "util.h"

void dir_user_clear(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->dn);
	free(u->uid);
	free(u->uuid);
	for (char **v = u->uid_others; v && *v; v++)
		free(*v);
	free(u->uid_others);
	u->dn = u->uid = u->uuid = NULL;
	u->uid_others = NULL;
	u->uid_others_cut = false;
}

/* The values of attr after the first (text without NUL), at most 64,
 * NULL-terminated; NULL when there are none. *cut: some were left out
 * (more than 64, or not text), so that a rule that must see them all can
 * refuse rather than pass an alias it did not see. */
static char **other_values(LDAP *ld, LDAPMessage *e, const char *attr, bool *cut)
{
	struct berval **vals = attr ? ldap_get_values_len(ld, e, attr) : NULL;
	char **out = NULL;
	size_t n = 0;

	*cut = false;
	for (size_t i = 1; vals && vals[0] && vals[i]; i++) {
		if (vals[i]->bv_len == 0)
			continue; /* an empty value is none */
		if (n >= 64 || memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL) {
			*cut = true;
			continue;
		}
		out = xrealloc(out, (n + 2) * sizeof(*out));
		out[n++] = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		out[n] = NULL;
	}
	if (vals)
		ldap_value_free_len(vals);
	return out;
}

/* ---- values ------------------------------------------------------------ */

static bool is_printable(const struct berval *bv)
{
	for (ber_len_t i = 0; i < bv->bv_len; i++) {
		unsigned char ch = (unsigned char)bv->bv_val[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/* A uuid value as text: printable values as they are, 16 binary bytes (AD
 * objectGUID, little-endian first three fields) as the GUID string, any
 * other binary value as hex. */
static char *uuid_text(const struct berval *bv, const char *attr)
{
	const unsigned char *b = (const unsigned char *)bv->bv_val;
	bool guid_attr = strcasecmp(attr, "objectGUID") == 0;

	if (bv->bv_len == 16 && (guid_attr || !is_printable(bv)))
		return xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				 "%02x%02x%02x%02x%02x%02x",
				 b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9],
				 b[10], b[11], b[12], b[13], b[14], b[15]);
	if (is_printable(bv))
		return xstrndup(bv->bv_val, bv->bv_len);
	struct strbuf sb = { 0 };
	for (ber_len_t i = 0; i < bv->bv_len; i++)
		sb_addf(&sb, "%02x", b[i]);
	return sb_steal(&sb);
}

/* The first value of attr in entry e, rendered by how (NULL if absent). */
char *dir_first_value(LDAP *ld, LDAPMessage *e, const char *attr, bool uuid)
{
	struct berval **vals;
	char *v = NULL;

	if (attr == NULL)
		return NULL;
	vals = ldap_get_values_len(ld, e, attr);
	if (vals == NULL)
		return NULL;
	if (vals[0] != NULL && vals[0]->bv_len > 0) { /* an empty value is none */
		if (uuid)
			v = uuid_text(vals[0], attr);
		else if (memchr(vals[0]->bv_val, '\0', vals[0]->bv_len) == NULL)
			v = xstrndup(vals[0]->bv_val, vals[0]->bv_len);
	}
	ldap_value_free_len(vals);
	return v;
}

/* An attribute description we are willing to paste into a filter. */
bool dir_attr_ok(const char *a)
{
	if (a == NULL || a[0] == '\0')
		return false;
	for (; *a; a++) {
		char ch = *a;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == ';'))
			return false;
	}
	return true;
}

/* ---- operations ------------------------------------------------------ */

/* Active Directory's account flags; ACCOUNTDISABLE is bit 0x2. Other
 * directories do not have the attribute: asking for it costs nothing. */
#define UAC_ATTR "userAccountControl"
#define UAC_ACCOUNTDISABLE 0x2

/* Is the account in entry e disabled (userAccountControl & 0x2)? */
static bool account_disabled(LDAP *ld, LDAPMessage *e)
{
	char *v = dir_first_value(ld, e, UAC_ATTR, false);
	int64_t flags = 0;
	bool off = false;

	/* An Integer (32 bits, sometimes written as a negative number). */
	if (v != NULL && parse_int64(v, INT32_MIN, UINT32_MAX, &flags) == JIT_OK)
		off = ((uint32_t)flags & UAC_ACCOUNTDISABLE) != 0;
	else if (v != NULL)
		off = true; /* Robustness: unreadable flags are not "enabled". */
	free(v);
	return off;
}

struct resolve_arg {
	const char *filter;
	struct dir_user user;   /* filled when exactly one entry matched */
	int matched;            /* 0, 1 or 2 (= two or more) */
};

static int op_resolve(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct resolve_arg *arg = varg;
	const struct jit_dir_cfg *cfg = c->cfg;
	char *attrs[4] = { (char *)UAC_ATTR, NULL, NULL, NULL };
	int na = 1;
	struct timeval tv = dir_cfg_timeout(cfg);
	LDAPMessage *msg = NULL, *e;
	char *dn;
	int code, n;

	if (cfg->uid_attr != NULL)
		attrs[na++] = cfg->uid_attr;
	if (cfg->uuid_attr != NULL)
		attrs[na++] = cfg->uuid_attr;
	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, cfg->user_base, LDAP_SCOPE_SUBTREE, arg->filter,
				 attrs, 0, NULL, NULL, &tv, 2, &msg);
	dir_set_result(c, res, code, NULL);
	if (code == LDAP_SIZELIMIT_EXCEEDED) {
		arg->matched = 2;
		code = LDAP_SUCCESS;
		goto out;
	}
	if (code != LDAP_SUCCESS)
		goto out;
	n = ldap_count_entries(c->ld, msg);
	if (n < 0) {
		code = LDAP_DECODING_ERROR;
		dir_set_result(c, res, code, "search result");
		goto out;
	}
	if (n != 1) {
		arg->matched = n == 0 ? 0 : 2;
		goto out;
	}
	e = ldap_first_entry(c->ld, msg);
	dn = e ? ldap_get_dn(c->ld, e) : NULL;
	if (dn == NULL) {
		code = LDAP_DECODING_ERROR;
		dir_set_result(c, res, code, "entry");
		goto out;
	}
	dir_user_clear(&arg->user);
	arg->user.dn = xstrdup(dn);
	ldap_memfree(dn);
	arg->user.uid = dir_first_value(c->ld, e, cfg->uid_attr, false);
	arg->user.uid_others = other_values(c->ld, e, cfg->uid_attr, &arg->user.uid_others_cut);
	arg->user.uuid = dir_first_value(c->ld, e, cfg->uuid_attr, true);
	arg->user.disabled = account_disabled(c->ld, e);
	arg->matched = 1;
out:
	ldap_msgfree(msg);
	return code;
}

int dir_resolve_user(struct dir_conn *c, const char *name, struct dir_user *out,
		     struct dir_result *res)
{
	struct resolve_arg arg = { 0 };
	struct dir_result dummy;
	char *filter = NULL;
	int rc, code = 0;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	if (name == NULL || name[0] == '\0') {
		dir_set_local_result(res, "empty user name");
		res->ldap_code = 0;
		return JIT_EUNKUSER;
	}
	rc = filter_expand(c->cfg->user_filter ? c->cfg->user_filter : "(uid=%s)", name,
			   &filter);
	if (rc != JIT_OK) {
		dir_set_local_result(res, "user_filter is not a valid template");
		goto out;
	}
	arg.filter = filter;
	rc = dir_run(c, op_resolve, &arg, res, &code);
	if (rc != JIT_OK)
		goto out;
	if (code != LDAP_SUCCESS) {
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
		goto out;
	}
	if (arg.matched != 1) {
		(void)snprintf(res->message, sizeof(res->message), "%s",
			       arg.matched == 0 ? "no entry matches the user filter"
						: "more than one entry matches the user filter");
		rc = JIT_EUNKUSER;
		goto out;
	}
	*out = arg.user;
	memset(&arg.user, 0, sizeof(arg.user));
out:
	dir_user_clear(&arg.user);
	free(filter);
	return rc;
}

bool dir_user_filter_is_uid(const struct dir_conn *c)
{
	const char *f = c->cfg->user_filter;
	return (f == NULL || strcmp(f, "(uid=%s)") == 0) && c->cfg->uid_attr != NULL &&
	       strcasecmp(c->cfg->uid_attr, "uid") == 0;
}

int dir_uid_names_only(struct dir_conn *c, const char *value, const char *dn, bool *alone,
		       struct dir_result *res)
{
	struct resolve_arg arg = { 0 };
	char *tmpl = xasprintf("(%s=%%s)", c->cfg->uid_attr);
	char *filter = NULL;
	int rc, code = 0;

	*alone = false;
	rc = filter_expand(tmpl, value, &filter);
	free(tmpl);
	if (rc != JIT_OK) {
		dir_set_local_result(res, "uid_attr is not a valid attribute for a filter");
		return JIT_EINTERNAL;
	}
	arg.filter = filter;
	rc = dir_run(c, op_resolve, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*alone = arg.matched == 1 && strcasecmp(arg.user.dn, dn) == 0;
	dir_user_clear(&arg.user);
	free(filter);
	return rc;
}

struct member_arg {
	const char *group_dn, *attr, *value, *placeholder;
	bool is_member;         /* op_is_member */
	bool gone;              /* op_remove: the value was not there */
	bool unanswered;        /* op_add: the last attempt went unanswered */
	bool after_unanswered;  /* op_add: this attempt follows an unanswered one */
	bool by_guid;           /* op_remove: value is "<GUID=...>" (AD extended DN) */
	char sent_to[256];      /* op_add: the URI of the first unanswered attempt */
	char sent_also[256];    /* op_add: another server's unanswered attempt, the last */
};

/* Base-scope search of the group for (attr=value). */
static int search_member(struct dir_conn *c, struct member_arg *arg, struct dir_result *res)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	char *esc = escape_filter_value(arg->value, strlen(arg->value));
	char *filter = xasprintf("(%s=%s)", arg->attr, esc);
	LDAPMessage *msg = NULL;
	int code, n;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->group_dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	if (code == LDAP_SUCCESS) {
		n = ldap_count_entries(c->ld, msg);
		if (n < 0) {
			code = LDAP_DECODING_ERROR;
			dir_set_result(c, res, code, "search result");
		} else {
			arg->is_member = n > 0;
		}
	}
	ldap_msgfree(msg);
	free(filter);
	free(esc);
	return code;
}

static int op_is_member(struct dir_conn *c, void *varg, struct dir_result *res)
{
	return search_member(c, varg, res);
}

/* One modify of group_dn: each of the n (op, value) pairs on attr. */
static int modify_values(struct dir_conn *c, const char *group_dn, const char *attr,
			 const int *ops, const char *const *values, int n, struct dir_result *res)
{
	struct berval bv[2], *bvals[2][2];
	LDAPMod mods[2], *modp[3];
	int code;

	for (int i = 0; i < n && i < 2; i++) {
		bv[i].bv_val = (char *)values[i];
		bv[i].bv_len = strlen(values[i]);
		bvals[i][0] = &bv[i];
		bvals[i][1] = NULL;
		mods[i].mod_op = ops[i] | LDAP_MOD_BVALUES;
		mods[i].mod_type = (char *)attr;
		mods[i].mod_bvalues = bvals[i];
		modp[i] = &mods[i];
		modp[i + 1] = NULL;
	}
	dir_clear_diag(c);
	/* ldap_modify_ext_s in two steps, to tell an answer from none: when
	 * the server ends the session (a Notice of Disconnection) before the
	 * modify's answer, libldap gives the notice's code as the modify's. */
	int msgid = -1, got;
	LDAPMessage *msg = NULL;
	code = ldap_modify_ext(c->ld, group_dn, modp, NULL, NULL, &msgid);
	if (code == LDAP_SUCCESS) {
		got = ldap_result(c->ld, msgid, LDAP_MSG_ALL, NULL, &msg);
		if (got > 0 && msg != NULL) {
			int prc = ldap_parse_result(c->ld, msg, &code, NULL, NULL, NULL, NULL, 1);
			if (prc != LDAP_SUCCESS)
				code = prc; /* a malformed answer: a decoding error */
		} else {
			ldap_msgfree(msg);
			if (got == 0)
				code = LDAP_TIMEOUT;
			else if (ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &code) != LDAP_OPT_SUCCESS)
				code = LDAP_SERVER_DOWN;
			if (code >= 0) {
				/* Robustness: no answer came, whatever the code
				 * says: the modify may have been applied. Taken for
				 * a refusal, an applied add would be nobody's (and,
				 * once retried, "already there" would make it
				 * standing). */
				log_info("directory %s: no answer to the modify of %s (code %d: the "
					 "server ended the session)", c->cfg->name, group_dn, code);
				code = LDAP_SERVER_DOWN;
			}
		}
	}
	dir_set_result(c, res, code, NULL);
	return code;
}

static int op_add(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct member_arg *arg = varg;
	int op = LDAP_MOD_ADD;

	/* A retry after an answer (busy, unavailable, a session the server no
	 * longer accepted) is not one after an unanswered add: that attempt
	 * changed nothing. But once any attempt went unanswered, every later
	 * one follows it: "already there" after busy after a timeout may be
	 * the timed-out add's own value. */
	arg->after_unanswered = arg->after_unanswered || arg->unanswered;
	int code = modify_values(c, arg->group_dn, arg->attr, &op, &arg->value, 1, res);
	/* Unanswered: no answer came (a timeout, a connection lost with the
	 * request sent). busy and unavailable are answers (nothing written),
	 * and a connection never made sent nothing: counted so, a later
	 * "already there" would pass a membership that predates jitd off as
	 * jitd's own, which its end then removes. */
	arg->unanswered = code < 0 && code != LDAP_CONNECT_ERROR && dir_code_is_unavailable(code);
	if (arg->unanswered && arg->sent_to[0] == '\0')
		(void)snprintf(arg->sent_to, sizeof(arg->sent_to), "%s", c->uris[c->cur]);
	else if (arg->unanswered && strcasecmp(arg->sent_to, c->uris[c->cur]) != 0)
		(void)snprintf(arg->sent_also, sizeof(arg->sent_also), "%s", c->uris[c->cur]);
	return code;
}

/* The first value of attr of the entry at base (a DN, or AD's <GUID=...>),
 * as a number: *out, or -1 when the entry or the value is not there
 * (*found: whether the entry is). */
static int read_number(struct dir_conn *c, const char *base, const char *attr, long long *out,
		       bool *found, struct dir_result *res)
{
	char *attrs[] = { (char *)attr, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	int code;

	*out = -1;
	*found = false;
	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, base, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	if (code == LDAP_NO_SUCH_OBJECT)
		code = LDAP_SUCCESS;
	else if (code == LDAP_SUCCESS && (e = ldap_first_entry(c->ld, msg)) != NULL) {
		*found = true;
		char *v = dir_first_value(c->ld, e, attr, false), *end = NULL;
		if (v != NULL) {
			errno = 0;
			long long n = strtoll(v, &end, 10);
			if (errno == 0 && end != v && *end == '\0' && n >= 0)
				*out = n;
		}
		free(v);
	}
	ldap_msgfree(msg);
	return code;
}

/*
 * AD: whether the user (arg->value, <GUID=...>) holds the group as its
 * primary group (primaryGroupID = the group's primaryGroupToken): that
 * membership is never a value of `member`, so a removal answers 53 and a
 * search finds nothing while the user is still a member. Used on AD only.
 */
static int primary_group_holds(struct dir_conn *c, const struct member_arg *arg, bool *holds,
			       struct dir_result *res)
{
	long long token = -1, id = -1;
	bool found = false;
	int code = read_number(c, arg->group_dn, "primaryGroupToken", &token, &found, res);

	*holds = false;
	/* Robustness: called on AD only (by_guid), where every group has
	 * primaryGroupToken; a group found without it is one whose token
	 * jitd may not read (an ACL): not confirmed, the removal's answer
	 * stands (it was taken for "never a primary group") */
	if (code == LDAP_SUCCESS && found && token < 0) {
		dir_set_local_result(res, "cannot read the group's primaryGroupToken");
		code = LDAP_INSUFFICIENT_ACCESS;
	}
	if (code == LDAP_SUCCESS && token >= 0) {
		code = read_number(c, arg->value, "primaryGroupID", &id, &found, res);
		/* the user is there but its primaryGroupID cannot be read (an
		 * ACL): not confirmed, the removal's answer stands */
		if (code == LDAP_SUCCESS && found && id < 0) {
			dir_set_local_result(res, "cannot read the user's primaryGroupID");
			code = LDAP_INSUFFICIENT_ACCESS;
		}
	}
	if (code == LDAP_SUCCESS)
		*holds = token >= 0 && id == token;
	return code;
}

/*
 * Delete answered 53: AD's "not a member", but also what a read-only
 * replica says. Robustness: believe "already gone" only if a search agrees,
 * so a privilege is never reported removed while it is still there; on AD,
 * and only if the group is not the user's primary group either.
 */
static int confirm_gone(struct dir_conn *c, struct member_arg *arg, struct dir_result *res)
{
	struct dir_result orig = *res;
	int code = search_member(c, arg, res);
	bool primary = false;

	if (dir_code_is_unavailable(code))
		return code;
	if (code == LDAP_SUCCESS && !arg->is_member && arg->by_guid) {
		code = primary_group_holds(c, arg, &primary, res);
		if (dir_code_is_unavailable(code))
			return code;
		if (code != LDAP_SUCCESS) {
			char why[sizeof(res->message)];
			(void)snprintf(why, sizeof(why), "%s", res->message);
			*res = orig; /* not confirmed: the 53 stands */
			(void)snprintf(res->message, sizeof(res->message),
				       "not confirmed gone: %.200s", why);
			return orig.ldap_code;
		}
	}
	*res = orig;
	if (primary) {
		(void)snprintf(res->message, sizeof(res->message),
			       "the group is the user's primary group (primaryGroupID): AD keeps "
			       "the membership until the user's primary group is changed back");
		return orig.ldap_code;
	}
	/* A group gone since the modify found it takes its members with it;
	 * but when the modify itself answered 32, the group may only have
	 * moved (renamed, another OU: AD keeps its links), and that is no
	 * answer about the member: a refusal, retried. */
	if ((code == LDAP_SUCCESS && !arg->is_member) ||
	    (code == LDAP_NO_SUCH_OBJECT && orig.ldap_code != LDAP_NO_SUCH_OBJECT))
		arg->gone = true;
	return orig.ldap_code;
}

/* The last value cannot go (65): add the placeholder in the same modify. */
static int remove_with_placeholder(struct dir_conn *c, struct member_arg *arg,
				   struct dir_result *res)
{
	struct dir_result orig = *res;
	const int ops[2] = { LDAP_MOD_ADD, LDAP_MOD_DELETE };
	const char *values[2] = { arg->placeholder, arg->value };
	int code = modify_values(c, arg->group_dn, arg->attr, ops, values, 2, res);

	if (code == LDAP_TYPE_OR_VALUE_EXISTS) {
		/* The placeholder is already there, so the value was not the
		 * last one: the 65 had another cause. Report it as it was. */
		*res = orig;
		return orig.ldap_code;
	}
	if (code == LDAP_NO_SUCH_ATTRIBUTE && arg->by_guid)
		return confirm_gone(c, arg, res); /* as in op_remove */
	if (code == LDAP_NO_SUCH_ATTRIBUTE)
		arg->gone = true;
	return code;
}

static int op_remove(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct member_arg *arg = varg;
	int op = LDAP_MOD_DELETE;
	int code = modify_values(c, arg->group_dn, arg->attr, &op, &arg->value, 1, res);

	arg->gone = false;
	if (code == LDAP_NO_SUCH_ATTRIBUTE && !arg->by_guid)
		arg->gone = true;
	else if ((code == LDAP_UNWILLING_TO_PERFORM &&
		  (dir_uuid_is_guid(c->cfg) || strstr(res->message, "00000561") != NULL)) ||
		 (arg->by_guid && (code == LDAP_INVALID_SYNTAX || code == LDAP_NO_SUCH_ATTRIBUTE ||
				   code == LDAP_NO_SUCH_OBJECT)))
		/* AD: 53 "not a member"; 21 when the GUID names no object
		 * any more (the user was deleted: Samba), or 32 (the object
		 * the value names is not found: a DC may answer so). A 16 for
		 * a GUID (a group left without any member value) is checked
		 * the same way: the group may still be the user's primary
		 * group. None of them is believed without that check.
		 * Robustness: only on a directory configured as AD, or with
		 * AD's own code for it (00000561, ERROR_MEMBER_NOT_IN_GROUP).
		 * Elsewhere (OpenLDAP) 53 is a server that cannot write (a
		 * read-only replica, `readonly on`), whose own view of the
		 * group proves nothing: a refusal, retried, never "already
		 * gone". */
		code = confirm_gone(c, arg, res);
	else if (code == LDAP_OBJECT_CLASS_VIOLATION && arg->placeholder != NULL &&
		 strcasecmp(arg->placeholder, arg->value) != 0)
		code = remove_with_placeholder(c, arg, res);
	return code;
}

/* Shared front of the member operations: argument checks, run, map. */
static int member_run(struct dir_conn *c, dir_op_fn op, struct member_arg *arg,
		      struct dir_result *res, int *code)
{
	int rc;

	res->ldap_code = 0;
	res->message[0] = '\0';
	if (arg->group_dn == NULL || arg->value == NULL || !dir_attr_ok(arg->attr)) {
		dir_set_local_result(res, "bad group DN, attribute or value");
		return JIT_EBADREQ;
	}
	rc = dir_run(c, op, arg, res, code);
	if (rc != JIT_OK)
		return rc;
	if (dir_code_is_internal(*code))
		return JIT_EINTERNAL;
	return JIT_OK;
}

int dir_is_member(struct dir_conn *c, const char *group_dn, const char *attr,
		  const char *value, bool *is_member, struct dir_result *res)
{
	struct member_arg arg = { .group_dn = group_dn, .attr = attr, .value = value };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	rc = member_run(c, op_is_member, &arg, res, &code);
	if (rc != JIT_OK)
		return rc;
	if (code != LDAP_SUCCESS)
		return JIT_EDIRREFUSED;
	*is_member = arg.is_member;
	return JIT_OK;
}

int dir_add_member(struct dir_conn *c, const char *group_dn, const char *attr,
		   const char *value, bool *already, struct dir_result *res)
{
	struct member_arg arg = { .group_dn = group_dn, .attr = attr, .value = value };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	res->unanswered_uri[0] = '\0';
	res->unanswered_also_uri[0] = '\0';
	rc = member_run(c, op_add, &arg, res, &code);
	(void)snprintf(res->unanswered_uri, sizeof(res->unanswered_uri), "%s", arg.sent_to);
	(void)snprintf(res->unanswered_also_uri, sizeof(res->unanswered_also_uri), "%s",
		       arg.sent_also);
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_SUCCESS) {
		*already = false;
	} else if (code != LDAP_TYPE_OR_VALUE_EXISTS && code != LDAP_ALREADY_EXISTS) {
		if (!arg.after_unanswered)
			return JIT_EDIRREFUSED;
		/* Robustness: the first add went unanswered and may have been
		 * applied (by that server, or before a failover to a read-only
		 * replica that now refuses the retry). "Refused" would mean
		 * nothing was written and close the grant; the outcome is
		 * unknown, so the membership goes through the removal. */
		log_warn("directory %s: add to %s refused (%s) after an unanswered attempt on %s; "
			 "outcome unknown", c->cfg->name, group_dn, res->message, arg.sent_to);
		return JIT_EDIRUNAVAIL;
	} else if (!arg.after_unanswered) {
		*already = true;
	} else {
		/* Robustness: the first add went unanswered and the server may
		 * have applied it before the retry found the value. "Already
		 * there" would pass our own change off as a membership that
		 * predates jitd, one jitd then never removes: report it as
		 * added by this call. */
		*already = false;
		log_info("directory %s: add to %s: value present after an unanswered "
			 "attempt; counted as added by this call", c->cfg->name, group_dn);
	}
	return JIT_OK;
}

/* dir_remove_member; by_guid: value is an AD extended DN "<GUID=...>". */
int dir_remove_value(struct dir_conn *c, const char *group_dn, const char *attr,
		     const char *value, const char *placeholder, bool by_guid,
		     bool *already_gone, struct dir_result *res)
{
	struct member_arg arg = { .group_dn = group_dn, .attr = attr, .value = value,
				  .placeholder = placeholder, .by_guid = by_guid };
	int code = 0, rc;

	rc = member_run(c, op_remove, &arg, res, &code);
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_SUCCESS || arg.gone) {
		*already_gone = arg.gone;
		return JIT_OK;
	}
	return JIT_EDIRREFUSED;
}

int dir_remove_member(struct dir_conn *c, const char *group_dn, const char *attr,
		      const char *value, const char *placeholder, bool *already_gone,
		      struct dir_result *res)
{
	struct dir_result dummy;

	if (res == NULL)
		res = &dummy;
	return dir_remove_value(c, group_dn, attr, value, placeholder, false, already_gone, res);
}

/* ---- member lists ----------------------------------------------------- */

struct list_arg {
	const char *group_dn, *attr;
	dir_value_cb cb;
	void *cb_arg;
	dir_value_cb odd_cb;    /* values holding a NUL, escaped; NULL: skipped */
	char *want;             /* attribute description asked for this round */
	long next_low;          /* -1: done */
	int cb_rc;
	long step;              /* values per request; 0: what the server gives */
	bool stuck;             /* a range that did not move forward */
	size_t seen;            /* values the server returned, in all rounds */
};

/* A value holding a NUL byte as text: NUL as \00 and '\' as \5c. */
static char *escape_nul_value(const struct berval *bv)
{
	struct strbuf sb = { 0 };
	for (ber_len_t i = 0; i < bv->bv_len; i++) {
		char ch = bv->bv_val[i];
		if (ch == '\0')
			sb_addstr(&sb, "\\00");
		else if (ch == '\\')
			sb_addstr(&sb, "\\5c");
		else
			sb_add(&sb, &ch, 1);
	}
	return sb_steal(&sb);
}

/* Calls the callback for each value of vals; a value holding a NUL byte,
 * which no DN can, but a memberUid can (IA5String), and which the name
 * service reads up to the NUL: the odd callback, escaped, or skipped. */
static void list_values(struct list_arg *arg, struct berval **vals)
{
	for (size_t i = 0; vals && vals[i] && arg->cb_rc == 0; i++) {
		arg->seen++;
		if (memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL) {
			if (arg->odd_cb) {
				char *e = escape_nul_value(vals[i]);
				arg->cb_rc = arg->odd_cb(e, arg->cb_arg);
				free(e);
			}
			continue;
		}
		char *v = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		arg->cb_rc = arg->cb(v, arg->cb_arg);
		free(v);
	}
}

/* One base-scope read of the group: the whole attribute, or one range. */
static int op_list_range(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct list_arg *arg = varg;
	char *attrs[] = { arg->want, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	BerElement *ber = NULL;
	char *desc;
	long lo, hi, next = -1;
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->group_dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs,
				 0, NULL, NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	if (code != LDAP_SUCCESS)
		goto out;
	e = ldap_first_entry(c->ld, msg);
	if (e == NULL) { /* the ACL hides the group: 32, which no caller takes for empty */
		code = LDAP_NO_SUCH_OBJECT;
		dir_set_result(c, res, code, "list members");
		goto out;
	}
	for (desc = ldap_first_attribute(c->ld, e, &ber); desc != NULL;
	     desc = ldap_next_attribute(c->ld, e, ber)) {
		size_t an = strlen(arg->attr);
		bool whole = strcasecmp(desc, arg->attr) == 0;
		bool ranged = !whole && dir_parse_range(desc, arg->attr, &lo, &hi);
		/* Robustness: a range that does not start where this round
		 * asked, or one that cannot be read, would leave values out
		 * unseen: the list is not whole. */
		if ((ranged && lo != arg->next_low) ||
		    (!whole && !ranged && strncasecmp(desc, arg->attr, an) == 0 &&
		     strncasecmp(desc + an, ";range=", 7) == 0))
			arg->stuck = true;
		if (whole || ranged) {
			struct berval **vals = ldap_get_values_len(c->ld, e, desc);
			list_values(arg, vals);
			ldap_value_free_len(vals);
			if (ranged && hi >= 0)
				next = hi + 1;
		}
		ldap_memfree(desc);
	}
	ber_free(ber, 0);
	/* Robustness: a server whose ranges do not move forward would loop us;
	 * what it gave so far is not the whole list, so it is an error. */
	arg->stuck = arg->stuck || (next >= 0 && next <= arg->next_low);
	arg->next_low = next > arg->next_low ? next : -1;
out:
	ldap_msgfree(msg);
	return code;
}

struct primary_arg {
	const char *group_dn;
	char *base;             /* the domain of group_dn, or user_base */
	dir_value_cb cb;
	void *cb_arg;
};

/* The DC= suffix of dn (caller frees), or NULL if it has none. */
static char *domain_of(const char *dn)
{
	LDAPDN parsed = NULL;
	char *out = NULL;
	int n = 0;

	if (!dn_parse(dn, &parsed, &n))
		return NULL;
	for (int i = 0; i < n; i++) {
		LDAPAVA *ava = parsed[i][0];
		if (ava && parsed[i][1] == NULL && ava->la_attr.bv_len == 2 &&
		    strncasecmp(ava->la_attr.bv_val, "dc", 2) == 0) {
			char *s = NULL;
			if (ldap_dn2str(&parsed[i], &s, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && s) {
				out = xstrdup(s);
				ldap_memfree(s);
			}
			break;
		}
	}
	ldap_dnfree(parsed);
	return out;
}

static int op_list_primary(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct primary_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	long long token = -1;
	bool found = false;
	char filter[64];
	int code = read_number(c, arg->group_dn, "primaryGroupToken", &token, &found, res);

	if (code != LDAP_SUCCESS || token < 0)
		return code;
	(void)snprintf(filter, sizeof(filter), "(primaryGroupID=%lld)", token);
	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->base ? arg->base : c->cfg->user_base,
				 LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 0, &msg);
	dir_set_result(c, res, code, NULL);
	for (e = code == LDAP_SUCCESS ? ldap_first_entry(c->ld, msg) : NULL; e != NULL;
	     e = ldap_next_entry(c->ld, e)) {
		char *dn = ldap_get_dn(c->ld, e);
		if (dn == NULL) {
			code = LDAP_DECODING_ERROR;
			dir_set_result(c, res, code, "primary group members");
			break;
		}
		int stop = arg->cb(dn, arg->cb_arg);
		ldap_memfree(dn);
		if (stop)
			break;
	}
	ldap_msgfree(msg);
	return code;
}

int dir_list_primary_members(struct dir_conn *c, const char *group_dn, dir_value_cb cb,
			     void *cb_arg, struct dir_result *res)
{
	struct primary_arg arg = { group_dn, domain_of(group_dn), cb, cb_arg };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	rc = dir_run(c, op_list_primary, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	free(arg.base);
	return rc;
}

/* Is the attribute of the group entry really empty? A read that returned no
 * value also looks like this when jitd may write the attribute but not read
 * it (an OpenLDAP "=w" access). The filter (!(attr=*)) matches the entry
 * only when the server may evaluate it: when the attribute is readable and
 * empty. */
static int op_attr_empty(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct list_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	char *filter = xasprintf("(!(%s=*))", arg->attr);
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->group_dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	if (code == LDAP_SUCCESS && ldap_first_entry(c->ld, msg) == NULL) {
		code = LDAP_INSUFFICIENT_ACCESS;
		dir_set_result(c, res, code, NULL);
		(void)snprintf(res->message, sizeof(res->message),
			       "no value of %s was returned, and the server does not say the "
			       "group has none: jitd may not read it (it needs read and search "
			       "access to it)",
			       arg->attr);
	}
	ldap_msgfree(msg);
	free(filter);
	return code;
}

static int list_members(struct dir_conn *c, const char *group_dn, const char *attr, long step,
			dir_value_cb cb, dir_value_cb odd_cb, void *cb_arg, struct dir_result *res);

int dir_list_members(struct dir_conn *c, const char *group_dn, const char *attr,
		     dir_value_cb cb, void *cb_arg, struct dir_result *res)
{
	return list_members(c, group_dn, attr, 0, cb, NULL, cb_arg, res);
}

int dir_list_members_odd(struct dir_conn *c, const char *group_dn, const char *attr,
			 dir_value_cb cb, dir_value_cb odd_cb, void *cb_arg, struct dir_result *res)
{
	return list_members(c, group_dn, attr, 0, cb, odd_cb, cb_arg, res);
}

int dir_list_members_step(struct dir_conn *c, const char *group_dn, const char *attr, long step,
			  dir_value_cb cb, void *cb_arg, struct dir_result *res)
{
	return list_members(c, group_dn, attr, step, cb, NULL, cb_arg, res);
}

static int list_members(struct dir_conn *c, const char *group_dn, const char *attr, long step,
			dir_value_cb cb, dir_value_cb odd_cb, void *cb_arg, struct dir_result *res)
{
	struct list_arg arg = { group_dn, attr, cb, cb_arg, odd_cb, NULL, 0, 0,
				step > 0 ? step : 0, false, 0 };
	struct dir_result dummy;
	int rc = JIT_OK, code = 0;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	if (group_dn == NULL || !dir_attr_ok(attr)) {
		dir_set_local_result(res, "bad group DN or attribute");
		return JIT_EBADREQ;
	}
	char first_uri[sizeof(res->uri)] = "";
	arg.want = arg.step ? xasprintf("%s;range=0-%ld", attr, arg.step - 1) : xstrdup(attr);
	while (rc == JIT_OK && arg.cb_rc == 0) {
		rc = dir_run(c, op_list_range, &arg, res, &code);
		if (rc != JIT_OK)
			break;
		if (code != LDAP_SUCCESS) {
			rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
			break;
		}
		/* Robustness: range positions are one server's order of the
		 * values; a round answered by another (a reconnect, a failover)
		 * may skip some, and the list would look whole. */
		if (first_uri[0] == '\0') {
			(void)snprintf(first_uri, sizeof(first_uri), "%s", res->uri);
		} else if (strcasecmp(first_uri, res->uri) != 0) {
			dir_set_local_result(res, "the member ranges came from two servers: the list "
					     "is not whole");
			rc = JIT_EDIRREFUSED;
			break;
		}
		if (arg.stuck) {
			dir_set_local_result(res, "the server's member ranges did not move forward "
					     "or skipped values: the list is not whole");
			rc = JIT_EDIRREFUSED;
			break;
		}
		if (arg.next_low < 0)
			break;
		free(arg.want);
		if (arg.step)
			arg.want = xasprintf("%s;range=%ld-%ld", attr, arg.next_low,
					     arg.next_low + arg.step - 1);
		else
			arg.want = xasprintf("%s;range=%ld-*", attr, arg.next_low);
	}
	/* Robustness: "no value" from a group jitd may not read would account
	 * for every member it cannot see. */
	if (rc == JIT_OK && arg.seen == 0) {
		rc = dir_run(c, op_attr_empty, &arg, res, &code);
		if (rc == JIT_OK && code != LDAP_SUCCESS)
			rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	}
	free(arg.want);
	return rc;
}
