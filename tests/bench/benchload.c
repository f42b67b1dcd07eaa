/*
 * benchload.c - the load generator of `make bench` (tests/bench/bench.py
 * drives it). Threads, one connection each, closed loop, monotonic clock;
 * one JSON object on stdout. Four modes:
 *
 *   benchload ldap -u URI -g GROUP_DN -v PREFIX [-V SUFFIX] [-c CONNS] [-t SECS]
 *                  [-w WARMUP] [-D BINDDN -y PWFILE]
 *       the baseline: each connection adds then deletes its own member value
 *       PREFIX<i>SUFFIX on GROUP_DN (ldap_modify_ext_s), bound with SASL
 *       EXTERNAL (default, as jitd over ldapi) or a simple bind (-D/-y).
 *   benchload pair -u URI -b USER_BASE -f USER_PREFIX [-c CONNS] [-U USERS_PER_CONN]
 *                  [-t SECS] [-w WARMUP] GROUP_DN...
 *       the directory's work of one jitd grant + complete, without jitd: the
 *       same searches and modifies jitd sends (user by uid, membership check,
 *       add; user by entryUUID, delete), connection c cycling over users
 *       USER_PREFIX<c*U+k> in GROUP_DN[c % ngroups], bound with SASL EXTERNAL.
 *   benchload jitd -s SOCKET -f USER_PREFIX [-c CLIENTS] [-U USERS_PER_CLIENT]
 *                  [-t SECS] [-w WARMUP] [-d DURATION] [-p ID_PREFIX] GROUP...
 *       grant + complete pairs through jitd's socket; client c cycles over
 *       users USER_PREFIX<c*U+k> in group GROUP[c % ngroups].
 *   benchload fill -s SOCKET -f USER_PREFIX -n COUNT [-c CLIENTS] [-d DURATION]
 *                  [-p ID_PREFIX] GROUP...
 *       COUNT grants, grant i for user USER_PREFIX<i> in GROUP[i % ngroups].
 *
 * Test tool, not part of the daemon: it talks to libldap directly (the
 * baseline must not go through jitd's code) and trusts its arguments.
 * Answers from jitd are parsed with jansson and every one must say ok.
 */
#include <errno.h>
#include <ldap.h>
#include <pthread.h>
#include <sasl/sasl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <jansson.h>
#include "lat.h"
#include "util.h"

#define MAX_THREADS 256
#define MAX_LINE (1024 * 1024) /* longest answer line accepted from jitd */
#define MAX_GROUPS 1024

struct opts {
	const char *mode;
	const char *uri, *group_dn, *prefix, *suffix, *bind_dn, *pw_file, *user_base;
	const char *sock, *duration, *id_prefix;
	const char *groups[MAX_GROUPS];
	int ngroups;
	int threads, users_per_client;
	int64_t count;
	double seconds, warmup;
};

/* One thread's work and results. */
struct worker {
	int idx;
	const struct opts *o;
	struct lat a, b;          /* ldap: every modify (a); jitd, pair: grant (a), complete (b) */
	int64_t ops;              /* modifies / pairs / grants completed in the window */
	int64_t errors;
	char first_error[256];
	bool fatal;               /* the thread stopped early (cannot connect, I/O) */
};

static int64_t t_measure, t_end; /* the measuring window, lat_now_ns() */
static pthread_barrier_t start_barrier;

static void usage(void)
{
	fputs("usage: benchload ldap -u URI -g GROUP_DN -v PREFIX [-V SUFFIX] [-c N] [-t S] "
	      "[-w S] [-D DN -y PWFILE]\n"
	      "       benchload pair -u URI -b USER_BASE -f USER_PREFIX [-c N] [-U N] [-t S] "
	      "[-w S] GROUP_DN...\n"
	      "       benchload jitd -s SOCKET -f USER_PREFIX [-c N] [-U N] [-t S] [-w S] "
	      "[-d DUR] [-p ID] GROUP...\n"
	      "       benchload fill -s SOCKET -f USER_PREFIX -n COUNT [-c N] [-d DUR] [-p ID] "
	      "GROUP...\n",
	      stderr);
	exit(2);
}

