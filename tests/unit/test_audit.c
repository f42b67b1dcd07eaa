/*
 * test_audit.c - the audit log's hash chain: lines written by audit_write
 * verify; an edit, a removal, an insertion and a swap are each detected at
 * the right line; the chain continues across reopen (rotation) and restart,
 * also a restart that finds the log rotated away (the chain head file); the
 * observer sees every line in order; a write that fails part-way (file
 * size limit) leaves no fragment for the next line to be glued onto; a line
 * torn by a crash is accounted for by the torn_line record written at the
 * next open, and only then.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <linux/fs.h>
#include "audit.h"
#include "t.h"
#include "util.h"

static char **read_lines(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "r");
	char **lines = NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	*n = 0;
	if (!fp)
		return NULL;
	while ((len = getline(&buf, &cap, fp)) > 0) {
		lines = xrealloc(lines, (*n + 1) * sizeof(char *));
		lines[(*n)++] = xstrndup(buf, (size_t)len);
	}
	free(buf);
	fclose(fp);
	return lines;
}

/* Bad line numbers (1-based, in the order reported) of a whole run,
 * resynchronising after each, as jitctl reads them: a line without a chain
 * is held until the next line or the end. *torn: lines accounted for by a
 * torn_line record. */
static int verify_torn(char **lines, size_t n, int *bad, int maxbad, int64_t *torn)
{
	struct audit_verifier *v = audit_verifier_new();
	char msg[256];
	int nb = 0, held = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = audit_verify_line(v, lines[i], strlen(lines[i]), msg, sizeof(msg));
		if (audit_verifier_take_held(v, msg, sizeof(msg)) != JIT_OK && nb < maxbad)
			bad[nb++] = held;
		if (rc == AUDIT_HELD)
			held = (int)i + 1;
		else if (rc != JIT_OK && nb < maxbad)
			bad[nb++] = (int)i + 1;
	}
	if (audit_verify_end(v, msg, sizeof(msg)) != JIT_OK && nb < maxbad)
		bad[nb++] = held;
	if (torn)
		*torn = audit_verifier_torn(v);
	audit_verifier_free(v);
	return nb;
}

static int verify_all(char **lines, size_t n, int *bad, int maxbad)
{
	return verify_torn(lines, n, bad, maxbad, NULL);
}

/* 0 if every line verifies, else the 1-based number of the first bad line. */
static int verify(char **lines, size_t n)
{
	int bad[1];
	return verify_all(lines, n, bad, 1) ? bad[0] : 0;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static void write_events(struct audit *a, int from, int count)
{
	for (int i = from; i < from + count; i++) {
		json_t *o = json_pack("{sssisb}", "user", "alice \"quoted\" ,\"prev\":\"x", "n", i,
				      "flag", i % 2);
		CHECK(audit_write(a, "granted", o) == JIT_OK);
		json_decref(o);
	}
}

static char **concat(char **a, size_t na, char **b, size_t nb)
{
	char **all = xcalloc(na + nb + 1, sizeof(char *));
	memcpy(all, a, na * sizeof(char *));
	memcpy(all + na, b, nb * sizeof(char *));
	return all;
}

/* After a break the verifier resynchronises: each break is reported once. */
static void test_resync(const char *dir)
{
	char *path = xasprintf("%s/resync.log", dir);
	struct audit *a = NULL;
	size_t n;
	int bad[16];
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 8);
	audit_close(a);
	char **l = read_lines(path, &n);
	CHECK(n == 8);
	/* edit line 3: only line 3 is reported */
	char *saved = l[2];
	l[2] = xstrdup(saved);
	char *p = strstr(l[2], "\"n\":2");
	if (p)
		p[4] = '9';
	CHECK(verify_all(l, n, bad, 16) == 1 && bad[0] == 3);
	free(l[2]);
	l[2] = saved;
	/* delete line 4: only line 4 (old 5) is reported */
	char **cut = xcalloc(n, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++)
		if (i != 3)
			cut[k++] = l[i];
	CHECK(verify_all(cut, n - 1, bad, 16) == 1 && bad[0] == 4);
	free(cut);
	/* a torn (garbage) line in the middle: only that line */
	char **ins = xcalloc(n + 1, sizeof(char *));
	char torn[] = "{\"ts\":\"2026-01-01T00:00:00Z\",\"seq\":4,\"ev";
	for (size_t i = 0, k = 0; i < n; i++) {
		ins[k++] = l[i];
		if (i == 4)
			ins[k++] = torn;
	}
	CHECK(verify_all(ins, n + 1, bad, 16) == 1 && bad[0] == 6);
	free(ins);
	/* a new chain (seq 1, zero prev) after line 8 is reported as such */
	char *fresh = xasprintf("%s/fresh.log", dir);
	CHECK(audit_open(fresh, NULL, &a) == JIT_OK);
	write_events(a, 0, 2);
	audit_close(a);
	size_t n2;
	char **l2 = read_lines(fresh, &n2);
	char **all = concat(l, n, l2, n2);
	CHECK(verify_all(all, n + n2, bad, 16) == 1 && bad[0] == 9);
	/* state: lines, bad, first and last seq */
	struct audit_verifier *v = audit_verifier_new();
	char msg[256], h[AUDIT_HASH_HEX + 1];
	int64_t lines, nbad, first, last;
	for (size_t i = 2; i < n; i++)
		CHECK(audit_verify_line(v, l[i], strlen(l[i]), msg, sizeof(msg)) == JIT_OK);
	audit_verifier_state(v, &lines, &nbad, &first, &last, h);
	CHECK(lines == 6 && nbad == 0 && first == 3 && last == 8);
	CHECK(strlen(h) == AUDIT_HASH_HEX && strstr(l[7], h) != NULL);
	audit_verifier_free(v);
	free(all);
	free_lines(l2, n2);
	free_lines(l, n);
	unlink(fresh);
	unlink(path);
	free(fresh);
	free(path);
}

