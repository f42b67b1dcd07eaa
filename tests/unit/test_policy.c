/*
 * test_policy.c - client matching (uid, gid, supplementary groups, first
 * match wins, no match = unauthorized), allowed ops and groups, default and
 * maximum durations; every group rule and the client's max_duration refused
 * and accepted at its boundary, naming the rule; deny_users by name and DN,
 * and against the user an active grant holds (extend); DN comparison.
 */
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include "dirrules.h"
#include "policy.h"
#include "t.h"
#include "util.h"

/* Counts the group reads of policy.c: this definition takes the place of
 * the C library's for the code linked into this program. */
static int grouplist_reads;
int getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	int (*real)(const char *, gid_t, gid_t *, int *) =
		(int (*)(const char *, gid_t, gid_t *, int *))dlsym(RTLD_NEXT, "getgrouplist");
	grouplist_reads++;
	return real ? real(user, group, groups, ngroups) : -1;
}

/* getgrgid_r for TEST_GID: as a name service that is down (EIO), one
 * that finds it, or the C library's answer. */
#define TEST_GID ((gid_t)4242)
static enum { GR_REAL, GR_DOWN, GR_FOUND, GR_HUGE } gr_mode;
int getgrgid_r(gid_t gid, struct group *grp, char *buf, size_t buflen, struct group **result)
{
	int (*real)(gid_t, struct group *, char *, size_t, struct group **) =
		(int (*)(gid_t, struct group *, char *, size_t, struct group **))dlsym(RTLD_NEXT,
											 "getgrgid_r");
	if (gid != TEST_GID || gr_mode == GR_REAL)
		return real ? real(gid, grp, buf, buflen, result) : ENOENT;
	*result = NULL;
	if (gr_mode == GR_DOWN)
		return EIO;
	if (gr_mode == GR_HUGE)
		return ERANGE; /* more members than any buffer jitd offers */
	if (buflen < 2 * sizeof(char *) + 2)
		return ERANGE;
	char **mem = (char **)(void *)buf;
	mem[0] = NULL;
	grp->gr_mem = mem;
	grp->gr_name = buf + sizeof(char *);
	strcpy(grp->gr_name, "t");
	grp->gr_passwd = grp->gr_name;
	grp->gr_gid = gid;
	*result = grp;
	return 0;
}

/* getgrnam_r for "bigteam": a group whose entry needs a 100 KB buffer
 * (thousands of members), and "endless", larger than any buffer. */
int getgrnam_r(const char *name, struct group *grp, char *buf, size_t buflen,
	       struct group **result)
{
	int (*real)(const char *, struct group *, char *, size_t, struct group **) =
		(int (*)(const char *, struct group *, char *, size_t,
			 struct group **))dlsym(RTLD_NEXT, "getgrnam_r");
	*result = NULL;
	if (strcmp(name, "endless") == 0)
		return ERANGE;
	if (strcmp(name, "bigteam") != 0)
		return real ? real(name, grp, buf, buflen, result) : ENOENT;
	if (buflen < 100 * 1024)
		return ERANGE;
	char **mem = (char **)(void *)buf;
	mem[0] = NULL;
	grp->gr_mem = mem;
	grp->gr_name = buf + sizeof(char *);
	strcpy(grp->gr_name, "bigteam");
	grp->gr_passwd = grp->gr_name;
	grp->gr_gid = 4343;
	*result = grp;
	return 0;
}

/* nss_lookup grows its buffer while the name service answers ERANGE
 * (regression: socket_group read a group into 4 KB and called a group
 * with many members one that "does not exist"), and keeps "found",
 * "not there" and "failed" apart. */
