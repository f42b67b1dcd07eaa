/*
 * test_proto.c - the request parser accepts exactly the fields of
 * docs/protocol.md per op and refuses everything else with a short,
 * clean message; the answer builders produce one compact JSON line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "proto.h"
#include "t.h"

static char msg[256];

/* Parses a NUL-terminated line; *out NULL on refusal. */
static int parse(const char *line, struct jit_request **out)
{
	*out = NULL;
	return proto_parse_request(line, strlen(line), out, msg, sizeof(msg));
}

/* msg is non-empty printable ASCII. */
static int msg_clean(void)
{
	if (!msg[0])
		return 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			return 0;
	return 1;
}

/* Refused with rc and a clean message containing want. */
#define REFUSED(line, rc, want) refused(__LINE__, line, strlen(line), rc, want)
static void refused(int lineno, const char *line, size_t len, int rc, const char *want)
{
	struct jit_request *r = (struct jit_request *)&t_pass; /* must stay untouched */
	int got = proto_parse_request(line, len, &r, msg, sizeof(msg));
	if (got != rc || r != (struct jit_request *)&t_pass || !msg_clean() ||
	    !strstr(msg, want)) {
		t_fail++;
		fprintf(stderr, "FAIL line %d: rc %d (want %d), msg \"%s\" (want \"%s\")\n",
			lineno, got, rc, msg, want);
	} else {
		t_pass++;
	}
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_ops_accepted(void)
{
	struct jit_request *r;

	CHECK(parse("{\"v\":1,\"op\":\"grant\",\"user\":\"alice\",\"group\":\"admins\","
		    "\"duration\":\"1h30m\",\"ticket\":\"T-1\",\"reason\":\"fix db\","
		    "\"requested_by\":\"bob\",\"approved_by\":\"carol\",\"request_id\":\"k1\"}",
		    &r) == JIT_OK);
	if (r) {
		CHECK(r->op == OP_GRANT);
		CHECK_STR(r->user, "alice");
		CHECK_STR(r->group, "admins");
		CHECK(r->has_duration && r->duration == 5400);
		CHECK_STR(r->ticket, "T-1");
		CHECK_STR(r->reason, "fix db");
		CHECK_STR(r->requested_by, "bob");
		CHECK_STR(r->approved_by, "carol");
		CHECK_STR(r->request_id, "k1");
		CHECK(r->reason_end == NULL && r->grant_id == NULL);
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"grant\",\"user\":\"alice\",\"group\":\"admins\"}", &r) == JIT_OK);
	if (r) {
		CHECK(!r->has_duration && r->duration == 0 && r->ticket == NULL);
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"grant\",\"user\":\"a\",\"group\":\"g\",\"duration\":7200}", &r) == JIT_OK);
	CHECK(r && r->has_duration && r->duration == 7200);
	proto_request_free(r);

	CHECK(parse("{\"op\":\"complete\",\"grant_id\":\"g-1\",\"reason\":\"done\"}", &r) == JIT_OK);
	if (r) {
		CHECK(r->op == OP_COMPLETE);
		CHECK_STR(r->grant_id, "g-1");
		CHECK_STR(r->reason_end, "done");
		CHECK(r->reason == NULL);
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"revoke\",\"grant_id\":\"g-2\",\"reason\":\"abuse\",\"v\":1}", &r) == JIT_OK);
	if (r) {
		CHECK(r->op == OP_REVOKE);
		CHECK_STR(r->grant_id, "g-2");
		CHECK_STR(r->reason_end, "abuse");
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"revoke\",\"grant_id\":\"g-2\"}", &r) == JIT_OK);
	CHECK(r && r->reason_end == NULL && !r->force);
	proto_request_free(r);

	/* revoke --force: an optional boolean, revoke only. */
	CHECK(parse("{\"op\":\"revoke\",\"grant_id\":\"g-2\",\"force\":true}", &r) == JIT_OK);
	CHECK(r && r->force);
	proto_request_free(r);
	CHECK(parse("{\"op\":\"revoke\",\"grant_id\":\"g-2\",\"force\":false}", &r) == JIT_OK);
	CHECK(r && !r->force);
	proto_request_free(r);
	r = NULL;

	CHECK(parse("{\"op\":\"extend\",\"grant_id\":\"g-3\",\"duration\":\"30m\"}", &r) == JIT_OK);
	if (r) {
		CHECK(r->op == OP_EXTEND);
		CHECK_STR(r->grant_id, "g-3");
		CHECK(r->has_duration && r->duration == 1800);
	}
	proto_request_free(r);

	/* a signed extension (approval.h) and the expiry it applies to */
	CHECK(parse("{\"op\":\"extend\",\"grant_id\":\"g-3\",\"duration\":1800,"
		    "\"expires_at\":\"2026-11-23T16:00:00Z\",\"approved_by\":\"carol\","
		    "\"approved_at\":\"2026-11-23T15:50:12Z\",\"approval_sig\":\"ab12\"}",
		    &r) == JIT_OK);
	if (r) {
		CHECK_STR(r->expires_at, "2026-11-23T16:00:00Z");
		CHECK_STR(r->approved_by, "carol");
		CHECK_STR(r->approved_at, "2026-11-23T15:50:12Z");
		CHECK_STR(r->approval_sig, "ab12");
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"show\",\"grant_id\":\"g-4\"}", &r) == JIT_OK);
	CHECK(r && r->op == OP_SHOW && strcmp(r->grant_id, "g-4") == 0);
	proto_request_free(r);

	CHECK(parse("{\"op\":\"list\",\"user\":\"alice\",\"group\":\"admins\","
		    "\"state\":\"active\",\"limit\":10}", &r) == JIT_OK);
	if (r) {
		CHECK(r->op == OP_LIST);
		CHECK_STR(r->user, "alice");
		CHECK_STR(r->group, "admins");
		CHECK(r->state_mask == GS_BIT(GS_ACTIVE));
		CHECK(r->limit == 10);
	}
	proto_request_free(r);

	CHECK(parse("{\"op\":\"list\"}", &r) == JIT_OK);
	CHECK(r && r->state_mask == 0 && r->limit == 0 && r->user == NULL);
	proto_request_free(r);

	CHECK(parse("{\"op\":\"list\",\"state\":\"live\",\"limit\":1}", &r) == JIT_OK);
	CHECK(r && r->state_mask == GS_LIVE_MASK && r->limit == 1);
	proto_request_free(r);

	CHECK(parse("{\"op\":\"list\",\"state\":\"all\",\"limit\":10000}", &r) == JIT_OK);
	CHECK(r && r->state_mask == (1u << GS__COUNT) - 1 && r->limit == PROTO_MAX_LIST);
	proto_request_free(r);

	CHECK(parse("{\"op\":\"list\",\"state\":\"ending\"}", &r) == JIT_OK);
	CHECK(r && r->state_mask == GS_BIT(GS_ENDING));
	proto_request_free(r);

	CHECK(parse("  {\"op\" : \"status\"}  \r\n", &r) == JIT_OK);
	CHECK(r && r->op == OP_STATUS);
	proto_request_free(r);

	/* UTF-8 outside the control ranges is fine. */
	CHECK(parse("{\"op\":\"grant\",\"user\":\"j\\u00f6rg\",\"group\":\"caf\xc3\xa9\"}", &r) == JIT_OK);
	CHECK(r && strcmp(r->user, "j\xc3\xb6rg") == 0 && strcmp(r->group, "caf\xc3\xa9") == 0);
	proto_request_free(r);
}

