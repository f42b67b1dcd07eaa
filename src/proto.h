/*
 * proto.h - socket protocol v1 (docs/protocol.md): one JSON object per line
 * each way. Pure functions; the request parser faces untrusted bytes from
 * any local client and is fuzzed (tests/fuzz/fuzz_proto.c).
 *
 * proto_parse_request() turns one line into a validated struct jit_request:
 * known op, only the fields that op takes, each of the right JSON type and
 * within its length limit, no NUL or control characters in strings, JSON
 * nesting depth 1. Anything else is JIT_EBADREQ (JIT_EUNKNOWNOP for an
 * unknown "op") with a message naming the field.
 */
#ifndef JITD_PROTO_H
#define JITD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "err.h"
#include "config.h"
#include "store.h"

#define PROTO_VERSION 1
/* Field length limits (bytes). */
#define PROTO_MAX_NAME 256      /* user, group, requested_by, approved_by */
#define PROTO_MAX_TICKET 256
#define PROTO_MAX_REASON 1024
#define PROTO_MAX_ID 128        /* grant_id, request_id */
#define PROTO_MAX_SIG 128       /* approval_sig */
#define PROTO_MAX_TIME 32       /* approved_at */
#define PROTO_MAX_LIST 10000    /* list "limit" */
/* Longest line proto_parse_request() looks at (the listener's
 * max_request_size is at most this); longer is JIT_EBADREQ. */
#define PROTO_MAX_LINE (1024 * 1024)

/* A new field here must also be carried between the listener and the
 * engine processes: see channel.c (a static assertion there reminds). */
struct jit_request {
	enum jit_op op;
	char *user;             /* grant; list filter */
	char *group;            /* grant; list filter */
	bool has_duration;
	int64_t duration;       /* grant (optional), extend (required): seconds, > 0 */
	char *ticket, *reason, *requested_by; /* grant, optional */
	char *approved_by;      /* grant, extend: optional */
	char *request_id;       /* grant, optional */
	char *approval_sig;     /* grant, extend: optional: HMAC-SHA256 hex (approval.h) */
	char *approved_at;      /* grant, extend: optional: RFC 3339 UTC, part of what is signed */
	char *expires_at;       /* extend, optional: the grant's expires_at it applies to */
	char *grant_id;         /* complete, revoke, extend, show */
	char *reason_end;       /* complete/revoke: optional "reason" */
	bool force;             /* revoke: close an ending grant without the directory */
	unsigned state_mask;    /* list: GS_BIT()s from "state" ("all" = every state); 0 = default */
	int64_t limit;          /* list: 0 = default */
};
void proto_request_free(struct jit_request *r); /* NULL-safe */

/*
 * Parses one request line (without its '\n'; len bytes, may contain NULs,
 * which are refused). On success *out is a new request. On failure returns
 * JIT_EBADREQ or JIT_EUNKNOWNOP and writes a message into msg (never
 * containing more than a short excerpt of the input).
 */
int proto_parse_request(const char *line, size_t len, struct jit_request **out,
			char *msg, size_t msglen) JIT_WUR;

/* The "grant" object of an answer (fields as in docs/protocol.md). New reference. */
json_t *proto_grant_json(const struct grant_rec *r);

/* Serialises {"ok":true, key: value} (value reference stolen; key may be NULL
 * for a bare {"ok":true}) as one line ending in '\n'. Heap string.
 * With key NULL and value an object, value's members follow "ok" (for
 * answers with several members: {"ok":true,"grants":[...],"count":N},
 * {"ok":true,"grant":{...},"duplicate":true}). */
char *proto_ok_line(const char *key, json_t *value);
/* {"ok":false,"error":{"code":...,"message":...}}\n. message NULL = default. */
char *proto_error_line(int err, const char *message);
/* proto_error_line for a store access that failed with rc: busy for
 * JIT_EBUSY, else internal with message what. */
char *proto_store_error_line(int rc, const char *what);

/* Builds a request line for a client (jitctl): obj reference stolen.
 * Heap string ending in '\n'; NULL if obj is NULL. */
char *proto_dump_line(json_t *obj);

#endif