static void test_nss_lookup(void)
{
	struct nss_entry e;
	bool found = true;

	CHECK(nss_lookup(NSS_GROUP_BY_NAME, "bigteam", 0, &e, &found) == 0);
	CHECK(found && e.id == 4343);
	CHECK_STR(e.name, "bigteam");
	free(e.name);
	CHECK(nss_lookup(NSS_GROUP_BY_NAME, "endless", 0, &e, &found) == ERANGE);
	CHECK(!found && e.name == NULL);
	CHECK(nss_lookup(NSS_GROUP_BY_NAME, "no-such-group-jitd", 0, &e, &found) == 0);
	CHECK(!found);
	CHECK(nss_lookup(NSS_USER_BY_ID, NULL, 0, &e, &found) == 0);
	CHECK(found && e.id == 0 && e.gid == 0);
	CHECK_STR(e.name, "root");
	free(e.name);
	CHECK(nss_lookup(NSS_USER_BY_NAME, "root", 0, &e, &found) == 0);
	CHECK(found && e.id == 0);
	free(e.name);
	gr_mode = GR_DOWN;
	CHECK(nss_lookup(NSS_GROUP_BY_ID, NULL, TEST_GID, &e, &found) == EIO);
	CHECK(!found);
	gr_mode = GR_FOUND;
	CHECK(nss_lookup(NSS_GROUP_BY_ID, NULL, TEST_GID, &e, &found) == 0);
	CHECK(found && e.id == TEST_GID);
	free(e.name);
	gr_mode = GR_REAL;
}

/* A name service that is down is not "not a member" (regression:
 * getgrouplist() leaves a failing source out without saying so, and a
 * clients entry for a group of that source was skipped for a later,
 * broader one). */
static void test_groups_source_down(void)
{
	struct jit_client_cfg cl[2] = {
		{ .name = "narrow", .has_gid = true, .gid = TEST_GID, .gid_by_name = true },
		{ .name = "broad", .has_gid = true, .gid = 0 },
	};
	struct jit_config c = { .serial = 101, .clients = cl, .n_clients = 2 };
	struct jit_peer p = { .uid = 0, .gid = 0 };

	gr_mode = GR_FOUND; /* the group is there, root is not in it */
	policy_peer_groups(&p, &c);
	CHECK(!p.groups_unknown);
	CHECK(policy_client(&c, &p) == &cl[1]);
	gr_mode = GR_DOWN; /* its source is down: root may be in it */
	struct jit_peer q = { .uid = 0, .gid = 0 };
	policy_peer_groups(&q, &c);
	CHECK(q.groups_unknown);
	CHECK(policy_client(&c, &q) == NULL);
	/* a group too large to read is there: no name-service failure */
	gr_mode = GR_HUGE;
	struct jit_peer h = { .uid = 0, .gid = 0 };
	policy_peer_groups(&h, &c);
	CHECK(!h.groups_unknown);
	CHECK(policy_client(&c, &h) == &cl[1]);
	/* the cache checks again for another configuration */
	struct jit_peer r = { .uid = 0, .gid = 0 };
	gr_mode = GR_FOUND;
	policy_peer_groups_cached(&r, &c, 5000000);
	CHECK(!r.groups_unknown);
	struct jit_config c2 = c;
	c2.serial = 102; /* another load, wherever it sits in memory */
	gr_mode = GR_DOWN;
	struct jit_peer r2 = { .uid = 0, .gid = 0 };
	policy_peer_groups_cached(&r2, &c2, 5000000);
	CHECK(r2.groups_unknown);
	/* and for another process gid of the same uid (regression: a process
	 * running with the narrow entry's gid, whose groups count as known
	 * whatever the name service says, answered for the uid's other
	 * processes, which then matched the broad entry) */
	struct jit_config c3 = c;
	c3.serial = 103;
	struct jit_peer s1 = { .uid = 0, .gid = TEST_GID }, s2 = { .uid = 0, .gid = 0 };
	policy_peer_groups_cached(&s1, &c3, 6000000);
	CHECK(!s1.groups_unknown);
	CHECK(policy_client(&c3, &s1) == &cl[0]);
	policy_peer_groups_cached(&s2, &c3, 6000001);
	CHECK(s2.groups_unknown);
	CHECK(policy_client(&c3, &s2) == NULL);
	gr_mode = GR_REAL;
}

