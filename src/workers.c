/*
 * workers.c - per directory, one FIFO job queue and `connections` worker
 * threads, each with its own LDAP connection and store handle: grants,
 * ends, expiry batches, probes, and the directory check of an extend
 * (JOB_ELIGIBLE); their answers go back through the reply queue. A full
 * queue refuses a client's job `busy`.
 * Trust: jobs carry requests the listener validated and the main thread
 * checked again; the workers' connections alone hold directory credentials.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "directory.h"
#include "dirrules.h"
#include "engine_priv.h"
#include "grant.h"
#include "log.h"
#include "privsep.h"
#include "store.h"
#include "timing.h"
#include "util.h"

/* Requests refused because a queue is full are audited at most once per
 * this period per directory, each audited one saying how many were not. */
#define BUSY_AUDIT_MS 10000

void workers_job_free(struct job *j)
{
	if (!j)
		return;
	engine_rid_release(j);
	free(j->client);
	proto_request_free(j->req);
	free(j->group_name);
	free(j->group_dn);
	free(j->member_attr);
	free(j->placeholder);
	policy_dirrules_free(j->rules);
	free(j->grant_id);
	free(j->reason);
	free(j->user);
	free(j->user_uuid);
	free(j->user_dn);
	free(j->check_msg);
	for (size_t i = 0; i < j->n_ids; i++) {
		free(j->ids[i]);
		free(j->keys[i]);
	}
	free(j->ids);
	free(j->keys);
	free(j);
}

/* An extension's directory check (dirrules_recheck); the job goes back
 * to the main thread with the answer. */
static void run_eligible(struct dirq *q, struct grant_ctx *g, struct job *j)
{
	struct dir_result dres = { 0 };
	const char *rule = NULL;
	char msg[512];

	j->check_rc = dirrules_recheck(g->dc, j->rules, j->user, j->user_uuid, j->user_dn, &dres,
				       msg, sizeof(msg), &rule);
	if (j->check_rc != JIT_OK) {
		j->check_msg = xstrdup(msg);
		j->check_rule = rule;
		j->check_has_ldap = dres.message[0] != '\0';
		j->check_ldap = dres.ldap_code;
	}
	engine_post_resume(q->e, j);
}

/* grant_params.first_running: another job holds this one's request_id */
static bool job_rid_others(const void *arg)
{
	return engine_rid_others(arg);
}

/* Runs job j; false when j is the caller's to free, true when it was
 * handed on (JOB_ELIGIBLE). */
static bool run_job(struct dirq *q, struct grant_ctx *g, struct job *j)
{
	char *line;
	if (j->kind == JOB_ELIGIBLE) {
		timing_since(STEP_QUEUE, j->queued);
		run_eligible(q, g, j);
		return true;
	}
	if (j->kind == JOB_PROBE) {
		struct dir_result dres;
		if (dir_probe(g->dc, &dres) != JIT_OK)
			log_debug("directory %s: still unreachable: %s", q->name, dres.message);
		return false;
	}
	if (j->kind == JOB_EXPIRE) {
		timing_since(STEP_EXPIRE_QUEUE, j->queued);
		grant_expire_batch(g, j->ids, j->keys, j->n_ids);
		for (size_t i = 0; i < j->n_ids; i++)
			engine_post_reply(q->e, 0, NULL, xstrdup(j->ids[i]));
		return false;
	}
	if (engine_grant_stale(q->e, j)) {
		/* a reload came while it waited: the main thread checks it
		 * again under the new configuration (nothing done yet) */
		engine_post_resume(q->e, j);
		return true;
	}
	timing_since(STEP_QUEUE, j->queued);
	if (j->kind == JOB_END && j->force && j->cfg_gen != atomic_load(&q->e->cfg_gen)) {
		/* Robustness: a reload that changed the clients came while it
		 * waited, and may have taken "force" from this client: closing
		 * without the directory is then not done on its word; an
		 * ordinary revoke is (it removes, or stays ending). */
		log_warn("grant %s: a reload changed the configuration while a forced revoke "
			 "waited; made as an ordinary revoke", j->grant_id);
		j->force = false;
	}
	if (j->kind == JOB_END && j->force) {
		line = grant_force_close(g, j->grant_id, j->reason, j->client, &j->peer);
	} else if (j->kind == JOB_GRANT) {
		struct grant_params p = {
			.req = j->req, .duration = j->duration, .group_name = j->group_name,
			.group_dn = j->group_dn, .directory = q->name,
			.member_attr = j->member_attr, .placeholder = j->placeholder,
			.client = j->client, .peer = j->peer, .rules = j->rules,
			.approval_signed = j->approval_signed, .racing = j->racing,
			.approval_max_age = j->approval_max_age,
			.first_running = job_rid_others, .first_arg = j,
		};
		line = grant_create(g, &p);
	} else {
		line = grant_end(g, j->grant_id, j->end_state, j->conn_id == 0, j->reason,
				 j->client, j->conn_id ? &j->peer : NULL);
	}
	timing_since(j->kind == JOB_GRANT ? STEP_GRANT : STEP_END, j->queued);
	if (j->conn_id) {
		engine_post_reply(q->e, j->conn_id, line, NULL);
	} else {
		free(line);
		engine_post_reply(q->e, 0, NULL, xstrdup(j->grant_id));
	}
	return false;
}