static void fail(struct worker *w, const char *fmt, ...) JIT_PRINTF(2, 3);
/* Counts an error; the first one's text is kept for the report. */
static void fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	w->errors++;
	if (w->first_error[0] != '\0')
		return;
	va_start(ap, fmt);
	(void)vsnprintf(w->first_error, sizeof(w->first_error), fmt, ap);
	va_end(ap);
}

static double parse_secs(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400) {
		fprintf(stderr, "benchload: bad number of seconds %s\n", s);
		exit(2);
	}
	return v;
}

static int parse_count(const char *s, int64_t lo, int64_t hi)
{
	int64_t v;

	if (parse_int64(s, lo, hi, &v) != 0) {
		fprintf(stderr, "benchload: bad number %s (%lld..%lld)\n", s, (long long)lo,
			(long long)hi);
		exit(2);
	}
	return (int)v;
}

/* ---- the baseline: libldap modify loop ---- */

/* SASL EXTERNAL asks nothing; any prompt gets its default (or empty). */
static int sasl_defaults(LDAP *ld, unsigned flags, void *defaults, void *in)
{
	(void)ld;
	(void)flags;
	(void)defaults;
	for (sasl_interact_t *i = in; i->id != SASL_CB_LIST_END; i++) {
		i->result = i->defresult ? i->defresult : "";
		i->len = (unsigned)strlen(i->result);
	}
	return LDAP_SUCCESS;
}

static char *read_password(const char *path)
{
	char buf[512];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL) {
		fprintf(stderr, "benchload: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	(void)fclose(fp);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return xstrdup(buf);
}

/* A bound connection, or NULL with the reason counted as an error of w. */
static LDAP *ldap_connect_bind(struct worker *w)
{
	const struct opts *o = w->o;
	LDAP *ld = NULL;
	int version = LDAP_VERSION3, rc;

	rc = ldap_initialize(&ld, o->uri);
	if (rc != LDAP_SUCCESS) {
		fail(w, "ldap_initialize %s: %s", o->uri, ldap_err2string(rc));
		return NULL;
	}
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS) {
		fail(w, "ldap_set_option protocol version failed");
		goto err;
	}
	if (o->bind_dn != NULL) {
		char *pw = read_password(o->pw_file);
		struct berval cred = { strlen(pw), pw };
		rc = ldap_sasl_bind_s(ld, o->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		explicit_bzero(pw, strlen(pw));
		free(pw);
	} else {
		rc = ldap_sasl_interactive_bind_s(ld, NULL, "EXTERNAL", NULL, NULL,
						  LDAP_SASL_QUIET, sasl_defaults, NULL);
	}
	if (rc != LDAP_SUCCESS) {
		fail(w, "bind: %s", ldap_err2string(rc));
		goto err;
	}
	return ld;
err:
	(void)ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

/* One modify of the member value; the LDAP result code. */
static int modify_member(LDAP *ld, const char *group_dn, int op, char *value)
{
	char *vals[2] = { value, NULL };
	char attr[] = "member";
	LDAPMod mod = { .mod_op = op, .mod_type = attr, .mod_values = vals };
	LDAPMod *mods[2] = { &mod, NULL };

	return ldap_modify_ext_s(ld, group_dn, mods, NULL, NULL);
}

static void *ldap_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	char value[1024];
	LDAP *ld = ldap_connect_bind(w);
	int rc;

	if (snprintf(value, sizeof(value), "%s%d%s", o->prefix, w->idx, o->suffix) >=
	    (int)sizeof(value)) {
		fail(w, "member value too long");
		w->fatal = true;
	}
	if (ld == NULL)
		w->fatal = true;
	/* A value left over by an interrupted run would make the first add fail. */
	if (!w->fatal) {
		rc = modify_member(ld, o->group_dn, LDAP_MOD_DELETE, value);
		if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_ATTRIBUTE) {
			fail(w, "initial delete: %s (%d)", ldap_err2string(rc), rc);
			w->fatal = true;
		}
	}
	pthread_barrier_wait(&start_barrier);
	for (int op = LDAP_MOD_ADD; !w->fatal; op = op == LDAP_MOD_ADD ? LDAP_MOD_DELETE :
									   LDAP_MOD_ADD) {
		int64_t t0 = lat_now_ns();
		rc = modify_member(ld, o->group_dn, op, value);
		int64_t t1 = lat_now_ns();
		if (rc != LDAP_SUCCESS) {
			/* Counted in the warm-up too: a run with errors is reported as such. */
			fail(w, "modify %s: %s (%d)", op == LDAP_MOD_ADD ? "add" : "delete",
			     ldap_err2string(rc), rc);
			if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
				w->fatal = true;
				break;
			}
		} else if (t1 >= t_measure && t1 < t_end) {
			lat_add(&w->a, (double)(t1 - t0) / 1000.0);
			w->ops++;
		}
		/* End on a delete so that the group is left as it was. */
		if (t1 >= t_end && op == LDAP_MOD_DELETE)
			break;
	}
	if (ld != NULL)
		(void)ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

