/*
 * policy.h - may this client do this operation on this group, for this
 * long? Pure decisions over the immutable config and the peer's kernel
 * credentials (SO_PEERCRED); the listener calls them before a request
 * reaches the engine.
 */
#ifndef JITD_POLICY_H
#define JITD_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"
#include "config.h"
#include "proto.h"

struct jit_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];       /* supplementary groups of the peer's user */
	int n_groups;
};

/* Fills the supplementary groups of p->uid (getgrouplist). Best effort. */
void policy_peer_groups(struct jit_peer *p);

/* The first clients entry matching the peer, or NULL (=> unauthorized). */
const struct jit_client_cfg *policy_client(const struct jit_config *cfg,
					   const struct jit_peer *p);

/* Does the client entry allow group name? */
bool policy_group_allowed(const struct jit_client_cfg *c, const char *group);

/*
 * Checks a parsed request against the config for client c (may be NULL):
 * op allowed, group known and allowed, duration within max_duration (a
 * grant without duration gets the group's default_duration: *duration is
 * set for grants). Returns JIT_OK or the refusal code with msg filled.
 */
int policy_check(const struct jit_config *cfg, const struct jit_client_cfg *c,
		 const struct jit_request *req, int64_t *duration, char *msg,
		 size_t msglen) JIT_WUR;

#endif