struct worker_arg {
	struct dirq *q;
	int idx;
};

/* Where worker idx is on the idle stack, or -1 (q->lock held). */
static int idle_pos(const struct dirq *q, int idx)
{
	for (int i = 0; i < q->n_idle; i++)
		if (q->idle[i] == idx)
			return i;
	return -1;
}

/* Takes worker idx off the idle stack if it is there (q->lock held). */
static void unidle(struct dirq *q, int idx)
{
	int i = idle_pos(q, idx);
	if (i >= 0) {
		memmove(&q->idle[i], &q->idle[i + 1], (size_t)(q->n_idle - i - 1) * sizeof(q->idle[0]));
		q->n_idle--;
	}
}

/* A job was queued (q->lock held): wake the worker idle the shortest time.
 * A busy worker may take the job first; the woken one then waits again. */
static void wake_one(struct dirq *q)
{
	if (q->n_idle > 0)
		pthread_cond_signal(&q->wake[q->idle[--q->n_idle]]);
}

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct dirq *q = wa->q;
	struct engine *e = q->e;
	struct grant_ctx g = { .dc = q->conns[wa->idx], .st = q->stores[wa->idx],
			       .audit = e->audit, .pair_locks = q->pair_locks };
	struct dir_result dres;
	int wa_idx = wa->idx;
	free(wa);
	privsep_thread_no_caps();
	if (dir_conn_open(g.dc, &dres) != JIT_OK)
		log_warn("directory %s: not reachable at start (%s); will retry on demand", q->name,
			 dres.message);
	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stopping) {
			if (idle_pos(q, wa_idx) < 0) /* not after a spurious wake-up */
				q->idle[q->n_idle++] = wa_idx;
			pthread_cond_wait(&q->wake[wa_idx], &q->lock);
		}
		unidle(q, wa_idx); /* if it took work without being woken */
		struct job *j = q->head;
		if (j) {
			q->head = j->next;
			if (!q->head)
				q->tail = NULL;
			if (q->rtail == j)
				q->rtail = NULL;
			q->len--;
			if (j->conn_id && j->kind == JOB_END)
				q->n_client_ends--;
		}
		bool stopping = q->stopping;
		bool draining = q->draining;
		pthread_mutex_unlock(&q->lock);
		if (!j)
			break;
		if (stopping || (draining && j->kind != JOB_END && j->kind != JOB_EXPIRE)) {
			/* Not started: tell the client. Robustness: a client's
			 * complete or revoke is recorded for the next start
			 * (an expiry's row is due in the store already, a
			 * client's end only in this job: dropped, its
			 * membership would stay until expires_at). */
			if (stopping && j->kind == JOB_END && j->conn_id && !j->force)
				grant_end_at_next_start(&g, j->grant_id, j->end_state, j->reason,
							j->client, &j->peer);
			if (j->conn_id)
				engine_post_reply(e, j->conn_id,
						  proto_error_line(JIT_ESHUTDOWN, NULL), NULL);
			workers_job_free(j);
			continue;
		}
		g.retry_min = e->cfg0->retry_min_interval;
		g.retry_max = e->cfg0->retry_max_interval;
		g.replication_grace = q->cfg->replication_grace;
		if (!run_job(q, &g, j))
			workers_job_free(j);
	}
	return NULL;
}

