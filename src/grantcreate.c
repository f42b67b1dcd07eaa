/*
 * grantcreate.c - creating a grant (grant_create): a request_id seen before,
 * the user resolved and the rules that need the directory, the pending row
 * with its standing decided, the add, the `granted` line, then active; on
 * failure the pending row is handed on to failed or to the ending machine.
 * Runs in engine worker threads. Trust: request fields were validated by
 * proto.c/policy.c; directory answers are untrusted and mapped through
 * directory.h.
 */
#include <stdio.h>
#include <string.h>
#include "approval.h"
#include "dirrules.h"
#include "fault.h"
#include "grant_priv.h"
#include "log.h"
#include "timing.h"
#include "util.h"

/* The `refused` audit line and the error answer; rule: the policy rule, or NULL. */
static char *reply_refused_rule(struct grant_ctx *g, const struct grant_params *p, int err,
				const char *msg, const struct dir_result *dres, const char *rule)
{
	json_t *o = json_object();
	grant_set_str(o, "op", "grant");
	grant_set_str(o, "user", p->req->user);
	grant_set_str(o, "group", p->group_name);
	grant_set_str(o, "ticket", p->req->ticket);
	grant_set_str(o, "requested_by", p->req->requested_by);
	grant_set_str(o, "approved_by", p->req->approved_by);
	grant_set_str(o, "request_id", p->req->request_id);
	grant_set_str(o, "client", p->client);
	json_object_set_new(o, "peer_uid", json_integer((json_int_t)p->peer.uid));
	json_object_set_new(o, "peer_pid", json_integer((json_int_t)p->peer.pid));
	grant_set_str(o, "error", jit_err_code(err));
	grant_set_str(o, "message", msg ? msg : jit_err_message(err));
	if (dres && dres->message[0])
		json_object_set_new(o, "ldap_code", json_integer(dres->ldap_code));
	grant_set_str(o, "rule", rule);
	if (audit_write(g->audit, "refused", o) != JIT_OK)
		log_err("audit: could not record a refusal");
	json_decref(o);
	return proto_error_line(err, msg);
}

static char *reply_refused(struct grant_ctx *g, const struct grant_params *p, int err,
			   const char *msg, const struct dir_result *dres)
{
	return reply_refused_rule(g, p, err, msg, dres, NULL);
}

/*
 * The rules that need the directory's answer about user u: deny_users (by
 * DN and by its uid) and eligible_group (a live membership check;
 * dirrules.c). NULL if they pass, else the answer line (the refusal is
 * audited).
 */
static char *check_dirrules(struct grant_ctx *g, const struct grant_params *p,
			    const struct dir_user *u)
{
	struct dir_result dres = { 0 };
	const char *rule = NULL;
	char msg[384];
	int rc = dirrules_check(g->dc, p->rules, p->req->user, u, &dres, msg, sizeof(msg), &rule);

	if (rc == JIT_OK)
		return NULL;
	return reply_refused_rule(g, p, rc, msg, &dres, rule);
}

static void fill_rec(struct grant_rec *r, const struct grant_params *p, const struct dir_user *u,
		     const char *value, char *pair_key, const char *id)
{
	const struct jit_request *q = p->req;
	int64_t now = now_s();
	memset(r, 0, sizeof(*r));
	r->id = xstrdup(id);
	r->request_id = xstrdup(q->request_id);
	r->state = GS_PENDING;
	r->end_state = GS_PENDING;
	r->user = xstrdup(q->user);
	r->user_dn = xstrdup(u->dn);
	r->user_uuid = xstrdup(u->uuid);
	r->member_value = xstrdup(value);
	r->group_name = xstrdup(p->group_name);
	r->group_dn = xstrdup(p->group_dn);
	r->directory = xstrdup(p->directory);
	r->member_attr = xstrdup(p->member_attr);
	r->placeholder = xstrdup(p->placeholder);
	r->pair_key = pair_key;
	r->created_at = now;
	r->expires_at = now + p->duration;
	r->duration = p->duration;
	r->ticket = xstrdup(q->ticket);
	r->reason = xstrdup(q->reason);
	r->requested_by = xstrdup(q->requested_by);
	r->approved_by = xstrdup(q->approved_by);
	r->client = xstrdup(p->client);
	r->peer_uid = (int64_t)p->peer.uid;
	r->peer_pid = (int64_t)p->peer.pid;
}

