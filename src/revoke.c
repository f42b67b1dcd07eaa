/*
 * revoke.c - ending memberships by the user's identity, not by the value once
 * written (dir_revoke_member, dir_revoke_many in directory.h): the user found
 * by uuid after a rename or move (AD: "<GUID=...>"), the group's values judged
 * when nobody is found, several members of one group removed in one modify.
 * Trust boundary: the server's answers decide; where they leave a doubt the
 * removal is refused (and retried), never taken as done on a guess.
 */
#include <ctype.h>
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

/* ---- identities that move ---------------------------------------------- */

/* A GUID as uuid_text() writes it: 8-4-4-4-12 hex digits. */
static bool guid_text_ok(const char *u)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(u) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == '-' ? u[i] != '-' : !isxdigit((unsigned char)u[i]))
			return false;
	return true;
}

/* Values of these attributes are user names, not DNs: nothing can move. */
static bool attr_holds_dns(const char *attr)
{
	return strcasecmp(attr, "memberUid") != 0;
}

struct naming_arg {
	char *found;            /* the longest naming context holding user_base */
};

/* Reads namingContexts from the root DSE. */
static int op_naming(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct naming_arg *arg = varg;
	char *attrs[] = { "namingContexts", NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	struct berval **vals = NULL;
	int code, best = 0;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	e = code == LDAP_SUCCESS ? ldap_first_entry(c->ld, msg) : NULL;
	vals = e ? ldap_get_values_len(c->ld, e, "namingContexts") : NULL;
	for (size_t i = 0; vals && vals[i]; i++) {
		char *nc = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		LDAPDN d = NULL;
		int n = 0;
		if (dn_parse(nc, &d, &n) && n > best && dn_under(c->cfg->user_base, nc)) {
			best = n;
			free(arg->found);
			arg->found = xstrdup(nc);
		}
		ldap_dnfree(d);
		free(nc);
	}
	ldap_value_free_len(vals);
	ldap_msgfree(msg);
	return code;
}

/*
 * Where a user is looked for by uuid: the naming context that holds
 * user_base (the root DSE's namingContexts), not user_base itself. A user
 * moved out of user_base (to ou=former, say) is still the grantee, and
 * refint has rewritten jitd's value to the new DN; a move cannot leave the
 * naming context (servers refuse modrdn across databases), so that search
 * finds every DN the user can have. Without an answer naming one (root DSE
 * unreadable), user_base; dir_revoke_member() then does not take "not
 * found" for "deleted" on its own anyway. Known once per connection.
 */
static int uuid_base(struct dir_conn *c, const char **base, struct dir_result *res)
{
	struct naming_arg arg = { NULL };
	int rc, code = 0;

	if (c->uuid_base == NULL) {
		rc = dir_run(c, op_naming, &arg, res, &code);
		if (rc != JIT_OK)
			return rc;
		if (arg.found == NULL) {
			log_warn("directory %s: no naming context holding user_base in the root "
				 "DSE (%s): users are looked for by %s under user_base only",
				 c->cfg->name, code == LDAP_SUCCESS ? "none listed" : res->message,
				 c->cfg->uuid_attr);
			arg.found = xstrdup(c->cfg->user_base);
		}
		c->uuid_base = arg.found;
		res->ldap_code = 0;
		res->message[0] = '\0';
	}
	*base = c->uuid_base;
	return JIT_OK;
}

struct uuid_arg {
	const char *base, *filter;
	char *dn;               /* the one entry found, or NULL */
};

/* Subtree search of the uuid base for the entry with the recorded uuid. */
static int op_find_uuid(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct uuid_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->base, LDAP_SCOPE_SUBTREE, arg->filter, attrs, 0,
				 NULL, NULL, &tv, 2, &msg);
	dir_set_result(c, res, code, NULL);
	free(arg->dn);
	arg->dn = NULL;
	if (code == LDAP_NO_SUCH_OBJECT || code == LDAP_SIZELIMIT_EXCEEDED) {
		code = LDAP_SUCCESS; /* no base, or not one entry: not found */
	} else if (code == LDAP_SUCCESS && ldap_count_entries(c->ld, msg) == 1 &&
		   (e = ldap_first_entry(c->ld, msg)) != NULL) {
		char *dn = ldap_get_dn(c->ld, e);
		arg->dn = xstrdup(dn);
		ldap_memfree(dn);
	}
	ldap_msgfree(msg);
	return code;
}

