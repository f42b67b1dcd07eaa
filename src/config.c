/*
 * config.c - jitd.conf (libconfig syntax) -> immutable struct jit_config.
 * Trust boundary: the file is trusted only if nobody but its owner (root or
 * the daemon's user) can write it, so its mode is checked on the open
 * descriptor before a byte is parsed, and @include (which would pull in
 * files that were never checked) is refused. Every key comes from a table
 * with type, default and bounds; all problems are collected as
 * "FILE:LINE: KEY: message" lines. No secret is read here, only paths.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "escape.h"
#include "log.h"
#include "secret.h"
#include "util.h"

#define CFG_MAX_BYTES (1024 * 1024) /* a config file larger than this is refused */
#define CFG_MAX_LINES 65535         /* libconfig keeps line numbers in 16 bits */
#define CFG_MAX_ERRORS 50           /* report this many, then summarize */

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

/* ---- error collection ---- */

struct cfg_error {
	int line; /* 0: about the whole file */
	int seq;  /* discovery order, to keep the sort stable */
	char *text;
};

/* An integer literal libconfig 1.5 would silently truncate to 32 bits. */
struct bad_int {
	int line;
	char key[64];
};

/* A file the config names, checked at the end with CONFIG_CHECK_FILES. */
struct file_ref {
	const char *key, *path; /* path points into the config being built */
	int line;
	bool secret;
};

struct ctx {
	const char *path;
	struct file_ref *files;
	size_t n_files;
	struct cfg_error *errs;
	size_t n_errs, cap_errs;
	struct bad_int *bad;
	size_t n_bad;
};

static void cerr(struct ctx *cx, int line, const char *key, const char *fmt, ...) JIT_PRINTF(4, 5);

static void cerr(struct ctx *cx, int line, const char *key, const char *fmt, ...)
{
	struct strbuf sb = { 0 };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, not lost */
	va_end(ap);
	sb_addstr(&sb, cx->path);
	if (line > 0)
		sb_addf(&sb, ":%d", line);
	sb_addstr(&sb, ": ");
	if (key)
		sb_addf(&sb, "%s: ", key);
	sb_addf(&sb, "%s\n", msg);
	if (cx->n_errs == cx->cap_errs) {
		cx->cap_errs = cx->cap_errs ? cx->cap_errs * 2 : 8;
		cx->errs = xrealloc(cx->errs, cx->cap_errs * sizeof(*cx->errs));
	}
	cx->errs[cx->n_errs].line = line;
	cx->errs[cx->n_errs].seq = (int)cx->n_errs;
	cx->errs[cx->n_errs].text = sb_steal(&sb);
	cx->n_errs++;
	sb_free(&sb);
}

static int err_cmp(const void *a, const void *b)
{
	const struct cfg_error *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* All errors in line order, at most CFG_MAX_ERRORS of them; frees them. */
static char *errors_join(struct ctx *cx)
{
	struct strbuf sb = { 0 };

	if (cx->n_errs > 1)
		qsort(cx->errs, cx->n_errs, sizeof(*cx->errs), err_cmp);
	for (size_t i = 0; i < cx->n_errs; i++) {
		if (i < CFG_MAX_ERRORS)
			sb_addstr(&sb, cx->errs[i].text);
		free(cx->errs[i].text);
	}
	if (cx->n_errs > CFG_MAX_ERRORS)
		sb_addf(&sb, "%s: %zu more errors not shown\n", cx->path,
			cx->n_errs - CFG_MAX_ERRORS);
	free(cx->errs);
	cx->errs = NULL;
	cx->n_errs = cx->cap_errs = 0;
	return sb_steal(&sb);
}

/* Remembers a file key of scope (if set) for check_files(). */
static void file_ref(struct ctx *cx, const config_setting_t *scope, const char *key,
		     const char *path, bool secret)
{
	config_setting_t *m;

	if (!path || !*path || !(m = config_setting_get_member(scope, key)))
		return;
	cx->files = xrealloc(cx->files, (cx->n_files + 1) * sizeof(*cx->files));
	cx->files[cx->n_files++] = (struct file_ref){ key, path,
						      (int)config_setting_source_line(m), secret };
}

/* ---- reading the file ---- */

/*
 * Opens path, checks the descriptor (regular file, owner, not writable by
 * group or others, size) and reads it whole. Checking the open descriptor,
 * not the name, leaves no window for the file to be swapped in between.
 */
static int read_config_file(struct ctx *cx, const char *path, char **textp)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, rc = JIT_ECONFIG;

	/* O_NONBLOCK: a FIFO in the config's place must not hang the load. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cerr(cx, 0, NULL, "cannot open: %s", strerror(errno));
		return JIT_ECONFIG;
	}
	if (fstat(fd, &st) != 0) {
		cerr(cx, 0, NULL, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		cerr(cx, 0, NULL, "config file is not a regular file");
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		cerr(cx, 0, NULL, "config file is writable by others (mode %04o)",
		     (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		cerr(cx, 0, NULL, "config file is owned by uid %lu, not by root or uid %lu",
		     (unsigned long)st.st_uid, (unsigned long)geteuid());
		goto out;
	}
	if (st.st_size > CFG_MAX_BYTES) {
		cerr(cx, 0, NULL, "config file is larger than %d bytes", CFG_MAX_BYTES);
		goto out;
	}
	text = xmalloc((size_t)st.st_size + 2);
	for (;;) {
		/* Read one byte beyond the size fstat saw to notice growth. */
		ssize_t n = read(fd, text + got, (size_t)st.st_size + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cerr(cx, 0, NULL, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			cerr(cx, 0, NULL, "config file changed while being read");
			goto out;
		}
	}
	text[got] = '\0';
	if (memchr(text, '\0', got)) {
		cerr(cx, 0, NULL, "config file contains a NUL byte");
		goto out;
	}
	*textp = text;
	text = NULL;
	rc = JIT_OK;
out:
	free(text);
	close(fd);
	return rc;
}

