/*
 * err.h - the one error vocabulary of jitd.
 *
 * Every fallible function returns JIT_OK (0) or a negative JIT_E* code.
 * Results travel through out-parameters that are set only on success.
 * Each code maps to a stable wire string (the "code" of a refusal in the
 * socket protocol, see docs/protocol.md) and a default human message.
 * The wire strings are a public contract: never rename one.
 */
#ifndef JITD_ERR_H
#define JITD_ERR_H

enum jit_err {
	JIT_OK = 0,
	JIT_EBADREQ = -1,        /* bad_request */
	JIT_EUNKNOWNOP = -2,     /* unknown_op */
	JIT_EUNAUTH = -3,        /* unauthorized */
	JIT_EUNKGROUP = -4,      /* unknown_group */
	JIT_EUNKUSER = -5,       /* unknown_user */
	JIT_EDURMAX = -6,        /* duration_exceeds_max */
	JIT_ENOTFOUND = -7,      /* not_found */
	JIT_EDIRUNAVAIL = -8,    /* directory_unavailable */
	JIT_EINTERNAL = -9,      /* internal */
	JIT_ENOTACTIVE = -10,    /* not_active */
	JIT_EDIRREFUSED = -11,   /* directory_refused */
	JIT_EBUSY = -12,         /* busy */
	JIT_ESHUTDOWN = -13,     /* shutting_down */
	JIT_EPOLICY = -14,       /* policy_denied */
	JIT_ERATELIMIT = -15,    /* rate_limited */
	JIT_EEXISTS = -16,       /* internal only: unique key already present */
	JIT_ECONFIG = -17,       /* internal only: configuration problem */
	JIT_EIO = -18,           /* internal only: store / file I/O failed */
	JIT_ETOOBIG = -19,       /* bad_request: input over its size limit */
	JIT_EERR_MIN = -19
};

/* The stable wire code ("bad_request", ...). Never NULL; unknown -> "internal". */
const char *jit_err_code(int err);
/* A default human-readable message. Never NULL. */
const char *jit_err_message(int err);

#if defined(__GNUC__)
#define JIT_WUR __attribute__((warn_unused_result))
#define JIT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define JIT_NORETURN __attribute__((noreturn))
#else
#define JIT_WUR
#define JIT_PRINTF(f, a)
#define JIT_NORETURN
#endif

#endif
