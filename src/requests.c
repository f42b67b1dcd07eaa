/*
 * requests.c - engine_submit(), on the main thread: a grant (after the
 * checks that need the store or a secret, and its ticket check) or an end
 * goes to its directory's queue; show, list and status are answered from
 * the store at once, by a handle that never waits long for a lock
 * (MAIN_STORE_WAIT_MS); extend goes on in extend.c. Also the `refused`
 * audit events. Trust: requests arrive validated and authorised for their
 * op/group by the listener; operations on an existing grant are authorised
 * here against the grant's group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "approval.h"
#include "directory.h"
#include "engine_priv.h"
#include "fault.h"
#include "grant.h"
#include "log.h"
#include "store.h"
#include "ticket.h"
#include "timing.h"
#include "util.h"

/* ---- requests ---- */

static void reply_now(struct engine *e, uint64_t conn_id, char *line)
{
	engine_post_reply(e, conn_id, line, NULL);
}

char *requests_ok_grant_line(const struct grant_rec *r)
{
	return proto_ok_line("grant", proto_grant_json(r));
}

/* Loads grant id; NULL and *line set if it cannot be read. */
static struct grant_rec *load_grant(struct engine *e, const char *id, char **line)
{
	struct grant_rec *r = NULL;
	int rc = store_get(e->st, id, &r);
	if (rc != JIT_OK) {
		*line = proto_error_line(
			rc == JIT_ENOTFOUND || rc == JIT_EBUSY ? rc : JIT_EINTERNAL, NULL);
		return NULL;
	}
	return r;
}

bool requests_same_group(const struct jit_config *cfg, const struct jit_group_cfg *gc,
			 const struct grant_rec *r)
{
	return grant_same_pair_group(gc->directory, gc->dn, config_group_member_attr(cfg, gc),
				     r->directory, r->group_dn, r->member_attr);
}

/*
 * Security: a client whose groups name the grant's group may see and act
 * on the grant only while that name still names the group the grant was
 * made in. A reload that gives the name to another group (the grant's
 * entry renamed, or its DN changed) leaves the grant to clients with "*":
 * a client allowed the new group was never allowed the old one, and a
 * force-close on its word would leave that membership for good.
 */
bool requests_grant_visible(const struct jit_config *cfg, const struct jit_client_cfg *c,
			    const struct grant_rec *r)
{
	if (policy_group_allowed(c, "*"))
		return true;
	if (!policy_group_allowed(c, r->group_name))
		return false;
	const struct jit_group_cfg *gc = config_group(cfg, r->group_name);
	return gc && requests_same_group(cfg, gc, r);
}

/* Loads the grant req->grant_id for client c, refusing (and auditing) a
 * client that may not act on it (requests_grant_visible). */
struct grant_rec *requests_load_for(struct engine *e, const struct jit_client_cfg *c,
				    const struct jit_peer *peer, const struct jit_request *req,
				    char **line)
{
	struct grant_rec *r = load_grant(e, req->grant_id, line);
	if (r && !requests_grant_visible(e->cfg, c, r)) {
		const char *msg = policy_group_allowed(c, r->group_name)
			? "clients.groups: the grant's group name now names another group (a "
			  "reload); only a client with \"*\" may act on that grant"
			: "clients.groups: this client may not act on that grant's group";
		engine_audit_refusal_rule(e, peer, c, req, JIT_EUNAUTH, msg, "clients.groups");
		*line = proto_error_line(JIT_EUNAUTH, msg);
		grant_rec_free(r);
		return NULL;
	}
	return r;
}

struct list_item {
	json_t *grant;
	int64_t created_at, seq;
};

struct list_ctx {
	const struct jit_config *cfg;
	const struct jit_client_cfg *c;
	struct list_item *v;
	size_t n, cap;
};

static int list_one(const struct grant_rec *r, void *arg)
{
	struct list_ctx *lc = arg;
	if (!lc->c || !requests_grant_visible(lc->cfg, lc->c, r))
		return 0;
	if (lc->n == lc->cap) {
		lc->cap = lc->cap ? lc->cap * 2 : 64;
		lc->v = xrealloc(lc->v, lc->cap * sizeof(*lc->v));
	}
	lc->v[lc->n] = (struct list_item){ proto_grant_json(r), r->created_at, r->list_seq };
	lc->n++;
	return 0;
}

