/*
 * test_audit.c - the audit log's hash chain: lines written by audit_write
 * verify; an edit, a removal, an insertion and a swap are each detected at
 * the right line; the chain continues across reopen (rotation) and restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* 0 if every line verifies, else the 1-based number of the first bad line. */
static int verify(char **lines, size_t n)
{
	struct audit_verifier *v = audit_verifier_new();
	char msg[256];
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i++)
		if (audit_verify_line(v, lines[i], strlen(lines[i]), msg, sizeof(msg)) != JIT_OK)
			bad = (int)i + 1;
	audit_verifier_free(v);
	return bad;
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

int main(void)
{
	char dir[] = "/tmp/jitd-audit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *path = xasprintf("%s/audit.log", dir);
	char *rotated = xasprintf("%s/audit.log.1", dir);
	struct audit *a = NULL;
	size_t n;

	CHECK(audit_open(path, &a) == JIT_OK);
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
	CHECK(audit_open(path, &a) == JIT_OK);
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

	unlink(path);
	unlink(rotated);
	rmdir(dir);
	free(path);
	free(rotated);
	T_DONE();
}