/* The wire names agree with config.c's (used for a client's "ops"). */
static void test_op_names(void)
{
	char line[64];
	struct jit_request *r;
	for (int op = 0; op < OP__COUNT; op++) {
		snprintf(line, sizeof(line), "{\"op\":\"%s\"}", jit_op_name((enum jit_op)op));
		int rc = parse(line, &r);
		/* Refused only for a missing required field, never as unknown. */
		CHECK(rc == JIT_OK ? r->op == (enum jit_op)op : rc == JIT_EBADREQ && strstr(msg, "missing"));
		proto_request_free(r);
	}
}

static void test_structure_refused(void)
{
	REFUSED("", JIT_EBADREQ, "invalid JSON");
	REFUSED("not json", JIT_EBADREQ, "invalid JSON");
	REFUSED("{\"op\":\"status\"", JIT_EBADREQ, "invalid JSON");
	REFUSED("{\"op\":\"status\"} x", JIT_EBADREQ, "invalid JSON");
	REFUSED("{\"op\":\"status\"}{}", JIT_EBADREQ, "invalid JSON");
	REFUSED("[\"op\",\"status\"]", JIT_EBADREQ, "must be a JSON object");
	REFUSED("\"status\"", JIT_EBADREQ, "invalid JSON");
	REFUSED("42", JIT_EBADREQ, "invalid JSON");
	REFUSED("{\"op\":\"status\",\"x\":[1]}", JIT_EBADREQ, "nested");
	REFUSED("{\"op\":\"status\",\"x\":{}}", JIT_EBADREQ, "nested");
	REFUSED("{\"op\":\"status\",\"op\":\"status\"}", JIT_EBADREQ, "duplicate");
	/* Brackets inside strings are not nesting. */
	struct jit_request *r;
	CHECK(parse("{\"op\":\"grant\",\"user\":\"[{\\\"\",\"group\":\"]}\"}", &r) == JIT_OK);
	CHECK(r && strcmp(r->user, "[{\"") == 0);
	proto_request_free(r);

	/* NULs: raw in the buffer (anywhere), or escaped in a string. */
	static const char nul_end[] = "{\"op\":\"status\"}\0";
	refused(__LINE__, nul_end, sizeof(nul_end) - 1, JIT_EBADREQ, "NUL");
	static const char nul_mid[] = "{\"op\":\"sta\0tus\"}";
	refused(__LINE__, nul_mid, sizeof(nul_mid) - 1, JIT_EBADREQ, "NUL");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\\u0000b\",\"group\":\"g\"}", JIT_EBADREQ, "invalid JSON");

	REFUSED("{\"op\":\"grant\",\"user\":\"\xff\xfe\",\"group\":\"g\"}", JIT_EBADREQ, "invalid JSON");

	/* Deep nesting is refused before the parser recurses. */
	char *deep = repeat('[', 100000);
	REFUSED(deep, JIT_EBADREQ, "nested");
	free(deep);

	/* Over the size limit, even if it is otherwise valid. */
	size_t big = PROTO_MAX_LINE + 10;
	char *line = repeat(' ', big);
	memcpy(line, "{\"op\":\"status\"}", 15);
	REFUSED(line, JIT_EBADREQ, "too large");
	free(line);

	REFUSED("{\"op\":\"status\",\"v\":2}", JIT_EBADREQ, "version");
	REFUSED("{\"op\":\"status\",\"v\":\"1\"}", JIT_EBADREQ, "version");
	REFUSED("{\"op\":\"status\",\"v\":1.0}", JIT_EBADREQ, "version");
	REFUSED("{\"v\":1}", JIT_EBADREQ, "missing field \"op\"");
	REFUSED("{}", JIT_EBADREQ, "missing field \"op\"");
	REFUSED("{\"op\":7}", JIT_EBADREQ, "\"op\" must be a string");
	REFUSED("{\"op\":null}", JIT_EBADREQ, "\"op\" must be a string");
	REFUSED("{\"op\":\"destroy\"}", JIT_EUNKNOWNOP, "unknown op \"destroy\"");
	REFUSED("{\"op\":\"Grant\",\"user\":\"a\",\"group\":\"g\"}", JIT_EUNKNOWNOP, "unknown op");
	REFUSED("{\"op\":\"\"}", JIT_EUNKNOWNOP, "unknown op");
}

