/*
 * test_imsg.c - the messages between the listener and the engine: field
 * getters (bounds, NUL bytes, leftovers), framing (allow-list, size limit
 * judged from the header, bytes arriving one by one, a real socketpair),
 * the REQUEST / REFUSED / INIT / REPLY / CONFIGURED codecs and their refusal of every
 * request proto.c could not have produced; then 20,000 mutations of valid
 * frames, none of which may crash or decode into something invalid (the
 * same properties as tests/fuzz/fuzz_imsg.c, in every `make check`).
 * With JITD_WRITE_CORPUS=DIR it writes the fuzzer's seed corpus there.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "channel.h"
#include "t.h"
#include "util.h"

static struct jit_request *grant_req(void)
{
	struct jit_request *r = xcalloc(1, sizeof(*r));
	r->op = OP_GRANT;
	r->user = xstrdup("alice");
	r->group = xstrdup("domain-admins");
	r->has_duration = true;
	r->duration = 7200;
	r->ticket = xstrdup("CHG000123");
	r->reason = xstrdup("patch");
	r->request_id = xstrdup("cab-1");
	r->approved_at = xstrdup("2026-11-23T16:27:51Z");
	r->approval_sig = xstrdup("00ff");
	return r;
}

static void test_fields(void)
{
	struct imsg *m = imsg_new(7);
	uint8_t u8;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	char *s = NULL;

	imsg_put_u8(m, 0xab);
	imsg_put_u32(m, 0xdeadbeef);
	imsg_put_u64(m, 0x0102030405060708ULL);
	imsg_put_i64(m, -5);
	imsg_put_str(m, "hello");
	imsg_put_str(m, NULL);
	imsg_put_str(m, "");
	CHECK(imsg_get_u8(m, &u8) == JIT_OK && u8 == 0xab);
	CHECK(imsg_get_u32(m, &u32) == JIT_OK && u32 == 0xdeadbeef);
	CHECK(imsg_get_u64(m, &u64) == JIT_OK && u64 == 0x0102030405060708ULL);
	CHECK(imsg_get_i64(m, &i64) == JIT_OK && i64 == -5);
	CHECK(imsg_end(m) == JIT_EBADREQ); /* not all read yet */
	CHECK(imsg_get_str(m, 4, true, &s) == JIT_EBADREQ); /* 5 bytes > 4 */
	CHECK(imsg_end(m) == JIT_EBADREQ);  /* and the message is bad for good */
	m->off = 1 + 4 + 8 + 8;
	m->bad = false;
	CHECK(imsg_get_str(m, 5, true, &s) == JIT_OK);
	CHECK_STR(s, "hello");
	free(s);
	s = (char *)"x";
	CHECK(imsg_get_str(m, 5, false, &s) == JIT_EBADREQ); /* absent not allowed */
	CHECK_STR(s, "x");
	m->bad = false;
	m->off -= 4;
	CHECK(imsg_get_str(m, 5, true, &s) == JIT_OK && s == NULL);
	CHECK(imsg_get_str(m, 5, true, &s) == JIT_OK);
	CHECK_STR(s, "");
	free(s);
	CHECK(imsg_end(m) == JIT_OK);
	CHECK(imsg_get_u8(m, &u8) == JIT_EBADREQ); /* nothing left */
	imsg_free(m);

	/* a NUL inside a string, a length beyond the payload */
	m = imsg_new(7);
	imsg_put_u32(m, 3);
	imsg_put_u8(m, 'a');
	imsg_put_u8(m, 0);
	imsg_put_u8(m, 'b');
	CHECK(imsg_get_str(m, 10, true, &s) == JIT_EBADREQ);
	imsg_free(m);
	m = imsg_new(7);
	imsg_put_u32(m, 100);
	imsg_put_u8(m, 'a');
	CHECK(imsg_get_str(m, 1000, true, &s) == JIT_EBADREQ);
	imsg_free(m);
}

static struct imsg *frame_roundtrip(struct imsg *m)
{
	size_t len;
	uint8_t *f = imsg_frame(m, &len);
	struct imsg_chan *ch = imsg_chan_new(-1, chan_from_listener);
	struct imsg *out = NULL;
	/* byte by byte: nothing before the last byte */
	for (size_t i = 0; i < len; i++) {
		imsg_chan_feed(ch, f + i, 1);
		int rc = imsg_chan_next(ch, &out);
		CHECK(i + 1 < len ? rc == JIT_ENOTFOUND : rc == JIT_OK);
	}
	imsg_free(m);
	free(f);
	imsg_chan_free(ch);
	return out;
}

