/*
 * engine.c - the engine's life: the main thread's store handle, opened with
 * crash recovery (grants never acknowledged are rolled back) before anything
 * else runs, the workers of each directory and the reconciler started, a
 * reloaded config taken or refused, stop and free; and the reply queue, by
 * which workers and the ticket checker hand answers to the main thread (an
 * eventfd wakes its loop). The rest of the engine: engine_priv.h.
 * Trust: the engine alone holds directory credentials.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "directory.h"
#include "engine_priv.h"
#include "fault.h"
#include "log.h"
#include "reconcile.h"
#include "store.h"
#include "ticket.h"
#include "util.h"

/* Tries of start-up recovery while the store is locked elsewhere (each
 * waits the store's busy timeout). */
#define RECOVER_BUSY_TRIES 6
#define QUEUE_MAX 20000         /* client jobs waiting per directory (not ends) */
#define INFLIGHT_MAX 4096       /* scheduler jobs in queues at once */
#define OVERDUE_AFTER 60        /* s past expires_at: status expiries_overdue */

/* The fields policy_same_request compares, as one value. */
static json_t *request_print(const struct jit_request *req)
{
	const char *f[] = { req->user, req->group, req->ticket, req->reason, req->requested_by,
			    req->approved_by };
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_array_append_new(a, f[i] ? json_string(f[i]) : json_null());
	return a;
}

void engine_rid_hold(struct engine *e, struct job *j, const struct jit_request *req)
{
	if (!req->request_id || j->rid_held)
		return;
	pthread_mutex_lock(&e->rid_lock);
	json_t *o = json_object_get(e->rids, req->request_id);
	if (o) {
		json_object_set_new(o, "n", json_integer(json_integer_value(json_object_get(o, "n")) + 1));
	} else {
		o = json_pack("{sIso}", "n", (json_int_t)1, "req", request_print(req));
		json_object_set_new(e->rids, req->request_id, o);
	}
	pthread_mutex_unlock(&e->rid_lock);
	j->rid_held = xstrdup(req->request_id);
	j->rid_engine = e;
}

void engine_rid_release(struct job *j)
{
	struct engine *e = j->rid_engine;
	if (!j->rid_held || !e)
		return;
	pthread_mutex_lock(&e->rid_lock);
	json_t *o = json_object_get(e->rids, j->rid_held);
	json_int_t n = json_integer_value(json_object_get(o, "n"));
	if (n > 1)
		json_object_set_new(o, "n", json_integer(n - 1));
	else
		json_object_del(e->rids, j->rid_held);
	pthread_mutex_unlock(&e->rid_lock);
	free(j->rid_held);
	j->rid_held = NULL;
}

bool engine_rid_others(const struct job *j)
{
	struct engine *e = j->rid_engine;
	if (!j->rid_held || !e)
		return false;
	pthread_mutex_lock(&e->rid_lock);
	json_t *o = json_object_get(e->rids, j->rid_held);
	bool others = json_integer_value(json_object_get(o, "n")) > 1;
	pthread_mutex_unlock(&e->rid_lock);
	return others;
}

int engine_rid_busy(struct engine *e, const struct jit_request *req)
{
	if (!req->request_id)
		return 0;
	/* the fingerprint only when the key is held (seldom): not per grant */
	pthread_mutex_lock(&e->rid_lock);
	json_t *o = json_object_get(e->rids, req->request_id);
	int busy = 0;
	if (o) {
		json_t *mine = request_print(req);
		busy = json_equal(json_object_get(o, "req"), mine) ? 1 : -1;
		json_decref(mine);
	}
	pthread_mutex_unlock(&e->rid_lock);
	return busy;
}

void engine_reply_free(struct engine_reply *r)
{
	if (!r)
		return;
	free(r->line);
	free(r->done_grant_id);
	free(r);
}

/* Any thread: wakes the main loop (engine_reply_fd) to take up what was
 * queued for it. */
