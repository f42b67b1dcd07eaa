/*
 * test_config.c - config_load(): values and defaults of valid files, every
 * kind of error with its file:line and key, all errors collected, file
 * permission checks and the walk to a CA file, config_dump() round trips, config_diff() (what a
 * reload changes, and which of it waits for a restart), the example
 * config, and the golden files tests/unit/config/NAME.conf -> NAME.ok.
 *
 * Usage: test_config [SRCDIR]   (or JITD_SRCDIR; default "."). Set
 * JITD_GOLDEN_UPDATE=1 to rewrite the .ok files from the current output
 * (then read the diff before committing it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"
#include "t.h"

static char tmpdir[64];
static const char *srcdir = ".";

static char *tmp_path(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static char *read_all(const char *path)
{
	struct strbuf sb = { 0 };
	char buf[4096];
	size_t n;
	FILE *fp = fopen(path, "r");

	if (!fp)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sb_add(&sb, buf, n);
	fclose(fp);
	return sb_steal(&sb);
}

/* Replaces every occurrence of from in s by to (new string; s is freed). */
static char *replace(char *s, const char *from, const char *to)
{
	struct strbuf sb = { 0 };
	const char *p = s, *hit;

	while ((hit = strstr(p, from)) != NULL) {
		sb_add(&sb, p, (size_t)(hit - p));
		sb_addstr(&sb, to);
		p = hit + strlen(from);
	}
	sb_addstr(&sb, p);
	free(s);
	return sb_steal(&sb);
}

/* Errors with the temporary directory removed: "t.conf:3: key: msg\n". */
static char *strip_tmp(char *errs)
{
	char *prefix = xasprintf("%s/", tmpdir);
	errs = replace(errs, prefix, "");
	free(prefix);
	return errs;
}

/*
 * Writes text as t.conf (mode 0600) and loads it. Returns the rc; *cfg is
 * set on success, *errs (stripped) on failure.
 */
static int load_text(const char *text, struct jit_config **cfg, char **errs)
{
	char *path = tmp_path("t.conf");
	int rc;

	*cfg = NULL;
	*errs = NULL;
	write_file(path, text, strlen(text), 0600);
	rc = config_load(path, cfg, errs);
	if (*errs)
		*errs = strip_tmp(*errs);
	free(path);
	return rc;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Is there a line in errs that starts with prefix and contains frag? */
static bool has_error(const char *errs, const char *prefix, const char *frag)
{
	const char *p = errs;
	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			char *line = xstrndup(p, len);
			bool ok = strstr(line, frag) != NULL;
			free(line);
			if (ok)
				return true;
		}
		p += len + (end ? 1 : 0);
	}
	return false;
}

