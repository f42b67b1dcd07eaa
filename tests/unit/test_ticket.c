/*
 * test_ticket.c - the pure parts of the ticket check: the URL template and
 * the judgement of an answer (status, JSON, dotted field, value), which
 * must fail closed on everything but a clear match; tickets with a "." or
 * ".." path segment, never sent; and secret files
 * (mode, owner, size, trailing newline).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "secret.h"
#include "ticket.h"
#include "t.h"
#include "util.h"

static int judge(long status, const char *body, const char *field, char *msg)
{
	return ticket_judge(status, body, strlen(body), field, "approved", "INC1", msg, 512);
}

static void test_judge(void)
{
	char msg[512];

	CHECK(judge(200, "{\"state\":\"approved\"}", "state", msg) == JIT_OK);
	CHECK(judge(204, "{\"state\":\"approved\"}", "state", msg) == JIT_OK);
	CHECK(judge(200, "{\"result\":{\"state\":\"approved\"}}", "result.state", msg) == JIT_OK);
	CHECK(judge(200, "{\"state\":\"pending\"}", "state", msg) == JIT_EPOLICY);
	CHECK(strstr(msg, "not approved") && strstr(msg, "pending") && strstr(msg, "INC1"));
	/* the ticket system's value reaches logs and answers: no C1 control
	 * (a CSI), no text-direction override, no cut character */
	CHECK(judge(200, "{\"state\":\"\\u009b31m\\u202eX\\u00e9\\u00e9\"}", "state", msg) ==
	      JIT_EPOLICY);
	CHECK(strstr(msg, "\xc2\x9b") == NULL && strstr(msg, "\xe2\x80\xae") == NULL);
	CHECK(strstr(msg, "?31m?X\xc3\xa9\xc3\xa9") != NULL);
	CHECK(judge(200, "{\"state\":\"Approved\"}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"state\":\"approved \"}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(404, "{\"state\":\"approved\"}", "state", msg) == JIT_EPOLICY);
	CHECK(strstr(msg, "HTTP 404") != NULL);
	CHECK(judge(199, "{\"state\":\"approved\"}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(300, "{\"state\":\"approved\"}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(500, "", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "", "state", msg) == JIT_EPOLICY);
	CHECK(strstr(msg, "not a JSON object") != NULL);
	CHECK(judge(200, "garbage{", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "[\"approved\"]", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "\"approved\"", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"state\":\"approved\"} x", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"state\":\"approved\",\"state\":\"x\"}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"status\":\"approved\"}", "state", msg) == JIT_EPOLICY);
	CHECK(strstr(msg, "no field \"state\"") != NULL);
	CHECK(judge(200, "{\"state\":true}", "state", msg) == JIT_EPOLICY);
	CHECK(strstr(msg, "not a string") != NULL);
	CHECK(judge(200, "{\"state\":null}", "state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"result\":\"approved\"}", "result.state", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"result\":{\"state\":\"approved\"}}", "result", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"a.b\":\"approved\"}", "a.b", msg) == JIT_EPOLICY);
	CHECK(judge(200, "{\"state\":\"app\\u0000roved\"}", "state", msg) == JIT_EPOLICY);
	/* the answer is quoted escaped and short */
	CHECK(judge(200, "{\"state\":\"\\u001b[31mx\\\"y\"}", "state", msg) == JIT_EPOLICY);
	CHECK(strchr(msg, 0x1b) == NULL);
}

static void test_url(void)
{
	char *u = ticket_url("https://itsm/api/%s?x=100%%&y=%%s", "INC%201");
	CHECK_STR(u, "https://itsm/api/INC%201?x=100%&y=%s");
	free(u);
	u = ticket_url("http://h/%s", "");
	CHECK_STR(u, "http://h/");
	free(u);
}

/* A ticket that a resolver on the way could turn into another path. */
static void test_dot_segment(void)
{
	const char *bad[] = { ".", "..", "../api", "./x", "a/..", "a/.", "a/../b", "..\\x",
			      "a\\.", "/..", "../" };
	const char *good[] = { "INC00042", "...", ".x", "x.", "..x", "a..b", "v1.2", "a/b",
			       "A B/C?&x=%", "%2e%2e", "", "/", "a//b", ". ", " .." };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(ticket_has_dot_segment(bad[i]));
		if (!ticket_has_dot_segment(bad[i]))
			fprintf(stderr, "not caught: \"%s\"\n", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(!ticket_has_dot_segment(good[i]));
		if (ticket_has_dot_segment(good[i]))
			fprintf(stderr, "wrongly caught: \"%s\"\n", good[i]);
	}
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) != 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void test_secret(void)
{
	char dir[] = "/tmp/jt-secretXXXXXX", why[200], *buf = NULL;
	size_t len = 0;
	uid_t me = geteuid();

	CHECK(mkdtemp(dir) != NULL);
	char *p = xasprintf("%s/s", dir), *l = xasprintf("%s/l", dir);
	put(p, "k3y\n", 0600);
	CHECK(secret_file_check(p, me, why, sizeof(why)) == JIT_OK);
	CHECK(secret_file_read(p, me, 16, &buf, &len, why, sizeof(why)) == JIT_OK);
	CHECK(len == 3 && memcmp(buf, "k3y", 4) == 0);
	free_secret(buf);
	put(p, "k3y\r\n", 0400);
	CHECK(secret_file_read(p, me, 3, &buf, &len, why, sizeof(why)) == JIT_OK);
	CHECK(len == 3);
	free_secret(buf);
	buf = (char *)"untouched";
	put(p, "k3y4\n", 0600);
	CHECK(secret_file_read(p, me, 3, &buf, &len, why, sizeof(why)) == JIT_ECONFIG);
	CHECK(strstr(why, "longer") != NULL);
	put(p, "\n", 0600);
	CHECK(secret_file_read(p, me, 3, &buf, &len, why, sizeof(why)) == JIT_ECONFIG);
	put(p, "k3y\n", 0644);
	CHECK(secret_file_check(p, me, why, sizeof(why)) == JIT_ECONFIG);
	CHECK(strstr(why, "0644") != NULL);
	CHECK(secret_file_read(p, me, 16, &buf, &len, why, sizeof(why)) == JIT_ECONFIG);
	put(p, "k3y\n", 0640);
	CHECK(secret_file_check(p, me, why, sizeof(why)) == JIT_ECONFIG);
	put(p, "k3y\n", 0601);
	CHECK(secret_file_check(p, me, why, sizeof(why)) == JIT_ECONFIG);
	put(p, "k3y\n", 0600);
	CHECK(secret_file_check(p, me + 1, why, sizeof(why)) == JIT_ECONFIG);
	CHECK(strstr(why, "owned by") != NULL);
	CHECK(secret_file_read(p, me + 1, 16, &buf, &len, why, sizeof(why)) == JIT_ECONFIG);
	CHECK(symlink(p, l) == 0);
	CHECK(secret_file_check(l, me, why, sizeof(why)) == JIT_ECONFIG);
	CHECK(secret_file_read(l, me, 16, &buf, &len, why, sizeof(why)) != JIT_OK);
	CHECK(secret_file_check(dir, me, why, sizeof(why)) == JIT_ECONFIG);
	unlink(l);
	unlink(p);
	CHECK(secret_file_check(p, me, why, sizeof(why)) == JIT_ECONFIG);
	CHECK_STR(buf, "untouched"); /* out-parameter unchanged on failure */
	rmdir(dir);
	free(p);
	free(l);
}

int main(void)
{
	test_judge();
	test_url();
	test_dot_segment();
	test_secret();
	T_DONE();
}