bool workers_end_waiting(struct dirq *q, const char *grant_id)
{
	bool found = false;
	pthread_mutex_lock(&q->lock);
	/* the ends are at the front, up to rtail */
	for (struct job *j = q->rtail ? q->head : NULL; j && !found; j = j->next) {
		found = j->conn_id && j->kind == JOB_END && j->grant_id &&
			strcmp(j->grant_id, grant_id) == 0;
		if (j == q->rtail)
			break;
	}
	pthread_mutex_unlock(&q->lock);
	return found;
}

bool workers_enqueue(struct dirq *q, struct job *j)
{
	pthread_mutex_lock(&q->lock);
	/* A client's complete or revoke is never refused for a queue full of
	 * grants: a removal must not wait for a burst of grants to drain.
	 * Ends are bounded by one request in flight per connection; the cap
	 * of their own (as many as grants, far above max_clients) holds only
	 * against a listener that does not keep to it. */
	bool client_end = j->conn_id && j->kind == JOB_END;
	if (q->stopping || q->draining ||
	    (j->conn_id && !client_end && q->len - q->n_client_ends >= q->e->queue_max) ||
	    (client_end && q->n_client_ends >= q->e->queue_max)) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	if (client_end)
		q->n_client_ends++;
	j->queued = mono_us();
	if (j->kind == JOB_END || j->kind == JOB_EXPIRE) {
		/* Ends first (struct dirq's rtail), in the order they came. */
		struct job **at = q->rtail ? &q->rtail->next : &q->head;
		j->next = *at;
		*at = j;
		q->rtail = j;
		if (!j->next)
			q->tail = j;
	} else {
		j->next = NULL;
		if (q->tail)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
	}
	q->len++;
	wake_one(q);
	pthread_mutex_unlock(&q->lock);
	return true;
}

/* A probe goes first: while the directory is down, everything else fails
 * at once anyway, and the probe is what ends the outage. */
void workers_enqueue_front(struct dirq *q, struct job *j)
{
	pthread_mutex_lock(&q->lock);
	if (q->stopping || q->draining) {
		pthread_mutex_unlock(&q->lock);
		workers_job_free(j);
		return;
	}
	j->next = q->head;
	q->head = j;
	if (!q->tail)
		q->tail = j;
	q->len++;
	wake_one(q);
	pthread_mutex_unlock(&q->lock);
}

struct dirq *workers_find_dir(struct engine *e, const char *name)
{
	for (size_t i = 0; i < e->n_dirs; i++)
		if (strcmp(e->dirs[i].name, name) == 0)
			return &e->dirs[i];
	return NULL;
}

/* Says so when nothing protects a directory's operations after the bind:
 * a mechanism without a security layer on a URI without TLS, or TLS that
 * does not check the server's certificate without a security layer (GSSAPI
 * over TLS asks for none: AD refuses one inside TLS). Kerberos and SCRAM
 * authenticate the bind, but nothing ties it to the TLS session: a machine
 * on the path that offers its own certificate can relay the bind, then
 * change what follows. (GSSAPI without TLS asks for a layer itself, see
 * ldapconn.c; PLAIN without TLS is refused by the configuration check.)
 * Only a warning: refusing to start would stop the removals that are due. */