/* ---- the directory's work of a pair, without jitd ---- */

/* Subtree search of the user base; *n entries, the first one's DN and (if
 * uuid is not NULL) entryUUID. The LDAP result code. */
static int search_user(LDAP *ld, const char *base, const char *filter, char **attrs, int *n,
		       char **dn, char **uuid)
{
	LDAPMessage *msg = NULL, *e;
	struct berval **v;
	int rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL,
				   NULL, 2, &msg);

	*n = 0;
	if (rc == LDAP_SUCCESS && (*n = ldap_count_entries(ld, msg)) == 1 &&
	    (e = ldap_first_entry(ld, msg)) != NULL) {
		char *d = ldap_get_dn(ld, e);
		*dn = d ? xstrdup(d) : NULL;
		ldap_memfree(d);
		if (uuid != NULL && (v = ldap_get_values_len(ld, e, "entryUUID")) != NULL) {
			if (v[0] != NULL)
				*uuid = xstrndup(v[0]->bv_val, v[0]->bv_len);
			ldap_value_free_len(v);
		}
	}
	ldap_msgfree(msg);
	return rc;
}

/* Base search of the group for (member=dn), as jitd checks a membership. */
static int search_member(LDAP *ld, const char *group_dn, const char *dn, int *n)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	char filter[1100];
	LDAPMessage *msg = NULL;
	int rc;

	/* The bench's DNs hold no filter metacharacters (checked by the caller). */
	if (snprintf(filter, sizeof(filter), "(member=%s)", dn) >= (int)sizeof(filter))
		return LDAP_FILTER_ERROR;
	rc = ldap_search_ext_s(ld, group_dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL, NULL, NULL,
			       1, &msg);
	*n = rc == LDAP_SUCCESS ? ldap_count_entries(ld, msg) : 0;
	ldap_msgfree(msg);
	return rc;
}

/* One grant's directory work: the user's DN and uuid (caller frees), or -1
 * with the error counted. */