#define CHECK_ERR(errs, prefix, frag)                                              \
	do {                                                                       \
		bool t_ok = has_error(errs, prefix, frag);                         \
		CHECK(t_ok && #prefix);                                            \
		if (!t_ok)                                                         \
			fprintf(stderr, "  wanted \"%s...%s\" in:\n%s", prefix,    \
				frag, errs ? errs : "(no errors)\n");              \
	} while (0)

/* A valid base: one directory, one group. Line numbers below count on it. */
#define BASE_DIR                                                    \
	"directories = (\n"                          /* 1 */       \
	"  {\n"                                      /* 2 */       \
	"    name = \"corp\";\n"                     /* 3 */       \
	"    uri = \"ldapi:///\";\n"                 /* 4 */       \
	"    user_base = \"ou=people,dc=ex\";\n"     /* 5 */       \
	"  }\n"                                      /* 6 */       \
	");\n"                                       /* 7 */
#define BASE_GROUP                                                  \
	"groups = (\n"                               /* 8 */       \
	"  {\n"                                      /* 9 */       \
	"    name = \"admins\";\n"                   /* 10 */      \
	"    directory = \"corp\";\n"                /* 11 */      \
	"    dn = \"cn=admins,dc=ex\";\n"            /* 12 */      \
	"  }\n"                                      /* 13 */      \
	");\n"                                       /* 14 */
#define BASE BASE_DIR BASE_GROUP

/* Loads text that must fail; returns the stripped errors (caller frees). */
static char *must_fail(const char *text)
{
	struct jit_config *cfg;
	char *errs;
	int rc = load_text(text, &cfg, &errs);
	CHECK(rc == JIT_ECONFIG);
	CHECK(cfg == NULL);
	CHECK(errs != NULL && *errs != '\0');
	config_free(cfg);
	return errs;
}

static struct jit_config *must_load(const char *text)
{
	struct jit_config *cfg;
	char *errs;
	int rc = load_text(text, &cfg, &errs);
	CHECK(rc == JIT_OK);
	if (rc != JIT_OK)
		fprintf(stderr, "  unexpected errors:\n%s", errs ? errs : "");
	free(errs);
	return cfg;
}

static void test_ops(void)
{
	static const char *names[] = { "grant", "complete", "revoke", "extend",
				       "show", "list", "status" };
	enum jit_op op = OP_STATUS;

	CHECK(OP__COUNT == 7);
	for (int i = 0; i < OP__COUNT; i++) {
		CHECK_STR(jit_op_name((enum jit_op)i), names[i]);
		CHECK(jit_op_parse(names[i], &op) == JIT_OK && op == (enum jit_op)i);
	}
	CHECK(jit_op_name(OP__COUNT) == NULL);
	CHECK(jit_op_name((enum jit_op)-1) == NULL);
	op = OP_LIST;
	CHECK(jit_op_parse("GRANT", &op) == JIT_EUNKNOWNOP);
	CHECK(jit_op_parse("grant ", &op) == JIT_EUNKNOWNOP);
	CHECK(jit_op_parse("", &op) == JIT_EUNKNOWNOP);
	CHECK(jit_op_parse("*", &op) == JIT_EUNKNOWNOP);
	CHECK(jit_op_parse(NULL, &op) == JIT_EUNKNOWNOP);
	CHECK(op == OP_LIST);
	CHECK(OP_ALL_MASK == 0x7f);
}

static void test_full(void)
{
	static const char text[] =
		"socket_path = \"/tmp/j.sock\";\n"
		"socket_mode = \"0600\";\n"
		"socket_group = \"root\";\n"
		"state_dir = \"/srv/jitd\";\n"
		"audit_log = \"/srv/jitd/audit.log\";\n"
		"pid_file = \"/run/jitd.pid\";\n"
		"log_level = \"debug\";\n"
		"max_clients = 7; max_clients_per_uid = 3;\n"
		"max_request_size = 2048;\n"
		"client_timeout = \"2m\";\n"
		"retry_min_interval = 2;\n"
		"retry_max_interval = \"1h\";\n"
		"directories = (\n"
		"  { name = \"corp\"; uri = \"ldap://a.ex ldaps://b.ex\";\n"
		"    sasl_mech = \"SCRAM-SHA-256\"; sasl_authcid = \"jitd\";\n"
		"    sasl_realm = \"EX\"; sasl_authzid = \"u:admin\";\n"
		"    sasl_secret_file = \"/etc/jitd/secret\"; sasl_secprops = \"minssf=56\";\n"
		"    sasl_nocanon = true; keytab = \"/etc/jitd/kt\"; tls_ca_file = \"/etc/ca.pem\";\n"
		"    tls_require_cert = \"try\"; starttls = true;\n"
		"    user_base = \"ou=people,dc=ex\"; user_filter = \"(&(objectClass=person)(cn=%s))\";\n"
		"    uid_attr = \"sAMAccountName\"; uuid_attr = \"objectGUID\";\n"
		"    member_attr = \"uniqueMember\"; placeholder_member = \"cn=nobody,dc=ex\";\n"
		"    timeout = \"30s\"; connections = 32; },\n"
		"  { name = \"ad\"; uri = \"ldapi:///\"; user_base = \"cn=Users\";\n"
		"    sasl_mech = \"GSSAPI\"; sasl_authzid = \"\"; keytab = \"/etc/jitd/ad.kt\";\n"
		"    principal = \"jitd@AD.EX\"; replication_grace = \"2m\"; }\n"
		");\n"
		"groups = (\n"
		"  { name = \"admins\"; directory = \"corp\"; dn = \"cn=admins,dc=ex\";\n"
		"    max_duration = \"1d\"; default_duration = 7200; },\n"
		"  { name = \"ops\"; directory = \"ad\"; dn = \"cn=ops\"; member_attr = \"memberUid\";\n"
		"    placeholder_member = \"cn=ph\"; max_duration = 60; default_duration = \"1m\"; }\n"
		");\n"
		"clients = (\n"
		"  { name = \"helpdesk\"; uid = 1000; gid = 4294967294L; groups = [ \"admins\", \"*\" ];\n"
		"    ops = [ \"grant\", \"status\" ]; },\n"
		"  { unix_user = \"root\"; unix_group = \"root\"; groups = ( \"ops\" ); },\n"
		"  { gid = 0; ops = []; }\n"
		");\n";
	struct jit_config *cfg = must_load(text);
	const struct jit_dir_cfg *d;
	const struct jit_group_cfg *g;
	const struct jit_client_cfg *c;

	if (!cfg)
		return;
	CHECK_STR(cfg->path + strlen(tmpdir), "/t.conf");
	CHECK_STR(cfg->socket_path, "/tmp/j.sock");
	CHECK(cfg->socket_mode == 0600);
	CHECK_STR(cfg->socket_group, "root");
	CHECK_STR(cfg->state_dir, "/srv/jitd");
	CHECK_STR(cfg->audit_log, "/srv/jitd/audit.log");
	CHECK_STR(cfg->pid_file, "/run/jitd.pid");
	CHECK_STR(cfg->log_level, "debug");
	CHECK(cfg->max_clients == 7);
	CHECK(cfg->max_clients_per_uid == 3);
	CHECK(cfg->max_request_size == 2048);
	CHECK(cfg->client_timeout == 120);
	CHECK(cfg->retry_min_interval == 2);
	CHECK(cfg->retry_max_interval == 3600);

	CHECK(cfg->n_dirs == 2);
	d = &cfg->dirs[0];
	CHECK_STR(d->name, "corp");
	CHECK_STR(d->uri, "ldap://a.ex ldaps://b.ex");
	CHECK_STR(d->sasl_mech, "SCRAM-SHA-256");
	CHECK_STR(d->sasl_authcid, "jitd");
	CHECK_STR(d->sasl_realm, "EX");
	CHECK_STR(d->sasl_authzid, "u:admin");
	CHECK_STR(d->sasl_secret_file, "/etc/jitd/secret");
	CHECK_STR(d->sasl_secprops, "minssf=56");
	CHECK(d->sasl_nocanon == true);
	CHECK_STR(d->keytab, "/etc/jitd/kt");
	CHECK_STR(d->tls_ca_file, "/etc/ca.pem");
	CHECK_STR(d->tls_require_cert, "try");
	CHECK(d->starttls == true);
	CHECK_STR(d->user_base, "ou=people,dc=ex");
	CHECK_STR(d->user_filter, "(&(objectClass=person)(cn=%s))");
	CHECK_STR(d->uid_attr, "sAMAccountName");
	CHECK_STR(d->uuid_attr, "objectGUID");
	CHECK_STR(d->member_attr, "uniqueMember");
	CHECK_STR(d->placeholder_member, "cn=nobody,dc=ex");
	CHECK(d->timeout == 30);
	CHECK(d->connections == 32);
	CHECK(d->line == 14);
	d = &cfg->dirs[1];
	CHECK_STR(d->sasl_mech, "GSSAPI");
	CHECK(d->sasl_authzid == NULL); /* "" means not set */
	CHECK(d->sasl_authcid == NULL && d->sasl_secret_file == NULL);
	CHECK(d->line == 24);
	CHECK_STR(d->keytab, "/etc/jitd/ad.kt");
	CHECK_STR(d->principal, "jitd@AD.EX");
	CHECK(d->replication_grace == 120);
	CHECK(cfg->dirs[0].replication_grace == 30 && cfg->dirs[0].principal == NULL);

	CHECK(cfg->n_groups == 2);
	g = config_group(cfg, "admins");
	CHECK(g == &cfg->groups[0]);
	CHECK(g && g->dir_index == 0 && strcmp(g->directory, "corp") == 0);
	CHECK(g && g->max_duration == 86400 && g->default_duration == 7200);
	CHECK(g && g->member_attr == NULL && g->placeholder_member == NULL);
	CHECK(g && g->line == 29);
	if (g) {
		CHECK_STR(config_group_member_attr(cfg, g), "uniqueMember");
		CHECK_STR(config_group_placeholder(cfg, g), "cn=nobody,dc=ex");
	}
	g = config_group(cfg, "ops");
	CHECK(g && g->dir_index == 1 && strcmp(g->dn, "cn=ops") == 0);
	CHECK(g && g->max_duration == 60 && g->default_duration == 60);
	if (g) {
		CHECK_STR(config_group_member_attr(cfg, g), "memberUid");
		CHECK_STR(config_group_placeholder(cfg, g), "cn=ph");
	}
	CHECK(config_group(cfg, "nope") == NULL);
	CHECK(config_group(cfg, NULL) == NULL);
	CHECK(config_directory(cfg, "ad") == &cfg->dirs[1]);
	CHECK(config_directory(cfg, "admins") == NULL);

	CHECK(cfg->n_clients == 3);
	c = &cfg->clients[0];
	CHECK_STR(c->name, "helpdesk");
	CHECK(c->has_uid && c->uid == 1000);
	CHECK(c->has_gid && c->gid == (gid_t)4294967294u);
	CHECK(c->n_groups == 2);
	CHECK_STR(c->groups[0], "admins");
	CHECK_STR(c->groups[1], "*");
	CHECK(c->ops == ((1u << OP_GRANT) | (1u << OP_STATUS)));
	CHECK(c->line == 35);
	c = &cfg->clients[1];
	CHECK_STR(c->name, "client#2");
	CHECK(c->has_uid && c->uid == 0 && c->has_gid && c->gid == 0);
	CHECK(c->n_groups == 1 && strcmp(c->groups[0], "ops") == 0);
	CHECK(c->ops == OPS_DEFAULT_MASK); /* every op, and force */
	c = &cfg->clients[2];
	CHECK_STR(c->name, "client#3");
	CHECK(!c->has_uid && c->has_gid && c->gid == 0);
	CHECK(c->n_groups == 0 && c->groups != NULL);
	CHECK(c->ops == 0);
	config_free(cfg);
}

static void test_defaults(void)
{
	struct jit_config *cfg = must_load(BASE "clients = ( { uid = 5; } );\n");
	const struct jit_dir_cfg *d;
	const struct jit_group_cfg *g;

	if (!cfg)
		return;
	CHECK_STR(cfg->socket_path, "/run/jitd/jitd.sock");
	CHECK(cfg->socket_mode == 0660);
	CHECK(cfg->socket_group == NULL);
	CHECK_STR(cfg->state_dir, "/var/lib/jitd");
	CHECK_STR(cfg->audit_log, "/var/log/jitd/audit.log");
	CHECK(cfg->pid_file == NULL);
	CHECK_STR(cfg->log_level, "info");
	CHECK(cfg->max_clients == 128);
	CHECK(cfg->max_clients_per_uid == 32);
	CHECK(cfg->max_request_size == 65536);
	CHECK(cfg->client_timeout == 60);
	CHECK(cfg->retry_min_interval == 1);
	CHECK(cfg->retry_max_interval == 30);
	d = &cfg->dirs[0];
	CHECK_STR(d->sasl_mech, "EXTERNAL");
	CHECK(d->sasl_authcid == NULL && d->sasl_realm == NULL && d->sasl_authzid == NULL);
	CHECK(d->sasl_secret_file == NULL && d->sasl_secprops == NULL);
	CHECK(d->sasl_nocanon == false && d->starttls == false);
	CHECK(d->keytab == NULL && d->tls_ca_file == NULL);
	CHECK_STR(d->tls_require_cert, "demand");
	CHECK_STR(d->user_filter, "(uid=%s)");
	CHECK_STR(d->uid_attr, "uid");
	CHECK_STR(d->uuid_attr, "entryUUID");
	CHECK_STR(d->member_attr, "member");
	CHECK(d->placeholder_member == NULL);
	CHECK(d->timeout == 10);
	CHECK(d->connections == 4);
	CHECK(d->line == 2);
	g = &cfg->groups[0];
	CHECK(g->max_duration == 4 * 3600);
	CHECK(g->default_duration == 3600);
	CHECK(g->dir_index == 0);
	CHECK(g->line == 9);
	CHECK_STR(config_group_member_attr(cfg, g), "member");
	CHECK(config_group_placeholder(cfg, g) == NULL);
	CHECK(cfg->n_clients == 1);
	CHECK_STR(cfg->clients[0].name, "client#1");
	CHECK(cfg->clients[0].has_uid && !cfg->clients[0].has_gid);
	CHECK(cfg->clients[0].n_groups == 0);        /* default: no group */
	CHECK(cfg->clients[0].ops == OPS_DEFAULT_MASK); /* default: every op, and force */
	CHECK(cfg->clients[0].ops & OPS_FORCE_BIT);
	config_free(cfg);

	/* A group's placeholder_member = "" cancels the directory's. */
	cfg = must_load("directories = ( { name = \"corp\"; uri = \"ldapi:///\";\n"
			"  user_base = \"x\"; placeholder_member = \"cn=ph\"; } );\n"
			"groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\"; },\n"
			"  { name = \"b\"; directory = \"corp\"; dn = \"cn=b\";\n"
			"    member_attr = \"memberUid\"; placeholder_member = \"\"; } );\n");
	if (cfg) {
		CHECK_STR(config_group_placeholder(cfg, config_group(cfg, "a")), "cn=ph");
		CHECK(config_group_placeholder(cfg, config_group(cfg, "b")) == NULL);
		CHECK_STR(config_group_member_attr(cfg, config_group(cfg, "b")), "memberUid");
		CHECK_STR(config_group_member_attr(cfg, config_group(cfg, "a")), "member");
	}
	config_free(cfg);

	/* No clients at all is allowed (everyone is unauthorized). */
	cfg = must_load(BASE);
	CHECK(cfg && cfg->n_clients == 0);
	config_free(cfg);
	cfg = must_load(BASE "clients = ();\n");
	CHECK(cfg && cfg->n_clients == 0);
	config_free(cfg);

	/* max_clients_per_uid follows max_clients (a quarter, at least 1)
	 * unless given; equal to max_clients is allowed (no per-uid cap). */
	cfg = must_load(BASE "max_clients = 10;\n");
	CHECK(cfg && cfg->max_clients_per_uid == 2);
	config_free(cfg);
	cfg = must_load(BASE "max_clients = 3;\n");
	CHECK(cfg && cfg->max_clients_per_uid == 1);
	config_free(cfg);
	cfg = must_load(BASE "max_clients = 5;\nmax_clients_per_uid = 5;\n");
	CHECK(cfg && cfg->max_clients_per_uid == 5);
	config_free(cfg);
}

/* One mistake added to BASE: the error names the right line and key. */
static void test_each_error(void)
{
	static const struct {
		const char *text, *prefix, *frag;
	} cases[] = {
		{ "bogus = 1;\n" BASE, "t.conf:1: bogus: ", "unknown key in the top level" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\";\n"
		  "  dn = \"cn=a\"; colour = \"red\"; } );\n",
		  "t.conf:9: colour: ", "unknown key in a groups entry" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\";\n"
		  "  user_base = \"dc=ex\"; frob = 1; } );\n" BASE_GROUP,
		  "t.conf:2: frob: ", "unknown key in a directories entry" },
		{ BASE "clients = ( { uid = 1;\n shoe = 2; } );\n",
		  "t.conf:16: shoe: ", "unknown key in a clients entry" },
		{ BASE "max_clients = \"10\";\n", "t.conf:15: max_clients: ", "expected an integer" },
		{ BASE "socket_path = 5;\n", "t.conf:15: socket_path: ", "expected a string" },
		{ BASE "max_clients = 1.5;\n", "t.conf:15: max_clients: ", "expected an integer" },
		{ BASE "clients = ( { uid = \"0\"; } );\n", "t.conf:15: uid: ", "expected an integer" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "starttls = \"yes\"; } );\n" BASE_GROUP,
		  "t.conf:2: starttls: ", "expected true or false" },
		{ BASE "client_timeout = \"1h30\";\n", "t.conf:15: client_timeout: ",
		  "\"1h30\" is not a duration" },
		{ BASE "client_timeout = -5;\n", "t.conf:15: client_timeout: ",
		  "must be between 1s and 1d" },
		{ BASE "client_timeout = true;\n", "t.conf:15: client_timeout: ",
		  "expected a duration" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"
		  "  max_duration = \"1h\";\n  default_duration = \"2h\"; } );\n",
		  "t.conf:10: default_duration: ", "2h is longer than max_duration 1h" },
		/* Only max given: the default (1h) exceeds it; the line is max's. */
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\";\n"
		  " dn = \"cn=a\"; max_duration = \"30m\"; } );\n",
		  "t.conf:9: default_duration: ", "1h is longer than max_duration 30m" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"
		  "  max_duration = 0; } );\n",
		  "t.conf:9: max_duration: ", "must be between 1s and 522w6d (got 0s)" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"
		  "  max_duration = \"523w\"; } );\n",
		  "t.conf:9: max_duration: ", "\"523w\" is not a duration" },
		{ BASE_DIR "groups = ( { name = \"a\"; dn = \"cn=a\";\n"
		  "  directory = \"cop\"; } );\n",
		  "t.conf:9: directory: ", "no directory named \"cop\"" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\"; },\n"
		  "  { name = \"a\"; directory = \"corp\"; dn = \"cn=b\"; } );\n",
		  "t.conf:9: name: ", "group \"a\" is already defined at line 8" },
		/* one group for the directory, two for the pair key: refused */
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=\xc3\x84rzte\"; },\n"
		  "  { name = \"b\"; directory = \"corp\"; dn = \"cn=\xc3\xa4rzte\"; } );\n",
		  "t.conf:9: dn: ", "names the group of line 8, spelled \"cn=\xc3\x84rzte\" there" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=x+uid=y\"; },\n"
		  "  { name = \"b\"; directory = \"corp\"; dn = \"uid=y+cn=x\"; } );\n",
		  "t.conf:9: dn: ", "spell it the same in both entries" },
		{ "directories = ( { name = \"d\"; uri = \"ldapi:///\"; user_base = \"x\"; },\n"
		  "{ name = \"d\"; uri = \"ldapi:///\"; user_base = \"x\"; } );\n" BASE_GROUP,
		  "t.conf:2: name: ", "directory \"d\" is already defined at line 1" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"
		  "  ticket_check = { url = \"http://itsm.example/t/%s\"; approved_field = \"s\";\n"
		  "  approved_value = \"ok\"; }; } );\n",
		  "t.conf:9: url: ", "an answer over http:// could be forged on the way" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\"; },\n"
		  "{ name = \"Corp\"; uri = \"ldapi:///\"; user_base = \"x\"; } );\n" BASE_GROUP,
		  "t.conf:2: name: ", "directory \"Corp\" is already defined at line 1" },
		{ BASE_DIR "groups = ( { name = \"a\";\n  directory = \"corp\"; } );\n",
		  "t.conf:8: dn: ", "required in a groups entry" },
		{ "directories = ( {\n name = \"corp\"; user_base = \"x\"; } );\n" BASE_GROUP,
		  "t.conf:1: uri: ", "required in a directories entry" },
		{ BASE "socket_mode = \"0999\";\n", "t.conf:15: socket_mode: ",
		  "expected a string of octal digits" },
		{ BASE "socket_mode = \"1777\";\n", "t.conf:15: socket_mode: ",
		  "must be between \"0000\" and \"0777\"" },
		{ BASE "socket_mode = 660;\n", "t.conf:15: socket_mode: ",
		  "expected a string of octal digits" },
		{ BASE "socket_mode = \"\";\n", "t.conf:15: socket_mode: ",
		  "expected a string of octal digits" },
		{ BASE "socket_mode = \"00660\";\n", "t.conf:15: socket_mode: ",
		  "expected a string of octal digits" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  user_filter = \"(uid=%s)(cn=%s)\"; } );\n" BASE_GROUP,
		  "t.conf:2: user_filter: ", "must hold exactly one %s" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  user_filter = \"(uid=*)\"; } );\n" BASE_GROUP,
		  "t.conf:2: user_filter: ", "must hold exactly one %s" },
		{ BASE "clients = ( { uid = 1; ops = [ \"grant\",\n \"delete\" ]; } );\n",
		  "t.conf:16: ops: ", "unknown operation \"delete\"" },
		{ BASE "clients = ( { uid = 1; groups = [ \"admins\", \"nope\" ]; } );\n",
		  "t.conf:15: groups: ", "no group named \"nope\"" },
		{ BASE "clients = ( { uid = 1; groups = [ 1 ]; } );\n",
		  "t.conf:15: groups: ", "element 1 is not a string" },
		{ BASE "clients = ( { uid = 1; groups = \"admins\"; } );\n",
		  "t.conf:15: groups: ", "expected a list of strings" },
		{ BASE "clients = ( {\n  unix_user = \"no-such-user-jitd\"; } );\n",
		  "t.conf:16: unix_user: ", "no such user \"no-such-user-jitd\"" },
		{ BASE "clients = ( {\n  unix_group = \"no-such-group-jitd\"; } );\n",
		  "t.conf:16: unix_group: ", "no such group \"no-such-group-jitd\"" },
		{ BASE "clients = ( { uid = 0;\n  unix_user = \"root\"; } );\n",
		  "t.conf:16: unix_user: ", "give uid or unix_user, not both" },
		{ BASE "clients = ( { gid = 0;\n  unix_group = \"root\"; } );\n",
		  "t.conf:16: unix_group: ", "give gid or unix_group, not both" },
		{ BASE "clients = ( { name = \"x\"; groups = [ \"*\" ]; } );\n",
		  "t.conf:15: uid: ", "required (or gid, unix_user, unix_group)" },
		{ BASE "clients = ( { uid = 1; name = \"a\"; }, { uid = 2; name = \"a\"; } );\n",
		  "t.conf:15: name: ", "client \"a\" is already defined" },
		{ BASE "clients = ( { uid = 4294967295L; } );\n",
		  "t.conf:15: uid: ", "must be between 0 and 4294967294" },
		{ BASE "clients = ( { uid = 4294967296; } );\n",
		  "t.conf:15: uid: ", "integer out of 32-bit range" },
		{ BASE "clients = ( { gid = 0x80000000; } );\n",
		  "t.conf:15: gid: ", "integer out of 32-bit range" },
		{ BASE "clients = ( { uid = -1; } );\n",
		  "t.conf:15: uid: ", "must be between 0 and" },
		/* The value on the line after its key: reported, not truncated
		 * to uid 1000 (libconfig's setting line is not the number's). */
		{ BASE "clients = ( { name = \"h\"; uid =\n  4294968296; groups = [ \"*\" ]; } );\n",
		  "t.conf:16: uid: ", "integer out of 32-bit range" },
		{ BASE "clients = ( { name = \"h\"; gid\n  =\n  4294967296; } );\n",
		  "t.conf:17: gid: ", "integer out of 32-bit range" },
		{ BASE "user = \"root\";\ngroup = \"4294967296\";\n", "t.conf:16: group: ",
		  "gid 4294967296 is out of range (0 .. 4294967294)" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  sasl_mech = \"DIGEST-MD5\"; sasl_authcid = \"j\"; } );\n" BASE_GROUP,
		  "t.conf:2: sasl_secret_file: ", "required with sasl_mech DIGEST-MD5" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  sasl_mech = \"PLAIN\"; } );\n" BASE_GROUP,
		  "t.conf:2: sasl_authcid: ", "required with sasl_mech PLAIN" },
		/* "" means unset: a bind with an empty password never succeeds,
		 * and the mechanism applies only at the next restart */
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  sasl_mech = \"SCRAM-SHA-256\"; sasl_authcid = \"j\";\n"
		  "  sasl_secret_file = \"\"; } );\n" BASE_GROUP,
		  "t.conf:3: sasl_secret_file: ", "empty, but required with sasl_mech SCRAM-SHA-256" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  sasl_mech = \"PLAIN\"; sasl_authcid = \"\"; sasl_secret_file = \"/s\"; } );\n"
		  BASE_GROUP,
		  "t.conf:2: sasl_authcid: ", "empty, but required with sasl_mech PLAIN" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  sasl_mech = \"external\"; } );\n" BASE_GROUP,
		  "t.conf:2: sasl_mech: ", "\"external\" is not one of EXTERNAL, SCRAM-SHA-256" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  tls_require_cert = \"hard\"; } );\n" BASE_GROUP,
		  "t.conf:2: tls_require_cert: ", "is not one of never, allow, try, demand" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  connections = 33; } );\n" BASE_GROUP,
		  "t.conf:2: connections: ", "must be between 1 and 32 (got 33)" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  timeout = \"301s\"; } );\n" BASE_GROUP,
		  "t.conf:2: timeout: ", "must be between 1s and 5m (got 5m1s)" },
		{ "directories = ( { name = \"corp\"; uri = \"ldapi:///\"; user_base = \"x\";\n"
		  "  uri = \"ldapi:///\"; } );\n" BASE_GROUP,
		  "t.conf:2: ", "duplicate setting name" },
		{ "directories = ( { name = \"corp\"; user_base = \"x\";\n"
		  "  uri = \"ldap://a http://b\"; } );\n" BASE_GROUP,
		  "t.conf:2: uri: ", "is not a list of ldap://" },
		{ "directories = ( { name = \"corp\"; user_base = \"x\";\n"
		  "  uri = \"ldapi:///\"; member_attr = \"mem ber\"; } );\n" BASE_GROUP,
		  "t.conf:2: member_attr: ", "is not an LDAP attribute name" },
		{ "directories = ( { name = \"my dir\"; user_base = \"x\";\n"
		  "  uri = \"ldapi:///\"; } );\n" BASE_GROUP,
		  "t.conf:1: name: ", "\"my dir\" is not a valid name" },
		{ BASE_DIR "groups = ( { name = \"*\"; directory = \"corp\"; dn = \"cn=a\"; } );\n",
		  "t.conf:8: name: ", "\"*\" is not a valid name" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\";\n dn = \"\"; } );\n",
		  "t.conf:9: dn: ", "must not be empty" },
		{ BASE_DIR "groups = ( { name = \"a\\n\"; directory = \"corp\"; dn = \"x\"; } );\n",
		  "t.conf:8: name: ", "contains a control character" },
		/* not UTF-8 (a file saved as Latin-1): a clients name reached
		 * the engine's messages and the audit log as JSON, which
		 * refused it and killed the listener at every request */
		{ BASE "clients = ( { uid = 0; name = \"h\xe9lpdesk\"; } );\n",
		  "t.conf:15: name: ", "is not valid UTF-8" },
		{ BASE_DIR "groups = ( { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"
		  "  deny_users = [ \"j\xfcrgen\" ]; } );\n",
		  "t.conf:9: deny_users: ", "element 1 is not valid UTF-8" },
		{ BASE "audit_log = \"/var/log/\xc3\";\n", "t.conf:15: audit_log: ",
		  "is not valid UTF-8" },
		{ BASE "state_dir = \"var/lib/jitd\";\n", "t.conf:15: state_dir: ",
		  "is not an absolute path" },
		{ BASE "log_level = \"verbose\";\n", "t.conf:15: log_level: ",
		  "\"verbose\" is not one of debug, info, warning, error" },
		{ BASE "max_request_size = 1023;\n", "t.conf:15: max_request_size: ",
		  "must be between 1024 and 1048576 (got 1023)" },
		{ BASE "retry_min_interval = \"1m\";\nretry_max_interval = 59;\n",
		  "t.conf:15: retry_min_interval: ", "longer than retry_max_interval" },
		{ BASE "max_clients_per_uid = 0;\n", "t.conf:15: max_clients_per_uid: ",
		  "must be between 1 and 10000 (got 0)" },
		{ BASE "max_clients = 8;\nmax_clients_per_uid = 9;\n",
		  "t.conf:16: max_clients_per_uid: ", "more than max_clients (8)" },
		{ BASE "socket_path = \"/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\";\n",
		  "t.conf:15: socket_path: ", "longer than 107 bytes" },
		{ BASE "socket_group = \"no-such-group-jitd\";\n", "t.conf:15: socket_group: ",
		  "no such group" },
		{ BASE "directories = 5;\n", "t.conf:", "duplicate setting name" },
		{ BASE_GROUP "directories = { name = \"x\"; };\n", "t.conf:8: directories: ",
		  "expected a list of groups" },
		{ BASE_GROUP "directories = ( \"x\" );\n", "t.conf:8: directories: ",
		  "entry 1 is not a group" },
		{ BASE_GROUP, "t.conf: directories: ", "at least one directory is required" },
		{ BASE_DIR "groups = ();\n", "t.conf:8: groups: ", "at least one group is required" },
		{ BASE "a = 1;\n  @include \"/etc/passwd\"\n", "t.conf:16: @include: ",
		  "not supported" },
		{ BASE "x = ;\n", "t.conf:15: ", "syntax error" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *errs = must_fail(cases[i].text);
		CHECK_ERR(errs, cases[i].prefix, cases[i].frag);
		free(errs);
	}
	/* a secret pasted where its file's path belongs is not repeated */
	char *errs = must_fail("directories = ( { name = \"corp\"; uri = \"ldapi:///\";\n"
			       "  user_base = \"x\"; sasl_mech = \"PLAIN\"; sasl_authcid = \"j\";\n"
			       "  sasl_secret_file = \"hunter2-pw\"; } );\n" BASE_GROUP);
	CHECK(strstr(errs, "sasl_secret_file: is not an absolute path") != NULL);
	CHECK(strstr(errs, "hunter2") == NULL);
	free(errs);
}