static void wake_main(struct engine *e)
{
	uint64_t one = 1;
	if (write(e->efd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		log_err("engine: cannot signal the main loop: %s", strerror(errno));
}

/* Any thread: queue a reply (line and done id taken) and wake the loop. */
void engine_post_reply(struct engine *e, uint64_t conn_id, char *line, char *done_id)
{
	struct engine_reply *r = xcalloc(1, sizeof(*r));
	r->conn_id = conn_id;
	r->line = line;
	r->done_grant_id = done_id;
	pthread_mutex_lock(&e->reply_lock);
	if (e->rtail)
		e->rtail->next = r;
	else
		e->rhead = r;
	e->rtail = r;
	pthread_mutex_unlock(&e->reply_lock);
	wake_main(e);
}

/* A worker: the directory's answer for an extension is in j (taken); the
 * main thread goes on with it (engine_pop_reply, extend_resume). */
void engine_post_resume(struct engine *e, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&e->reply_lock);
	if (e->ctail)
		e->ctail->next = j;
	else
		e->chead = j;
	e->ctail = j;
	pthread_mutex_unlock(&e->reply_lock);
	wake_main(e);
}

bool engine_grant_stale(struct engine *e, const struct job *j)
{
	return j->kind == JOB_GRANT && j->cfg_gen != atomic_load(&e->cfg_gen);
}

/* Main thread: the next extension back from the directory, or NULL. */
static struct job *take_resume(struct engine *e)
{
	pthread_mutex_lock(&e->reply_lock);
	struct job *j = e->chead;
	if (j) {
		e->chead = j->next;
		if (!e->chead)
			e->ctail = NULL;
		j->next = NULL;
	}
	pthread_mutex_unlock(&e->reply_lock);
	return j;
}

struct engine_reply *engine_pop_reply(struct engine *e)
{
	for (;;) {
		struct engine_reply *r = NULL;
		struct job *j = take_resume(e);
		if (j) {
			uint64_t conn_id = j->conn_id;
			char *line = j->kind == JOB_GRANT ? requests_grant_resume(e, j)
							  : extend_resume(e, j); /* take j */
			if (!line)
				continue; /* queued again */
			r = xcalloc(1, sizeof(*r));
			r->conn_id = conn_id;
			r->line = line;
			return r;
		}
		pthread_mutex_lock(&e->reply_lock);
		r = e->rhead;
		if (r) {
			e->rhead = r->next;
			if (!e->rhead)
				e->rtail = NULL;
			r->next = NULL;
		}
		pthread_mutex_unlock(&e->reply_lock);
		if (!r) {
			/* Consume the wake-ups, then look once more: a reply
			 * posted between the look above and this read has had
			 * its wake-up consumed here, and no later one may come. */
			uint64_t v;
			bool more;
			if (read(e->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_err("engine: eventfd read: %s", strerror(errno));
			pthread_mutex_lock(&e->reply_lock);
			more = e->rhead != NULL || e->chead != NULL;
			pthread_mutex_unlock(&e->reply_lock);
			if (more)
				continue;
			return NULL;
		}
		if (!r->done_grant_id)
			return r;
		/* scheduler bookkeeping: the grant may be scheduled again */
		scheduler_inflight_del(e, r->done_grant_id);
		engine_reply_free(r);
	}
}

int engine_reply_fd(struct engine *e)
{
	return e->efd;
}

/*
 * The store of state_dir, created only where that cannot lose grants: the
 * audit chain was opened first (jitd.c), so a log with history tells a
 * store that went missing from one never made. A new one is audited once
 * SQLite has written its schema: a start that failed before (a file system
 * without WAL, a full disk, a kill) leaves an empty file and no line, and
 * the next start creates it again rather than take it for a store that
 * went missing. If the line cannot be written, jitd does not start; the
 * store it made is opened as it is at the next start (no store_created
 * line for it then: the log says why in jitd's diagnostics).
 */
static int open_store(struct engine *e, bool init_store)
{
	char *history = NULL, *created = NULL;
	int64_t seq = audit_last_seq(e->audit);
	int rc;

	if (seq > 0)
		history = xasprintf("the audit log %s has history (its chain is at seq %lld)",
				    e->cfg->audit_log, (long long)seq);
	rc = store_init(e->cfg->state_dir, history, init_store, &created);
	free(history);
	if (rc == JIT_OK)
		rc = store_open(e->cfg->state_dir, &e->st);
	if (rc == JIT_OK && created) {
		json_t *o = json_pack("{sssb}", "path", created, "init_store", init_store);
		rc = audit_write(e->audit, "store_created", o);
		json_decref(o);
		if (rc != JIT_OK)
			log_err("audit: cannot record store_created for %s; not starting", created);
	}
	free(created);
	return rc;
}

int engine_new(const struct jit_config *cfg, struct audit *audit, bool init_store,
	       struct engine **out)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	int64_t recovered = 0;
	int rc;
	e->cfg = e->cfg0 = cfg;
	e->audit = audit;
	e->started = now_s();
	/* tests of the caps (fault.h) */
	e->inflight_max = (size_t)fault_env_cap("JITD_FAULT_INFLIGHT_MAX", INFLIGHT_MAX);
	e->queue_max = (size_t)fault_env_cap("JITD_FAULT_QUEUE_MAX", QUEUE_MAX);
	e->overdue_after = fault_env_cap("JITD_FAULT_OVERDUE_AFTER", OVERDUE_AFTER);
	pthread_mutex_init(&e->reply_lock, NULL);
	pthread_mutex_init(&e->rid_lock, NULL);
	e->rids = json_object();
	e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->efd < 0) {
		log_err("engine: eventfd: %s", strerror(errno));
		free(e);
		return JIT_EINTERNAL;
	}
	/* Recovery: grants never acknowledged are rolled back by the machine.
	 * Robustness: another process holding the store's write lock (a
	 * backup, an operator's sqlite3) is waited for a while, by the
	 * schema check and by recovery: an exit here would only start a
	 * restart loop under the service manager. */
	rc = open_store(e, init_store); /* store_open() waits for such a lock */
	if (rc != JIT_OK)
		goto fail;
	for (int tries = 1;; tries++) {
		rc = store_recover(e->st, now_s(), &recovered);
		if (rc != JIT_EBUSY || tries >= RECOVER_BUSY_TRIES)
			break;
		log_warn("store: locked by another process; trying again (%d of %d)", tries + 1,
			 RECOVER_BUSY_TRIES);
	}
	if (rc != JIT_OK)
		goto fail;
	if (recovered > 0) {
		json_t *o = json_pack("{sI}", "interrupted_grants", (json_int_t)recovered);
		log_warn("recovery: %lld interrupted grant(s) will be rolled back",
			 (long long)recovered);
		if (audit_write(audit, "recovered", o) != JIT_OK)
			log_err("audit: cannot record recovery");
		json_decref(o);
	}
	FAULT_POINT("engine.after_recover");
	/* the clock may have been stepped back while jitd was down */
	e->pull_retries = true;
	e->pull_future = true;
	/* From here on the handle serves the main loop: bounded waits. */
	rc = store_set_wait(e->st, MAIN_STORE_WAIT_MS);
	if (rc != JIT_OK)
		goto fail;
	const char **names = xcalloc(cfg->n_dirs + 1, sizeof(*names));
	for (size_t i = 0; i < cfg->n_dirs; i++)
		names[i] = cfg->dirs[i].name;
	store_set_directories(e->st, names, cfg->n_dirs);
	free(names);
	e->dirs = xcalloc(cfg->n_dirs, sizeof(struct dirq));
	for (size_t i = 0; i < cfg->n_dirs; i++) {
		e->n_dirs++;
		rc = workers_start_dir(e, &e->dirs[i], &cfg->dirs[i]);
		if (rc != JIT_OK)
			goto fail;
	}
	struct dir_health **health = xcalloc(e->n_dirs + 1, sizeof(*health));
	pthread_mutex_t **locks = xcalloc(e->n_dirs + 1, sizeof(*locks));
	for (size_t i = 0; i < e->n_dirs; i++) {
		health[i] = e->dirs[i].health;
		locks[i] = e->dirs[i].pair_locks;
	}
	rc = reconcile_start(cfg, audit, locks, health, &e->rc);
	free(health);
	free(locks);
	if (rc != JIT_OK)
		goto fail;
	*out = e;
	return JIT_OK;
fail:
	engine_free(e);
	return rc;
}

/* Checks a new config against the directories and live grants. */
int engine_set_config(struct engine *e, const struct jit_config *cfg, char *msg, size_t msglen)
{
	/* Robustness: each directory has its connections, workers and store
	 * handles from the start; a reload cannot add one (its groups would
	 * have no worker) nor drop one that may hold live grants. */
	for (size_t i = 0; i < e->n_dirs; i++) {
		if (!config_directory(cfg, e->dirs[i].name)) {
			snprintf(msg, msglen, "directory \"%s\" was removed; directories are added "
				 "and removed only at a restart", e->dirs[i].name);
			return JIT_ECONFIG;
		}
	}
	for (size_t i = 0; i < cfg->n_dirs; i++) {
		if (!workers_find_dir(e, cfg->dirs[i].name)) {
			snprintf(msg, msglen, "directory \"%s\" was added; directories are added "
				 "and removed only at a restart", cfg->dirs[i].name);
			return JIT_ECONFIG;
		}
	}
	/* grants accepted under the old one are checked again before they run,
	 * when it judged or carried them out otherwise */
	if (!config_policy_same(e->cfg, cfg))
		atomic_fetch_add(&e->cfg_gen, 1);
	e->cfg = cfg;
	if (e->rc)
		reconcile_set_config(e->rc, cfg);
	return JIT_OK;
}

/* Tells every directory's workers to take no more jobs. */
static void stop_queues(struct engine *e)
{
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		pthread_mutex_lock(&q->lock);
		q->stopping = true;
		for (int k = 0; k < q->n_workers; k++)
			pthread_cond_signal(&q->wake[k]);
		pthread_mutex_unlock(&q->lock);
	}
}

