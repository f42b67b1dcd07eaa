/*
 * audit.c - the audit log writer and chain verifier.
 * Trust: the file is evidence; each line is written with one write(2) on an
 * O_APPEND descriptor and fdatasync'd before audit_write() returns, so a
 * client is never told "ok" about an event that is not on disk. Each line
 * is hash-chained (SHA-256 via libcrypto) to the one before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "audit.h"
#include "log.h"
#include "util.h"

#define HASH_HEX 64
#define TAIL_READ 65536
static const char zero_hash[HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";
static const char prev_marker[] = ",\"prev\":\"";

struct audit {
	pthread_mutex_t lock;
	char *path;
	int fd;
	int64_t seq;                 /* of the last line written */
	char hash[HASH_HEX + 1];     /* of the last line written */
};

/* hex SHA-256 of prev (64 hex chars) followed by content[0..len). */
static int chain_hash(const char *prev, const char *content, size_t len, char out[HASH_HEX + 1])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int rc = JIT_EINTERNAL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return JIT_EINTERNAL;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prev, HASH_HEX) != 1 ||
	    EVP_DigestUpdate(ctx, content, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	rc = JIT_OK;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/*
 * Splits a line into its hashed content and the prev/hash it carries.
 * The tail must be exactly ,"prev":"<64 hex>","hash":"<64 hex>"}
 */
static int split_line(const char *line, size_t len, size_t *content_len, char prev[HASH_HEX + 1],
		      char hash[HASH_HEX + 1])
{
	static const char mid[] = "\",\"hash\":\"";
	size_t ml = sizeof(prev_marker) - 1, midl = sizeof(mid) - 1;
	size_t tail = ml + HASH_HEX + midl + HASH_HEX + 2;
	if (len < tail + 1)
		return JIT_EBADREQ;
	const char *t = line + len - tail;
	if (memcmp(t, prev_marker, ml) != 0 || memcmp(t + ml + HASH_HEX, mid, midl) != 0 ||
	    memcmp(t + tail - 2, "\"}", 2) != 0)
		return JIT_EBADREQ;
	for (size_t i = 0; i < HASH_HEX; i++) {
		char a = t[ml + i], b = t[ml + HASH_HEX + midl + i];
		if (!((a >= '0' && a <= '9') || (a >= 'a' && a <= 'f')) ||
		    !((b >= '0' && b <= '9') || (b >= 'a' && b <= 'f')))
			return JIT_EBADREQ;
	}
	memcpy(prev, t + ml, HASH_HEX);
	prev[HASH_HEX] = '\0';
	memcpy(hash, t + ml + HASH_HEX + midl, HASH_HEX);
	hash[HASH_HEX] = '\0';
	*content_len = (size_t)(t - line);
	return JIT_OK;
}

/* Reads seq and hash of the last complete line of fd's file, if any. */
static int load_tail(struct audit *a, int rfd)
{
	struct stat st;
	if (fstat(rfd, &st) != 0)
		return JIT_EIO;
	a->seq = 0;
	memcpy(a->hash, zero_hash, sizeof(zero_hash));
	if (st.st_size == 0)
		return JIT_OK;
	off_t start = st.st_size > TAIL_READ ? st.st_size - TAIL_READ : 0;
	size_t n = (size_t)(st.st_size - start);
	char *buf = xmalloc(n + 1);
	ssize_t r = pread(rfd, buf, n, start);
	int rc = JIT_OK;
	if (r != (ssize_t)n) {
		rc = JIT_EIO;
		goto out;
	}
	buf[n] = '\0';
	if (buf[n - 1] != '\n') {
		/* Robustness: a torn last line (crash mid-write) is left for the
		 * verifier to report; the chain continues from the last whole line. */
		log_warn("audit: %s does not end with a newline; the last line is incomplete",
			 a->path);
		if (write(a->fd, "\n", 1) != 1) {
			rc = JIT_EIO;
			goto out;
		}
	}
	/* walk lines backwards to the last one that carries a chain */
	size_t end = n;
	while (end > 0) {
		if (buf[end - 1] == '\n')
			end--;
		size_t begin = end;
		while (begin > 0 && buf[begin - 1] != '\n')
			begin--;
		if (begin == 0 && start > 0)
			break; /* incomplete first line of the window */
		size_t clen;
		char prev[HASH_HEX + 1], hash[HASH_HEX + 1];
		if (end > begin && split_line(buf + begin, end - begin, &clen, prev, hash) == JIT_OK) {
			json_error_t jerr;
			json_t *o = json_loadb(buf + begin, end - begin, 0, &jerr);
			json_t *seq = o ? json_object_get(o, "seq") : NULL;
			if (json_is_integer(seq)) {
				a->seq = json_integer_value(seq);
				memcpy(a->hash, hash, sizeof(hash));
				json_decref(o);
				goto out;
			}
			json_decref(o);
		}
		end = begin;
	}
	log_warn("audit: no chained line found at the end of %s; starting a new chain", a->path);
out:
	free(buf);
	return rc;
}

static int audit_open_fd(struct audit *a)
{
	int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_err("audit: cannot open %s: %s", a->path, strerror(errno));
		return JIT_EIO;
	}
	int rfd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (rfd < 0) {
		log_err("audit: cannot read %s: %s", a->path, strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	if (a->fd >= 0)
		close(a->fd);
	a->fd = fd;
	int rc = load_tail(a, rfd);
	close(rfd);
	return rc;
}

int audit_open(const char *path, struct audit **out)
{
	struct audit *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	a->path = xstrdup(path);
	a->fd = -1;
	a->seq = 0;
	memcpy(a->hash, zero_hash, sizeof(zero_hash));
	int rc = audit_open_fd(a);
	if (rc != JIT_OK) {
		audit_close(a);
		return rc;
	}
	*out = a;
	return JIT_OK;
}

int audit_reopen(struct audit *a)
{
	pthread_mutex_lock(&a->lock);
	int64_t seq = a->seq;
	char hash[HASH_HEX + 1];
	memcpy(hash, a->hash, sizeof(hash));
	int rc = audit_open_fd(a);
	/* A fresh (rotated) file has no tail: the chain goes on from memory. */
	if (rc == JIT_OK && a->seq == 0) {
		a->seq = seq;
		memcpy(a->hash, hash, sizeof(hash));
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return JIT_EIO;
		}
		p += w;
		n -= (size_t)w;
	}
	return JIT_OK;
}

int audit_write(struct audit *a, const char *event, json_t *fields)
{
	char ts[32], hash[HASH_HEX + 1];
	int rc;
	fmt_rfc3339(now_s(), ts);
	pthread_mutex_lock(&a->lock);
	json_t *o = json_object();
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "seq", json_integer(a->seq + 1));
	json_object_set_new(o, "event", json_string(event));
	if (fields) {
		const char *k;
		json_t *v;
		json_object_foreach(fields, k, v) {
			if (strcmp(k, "ts") && strcmp(k, "seq") && strcmp(k, "event") &&
			    strcmp(k, "prev") && strcmp(k, "hash"))
				json_object_set(o, k, v);
		}
	}
	char *body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!body) {
		rc = JIT_EINTERNAL;
		goto out;
	}
	size_t blen = strlen(body);
	/* content = body without its closing brace */
	rc = chain_hash(a->hash, body, blen - 1, hash);
	if (rc != JIT_OK) {
		free(body);
		goto out;
	}
	char *line = xasprintf("%.*s%s%s\",\"hash\":\"%s\"}\n", (int)(blen - 1), body, prev_marker,
			       a->hash, hash);
	free(body);
	rc = write_all(a->fd, line, strlen(line));
	free(line);
	if (rc == JIT_OK && fdatasync(a->fd) != 0)
		rc = JIT_EIO;
	if (rc != JIT_OK) {
		log_err("audit: cannot write %s: %s", a->path, strerror(errno));
		goto out;
	}
	a->seq++;
	memcpy(a->hash, hash, sizeof(hash));
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

