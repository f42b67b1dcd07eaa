/*
 * privsep.c - dropping privileges and hardening a process (privsep.h).
 * Security: a failed step is an error, never a warning: a process that
 * believes it is unprivileged but is not is worse than one that stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "log.h"
#include "privsep.h"

/* The capability sets of this thread become permitted = effective = want
 * (a mask of the first 32 capabilities), inheritable empty. */
static int set_caps(uint32_t want)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { .effective = want, .permitted = want } };
	return (int)syscall(SYS_capset, &h, d);
}

/* Whether this thread's permitted and effective sets hold nothing beyond
 * the mask allowed (of the first 32 capabilities). */
static bool caps_within(uint32_t allowed)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	return ((d[0].permitted | d[0].effective | d[0].inheritable) & ~allowed) == 0 &&
	       (d[1].permitted | d[1].effective | d[1].inheritable) == 0;
}

void privsep_thread_no_caps(void)
{
	if (geteuid() == 0 || caps_within(0))
		return;
	if (set_caps(0) != 0)
		log_err("cannot clear this thread's capabilities: %s", strerror(errno));
}

int privsep_drop(uid_t uid, gid_t gid, const char *what)
{
	return privsep_drop_keep_kill(uid, gid, what, false);
}

int privsep_drop_keep_kill(uid_t uid, gid_t gid, const char *what, bool keep_kill)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	const uint32_t kill_bit = 1u << CAP_KILL;

	keep_kill = keep_kill && uid != 0 && geteuid() == 0;
	if (keep_kill && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
		log_warn("%s: cannot keep CAP_KILL: %s", what, strerror(errno));
		keep_kill = false;
	}
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		log_err("%s: cannot switch to uid %lu gid %lu: %s", what, (unsigned long)uid,
			(unsigned long)gid, strerror(errno));
		return JIT_EINTERNAL;
	}
	if (keep_kill) {
		/* PR_SET_KEEPCAPS kept every permitted capability across the
		 * switch: all but CAP_KILL go now, or jitd stops. Not in the
		 * bounding set (an older unit file): none is kept. */
		bool kept = set_caps(kill_bit) == 0;
		if (!kept) {
			log_warn("%s: cannot keep CAP_KILL (%s): a listener that breaks the "
				 "channel's rules will stop jitd instead of being killed; add "
				 "CAP_KILL to the unit's CapabilityBoundingSet", what,
				 strerror(errno));
			if (set_caps(0) != 0) {
				log_err("%s: cannot clear capabilities: %s", what, strerror(errno));
				return JIT_EINTERNAL;
			}
		}
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 ||
		    !caps_within(kept ? kill_bit : 0)) {
			log_err("%s: capabilities other than CAP_KILL remain after the switch",
				what);
			return JIT_EINTERNAL;
		}
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
	/* Security: the file as it is, by a descriptor (O_PATH: no read of
	 * it, no open of a FIFO), so that what is checked is what is given
	 * away. The state directory is the user's after the first start: a
	 * file there replaced by a link to a file of root's must not become
	 * the user's. */
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return JIT_OK;
		log_err("%s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	int rc = JIT_EIO;
	if (fstat(fd, &st) != 0) {
		log_err("%s: %s", path, strerror(errno));
	} else if (st.st_uid == uid && st.st_gid == gid) {
		rc = JIT_OK; /* nothing to give away */
	} else if (!S_ISDIR(st.st_mode) && !(S_ISREG(st.st_mode) && st.st_nlink == 1)) {
		log_err("%s is not a directory nor a regular file with one name; refusing to change "
			"its owner", path);
	} else if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) == 0) {
		rc = JIT_OK;
	} else {
		log_err("cannot give %s to uid %lu: %s", path, (unsigned long)uid, strerror(errno));
	}
	close(fd);
	return rc;
}