/* The engine's cached reads: one per uid and POLICY_GROUPS_TTL_MS. */
static void test_groups_cached(void)
{
	struct jit_peer a = { .uid = 0, .gid = 0 }, b = { .uid = 0, .gid = 0 };
	int before = grouplist_reads;

	policy_peer_groups_cached(&a, NULL, 1000000);
	CHECK(grouplist_reads == before + 1);
	policy_peer_groups_cached(&b, NULL, 1000000 + POLICY_GROUPS_TTL_MS - 1);
	CHECK(grouplist_reads == before + 1);
	CHECK(b.n_groups == a.n_groups && !b.groups_unknown &&
	      memcmp(a.groups, b.groups, sizeof(a.groups)) == 0);
	policy_peer_groups_cached(&b, NULL, 1000000 + POLICY_GROUPS_TTL_MS);
	CHECK(grouplist_reads == before + 2);
	/* another uid is read on its own */
	struct jit_peer c = { .uid = 1, .gid = 1 };
	policy_peer_groups_cached(&c, NULL, 1000000 + POLICY_GROUPS_TTL_MS);
	CHECK(grouplist_reads == before + 3);
	/* a clock that went back (never: monotonic) is not trusted */
	policy_peer_groups_cached(&b, NULL, 999000);
	CHECK(grouplist_reads == before + 4);
}

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

static void set(char **field, const char *v)
{
	free(*field);
	*field = xstrdup(v);
}

/* Expects refusal code `code` naming `rule`, or JIT_OK (rule NULL). */
static void expect(const struct jit_config *cfg, const struct jit_client_cfg *c,
		   const struct jit_request *r, int code, const char *rule, int line)
{
	char msg[256];
	const char *got = "x";
	int64_t d = -1;
	int rc = policy_check(cfg, c, r, &d, msg, sizeof(msg), &got);
	if (rc != code || (rule ? !got || strcmp(got, rule) != 0 : got != NULL) ||
	    (rule && code != JIT_EUNAUTH && !strstr(msg, rule))) {
		fprintf(stderr, "line %d: rc %d (want %d) rule %s (want %s) msg %s\n", line, rc,
			code, got ? got : "NULL", rule ? rule : "NULL", msg);
		CHECK(!"policy_check");
	} else {
		CHECK(1);
	}
}
#define EXPECT(code, rule) expect(&cfg, &cl, r, code, rule, __LINE__)