static void test_multiple_errors(void)
{
	static const char text[] =
		"bogus = 1;\n"                                          /* 1 */
		"socket_mode = \"999\";\n"                              /* 2 */
		"directories = ( { name = \"corp\"; uri = \"ldapi:///\";\n" /* 3 */
		"  user_base = \"x\"; user_filter = \"(uid=%%)\"; } );\n"  /* 4 */
		"groups = (\n"                                          /* 5 */
		"  { name = \"a\"; directory = \"nope\"; dn = \"cn=a\"; },\n"  /* 6 */
		"  { name = \"a\"; directory = \"corp\"; dn = \"cn=a\";\n"     /* 7 */
		"    max_duration = \"1h\"; default_duration = \"2h\"; }\n"   /* 8 */
		");\n"                                                  /* 9 */
		"clients = ( { unix_user = \"no-such-user-jitd\";\n"    /* 10 */
		"  ops = [ \"grant\", \"fly\" ]; color = 1; } );\n"     /* 11 */
		"max_clients = 0;\n";                                  /* 12 */
	char *errs = must_fail(text);

	CHECK_ERR(errs, "t.conf:1: bogus: ", "unknown key");
	CHECK_ERR(errs, "t.conf:2: socket_mode: ", "octal");
	CHECK_ERR(errs, "t.conf:4: user_filter: ", "exactly one %s");
	CHECK_ERR(errs, "t.conf:6: directory: ", "no directory named \"nope\"");
	CHECK_ERR(errs, "t.conf:7: name: ", "already defined at line 6");
	CHECK_ERR(errs, "t.conf:8: default_duration: ", "longer than max_duration");
	CHECK_ERR(errs, "t.conf:10: unix_user: ", "no such user");
	CHECK_ERR(errs, "t.conf:11: ops: ", "\"fly\"");
	CHECK_ERR(errs, "t.conf:11: color: ", "unknown key");
	CHECK_ERR(errs, "t.conf:12: max_clients: ", "must be between 1 and 10000");
	CHECK(count_lines(errs) == 10);
	/* Sorted by line, though line 12 was found before line 4. */
	CHECK(errs && strncmp(errs, "t.conf:1: ", 10) == 0);
	CHECK(errs && strstr(errs, "t.conf:4:") < strstr(errs, "t.conf:12:"));
	CHECK(errs && strstr(errs, "t.conf:2:") < strstr(errs, "t.conf:10:"));
	{
		const char *last = errs ? strstr(errs, "t.conf:12: ") : NULL;
		CHECK(last && strchr(last, '\n') && strchr(last, '\n')[1] == '\0');
	}
	free(errs);

	/* Many errors: the first 50 are shown, then a count. */
	{
		struct strbuf sb = { 0 };
		sb_addstr(&sb, BASE);
		for (int i = 0; i < 60; i++)
			sb_addf(&sb, "bogus%d = 1;\n", i);
		errs = must_fail(sb.s);
		CHECK(count_lines(errs) == 51);
		CHECK_ERR(errs, "t.conf:15: bogus0: ", "unknown key");
		CHECK_ERR(errs, "t.conf: ", "10 more errors not shown");
		free(errs);
		sb_free(&sb);
	}
}