/* A grant with the same request_id exists: answer with it, or refuse if it
 * was made from another request (a replay must never pass as a retry).
 * NULL if none; busy or internal when the store cannot tell. */
static char *existing_request(struct grant_ctx *g, const struct grant_params *p,
			      const char *request_id)
{
	struct grant_rec *r = NULL;
	char *line;
	if (!request_id)
		return NULL;
	int rc = store_get_by_request_id(g->st, request_id, &r);
	if (rc == JIT_ENOTFOUND)
		return NULL;
	if (rc != JIT_OK) /* a retry must not be judged as a new request */
		return proto_store_error_line(rc, "cannot look up the request_id");
	/* the group asked for, by name and by what the name names now (a
	 * reload may have given the name to another group) */
	bool same_group = strcmp(r->group_name, p->group_name) == 0 &&
			  grant_same_pair_group(p->directory, p->group_dn, p->member_attr,
						r->directory, r->group_dn, r->member_attr);
	if (same_group && policy_same_request(p->req, r)) {
		line = grant_reply(g, r->id, true);
	} else {
		/* The other grant is named only when it is of the group asked
		 * for, which the client may see (the main thread's check names
		 * it by the client entry's groups; here, after a race, the
		 * entry is not at hand): request_id is no way to learn of
		 * grants in other groups. */
		bool named = same_group;
		char msg[256];
		snprintf(msg, sizeof(msg), "request_id: \"%.128s\" was used for another request%s%s%s",
			 request_id, named ? " (grant " : "", named ? r->id : "", named ? ")" : "");
		line = reply_refused_rule(g, p, JIT_EPOLICY, msg, NULL, "request_id");
	}
	grant_rec_free(r);
	return line;
}

/*
 * A retry admitted while its first attempt was in progress (racing): its
 * approval's age was not checked, as it was to be answered as the first's
 * duplicate. Under the pair lock, which the first takes to record its row:
 * that row there, the duplicate (or request_id refusal). Else, while
 * another attempt still holds the request_id, it may record it yet (it
 * looks the user up, or waits for its ticket check, before it takes the
 * lock): busy, to be sent again as it is. Else the first ended without a
 * row, and this one is a new request from here, its approval judged now
 * (robustness: retries racing one another could otherwise carry a stale
 * approval to a grant). NULL: go on.
 */
static char *racing_first_failed(struct grant_ctx *g, const struct grant_params *p)
{
	char msg[512];
	char *line = existing_request(g, p, p->req->request_id);

	if (line)
		return line;
	if (p->first_running && p->first_running(p->first_arg))
		return reply_refused(g, p, JIT_EBUSY,
				     "an earlier attempt of this request is still in progress; "
				     "send it again with the same request_id",
				     NULL);
	if (p->approval_max_age <= 0)
		return NULL;
	if (approval_fresh(p->req, p->approval_max_age, now_s(), msg, sizeof(msg)) == JIT_OK)
		return NULL;
	return reply_refused_rule(g, p, JIT_EPOLICY, msg, NULL, "approval_max_age");
}

/*
 * Whether a membership found in place (by the check, or by the add after
 * the check missed it) is standing: yes when no other live grant of the
 * pair exists, or when none of them is jitd's own (others live grants of
 * the pair, any_jitd: one of them has standing = 0).
 */
static bool found_standing(int64_t others, bool any_jitd)
{
	return others == 0 || !any_jitd;
}

/*
 * Records the grant as pending with its standing decided from the directory
 * (present) and the pair's other live grants, which *others and *any_jitd
 * tell as they were before this. Returns JIT_OK, JIT_EEXISTS (request_id
 * raced with another worker), JIT_EPOLICY (the user already holds
 * max_active live grants; 0 = no limit) or JIT_EIO.
 */