static int pair_grant(struct worker *w, LDAP *ld, const char *user, const char *group_dn,
		      char **dn, char **uuid)
{
	char *attrs[] = { "userAccountControl", "uid", "entryUUID", NULL };
	char filter[512];
	int n, rc;

	(void)snprintf(filter, sizeof(filter), "(uid=%s)", user);
	rc = search_user(ld, w->o->user_base, filter, attrs, &n, dn, uuid);
	if (rc != LDAP_SUCCESS || n != 1 || *dn == NULL || *uuid == NULL) {
		fail(w, "user %s: %s (%d), %d entries", user, ldap_err2string(rc), rc, n);
		return -1;
	}
	if (strpbrk(*dn, "()*\\") != NULL) {
		fail(w, "user DN %s needs filter escaping", *dn);
		return -1;
	}
	rc = search_member(ld, group_dn, *dn, &n);
	if (rc != LDAP_SUCCESS || n != 0) {
		fail(w, "membership check %s: %s (%d), %d entries", *dn, ldap_err2string(rc), rc, n);
		return -1;
	}
	rc = modify_member(ld, group_dn, LDAP_MOD_ADD, *dn);
	if (rc != LDAP_SUCCESS) {
		fail(w, "add %s: %s (%d)", *dn, ldap_err2string(rc), rc);
		return -1;
	}
	return 0;
}

/* One end's directory work: the user by uuid, then the delete. */
static int pair_end(struct worker *w, LDAP *ld, const char *group_dn, char *dn, const char *uuid)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	char filter[512], *cur = NULL;
	int n, rc;

	(void)snprintf(filter, sizeof(filter), "(entryUUID=%s)", uuid);
	rc = search_user(ld, w->o->user_base, filter, attrs, &n, &cur, NULL);
	if (rc != LDAP_SUCCESS || n != 1 || cur == NULL || strcasecmp(cur, dn) != 0) {
		fail(w, "user by uuid %s: %s (%d), %d entries", uuid, ldap_err2string(rc), rc, n);
		free(cur);
		return -1;
	}
	free(cur);
	rc = modify_member(ld, group_dn, LDAP_MOD_DELETE, dn);
	if (rc != LDAP_SUCCESS) {
		fail(w, "delete %s: %s (%d)", dn, ldap_err2string(rc), rc);
		return -1;
	}
	return 0;
}

static void *pair_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	const char *group = o->groups[w->idx % o->ngroups];
	char user[256];
	LDAP *ld = ldap_connect_bind(w);

	if (ld == NULL)
		w->fatal = true;
	pthread_barrier_wait(&start_barrier);
	for (int64_t seq = 0; !w->fatal; seq++) {
		char *dn = NULL, *uuid = NULL;
		(void)snprintf(user, sizeof(user), "%s%d", o->prefix,
			       w->idx * o->users_per_client + (int)(seq % o->users_per_client));
		int64_t t0 = lat_now_ns();
		int rc = pair_grant(w, ld, user, group, &dn, &uuid);
		int64_t t1 = lat_now_ns();
		if (rc == 0 && pair_end(w, ld, group, dn, uuid) == 0) {
			int64_t t2 = lat_now_ns();
			if (t2 >= t_measure && t2 < t_end) {
				lat_add(&w->a, (double)(t1 - t0) / 1000.0);
				lat_add(&w->b, (double)(t2 - t1) / 1000.0);
				w->ops++;
			}
		} else {
			w->fatal = true; /* the group may hold the value: stop */
		}
		free(dn);
		free(uuid);
		if (lat_now_ns() >= t_end)
			break;
	}
	if (ld != NULL)
		(void)ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

/* ---- jitd's socket ---- */

struct conn {
	int fd;
	char *buf;      /* MAX_LINE + 1 bytes */
	size_t len;     /* bytes held in buf */
};