/*
 * logrotate renames path to rot, and jitd, started again with chain head
 * file head, writes count events after the first from: rot's n_rot lines
 * and path's count go on as one chain, path's first with seq from + 1.
 */
static void rotate_and_write(const char *path, const char *rot, const char *head, int from,
			     int count, size_t n_rot)
{
	struct audit *a = NULL;
	size_t n1 = 0, n2 = 0;
	int bad[8];
	char want[32];
	CHECK(rename(path, rot) == 0);
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, from, count);
	audit_close(a);
	char **l1 = read_lines(rot, &n1), **l2 = read_lines(path, &n2);
	snprintf(want, sizeof(want), "\"seq\":%d,", from + 1);
	CHECK(n1 == n_rot && n2 == (size_t)count);
	CHECK(l2 && strstr(l2[0], want) != NULL);
	char **all = concat(l1, n1, l2, n2);
	CHECK(verify_all(all, n1 + n2, bad, 8) == 0);
	free(all);
	free_lines(l1, n1);
	free_lines(l2, n2);
}

/*
 * The chain head file: a restart that finds the log rotated away continues
 * the chain; a log whose last lines were cut is detected at the next write.
 */
static void test_head(const char *dir)
{
	char *path = xasprintf("%s/h.log", dir);
	char *rot = xasprintf("%s/h.log.1", dir);
	char *head = xasprintf("%s/audit.head", dir);
	struct audit *a = NULL;
	size_t n1 = 0, n2 = 0;
	char **l1 = NULL, **l2 = NULL;
	int bad[8];
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 0, 3);
	audit_close(a);
	/* logrotate renamed the file; jitd restarted before writing to a new one */
	rotate_and_write(path, rot, head, 3, 2, 3);
	/* the same with an empty new file (created by someone else) */
	CHECK(rename(path, rot) == 0);
	FILE *fp = fopen(path, "w");
	CHECK(fp != NULL);
	if (fp)
		fclose(fp);
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 5, 1);
	audit_close(a);
	l2 = read_lines(path, &n2);
	CHECK(n2 == 1 && l2 && strstr(l2[0], "\"seq\":6,") != NULL);
	/* cut the last line of the file: the next line shows the gap */
	l1 = read_lines(rot, &n1); /* seq 4, 5 */
	CHECK(n1 == 2);
	fp = fopen(path, "w"); /* seq 6 removed */
	if (fp)
		fclose(fp);
	CHECK(rename(rot, path) == 0); /* the file now ends at seq 5; the head says 6 */
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 6, 1);
	audit_close(a);
	free_lines(l2, n2);
	l2 = read_lines(path, &n2);
	CHECK(n2 == 3 && l2 && strstr(l2[2], "\"seq\":7,") != NULL);
	CHECK(verify_all(l2, n2, bad, 8) == 1 && bad[0] == 3);
	/* a head file that is garbage is ignored: the file's tail is used */
	fp = fopen(head, "w");
	if (fp) {
		fputs("garbage\n", fp);
		fclose(fp);
	}
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 7, 1);
	audit_close(a);
	free_lines(l2, n2);
	l2 = read_lines(path, &n2);
	CHECK(n2 == 4 && l2 && strstr(l2[3], "\"seq\":8,") != NULL);
	CHECK(verify_all(l2, n2, bad, 8) == 1);
	free_lines(l1, n1);
	free_lines(l2, n2);
	unlink(path);
	unlink(rot);
	unlink(head);
	free(path);
	free(rot);
	free(head);
}

