/*
 * grantend.c - ending one grant (grant_end, grant_force_close): its membership
 * kept for another holder or removed, checked again after replication_grace
 * when another server than the writer answered, a failed removal retried with
 * backoff, the final audit line on disk before the final state; and a pair's
 * unfinished ends settled before a new grant of it. Runs in engine worker
 * threads under the pair lock. Trust: directory answers are untrusted and
 * mapped through directory.h; a removal that fails is retried, never dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fault.h"
#include "grant_priv.h"
#include "log.h"
#include "timing.h"
#include "util.h"

const char *grant_exact_value(const struct grant_rec *r)
{
	return r->member_attr && strcasecmp(r->member_attr, "memberUid") == 0 ? r->member_value
									     : NULL;
}

/* Is the server that wrote r's membership known and still configured? */
static bool writer_configured(const struct grant_ctx *g, const struct grant_rec *r)
{
	return r->added_via != NULL && dir_conn_has_uri(g->dc, r->added_via);
}

/* Does something other than r hold r's membership (another live grant of
 * the same value, or a standing membership)? Then st->outcome says what.
 * Robustness: another grant keeps it only if it is the same membership's:
 * the same user's (its uuid), or for memberUid, which compares case, of
 * the very same value.
 * A pair key can be shared by two users (a DN given to a new entry after
 * the first user's rename, whose membership refint or AD moved along) or
 * two values (uids differing in case): each grant then removes its own. */
int grant_settle_kept(struct grant_ctx *g, const struct grant_rec *r, struct settle *st)
{
	int64_t others = 0;
	bool any_jitd = false;
	int rc = FAULT_FAIL("fail.settle_kept") ?
			 JIT_EBUSY :
			 store_pair_live_same(g->st, r->pair_key, r->id,
					      GS_BIT(GS_PENDING) | GS_BIT(GS_ACTIVE), r->user_uuid,
					      grant_exact_value(r), &others, &any_jitd);
	if (rc != JIT_OK)
		return rc;
	/* r waits for its writer to answer a check, as grant_schedule_verify
	 * decides: removed elsewhere, the writer configured, and that removal
	 * found nothing there (a removal that did find it replicates back) */
	bool waits = r->removed_via != NULL && writer_configured(g, r) &&
		     !(r->removed_outcome && strcmp(r->removed_outcome, "removed") == 0);
	bool multi = dir_conn_uri_count(g->dc) > 1;
	if (others > 0 && r->added_via && (!multi || r->added_also_via || waits)) {
		/* Robustness: r's add went unanswered on one server and was
		 * written by another (or, with one server, went unanswered
		 * once: added_via is recorded only then), or r waits for its
		 * writer to answer a check: the grant that keeps the
		 * membership takes the writer(s) on, so that its end removes
		 * it there too and checks again or waits as r would have. */
		rc = store_pair_take_writers(g->st, r->pair_key, r->id, r->user_uuid,
					     grant_exact_value(r), r->added_via, r->added_also_via);
		if (rc != JIT_OK)
			return rc;
	}
	if (others > 0 && r->add_unknown) {
		/* the same for an add whose outcome is unknown (recovered) */
		rc = store_pair_take_unknown(g->st, r->pair_key, r->id, r->user_uuid,
					     grant_exact_value(r));
		if (rc != JIT_OK)
			return rc;
	}
	if (others > 0)
		st->outcome = "kept_other_grant";
	else if (r->standing)
		st->outcome = "kept_standing";
	return JIT_OK;
}

/*
 * The add of r went unanswered on r->added_via and was written by
 * r->added_also_via (or went unanswered there too): that server is asked
 * as well, whatever the first said, since without replication between them
 * each may hold the value. JIT_OK when it answered (*removed: it held it;
 * *value: what it removed, when not member_value, else NULL) or is no
 * longer configured; JIT_EDIRUNAVAIL with dres filled when it could not
 * be reached (the ending is retried; the first server then finds the value
 * gone).
 */
