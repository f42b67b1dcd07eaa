/*
 * config.c - jitd.conf (libconfig syntax) -> immutable struct jit_config:
 * loading and freeing, lookups, the top-level keys and their checks
 * (socket, identities, the files the config names). Trust boundary: the
 * file is read and its mode checked by configfile.c before libconfig sees
 * it; every key passes through its table (configkey.c); the sections are
 * configsection.c's, config_dump() and config_diff() configdump.c's. No
 * secret is read here, only paths.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "configpriv.h"
#include "log.h"
#include "secret.h"
#include "util.h"

static const char *const op_names[OP__COUNT] = {
	"grant", "complete", "revoke", "extend", "show", "list", "status",
};

const char *jit_op_name(enum jit_op op)
{
	if ((int)op < 0 || op >= OP__COUNT)
		return NULL;
	return op_names[op];
}

int jit_op_parse(const char *s, enum jit_op *out)
{
	for (int i = 0; s && i < OP__COUNT; i++) {
		if (strcmp(s, op_names[i]) == 0) {
			*out = (enum jit_op)i;
			return JIT_OK;
		}
	}
	return JIT_EUNKNOWNOP;
}

/* ---- the top level ---- */

static const char *const level_choices[] = { "debug", "info", "warning", "error", NULL };
static const char *const facility_choices[] = {
	"auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7", NULL,
};