static void test_lexer(void)
{
	struct jit_config *cfg;
	char *errs;

	/* Neither strings nor comments can hold a directive or a literal. */
	cfg = must_load(BASE "# @include \"/etc/passwd\"\n"
			"/* uid = 4294967296 @include */ // max_clients = 99999999999\n"
			"pid_file = \"/x/@include/4294967296 \\\" uid = 99999999999\";\n"
			"clients = ( { name = \"n\"; uid = 2147483647; gid = 4294967294L; },\n"
			"  { uid = 0x7fffffff; } );\n");
	CHECK(cfg && cfg->clients[0].uid == 2147483647u);
	CHECK(cfg && cfg->clients[0].gid == 4294967294u);
	CHECK(cfg && cfg->clients[1].uid == 0x7fffffffu);
	CHECK(cfg && strcmp(cfg->pid_file, "/x/@include/4294967296 \" uid = 99999999999") == 0);
	config_free(cfg);

	/* Lines are still counted right after multi-line comments and strings. */
	errs = must_fail("/*\n\n*/ a = \"x\"\n  \"y\";\n\nbogus = 1;\n" BASE);
	CHECK_ERR(errs, "t.conf:6: bogus: ", "unknown key");
	free(errs);

	/* A value with a newline cannot break the one-line-per-error format. */
	errs = must_fail(BASE "client_timeout = \"1h\\n\";\nstate_dir = \"/a\\nb\";\n");
	CHECK_STR(errs, "t.conf:15: client_timeout: contains a control character\n"
		  "t.conf:16: state_dir: contains a control character\n");
	free(errs);

	/* Another @word is libconfig's syntax error, not an include. */
	errs = must_fail(BASE "@define x\n");
	CHECK_STR(errs, "t.conf:15: syntax error\n");
	free(errs);

	/* An @include is refused before libconfig opens anything. */
	errs = must_fail("@include \"/nonexistent/x.conf\"\n" BASE);
	CHECK_ERR(errs, "t.conf:1: @include: ", "not supported");
	CHECK(count_lines(errs) == 1);
	free(errs);

	/* A NUL byte would hide the rest of the file from libconfig. */
	{
		static const char nul[] = "bogus = 1;\n\0uid = 0;\n";
		char *path = tmp_path("nul.conf");
		write_file(path, nul, sizeof(nul) - 1, 0600);
		errs = NULL;
		cfg = NULL;
		CHECK(config_load(path, &cfg, &errs) == JIT_ECONFIG && cfg == NULL);
		errs = strip_tmp(errs);
		CHECK_STR(errs, "nul.conf: config file contains a NUL byte\n");
		free(errs);
		free(path);
	}
}

