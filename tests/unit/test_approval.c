/*
 * test_approval.c - signed approvals: the canonical form, HMAC-SHA256
 * against vectors computed with Python's hmac (the docs' client), the
 * signature check (wrong key, changed field, bad hex, case), and the age
 * window of approved_at; the same for the canonical form of an extension
 * (jitd-extend-v1), which a grant's signature never passes.
 */
#include <stdlib.h>
#include <string.h>
#include "approval.h"
#include "t.h"
#include "util.h"

static struct jit_request *full(void)
{
	struct jit_request *r = xcalloc(1, sizeof(*r));
	r->op = OP_GRANT;
	r->user = xstrdup("alice");
	r->group = xstrdup("domain-admins");
	r->has_duration = true;
	r->duration = 7200;
	r->ticket = xstrdup("CHG000123");
	r->reason = xstrdup("patch DC");
	r->requested_by = xstrdup("alice");
	r->approved_by = xstrdup("carol");
	r->request_id = xstrdup("cab-1");
	r->approved_at = xstrdup("2026-11-23T16:27:51Z");
	return r;
}

static struct jit_request *extension(void)
{
	struct jit_request *r = xcalloc(1, sizeof(*r));
	r->op = OP_EXTEND;
	r->grant_id = xstrdup("g-5f1c9e0a7b2d4c6e8f001a2b");
	r->has_duration = true;
	r->duration = 1800;
	r->expires_at = xstrdup("2026-11-23T16:00:00Z");
	r->approved_by = xstrdup("carol");
	r->approved_at = xstrdup("2026-11-23T15:50:12Z");
	return r;
}

/* The extension's canonical form, its HMAC (vectors from Python's hmac, as
 * in docs/policy.md's sign_extend), which fields it covers, and that the
 * forms of a grant and of an extension never stand for each other. */