const struct key top_keys[] = {
	R_STR(socket_path, struct jit_config, KF_NONEMPTY | KF_ABSPATH, "/run/jitd/jitd.sock"),
	R_NUM(socket_mode, K_MODE, struct jit_config, 0660, 0, 0777),
	R_STR(socket_group, struct jit_config, KF_EMPTYNULL, NULL),
	R_STR(state_dir, struct jit_config, KF_NONEMPTY | KF_ABSPATH, "/var/lib/jitd"),
	R_STR(audit_log, struct jit_config, KF_NONEMPTY | KF_ABSPATH, "/var/log/jitd/audit.log"),
	R_STR(pid_file, struct jit_config, KF_EMPTYNULL | KF_ABSPATH, NULL),
	ENUM(log_level, struct jit_config, "info", level_choices),
	NUM(max_clients, K_INT, struct jit_config, 128, 1, 10000),
	/* 0 (outside the bounds on purpose): a quarter of max_clients, set by
	 * check_top() */
	NUM(max_clients_per_uid, K_INT, struct jit_config, 0, 1, 10000),
	NUM(max_request_size, K_INT64, struct jit_config, 65536, 1024, 1048576),
	NUM(client_timeout, K_DUR, struct jit_config, 60, 1, 86400),
	R_NUM(retry_min_interval, K_DUR, struct jit_config, 1, 1, 3600),
	R_NUM(retry_max_interval, K_DUR, struct jit_config, 30, 1, 86400),
	R_STR(user, struct jit_config, KF_EMPTYNULL | KF_NAME, NULL),
	R_STR(group, struct jit_config, KF_EMPTYNULL | KF_NAME, NULL),
	R_STR(listener_user, struct jit_config, KF_EMPTYNULL | KF_NAME, NULL),
	NUM(reconcile_interval, K_DUR, struct jit_config, 300, 1, 7 * 86400),
	SECTION(directories),
	SECTION(groups),
	SECTION(clients),
	BOOLK(syslog, struct jit_config),
	ENUM(syslog_facility, struct jit_config, "authpriv", facility_choices),
	NUM(expiring_soon_before, K_DUR, struct jit_config, 600, 0, 30 * 86400),
	SECTION(notify),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

/* A user key: resolved into *uid / *gid, or an error. */
static bool resolve_user(struct ctx *cx, const config_setting_t *root, const char *key,
			 const char *name, uid_t *uid, gid_t *gid)
{
	int64_t u = 0, g = 0;
	int err, rc = config_lookup_id(name, false, &u, &g, &err);

	if (rc == JIT_OK) {
		*uid = (uid_t)u;
		*gid = (gid_t)g;
	}

	if (rc == JIT_ENOTFOUND)
		cerr(cx, key_line(root, key), key, "no such user \"%s\"", name);
	else if (rc != JIT_OK)
		cerr(cx, key_line(root, key), key, "cannot look up \"%s\": %s", name, strerror(err));
	return rc == JIT_OK;
}

/* user, group and listener_user: the identities of the two processes. */
static void check_identities(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	int64_t gid;
	uid_t engine_uid = geteuid();

	if (cfg->group && !cfg->user)
		cerr(cx, key_line(root, "group"), "group", "needs user");
	if (cfg->user && resolve_user(cx, root, "user", cfg->user, &cfg->run_uid, &cfg->run_gid)) {
		cfg->has_run_ids = true;
		engine_uid = cfg->run_uid;
		if (cfg->group) {
			/* A numeric group is a gid, bounded as socket_group's is:
			 * cast unchecked, 4294967296 would run jitd as group 0. */
			gid = cfg->run_gid;
			if (strspn(cfg->group, "0123456789") != strlen(cfg->group))
				resolve_id(cx, root, "group", cfg->group, true, &gid);
			else if (parse_int64(cfg->group, 0, (int64_t)UINT32_MAX - 1, &gid) != JIT_OK)
				cerr(cx, key_line(root, "group"), "group",
				     "gid %s is out of range (0 .. %lu)", cfg->group,
				     (unsigned long)UINT32_MAX - 1);
			cfg->run_gid = (gid_t)gid;
		}
	}
	/* The listener must not be root, nor the user that owns the secrets. */
	const char *lu = cfg->listener_user ? cfg->listener_user : geteuid() == 0 ? "nobody" : NULL;
	if (!lu)
		return;
	if (!resolve_user(cx, root, "listener_user", lu, &cfg->listener_uid, &cfg->listener_gid))
		return;
	if (cfg->listener_uid == 0)
		cerr(cx, key_line(root, "listener_user"), "listener_user",
		     "\"%s\" is root: the listener must run unprivileged", lu);
	else if (cfg->listener_uid == engine_uid)
		cerr(cx, key_line(root, "listener_user"), "listener_user",
		     "\"%s\" is also the user jitd runs as, who owns the secret files", lu);
	else if (cfg->listener_gid == 0 ||
		 (cfg->has_run_ids && cfg->listener_gid == cfg->run_gid))
		/* Security: jitd.conf is kept readable by jitd's group (0640
		 * root:jitd), and it may hold what the listener is given only
		 * redacted (a ticket_check url's query) */
		cerr(cx, key_line(root, "listener_user"), "listener_user",
		     "\"%s\" has gid %lu, %s: the listener needs a group of its own", lu,
		     (unsigned long)cfg->listener_gid,
		     cfg->listener_gid == 0 ? "root's group" : "the group jitd runs as");
	else
		cfg->has_listener_ids = true;
}

/* With CONFIG_CHECK_FILES: every file remembered by file_ref(). */
static void check_files(struct ctx *cx, const struct jit_config *cfg)
{
	uid_t owner = config_run_uid(cfg);
	char why[1024];

	for (size_t i = 0; i < cx->n_files; i++) {
		const struct file_ref *f = &cx->files[i];
		if (f->secret) {
			if (secret_file_check(f->path, owner, why, sizeof(why)) != JIT_OK)
				cerr(cx, f->line, f->key, "%s: %s", f->path, why);
		} else if (file_trusted(f->path, owner, why, sizeof(why)) != JIT_OK) {
			/* Robustness: a CA file decides whom jitd believes is its
			 * directory or its ticket system; whoever may write it, or
			 * swap it or a directory or link on the way to it, could
			 * add their own CA. libldap and libcurl read it again for
			 * each connection. */
			cerr(cx, f->line, f->key, "%s: %s", f->path, why);
		}
	}
}

uid_t config_run_uid(const struct jit_config *cfg)
{
	return cfg->has_run_ids && !cfg->running ? cfg->run_uid : geteuid();
}

static void check_top(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
{
	struct sockaddr_un sa;
	enum log_level lvl;
	int64_t gid;

	if (cfg->socket_path && strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		cerr(cx, key_line(root, "socket_path"), "socket_path", "longer than %zu bytes",
		     sizeof(sa.sun_path) - 1);
	if (cfg->log_level && log_level_parse(cfg->log_level, &lvl) != JIT_OK)
		cerr(cx, key_line(root, "log_level"), "log_level", "not understood by the logger");
	if (cfg->retry_min_interval > cfg->retry_max_interval)
		cerr(cx, key_line(root, "retry_min_interval"), "retry_min_interval",
		     "longer than retry_max_interval");
	/* Robustness: by default no uid may hold more than a quarter of the
	 * connections, so one local user cannot take every slot. */
	if (cfg->max_clients_per_uid == 0)
		cfg->max_clients_per_uid = cfg->max_clients >= 4 ? cfg->max_clients / 4 : 1;
	else if (cfg->max_clients_per_uid > cfg->max_clients)
		cerr(cx, key_line(root, "max_clients_per_uid"), "max_clients_per_uid",
		     "more than max_clients (%d)", cfg->max_clients);
	/* A numeric socket_group is a gid and needs no lookup (server.c
	 * treats it the same way). */
	if (cfg->socket_group &&
	    strspn(cfg->socket_group, "0123456789") != strlen(cfg->socket_group))
		resolve_id(cx, root, "socket_group", cfg->socket_group, true, &gid);
	else if (cfg->socket_group &&
		 parse_int64(cfg->socket_group, 0, (int64_t)UINT32_MAX - 1, &gid) != JIT_OK)
		cerr(cx, key_line(root, "socket_group"), "socket_group",
		     "gid %s is out of range (0 .. %lu)", cfg->socket_group,
		     (unsigned long)UINT32_MAX - 1);
}

/* ---- load / free ---- */

static void dir_free(struct jit_dir_cfg *d)
{
	free_strings(d, dir_keys);
}

static void group_free(struct jit_group_cfg *g)
{
	for (size_t j = 0; j < g->n_standing_members; j++)
		free(g->standing_members[j]);
	free(g->standing_members);
	if (g->ticket_re) {
		regfree(g->ticket_re);
		free(g->ticket_re);
	}
	if (g->ticket_check) {
		free_strings(g->ticket_check, ticket_keys);
		free(g->ticket_check);
	}
	free_strings(g, group_keys);
}

void config_free(struct jit_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_dirs; i++)
		dir_free(&cfg->dirs[i]);
	for (size_t i = 0; i < cfg->n_groups; i++)
		group_free(&cfg->groups[i]);
	for (size_t i = 0; i < cfg->n_clients; i++) {
		struct jit_client_cfg *c = &cfg->clients[i];
		for (size_t j = 0; j < c->n_groups; j++)
			free(c->groups[j]);
		free(c->groups);
		free(c->name);
	}
	free(cfg->dirs);
	free(cfg->groups);
	free(cfg->clients);
	for (size_t i = 0; i < cfg->n_notify; i++) {
		struct jit_notify_cfg *n = &cfg->notify[i];
		for (size_t j = 0; j < n->n_events; j++)
			free(n->events[j]);
		free(n->events);
		free(n->url);
		free(n->format);
		free(n->secret_file);
	}
	free(cfg->notify);
	free_strings(cfg, top_keys);
	free(cfg->path);
	free(cfg->text);
	free(cfg);
}

/* Parses text (already checked by lex_scan) into cfg with libconfig. */
static void parse_text(struct ctx *cx, const char *text, struct jit_config *cfg, unsigned flags)
{
	config_t lc;
	config_setting_t *root;

	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		cerr(cx, config_error_line(&lc), NULL, "%s", config_error_text(&lc));
		goto out;
	}
	root = config_root_setting(&lc);
	parse_scope(cx, root, top_keys, cfg, "the top level");
	check_top(cx, root, cfg);
	parse_directories(cx, root, cfg);
	parse_groups(cx, root, cfg);
	parse_clients(cx, root, cfg);
	parse_notify(cx, root, cfg);
	if (!(flags & CONFIG_NO_IDS))
		check_identities(cx, root, cfg);
	cfg->running = (flags & CONFIG_RUNNING) != 0;
	if (flags & CONFIG_CHECK_FILES)
		check_files(cx, cfg);
out:
	config_destroy(&lc);
}

int config_load(const char *path, struct jit_config **out, char **errors)
{
	return config_load_ex(path, 0, out, errors);
}

/* Parses text (NUL-terminated, len bytes) from a source named path. */
static int load_text(struct ctx *cx, const char *path, char *text, size_t len, unsigned flags,
		     struct jit_config **out)
{
	struct jit_config *cfg;

	if (lex_scan(cx, text, len) != JIT_OK)
		return JIT_ECONFIG;
	static _Atomic uint64_t loads;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->serial = ++loads;
	cfg->path = xstrdup(path);
	cfg->text = xstrdup(text);
	parse_text(cx, text, cfg, flags);
	if (cx->n_errs != 0) {
		config_free(cfg);
		return JIT_ECONFIG;
	}
	*out = cfg;
	return JIT_OK;
}

/* The errors of cx into *errors (if wanted), and cx's memory freed. */
static int finish(struct ctx *cx, int rc, char **errors)
{
	if (rc != JIT_OK && errors)
		*errors = errors_join(cx);
	else
		free(errors_join(cx));
	free(cx->files);
	return rc;
}

int config_load_ex(const char *path, unsigned flags, struct jit_config **out, char **errors)
{
	struct ctx cx;
	char *text = NULL;
	int rc = JIT_ECONFIG;

	memset(&cx, 0, sizeof(cx));
	cx.path = path ? path : "(null)";
	if (!path)
		cerr(&cx, 0, NULL, "no config file given");
	else if (read_config_file(&cx, path, &text) == JIT_OK)
		rc = load_text(&cx, path, text, strlen(text), flags, out);
	free(text);
	return finish(&cx, rc, errors);
}

int config_load_text(const char *label, const char *text, unsigned flags,
		     struct jit_config **out, char **errors)
{
	struct ctx cx;
	char *copy = xstrdup(text);
	int rc;

	memset(&cx, 0, sizeof(cx));
	cx.path = label;
	rc = load_text(&cx, label, copy, strlen(copy), flags, out);
	free(copy);
	return finish(&cx, rc, errors);
}

/* ---- lookups ---- */

const struct jit_group_cfg *config_group(const struct jit_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_groups; i++)
		if (cfg->groups[i].name && strcmp(cfg->groups[i].name, name) == 0)
			return &cfg->groups[i];
	return NULL;
}

const struct jit_dir_cfg *config_directory(const struct jit_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_dirs; i++)
		if (cfg->dirs[i].name && strcmp(cfg->dirs[i].name, name) == 0)
			return &cfg->dirs[i];
	return NULL;
}

const char *config_group_member_attr(const struct jit_config *cfg, const struct jit_group_cfg *g)
{
	if (g->member_attr)
		return g->member_attr;
	return cfg->dirs[g->dir_index].member_attr;
}

enum jit_reconcile config_group_reconcile(const struct jit_group_cfg *g)
{
	if (g->reconcile && strcmp(g->reconcile, "off") == 0)
		return RECONCILE_OFF;
	if (g->reconcile && strcmp(g->reconcile, "enforce") == 0)
		return RECONCILE_ENFORCE;
	return RECONCILE_REPORT;
}

const char *config_group_placeholder(const struct jit_config *cfg, const struct jit_group_cfg *g)
{
	if (g->placeholder_member)
		return *g->placeholder_member ? g->placeholder_member : NULL;
	return cfg->dirs[g->dir_index].placeholder_member;
}
