/*
 * extend.c - extend, on the main thread: every check against the grant as
 * the store holds it and the current configuration, then one bounded write
 * transaction. An extend of a group with eligible_group first takes a turn
 * in its directory's queue for the membership check (JOB_ELIGIBLE), then
 * comes back to the main thread, which checks everything again and writes
 * it. Trust: the client is authorised against the grant's group; signed
 * extensions are verified here, where the key is; nothing checked before
 * the directory's answer is trusted after it.
 */
#include <stdio.h>
#include <string.h>
#include "approval.h"
#include "directory.h"
#include "dirrules.h"
#include "engine_priv.h"
#include "fault.h"
#include "grant.h"
#include "store.h"
#include "util.h"

/*
 * Records and applies an allowed extension of active grant r to new_exp, in
 * one write transaction. Its wait for the store's lock is bounded (the main
 * loop's handle): a lock held elsewhere is answered `busy` before anything
 * is written. Under the lock the row is changed only if it is still active
 * with the expiry that was checked, and that has not passed (else
 * not_active, nothing written). Evidence first, as for `granted`: the
 * `extended` line is on disk before the transaction commits, so after a
 * crash in between (engine.after_extend_audit) the log may overstate the
 * grant by an extension nobody was told about, but never understates a
 * privilege (engine.after_extend, after the commit). Only a failed commit
 * (an I/O error: the lock is already held) leaves such a line behind in a
 * running daemon.
 */
static char *extend_recorded(struct engine *e, const struct jit_client_cfg *c,
			     const struct jit_request *req, const struct jit_peer *peer,
			     const struct grant_rec *r, int64_t new_exp)
{
	struct grant_rec *n = NULL;
	char *line = NULL;
	int rc = store_begin(e->st);
	if (rc != JIT_OK)
		return proto_store_error_line(rc, "cannot record the extension");
	rc = store_set_expiry(e->st, r->id, r->expires_at, new_exp, new_exp - r->created_at,
			      now_s());
	/* Ended or due since it was read (a worker expired or ended it). */
	if (rc == JIT_ENOTFOUND)
		line = proto_error_line(JIT_ENOTACTIVE, "the grant ended or expired meanwhile");
	else if (rc == JIT_OK && (rc = store_get(e->st, r->id, &n)) != JIT_OK)
		line = proto_error_line(JIT_EINTERNAL, NULL);
	else if (rc != JIT_OK)
		line = proto_store_error_line(rc, "cannot record the extension");
	if (line) {
		store_rollback(e->st);
		return line;
	}
	json_t *o = grant_audit_fields(n);
	json_object_set_new(o, "added", json_integer(req->duration));
	if (req->approved_by)
		json_object_set_new(o, "extension_approved_by", json_string(req->approved_by));
	if (req->approved_at)
		json_object_set_new(o, "extension_approved_at", json_string(req->approved_at));
	if (c && c->name)
		json_object_set_new(o, "by_client", json_string(c->name));
	json_object_set_new(o, "by_peer_uid", json_integer((json_int_t)peer->uid));
	json_object_set_new(o, "by_peer_pid", json_integer((json_int_t)peer->pid));
	rc = audit_write(e->audit, "extended", o);
	json_decref(o);
	if (rc != JIT_OK) {
		store_rollback(e->st);
		grant_rec_free(n);
		return proto_error_line(JIT_EINTERNAL, "audit log write failed");
	}
	FAULT_POINT("engine.after_extend_audit");
	/* The store refused the commit (I/O): the grant is still active with
	 * its old expires_at, although the log's extended line says otherwise. */
	if (store_commit(e->st) != JIT_OK) {
		grant_rec_free(n);
		return proto_error_line(JIT_EINTERNAL, "cannot record the extension");
	}
	FAULT_POINT("engine.after_extend");
	line = requests_ok_grant_line(n);
	grant_rec_free(n);
	return line;
}

/*
 * The checks of an extension of active grant r (group gc) that come after
 * max_duration, before anything is written: the signed extension
 * (approval_key_file: the signature over its canonical form, then that its
 * expires_at is still the grant's, so that a replay once it was applied is
 * refused, then approval_max_age), and a given expires_at for any group.
 * NULL if they pass, else the refusal line (audited).
 */