static void test_framing(void)
{
	struct imsg_chan *ch = imsg_chan_new(-1, chan_from_listener);
	uint8_t hdr[8] = { CHAN_INIT, 0, 0, 0, 0, 0, 0, 0 };
	struct imsg *m = NULL;

	/* a type the engine does not accept from the listener */
	imsg_chan_feed(ch, hdr, sizeof(hdr));
	CHECK(imsg_chan_next(ch, &m) == JIT_EBADREQ);
	CHECK(imsg_chan_next(ch, &m) == JIT_EBADREQ); /* and the channel stays broken */
	imsg_chan_free(ch);
	/* a REQUEST header announcing more than its maximum: refused before
	 * any of the payload arrives */
	ch = imsg_chan_new(-1, chan_from_listener);
	uint32_t big = CHAN_MAX_REQUEST + 1;
	uint8_t h2[8] = { CHAN_REQUEST, 0, 0, 0, (uint8_t)big, (uint8_t)(big >> 8),
			  (uint8_t)(big >> 16), (uint8_t)(big >> 24) };
	imsg_chan_feed(ch, h2, sizeof(h2));
	CHECK(imsg_chan_next(ch, &m) == JIT_EBADREQ);
	imsg_chan_free(ch);
	/* the listener's allow-list refuses what only the engine may send */
	ch = imsg_chan_new(-1, chan_from_engine);
	uint8_t h3[8] = { CHAN_REQUEST, 0, 0, 0, 0, 0, 0, 0 };
	imsg_chan_feed(ch, h3, sizeof(h3));
	CHECK(imsg_chan_next(ch, &m) == JIT_EBADREQ);
	imsg_chan_free(ch);

	/* through a real socketpair, several messages, a large reply */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0 && fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
	struct imsg_chan *a = imsg_chan_new(sv[0], chan_from_listener);
	struct imsg_chan *b = imsg_chan_new(sv[1], chan_from_engine);
	size_t n = 3 * 1024 * 1024;
	char *line = xmalloc(n + 1);
	memset(line, 'x', n);
	line[n] = '\0';
	CHECK(imsg_chan_queued(a) == 0);
	imsg_chan_send(a, chan_reply_msg(42, line));
	size_t first = imsg_chan_queued(a);
	CHECK(first > n);
	imsg_chan_send(a, chan_reply_msg(43, "short\n"));
	CHECK(imsg_chan_queued(a) > first);
	int got = 0, rounds = 0;
	size_t last = imsg_chan_queued(a);
	while (got < 2 && rounds++ < 10000) {
		CHECK(imsg_chan_flush(a) == JIT_OK);
		CHECK(imsg_chan_queued(a) <= last); /* what the socket took is off */
		last = imsg_chan_queued(a);
		CHECK(imsg_chan_read(b) == JIT_OK);
		while (imsg_chan_next(b, &m) == JIT_OK) {
			uint64_t conn;
			char *l = NULL;
			CHECK(chan_reply_get(m, &conn, &l) == JIT_OK);
			CHECK(got == 0 ? conn == 42 && strlen(l) == n : conn == 43);
			free(l);
			imsg_free(m);
			got++;
		}
	}
	CHECK(got == 2 && !imsg_chan_pending(a) && imsg_chan_queued(a) == 0);
	close(sv[0]);
	CHECK(imsg_chan_read(b) == JIT_ENOTFOUND); /* end of stream */
	close(sv[1]);
	free(line);
	imsg_chan_free(a);
	imsg_chan_free(b);
}

static int decode(struct imsg *m)
{
	struct jit_peer p;
	struct jit_request *r = NULL;
	char *c = NULL;
	uint64_t conn;
	int64_t d;
	int rc = chan_request_get(m, &conn, &p, &c, &r, &d);
	free(c);
	proto_request_free(r);
	return rc;
}

/* Encodes req as the listener would and decodes it as the engine does. */
static int through(const struct jit_request *req, int64_t dur)
{
	struct jit_peer peer = { .pid = 4242, .uid = 990, .gid = 990 };
	struct imsg *m = frame_roundtrip(chan_request_msg(7, &peer, "helpdesk", req, dur));
	int rc = m ? decode(m) : JIT_EBADREQ;
	imsg_free(m);
	return rc;
}

