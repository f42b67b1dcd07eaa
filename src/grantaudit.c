/*
 * grantaudit.c - the audit events about a grant: the fields every event
 * carries (grant_audit_fields), an event with its outcome, the directory's
 * answer and who asked, and the final event of an ending grant. Written
 * through audit.h; the caller decides what a failed write means. Trust: the
 * directory's messages come cleaned of control characters and invalid UTF-8
 * by directory.h; no credential is in a grant record, so none reaches a line.
 */
#include <stdlib.h>
#include <string.h>
#include "grant_priv.h"
#include "log.h"
#include "util.h"

void grant_set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, audit_text(v));
}

json_t *grant_audit_fields(const struct grant_rec *r)
{
	char ts[32];
	json_t *o = json_object();
	grant_set_str(o, "grant_id", r->id);
	grant_set_str(o, "state", grant_state_name(r->state));
	grant_set_str(o, "user", r->user);
	grant_set_str(o, "user_dn", r->user_dn);
	grant_set_str(o, "user_uuid", r->user_uuid);
	grant_set_str(o, "group", r->group_name);
	grant_set_str(o, "group_dn", r->group_dn);
	grant_set_str(o, "directory", r->directory);
	grant_set_str(o, "added_via", r->added_via);
	grant_set_str(o, "added_also_via", r->added_also_via);
	json_object_set_new(o, "duration", json_integer(r->duration));
	fmt_rfc3339(r->created_at, ts);
	grant_set_str(o, "created_at", ts);
	fmt_rfc3339(r->expires_at, ts);
	grant_set_str(o, "expires_at", ts);
	grant_set_str(o, "ticket", r->ticket);
	grant_set_str(o, "reason", r->reason);
	grant_set_str(o, "requested_by", r->requested_by);
	grant_set_str(o, "approved_by", r->approved_by);
	grant_set_str(o, "request_id", r->request_id);
	grant_set_str(o, "client", r->client);
	json_object_set_new(o, "peer_uid", json_integer(r->peer_uid));
	json_object_set_new(o, "peer_pid", json_integer(r->peer_pid));
	json_object_set_new(o, "standing", json_boolean(r->standing));
	return o;
}

/* The fields of one audit event about r, with the members of extra (may
 * be NULL). New reference. */
static json_t *audit_grant_obj(const char *event, const struct grant_rec *r, const char *outcome,
			       const struct dir_result *dres, const char *who,
			       const struct jit_peer *peer, const char *why, json_t *extra)
{
	json_t *o = grant_audit_fields(r);
	struct jit_peer stored = { 0 };
	if (who == NULL && r->end_client != NULL && event && strcmp(event, "granted") != 0) {
		/* a line of an end a client asked for, made later (a retried
		 * removal, an end recorded at a stop): the client, the reason
		 * and the peer recorded with its move to ending */
		who = r->end_client;
		if (why == NULL)
			why = r->end_reason;
		if (peer == NULL) {
			stored.uid = (uid_t)r->end_peer_uid;
			stored.pid = (pid_t)r->end_peer_pid;
			peer = &stored;
		}
	}
	if (extra)
		json_object_update(o, extra);
	grant_set_str(o, "outcome", outcome);
	if (dres && dres->message[0]) {
		json_object_set_new(o, "ldap_code", json_integer(dres->ldap_code));
		grant_set_str(o, "message", dres->message);
	}
	if (event && strcmp(event, "revoke_failed") == 0)
		json_object_set_new(o, "attempts", json_integer((json_int_t)r->attempts));
	if (who)
		grant_set_str(o, "by_client", who);
	if (peer && event && strcmp(event, "granted") != 0) {
		json_object_set_new(o, "by_peer_uid", json_integer((json_int_t)peer->uid));
		json_object_set_new(o, "by_peer_pid", json_integer((json_int_t)peer->pid));
	}
	grant_set_str(o, "end_reason", why);
	return o;
}

/* Writes one audit event about r (see audit_grant_obj); logs if it fails. */
static int audit_grant_x(struct grant_ctx *g, const char *event, const struct grant_rec *r,
			 const char *outcome, const struct dir_result *dres, const char *who,
			 const struct jit_peer *peer, const char *why, json_t *extra)
{
	json_t *o = audit_grant_obj(event, r, outcome, dres, who, peer, why, extra);
	int rc = audit_write(g->audit, event, o);
	json_decref(o);
	if (rc != JIT_OK)
		log_err("audit: could not record %s of grant %s", event, r->id);
	return rc;
}

int grant_audit_extra(struct grant_ctx *g, const char *event, const struct grant_rec *r,
		      const char *outcome, const struct dir_result *dres, const char *who,
		      const struct jit_peer *peer, const char *why, json_t *extra)
{
	return audit_grant_x(g, event, r, outcome, dres, who, peer, why, extra);
}

void grant_set_retried_by(json_t *o, const char *again, const struct jit_peer *again_peer)
{
	if (again == NULL)
		return;
	grant_set_str(o, "retried_by_client", again);
	if (again_peer) {
		json_object_set_new(o, "retried_by_peer_uid", json_integer((json_int_t)again_peer->uid));
		json_object_set_new(o, "retried_by_peer_pid", json_integer((json_int_t)again_peer->pid));
	}
}

int grant_audit(struct grant_ctx *g, const char *event, const struct grant_rec *r,
		const char *outcome, const struct dir_result *dres, const char *who,
		const struct jit_peer *peer, const char *why)
{
	return audit_grant_x(g, event, r, outcome, dres, who, peer, why, NULL);
}

int grant_audit_granted(struct grant_ctx *g, const struct grant_rec *r, const char *outcome,
			const struct grant_params *p)
{
	json_t *extra = NULL;
	int rc;

	if (p->approval_signed && p->req->approved_at) {
		/* what an auditor needs to tell a signed approval from a typed name */
		extra = json_object();
		json_object_set_new(extra, "approval_signed", json_true());
		grant_set_str(extra, "approved_at", p->req->approved_at);
	}
	rc = audit_grant_x(g, "granted", r, outcome, NULL, NULL, NULL, NULL, extra);
	json_decref(extra);
	return rc;
}

/* The final audit event of ending grant r (its end_state); frees st->value. */
json_t *grant_end_audit_obj(struct grant_rec *r, struct settle *st, const struct dir_result *dres,
			    const char *reason, const char *client, const struct jit_peer *peer)
{
	json_t *extra = json_object();
	grant_set_str(extra, "removed_value", st->value);
	if (st->uri[0])
		grant_set_str(extra, "removed_via", st->uri);
	if (r->removed_via)
		json_object_set_new(extra, "checked_after_grace", json_true());
	free(st->value);
	st->value = NULL;
	enum grant_state ending = r->state;
	r->state = r->end_state;
	json_t *o = audit_grant_obj(grant_state_name(r->end_state), r, grant_end_outcome(r, st),
				    dres, client, peer, reason, extra);
	r->state = ending;
	json_decref(extra);
	return o;
}
