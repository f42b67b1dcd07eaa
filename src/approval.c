/*
 * approval.c - signed approvals (see approval.h). Trust: the signature
 * lets the approval system vouch for a request even when the host that
 * relays it (the helpdesk, or a compromised listener) is not trusted: it
 * covers every field that decides what is granted (or, for an extension,
 * which grant, by how much, and from which expiry). Security: the key is
 * read per check and wiped; comparisons are constant-time (CRYPTO_memcmp).
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "approval.h"
#include "log.h"
#include "secret.h"
#include "util.h"

#define SKEW_MAX 60 /* seconds approved_at may lie in the future */

static void field(struct strbuf *sb, const char *name, const char *v)
{
	sb_addf(sb, "%s=%s\n", name, v ? v : "");
}

char *approval_canonical(const struct jit_request *req)
{
	struct strbuf sb = { 0 };

	sb_addstr(&sb, "jitd-approval-v1\n");
	field(&sb, "user", req->user);
	field(&sb, "group", req->group);
	if (req->has_duration)
		sb_addf(&sb, "duration=%lld\n", (long long)req->duration);
	else
		field(&sb, "duration", NULL);
	field(&sb, "ticket", req->ticket);
	field(&sb, "reason", req->reason);
	field(&sb, "requested_by", req->requested_by);
	field(&sb, "approved_by", req->approved_by);
	field(&sb, "request_id", req->request_id);
	field(&sb, "approved_at", req->approved_at);
	return sb_steal(&sb);
}

char *approval_extend_canonical(const struct jit_request *req)
{
	struct strbuf sb = { 0 };

	sb_addstr(&sb, "jitd-extend-v1\n");
	field(&sb, "grant_id", req->grant_id);
	sb_addf(&sb, "duration=%lld\n", (long long)req->duration);
	field(&sb, "expires_at", req->expires_at);
	field(&sb, "approved_by", req->approved_by);
	field(&sb, "approved_at", req->approved_at);
	return sb_steal(&sb);
}

int approval_sign(const void *key, size_t keylen, const char *canonical, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (keylen > APPROVAL_KEY_MAX ||
	    !HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)canonical,
		  strlen(canonical), mac, &maclen) ||
	    maclen != 32)
		return JIT_EINTERNAL;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	wipe(mac, sizeof(mac));
	return JIT_OK;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int approval_check_sig(const void *key, size_t keylen, const struct jit_request *req,
		       char *msg, size_t msglen)
{
	unsigned char want[32], got[32];
	char hex[65];
	char *canon;
	int rc = JIT_EPOLICY;

	if (!req->approval_sig || strlen(req->approval_sig) != 64) {
		snprintf(msg, msglen, "approval_key_file: approval_sig must be 64 hex digits "
			 "(HMAC-SHA256 of the canonical %s)",
			 req->op == OP_EXTEND ? "extension" : "request");
		return JIT_EPOLICY;
	}
	for (int i = 0; i < 32; i++) {
		int hi = hexval((unsigned char)req->approval_sig[2 * i]);
		int lo = hexval((unsigned char)req->approval_sig[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(msg, msglen, "approval_key_file: approval_sig is not hexadecimal");
			return JIT_EPOLICY;
		}
		got[i] = (unsigned char)(hi << 4 | lo);
	}
	canon = req->op == OP_EXTEND ? approval_extend_canonical(req) : approval_canonical(req);
	if (approval_sign(key, keylen, canon, hex) != JIT_OK) {
		snprintf(msg, msglen, "approval_key_file: cannot compute the HMAC");
		goto out;
	}
	for (int i = 0; i < 32; i++)
		want[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	if (CRYPTO_memcmp(want, got, sizeof(want)) != 0) {
		snprintf(msg, msglen, "approval_key_file: approval_sig does not match the %s "
			 "(wrong key, or a field differs from what was approved)",
			 req->op == OP_EXTEND ? "extension" : "request");
		goto out;
	}
	rc = JIT_OK;
out:
	wipe(hex, sizeof(hex));
	wipe(want, sizeof(want));
	free(canon);
	return rc;
}

int approval_verify(const char *key_file, const struct jit_request *req, char *msg,
		    size_t msglen)
{
	char why[160];
	char *key = NULL;
	size_t len = 0;
	int rc;

	if (req->op == OP_EXTEND && (!req->approval_sig || !req->approved_at || !req->expires_at)) {
		snprintf(msg, msglen, "approval_key_file: this group extends a grant only with a "
			 "signed extension (approval_sig, approved_at and expires_at)");
		return JIT_EPOLICY;
	}
	if (req->op != OP_EXTEND && (!req->approval_sig || !req->approved_at || !req->request_id)) {
		snprintf(msg, msglen, "approval_key_file: this group needs a signed approval "
			 "(approval_sig, approved_at and request_id)");
		return JIT_EPOLICY;
	}
	if (secret_file_read(key_file, geteuid(), APPROVAL_KEY_MAX, &key, &len, why,
			     sizeof(why)) != JIT_OK) {
		/* jitd's fault, not the request's: the detail goes to the log, the
		 * client hears that the check could not be made (retryable) */
		log_err("approval_key_file %s: %s", key_file, why);
		snprintf(msg, msglen, "approval_key_file: jitd cannot read this group's approval "
			 "key (its log says why); the request was not checked");
		return JIT_EINTERNAL;
	}
	rc = approval_check_sig(key, len, req, msg, msglen);
	wipe(key, len);
	free(key);
	return rc;
}

int approval_fresh(const struct jit_request *req, int64_t max_age, int64_t now, char *msg,
		   size_t msglen)
{
	int64_t t = 0;

	if (!req->approved_at || parse_rfc3339(req->approved_at, &t) != JIT_OK) {
		snprintf(msg, msglen, "approval_max_age: approved_at must be a UTC time such as "
			 "\"2026-11-23T16:27:51Z\"");
		return JIT_EPOLICY;
	}
	if (t > now + SKEW_MAX) {
		snprintf(msg, msglen, "approval_max_age: approved_at %s is in the future",
			 req->approved_at);
		return JIT_EPOLICY;
	}
	if (now - t > max_age) {
		snprintf(msg, msglen, "approval_max_age: the approval of %s is %llds old; "
			 "at most %llds are accepted", req->approved_at, (long long)(now - t),
			 (long long)max_age);
		return JIT_EPOLICY;
	}
	return JIT_OK;
}
