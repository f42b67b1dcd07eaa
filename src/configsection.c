/*
 * configsection.c - the sections of jitd.conf, each with its key table and
 * the checks a table cannot express: directories (URIs, SASL, Kerberos),
 * groups (durations, policy rules, ticket_check, standing members), clients
 * (uid and gid, or names resolved through the name service; ops) and
 * notify receivers. Security: a notify or ticket_check URL may hold a
 * token, and errors reach syslog on a refused reload: they show it redacted.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "configpriv.h"
#include "directory.h"
#include "dnkey.h"
#include "duration.h"
#include "escape.h"
#include "util.h"

/* ---- key tables ---- */

static const char *const mech_choices[] = {
	"EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5", "GSSAPI", "PLAIN", NULL,
};
static const char *const tls_choices[] = { "never", "allow", "try", "demand", NULL };
static const char *const reconcile_choices[] = { "off", "report", "enforce", NULL };
static const char *const notify_format_choices[] = { "json", "slack", "teams", NULL };
const char *const config_notify_events[] = {
	"granted", "expired", "completed", "revoked", "refused", "revoke_failed", "drift",
	"expiring_soon", "torn_line", NULL,
};

/* A reload applies member_attr and placeholder_member to new grants: each
 * live grant carries the group DN, attribute and placeholder it was granted
 * with (store.h), and ends with them. */
