/*
 * test_notify.c - webhook notifications: message formats, the HMAC
 * signature (RFC 4231 vector), secret_file checks, a full queue counted,
 * and a delivery retried after a 503 against a small HTTP server in a
 * thread (the integration tests use a real Python server as well).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "notify.h"
#include "t.h"
#include "util.h"

static json_t *rec(const char *event)
{
	return json_pack("{sssissssssssssssss}", "ts", "2026-11-23T14:00:00Z", "seq", 7, "event",
			 event, "grant_id", "g-1", "user", "alice <&>", "group", "dba",
			 "expires_at", "2026-11-23T16:00:00Z", "ticket", "INC-1", "approved_by",
			 "carol");
}

static void check_formats(void)
{
	json_t *r = rec("granted");
	char *s = notify_summary("granted", r);
	CHECK_STR(s, "alice <&> was granted dba until 2026-11-23T16:00:00Z; ticket INC-1; "
		     "approved by carol [g-1]");
	free(s);
	const char line[] = "{\"ts\":\"x\",\"seq\":7}";
	char *b = notify_body(NOTIFY_JSON, "granted", r, line, strlen(line));
	CHECK_STR(b, line);
	free(b);
	b = notify_body(NOTIFY_SLACK, "granted", r, line, strlen(line));
	json_t *o = json_loads(b, 0, NULL);
	const char *text = json_string_value(json_object_get(o, "text"));
	CHECK(text && strstr(text, "jitd: alice &lt;&amp;&gt; was granted dba") == text);
	json_decref(o);
	free(b);
	b = notify_body(NOTIFY_TEAMS, "granted", r, line, strlen(line));
	o = json_loads(b, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(o, "@type")), "MessageCard");
	CHECK_STR(json_string_value(json_object_get(o, "title")), "jitd: granted");
	text = json_string_value(json_object_get(o, "text"));
	CHECK(text && strstr(text, "alice &lt;&amp;&gt; was granted dba until 2026-11-23T16:00:00Z") ==
			      text);
	json_decref(o);
	free(b);
	json_decref(r);
	/* a requester's text never becomes a link in a Teams card */
	r = json_pack("{ssssssssssss}", "event", "refused", "op", "grant", "error", "unknown_user",
		      "user", "[Re-authenticate](https://evil.example/)", "group", "admins",
		      "message", "no such user **now**");
	CHECK(r != NULL);
	b = notify_body(NOTIFY_TEAMS, "refused", r, line, strlen(line));
	o = json_loads(b, 0, NULL);
	text = json_string_value(json_object_get(o, "text"));
	CHECK(text && strstr(text, "[Re-authenticate](") == NULL);
	CHECK(text && strstr(text, "\\[Re-authenticate\\]\\(https://evil.example/\\)") != NULL);
	CHECK(text && strstr(text, "\\*\\*now\\*\\*") != NULL);
	json_decref(o);
	free(b);
	json_decref(r);
	json_t *d = json_pack("{ssssssssss}", "event", "drift", "kind", "unexplained", "group",
			      "admins", "member", "uid=eve,ou=people", "action", "removed");
	s = notify_summary("drift", d);
	CHECK_STR(s, "drift in group admins: unexplained member uid=eve,ou=people (removed)");
	free(s);
	json_decref(d);
	json_t *t = json_pack("{sssIsIss}", "event", "torn_line", "seq", (json_int_t)42,
			      "torn_bytes", (json_int_t)117, "message", "the line before this one is torn");
	s = notify_summary("torn_line", t);
	CHECK_STR(s, "audit log: a torn line of 117 bytes before seq 42; the line before this one "
		     "is torn");
	free(s);
	json_decref(t);
	r = rec("expiring_soon");
	s = notify_summary("expiring_soon", r);
	CHECK(strstr(s, "expires at 2026-11-23T16:00:00Z: extend or complete it") != NULL);
	free(s);
	json_decref(r);
}