static int conn_open(struct conn *c, const char *path, struct worker *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fail(w, "socket path too long");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(w, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fail(w, "connect %s: %s", path, strerror(errno));
		(void)close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->buf = xmalloc(MAX_LINE + 1);
	c->len = 0;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads one answer line into *line (NUL-terminated, inside c->buf, valid
 * until the next call); consumes it at the next call. -1 on EOF, error or
 * a line over MAX_LINE. */
static int recv_line(struct conn *c, size_t *consumed, char **line)
{
	if (*consumed > 0) {
		memmove(c->buf, c->buf + *consumed, c->len - *consumed);
		c->len -= *consumed;
		*consumed = 0;
	}
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl != NULL) {
			*nl = '\0';
			*line = c->buf;
			*consumed = (size_t)(nl - c->buf) + 1;
			return 0;
		}
		if (c->len >= MAX_LINE)
			return -1;
		ssize_t k = recv(c->fd, c->buf + c->len, MAX_LINE - c->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		c->len += (size_t)k;
	}
}

/*
 * Sends req (one line, without newline) and parses the answer. Returns the
 * answer (caller json_decref) if it says "ok":true; NULL otherwise, with
 * the error counted. *io_error set if the connection is unusable.
 */
static json_t *call(struct worker *w, struct conn *c, size_t *consumed, const char *req,
		    bool *io_error)
{
	char *line;
	json_error_t jerr;
	json_t *ans;

	if (send_all(c->fd, req, strlen(req)) != 0 || send_all(c->fd, "\n", 1) != 0 ||
	    recv_line(c, consumed, &line) != 0) {
		fail(w, "socket I/O: %s", errno ? strerror(errno) : "closed by jitd");
		*io_error = true;
		return NULL;
	}
	ans = json_loads(line, 0, &jerr);
	if (ans == NULL) {
		fail(w, "answer is not JSON: %.120s", line);
		return NULL;
	}
	if (!json_is_true(json_object_get(ans, "ok"))) {
		fail(w, "refused: %.200s", line);
		json_decref(ans);
		return NULL;
	}
	return ans;
}

/* The grant_id of an ok grant answer (inside ans), or NULL. */
static const char *answer_grant_id(json_t *ans)
{
	return json_string_value(json_object_get(json_object_get(ans, "grant"), "grant_id"));
}

/* The request line of a grant; a static-size buffer, truncation is an error. */
static int grant_line(char *out, size_t size, const struct opts *o, const char *user,
		      const char *group, const char *request_id)
{
	json_t *r = json_object();
	char *s;
	int n;

	json_object_set_new(r, "v", json_integer(1));
	json_object_set_new(r, "op", json_string("grant"));
	json_object_set_new(r, "user", json_string(user));
	json_object_set_new(r, "group", json_string(group));
	json_object_set_new(r, "duration", json_string(o->duration));
	json_object_set_new(r, "request_id", json_string(request_id));
	json_object_set_new(r, "reason", json_string("jitd benchmark"));
	s = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (s == NULL)
		return -1;
	n = snprintf(out, size, "%s", s);
	free(s);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static void *jitd_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct conn c = { .fd = -1 };
	size_t consumed = 0;
	char user[256], rid[256], req[2048];
	const char *group = o->groups[w->idx % o->ngroups];
	bool io = false;

	if (conn_open(&c, o->sock, w) != 0)
		w->fatal = true;
	pthread_barrier_wait(&start_barrier);
	for (int64_t seq = 0; !w->fatal; seq++) {
		int k = (int)(seq % o->users_per_client);
		(void)snprintf(user, sizeof(user), "%s%d", o->prefix,
			       w->idx * o->users_per_client + k);
		(void)snprintf(rid, sizeof(rid), "%s-%d-%lld", o->id_prefix, w->idx,
			       (long long)seq);
		if (grant_line(req, sizeof(req), o, user, group, rid) != 0) {
			fail(w, "grant request too long");
			break;
		}
		int64_t t0 = lat_now_ns();
		json_t *g = call(w, &c, &consumed, req, &io);
		int64_t t1 = lat_now_ns();
		if (io)
			break;
		const char *id = g ? answer_grant_id(g) : NULL;
		if (g != NULL && id == NULL)
			fail(w, "grant answer without grant_id");
		if (id != NULL) {
			char creq[512];
			if (snprintf(creq, sizeof(creq),
				     "{\"v\":1,\"op\":\"complete\",\"grant_id\":\"%s\"}",
				     id) >= (int)sizeof(creq)) {
				fail(w, "grant_id too long");
			} else {
				json_t *d = call(w, &c, &consumed, creq, &io);
				int64_t t2 = lat_now_ns();
				if (d != NULL) {
					const char *st = json_string_value(json_object_get(
						json_object_get(d, "grant"), "state"));
					if (st == NULL || strcmp(st, "completed") != 0)
						fail(w, "complete answered state %s",
						     st ? st : "(none)");
					else if (t2 >= t_measure && t2 < t_end) {
						lat_add(&w->a, (double)(t1 - t0) / 1000.0);
						lat_add(&w->b, (double)(t2 - t1) / 1000.0);
						w->ops++;
					}
				}
				json_decref(d);
			}
		}
		json_decref(g);
		if (io || lat_now_ns() >= t_end)
			break;
	}
	conn_close(&c);
	if (io)
		w->fatal = true;
	return NULL;
}

static void *fill_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct conn c = { .fd = -1 };
	size_t consumed = 0;
	char user[256], rid[256], req[2048];
	bool io = false;

	if (conn_open(&c, o->sock, w) != 0)
		w->fatal = true;
	pthread_barrier_wait(&start_barrier);
	for (int64_t i = w->idx; !w->fatal && i < o->count; i += o->threads) {
		(void)snprintf(user, sizeof(user), "%s%lld", o->prefix, (long long)i);
		(void)snprintf(rid, sizeof(rid), "%s-%lld", o->id_prefix, (long long)i);
		if (grant_line(req, sizeof(req), o, user, o->groups[i % o->ngroups], rid) != 0) {
			fail(w, "grant request too long");
			break;
		}
		int64_t t0 = lat_now_ns();
		json_t *g = call(w, &c, &consumed, req, &io);
		if (g != NULL) {
			lat_add(&w->a, (double)(lat_now_ns() - t0) / 1000.0);
			w->ops++;
		}
		json_decref(g);
		if (io)
			w->fatal = true;
	}
	conn_close(&c);
	return NULL;
}

