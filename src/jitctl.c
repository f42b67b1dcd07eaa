/*
 * jitctl.c - the command-line client of jitd: builds one request from argv,
 * sends it over the daemon's Unix socket, reads one answer line and prints
 * it (a key/value block, a table, or the raw line with --json).
 * Trust: the answer is read with a hard size limit and every value is
 * printed with control characters replaced, so a hostile field (a user
 * name, a directory error) cannot drive the operator's terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "duration.h"
#include "log.h"
#include "proto.h"
#include "reportcmd.h"
#include "termsafe.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_SOCKET "/run/jitd/jitd.sock"
#define ANSWER_MAX (16u * 1024 * 1024) /* a list of 10000 grants fits */
#define IO_TIMEOUT_S 120                /* the daemon may wait on the directory */

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct opts {
	const char *socket;
	bool json;
};

enum out_kind { OUT_GRANT, OUT_LIST, OUT_STATUS };

/* A per-command option: --name VALUE becomes the request member field. */
struct cmd_opt {
	const char *name;
	const char *field;
	bool integer;           /* list --limit */
};

struct command {
	const char *name;
	const char *pos[3];     /* request members taken from positional arguments */
	const char *pos_label[3]; /* their names in the usage text */
	const struct cmd_opt *opts;
	enum out_kind out;
	const char *usage;
};

static const struct cmd_opt grant_opts[] = {
	{ "for", "duration", false },
	{ "ticket", "ticket", false },
	{ "reason", "reason", false },
	{ "requested-by", "requested_by", false },
	{ "approved-by", "approved_by", false },
	{ "request-id", "request_id", false },
	{ "approved-at", "approved_at", false },
	{ "approval-sig", "approval_sig", false },
	{ NULL, NULL, false }
};
static const struct cmd_opt extend_opts[] = {
	{ "expires-at", "expires_at", false },
	{ "approved-by", "approved_by", false },
	{ "approved-at", "approved_at", false },
	{ "approval-sig", "approval_sig", false },
	{ NULL, NULL, false }
};
static const struct cmd_opt reason_opts[] = {
	{ "reason", "reason", false },
	{ NULL, NULL, false }
};
static const struct cmd_opt list_opts[] = {
	{ "user", "user", false },
	{ "group", "group", false },
	{ "state", "state", false },
	{ "limit", "limit", true },
	{ NULL, NULL, false }
};
static const struct cmd_opt no_opts[] = {
	{ NULL, NULL, false }
};

static const struct command commands[] = {
	{ "grant", { "user", "group", NULL }, { "USER", "GROUP", NULL }, grant_opts, OUT_GRANT,
	  "grant USER GROUP [--for DUR] [--ticket T] [--reason R]\n"
	  "             [--requested-by X] [--approved-by Y] [--request-id K]\n"
	  "             [--approved-at T --approval-sig HEX]" },
	{ "complete", { "grant_id", NULL, NULL }, { "ID", NULL, NULL }, reason_opts, OUT_GRANT, "complete ID [--reason R]" },
	{ "revoke", { "grant_id", NULL, NULL }, { "ID", NULL, NULL }, reason_opts, OUT_GRANT, "revoke ID [--reason R] [--force]" },
	{ "extend", { "grant_id", "duration", NULL }, { "ID", "DUR", NULL }, extend_opts, OUT_GRANT,
	  "extend ID DUR [--expires-at T] [--approved-by Y]\n"
	  "             [--approved-at T --approval-sig HEX]" },
	{ "show", { "grant_id", NULL, NULL }, { "ID", NULL, NULL }, no_opts, OUT_GRANT, "show ID" },
	{ "list", { NULL, NULL, NULL }, { NULL, NULL, NULL }, list_opts, OUT_LIST,
	  "list [--user U] [--group G] [--state S] [--limit N]" },
	{ "status", { NULL, NULL, NULL }, { NULL, NULL, NULL }, no_opts, OUT_STATUS, "status" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *fp)
{
	fprintf(fp, "usage: jitctl [-s SOCKET] [--json] COMMAND ...\n"
		    "       jitctl -h | -V\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(fp, "  %s\n", commands[i].usage);
	fprintf(fp, "\noffline commands (read audit log files, no daemon needed):\n");
	reportcmd_usage(fp);
	fprintf(fp, "\noptions:\n"
		    "  -s, --socket PATH  daemon socket (default: $JITD_SOCKET or " DEFAULT_SOCKET ")\n"
		    "      --json         print the daemon's answer line unchanged\n"
		    "  -h, --help         this help\n"
		    "  -V, --version      print the version\n");
}

static int usage_error(const char *fmt, ...) JIT_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("jitctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(jitctl -h for help)\n", stderr);
	return EXIT_USAGE;
}

/* ---- terminal-safe text ---------------------------------------------- */

/* A copy of s without control characters or invalid UTF-8 (termsafe.h). */
static char *clean_dup(const char *s)
{
	return termsafe_dup(s, 0);
}

/* Columns taken by UTF-8 text (one per code point; good enough for names). */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			w++;
	return w;
}