/* The current DN of the entry whose uuid_attr is uuid: JIT_OK with *dn
 * (NULL when no single entry visible to jitd has it). */
static int find_by_uuid(struct dir_conn *c, const char *uuid, char **dn, struct dir_result *res)
{
	char *esc = escape_filter_value(uuid, strlen(uuid));
	struct uuid_arg arg = { NULL, NULL, NULL };
	int rc, code = 0;

	rc = uuid_base(c, &arg.base, res);
	if (rc != JIT_OK) {
		free(esc);
		return rc;
	}
	arg.filter = xasprintf("(%s=%s)", c->cfg->uuid_attr, esc);
	free(esc);
	rc = dir_run(c, op_find_uuid, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*dn = arg.dn;
	else
		free(arg.dn);
	free((char *)arg.filter);
	return rc;
}

struct exists_arg {
	const char *dn;
	bool exists;
};

static int op_exists(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct exists_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
				 NULL, NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	arg->exists = code == LDAP_SUCCESS && ldap_count_entries(c->ld, msg) > 0;
	if (code == LDAP_NO_SUCH_OBJECT)
		code = LDAP_SUCCESS;
	ldap_msgfree(msg);
	return code;
}

/* Does an entry with this DN exist? */
static int entry_exists(struct dir_conn *c, const char *dn, bool *exists, struct dir_result *res)
{
	if (res == NULL) {
		struct dir_result dummy;
		return entry_exists(c, dn, exists, &dummy);
	}
	struct exists_arg arg = { dn, false };
	int code = 0, rc = dir_run(c, op_exists, &arg, res, &code);

	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*exists = arg.exists;
	return rc;
}

/*
 * The user was renamed or moved (cur is the DN now, m->value the DN jitd
 * wrote). The user's current DN goes: refint rewrote jitd's value to it, or
 * someone added it; either way it is the grantee's membership. The value
 * jitd wrote goes too if it names no entry any more (jitd's own leftover),
 * or if the current DN was not in the group: nothing rewrote jitd's value
 * (no refint), so the value there is the one jitd wrote, even when another
 * entry has taken that DN since. Only when the current DN was there (refint
 * moved jitd's value to it) and another entry holds the old DN is a value
 * at the old DN theirs, and it stays.
 */
static int revoke_renamed(struct dir_conn *c, const struct dir_member *m, const char *cur,
			  bool *removed, const char **value, struct dir_result *res)
{
	bool gone = true, exists = true;
	int rc = dir_remove_value(c, m->group_dn, m->attr, cur, m->placeholder, false, &gone, res);

	if (rc != JIT_OK)
		return rc;
	if (!gone) {
		*removed = true;
		*value = cur;
	}
	/* res keeps the removal's answer (its server decides whether the
	 * caller checks again after replication_grace), not the look-up's */
	if (!gone) {
		struct dir_result er = { 0 };
		rc = entry_exists(c, m->value, &exists, &er);
		/* Robustness: when it cannot be told whose the old DN is now, the
		 * value there stays, as for an entry that took the DN: a retry
		 * would find the current DN gone (removed just now) and take the
		 * value for the one jitd wrote. The grantee's membership, at the
		 * current DN, is gone either way. */
		if (rc != JIT_OK) {
			log_warn("directory %s: cannot tell whether an entry now holds %s (the "
				 "grant's old DN): the value there is left", c->cfg->name, m->value);
			return JIT_OK;
		}
		if (exists)
			return JIT_OK;
	}
	rc = dir_remove_value(c, m->group_dn, m->attr, m->value, m->placeholder, false, &gone, res);
	if (rc == JIT_OK && !gone && !*removed) {
		*removed = true;
		*value = m->value;
	}
	return rc;
}

/* ---- a user no search finds ------------------------------------------- */

struct values {
	char **v;
	size_t n, cap;
};

static int collect_value(const char *value, void *varg)
{
	struct values *vs = varg;

	if (vs->n == vs->cap) {
		vs->cap = vs->cap ? 2 * vs->cap : 64;
		vs->v = xrealloc(vs->v, vs->cap * sizeof(*vs->v));
	}
	vs->v[vs->n++] = xstrdup(value);
	return 0;
}

struct read_uuid_arg {
	const char *dn;
	bool exists;            /* an entry jitd can see has this DN */
	char *uuid;             /* its uuid_attr as text, or NULL */
};

/* Base-scope read of one entry's uuid_attr (32 = no such entry, answered). */
static int op_read_uuid(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct read_uuid_arg *arg = varg;
	char *attrs[] = { (char *)c->cfg->uuid_attr, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
				 NULL, NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, NULL);
	free(arg->uuid);
	arg->uuid = NULL;
	e = code == LDAP_SUCCESS ? ldap_first_entry(c->ld, msg) : NULL;
	arg->exists = e != NULL;
	if (e != NULL)
		arg->uuid = dir_first_value(c->ld, e, c->cfg->uuid_attr, true);
	if (code == LDAP_NO_SUCH_OBJECT)
		code = LDAP_SUCCESS;
	ldap_msgfree(msg);
	return code;
}

char *dir_add_value(const struct dir_conn *c, const char *attr, const char *value,
		    const char *uuid)
{
	if (uuid && attr && attr_holds_dns(attr) && dir_uuid_is_guid(c->cfg) && guid_text_ok(uuid))
		return xasprintf("<GUID=%s>", uuid);
	return xstrdup(value);
}

int dir_entry_exists(struct dir_conn *c, const char *dn, bool *exists, struct dir_result *res)
{
	return entry_exists(c, dn, exists, res);
}

int dir_entry_uuid(struct dir_conn *c, const char *dn, char **uuid, struct dir_result *res)
{
	struct read_uuid_arg arg = { dn, false, NULL };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	*uuid = NULL;
	rc = dir_run(c, op_read_uuid, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS && code != LDAP_INVALID_DN_SYNTAX)
		rc = JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*uuid = arg.uuid;
	else
		free(arg.uuid);
	return rc;
}

/*
 * Could value v of the group be m's user, whom no search by uuid finds?
 * *is_user: its entry has the user's uuid; *unsure: jitd cannot tell (an
 * entry without a readable uuid_attr, an entry it may not read, or no
 * entry visible at a DN a move or rename of the user would produce: the
 * user may sit where jitd cannot see). A DN naming no visible entry
 * elsewhere (a placeholder, a member deleted long ago) is not the user.
 */
static int judge_value(struct dir_conn *c, const struct dir_member *m, const char *v,
		       bool *is_user, bool *unsure, struct dir_result *res)
{
	struct read_uuid_arg arg = { v, false, NULL };
	int code = 0, rc = dir_run(c, op_read_uuid, &arg, res, &code);

	*is_user = *unsure = false;
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_INVALID_DN_SYNTAX)
		; /* not a DN: no entry's name */
	else if (code != LDAP_SUCCESS)
		*unsure = true;
	else if (arg.exists && arg.uuid != NULL)
		*is_user = strcasecmp(arg.uuid, m->uuid) == 0;
	else if (arg.exists)
		*unsure = true;
	else
		*unsure = dn_related(v, m->value);
	free(arg.uuid);
	return JIT_OK;
}