/* ---- driver ---- */

static void parse_opts(int argc, char **argv, struct opts *o)
{
	int ch;

	if (argc < 2)
		usage();
	*o = (struct opts){ .mode = argv[1], .suffix = "", .threads = 1, .users_per_client = 4,
			    .seconds = 10, .warmup = 2, .duration = "1h", .id_prefix = "bench" };
	optind = 2;
	while ((ch = getopt(argc, argv, "u:g:v:V:D:y:b:s:f:d:p:c:U:n:t:w:")) != -1) {
		switch (ch) {
		case 'u': o->uri = optarg; break;
		case 'g': o->group_dn = optarg; break;
		case 'v': case 'f': o->prefix = optarg; break;
		case 'V': o->suffix = optarg; break;
		case 'D': o->bind_dn = optarg; break;
		case 'y': o->pw_file = optarg; break;
		case 'b': o->user_base = optarg; break;
		case 's': o->sock = optarg; break;
		case 'd': o->duration = optarg; break;
		case 'p': o->id_prefix = optarg; break;
		case 'c': o->threads = parse_count(optarg, 1, MAX_THREADS); break;
		case 'U': o->users_per_client = parse_count(optarg, 1, 1000000); break;
		case 'n': o->count = parse_count(optarg, 1, 100000000); break;
		case 't': o->seconds = parse_secs(optarg); break;
		case 'w': o->warmup = parse_secs(optarg); break;
		default: usage();
		}
	}
	for (int i = optind; i < argc; i++) {
		if (o->ngroups == MAX_GROUPS)
			usage();
		o->groups[o->ngroups++] = argv[i];
	}
	if (strcmp(o->mode, "ldap") == 0) {
		if (!o->uri || !o->group_dn || !o->prefix || (!o->bind_dn != !o->pw_file))
			usage();
	} else if (strcmp(o->mode, "pair") == 0) {
		if (!o->uri || !o->user_base || !o->prefix || o->ngroups == 0)
			usage();
	} else if (strcmp(o->mode, "jitd") == 0 || strcmp(o->mode, "fill") == 0) {
		if (!o->sock || !o->prefix || o->ngroups == 0)
			usage();
		if (strcmp(o->mode, "fill") == 0 && o->count <= 0)
			usage();
	} else {
		usage();
	}
}