static void extension_tests(void)
{
	static const char key[] = "k3y-material";
	struct jit_request *r = extension();
	char hex[65], msg[256];
	char *c = approval_extend_canonical(r);

	CHECK_STR(c, "jitd-extend-v1\ngrant_id=g-5f1c9e0a7b2d4c6e8f001a2b\nduration=1800\n"
		     "expires_at=2026-11-23T16:00:00Z\napproved_by=carol\n"
		     "approved_at=2026-11-23T15:50:12Z\n");
	CHECK(approval_sign(key, strlen(key), c, hex) == JIT_OK);
	CHECK_STR(hex, "467fd37916102ced61307893d79c559ce00f9f7ffe533a12ca46978f06a76812");
	free(c);
	r->approval_sig = xstrdup(hex);
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	CHECK(approval_check_sig("k3y-materiaL", strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strstr(msg, "does not match the extension") != NULL);
	/* every field is covered: the duration, the grant, the expiry it
	 * applies to (what makes a replay fail), the approver, the time */
	r->duration = 1801;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->duration = 1800;
	char **fields[] = { &r->grant_id, &r->expires_at, &r->approved_by, &r->approved_at };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char *saved = *fields[i];
		*fields[i] = xasprintf("%sx", saved);
		CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
		free(*fields[i]);
		*fields[i] = NULL;
		CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
		*fields[i] = saved;
	}
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	/* fields of a grant are not part of an extension's form */
	r->user = xstrdup("mallory");
	r->request_id = xstrdup("cab-9");
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	/* the same request signed in a grant's form does not pass as an
	 * extension, nor an extension's signature as a grant's */
	c = approval_canonical(r);
	CHECK(approval_sign(key, strlen(key), c, hex) == JIT_OK);
	free(c);
	free(r->approval_sig);
	r->approval_sig = xstrdup(hex);
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->op = OP_GRANT;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	c = approval_extend_canonical(r);
	CHECK(approval_sign(key, strlen(key), c, hex) == JIT_OK);
	free(c);
	free(r->approval_sig);
	r->approval_sig = xstrdup(hex);
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->op = OP_EXTEND;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	/* an extension needs approval_sig, approved_at and expires_at (not a
	 * request_id): checked before the key file is read */
	free(r->request_id);
	r->request_id = NULL;
	free(r->expires_at);
	r->expires_at = NULL;
	CHECK(approval_verify("/nonexistent/key", r, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strstr(msg, "signed extension") != NULL && strstr(msg, "expires_at") != NULL);
	r->expires_at = xstrdup("2026-11-23T16:00:00Z");
	/* got as far as the key file, which cannot be read: jitd's fault
	 * (internal), its path only in the log */
	CHECK(approval_verify("/nonexistent/key", r, msg, sizeof(msg)) == JIT_EINTERNAL);
	CHECK(strstr(msg, "approval_key_file") == msg && strstr(msg, "/nonexistent") == NULL);
	/* approved_at's window is the grant's */
	int64_t t = 0;
	CHECK(parse_rfc3339(r->approved_at, &t) == JIT_OK);
	CHECK(approval_fresh(r, 300, t + 300, msg, sizeof(msg)) == JIT_OK);
	CHECK(approval_fresh(r, 300, t + 301, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(approval_fresh(r, 300, t - 61, msg, sizeof(msg)) == JIT_EPOLICY);
	proto_request_free(r);

	/* an absent approved_by is an empty line */
	r = xcalloc(1, sizeof(*r));
	r->op = OP_EXTEND;
	r->grant_id = xstrdup("g-1");
	r->has_duration = true;
	r->duration = 60;
	r->expires_at = xstrdup("2026-11-23T16:00:00Z");
	r->approved_at = xstrdup("2026-11-23T15:50:12Z");
	c = approval_extend_canonical(r);
	CHECK_STR(c, "jitd-extend-v1\ngrant_id=g-1\nduration=60\nexpires_at=2026-11-23T16:00:00Z\n"
		     "approved_by=\napproved_at=2026-11-23T15:50:12Z\n");
	CHECK(approval_sign("k", 1, c, hex) == JIT_OK);
	CHECK_STR(hex, "7cc2ea1c4966ff1102e133c7b15f5b71a3ba7b8ca990b8a822b01f39d2b4b3ad");
	free(c);
	proto_request_free(r);
}

int main(void)
{
	static const char key[] = "k3y-material";
	struct jit_request *r = full();
	char hex[65], msg[256];
	char *c = approval_canonical(r);

	CHECK_STR(c, "jitd-approval-v1\nuser=alice\ngroup=domain-admins\nduration=7200\n"
		     "ticket=CHG000123\nreason=patch DC\nrequested_by=alice\napproved_by=carol\n"
		     "request_id=cab-1\napproved_at=2026-11-23T16:27:51Z\n");
	CHECK(approval_sign(key, strlen(key), c, hex) == JIT_OK);
	CHECK_STR(hex, "c8e3a960213490f190ac925a13c0d0d1fe8f1291b29517546f522fbaa3814d82");
	free(c);

	r->approval_sig = xstrdup(hex);
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	for (char *p = r->approval_sig; *p; p++) /* either case */
		*p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	/* another key */
	CHECK(approval_check_sig("k3y-materiaL", strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strstr(msg, "does not match") != NULL);
	/* each field is covered */
	r->duration = 7201;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->duration = 7200;
	r->has_duration = false;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->has_duration = true;
	char **fields[] = { &r->user, &r->group, &r->ticket, &r->reason, &r->requested_by,
			    &r->approved_by, &r->request_id, &r->approved_at };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char *saved = *fields[i];
		*fields[i] = xasprintf("%sx", saved);
		CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
		free(*fields[i]);
		*fields[i] = NULL; /* absent is not the same as present either */
		CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
		*fields[i] = saved;
	}
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_OK);
	/* malformed signatures */
	r->approval_sig[63] = 'g';
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	r->approval_sig[63] = '\0';
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	free(r->approval_sig);
	r->approval_sig = NULL;
	CHECK(approval_check_sig(key, strlen(key), r, msg, sizeof(msg)) == JIT_EPOLICY);
	proto_request_free(r);

	/* absent fields are empty lines */
	r = xcalloc(1, sizeof(*r));
	r->user = xstrdup("bob");
	r->group = xstrdup("g");
	r->request_id = xstrdup("r");
	r->approved_at = xstrdup("2026-11-23T16:27:51Z");
	c = approval_canonical(r);
	CHECK(approval_sign("k", 1, c, hex) == JIT_OK);
	CHECK_STR(hex, "84c0ea1ffd2ba221fdae6b4f43265a776e087064f7a4b27ef60337b8ac182584");
	free(c);

	/* approved_at: at most max_age old, at most 60 s ahead */
	int64_t t = 0;
	CHECK(parse_rfc3339("2026-11-23T16:27:51Z", &t) == JIT_OK);
	/* one spelling only: what strptime would also take is refused */
	int64_t t2 = 0;
	CHECK(parse_rfc3339("2026-11-23T16:27: 5Z", &t2) == JIT_EBADREQ);
	CHECK(parse_rfc3339("2026-11-23T16:27:60Z", &t2) == JIT_EBADREQ);
	CHECK(parse_rfc3339("2026-02-31T16:27:51Z", &t2) == JIT_EBADREQ);
	CHECK(parse_rfc3339("2026-11-23T16:27:51z", &t2) == JIT_EBADREQ);
	CHECK(parse_rfc3339("2028-02-29T00:00:00Z", &t2) == JIT_OK);
	CHECK(t2 == 1835395200);
	CHECK(approval_fresh(r, 300, t + 300, msg, sizeof(msg)) == JIT_OK);
	CHECK(approval_fresh(r, 300, t + 301, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strstr(msg, "approval_max_age") != NULL);
	CHECK(approval_fresh(r, 300, t - 60, msg, sizeof(msg)) == JIT_OK);
	CHECK(approval_fresh(r, 300, t - 61, msg, sizeof(msg)) == JIT_EPOLICY);
	free(r->approved_at);
	r->approved_at = xstrdup("2026-11-23 16:27:51");
	CHECK(approval_fresh(r, 300, t, msg, sizeof(msg)) == JIT_EPOLICY);
	proto_request_free(r);

	extension_tests();
	T_DONE();
}