/*
 * Checks an integer literal token t[0..n). libconfig 1.5 stores an integer
 * without an L suffix in an int and silently truncates larger values
 * (uid = 4294967296 would become uid 0), so those are recorded and the
 * getter reports them instead of using the truncated value.
 */
static void lex_number(struct ctx *cx, const char *t, size_t n, int line, const char *key)
{
	bool neg = false, hex = false;
	size_t i = 0, digits = 0;
	uint64_t v = 0;

	if (t[i] == '-' || t[i] == '+')
		neg = t[i++] == '-';
	if (n - i > 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
		hex = true;
		i += 2;
	}
	for (; i < n; i++) {
		int d;
		if (t[i] >= '0' && t[i] <= '9')
			d = t[i] - '0';
		else if (hex && isxdigit((unsigned char)t[i]))
			d = tolower((unsigned char)t[i]) - 'a' + 10;
		else
			break;
		if (v <= UINT32_MAX)
			v = v * (hex ? 16 : 10) + (uint64_t)d;
		digits++;
	}
	if (digits == 0 || (i == n - 1 && t[i] == 'L') ||
	    (i == n - 2 && t[i] == 'L' && t[i + 1] == 'L'))
		return; /* nothing, or a 64-bit literal that libconfig keeps whole */
	if (i != n)
		return; /* a float or junk: libconfig types or refuses it */
	if (v <= (uint64_t)INT32_MAX || (neg && !hex && v == (uint64_t)INT32_MAX + 1))
		return;
	cx->bad = xrealloc(cx->bad, (cx->n_bad + 1) * sizeof(*cx->bad));
	cx->bad[cx->n_bad].line = line;
	snprintf(cx->bad[cx->n_bad].key, sizeof(cx->bad[cx->n_bad].key), "%s", key);
	cx->n_bad++;
}

/*
 * A light pass over the raw text before libconfig sees it: counts lines,
 * refuses @include, and finds integer literals that would be truncated.
 * It knows strings and comments so that neither can fool it.
 */
static int lex_scan(struct ctx *cx, const char *t, size_t len)
{
	char key[64] = "";
	int line = 1, rc = JIT_OK;
	size_t i = 0;

	while (i < len) {
		char c = t[i], nx = i + 1 < len ? t[i + 1] : '\0';
		if (c == '\n') {
			line++;
			i++;
		} else if (c == '"') {
			for (i++; i < len && t[i] != '"'; i++) {
				if (t[i] == '\\' && i + 1 < len)
					i++;
				line += t[i] == '\n';
			}
			i++;
		} else if (c == '#' || (c == '/' && nx == '/')) {
			while (i < len && t[i] != '\n')
				i++;
		} else if (c == '/' && nx == '*') {
			for (i += 2; i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/');
			     i++)
				line += t[i] == '\n';
			i += 2;
		} else if (c == '@' && strncmp(t + i, "@include", 8) == 0) {
			cerr(cx, line, "@include",
			     "include directives are not supported "
			     "(only this file's permissions are checked)");
			rc = JIT_ECONFIG;
			i++;
		} else if (isalpha((unsigned char)c) || c == '*') {
			size_t j = i;
			while (j < len && (isalnum((unsigned char)t[j]) || strchr("-_*", t[j])))
				j++;
			snprintf(key, sizeof(key), "%.*s", (int)(j - i), t + i);
			i = j;
		} else if (isdigit((unsigned char)c) ||
			   ((c == '-' || c == '+') && (isdigit((unsigned char)nx) || nx == '.'))) {
			size_t j = i + 1;
			while (j < len && (isalnum((unsigned char)t[j]) || t[j] == '.' ||
					   ((t[j] == '-' || t[j] == '+') &&
					    (t[j - 1] == 'e' || t[j - 1] == 'E'))))
				j++;
			lex_number(cx, t + i, j - i, line, key);
			i = j;
		} else {
			i++;
		}
		if (line > CFG_MAX_LINES) {
			cerr(cx, 0, NULL, "config file has more than %d lines", CFG_MAX_LINES);
			return JIT_ECONFIG;
		}
	}
	return rc;
}