static int record_pending(struct grant_ctx *g, struct grant_rec *r, bool present, int max_active,
			  int64_t *others, bool *any_jitd)
{
	int64_t n = 0;
	int rc = store_begin(g->st);
	if (rc != JIT_OK)
		return rc;
	if (max_active > 0 && r->request_id) {
		/* A retry of a grant another worker made meanwhile (both missed
		 * each other at existing_request): it is answered as a retry,
		 * not counted against the user as a second grant. */
		struct grant_rec *prev = NULL;
		rc = store_get_by_request_id(g->st, r->request_id, &prev);
		grant_rec_free(prev);
		if (rc == JIT_OK)
			rc = JIT_EEXISTS;
		else if (rc == JIT_ENOTFOUND)
			rc = JIT_OK;
		if (rc != JIT_OK)
			goto fail;
	}
	if (max_active > 0) {
		/* Inside the write transaction: concurrent grants of one user
		 * (other groups, other workers) are counted one after another. */
		rc = store_count_user_live(g->st, r->user_dn, &n);
		if (rc == JIT_OK && n >= max_active)
			rc = JIT_EPOLICY;
		if (rc != JIT_OK)
			goto fail;
	}
	/* the same membership's grants (grant_settle_kept's predicate): a
	 * pair key shared with another user's grants says nothing of this one */
	const char *exact = grant_exact_value(r);
	rc = store_pair_live_same(g->st, r->pair_key, NULL, GS_LIVE_MASK, r->user_uuid, exact,
				  others, any_jitd);
	if (rc != JIT_OK)
		goto fail;
	if (!present) {
		/* jitd is about to create the membership: whatever the pair's
		 * other grants believed, nothing standing is left to protect. */
		r->standing = false;
		rc = store_pair_clear_standing(g->st, r->pair_key, r->user_uuid, exact);
		if (rc != JIT_OK)
			goto fail;
	} else {
		r->standing = found_standing(*others, *any_jitd);
	}
	rc = store_insert(g->st, r);
fail:
	return grant_end_tx(g, rc);
}

/*
 * Hands pending grant r on to `to` (GS_FAILED, or GS_ENDING heading for
 * failed, whose removal the scheduler then makes), or stops jitd if even
 * that cannot be recorded. A row left pending would outlive the request:
 * the scheduler never looks at it, and it counts as a live grant of its
 * pair, so a later grant's end would keep the membership for it. Start-up
 * recovery turns it into ending(failed) and removes what it may have added.
 */
/* Tries of hand_on_pending() while the store is locked (each waits the
 * store's busy timeout). */
#define HAND_ON_BUSY_TRIES 6

static void hand_on_pending(struct grant_ctx *g, struct grant_rec *r, enum grant_state to,
			    const char *why)
{
	int rc;

	for (int tries = 1;; tries++) {
		if (FAULT_FAIL("fail.record_failure")) {
			rc = JIT_EIO;
		} else if (to != GS_ENDING || r->added_via == NULL) {
			rc = grant_transition(g, r, GS_PENDING, to, GS_FAILED, why);
		} else {
			/* the server that may hold the value, in the same
			 * transaction: the removal goes there first, and a
			 * removal answered by another one waits for it
			 * (grant_schedule_verify) */
			rc = store_begin(g->st);
			if (rc == JIT_OK) {
				rc = store_set_added_via(g->st, r->id, r->added_via,
							 r->added_also_via);
				if (rc == JIT_OK)
					rc = grant_transition(g, r, GS_PENDING, to, GS_FAILED, why);
				rc = grant_end_tx(g, rc);
			}
		}
		/* Robustness: another process holding the store's write lock
		 * (a backup, an operator's sqlite3) is waited for a while
		 * before jitd restarts: start-up recovery needs the same lock. */
		if (rc != JIT_EBUSY || tries >= HAND_ON_BUSY_TRIES)
			break;
		log_warn("grant %s: the store is locked by another process; trying again to "
			 "record its state (%d of %d)", r->id, tries + 1, HAND_ON_BUSY_TRIES);
	}
	if (rc != JIT_OK)
		fatal("grant %s: the store cannot record state; restarting for recovery", r->id);
	r->state = to;
}

