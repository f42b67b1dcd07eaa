/*
 * util.c - allocation, secret wiping, clocks, RFC 3339, random ids, checked
 * integer parsing, a growable string, and whether a directory or the path
 * to a CA file is safe from other users. No trust boundary of its own, but
 * parse_int64 and parse_rfc3339 are fed untrusted text and check everything.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/stat.h>
#include "log.h"
#include "util.h"

static void oom(size_t n)
{
	/* Robustness: a daemon that cannot allocate cannot keep its promises;
	 * dying lets the supervisor restart it and recovery take over. */
	fatal("out of memory (%zu bytes)", n);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	if (!s)
		return NULL;
	size_t len = strnlen(s, n);
	char *d = xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("xasprintf: bad format");
	char *s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void wipe(void *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
}

void free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

int64_t now_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		fatal("clock_gettime(CLOCK_REALTIME): %s", strerror(errno));
	return (int64_t)ts.tv_sec;
}

int64_t mono_us(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		fatal("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mono_ms(void)
{
	return mono_us() / 1000;
}

void fmt_rfc3339(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "invalid-time");
}

int parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || strlen(s) != 20)
		return JIT_EBADREQ;
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end != '\0')
		return JIT_EBADREQ;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return JIT_EBADREQ;
	/* Only the one spelling jitd writes: strptime also takes a space
	 * before a number, second 60 and 61, and 31 February (which timegm
	 * moves to March); such text must not pass as a time. */
	char back[32];
	fmt_rfc3339((int64_t)t, back);
	if (strcmp(back, s) != 0)
		return JIT_EBADREQ;
	*out = (int64_t)t;
	return JIT_OK;
}

int random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];
	static const char hex[] = "0123456789abcdef";
	if (nbytes > sizeof(buf))
		return JIT_EINTERNAL;
	size_t got = 0;
	while (got < nbytes) {
		ssize_t r = getrandom(buf + got, nbytes - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return JIT_EIO;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return JIT_OK;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return JIT_EBADREQ;
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	if (*p < '0' || *p > '9')
		return JIT_EBADREQ;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || !end || *end != '\0')
		return JIT_EBADREQ;
	if ((int64_t)v < min || (int64_t)v > max)
		return JIT_EBADREQ;
	*out = (int64_t)v;
	return JIT_OK;
}

static void sb_grow(struct strbuf *sb, size_t more)
{
	if (more > SIZE_MAX - sb->len - 1)
		oom(SIZE_MAX);
	size_t need = sb->len + more + 1;
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	sb->s = xrealloc(sb->s, cap);
	sb->cap = cap;
}