int main(int argc, char **argv)
{
	static struct worker w[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	struct opts o;
	void *(*fn)(void *);
	struct lat a = { 0 }, b = { 0 };
	int64_t ops = 0, errors = 0, t_start;
	int fatal = 0, rc;
	const char *first_error = NULL;
	json_t *out;
	char *text;

	parse_opts(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	fn = strcmp(o.mode, "ldap") == 0 ? ldap_worker :
	     strcmp(o.mode, "pair") == 0 ? pair_worker :
	     strcmp(o.mode, "jitd") == 0 ? jitd_worker : fill_worker;
	rc = pthread_barrier_init(&start_barrier, NULL, (unsigned)o.threads + 1);
	if (rc != 0) {
		fprintf(stderr, "benchload: pthread_barrier_init: %s\n", strerror(rc));
		return 1;
	}
	/* Far future until the barrier opens: nothing is recorded before. */
	t_measure = t_end = INT64_MAX;
	for (int i = 0; i < o.threads; i++) {
		w[i].idx = i;
		w[i].o = &o;
		rc = pthread_create(&th[i], NULL, fn, &w[i]);
		if (rc != 0) {
			fprintf(stderr, "benchload: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	t_start = lat_now_ns();
	if (strcmp(o.mode, "fill") == 0) {
		t_measure = t_start;
	} else {
		t_measure = t_start + (int64_t)(o.warmup * 1e9);
		t_end = t_measure + (int64_t)(o.seconds * 1e9);
	}
	/* Workers read t_measure/t_end only after the barrier: it orders them. */
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < o.threads; i++) {
		rc = pthread_join(th[i], NULL);
		if (rc != 0) {
			fprintf(stderr, "benchload: pthread_join: %s\n", strerror(rc));
			return 1;
		}
		lat_merge(&a, &w[i].a);
		lat_merge(&b, &w[i].b);
		lat_free(&w[i].a);
		lat_free(&w[i].b);
		ops += w[i].ops;
		errors += w[i].errors;
		fatal += w[i].fatal;
		if (first_error == NULL && w[i].first_error[0] != '\0')
			first_error = w[i].first_error;
	}
	double elapsed = (double)(lat_now_ns() - t_start) / 1e9;
	double window = strcmp(o.mode, "fill") == 0 ? elapsed : o.seconds;

	out = json_object();
	json_object_set_new(out, "mode", json_string(o.mode));
	json_object_set_new(out, "threads", json_integer(o.threads));
	json_object_set_new(out, "seconds", json_real(window));
	json_object_set_new(out, "ops", json_integer(ops));
	json_object_set_new(out, "rate", json_real(window > 0 ? (double)ops / window : 0));
	json_object_set_new(out, "errors", json_integer(errors));
	json_object_set_new(out, "threads_failed", json_integer(fatal));
	if (first_error != NULL)
		json_object_set_new(out, "first_error", json_string(first_error));
	if (strcmp(o.mode, "jitd") == 0 || strcmp(o.mode, "pair") == 0) {
		json_object_set_new(out, "grant_ms", lat_summary(&a));
		json_object_set_new(out, "complete_ms", lat_summary(&b));
	} else {
		json_object_set_new(out, strcmp(o.mode, "ldap") == 0 ? "modify_ms" : "grant_ms",
				    lat_summary(&a));
	}
	lat_free(&a);
	lat_free(&b);
	text = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (text == NULL || puts(text) == EOF || fflush(stdout) != 0) {
		free(text);
		return 1;
	}
	free(text);
	(void)pthread_barrier_destroy(&start_barrier);
	return errors > 0 || fatal > 0 ? 3 : 0;
}
