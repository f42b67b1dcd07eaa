/*
 * err.c - the table that maps each JIT_E* code to its wire string and message.
 * Pure; no trust boundary.
 */
#include <stddef.h>
#include "err.h"

struct err_entry {
	int err;
	const char *code;
	const char *message;
};

static const struct err_entry err_table[] = {
	{ JIT_OK, "ok", "success" },
	{ JIT_EBADREQ, "bad_request", "malformed request" },
	{ JIT_EUNKNOWNOP, "unknown_op", "unknown operation" },
	{ JIT_EUNAUTH, "unauthorized", "not permitted for this client" },
	{ JIT_EUNKGROUP, "unknown_group", "no such managed group" },
	{ JIT_EUNKUSER, "unknown_user", "user not found in the directory" },
	{ JIT_EDURMAX, "duration_exceeds_max", "duration exceeds the group's max_duration" },
	{ JIT_ENOTFOUND, "not_found", "no such grant" },
	{ JIT_EDIRUNAVAIL, "directory_unavailable", "the directory cannot be reached" },
	{ JIT_EINTERNAL, "internal", "internal error" },
	{ JIT_ENOTACTIVE, "not_active", "the grant is not active" },
	{ JIT_EDIRREFUSED, "directory_refused", "the directory refused the change" },
	{ JIT_EBUSY, "busy", "server busy, try again" },
	{ JIT_ESHUTDOWN, "shutting_down", "the daemon is shutting down" },
	{ JIT_EPOLICY, "policy_denied", "refused by policy" },
	{ JIT_ERATELIMIT, "rate_limited", "too many requests" },
	{ JIT_EEXISTS, "internal", "already exists" },
	{ JIT_ECONFIG, "internal", "configuration error" },
	{ JIT_EIO, "internal", "I/O error" },
	{ JIT_ETOOBIG, "bad_request", "request too large" },
};

static const struct err_entry *err_find(int err)
{
	for (unsigned i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].err == err)
			return &err_table[i];
	return NULL;
}

const char *jit_err_code(int err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->code : "internal";
}

const char *jit_err_message(int err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->message : "internal error";
}