/*
 * jitd died after a line reached the log and before the chain head caught
 * up with it, and logrotate renamed the log while jitd was down: the chain
 * goes on from the rotated file's last line, not from the head (which would
 * repeat a seq and make the verifier report a break nobody made).
 */
static void test_head_behind_rotated(const char *dir)
{
	char *path = xasprintf("%s/r.log", dir);
	char *rot = xasprintf("%s/r.log.1", dir);
	char *head = xasprintf("%s/r.head", dir);
	struct audit *a = NULL;
	size_t n2 = 0;
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 0, 3); /* the head says seq 3 */
	audit_close(a);
	CHECK(audit_open(path, NULL, &a) == JIT_OK); /* seq 4: the head never hears of it */
	write_events(a, 3, 1);
	audit_close(a);
	rotate_and_write(path, rot, head, 4, 1, 4);
	/* a rotated file behind the head (a head ahead of it is the truth) */
	CHECK(rename(path, rot) == 0); /* r.log.1 now ends at seq 5, the head says 5 */
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 5, 1);
	audit_close(a);
	char **l2 = read_lines(path, &n2);
	CHECK(n2 == 1 && l2 && strstr(l2[0], "\"seq\":6,") != NULL);
	free_lines(l2, n2);
	unlink(path);
	unlink(rot);
	unlink(head);
	free(path);
	free(rot);
	free(head);
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

/*
 * The same with logrotate's dateext names: the plain rotated file that ends
 * furthest (r.log-DATE) is found whatever its name, and counts over an
 * older numbered one (r.log.1) changed after it; a compressed one is not
 * read.
 */
static void test_head_behind_rotated_dateext(const char *dir)
{
	char *path = xasprintf("%s/d.log", dir);
	char *old1 = xasprintf("%s/d.log.1", dir);
	char *rot = xasprintf("%s/d.log-20261206", dir);
	char *gz = xasprintf("%s/d.log-20261207.gz", dir);
	char *head = xasprintf("%s/d.head", dir);
	struct audit *a = NULL;
	size_t n2 = 0;
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 0, 2);
	audit_close(a);
	CHECK(rename(path, old1) == 0); /* an old numbered file, ends at seq 2 */
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 2, 1); /* seq 3: the head says 3 */
	audit_close(a);
	CHECK(audit_open(path, NULL, &a) == JIT_OK); /* seq 4: the head never hears of it */
	write_events(a, 3, 1);
	audit_close(a);
	CHECK(rename(path, rot) == 0);
	set_mtime(rot, time(NULL) - 3600);
	set_mtime(old1, time(NULL)); /* changed last (a copy), yet it ends before */
	FILE *g = fopen(gz, "w"); /* newer, but compressed: not read */
	CHECK(g != NULL);
	if (g) {
		fputs("not a log\n", g);
		fclose(g);
	}
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 4, 1);
	audit_close(a);
	char **l2 = read_lines(path, &n2);
	CHECK(n2 == 1 && l2 && strstr(l2[0], "\"seq\":5,") != NULL);
	free_lines(l2, n2);
	unlink(path);
	unlink(old1);
	unlink(rot);
	unlink(gz);
	unlink(head);
	free(path);
	free(old1);
	free(rot);
	free(gz);
	free(head);
}

/*
 * A log whose last line claims a seq of 2^53 (an edit while jitd was down):
 * that is no audit line, and the chain goes on from the line before it
 * (regression: jitd counted on from the crafted seq, and near INT64_MAX
 * every later line would have had a negative one).
 */
static void test_tail_with_an_impossible_seq(const char *dir)
{
	char *path = xasprintf("%s/big.log", dir);
	struct audit *a = NULL;
	size_t n = 0;
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 2);
	audit_close(a);
	char **l = read_lines(path, &n);
	CHECK(n == 2 && l && strstr(l[1], "\"seq\":2,") != NULL);
	if (n == 2 && l) {
		char *at = strstr(l[1], "\"seq\":2,");
		char *big = xasprintf("%.*s\"seq\":9007199254740992,%s", (int)(at - l[1]), l[1],
				      at + strlen("\"seq\":2,"));
		FILE *fp = fopen(path, "a");
		CHECK(fp != NULL);
		if (fp) {
			fputs(big, fp);
			fclose(fp);
		}
		free(big);
	}
	free_lines(l, n);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 2, 1);
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 4 && l && strstr(l[3], "\"seq\":3,") != NULL);
	free_lines(l, n);
	unlink(path);
	free(path);
}