static void test_fields_refused(void)
{
	REFUSED("{\"op\":\"status\",\"user\":\"a\"}", JIT_EBADREQ, "unknown field \"user\" for op \"status\"");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\",\"group\":\"g\",\"grant_id\":\"x\"}", JIT_EBADREQ,
		"unknown field \"grant_id\"");
	REFUSED("{\"op\":\"complete\",\"grant_id\":\"g-1\",\"duration\":5}", JIT_EBADREQ,
		"unknown field \"duration\"");
	REFUSED("{\"op\":\"show\",\"grant_id\":\"g-1\",\"reason\":\"x\"}", JIT_EBADREQ,
		"unknown field \"reason\"");
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g-1\",\"duration\":5,\"ticket\":\"t\"}", JIT_EBADREQ,
		"unknown field \"ticket\"");
	REFUSED("{\"op\":\"list\",\"grant_id\":\"g-1\"}", JIT_EBADREQ, "unknown field \"grant_id\"");
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g-1\",\"duration\":5,\"request_id\":\"r\"}",
		JIT_EBADREQ, "unknown field \"request_id\"");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\",\"group\":\"g\",\"expires_at\":\"x\"}",
		JIT_EBADREQ, "unknown field \"expires_at\"");
	REFUSED("{\"op\":\"complete\",\"grant_id\":\"g-1\",\"force\":true}", JIT_EBADREQ,
		"unknown field \"force\"");
	REFUSED("{\"op\":\"revoke\",\"grant_id\":\"g-1\",\"force\":\"yes\"}", JIT_EBADREQ,
		"\"force\" must be true or false");
	REFUSED("{\"op\":\"revoke\",\"grant_id\":\"g-1\",\"force\":1}", JIT_EBADREQ,
		"\"force\" must be true or false");

	/* Required fields. */
	REFUSED("{\"op\":\"grant\",\"user\":\"a\"}", JIT_EBADREQ, "missing field \"group\"");
	REFUSED("{\"op\":\"grant\",\"group\":\"g\"}", JIT_EBADREQ, "missing field \"user\"");
	REFUSED("{\"op\":\"complete\"}", JIT_EBADREQ, "missing field \"grant_id\"");
	REFUSED("{\"op\":\"revoke\",\"reason\":\"r\"}", JIT_EBADREQ, "missing field \"grant_id\"");
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g-1\"}", JIT_EBADREQ, "missing field \"duration\"");
	REFUSED("{\"op\":\"show\"}", JIT_EBADREQ, "missing field \"grant_id\"");

	/* Types. */
	REFUSED("{\"op\":\"grant\",\"user\":5,\"group\":\"g\"}", JIT_EBADREQ, "\"user\" must be a string");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\",\"group\":true}", JIT_EBADREQ, "\"group\" must be a string");
	REFUSED("{\"op\":\"show\",\"grant_id\":null}", JIT_EBADREQ, "\"grant_id\" must be a string");
	REFUSED("{\"op\":\"list\",\"limit\":\"5\"}", JIT_EBADREQ, "\"limit\" must be an integer");
	REFUSED("{\"op\":\"list\",\"limit\":5.0}", JIT_EBADREQ, "\"limit\" must be an integer");
	REFUSED("{\"op\":\"list\",\"state\":1}", JIT_EBADREQ, "\"state\" must be a string");

	/* Empty strings and control characters. */
	REFUSED("{\"op\":\"grant\",\"user\":\"\",\"group\":\"g\"}", JIT_EBADREQ, "\"user\" must not be empty");
	REFUSED("{\"op\":\"show\",\"grant_id\":\"\"}", JIT_EBADREQ, "must not be empty");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\\nb\",\"group\":\"g\"}", JIT_EBADREQ, "\"user\" contains a control");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\",\"group\":\"g\",\"reason\":\"x\\u001by\"}", JIT_EBADREQ,
		"\"reason\" contains a control");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\x7f\",\"group\":\"g\"}", JIT_EBADREQ, "control");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\\u007f\",\"group\":\"g\"}", JIT_EBADREQ, "control");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\\u009b\",\"group\":\"g\"}", JIT_EBADREQ, "control");
	REFUSED("{\"op\":\"grant\",\"user\":\"a\x01\",\"group\":\"g\"}", JIT_EBADREQ, "invalid JSON");
}

