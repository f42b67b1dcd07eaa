/*
 * audit.c - the audit log writer, its chain head, and the chain verifier.
 * Trust: the file is evidence; each line is written with one write(2) on an
 * O_APPEND descriptor and fdatasync'd before audit_write() returns, so a
 * client is never told "ok" about an event that is not on disk (group
 * commit: writers that arrive while one fdatasync runs share the next). Each line
 * is hash-chained (SHA-256 via libcrypto) to the one before it. The chain
 * head file lives in state_dir (0700): only jitd reads or writes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "audit.h"
#include "fault.h"
#include "log.h"
#include "privsep.h"
#include "termsafe.h"
#include "util.h"

json_t *audit_text(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *c = termsafe_dup(s, 0);
	j = json_string(c);
	free(c);
	return j ? j : json_string("?");
}

#define HASH_HEX AUDIT_HASH_HEX
#define TAIL_READ 65536
#define HEAD_SLOT 128 /* bytes per slot of the head file; two slots */
#define HEAD_PAUSE_MS 2 /* the flusher's pause between two flushes */
static const char zero_hash[HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";
static const char prev_marker[] = ",\"prev\":\"";
static const char head_magic[] = "jitd-audit-head v1";

struct chain {
	int64_t seq;                 /* of the last line written; 0: none */
	char hash[HASH_HEX + 1];     /* of the last line written */
};

struct audit {
	pthread_mutex_t lock;
	char *path;
	char *head_path;             /* NULL: no head file */
	int fd;
	int head_fd;
	struct chain c;
	uint64_t written;            /* lines written since open (under lock) */
	bool torn;                   /* the file ends in a fragment (under lock) */
	/* The log (or, after a rotation while jitd was down, the rotated
	 * file) ends in a line torn by a crash: a torn_line record of it is
	 * due, written first in the next batch (under lock). */
	bool torn_due;
	size_t torn_bytes;
	char torn_sha[HASH_HEX + 1];
	bool writing_torn;           /* writing that record: no crash point */
	/* Group commit, under sync_lock: lines up to `synced` are on disk;
	 * lines up to `failed` met a failed fdatasync; one thread (`syncing`)
	 * runs the next fdatasync while the others wait on sync_cond. */
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	uint64_t synced, failed;
	bool syncing;
	uint64_t delivered;          /* last line handed to syslog and observer */
	audit_observer_fn observer;
	void *observer_arg;
	bool syslog_on;
	int syslog_facility;
	/* audit_start_head_flusher(): head_store() writes the head at once and
	 * head_thread makes it durable off the writers' path. Under head_lock:
	 * `head_gen` counts head writes, `head_flushed` is the last one an
	 * fdatasync covered. */
	pthread_mutex_t head_lock;
	pthread_cond_t head_cond;
	pthread_t head_thread;
	bool head_thread_on, head_stop;
	uint64_t head_gen, head_flushed;
};

/* A SHA-256 digest as lowercase hex. */
static void md_hex(const unsigned char md[32], char out[HASH_HEX + 1])
{
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* hex SHA-256 of the strings a[0..alen) and b[0..blen) one after the other. */
static int sha256_hex(const char *a, size_t alen, const char *b, size_t blen,
		      char out[HASH_HEX + 1])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int rc = JIT_EINTERNAL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return JIT_EINTERNAL;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, alen) != 1 || EVP_DigestUpdate(ctx, b, blen) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	md_hex(md, out);
	rc = JIT_OK;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* hex SHA-256 of prev (64 hex chars) followed by content[0..len). */
static int chain_hash(const char *prev, const char *content, size_t len, char out[HASH_HEX + 1])
{
	return sha256_hex(prev, HASH_HEX, content, len, out);
}

static bool is_hex64(const char *p)
{
	for (size_t i = 0; i < HASH_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
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
	    memcmp(t + tail - 2, "\"}", 2) != 0 || !is_hex64(t + ml) ||
	    !is_hex64(t + ml + HASH_HEX + midl))
		return JIT_EBADREQ;
	memcpy(prev, t + ml, HASH_HEX);
	prev[HASH_HEX] = '\0';
	memcpy(hash, t + ml + HASH_HEX + midl, HASH_HEX);
	hash[HASH_HEX] = '\0';
	*content_len = (size_t)(t - line);
	return JIT_OK;
}

/* Robustness: no seq reaches this (2^53, the largest integer every JSON
 * reader keeps exact); a line claiming one is no audit line. Counting on
 * from a crafted seq near INT64_MAX would overflow. */
#define SEQ_LIMIT ((int64_t)1 << 53)

/* A chained line as an object, if it is a JSON object with an integer
 * seq, 1 <= seq < SEQ_LIMIT (*seq): a new reference, or NULL. */
static json_t *line_object(const char *line, size_t len, int64_t *seq)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *s = o ? json_object_get(o, "seq") : NULL;
	if (json_is_integer(s) && json_integer_value(s) >= 1 &&
	    json_integer_value(s) < SEQ_LIMIT) {
		*seq = json_integer_value(s);
		return o;
	}
	json_decref(o);
	return NULL;
}

/* seq of a chained line, as line_object() finds it. */
static int line_seq(const char *line, size_t len, int64_t *seq)
{
	json_t *o = line_object(line, len, seq);
	json_decref(o);
	return o ? JIT_OK : JIT_EBADREQ;
}

/* ---- the chain head file ---- */