static void check_signature(void)
{
	/* RFC 4231 test case 7, split at its first '.' into timestamp and body */
	unsigned char key[131];
	char sig[72];
	memset(key, 0xaa, sizeof(key));
	const char *ts = "This is a test using a larger than block-size key and a larger than "
			 "block-size data";
	const char *body = " The key needs to be hashed before being used by the HMAC algorithm.";
	CHECK(notify_signature(key, sizeof(key), ts, body, strlen(body), sig) == JIT_OK);
	CHECK_STR(sig, "sha256=9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static char *events_all[] = { "granted", "expired", NULL };

static struct jit_config *cfg_with(const char *url, const char *secret_file)
{
	struct jit_config *c = xcalloc(1, sizeof(*c));
	c->notify = xcalloc(1, sizeof(struct jit_notify_cfg));
	c->n_notify = 1;
	c->notify[0].url = (char *)url;
	c->notify[0].events = events_all;
	c->notify[0].n_events = 2;
	c->notify[0].format = (char *)"json";
	c->notify[0].secret_file = (char *)secret_file;
	c->notify[0].timeout = 2;
	c->notify[0].max_attempts = 3;
	return c;
}

static void cfg_free(struct jit_config *c)
{
	free(c->notify);
	free(c);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
	CHECK(chmod(path, mode) == 0);
}

static void check_secrets(const char *dir)
{
	char *p = xasprintf("%s/hook.secret", dir), msg[256];
	struct notify_targets *t = NULL;
	struct jit_config *c = cfg_with("http://127.0.0.1:1/", p);
	write_file(p, "s3cret\n", 0644);
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_ECONFIG);
	CHECK(strstr(msg, "mode 0644") != NULL);
	write_file(p, "", 0600);
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_ECONFIG);
	CHECK(strstr(msg, "empty") != NULL);
	write_file(p, "s3cret\n", 0600);
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_OK);
	notify_targets_free(t);
	unlink(p);
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_ECONFIG);
	cfg_free(c);
	free(p);
}

static void wait_for(struct notify *n, struct notify_stats *st, uint64_t delivered, uint64_t failed)
{
	for (int i = 0; i < 500; i++) {
		notify_get_stats(n, st);
		if (st->delivered >= delivered && st->attempts_failed >= failed)
			return;
		usleep(10000);
	}
}

/* A dead receiver and a queue of 3: 10 events, 7 dropped and counted. */
static void check_full_queue(void)
{
	struct notify_targets *t = NULL;
	struct notify *n = NULL;
	struct notify_stats st;
	char msg[256];
	struct jit_config *c = cfg_with("http://127.0.0.1:1/hook", NULL);
	struct notify_limits lim = { .queue_max = 3, .retry_min_ms = 50, .retry_max_ms = 200,
				     .parallel = 2, .drain_ms = 100 };
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_OK);
	CHECK(notify_new(t, &lim, &n) == JIT_OK);
	json_t *r = rec("granted");
	for (int i = 0; i < 10; i++)
		notify_event(n, "granted", r, "{}", 2);
	notify_event(n, "revoked", r, "{}", 2); /* not subscribed: not queued */
	json_decref(r);
	wait_for(n, &st, 0, 3);
	CHECK(st.queued == 3 && st.dropped == 7);
	CHECK(st.attempts_failed >= 3 && st.delivered == 0);
	/* the same counts, for the receiver */
	CHECK(notify_get_receiver_stats(n, "http://127.0.0.1:1/hook", &st) == JIT_OK);
	CHECK(st.queued == 3 && st.dropped == 7);
	CHECK(notify_get_receiver_stats(n, "http://127.0.0.1:2/hook", &st) == JIT_ENOTFOUND);
	notify_free(n);
	cfg_free(c);
}

/* ---- a tiny HTTP server: 503 for the first request, then 200 ---- */
struct srv {
	int fd, port, requests;
	char last[4096];
};