/*
 * jitd killed in the middle of a line, then the log rotated before it
 * started again, with the chain head on: the head names the last whole
 * line, so the rotated file ends at the head, and its torn end is still
 * recorded first in the new file (regression: only a rotated file ending
 * after the head had its torn end recorded).
 */
static int64_t rotated_pair_torn(char **l1, size_t n1, char **l2, size_t n2);

static void test_torn_rotated_with_head(const char *dir)
{
	char *path = xasprintf("%s/th.log", dir);
	char *rotated = xasprintf("%s/th.log.1", dir);
	char *head = xasprintf("%s/th.head", dir);
	struct audit *a = NULL;
	size_t n1 = 0, n2 = 0;
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 0, 3);
	audit_close(a);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, "{\"ts\":\"2026-12-06T19", 20) == 20);
	if (fd >= 0)
		close(fd);
	CHECK(rename(path, rotated) == 0);
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 3, 1);
	audit_close(a);
	char **l1 = read_lines(rotated, &n1), **l2 = read_lines(path, &n2);
	CHECK(n1 == 4 && n2 == 2 && l2 && strstr(l2[0], "\"event\":\"torn_line\"") != NULL &&
	      strstr(l2[0], "\"seq\":4,") != NULL);
	CHECK(rotated_pair_torn(l1, n1, l2, n2) == 1);
	unlink(path);
	unlink(rotated);
	unlink(head);
	free(path);
	free(rotated);
	free(head);
}

struct seen {
	int n;
	int64_t last_seq;
	bool in_order, lines_match;
	char last_event[32];
};

static void observe(void *arg, const char *event, json_t *rec, const char *line, size_t len)
{
	struct seen *s = arg;
	int64_t seq = json_integer_value(json_object_get(rec, "seq"));
	if (seq != s->last_seq + 1)
		s->in_order = false;
	if (len == 0 || line[len] != '\n' || line[len - 1] != '}' ||
	    strcmp(json_string_value(json_object_get(rec, "event")), event) != 0)
		s->lines_match = false;
	s->last_seq = seq;
	snprintf(s->last_event, sizeof(s->last_event), "%s", event);
	s->n++;
}

static void test_observer(const char *dir)
{
	char *path = xasprintf("%s/obs.log", dir);
	struct audit *a = NULL;
	struct seen s = { 0, 0, true, true, "" };
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	audit_set_observer(a, observe, &s);
	write_events(a, 0, 4);
	json_t *o = json_pack("{ss}", "grant_id", "g-1");
	CHECK(audit_write(a, "expiring_soon", o) == JIT_OK);
	json_decref(o);
	audit_close(a);
	CHECK(s.n == 5 && s.last_seq == 5 && s.in_order && s.lines_match);
	CHECK_STR(s.last_event, "expiring_soon");
	int fac = 0;
	CHECK(audit_syslog_facility("authpriv", &fac) == JIT_OK && fac != 0);
	CHECK(audit_syslog_facility("kern", &fac) == JIT_ECONFIG);
	unlink(path);
	free(path);
}

/* Group commit: writers in several threads share fdatasyncs; every line is
 * still there, the chain verifies, and the observer sees seq order. */
struct writer {
	struct audit *a;
	int id, n, failed;
};

static void *write_many(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < w->n; i++) {
		json_t *o = json_pack("{sisi}", "writer", w->id, "i", i);
		if (audit_write(w->a, "granted", o) != JIT_OK)
			w->failed++;
		json_decref(o);
	}
	return NULL;
}

/* Threads of this process (/proc/self/status), -1 if unknown. */
static int thread_count(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(fp);
	return n;
}

/* Does the head file hold a slot for seq? (Read while the log is open.) */
static bool head_has(const char *head, int seq)
{
	char buf[512], want[64];
	FILE *fp = fopen(head, "r");
	size_t r = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	buf[r] = '\0';
	snprintf(want, sizeof(want), "jitd-audit-head v1 %d ", seq);
	return strstr(buf, want) != NULL;
}

/*
 * Eight writers at once: every line is written, in one chain, and observed
 * in order; the head records the last line. flusher: with
 * audit_start_head_flusher(), whose thread runs until audit_close(); the
 * head is still written before the writers return (made durable later).
 */
