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

#include <sys/types.h>
#include "err.h"

/* JIT_OK, or JIT_EINTERNAL (logged) if any step failed: the caller must
 * then exit, since it may hold privileges it should not. */
int privsep_drop(uid_t uid, gid_t gid, const char *what) JIT_WUR;

/* JIT_OK or JIT_EINTERNAL (logged). */
int privsep_harden(void) JIT_WUR;

/* chown path to uid:gid if it is not already theirs (logged on failure). */
int privsep_chown(const char *path, uid_t uid, gid_t gid) JIT_WUR;

#endif