static void put_padded(const char *s, size_t width)
{
	fputs(s, stdout);
	for (size_t w = text_width(s); w < width; w++)
		putchar(' ');
}

/* A JSON scalar as display text (heap, cleaned). */
static char *value_text(const char *key, json_t *v)
{
	char d[64];
	if (json_is_string(v))
		return clean_dup(json_string_value(v));
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (key && (strcmp(key, "duration") == 0 || strcmp(key, "uptime") == 0) && n >= 0) {
			duration_format((int64_t)n, d, sizeof(d));
			return xasprintf("%s (%lld s)", d, (long long)n);
		}
		return xasprintf("%lld", (long long)n);
	}
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "yes" : "no");
	if (!v || json_is_null(v))
		return xstrdup("-");
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	char *c = clean_dup(s ? s : "?");
	free(s);
	return c;
}

/* ---- key/value blocks -------------------------------------------------- */

struct kv {
	char *key, *val;        /* heap, cleaned */
};
struct kvlist {
	struct kv *v;
	size_t n, cap;
};

static void kv_add(struct kvlist *l, char *key, char *val) /* takes both */
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].key = key;
	l->v[l->n].val = val;
	l->n++;
}

/* Prints "key: value" lines with the values aligned, then frees the list. */
static void kv_print(struct kvlist *l)
{
	size_t width = 0;
	for (size_t i = 0; i < l->n; i++)
		if (text_width(l->v[i].key) > width)
			width = text_width(l->v[i].key);
	for (size_t i = 0; i < l->n; i++) {
		printf("%s:", l->v[i].key);
		put_padded("", width - text_width(l->v[i].key) + 1);
		printf("%s\n", l->v[i].val);
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static void print_grant(json_t *grant, json_t *answer)
{
	struct kvlist l = { 0 };
	const char *key;
	json_t *v;
	json_object_foreach(grant, key, v)
		kv_add(&l, clean_dup(key), value_text(key, v));
	if (json_is_true(json_object_get(answer, "duplicate")))
		kv_add(&l, xstrdup("duplicate"), xstrdup("yes (an earlier request with this request_id)"));
	kv_print(&l);
}

static void print_status(json_t *st)
{
	struct kvlist l = { 0 };
	const char *key;
	json_t *v;
	json_object_foreach(st, key, v) {
		if (strcmp(key, "grants") == 0 && json_is_object(v)) {
			struct strbuf sb = { 0 };
			const char *k2;
			json_t *n;
			json_object_foreach(v, k2, n) {
				char *t = value_text(NULL, n), *c = clean_dup(k2);
				sb_addf(&sb, "%s%s %s", sb.len ? ", " : "", c, t);
				free(t);
				free(c);
			}
			kv_add(&l, xstrdup("grants"), sb_steal(&sb));
		} else if (strcmp(key, "timings") == 0 && json_is_object(v)) {
			/* one line: the mean of each step that ran */
			struct strbuf sb = { 0 };
			const char *k2;
			json_t *s;
			json_object_foreach(v, k2, s) {
				json_int_t n = json_integer_value(json_object_get(s, "count"));
				json_int_t us = json_integer_value(json_object_get(s, "total_us"));
				if (n <= 0 || us < 0)
					continue;
				char *c = clean_dup(k2);
				sb_addf(&sb, "%s%s %.3f ms", sb.len ? ", " : "", c,
					(double)us / (double)n / 1000.0);
				free(c);
			}
			kv_add(&l, xstrdup("mean step times"),
			       sb.len ? sb_steal(&sb) : xstrdup("none yet"));
			sb_free(&sb);
		} else if (strcmp(key, "notifications") == 0 && json_is_object(v)) {
			/* one line per receiver: what an operator alerts on */
			size_t i;
			json_t *r;
			json_array_foreach(json_object_get(v, "receivers"), i, r) {
				const char *url = json_string_value(json_object_get(r, "url"));
				char *c = clean_dup(url ? url : "?");
				kv_add(&l, xasprintf("notify %s", c),
				       xasprintf("delivered %lld, waiting %lld, dropped %lld, gave up "
						 "%lld, failed attempts %lld",
						 (long long)json_integer_value(json_object_get(r, "delivered")),
						 (long long)json_integer_value(json_object_get(r, "waiting")),
						 (long long)json_integer_value(json_object_get(r, "dropped")),
						 (long long)json_integer_value(json_object_get(r, "gave_up")),
						 (long long)json_integer_value(
							 json_object_get(r, "attempts_failed"))));
				free(c);
			}
		} else if (strcmp(key, "directories") == 0 && json_is_array(v)) {
			size_t i;
			json_t *d;
			json_array_foreach(v, i, d) {
				const char *name = json_string_value(json_object_get(d, "name"));
				const char *err = json_string_value(json_object_get(d, "last_error"));
				bool up = json_is_true(json_object_get(d, "connected"));
				char *c = clean_dup(name ? name : "?");
				char *e = clean_dup(err ? err : "");
				json_t *nc = json_object_get(d, "connections");
				char bound[64] = "";
				if (json_is_integer(nc))
					snprintf(bound, sizeof(bound), " (%lld of %lld connections bound)",
						 (long long)json_integer_value(
							 json_object_get(d, "connections_up")),
						 (long long)json_integer_value(nc));
				kv_add(&l, xasprintf("directory %s", c),
				       xasprintf("%s%s%s%s", up ? "connected" : "not connected", bound,
						 *e ? ", last error: " : "", e));
				free(c);
				free(e);
			}
		} else {
			char *k = clean_dup(key);
			for (char *p = k; *p; p++)
				if (*p == '_')
					*p = ' ';
			kv_add(&l, k, value_text(key, v));
		}
	}
	kv_print(&l);
}

/* ---- list table -------------------------------------------------------- */

static const struct {
	const char *title, *field;
} columns[] = {
	{ "ID", "grant_id" }, { "STATE", "state" }, { "USER", "user" },
	{ "GROUP", "group" }, { "EXPIRES", "expires_at" }, { "TICKET", "ticket" },
};
#define N_COLUMNS (sizeof(columns) / sizeof(columns[0]))

static void print_row(const char *const cells[N_COLUMNS], const size_t width[N_COLUMNS])
{
	for (size_t c = 0; c < N_COLUMNS; c++) {
		if (c + 1 < N_COLUMNS)
			put_padded(cells[c], width[c] + 2);
		else
			fputs(cells[c], stdout);
	}
	putchar('\n');
}

static void print_list(json_t *grants)
{
	size_t n = json_array_size(grants), width[N_COLUMNS];
	char *(*cells)[N_COLUMNS] = xcalloc(n ? n : 1, sizeof(*cells));
	const char *row[N_COLUMNS];

	for (size_t c = 0; c < N_COLUMNS; c++) {
		row[c] = columns[c].title;
		width[c] = strlen(columns[c].title);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *g = json_array_get(grants, i);
		for (size_t c = 0; c < N_COLUMNS; c++) {
			cells[i][c] = value_text(NULL, json_object_get(g, columns[c].field));
			if (text_width(cells[i][c]) > width[c])
				width[c] = text_width(cells[i][c]);
		}
	}
	print_row(row, width);
	for (size_t i = 0; i < n; i++) {
		for (size_t c = 0; c < N_COLUMNS; c++)
			row[c] = cells[i][c];
		print_row(row, width);
		for (size_t c = 0; c < N_COLUMNS; c++)
			free(cells[i][c]);
	}
	free(cells);
}

/* ---- building the request ---------------------------------------------- */

static int add_member(json_t *req, const char *field, const char *arg, bool integer,
		      const char *what)
{
	json_t *v;
	if (integer) {
		int64_t n;
		if (parse_int64(arg, 1, PROTO_MAX_LIST, &n) != JIT_OK)
			return usage_error("%s: expected an integer from 1 to %d", what,
					   PROTO_MAX_LIST);
		v = json_integer((json_int_t)n);
	} else {
		v = json_string(arg);
		if (!v)
			return usage_error("%s: not valid UTF-8", what);
	}
	json_object_set_new(req, field, v);
	return 0;
}

/* Parses the command's own options and arguments (argv[0] is its name) into req. */
static int build_request(const struct command *cmd, int argc, char **argv, json_t *req)
{
	struct option lo[16];
	size_t n = 0;
	int c, rc;

	for (; cmd->opts[n].name; n++)
		lo[n] = (struct option){ cmd->opts[n].name, required_argument, NULL, 256 + (int)n };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	/* revoke --force: a flag, the request member "force": true */
	if (strcmp(cmd->name, "revoke") == 0)
		lo[n++] = (struct option){ "force", no_argument, NULL, 'F' };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };

	optind = 0; /* glibc: full re-initialisation for the second scan */
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: jitctl [-s SOCKET] [--json] %s\n", cmd->usage);
			return -1;
		}
		if (c == 'F') {
			json_object_set_new(req, "force", json_true());
			continue;
		}
		if (c == ':')
			return usage_error("%s: option %s needs a value", cmd->name, argv[optind - 1]);
		if (c == '?')
			return usage_error("%s: unknown option %s", cmd->name, argv[optind - 1]);
		const struct cmd_opt *o = &cmd->opts[c - 256];
		char what[64];
		snprintf(what, sizeof(what), "--%s", o->name);
		if ((rc = add_member(req, o->field, optarg, o->integer, what)) != 0)
			return rc;
	}
	int i = optind;
	for (size_t p = 0; p < 3 && cmd->pos[p]; p++, i++) {
		if (i >= argc)
			return usage_error("%s: missing %s (usage: jitctl %s)", cmd->name,
					   cmd->pos_label[p], cmd->usage);
		if ((rc = add_member(req, cmd->pos[p], argv[i], false, cmd->pos_label[p])) != 0)
			return rc;
	}
	if (i < argc)
		return usage_error("%s: unexpected argument '%s'", cmd->name, argv[i]);
	return 0;
}

