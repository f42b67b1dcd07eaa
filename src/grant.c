/*
 * grant.c - the grant state machine (see grant.h for the diagram).
 * Runs in engine worker threads. Trust: request fields were validated by
 * proto.c/policy.c; directory answers are untrusted and mapped through
 * directory.h. Robustness: each transition is committed to the store before
 * the directory write it authorises, so a crash at any point leaves a row
 * from which the same machine finishes the job.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dirrules.h"
#include "fault.h"
#include "grant.h"
#include "log.h"
#include "timing.h"
#include "util.h"

/* The allowed transitions: the one table the machine obeys. */
static const struct {
	enum grant_state from, to;
} transitions[] = {
	{ GS_PENDING, GS_ACTIVE },     /* directory add done (or standing) */
	{ GS_PENDING, GS_FAILED },     /* directory refused the add */
	{ GS_PENDING, GS_ENDING },     /* add outcome unknown, or recovery */
	{ GS_ACTIVE, GS_ENDING },      /* expiry, complete, revoke */
	{ GS_ENDING, GS_EXPIRED },
	{ GS_ENDING, GS_COMPLETED },
	{ GS_ENDING, GS_REVOKED },
	{ GS_ENDING, GS_FAILED },
};

static void check_legal(const struct grant_rec *r, enum grant_state from, enum grant_state to)
{
	bool ok = false;
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			ok = true;
	if (!ok)
		fatal("grant %s: illegal transition %s -> %s", r->id, grant_state_name(from),
		      grant_state_name(to));
}

static int transition(struct grant_ctx *g, const struct grant_rec *r, enum grant_state from,
		      enum grant_state to, enum grant_state end_state, const char *err)
{
	check_legal(r, from, to);
	return store_set_state(g->st, r->id, from, to, end_state, now_s(), err);
}

/* ACTIVE -> ENDING(EXPIRED) if still due: a transition with a
 * compare-and-set on expires_at too. JIT_ENOTFOUND if no longer due. */
static int expire_due(struct grant_ctx *g, const struct grant_rec *r, int64_t now)
{
	check_legal(r, GS_ACTIVE, GS_ENDING);
	return store_expire_due(g->st, r->id, now);
}