static void test_concurrent(const char *dir, bool flusher)
{
	char *path = xasprintf("%s/conc%d.log", dir, flusher);
	char *head = xasprintf("%s/conc%d.head", dir, flusher);
	struct audit *a = NULL;
	struct seen s = { 0, 0, true, true, "" };
	enum { NW = 8, PER = 50 };
	struct writer w[NW];
	pthread_t t[NW];
	CHECK(audit_open(path, head, &a) == JIT_OK);
	audit_set_observer(a, observe, &s);
	if (flusher) {
		CHECK(audit_start_head_flusher(a) == JIT_OK);
		CHECK(audit_start_head_flusher(a) == JIT_OK); /* once is enough */
	}
	for (int i = 0; i < NW; i++) {
		w[i] = (struct writer){ a, i, PER, 0 };
		CHECK(pthread_create(&t[i], NULL, write_many, &w[i]) == 0);
	}
	int failed = 0;
	for (int i = 0; i < NW; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		failed += w[i].failed;
	}
	CHECK(head_has(head, NW * PER));
	/* the writers are joined: the one thread audit_close() can end is
	 * the flusher (one, however often it was started) */
	int threads = thread_count();
	audit_close(a);
	CHECK(threads > 0 && thread_count() == threads - (flusher ? 1 : 0));
	CHECK(failed == 0);
	CHECK(s.n == NW * PER && s.last_seq == NW * PER && s.in_order && s.lines_match);
	size_t n = 0;
	char **l = read_lines(path, &n);
	CHECK(n == NW * PER);
	CHECK(verify(l, n) == 0);
	free_lines(l, n);
	/* the head recorded the last line: a restart that finds the log
	 * rotated away continues the chain from it */
	char *rot = xasprintf("%s.1", path);
	CHECK(rename(path, rot) == 0);
	CHECK(audit_open(path, head, &a) == JIT_OK);
	if (flusher)
		CHECK(audit_start_head_flusher(a) == JIT_OK);
	write_events(a, 0, 1);
	CHECK(head_has(head, NW * PER + 1));
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 1 && strstr(l[0], "\"seq\":401,") != NULL);
	/* and the two files verify as one chain */
	size_t n0 = 0;
	char **l0 = read_lines(rot, &n0);
	char **all = concat(l0, n0, l, n);
	CHECK(n0 == NW * PER && verify(all, n0 + n) == 0);
	free(all);
	free_lines(l0, n0);
	free_lines(l, n);
	unlink(rot);
	unlink(path);
	unlink(head);
	free(rot);
	free(path);
	free(head);
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Lets this process grow files to `limit` bytes only: a write across it is
 * short, the next one fails with EFBIG (SIGXFSZ is ignored by the caller). */
static bool limit_fsize(const struct rlimit *old, off_t limit)
{
	struct rlimit lim = *old;
	lim.rlim_cur = (rlim_t)limit;
	return setrlimit(RLIMIT_FSIZE, &lim) == 0;
}

/* Sets or clears the append-only attribute (chattr +a), under which
 * ftruncate() fails; false where it cannot be set (not root, or a file
 * system without it). */
static bool set_append_only(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int flags = 0;
	bool ok = fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
	if (ok) {
		flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
		ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * When the fragment cannot be cut off (here: an append-only file), the next
 * line starts with a newline: the fragment is one torn line, reported
 * alone, and the chain goes on around it.
 */
static void test_short_write_kept(const char *path, const struct rlimit *old)
{
	struct audit *a = NULL;
	size_t n = 0;
	int bad[8];
	if (!set_append_only(path, true)) {
		printf("skipped: the fragment that cannot be cut (needs chattr +a)\n");
		return;
	}
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	json_t *o = json_pack("{ss}", "user", "carol");
	CHECK(limit_fsize(old, file_size(path) + 10));
	CHECK(audit_write(a, "granted", o) == JIT_EIO);
	CHECK(setrlimit(RLIMIT_FSIZE, old) == 0);
	CHECK(audit_write(a, "granted", o) == JIT_OK); /* seq 7 */
	audit_close(a);
	json_decref(o);
	CHECK(set_append_only(path, false));
	char **l = read_lines(path, &n);
	CHECK(n == 8 && strlen(l[6]) == 11 && strstr(l[7], "\"seq\":7,") != NULL);
	CHECK(verify_all(l, n, bad, 8) == 1 && bad[0] == 7);
	free_lines(l, n);
}

/*
 * A line whose write is cut short and then fails (EFBIG here; ENOSPC on a
 * full disk) is not recorded, and leaves nothing behind: the next line,
 * once the disk has room, starts on a line of its own and the chain goes on
 * from the last line recorded. The same for the second line of a batch.
 */
static void test_short_write(const char *dir)
{
	char *path = xasprintf("%s/short.log", dir);
	char *head = xasprintf("%s/short.head", dir);
	struct audit *a = NULL;
	struct rlimit old;
	size_t n = 0;
	int bad[8];
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_IGN);
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 0, 2);
	off_t before = file_size(path);
	json_t *o = json_pack("{ss}", "user", "bob");
	CHECK(before > 0 && limit_fsize(&old, before + 10));
	CHECK(audit_write(a, "granted", o) == JIT_EIO);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK(file_size(path) == before);
	CHECK(audit_write(a, "granted", o) == JIT_OK); /* seq 3 */
	/* a batch of two: the first line fits, the second is cut after 10 bytes */
	off_t len = file_size(path) - before;
	before = file_size(path);
	const char *ev[2] = { "granted", "granted" };
	json_t *f[2] = { o, o };
	CHECK(limit_fsize(&old, before + len + 10));
	CHECK(audit_write_many(a, 2, ev, f) == JIT_EIO);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK(file_size(path) == before + len); /* seq 4 stays, as documented */
	CHECK(audit_write(a, "granted", o) == JIT_OK); /* seq 5 */
	audit_close(a);
	json_decref(o);
	char **l = read_lines(path, &n);
	CHECK(n == 5);
	for (size_t i = 0; i < n; i++)
		CHECK(l[i][strlen(l[i]) - 1] == '\n');
	CHECK(verify_all(l, n, bad, 8) == 0);
	CHECK(n == 5 && strstr(l[4], "\"seq\":5,") != NULL);
	free_lines(l, n);
	/* a restart continues from the last whole line */
	CHECK(audit_open(path, head, &a) == JIT_OK);
	write_events(a, 5, 1);
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 6 && verify_all(l, n, bad, 8) == 0);
	free_lines(l, n);
	test_short_write_kept(path, &old);
	signal(SIGXFSZ, SIG_DFL);
	unlink(path);
	unlink(head);
	free(path);
	free(head);
}