/* The add failed: settle the pending row and answer. Called with the pair lock. */
static char *add_failed(struct grant_ctx *g, const struct grant_params *p, struct grant_rec *r,
			int rc, const struct dir_result *dres)
{
	if (rc == JIT_EDIRREFUSED) {
		/* The directory answered no: nothing was written. */
		hand_on_pending(g, r, GS_FAILED, dres->message);
		grant_audit(g, "failed", r, "directory_refused", dres, p->client, &p->peer, NULL);
		return proto_error_line(JIT_EDIRREFUSED, dres->message);
	}
	/* Robustness: the add may or may not have reached the directory; let the
	 * ending machinery remove it (or find it already gone), starting with
	 * the server the unanswered add went to. Recorded with one server too:
	 * an unanswered add may still be applied after the removal found
	 * nothing (grant_settle_remove checks again after the grace). */
	if (dres->unanswered_uri[0] != '\0' && !r->added_via) {
		r->added_via = xstrdup(dres->unanswered_uri);
		/* the retry went unanswered on another server too: both */
		if (dres->unanswered_also_uri[0] != '\0')
			r->added_also_via = xstrdup(dres->unanswered_also_uri);
	}
	hand_on_pending(g, r, GS_ENDING, dres->message);
	grant_audit(g, "failed", r, "directory_unavailable", dres, p->client, &p->peer, NULL);
	return proto_error_line(JIT_EDIRUNAVAIL, dres->message[0] ? dres->message : NULL);
}

/*
 * pending -> active, recording in the same transaction which server (URI)
 * answered the add when the directory has several: the revocation goes
 * there first (see grant_settle_membership).
 */
static int activate(struct grant_ctx *g, struct grant_rec *r)
{
	int rc;

	if (r->added_via == NULL)
		return grant_transition(g, r, GS_PENDING, GS_ACTIVE, GS_PENDING, NULL);
	rc = store_begin(g->st);
	if (rc != JIT_OK)
		return rc;
	rc = store_set_added_via(g->st, r->id, r->added_via, r->added_also_via);
	if (rc == JIT_OK)
		rc = grant_transition(g, r, GS_PENDING, GS_ACTIVE, GS_PENDING, NULL);
	return grant_end_tx(g, rc);
}

/*
 * memberUid: the uid value of u that names it in the group (*value).
 * Security: the name service takes any entry holding that value for the
 * member, so it must name this entry alone. The value that is the name as
 * asked, if the entry has it, else its first. The user search proved it
 * unique when it was the default search by uid and the value is the name
 * it searched for, byte for byte; otherwise a search by uid_attr must find
 * this entry alone.
 * NULL, or the refusal's answer line.
 */
static char *member_uid(struct grant_ctx *g, const struct grant_params *p,
			const struct dir_user *u, const char **value)
{
	const char *asked = p->req->user;
	/* the value that is the name byte for byte, else one equal to it as
	 * names compare, else the first */
	*value = u->uid;
	for (int pass = 0; pass < 2 && strcmp(*value, asked) != 0; pass++) {
		if (pass == 1 && policy_name_eq(u->uid, asked))
			break;
		for (size_t i = 0; u->uid_others && u->uid_others[i]; i++)
			if (pass == 0 ? strcmp(u->uid_others[i], asked) == 0
				      : policy_name_eq(u->uid_others[i], asked)) {
				*value = u->uid_others[i];
				break;
			}
	}
	/* the default search found the entry alone by exactly this value */
	if (strcmp(*value, asked) == 0 && dir_user_filter_is_uid(g->dc))
		return NULL;
	struct dir_result dres = { 0 };
	bool alone = false;
	int rc = dir_uid_names_only(g->dc, *value, u->dn, &alone, &dres);
	if (rc != JIT_OK)
		return reply_refused(g, p, rc, dres.message[0] ? dres.message : NULL, &dres);
	if (!alone) {
		char msg[400];
		snprintf(msg, sizeof(msg), "the user's uid \"%.128s\" (uid_attr) does not name its "
			 "entry alone: a memberUid group would make another entry a member",
			 *value);
		return reply_refused(g, p, JIT_EDIRREFUSED, msg, NULL);
	}
	return NULL;
}

