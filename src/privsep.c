/*
 * privsep.c - dropping privileges and hardening a process (privsep.h).
 * Security: a failed step is an error, never a warning: a process that
 * believes it is unprivileged but is not is worse than one that stops.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "privsep.h"

int privsep_drop(uid_t uid, gid_t gid, const char *what)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		log_err("%s: cannot switch to uid %lu gid %lu: %s", what, (unsigned long)uid,
			(unsigned long)gid, strerror(errno));
		return JIT_EINTERNAL;
	}
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
		log_err("%s: the switch to uid %lu did not take", what, (unsigned long)uid);
		return JIT_EINTERNAL;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_err("%s: root could be regained after the switch", what);
		return JIT_EINTERNAL;
	}
	return JIT_OK;
}

int privsep_harden(void)
{
	struct rlimit no_core = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &no_core) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		log_err("cannot harden the process: %s", strerror(errno));
		return JIT_EINTERNAL;
	}
	return JIT_OK;
}

int privsep_chown(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return JIT_OK;
		log_err("%s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	if (S_ISLNK(st.st_mode)) {
		log_err("%s is a symbolic link; refusing to change its owner", path);
		return JIT_EIO;
	}
	if ((st.st_uid == uid && st.st_gid == gid) || lchown(path, uid, gid) == 0)
		return JIT_OK;
	log_err("cannot give %s to uid %lu: %s", path, (unsigned long)uid, strerror(errno));
	return JIT_EIO;
}