/* ---- key tables ---- */

enum ktype {
	K_STR,     /* char * */
	K_BOOL,    /* bool */
	K_INT,     /* int */
	K_INT64,   /* int64_t */
	K_DUR,     /* int64_t seconds: integer or duration string */
	K_MODE,    /* mode_t: string of octal digits */
	K_LIST,    /* struct strlist: list or array of strings */
	K_SECTION, /* directories / groups / clients: parsed on their own */
};

#define KF_REQUIRED 0x01  /* must be present */
#define KF_NONEMPTY 0x02  /* "" is an error */
#define KF_EMPTYNULL 0x04 /* "" means not set */
#define KF_ABSPATH 0x08   /* an absolute path */
#define KF_ATTR 0x10      /* an LDAP attribute name */
#define KF_NAME 0x20      /* a name: printable, no spaces, not "*" */
#define KF_RESTART 0x40   /* a reload does not apply it: the value jitd started
			   * with stays in force until the next start (config_diff) */

/* The list type is public (struct jit_strlist, config.h): groups keep theirs. */
#define strlist jit_strlist

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	unsigned flags;
	const char *sdef;           /* K_STR default (NULL: none) */
	int64_t idef, min, max;     /* numeric default and bounds */
	const char *const *choices; /* K_STR: the allowed values */
};

static const char *const mech_choices[] = {
	"EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5", "GSSAPI", "PLAIN", NULL,
};
static const char *const tls_choices[] = { "never", "allow", "try", "demand", NULL };
static const char *const level_choices[] = { "debug", "info", "warning", "error", NULL };
static const char *const reconcile_choices[] = { "off", "report", "enforce", NULL };
static const char *const facility_choices[] = {
	"auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7", NULL,
};
static const char *const notify_format_choices[] = { "json", "slack", "teams", NULL };
const char *const config_notify_events[] = {
	"granted", "expired", "completed", "revoked", "refused", "revoke_failed", "drift",
	"expiring_soon", NULL,
};

/* clang-format off */
#define STR(n, st, fl, def) { #n, K_STR, offsetof(st, n), fl, def, 0, 0, 0, NULL }
#define ENUM(n, st, def, ch) { #n, K_STR, offsetof(st, n), KF_NONEMPTY, def, 0, 0, 0, ch }
#define NUM(n, t, st, def, lo, hi) { #n, t, offsetof(st, n), 0, NULL, def, lo, hi, NULL }
#define BOOLK(n, st) { #n, K_BOOL, offsetof(st, n), 0, NULL, 0, 0, 1, NULL }
#define SECTION(n) { #n, K_SECTION, 0, 0, NULL, 0, 0, 0, NULL }
/* The same for settings a reload cannot apply (KF_RESTART). */
#define R_STR(n, st, fl, def) STR(n, st, (fl) | KF_RESTART, def)
#define R_ENUM(n, st, def, ch) { #n, K_STR, offsetof(st, n), KF_NONEMPTY | KF_RESTART, def, 0, 0, 0, ch }
#define R_NUM(n, t, st, def, lo, hi) { #n, t, offsetof(st, n), KF_RESTART, NULL, def, lo, hi, NULL }
#define R_BOOLK(n, st) { #n, K_BOOL, offsetof(st, n), KF_RESTART, NULL, 0, 0, 1, NULL }
/* clang-format on */

/*
 * R_*: a reload leaves the running value in force until the next start (the
 * socket, the files, the identities, and every directory setting that shapes
 * its connections and worker threads); jitd logs a warning per such setting
 * a reload changes. The others take effect at the reload, for new requests.
 */