/* Newest first, as store_list() orders them: created_at, then rowid. */
static int list_cmp(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	if (x->created_at != y->created_at)
		return x->created_at > y->created_at ? -1 : 1;
	return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/*
 * list: a client limited to some groups and asking for no group gets the
 * newest grants of its groups, one query per group merged, so the limit
 * counts only grants it may see (one query over every group, filtered
 * after its LIMIT, could answer none while its groups have grants).
 */
static char *do_list(struct engine *e, const struct jit_client_cfg *c,
		     const struct jit_request *req)
{
	struct list_ctx lc = { .cfg = e->cfg, .c = c };
	struct store_filter f = { .user = req->user, .group = req->group,
				  .state_mask = req->state_mask, .limit = req->limit };
	int rc = 0;
	size_t limit = (size_t)store_list_limit(req->limit);
	if (!c) {
		/* no clients entry: nothing is listed */
	} else if (req->group || policy_group_allowed(c, "*")) { /* "*": every group */
		rc = store_list(e->st, &f, list_one, &lc);
	} else {
		for (size_t i = 0; rc >= 0 && i < c->n_groups; i++) {
			bool seen = false;
			for (size_t k = 0; k < i; k++)
				seen = seen || strcmp(c->groups[k], c->groups[i]) == 0;
			if (seen)
				continue;
			f.group = c->groups[i];
			rc = store_list(e->st, &f, list_one, &lc);
			/* at most limit kept between queries: memory stays bounded by
			 * twice the limit, however many groups the client has */
			if (lc.n > 1)
				qsort(lc.v, lc.n, sizeof(*lc.v), list_cmp);
			while (lc.n > limit)
				json_decref(lc.v[--lc.n].grant);
		}
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < lc.n; i++) {
		if (rc >= 0 && i < limit)
			json_array_append_new(arr, lc.v[i].grant);
		else
			json_decref(lc.v[i].grant);
	}
	free(lc.v);
	if (rc < 0) {
		json_decref(arr);
		return proto_store_error_line(rc, "cannot read grants");
	}
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
	json_object_set_new(o, "grants", arr);
	return proto_dump_line(o);
}

static char *do_status(struct engine *e)
{
	int64_t counts[GS__COUNT];
	int rc = store_counts(e->st, counts);
	if (rc != JIT_OK)
		return proto_store_error_line(rc, "cannot read grant counts");
	json_t *s = json_object();
	json_object_set_new(s, "version", json_string(PACKAGE_VERSION));
	json_object_set_new(s, "protocol", json_integer(PROTO_VERSION));
	json_object_set_new(s, "uptime", json_integer(now_s() - e->started));
	json_t *g = json_object();
	for (int i = 0; i < GS__COUNT; i++)
		json_object_set_new(g, grant_state_name((enum grant_state)i),
				    json_integer(counts[i]));
	json_object_set_new(s, "grants", g);
	json_object_set_new(s, "pending_revocations", json_integer(counts[GS_ENDING]));
	int64_t failing = 0;
	if ((rc = store_count_failing(e->st, &failing)) != JIT_OK) {
		json_decref(s);
		return proto_store_error_line(rc, "cannot read grant counts");
	}
	json_object_set_new(s, "revocations_failing", json_integer(failing));
	/* expiries whose end has not even been recorded a while after they
	 * fell due: the store cannot be written, or the engine is stalled */
	int64_t overdue = 0;
	if ((rc = store_count_overdue(e->st, now_s() - e->overdue_after, &overdue)) != JIT_OK) {
		json_decref(s);
		return proto_store_error_line(rc, "cannot read grant counts");
	}
	json_object_set_new(s, "expiries_overdue", json_integer(overdue));
	/* due grants jitd cannot end: their directory is not configured */
	int64_t stranded = 0;
	char sdir[257]; /* config.c: names are at most 256 bytes */
	if ((rc = store_due_elsewhere(e->st, now_s(), &stranded, sdir, sizeof(sdir))) != JIT_OK) {
		json_decref(s);
		return proto_store_error_line(rc, "cannot count the grants of unconfigured "
						     "directories");
	}
	json_object_set_new(s, "due_in_unconfigured_directories", json_integer(stranded));
	/* due rows the scheduler cannot read (damaged or hand-edited): never ended */
	json_object_set_new(s, "due_unreadable", json_integer(e->due_unreadable));
	json_t *dirs = json_array();
	for (size_t i = 0; i < e->n_dirs; i++) {
		char err[256] = "", buf[256];
		bool down = dir_health_down(e->dirs[i].health, err, sizeof(err));
		int n_up = 0;
		for (int k = 0; k < e->dirs[i].n_workers; k++) {
			buf[0] = '\0';
			if (dir_conn_healthy(e->dirs[i].conns[k], buf, sizeof(buf)))
				n_up++;
			else if (buf[0] && !err[0])
				snprintf(err, sizeof(err), "%s", buf);
		}
		bool up = !down && n_up > 0;
		json_array_append_new(dirs, json_pack("{sssbsssisi}", "name", e->dirs[i].name,
						      "connected", up, "last_error", up ? "" : err,
						      "connections", e->dirs[i].n_workers,
						      "connections_up", n_up));
	}
	json_object_set_new(s, "directories", dirs);
	if (e->status_fn)
		e->status_fn(e->status_arg, s);
	json_object_set_new(s, "timings", timing_json());
	return proto_ok_line("status", s);
}

void engine_set_status_hook(struct engine *e, engine_status_fn fn, void *arg)
{
	e->status_fn = fn;
	e->status_arg = arg;
}

/* ---- the ticket check: between the listener and the workers ---- */

/* On the ticket checker's thread: the check of job j (a grant) is over. */
static void ticket_done(void *arg, int rc, const char *msg)
{
	struct job *j = arg;
	struct dirq *q = j->q;
	struct engine *e = q->e;

	if (rc == JIT_OK) {
		if (engine_grant_stale(e, j)) {
			engine_post_resume(e, j); /* reloaded meanwhile: checked again */
			return;
		}
		if (workers_enqueue(q, j))
			return;
		engine_post_reply(e, j->conn_id,
				  workers_refuse_unqueued(q, &j->peer, j->client, j->req), NULL);
		workers_job_free(j);
		return;
	}
	if (rc == JIT_EPOLICY)
		requests_audit_refusal(e, &j->peer, j->client, j->req, rc, msg, "ticket_check");
	else if (rc == JIT_EINTERNAL)
		requests_audit_refusal(e, &j->peer, j->client, j->req, rc, msg, NULL);
	else
		msg = NULL;
	engine_post_reply(e, j->conn_id, proto_error_line(rc, msg), NULL);
	workers_job_free(j);
}

/*
 * The checks of a grant that the engine alone can make, in the main thread
 * before the grant is queued: the signed approval (the key lives only
 * here), a request_id used before for another request, the approval's
 * age. NULL if they pass (*known: the request_id exists, the worker will
 * answer the duplicate), else the refusal line (audited).
 */
static char *admit_grant(struct engine *e, const struct jit_group_cfg *gc,
			 const struct jit_peer *peer, const struct jit_client_cfg *c,
			 const struct jit_request *req, bool resumed, bool was_racing, bool *known,
			 bool *racing)
{
	struct grant_rec *prev = NULL;
	const char *rule = NULL;
	char msg[512];
	int code = JIT_EPOLICY, arc;

	*known = false;
	*racing = false;
	if (gc->approval_key_file &&
	    (arc = approval_verify(gc->approval_key_file, req, msg, sizeof(msg))) != JIT_OK) {
		rule = "approval_key_file";
		code = arc; /* policy_denied, or internal (the key cannot be read) */
	}
	if (!rule && req->request_id) {
		int rc = FAULT_FAIL("fail.request_lookup")
				 ? JIT_EBUSY
				 : store_get_by_request_id(e->st, req->request_id, &prev);
		if (rc == JIT_OK) {
			*known = true;
			if (!policy_same_request(req, prev)) {
				rule = "request_id";
				/* the other grant is named only to a client that may
				 * see it: request_id is not a way to learn of grants
				 * in other groups */
				bool named = requests_grant_visible(e->cfg, c, prev);
				snprintf(msg, sizeof(msg), "request_id: \"%.128s\" was used for "
					 "another request%s%s%s", req->request_id,
					 named ? " (grant " : "", named ? prev->id : "",
					 named ? ")" : "");
			}
		} else if (rc != JIT_ENOTFOUND) {
			/* Not known to be new: a retry of a recorded grant must not be
			 * judged as a new request (its approval's age, the directory's
			 * health), so the client is asked to try again: busy when
			 * another process holds the store, internal otherwise. */
			int why = rc == JIT_EBUSY ? JIT_EBUSY : JIT_EINTERNAL;
			snprintf(msg, sizeof(msg), "the store cannot be read at the moment; "
				 "try again with the same request_id");
			engine_audit_refusal(e, peer, c, req, why, msg);
			return proto_error_line(why, msg);
		}
	}
	grant_rec_free(prev);
	int inflight = !rule && !*known && !resumed ? engine_rid_busy(e, req) : 0;
	/* Robustness: the same request is still queued or running (not in
	 * the store yet): a retry racing it. Judged as a new one by its
	 * approval's age or the directory's health, it could be refused
	 * while the first is granted, and the client would ask again under
	 * a new request_id. It goes on as a retry does (*racing): it is
	 * queued behind the first, and answered as its duplicate once the
	 * first is recorded (its own checks still run: the ticket check). */
	/* resumed after a reload: racing as it was admitted (its own hold
	 * of the request_id is still there: no fresh look tells) */
	*racing = resumed ? was_racing && !*known && !rule : inflight > 0;
	if (inflight < 0) {
		/* another request holds it (first come): as for one in the
		 * store, but with no grant yet to name */
		rule = "request_id";
		snprintf(msg, sizeof(msg), "request_id: \"%.128s\" was used for another request",
			 req->request_id);
	}
	/* a retry of a known request is answered as a duplicate whatever its age */
	if (!rule && !*known && !*racing && gc->approval_key_file &&
	    approval_fresh(req, gc->approval_max_age, now_s(), msg, sizeof(msg)) != JIT_OK)
		rule = "approval_max_age";
	if (!rule)
		return NULL;
	engine_audit_refusal_rule(e, peer, c, req, code, msg, rule);
	return proto_error_line(code, msg);
}

/* A grant into directory q known down is refused at once (and audited):
 * the client does not wait for a connect timeout. NULL if it may go on. */
static char *refuse_if_down(struct engine *e, struct dirq *q, const struct jit_peer *peer,
			    const struct jit_client_cfg *c, const struct jit_request *req)
{
	char msg[256];
	if (!dir_health_down(q->health, msg, sizeof(msg)))
		return NULL;
	engine_audit_refusal(e, peer, c, req, JIT_EDIRUNAVAIL, msg);
	return proto_error_line(JIT_EDIRUNAVAIL, msg);
}

/* Queues a grant (or its ticket check). NULL when queued (req is then the
 * job's), else the answer line (req still the caller's). */
static char *submit_grant(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
			  const struct jit_client_cfg *c, struct jit_request *req,
			  int64_t duration, bool resumed, bool was_racing)
{
	const struct jit_group_cfg *gc = config_group(e->cfg, req->group);
	struct dirq *q = gc ? workers_find_dir(e, gc->directory) : NULL;
	bool known = false, racing = false;
	if (!q)
		return proto_error_line(JIT_EUNKGROUP, NULL);
	char *line = admit_grant(e, gc, peer, c, req, resumed, was_racing, &known, &racing);
	if (line)
		return line;
	/* A retry of a recorded request is answered from the store (duplicate:
	 * true) even while the directory is down: refusing it would have the
	 * client retry under a new request_id and be granted twice. */
	if (!known && !racing && (line = refuse_if_down(e, q, peer, c, req)) != NULL)
		return line;
	struct job *j = xcalloc(1, sizeof(*j));
	const char *ph = config_group_placeholder(e->cfg, gc);
	j->kind = JOB_GRANT;
	j->conn_id = conn_id;
	j->peer = *peer;
	j->client = xstrdup(c ? c->name : NULL);
	j->req = req;
	j->duration = duration;
	j->group_name = xstrdup(gc->name);
	j->group_dn = xstrdup(gc->dn);
	j->member_attr = xstrdup(config_group_member_attr(e->cfg, gc));
	j->placeholder = xstrdup(ph && *ph ? ph : NULL);
	j->rules = policy_dirrules_new(e->cfg, gc, req->approved_by);
	j->approval_signed = gc->approval_key_file != NULL; /* admit_grant verified it */
	j->racing = racing;
	j->approval_max_age = gc->approval_key_file ? gc->approval_max_age : 0;
	j->cfg_gen = atomic_load(&e->cfg_gen);
	engine_rid_hold(e, j, req); /* before any thread may free j */
	if (gc->ticket_check && req->ticket && !known) {
		if (e->draining) {
			j->req = NULL;
			workers_job_free(j);
			return proto_error_line(JIT_ESHUTDOWN, NULL);
		}
		if (!e->tickets && ticket_checker_new(&e->tickets) != JIT_OK) {
			j->req = NULL;
			workers_job_free(j);
			return proto_error_line(JIT_EINTERNAL, "cannot start the ticket check");
		}
		j->q = q;
		if (ticket_check(e->tickets, gc->ticket_check, req->ticket, ticket_done, j) ==
		    JIT_OK)
			return NULL;
		/* as many checks as the checker takes are running or waiting */
		char msg[160];
		snprintf(msg, sizeof(msg), "ticket_check: %d ticket checks are running or "
			 "waiting, the most jitd allows; try again later", TICKET_LIVE_MAX);
		engine_audit_refusal(e, peer, c, req, JIT_EBUSY, msg);
		j->req = NULL;
		workers_job_free(j);
		return proto_error_line(JIT_EBUSY, msg);
	}
	if (!workers_enqueue(q, j)) {
		line = workers_refuse_unqueued(q, peer, j->client, req);
		j->req = NULL;
		workers_job_free(j);
		return line;
	}
	return NULL;
}

static bool submit_end(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
		       const struct jit_client_cfg *c, struct jit_request *req, char **line)
{
	struct grant_rec *r = requests_load_for(e, c, peer, req, line);
	if (!r)
		return false;
	struct dirq *q = workers_find_dir(e, r->directory);
	if (!q && req->op == OP_REVOKE && req->force) {
		/* an operator closes a grant nothing else can end (they removed
		 * the membership by hand, or the directory is gone) */
		struct grant_ctx g = { .st = e->st, .audit = e->audit };
		*line = grant_force_close_unconfigured(&g, r->id, req->reason_end,
						      c ? c->name : NULL, peer);
		grant_rec_free(r);
		return false;
	}
	if (!q) {
		char msg[400];
		snprintf(msg, sizeof(msg), "the grant's directory \"%.64s\" is not configured: jitd "
			 "cannot remove its membership; remove it by hand, then close the grant "
			 "with revoke and force", r->directory);
		*line = proto_error_line(JIT_EINTERNAL, msg);
		grant_rec_free(r);
		return false;
	}
	if (!(req->op == OP_REVOKE && req->force) && workers_end_waiting(q, r->id)) {
		/* Robustness: one waiting end per grant from clients, so that
		 * clients that ask, hang up and ask again while the directory
		 * is slow do not fill the queue's cap for ends */
		*line = proto_error_line(JIT_EBUSY, "an end of this grant asked earlier is still "
					 "waiting for the directory; ask again in a moment");
		grant_rec_free(r);
		return false;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_END;
	j->conn_id = conn_id;
	j->peer = *peer;
	j->client = xstrdup(c ? c->name : NULL);
	j->grant_id = xstrdup(r->id);
	j->end_state = req->op == OP_COMPLETE ? GS_COMPLETED : GS_REVOKED;
	j->reason = xstrdup(req->reason_end);
	j->force = req->op == OP_REVOKE && req->force;
	j->cfg_gen = atomic_load(&e->cfg_gen);
	grant_rec_free(r);
	if (!workers_enqueue(q, j)) {
		*line = workers_refuse_unqueued(q, peer, j->client, req);
		workers_job_free(j);
		return false;
	}
	return true;
}

const struct jit_client_cfg *requests_client_again(struct engine *e, struct job *j)
{
	if (policy_uses_groups(e->cfg))
		policy_peer_groups_cached(&j->peer, e->cfg, mono_ms());
	const struct jit_client_cfg *c = policy_client(e->cfg, &j->peer);
	return c && j->client && strcmp(c->name, j->client) == 0 ? c : NULL;
}

char *requests_grant_resume(struct engine *e, struct job *j)
{
	char msg[512];
	const char *rule = NULL;
	int64_t duration = 0;
	int rc = JIT_OK;

	const struct jit_client_cfg *c = requests_client_again(e, j);
	if (!c) {
		rc = JIT_EUNAUTH;
		rule = "clients";
		snprintf(msg, sizeof(msg), "the configuration was reloaded while the grant waited, "
			 "and no longer has clients entry \"%.64s\" for this peer",
			 j->client ? j->client : "");
	} else {
		rc = policy_check(e->cfg, c, j->req, &duration, msg, sizeof(msg), &rule);
	}
	log_info("grant of %.64s to %.64s: the configuration was reloaded while it waited; "
		 "checked again: %s", j->req->user, j->req->group,
		 rc == JIT_OK ? "passes" : "refused");
	char *line = NULL;
	struct jit_request *req = j->req;
	j->req = NULL;
	if (rc != JIT_OK) {
		/* as the client that sent it, whichever entry matches now */
		requests_audit_refusal(e, &j->peer, j->client, req, rc, msg, rule);
		line = proto_error_line(rc, msg);
	} else {
		/* as if it came now: the engine's own checks, the ticket check,
		 * the group's current DN and rules, the end of the queue */
		line = submit_grant(e, j->conn_id, &j->peer, c, req, duration, true, j->racing);
		if (!line)
			req = NULL; /* the new job's */
	}
	proto_request_free(req);
	workers_job_free(j);
	return line;
}

void engine_submit(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
		   const struct jit_client_cfg *c, struct jit_request *req, int64_t duration)
{
	char *line = NULL;
	switch (req->op) {
	case OP_GRANT:
		line = submit_grant(e, conn_id, peer, c, req, duration, false, false);
		if (!line)
			return; /* req now owned by the job */
		break;
	case OP_COMPLETE:
	case OP_REVOKE:
		if (submit_end(e, conn_id, peer, c, req, &line)) {
			proto_request_free(req);
			return;
		}
		break;
	case OP_EXTEND:
		line = extend_request(e, conn_id, c, req, peer, NULL);
		if (!line)
			return; /* req now owned by the job */
		break;
	case OP_SHOW: {
		struct grant_rec *r = requests_load_for(e, c, peer, req, &line);
		if (r) {
			line = requests_ok_grant_line(r);
			grant_rec_free(r);
		}
		break;
	}
	case OP_LIST:
		line = do_list(e, c, req);
		break;
	case OP_STATUS:
		line = do_status(e);
		break;
	default:
		line = proto_error_line(JIT_EUNKNOWNOP, NULL);
	}
	proto_request_free(req);
	reply_now(e, conn_id, line);
}

void engine_audit_refusal(struct engine *e, const struct jit_peer *peer,
			  const struct jit_client_cfg *c, const struct jit_request *req, int err,
			  const char *message)
{
	engine_audit_refusal_rule(e, peer, c, req, err, message, NULL);
}

void engine_audit_refusal_rule(struct engine *e, const struct jit_peer *peer,
			       const struct jit_client_cfg *c, const struct jit_request *req,
			       int err, const char *message, const char *rule)
{
	requests_audit_refusal(e, peer, c ? c->name : NULL, req, err, message, rule);
}

void engine_audit_refusal_named(struct engine *e, const struct jit_peer *peer, const char *client,
				const struct jit_request *req, int err, const char *message,
				const char *rule)
{
	requests_audit_refusal(e, peer, client, req, err, message, rule);
}

/* Any thread: the `refused` event (client: the entry's name, may be NULL),
 * with the members of extra (may be NULL). */
void requests_audit_refusal_x(struct engine *e, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int err, const char *message,
			      const char *rule, json_t *extra)
{
	json_t *o = json_object();
	if (req) {
		json_object_set_new(o, "op", json_string(jit_op_name(req->op)));
		if (req->user)
			json_object_set_new(o, "user", json_string(req->user));
		if (req->group)
			json_object_set_new(o, "group", json_string(req->group));
		if (req->grant_id)
			json_object_set_new(o, "grant_id", json_string(req->grant_id));
		if (req->ticket)
			json_object_set_new(o, "ticket", json_string(req->ticket));
		if (req->requested_by)
			json_object_set_new(o, "requested_by", json_string(req->requested_by));
		if (req->approved_by)
			json_object_set_new(o, "approved_by", json_string(req->approved_by));
		if (req->request_id)
			json_object_set_new(o, "request_id", json_string(req->request_id));
		if (req->expires_at)
			json_object_set_new(o, "expires_at", json_string(req->expires_at));
	}
	if (client)
		json_object_set_new(o, "client", json_string(client));
	json_object_set_new(o, "peer_uid", json_integer((json_int_t)peer->uid));
	json_object_set_new(o, "peer_pid", json_integer((json_int_t)peer->pid));
	json_object_set_new(o, "error", json_string(jit_err_code(err)));
	json_object_set_new(o, "message", audit_text(message ? message : jit_err_message(err)));
	if (extra)
		json_object_update(o, extra);
	if (rule)
		json_object_set_new(o, "rule", json_string(rule));
	if (audit_write(e->audit, "refused", o) != JIT_OK)
		log_err("audit: cannot record a refusal");
	json_decref(o);
}

void requests_audit_refusal(struct engine *e, const struct jit_peer *peer, const char *client,
			    const struct jit_request *req, int err, const char *message,
			    const char *rule)
{
	requests_audit_refusal_x(e, peer, client, req, err, message, rule, NULL);
}
