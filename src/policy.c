/*
 * policy.c - which client may do what. Pure decisions over the immutable
 * config and the peer's kernel credentials (SO_PEERCRED), made by the
 * listener before a request reaches the engine (and again by the engine).
 * Deny by default: a peer matching no `clients` entry may do nothing, and
 * every configured rule must pass. Trust: the request fields are the
 * client's word; only the peer credentials come from the kernel.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "dnkey.h"
#include "policy.h"
#include "util.h"

/* Does the group database know gid? (Unknown when it cannot be asked.) */
static bool group_known(gid_t gid)
{
	struct nss_entry e;
	bool found;
	int rc = nss_lookup(NSS_GROUP_BY_ID, NULL, (int64_t)gid, &e, &found);

	free(e.name);
	/* ERANGE at the largest buffer: a group too large to read here, but
	 * one that is there */
	return (rc == 0 && found) || rc == ERANGE;
}

static bool in_list(const struct jit_peer *p, gid_t gid)
{
	for (int i = 0; i < p->n_groups; i++)
		if (p->groups[i] == gid)
			return true;
	return false;
}

void policy_peer_groups(struct jit_peer *p, const struct jit_config *cfg)
{
	struct nss_entry pw;
	bool found;
	int rc, max = (int)(sizeof(p->groups) / sizeof(p->groups[0])), n = max;

	p->n_groups = 0;
	p->groups_unknown = true;
	rc = nss_lookup(NSS_USER_BY_ID, NULL, (int64_t)p->uid, &pw, &found);
	if (rc != 0 || !found) {
		/* No passwd entry at all is an answer (a uid with no name has
		 * no supplementary groups); a failure of the name service is
		 * not. */
		p->groups_unknown = rc != 0;
		return;
	}
	/* The passwd primary group, not the process's gid: a process that
	 * switched group (sg, newgrp, a setgid helper) still belongs to it, and
	 * getgrouplist adds only the gid it is given to what the group
	 * database lists. peer_in_group checks the process's gid as well. */
	for (int i = 0; i < max; i++)
		p->groups[i] = (gid_t)-1; /* nothing read stays no group at all */
	if (getgrouplist(pw.name, (gid_t)pw.gid, p->groups, &n) < 0) {
		n = max; /* more than fit: what fits is kept, the rest unknown */
	} else {
		p->groups_unknown = false;
	}
	p->n_groups = n;
	free(pw.name);
	/* Robustness: getgrouplist() does not report a source of the group
	 * database that failed (an LDAP name service that is down): it leaves
	 * that source's groups out. A group of a clients entry that the peer is
	 * not seen in, named by unix_group, was found when the configuration was
 * read (a numeric gid need not be in the database at all); if the
	 * database cannot find it now, its source is down, and the peer may be
	 * in it: the groups are unknown (policy_client matches no entry from
	 * there on, rather than a later, broader one). */
	for (size_t i = 0; cfg && !p->groups_unknown && i < cfg->n_clients; i++) {
		const struct jit_client_cfg *c = &cfg->clients[i];
		if (c->has_gid && c->gid_by_name && c->gid != p->gid && !in_list(p, c->gid) &&
		    !group_known(c->gid))
			p->groups_unknown = true;
	}
}

void policy_peer_groups_cached(struct jit_peer *p, const struct jit_config *cfg, int64_t now_ms)
{
	static struct {
		uint64_t cfg_serial; /* the entries the groups were checked for */
		uid_t uid;
		gid_t gid; /* the process's: whether the groups count as unknown depends on it */
		int64_t read_at; /* 0: empty */
		gid_t groups[sizeof(p->groups) / sizeof(p->groups[0])];
		int n_groups;
		bool unknown;
	} cache[POLICY_GROUPS_CACHE];
	size_t oldest = 0;

	for (size_t i = 0; i < POLICY_GROUPS_CACHE; i++) {
		if (cache[i].read_at != 0 && cache[i].uid == p->uid && cache[i].gid == p->gid &&
		    cache[i].cfg_serial == (cfg ? cfg->serial : 0) &&
		    now_ms - cache[i].read_at < POLICY_GROUPS_TTL_MS && now_ms >= cache[i].read_at) {
			memcpy(p->groups, cache[i].groups, sizeof(p->groups));
			p->n_groups = cache[i].n_groups;
			p->groups_unknown = cache[i].unknown;
			return;
		}
		if (cache[i].read_at < cache[oldest].read_at)
			oldest = i;
	}
	policy_peer_groups(p, cfg);
	cache[oldest].cfg_serial = cfg ? cfg->serial : 0;
	cache[oldest].uid = p->uid;
	cache[oldest].gid = p->gid;
	cache[oldest].read_at = now_ms > 0 ? now_ms : 1;
	memcpy(cache[oldest].groups, p->groups, sizeof(p->groups));
	cache[oldest].n_groups = p->n_groups;
	cache[oldest].unknown = p->groups_unknown;
}