static void test_rules(void)
{
	regex_t re;
	char *deny[] = { "administrator", "cn=svc-backup,ou=people,dc=x" };
	char *all[] = { "*" };
	struct jit_group_cfg g = {
		.name = "da", .directory = "corp", .dn = "cn=da,dc=x", .max_duration = 7200,
		.default_duration = 3600, .min_duration = 600, .require_ticket = true,
		.ticket_pattern = "^(INC|CHG)[0-9]{5,}$", .ticket_re = &re, .require_reason = true,
		.require_approver = true, .forbid_self_approval = true,
		.deny_users = { .v = deny, .n = 2, .set = true },
	};
	struct jit_client_cfg cl = { .name = "hd", .has_uid = true, .uid = 0, .groups = all,
				     .n_groups = 1, .ops = OP_ALL_MASK, .max_duration = 0 };
	struct jit_config cfg = { .groups = &g, .n_groups = 1, .clients = &cl, .n_clients = 1 };
	struct jit_request *r = req(OP_GRANT, "da", 3600);
	int64_t d = 0;
	char msg[256];
	const char *rule;

	CHECK(regcomp(&re, g.ticket_pattern, REG_EXTENDED | REG_NOSUB) == 0);
	set(&r->ticket, "INC12345");
	set(&r->reason, "restore");
	set(&r->requested_by, "alice");
	set(&r->approved_by, "carol");
	EXPECT(JIT_OK, NULL);

	/* min_duration 600: 600 passes, 599 is refused */
	r->duration = 600;
	EXPECT(JIT_OK, NULL);
	r->duration = 599;
	EXPECT(JIT_EPOLICY, "min_duration");
	/* max_duration 7200: 7200 passes, 7201 is duration_exceeds_max */
	r->duration = 7200;
	EXPECT(JIT_OK, NULL);
	r->duration = 7201;
	EXPECT(JIT_EDURMAX, "max_duration");
	/* no duration: default_duration */
	r->has_duration = false;
	CHECK(policy_check(&cfg, &cl, r, &d, msg, sizeof(msg), &rule) == JIT_OK && d == 3600);
	/* the client's own cap: equal passes, one more is refused, and a
	 * default above the cap is refused rather than shortened */
	cl.max_duration = 1800;
	EXPECT(JIT_EDURMAX, "clients.max_duration");
	r->has_duration = true;
	r->duration = 1800;
	EXPECT(JIT_OK, NULL);
	r->duration = 1801;
	EXPECT(JIT_EDURMAX, "clients.max_duration");
	cl.max_duration = 0;
	r->duration = 3600;

	/* require_ticket and ticket_pattern (anchored ERE) */
	free(r->ticket);
	r->ticket = NULL;
	EXPECT(JIT_EPOLICY, "require_ticket");
	set(&r->ticket, "INC1234");
	EXPECT(JIT_EPOLICY, "ticket_pattern");
	set(&r->ticket, "CHG00001");
	EXPECT(JIT_OK, NULL);
	set(&r->ticket, "xINC12345");
	EXPECT(JIT_EPOLICY, "ticket_pattern");
	set(&r->ticket, "INC12345 ");
	EXPECT(JIT_EPOLICY, "ticket_pattern");
	g.require_ticket = false; /* the pattern still applies to a ticket given */
	EXPECT(JIT_EPOLICY, "ticket_pattern");
	free(r->ticket);
	r->ticket = NULL;
	EXPECT(JIT_OK, NULL);
	g.require_ticket = true;
	set(&r->ticket, "INC12345");

	free(r->reason);
	r->reason = NULL;
	EXPECT(JIT_EPOLICY, "require_reason");
	set(&r->reason, "restore");

	free(r->approved_by);
	r->approved_by = NULL;
	EXPECT(JIT_EPOLICY, "require_approver");
	/* forbid_self_approval: the user, or the requester, case-blind */
	set(&r->approved_by, "alice");
	EXPECT(JIT_EPOLICY, "forbid_self_approval");
	set(&r->approved_by, "ALICE");
	EXPECT(JIT_EPOLICY, "forbid_self_approval");
	set(&r->requested_by, "bob");
	set(&r->approved_by, "bob");
	EXPECT(JIT_EPOLICY, "forbid_self_approval");
	set(&r->approved_by, "carol");
	EXPECT(JIT_OK, NULL);
	/* the name as the directory matches it: blanks around and runs */
	set(&r->user, " alice\t");
	set(&r->approved_by, "Alice ");
	EXPECT(JIT_EPOLICY, "forbid_self_approval");
	set(&r->user, "alice");
	set(&r->approved_by, "carol");
	g.forbid_self_approval = false;
	set(&r->approved_by, "alice");
	EXPECT(JIT_OK, NULL);
	g.forbid_self_approval = true;
	set(&r->approved_by, "carol");

	/* deny_users by name (case-blind); a DN entry needs the directory */
	set(&r->user, "Administrator");
	EXPECT(JIT_EPOLICY, "deny_users");
	set(&r->user, "administrator2");
	EXPECT(JIT_OK, NULL);
	set(&r->user, "svc-backup");
	EXPECT(JIT_OK, NULL);

	/* client entry refusals carry their rule too */
	EXPECT(JIT_OK, NULL);
	cl.ops = 1u << OP_STATUS;
	EXPECT(JIT_EUNAUTH, "clients.ops");
	cl.ops = OP_ALL_MASK;
	CHECK(policy_check(&cfg, NULL, r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	CHECK_STR(rule, "clients");

	/* extensions count toward max_duration: the total is checked */
	CHECK(policy_check_extend(&g, &cl, 7200, msg, sizeof(msg), &rule) == JIT_OK);
	CHECK(policy_check_extend(&g, &cl, 7201, msg, sizeof(msg), &rule) == JIT_EDURMAX);
	CHECK_STR(rule, "max_duration");
	cl.max_duration = 3600;
	CHECK(policy_check_extend(&g, &cl, 3600, msg, sizeof(msg), &rule) == JIT_OK);
	CHECK(policy_check_extend(&g, &cl, 3601, msg, sizeof(msg), &rule) == JIT_EDURMAX);
	CHECK_STR(rule, "clients.max_duration");
	proto_request_free(r);
	regfree(&re);
}

static void test_dirrules(void)
{
	char *deny[] = { "Administrator", "CN=svc-backup, OU=People,dc=x" };
	struct jit_dir_cfg dir = { .name = "corp", .member_attr = "member" };
	struct jit_group_cfg g = { .name = "da", .directory = "corp", .dir_index = 0,
				   .max_duration = 60, .default_duration = 60 };
	struct jit_config cfg = { .dirs = &dir, .n_dirs = 1, .groups = &g, .n_groups = 1 };
	struct policy_dirrules *pr;
	char msg[512];

	CHECK(policy_dirrules_new(&cfg, &g, NULL) == NULL); /* no rule: nothing to copy */
	g.deny_users = (struct jit_strlist){ .v = deny, .n = 2, .set = true };
	g.eligible_group = "cn=eligible,dc=x";
	g.max_active_per_user = 2;
	pr = policy_dirrules_new(&cfg, &g, NULL);
	CHECK(pr != NULL);
	CHECK_STR(pr->eligible_dn, "cn=eligible,dc=x");
	CHECK_STR(pr->eligible_attr, "member");
	CHECK(pr->max_active == 2);
	CHECK(policy_user_denied(pr, "alice", "uid=alice,ou=people,dc=x", "alice", msg,
				 sizeof(msg)) == JIT_OK);
	/* an alias name that resolves to the denied uid */
	CHECK(policy_user_denied(pr, "admin-alias", "uid=administrator,ou=people,dc=x",
				 "administrator", msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strstr(msg, "deny_users") != NULL);
	/* a DN entry matches the resolved DN whatever the case and spacing */
	CHECK(policy_user_denied(pr, "backup", "cn=svc-backup,ou=people,dc=x", NULL, msg,
				 sizeof(msg)) == JIT_EPOLICY);
	CHECK(policy_user_denied(pr, "backup", "cn=svc-backup2,ou=people,dc=x", NULL, msg,
				 sizeof(msg)) == JIT_OK);
	policy_dirrules_free(pr);
	policy_dirrules_free(NULL);

	CHECK(policy_dn_equal("cn=a,dc=x", "CN=A, DC=X"));
	CHECK(policy_dn_equal("cn = a , dc=x", "cn=a,dc=x"));
	CHECK(!policy_dn_equal("cn=a b,dc=x", "cn=ab,dc=x"));
	CHECK(!policy_dn_equal("cn=a,dc=x", "cn=a,dc=xy"));
	CHECK(!policy_dn_equal("cn=a,dc=x", NULL));
	CHECK(!policy_dn_equal("cn=a\\,b,dc=x", "cn=a,b,dc=x"));
	/* the directory's spelling of an escape, non-ASCII case, RDN order */
	CHECK(policy_dn_equal("cn=Smith\\, John,ou=people,dc=x", "cn=Smith\\2C John,ou=people,dc=x"));
	CHECK(policy_dn_equal("cn=\"Smith, John\",dc=x", "CN=smith\\2c JOHN,dc=x"));
	CHECK(policy_dn_equal("uid=\xc3\x89mile,dc=x", "uid=\xc3\xa9mile,dc=x"));
	CHECK(policy_dn_equal("cn=a+uid=b,dc=x", "uid=b+cn=a,dc=x"));
	CHECK(!policy_dn_equal("cn=a+uid=b,dc=x", "cn=a,dc=x"));
	CHECK(!policy_dn_equal("cn=Smith\\2C John,dc=x", "cn=Smith\\2C Joh,dc=x"));
	CHECK(!policy_dn_equal("uid=\xc4\xb0van,dc=x", "uid=ivan,dc=x"));
	CHECK(!policy_dn_equal("cn=a  b,dc=x", "cn=a b,dc=x"));
}

/* deny_users against an active grant's user, for an extension: its name,
 * its DN, and its uid when the member attribute is memberUid. */
static void test_extend_denied(void)
{
	char *deny[] = { "Administrator", "CN=svc-backup, OU=People,dc=x", "ops-uid" };
	struct jit_group_cfg g = { .name = "da", .max_duration = 60 };
	struct grant_rec r = { .user = "alice", .user_dn = "uid=alice,ou=people,dc=x",
			       .member_attr = "member", .member_value = "uid=alice,ou=people,dc=x" };
	char msg[512];

	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_OK); /* no deny_users */
	g.deny_users = (struct jit_strlist){ .v = deny, .n = 3, .set = true };
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_OK);
	r.user = "ADMINISTRATOR"; /* by name, case-blind */
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_EPOLICY);
	CHECK(strncmp(msg, "deny_users:", 11) == 0 && strstr(msg, "not extended") != NULL);
	r.user = "backup"; /* by DN, case and spaces aside */
	r.user_dn = "cn=svc-backup,ou=people,dc=x";
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_EPOLICY);
	r.user_dn = "cn=svc-backup2,ou=people,dc=x";
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_OK);
	/* the uid counts only where it is the member value (memberUid) */
	r.member_value = "ops-uid";
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_OK);
	r.member_attr = "memberUid";
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_EPOLICY);
	r.user_dn = NULL; /* no DN recorded: only names can match */
	r.member_value = "other";
	CHECK(policy_extend_denied(&g, &r, msg, sizeof(msg)) == JIT_OK);
}

