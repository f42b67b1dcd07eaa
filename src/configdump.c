/*
 * configdump.c - configurations read back through their key tables:
 * config_diff() names the settings a reload changes, config_dump() prints
 * the effective configuration in libconfig syntax (jitd -t -v), which loads
 * again. Security: the dump holds no secret: secret files by their path
 * only, notify and ticket_check URLs redacted.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "configpriv.h"
#include "duration.h"
#include "util.h"

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
			cb(arg, dir, k->name, (k->flags & KF_RESTART) != 0,
			   (k->flags & KF_ABSPATH) != 0);
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

static void dump_group(FILE *fp, const struct jit_group_cfg *g, bool redact)
{
	dump_keys(fp, g, group_keys, "    ");
	dump_list(fp, "deny_users", &g->deny_users, "    ");
	if (g->ticket_check) {
		struct jit_ticket_check_cfg shown = *g->ticket_check;
		shown.url = redact ? ticket_url_shown(g->ticket_check->url)
				   : xstrdup(g->ticket_check->url);
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
			fprintf(fp, "%s\"%s\"", sep, jit_op_name((enum jit_op)op));
			sep = ", ";
		}
	}
	if (c->ops & OPS_FORCE_BIT)
		fprintf(fp, "%s\"%s\"", sep, OPS_FORCE_NAME);
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

/* The directories, groups and clients: what a request is judged and carried
 * out by. redact: hide what a ticket_check URL's path may hold (a dump to
 * show); unredacted only to compare two configurations in memory. */
static void dump_policy(FILE *fp, const struct jit_config *cfg, bool redact)
{
	fputs("\ndirectories = (\n", fp);
	for (size_t i = 0; i < cfg->n_dirs; i++) {
		fputs("  {\n", fp);
		dump_keys(fp, &cfg->dirs[i], dir_keys, "    ");
		fputs(i + 1 < cfg->n_dirs ? "  },\n" : "  }\n", fp);
	}
	fputs(");\n\ngroups = (\n", fp);
	for (size_t i = 0; i < cfg->n_groups; i++) {
		fputs("  {\n", fp);
		dump_group(fp, &cfg->groups[i], redact);
		dump_standing(fp, &cfg->groups[i]);
		fputs(i + 1 < cfg->n_groups ? "  },\n" : "  }\n", fp);
	}
	fputs(");\n\nclients = (\n", fp);
	for (size_t i = 0; i < cfg->n_clients; i++) {
		dump_client(fp, &cfg->clients[i]);
		fputs(i + 1 < cfg->n_clients ? ",\n" : "\n", fp);
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
	dump_policy(fp, cfg, true);
	dump_notify(cfg, fp);
}

/* dump_policy of cfg as one string (caller frees), or NULL. */
static char *policy_text(const struct jit_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	if (!fp)
		return NULL;
	dump_policy(fp, cfg, false);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

bool config_policy_same(const struct jit_config *a, const struct jit_config *b)
{
	char *ta = policy_text(a), *tb = policy_text(b);
	bool same = ta && tb && strcmp(ta, tb) == 0; /* unknown: taken as changed */
	free(ta);
	free(tb);
	return same;
}