/*
 * Neither the user (by uuid) nor the value jitd wrote is found: the user
 * was deleted (refint took the value with the entry) - or moved where jitd
 * cannot see, with refint rewriting the value to a DN jitd cannot find.
 * "Already absent" is believed only when no value of the group can be the
 * user. JIT_OK with *found (caller frees) = a value whose entry has the
 * user's uuid after all, or NULL; JIT_EDIRREFUSED (message in res) when a
 * value might be the user: the removal stays pending and is reported.
 */
static int account_group(struct dir_conn *c, const struct dir_member *m, char **found,
			 struct dir_result *res)
{
	struct values vs = { NULL, 0, 0 };
	struct dir_result lres = { 0 };
	char *wrote = dir_value_key(m->value);
	char *ph = m->placeholder ? dir_value_key(m->placeholder) : NULL;
	bool is_user = false, unsure = false;
	int rc = dir_list_members(c, m->group_dn, m->attr, collect_value, &vs, &lres);

	*found = NULL;
	/* Robustness: the removal has just answered for this DN, so the
	 * group is there; a read that finds no entry means jitd may not read
	 * it, not that it holds nothing (dir_list_members says the same of an
	 * attribute it may not read). */
	if (rc != JIT_OK) {
		*res = lres;
		if (lres.ldap_code == LDAP_NO_SUCH_OBJECT)
			dir_copy_printable(res->message, sizeof(res->message),
					   "the group cannot be read: its members cannot be "
					   "accounted for");
	}
	for (size_t i = 0; rc == JIT_OK && i < vs.n && !is_user && !unsure; i++) {
		char *key = dir_value_key(vs.v[i]);
		bool skip = strcmp(key, wrote) == 0 || (ph != NULL && strcmp(key, ph) == 0);
		free(key);
		if (skip)
			continue;
		rc = judge_value(c, m, vs.v[i], &is_user, &unsure, &lres);
		if (rc != JIT_OK)
			*res = lres;
		else if (is_user)
			*found = xstrdup(vs.v[i]);
		else if (unsure) {
			char msg[512];
			rc = JIT_EDIRREFUSED;
			/* Truncation is intended; server text is cleaned below. */
			(void)snprintf(msg, sizeof(msg),
				       "%s=%.40s found nowhere and %.60s not in the group, but "
				       "member %.80s may be the user where jitd cannot see: not "
				       "taken as removed",
				       c->cfg->uuid_attr, m->uuid, m->value, vs.v[i]);
			dir_copy_printable(res->message, sizeof(res->message), msg);
		}
	}
	for (size_t i = 0; i < vs.n; i++)
		free(vs.v[i]);
	free(vs.v);
	free(wrote);
	free(ph);
	return rc;
}

