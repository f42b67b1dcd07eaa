/*
 * config.h - jitd.conf (libconfig syntax) parsed once into an immutable
 * struct jit_config.
 *
 * Every key is declared in a table (name, type, default, bounds) per scope
 * (top level, directories, groups, clients); an unknown key, a wrong type or
 * a value out of bounds is an error that names file:line and the key.
 * config_load() collects every problem it finds, not just the first.
 * A loaded config is never modified; SIGHUP builds a new one and swaps it.
 * Secrets are not read here: sasl_secret_file is only a path (the
 * directory module reads it when it binds, and checks its mode).
 */
#ifndef JITD_CONFIG_H
#define JITD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include <sys/types.h>
#include "err.h"

/* Operations of the socket protocol; also the values of a client's `ops`. */
enum jit_op {
	OP_GRANT = 0,
	OP_COMPLETE,
	OP_REVOKE,
	OP_EXTEND,
	OP_SHOW,
	OP_LIST,
	OP_STATUS,
	OP__COUNT
};
#define OP_ALL_MASK ((1u << OP__COUNT) - 1)
/* A client's `ops` may also hold "force": `revoke` with `force`, which
 * closes an ending grant without touching the directory (the membership may
 * stay), needs it besides "revoke". Given when `ops` is not set. */
#define OPS_FORCE_BIT (1u << OP__COUNT)
#define OPS_FORCE_NAME "force"
#define OPS_DEFAULT_MASK (OP_ALL_MASK | OPS_FORCE_BIT)
/* "grant" ... "status"; NULL if out of range. */
const char *jit_op_name(enum jit_op op);
/* JIT_OK and *out, or JIT_EUNKNOWNOP. */
int jit_op_parse(const char *s, enum jit_op *out) JIT_WUR;

/* Bytes in a name of a directory, group or client (configkey.c refuses more). */
#define CFG_NAME_MAX 256

struct jit_dir_cfg {
	char *name;
	char *uri;              /* one or more URIs separated by spaces: failover order */
	char *sasl_mech;        /* EXTERNAL (default), SCRAM-SHA-256, SCRAM-SHA-1,
				 * DIGEST-MD5, GSSAPI, PLAIN; all but EXTERNAL and
				 * GSSAPI come with sasl_authcid + sasl_secret_file */
	char *sasl_authcid;     /* may be NULL */
	char *sasl_realm;       /* may be NULL */
	char *sasl_authzid;     /* may be NULL ("" in the file means NULL) */
	char *sasl_secret_file; /* may be NULL; the password lives only there */
	char *sasl_secprops;    /* may be NULL, e.g. "minssf=56" */
	bool sasl_nocanon;
	char *keytab;           /* GSSAPI client keytab, may be NULL */
	char *principal;        /* GSSAPI client principal from keytab, may be NULL
				 * (then the keytab's first) */
	char *tls_ca_file;      /* may be NULL */
	char *tls_require_cert; /* "never" | "allow" | "try" | "demand" (default demand) */
	bool starttls;
	char *user_base;        /* required */
	char *user_filter;      /* default "(uid=%s)"; exactly one %s */
	char *uid_attr;         /* default "uid": value used for memberUid groups */
	char *uuid_attr;        /* default "entryUUID": stable identifier recorded */
	char *member_attr;      /* default "member"; "memberUid" for posixGroup */
	char *placeholder_member; /* may be NULL: DN added when the last member goes */
	int64_t timeout;        /* seconds, default 10 */
	int connections;        /* bound connections (= worker threads), default 2, 1..32 */
	int64_t replication_grace; /* seconds, default 30: after a removal on another
				    * URI than the one that wrote the membership,
				    * check it again this much later */
	int line;               /* where it was defined */
};

/* A list of strings from the file, with the line of each element. */
struct jit_strlist {
	char **v;
	int *lines;
	size_t n;
	bool set;               /* the key was present */
};

/* A group's external ticket check (ticket.h). */
struct jit_ticket_check_cfg {
	char *url;              /* http(s) URL with exactly one %s: the URL-escaped ticket */
	char *approved_field;   /* member of the JSON answer; "a.b" reaches into objects */
	char *approved_value;   /* the string that field must hold */
	int64_t timeout;        /* seconds, whole exchange; default 5 */
	char *ca_file;          /* may be NULL: the system's CAs */
	char *token_file;       /* may be NULL: sent as "Authorization: Bearer" */
	int line;
};