char *grant_create(struct grant_ctx *g, const struct grant_params *p)
{
	struct dir_user u = { 0 };
	struct dir_result dres = { 0 };
	struct grant_rec r;
	char id[32], hex[25];
	bool present = false, already = false, any_jitd = false;
	int64_t others = 0;
	char *line = existing_request(g, p, p->req->request_id);
	if (line)
		return line;

	int64_t t = mono_us();
	int rc = dir_resolve_user(g->dc, p->req->user, &u, &dres);
	timing_since(STEP_LOOKUP_USER, t);
	if (rc != JIT_OK) {
		const char *msg = rc == JIT_EUNKUSER ? "no single directory entry matches this user"
						     : dres.message;
		return reply_refused(g, p, rc, msg[0] ? msg : NULL, &dres);
	}
	if (u.disabled) {
		dir_user_clear(&u);
		return reply_refused_rule(g, p, JIT_EPOLICY, "the account is disabled in the directory",
					  NULL, "account_disabled");
	}
	line = check_dirrules(g, p, &u);
	if (line) {
		dir_user_clear(&u);
		return line;
	}
	bool by_uid = strcasecmp(p->member_attr, "memberUid") == 0;
	if (!by_uid && u.uuid == NULL) {
		/* A DN-valued membership is followed through renames and moves by
		 * the entry's uuid_attr; without it, a rename during the grant
		 * would leave the membership behind at its end. */
		char msg[320];
		snprintf(msg, sizeof(msg), "the user's entry has no readable %.64s: jitd could not "
			 "follow it through a rename (check uuid_attr and the service account's "
			 "read access)", dir_conn_uuid_attr(g->dc));
		dir_user_clear(&u);
		return reply_refused(g, p, JIT_EDIRREFUSED, msg, NULL);
	}
	if (by_uid && u.uid == NULL) {
		/* Robustness: the membership is the entry's own uid; the name as
		 * asked may be another account's uid (a user_filter on cn,
		 * mail...), whom no rule above was checked for. */
		char msg[320];
		snprintf(msg, sizeof(msg), "the user's entry has no readable uid (uid_attr): a "
			 "memberUid group names members by it (check uid_attr and the service "
			 "account's read access)");
		dir_user_clear(&u);
		return reply_refused(g, p, JIT_EDIRREFUSED, msg, NULL);
	}
	const char *value = u.dn;
	if (by_uid && (line = member_uid(g, p, &u, &value)) != NULL) {
		dir_user_clear(&u);
		return line;
	}
	if (random_hex(hex, 12) != JIT_OK) {
		dir_user_clear(&u);
		return proto_error_line(JIT_EINTERNAL, "no randomness for a grant id");
	}
	snprintf(id, sizeof(id), "g-%s", hex);
	fill_rec(&r, p, &u, value, grant_pair_key(p->directory, p->group_dn, p->member_attr, value),
		 id);
	dir_user_clear(&u);

	pthread_mutex_t *lock = grant_pair_lock(g->pair_locks, r.pair_key);
	pthread_mutex_lock(lock);
	if (p->racing && (line = racing_first_failed(g, p)) != NULL)
		goto out;
	grant_settle_pair(g, r.pair_key);
	t = mono_us();
	rc = dir_is_member(g->dc, r.group_dn, r.member_attr, r.member_value, &present, &dres);
	timing_since(STEP_CHECK_MEMBER, t);
	if (rc == JIT_OK && present && FAULT_FAIL("fail.member_check"))
		present = false; /* as if it was added by someone between check and add */
	if (rc != JIT_OK) {
		line = reply_refused(g, p, rc, dres.message[0] ? dres.message : NULL, &dres);
		goto out;
	}
	FAULT_POINT("grant.before_pending");
	t = mono_us();
	rc = record_pending(g, &r, present, p->rules ? p->rules->max_active : 0, &others,
			    &any_jitd);
	timing_since(STEP_RECORD_PENDING, t);
	if (rc == JIT_EEXISTS && (line = existing_request(g, p, r.request_id)) != NULL)
		goto out;
	if (rc == JIT_EPOLICY) {
		char msg[256];
		snprintf(msg, sizeof(msg), "max_active_per_user: \"%.64s\" already holds %d live "
			 "grant(s), the most group \"%s\" allows", r.user, p->rules->max_active,
			 p->group_name);
		line = reply_refused_rule(g, p, JIT_EPOLICY, msg, NULL, "max_active_per_user");
		goto out;
	}
	if (rc != JIT_OK) {
		line = reply_refused(g, p, JIT_EINTERNAL, "cannot record the grant", NULL);
		goto out;
	}
	FAULT_POINT("grant.after_pending");
	if (!present) {
		char *add = dir_add_value(g->dc, r.member_attr, r.member_value, r.user_uuid);
		t = mono_us();
		rc = dir_add_member(g->dc, r.group_dn, r.member_attr, add, &already, &dres);
		timing_since(STEP_DIRECTORY_ADD, t);
		free(add);
		if (rc != JIT_OK) {
			line = add_failed(g, p, &r, rc, &dres);
			FAULT_POINT("grant.after_add_failed");
			goto out;
		}
		FAULT_POINT("grant.after_dir_add");
		if (already && found_standing(others, any_jitd)) {
			/* Robustness: the check found no member and the add found
			 * one: someone made it meanwhile (or jitd may write the
			 * group but not read it, and it predates every live grant
			 * of the pair). jitd did not make it: standing, decided as
			 * if the check had seen it, and recorded at once, so that
			 * no failure or crash from here on removes it. When another
			 * live grant of the pair is jitd's own, the membership may
			 * be that grant's (a group jitd cannot read, an add
			 * replicated meanwhile): then it stays jitd's. */
			rc = FAULT_FAIL("fail.set_standing")
				     ? JIT_EIO
				     : store_pair_set_standing(g->st, r.pair_key, r.user_uuid,
							       grant_exact_value(&r));
			if (rc != JIT_OK) {
				/* jitd wrote nothing: the grant fails without a
				 * removal (ending would remove the membership that
				 * was there before it) */
				hand_on_pending(g, &r, GS_FAILED,
						"store write failed; the membership was there before "
						"the grant and stays");
				grant_audit(g, "failed", &r, "kept_standing", NULL, p->client, &p->peer,
					    NULL);
				line = proto_error_line(JIT_EINTERNAL, "cannot record the grant");
				goto out;
			}
			r.standing = true;
			log_info("grant %s: %s was a member of %s already when added; recorded as "
				 "standing", r.id, r.user, r.group_dn);
		}
	}
	if (dir_conn_uri_count(g->dc) > 1 && dres.uri[0] != '\0') {
		if (dres.unanswered_uri[0] != '\0') {
			/* Robustness: the add went unanswered on one server and
			 * was written by another, or by the same one at a retry.
			 * The first may hold it too (applied before its answer
			 * was lost, or late, after a stall): it comes first at the
			 * removal, which waits for it, and the second is asked as
			 * well; the end is checked again after replication_grace
			 * (grant_settle_remove: a second writer, possibly the
			 * first one again). */
			r.added_via = xstrdup(dres.unanswered_uri);
			r.added_also_via = xstrdup(dres.uri);
		} else {
			r.added_via = xstrdup(dres.uri); /* the server that wrote it (or had it) */
		}
	} else if (dres.unanswered_uri[0] != '\0') {
		/* Robustness: one server, an attempt unanswered and the retry
		 * answered (a stall, a connection lost with the add sent): the
		 * first may still be applied after this grant's removal. With
		 * one server, added_via is recorded only then, and the end
		 * checks again after replication_grace. */
		r.added_via = xstrdup(dres.unanswered_uri);
	}
	/* Evidence first: the `granted` line is durable before the row turns
	 * active and before the client hears ok. */
	r.state = GS_ACTIVE;
	t = mono_us();
	rc = FAULT_FAIL("fail.audit_granted")
		     ? JIT_EIO
		     : grant_audit_granted(g, &r,
					   present || already ? (r.standing ? "standing"
									   : "already_member")
							      : "added",
					   p);
	timing_since(STEP_AUDIT_GRANTED, t);
	if (rc != JIT_OK) {
		r.state = GS_PENDING;
		hand_on_pending(g, &r, GS_ENDING, "audit log write failed");
		line = proto_error_line(JIT_EINTERNAL, "audit log write failed; grant rolled back");
		goto out;
	}
	FAULT_POINT("grant.after_audit_granted");
	t = mono_us();
	rc = activate(g, &r);
	timing_since(STEP_RECORD_ACTIVE, t);
	if (rc != JIT_OK) {
		/* Robustness: a pending row is invisible to the scheduler; hand it to
		 * the ending machinery (which removes the membership at once). */
		r.state = GS_PENDING;
		hand_on_pending(g, &r, GS_ENDING, "store write failed");
		line = proto_error_line(JIT_EINTERNAL, "cannot record the grant as active");
		goto out;
	}
	FAULT_POINT("grant.after_active");
	log_info("granted %s: %s -> %s until %lld (%s)", r.id, r.user, r.group_name,
		 (long long)r.expires_at, r.standing ? "standing" : "added");
	line = grant_reply(g, r.id, false);
out:
	pthread_mutex_unlock(lock);
	grant_rec_clear(&r);
	return line;
}