static int remove_also(struct grant_ctx *g, const struct grant_rec *r, bool *removed,
		       char **value, struct dir_result *dres)
{
	struct dir_member m = { r->group_dn, r->member_attr, r->member_value, r->user_uuid,
				r->placeholder };
	struct dir_result res = { 0 };
	int rc;

	*removed = false;
	*value = NULL;
	if (!dir_conn_has_uri(g->dc, r->added_also_via))
		return JIT_OK;
	if (!dir_conn_prefer(g->dc, r->added_also_via)) {
		res.ldap_code = -1;
		snprintf(res.uri, sizeof(res.uri), "%s", r->added_also_via);
		snprintf(res.message, sizeof(res.message), "%.200s failed a moment ago",
			 r->added_also_via);
		*dres = res;
		return JIT_EDIRUNAVAIL;
	}
	rc = dir_revoke_member(g->dc, &m, removed, value, &res);
	if (rc == JIT_OK && strcasecmp(res.uri, r->added_also_via) != 0) {
		res.ldap_code = -1;
		snprintf(res.message, sizeof(res.message), "%.110s did not answer (%.110s did)",
			 r->added_also_via, res.uri);
		snprintf(res.uri, sizeof(res.uri), "%s", r->added_also_via);
		rc = JIT_EDIRUNAVAIL;
	}
	if (rc != JIT_OK) {
		free(*value);
		*value = NULL;
		*removed = false;
		*dres = res;
		return rc;
	}
	if (*value && strcasecmp(*value, r->member_value) == 0) {
		free(*value);
		*value = NULL;
	}
	return JIT_OK;
}

/*
 * Removes the membership of ending grant r, which nothing else holds
 * (grant_settle_kept): the value that refers to the user now (see
 * dir_revoke_member), so a rename or move during the window changes
 * nothing. Several servers (replicas, domain controllers): the one that
 * wrote the membership is asked first; when another one answers, the add
 * may not have replicated there yet ("not a member", and then the add
 * arrives and stays), so st->verify asks the caller to check again after
 * replication_grace. A second writer (added_also_via) is asked too. JIT_OK
 * with st filled, or the directory error.
 */
int grant_settle_remove(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			struct dir_result *dres)
{
	bool removed = false, removed2 = false;
	bool multi = dir_conn_uri_count(g->dc) > 1;
	struct dir_member m = { r->group_dn, r->member_attr, r->member_value, r->user_uuid,
				r->placeholder };
	struct dir_result res2 = { 0 };
	char *value2 = NULL;
	int rc, rc2;

	if (multi && r->added_via)
		(void)dir_conn_prefer(g->dc, r->added_via);
	rc = dir_revoke_member(g->dc, &m, &removed, &st->value, dres);
	if (multi && r->added_also_via &&
	    (rc != JIT_OK || strcasecmp(dres->uri, r->added_also_via) != 0)) {
		/* Robustness: also when the first failed (a stall, a refusal):
		 * the second server holds the value for certain. */
		rc2 = remove_also(g, r, &removed2, &value2, &res2);
		if (rc == JIT_OK && rc2 != JIT_OK) {
			rc = rc2;
			*dres = res2;
		}
	}
	if (rc != JIT_OK) {
		free(st->value);
		st->value = NULL;
		free(value2);
		return rc;
	}
	st->outcome = removed || removed2 ? "removed" : "already_absent";
	if (st->value && strcasecmp(st->value, r->member_value) == 0) {
		free(st->value);
		st->value = NULL;
	}
	if (!removed && value2) {
		free(st->value); /* what the second removed is what left */
		st->value = value2;
		value2 = NULL;
	}
	free(value2);
	bool unsure = grant_add_unsure(g, r);
	if (multi) {
		snprintf(st->uri, sizeof(st->uri), "%s", dres->uri);
		st->verify = r->added_via == NULL || strcasecmp(dres->uri, r->added_via) != 0 ||
			     (unsure && !r->removed_via);
	} else if (!r->removed_via && unsure) {
		/* Robustness: one server, and an attempt of the add was never
		 * answered (a stalled server, the request still in flight on
		 * the connection jitd gave up), or the add's outcome is unknown
		 * (a pending row recovered at start-up): it may still be
		 * applied after this removal, whatever it found. Closing now
		 * would leave that membership to nobody: check once more after
		 * replication_grace (the check's own answer is final). */
		snprintf(st->uri, sizeof(st->uri), "%s", dres->uri);
		st->verify = true;
	}
	return JIT_OK;
}

bool grant_add_unsure(const struct grant_ctx *g, const struct grant_rec *r)
{
	/* with one server added_via is recorded only for an unanswered
	 * attempt; with several, a second writer (or the same one twice) */
	if (dir_conn_uri_count(g->dc) > 1)
		return r->added_also_via != NULL || r->add_unknown;
	return r->added_via != NULL || r->add_unknown;
}