bool policy_uses_groups(const struct jit_config *cfg)
{
	for (size_t i = 0; i < cfg->n_clients; i++)
		if (cfg->clients[i].has_gid)
			return true;
	return false;
}

static bool peer_in_group(const struct jit_peer *p, gid_t gid)
{
	return p->gid == gid || in_list(p, gid);
}

const struct jit_client_cfg *policy_client(const struct jit_config *cfg, const struct jit_peer *p)
{
	for (size_t i = 0; i < cfg->n_clients; i++) {
		const struct jit_client_cfg *c = &cfg->clients[i];
		if (c->has_uid && c->uid != p->uid)
			continue;
		if (c->has_gid && !peer_in_group(p, c->gid)) {
			/* Robustness: entries match first to last, so skipping an
			 * entry the peer may belong to (a narrower one, say) would
			 * hand it a later, broader one. */
			if (p->groups_unknown)
				return NULL;
			continue;
		}
		if (!c->has_uid && !c->has_gid)
			continue; /* configsection.c refuses this; never match an empty rule */
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

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Two user names as the directory compares them (uid, sAMAccountName:
 * caseIgnoreMatch): case over all of Unicode, leading and trailing blanks
 * ignored, a run of inner blanks as one. " alice" finds alice's entry, so
 * it must not pass a rule that "alice" fails; nor may "JÜRGEN" pass a
 * deny_users entry "jürgen". Every caller refuses on "equal" (deny_users,
 * forbid_self_approval), so the fold errs towards equal: U+212A (Kelvin)
 * equals k, as OpenLDAP's matching takes it.
 */
bool policy_name_eq(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	while (blank(*a))
		a++;
	while (blank(*b))
		b++;
	for (;;) {
		if (blank(*a) || blank(*b)) {
			bool ra = blank(*a), rb = blank(*b);
			while (blank(*a))
				a++;
			while (blank(*b))
				b++;
			if (*a == '\0' && *b == '\0')
				return true; /* trailing blanks */
			if (!ra || !rb || *a == '\0' || *b == '\0')
				return false;
			continue;
		}
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if (fold_next(&a) != fold_next(&b))
			return false;
	}
}


/* An entry of deny_users holding '=' is a DN, anything else a user name. */
static bool is_dn(const char *s)
{
	return strchr(s, '=') != NULL;
}

/* deny_users by name: the name in the request (the DN entries need the
 * directory and are checked by the worker, policy_user_denied()). */
static int check_deny_name(const struct jit_group_cfg *g, const char *user, char *msg,
			   size_t msglen)
{
	for (size_t i = 0; i < g->deny_users.n; i++) {
		const char *d = g->deny_users.v[i];
		if (!is_dn(d) && policy_name_eq(d, user)) {
			snprintf(msg, msglen, "deny_users: \"%.64s\" may never be elevated "
				 "into group \"%s\"", user, g->name);
			return JIT_EPOLICY;
		}
	}
	return JIT_OK;
}

/* The group's durations and the client's cap; *d becomes the effective one. */
static int check_duration(const struct jit_group_cfg *g, const struct jit_client_cfg *c,
			  const struct jit_request *req, int64_t *d, char *msg, size_t msglen,
			  const char **rule)
{
	*d = req->has_duration ? req->duration : g->default_duration;
	if (*d <= 0) {
		snprintf(msg, msglen, "duration must be positive");
		return JIT_EBADREQ;
	}
	if (*d > g->max_duration) {
		*rule = "max_duration";
		snprintf(msg, msglen, "max_duration: duration %llds exceeds max_duration %llds "
			 "of group \"%s\"", (long long)*d, (long long)g->max_duration, g->name);
		return JIT_EDURMAX;
	}
	if (c->max_duration > 0 && *d > c->max_duration) {
		*rule = "clients.max_duration";
		snprintf(msg, msglen, "clients.max_duration: duration %llds%s exceeds max_duration "
			 "%llds of client \"%s\"", (long long)*d,
			 req->has_duration ? "" : " (the group's default_duration)",
			 (long long)c->max_duration, c->name);
		return JIT_EDURMAX;
	}
	if (g->min_duration > 0 && *d < g->min_duration) {
		*rule = "min_duration";
		snprintf(msg, msglen, "min_duration: duration %llds is shorter than min_duration "
			 "%llds of group \"%s\"", (long long)*d, (long long)g->min_duration,
			 g->name);
		return JIT_EPOLICY;
	}
	return JIT_OK;
}

/* The group's rules about the request's accompanying fields. */
static int check_fields(const struct jit_group_cfg *g, const struct jit_request *req,
			char *msg, size_t msglen, const char **rule)
{
	if (g->require_ticket && !req->ticket) {
		*rule = "require_ticket";
		snprintf(msg, msglen, "require_ticket: group \"%s\" needs a ticket", g->name);
		return JIT_EPOLICY;
	}
	if (g->ticket_check && !req->ticket) {
		*rule = "ticket_check";
		snprintf(msg, msglen, "ticket_check: group \"%s\" checks the ticket with the "
			 "ticket system: give one", g->name);
		return JIT_EPOLICY;
	}
	if (req->ticket && g->ticket_re && regexec(g->ticket_re, req->ticket, 0, NULL, 0) != 0) {
		*rule = "ticket_pattern";
		snprintf(msg, msglen, "ticket_pattern: ticket \"%.64s\" does not match %s",
			 req->ticket, g->ticket_pattern);
		return JIT_EPOLICY;
	}
	if (g->approval_key_file && (!req->approval_sig || !req->approved_at || !req->request_id)) {
		*rule = "approval_key_file";
		snprintf(msg, msglen, "approval_key_file: group \"%s\" needs a signed approval "
			 "(approval_sig, approved_at and request_id)", g->name);
		return JIT_EPOLICY;
	}
	if (g->require_reason && !req->reason) {
		*rule = "require_reason";
		snprintf(msg, msglen, "require_reason: group \"%s\" needs a reason", g->name);
		return JIT_EPOLICY;
	}
	if (g->require_approver && !req->approved_by) {
		*rule = "require_approver";
		snprintf(msg, msglen, "require_approver: group \"%s\" needs approved_by", g->name);
		return JIT_EPOLICY;
	}
	if (g->forbid_self_approval && req->approved_by &&
	    (policy_name_eq(req->approved_by, req->user) ||
	     policy_name_eq(req->approved_by, req->requested_by))) {
		*rule = "forbid_self_approval";
		snprintf(msg, msglen, "forbid_self_approval: approved_by must differ from %s",
			 policy_name_eq(req->approved_by, req->user) ? "user" : "requested_by");
		return JIT_EPOLICY;
	}
	return JIT_OK;
}

static int check_grant(const struct jit_config *cfg, const struct jit_client_cfg *c,
		       const struct jit_request *req, int64_t *duration, char *msg,
		       size_t msglen, const char **rule)
{
	const struct jit_group_cfg *g = config_group(cfg, req->group);
	int64_t d = 0;
	int rc;

	if (!g) {
		/* unauthorized first would leak which groups exist only to those
		 * allowed "*"; an unknown name is unknown to everyone */
		snprintf(msg, msglen, "no managed group is named \"%.64s\"", req->group);
		return JIT_EUNKGROUP;
	}
	if (!policy_group_allowed(c, g->name)) {
		*rule = "clients.groups";
		snprintf(msg, msglen, "this client may not grant group \"%s\"", g->name);
		return JIT_EUNAUTH;
	}
	if (check_deny_name(g, req->user, msg, msglen) != JIT_OK) {
		*rule = "deny_users";
		return JIT_EPOLICY;
	}
	rc = check_duration(g, c, req, &d, msg, msglen, rule);
	if (rc == JIT_OK)
		rc = check_fields(g, req, msg, msglen, rule);
	if (rc == JIT_OK)
		*duration = d;
	return rc;
}

int policy_check(const struct jit_config *cfg, const struct jit_client_cfg *c,
		 const struct jit_request *req, int64_t *duration, char *msg, size_t msglen,
		 const char **rule)
{
	msg[0] = '\0';
	*rule = NULL;
	if (!c) {
		*rule = "clients";
		snprintf(msg, msglen, "no clients entry matches this peer");
		return JIT_EUNAUTH;
	}
	if (!(c->ops & (1u << req->op))) {
		*rule = "clients.ops";
		snprintf(msg, msglen, "operation \"%s\" is not allowed for this client",
			 jit_op_name(req->op));
		return JIT_EUNAUTH;
	}
	if (req->op == OP_REVOKE && req->force && !(c->ops & OPS_FORCE_BIT)) {
		*rule = "clients.ops";
		snprintf(msg, msglen, "\"revoke\" with \"force\" is not allowed for this client "
			 "(its ops need \"%s\")", OPS_FORCE_NAME);
		return JIT_EUNAUTH;
	}
	if (req->op == OP_LIST && req->group && !policy_group_allowed(c, req->group)) {
		*rule = "clients.groups";
		snprintf(msg, msglen, "this client may not see that group");
		return JIT_EUNAUTH;
	}
	if (req->op != OP_GRANT)
		return JIT_OK; /* grant-id ops are checked against the grant's group */
	return check_grant(cfg, c, req, duration, msg, msglen, rule);
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool policy_same_request(const struct jit_request *req, const struct grant_rec *r)
{
	return same(req->user, r->user) && same(req->group, r->group_name) &&
	       same(req->ticket, r->ticket) && same(req->reason, r->reason) &&
	       same(req->requested_by, r->requested_by) && same(req->approved_by, r->approved_by);
}

int policy_check_extend(const struct jit_group_cfg *g, const struct jit_client_cfg *c,
			int64_t total, char *msg, size_t msglen, const char **rule)
{
	if (total > g->max_duration) {
		*rule = "max_duration";
		snprintf(msg, msglen, "max_duration: extension would make the grant last %llds; "
			 "max_duration of group \"%s\" is %llds", (long long)total, g->name,
			 (long long)g->max_duration);
		return JIT_EDURMAX;
	}
	if (c && c->max_duration > 0 && total > c->max_duration) {
		*rule = "clients.max_duration";
		snprintf(msg, msglen, "clients.max_duration: extension would make the grant last "
			 "%llds; max_duration of client \"%s\" is %llds", (long long)total,
			 c->name, (long long)c->max_duration);
		return JIT_EDURMAX;
	}
	return JIT_OK;
}

/* Does deny_users entry d name this user (a DN entry its DN, a name entry
 * its name or uid)? dn and uid may be NULL. */
static bool deny_hit(const char *d, const char *name, const char *dn, const char *uid)
{
	return is_dn(d) ? policy_dn_equal(d, dn) : policy_name_eq(d, name) || policy_name_eq(d, uid);
}

int policy_extend_denied(const struct jit_group_cfg *g, const struct grant_rec *r, char *msg,
			 size_t msglen)
{
	bool by_uid = r->member_attr && strcasecmp(r->member_attr, "memberUid") == 0;
	for (size_t i = 0; i < g->deny_users.n; i++) {
		if (deny_hit(g->deny_users.v[i], r->user, r->user_dn,
			     by_uid ? r->member_value : NULL)) {
			snprintf(msg, msglen, "deny_users: \"%.64s\" (%.200s) may never be elevated "
				 "into group \"%s\": the grant is not extended", r->user,
				 r->user_dn ? r->user_dn : "?", g->name);
			return JIT_EPOLICY;
		}
	}
	return JIT_OK;
}

int policy_extend_approval(const struct jit_group_cfg *g, const struct jit_request *req,
			   const struct grant_rec *r, char *msg, size_t msglen, const char **rule)
{
	if (g->require_approver && !req->approved_by) {
		*rule = "require_approver";
		snprintf(msg, msglen, "require_approver: group \"%s\" needs approved_by for an "
			 "extension too", g->name);
		return JIT_EPOLICY;
	}
	if (!g->forbid_self_approval || !req->approved_by)
		return JIT_OK;
	bool by_uid = r->member_attr && strcasecmp(r->member_attr, "memberUid") == 0;
	const char *who = NULL;
	if (policy_name_eq(req->approved_by, r->user) ||
	    (by_uid && policy_name_eq(req->approved_by, r->member_value)))
		who = "the grant's user";
	else if (policy_name_eq(req->approved_by, r->requested_by))
		who = "the grant's requested_by";
	if (!who)
		return JIT_OK;
	*rule = "forbid_self_approval";
	snprintf(msg, msglen, "forbid_self_approval: the extension's approved_by must differ from %s",
		 who);
	return JIT_EPOLICY;
}

bool policy_bucket_take(struct policy_bucket *b, int per_minute, int64_t now_ms)
{
	if (per_minute <= 0)
		return true;
	if (b->last_ms == 0) {
		b->tokens = per_minute;
	} else if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * per_minute / 60000.0;
		if (b->tokens > per_minute)
			b->tokens = per_minute;
	}
	b->last_ms = now_ms;
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

struct policy_dirrules *policy_dirrules_new(const struct jit_config *cfg,
					    const struct jit_group_cfg *g, const char *approved_by)
{
	struct policy_dirrules *r;
	bool self = g->forbid_self_approval && approved_by != NULL;

	/* deny_users names and forbid_self_approval are checked again against
	 * the uid the directory returns: "Administrator" or an alias must not
	 * slip through */
	if (!g->eligible_group && g->deny_users.n == 0 && g->max_active_per_user <= 0 && !self)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->approved_by = self ? xstrdup(approved_by) : NULL;
	r->group = xstrdup(g->name);
	r->eligible_dn = xstrdup(g->eligible_group);
	r->eligible_attr = xstrdup(cfg->dirs[g->dir_index].member_attr);
	r->deny = xcalloc(g->deny_users.n + 1, sizeof(char *));
	for (size_t i = 0; i < g->deny_users.n; i++)
		r->deny[r->n_deny++] = xstrdup(g->deny_users.v[i]);
	r->max_active = g->max_active_per_user;
	return r;
}

static bool same_opt(const char *a, const char *b, bool dn)
{
	if (!a || !b)
		return a == b;
	return dn ? policy_dn_equal(a, b) : strcmp(a, b) == 0;
}

bool policy_dirrules_same(const struct policy_dirrules *a, const struct policy_dirrules *b)
{
	if (!a || !b)
		return a == b;
	if (!same_opt(a->eligible_dn, b->eligible_dn, true) ||
	    !same_opt(a->eligible_attr, b->eligible_attr, false) ||
	    !same_opt(a->approved_by, b->approved_by, false) || a->n_deny != b->n_deny)
		return false;
	for (size_t i = 0; i < a->n_deny; i++)
		if (strcmp(a->deny[i], b->deny[i]) != 0)
			return false;
	return true;
}

void policy_dirrules_free(struct policy_dirrules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_deny; i++)
		free(r->deny[i]);
	free(r->deny);
	free(r->approved_by);
	free(r->group);
	free(r->eligible_dn);
	free(r->eligible_attr);
	free(r);
}

int policy_user_denied(const struct policy_dirrules *r, const char *name, const char *dn,
		       const char *uid, char *msg, size_t msglen)
{
	for (size_t i = 0; r && i < r->n_deny; i++) {
		if (deny_hit(r->deny[i], name, dn, uid)) {
			snprintf(msg, msglen, "deny_users: \"%.64s\" (%.200s) may never be elevated "
				 "into group \"%s\"", name, dn ? dn : "?", r->group);
			return JIT_EPOLICY;
		}
	}
	return JIT_OK;
}

/* Skips spaces at p when they touch a separator on either side. */
static const char *dn_skip(const char *p, char prev)
{
	const char *q = p;
	while (*q == ' ')
		q++;
	if (q != p && (strchr(",=+", prev) || strchr(",=+", *q) || *q == '\0'))
		return q;
	return p;
}

/* DNs that do not parse, compared as written: ASCII case and the spaces
 * around separators ignored. */
static bool dn_text_equal(const char *a, const char *b)
{
	char pa = ',', pb = ',';

	if (!a || !b)
		return false;
	for (;;) {
		a = dn_skip(a, pa);
		b = dn_skip(b, pb);
		if (!*a || !*b)
			return !*a && !*b;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return false;
		if (*a == '\\' && a[1] && b[1]) {
			/* an escaped character is compared as written */
			a++;
			b++;
			if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
				return false;
		}
		pa = *a++;
		pb = *b++;
	}
}

bool policy_dn_equal(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	char *ka = dn_key(a), *kb = dn_key(b);
	bool eq = ka && kb ? strcmp(ka, kb) == 0 : dn_text_equal(a, b);
	free(ka);
	free(kb);
	return eq;
}