static void test_name_eq(void)
{
	CHECK(policy_name_eq("alice", "ALICE"));
	CHECK(policy_name_eq(" alice", "alice"));
	CHECK(policy_name_eq("alice  ", "\talice"));
	CHECK(policy_name_eq("alice  smith", "Alice Smith"));
	CHECK(policy_name_eq("   ", ""));
	CHECK(!policy_name_eq("alice smith", "alicesmith"));
	CHECK(!policy_name_eq("alice", "alice2"));
	CHECK(!policy_name_eq("alic", "alice"));
	CHECK(!policy_name_eq("alice", NULL));
	CHECK(!policy_name_eq(NULL, NULL));
	/* case over all of Unicode (regression: deny_users "jürgen" let
	 * "JÜRGEN" through, whom the directory finds as jürgen) */
	CHECK(policy_name_eq("j\xc3\xbcrgen", "J\xc3\x9cRGEN"));
	CHECK(policy_name_eq("\xce\xb1\xce\xbb\xce\xb5\xce\xbe", "\xce\x91\xce\x9b\xce\x95\xce\x9e"));
	CHECK(policy_name_eq("\xe2\x84\xaa" "arl", "karl")); /* Kelvin sign: errs to equal */
	CHECK(!policy_name_eq("j\xc3\xbcrgen", "jurgen"));
	CHECK(!policy_name_eq("j\xc3\xbcrgen", "j\xc3\xbdrgen"));
	/* malformed UTF-8 is compared byte for byte, never equal to a letter */
	CHECK(policy_name_eq("a\xff", "A\xff"));
	CHECK(!policy_name_eq("a\xff", "a\xc3\xbf"));
	CHECK(!policy_name_eq("\xc3", "\xc3\xbc"));
}

