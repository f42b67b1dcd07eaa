/*
 * configkey.c - the key-table machinery: a libconfig scope read into a
 * struct by its table of keys (type, default, bounds, flags), through
 * typed getters. Trust: every value comes from the config file; a string
 * with a control character, a number out of its bounds or one libconfig
 * truncated, a key the table does not know are errors, never guessed at.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "configpriv.h"
#include "duration.h"
#include "util.h"

/* ---- typed getters ---- */

int line_of(const config_setting_t *s)
{
	return (int)config_setting_source_line(s);
}

/* Line of member key of scope if present, else the scope's own line. */
int key_line(const config_setting_t *scope, const char *key)
{
	config_setting_t *m = config_setting_get_member(scope, key);
	return m ? line_of(m) : line_of(scope);
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
	/* Names, DNs and the rest reach the audit log and the engine's
	 * messages as JSON strings, which must be UTF-8: a name in Latin-1
	 * got every request of its client refused, and the listener killed */
	if (!utf8_valid(v)) {
		cerr(cx, line, key, "is not valid UTF-8 (save jitd.conf as UTF-8)");
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
		/* The value is not quoted: a secret pasted where its file's
		 * path belongs would reach the log of a refused reload. */
		cerr(cx, line, key, "is not an absolute path (it must begin with /)");
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

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

int get_list(struct ctx *cx, const config_setting_t *s, const char *key, struct strlist *l)
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
		if (!utf8_valid(v)) {
			cerr(cx, line_of(el), key,
			     "element %d is not valid UTF-8 (save jitd.conf as UTF-8)", i + 1);
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

void free_strings(void *base, const struct key *keys)
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
void parse_scope(struct ctx *cx, const config_setting_t *scope, const struct key *keys,
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