/* One slot: magic, seq, hash, a check over those, padding, '\n'. */
static int head_format(const struct chain *c, char slot[HEAD_SLOT])
{
	char body[128], check[HASH_HEX + 1];
	int n = snprintf(body, sizeof(body), "%s %lld %s", head_magic, (long long)c->seq, c->hash);
	if (n < 0 || (size_t)n >= sizeof(body) ||
	    sha256_hex(body, (size_t)n, "", 0, check) != JIT_OK)
		return JIT_EINTERNAL;
	memset(slot, ' ', HEAD_SLOT);
	n = snprintf(slot, HEAD_SLOT, "%s %.16s", body, check);
	if (n < 0 || n >= HEAD_SLOT - 1)
		return JIT_EINTERNAL;
	slot[n] = ' ';
	slot[HEAD_SLOT - 1] = '\n';
	return JIT_OK;
}

/* Parses one slot; JIT_OK only if its check matches. */
static int head_parse(const char *slot, struct chain *c)
{
	char buf[HEAD_SLOT + 1], magic1[32], magic2[8], hash[HASH_HEX + 2], check[24];
	char body[128], want[HASH_HEX + 1];
	long long seq;
	memcpy(buf, slot, HEAD_SLOT);
	buf[HEAD_SLOT] = '\0';
	if (sscanf(buf, "%31s %7s %lld %65s %23s", magic1, magic2, &seq, hash, check) != 5 ||
	    seq < 1 || seq >= SEQ_LIMIT || strlen(hash) != HASH_HEX || !is_hex64(hash) || strlen(check) != 16)
		return JIT_EBADREQ;
	int n = snprintf(body, sizeof(body), "%s %s %lld %s", magic1, magic2, seq, hash);
	if (n < 0 || (size_t)n >= sizeof(body) || strncmp(body, head_magic, strlen(head_magic)) ||
	    sha256_hex(body, (size_t)n, "", 0, want) != JIT_OK || memcmp(want, check, 16) != 0)
		return JIT_EBADREQ;
	c->seq = seq;
	memcpy(c->hash, hash, HASH_HEX + 1);
	return JIT_OK;
}