/* pre + n bytes of 'x' + post: JIT_OK, JIT_EBADREQ for "too long", else 99. */
static int with_len(const char *pre, size_t n, const char *post)
{
	size_t a = strlen(pre), b = strlen(post);
	char *line = malloc(a + n + b + 1);
	memcpy(line, pre, a);
	memset(line + a, 'x', n);
	memcpy(line + a + n, post, b + 1);
	struct jit_request *r = NULL;
	int rc = proto_parse_request(line, strlen(line), &r, msg, sizeof(msg));
	if (rc != JIT_OK && !strstr(msg, "too long"))
		rc = 99;
	proto_request_free(r);
	free(line);
	return rc;
}

static void test_lengths(void)
{
	static const struct {
		const char *pre, *post;
		size_t max;
	} cases[] = {
		{ "{\"op\":\"grant\",\"user\":\"", "\",\"group\":\"g\"}", PROTO_MAX_NAME },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"", "\"}", PROTO_MAX_NAME },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"g\",\"ticket\":\"", "\"}", PROTO_MAX_TICKET },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"g\",\"reason\":\"", "\"}", PROTO_MAX_REASON },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"g\",\"requested_by\":\"", "\"}", PROTO_MAX_NAME },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"g\",\"approved_by\":\"", "\"}", PROTO_MAX_NAME },
		{ "{\"op\":\"grant\",\"user\":\"u\",\"group\":\"g\",\"request_id\":\"", "\"}", PROTO_MAX_ID },
		{ "{\"op\":\"complete\",\"grant_id\":\"", "\"}", PROTO_MAX_ID },
		{ "{\"op\":\"revoke\",\"grant_id\":\"g\",\"reason\":\"", "\"}", PROTO_MAX_REASON },
		{ "{\"op\":\"show\",\"grant_id\":\"", "\"}", PROTO_MAX_ID },
		{ "{\"op\":\"list\",\"user\":\"", "\"}", PROTO_MAX_NAME },
		{ "{\"op\":\"list\",\"group\":\"", "\"}", PROTO_MAX_NAME },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(with_len(cases[i].pre, cases[i].max, cases[i].post) == JIT_OK);
		CHECK(with_len(cases[i].pre, cases[i].max + 1, cases[i].post) == JIT_EBADREQ);
	}
	/* The limit counts bytes, not characters: 129 two-byte characters are too long. */
	char buf[600];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "{\"op\":\"grant\",\"group\":\"g\",\"user\":\"");
	for (int i = 0; i < 129; i++) {
		buf[o++] = (char)0xc3;
		buf[o++] = (char)0xa9;
	}
	memcpy(buf + o, "\"}", 3);
	REFUSED(buf, JIT_EBADREQ, "too long");
}