static const struct key top_keys[] = {
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

/* A reload applies member_attr and placeholder_member to new grants: each
 * live grant carries the group DN, attribute and placeholder it was granted
 * with (store.h), and ends with them. */
static const struct key dir_keys[] = {
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

static const struct key group_keys[] = {
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

static const struct key ticket_keys[] = {
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

/* ---- typed getters ---- */

static int line_of(const config_setting_t *s)
{
	return (int)config_setting_source_line(s);
}

/* Line of member key of scope if present, else the scope's own line. */
static int key_line(const config_setting_t *scope, const char *key)
{
	config_setting_t *m = config_setting_get_member(scope, key);
	return m ? line_of(m) : line_of(scope);
}

static bool is_bad_int(const struct ctx *cx, const config_setting_t *s)
{
	for (size_t i = 0; i < cx->n_bad; i++)
		if (cx->bad[i].line == line_of(s) &&
		    strcmp(cx->bad[i].key, config_setting_name(s)) == 0)
			return true;
	return false;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* An LDAP attribute description: a keystring (RFC 4512) or a numeric OID. */
static bool attr_ok(const char *s)
{
	if (isalpha((unsigned char)s[0])) {
		for (; *s; s++)
			if (!isalnum((unsigned char)*s) && *s != '-')
				return false;
		return true;
	}
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && !(*p == '.' && p != s && p[1] && p[1] != '.'))
			return false;
	return *s != '\0';
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CFG_NAME_MAX || strcmp(s, "*") == 0)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void choices_text(const char *const *ch, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (; *ch && used < len; ch++) {
		int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *ch);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int get_str(struct ctx *cx, const config_setting_t *s, const struct key *k, char **dst)
{
	const char *v = config_setting_get_string(s), *key = k->name;
	int line = line_of(s);

	if (config_setting_type(s) != CONFIG_TYPE_STRING || !v) {
		cerr(cx, line, key, "expected a string");
		return JIT_ECONFIG;
	}
	if (has_control(v)) {
		cerr(cx, line, key, "contains a control character");
		return JIT_ECONFIG;
	}
	if (*v == '\0' && (k->flags & KF_EMPTYNULL)) {
		free(*dst);
		*dst = NULL;
		return JIT_OK;
	}
	if (*v == '\0' && (k->flags & (KF_NONEMPTY | KF_REQUIRED | KF_NAME))) {
		cerr(cx, line, key, "must not be empty");
		return JIT_ECONFIG;
	}
	if ((k->flags & KF_NAME) && !name_ok(v)) {
		cerr(cx, line, key,
		     "\"%s\" is not a valid name (1-%d printable characters "
		     "without spaces, not \"*\")",
		     v, CFG_NAME_MAX);
		return JIT_ECONFIG;
	}
	if ((k->flags & KF_ABSPATH) && v[0] != '/') {
		cerr(cx, line, key, "\"%s\" is not an absolute path", v);
		return JIT_ECONFIG;
	}
	if ((k->flags & KF_ATTR) && !attr_ok(v)) {
		cerr(cx, line, key, "\"%s\" is not an LDAP attribute name", v);
		return JIT_ECONFIG;
	}
	if (k->choices) {
		const char *const *c = k->choices;
		while (*c && strcmp(*c, v) != 0)
			c++;
		if (!*c) {
			char list[160];
			choices_text(k->choices, list, sizeof(list));
			cerr(cx, line, key, "\"%s\" is not one of %s", v, list);
			return JIT_ECONFIG;
		}
	}
	free(*dst);
	*dst = xstrdup(v);
	return JIT_OK;
}

static void bounds_text(const struct key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == K_DUR) {
		char lo[32], hi[32], got[32];
		duration_format(k->min, lo, sizeof(lo));
		duration_format(k->max, hi, sizeof(hi));
		duration_format(v, got, sizeof(got));
		snprintf(buf, len, "must be between %s and %s (got %s)", lo, hi, got);
	} else if (k->type == K_MODE) {
		snprintf(buf, len,
			 "must be between \"%04" PRIo64 "\" and \"%04" PRIo64 "\" (got \"%04" PRIo64
			 "\")",
			 (uint64_t)k->min, (uint64_t)k->max, (uint64_t)v);
	} else {
		snprintf(buf, len, "must be between %" PRId64 " and %" PRId64 " (got %" PRId64 ")",
			 k->min, k->max, v);
	}
}

/* K_INT, K_INT64, K_DUR, K_MODE: the value in [min, max], or an error. */
static int get_number(struct ctx *cx, const config_setting_t *s, const struct key *k, int64_t *v)
{
	int type = config_setting_type(s), line = line_of(s);
	const char *str = config_setting_get_string(s);
	char why[160];

	if (k->type == K_MODE) {
		size_t n = str ? strlen(str) : 0;
		if (type != CONFIG_TYPE_STRING || n == 0 || n > 4 || strspn(str, "01234567") != n) {
			cerr(cx, line, k->name,
			     "expected a string of octal digits such as \"0660\"");
			return JIT_ECONFIG;
		}
		*v = (int64_t)strtol(str, NULL, 8); /* at most 4 octal digits */
	} else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		if (type == CONFIG_TYPE_INT && is_bad_int(cx, s)) {
			cerr(cx, line, k->name,
			     "integer out of 32-bit range "
			     "(write a larger value with an L suffix, e.g. 4000000000L)");
			return JIT_ECONFIG;
		}
		*v = config_setting_get_int64(s);
	} else if (k->type == K_DUR && type == CONFIG_TYPE_STRING) {
		if (has_control(str)) {
			cerr(cx, line, k->name, "contains a control character");
			return JIT_ECONFIG;
		}
		if (duration_parse(str, v) != JIT_OK) {
			cerr(cx, line, k->name,
			     "\"%s\" is not a duration "
			     "(seconds, or e.g. \"90s\", \"15m\", \"1h30m\", \"2d\")",
			     str);
			return JIT_ECONFIG;
		}
	} else {
		cerr(cx, line, k->name, "expected %s",
		     k->type == K_DUR ?
			     "a duration (integer seconds or a string such as \"1h30m\")" :
			     "an integer");
		return JIT_ECONFIG;
	}
	if (*v < k->min || *v > k->max) {
		bounds_text(k, *v, why, sizeof(why));
		cerr(cx, line, k->name, "%s", why);
		return JIT_ECONFIG;
	}
	return JIT_OK;
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

static int get_list(struct ctx *cx, const config_setting_t *s, const char *key, struct strlist *l)
{
	int type = config_setting_type(s), n = config_setting_length(s);

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
		cerr(cx, line_of(s), key, "expected a list of strings such as [ \"a\", \"b\" ]");
		return JIT_ECONFIG;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(s, i);
		const char *v = config_setting_get_string(el);
		if (!v || config_setting_type(el) != CONFIG_TYPE_STRING) {
			cerr(cx, line_of(el), key, "element %d is not a string", i + 1);
			return JIT_ECONFIG;
		}
		if (*v == '\0' || has_control(v)) {
			cerr(cx, line_of(el), key, "element %d is empty or has a control character",
			     i + 1);
			return JIT_ECONFIG;
		}
	}
	strlist_free(l);
	l->v = xcalloc((size_t)n + 1, sizeof(char *));
	l->lines = xcalloc((size_t)n + 1, sizeof(int));
	for (int i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(s, i);
		l->v[i] = xstrdup(config_setting_get_string(el));
		l->lines[i] = line_of(el);
	}
	l->n = (size_t)n;
	l->set = true;
	return JIT_OK;
}

/* Stores v into the field k describes. */
static void store_number(void *base, const struct key *k, int64_t v)
{
	char *p = (char *)base + k->off;
	switch (k->type) {
	case K_INT:
		*(int *)(void *)p = (int)v;
		break;
	case K_MODE:
		*(mode_t *)(void *)p = (mode_t)v;
		break;
	case K_BOOL:
		*(bool *)(void *)p = v != 0;
		break;
	default:
		*(int64_t *)(void *)p = v;
		break;
	}
}

static void apply_defaults(void *base, const struct key *keys)
{
	for (const struct key *k = keys; k->name; k++) {
		if (k->type == K_STR)
			*(char **)(void *)((char *)base + k->off) = xstrdup(k->sdef);
		else if (k->type != K_LIST && k->type != K_SECTION)
			store_number(base, k, k->idef);
	}
}

static void free_strings(void *base, const struct key *keys)
{
	for (const struct key *k = keys; k->name; k++) {
		char *p = (char *)base + k->off;
		if (k->type == K_STR) {
			free(*(char **)(void *)p);
			*(char **)(void *)p = NULL;
		} else if (k->type == K_LIST) {
			strlist_free((struct strlist *)(void *)p);
		}
	}
}

/*
 * Fills base from the members of scope according to keys (defaults first).
 * Unknown keys, wrong types and bounds are reported; a missing KF_REQUIRED
 * key too.
 */
static void parse_scope(struct ctx *cx, const config_setting_t *scope, const struct key *keys,
			void *base, const char *what)
{
	int n = config_setting_length(scope);

	apply_defaults(base, keys);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(scope, i);
		const char *name = config_setting_name(s);
		const struct key *k = keys;
		int64_t v;

		while (k->name && strcmp(k->name, name) != 0)
			k++;
		if (!k->name) {
			cerr(cx, line_of(s), name, "unknown key in %s", what);
			continue;
		}
		switch (k->type) {
		case K_STR:
			(void)get_str(cx, s, k, (char **)(void *)((char *)base + k->off));
			break;
		case K_BOOL:
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				cerr(cx, line_of(s), name, "expected true or false");
			else
				store_number(base, k, config_setting_get_bool(s));
			break;
		case K_LIST:
			(void)get_list(cx, s, name,
				       (struct strlist *)(void *)((char *)base + k->off));
			break;
		case K_SECTION:
			break;
		default:
			if (get_number(cx, s, k, &v) == JIT_OK)
				store_number(base, k, v);
			break;
		}
	}
	for (const struct key *k = keys; k->name; k++)
		if ((k->flags & KF_REQUIRED) && !config_setting_get_member(scope, k->name))
			cerr(cx, line_of(scope), k->name, "required in %s", what);
}

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
	if (needs_secret && !config_setting_get_member(e, "sasl_authcid"))
		cerr(cx, key_line(e, "sasl_mech"), "sasl_authcid", "required with sasl_mech %s",
		     d->sasl_mech);
	if (needs_secret && !config_setting_get_member(e, "sasl_secret_file"))
		cerr(cx, key_line(e, "sasl_mech"), "sasl_secret_file", "required with sasl_mech %s",
		     d->sasl_mech);
	check_dir_kerberos(cx, e, d);
	file_ref(cx, e, "sasl_secret_file", d->sasl_secret_file, true);
	file_ref(cx, e, "keytab", d->keytab, true);
	file_ref(cx, e, "tls_ca_file", d->tls_ca_file, false);
}

static void parse_directories(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
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
		for (size_t j = 0; d->name && j + 1 < cfg->n_dirs; j++)
			if (cfg->dirs[j].name && strcmp(cfg->dirs[j].name, d->name) == 0)
				cerr(cx, key_line(e, "name"), "name",
				     "directory \"%s\" is already defined at line %d", d->name,
				     cfg->dirs[j].line);
	}
}