struct audit_verifier {
	int64_t lineno;
	int64_t seq;
	char hash[HASH_HEX + 1];
	bool started;
};

struct audit_verifier *audit_verifier_new(void)
{
	return xcalloc(1, sizeof(struct audit_verifier));
}

void audit_verifier_free(struct audit_verifier *v)
{
	free(v);
}

int audit_verify_line(struct audit_verifier *v, const char *line, size_t len, char *msg,
		      size_t msglen)
{
	size_t clen;
	char prev[HASH_HEX + 1], hash[HASH_HEX + 1], calc[HASH_HEX + 1];
	json_error_t jerr;
	v->lineno++;
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (split_line(line, len, &clen, prev, hash) != JIT_OK) {
		snprintf(msg, msglen, "line %lld: no prev/hash chain fields", (long long)v->lineno);
		return JIT_EBADREQ;
	}
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *seq = o ? json_object_get(o, "seq") : NULL;
	if (!json_is_integer(seq)) {
		json_decref(o);
		snprintf(msg, msglen, "line %lld: not a JSON audit line with a seq", (long long)v->lineno);
		return JIT_EBADREQ;
	}
	int64_t s = json_integer_value(seq);
	json_decref(o);
	if (chain_hash(prev, line, clen, calc) != JIT_OK || strcmp(calc, hash) != 0) {
		snprintf(msg, msglen, "line %lld (seq %lld): content does not match its hash (edited)",
			 (long long)v->lineno, (long long)s);
		return JIT_EBADREQ;
	}
	if (!v->started) {
		if (s == 1 && strcmp(prev, zero_hash) != 0) {
			snprintf(msg, msglen, "line %lld: seq 1 must start the chain", (long long)v->lineno);
			return JIT_EBADREQ;
		}
	} else if (strcmp(prev, v->hash) != 0 || s != v->seq + 1) {
		snprintf(msg, msglen,
			 "line %lld (seq %lld): chain broken (expected seq %lld after the previous line; "
			 "a line was removed, inserted or reordered)",
			 (long long)v->lineno, (long long)s, (long long)(v->seq + 1));
		return JIT_EBADREQ;
	}
	v->started = true;
	v->seq = s;
	memcpy(v->hash, hash, sizeof(hash));
	return JIT_OK;
}
