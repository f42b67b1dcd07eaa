/*
 * fuzz_audit.c - libFuzzer harness for the audit-line parser and chain
 * verifier (audit_verify_line, behind `jitctl audit verify`), which reads
 * files an attacker may have edited. The input is split into lines and fed
 * to one verifier in order. If the first byte is odd, each line is first
 * given a valid prev/hash tail (SHA-256 chained from the line before), so
 * that the fuzzer also reaches the JSON and sequence checks behind the
 * hash check. Promises checked: JIT_OK, JIT_EBADREQ or AUDIT_HELD (a line
 * without a chain, judged with the next line), a printable message on each
 * refusal, given once, and no more torn lines than held ones.
 *
 * Build and run: tests/fuzz/run audit (or make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "audit.h"
#include "util.h"

#define FUZZ_MAX_INPUT 65536

static void hex_sha256(const char *prev, const char *content, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prev, 64) != 1 || EVP_DigestUpdate(ctx, content, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		abort();
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void check_msg(const char *msg)
{
	if (!msg[0])
		abort();
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			abort();
}

/* A held line judged bad comes with a printable message, once. */
static void took_held(struct audit_verifier *v)
{
	char msg[256] = "";
	if (audit_verifier_take_held(v, msg, sizeof(msg)) == JIT_OK)
		return;
	check_msg(msg);
	if (audit_verifier_take_held(v, msg, sizeof(msg)) != JIT_OK)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char prev[65];
	memset(prev, '0', 64);
	prev[64] = '\0';
	if (size == 0 || size > FUZZ_MAX_INPUT)
		return 0;
	int fixup = data[0] & 1;
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	struct audit_verifier *v = audit_verifier_new();
	int64_t held = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char msg[256] = "";
		char *line;
		size_t llen = len;
		if (fixup) {
			char hash[65];
			hex_sha256(prev, p, len, hash);
			line = xasprintf("%.*s,\"prev\":\"%s\",\"hash\":\"%s\"}", (int)len, p, prev,
					 hash);
			memcpy(prev, hash, sizeof(prev));
			llen = strlen(line);
		} else {
			/* the bytes as they are, NULs included, in an exact-size block */
			line = xmalloc(len + 1);
			memcpy(line, p, len);
			line[len] = '\0';
		}
		int rc = audit_verify_line(v, line, llen, msg, sizeof(msg));
		if (rc == AUDIT_HELD) {
			held++;
		} else if (rc != JIT_OK) {
			if (rc != JIT_EBADREQ)
				abort();
			check_msg(msg);
		}
		took_held(v);
		free(line);
		p += len + (nl ? 1 : 0);
	}
	char msg[256] = "";
	if (audit_verify_end(v, msg, sizeof(msg)) != JIT_OK)
		check_msg(msg);
	int64_t lines, bad, first, last;
	char h[65];
	audit_verifier_state(v, &lines, &bad, &first, &last, h);
	/* a torn line is one held line that a record accounted for; a line is
	 * torn or bad, never both */
	if (audit_verifier_torn(v) > held || bad + audit_verifier_torn(v) > lines)
		abort();
	audit_verifier_free(v);
	return 0;
}