static void test_request(void)
{
	struct jit_peer peer = { .pid = 4242, .uid = 990, .gid = 991 }, p2;
	struct jit_request *req = grant_req(), *r2 = NULL;
	char *client = NULL;
	uint64_t conn;
	int64_t d;

	struct imsg *m = frame_roundtrip(chan_request_msg(7, &peer, "helpdesk", req, 7200));
	CHECK(m && m->type == CHAN_REQUEST);
	CHECK(chan_request_get(m, &conn, &p2, &client, &r2, &d) == JIT_OK);
	CHECK(conn == 7 && p2.pid == 4242 && p2.uid == 990 && p2.gid == 991 && d == 7200);
	CHECK_STR(client, "helpdesk");
	CHECK(r2->op == OP_GRANT && r2->has_duration && r2->duration == 7200);
	CHECK_STR(r2->user, "alice");
	CHECK_STR(r2->approved_at, "2026-11-23T16:27:51Z");
	CHECK(r2->reason_end == NULL && r2->grant_id == NULL);
	free(client);
	proto_request_free(r2);
	imsg_free(m);

	/* what proto.c could never produce is refused */
	CHECK(through(req, 7200) == JIT_OK);
	CHECK(through(req, 0) == JIT_EBADREQ);            /* grant without duration */
	req->op = OP__COUNT;
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* unknown op */
	req->op = OP_STATUS;
	CHECK(through(req, 0) == JIT_EBADREQ);            /* status with grant fields */
	req->op = OP_GRANT;
	char *u = req->user;
	req->user = NULL;
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* grant without user */
	req->user = xstrdup("ali\nce");
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* control character */
	free(req->user);
	req->user = xstrdup("");
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* empty string */
	free(req->user);
	req->user = u;
	/* invalid UTF-8 (it would drop out of the audit line) */
	char *t = req->ticket;
	req->ticket = xstrdup("INC\xff" "42");
	CHECK(through(req, 7200) == JIT_EBADREQ);
	free(req->ticket);
	req->ticket = xstrdup("INC-\xc3\xa9t\xc3\xa9");            /* valid: "INC-été" */
	CHECK(through(req, 7200) == JIT_OK);
	free(req->ticket);
	req->ticket = t;
	req->grant_id = xstrdup("g-1");
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* grant_id on a grant */
	free(req->grant_id);
	req->grant_id = NULL;
	req->limit = 5;
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* limit on a grant */
	req->limit = 0;
	req->duration = -1;
	CHECK(through(req, 7200) == JIT_EBADREQ);         /* negative duration */
	req->duration = 7200;
	CHECK(through(req, (int64_t)1 << 40) == JIT_EBADREQ); /* effective duration too long */
	proto_request_free(req);

	struct jit_request ext = { .op = OP_EXTEND, .grant_id = (char *)"g-1",
				   .has_duration = true, .duration = 60 };
	CHECK(through(&ext, 0) == JIT_OK);
	ext.has_duration = false;
	ext.duration = 0;
	CHECK(through(&ext, 0) == JIT_EBADREQ);           /* extend needs a duration */
	ext.has_duration = true;
	ext.duration = 60;
	ext.expires_at = (char *)"2026-11-23T16:00:00Z";  /* a signed extension */
	ext.approved_by = (char *)"carol";
	ext.approved_at = (char *)"2026-11-23T15:50:12Z";
	ext.approval_sig = (char *)"ab12";
	CHECK(through(&ext, 0) == JIT_OK);
	m = frame_roundtrip(chan_request_msg(7, &peer, "helpdesk", &ext, 0));
	CHECK(m && chan_request_get(m, &conn, &p2, &client, &r2, &d) == JIT_OK);
	CHECK_STR(r2->expires_at, "2026-11-23T16:00:00Z");
	CHECK_STR(r2->approval_sig, "ab12");
	CHECK_STR(r2->approved_by, "carol");
	free(client);
	proto_request_free(r2);
	imsg_free(m);
	ext.request_id = (char *)"r";
	CHECK(through(&ext, 0) == JIT_EBADREQ);           /* no request_id on an extend */
	ext.request_id = NULL;
	struct jit_request *gr = grant_req();
	gr->expires_at = xstrdup("2026-11-23T16:00:00Z");
	CHECK(through(gr, 7200) == JIT_EBADREQ);          /* expires_at only on an extend */
	proto_request_free(gr);
	struct jit_request rev = { .op = OP_REVOKE, .grant_id = (char *)"g-1", .force = true };
	CHECK(through(&rev, 0) == JIT_OK);
	rev.op = OP_COMPLETE;
	CHECK(through(&rev, 0) == JIT_EBADREQ);           /* force only on revoke */
	struct jit_request lst = { .op = OP_LIST, .state_mask = 0x7f, .limit = 10000 };
	CHECK(through(&lst, 0) == JIT_OK);
	lst.state_mask = 0x80;
	CHECK(through(&lst, 0) == JIT_EBADREQ);
	lst.state_mask = 0;
	lst.limit = 10001;
	CHECK(through(&lst, 0) == JIT_EBADREQ);

	/* a leftover byte after a valid request */
	req = grant_req();
	m = chan_request_msg(7, &peer, "helpdesk", req, 7200);
	imsg_put_u8(m, 0);
	CHECK(decode(m) == JIT_EBADREQ);
	imsg_free(m);
	proto_request_free(req);
}