/* The number of %s in a ticket_check URL, or -1 if a % in it is neither
 * %s nor %%. */
static int ticket_url_conversions(const char *url)
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
	const char *host;
	char shown[512];

	url_redact(url, shown, sizeof(shown)); /* errors reach syslog on a reload */
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		cerr(cx, key_line(t, "url"), "url", "\"%s\" is not an http:// or https:// URL",
		     shown);
	host = strstr(url, "://");
	if (host && memchr(host + 3, '@', strcspn(host + 3, "/?#")))
		cerr(cx, key_line(t, "url"), "url",
		     "must not hold a user name or password (put a token in token_file)");
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

static void parse_groups(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
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
	}
}

/*
 * getpwnam_r / getgrnam_r with a growing buffer. JIT_OK and *id, or
 * JIT_ENOTFOUND, or JIT_EIO (the name service failed: *err says why).
 */
static int lookup_id(const char *name, bool group, int64_t *id, int *err)
{
	size_t len = 1024;
	int rc = JIT_EIO, e = 0;

	for (int tries = 0; tries < 12; tries++, len *= 2) {
		char *buf = xmalloc(len);
		struct passwd pw, *pwp = NULL;
		struct group gr, *grp = NULL;

		e = group ? getgrnam_r(name, &gr, buf, len, &grp) :
			    getpwnam_r(name, &pw, buf, len, &pwp);
		if (e == 0 && (pwp || grp)) {
			*id = group ? (int64_t)grp->gr_gid : (int64_t)pwp->pw_uid;
			rc = JIT_OK;
		} else if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
			rc = JIT_ENOTFOUND; /* the "not found" codes getpwnam_r(3) lists */
		} else {
			rc = JIT_EIO;
		}
		free(buf);
		if (rc != JIT_EIO || e != ERANGE)
			break;
	}
	*err = e;
	return rc;
}