/* ---- talking to the daemon --------------------------------------------- */

static int connect_socket(const char *path)
{
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S, .tv_usec = 0 };
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked in main */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "jitctl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "jitctl: cannot connect to %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "jitctl: cannot send the request: %s\n",
				errno == EAGAIN ? "timed out" : strerror(errno));
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Reads one line (at most ANSWER_MAX bytes) within IO_TIMEOUT_S in all
 * (a peer trickling bytes does not restart the clock); *out without its
 * '\n'. */
static int read_line(int fd, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nl = NULL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	time_t deadline = now.tv_sec + IO_TIMEOUT_S;
	while (!nl) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline) {
			fprintf(stderr, "jitctl: no answer from jitd: timed out\n");
			goto fail;
		}
		struct timeval tv = { .tv_sec = deadline - now.tv_sec, .tv_usec = 0 };
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
			fprintf(stderr, "jitctl: setsockopt: %s\n", strerror(errno));
			goto fail;
		}
		if (len == ANSWER_MAX) {
			fprintf(stderr, "jitctl: answer larger than %u bytes\n", ANSWER_MAX);
			goto fail;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > ANSWER_MAX)
				cap = ANSWER_MAX;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "jitctl: no answer from jitd: %s\n",
				errno == EAGAIN ? "timed out" : strerror(errno));
			goto fail;
		}
		if (r == 0) {
			fprintf(stderr, "jitctl: jitd closed the connection without an answer\n");
			goto fail;
		}
		nl = memchr(buf + len, '\n', (size_t)r);
		len += (size_t)r;
	}
	*nl = '\0';
	*outlen = (size_t)(nl - buf);
	*out = buf;
	return 0;