static void warn_unprotected(const struct jit_dir_cfg *dc)
{
	const char *m = dc->sasl_mech ? dc->sasl_mech : "EXTERNAL";
	if (dir_cfg_tls_unverified(dc))
		log_warn("directory %s: %s over TLS with tls_require_cert = %s and no SASL security "
			 "layer: nothing proves the server is the directory, so a machine on the "
			 "path could answer in its place, or relay the bind and then change the "
			 "searches and modifies or their answers%s; set tls_require_cert = demand "
			 "(and tls_ca_file)%s", dc->name, m, dc->tls_require_cert,
			 strcmp(m, "PLAIN") == 0 ? " (and PLAIN hands it the password)" : "",
			 strcmp(m, "GSSAPI") == 0 ? ", or use ldap:// without starttls, where "
						    "GSSAPI seals" : "");
	if (config_dir_tls(dc) || dc->sasl_secprops != NULL)
		return;
	if (strncmp(m, "SCRAM-", 6) == 0 || strcmp(m, "DIGEST-MD5") == 0)
		log_warn("directory %s: %s on ldap:// without starttls: the password is safe, but "
			 "nothing protects the searches and modifies after the bind (a machine on "
			 "the path could change them or their answers); set starttls = true or use "
			 "ldaps://", dc->name, m);
}

int workers_start_dir(struct engine *e, struct dirq *q, const struct jit_dir_cfg *dc)
{
	warn_unprotected(dc);
	q->e = e;
	q->name = xstrdup(dc->name);
	q->cfg = dc;
	pthread_mutex_init(&q->lock, NULL);
	q->wake = xcalloc((size_t)dc->connections, sizeof(pthread_cond_t));
	for (int i = 0; i < dc->connections; i++)
		pthread_cond_init(&q->wake[i], NULL);
	q->idle = xcalloc((size_t)dc->connections, sizeof(int));
	q->threads = xcalloc((size_t)dc->connections, sizeof(pthread_t));
	q->conns = xcalloc((size_t)dc->connections, sizeof(struct dir_conn *));
	q->health = dir_health_new(dc->name);
	q->stores = xcalloc((size_t)dc->connections, sizeof(struct store *));
	for (int i = 0; i < GRANT_PAIR_LOCKS; i++)
		pthread_mutex_init(&q->pair_locks[i], NULL);
	for (int i = 0; i < dc->connections; i++) {
		q->conns[i] = dir_conn_new(dc);
		dir_conn_set_health(q->conns[i], q->health, false);
		if (store_open(e->cfg0->state_dir, &q->stores[i]) != JIT_OK) {
			log_err("engine: cannot open the store for a worker of %s", dc->name);
			return JIT_EIO;
		}
	}
	for (int i = 0; i < dc->connections; i++) {
		struct worker_arg *wa = xmalloc(sizeof(*wa));
		wa->q = q;
		wa->idx = i;
		int err = pthread_create(&q->threads[i], NULL, worker_main, wa);
		if (err != 0) {
			log_err("engine: cannot start a worker: %s", strerror(err));
			free(wa);
			return JIT_EINTERNAL;
		}
		q->n_workers++;
	}
	return JIT_OK;
}

/*
 * The answer to a client's request whose job q did not take
 * (workers_enqueue() false): `shutting_down` while it stops (not audited:
 * nothing new starts then), else `busy`, its queue being full. That
 * refusal is audited, but at most once every 10 s per directory, the next
 * audited one saying how many were not: a full queue is an overload, and
 * one synced audit line per refused request (from the main thread, which
 * also runs the expiry ticks) would add to it (docs/audit-log.md). Any
 * thread.
 */
char *workers_refuse_unqueued(struct dirq *q, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req)
{
	char msg[200], amsg[280];
	int64_t held = 0;
	bool stopping, audit;

	pthread_mutex_lock(&q->lock);
	stopping = q->stopping || q->draining;
	audit = !stopping && throttle_pass(&q->busy_audit, mono_ms(), BUSY_AUDIT_MS, &held);
	pthread_mutex_unlock(&q->lock);
	if (stopping)
		return proto_error_line(JIT_ESHUTDOWN, NULL);
	snprintf(msg, sizeof(msg), "the work queue of directory \"%.64s\" is full; try again "
		 "later", q->name);
	if (audit) {
		snprintf(amsg, sizeof(amsg), "%s (%lld earlier refusals not recorded)", msg,
			 (long long)held);
		requests_audit_refusal(q->e, peer, client, req, JIT_EBUSY, held ? amsg : msg, NULL);
	}
	return proto_error_line(JIT_EBUSY, msg);
}