static void test_duration_state_limit(void)
{
	struct jit_request *r;
	static const struct {
		const char *val;
		int64_t want;   /* -1 = refused */
	} d[] = {
		{ "1", 1 }, { "90", 90 }, { "\"90\"", 90 }, { "\"90s\"", 90 }, { "\"15m\"", 900 },
		{ "\"2d\"", 172800 }, { "\"1w\"", 604800 }, { "\"1h30m\"", 5400 },
		{ "0", -1 }, { "-5", -1 }, { "\"0\"", -1 }, { "\"0s\"", -1 }, { "\"\"", -1 },
		{ "\"abc\"", -1 }, { "\"30m1h\"", -1 }, { "\"1h1h\"", -1 }, { "\"-1\"", -1 },
		{ "1.5", -1 }, { "true", -1 }, { "null", -1 }, { "\"1h\\n\"", -1 },
		{ "99999999999999", -1 }, { "\"99999999999999999999999s\"", -1 },
	};
	char line[256];
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		snprintf(line, sizeof(line), "{\"op\":\"extend\",\"grant_id\":\"g\",\"duration\":%s}", d[i].val);
		int rc = parse(line, &r);
		if (d[i].want < 0) {
			CHECK(rc == JIT_EBADREQ && r == NULL && strstr(msg, "duration") && msg_clean());
		} else {
			CHECK(rc == JIT_OK && r && r->duration == d[i].want);
		}
		if ((rc == JIT_OK) != (d[i].want >= 0))
			fprintf(stderr, "  duration %s: rc %d msg %s\n", d[i].val, rc, msg);
		proto_request_free(r);
	}
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g\",\"duration\":0}", JIT_EBADREQ, "between 1 and");
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g\",\"duration\":\"0\"}", JIT_EBADREQ, "greater than 0");
	REFUSED("{\"op\":\"extend\",\"grant_id\":\"g\",\"duration\":\"soon\"}", JIT_EBADREQ,
		"invalid duration \"soon\"");

	REFUSED("{\"op\":\"list\",\"state\":\"bogus\"}", JIT_EBADREQ, "unknown state \"bogus\"");
	REFUSED("{\"op\":\"list\",\"state\":\"LIVE\"}", JIT_EBADREQ, "unknown state");
	REFUSED("{\"op\":\"list\",\"state\":\"\"}", JIT_EBADREQ, "must not be empty");
	REFUSED("{\"op\":\"list\",\"limit\":0}", JIT_EBADREQ, "between 1 and 10000");
	REFUSED("{\"op\":\"list\",\"limit\":10001}", JIT_EBADREQ, "between 1 and 10000");
	REFUSED("{\"op\":\"list\",\"limit\":-1}", JIT_EBADREQ, "between 1 and 10000");

	static const char *states[] = { "pending", "active", "ending", "expired",
					"completed", "revoked", "failed" };
	for (int s = 0; s < GS__COUNT; s++) {
		snprintf(line, sizeof(line), "{\"op\":\"list\",\"state\":\"%s\"}", states[s]);
		CHECK(parse(line, &r) == JIT_OK && r && r->state_mask == GS_BIT(s));
		proto_request_free(r);
	}
}

