/*
 * approval.h - signed approvals: a group with `approval_key_file` grants
 * only requests that carry `approval_sig`, an HMAC-SHA256 (libcrypto) made
 * with that key by the approval system over the canonical form of the
 * request, and an `approved_at` no older than `approval_max_age`.
 *
 * The canonical form (docs/policy.md, "Signed approvals") is the bytes
 *
 *   jitd-approval-v1\n
 *   user=<user>\n group=<group>\n duration=<seconds, or empty>\n
 *   ticket=<...>\n reason=<...>\n requested_by=<...>\n approved_by=<...>\n
 *   request_id=<...>\n approved_at=<as sent>\n
 *
 * (no spaces; an absent field is empty). Fields cannot hold a newline
 * (proto.c refuses control characters), so the form is unambiguous.
 * approval_sig is the MAC in hex (64 digits, either case).
 *
 * An extension (`extend` of a grant of such a group) is signed over its
 * own form, whose first line differs (a grant's signature never passes
 * as an extension's, nor the other way round):
 *
 *   jitd-extend-v1\n
 *   grant_id=<...>\n duration=<seconds added>\n
 *   expires_at=<the grant's expires_at the approver saw, as sent>\n
 *   approved_by=<...>\n approved_at=<as sent>\n
 *
 * The engine applies it only while the grant still has that expires_at:
 * once applied (expires_at moved) the same signed extension no longer
 * matches the grant, so a replay is refused without storing anything.
 *
 * The key is the content of approval_key_file (one trailing newline
 * dropped), read for each verification and wiped after it: it lives only
 * in the engine process, never in the listener's.
 */
#ifndef JITD_APPROVAL_H
#define JITD_APPROVAL_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "proto.h"

#define APPROVAL_KEY_MAX 1024   /* bytes of key */

/* The canonical form of grant request req (heap string). */
char *approval_canonical(const struct jit_request *req);

/* The canonical form of extension req (op extend; heap string). */
char *approval_extend_canonical(const struct jit_request *req);

/* HMAC-SHA256 of canonical with key, as 64 lowercase hex digits + NUL. */
int approval_sign(const void *key, size_t keylen, const char *canonical, char out[65]) JIT_WUR;

/* Does req->approval_sig match req (its canonical form for req->op) with
 * key? JIT_OK, or JIT_EPOLICY (msg). */
int approval_check_sig(const void *key, size_t keylen, const struct jit_request *req,
		       char *msg, size_t msglen) JIT_WUR;

/* Reads key_file (a secret file of the running uid) and checks the
 * signature (a grant needs approval_sig, approved_at and request_id, an
 * extension approval_sig, approved_at and expires_at). JIT_OK,
 * JIT_EPOLICY with msg (a missing or wrong signature), or JIT_EINTERNAL
 * with msg when the key file cannot be read (the reason is logged, msg
 * names no path or mode). */
int approval_verify(const char *key_file, const struct jit_request *req, char *msg,
		    size_t msglen) JIT_WUR;

/* Is req->approved_at within max_age before now (and at most 60 s after
 * it, for clock skew)? JIT_OK, or JIT_EPOLICY with msg. */
int approval_fresh(const struct jit_request *req, int64_t max_age, int64_t now, char *msg,
		   size_t msglen) JIT_WUR;

#endif