/* forbid_self_approval against the uid the directory returns */
static void test_dirrules_self(void)
{
	struct jit_dir_cfg dir = { .name = "corp", .member_attr = "member" };
	struct jit_group_cfg g = { .name = "da", .directory = "corp", .dir_index = 0,
				   .max_duration = 60, .default_duration = 60 };
	struct jit_config cfg = { .dirs = &dir, .n_dirs = 1, .groups = &g, .n_groups = 1 };
	struct dir_user u = { .dn = "uid=alice,ou=people,dc=x", .uid = "alice" };
	char msg[512];
	const char *rule = NULL;

	CHECK(policy_dirrules_new(&cfg, &g, "alice") == NULL); /* no rule asks */
	g.forbid_self_approval = true;
	CHECK(policy_dirrules_new(&cfg, &g, NULL) == NULL);    /* no approver */
	struct policy_dirrules *pr = policy_dirrules_new(&cfg, &g, " Alice");
	CHECK(pr != NULL && pr->eligible_dn == NULL);
	/* the request named the user "alice-alias"; its entry's uid is alice */
	CHECK(dirrules_check(NULL, pr, "alice-alias", &u, NULL, msg, sizeof(msg), &rule) ==
	      JIT_EPOLICY);
	CHECK_STR(rule, "forbid_self_approval");
	CHECK(strncmp(msg, "forbid_self_approval:", 21) == 0);
	policy_dirrules_free(pr);
	pr = policy_dirrules_new(&cfg, &g, "carol");
	rule = NULL;
	CHECK(dirrules_check(NULL, pr, "alice", &u, NULL, msg, sizeof(msg), &rule) == JIT_OK);
	u.uid = NULL; /* no uid read: nothing more to compare */
	CHECK(dirrules_check(NULL, pr, "alice", &u, NULL, msg, sizeof(msg), &rule) == JIT_OK);
	policy_dirrules_free(pr);
}