struct jit_group_cfg {
	char *name;
	char *directory;        /* name of a directories entry */
	int dir_index;          /* index into jit_config.dirs, resolved at load */
	char *dn;
	char *member_attr;      /* group override, else the directory's */
	char *placeholder_member; /* group override, else the directory's; may be NULL;
				   * "" = none even if the directory has one: read it
				   * through config_group_placeholder() */
	int64_t max_duration;   /* seconds; default 4h */
	int64_t default_duration; /* seconds; default 1h, <= max_duration */
	/* Policy (docs/policy.md). 0 / false / NULL: the rule is off. */
	int64_t min_duration;   /* seconds; <= default_duration */
	bool require_ticket, require_reason, require_approver, forbid_self_approval;
	char *ticket_pattern;   /* POSIX ERE a ticket must match, or NULL */
	regex_t *ticket_re;     /* ticket_pattern compiled at load */
	char *eligible_group;   /* DN: only its members may be elevated */
	struct jit_strlist deny_users; /* names or DNs never elevated */
	int max_active_per_user; /* live grants of one user across all groups */
	struct jit_ticket_check_cfg *ticket_check; /* or NULL */
	char *approval_key_file; /* HMAC key of signed approvals (approval.h), or NULL */
	int64_t approval_max_age; /* seconds; default 5m */
	int line;
	/* Drift reconciliation (reconcile.c): "report" (default), "enforce"
	 * (also remove unexplained members) or "off"; read it through
	 * config_group_reconcile(). */
	char *reconcile;
	char **standing_members; /* member values allowed permanently (NULL-terminated) */
	size_t n_standing_members;
};

enum jit_reconcile { RECONCILE_OFF = 0, RECONCILE_REPORT, RECONCILE_ENFORCE };
enum jit_reconcile config_group_reconcile(const struct jit_group_cfg *g);

struct jit_client_cfg {
	char *name;             /* optional label for logs; default "client#N",
				 * N = position in the file counting from 1 */
	bool has_uid, has_gid;
	uid_t uid;              /* from `uid` or `unix_user` (resolved at load) */
	gid_t gid;              /* from `gid` or `unix_group` (resolved at load) */
	bool gid_by_name;       /* from `unix_group`: the group database knew it */
	char **groups;          /* group names or "*" */
	size_t n_groups;
	unsigned ops;           /* bitmask of 1u << enum jit_op, and OPS_FORCE_BIT; default all */
	int64_t max_duration;   /* seconds; 0: no cap beyond the groups' */
	int max_requests_per_minute; /* 0: unlimited */
	int line;
};

/* One webhook receiver (notify = ( { ... } )). */
struct jit_notify_cfg {
	char *url;              /* http:// or https:// */
	char **events;          /* event names (NOTIFY_EVENTS below); default: all of them */
	size_t n_events;
	char *format;           /* "json" (default) | "slack" | "teams" */
	char *secret_file;      /* may be NULL: HMAC key, read by notify.c (mode checked) */
	int64_t timeout;        /* seconds per delivery attempt, default 10 */
	int max_attempts;       /* default 10 */
	int line;
};
/* The events a notify entry may name, NULL-terminated. */
extern const char *const config_notify_events[];

struct jit_config {
	uint64_t serial;        /* distinct for every configuration loaded by this process */
	char *path;
	char *text;             /* the file's text as loaded (no secret is in it) */
	char *socket_path;      /* default /run/jitd/jitd.sock */
	mode_t socket_mode;     /* default 0660; given as a string "0660" */
	char *socket_group;     /* may be NULL */
	char *state_dir;        /* default /var/lib/jitd */
	char *audit_log;        /* default /var/log/jitd/audit.log */
	char *pid_file;         /* may be NULL */
	char *log_level;        /* default "info" */
	int max_clients;        /* default 128 */
	int max_clients_per_uid;  /* connections of one peer uid, default max_clients / 4 */
	int64_t max_request_size; /* bytes, default 65536, 1024..1048576 */
	int64_t client_timeout; /* seconds idle before a client is dropped, default 60 */
	int64_t retry_min_interval; /* seconds, default 1 */
	int64_t retry_max_interval; /* seconds, default 30 */
	char *user;             /* drop root to this user after start-up, or NULL */
	char *group;            /* its group (default: the user's primary group) */
	char *listener_user;    /* the listener process's user (default "nobody" as root) */
	bool has_run_ids;       /* user given: run_uid/run_gid resolved at load */
	bool running;           /* loaded with CONFIG_RUNNING: files are the euid's */
	uid_t run_uid;
	gid_t run_gid;
	bool has_listener_ids;  /* listener_user resolved at load */
	uid_t listener_uid;
	gid_t listener_gid;
	int64_t reconcile_interval; /* seconds between drift checks, default 5m */
	struct jit_dir_cfg *dirs;
	size_t n_dirs;
	struct jit_group_cfg *groups;
	size_t n_groups;
	struct jit_client_cfg *clients;
	size_t n_clients;
	bool syslog;            /* mirror audit lines to syslog, default false */
	char *syslog_facility;  /* default "authpriv" */
	int64_t expiring_soon_before; /* seconds, default 600; 0 = no expiring_soon events */
	struct jit_notify_cfg *notify;
	size_t n_notify;
};