static void test_other_messages(void)
{
	struct jit_peer peer = { .pid = 1, .uid = 2, .gid = 3 };
	struct jit_request *req = grant_req();
	struct chan_refusal r;
	struct imsg *m = frame_roundtrip(chan_refused_msg(9, &peer, NULL, req, JIT_EPOLICY, "no",
							  "min_duration"));
	CHECK(m && chan_refused_get(m, &r) == JIT_OK);
	CHECK(r.conn == 9 && r.err == JIT_EPOLICY && r.client == NULL && r.req && r.req->op == OP_GRANT);
	CHECK_STR(r.rule, "min_duration");
	chan_refusal_clear(&r);
	imsg_free(m);
	m = chan_refused_msg(0, &peer, "c", NULL, 5, "positive error", NULL);
	CHECK(chan_refused_get(m, &r) == JIT_EBADREQ);
	imsg_free(m);
	proto_request_free(req);

	struct chan_init in = { .path = "/etc/jitd/jitd.conf", .text = "groups = ();",
				.foreground = true, .log_level = "debug", .has_ids = true,
				.uid = 65534, .gid = 65534, .gen = 7 }, out;
	m = chan_init_msg(CHAN_INIT, &in);
	CHECK(chan_init_get(m, &out) == JIT_OK);
	CHECK(out.foreground && out.has_ids && out.uid == 65534 && out.gen == 7);
	CHECK_STR(out.text, "groups = ();");
	chan_init_clear(&out);
	imsg_free(m);
	uint32_t u, g;
	m = chan_ready_msg(65534, 65533);
	CHECK(chan_ready_get(m, &u, &g) == JIT_OK && u == 65534 && g == 65533);
	imsg_free(m);
}

/* CONFIGURED: the listener's answer to a reload; a reason exactly when it
 * failed, and one the engine can log (no control character). */
static void test_configured(void)
{
	uint64_t gen = 0;
	bool ok = false;
	char *why = NULL;
	struct imsg *m = frame_roundtrip(chan_configured_msg(3, true, "ignored when ok"));
	CHECK(m && m->type == CHAN_CONFIGURED);
	CHECK(chan_configured_get(m, &gen, &ok, &why) == JIT_OK && gen == 3 && ok && !why);
	imsg_free(m);
	m = frame_roundtrip(chan_configured_msg(4, false, "jitd.conf:3: log_level: bad"));
	CHECK(m && chan_configured_get(m, &gen, &ok, &why) == JIT_OK && gen == 4 && !ok);
	CHECK_STR(why, "jitd.conf:3: log_level: bad");
	free(why);
	imsg_free(m);
	/* a failure without a reason, or with a control character, is refused */
	static const char *const bad[] = { NULL, "", "two\nlines", "esc\x1b[2J" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = chan_configured_msg(5, false, bad[i]);
		why = NULL;
		CHECK(chan_configured_get(m, &gen, &ok, &why) == JIT_EBADREQ && !why);
		imsg_free(m);
	}
	/* ok with a reason, ok not 0/1, something left over: refused */
	m = imsg_new(CHAN_CONFIGURED);
	imsg_put_u64(m, 6);
	imsg_put_u8(m, 1);
	imsg_put_str(m, "why");
	CHECK(chan_configured_get(m, &gen, &ok, &why) == JIT_EBADREQ);
	imsg_free(m);
	m = imsg_new(CHAN_CONFIGURED);
	imsg_put_u64(m, 6);
	imsg_put_u8(m, 2);
	imsg_put_str(m, NULL);
	CHECK(chan_configured_get(m, &gen, &ok, &why) == JIT_EBADREQ);
	imsg_free(m);
	m = chan_configured_msg(6, true, NULL);
	imsg_put_u8(m, 0);
	CHECK(chan_configured_get(m, &gen, &ok, &why) == JIT_EBADREQ);
	imsg_free(m);
	/* a reason longer than the engine takes is refused from the header */
	char *big = xmalloc(CHAN_MAX_MESSAGE + 1);
	memset(big, 'x', CHAN_MAX_MESSAGE);
	big[CHAN_MAX_MESSAGE] = '\0';
	m = chan_configured_msg(7, false, big);
	size_t len;
	uint8_t *f = imsg_frame(m, &len);
	struct imsg_chan *ch = imsg_chan_new(-1, chan_from_listener);
	struct imsg *out = NULL;
	imsg_chan_feed(ch, f, len);
	CHECK(imsg_chan_next(ch, &out) == JIT_EBADREQ);
	imsg_chan_free(ch);
	free(f);
	free(big);
	imsg_free(m);
}

