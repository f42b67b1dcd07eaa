/*
 * privsep.h - process identities: dropping root for good, and the
 * limits every jitd process puts on itself.
 *
 * privsep_drop() switches the calling process (all its threads) to uid/gid
 * with no supplementary groups but gid, then proves that root cannot be
 * regained. privsep_harden() makes the process non-dumpable (no core file,
 * no ptrace or /proc/PID/mem by the same uid) and forbids new privileges
 * (no set-uid execution).
 */
#ifndef JITD_PRIVSEP_H
#define JITD_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>
#include "err.h"

/* JIT_OK, or JIT_EINTERNAL (logged) if any step failed: the caller must
 * then exit, since it may hold privileges it should not. */
int privsep_drop(uid_t uid, gid_t gid, const char *what) JIT_WUR;
/* The same; with keep_kill (and root dropped for another uid), the process
 * keeps CAP_KILL alone, the only way the engine can kill its listener,
 * which runs as another unprivileged uid, when it breaks the rules. If the
 * bounding set lacks CAP_KILL it keeps nothing (logged). */
int privsep_drop_keep_kill(uid_t uid, gid_t gid, const char *what, bool keep_kill) JIT_WUR;

/* First thing in every thread the engine starts: a thread of a process
 * that dropped root holds no capability (the main thread alone keeps
 * CAP_KILL, privsep_drop_keep_kill; threads inherit their creator's). */
void privsep_thread_no_caps(void);

/* JIT_OK or JIT_EINTERNAL (logged). */
int privsep_harden(void) JIT_WUR;

/* chown path to uid:gid if it is not already theirs (logged on failure). */
int privsep_chown(const char *path, uid_t uid, gid_t gid) JIT_WUR;

#endif
