/*
 * configpriv.h - what the files of the config module share and nothing
 * else includes: the load context that collects errors (configfile.c), the
 * key tables' types and the getters that fill a struct from a table
 * (configkey.c), the tables and parsers of the sections (configsection.c)
 * and of the top level (config.c); configdump.c prints and compares
 * configurations through the same tables. Callers use config.h.
 */
#ifndef JITD_CONFIGPRIV_H
#define JITD_CONFIGPRIV_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- the load context (configfile.c) ---- */

struct cfg_error {
	int line; /* 0: about the whole file */
	int seq;  /* discovery order, to keep the sort stable */
	char *text;
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
};

/* Records one error "FILE:LINE: KEY: message" (line 0: the whole file;
 * key may be NULL). */
void cerr(struct ctx *cx, int line, const char *key, const char *fmt, ...) JIT_PRINTF(4, 5);
/* The errors of cx as one heap string (caller frees); cx's errors are freed. */
char *errors_join(struct ctx *cx);
void file_ref(struct ctx *cx, const config_setting_t *scope, const char *key, const char *path,
	      bool secret);
/* JIT_OK and *textp (caller frees), or JIT_ECONFIG with an error recorded. */
int read_config_file(struct ctx *cx, const char *path, char **textp);
/* JIT_OK, or JIT_ECONFIG with an error recorded. */
int lex_scan(struct ctx *cx, const char *t, size_t len);

/* ---- key tables (configkey.c) ---- */

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

/*
 * R_*: a reload leaves the running value in force until the next start (the
 * socket, the files, the identities, and every directory setting that shapes
 * its connections and worker threads); jitd logs a warning per such setting
 * a reload changes. The others take effect at the reload, for new requests.
 */
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

int line_of(const config_setting_t *s);
int key_line(const config_setting_t *scope, const char *key);
void strlist_free(struct strlist *l);
/* JIT_OK and the strings of list s in *l, or JIT_ECONFIG with an error recorded. */
int get_list(struct ctx *cx, const config_setting_t *s, const char *key, struct strlist *l);
/* Frees the K_STR and K_LIST fields that keys describe in the struct at base. */
void free_strings(void *base, const struct key *keys);
void parse_scope(struct ctx *cx, const config_setting_t *scope, const struct key *keys,
		 void *base, const char *what);

/* ---- tables and sections (config.c, configsection.c) ---- */

extern const struct key top_keys[], dir_keys[], group_keys[], ticket_keys[];

/* Each reads its section of root into cfg, errors into cx. */
void parse_directories(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg);
void parse_groups(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg);
void parse_clients(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg);
void parse_notify(struct ctx *cx, const config_setting_t *root, struct jit_config *cfg);
int config_lookup_id(const char *name, bool group, int64_t *id, int64_t *gid, int *err);
void resolve_id(struct ctx *cx, const config_setting_t *e, const char *key, const char *name,
		bool group, int64_t *id);
int ticket_url_conversions(const char *url);

#endif