const struct key dir_keys[] = {
	STR(name, struct jit_dir_cfg, KF_REQUIRED | KF_NAME, NULL),
	R_STR(uri, struct jit_dir_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	R_ENUM(sasl_mech, struct jit_dir_cfg, "EXTERNAL", mech_choices),
	R_STR(sasl_authcid, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_STR(sasl_realm, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_STR(sasl_authzid, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_STR(sasl_secret_file, struct jit_dir_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	R_STR(sasl_secprops, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_BOOLK(sasl_nocanon, struct jit_dir_cfg),
	R_STR(keytab, struct jit_dir_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	R_STR(principal, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_STR(tls_ca_file, struct jit_dir_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	R_ENUM(tls_require_cert, struct jit_dir_cfg, "demand", tls_choices),
	R_BOOLK(starttls, struct jit_dir_cfg),
	R_STR(user_base, struct jit_dir_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	R_STR(user_filter, struct jit_dir_cfg, KF_NONEMPTY, "(uid=%s)"),
	R_STR(uid_attr, struct jit_dir_cfg, KF_NONEMPTY | KF_ATTR, "uid"),
	R_STR(uuid_attr, struct jit_dir_cfg, KF_NONEMPTY | KF_ATTR, "entryUUID"),
	STR(member_attr, struct jit_dir_cfg, KF_NONEMPTY | KF_ATTR, "member"),
	STR(placeholder_member, struct jit_dir_cfg, KF_EMPTYNULL, NULL),
	R_NUM(timeout, K_DUR, struct jit_dir_cfg, 10, 1, 300),
	R_NUM(connections, K_INT, struct jit_dir_cfg, 4, 1, 32),
	R_NUM(replication_grace, K_DUR, struct jit_dir_cfg, 30, 1, 86400),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

const struct key group_keys[] = {
	STR(name, struct jit_group_cfg, KF_REQUIRED | KF_NAME, NULL),
	STR(directory, struct jit_group_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	STR(dn, struct jit_group_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	STR(member_attr, struct jit_group_cfg, KF_EMPTYNULL | KF_ATTR, NULL),
	/* "" stays "": no placeholder for this group, whatever the directory says. */
	STR(placeholder_member, struct jit_group_cfg, 0, NULL),
	NUM(max_duration, K_DUR, struct jit_group_cfg, 4 * 3600, 1, DURATION_MAX),
	NUM(default_duration, K_DUR, struct jit_group_cfg, 3600, 1, DURATION_MAX),
	/* Policy rules (docs/policy.md); a default of 0 is "off" and lies
	 * outside the bounds on purpose: a value written must be positive. */
	NUM(min_duration, K_DUR, struct jit_group_cfg, 0, 1, DURATION_MAX),
	BOOLK(require_ticket, struct jit_group_cfg),
	STR(ticket_pattern, struct jit_group_cfg, KF_EMPTYNULL, NULL),
	BOOLK(require_reason, struct jit_group_cfg),
	BOOLK(require_approver, struct jit_group_cfg),
	BOOLK(forbid_self_approval, struct jit_group_cfg),
	STR(eligible_group, struct jit_group_cfg, KF_EMPTYNULL, NULL),
	{ "deny_users", K_LIST, offsetof(struct jit_group_cfg, deny_users), 0, NULL, 0, 0, 0, NULL },
	NUM(max_active_per_user, K_INT, struct jit_group_cfg, 0, 1, 100000),
	SECTION(ticket_check),
	STR(approval_key_file, struct jit_group_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	NUM(approval_max_age, K_DUR, struct jit_group_cfg, 300, 1, 86400),
	ENUM(reconcile, struct jit_group_cfg, "report", reconcile_choices),
	/* A list kept as char ** in the group: parsed by check_group(). */
	{ "standing_members", K_SECTION, 0, 0, NULL, 0, 0, 0, NULL },
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

const struct key ticket_keys[] = {
	STR(url, struct jit_ticket_check_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	STR(approved_field, struct jit_ticket_check_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	STR(approved_value, struct jit_ticket_check_cfg, KF_REQUIRED | KF_NONEMPTY, NULL),
	NUM(timeout, K_DUR, struct jit_ticket_check_cfg, 5, 1, 300),
	STR(ca_file, struct jit_ticket_check_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	STR(token_file, struct jit_ticket_check_cfg, KF_EMPTYNULL | KF_ABSPATH, NULL),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

/* A notify entry as written; its event list is checked after. */
struct notify_raw {
	char *url, *format, *secret_file;
	int64_t timeout;
	int max_attempts;
	struct strlist events;
};

static const struct key notify_keys[] = {
	STR(url, struct notify_raw, KF_REQUIRED | KF_NONEMPTY, NULL),
	{ "events", K_LIST, offsetof(struct notify_raw, events), 0, NULL, 0, 0, 0, NULL },
	ENUM(format, struct notify_raw, "json", notify_format_choices),
	STR(secret_file, struct notify_raw, KF_EMPTYNULL | KF_ABSPATH, NULL),
	NUM(timeout, K_DUR, struct notify_raw, 10, 1, 300),
	NUM(max_attempts, K_INT, struct notify_raw, 10, 1, 100),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

/* A clients entry as written; resolved into struct jit_client_cfg after. */
struct client_raw {
	char *name;
	int64_t uid, gid; /* -1: not given */
	char *unix_user, *unix_group;
	struct strlist groups, ops;
	int64_t max_duration;
	int max_requests_per_minute;
};

static const struct key client_keys[] = {
	STR(name, struct client_raw, KF_NAME, NULL),
	/* (uid_t)-1 is "no uid" to the kernel, so the bound stops below it. */
	NUM(uid, K_INT64, struct client_raw, -1, 0, (int64_t)UINT32_MAX - 1),
	NUM(gid, K_INT64, struct client_raw, -1, 0, (int64_t)UINT32_MAX - 1),
	STR(unix_user, struct client_raw, KF_NONEMPTY, NULL),
	STR(unix_group, struct client_raw, KF_NONEMPTY, NULL),
	{ "groups", K_LIST, offsetof(struct client_raw, groups), 0, NULL, 0, 0, 0, NULL },
	{ "ops", K_LIST, offsetof(struct client_raw, ops), 0, NULL, 0, 0, 0, NULL },
	NUM(max_duration, K_DUR, struct client_raw, 0, 1, DURATION_MAX),
	NUM(max_requests_per_minute, K_INT, struct client_raw, 0, 1, 1000000),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

/* ---- sections ---- */

/* The entries of section key of root; NULL (and maybe an error) if none. */
static config_setting_t *section(struct ctx *cx, const config_setting_t *root, const char *key,
				 int *count)
{
	config_setting_t *s = config_setting_get_member(root, key);
	int type;

	*count = 0;
	if (!s)
		return NULL;
	type = config_setting_type(s);
	if (type != CONFIG_TYPE_LIST &&
	    !(type == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
		cerr(cx, line_of(s), key, "expected a list of groups: %s = ( { ... }, { ... } );",
		     key);
		return NULL;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			cerr(cx, line_of(e), key, "entry %d is not a group { ... }", i + 1);
			return NULL;
		}
	}
	*count = config_setting_length(s);
	return s;
}

static bool uri_ok(const char *uri)
{
	static const char *const schemes[] = { "ldap://", "ldaps://", "ldapi://", NULL };
	const char *p = uri;
	size_t n_uris = 0;

	while (*p) {
		size_t len = strcspn(p, " ");
		const char *const *sc = schemes;
		if (len > 0) {
			while (*sc && strncasecmp(p, *sc, strlen(*sc)) != 0)
				sc++;
			if (!*sc)
				return false;
			n_uris++;
		}
		p += len;
		p += strspn(p, " ");
	}
	return n_uris > 0;
}

/* True if every URI of the list is ldaps:// or ldapi:// (or starttls is on):
 * nothing jitd sends can be read on the wire. */
bool config_dir_tls(const struct jit_dir_cfg *d)
{
	const char *p = d->uri;

	if (d->starttls)
		return true;
	while (p && *p) {
		size_t len = strcspn(p, " ");
		if (len > 0 && strncasecmp(p, "ldaps://", 8) != 0 && strncasecmp(p, "ldapi://", 8) != 0)
			return false;
		p += len;
		p += strspn(p, " ");
	}
	return true;
}

/* principal belongs to GSSAPI with a keytab; PLAIN sends the password as it is. */
static void check_dir_kerberos(struct ctx *cx, const config_setting_t *e, const struct jit_dir_cfg *d)
{
	bool gssapi = d->sasl_mech && strcmp(d->sasl_mech, "GSSAPI") == 0;

	if (!gssapi && d->principal)
		cerr(cx, key_line(e, "principal"), "principal", "only used with sasl_mech GSSAPI");
	if (gssapi && d->principal && !d->keytab)
		cerr(cx, key_line(e, "principal"), "principal",
		     "needs keytab (jitd gets the principal's tickets from it)");
	if (d->sasl_mech && strcmp(d->sasl_mech, "PLAIN") == 0 && d->uri && !config_dir_tls(d))
		cerr(cx, key_line(e, "sasl_mech"), "sasl_mech",
		     "PLAIN would send the password unprotected: use ldaps:// or ldapi:// URIs, "
		     "or starttls = true");
}


/* Key `key` of directory entry e must be given, and not as "" (which
 * means unset), for sasl_mech mech: a bind with an empty name or password
 * can never succeed, and a mechanism applies only at a restart. */
static void need_value(struct ctx *cx, const config_setting_t *e, const char *key,
		       const char *mech)
{
	const config_setting_t *m = config_setting_get_member(e, key);
	const char *v = m && config_setting_type(m) == CONFIG_TYPE_STRING
				? config_setting_get_string(m)
				: NULL;

	if (!m)
		cerr(cx, key_line(e, "sasl_mech"), key, "required with sasl_mech %s", mech);
	else if (v && v[0] == '\0')
		cerr(cx, config_setting_source_line(m), key, "empty, but required with sasl_mech %s",
		     mech);
}
static void check_dir(struct ctx *cx, const config_setting_t *e, struct jit_dir_cfg *d)
{
	bool needs_secret = d->sasl_mech && strcmp(d->sasl_mech, "EXTERNAL") != 0 &&
			    strcmp(d->sasl_mech, "GSSAPI") != 0;

	if (d->uri && !uri_ok(d->uri))
		cerr(cx, key_line(e, "uri"), "uri",
		     "\"%s\" is not a list of ldap://, ldaps:// "
		     "or ldapi:// URIs separated by spaces",
		     d->uri);
	if (d->user_filter && filter_template_check(d->user_filter) != JIT_OK)
		cerr(cx, key_line(e, "user_filter"), "user_filter",
		     "\"%s\" must hold exactly one %%s (and %%%% for a literal %%)",
		     d->user_filter);
	/* A key present but invalid was reported already: no second error. */
	if (needs_secret) {
		need_value(cx, e, "sasl_authcid", d->sasl_mech);
		need_value(cx, e, "sasl_secret_file", d->sasl_mech);
	}
	check_dir_kerberos(cx, e, d);
	file_ref(cx, e, "sasl_secret_file", d->sasl_secret_file, true);
	file_ref(cx, e, "keytab", d->keytab, true);
	file_ref(cx, e, "tls_ca_file", d->tls_ca_file, false);
}

void parse_directories(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	int n;
	config_setting_t *s = section(cx, root, "directories", &n);

	/* Absent or empty (a malformed section was reported by section()). */
	if (n == 0 && (s || !config_setting_get_member(root, "directories")))
		cerr(cx, s ? line_of(s) : 0, "directories", "at least one directory is required");
	cfg->dirs = xcalloc((size_t)n + 1, sizeof(*cfg->dirs));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct jit_dir_cfg *d = &cfg->dirs[cfg->n_dirs++];

		d->line = line_of(e);
		parse_scope(cx, e, dir_keys, d, "a directories entry");
		check_dir(cx, e, d);
		/* Robustness: ignoring case, as the store's pair keys fold it:
		 * "corp" and "Corp" would share grants' keys but not their
		 * locks or servers. */
		for (size_t j = 0; d->name && j + 1 < cfg->n_dirs; j++)
			if (cfg->dirs[j].name && strcasecmp(cfg->dirs[j].name, d->name) == 0)
				cerr(cx, key_line(e, "name"), "name",
				     "directory \"%s\" is already defined at line %d", d->name,
				     cfg->dirs[j].line);
	}
}

/* The number of %s in a ticket_check URL, or -1 if a % in it is neither
 * %s nor %%. */
int ticket_url_conversions(const char *url)
{
	const char *p = url;
	int n_s = 0;

	for (; (p = strchr(p, '%')) != NULL; p += 2) {
		if (p[1] == 's')
			n_s++;
		else if (p[1] != '%')
			return -1;
	}
	return n_s;
}

/* A ticket_check URL: http(s), one %s, no user:password (use token_file). */
static void check_ticket_url(struct ctx *cx, const config_setting_t *t, const char *url)
{
	char shown[512];

	url_redact(url, shown, sizeof(shown)); /* errors reach syslog on a reload */
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		cerr(cx, key_line(t, "url"), "url", "\"%s\" is not an http:// or https:// URL",
		     shown);
	size_t n;
	if (url_has_userinfo(url) && url_host(url, &n))
		cerr(cx, key_line(t, "url"), "url",
		     "must not hold a user name or password (put a token in token_file)");
	else if (url_has_userinfo(url)) /* url_host() cannot tell: refused, not guessed at */
		cerr(cx, key_line(t, "url"), "url",
		     "may hold a user name or password: an '@' follows the first '/', '?' or '#', "
		     "and what precedes that is not surely a host (a name with a dot, localhost or "
		     "an [IPv6] address, with or without a port): name the host in full (and put "
		     "a token in token_file)");
	if (ticket_url_conversions(url) != 1)
		cerr(cx, key_line(t, "url"), "url",
		     "must hold exactly one %%s (the ticket) and %%%% for a literal %%");
}

static void parse_ticket_check(struct ctx *cx, const config_setting_t *e, struct jit_group_cfg *g)
{
	config_setting_t *t = config_setting_get_member(e, "ticket_check");
	struct jit_ticket_check_cfg *tc;

	if (!t)
		return;
	if (config_setting_type(t) != CONFIG_TYPE_GROUP) {
		cerr(cx, line_of(t), "ticket_check",
		     "expected a group: ticket_check = { url = \"...\"; ... };");
		return;
	}
	tc = xcalloc(1, sizeof(*tc));
	tc->line = line_of(t);
	parse_scope(cx, t, ticket_keys, tc, "ticket_check");
	if (tc->url)
		check_ticket_url(cx, t, tc->url);
	/* Robustness: the answer approves grants; over plain http anyone on
	 * the path could forge it (and read the token). */
	if (tc->url && strncmp(tc->url, "http://", 7) == 0 && !url_host_is_loopback(tc->url))
		cerr(cx, key_line(t, "url"), "url",
		     "an answer over http:// could be forged on the way (and a token read): use "
		     "https:// (http:// is accepted only to localhost, 127.0.0.1 or [::1])");
	file_ref(cx, t, "token_file", tc->token_file, true);
	file_ref(cx, t, "ca_file", tc->ca_file, false);
	g->ticket_check = tc;
}

/* The policy keys of a groups entry that need more than their table. */
static void check_group_policy(struct ctx *cx, const config_setting_t *e, struct jit_group_cfg *g)
{
	if (g->ticket_pattern) {
		char why[160];
		int rc;

		g->ticket_re = xmalloc(sizeof(*g->ticket_re));
		rc = regcomp(g->ticket_re, g->ticket_pattern, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			regerror(rc, g->ticket_re, why, sizeof(why));
			cerr(cx, key_line(e, "ticket_pattern"), "ticket_pattern",
			     "\"%s\" is not a POSIX extended regular expression: %s",
			     g->ticket_pattern, why);
			free(g->ticket_re);
			g->ticket_re = NULL;
		}
	}
	if (g->eligible_group && !strchr(g->eligible_group, '='))
		cerr(cx, key_line(e, "eligible_group"), "eligible_group",
		     "\"%s\" is not a DN", g->eligible_group);
	parse_ticket_check(cx, e, g);
	file_ref(cx, e, "approval_key_file", g->approval_key_file, true);
}

/* standing_members: a list of strings, moved into the group. */
static void check_standing(struct ctx *cx, const config_setting_t *e, struct jit_group_cfg *g)
{
	config_setting_t *s = config_setting_get_member(e, "standing_members");
	struct strlist l = { 0 };

	if (s && get_list(cx, s, "standing_members", &l) == JIT_OK) {
		g->standing_members = l.v;
		g->n_standing_members = l.n;
		free(l.lines);
	} else {
		strlist_free(&l);
	}
	if (!g->standing_members)
		g->standing_members = xcalloc(1, sizeof(char *));
}

static void check_group(struct ctx *cx, const config_setting_t *e, struct jit_config *cfg,
			struct jit_group_cfg *g)
{
	char dflt[32], max[32];

	g->dir_index = -1;
	for (size_t j = 0; g->directory && j < cfg->n_dirs; j++)
		if (cfg->dirs[j].name && strcmp(cfg->dirs[j].name, g->directory) == 0)
			g->dir_index = (int)j;
	if (g->directory && *g->directory && g->dir_index < 0)
		cerr(cx, key_line(e, "directory"), "directory", "no directory named \"%s\"",
		     g->directory);
	if (g->default_duration > g->max_duration) {
		duration_format(g->default_duration, dflt, sizeof(dflt));
		duration_format(g->max_duration, max, sizeof(max));
		cerr(cx,
		     key_line(e, config_setting_get_member(e, "default_duration") ?
					 "default_duration" :
					 "max_duration"),
		     "default_duration", "%s is longer than max_duration %s", dflt, max);
	}
	if (g->min_duration > g->default_duration) {
		duration_format(g->min_duration, dflt, sizeof(dflt));
		duration_format(g->default_duration, max, sizeof(max));
		cerr(cx, key_line(e, "min_duration"), "min_duration",
		     "%s is longer than default_duration %s", dflt, max);
	}
	check_group_policy(cx, e, g);
	check_standing(cx, e, g);
}

/*
 * Two entries naming one group must spell its DN so that jitd's pair key
 * (case-blind in ASCII, libldap's canonical form) sees one group: spelled
 * otherwise (case outside ASCII, the values of a multi-valued RDN in
 * another order), the directory takes them for one group and jitd for
 * two, and a grant made through one entry would not be seen by the other
 * (its drift check could remove that grant's membership, and an end could
 * remove what the other entry's grant still holds).
 */
static void check_same_group_spelling(struct ctx *cx, const config_setting_t *e,
				      const struct jit_config *cfg, const struct jit_group_cfg *g)
{
	if (!g->dn || !g->directory)
		return;
	char *k = dn_key(g->dn), *pk = dir_pair_dn_key(g->dn);
	for (size_t j = 0; k && j + 1 < cfg->n_groups; j++) {
		const struct jit_group_cfg *o = &cfg->groups[j];
		if (!o->dn || !o->directory || strcmp(o->directory, g->directory) != 0)
			continue;
		char *ok = dn_key(o->dn), *opk = dir_pair_dn_key(o->dn);
		if (ok && strcmp(ok, k) == 0 && strcmp(opk, pk) != 0)
			cerr(cx, key_line(e, "dn"), "dn",
			     "\"%s\" names the group of line %d, spelled \"%s\" there: spell it the "
			     "same in both entries", g->dn, o->line, o->dn);
		free(ok);
		free(opk);
	}
	free(k);
	free(pk);
}

void parse_groups(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	int n;
	config_setting_t *s = section(cx, root, "groups", &n);

	if (n == 0 && (s || !config_setting_get_member(root, "groups")))
		cerr(cx, s ? line_of(s) : 0, "groups", "at least one group is required");
	cfg->groups = xcalloc((size_t)n + 1, sizeof(*cfg->groups));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct jit_group_cfg *g = &cfg->groups[cfg->n_groups++];

		g->line = line_of(e);
		parse_scope(cx, e, group_keys, g, "a groups entry");
		check_group(cx, e, cfg, g);
		for (size_t j = 0; g->name && j + 1 < cfg->n_groups; j++)
			if (cfg->groups[j].name && strcmp(cfg->groups[j].name, g->name) == 0)
				cerr(cx, key_line(e, "name"), "name",
				     "group \"%s\" is already defined at line %d", g->name,
				     cfg->groups[j].line);
		check_same_group_spelling(cx, e, cfg, g);
	}
}

/*
 * getpwnam_r / getgrnam_r with a growing buffer. JIT_OK and *id (a user's
 * primary group in *gid too, when gid is not NULL), or JIT_ENOTFOUND, or
 * JIT_EIO (the name service failed: *err says why).
 */
int config_lookup_id(const char *name, bool group, int64_t *id, int64_t *gid, int *err)
{
	struct nss_entry ent;
	bool found;
	int e = nss_lookup(group ? NSS_GROUP_BY_NAME : NSS_USER_BY_NAME, name, 0, &ent, &found);
	int rc;

	if (e == 0 && found) {
		*id = ent.id;
		if (!group && gid)
			*gid = ent.gid;
		rc = JIT_OK;
	} else if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
		rc = JIT_ENOTFOUND; /* the "not found" codes getpwnam_r(3) lists */
	} else {
		rc = JIT_EIO;
	}
	free(ent.name);
	*err = e;
	return rc;
}

/* Resolves unix_user (or unix_group) of a clients entry into *id. */
void resolve_id(struct ctx *cx, const config_setting_t *e, const char *key, const char *name,
		bool group, int64_t *id)
{
	int err, rc = config_lookup_id(name, group, id, NULL, &err);

	if (rc == JIT_ENOTFOUND)
		cerr(cx, key_line(e, key), key, "no such %s \"%s\"", group ? "group" : "user",
		     name);
	else if (rc != JIT_OK)
		cerr(cx, key_line(e, key), key, "cannot look up \"%s\": %s", name, strerror(err));
}

static void check_client_lists(struct ctx *cx, struct jit_config *cfg, struct client_raw *r,
			       struct jit_client_cfg *c)
{
	c->ops = r->ops.set ? 0 : OPS_DEFAULT_MASK;
	for (size_t i = 0; i < r->ops.n; i++) {
		enum jit_op op;
		if (strcmp(r->ops.v[i], OPS_FORCE_NAME) == 0)
			c->ops |= OPS_FORCE_BIT;
		else if (jit_op_parse(r->ops.v[i], &op) != JIT_OK)
			cerr(cx, r->ops.lines[i], "ops", "unknown operation \"%s\"", r->ops.v[i]);
		else
			c->ops |= 1u << op;
	}
	for (size_t i = 0; i < r->groups.n; i++)
		if (strcmp(r->groups.v[i], "*") != 0 && !config_group(cfg, r->groups.v[i]))
			cerr(cx, r->groups.lines[i], "groups", "no group named \"%s\"",
			     r->groups.v[i]);
	/* The list moves into the client: no copy. */
	c->groups = r->groups.v ? r->groups.v : xcalloc(1, sizeof(char *));
	c->n_groups = r->groups.n;
	free(r->groups.lines);
	memset(&r->groups, 0, sizeof(r->groups));
}

static void check_client(struct ctx *cx, const config_setting_t *e, struct jit_config *cfg,
			 struct client_raw *r, struct jit_client_cfg *c)
{
	if (r->uid >= 0 && r->unix_user)
		cerr(cx, key_line(e, "unix_user"), "unix_user", "give uid or unix_user, not both");
	if (r->gid >= 0 && r->unix_group)
		cerr(cx, key_line(e, "unix_group"), "unix_group",
		     "give gid or unix_group, not both");
	if (r->unix_user)
		resolve_id(cx, e, "unix_user", r->unix_user, false, &r->uid);
	if (r->unix_group)
		resolve_id(cx, e, "unix_group", r->unix_group, true, &r->gid);
	if (!config_setting_get_member(e, "uid") && !config_setting_get_member(e, "gid") &&
	    !config_setting_get_member(e, "unix_user") &&
	    !config_setting_get_member(e, "unix_group"))
		cerr(cx, line_of(e), "uid",
		     "required (or gid, unix_user, unix_group) "
		     "in a clients entry");
	c->has_uid = r->uid >= 0;
	c->has_gid = r->gid >= 0;
	c->uid = c->has_uid ? (uid_t)r->uid : (uid_t)-1;
	c->gid = c->has_gid ? (gid_t)r->gid : (gid_t)-1;
	c->gid_by_name = c->has_gid && r->unix_group != NULL;
	c->max_duration = r->max_duration;
	c->max_requests_per_minute = r->max_requests_per_minute;
	check_client_lists(cx, cfg, r, c);
}

void parse_clients(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	int n;
	config_setting_t *s = section(cx, root, "clients", &n);

	cfg->clients = xcalloc((size_t)n + 1, sizeof(*cfg->clients));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct jit_client_cfg *c = &cfg->clients[cfg->n_clients++];
		struct client_raw r;

		memset(&r, 0, sizeof(r));
		c->line = line_of(e);
		parse_scope(cx, e, client_keys, &r, "a clients entry");
		check_client(cx, e, cfg, &r, c);
		c->name = r.name ? r.name : xasprintf("client#%d", i + 1);
		r.name = NULL;
		for (size_t j = 0; j + 1 < cfg->n_clients; j++)
			if (strcmp(cfg->clients[j].name, c->name) == 0)
				cerr(cx, key_line(e, "name"), "name",
				     "client \"%s\" is already defined at line %d", c->name,
				     cfg->clients[j].line);
		free_strings(&r, client_keys);
	}
}

/* Checks a notify entry and moves it into n. */
static void check_notify(struct ctx *cx, const config_setting_t *e, struct notify_raw *r,
			 struct jit_notify_cfg *n)
{
	const char *u = r->url;
	char shown[512];

	/* A webhook URL often holds a token (Slack's, Teams'), and these errors
	 * reach syslog on a refused reload: show it redacted. */
	url_redact(u, shown, sizeof(shown));
	if (u && strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0)
		cerr(cx, key_line(e, "url"), "url", "\"%s\" is not an http:// or https:// URL",
		     shown);
	else if (u && strlen(u) <= (size_t)(u[4] == ':' ? 7 : 8))
		cerr(cx, key_line(e, "url"), "url", "\"%s\" has no host", shown);
	else if (u && strchr(u, ' '))
		cerr(cx, key_line(e, "url"), "url", "\"%s\" contains a space", shown);
	for (size_t i = 0; i < r->events.n; i++) {
		size_t k = 0;
		while (config_notify_events[k] && strcmp(config_notify_events[k], r->events.v[i]))
			k++;
		if (!config_notify_events[k])
			cerr(cx, r->events.lines[i], "events", "unknown event \"%s\"", r->events.v[i]);
	}
	if (!r->events.set) {
		size_t k = 0;
		while (config_notify_events[k])
			k++;
		r->events.v = xcalloc(k + 1, sizeof(char *));
		for (r->events.n = 0; r->events.n < k; r->events.n++)
			r->events.v[r->events.n] = xstrdup(config_notify_events[r->events.n]);
	}
	file_ref(cx, e, "secret_file", r->secret_file, true);
	n->url = r->url;
	n->format = r->format;
	n->secret_file = r->secret_file;
	n->timeout = r->timeout;
	n->max_attempts = r->max_attempts;
	n->events = r->events.v ? r->events.v : xcalloc(1, sizeof(char *));
	n->n_events = r->events.n;
	free(r->events.lines);
	memset(r, 0, sizeof(*r));
}

void parse_notify(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	int n;
	config_setting_t *s = section(cx, root, "notify", &n);

	cfg->notify = xcalloc((size_t)n + 1, sizeof(*cfg->notify));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct jit_notify_cfg *nc = &cfg->notify[cfg->n_notify++];
		struct notify_raw r;

		memset(&r, 0, sizeof(r));
		nc->line = line_of(e);
		parse_scope(cx, e, notify_keys, &r, "a notify entry");
		check_notify(cx, e, &r, nc);
	}
}