static void test_file_checks(void)
{
	static const struct {
		mode_t mode;
		bool ok;
	} modes[] = {
		{ 0600, true }, { 0644, true }, { 0400, true }, { 0640, true },
		{ 0666, false }, { 0620, false }, { 0602, false }, { 0660, false },
		{ 0622, false },
	};
	char *path = tmp_path("perm.conf");

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct jit_config *cfg = (struct jit_config *)&path; /* must stay as is */
		char *errs = NULL, want[64];
		int rc;

		write_file(path, BASE, strlen(BASE), modes[i].mode);
		rc = config_load(path, &cfg, &errs);
		if (modes[i].ok || rc == JIT_OK) {
			CHECK(modes[i].ok);
			CHECK(rc == JIT_OK && cfg != NULL && errs == NULL);
			if (rc == JIT_OK)
				config_free(cfg);
			free(errs);
			continue;
		}
		CHECK(rc == JIT_ECONFIG);
		CHECK(cfg == (struct jit_config *)&path);
		errs = strip_tmp(errs);
		snprintf(want, sizeof(want), "perm.conf: config file is writable by others "
			 "(mode %04o)\n", (unsigned)modes[i].mode);
		CHECK_STR(errs, want);
		free(errs);
	}

	/* Missing file, a directory, a file too large; errors may be NULL. */
	{
		struct jit_config *cfg = NULL;
		char *errs = NULL, *big = tmp_path("big.conf");
		char *fill = xmalloc(1024 * 1024 + 2);

		CHECK(config_load("/nonexistent/jitd.conf", &cfg, &errs) == JIT_ECONFIG);
		CHECK_STR(errs, "/nonexistent/jitd.conf: cannot open: No such file or directory\n");
		free(errs);
		errs = NULL;
		CHECK(config_load(tmpdir, &cfg, &errs) == JIT_ECONFIG);
		CHECK(errs && strstr(errs, ": config file is not a regular file\n"));
		free(errs);
		{
			char *fifo = tmp_path("fifo.conf");
			CHECK(mkfifo(fifo, 0600) == 0);
			errs = NULL;
			CHECK(config_load(fifo, &cfg, &errs) == JIT_ECONFIG); /* no hang */
			CHECK(errs && strstr(errs, ": config file is not a regular file\n"));
			free(errs);
			free(fifo);
		}
		CHECK(config_load("/nonexistent/jitd.conf", &cfg, NULL) == JIT_ECONFIG);
		CHECK(cfg == NULL);
		memset(fill, '#', 1024 * 1024 + 1);
		write_file(big, fill, 1024 * 1024 + 1, 0600);
		errs = NULL;
		CHECK(config_load(big, &cfg, &errs) == JIT_ECONFIG);
		CHECK(errs && strstr(errs, "config file is larger than 1048576 bytes"));
		free(errs);
		/* More lines than libconfig can number. */
		memset(fill, '\n', 70000);
		write_file(big, fill, 70000, 0600);
		errs = NULL;
		CHECK(config_load(big, &cfg, &errs) == JIT_ECONFIG);
		CHECK(errs && strstr(errs, "more than 65535 lines"));
		free(errs);
		free(fill);
		free(big);
	}
	free(path);
}