static void *serve(void *arg)
{
	struct srv *s = arg;
	for (int i = 0; i < 2; i++) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		size_t n = 0;
		ssize_t r;
		s->last[0] = '\0';
		while (n < sizeof(s->last) - 1 && (r = read(c, s->last + n, sizeof(s->last) - 1 - n)) > 0) {
			n += (size_t)r;
			s->last[n] = '\0';
			char *end = strstr(s->last, "\r\n\r\n"), *cl = strcasestr(s->last, "Content-Length: ");
			if (end && cl && strlen(end + 4) >= (size_t)atoi(cl + 16))
				break;
		}
		s->requests++;
		const char *a = i == 0 ? "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
				       : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
		if (write(c, a, strlen(a)) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

static void check_delivery(const char *dir)
{
	struct srv s = { 0 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	pthread_t th;
	s.fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s.fd >= 0 && bind(s.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(s.fd, 4) == 0);
	CHECK(getsockname(s.fd, (struct sockaddr *)&sa, &sl) == 0);
	s.port = ntohs(sa.sin_port);
	CHECK(pthread_create(&th, NULL, serve, &s) == 0);
	char *url = xasprintf("http://127.0.0.1:%d/hook/token", s.port), msg[256];
	char *p = xasprintf("%s/k.secret", dir);
	write_file(p, "key", 0600);
	struct jit_config *c = cfg_with(url, p);
	struct notify_targets *t = NULL;
	struct notify *n = NULL;
	struct notify_stats st;
	struct notify_limits lim = { .queue_max = 10, .retry_min_ms = 50, .retry_max_ms = 200,
				     .parallel = 2, .drain_ms = 2000 };
	CHECK(notify_targets_load(c, &t, msg, sizeof(msg)) == JIT_OK);
	CHECK(notify_new(t, &lim, &n) == JIT_OK);
	json_t *r = rec("expired");
	const char line[] = "{\"seq\":7,\"event\":\"expired\"}";
	notify_event(n, "expired", r, line, strlen(line));
	json_decref(r);
	wait_for(n, &st, 1, 1);
	CHECK(st.delivered == 1 && st.attempts_failed == 1 && st.gave_up == 0);
	notify_free(n);
	pthread_join(th, NULL);
	close(s.fd);
	CHECK(s.requests == 2);
	CHECK(strstr(s.last, "POST /hook/token HTTP/1.1\r\n") == s.last);
	CHECK(strstr(s.last, "X-Jitd-Event: expired\r\n") != NULL);
	CHECK(strstr(s.last, "X-Jitd-Seq: 7\r\n") != NULL);
	CHECK(strstr(s.last, "X-Jitd-Signature: sha256=") != NULL);
	CHECK(strstr(s.last, line) != NULL);
	/* the signature is over "<timestamp>.<body>" */
	const char *ts = strstr(s.last, "X-Jitd-Timestamp: "), *sg = strstr(s.last, "sha256=");
	char tsbuf[32] = "", want[72];
	if (ts)
		sscanf(ts + 18, "%31[0-9]", tsbuf);
	CHECK(notify_signature((const unsigned char *)"key", 3, tsbuf, line, strlen(line), want) == JIT_OK);
	CHECK(sg && strncmp(sg, want, 71) == 0);
	unlink(p);
	free(p);
	free(url);
	cfg_free(c);
}

/* URLs in logs and config errors: no part of a user name or password, even
 * one holding a '/', and nothing past the host. */
static void check_redact(void)
{
	static const struct {
		const char *url, *want;
		bool userinfo;
	} c[] = {
		{ "https://user:pw@host:8443/T0/B1/xyz", "https://host:8443/***", true },
		{ "https://host", "https://host", false },
		{ "https://host/T0?k=v", "https://host/***", false },
		{ "https://host?token=s3cret", "https://host/***", false },
		{ "https://u:pa/ss@host/p", "https://***/***", true },
		{ "https://u:pa/ss@host", "https://***/***", true },
		{ "https://h.example/path@x/y", "https://h.example/***", false },
		{ "https://host/path@x/y", "https://***/***", true }, /* "host/path" a user? */
		{ "https://x.webhook.office.com/webhookb2/g-1@t-2/IncomingWebhook/a/b",
		  "https://x.webhook.office.com/***", false },
		{ "https://h.example:8443/a@b", "https://h.example:8443/***", false },
		{ "https://[::1]:8443/a@b", "https://[::1]:8443/***", false },
		{ "https://u:/ss@host", "https://***/***", true },
		{ "https://a@b@host/x", "https://host/***", true },
		{ "https://AbC/dEf@host/x", "https://***/***", true },
		{ "https://localhost/a@b", "https://localhost/***", false },
		/* a password holding a '?' or '#': no part of it shown */
		{ "https://bot:s3cr?t@hooks.example.com/x", "https://***/***", true },
		{ "https://bot:s3cr#t@hooks.example.com/x", "https://***/***", true },
		{ "https://bot:s3cr?t@hooks.example.com", "https://***/***", true },
		{ "https://bot:123?t@hooks.example.com/x", "https://***/***", true },
		{ "https://bot.example:123?t@h.example/x", "https://bot.example:123/***", false },
		{ "https://u:p@ss?x@host", "https://***/***", true },
		{ "https://u:p@ss.example/x?m=a@b", "https://***/***", true },
		{ "https://h.example:99999/a@b", "https://***/***", true },
		{ "https://h.example:/a@b", "https://***/***", true },
		{ "https://h_1.example!/a@b", "https://***/***", true },
		{ "https://[::1/a@b", "https://***/***", true },
		/* an '@' in the query or fragment past a host that can be one */
		{ "https://hooks.example.com/x?x=a@b", "https://hooks.example.com/***", false },
		{ "https://hooks.example.com?x=a@b", "https://hooks.example.com/***", false },
		{ "https://h.example#frag@x", "https://h.example/***", false },
		{ "https://localhost:8080?x=a@b", "https://localhost:8080/***", false },
		{ "https://x.webhook.office.com/webhookb2/1-2@3-4/IncomingWebhook/5/6",
		  "https://x.webhook.office.com/***", false },
		/* a name without a dot before an '@' in the query: a host (a user
		 * name holding a '?' or '#' is no token); with a port, maybe not */
		{ "https://host/p?mail=a@b", "https://host/***", false },
		{ "https://host?mail=a@b", "https://host/***", false },
		{ "https://host#frag@x", "https://host/***", false },
		{ "https://host:8443?x=a@b", "https://***/***", true },
		{ "https://host/p@q?mail=a@b", "https://***/***", true },
		{ "https://ho!st?x=a@b", "https://***/***", true },
		/* no '@' at all: no user info, whatever the host */
		{ "https://bot:s3cr?t", "https://bot:s3cr/***", false },
		{ "no scheme pw@host", "***", false },
	};
	char buf[128];

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		url_redact(c[i].url, buf, sizeof(buf));
		if (strcmp(buf, c[i].want) != 0)
			fprintf(stderr, "  (redact case %zu: %s)\n", i, c[i].url);
		CHECK_STR(buf, c[i].want);
		CHECK(url_has_userinfo(c[i].url) == c[i].userinfo);
	}
	url_redact(NULL, buf, sizeof(buf));
	CHECK_STR(buf, "***");
	CHECK(url_host_is_loopback("http://127.0.0.1:8080/t/%s"));
	CHECK(url_host_is_loopback("https://LOCALHOST/t"));
	CHECK(url_host_is_loopback("http://[::1]:80?x"));
	CHECK(!url_host_is_loopback("http://127.0.0.1.example/t"));
	CHECK(!url_host_is_loopback("http://localhost:s3cr?t@evil.example/t"));
	CHECK(!url_host_is_loopback("http://[::1]x/t"));
	CHECK(!url_host_is_loopback("no scheme"));
}

int main(void)
{
	char dir[] = "/tmp/jitd-notify-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	check_redact();
	check_formats();
	check_signature();
	check_secrets(dir);
	check_full_queue();
	check_delivery(dir);
	rmdir(dir);
	T_DONE();
}