fail:
	free(buf);
	return -1;
}

/* Sends line, returns the answer (heap) or NULL after printing why. */
static char *exchange(const char *path, const char *line, size_t *alen)
{
	char *answer = NULL;
	int fd = connect_socket(path);
	if (fd < 0)
		return NULL;
	if (send_all(fd, line, strlen(line)) == 0 && read_line(fd, &answer, alen) != 0)
		answer = NULL;
	close(fd);
	return answer;
}

/* ---- the answer -------------------------------------------------------- */

static int show_answer(const struct opts *o, const struct command *cmd, const char *line,
		       size_t len)
{
	json_t *a = json_loadb(line, len, 0, NULL);
	json_t *ok = json_object_get(a, "ok");
	int rc = 0;

	if (!json_is_boolean(ok)) {
		fprintf(stderr, "jitctl: malformed answer from jitd\n");
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	if (o->json) {
		/* The answer as sent, but C1 controls and DEL as \u escapes (the
		 * same JSON value): a terminal must not act on them. */
		struct termsafe_json t = { stdout, false };
		(void)termsafe_json_write(line, len, &t);
		(void)termsafe_json_end(&t);
		putchar('\n');
	}
	if (json_is_false(ok)) {
		json_t *e = json_object_get(a, "error");
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *m = json_string_value(json_object_get(e, "message"));
		char *cc = clean_dup(code ? code : "internal"), *cm = clean_dup(m ? m : "");
		fprintf(stderr, "jitctl: %s: %s\n", cc, cm);
		free(cc);
		free(cm);
		rc = EXIT_REFUSED;
		goto out;
	}
	if (o->json)
		goto out;

	json_t *grant = json_object_get(a, "grant");
	json_t *grants = json_object_get(a, "grants");
	json_t *status = json_object_get(a, "status");
	if (cmd->out == OUT_GRANT && json_is_object(grant)) {
		print_grant(grant, a);
	} else if (cmd->out == OUT_LIST && json_is_array(grants)) {
		print_list(grants);
	} else if (cmd->out == OUT_STATUS && json_is_object(status)) {
		print_status(status);
	} else {
		/* The daemon said ok: the action happened; show what it sent. */
		char *c = clean_dup(line);
		printf("%s\n", c);
		free(c);
	}
out:
	json_decref(a);
	return rc;
}

static int run(const struct opts *o, const struct command *cmd, int argc, char **argv)
{
	json_t *req = json_object();
	char *line = NULL, *answer = NULL;
	size_t alen = 0;
	int rc;

	json_object_set_new(req, "op", json_string(cmd->name));
	json_object_set_new(req, "v", json_integer(PROTO_VERSION));
	rc = build_request(cmd, argc, argv, req);
	if (rc != 0) {
		json_decref(req);
		return rc < 0 ? 0 : rc; /* -1: help was printed */
	}
	line = proto_dump_line(req);
	if (!line) {
		fprintf(stderr, "jitctl: cannot encode the request\n");
		return EXIT_USAGE;
	}
	answer = exchange(o->socket, line, &alen);
	rc = answer ? show_answer(o, cmd, answer, alen) : EXIT_UNREACHABLE;
	/* Robustness: an answer cut short by a full disk or a closed pipe
	 * must not look whole to a script (a `list` missing grants) */
	if (answer && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr, "jitctl: cannot write the answer: %s\n",
			errno ? strerror(errno) : "output error");
		rc = EXIT_UNREACHABLE;
	}
	free(line);
	free(answer);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { .socket = NULL, .json = false };
	int c;

	log_init("jitctl", true, LOG_LVL_WARN);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:s:hV", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.socket = optarg; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("jitctl %s\n", PACKAGE_VERSION); return 0;
		case ':': return usage_error("option %s needs a value", argv[optind - 1]);
		default: return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (!o.socket) {
		const char *env = getenv("JITD_SOCKET");
		o.socket = env && *env ? env : DEFAULT_SOCKET;
	}
	if (!*o.socket || strlen(o.socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return usage_error("socket path is empty or longer than %zu bytes",
				   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "audit") == 0)
		return reportcmd_audit(argc - optind, argv + optind);
	if (strcmp(argv[optind], "report") == 0)
		return reportcmd_report(argc - optind, argv + optind);
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return run(&o, &commands[i], argc - optind, argv + optind);
	char *cmd = clean_dup(argv[optind]);
	int rc = usage_error("unknown command '%s'", cmd);
	free(cmd);
	return rc;
}