int64_t grant_backoff(int64_t attempts, int64_t retry_min, int64_t retry_max)
{
	int64_t d = retry_min > 0 ? retry_min : 1;
	for (int64_t i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d < retry_max ? d : retry_max;
}

static pthread_mutex_t *pair_lock(struct grant_ctx *g, const char *pair_key)
{
	uint32_t h = 2166136261u; /* FNV-1a: spreads keys over the stripes */
	for (const unsigned char *p = (const unsigned char *)pair_key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &g->pair_locks[h % GRANT_PAIR_LOCKS];
}

/* The pair key: dir_pair_key() (the group DN and a DN value in one
 * canonical form, case-folded). Store migration 7 rewrote the keys of
 * rows made before with this function. */
static char *make_pair_key(const char *dir, const char *group_dn, const char *attr,
			   const char *value)
{
	return dir_pair_key(dir, group_dn, attr, value);
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

json_t *grant_audit_fields(const struct grant_rec *r)
{
	char ts[32];
	json_t *o = json_object();
	set_str(o, "grant_id", r->id);
	set_str(o, "state", grant_state_name(r->state));
	set_str(o, "user", r->user);
	set_str(o, "user_dn", r->user_dn);
	set_str(o, "user_uuid", r->user_uuid);
	set_str(o, "group", r->group_name);
	set_str(o, "group_dn", r->group_dn);
	set_str(o, "directory", r->directory);
	set_str(o, "added_via", r->added_via);
	json_object_set_new(o, "duration", json_integer(r->duration));
	fmt_rfc3339(r->created_at, ts);
	set_str(o, "created_at", ts);
	fmt_rfc3339(r->expires_at, ts);
	set_str(o, "expires_at", ts);
	set_str(o, "ticket", r->ticket);
	set_str(o, "reason", r->reason);
	set_str(o, "requested_by", r->requested_by);
	set_str(o, "approved_by", r->approved_by);
	set_str(o, "request_id", r->request_id);
	set_str(o, "client", r->client);
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
	if (extra)
		json_object_update(o, extra);
	set_str(o, "outcome", outcome);
	if (dres && dres->message[0]) {
		json_object_set_new(o, "ldap_code", json_integer(dres->ldap_code));
		set_str(o, "message", dres->message);
	}
	if (event && strcmp(event, "revoke_failed") == 0)
		json_object_set_new(o, "attempts", json_integer((json_int_t)r->attempts));
	if (who)
		set_str(o, "by_client", who);
	if (peer && event && strcmp(event, "granted") != 0) {
		json_object_set_new(o, "by_peer_uid", json_integer((json_int_t)peer->uid));
		json_object_set_new(o, "by_peer_pid", json_integer((json_int_t)peer->pid));
	}
	set_str(o, "end_reason", why);
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

static int audit_grant(struct grant_ctx *g, const char *event, const struct grant_rec *r,
		       const char *outcome, const struct dir_result *dres, const char *who,
		       const struct jit_peer *peer, const char *why)
{
	return audit_grant_x(g, event, r, outcome, dres, who, peer, why, NULL);
}

static char *reply_grant(struct grant_ctx *g, const char *id, bool duplicate)
{
	struct grant_rec *r = NULL;
	if (store_get(g->st, id, &r) != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "grant recorded but cannot be read back");
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "grant", proto_grant_json(r));
	if (duplicate)
		json_object_set_new(o, "duplicate", json_true());
	grant_rec_free(r);
	return proto_dump_line(o);
}

/* The `refused` audit line and the error answer; rule: the policy rule, or NULL. */
static char *reply_refused_rule(struct grant_ctx *g, const struct grant_params *p, int err,
				const char *msg, const struct dir_result *dres, const char *rule)
{
	json_t *o = json_object();
	set_str(o, "op", "grant");
	set_str(o, "user", p->req->user);
	set_str(o, "group", p->group_name);
	set_str(o, "ticket", p->req->ticket);
	set_str(o, "requested_by", p->req->requested_by);
	set_str(o, "approved_by", p->req->approved_by);
	set_str(o, "request_id", p->req->request_id);
	set_str(o, "client", p->client);
	json_object_set_new(o, "peer_uid", json_integer((json_int_t)p->peer.uid));
	json_object_set_new(o, "peer_pid", json_integer((json_int_t)p->peer.pid));
	set_str(o, "error", jit_err_code(err));
	set_str(o, "message", msg ? msg : jit_err_message(err));
	if (dres && dres->message[0])
		json_object_set_new(o, "ldap_code", json_integer(dres->ldap_code));
	set_str(o, "rule", rule);
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
 * NULL if none. */
static char *existing_request(struct grant_ctx *g, const struct grant_params *p,
			      const char *request_id)
{
	struct grant_rec *r = NULL;
	char *line;
	if (!request_id || store_get_by_request_id(g->st, request_id, &r) != JIT_OK)
		return NULL;
	if (policy_same_request(p->req, r)) {
		line = reply_grant(g, r->id, true);
	} else {
		char msg[256];
		snprintf(msg, sizeof(msg), "request_id: \"%.128s\" was used for another request "
			 "(grant %s)", request_id, r->id);
		line = reply_refused_rule(g, p, JIT_EPOLICY, msg, NULL, "request_id");
	}
	grant_rec_free(r);
	return line;
}

/* Ends the transaction begun with store_begin(): commits if rc (what the
 * statements in it returned) is JIT_OK, else rolls back and returns rc. */
static int end_tx(struct grant_ctx *g, int rc)
{
	if (rc != JIT_OK) {
		store_rollback(g->st);
		return rc;
	}
	return store_commit(g->st);
}

/*
 * Records the grant as pending with its standing decided from the directory
 * (present) and the pair's other live grants. Returns JIT_OK, JIT_EEXISTS
 * (request_id raced with another worker), JIT_EPOLICY (the user already
 * holds max_active live grants; 0 = no limit) or JIT_EIO.
 */
static int record_pending(struct grant_ctx *g, struct grant_rec *r, bool present, int max_active)
{
	int64_t n = 0;
	bool any_jitd = false;
	int rc = store_begin(g->st);
	if (rc != JIT_OK)
		return rc;
	if (max_active > 0) {
		/* Inside the write transaction: concurrent grants of one user
		 * (other groups, other workers) are counted one after another. */
		rc = store_count_user_live(g->st, r->user_dn, &n);
		if (rc == JIT_OK && n >= max_active)
			rc = JIT_EPOLICY;
		if (rc != JIT_OK)
			goto fail;
	}
	rc = store_pair_live(g->st, r->pair_key, NULL, GS_LIVE_MASK, &n, &any_jitd);
	if (rc != JIT_OK)
		goto fail;
	if (!present) {
		/* jitd is about to create the membership: whatever the pair's
		 * other grants believed, nothing standing is left to protect. */
		r->standing = false;
		rc = store_pair_clear_standing(g->st, r->pair_key);
		if (rc != JIT_OK)
			goto fail;
	} else {
		r->standing = n == 0 ? true : !any_jitd;
	}
	rc = store_insert(g->st, r);
fail:
	return end_tx(g, rc);
}

/*
 * Hands pending grant r on to `to` (GS_FAILED, or GS_ENDING heading for
 * failed, whose removal the scheduler then makes), or stops jitd if even
 * that cannot be recorded. A row left pending would outlive the request:
 * the scheduler never looks at it, and it counts as a live grant of its
 * pair, so a later grant's end would keep the membership for it. Start-up
 * recovery turns it into ending(failed) and removes what it may have added.
 */
static void hand_on_pending(struct grant_ctx *g, struct grant_rec *r, enum grant_state to,
			    const char *why)
{
	int rc;

	if (FAULT_FAIL("fail.record_failure")) {
		rc = JIT_EIO;
	} else if (to != GS_ENDING || r->added_via == NULL) {
		rc = transition(g, r, GS_PENDING, to, GS_FAILED, why);
	} else {
		/* the server that may hold the value, in the same transaction:
		 * the removal goes there first, and a removal answered by
		 * another one waits for it (schedule_verify) */
		rc = store_begin(g->st);
		if (rc == JIT_OK) {
			rc = store_set_added_via(g->st, r->id, r->added_via);
			if (rc == JIT_OK)
				rc = transition(g, r, GS_PENDING, to, GS_FAILED, why);
			rc = end_tx(g, rc);
		}
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
		audit_grant(g, "failed", r, "directory_refused", dres, p->client, &p->peer, NULL);
		return proto_error_line(JIT_EDIRREFUSED, dres->message);
	}
	/* Robustness: the add may or may not have reached the directory; let the
	 * ending machinery remove it (or find it already gone), starting with
	 * the server the unanswered add went to. */
	if (dir_conn_uri_count(g->dc) > 1 && dres->unanswered_uri[0] != '\0' && !r->added_via)
		r->added_via = xstrdup(dres->unanswered_uri);
	hand_on_pending(g, r, GS_ENDING, dres->message);
	audit_grant(g, "failed", r, "directory_unavailable", dres, p->client, &p->peer, NULL);
	return proto_error_line(JIT_EDIRUNAVAIL, dres->message[0] ? dres->message : NULL);
}

/*
 * pending -> active, recording in the same transaction which server (URI)
 * answered the add when the directory has several: the revocation goes
 * there first (see settle_membership).
 */
static int activate(struct grant_ctx *g, struct grant_rec *r)
{
	int rc;

	if (r->added_via == NULL)
		return transition(g, r, GS_PENDING, GS_ACTIVE, GS_PENDING, NULL);
	rc = store_begin(g->st);
	if (rc != JIT_OK)
		return rc;
	rc = store_set_added_via(g->st, r->id, r->added_via);
	if (rc == JIT_OK)
		rc = transition(g, r, GS_PENDING, GS_ACTIVE, GS_PENDING, NULL);
	return end_tx(g, rc);
}

static void settle_pair(struct grant_ctx *g, const char *pair_key);

char *grant_create(struct grant_ctx *g, const struct grant_params *p)
{
	struct dir_user u = { 0 };
	struct dir_result dres = { 0 };
	struct grant_rec r;
	char id[32], hex[25];
	bool present = false, already = false;
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
	const char *value = by_uid ? (u.uid ? u.uid : p->req->user) : u.dn;
	if (random_hex(hex, 12) != JIT_OK) {
		dir_user_clear(&u);
		return proto_error_line(JIT_EINTERNAL, "no randomness for a grant id");
	}
	snprintf(id, sizeof(id), "g-%s", hex);
	fill_rec(&r, p, &u, value, make_pair_key(p->directory, p->group_dn, p->member_attr, value),
		 id);
	dir_user_clear(&u);

	pthread_mutex_t *lock = pair_lock(g, r.pair_key);
	pthread_mutex_lock(lock);
	settle_pair(g, r.pair_key);
	t = mono_us();
	rc = dir_is_member(g->dc, r.group_dn, r.member_attr, r.member_value, &present, &dres);
	timing_since(STEP_CHECK_MEMBER, t);
	if (rc != JIT_OK) {
		line = reply_refused(g, p, rc, dres.message[0] ? dres.message : NULL, &dres);
		goto out;
	}
	FAULT_POINT("grant.before_pending");
	t = mono_us();
	rc = record_pending(g, &r, present, p->rules ? p->rules->max_active : 0);
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
		t = mono_us();
		rc = dir_add_member(g->dc, r.group_dn, r.member_attr, r.member_value, &already,
				    &dres);
		timing_since(STEP_DIRECTORY_ADD, t);
		if (rc != JIT_OK) {
			line = add_failed(g, p, &r, rc, &dres);
			FAULT_POINT("grant.after_add_failed");
			goto out;
		}
		FAULT_POINT("grant.after_dir_add");
	}
	if (dir_conn_uri_count(g->dc) > 1 && dres.uri[0] != '\0')
		r.added_via = xstrdup(dres.uri); /* the server that wrote it (or had it) */
	/* Evidence first: the `granted` line is durable before the row turns
	 * active and before the client hears ok. */
	r.state = GS_ACTIVE;
	t = mono_us();
	rc = FAULT_FAIL("fail.audit_granted")
		     ? JIT_EIO
		     : audit_grant(g, "granted", &r,
				   present ? (r.standing ? "standing" : "already_member") : "added",
				   NULL, NULL, NULL, NULL);
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
	line = reply_grant(g, r.id, false);
out:
	pthread_mutex_unlock(lock);
	grant_rec_clear(&r);
	return line;
}

/* What one removal step found and did. */
struct settle {
	const char *outcome;    /* removal outcome (audit log) */
	char *value;            /* value removed, when it was not member_value; freed */
	char uri[256];          /* the server that answered, "" if none was asked */
	bool verify;            /* answered by another server than the one that
				 * wrote the membership: check again later */
};

/* Does something other than r hold r's membership (another live grant of
 * the same value, or a standing membership)? Then st->outcome says what. */
static int settle_kept(struct grant_ctx *g, const struct grant_rec *r, struct settle *st)
{
	int64_t others = 0;
	bool any_jitd = false;
	int rc = store_pair_live(g->st, r->pair_key, r->id, GS_BIT(GS_PENDING) | GS_BIT(GS_ACTIVE),
				 &others, &any_jitd);
	if (rc != JIT_OK)
		return rc;
	if (others > 0)
		st->outcome = "kept_other_grant";
	else if (r->standing)
		st->outcome = "kept_standing";
	return JIT_OK;
}

/*
 * Removes the membership of ending grant r, which nothing else holds
 * (settle_kept): the value that refers to the user now (see
 * dir_revoke_member), so a rename or move during the window changes
 * nothing. Several servers (replicas, domain controllers): the one that
 * wrote the membership is asked first; when another one answers, the add
 * may not have replicated there yet ("not a member", and then the add
 * arrives and stays), so st->verify asks the caller to check again after
 * replication_grace. JIT_OK with st filled, or the directory error.
 */
static int settle_remove(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			 struct dir_result *dres)
{
	bool removed = false;
	bool multi = dir_conn_uri_count(g->dc) > 1;
	struct dir_member m = { r->group_dn, r->member_attr, r->member_value, r->user_uuid,
				r->placeholder };
	int rc;

	if (multi && r->added_via)
		(void)dir_conn_prefer(g->dc, r->added_via);
	rc = dir_revoke_member(g->dc, &m, &removed, &st->value, dres);
	if (rc != JIT_OK)
		return rc;
	st->outcome = removed ? "removed" : "already_absent";
	if (st->value && strcasecmp(st->value, r->member_value) == 0) {
		free(st->value);
		st->value = NULL;
	}
	if (multi) {
		snprintf(st->uri, sizeof(st->uri), "%s", dres->uri);
		st->verify = r->added_via == NULL || strcasecmp(dres->uri, r->added_via) != 0;
	}
	return JIT_OK;
}

/* Ends ending grant r's membership unless something else holds it:
 * settle_kept, then settle_remove. */
static int settle_membership(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			     struct dir_result *dres)
{
	int rc = settle_kept(g, r, st);
	if (rc != JIT_OK || st->outcome != NULL)
		return rc;
	return settle_remove(g, r, st, dres);
}

/*
 * The removal was answered by another server than the writer. It is final
 * only when no add can still be on its way to that server:
 *  - the value was there and was removed (the add had replicated; the
 *    delete replicates back), and a check after replication_grace finds
 *    nothing; or
 *  - the writer is unknown (jitd stopped while the add was on its way:
 *    an unanswered add records where it went, see add_failed) or no
 *    longer configured, and a check after the grace finds nothing.
 * While the writer is configured but unreachable and the others never saw
 * the value, the add may still sit on the writer alone: check again every
 * replication_grace, preferring the writer, until it answers.
 * True when the grant waits for a check (the row was updated).
 */
static bool schedule_verify(struct grant_ctx *g, struct grant_rec *r, const struct settle *st,
			    int64_t now)
{
	bool checking = r->removed_via != NULL;
	bool removed_now = strcmp(st->outcome, "removed") == 0;
	bool writer_known = r->added_via != NULL && dir_conn_has_uri(g->dc, r->added_via);
	const char *oc = checking && !removed_now ? r->removed_outcome : st->outcome;

	if (!st->verify)
		return false;
	if (checking && !removed_now &&
	    (!writer_known || (oc != NULL && strcmp(oc, "removed") == 0)))
		return false;
	if (checking && removed_now)
		oc = "removed";
	if (store_set_verify(g->st, r->id, st->uri, oc ? oc : st->outcome,
			     now + g->replication_grace) != JIT_OK) {
		log_err("grant %s: cannot record the check after replication_grace", r->id);
		return false; /* Robustness: then no check, but never a stuck row */
	}
	log_info("grant %s: %s on %s (written on %s); checking again in %llds", r->id,
		 st->outcome, st->uri, r->added_via ? r->added_via : "an unknown server",
		 (long long)g->replication_grace);
	return true;
}

/* The removal of ending grant r failed with rc: schedule the retry. */
static void removal_failed(struct grant_ctx *g, struct grant_rec *r, int rc,
			   const struct dir_result *dres, const char *reason, const char *client,
			   const struct jit_peer *peer, int64_t now)
{
	int64_t attempts = r->attempts + 1;
	int64_t next = now + grant_backoff(attempts, g->retry_min, g->retry_max);
	const char *msg = dres->message[0] ? dres->message : jit_err_message(rc);
	/* A refusal is an answer: it will not go away by waiting (status
	 * counts it as revocations_failing); an outage will. */
	if (store_set_retry_kind(g->st, r->id, attempts, next, msg, rc != JIT_EDIRUNAVAIL) != JIT_OK)
		log_err("grant %s: cannot record retry", r->id);
	FAULT_POINT("grant.after_retry");
	log_warn("grant %s: removal failed (attempt %lld, next in %llds): %s", r->id,
		 (long long)attempts, (long long)(next - now), msg);
	/* Rate limit: the first attempts, then every 20th. */
	r->attempts = attempts;
	if (attempts <= 3 || attempts % 20 == 0)
		audit_grant(g, "revoke_failed", r, jit_err_code(rc), dres, client, peer, reason);
}

/*
 * The final line of ending grant r could not be written. Evidence first:
 * the row stays ending, and its retry (with backoff, as for a failed
 * removal) writes the line and then closes it; the membership is gone
 * already, so the retry finds it absent and says so.
 */
static void final_audit_failed(struct grant_ctx *g, struct grant_rec *r, int64_t now)
{
	int64_t attempts = r->attempts + 1;
	int64_t next = now + grant_backoff(attempts, g->retry_min, g->retry_max);
	log_err("audit: could not record the %s of grant %s; the grant stays ending and is "
		"recorded again in %llds", grant_state_name(r->end_state), r->id,
		(long long)(next - now));
	if (store_set_retry_kind(g->st, r->id, attempts, next, "audit log write failed", false) !=
	    JIT_OK)
		log_err("grant %s: cannot record retry", r->id);
	r->attempts = attempts;
}

/* What the removal of r did (after a check after the grace: what the
 * removal before it did). */
static const char *end_outcome(const struct grant_rec *r, const struct settle *st)
{
	if (r->removed_via && strcmp(st->outcome, "already_absent") == 0 && r->removed_outcome)
		return r->removed_outcome;
	return st->outcome;
}

/* The final audit event of ending grant r (its end_state); frees st->value. */
static json_t *end_audit_obj(struct grant_rec *r, struct settle *st, const struct dir_result *dres,
			     const char *reason, const char *client, const struct jit_peer *peer)
{
	json_t *extra = json_object();
	set_str(extra, "removed_value", st->value);
	if (st->uri[0])
		set_str(extra, "removed_via", st->uri);
	if (r->removed_via)
		json_object_set_new(extra, "checked_after_grace", json_true());
	free(st->value);
	st->value = NULL;
	enum grant_state ending = r->state;
	r->state = r->end_state;
	json_t *o = audit_grant_obj(grant_state_name(r->end_state), r, end_outcome(r, st), dres,
				    client, peer, reason, extra);
	r->state = ending;
	json_decref(extra);
	return o;
}

static char *end_locked(struct grant_ctx *g, struct grant_rec *r, enum grant_state end_state,
			bool scheduled, const char *reason, const char *client,
			const struct jit_peer *peer)
{
	struct dir_result dres = { 0 };
	struct settle st = { 0 };
	const char *outcome = NULL;
	int64_t now = now_s(), t;
	int rc;
	switch (r->state) {
	case GS_ACTIVE:
		if (scheduled && end_state == GS_EXPIRED && r->expires_at > now)
			return reply_grant(g, r->id, false); /* extended meanwhile */
		FAULT_POINT("grant.before_ending");
		t = mono_us();
		/* Robustness: a scheduled expiry checks expires_at again in the
		 * same statement: an extend (main thread, no pair lock) may have
		 * committed since r was read; then the grant stays. */
		rc = scheduled && end_state == GS_EXPIRED
			     ? expire_due(g, r, now)
			     : transition(g, r, GS_ACTIVE, GS_ENDING, end_state, NULL);
		timing_since(STEP_RECORD_ENDING, t);
		if (rc == JIT_ENOTFOUND && scheduled && end_state == GS_EXPIRED)
			return reply_grant(g, r->id, false);
		if (rc != JIT_OK)
			return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
		r->state = GS_ENDING;
		r->end_state = end_state;
		break;
	case GS_ENDING:
		if (r->removed_via && r->next_attempt > now)
			return reply_grant(g, r->id, false); /* waits for replication_grace */
		break; /* retry (scheduled) or the client asks again: try now */
	case GS_PENDING:
		return proto_error_line(JIT_ENOTACTIVE, "the grant is still being created");
	default:
		return reply_grant(g, r->id, false); /* already ended: idempotent */
	}
	FAULT_POINT("grant.after_ending");
	t = mono_us();
	rc = settle_membership(g, r, &st, &dres);
	timing_since(STEP_DIRECTORY_REMOVE, t);
	if (rc == JIT_OK && schedule_verify(g, r, &st, now)) {
		free(st.value);
		return reply_grant(g, r->id, false);
	}
	if (rc != JIT_OK) {
		removal_failed(g, r, rc, &dres, reason, client, peer, now);
		free(st.value);
		return reply_grant(g, r->id, false);
	}
	outcome = end_outcome(r, &st);
	FAULT_POINT("grant.after_dir_remove");
	/* Evidence first: after a crash between these two steps the ending row
	 * is retried and the event recorded again, never lost. */
	json_t *o = end_audit_obj(r, &st, &dres, reason, client, peer);
	t = mono_us();
	rc = FAULT_FAIL("fail.final_audit") ? JIT_EIO
					    : audit_write(g->audit, grant_state_name(r->end_state), o);
	timing_since(STEP_AUDIT_ENDED, t);
	json_decref(o);
	if (rc != JIT_OK) {
		final_audit_failed(g, r, now);
		return reply_grant(g, r->id, false);
	}
	FAULT_POINT("grant.after_final_audit");
	t = mono_us();
	rc = transition(g, r, GS_ENDING, r->end_state, r->end_state, NULL);
	timing_since(STEP_RECORD_ENDED, t);
	if (rc != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
	FAULT_POINT("grant.after_final");
	r->state = r->end_state;
	log_info("%s %s: %s <- %s (%s)", grant_state_name(r->end_state), r->id, r->group_name,
		 r->user, outcome);
	return reply_grant(g, r->id, false);
}

/* One ending row of the pair a new grant is about to use (pair lock held). */
static int settle_one(const struct grant_rec *row, void *arg)
{
	struct grant_ctx *g = arg;
	struct grant_rec *r = NULL;
	if (store_get(g->st, row->id, &r) != JIT_OK)
		return 0;
	if (r->state == GS_ENDING)
		free(end_locked(g, r, r->end_state, true, NULL, NULL, NULL));
	grant_rec_free(r);
	return 0;
}

/*
 * Robustness: before a new grant of a pair looks at the directory, the
 * pair's unfinished ends (a grant rolled back by start-up recovery, a
 * removal waiting for its retry) are run to their end now, so the new
 * grant decides from a settled membership and never races a removal that
 * was decided before it. A removal that fails again stays ending (and the
 * new grant then inherits jitd's ownership of the membership).
 */
static void settle_pair(struct grant_ctx *g, const char *pair_key)
{
	if (store_pair_ending(g->st, pair_key, settle_one, g) < 0)
		log_err("cannot read the unfinished ends of a pair; the new grant goes on");
}

char *grant_end(struct grant_ctx *g, const char *id, enum grant_state end_state, bool scheduled,
		const char *reason, const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r = NULL;
	if (store_get(g->st, id, &r) != JIT_OK)
		return proto_error_line(JIT_ENOTFOUND, NULL);
	pthread_mutex_t *lock = pair_lock(g, r->pair_key);
	pthread_mutex_lock(lock);
	/* Reload under the lock: another worker may have moved it on. */
	grant_rec_free(r);
	r = NULL;
	char *line;
	if (store_get(g->st, id, &r) != JIT_OK)
		line = proto_error_line(JIT_ENOTFOUND, NULL);
	else
		line = end_locked(g, r, end_state, scheduled, reason, client, peer);
	pthread_mutex_unlock(lock);
	grant_rec_free(r);
	return line;
}

/*
 * revoke with force: an operator removed the membership by hand (the
 * directory refuses jitd's removal, the group is gone...). Closes an ending
 * grant as revoked without touching the directory. Evidence first: the
 * `revoked` line with outcome `forced` is on disk before the row changes.
 */
static char *force_locked(struct grant_ctx *g, struct grant_rec *r, const char *reason,
			  const char *client, const struct jit_peer *peer)
{
	if (r->state != GS_ENDING) {
		if (r->state >= GS_EXPIRED)
			return reply_grant(g, r->id, false); /* already ended: idempotent */
		return proto_error_line(JIT_ENOTACTIVE, "force closes only a grant whose removal is "
					"being retried (state ending); revoke it without force first");
	}
	json_t *o = grant_audit_fields(r);
	json_object_set_new(o, "state", json_string(grant_state_name(GS_REVOKED)));
	set_str(o, "outcome", "forced");
	set_str(o, "previous_end_state", grant_state_name(r->end_state));
	json_object_set_new(o, "attempts", json_integer((json_int_t)r->attempts));
	set_str(o, "last_error", r->last_error);
	set_str(o, "by_client", client);
	if (peer) {
		json_object_set_new(o, "by_peer_uid", json_integer((json_int_t)peer->uid));
		json_object_set_new(o, "by_peer_pid", json_integer((json_int_t)peer->pid));
	}
	set_str(o, "end_reason", reason);
	int rc = audit_write(g->audit, "revoked", o);
	json_decref(o);
	if (rc != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "audit log write failed; grant left ending");
	if (transition(g, r, GS_ENDING, GS_REVOKED, GS_REVOKED, r->last_error) != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
	log_warn("revoked %s by force (%s): %s <- %s; the directory was not touched", r->id,
		 client ? client : "?", r->group_name, r->user);
	return reply_grant(g, r->id, false);
}

char *grant_force_close(struct grant_ctx *g, const char *id, const char *reason,
			const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r = NULL;
	if (store_get(g->st, id, &r) != JIT_OK)
		return proto_error_line(JIT_ENOTFOUND, NULL);
	pthread_mutex_t *lock = pair_lock(g, r->pair_key);
	pthread_mutex_lock(lock);
	grant_rec_free(r);
	r = NULL;
	char *line;
	if (store_get(g->st, id, &r) != JIT_OK)
		line = proto_error_line(JIT_ENOTFOUND, NULL);
	else
		line = force_locked(g, r, reason, client, peer);
	pthread_mutex_unlock(lock);
	grant_rec_free(r);
	return line;
}

/* ---- the scheduler's expiry of several grants at once ---- */

static int cmp_lock(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(pthread_mutex_t *const *)a;
	uintptr_t y = (uintptr_t)*(pthread_mutex_t *const *)b;
	return x < y ? -1 : x > y;
}

/* Takes the distinct stripes of locks[0..n) in address order (so that two
 * batches never wait for each other crosswise); returns how many distinct. */
static size_t lock_stripes(pthread_mutex_t **locks, size_t n)
{
	size_t m = 0;
	qsort(locks, n, sizeof(*locks), cmp_lock);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || locks[m - 1] != locks[i])
			locks[m++] = locks[i];
	for (size_t i = 0; i < m; i++)
		pthread_mutex_lock(locks[i]);
	return m;
}

/* Marks the due ones of r[0..n) ending (expired) in one transaction; drops
 * (frees, NULLs) the others. False if nothing could be recorded. */
static bool batch_mark_ending(struct grant_ctx *g, struct grant_rec **r, size_t n, int64_t now)
{
	int rc = store_begin(g->st);
	for (size_t i = 0; i < n && rc == JIT_OK; i++) {
		if (!r[i])
			continue;
		rc = expire_due(g, r[i], now);
		if (rc == JIT_ENOTFOUND) { /* extended meanwhile: it stays */
			grant_rec_free(r[i]);
			r[i] = NULL;
			rc = JIT_OK;
		}
	}
	if (end_tx(g, rc) != JIT_OK) {
		log_err("scheduler: cannot record the end of %zu due grant(s); next tick", n);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (r[i]) {
			r[i]->state = GS_ENDING;
			r[i]->end_state = GS_EXPIRED;
		}
	return true;
}

/* Closes the grants of r[0..n) that are set (their `expired` lines are on
 * disk) in one transaction. */
static void batch_close(struct grant_ctx *g, struct grant_rec **r, const char **outcome, size_t n)
{
	int rc = store_begin(g->st);
	for (size_t i = 0; i < n && rc == JIT_OK; i++)
		if (r[i])
			rc = transition(g, r[i], GS_ENDING, GS_EXPIRED, GS_EXPIRED, NULL);
	if (end_tx(g, rc) != JIT_OK) {
		/* Robustness: they stay ending; the retry removes nothing more
		 * (already absent) and records them again. */
		log_err("scheduler: cannot record the end of %zu expired grant(s); retrying", n);
		return;
	}
	FAULT_POINT("grant.after_final");
	for (size_t i = 0; i < n; i++)
		if (r[i])
			log_info("expired %s: %s <- %s (%s)", r[i]->id, r[i]->group_name, r[i]->user,
				 outcome[i]);
}

/* How far settle_together() took a grant of the batch. */
enum settled {
	SETTLE_NOT,             /* not at all: settle_membership */
	SETTLE_CHECKED,         /* nothing else holds it: settle_remove */
	SETTLE_DONE,            /* kept or removed: st and dres filled */
};

/*
 * The removals of a batch that one modify per group can do: the grants of
 * one group leave it together (dir_revoke_many). how[i] says what is left
 * to do for grant i (enum settled). With several servers every grant goes
 * alone: the server that wrote its membership is asked first.
 */
static void settle_together(struct grant_ctx *g, struct grant_rec **r, size_t n,
			    struct settle *st, struct dir_result *dres, enum settled *how)
{
	struct dir_member *m = xcalloc(n, sizeof(*m));
	size_t *idx = xcalloc(n, sizeof(*idx));
	bool *seen = xcalloc(n, sizeof(*seen));
	bool *done = xcalloc(n, sizeof(*done));
	char **value = xcalloc(n, sizeof(*value));

	if (dir_conn_uri_count(g->dc) > 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (r[i] != NULL && settle_kept(g, r[i], &st[i]) == JIT_OK)
			how[i] = st[i].outcome != NULL ? SETTLE_DONE : SETTLE_CHECKED;
		/* else an error: settle_membership meets it again */
		seen[i] = how[i] != SETTLE_CHECKED;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		if (seen[i])
			continue;
		for (size_t j = i; j < n; j++) {
			if (seen[j] || strcasecmp(r[j]->group_dn, r[i]->group_dn) != 0 ||
			    strcasecmp(r[j]->member_attr, r[i]->member_attr) != 0)
				continue;
			seen[j] = true;
			m[k] = (struct dir_member){ r[j]->group_dn, r[j]->member_attr,
						    r[j]->member_value, r[j]->user_uuid,
						    r[j]->placeholder };
			idx[k++] = j;
		}
		if (k < 2)
			continue; /* alone: settle_membership does the same work */
		struct dir_result res = { 0 };
		if (dir_revoke_many(g->dc, m, k, done, value, &res) != JIT_OK)
			continue; /* each one alone: it meets the error and retries */
		size_t nd = 0;
		for (size_t q = 0; q < k; q++)
			nd += done[q];
		if (nd > 0)
			log_info("%zu expired membership(s) left %s with one modify", nd,
				 r[i]->group_dn);
		for (size_t q = 0; q < k; q++) {
			size_t j = idx[q];
			if (!done[q])
				continue;
			how[j] = SETTLE_DONE;
			dres[j] = res;
			st[j].outcome = "removed";
			if (strcasecmp(value[q], r[j]->member_value) == 0)
				free(value[q]);
			else
				st[j].value = value[q];
			value[q] = NULL;
		}
	}
out:
	free(m);
	free(idx);
	free(seen);
	free(done);
	free(value);
}

/* grant_expire_batch() of ids[0..n) whose pair locks the caller holds. */
static void expire_locked(struct grant_ctx *g, char *const *ids, size_t n)
{
	struct grant_rec **r = xcalloc(n, sizeof(*r));
	json_t **objs = xcalloc(n, sizeof(*objs));
	const char **events = xcalloc(n, sizeof(*events));
	const char **outcome = xcalloc(n, sizeof(*outcome));
	struct settle *st = xcalloc(n, sizeof(*st));
	struct dir_result *dres = xcalloc(n, sizeof(*dres));
	enum settled *how = xcalloc(n, sizeof(*how)); /* SETTLE_NOT */
	size_t nw = 0;
	int64_t now = now_s();

	/* Reload under the locks: another worker may have moved them on. */
	for (size_t i = 0; i < n; i++) {
		if (store_get(g->st, ids[i], &r[i]) != JIT_OK)
			continue;
		if (r[i]->state == GS_ACTIVE && r[i]->expires_at <= now)
			continue;
		if (r[i]->state == GS_ENDING) /* a retry: the one-grant path */
			free(end_locked(g, r[i], r[i]->end_state, true, NULL, NULL, NULL));
		grant_rec_free(r[i]);
		r[i] = NULL;
	}
	FAULT_POINT("grant.before_ending");
	int64_t t = mono_us();
	if (!batch_mark_ending(g, r, n, now))
		goto out;
	timing_since(STEP_EXPIRE_RECORD_ENDING, t);
	FAULT_POINT("grant.after_ending");
	t = mono_us();
	settle_together(g, r, n, st, dres, how);
	for (size_t i = 0; i < n; i++) {
		if (!r[i])
			continue;
		int rc = JIT_OK;
		if (how[i] == SETTLE_CHECKED)
			rc = settle_remove(g, r[i], &st[i], &dres[i]);
		else if (how[i] == SETTLE_NOT)
			rc = settle_membership(g, r[i], &st[i], &dres[i]);
		if (rc != JIT_OK || schedule_verify(g, r[i], &st[i], now)) {
			if (rc != JIT_OK)
				removal_failed(g, r[i], rc, &dres[i], NULL, NULL, NULL, now);
			free(st[i].value);
			st[i].value = NULL;
			grant_rec_free(r[i]);
			r[i] = NULL;
			continue;
		}
		outcome[i] = end_outcome(r[i], &st[i]);
		events[nw] = grant_state_name(GS_EXPIRED);
		objs[nw++] = end_audit_obj(r[i], &st[i], &dres[i], NULL, NULL, NULL);
	}
	timing_since(STEP_EXPIRE_REMOVE, t);
	FAULT_POINT("grant.after_dir_remove");
	/* Evidence first, as in end_locked(): the lines, then the rows. */
	if (nw > 0) {
		t = mono_us();
		int rc = FAULT_FAIL("fail.batch_audit") ? JIT_EIO
							: audit_write_many(g->audit, nw, events, objs);
		timing_since(STEP_EXPIRE_AUDIT, t);
		if (rc != JIT_OK) {
			for (size_t i = 0; i < n; i++)
				if (r[i])
					final_audit_failed(g, r[i], now);
			goto out;
		}
	}
	FAULT_POINT("grant.after_final_audit");
	if (nw > 0) {
		t = mono_us();
		batch_close(g, r, outcome, n);
		timing_since(STEP_EXPIRE_RECORD_ENDED, t);
	}
out:
	for (size_t i = 0; i < n; i++)
		grant_rec_free(r[i]);
	for (size_t i = 0; i < nw; i++)
		json_decref(objs[i]);
	free(r);
	free(objs);
	free(events);
	free(outcome);
	for (size_t i = 0; i < n; i++)
		free(st[i].value);
	free(st);
	free(dres);
	free(how);
}

/*
 * Two workers ending two batches must not wait for each other's whole
 * batch: first the grants whose pair locks are free now (tried, never
 * waited for), then, holding nothing, the others with their locks taken
 * in address order.
 */
void grant_expire_batch(struct grant_ctx *g, char *const *ids, char *const *pair_keys, size_t n)
{
	pthread_mutex_t **lk = xcalloc(n, sizeof(*lk));
	pthread_mutex_t **held = xcalloc(n, sizeof(*held));
	char **now_ids = xcalloc(n, sizeof(*now_ids));
	char **later = xcalloc(n, sizeof(*later));
	size_t nh = 0, nn = 0, nlater = 0;

	for (size_t i = 0; i < n; i++)
		lk[i] = pair_lock(g, pair_keys[i]); /* a row's pair key never changes */
	for (size_t i = 0; i < n; i++) {
		bool mine = false;
		for (size_t k = 0; !mine && k < nh; k++)
			mine = held[k] == lk[i];
		if (!mine && pthread_mutex_trylock(lk[i]) == 0) {
			held[nh++] = lk[i];
			mine = true;
		}
		if (mine)
			now_ids[nn++] = ids[i];
		else
			later[nlater++] = ids[i];
	}
	expire_locked(g, now_ids, nn);
	for (size_t k = nh; k > 0; k--)
		pthread_mutex_unlock(held[k - 1]);
	if (nlater > 0) {
		/* later[] holds ids[] pointers, in order: walk both together */
		nh = 0;
		for (size_t i = 0, m = 0; i < n && m < nlater; i++)
			if (ids[i] == later[m]) {
				held[nh++] = lk[i];
				m++;
			}
		nh = lock_stripes(held, nh);
		expire_locked(g, later, nlater);
		for (size_t k = nh; k > 0; k--)
			pthread_mutex_unlock(held[k - 1]);
	}
	free(lk);
	free(held);
	free(now_ids);
	free(later);
}

char *grant_pair_key(const char *directory, const char *group_dn, const char *attr,
		     const char *value)
{
	return make_pair_key(directory, group_dn, attr, value);
}

pthread_mutex_t *grant_pair_lock(pthread_mutex_t *pair_locks, const char *pair_key)
{
	struct grant_ctx g = { .pair_locks = pair_locks };
	return pair_lock(&g, pair_key);
}