/* file_trusted(), as check_files() runs it on CA files: the walk through
 * symbolic links and the directories it checks. The tree is under a
 * mkdtemp directory of /tmp: sticky, so trusted for entries of root and
 * of the user running the test, as owner. */
static void test_ca_file_walk(void)
{
	static const char *const made[] = {
		"ok/ca.pem", "ok/gw.pem", "ok/to-gw", "ok/hop", "ok/loop", "ok/dangling",
		"ok/up", "open/ca", "sticky/ca", "ok", "open", "sticky",
	};
	static const struct {
		const char *path, *why; /* why: NULL for trusted; "@" stands for base */
	} cases[] = {
		{ "@/ok/ca.pem", NULL },
		{ "@/ok/./../ok//ca.pem", NULL },
		{ "@/ok/up", NULL },     /* ../open/../ok/ca.pem: ".." is no entry */
		{ "@/sticky/ca", NULL }, /* a link of ours in a sticky directory */
		{ "@/open/ca", "directory @/open: writable by group or others (mode 0777)" },
		{ "@/ok/hop", "directory @/open: writable by group or others (mode 0777)" },
		{ "@/ok/to-gw", "resolves to @/ok/gw.pem: writable by group or others (mode 0664)" },
		{ "@/ok/loop", "resolves to @/ok/loop: Too many levels of symbolic links" },
		{ "@/ok/dangling", "resolves to @/ok/nowhere: No such file or directory" },
		{ "@/ok/ca.pem/", "Not a directory" },
		{ "@/ok", "not a regular file" },
		{ "ok/ca.pem", "not an absolute path" },
	};
	static const char *const links[][2] = {
		{ "ok/to-gw", "gw.pem" }, { "ok/hop", "../open/ca" }, { "ok/loop", "loop" },
		{ "ok/dangling", "nowhere" }, { "ok/up", "../open/../ok/ca.pem" },
		{ "open/ca", "../ok/ca.pem" }, { "sticky/ca", "@/ok/ca.pem" },
	};
	char base[] = "/tmp/jitd-ca.XXXXXX", why[1024];
	uid_t me = geteuid();

	CHECK(mkdtemp(base) != NULL && chmod(base, 0755) == 0);
	char *ok = xasprintf("%s/ok", base), *open_ = xasprintf("%s/open", base);
	char *sticky = xasprintf("%s/sticky", base), *ca = xasprintf("%s/ca.pem", ok);
	char *gw = xasprintf("%s/gw.pem", ok), *sca = xasprintf("%s/ca", sticky);
	CHECK(mkdir(ok, 0755) == 0 && mkdir(open_, 0755) == 0 && mkdir(sticky, 0755) == 0);
	CHECK(chmod(open_, 0777) == 0 && chmod(sticky, 01777) == 0);
	write_file(ca, "ca\n", 3, 0644);
	write_file(gw, "ca\n", 3, 0664);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char *at = xasprintf("%s/%s", base, links[i][0]);
		char *to = replace(xstrdup(links[i][1]), "@", base);
		CHECK(symlink(to, at) == 0);
		free(at);
		free(to);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = replace(xstrdup(cases[i].path), "@", base);
		int rc = file_trusted(path, me, why, sizeof(why));
		if (!cases[i].why) {
			CHECK_STR(rc == JIT_OK ? path : why, path);
		} else {
			char *want = replace(xstrdup(cases[i].why), "@", base);
			CHECK(rc != JIT_OK);
			CHECK_STR(why, want);
			free(want);
		}
		free(path);
	}
	/* Only a link that is not ours could be swapped in a sticky directory. */
	if (me == 0 && lchown(sca, 1, 1) == 0) {
		char *want = xasprintf("directory %s: writable by group or others (mode 1777), and "
				       "ca in it is owned by uid 1, neither root nor uid 0 that jitd "
				       "runs as", sticky);
		CHECK(file_trusted(sca, me, why, sizeof(why)) == JIT_ECONFIG);
		CHECK_STR(why, want);
		free(want);
	}
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		char *p = xasprintf("%s/%s", base, made[i]);
		if (remove(p) != 0)
			perror(p);
		free(p);
	}
	CHECK(rmdir(base) == 0);
	free(ok);
	free(open_);
	free(sticky);
	free(ca);
	free(gw);
	free(sca);
}

/* dump -> load -> dump gives the same text; no secret is printed. */
static void test_dump(void)
{
	static const char text[] =
		"socket_mode = \"0640\";\nclient_timeout = 90;\npid_file = \"/run/j.pid\";\n"
		"directories = ( { name = \"corp\"; uri = \"ldap://a\"; user_base = \"o=\\\"q\\\"\\\\\";\n"
		"  sasl_mech = \"SCRAM-SHA-256\"; sasl_authcid = \"jitd\";\n"
		"  sasl_secret_file = \"SECRETFILE\"; timeout = 90; } );\n"
		"groups = ( { name = \"admins\"; directory = \"corp\"; dn = \"cn=a\";\n"
		"  max_duration = \"1w2d\"; default_duration = 5401; member_attr = \"memberUid\"; } );\n"
		"clients = ( { name = \"h\"; uid = 4000000000L; gid = 3; groups = [ \"*\" ];\n"
		"  ops = [ \"show\", \"grant\" ]; }, { unix_user = \"root\"; },\n"
		"  { name = \"op\"; uid = 5; ops = [ \"force\", \"revoke\" ]; } );\n";
	char *secret = tmp_path("secret"), *real, *dumped = NULL, *dumped2 = NULL;
	char *dump_path = tmp_path("dump.conf");
	struct jit_config *cfg, *cfg2 = NULL;
	size_t len;
	FILE *fp;

	write_file(secret, "hunter2-very-secret\n", 20, 0600);
	real = replace(xstrdup(text), "SECRETFILE", secret);
	cfg = must_load(real);
	if (!cfg)
		goto out;
	fp = open_memstream(&dumped, &len);
	config_dump(cfg, fp);
	fclose(fp);
	CHECK(strstr(dumped, "hunter2") == NULL);
	CHECK(strstr(dumped, secret) != NULL); /* the path is shown */
	CHECK(strstr(dumped, "socket_mode = \"0640\";\n") != NULL);
	CHECK(strstr(dumped, "client_timeout = \"1m30s\";\n") != NULL);
	CHECK(strstr(dumped, "max_duration = \"1w2d\";\n") != NULL);
	CHECK(strstr(dumped, "default_duration = \"1h30m1s\";\n") != NULL);
	CHECK(strstr(dumped, "user_base = \"o=\\\"q\\\"\\\\\";\n") != NULL);
	CHECK(strstr(dumped, "uid = 4000000000L;\n") != NULL);
	CHECK(strstr(dumped, "ops = [ \"grant\", \"show\" ];\n") != NULL);
	CHECK(strstr(dumped, "ops = [ \"revoke\", \"force\" ];\n") != NULL);
	CHECK(strstr(dumped, "ops = [ \"grant\", \"complete\", \"revoke\", \"extend\", \"show\", "
			     "\"list\", \"status\", \"force\" ];\n") != NULL);
	CHECK(strstr(dumped, "name = \"client#2\";\n    uid = 0;\n") != NULL);
	write_file(dump_path, dumped, strlen(dumped), 0600);
	{
		char *errs = NULL;
		CHECK(config_load(dump_path, &cfg2, &errs) == JIT_OK);
		if (errs)
			fprintf(stderr, "dump does not load:\n%s%s", errs, dumped);
		free(errs);
	}
	if (cfg2) {
		fp = open_memstream(&dumped2, &len);
		config_dump(cfg2, fp);
		fclose(fp);
		/* Only the "(from PATH)" comment differs. */
		dumped = replace(dumped, cfg->path, "X");
		dumped2 = replace(dumped2, cfg2->path, "X");
		CHECK_STR(dumped2, dumped);
		CHECK(cfg2->clients[0].uid == 4000000000u);
		CHECK(cfg2->clients[1].uid == 0 && !cfg2->clients[1].has_gid);
	}
out:
	config_free(cfg);
	config_free(cfg2);
	free(dumped);
	free(dumped2);
	free(real);
	free(secret);
	free(dump_path);
}