/* require_approver and forbid_self_approval for an extension */
static void test_extend_approval(void)
{
	struct jit_group_cfg g = { .name = "da", .max_duration = 60 };
	struct grant_rec r = { .user = "alice", .requested_by = "bob", .member_attr = "member",
			       .member_value = "uid=alice,ou=people,dc=x" };
	struct jit_request q = { .op = OP_EXTEND };
	char msg[512];
	const char *rule = NULL;

	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_OK);
	g.require_approver = true;
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_EPOLICY);
	CHECK_STR(rule, "require_approver");
	q.approved_by = "alice";
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_OK);
	g.forbid_self_approval = true;
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_EPOLICY);
	CHECK_STR(rule, "forbid_self_approval");
	CHECK(strstr(msg, "the grant's user") != NULL);
	q.approved_by = " BOB";
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_EPOLICY);
	CHECK(strstr(msg, "requested_by") != NULL);
	q.approved_by = "carol";
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_OK);
	/* memberUid: the uid written is the user too */
	r.user = "alice-alias";
	r.member_attr = "memberUid";
	r.member_value = "alice";
	q.approved_by = "alice";
	CHECK(policy_extend_approval(&g, &q, &r, msg, sizeof(msg), &rule) == JIT_EPOLICY);
}

static void test_bucket(void)
{
	struct policy_bucket b = { 0 };
	int n = 0;

	for (int i = 0; i < 100; i++)
		n += policy_bucket_take(&b, 60, 1000);
	CHECK(n == 60); /* a fresh bucket is full: a burst of 60 */
	CHECK(!policy_bucket_take(&b, 60, 1999)); /* 0.999 token */
	CHECK(policy_bucket_take(&b, 60, 2000));  /* one per second */
	CHECK(!policy_bucket_take(&b, 60, 2000));
	n = 0;
	for (int i = 0; i < 100; i++)
		n += policy_bucket_take(&b, 60, 3600 * 1000); /* refills to the cap only */
	CHECK(n == 60);
	CHECK(policy_bucket_take(&b, 0, 1)); /* 0: unlimited */
	struct policy_bucket c = { 0 };
	CHECK(policy_bucket_take(&c, 1, 5000));
	CHECK(!policy_bucket_take(&c, 1, 64999));
	CHECK(policy_bucket_take(&c, 1, 65000));
	CHECK(!policy_bucket_take(&c, 1, 1000)); /* clock went back: no refill gift */
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
	const char *rule = NULL;
	int64_t d = 0;

	CHECK(policy_client(&cfg, &root) == &clients[0]);
	CHECK(policy_client(&cfg, &hd_primary) == &clients[1]);
	CHECK(policy_client(&cfg, &hd_supp) == &clients[1]);
	CHECK(policy_client(&cfg, &nobody) == NULL);
	/* first match wins: uid 1001 has gid 5000 but the helpdesk entry comes first */
	CHECK(policy_client(&cfg, &u1001) == &clients[1]);
	/* Groups that could not all be read: an entry by gid the peer is not
	 * seen in may still be its own, so no later entry is handed out
	 * (uid 1001 would otherwise match the broader u1001 entry)... */
	struct jit_peer u1001_unknown = { .uid = 1001, .gid = 100, .groups_unknown = true };
	CHECK(policy_client(&cfg, &u1001_unknown) == NULL);
	/* ...while an entry before it, or the gid seen, still decides */
	struct jit_peer root_unknown = { .uid = 0, .gid = 0, .groups_unknown = true };
	CHECK(policy_client(&cfg, &root_unknown) == &clients[0]);
	struct jit_peer hd_unknown = { .uid = 1502, .gid = 100, .groups = { 5000 }, .n_groups = 1,
				       .groups_unknown = true };
	CHECK(policy_client(&cfg, &hd_unknown) == &clients[1]);
	/* read for real: root's groups are all there */
	struct jit_peer root_read = { .uid = 0, .gid = 0, .groups_unknown = true };
	policy_peer_groups(&root_read, NULL);
	CHECK(!root_read.groups_unknown && root_read.n_groups >= 1);
	/* A process running under another group (sg, newgrp, a setgid
	 * helper) still belongs to its passwd primary group: an entry for
	 * that group must not be skipped for a later, broader one. */
	struct jit_peer root_sg = { .uid = 0, .gid = 54321, .groups_unknown = true };
	bool has_primary = false;
	policy_peer_groups(&root_sg, NULL);
	test_groups_cached();
	test_groups_source_down();
	CHECK(!root_sg.groups_unknown);
	for (int i = 0; i < root_sg.n_groups; i++)
		has_primary |= root_sg.groups[i] == 0;
	CHECK(has_primary);

	struct jit_request *r = req(OP_GRANT, "domain-admins", 0);
	CHECK(policy_check(&cfg, NULL, r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg), &rule) == JIT_OK);
	CHECK(d == 3600);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	CHECK(strstr(msg, "domain-admins") != NULL);
	CHECK(policy_check(&cfg, &clients[2], r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	proto_request_free(r);

	r = req(OP_GRANT, "dba", 600);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_OK);
	CHECK(d == 600);
	r->duration = 601;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_EDURMAX);
	proto_request_free(r);

	r = req(OP_GRANT, "no-such-group", 0);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg), &rule) == JIT_EUNKGROUP);
	proto_request_free(r);

	r = req(OP_REVOKE, NULL, 0);
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	CHECK(policy_check(&cfg, &clients[0], r, &d, msg, sizeof(msg), &rule) == JIT_OK);
	r->op = OP_SHOW;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_OK);
	proto_request_free(r);

	r = req(OP_LIST, "domain-admins", 0);
	clients[1].ops |= 1u << OP_LIST;
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_EUNAUTH);
	free(r->group);
	r->group = xstrdup("dba");
	CHECK(policy_check(&cfg, &clients[1], r, &d, msg, sizeof(msg), &rule) == JIT_OK);
	proto_request_free(r);

	CHECK(policy_group_allowed(&clients[0], "anything"));
	CHECK(policy_group_allowed(&clients[1], "dba"));
	CHECK(!policy_group_allowed(&clients[1], "domain-admins"));
	CHECK(!policy_group_allowed(NULL, "dba"));

	test_rules();
	test_dirrules();
	test_extend_denied();
	test_name_eq();
	test_dirrules_self();
	test_extend_approval();
	test_bucket();
	test_nss_lookup();
	T_DONE();
}