int dir_revoke_member(struct dir_conn *c, const struct dir_member *m, bool *removed,
		      char **value_out, struct dir_result *res)
{
	struct dir_result dummy;
	char *guid = NULL, *cur = NULL;
	const char *value = NULL;
	bool gone = true, done = false;
	bool ident = m->uuid != NULL && m->attr != NULL && attr_holds_dns(m->attr);
	int rc = JIT_OK;

	if (res == NULL)
		res = &dummy;
	if (m->attr == NULL || m->value == NULL) {
		dir_set_local_result(res, "bad group DN, attribute or value");
		return JIT_EBADREQ;
	}
	if (ident && dir_uuid_is_guid(c->cfg) && guid_text_ok(m->uuid)) {
		/* AD links members by GUID: this finds the user after any
		 * rename or move, and never someone who took the old name. */
		guid = xasprintf("<GUID=%s>", m->uuid);
		rc = dir_remove_value(c, m->group_dn, m->attr, guid, m->placeholder, true, &gone,
				      res);
		if (rc == JIT_OK && !gone) {
			done = true;
			value = guid;
		}
	} else {
		if (ident)
			rc = find_by_uuid(c, m->uuid, &cur, res);
		if (rc == JIT_OK && cur != NULL && strcasecmp(cur, m->value) != 0) {
			/* Renamed. Robustness: "already gone" by the old DN is
			 * never believed after a rename; the identity decides. */
			rc = revoke_renamed(c, m, cur, &done, &value, res);
		} else if (rc == JIT_OK) {
			/* Not renamed, deleted, or no identity: the value written. */
			rc = dir_remove_value(c, m->group_dn, m->attr, m->value, m->placeholder,
					      false, &gone, res);
			if (rc == JIT_OK && !gone) {
				done = true;
				value = m->value;
			} else if (rc == JIT_OK && ident && cur == NULL) {
				/* Robustness: "not found" and "not there" together
				 * are not yet "gone": the user may have moved out of
				 * sight. The group must agree. */
				rc = account_group(c, m, &cur, res);
				if (rc == JIT_OK && cur != NULL)
					rc = dir_remove_value(c, m->group_dn, m->attr, cur,
							      m->placeholder, false, &gone, res);
				if (rc == JIT_OK && cur != NULL && !gone) {
					done = true;
					value = cur;
				}
			}
		}
	}
	if (rc == JIT_OK) {
		*removed = done;
		if (value_out != NULL)
			*value_out = done ? xstrdup(value) : NULL;
	}
	free(guid);
	free(cur);
	return rc;
}