/* config_policy_same: a reload that changes nothing a request is judged
 * by leaves waiting grants alone; any change there, even one a dump would
 * hide (a ticket_check URL's path), counts. */
static void test_policy_same(void)
{
#define POLICY_GROUP(path)                                                              \
	"groups = ( { name = \"admins\"; directory = \"corp\"; dn = \"cn=admins,dc=ex\";\n"     \
	"  ticket_check = { url = \"https://i.ex/" path "/%s\"; approved_field = \"s\";\n"     \
	"    approved_value = \"ok\"; }; } );\n"
#define POLICY_CLIENT(groups) "clients = ( { uid = 0; groups = [ " groups " ]; } );\n"
	char *g0 = xstrdup(POLICY_GROUP("a")), *g1 = xstrdup(POLICY_GROUP("b"));
	char *c0 = xstrdup(POLICY_CLIENT("\"*\"")), *c1 = xstrdup(POLICY_CLIENT("\"admins\""));
	char *t00 = xasprintf(BASE_DIR "%s%s", g0, c0), *t10 = xasprintf(BASE_DIR "%s%s", g1, c0);
	char *t01 = xasprintf(BASE_DIR "%s%s", g0, c1);
	char *tlog = xasprintf(BASE_DIR "log_level = \"debug\";\n%s%s", g0, c0);
	struct jit_config *a = must_load(t00), *same = must_load(t00), *url = must_load(t10),
			  *cl = must_load(t01), *lvl = must_load(tlog);
	if (a && same && url && cl && lvl) {
		CHECK(config_policy_same(a, same));
		CHECK(config_policy_same(a, lvl));   /* log_level: not a request's business */
		CHECK(!config_policy_same(a, url));  /* the path a dump redacts */
		CHECK(!config_policy_same(a, cl));   /* a client's groups */
	}
	config_free(a);
	config_free(same);
	config_free(url);
	config_free(cl);
	config_free(lvl);
	free(g0), free(g1), free(c0), free(c1), free(t00), free(t10), free(t01), free(tlog);
}

/* The dump shows a ticket_check URL redacted (a token may sit in its path
 * or query), and the dump still loads (the %s is kept). */