/* Resolves unix_user (or unix_group) of a clients entry into *id. */
static void resolve_id(struct ctx *cx, const config_setting_t *e, const char *key, const char *name,
		       bool group, int64_t *id)
{
	int err, rc = lookup_id(name, group, id, &err);

	if (rc == JIT_ENOTFOUND)
		cerr(cx, key_line(e, key), key, "no such %s \"%s\"", group ? "group" : "user",
		     name);
	else if (rc != JIT_OK)
		cerr(cx, key_line(e, key), key, "cannot look up \"%s\": %s", name, strerror(err));
}

static void check_client_lists(struct ctx *cx, struct jit_config *cfg, struct client_raw *r,
			       struct jit_client_cfg *c)
{
	c->ops = r->ops.set ? 0 : OP_ALL_MASK;
	for (size_t i = 0; i < r->ops.n; i++) {
		enum jit_op op;
		if (jit_op_parse(r->ops.v[i], &op) != JIT_OK)
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
	c->max_duration = r->max_duration;
	c->max_requests_per_minute = r->max_requests_per_minute;
	check_client_lists(cx, cfg, r, c);
}

static void parse_clients(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
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

/* getpwnam_r with a growing buffer: JIT_OK and uid/gid, JIT_ENOTFOUND, JIT_EIO. */
static int lookup_pw(const char *name, uid_t *uid, gid_t *gid, int *err)
{
	size_t len = 1024;
	int rc = JIT_EIO, e = 0;

	for (int tries = 0; tries < 12; tries++, len *= 2) {
		char *buf = xmalloc(len);
		struct passwd pw, *pwp = NULL;

		e = getpwnam_r(name, &pw, buf, len, &pwp);
		if (e == 0 && pwp) {
			*uid = pwp->pw_uid;
			*gid = pwp->pw_gid;
			rc = JIT_OK;
		} else if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
			rc = JIT_ENOTFOUND;
		} else {
			rc = JIT_EIO;
		}
		free(buf);
		if (rc != JIT_EIO || e != ERANGE)
			break;
	}
	*err = e;
	return rc;
}

/* A user key: resolved into *uid / *gid, or an error. */
static bool resolve_user(struct ctx *cx, const config_setting_t *root, const char *key,
			 const char *name, uid_t *uid, gid_t *gid)
{
	int err, rc = lookup_pw(name, uid, gid, &err);

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
			if (strspn(cfg->group, "0123456789") == strlen(cfg->group))
				gid = strtoll(cfg->group, NULL, 10);
			else
				resolve_id(cx, root, "group", cfg->group, true, &gid);
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
	else
		cfg->has_listener_ids = true;
}

/* With CONFIG_CHECK_FILES: every file remembered by file_ref(). */
static void check_files(struct ctx *cx, const struct jit_config *cfg)
{
	uid_t owner = config_run_uid(cfg);
	char why[200];
	struct stat st;

	for (size_t i = 0; i < cx->n_files; i++) {
		const struct file_ref *f = &cx->files[i];
		if (f->secret) {
			if (secret_file_check(f->path, owner, why, sizeof(why)) != JIT_OK)
				cerr(cx, f->line, f->key, "%s: %s", f->path, why);
		} else if (stat(f->path, &st) != 0) {
			cerr(cx, f->line, f->key, "%s: %s", f->path, strerror(errno));
		} else if (!S_ISREG(st.st_mode)) {
			cerr(cx, f->line, f->key, "%s: not a regular file", f->path);
		}
	}
}

uid_t config_run_uid(const struct jit_config *cfg)
{
	return cfg->has_run_ids ? cfg->run_uid : geteuid();
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

static void parse_notify(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg)
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
	cfg = xcalloc(1, sizeof(*cfg));
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
	free(cx->bad);
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

/* ---- reload ---- */

/* Does key k hold the same value in a and b (two structs of its table)? */
static bool key_equal(const struct key *k, const void *a, const void *b)
{
	const void *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;

	switch (k->type) {
	case K_STR: {
		const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
		return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
	}
	case K_BOOL:
		return *(const bool *)pa == *(const bool *)pb;
	case K_INT:
		return *(const int *)pa == *(const int *)pb;
	case K_MODE:
		return *(const mode_t *)pa == *(const mode_t *)pb;
	case K_INT64:
	case K_DUR:
		return *(const int64_t *)pa == *(const int64_t *)pb;
	default:
		return true; /* lists and sections: not compared here */
	}
}

static void diff_keys(const struct key *keys, const void *a, const void *b, const char *dir,
		      config_diff_cb cb, void *arg)
{
	for (const struct key *k = keys; k->name; k++)
		if (!key_equal(k, a, b))
			cb(arg, dir, k->name, (k->flags & KF_RESTART) != 0);
}

void config_diff(const struct jit_config *running, const struct jit_config *next, config_diff_cb cb,
		 void *arg)
{
	diff_keys(top_keys, running, next, NULL, cb, arg);
	for (size_t i = 0; i < running->n_dirs; i++) {
		const struct jit_dir_cfg *d = &running->dirs[i];
		const struct jit_dir_cfg *n = config_directory(next, d->name);
		if (n)
			diff_keys(dir_keys, d, n, d->name, cb, arg);
	}
}

/* ---- dump ---- */

/* A libconfig string literal: " \ and control bytes escaped. */
static void dump_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
	fputc('"', fp);
}

/* Every key of a table for the struct at base, in table order. */
static void dump_keys(FILE *fp, const void *base, const struct key *keys, const char *ind)
{
	for (const struct key *k = keys; k->name; k++) {
		const char *p = (const char *)base + k->off;
		char buf[32];

		if (k->type == K_SECTION || k->type == K_LIST)
			continue;
		if (k->type == K_STR && !*(char *const *)(const void *)p)
			continue; /* not set */
		if ((k->type == K_INT && k->idef < k->min &&
		     *(const int *)(const void *)p == (int)k->idef) ||
		    (k->type == K_DUR && k->idef < k->min &&
		     *(const int64_t *)(const void *)p == k->idef))
			continue; /* "off": a default no written value can have */
		fprintf(fp, "%s%s = ", ind, k->name);
		switch (k->type) {
		case K_STR:
			dump_str(fp, *(char *const *)(const void *)p);
			break;
		case K_BOOL:
			fputs(*(const bool *)(const void *)p ? "true" : "false", fp);
			break;
		case K_INT:
			fprintf(fp, "%d", *(const int *)(const void *)p);
			break;
		case K_MODE:
			fprintf(fp, "\"%04o\"", (unsigned)*(const mode_t *)(const void *)p);
			break;
		case K_DUR:
			duration_format(*(const int64_t *)(const void *)p, buf, sizeof(buf));
			fprintf(fp, "\"%s\"", buf);
			break;
		default:
			fprintf(fp, "%" PRId64, *(const int64_t *)(const void *)p);
			break;
		}
		fputs(";\n", fp);
	}
}

/* An id that needs more than 31 bits is written as a 64-bit literal. */
static void dump_id(FILE *fp, const char *key, unsigned long v)
{
	fprintf(fp, "    %s = %lu%s;\n", key, v, v > INT32_MAX ? "L" : "");
}

/* The keys of struct jit_client_cfg that dump_keys can print. */
static const struct key client_dump_keys[] = {
	NUM(max_duration, K_DUR, struct jit_client_cfg, 0, 1, DURATION_MAX),
	NUM(max_requests_per_minute, K_INT, struct jit_client_cfg, 0, 1, 1000000),
	{ NULL, K_STR, 0, 0, NULL, 0, 0, 0, NULL },
};

static void dump_list(FILE *fp, const char *key, const struct strlist *l, const char *ind)
{
	if (!l->set)
		return;
	fprintf(fp, "%s%s = [", ind, key);
	for (size_t j = 0; j < l->n; j++) {
		fputs(j ? ", " : " ", fp);
		dump_str(fp, l->v[j]);
	}
	fputs(" ];\n", fp);
}

/*
 * A ticket_check URL as the dump shows it: redacted as notify URLs are (a
 * token may sit in its path or query), and still one the loader takes, so
 * that the dump loads again: "https://itsm.example.com/" "***%s" (the %s
 * stands for the ticket, wherever the real URL has it). Freed by the
 * caller.
 */
static char *ticket_url_shown(const char *url)
{
	/* url_redact writes at most 3 bytes more than url: "/" becomes "/" "***" */
	size_t len = strlen(url) + 8;
	char *buf = xmalloc(len);

	url_redact(url, buf, len);
	if (ticket_url_conversions(buf) == 0)
		memcpy(buf + strlen(buf), "%s", 3);
	return buf;
}

static void dump_group(FILE *fp, const struct jit_group_cfg *g)
{
	dump_keys(fp, g, group_keys, "    ");
	dump_list(fp, "deny_users", &g->deny_users, "    ");
	if (g->ticket_check) {
		struct jit_ticket_check_cfg shown = *g->ticket_check;
		shown.url = ticket_url_shown(g->ticket_check->url);
		fputs("    ticket_check = {\n", fp);
		dump_keys(fp, &shown, ticket_keys, "      ");
		fputs("    };\n", fp);
		free(shown.url);
	}
}

static void dump_client(FILE *fp, const struct jit_client_cfg *c)
{
	const char *sep = " ";

	fputs("  {\n    name = ", fp);
	dump_str(fp, c->name);
	fputs(";\n", fp);
	if (c->has_uid)
		dump_id(fp, "uid", (unsigned long)c->uid);
	if (c->has_gid)
		dump_id(fp, "gid", (unsigned long)c->gid);
	fputs("    groups = [", fp);
	for (size_t j = 0; j < c->n_groups; j++) {
		fputs(sep, fp);
		dump_str(fp, c->groups[j]);
		sep = ", ";
	}
	fputs(" ];\n    ops = [", fp);
	sep = " ";
	for (int op = 0; op < OP__COUNT; op++) {
		if (c->ops & (1u << op)) {
			fprintf(fp, "%s\"%s\"", sep, op_names[op]);
			sep = ", ";
		}
	}
	fputs(" ];\n", fp);
	dump_keys(fp, c, client_dump_keys, "    ");
	fputs("  }", fp);
}

static void dump_standing(FILE *fp, const struct jit_group_cfg *g)
{
	if (g->n_standing_members == 0)
		return;
	fputs("    standing_members = [", fp);
	for (size_t j = 0; j < g->n_standing_members; j++) {
		fputs(j ? ", " : " ", fp);
		dump_str(fp, g->standing_members[j]);
	}
	fputs(" ];\n", fp);
}

/* notify entries: the secret file's path only, never its content. */
static void dump_notify(const struct jit_config *cfg, FILE *fp)
{
	char buf[32];
	if (cfg->n_notify == 0)
		return;
	fputs("\nnotify = (\n", fp);
	for (size_t i = 0; i < cfg->n_notify; i++) {
		const struct jit_notify_cfg *n = &cfg->notify[i];
		char url[512];
		url_redact(n->url, url, sizeof(url)); /* a webhook URL often holds a token */
		fputs("  {\n    url = ", fp);
		dump_str(fp, url);
		fputs(";\n    events = [", fp);
		for (size_t j = 0; j < n->n_events; j++) {
			fputs(j ? ", " : " ", fp);
			dump_str(fp, n->events[j]);
		}
		fputs(" ];\n    format = ", fp);
		dump_str(fp, n->format);
		fputs(";\n", fp);
		if (n->secret_file) {
			fputs("    secret_file = ", fp);
			dump_str(fp, n->secret_file);
			fputs(";\n", fp);
		}
		duration_format(n->timeout, buf, sizeof(buf));
		fprintf(fp, "    timeout = \"%s\";\n    max_attempts = %d;\n  }%s\n", buf,
			n->max_attempts, i + 1 < cfg->n_notify ? "," : "");
	}
	fputs(");\n", fp);
}

void config_dump(const struct jit_config *cfg, FILE *fp)
{
	fputs("# jitd effective configuration", fp);
	if (cfg->path)
		fprintf(fp, " (from %s)", cfg->path);
	fputs("\n", fp);
	dump_keys(fp, cfg, top_keys, "");
	fputs("\ndirectories = (\n", fp);
	for (size_t i = 0; i < cfg->n_dirs; i++) {
		fputs("  {\n", fp);
		dump_keys(fp, &cfg->dirs[i], dir_keys, "    ");
		fputs(i + 1 < cfg->n_dirs ? "  },\n" : "  }\n", fp);
	}
	fputs(");\n\ngroups = (\n", fp);
	for (size_t i = 0; i < cfg->n_groups; i++) {
		fputs("  {\n", fp);
		dump_group(fp, &cfg->groups[i]);
		dump_standing(fp, &cfg->groups[i]);
		fputs(i + 1 < cfg->n_groups ? "  },\n" : "  }\n", fp);
	}
	fputs(");\n\nclients = (\n", fp);
	for (size_t i = 0; i < cfg->n_clients; i++) {
		dump_client(fp, &cfg->clients[i]);
		fputs(i + 1 < cfg->n_clients ? ",\n" : "\n", fp);
	}
	fputs(");\n", fp);
	dump_notify(cfg, fp);
}
