/*
 * policy.c - which client may do what. Pure decisions over the immutable
 * config and the peer's kernel credentials (SO_PEERCRED), made by the
 * listener before a request reaches the engine. Deny by default: a peer
 * matching no `clients` entry may do nothing.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "policy.h"

void policy_peer_groups(struct jit_peer *p)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = (int)(sizeof(p->groups) / sizeof(p->groups[0]));
	p->n_groups = 0;
	if (getpwuid_r(p->uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return;
	if (getgrouplist(pw.pw_name, p->gid, p->groups, &n) < 0)
		n = (int)(sizeof(p->groups) / sizeof(p->groups[0])); /* truncated: keep what fits */
	p->n_groups = n;
}

static bool peer_in_group(const struct jit_peer *p, gid_t gid)
{
	if (p->gid == gid)
		return true;
	for (int i = 0; i < p->n_groups; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

const struct jit_client_cfg *policy_client(const struct jit_config *cfg, const struct jit_peer *p)
{
	for (size_t i = 0; i < cfg->n_clients; i++) {
		const struct jit_client_cfg *c = &cfg->clients[i];
		if (c->has_uid && c->uid != p->uid)
			continue;
		if (c->has_gid && !peer_in_group(p, c->gid))
			continue;
		if (!c->has_uid && !c->has_gid)
			continue; /* config.c refuses this; never match an empty rule */
		return c;
	}
	return NULL;
}

bool policy_group_allowed(const struct jit_client_cfg *c, const char *group)
{
	if (!c || !group)
		return false;
	for (size_t i = 0; i < c->n_groups; i++)
		if (strcmp(c->groups[i], "*") == 0 || strcmp(c->groups[i], group) == 0)
			return true;
	return false;
}

int policy_check(const struct jit_config *cfg, const struct jit_client_cfg *c,
		 const struct jit_request *req, int64_t *duration, char *msg, size_t msglen)
{
	msg[0] = '\0';
	if (!c) {
		snprintf(msg, msglen, "no clients entry matches this peer");
		return JIT_EUNAUTH;
	}
	if (!(c->ops & (1u << req->op))) {
		snprintf(msg, msglen, "operation \"%s\" is not allowed for this client",
			 jit_op_name(req->op));
		return JIT_EUNAUTH;
	}
	if (req->op == OP_LIST && req->group && !policy_group_allowed(c, req->group)) {
		snprintf(msg, msglen, "this client may not see that group");
		return JIT_EUNAUTH;
	}
	if (req->op != OP_GRANT)
		return JIT_OK; /* grant-id ops are checked against the grant's group */
	const struct jit_group_cfg *g = config_group(cfg, req->group);
	if (!g) {
		/* unauthorized first would leak which groups exist only to those
		 * allowed "*"; an unknown name is unknown to everyone */
		snprintf(msg, msglen, "no managed group is named \"%.64s\"", req->group);
		return JIT_EUNKGROUP;
	}
	if (!policy_group_allowed(c, g->name)) {
		snprintf(msg, msglen, "this client may not grant group \"%s\"", g->name);
		return JIT_EUNAUTH;
	}
	int64_t d = req->has_duration ? req->duration : g->default_duration;
	if (d <= 0) {
		snprintf(msg, msglen, "duration must be positive");
		return JIT_EBADREQ;
	}
	if (d > g->max_duration) {
		snprintf(msg, msglen, "duration %llds exceeds max_duration %llds of group \"%s\"",
			 (long long)d, (long long)g->max_duration, g->name);
		return JIT_EDURMAX;
	}
	*duration = d;
	return JIT_OK;
}