static void test_dump_ticket_url(void)
{
	static const struct {
		const char *url, *shown;
	} cases[] = {
		{ "https://itsm.example/api/%s?access_token=SECRET1", "https://itsm.example/***%s" },
		{ "https://itsm.example:8443/SECRET2/t/%s", "https://itsm.example:8443/***%s" },
		{ "https://%s.itsm.example/x?t=SECRET3", "https://%s.itsm.example/***" },
		{ "https://itsm.example/%%SECRET4/%s", "https://itsm.example/***%s" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf(BASE_DIR "groups = ( { name = \"admins\"; "
				       "directory = \"corp\"; dn = \"cn=admins,dc=ex\";\n"
				       "  ticket_check = { url = \"%s\"; approved_field = \"s\";\n"
				       "    approved_value = \"ok\"; }; } );\n", cases[i].url);
		char *want = xasprintf("      url = \"%s\";\n", cases[i].shown);
		struct jit_config *cfg = must_load(text), *again = NULL;
		char *dumped = NULL, *errs = NULL;
		size_t len;
		FILE *fp;

		if (cfg) {
			fp = open_memstream(&dumped, &len);
			config_dump(cfg, fp);
			fclose(fp);
			CHECK(strstr(dumped, "SECRET") == NULL);
			CHECK(strstr(dumped, want) != NULL);
			CHECK(load_text(dumped, &again, &errs) == JIT_OK);
			if (errs)
				fprintf(stderr, "dump does not load:\n%s%s", errs, dumped);
		}
		config_free(cfg);
		config_free(again);
		free(errs);
		free(dumped);
		free(want);
		free(text);
	}
}

/* conf/jitd.conf.example loads once its user and group names exist here. */
static void test_example(void)
{
	char *path = xasprintf("%s/conf/jitd.conf.example", srcdir);
	char *text = read_all(path);
	struct jit_config *cfg;

	CHECK(text != NULL);
	if (!text) {
		fprintf(stderr, "cannot read %s\n", path);
		free(path);
		return;
	}
	text = replace(text, "unix_user = \"helpdesk\"", "unix_user = \"root\"");
	text = replace(text, "unix_group = \"jitd-viewers\"", "unix_group = \"root\"");
	cfg = must_load(text);
	if (cfg) {
		const struct jit_group_cfg *g = config_group(cfg, "domain-admins");
		CHECK(cfg->n_dirs == 1 && cfg->n_groups == 3 && cfg->n_clients == 2);
		CHECK_STR(cfg->dirs[0].sasl_mech, "EXTERNAL");
		CHECK(strncmp(cfg->dirs[0].uri, "ldapi://", 8) == 0);
		CHECK(cfg->dirs[0].sasl_authzid == NULL);
		CHECK(g && g->max_duration == 4 * 3600 && g->default_duration == 3600);
		CHECK(g && g->min_duration == 900 && g->require_ticket && g->ticket_re &&
		      g->ticket_check && g->require_reason && g->require_approver &&
		      g->forbid_self_approval && g->eligible_group && g->deny_users.n == 3 &&
		      g->max_active_per_user == 2 && g->approval_key_file &&
		      g->approval_max_age == 600);
		CHECK(cfg->clients[0].max_requests_per_minute == 120 &&
		      cfg->clients[0].max_duration == 86400);
		CHECK_STR(config_group_member_attr(cfg, config_group(cfg, "shell-sudo")),
			  "memberUid");
		CHECK(cfg->clients[1].ops ==
		      ((1u << OP_SHOW) | (1u << OP_LIST) | (1u << OP_STATUS)));
		config_free(cfg);
	}
	free(text);
	free(path);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * tests/unit/config/NAME.conf is copied into the temporary directory and
 * loaded; NAME.ok holds the expected errors, or, for a file that loads, the
 * output of config_dump().
 */
static void run_golden(const char *dir, const char *file, bool update)
{
	char *src = xasprintf("%s/%s", dir, file);
	char *ok_path = xasprintf("%.*s.ok", (int)(strlen(src) - 5), src);
	char *dst = tmp_path(file), *text = read_all(src), *want = read_all(ok_path);
	char *got = NULL;
	struct jit_config *cfg = NULL;
	size_t len;

	if (!text) {
		CHECK(text != NULL);
		goto out;
	}
	write_file(dst, text, strlen(text), 0600);
	if (config_load(dst, &cfg, &got) == JIT_OK) {
		FILE *fp = open_memstream(&got, &len);
		config_dump(cfg, fp);
		fclose(fp);
	}
	got = strip_tmp(got);
	if (update) {
		write_file(ok_path, got, strlen(got), 0644);
		printf("wrote %s\n", ok_path);
	} else if (!want || strcmp(got, want) != 0) {
		fprintf(stderr, "FAIL golden %s: expected (%s):\n%s--- got:\n%s", file, ok_path,
			want ? want : "(missing)\n", got);
		CHECK(!"golden output differs");
	} else {
		CHECK(true);
	}
out:
	config_free(cfg);
	free(got);
	free(want);
	free(text);
	free(dst);
	free(ok_path);
	free(src);
}

/* config_diff(): the changes collected as "dir/key:R" (R: restart) lines. */
static void collect_diff(void *arg, const char *dir, const char *key, bool restart, bool path)
{
	struct strbuf *sb = arg;
	(void)path;
	char *line = xasprintf("%s/%s:%c\n", dir ? dir : "", key, restart ? 'R' : 'L');
	sb_addstr(sb, line);
	free(line);
}

static char *diff_of(const struct jit_config *a, const struct jit_config *b)
{
	struct strbuf sb = { 0 };
	config_diff(a, b, collect_diff, &sb);
	return sb_steal(&sb);
}

/* What the listener gets: the example with notify receivers, their URLs
 * paths and credentials gone, the rest loading the same, line for line. */
static void test_redacted(void)
{
	char *path = xasprintf("%s/conf/jitd.conf.example", srcdir);
	char *text = read_all(path);
	free(path);
	CHECK(text != NULL);
	if (!text)
		return;
	text = replace(text, "unix_user = \"helpdesk\"", "unix_user = \"root\"");
	text = replace(text, "unix_group = \"jitd-viewers\"", "unix_group = \"root\"");
	/* a ticket_check URL joined from two literals, its %s in the second */
	text = replace(text, "url = \"https://itsm.example.com/api/now/table/change_request/%s\"",
		       "url = \"https://itsm.example.com\"\n        \"/api/now/table/change_request/%s\"");
	char *full = xasprintf("%s\nnotify = (\n"
			       "  { url = \"https://hook:pw@hooks.example.com/services/T0/SECRET1\";"
			       " format = \"slack\"; },\n"
			       "  { url : \"https://siem.example.com/\" /* joined */ \"jitd/SECRET2\"; },\n"
			       "  { url = \"http://127.0.0.1:9/x\\x2fSECRET3?k=SECRET4#SECRET5\"; },\n"
			       /* passwords holding a '/', '?' or '#': no part shown */
			       "  { url = \"https://hook:Pass1/SECRET9@hooks.example.com/x\"; },\n"
			       "  { url = \"https://hook:Pass2?SECRET10@hooks.example.com/x\"; },\n"
			       "  { url = \"https://hook:Pass3#SECRET11@hooks.example.com\"; },\n"
			       /* an '@' in the path or query of a URL with a host */
			       "  { url = \"https://x.webhook.office.com/webhookb2/a@b/In/SECRET12\"; },\n"
			       "  { url = \"https://siem.example.com/in?x=a@SECRET13\"; },\n"
			       "  { url = \"https://intranet/in?x=a@SECRET14\"; }\n"
			       ");\n# url = \"https://hooks.example.com/SECRET6\"\n"
			       "/* url = \"https://hooks.example.com/SECRET7\";\n */\n"
			       "// SECRET8\n",
			       text);
	CHECK(strstr(full, "\"https://itsm.example.com\"\n") != NULL);
	char *red = config_text_redacted(full);
	CHECK(strstr(red, "SECRET") == NULL);
	CHECK(strstr(red, "pw@") == NULL);
	CHECK(strstr(red, "hook:") == NULL && strstr(red, "Pass") == NULL);
	CHECK(strstr(red, "SECRET6") == NULL && strstr(red, "SECRET8") == NULL); /* comments */
	size_t lines_a = 0, lines_b = 0;
	for (const char *p = full; *p; p++)
		lines_a += *p == '\n';
	for (const char *p = red; *p; p++)
		lines_b += *p == '\n';
	CHECK(lines_a == lines_b);
	struct jit_config *a = must_load(full), *b = must_load(red);
	CHECK(a && b);
	if (a && b) {
		CHECK(a->n_groups == b->n_groups && a->n_clients == b->n_clients &&
		      a->n_dirs == b->n_dirs && b->n_notify == 9);
		CHECK_STR(b->notify[0].url, "https://hooks.example.com/");
		CHECK_STR(b->notify[0].format, "slack");
		CHECK_STR(b->notify[1].url, "https://siem.example.com/");
		CHECK_STR(b->notify[2].url, "http://127.0.0.1:9/");
		CHECK_STR(b->notify[3].url, "https://redacted.invalid/");
		CHECK_STR(b->notify[4].url, "https://redacted.invalid/");
		CHECK_STR(b->notify[5].url, "https://redacted.invalid/");
		CHECK_STR(b->notify[6].url, "https://x.webhook.office.com/");
		CHECK_STR(b->notify[7].url, "https://siem.example.com/");
		CHECK_STR(b->notify[8].url, "https://intranet/");
		const struct jit_group_cfg *g = config_group(b, "domain-admins");
		CHECK(g && g->ticket_check &&
		      strcmp(g->ticket_check->url, "https://itsm.example.com/%s") == 0);
		CHECK_STR(b->dirs[0].uri, a->dirs[0].uri);
	}
	config_free(a);
	config_free(b);
	free(red);
	free(full);
	/* a %s written as an escape, and one in the host: still one %s */
	static const char *const odd[] = {
		"https://itsm.example.com/api/\\x25s?SECRET",
		"https://%s.itsm.example.com/api/SECRET",
		"https://itsm.example.com/%%SECRET/%s",
	};
	static const char *const want[] = {
		"https://itsm.example.com/%s",
		"https://redacted.invalid/%s",
		"https://itsm.example.com/%s",
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		char *u = xasprintf("url = \"%s\"", odd[i]);
		char *t3 = replace(xstrdup(text), "url = \"https://itsm.example.com\"\n        "
						  "\"/api/now/table/change_request/%s\"", u);
		CHECK(strstr(t3, odd[i]) != NULL);
		struct jit_config *c1 = must_load(t3);
		char *r = config_text_redacted(t3);
		struct jit_config *c2 = must_load(r);
		const struct jit_group_cfg *g2 = c2 ? config_group(c2, "domain-admins") : NULL;
		CHECK(c1 && g2 && g2->ticket_check && strcmp(g2->ticket_check->url, want[i]) == 0);
		CHECK(strstr(r, "SECRET") == NULL);
		config_free(c1);
		config_free(c2);
		free(r);
		free(t3);
		free(u);
	}
	free(text);
}

static void test_diff(void)
{
	struct jit_config *a = must_load(BASE "log_level = \"info\";\n");
	struct jit_config *b = must_load(
		"directories = ( { name = \"corp\"; uri = \"ldaps://dc1 ldaps://dc2\";\n"
		"  user_base = \"ou=people,dc=ex\"; member_attr = \"uniqueMember\";\n"
		"  placeholder_member = \"cn=nobody,dc=ex\"; connections = 8;\n"
		"  timeout = \"10s\"; starttls = false; } );\n" BASE_GROUP
		"log_level = \"debug\"; socket_mode = \"0600\"; retry_max_interval = \"1m\";\n"
		"client_timeout = 60; state_dir = \"/var/lib/jitd\";\n");
	if (!a || !b) {
		config_free(a);
		config_free(b);
		return;
	}
	char *d = diff_of(a, a);
	CHECK_STR(d, ""); /* nothing changed */
	free(d);
	/* table order; values written out as their defaults are no change */
	d = diff_of(a, b);
	CHECK_STR(d, "/socket_mode:R\n"
		     "/log_level:L\n"
		     "/retry_max_interval:R\n"
		     "corp/uri:R\n"
		     "corp/member_attr:L\n"
		     "corp/placeholder_member:L\n"
		     "corp/connections:R\n");
	free(d);
	config_free(b);
	/* a directory only one of them names is not compared (reload refuses it) */
	b = must_load("directories = ( { name = \"other\"; uri = \"ldapi:///\";\n"
		      "  user_base = \"ou=people,dc=ex\"; } );\n"
		      "groups = ( { name = \"admins\"; directory = \"other\";\n"
		      "  dn = \"cn=admins,dc=ex\"; } );\nlog_level = \"info\";\n");
	if (b) {
		d = diff_of(a, b);
		CHECK_STR(d, "");
		free(d);
	}
	config_free(a);
	config_free(b);
}

static void test_golden(void)
{
	char *dir = xasprintf("%s/tests/unit/config", srcdir);
	const char *upd = getenv("JITD_GOLDEN_UPDATE");
	bool update = upd && strcmp(upd, "1") == 0;
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, alphasort), n_conf = 0;

	if (n < 0) {
		fprintf(stderr, "cannot read %s: %s\n", dir, strerror(errno));
		CHECK(n >= 0);
	}
	for (int i = 0; i < n; i++) {
		if (ends_with(ents[i]->d_name, ".conf")) {
			run_golden(dir, ents[i]->d_name, update);
			n_conf++;
		}
		free(ents[i]);
	}
	free(ents);
	CHECK(n_conf >= 10); /* the golden set did not silently vanish */
	free(dir);
}

/* The temporary directory is flat: unlink its files, then remove it. */
static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = tmp_path(e->d_name);
		if (unlink(p) != 0)
			perror(p);
		free(p);
	}
	if (d)
		closedir(d);
	if (rmdir(tmpdir) != 0)
		perror(tmpdir);
}

int main(int argc, char **argv)
{
	const char *env = getenv("JITD_SRCDIR");

	if (argc > 1)
		srcdir = argv[1];
	else if (env && *env)
		srcdir = env;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/jitd-cfg.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_ops();
	test_full();
	test_defaults();
	test_each_error();
	test_multiple_errors();
	test_lexer();
	test_file_checks();
	test_ca_file_walk();
	test_dump();
	test_diff();
	test_redacted();
	test_dump_ticket_url();
	test_policy_same();
	test_example();
	test_golden();
	remove_tmpdir();
	T_DONE();
}
