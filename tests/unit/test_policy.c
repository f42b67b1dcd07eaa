/*
 * test_policy.c - client matching (uid, gid, supplementary groups, first
 * match wins, no match = unauthorized), allowed ops and groups, default and
 * maximum durations.
 */
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "t.h"
#include "util.h"

static struct jit_request *req(enum jit_op op, const char *group, int64_t dur)
{
	struct jit_request *r = xcalloc(1, sizeof(*r));
	r->op = op;
	r->user = xstrdup("alice");
	r->group = xstrdup(group);
	if (dur) {
		r->has_duration = true;
		r->duration = dur;
	}
	return r;
}

int main(void)
{
	struct jit_group_cfg groups[2] = {
		{ .name = "domain-admins", .directory = "corp", .dn = "cn=da,dc=x",
		  .max_duration = 4 * 3600, .default_duration = 3600 },
		{ .name = "dba", .directory = "corp", .dn = "cn=dba,dc=x",
		  .max_duration = 600, .default_duration = 300 },
	};
	char *all[] = { "*" };
	char *only_dba[] = { "dba" };
	struct jit_client_cfg clients[3] = {
		{ .name = "root", .has_uid = true, .uid = 0, .groups = all, .n_groups = 1,
		  .ops = OP_ALL_MASK },
		{ .name = "helpdesk", .has_gid = true, .gid = 5000, .groups = only_dba,
		  .n_groups = 1, .ops = (1u << OP_GRANT) | (1u << OP_SHOW) },
		{ .name = "u1001", .has_uid = true, .uid = 1001, .groups = all, .n_groups = 1,
		  .ops = 1u << OP_STATUS },
	};
	struct jit_config cfg = { .groups = groups, .n_groups = 2, .clients = clients,
				  .n_clients = 3 };
	struct jit_peer root = { .uid = 0, .gid = 0 };
	struct jit_peer hd_primary = { .uid = 1500, .gid = 5000 };
	struct jit_peer hd_supp = { .uid = 1501, .gid = 100, .groups = { 7, 5000 }, .n_groups = 2 };
	struct jit_peer nobody = { .uid = 65534, .gid = 65534 };
	struct jit_peer u1001 = { .uid = 1001, .gid = 5000 };
	char msg[256];
	int64_t d = 0;

	CHECK(policy_client(&cfg, &root) == &clients[0]);
	CHECK(policy_client(&cfg, &hd_primary) == &clients[1]);
	CHECK(policy_client(&cfg, &hd_supp) == &clients[1]);
	CHECK(policy_client(&cfg, &nobody) == NULL);
	/* first match wins: uid 1001 has gid 5000 but the helpdesk entry comes first */
	CHECK(policy_client(&cfg, &u1001) == &clients[1]);

	struct jit_request *r = req(OP_GRANT, "domain-admins", 0);
	CHECK(policy_check(&cfg, NULL, r, &d, msg, sizeof(msg)) == JIT_EUNAUTH);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg)) == JIT_OK);
	CHECK(d == 3600);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_EUNAUTH);
	CHECK(strstr(msg, "domain-admins") != NULL);
	CHECK(policy_check(&cfg, &clients[2], r, &d, msg, sizeof(msg)) == JIT_EUNAUTH);
	proto_request_free(r);

	r = req(OP_GRANT, "dba", 600);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_OK);
	CHECK(d == 600);
	r->duration = 601;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_EDURMAX);
	proto_request_free(r);

	r = req(OP_GRANT, "no-such-group", 0);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg)) == JIT_EUNKGROUP);
	proto_request_free(r);

	r = req(OP_REVOKE, NULL, 0);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_EUNAUTH);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg)) == JIT_OK);
	r->op = OP_SHOW;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_OK);
	proto_request_free(r);

	r = req(OP_LIST, "domain-admins", 0);
	clients[1].ops |= 1u << OP_LIST;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_EUNAUTH);
	free(r->group);
	r->group = xstrdup("dba");
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg)) == JIT_OK);
	proto_request_free(r);

	CHECK(policy_group_allowed(&clients[0], "anything"));
	CHECK(policy_group_allowed(&clients[1], "dba"));
	CHECK(!policy_group_allowed(&clients[1], "domain-admins"));
	CHECK(!policy_group_allowed(NULL, "dba"));
	T_DONE();
}