/* Messages quote little of the input and never raw control bytes. */
static void test_messages(void)
{
	struct jit_request *r;
	char *name = repeat('k', 1000);
	char line[1100];
	snprintf(line, sizeof(line), "{\"op\":\"status\",\"%s\":1}", name);
	CHECK(parse(line, &r) == JIT_EBADREQ);
	CHECK(msg_clean() && strstr(msg, "kkkk...") && strlen(msg) < 100);
	CHECK(strstr(msg, name + 1000 - 40) == NULL);
	free(name);

	CHECK(parse("{\"op\":\"\\u001b[31mred\\r\\n\"}", &r) == JIT_EUNKNOWNOP);
	CHECK(msg_clean() && strstr(msg, "\\x1b[31mred\\x0d\\x0a"));

	CHECK(parse("{\"op\":\"gr\\\"ant\"}", &r) == JIT_EUNKNOWNOP);
	CHECK(msg_clean() && strstr(msg, "gr\\x22ant"));

	/* The parser's own message quotes raw input: still cleaned. */
	CHECK(parse("{\"op\":\"a\x01\x02\x1b\"}", &r) == JIT_EBADREQ);
	CHECK(msg_clean());
	CHECK(parse("{\"op\x80\xff\":1}", &r) == JIT_EBADREQ);
	CHECK(msg_clean());

	/* A tiny or absent message buffer is fine. */
	char small[8];
	CHECK(proto_parse_request("{}", 2, &r, small, sizeof(small)) == JIT_EBADREQ);
	CHECK(strlen(small) == 7);
	CHECK(proto_parse_request("{}", 2, &r, NULL, 0) == JIT_EBADREQ);
	/* Success leaves an empty message. */
	snprintf(msg, sizeof(msg), "stale");
	CHECK(parse("{\"op\":\"status\"}", &r) == JIT_OK && msg[0] == '\0');
	proto_request_free(r);
	proto_request_free(NULL);
}