static char *admit_extend(struct engine *e, const struct jit_group_cfg *gc,
			  const struct jit_peer *peer, const struct jit_client_cfg *c,
			  const struct jit_request *req, const struct grant_rec *r)
{
	const char *rule = NULL;
	char msg[512], ts[32];
	int64_t want = 0;
	int code = JIT_EPOLICY, arc;

	if (gc->approval_key_file &&
	    (arc = approval_verify(gc->approval_key_file, req, msg, sizeof(msg))) != JIT_OK) {
		rule = "approval_key_file";
		code = arc; /* policy_denied, or internal (the key cannot be read) */
	} else if (req->expires_at && parse_rfc3339(req->expires_at, &want) != JIT_OK) {
		rule = "expires_at";
		snprintf(msg, sizeof(msg), "expires_at: must be the grant's expires_at as jitd "
			 "shows it, a UTC time such as \"2026-11-23T16:27:51Z\"");
	} else if (req->expires_at && want != r->expires_at) {
		rule = "expires_at";
		fmt_rfc3339(r->expires_at, ts);
		snprintf(msg, sizeof(msg), "expires_at: the grant expires at %s, not at %.32s as "
			 "the extension says: it was applied already, or the grant was extended "
			 "since; nothing changed", ts, req->expires_at);
	} else if (gc->approval_key_file &&
		   approval_fresh(req, gc->approval_max_age, now_s(), msg, sizeof(msg)) != JIT_OK) {
		rule = "approval_max_age";
	}
	if (!rule)
		return NULL;
	engine_audit_refusal_rule(e, peer, c, req, code, msg, rule);
	return proto_error_line(code, msg);
}

/*
 * eligible_group needs the directory, and the main thread never waits for
 * it: the extension (req, taken when queued) goes to the directory's queue
 * like a grant, a worker checks the user again (dirrules_recheck), and the
 * main thread takes it up again in extend_resume(). NULL when queued, else
 * the answer line: a directory known down refuses at once (fail closed).
 */
