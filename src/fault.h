/*
 * fault.h - named crash points for fault-injection tests.
 *
 * A build configured with --enable-fault-injection compiles every
 * FAULT_POINT("name") in the daemon into a call that may kill the process
 * with SIGKILL right there; any other build compiles it to nothing, so a
 * production jitd carries no trace of it. Tests use it to crash jitd at the
 * exact steps that matter (between a store commit and the directory write
 * it authorises, in both orders) rather than hoping a kill from outside
 * lands there.
 *
 * Arming, read once at start by fault_init() from the environment:
 *   JITD_FAULT="name:P,name:@N,prefix.*:P,..."
 *       name:P    at each pass through point `name`, die with probability P
 *                 (a decimal in [0, 1], e.g. 0.25)
 *       name:@N   die at the N-th pass through `name` (N >= 1)
 *       name:sleep=MS      pause that thread MS milliseconds at each pass
 *       name:sleep=MS@N    ... at the N-th pass only (to widen a race window
 *                 deterministically; no kill)
 *       a name ending in '*' arms every point it is a prefix of ("*" = all)
 *   JITD_FAULT_SEED=N   seeds the random draws (default: time and pid)
 *   JITD_FAULT_INFLIGHT_MAX=N  lowers the scheduler's cap on grants in
 *                 flight (engine.c, INFLIGHT_MAX), to test what happens at it
 *   JITD_FAULT_QUEUE_MAX=N  lowers the cap on client jobs waiting in one
 *                 directory's queue (engine.c, QUEUE_MAX), likewise
 *   JITD_FAULT_OUT_TOTAL_MAX=N  lowers the listener's cap on answers unsent
 *                 to all clients together (server.c, OUT_TOTAL_MAX)
 *   JITD_FAULT_OVERDUE_AFTER=S  lowers the 60 s after which status counts
 *                 an active grant past its expiry in expiries_overdue
 * Before dying, the process writes "jitd: fault injected at NAME" to stderr
 * (one write(2), no locks) so a test can count what it caused; before a
 * pause, "jitd: fault pause MS ms at NAME".
 *
 * Points whose names begin with "fail." are failure points, used as
 * `if (FAULT_FAIL("fail.x") || step() != JIT_OK)`: where an arm hits them
 * (P or @N as above), the step fails as if the OS or SQLite had refused it,
 * and stderr gets "jitd: fault fail at NAME"; nothing dies. A prefix arm
 * ("grant.*", "*") never reaches them: name them, or arm "fail.*".
 *
 * A crash point whose death must come in the middle of a step (a write cut
 * short) is used as `if (FAULT_CUT("x")) { part of the step; FAULT_DIE("x"); }`:
 * FAULT_CUT is true where the arm hits (it pauses instead for sleep=MS, as
 * FAULT_POINT does), and FAULT_DIE kills as FAULT_POINT would have.
 *
 * The points are the table fault_names in fault.c; a name in JITD_FAULT that
 * matches none is refused at start, and a FAULT_POINT whose name is missing
 * from the table aborts, so the table, the code and the tests stay in step.
 */
#ifndef JITD_FAULT_H
#define JITD_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

#ifdef JITD_FAULT_INJECTION
void fault_point(const char *name);
bool fault_fail(const char *name);
bool fault_cut(const char *name);
_Noreturn void fault_die(const char *name);
#define FAULT_POINT(name) fault_point(name)
#define FAULT_FAIL(name) fault_fail(name)
#define FAULT_CUT(name) fault_cut(name)
#define FAULT_DIE(name) fault_die(name)
#else
#define FAULT_POINT(name) ((void)0)
#define FAULT_FAIL(name) false
#define FAULT_CUT(name) false
#define FAULT_DIE(name) ((void)0)
#endif

/* True in a build configured with --enable-fault-injection. */
bool fault_compiled_in(void);

/* A cap lowered by a test: the environment's `name` (1 .. dflt) in a build
 * with fault injection (JITD_FAULT_INFLIGHT_MAX and the others above), else
 * dflt. */
int64_t fault_env_cap(const char *name, int64_t dflt);

/*
 * Reads JITD_FAULT and JITD_FAULT_SEED. JIT_OK (also when unset, and always
 * in a build without fault injection: there *armed is false and a set
 * JITD_FAULT is reported in msg as ignored), or JIT_ECONFIG with msg saying
 * what is wrong. *armed: whether any point is armed.
 */
int fault_init(bool *armed, char *msg, size_t msglen) JIT_WUR;

/* One parsed JITD_FAULT entry. */
struct fault_arm {
	char name[64];          /* point name or prefix (without the '*') */
	bool prefix;            /* name ended in '*' */
	uint32_t threshold;     /* die if a 32-bit draw < threshold (probability mode) */
	bool always;            /* probability 1 */
	int64_t nth;            /* > 0: act at that pass only (then threshold unused) */
	int64_t sleep_ms;       /* > 0: pause this long instead of dying */
};

/*
 * Parses a JITD_FAULT value into at most max entries (pure; used by
 * fault_init and unit tests). Names are checked against the table.
 * JIT_OK and *n, or JIT_ECONFIG with msg (arms[] is scratch space then).
 */
int fault_parse(const char *spec, struct fault_arm *arms, size_t max, size_t *n, char *msg,
		size_t msglen) JIT_WUR;

/* The known point names, NULL-terminated (for tests and error messages). */
extern const char *const fault_names[];

#endif