/*
 * Loads and validates path. On success *out is a new config (free with
 * config_free) and JIT_OK is returned. On failure returns JIT_ECONFIG and,
 * if errors is not NULL, sets *errors to a heap string of one or more lines
 * "FILE:LINE: KEY: message\n" (caller frees).
 */
int config_load(const char *path, struct jit_config **out, char **errors) JIT_WUR;

/*
 * config_load() plus, with CONFIG_CHECK_FILES, the files the config names:
 * every secret file (sasl_secret_file, keytab, token_file,
 * approval_key_file) must exist, be a regular file owned by the uid jitd
 * runs as (`user`, else the caller's euid) and give group and others no
 * access; CA files must exist. Problems are reported like the others,
 * with the line of the key. The daemon (start, reload) and `jitd -t` use it.
 */
#define CONFIG_CHECK_FILES 0x1
/* With CONFIG_NO_IDS, user / group / listener_user are parsed but not
 * resolved nor checked (the listener process, which gets them from the
 * engine). */
#define CONFIG_NO_IDS 0x2
/* With CONFIG_RUNNING (a reload), the files must be usable by the uid the
 * daemon runs as now (its euid): a changed `user` takes effect only at a
 * restart, and until then the running daemon reads them as it is. */
#define CONFIG_RUNNING 0x4
int config_load_ex(const char *path, unsigned flags, struct jit_config **out,
		   char **errors) JIT_WUR;

/*
 * A copy of config text in which the value of every `url` key (notify
 * receivers: a webhook's path is its credential; ticket_check) keeps only
 * its scheme and host, with "/" (and "%s" where a ticket_check URL has
 * its one) after them: what the engine hands the listener, which checks such URLs but
 * never uses them. Comments become a space and their line breaks (a URL
 * commented out still holds its token). Everything else is unchanged, line
 * for line. New heap string.
 */
char *config_text_redacted(const char *text);

/* Loads a config from text that was read elsewhere (by the engine, for the
 * listener process): no file permission check; label stands for the path
 * in messages. Otherwise as config_load_ex(). */
int config_load_text(const char *label, const char *text, unsigned flags,
		     struct jit_config **out, char **errors) JIT_WUR;

/* The uid jitd's engine runs as: run_uid with `user`, else geteuid(). */
uid_t config_run_uid(const struct jit_config *cfg);
void config_free(struct jit_config *cfg); /* NULL-safe */

/* Lookups; NULL if absent. The pointers live as long as cfg. */
const struct jit_group_cfg *config_group(const struct jit_config *cfg, const char *name);
/* Is every URI of d protected by its transport (ldaps://, ldapi://, or
 * starttls on)? */
bool config_dir_tls(const struct jit_dir_cfg *d);
const struct jit_dir_cfg *config_directory(const struct jit_config *cfg, const char *name);
/* The group's effective member attribute / placeholder (override or directory's). */
const char *config_group_member_attr(const struct jit_config *cfg, const struct jit_group_cfg *g);
const char *config_group_placeholder(const struct jit_config *cfg, const struct jit_group_cfg *g);

/*
 * Reload: calls cb once for each setting whose value differs between running
 * and next, top-level keys first (dir NULL), then the keys of each directory
 * both name (dir: its name). restart: a reload leaves the running value in
 * force until the next start (the connections, workers, socket, files and
 * identities are set up once); otherwise the reload applies it. The groups,
 * clients and notify sections are not compared. The strings passed live as
 * long as running and the key tables.
 */
/* dir: NULL for a top-level key; restart: set up once at start; path: the
 * key names a file or directory (the running daemon goes on using the old
 * one until the restart) */
typedef void (*config_diff_cb)(void *arg, const char *dir, const char *key, bool restart,
			       bool path);
void config_diff(const struct jit_config *running, const struct jit_config *next, config_diff_cb cb,
		 void *arg);

/* Prints the effective configuration in libconfig syntax (for `jitd -t -v`),
 * which loads again. Contains no secret: secret files by their path only,
 * notify and ticket_check URLs redacted (url_redact; a ticket_check URL
 * keeps a %s). */
void config_dump(const struct jit_config *cfg, FILE *fp);
/* Do a and b judge and carry out requests alike: the same directories,
 * groups and clients, every key and list? (A reload that changes nothing
 * there - logrotate's SIGHUP - leaves waiting grants as they are.) */
bool config_policy_same(const struct jit_config *a, const struct jit_config *b);

#endif