static json_t *load(const char *line)
{
	return json_loads(line, 0, NULL);
}

static void test_grant_json(void)
{
	struct grant_rec g;
	memset(&g, 0, sizeof(g));
	g.id = "g-0123456789abcdef01234567";
	g.state = GS_ACTIVE;
	g.user = "alice";
	g.user_dn = "uid=alice,ou=people,dc=example,dc=com";
	g.group_name = "admins";
	g.group_dn = "cn=admins,ou=groups,dc=example,dc=com";
	g.directory = "corp";
	g.created_at = 1795451271;      /* 2026-11-23T16:27:51Z */
	g.expires_at = 1795451271 + 7200;
	g.duration = 7200;
	g.member_value = "secret-internal";
	g.pair_key = "internal";
	g.client = "helpdesk";

	json_t *o = proto_grant_json(&g);
	CHECK_STR(json_string_value(json_object_get(o, "grant_id")), g.id);
	CHECK_STR(json_string_value(json_object_get(o, "state")), "active");
	CHECK_STR(json_string_value(json_object_get(o, "user")), "alice");
	CHECK_STR(json_string_value(json_object_get(o, "user_dn")), g.user_dn);
	CHECK_STR(json_string_value(json_object_get(o, "group")), "admins");
	CHECK_STR(json_string_value(json_object_get(o, "group_dn")), g.group_dn);
	CHECK_STR(json_string_value(json_object_get(o, "directory")), "corp");
	CHECK_STR(json_string_value(json_object_get(o, "created_at")), "2026-11-23T16:27:51Z");
	CHECK_STR(json_string_value(json_object_get(o, "expires_at")), "2026-11-23T18:27:51Z");
	CHECK(json_integer_value(json_object_get(o, "duration")) == 7200);
	CHECK(json_is_false(json_object_get(o, "standing")));
	/* Optional fields absent; internal fields never exported. */
	static const char *absent[] = { "ticket", "reason", "requested_by", "approved_by",
					"request_id", "ended_at", "end_state", "last_error",
					"member_value", "pair_key", "client", "id", "group_name" };
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		CHECK(json_object_get(o, absent[i]) == NULL);
	CHECK(json_object_size(o) == 11);
	json_decref(o);

	g.state = GS_ENDING;
	g.end_state = GS_REVOKED;
	g.standing = true;
	g.ticket = "T-9";
	g.reason = "r";
	g.requested_by = "bob";
	g.approved_by = "carol";
	g.request_id = "k1";
	g.last_error = "bad \xff byte";
	o = proto_grant_json(&g);
	CHECK_STR(json_string_value(json_object_get(o, "state")), "ending");
	CHECK_STR(json_string_value(json_object_get(o, "end_state")), "revoked");
	CHECK(json_is_true(json_object_get(o, "standing")));
	CHECK_STR(json_string_value(json_object_get(o, "ticket")), "T-9");
	CHECK_STR(json_string_value(json_object_get(o, "reason")), "r");
	CHECK_STR(json_string_value(json_object_get(o, "requested_by")), "bob");
	CHECK_STR(json_string_value(json_object_get(o, "approved_by")), "carol");
	CHECK_STR(json_string_value(json_object_get(o, "request_id")), "k1");
	CHECK_STR(json_string_value(json_object_get(o, "last_error")), "bad ? byte");
	CHECK(json_object_get(o, "ended_at") == NULL);
	json_decref(o);

	g.state = GS_REVOKED;
	g.ended_at = 1795451271 + 60;
	o = proto_grant_json(&g);
	CHECK(json_object_get(o, "end_state") == NULL);
	CHECK_STR(json_string_value(json_object_get(o, "ended_at")), "2026-11-23T16:28:51Z");

	/* A whole answer: one compact line, grant members in spec order. */
	char *line = proto_ok_line("grant", o);
	CHECK(strncmp(line, "{\"ok\":true,\"grant\":{\"grant_id\":\"g-0123", 36) == 0);
	CHECK(strchr(line, '\n') == line + strlen(line) - 1);
	CHECK(strstr(line, "\"state\":\"revoked\",\"user\":\"alice\",\"user_dn\":") != NULL);
	free(line);
}