/* Ends ending grant r's membership unless something else holds it:
 * grant_settle_kept, then grant_settle_remove. */
int grant_settle_membership(struct grant_ctx *g, const struct grant_rec *r, struct settle *st,
			    struct dir_result *dres)
{
	int rc = grant_settle_kept(g, r, st);
	if (rc != JIT_OK || st->outcome != NULL)
		return rc;
	return grant_settle_remove(g, r, st, dres);
}

/* Ending grant r is tried again after the backoff of its next attempt
 * (refused: the directory's answer, counted in revocations_failing; else
 * an outage or jitd's own failure). Returns the delay in seconds. */
static int64_t retry_at(struct grant_ctx *g, struct grant_rec *r, int64_t now, const char *why,
			bool refused, bool at_once)
{
	int64_t attempts = r->attempts + 1;
	int64_t next = now + (at_once ? 0 : grant_backoff(attempts, g->retry_min, g->retry_max));
	if (store_set_retry_kind(g->st, r->id, attempts, next, why, refused) != JIT_OK)
		log_err("grant %s: cannot record retry", r->id);
	r->attempts = attempts;
	return next - now;
}

static int64_t retry_later(struct grant_ctx *g, struct grant_rec *r, int64_t now, const char *why,
			   bool refused)
{
	return retry_at(g, r, now, why, refused, false);
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
 * replication_grace, preferring the writer, until it answers. So too when
 * the writer never answered the add and another server wrote it after
 * (added_also_via), whatever the others saw.
 * True when the grant waits for a check (the row was updated), or stays
 * ending for its removal to be made again because the check could not be
 * recorded.
 */
bool grant_schedule_verify(struct grant_ctx *g, struct grant_rec *r, const struct settle *st,
			   int64_t now)
{
	bool checking = r->removed_via != NULL;
	bool removed_now = strcmp(st->outcome, "removed") == 0;
	bool writer_known = writer_configured(g, r);
	/* The writer never answered the add (another server wrote it after):
	 * it may apply it late, after a delete replicated to it; only its own
	 * answer settles it. */
	bool writer_unanswered = r->added_also_via != NULL;
	const char *oc = checking && !removed_now ? r->removed_outcome : st->outcome;

	if (!st->verify)
		return false;
	if (checking && !removed_now &&
	    (!writer_known ||
	     (!writer_unanswered && oc != NULL && strcmp(oc, "removed") == 0)))
		return false;
	if (checking && removed_now)
		oc = "removed";
	if (FAULT_FAIL("fail.verify_record") ||
	    store_set_verify(g->st, r->id, st->uri, oc ? oc : st->outcome,
			     now + g->replication_grace) != JIT_OK) {
		/* Robustness: closing the grant now would drop the check, and an
		 * add still on its way to the writer would outlive it: the grant
		 * stays ending and its removal is made again (with backoff; if
		 * even that cannot be recorded, it is due already). */
		log_err("grant %s: cannot record the check after replication_grace; the removal "
			"is made again", r->id);
		(void)retry_later(g, r, now, "cannot record the check after replication_grace",
				  false);
		return true;
	}
	log_info("grant %s: %s on %s (written on %s); checking again in %llds", r->id,
		 st->outcome, st->uri, r->added_via ? r->added_via : "an unknown server",
		 (long long)g->replication_grace);
	return true;
}

/* The removal of ending grant r failed with rc: schedule the retry. */
void grant_removal_failed(struct grant_ctx *g, struct grant_rec *r, int rc,
			  const struct dir_result *dres, const char *reason, const char *client,
			  const struct jit_peer *peer, const char *again,
			  const struct jit_peer *again_peer, int64_t now)
{
	const char *msg = dres->message[0] ? dres->message : jit_err_message(rc);
	/* A refusal is an answer: it will not go away by waiting (status
	 * counts it as revocations_failing); an outage will, and so will a
	 * store that another process holds or that failed to read (no answer
	 * of the directory's: nothing there for an operator to fix). */
	bool refused = rc != JIT_EDIRUNAVAIL && rc != JIT_EBUSY && rc != JIT_EIO;
	/* It failed unreachable, and a probe has reached the directory since
	 * the failing operation began: the main thread's making every
	 * pending removal due at the recovery may have come before this
	 * row's retry was written, and its backoff (up to
	 * retry_max_interval) would keep it waiting with the directory back.
	 * (Each retry at once needs a recovery after its own start: no loop.) */
	FAULT_POINT("grant.before_retry");
	bool back = rc == JIT_EDIRUNAVAIL && dir_conn_back_since_run(g->dc);
	int64_t delay = retry_at(g, r, now, msg, refused, back);
	FAULT_POINT("grant.after_retry");
	log_warn("grant %s: removal failed (attempt %lld, next in %llds): %s", r->id,
		 (long long)r->attempts, (long long)delay, msg);
	/* Rate limit: the first attempts, then every 20th. */
	if (r->attempts <= 3 || r->attempts % 20 == 0) {
		json_t *extra = json_object();
		grant_set_retried_by(extra, again, again_peer);
		grant_audit_extra(g, "revoke_failed", r, jit_err_code(rc), dres, client, peer, reason,
				  extra);
		json_decref(extra);
	}
}

/*
 * The final line of ending grant r could not be written. Evidence first:
 * the row stays ending, and its retry (with backoff, as for a failed
 * removal) writes the line and then closes it; the membership is gone
 * already, so the retry finds it absent and says so.
 */
void grant_final_audit_failed(struct grant_ctx *g, struct grant_rec *r, int64_t now)
{
	int64_t delay = retry_later(g, r, now, "audit log write failed", false);
	log_err("audit: could not record the %s of grant %s; the grant stays ending and is "
		"recorded again in %llds", grant_state_name(r->end_state), r->id,
		(long long)delay);
}

/* What the removal of r did (after a check after the grace: what the
 * removal before it did). */
const char *grant_end_outcome(const struct grant_rec *r, const struct settle *st)
{
	if (r->removed_via && strcmp(st->outcome, "already_absent") == 0 && r->removed_outcome)
		return r->removed_outcome;
	return st->outcome;
}

char *grant_end_locked(struct grant_ctx *g, struct grant_rec *r, enum grant_state end_state,
		       bool scheduled, const char *reason, const char *client,
		       const struct jit_peer *peer)
{
	struct dir_result dres = { 0 };
	struct settle st = { 0 };
	const char *outcome = NULL;
	int64_t now = now_s(), t;
	int rc;
	/* Audit: an end asked for again (the grant already ending) is still
	 * the end its first request made: its lines name who asked first, as
	 * recorded with the move to ending (nobody, for an expiry), and the
	 * final line names the client that asked again as retried_by. */
	const char *again = r->state == GS_ENDING ? client : NULL;
	const struct jit_peer *again_peer = again ? peer : NULL;
	if (r->state == GS_ENDING) {
		client = NULL;
		peer = NULL;
		reason = NULL;
	}
	switch (r->state) {
	case GS_ACTIVE:
		if (scheduled && end_state == GS_EXPIRED && r->expires_at > now)
			return grant_reply(g, r->id, false); /* extended meanwhile */
		FAULT_POINT("grant.before_ending");
		t = mono_us();
		/* Robustness: a scheduled expiry checks expires_at again in the
		 * same statement: an extend (main thread, no pair lock) may have
		 * committed since r was read; then the grant stays. */
		rc = scheduled && end_state == GS_EXPIRED
			     ? grant_expire_due(g, r, now)
			     : grant_begin_end(g, r, end_state, NULL, client, reason, peer);
		timing_since(STEP_RECORD_ENDING, t);
		if (rc == JIT_ENOTFOUND && scheduled && end_state == GS_EXPIRED)
			return grant_reply(g, r->id, false);
		if (rc != JIT_OK)
			return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
		r->state = GS_ENDING;
		r->end_state = end_state;
		break;
	case GS_ENDING:
		if (r->removed_via && r->next_attempt > now)
			return grant_reply(g, r->id, false); /* waits for replication_grace */
		break; /* retry (scheduled) or the client asks again: try now */
	case GS_PENDING:
		return proto_error_line(JIT_ENOTACTIVE, "the grant is still being created");
	default:
		return grant_reply(g, r->id, false); /* already ended: idempotent */
	}
	FAULT_POINT("grant.after_ending");
	t = mono_us();
	rc = grant_settle_membership(g, r, &st, &dres);
	timing_since(STEP_DIRECTORY_REMOVE, t);
	/* The grace and the backoff count from the answer: the call may have
	 * taken longer than either (a stalled server, then another). */
	now = now_s();
	if (rc == JIT_OK && grant_schedule_verify(g, r, &st, now)) {
		free(st.value);
		return grant_reply(g, r->id, false);
	}
	if (rc != JIT_OK) {
		grant_removal_failed(g, r, rc, &dres, reason, client, peer, again, again_peer, now);
		free(st.value);
		return grant_reply(g, r->id, false);
	}
	outcome = grant_end_outcome(r, &st);
	FAULT_POINT("grant.after_dir_remove");
	/* Evidence first: after a crash between these two steps the ending row
	 * is retried and the event recorded again, never lost. */
	json_t *o = grant_end_audit_obj(r, &st, &dres, reason, client, peer);
	grant_set_retried_by(o, again, again_peer);
	t = mono_us();
	rc = FAULT_FAIL("fail.final_audit") ? JIT_EIO
					    : audit_write(g->audit, grant_state_name(r->end_state), o);
	timing_since(STEP_AUDIT_ENDED, t);
	json_decref(o);
	if (rc != JIT_OK) {
		grant_final_audit_failed(g, r, now);
		return grant_reply(g, r->id, false);
	}
	FAULT_POINT("grant.after_final_audit");
	t = mono_us();
	rc = grant_transition(g, r, GS_ENDING, r->end_state, r->end_state, NULL);
	timing_since(STEP_RECORD_ENDED, t);
	if (rc != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
	FAULT_POINT("grant.after_final");
	r->state = r->end_state;
	log_info("%s %s: %s <- %s (%s)", grant_state_name(r->end_state), r->id, r->group_name,
		 r->user, outcome);
	return grant_reply(g, r->id, false);
}

/* One ending row of the pair a new grant is about to use (pair lock held). */
static int settle_one(const struct grant_rec *row, void *arg)
{
	struct grant_ctx *g = arg;
	struct grant_rec *r = NULL;
	int rc = store_get(g->st, row->id, &r);
	if (rc != JIT_OK) {
		/* left ending, and counted as jitd's own by the new grant: its
		 * retry ends it, kept for the new grant if that one stands */
		log_warn("grant %s: cannot read it to settle its end before a new grant of its "
			 "pair (%s); its retry will", row->id, jit_err_message(rc));
		return 0;
	}
	if (r->state == GS_ENDING)
		free(grant_end_locked(g, r, r->end_state, true, NULL, NULL, NULL));
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
void grant_settle_pair(struct grant_ctx *g, const char *pair_key)
{
	if (store_pair_ending(g->st, pair_key, settle_one, g) < 0)
		log_err("cannot read the unfinished ends of a pair; the new grant goes on");
}

/*
 * Grant id, read again under its pair lock (another worker may have moved
 * it on meanwhile): the lock, held, with *r (caller frees), or NULL (nothing
 * held) and *line the answer: not_found when there is no such grant, busy
 * or internal when the store could not be read (a client told not_found
 * would take the id for wrong, and the grant would stay).
 */
static pthread_mutex_t *lock_grant(struct grant_ctx *g, const char *id, struct grant_rec **r,
				   char **line)
{
	pthread_mutex_t *lock = NULL;
	int rc;

	*r = NULL;
	rc = FAULT_FAIL("fail.end_lookup") ? JIT_EBUSY : store_get(g->st, id, r);
	if (rc == JIT_OK) {
		lock = grant_pair_lock(g->pair_locks, (*r)->pair_key);
		pthread_mutex_lock(lock);
		grant_rec_free(*r);
		*r = NULL;
		rc = store_get(g->st, id, r);
		if (rc == JIT_OK)
			return lock;
		pthread_mutex_unlock(lock);
	}
	grant_rec_free(*r);
	*r = NULL;
	*line = rc == JIT_ENOTFOUND ? proto_error_line(JIT_ENOTFOUND, NULL)
				    : proto_store_error_line(rc, "cannot read the grant");
	return NULL;
}

char *grant_end(struct grant_ctx *g, const char *id, enum grant_state end_state, bool scheduled,
		const char *reason, const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r;
	char *line = NULL;
	pthread_mutex_t *lock = lock_grant(g, id, &r, &line);
	if (!lock)
		return line;
	line = grant_end_locked(g, r, end_state, scheduled, reason, client, peer);
	pthread_mutex_unlock(lock);
	grant_rec_free(r);
	return line;
}

void grant_end_at_next_start(struct grant_ctx *g, const char *id, enum grant_state end_state,
			     const char *reason, const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r;
	char *line = NULL;
	pthread_mutex_t *lock = lock_grant(g, id, &r, &line);
	if (!lock) {
		log_err("grant %s: %s asked by %s, not made before the stop, and the grant cannot "
			"be read: ask again once jitd is back", id, grant_state_name(end_state),
			client ? client : "?");
		free(line);
		return;
	}
	if (r->state != GS_ACTIVE) {
		/* ending already (made at the next start) or ended */
	} else if (grant_begin_end(g, r, end_state, NULL, client, reason, peer) != JIT_OK) {
		log_err("grant %s: %s asked by %s, not made before the stop, and cannot be "
			"recorded: ask again once jitd is back", id, grant_state_name(end_state),
			client ? client : "?");
	} else {
		log_warn("grant %s: %s asked by %s (reason: %.200s) not made before the stop: "
			 "recorded as ending, the membership is removed at the next start", id,
			 grant_state_name(end_state), client ? client : "?", reason ? reason : "-");
	}
	pthread_mutex_unlock(lock);
	grant_rec_free(r);
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
			return grant_reply(g, r->id, false); /* already ended: idempotent */
		return proto_error_line(JIT_ENOTACTIVE, "force closes only a grant whose removal is "
					"being retried (state ending); revoke it without force first");
	}
	json_t *o = grant_audit_fields(r);
	json_object_set_new(o, "state", json_string(grant_state_name(GS_REVOKED)));
	grant_set_str(o, "outcome", "forced");
	grant_set_str(o, "previous_end_state", grant_state_name(r->end_state));
	json_object_set_new(o, "attempts", json_integer((json_int_t)r->attempts));
	grant_set_str(o, "last_error", r->last_error);
	grant_set_str(o, "by_client", client);
	if (peer) {
		json_object_set_new(o, "by_peer_uid", json_integer((json_int_t)peer->uid));
		json_object_set_new(o, "by_peer_pid", json_integer((json_int_t)peer->pid));
	}
	grant_set_str(o, "end_reason", reason);
	int rc = audit_write(g->audit, "revoked", o);
	json_decref(o);
	if (rc != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "audit log write failed; grant left ending");
	if (grant_transition(g, r, GS_ENDING, GS_REVOKED, GS_REVOKED, r->last_error) != JIT_OK)
		return proto_error_line(JIT_EINTERNAL, "cannot record the end of the grant");
	log_warn("revoked %s by force (%s): %s <- %s; the directory was not touched", r->id,
		 client ? client : "?", r->group_name, r->user);
	return grant_reply(g, r->id, false);
}

char *grant_force_close_unconfigured(struct grant_ctx *g, const char *id, const char *reason,
				     const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r = NULL;
	char *line = NULL;
	int rc = store_get(g->st, id, &r);
	if (rc != JIT_OK)
		return rc == JIT_ENOTFOUND ? proto_error_line(JIT_ENOTFOUND, NULL)
					   : proto_store_error_line(rc, NULL);
	if (r->state == GS_ACTIVE) {
		/* Nothing will ever end it (no worker has its directory): it
		 * becomes ending, as a revoke would make it, so that force can
		 * close it; the directory is not touched. */
		rc = grant_transition(g, r, GS_ACTIVE, GS_ENDING, GS_REVOKED,
				      "the grant's directory is not configured");
		if (rc != JIT_OK) {
			grant_rec_free(r);
			return proto_error_line(rc == JIT_EBUSY ? JIT_EBUSY : JIT_EINTERNAL,
						"cannot record the end of the grant");
		}
		r->state = GS_ENDING;
		r->end_state = GS_REVOKED;
		free(r->last_error);
		r->last_error = xstrdup("the grant's directory is not configured");
	}
	if (r->state == GS_PENDING)
		line = proto_error_line(JIT_ENOTACTIVE, "the grant is still pending");
	else
		line = force_locked(g, r, reason, client, peer);
	grant_rec_free(r);
	return line;
}

char *grant_force_close(struct grant_ctx *g, const char *id, const char *reason,
			const char *client, const struct jit_peer *peer)
{
	struct grant_rec *r;
	char *line = NULL;
	pthread_mutex_t *lock = lock_grant(g, id, &r, &line);
	if (!lock)
		return line;
	line = force_locked(g, r, reason, client, peer);
	pthread_mutex_unlock(lock);
	grant_rec_free(r);
	return line;
}