static int sync_parent(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int rc = JIT_OK;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = JIT_EIO;
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

/*
 * Opens (creating) the head file and reads the newest valid slot into *c
 * (c->seq = 0 if none). Two slots written alternately: a write torn by a
 * crash spoils only the slot being written, the other still holds the
 * previous head.
 */
static int head_open(struct audit *a, struct chain *c)
{
	char buf[2 * HEAD_SLOT];
	struct chain s;
	c->seq = 0;
	memcpy(c->hash, zero_hash, sizeof(zero_hash));
	int fd = open(a->head_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_err("audit: cannot open the chain head %s: %s", a->head_path, strerror(errno));
		return JIT_EIO;
	}
	ssize_t r = pread(fd, buf, sizeof(buf), 0);
	if (r < 0) {
		log_err("audit: cannot read %s: %s", a->head_path, strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	if (r == 0 && sync_parent(a->head_path) != JIT_OK)
		log_warn("audit: cannot sync the directory of %s", a->head_path);
	for (int i = 0; i < 2; i++)
		if (r >= (ssize_t)((i + 1) * HEAD_SLOT) && head_parse(buf + i * HEAD_SLOT, &s) == JIT_OK &&
		    s.seq > c->seq)
			*c = s;
	if (r > 0 && c->seq == 0)
		log_warn("audit: %s holds no valid chain head; ignoring it", a->head_path);
	a->head_fd = fd;
	return JIT_OK;
}

/* Records chain head c (whose lines are on disk). Called by the one thread
 * that runs the group's fdatasync. Durable before it returns, or, with the
 * flusher running, soon after: the writers do not wait for the head. A
 * head that a crash leaves behind the file is harmless (the file wins at
 * the next start, see pick_chain); one ahead of it could not be, which is
 * why the head is written only after its lines are on disk. */
static void head_store(struct audit *a, const struct chain *c)
{
	char slot[HEAD_SLOT];
	if (a->head_fd < 0 || c->seq <= 0)
		return;
	off_t off = (off_t)(c->seq % 2) * HEAD_SLOT;
	if (head_format(c, slot) != JIT_OK || pwrite(a->head_fd, slot, HEAD_SLOT, off) != HEAD_SLOT) {
		log_err("audit: cannot record the chain head (seq %lld) in %s: %s",
			(long long)c->seq, a->head_path, strerror(errno));
		return;
	}
	pthread_mutex_lock(&a->head_lock);
	bool later = a->head_thread_on;
	if (later) {
		a->head_gen++;
		pthread_cond_signal(&a->head_cond);
	}
	pthread_mutex_unlock(&a->head_lock);
	if (!later && fdatasync(a->head_fd) != 0)
		log_err("audit: cannot sync the chain head (seq %lld) in %s: %s",
			(long long)c->seq, a->head_path, strerror(errno));
}

/* The flusher: one fdatasync of the head file covers every head write made
 * before it began. Drains what is pending before it stops. */
static void *head_main(void *arg)
{
	struct audit *a = arg;
	privsep_thread_no_caps();
	pthread_mutex_lock(&a->head_lock);
	for (;;) {
		while (!a->head_stop && a->head_flushed == a->head_gen)
			pthread_cond_wait(&a->head_cond, &a->head_lock);
		if (a->head_flushed == a->head_gen)
			break;
		uint64_t gen = a->head_gen;
		pthread_mutex_unlock(&a->head_lock);
		if (fdatasync(a->head_fd) != 0)
			log_err("audit: cannot sync the chain head in %s: %s", a->head_path,
				strerror(errno));
		pthread_mutex_lock(&a->head_lock);
		a->head_flushed = gen;
		/* Coalesce: the heads written in the next HEAD_PAUSE_MS share one
		 * flush (audit_close() ends the pause at once). */
		int64_t end = mono_us() + HEAD_PAUSE_MS * 1000;
		struct timespec until = { (time_t)(end / 1000000), (long)(end % 1000000) * 1000 };
		while (!a->head_stop &&
		       pthread_cond_timedwait(&a->head_cond, &a->head_lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&a->head_lock);
	return NULL;
}

int audit_start_head_flusher(struct audit *a)
{
	if (a->head_fd < 0 || a->head_thread_on)
		return JIT_OK;
	int err = pthread_create(&a->head_thread, NULL, head_main, a);
	if (err != 0) {
		log_err("audit: cannot start the chain head flusher: %s", strerror(err));
		return JIT_EINTERNAL;
	}
	pthread_mutex_lock(&a->head_lock);
	a->head_thread_on = true;
	pthread_mutex_unlock(&a->head_lock);
	return JIT_OK;
}

/* Stops the flusher once the heads it was given are durable; a head
 * written after this is synced by its writer again. */
static void head_flusher_stop(struct audit *a)
{
	pthread_mutex_lock(&a->head_lock);
	bool on = a->head_thread_on;
	a->head_thread_on = false;
	a->head_stop = true;
	pthread_cond_signal(&a->head_cond);
	pthread_mutex_unlock(&a->head_lock);
	if (!on)
		return;
	int err = pthread_join(a->head_thread, NULL);
	if (err != 0)
		log_err("audit: cannot join the chain head flusher: %s", strerror(err));
}

/* Lines up to upto met a failed fdatasync: their writers are told so. */
static void mark_failed(struct audit *a, uint64_t upto)
{
	pthread_mutex_lock(&a->sync_lock);
	if (upto > a->failed)
		a->failed = upto;
	pthread_cond_broadcast(&a->sync_cond);
	pthread_mutex_unlock(&a->sync_lock);
}

/*
 * Returns when line number mine (of a->written) is on disk: JIT_OK, or
 * JIT_EIO if its fdatasync failed. Group commit: the first waiter runs one
 * fdatasync for every line written so far; those who arrive meanwhile wait
 * for it, then the next of them runs one for all of them.
 *
 * A line that a failed fdatasync covered stays failed, even if a later
 * fdatasync (run by a writer who got there before this one woke up)
 * succeeded: Linux reports a writeback error once per open file
 * description (every dup() shares a->fd's), so the later success says
 * nothing about pages the failed writeback may have dropped. `failed` is a
 * high-water mark, so a line made durable by an earlier fdatasync whose
 * writer had not woken up before a later one failed is reported failed
 * too: in doubt, the event counts as not written.
 */
static int sync_to(struct audit *a, uint64_t mine)
{
	int rc = JIT_OK;
	pthread_mutex_lock(&a->sync_lock);
	while (a->synced < mine && a->failed < mine) {
		if (a->syncing) {
			pthread_cond_wait(&a->sync_cond, &a->sync_lock);
			continue;
		}
		a->syncing = true;
		pthread_mutex_unlock(&a->sync_lock);

		pthread_mutex_lock(&a->lock);
		uint64_t target = a->written;
		struct chain c = a->c;
		int fd = a->fd >= 0 ? dup(a->fd) : -1; /* a reopen may close a->fd */
		pthread_mutex_unlock(&a->lock);
		bool ok = fd >= 0 && fdatasync(fd) == 0;
		if (!ok)
			log_err("audit: cannot sync %s: %s", a->path, strerror(errno));
		else
			head_store(a, &c);
		if (fd >= 0)
			close(fd);

		pthread_mutex_lock(&a->sync_lock);
		a->syncing = false;
		if (ok && target > a->synced)
			a->synced = target;
		else if (!ok && target > a->failed)
			a->failed = target;
		pthread_cond_broadcast(&a->sync_cond);
	}
	if (a->synced < mine || a->failed >= mine)
		rc = JIT_EIO;
	pthread_mutex_unlock(&a->sync_lock);
	return rc;
}

/* ---- opening ---- */

/* The end of a file that does not end with a newline: a line torn by a
 * crash (or a file not written by jitd). */
struct frag {
	bool torn;                   /* the file does not end with a newline */
	bool recordable;             /* a torn line to record: bytes and sha are set */
	size_t bytes;
	char sha[HASH_HEX + 1];
};

/* A torn end up to this long is read whole, to tell a line cut just before
 * its newline (whole) from a fragment. */
#define FRAG_CHECK_MAX (16 * 1024 * 1024)

/*
 * Length and SHA-256 of the bytes after the last newline of rfd's file
 * (size bytes long): the start is looked for backwards, chunk by chunk,
 * however far it is, then the bytes are hashed forwards. *whole: those
 * bytes (NUL-terminated, the caller's to free) when they are at most
 * FRAG_CHECK_MAX long and were read in one piece, else NULL.
 */
static int frag_digest(int rfd, off_t size, struct frag *f, char **whole)
{
	char chunk[16384];
	off_t begin = 0, from = size;
	while (from > 0 && begin == 0) {
		size_t want = from > (off_t)sizeof(chunk) ? sizeof(chunk) : (size_t)from;
		off_t at = from - (off_t)want;
		if (pread(rfd, chunk, want, at) != (ssize_t)want)
			return JIT_EIO;
		for (size_t i = want; i > 0; i--) {
			if (chunk[i - 1] == '\n') {
				begin = at + (off_t)i;
				break;
			}
		}
		from = at;
	}
	unsigned char md[32];
	unsigned int mdlen = 0;
	int rc = JIT_EIO;
	size_t flen = (size_t)(size - begin);
	char *fb = flen <= FRAG_CHECK_MAX ? xmalloc(flen + 1) : NULL;
	*whole = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	if (fb) {
		if (pread(rfd, fb, flen, begin) != (ssize_t)flen ||
		    EVP_DigestUpdate(ctx, fb, flen) != 1)
			goto out;
		fb[flen] = '\0';
	}
	for (off_t at = fb ? size : begin; at < size;) {
		size_t want = size - at > (off_t)sizeof(chunk) ? sizeof(chunk) : (size_t)(size - at);
		if (pread(rfd, chunk, want, at) != (ssize_t)want ||
		    EVP_DigestUpdate(ctx, chunk, want) != 1)
			goto out;
		at += (off_t)want;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		goto out;
	md_hex(md, f->sha);
	f->bytes = flen;
	f->recordable = true;
	*whole = fb;
	fb = NULL;
	rc = JIT_OK;
out:
	free(fb);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/*
 * Reads seq and hash of the last complete chained line of rfd's file (name,
 * for messages) into *t (t->seq = 0 if none), and into *f whether the file
 * ends in a torn line.
 * Robustness: a torn last line (crash mid-write) is kept, not removed: the
 * file is evidence. The chain continues from the last whole line before it,
 * and the caller has the next line written start with a newline, right
 * after a torn_line record of the fragment (its length and SHA-256), so
 * that the verifier can tell the tear from an edit. A line cut just before
 * its newline is whole: it is the tail, and only needs the newline.
 */
static int load_tail(const char *name, int rfd, struct chain *t, struct frag *f)
{
	struct stat st;
	char last;
	t->seq = 0;
	memcpy(t->hash, zero_hash, sizeof(zero_hash));
	memset(f, 0, sizeof(*f));
	if (fstat(rfd, &st) != 0)
		return JIT_EIO;
	if (st.st_size == 0)
		return JIT_OK;
	off_t stop = st.st_size; /* the chain is looked for before this */
	if (pread(rfd, &last, 1, stop - 1) != 1)
		return JIT_EIO;
	if (last != '\n') {
		char *fb = NULL;
		f->torn = true;
		if (frag_digest(rfd, st.st_size, f, &fb) != JIT_OK) {
			log_err("audit: %s does not end with a newline, and its last line cannot be "
				"read: it gets no torn_line record", name);
			f->recordable = false;
		} else {
			size_t flen = f->bytes, clen;
			int64_t seq;
			char prev[HASH_HEX + 1], hash[HASH_HEX + 1];
			bool whole = fb && split_line(fb, flen, &clen, prev, hash) == JIT_OK &&
				     line_seq(fb, flen, &seq) == JIT_OK;
			free(fb);
			if (whole) {
				log_warn("audit: %s does not end with a newline; its last line is "
					 "whole and gets one", name);
				f->recordable = false;
				t->seq = seq;
				memcpy(t->hash, hash, sizeof(hash));
				return JIT_OK;
			}
			log_warn("audit: %s does not end with a newline; its last line (%zu bytes) "
				 "is incomplete: jitd stopped in the middle of writing it; a "
				 "torn_line record of it comes with the next line", name, flen);
			stop = st.st_size - (off_t)flen;
		}
	}
	if (stop == 0)
		return JIT_OK;
	off_t start = stop > TAIL_READ ? stop - TAIL_READ : 0;
	size_t n = (size_t)(stop - start);
	char *buf = xmalloc(n + 1);
	ssize_t r = pread(rfd, buf, n, start);
	int rc = JIT_OK;
	if (r != (ssize_t)n) {
		rc = JIT_EIO;
		goto out;
	}
	buf[n] = '\0';
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
		int64_t seq;
		char prev[HASH_HEX + 1], hash[HASH_HEX + 1];
		if (end > begin && split_line(buf + begin, end - begin, &clen, prev, hash) == JIT_OK &&
		    line_seq(buf + begin, end - begin, &seq) == JIT_OK) {
			t->seq = seq;
			memcpy(t->hash, hash, sizeof(hash));
			goto out;
		}
		end = begin;
	}
	log_warn("audit: no chained line found at the end of %s", name);
out:
	free(buf);
	return rc;
}

/* Makes a torn_line record of f due with the next line. */
static void torn_record_due(struct audit *a, const struct frag *f)
{
	if (!f->recordable)
		return;
	a->torn_due = true;
	a->torn_bytes = f->bytes;
	memcpy(a->torn_sha, f->sha, sizeof(a->torn_sha));
}

/* A rotated file compressed already: its end is not read (delaycompress
 * keeps the newest one plain). */
static bool compressed_name(const char *name)
{
	static const char *const ext[] = { ".gz", ".xz", ".bz2", ".zst", ".lz4", ".lzma", ".Z" };
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcmp(name + n - e, ext[i]) == 0)
			return true;
	}
	return false;
}

/* At most this many directory entries are looked at for rotated files,
 * and at most this many such files read. */
#define ROTATED_SCAN_MAX 100000
#define ROTATED_READ_MAX 1000

/*
 * At start, with the log empty or gone (rotated while jitd was down): the
 * newest rotated file may end after the chain head, which trails the log
 * by the lines written just before a crash. Then the chain goes on from
 * that file's last line, not from the head: from the head, the next line
 * would repeat a seq already in the rotated file, and the verifier would
 * report a broken chain that nobody broke. The plain rotated files of the
 * log are read ("LOG.1", logrotate's numbered name, and "LOG-...", its
 * dateext names whatever the dateformat), and the one that ends furthest
 * counts. True when *known was moved (*which: that file, caller frees).
 * *f: whether that file ends in a torn line (jitd was killed in the middle
 * of a write, and the file was rotated before it started again): its
 * torn_line record is then the first line of the new file.
 */
static bool rotated_ahead(struct audit *a, struct chain *known, struct frag *f, char **which)
{
	struct stat st;
	struct chain best = { 0 };
	char *best_name = NULL;
	long seen = 0, nread = 0;

	memset(f, 0, sizeof(*f));
	*which = NULL;
	if (stat(a->path, &st) == 0 && st.st_size > 0)
		return false;
	const char *slash = strrchr(a->path, '/');
	char *dir = slash ? xstrndup(a->path, slash == a->path ? 1 : (size_t)(slash - a->path))
			  : xstrdup(".");
	const char *base = slash ? slash + 1 : a->path;
	size_t blen = strlen(base);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && nread < ROTATED_READ_MAX && seen++ < ROTATED_SCAN_MAX &&
	       (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strncmp(n, base, blen) != 0 ||
		    !(strcmp(n + blen, ".1") == 0 || (n[blen] == '-' && n[blen + 1] != '\0')) ||
		    compressed_name(n + blen))
			continue;
		int rfd = openat(dirfd(d), n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (rfd < 0)
			continue;
		struct chain t;
		struct frag tf;
		char *full = xasprintf("%s/%s", dir, n);
		nread++;
		if (fstat(rfd, &st) == 0 && S_ISREG(st.st_mode) &&
		    load_tail(full, rfd, &t, &tf) == JIT_OK && t.seq > best.seq) {
			best = t;
			*f = tf;
			free(best_name);
			best_name = full;
			full = NULL;
		}
		free(full);
		close(rfd);
	}
	if (d)
		closedir(d);
	free(dir);
	if (best_name && best.seq > known->seq) {
		log_warn("audit: %s ends at seq %lld, after the chain head (seq %lld): the chain "
			 "goes on from it", best_name, (long long)best.seq, (long long)known->seq);
		*known = best;
		*which = best_name;
		return true;
	}
	/* its torn end is recorded when it ends at the head too: the head is
	 * written after each whole line, so a file cut in the middle of the
	 * next line ends just where the head says */
	if (!best_name || best.seq < known->seq)
		memset(f, 0, sizeof(*f));
	free(best_name);
	return false;
}

/*
 * Where the chain goes on: the file's last line (tail), or what jitd last
 * wrote (known: the head file at start, memory at reopen) when the file is
 * empty, or when the file ends before it (lines removed or the file
 * replaced: the next line then shows the gap instead of hiding it).
 */
static void pick_chain(struct audit *a, const struct chain *tail, const struct chain *known,
		       const char *known_what)
{
	if (tail->seq == 0 && known->seq == 0) {
		log_info("audit: %s starts a new chain at seq 1", a->path);
		a->c = *tail;
	} else if (known->seq == 0 || tail->seq > known->seq) {
		a->c = *tail;
	} else if (tail->seq == 0) {
		log_info("audit: %s is empty; the chain continues from seq %lld (%s)", a->path,
			 (long long)known->seq, known_what);
		a->c = *known;
	} else if (tail->seq == known->seq && strcmp(tail->hash, known->hash) == 0) {
		a->c = *tail;
	} else {
		log_err("audit: %s ends at seq %lld but jitd last wrote seq %lld (%s): lines were "
			"removed or the file was replaced; continuing from seq %lld so that the gap "
			"shows when the log is verified",
			a->path, (long long)tail->seq, (long long)known->seq, known_what,
			(long long)known->seq);
		a->c = *known;
	}
}

static int audit_open_fd(struct audit *a, const struct chain *known, const char *known_what)
{
	struct chain tail;
	struct stat st;
	int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_err("audit: cannot open %s: %s", a->path, strerror(errno));
		return JIT_EIO;
	}
	/* Robustness: one writer per log. A second jitd with its own
	 * state_dir but this audit_log (a copied configuration) would chain
	 * its lines into this one's, and the chain would break. Refused at
	 * start; at a reopen (below, once the old descriptor, which may be
	 * this same file's and holds its lock, is closed) the lines must go
	 * on all the same (logged). */
	if (a->fd < 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		log_err("audit: %s: %s", a->path,
			errno == EWOULDBLOCK ? "another process writes this audit log (another "
					       "jitd with the same audit_log?); not starting"
					     : strerror(errno));
		close(fd);
		return JIT_EBUSY;
	}
	/* A new (or empty) file, as after a rotation: its directory entry must
	 * be durable too, or a crash could lose the file together with the
	 * lines fdatasync'd into it. Logged, not fatal, as for the head file. */
	bool empty = fstat(fd, &st) == 0 && st.st_size == 0;
	if (empty && sync_parent(a->path) != JIT_OK)
		log_err("audit: cannot sync the directory of %s: %s", a->path, strerror(errno));
	int rfd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (rfd < 0) {
		log_err("audit: cannot read %s: %s", a->path, strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	if (a->fd >= 0) {
		/* lines written but not yet synced by their group */
		if (fdatasync(a->fd) != 0) {
			log_err("audit: cannot sync %s before reopening it: %s", a->path,
				strerror(errno));
			mark_failed(a, a->written);
		}
		close(a->fd);
		if (flock(fd, LOCK_EX | LOCK_NB) != 0)
			log_err("audit: %s: cannot lock it after the reopen (%s); writing on",
				a->path,
				errno == EWOULDBLOCK ? "another process holds it" : strerror(errno));
	}
	a->fd = fd;
	struct frag f;
	int rc = load_tail(a->path, rfd, &tail, &f);
	close(rfd);
	/* a torn end: the next line starts with a newline, after the record */
	a->torn = rc == JIT_OK && f.torn;
	/* A record still due for the file rotated away (its writes failed)
	 * goes first in the new, empty file, as after a rotation while jitd
	 * was down; a torn end of this file is measured again. */
	if (!(empty && a->torn_due))
		a->torn_due = false;
	if (rc == JIT_OK) {
		torn_record_due(a, &f);
		pick_chain(a, &tail, known, known_what);
	}
	return rc;
}

int audit_open(const char *path, const char *head_path, struct audit **out)
{
	struct audit *a = xcalloc(1, sizeof(*a));
	struct chain known = { 0 };
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->sync_lock, NULL);
	pthread_cond_init(&a->sync_cond, NULL);
	pthread_mutex_init(&a->head_lock, NULL);
	/* the flusher's pause is timed on the monotonic clock: a step of the
	 * wall clock cannot stretch it */
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&a->head_cond, &ca) != 0)
		fatal("audit: cannot set up the chain head flusher's condition variable");
	pthread_condattr_destroy(&ca);
	a->path = xstrdup(path);
	a->head_path = xstrdup(head_path);
	a->fd = -1;
	a->head_fd = -1;
	memcpy(a->c.hash, zero_hash, sizeof(zero_hash));
	memcpy(known.hash, zero_hash, sizeof(zero_hash));
	int rc = a->head_path ? head_open(a, &known) : JIT_OK;
	const char *known_what = a->head_path ? a->head_path : "";
	char *rotated = NULL;
	struct frag rf = { 0 };
	if (rc == JIT_OK && rotated_ahead(a, &known, &rf, &rotated))
		known_what = rotated;
	if (rc == JIT_OK)
		rc = audit_open_fd(a, &known, known_what);
	if (rc == JIT_OK && !a->torn)
		torn_record_due(a, &rf); /* the log is empty: .1's torn end */
	free(rotated);
	if (rc != JIT_OK) {
		audit_close(a);
		return rc;
	}
	*out = a;
	return JIT_OK;
}

int64_t audit_last_seq(struct audit *a)
{
	pthread_mutex_lock(&a->lock);
	int64_t seq = a->c.seq;
	pthread_mutex_unlock(&a->lock);
	return seq;
}

int audit_reopen(struct audit *a)
{
	pthread_mutex_lock(&a->lock);
	struct chain known = a->c;
	int rc = audit_open_fd(a, &known, "before the reopen");
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	head_flusher_stop(a);
	if (a->fd >= 0)
		close(a->fd);
	if (a->head_fd >= 0)
		close(a->head_fd);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->sync_lock);
	pthread_cond_destroy(&a->sync_cond);
	pthread_mutex_destroy(&a->head_lock);
	pthread_cond_destroy(&a->head_cond);
	free(a->path);
	free(a->head_path);
	free(a);
}

void audit_set_observer(struct audit *a, audit_observer_fn fn, void *arg)
{
	pthread_mutex_lock(&a->lock);
	a->observer = fn;
	a->observer_arg = arg;
	pthread_mutex_unlock(&a->lock);
}

void audit_set_syslog(struct audit *a, bool on, int facility)
{
	pthread_mutex_lock(&a->lock);
	a->syslog_on = on;
	a->syslog_facility = facility;
	pthread_mutex_unlock(&a->lock);
}

int audit_syslog_facility(const char *name, int *out)
{
	static const struct {
		const char *name;
		int fac;
	} f[] = {
		{ "auth", LOG_AUTH },	  { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
		{ "user", LOG_USER },	  { "local0", LOG_LOCAL0 },	{ "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },	{ "local4", LOG_LOCAL4 },
		{ "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },	{ "local7", LOG_LOCAL7 },
	};
	for (size_t i = 0; name && i < sizeof(f) / sizeof(f[0]); i++) {
		if (strcmp(name, f[i].name) == 0) {
			*out = f[i].fac;
			return JIT_OK;
		}
	}
	return JIT_ECONFIG;
}

/* Writes p[0..n) with as many write(2) calls as it takes. *done: the bytes
 * that reached the file, set also on failure (a short write followed by
 * ENOSPC or EFBIG leaves that much of the line behind). */
static int write_all(int fd, const char *p, size_t n, size_t *done)
{
	*done = 0;
	while (*done < n) {
		ssize_t w = write(fd, p + *done, n - *done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return JIT_EIO;
		}
		*done += (size_t)w;
	}
	return JIT_OK;
}

/*
 * Robustness: a line whose write failed part-way left `done` bytes of it at
 * the end of the file, without a newline. They are cut off again, or else
 * the next line would be appended to them and a later, acknowledged event
 * would be lost in one unreadable line. Under a->lock this writer is the
 * only one, so the last `done` bytes are the fragment (measured after the
 * failure: nothing is added to a write that succeeds). If the cut fails,
 * a->torn makes the next write end the fragment with a newline first: it
 * then shows as one torn line, as after a crash, and the chain goes on.
 */
static void unwrite(struct audit *a, size_t done)
{
	struct stat st;
	const char *why = "the file is shorter than that";
	if (done == 0)
		return;
	if (fstat(a->fd, &st) != 0)
		why = strerror(errno);
	else if (st.st_size >= (off_t)done) {
		if (ftruncate(a->fd, st.st_size - (off_t)done) == 0)
			return;
		why = strerror(errno);
	}
	log_err("audit: cannot remove the incomplete line (%zu bytes) at the end of %s: %s; the "
		"next line will start on a new line", done, a->path, why);
	a->torn = true;
	/* the torn line a due record describes is no longer the last line:
	 * both stay unrecorded, and the verifier reports them */
	a->torn_due = false;
}

/* Appends one formatted line (with its '\n'); on failure the file is as
 * before it, or a->torn is set (see unwrite). After a torn end the line
 * starts with the newline that ends the fragment, in the same write. */
static int write_line(struct audit *a, const char *line, size_t len)
{
	size_t done;
	char *joined = NULL;
	if (a->torn) {
		joined = xmalloc(len + 1);
		joined[0] = '\n';
		memcpy(joined + 1, line, len);
		line = joined;
		len++;
	}
	if (!a->writing_torn && FAULT_CUT("audit.torn_write")) {
		/* a crash in the middle of the write(2): part of the line is on disk */
		(void)write_all(a->fd, line, len / 2, &done);
		FAULT_DIE("audit.torn_write");
	}
	int rc = write_all(a->fd, line, len, &done);
	if (rc == JIT_OK) {
		a->torn = false;
	} else {
		log_err("audit: cannot write %s: %s", a->path, strerror(errno));
		unwrite(a, done);
	}
	free(joined);
	return rc;
}

/* The line's object: ts, seq, event, then the caller's fields. */
static json_t *make_record(const struct audit *a, const char *event, json_t *fields)
{
	char ts[32];
	fmt_rfc3339(now_s(), ts);
	json_t *o = json_object();
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "seq", json_integer(a->c.seq + 1));
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
	return o;
}

/* Formats and writes one line under a->lock; *line and *rec set on success. */
static int write_one(struct audit *a, const char *event, json_t *fields, json_t **rec,
		     char **line, size_t *llen)
{
	char hash[HASH_HEX + 1];
	json_t *o = make_record(a, event, fields);
	char *body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	int rc = JIT_EINTERNAL;

	*line = NULL;
	if (body == NULL)
		goto out;
	size_t blen = strlen(body);
	/* content = body without its closing brace */
	rc = chain_hash(a->c.hash, body, blen - 1, hash);
	if (rc != JIT_OK)
		goto out;
	*line = xasprintf("%.*s%s%s\",\"hash\":\"%s\"}\n", (int)(blen - 1), body, prev_marker,
			  a->c.hash, hash);
	*llen = strlen(*line);
	rc = write_line(a, *line, *llen);
	if (rc != JIT_OK)
		goto out;
	a->c.seq++;
	memcpy(a->c.hash, hash, sizeof(hash));
	a->written++;
out:
	free(body);
	if (rc != JIT_OK) {
		free(*line);
		*line = NULL;
		json_decref(o);
		o = NULL;
	}
	*rec = o;
	return rc;
}

/* The fields of the torn_line record that is due (new reference). */
static json_t *torn_record(const struct audit *a)
{
	json_t *f = json_object();
	json_object_set_new(f, "torn_bytes", json_integer((json_int_t)a->torn_bytes));
	json_object_set_new(f, "torn_sha256", json_string(a->torn_sha));
	json_object_set_new(f, "message",
			    json_string("the line before this one is torn: jitd stopped in the "
					"middle of writing it, and it was never acknowledged"));
	return f;
}

int audit_write_many(struct audit *a, size_t n, const char *const events[],
		     json_t *const fields[])
{
	size_t cap = n + 1, done = 0, off = 0; /* off: 1 when the record went first */
	json_t **recs = xcalloc(cap, sizeof(json_t *));
	char **lines = xcalloc(cap, sizeof(char *));
	size_t *lens = xcalloc(cap, sizeof(size_t));
	uint64_t last = 0;
	int rc = JIT_OK;

	pthread_mutex_lock(&a->lock);
	if (a->torn_due && n > 0) {
		/* The record of a torn end goes first: the newline that ends the
		 * fragment is written with it (write_line). No crash point in this
		 * write: a crash here would leave the torn line without its record
		 * (documented), which the crash tests are not there to show. */
		json_t *f = torn_record(a);
		a->writing_torn = true;
		rc = write_one(a, AUDIT_TORN_EVENT, f, &recs[0], &lines[0], &lens[0]);
		a->writing_torn = false;
		json_decref(f);
		if (rc == JIT_OK) {
			a->torn_due = false;
			done = off = 1;
		} else {
			log_err("audit: cannot record the torn line at the end of %s", a->path);
		}
	}
	for (; rc == JIT_OK && done - off < n; done++)
		if ((rc = write_one(a, events[done - off], fields[done - off], &recs[done],
				    &lines[done], &lens[done])) != JIT_OK)
			break;
	last = a->written;
	audit_observer_fn observer = a->observer;
	void *observer_arg = a->observer_arg;
	bool syslog_on = a->syslog_on;
	int facility = a->syslog_facility;
	pthread_mutex_unlock(&a->lock);
	/* Durable before anyone hears of it: the caller, syslog, the observer
	 * (those two in line order: each waits for the lines before its own). */
	if (done > 0) {
		int src = sync_to(a, last);
		uint64_t first = last - done + 1;
		if (rc == JIT_OK)
			rc = src;
		pthread_mutex_lock(&a->sync_lock);
		while (a->delivered + 1 < first)
			pthread_cond_wait(&a->sync_cond, &a->sync_lock);
		pthread_mutex_unlock(&a->sync_lock);
		for (size_t i = 0; i < done && src == JIT_OK; i++) {
			if (syslog_on)
				syslog(facility | LOG_NOTICE, "%.*s", (int)(lens[i] - 1), lines[i]);
			if (observer)
				observer(observer_arg, i < off ? AUDIT_TORN_EVENT : events[i - off],
					 recs[i], lines[i], lens[i] - 1);
		}
		pthread_mutex_lock(&a->sync_lock);
		a->delivered = last;
		pthread_cond_broadcast(&a->sync_cond);
		pthread_mutex_unlock(&a->sync_lock);
	}
	for (size_t i = 0; i < done; i++) {
		json_decref(recs[i]);
		free(lines[i]);
	}
	free(recs);
	free(lines);
	free(lens);
	return rc;
}

int audit_write(struct audit *a, const char *event, json_t *fields)
{
	return audit_write_many(a, 1, &event, &fields);
}

/* ---- verifying ---- */

struct audit_verifier {
	int64_t lines, bad, torn;
	int64_t first_seq;
	int64_t seq;
	char hash[HASH_HEX + 1];
	bool started;
	/* A line without a chain waits for the next one (AUDIT_HELD): a
	 * torn_line record of jitd right after it accounts for it. */
	bool held;
	size_t held_len;
	char held_sha[HASH_HEX + 1];
	const char *held_bad;        /* the held line was judged bad: why (until taken) */
};

struct audit_verifier *audit_verifier_new(void)
{
	return xcalloc(1, sizeof(struct audit_verifier));
}

void audit_verifier_free(struct audit_verifier *v)
{
	free(v);
}

void audit_verifier_state(const struct audit_verifier *v, int64_t *lines, int64_t *bad,
			  int64_t *first_seq, int64_t *last_seq, char last_hash[HASH_HEX + 1])
{
	*lines = v->lines;
	*bad = v->bad;
	*first_seq = v->started ? v->first_seq : 0;
	*last_seq = v->started ? v->seq : 0;
	memcpy(last_hash, v->started ? v->hash : "", v->started ? HASH_HEX + 1 : 1);
}

/* Takes the line's own seq and hash as where the chain now is. */
static void resync(struct audit_verifier *v, int64_t seq, const char *hash)
{
	if (!v->started)
		v->first_seq = seq;
	v->started = true;
	v->seq = seq;
	memcpy(v->hash, hash, HASH_HEX + 1);
}

static const char torn_unrecorded[] =
	"not an audit line: no prev/hash chain at its end (torn, truncated or not written by "
	"jitd, and no torn_line record of jitd follows it)";

/* The held line is bad: counted now, reported through audit_verifier_take_held(). */
static void held_is_bad(struct audit_verifier *v, const char *why)
{
	v->held = false;
	v->bad++;
	v->held_bad = why;
}

/* Whether the line object o is a torn_line record. */
static bool is_torn_record(json_t *o)
{
	const char *ev = json_string_value(json_object_get(o, "event"));
	return ev && strcmp(ev, AUDIT_TORN_EVENT) == 0;
}

/* Whether the line object o is jitd's torn_line record of the held line. */
static bool records_held(const struct audit_verifier *v, json_t *o)
{
	json_t *bytes = json_object_get(o, "torn_bytes");
	const char *sha = json_string_value(json_object_get(o, "torn_sha256"));
	return is_torn_record(o) && json_is_integer(bytes) && json_integer_value(bytes) >= 0 &&
	       (uint64_t)json_integer_value(bytes) == (uint64_t)v->held_len && sha &&
	       strcmp(sha, v->held_sha) == 0;
}

int audit_verify_line(struct audit_verifier *v, const char *line, size_t len, char *msg,
		      size_t msglen)
{
	size_t clen;
	int64_t s;
	char prev[HASH_HEX + 1], hash[HASH_HEX + 1], calc[HASH_HEX + 1];
	bool was_held = v->held, anchored = v->started;
	json_t *o = NULL;
	v->lines++;
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (split_line(line, len, &clen, prev, hash) != JIT_OK) {
		if (was_held)
			held_is_bad(v, torn_unrecorded);
		was_held = false;
		if (sha256_hex(line, len, "", 0, v->held_sha) != JIT_OK) {
			snprintf(msg, msglen, "%s", torn_unrecorded);
			goto bad;
		}
		v->held = true;
		v->held_len = len;
		return AUDIT_HELD;
	}
	if (!(o = line_object(line, len, &s))) {
		snprintf(msg, msglen, "not an audit line: not a JSON object with a seq");
		goto bad;
	}
	if (chain_hash(prev, line, clen, calc) != JIT_OK || strcmp(calc, hash) != 0) {
		snprintf(msg, msglen, "seq %lld: content does not match its hash (the line was edited)",
			 (long long)s);
		resync(v, s, hash);
		goto bad;
	}
	if (!v->started) {
		if (s == 1 && strcmp(prev, zero_hash) != 0) {
			snprintf(msg, msglen, "seq 1: the first line of a chain must have a prev of zeros");
			resync(v, s, hash);
			goto bad;
		}
	} else if (s == 1 && strcmp(prev, zero_hash) == 0) {
		snprintf(msg, msglen, "seq 1: a new chain starts here after seq %lld (the log was "
			 "restarted without its chain head, or lines were inserted)", (long long)v->seq);
		resync(v, s, hash);
		goto bad;
	} else if (strcmp(prev, v->hash) != 0 || s != v->seq + 1) {
		snprintf(msg, msglen,
			 "seq %lld: chain broken: expected seq %lld chained to the line before (a line "
			 "was removed, inserted or moved here)",
			 (long long)s, (long long)(v->seq + 1));
		resync(v, s, hash);
		goto bad;
	}
	resync(v, s, hash);
	if (was_held) {
		if (records_held(v, o)) {
			v->held = false;
			v->torn++;
		} else {
			held_is_bad(v, torn_unrecorded);
		}
	} else if (anchored && is_torn_record(o)) {
		/* jitd writes one only right after the torn line it records */
		snprintf(msg, msglen, "seq %lld: a torn_line record without the torn line before it "
			 "(that line was removed)", (long long)s);
		goto bad;
	}
	json_decref(o);
	return JIT_OK;
bad:
	json_decref(o);
	if (was_held)
		held_is_bad(v, torn_unrecorded);
	v->bad++;
	return JIT_EBADREQ;
}

void audit_verifier_unreadable(struct audit_verifier *v)
{
	if (v->held)
		held_is_bad(v, "not an audit line: no prev/hash chain at its end (torn, truncated or "
			       "not written by jitd), and the line after it cannot be read");
}

int audit_verifier_take_held(struct audit_verifier *v, char *msg, size_t msglen)
{
	if (!v->held_bad)
		return JIT_OK;
	snprintf(msg, msglen, "%s", v->held_bad);
	v->held_bad = NULL;
	return JIT_EBADREQ;
}

int audit_verify_end(struct audit_verifier *v, char *msg, size_t msglen)
{
	if (v->held)
		held_is_bad(v, "a torn last line: no prev/hash chain at its end (jitd stopped in "
			       "the middle of writing it and has not started since, or the file "
			       "was cut or not written by jitd; or, in the live log, jitd was "
			       "writing it as it was read: verify again, or a copy cut at its last "
			       "newline)");
	return audit_verifier_take_held(v, msg, msglen);
}

int64_t audit_verifier_torn(const struct audit_verifier *v)
{
	return v->torn;
}

bool audit_verifier_holds(const struct audit_verifier *v)
{
	return v->held;
}