static void test_lines(void)
{
	char *l = proto_ok_line(NULL, NULL);
	CHECK_STR(l, "{\"ok\":true}\n");
	free(l);

	l = proto_ok_line("status", json_pack("{s:i,s:s}", "protocol", 1, "version", "0.1.0"));
	CHECK_STR(l, "{\"ok\":true,\"status\":{\"protocol\":1,\"version\":\"0.1.0\"}}\n");
	free(l);

	/* key NULL + object: members merged after "ok", which cannot be overridden. */
	l = proto_ok_line(NULL, json_pack("{s:[],s:i,s:b}", "grants", "count", 0, "ok", 0));
	CHECK_STR(l, "{\"ok\":true,\"grants\":[],\"count\":0}\n");
	free(l);

	l = proto_error_line(JIT_ENOTFOUND, NULL);
	CHECK_STR(l, "{\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no such grant\"}}\n");
	free(l);

	l = proto_error_line(JIT_EBADREQ, "field \"user\"\nnext\x01");
	CHECK_STR(l, "{\"ok\":false,\"error\":{\"code\":\"bad_request\","
		  "\"message\":\"field \\\"user\\\"\\nnext\\u0001\"}}\n");
	json_t *j = load(l);
	CHECK(j && json_is_false(json_object_get(j, "ok")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
		  "field \"user\"\nnext\x01");
	json_decref(j);
	free(l);

	/* Invalid UTF-8 in a message still gives valid JSON. */
	l = proto_error_line(JIT_EDIRREFUSED, "ldap: \xc3(");
	j = load(l);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
		  "directory_refused");
	json_decref(j);
	free(l);

	l = proto_error_line(JIT_EIO, NULL);
	CHECK(strstr(l, "\"code\":\"internal\"") != NULL);
	free(l);
	l = proto_error_line(JIT_ETOOBIG, NULL);
	CHECK(strstr(l, "\"code\":\"bad_request\"") != NULL);
	free(l);

	l = proto_dump_line(json_pack("{s:s,s:i,s:s}", "op", "show", "v", 1, "grant_id", "g-1"));
	CHECK_STR(l, "{\"op\":\"show\",\"v\":1,\"grant_id\":\"g-1\"}\n");
	/* What the client writes, the server reads. */
	struct jit_request *r = NULL;
	CHECK(l && proto_parse_request(l, strlen(l) - 1, &r, msg, sizeof(msg)) == JIT_OK);
	CHECK(r && r->op == OP_SHOW && strcmp(r->grant_id, "g-1") == 0);
	proto_request_free(r);
	free(l);
	CHECK(proto_dump_line(NULL) == NULL);
}

int main(void)
{
	test_ops_accepted();
	test_op_names();
	test_structure_refused();
	test_fields_refused();
	test_lengths();
	test_duration_state_limit();
	test_messages();
	test_grant_json();
	test_lines();
	T_DONE();
}
