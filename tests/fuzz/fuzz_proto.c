/*
 * fuzz_proto.c - libFuzzer harness for proto_parse_request(), the parser
 * that faces every local client. Besides the sanitizers it checks the
 * parser's promises: the result or a refusal code, a clean message, an
 * untouched out-parameter on refusal, accepted fields within their limits,
 * and an error line that is valid JSON.
 *
 * Build and run: tests/fuzz/run proto (or make fuzz).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "proto.h"

static void check_str(const char *s, size_t max, int required)
{
	if (!s) {
		if (required)
			abort();
		return;
	}
	size_t n = strlen(s);
	if (n == 0 || n > max)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			abort();
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9f)
			abort(); /* C1 control */
	}
}

static void check_request(const struct jit_request *r)
{
	check_str(r->user, PROTO_MAX_NAME, r->op == OP_GRANT);
	check_str(r->group, PROTO_MAX_NAME, r->op == OP_GRANT);
	check_str(r->ticket, PROTO_MAX_TICKET, 0);
	check_str(r->reason, PROTO_MAX_REASON, 0);
	check_str(r->requested_by, PROTO_MAX_NAME, 0);
	check_str(r->approved_by, PROTO_MAX_NAME, 0);
	check_str(r->request_id, PROTO_MAX_ID, 0);
	check_str(r->reason_end, PROTO_MAX_REASON, 0);
	int needs_id = r->op == OP_COMPLETE || r->op == OP_REVOKE || r->op == OP_EXTEND ||
		       r->op == OP_SHOW;
	check_str(r->grant_id, PROTO_MAX_ID, needs_id);
	if (!needs_id && r->grant_id)
		abort();
	if (r->has_duration != (r->duration != 0) || r->duration < 0)
		abort();
	if (r->op == OP_EXTEND && !r->has_duration)
		abort();
	if (r->limit < 0 || r->limit > PROTO_MAX_LIST)
		abort();
	if (r->state_mask & ~((1u << GS__COUNT) - 1))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jit_request sentinel;
	struct jit_request *r = &sentinel;
	char msg[256];

	int rc = proto_parse_request((const char *)data, size, &r, msg, sizeof(msg));
	if (rc == JIT_OK) {
		if (r == &sentinel || r == NULL || msg[0] != '\0')
			abort();
		check_request(r);
		proto_request_free(r);
		return 0;
	}
	if ((rc != JIT_EBADREQ && rc != JIT_EUNKNOWNOP) || r != &sentinel || msg[0] == '\0')
		abort();
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			abort();

	char *line = proto_error_line(rc, msg);
	size_t n = strlen(line);
	if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1))
		abort();
	json_t *j = json_loadb(line, n, 0, NULL);
	if (!j)
		abort();
	json_decref(j);
	free(line);
	return 0;
}