/* The lines of a rotated file and of the one after it, verified together
 * (and freed): the torn lines accounted for, or -1 if a line is bad. */
static int64_t rotated_pair_torn(char **l1, size_t n1, char **l2, size_t n2)
{
	int bad[8];
	int64_t torn = -1;
	if (l1 && l2) {
		char **both = concat(l1, n1, l2, n2);
		if (verify_torn(both, n1 + n2, bad, 8, &torn) != 0)
			torn = -1;
		free(both);
	}
	free_lines(l1, n1);
	free_lines(l2, n2);
	return torn;
}

/*
 * A crash in the middle of a write leaves a torn last line. At the next
 * open jitd ends it and writes a torn_line record of it (its length and
 * SHA-256), chained to the last whole line: the verifier accounts for the
 * torn line through that record, and still reports a chainless line that
 * no record follows, one the record does not match (an edited fragment),
 * and a torn line at the very end.
 */
static void test_torn_line(const char *dir)
{
	char *path = xasprintf("%s/torn.log", dir);
	struct audit *a = NULL;
	size_t n = 0;
	int bad[8];
	int64_t torn = -1;
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 3);
	audit_close(a);
	/* the crash: half of a fourth line */
	static const char frag[] = "{\"ts\":\"2026-12-05T15:00:00Z\",\"seq\":4,\"event\":\"exp";
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, frag, sizeof(frag) - 1) == (ssize_t)(sizeof(frag) - 1));
	if (fd >= 0)
		close(fd);
	char **l = read_lines(path, &n);
	CHECK(n == 4 && verify_torn(l, n, bad, 8, &torn) == 1 && bad[0] == 4 && torn == 0);
	free_lines(l, n);
	/* opened and closed without a line: the file still ends in the
	 * fragment, so the next start records it */
	off_t size = file_size(path);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	audit_close(a);
	CHECK(file_size(path) == size);
	/* the record cannot be written (a full disk; here the file size
	 * limit lets one byte through): the file is as before, and the next
	 * line that can be written brings the record */
	struct rlimit old;
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_IGN);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	json_t *o = json_pack("{ss}", "user", "dave");
	CHECK(limit_fsize(&old, size + 1));
	CHECK(audit_write(a, "granted", o) == JIT_EIO);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	json_decref(o);
	CHECK(file_size(path) == size);
	write_events(a, 3, 2);
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 7);
	if (n != 7)
		return;
	CHECK(strcmp(l[3], "{\"ts\":\"2026-12-05T15:00:00Z\",\"seq\":4,\"event\":\"exp\n") == 0);
	CHECK(strstr(l[4], "\"seq\":4,\"event\":\"torn_line\"") != NULL);
	char want[64];
	snprintf(want, sizeof(want), "\"torn_bytes\":%zu,", sizeof(frag) - 1);
	CHECK(strstr(l[4], want) != NULL);
	CHECK(strstr(l[5], "\"seq\":5,") != NULL && strstr(l[6], "\"seq\":6,") != NULL);
	CHECK(verify_torn(l, n, bad, 8, &torn) == 0 && torn == 1);
	/* a changed fragment no longer matches its record: the fragment is bad */
	char was = l[3][10];
	l[3][10] = 'X';
	CHECK(verify_torn(l, n, bad, 8, &torn) == 1 && bad[0] == 4 && torn == 0);
	l[3][10] = was;
	/* the torn line removed: its record is bad; as the first line given
	 * (its torn line in an older file) the record is the anchor */
	char **skip = xcalloc(n, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++)
		if (i != 3)
			skip[k++] = l[i];
	CHECK(verify_torn(skip, n - 1, bad, 8, &torn) == 1 && bad[0] == 4 && torn == 0);
	CHECK(verify_torn(skip + 3, n - 4, bad, 8, &torn) == 0 && torn == 0);
	char **dup = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++) {
		dup[k++] = l[i];
		if (i == 3)
			dup[k++] = l[3]; /* two chainless lines, one record */
	}
	CHECK(verify_torn(dup, n + 1, bad, 8, &torn) == 1 && bad[0] == 4 && torn == 1);
	/* an inserted chainless line before an ordinary line, and at the end */
	char *garbage = xstrdup("not an audit line\n");
	char **ins = xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++) {
		ins[k++] = l[i];
		if (i == 5)
			ins[k++] = garbage;
	}
	ins[n + 1] = garbage;
	CHECK(verify_torn(ins, n + 2, bad, 8, &torn) == 2 && bad[0] == 7 && bad[1] == 9 &&
	      torn == 1);
	free(garbage);
	free(ins);
	free(dup);
	free(skip);
	free_lines(l, n);

	/* rotated while jitd was down: the new file's first line records the
	 * rotated file's torn end */
	char *rotated = xasprintf("%s.1", path);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, frag, 20) == 20);
	if (fd >= 0)
		close(fd);
	CHECK(rename(path, rotated) == 0);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 5, 1);
	audit_close(a);
	size_t n1 = 0, n2 = 0;
	char **l1 = read_lines(rotated, &n1), **l2 = read_lines(path, &n2);
	CHECK(n1 == 8 && n2 == 2 && l1 && l2);
	if (n1 == 8 && n2 == 2 && l1 && l2) {
		CHECK(strlen(l1[7]) == 20);
		CHECK(strstr(l2[0], "\"event\":\"torn_line\"") != NULL);
		CHECK(strstr(l2[0], "\"torn_bytes\":20,") != NULL);
	}
	CHECK(rotated_pair_torn(l1, n1, l2, n2) == 2);
	unlink(rotated);
	unlink(path);

	/* the record's write fails, then the log is rotated and reopened: the
	 * record goes first in the new file */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, frag, 30) == 30);
	if (fd >= 0)
		close(fd);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	o = json_pack("{ss}", "user", "erin");
	CHECK(limit_fsize(&old, 31));
	CHECK(audit_write(a, "granted", o) == JIT_EIO);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	json_decref(o);
	CHECK(file_size(path) == 30);
	CHECK(rename(path, rotated) == 0);
	CHECK(audit_reopen(a) == JIT_OK);
	write_events(a, 0, 1);
	audit_close(a);
	l1 = read_lines(rotated, &n1);
	l2 = read_lines(path, &n2);
	CHECK(n1 == 1 && n2 == 2 && l2 && strstr(l2[0], "\"torn_bytes\":30,") != NULL);
	CHECK(rotated_pair_torn(l1, n1, l2, n2) == 1);
	unlink(rotated);
	unlink(path);

	/* a fragment longer than the window read at the end of the file: the
	 * chain still goes on from the last whole line before it */
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 2);
	audit_close(a);
	size_t big = 100000;
	char *junk = xmalloc(big);
	memset(junk, 'x', big);
	memcpy(junk, frag, 20);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, junk, big) == (ssize_t)big);
	if (fd >= 0)
		close(fd);
	free(junk);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 2, 1);
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 5 && verify_torn(l, n, bad, 8, &torn) == 0 && torn == 1);
	CHECK(n == 5 && strstr(l[3], "\"seq\":3,\"event\":\"torn_line\"") != NULL);
	free_lines(l, n);
	unlink(path);

	/* a line cut just before its newline is whole: it only gets the newline */
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 2);
	audit_close(a);
	CHECK(truncate(path, file_size(path) - 1) == 0);
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 2, 1);
	audit_close(a);
	l = read_lines(path, &n);
	CHECK(n == 3 && verify_torn(l, n, bad, 8, &torn) == 0 && torn == 0);
	CHECK(n == 3 && strstr(l[2], "torn_line") == NULL);
	free_lines(l, n);
	unlink(path);
	free(rotated);
	free(path);
}