/* ---- several memberships of one group at once --------------------------- */

struct uuids_arg {
	const char *base, *filter;
	const struct dir_member *m;
	size_t n;
	char **cur;             /* per member: the one DN found, or NULL */
	int *hits;              /* per member: entries found with its uuid */
};

/* One subtree search of the uuid base for every uuid of the batch. */
static int op_find_uuids(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct uuids_arg *arg = varg;
	char *attrs[] = { (char *)c->cfg->uuid_attr, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->base, LDAP_SCOPE_SUBTREE, arg->filter, attrs, 0,
				 NULL, NULL, &tv, (int)(2 * arg->n + 1), &msg);
	dir_set_result(c, res, code, NULL);
	for (size_t i = 0; i < arg->n; i++) {
		free(arg->cur[i]);
		arg->cur[i] = NULL;
		arg->hits[i] = 0;
	}
	if (code == LDAP_NO_SUCH_OBJECT) {
		code = LDAP_SUCCESS; /* no base: nobody found */
	} else if (code == LDAP_SUCCESS) {
		for (LDAPMessage *e = ldap_first_entry(c->ld, msg); e != NULL;
		     e = ldap_next_entry(c->ld, e)) {
			char *u = dir_first_value(c->ld, e, c->cfg->uuid_attr, true);
			char *dn = u ? ldap_get_dn(c->ld, e) : NULL;
			for (size_t i = 0; dn != NULL && i < arg->n; i++) {
				if (arg->m[i].uuid == NULL || strcasecmp(arg->m[i].uuid, u) != 0)
					continue;
				if (arg->hits[i]++ == 0)
					arg->cur[i] = xstrdup(dn);
			}
			ldap_memfree(dn);
			free(u);
		}
	}
	/* LDAP_SIZELIMIT_EXCEEDED and other answers are returned as they
	 * are: the caller then settles nothing here. */
	ldap_msgfree(msg);
	return code;
}

/* The current DN of each member's user (cur[i] NULL: none or several). */
static int find_by_uuids(struct dir_conn *c, const struct dir_member *m, size_t n, char **cur,
			 int *hits, struct dir_result *res)
{
	struct strbuf sb = { 0 };
	struct uuids_arg arg = { NULL, NULL, m, n, cur, hits };
	int rc, code = 0;

	rc = uuid_base(c, &arg.base, res);
	if (rc != JIT_OK)
		return rc;
	sb_addstr(&sb, "(|");
	for (size_t i = 0; i < n; i++) {
		if (m[i].uuid == NULL)
			continue;
		char *esc = escape_filter_value(m[i].uuid, strlen(m[i].uuid));
		sb_addf(&sb, "(%s=%s)", c->cfg->uuid_attr, esc);
		free(esc);
	}
	sb_addstr(&sb, ")");
	arg.filter = sb_steal(&sb);
	rc = dir_run(c, op_find_uuids, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = dir_code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	free((char *)arg.filter);
	return rc;
}

struct many_arg {
	const char *group_dn, *attr;
	const char **values;
	size_t n;
};

/* One modify of the group deleting every value. */
static int op_remove_many(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct many_arg *arg = varg;
	struct berval *bv = xcalloc(arg->n, sizeof(*bv));
	struct berval **bvals = xcalloc(arg->n + 1, sizeof(*bvals));
	LDAPMod mod = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES,
			.mod_type = (char *)arg->attr,
			.mod_bvalues = bvals };
	LDAPMod *modp[2] = { &mod, NULL };
	int code;

	for (size_t i = 0; i < arg->n; i++) {
		bv[i].bv_val = (char *)arg->values[i];
		bv[i].bv_len = strlen(arg->values[i]);
		bvals[i] = &bv[i];
	}
	dir_clear_diag(c);
	code = ldap_modify_ext_s(c->ld, arg->group_dn, modp, NULL, NULL);
	dir_set_result(c, res, code, NULL);
	free(bvals);
	free(bv);
	return code;
}