static char *submit_eligible(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
			     const struct jit_client_cfg *c, struct jit_request *req,
			     const struct jit_group_cfg *gc, const struct grant_rec *r)
{
	struct dirq *q = workers_find_dir(e, gc->directory);
	char down[256], msg[512];

	if (!q)
		return proto_error_line(JIT_EINTERNAL, "the group's directory is not configured");
	struct policy_dirrules *rules = policy_dirrules_new(e->cfg, gc, req->approved_by);
	if (dir_health_down(q->health, down, sizeof(down))) {
		const char *rule = dirrules_first(rules);
		if (gc->eligible_group)
			snprintf(msg, sizeof(msg), "eligible_group: cannot check membership of %.200s: %s",
				 gc->eligible_group, down);
		else
			snprintf(msg, sizeof(msg), "%s: cannot look the user up in the directory: %s",
				 rule, down);
		policy_dirrules_free(rules);
		engine_audit_refusal_rule(e, peer, c, req, JIT_EDIRUNAVAIL, msg, rule);
		return proto_error_line(JIT_EDIRUNAVAIL, msg);
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_ELIGIBLE;
	j->conn_id = conn_id;
	j->peer = *peer;
	j->client = xstrdup(c ? c->name : NULL);
	j->req = req;
	j->rules = rules;
	j->user = xstrdup(r->user);
	j->user_uuid = xstrdup(r->user_uuid);
	j->user_dn = xstrdup(r->user_dn);
	if (!workers_enqueue(q, j)) {
		j->req = NULL;
		workers_job_free(j);
		return workers_refuse_unqueued(q, peer, c ? c->name : NULL, req);
	}
	return NULL;
}

/*
 * Does an extension of gc need the user checked in the directory, and has
 * the check just made (checked, or NULL) covered it? eligible_group (a live
 * membership), deny_users and forbid_self_approval (with an approver) are
 * checked against the user's entry, every uid value of it, as at the grant:
 * the grant may have been asked under an alias, and the store holds only
 * the name as asked and the DN.
 */
static bool needs_dir_check(const struct jit_config *cfg, const struct jit_group_cfg *gc,
			    const struct jit_request *req, const struct policy_dirrules *checked)
{
	struct policy_dirrules *need = policy_dirrules_new(cfg, gc, req->approved_by);
	bool needed = need && (need->eligible_dn || need->n_deny > 0 || need->approved_by);
	bool covered = needed && checked && policy_dirrules_same(need, checked);

	policy_dirrules_free(need);
	return needed && !covered;
}

/*
 * extend, on the main thread: every check against the grant as the store
 * holds it and the current configuration, then the write (one bounded
 * transaction, extend_recorded). checked: the rules a worker has just
 * checked the user against in the directory (NULL at first; see
 * needs_dir_check). NULL when the extension
 * went to the directory's queue (req is then the job's), else the answer
 * line (req still the caller's).
 */
char *extend_request(struct engine *e, uint64_t conn_id, const struct jit_client_cfg *c,
		     struct jit_request *req, const struct jit_peer *peer,
		     const struct policy_dirrules *checked)
{
	char *line = NULL;
	char msg[512];
	const char *rule = NULL;
	struct grant_rec *r = requests_load_for(e, c, peer, req, &line);
	if (!r)
		return line;
	const struct jit_group_cfg *gc = config_group(e->cfg, r->group_name);
	int64_t new_exp = r->expires_at + req->duration;
	if (r->state != GS_ACTIVE) {
		line = proto_error_line(JIT_ENOTACTIVE, NULL);
	} else if (r->expires_at <= now_s()) {
		/* Due and about to be ended by the scheduler: an extension must
		 * not revive a privilege whose time is up. */
		line = proto_error_line(JIT_ENOTACTIVE, "the grant has expired");
	} else if (!gc || !requests_same_group(e->cfg, gc, r)) {
		/* A reload may have given the grant's group name to another
		 * group: its rules are not this grant's. */
		line = proto_error_line(JIT_EUNKGROUP, gc ? "the grant's group name now names another "
						     "group (a reload); its rules do not apply"
						   : "the grant's group is no longer configured");
	} else if (policy_extend_denied(gc, r, msg, sizeof(msg)) != JIT_OK) {
		/* deny_users as the configuration says now (a reload may have
		 * added the user); the directory's view follows for eligible_group */
		engine_audit_refusal_rule(e, peer, c, req, JIT_EPOLICY, msg, "deny_users");
		line = proto_error_line(JIT_EPOLICY, msg);
	} else if (policy_extend_approval(gc, req, r, msg, sizeof(msg), &rule) != JIT_OK) {
		engine_audit_refusal_rule(e, peer, c, req, JIT_EPOLICY, msg, rule);
		line = proto_error_line(JIT_EPOLICY, msg);
	} else if (policy_check_extend(gc, c, new_exp - r->created_at, msg, sizeof(msg), &rule) !=
		   JIT_OK) {
		/* extensions count toward max_duration: the total is checked */
		engine_audit_refusal_rule(e, peer, c, req, JIT_EDURMAX, msg, rule);
		line = proto_error_line(JIT_EDURMAX, msg);
	} else if ((line = admit_extend(e, gc, peer, c, req, r)) != NULL) {
		/* refused and audited */
	} else if (needs_dir_check(e->cfg, gc, req, checked)) {
		line = submit_eligible(e, conn_id, peer, c, req, gc, r);
	} else {
		line = extend_recorded(e, c, req, peer, r, new_exp);
	}
	grant_rec_free(r);
	return line;
}

/* The `refused` event of an extension the directory check refused, with
 * the directory's result code when it answered with an error. */
static void audit_check_refusal(struct engine *e, const struct job *j)
{
	json_t *extra = json_object();
	if (j->check_has_ldap)
		json_object_set_new(extra, "ldap_code", json_integer(j->check_ldap));
	requests_audit_refusal_x(e, &j->peer, j->client, j->req, j->check_rc, j->check_msg,
				 j->check_rule, extra);
	json_decref(extra);
}

/*
 * Main thread: an extension is back from its directory check (j taken).
 * Refused there: audited and answered. Passed: the clients entry is
 * matched again (a reload may have come meanwhile) and extend_request() runs
 * again from the start with the grant as it is now, so that nothing the
 * main thread checked before the wait is trusted after it. NULL if it was
 * queued again (the group's eligible_group changed meanwhile).
 */
char *extend_resume(struct engine *e, struct job *j)
{
	char *line = NULL;
	if (j->check_rc != JIT_OK) {
		audit_check_refusal(e, j);
		line = proto_error_line(j->check_rc, j->check_msg);
		workers_job_free(j);
		return line;
	}
	const struct jit_client_cfg *c = requests_client_again(e, j);
	if (!c || !(c->ops & (1u << OP_EXTEND))) {
		const char *msg = "the configuration was reloaded while the directory was asked, "
				  "and this client may no longer extend";
		requests_audit_refusal(e, &j->peer, j->client, j->req, JIT_EUNAUTH, msg, "clients");
		line = proto_error_line(JIT_EUNAUTH, msg);
		workers_job_free(j);
		return line;
	}
	struct jit_request *req = j->req;
	j->req = NULL;
	line = extend_request(e, j->conn_id, c, req, &j->peer, j->rules);
	if (line)
		proto_request_free(req);
	workers_job_free(j);
	return line;
}