int main(void)
{
	char dir[] = "/tmp/jitd-audit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *path = xasprintf("%s/audit.log", dir);
	char *rotated = xasprintf("%s/audit.log.1", dir);
	struct audit *a = NULL;
	size_t n;

	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 0, 5);
	audit_close(a);
	char **lines = read_lines(path, &n);
	CHECK(n == 5);
	CHECK(verify(lines, n) == 0);
	CHECK(strstr(lines[0], "\"seq\":1,") != NULL);
	CHECK(strstr(lines[0], "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"") != NULL);
	CHECK(strstr(lines[4], "\"seq\":5,") != NULL);

	/* edit: change one character of line 3's content */
	char *saved = xstrdup(lines[2]);
	char *p = strstr(lines[2], "\"n\":2");
	CHECK(p != NULL);
	if (p)
		p[4] = '7';
	CHECK(verify(lines, n) == 3);
	free(lines[2]);
	lines[2] = saved;
	CHECK(verify(lines, n) == 0);

	/* an edited seq near INT64_MAX: no audit line (counting on from it
	 * would overflow); the verifier goes on and names both lines */
	saved = xstrdup(lines[2]);
	char *big = xasprintf("%.*s\"seq\":9223372036854775807,%s", (int)(strstr(lines[2], "\"seq\":3,") - lines[2]),
			      lines[2], strstr(lines[2], "\"seq\":3,") + strlen("\"seq\":3,"));
	free(lines[2]);
	lines[2] = big;
	int bad2[4];
	CHECK(verify_all(lines, n, bad2, 4) >= 1 && bad2[0] == 3);
	free(lines[2]);
	lines[2] = saved;
	CHECK(verify(lines, n) == 0);

	/* removal of line 2 -> line 2 (old 3) breaks */
	char **cut = xcalloc(n, sizeof(char *));
	for (size_t i = 0, k = 0; i < n; i++)
		if (i != 1)
			cut[k++] = lines[i];
	CHECK(verify(cut, n - 1) == 2);
	/* swap of lines 2 and 3 */
	char *tmp = lines[1];
	lines[1] = lines[2];
	lines[2] = tmp;
	CHECK(verify(lines, n) == 2);
	lines[2] = lines[1];
	lines[1] = tmp;
	/* insertion of a copy of line 1 after line 1 */
	char **ins = xcalloc(n + 1, sizeof(char *));
	ins[0] = lines[0];
	ins[1] = lines[0];
	for (size_t i = 1; i < n; i++)
		ins[i + 1] = lines[i];
	CHECK(verify(ins, n + 1) == 2);
	/* a line without chain fields */
	char *plain = xstrdup("{\"ts\":\"x\",\"seq\":6,\"event\":\"granted\"}\n");
	char **ext = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		ext[i] = lines[i];
	ext[n] = plain;
	CHECK(verify(ext, n + 1) == 6);
	free(plain);
	free(ext);
	free(ins);
	free(cut);
	free_lines(lines, n);

	/* restart: reopening the file continues seq and chain */
	CHECK(audit_open(path, NULL, &a) == JIT_OK);
	write_events(a, 5, 2);
	/* rotation: move the file away, reopen, keep writing */
	CHECK(rename(path, rotated) == 0);
	CHECK(audit_reopen(a) == JIT_OK);
	write_events(a, 7, 3);
	audit_close(a);
	char **l1 = read_lines(rotated, &n);
	size_t n2;
	char **l2 = read_lines(path, &n2);
	CHECK(n == 7 && n2 == 3);
	char **all = xcalloc(n + n2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		all[i] = l1[i];
	for (size_t i = 0; i < n2; i++)
		all[n + i] = l2[i];
	CHECK(verify(all, n + n2) == 0);
	CHECK(strstr(l2[0], "\"seq\":8,") != NULL);
	/* the second file alone verifies too (its first line is taken as given) */
	CHECK(verify(l2, n2) == 0);
	free(all);
	free_lines(l1, n);
	free_lines(l2, n2);

	test_resync(dir);
	test_head(dir);
	test_head_behind_rotated(dir);
	test_head_behind_rotated_dateext(dir);
	test_tail_with_an_impossible_seq(dir);
	test_torn_rotated_with_head(dir);
	test_observer(dir);
	test_short_write(dir);
	test_torn_line(dir);
	test_concurrent(dir, false);
	test_concurrent(dir, true);
	unlink(path);
	unlink(rotated);
	rmdir(dir);
	free(path);
	free(rotated);
	T_DONE();
}