/* The value that names m's user in the group now, when it can be told
 * without asking about this user alone; NULL when it cannot. */
static const char *many_value(const struct dir_conn *c, const struct dir_member *m,
			      const char *cur, int hits, char **guid)
{
	bool ident = m->uuid != NULL && attr_holds_dns(m->attr);

	if (!ident)
		return m->value;
	if (dir_uuid_is_guid(c->cfg))
		return guid_text_ok(m->uuid) ? (*guid = xasprintf("<GUID=%s>", m->uuid)) : NULL;
	if (hits == 0)
		return NULL;     /* deleted, or out of sight: dir_revoke_member checks */
	if (hits == 1 && strcasecmp(cur, m->value) == 0)
		return m->value; /* not renamed */
	return NULL;             /* renamed, or several entries: one at a time */
}

int dir_revoke_many(struct dir_conn *c, const struct dir_member *m, size_t n, bool *done,
		    char **value_out, struct dir_result *res)
{
	struct dir_result dummy;
	char **cur = xcalloc(n, sizeof(*cur));
	char **guid = xcalloc(n, sizeof(*guid));
	int *hits = xcalloc(n, sizeof(*hits));
	const char **values = xcalloc(n, sizeof(*values));
	size_t *which = xcalloc(n, sizeof(*which));
	size_t nv = 0, nuuid = 0;
	int rc = JIT_OK, code = 0;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		done[i] = false;
		value_out[i] = NULL;
		if (m[i].uuid != NULL && m[i].attr != NULL && attr_holds_dns(m[i].attr) &&
		    !dir_uuid_is_guid(c->cfg))
			nuuid++;
	}
	if (n == 0 || m[0].group_dn == NULL || m[0].attr == NULL || !dir_attr_ok(m[0].attr))
		goto out;
	if (nuuid > 0 && (rc = find_by_uuids(c, m, n, cur, hits, res)) != JIT_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const char *v;
		bool dup = false;
		if (m[i].value == NULL || m[i].group_dn == NULL || m[i].attr == NULL ||
		    strcasecmp(m[i].group_dn, m[0].group_dn) != 0 ||
		    strcasecmp(m[i].attr, m[0].attr) != 0)
			continue;
		v = many_value(c, &m[i], cur[i], hits[i], &guid[i]);
		for (size_t k = 0; v != NULL && k < nv; k++)
			dup = dup || strcasecmp(values[k], v) == 0;
		if (v == NULL || dup)
			continue; /* a second grant of the same value: it goes alone */
		values[nv] = v;
		which[nv++] = i;
	}
	if (nv > 0) {
		struct many_arg arg = { m[0].group_dn, m[0].attr, values, nv };
		rc = dir_run(c, op_remove_many, &arg, res, &code);
		if (rc == JIT_OK && dir_code_is_internal(code))
			rc = JIT_EINTERNAL;
		/* Any refusal (one value absent, the last value, a read-only
		 * server) settles nothing: each member then goes alone. */
		if (rc == JIT_OK && code == LDAP_SUCCESS) {
			for (size_t k = 0; k < nv; k++) {
				done[which[k]] = true;
				value_out[which[k]] = xstrdup(values[k]);
			}
		}
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(cur[i]);
		free(guid[i]);
	}
	free(cur);
	free(guid);
	free(hits);
	free(values);
	free(which);
	return rc;
}