void engine_begin_stop(struct engine *e)
{
	if (e->stopped || e->draining)
		return;
	e->draining = true;
	/* No tick comes during the drain: what one held back for a fuller
	 * batch goes to the queues now. */
	scheduler_flush_held(e);
	/* Nothing more is queued. What waits in the queues to add access (a
	 * grant, an extension's check) or to probe is answered at once, not
	 * when a worker gets free (all of them may be held by a slow directory
	 * past the drain): nothing was recorded for it. The ends queued (ends
	 * asked for, expiries) still run while the drain lasts: each one made
	 * is a membership that does not wait for the next start. */
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		struct job *drop = NULL, **dt = &drop, *keep = NULL, **kt = &keep, *last = NULL;
		size_t kept = 0;
		pthread_mutex_lock(&q->lock);
		q->draining = true;
		for (struct job *j = q->head, *next; j; j = next) {
			next = j->next;
			j->next = NULL;
			if (j->kind == JOB_END || j->kind == JOB_EXPIRE) {
				*kt = j;
				kt = &j->next;
				last = j;
				kept++;
			} else {
				*dt = j;
				dt = &j->next;
			}
		}
		q->head = keep;
		q->tail = q->rtail = last;
		q->len = kept;
		pthread_mutex_unlock(&q->lock);
		while (drop) {
			struct job *next = drop->next;
			if (drop->conn_id)
				engine_post_reply(e, drop->conn_id,
						  proto_error_line(JIT_ESHUTDOWN, NULL), NULL);
			workers_job_free(drop);
			drop = next;
		}
	}
	/* Last, with the queues closed: the ticket checks waiting or running
	 * are answered shutting_down now, while the answers are still
	 * forwarded, and one that passed meanwhile finds its queue closed and
	 * is answered so too (none is started after this: requests_grant
	 * refuses). */
	ticket_checker_free(e->tickets);
	e->tickets = NULL;
}