void sb_add(struct strbuf *sb, const char *s, size_t n)
{
	sb_grow(sb, n);
	memcpy(sb->s + sb->len, s, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

void sb_addstr(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("sb_addf: bad format");
	sb_grow(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

char *sb_steal(struct strbuf *sb)
{
	char *s = sb->s ? sb->s : xstrdup("");
	sb->s = NULL;
	sb->len = sb->cap = 0;
	return s;
}

void sb_free(struct strbuf *sb)
{
	free(sb->s);
	sb->s = NULL;
	sb->len = sb->cap = 0;
}

bool throttle_pass(struct throttle *t, int64_t now_ms, int64_t period_ms, int64_t *held)
{
	if (t->last_ms != 0 && now_ms - t->last_ms < period_ms) {
		t->held++;
		return false;
	}
	*held = t->held;
	t->held = 0;
	t->last_ms = now_ms;
	return true;
}

bool throttle_flush(struct throttle *t, int64_t now_ms, int64_t period_ms, int64_t *held)
{
	if (t->held == 0 || now_ms - t->last_ms < period_ms)
		return false;
	*held = t->held;
	t->held = 0;
	t->last_ms = now_ms;
	return true;
}

/* Can h[0..n) be a host and port for url_host_start: a name of letters,
 * digits, '-', '_' and '.' that holds a dot, "localhost" or an [IPv6]
 * address, then nothing or ':' and a port of 1 to 5 digits up to 65535.
 * With label, a name without a dot and without a port too. */
static bool host_port_like(const char *h, size_t n, bool label)
{
	size_t hl, i;
	bool dot = false;

	if (n > 0 && h[0] == '[') {
		hl = 1;
		while (hl < n && (isxdigit((unsigned char)h[hl]) || h[hl] == ':' || h[hl] == '.'))
			hl++;
		if (hl == n || h[hl] != ']')
			return false;
		hl++;
	} else {
		hl = 0;
		for (; hl < n && (isalnum((unsigned char)h[hl]) || strchr("-_.", h[hl])); hl++)
			dot = dot || h[hl] == '.';
		bool localhost = hl == 9 && strncasecmp(h, "localhost", 9) == 0;
		if (!dot && !localhost && !(label && hl == n))
			return false;
	}
	if (hl == n)
		return hl > 0;
	if (h[hl] != ':' || n - hl - 1 < 1 || n - hl - 1 > 5)
		return false;
	for (i = hl + 1; i < n; i++)
		if (!isdigit((unsigned char)h[i]))
			return false;
	return strtol(h + hl + 1, NULL, 10) <= 65535;
}

/*
 * Where the host of the URL that starts at p (after "://") begins, or NULL
 * when it cannot be told. RFC 3986 ends the authority at the first '/', '?'
 * or '#', and a user name and password at its last '@'. But people type
 * passwords holding a '/', '?' or '#' ("u:pa/ss@host", "bot:s3cr?t@host"),
 * and a token as a user name may hold a '/' ("AbC/dEf@host"). So when an
 * '@' follows that first '/', '?' or '#' (a Teams webhook has one in its
 * path, a query may hold a mail address), the text before it is taken for
 * the host only if it cannot be a user name or password, nor the start of
 * one: no '@' in it, and a host's name with a dot, "localhost" or an
 * [IPv6] address, with or without a port. A name without a dot or port
 * will do where the '@' is in the query or fragment only: a user name
 * alone would hold the '?' or '#', which no token does, and a password
 * would follow a ':'. Otherwise no part is safe to show.
 */
static const char *url_host_start(const char *p)
{
	size_t n = strcspn(p, "/?#");
	const char *at = NULL;

	for (const char *q = p; q < p + n; q++)
		if (*q == '@')
			at = q;
	if (!strchr(p + n, '@'))
		return at ? at + 1 : p;
	bool query_only = !memchr(p, '@', strcspn(p, "?#")); /* the '@'s past a '?' or '#' */
	return !at && host_port_like(p, n, query_only) ? p : NULL;
}

const char *url_host(const char *url, size_t *len)
{
	const char *p = url ? strstr(url, "://") : NULL;
	const char *h = p ? url_host_start(p + 3) : NULL;

	if (h)
		*len = strcspn(h, "/?#");
	return h;
}

bool url_has_userinfo(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL;
	size_t n;

	return p && url_host(url, &n) != p + 3;
}

bool url_host_is_loopback(const char *url)
{
	static const char *const loop[] = { "localhost", "127.0.0.1", "[::1]", NULL };
	size_t n;
	const char *h = url_host(url, &n);

	if (!h)
		return false;
	const char *colon = h[0] == '[' ? memchr(h, ']', n) : memchr(h, ':', n);
	if (colon && h[0] == '[')
		colon++; /* past the bracket: the port follows, if any */
	size_t hn = colon ? (size_t)(colon - h) : n;
	if (hn < n && h[hn] != ':')
		return false; /* "[::1]x" */
	for (size_t i = 0; loop[i]; i++)
		if (strlen(loop[i]) == hn && strncasecmp(h, loop[i], hn) == 0)
			return true;
	return false;
}

int close_from(int fd)
{
	struct rlimit rl;

	if (close_range((unsigned)fd, ~0U, 0) == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	for (rlim_t i = (rlim_t)fd; i < rl.rlim_cur && i < (1u << 20); i++)
		(void)close((int)i);
	return 0;
}

void url_redact(const char *url, char *buf, size_t len)
{
	const char *p = url ? strstr(url, "://") : NULL;
	size_t hl;
	const char *h = url_host(url, &hl);

	if (!p) {
		snprintf(buf, len, "***");
		return;
	}
	p += 3;
	if (!h) {
		snprintf(buf, len, "%.*s***/***", (int)(p - url), url);
		return;
	}
	/* without user:password@ */
	snprintf(buf, len, "%.*s%.*s%s", (int)(p - url), url, (int)hl, h, h[hl] ? "/***" : "");
}

/* The checks of one directory jitd looks a name up in, st its stat: entry
 * is the lstat of that name there, or NULL for a name that may be free.
 * The reason, without the directory's path, goes in why. */
static int dir_check(const struct stat *st, uid_t owner, const char *name, const struct stat *entry,
		     char *why, size_t whylen)
{
	if (!S_ISDIR(st->st_mode)) {
		snprintf(why, whylen, "not a directory");
		return JIT_ECONFIG;
	}
	if (st->st_uid != 0 && st->st_uid != owner) {
		snprintf(why, whylen, "owned by uid %lu, neither root nor uid %lu that jitd runs as",
			 (unsigned long)st->st_uid, (unsigned long)owner);
		return JIT_ECONFIG;
	}
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
		return JIT_OK;
	/* Robustness: in a sticky directory (/tmp) only an entry's owner, the
	 * directory's owner and root may rename or remove it, so an entry that
	 * exists and belongs to root or owner stays what it is; a free name
	 * anyone may take, and any other entry its owner may swap. */
	if (!(st->st_mode & S_ISVTX) || !entry) {
		snprintf(why, whylen, "writable by group or others (mode %04o)",
			 (unsigned)(st->st_mode & 07777));
		return JIT_ECONFIG;
	}
	if (entry->st_uid != 0 && entry->st_uid != owner) {
		snprintf(why, whylen, "writable by group or others (mode %04o), and %s in it is "
			 "owned by uid %lu, neither root nor uid %lu that jitd runs as",
			 (unsigned)(st->st_mode & 07777), name, (unsigned long)entry->st_uid,
			 (unsigned long)owner);
		return JIT_ECONFIG;
	}
	return JIT_OK;
}

int dir_trusted(const char *path, uid_t owner, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return JIT_EIO;
	}
	return dir_check(&st, owner, NULL, NULL, why, whylen);
}

/* file_trusted()'s walk: where it stands and what is left. */
struct walk {
	char dir[PATH_MAX];  /* the directory reached, with no link in its path */
	char full[PATH_MAX]; /* dir and the name looked up in it */
	char rest[PATH_MAX]; /* what is left to resolve, from p on */
	char link[PATH_MAX]; /* a link's target with the rest after it */
	const char *p;
	unsigned links; /* links followed so far */
};

/* A refusal by file_trusted(): the path resolved so far, w->full, is named
 * when a symbolic link led there. JIT_ECONFIG. */
static int walk_refuse(const struct walk *w, const char *reason, char *why, size_t whylen)
{
	if (w->links)
		snprintf(why, whylen, "resolves to %s: %s", w->full, reason);
	else
		snprintf(why, whylen, "%s", reason);
	return JIT_ECONFIG;
}

/* file_trusted()'s failure of a system call, errno err. */
static int walk_fail(const struct walk *w, int err, char *why, size_t whylen)
{
	walk_refuse(w, strerror(err), why, whylen);
	return err == ENOENT || err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG ?
		JIT_ECONFIG : JIT_EIO;
}

/* The checks of the file the walk arrived at, w->full (st: its lstat). */
static int walk_file(const struct walk *w, const struct stat *st, uid_t owner, char *why,
		     size_t whylen)
{
	char reason[120];

	if (!S_ISREG(st->st_mode))
		return walk_refuse(w, "not a regular file", why, whylen);
	if (st->st_uid != 0 && st->st_uid != owner) {
		snprintf(reason, sizeof(reason),
			 "owned by uid %lu, neither root nor uid %lu that jitd runs as",
			 (unsigned long)st->st_uid, (unsigned long)owner);
		return walk_refuse(w, reason, why, whylen);
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(reason, sizeof(reason), "writable by group or others (mode %04o)",
			 (unsigned)(st->st_mode & 07777));
		return walk_refuse(w, reason, why, whylen);
	}
	return JIT_OK;
}

/* Puts the target of the link at w->full before what is left to resolve,
 * from w->dir, or from / for an absolute one. */
static int walk_link(struct walk *w, char *why, size_t whylen)
{
	/* Linux's own limit on the links one lookup follows */
	if (++w->links > 40)
		return walk_fail(w, ELOOP, why, whylen);
	ssize_t len = readlink(w->full, w->link, sizeof(w->link));
	if (len < 0)
		return walk_fail(w, errno, why, whylen);
	if (len == 0) /* the kernel finds nothing at an empty link */
		return walk_fail(w, ENOENT, why, whylen);
	size_t left = strlen(w->p); /* "" or "/more" */
	if ((size_t)len + left >= sizeof(w->link))
		return walk_fail(w, ENAMETOOLONG, why, whylen);
	memcpy(w->link + len, w->p, left + 1);
	memcpy(w->rest, w->link, (size_t)len + left + 1);
	w->p = w->rest;
	if (w->rest[0] == '/')
		memcpy(w->dir, "/", 2);
	return JIT_OK;
}

/* One name, n bytes at w->p, looked up in w->dir: the directory checked
 * for it, then a link followed, a directory entered or the file checked
 * (*done). */
static int walk_step(struct walk *w, size_t n, uid_t owner, bool *done, char *why, size_t whylen)
{
	char reason[200];
	struct stat dst, est;
	int len = snprintf(w->full, sizeof(w->full), "%s%s%.*s", w->dir, w->dir[1] ? "/" : "",
			   (int)n, w->p);

	if (len < 0 || (size_t)len >= sizeof(w->full))
		return walk_fail(w, ENAMETOOLONG, why, whylen);
	w->p += n;
	if (lstat(w->full, &est) != 0 || stat(w->dir, &dst) != 0)
		return walk_fail(w, errno, why, whylen);
	int rc = dir_check(&dst, owner, w->full + len - n, &est, reason, sizeof(reason));
	if (rc != JIT_OK) {
		snprintf(why, whylen, "directory %s: %s", w->dir, reason);
		return rc;
	}
	if (S_ISLNK(est.st_mode))
		return walk_link(w, why, whylen);
	if (*w->p == '\0') {
		*done = true;
		return walk_file(w, &est, owner, why, whylen);
	}
	if (!S_ISDIR(est.st_mode))
		return walk_fail(w, ENOTDIR, why, whylen);
	memcpy(w->dir, w->full, (size_t)len + 1);
	return JIT_OK;
}

/* Robustness: the walk resolves path one name at a time, as the kernel
 * will when libldap or libcurl opens it, so that every directory a name is
 * looked up in is checked: those on the path as written, those a symbolic
 * link leads through, and the one holding each link. */
int file_trusted(const char *path, uid_t owner, char *why, size_t whylen)
{
	struct walk *w = xcalloc(1, sizeof(*w));
	bool done = false;
	int rc = JIT_ECONFIG;

	if (path[0] != '/') {
		snprintf(why, whylen, "not an absolute path");
		goto out;
	}
	if (strlen(path) >= sizeof(w->rest)) {
		rc = walk_fail(w, ENAMETOOLONG, why, whylen);
		goto out;
	}
	memcpy(w->rest, path, strlen(path) + 1);
	memcpy(w->dir, "/", 2);
	w->p = w->rest;
	for (rc = JIT_OK; rc == JIT_OK && !done;) {
		w->p += strspn(w->p, "/");
		size_t n = strcspn(w->p, "/");
		if (n == 0) { /* ended on a directory: "/", "/etc/" */
			memcpy(w->full, w->dir, strlen(w->dir) + 1);
			rc = walk_refuse(w, "not a regular file", why, whylen);
		} else if (n == 1 && w->p[0] == '.') {
			w->p++;
		} else if (n == 2 && w->p[0] == '.' && w->p[1] == '.') {
			/* w->dir holds no link: its parent is the one it was reached by */
			char *slash = strrchr(w->dir, '/');
			*(slash == w->dir ? slash + 1 : slash) = '\0';
			w->p += 2;
		} else {
			rc = walk_step(w, n, owner, &done, why, whylen);
		}
	}
out:
	free(w);
	return rc;
}

int nss_lookup(enum nss_kind kind, const char *name, int64_t id, struct nss_entry *e,
	       bool *found)
{
	size_t len = 4096;
	int rc = ERANGE;

	*found = false;
	memset(e, 0, sizeof(*e));
	for (int tries = 0; rc == ERANGE && tries < 10; tries++, len *= 2) {
		char *buf = xmalloc(len);
		struct passwd pw, *pwp = NULL;
		struct group gr, *grp = NULL;

		switch (kind) {
		case NSS_USER_BY_NAME:
			rc = getpwnam_r(name, &pw, buf, len, &pwp);
			break;
		case NSS_USER_BY_ID:
			rc = getpwuid_r((uid_t)id, &pw, buf, len, &pwp);
			break;
		case NSS_GROUP_BY_NAME:
			rc = getgrnam_r(name, &gr, buf, len, &grp);
			break;
		default:
			rc = getgrgid_r((gid_t)id, &gr, buf, len, &grp);
			break;
		}
		if (rc == 0 && pwp) {
			e->id = (int64_t)pwp->pw_uid;
			e->gid = (int64_t)pwp->pw_gid;
			e->name = xstrdup(pwp->pw_name);
			*found = true;
		} else if (rc == 0 && grp) {
			e->id = e->gid = (int64_t)grp->gr_gid;
			e->name = xstrdup(grp->gr_name);
			*found = true;
		}
		free(buf);
	}
	return rc;
}

bool utf8_decode(const unsigned char *p, size_t n, unsigned *cp, size_t *len)
{
	unsigned c = p[0];
	size_t k;
	if (c < 0x80) {
		*cp = c;
		*len = 1;
		return true;
	}
	if (c >= 0xc2 && c <= 0xdf)
		k = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, c &= 0x07;
	else
		return false;
	if (k > n)
		return false;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return false;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return false;
	*cp = c;
	*len = k;
	return true;
}

bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n > 0) {
		unsigned cp;
		size_t len;
		if (!utf8_decode(p, n, &cp, &len))
			return false;
		p += len;
		n -= len;
	}
	return true;
}