/* Mutated valid frames: no crash, and whatever decodes re-encodes to the
 * same bytes (the decoders accept one encoding only). */
static void test_mutations(const char *corpus)
{
	struct jit_peer peer = { .pid = 4242, .uid = 990, .gid = 991 };
	struct jit_request *req = grant_req();
	struct jit_request lst = { .op = OP_LIST, .user = (char *)"bob", .state_mask = 3 };
	struct imsg *seeds[5] = {
		chan_request_msg(7, &peer, "helpdesk", req, 7200),
		chan_request_msg(8, &peer, "viewers", &lst, 0),
		chan_refused_msg(3, &peer, "helpdesk", req, JIT_EPOLICY, "ticket_pattern: x",
				 "ticket_pattern"),
		chan_ready_msg(65534, 65534),
		chan_configured_msg(2, false, "jitd.conf:9: member_attr: not an attribute name"),
	};
	uint8_t *frames[5];
	size_t lens[5];
	unsigned seed = 12345, decoded = 0;

	for (int i = 0; i < 5; i++) {
		frames[i] = imsg_frame(seeds[i], &lens[i]);
		if (corpus) {
			char *p = xasprintf("%s/seed-%d.bin", corpus, i);
			FILE *fp = fopen(p, "wb");
			if (fp) {
				fwrite(frames[i], 1, lens[i], fp);
				fclose(fp);
			}
			free(p);
		}
	}
	for (int iter = 0; iter < 20000; iter++) {
		int k = iter % 5;
		size_t len = lens[k];
		uint8_t *buf = xmalloc(len + 16);
		memcpy(buf, frames[k], len);
		seed = seed * 1103515245u + 12345u;
		int nmut = 1 + (int)(seed >> 28) % 4;
		for (int j = 0; j < nmut; j++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;
			switch ((seed >> 4) % 4) {
			case 0: buf[at] ^= (uint8_t)(1u << ((seed >> 20) % 8)); break;
			case 1: buf[at] = (uint8_t)(seed >> 16); break;
			case 2: len = at > 8 ? at : len; break; /* truncate */
			default: if (len < lens[k] + 16) buf[len++] = (uint8_t)seed; break;
			}
		}
		struct imsg_chan *ch = imsg_chan_new(-1, chan_from_listener);
		struct imsg *m;
		imsg_chan_feed(ch, buf, len);
		while (imsg_chan_next(ch, &m) == JIT_OK) {
			struct jit_peer p;
			struct jit_request *r = NULL;
			char *c = NULL;
			uint64_t conn;
			int64_t d;
			if (m->type == CHAN_REQUEST &&
			    chan_request_get(m, &conn, &p, &c, &r, &d) == JIT_OK) {
				struct imsg *again = chan_request_msg(conn, &p, c, r, d);
				CHECK(again->len == m->len && memcmp(again->data, m->data, m->len) == 0);
				imsg_free(again);
				decoded++;
			}
			uint64_t gen;
			bool ok;
			char *why = NULL;
			if (m->type == CHAN_CONFIGURED &&
			    chan_configured_get(m, &gen, &ok, &why) == JIT_OK) {
				CHECK(ok ? !why : why && *why);
				struct imsg *again = chan_configured_msg(gen, ok, why);
				CHECK(again->len == m->len && memcmp(again->data, m->data, m->len) == 0);
				imsg_free(again);
			}
			free(why);
			free(c);
			proto_request_free(r);
			imsg_free(m);
		}
		imsg_chan_free(ch);
		free(buf);
	}
	printf("mutations: %u of 20000 still decoded as requests\n", decoded);
	for (int i = 0; i < 5; i++) {
		imsg_free(seeds[i]);
		free(frames[i]);
	}
	proto_request_free(req);
}

int main(void)
{
	test_fields();
	test_framing();
	test_request();
	test_other_messages();
	test_configured();
	test_mutations(getenv("JITD_WRITE_CORPUS"));
	T_DONE();
}