bool engine_queues_empty(struct engine *e)
{
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		pthread_mutex_lock(&q->lock);
		size_t len = q->len;
		pthread_mutex_unlock(&q->lock);
		if (len > 0)
			return false;
	}
	return true;
}

void engine_stop(struct engine *e)
{
	if (e->stopped)
		return;
	/* First: checks still running are answered shutting_down (when the
	 * stop did not begin with engine_begin_stop). */
	ticket_checker_free(e->tickets);
	e->tickets = NULL;
	e->stopped = true;
	reconcile_stop(e->rc);
	e->rc = NULL;
	stop_queues(e);
	for (size_t i = 0; i < e->n_dirs; i++)
		for (int k = 0; k < e->dirs[i].n_workers; k++)
			pthread_join(e->dirs[i].threads[k], NULL);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_stop(e);
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		for (int k = 0; q->conns && k < q->cfg->connections; k++) {
			dir_conn_free(q->conns[k]);
			store_close(q->stores[k]);
		}
		dir_health_free(q->health);
		for (int k = 0; q->threads && k < GRANT_PAIR_LOCKS; k++)
			pthread_mutex_destroy(&q->pair_locks[k]);
		free(q->stores);
		while (q->head) {
			struct job *j = q->head;
			q->head = j->next;
			workers_job_free(j);
		}
		q->tail = q->rtail = NULL;
		free(q->conns);
		free(q->threads);
		for (size_t k = 0; k < q->n_due; k++) {
			free(q->due[k].group_dn);
			free(q->due[k].id);
			free(q->due[k].pair_key);
		}
		free(q->due);
		free(q->name);
		pthread_mutex_destroy(&q->lock);
		for (int k = 0; q->wake && k < q->cfg->connections; k++)
			pthread_cond_destroy(&q->wake[k]);
		free(q->wake);
		free(q->idle);
	}
	free(e->dirs);
	while (e->rhead) {
		struct engine_reply *r = e->rhead;
		e->rhead = r->next;
		engine_reply_free(r);
	}
	while (e->chead) {
		struct job *j = e->chead;
		e->chead = j->next;
		workers_job_free(j);
	}
	for (int b = 0; b < INFLIGHT_BUCKETS; b++) {
		while (e->inflight[b]) {
			struct inflight *f = e->inflight[b];
			e->inflight[b] = f->next;
			free(f->id);
			free(f);
		}
	}
	store_close(e->st);
	if (e->efd >= 0)
		close(e->efd);
	/* last: every job freed above released its request_id here */
	json_decref(e->rids);
	pthread_mutex_destroy(&e->rid_lock);
	free(e);
}
