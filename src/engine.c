/*
 * engine.c - runs the grant state machine: one job queue and `connections`
 * worker threads per directory (each with its own LDAP connection and
 * store handle), the expiry scheduler, and the read-only operations
 * (show, list, status) plus extend, answered from the main thread, whose
 * store handle never waits long for a lock (MAIN_STORE_WAIT_MS). An extend
 * of a group with eligible_group first takes a turn in its directory's
 * queue for the membership check (JOB_ELIGIBLE), then comes back to the
 * main thread, which checks everything again and writes it.
 * Trust: requests arrive validated and authorised for their op/group by
 * the listener; operations on an existing grant are authorised here
 * against the grant's group. The engine alone holds directory credentials.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "approval.h"
#include "directory.h"
#include "dirrules.h"
#include "engine.h"
#include "fault.h"
#include "grant.h"
#include "log.h"
#include "reconcile.h"
#include "store.h"
#include "ticket.h"
#include "timing.h"
#include "util.h"

#define QUEUE_MAX 20000         /* client jobs waiting per directory */
/* Requests refused because a queue is full are audited at most once per
 * this period per directory, each audited one saying how many were not. */
#define BUSY_AUDIT_MS 10000
#define INFLIGHT_MAX 4096       /* scheduler jobs in queues at once */
#define INFLIGHT_BUCKETS 1024
#define EXPIRE_BATCH 64        /* due grants ended by one job (grant_expire_batch) */
#define EXPIRE_HOLD_MS 1000    /* longest a part batch waits to fill while workers are busy */
/* Robustness: the main thread's store handle waits at most this long for a
 * lock held elsewhere (another process: an operator's sqlite3 shell, a
 * backup; or a worker that waits for one), and at most once per tick
 * (store_set_wait): the loop answers the other requests and runs the
 * expiry ticks meanwhile, and a request that cannot get the lock is
 * answered `busy` with nothing recorded. The tick's own writes do not wait:
 * they are tried again at the next tick. */
#define MAIN_STORE_WAIT_MS 100

enum job_kind { JOB_GRANT, JOB_END, JOB_PROBE, JOB_EXPIRE, JOB_ELIGIBLE };

struct job {
	enum job_kind kind;
	uint64_t conn_id;               /* 0 = scheduler */
	struct jit_peer peer;
	char *client;
	struct jit_request *req;        /* JOB_GRANT, JOB_ELIGIBLE */
	int64_t duration;
	char *group_name, *group_dn, *member_attr, *placeholder;
	struct policy_dirrules *rules;  /* JOB_GRANT: may be NULL; JOB_ELIGIBLE */
	/* JOB_ELIGIBLE: the grant's user (name, entry uuid and DN as recorded)
	 * and what the directory said: check_rc JIT_OK, or the refusal */
	char *user, *user_uuid, *user_dn;
	int check_rc;
	char *check_msg;
	const char *check_rule;         /* a string literal */
	bool check_has_ldap;
	int check_ldap;
	struct dirq *q;                 /* JOB_GRANT waiting for its ticket check */
	char *grant_id;                 /* JOB_END */
	enum grant_state end_state;
	char *reason;
	bool force;                     /* JOB_END: revoke with force */
	char **ids;                     /* JOB_EXPIRE: due active grants (of one group) */
	char **keys;                    /* JOB_EXPIRE: their pair keys */
	size_t n_ids;
	int64_t queued;                 /* mono_us() when queued */
	struct job *next;
};

struct dirq {
	char *name;
	const struct jit_dir_cfg *cfg;  /* from the config the engine started with */
	pthread_mutex_t lock;
	/* Idle workers wait each on its own condition; a job wakes the one
	 * that went idle last (a stack), so a light load stays on one worker,
	 * whose SQLite page cache is current and whose connection is warm. */
	pthread_cond_t *wake;           /* per worker */
	int *idle;                      /* stack of idle workers' indexes */
	int n_idle;
	struct job *head, *tail;
	size_t len;
	bool stopping;
	struct throttle busy_audit;     /* refusals at a full queue (refuse_unqueued) */
	int n_workers;
	pthread_t *threads;
	struct dir_conn **conns;
	struct store **stores;          /* one per worker, opened before it starts */
	/* Pair locks per directory: a stalled directory can never hold a lock
	 * that a grant in another directory needs. */
	pthread_mutex_t pair_locks[GRANT_PAIR_LOCKS];
	struct engine *e;
	struct dir_health *health;      /* shared by conns and the reconciler's */
	struct due *due;                /* main thread: expiries gathered by a tick */
	size_t n_due, cap_due;
	uint64_t seen_recoveries;       /* main thread: last dir_health_recoveries() */
};

/* An active grant found due by a tick, waiting to join a batch (it is
 * in flight from then on). */
struct due {
	char *group_dn, *id, *pair_key;
	uint64_t seq;                   /* order found: oldest due first */
	int64_t found_ms;               /* mono_ms() when found */
};

struct inflight {
	char *id;
	struct inflight *next;
};

struct engine {
	const struct jit_config *cfg;   /* current; main thread only */
	const struct jit_config *cfg0;  /* the one directories were built from */
	struct audit *audit;
	struct store *st;               /* main thread's handle */
	engine_status_fn status_fn;     /* engine_set_status_hook() */
	void *status_arg;
	struct dirq *dirs;
	size_t n_dirs;
	pthread_mutex_t reply_lock;
	struct engine_reply *rhead, *rtail; /* FIFO, under reply_lock */
	struct job *chead, *ctail;      /* JOB_ELIGIBLE back from a worker, under reply_lock */
	int efd;
	int64_t started;
	struct ticket_checker *tickets; /* started at the first ticket_check */
	struct inflight *inflight[INFLIGHT_BUCKETS];
	size_t n_inflight;
	size_t inflight_max;            /* INFLIGHT_MAX (a test build may lower it) */
	size_t queue_max;               /* QUEUE_MAX (a test build may lower it) */
	int64_t elsewhere_checked;      /* last look for due grants of unknown directories */
	uint64_t due_seq;
	bool stopped;
	struct reconciler *rc;          /* drift reconciliation thread */
};

static void inflight_del(struct engine *e, const char *id);
static char *extend_resume(struct engine *e, struct job *j);
static void audit_refusal_x(struct engine *e, const struct jit_peer *peer, const char *client,
			    const struct jit_request *req, int err, const char *message,
			    const char *rule, json_t *extra);
static void audit_refusal(struct engine *e, const struct jit_peer *peer, const char *client,
			  const struct jit_request *req, int err, const char *message,
			  const char *rule);

static void job_free(struct job *j)
{
	if (!j)
		return;
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
static void post_reply(struct engine *e, uint64_t conn_id, char *line, char *done_id)
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
static void post_resume(struct engine *e, struct job *j)
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
			char *line = extend_resume(e, j); /* takes j */
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
		inflight_del(e, r->done_grant_id);
		engine_reply_free(r);
	}
}

int engine_reply_fd(struct engine *e)
{
	return e->efd;
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
	post_resume(q->e, j);
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
			post_reply(q->e, 0, NULL, xstrdup(j->ids[i]));
		return false;
	}
	timing_since(STEP_QUEUE, j->queued);
	if (j->kind == JOB_END && j->force) {
		line = grant_force_close(g, j->grant_id, j->reason, j->client, &j->peer);
	} else if (j->kind == JOB_GRANT) {
		struct grant_params p = {
			.req = j->req, .duration = j->duration, .group_name = j->group_name,
			.group_dn = j->group_dn, .directory = q->name,
			.member_attr = j->member_attr, .placeholder = j->placeholder,
			.client = j->client, .peer = j->peer, .rules = j->rules,
		};
		line = grant_create(g, &p);
	} else {
		line = grant_end(g, j->grant_id, j->end_state, j->conn_id == 0, j->reason,
				 j->client, j->conn_id ? &j->peer : NULL);
	}
	timing_since(j->kind == JOB_GRANT ? STEP_GRANT : STEP_END, j->queued);
	if (j->conn_id) {
		post_reply(q->e, j->conn_id, line, NULL);
	} else {
		free(line);
		post_reply(q->e, 0, NULL, xstrdup(j->grant_id));
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
			q->len--;
		}
		bool stopping = q->stopping;
		pthread_mutex_unlock(&q->lock);
		if (!j)
			break;
		if (stopping) {
			/* Not started: nothing was recorded; tell the client. */
			if (j->conn_id)
				post_reply(e, j->conn_id, proto_error_line(JIT_ESHUTDOWN, NULL), NULL);
			job_free(j);
			continue;
		}
		g.retry_min = e->cfg0->retry_min_interval;
		g.retry_max = e->cfg0->retry_max_interval;
		g.replication_grace = q->cfg->replication_grace;
		if (!run_job(q, &g, j))
			job_free(j);
	}
	return NULL;
}

static bool enqueue(struct dirq *q, struct job *j)
{
	pthread_mutex_lock(&q->lock);
	if (q->stopping || (j->conn_id && q->len >= q->e->queue_max)) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	j->queued = mono_us();
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->len++;
	wake_one(q);
	pthread_mutex_unlock(&q->lock);
	return true;
}

/* A probe goes first: while the directory is down, everything else fails
 * at once anyway, and the probe is what ends the outage. */
static void enqueue_front(struct dirq *q, struct job *j)
{
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		job_free(j);
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

static struct dirq *find_dir(struct engine *e, const char *name)
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
 * directory.c; PLAIN without TLS is refused by the configuration check.)
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

static int start_dir(struct engine *e, struct dirq *q, const struct jit_dir_cfg *dc)
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
		dir_conn_set_health(q->conns[i], q->health);
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

int engine_new(const struct jit_config *cfg, struct audit *audit, struct engine **out)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	int64_t recovered = 0;
	int rc;
	e->cfg = e->cfg0 = cfg;
	e->audit = audit;
	e->started = now_s();
	e->inflight_max = INFLIGHT_MAX;
	e->queue_max = QUEUE_MAX;
#ifdef JITD_FAULT_INJECTION
	/* Tests of the caps: JITD_FAULT_INFLIGHT_MAX=N, JITD_FAULT_QUEUE_MAX=N
	 * (fault.h). */
	const char *cap = getenv("JITD_FAULT_INFLIGHT_MAX");
	int64_t v;
	if (cap && parse_int64(cap, 1, INFLIGHT_MAX, &v) == JIT_OK)
		e->inflight_max = (size_t)v;
	cap = getenv("JITD_FAULT_QUEUE_MAX");
	if (cap && parse_int64(cap, 1, QUEUE_MAX, &v) == JIT_OK)
		e->queue_max = (size_t)v;
#endif
	pthread_mutex_init(&e->reply_lock, NULL);
	e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->efd < 0) {
		log_err("engine: eventfd: %s", strerror(errno));
		free(e);
		return JIT_EINTERNAL;
	}
	rc = store_open(cfg->state_dir, &e->st);
	if (rc != JIT_OK)
		goto fail;
	/* Recovery: grants never acknowledged are rolled back by the machine. */
	rc = store_recover(e->st, now_s(), &recovered);
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
		rc = start_dir(e, &e->dirs[i], &cfg->dirs[i]);
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
		if (!find_dir(e, cfg->dirs[i].name)) {
			snprintf(msg, msglen, "directory \"%s\" was added; directories are added "
				 "and removed only at a restart", cfg->dirs[i].name);
			return JIT_ECONFIG;
		}
	}
	e->cfg = cfg;
	if (e->rc)
		reconcile_set_config(e->rc, cfg);
	return JIT_OK;
}

void engine_stop(struct engine *e)
{
	if (e->stopped)
		return;
	/* First: checks still running are answered shutting_down, and those
	 * that just passed reach the queues before they stop. */
	ticket_checker_free(e->tickets);
	e->tickets = NULL;
	e->stopped = true;
	reconcile_stop(e->rc);
	e->rc = NULL;
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		pthread_mutex_lock(&q->lock);
		q->stopping = true;
		for (int k = 0; k < q->n_workers; k++)
			pthread_cond_signal(&q->wake[k]);
		pthread_mutex_unlock(&q->lock);
	}
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
			job_free(j);
		}
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
		job_free(j);
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
	free(e);
}

/* ---- the scheduler's in-flight set (main thread only) ---- */

static unsigned id_bucket(const char *id)
{
	unsigned h = 5381;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = h * 33 + *p;
	return h % INFLIGHT_BUCKETS;
}

static bool inflight_has(struct engine *e, const char *id)
{
	for (struct inflight *f = e->inflight[id_bucket(id)]; f; f = f->next)
		if (strcmp(f->id, id) == 0)
			return true;
	return false;
}

static void inflight_add(struct engine *e, const char *id)
{
	struct inflight *f = xmalloc(sizeof(*f));
	unsigned b = id_bucket(id);
	f->id = xstrdup(id);
	f->next = e->inflight[b];
	e->inflight[b] = f;
	e->n_inflight++;
}

static void inflight_del(struct engine *e, const char *id)
{
	for (struct inflight **pp = &e->inflight[id_bucket(id)]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			struct inflight *f = *pp;
			*pp = f->next;
			free(f->id);
			free(f);
			e->n_inflight--;
			return;
		}
	}
}

static int due_cmp(const void *a, const void *b)
{
	const struct due *x = a, *y = b;
	int c = strcasecmp(x->group_dn, y->group_dn);
	return c != 0 ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * Queues the due active grants gathered for q in batches of one group
 * each: a batch shares its disk syncs, and its grants leave their group
 * with one modify (grant_expire_batch). While q's workers have jobs
 * waiting, a part batch waits (up to EXPIRE_HOLD_MS) for the next ticks to
 * fill it: no worker is idle meanwhile, and a drain of many expiries then
 * needs fewer, fuller modifies. Ownership of the ids passes to the jobs;
 * those the queue refuses are due again next tick.
 */
static void flush_expiries(struct engine *e, struct dirq *q, int64_t now_ms)
{
	bool full = false, busy;
	size_t kept = 0;

	if (q->n_due == 0)
		return;
	pthread_mutex_lock(&q->lock);
	busy = q->len >= (size_t)q->n_workers;
	pthread_mutex_unlock(&q->lock);
	qsort(q->due, q->n_due, sizeof(*q->due), due_cmp);
	for (size_t i = 0; i < q->n_due;) {
		size_t k = 1;
		bool young = now_ms - q->due[i].found_ms < EXPIRE_HOLD_MS;
		while (i + k < q->n_due && k < EXPIRE_BATCH &&
		       strcasecmp(q->due[i + k].group_dn, q->due[i].group_dn) == 0) {
			young = young && now_ms - q->due[i + k].found_ms < EXPIRE_HOLD_MS;
			k++;
		}
		if (k < EXPIRE_BATCH && busy && young && !full) {
			for (size_t m = 0; m < k; m++)
				q->due[kept++] = q->due[i + m];
			i += k;
			continue;
		}
		struct job *j = xcalloc(1, sizeof(*j));
		j->kind = JOB_EXPIRE;
		j->ids = xcalloc(k, sizeof(char *));
		j->keys = xcalloc(k, sizeof(char *));
		for (size_t m = 0; m < k; m++) {
			j->ids[m] = q->due[i + m].id;
			j->keys[m] = q->due[i + m].pair_key;
			free(q->due[i + m].group_dn);
		}
		j->n_ids = k;
		if (full || !enqueue(q, j)) {
			full = true;
			for (size_t m = 0; m < k; m++)
				inflight_del(e, j->ids[m]);
			job_free(j);
		}
		i += k;
	}
	q->n_due = kept;
}

static int schedule_one(const struct grant_rec *r, void *arg)
{
	struct engine *e = arg;
	if (e->n_inflight >= e->inflight_max)
		return 1;
	if (inflight_has(e, r->id))
		return 0;
	struct dirq *q = find_dir(e, r->directory);
	if (!q) /* not read since store_set_directories(); tick_elsewhere() tells */
		return 0;
	if (r->state == GS_ACTIVE) {
		/* Expiries due together are ended together: flush_expiries().
		 * store_due yields each row once. */
		if (q->n_due == q->cap_due) {
			q->cap_due = q->cap_due ? 2 * q->cap_due : 64;
			q->due = xrealloc(q->due, q->cap_due * sizeof(*q->due));
		}
		q->due[q->n_due++] = (struct due){ xstrdup(r->group_dn), xstrdup(r->id),
						   xstrdup(r->pair_key), e->due_seq++, mono_ms() };
		inflight_add(e, r->id);
		return 0;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_END;
	j->grant_id = xstrdup(r->id);
	j->end_state = r->state == GS_ACTIVE ? GS_EXPIRED : r->end_state;
	if (!enqueue(q, j)) {
		job_free(j);
		return 1;
	}
	inflight_add(e, r->id);
	return 0;
}

/*
 * Directory health, from the main thread: a directory known down gets a
 * probe every retry_min_interval; one that came back has its pending
 * removals made due at once instead of after their backoff.
 */
static void tick_health(struct engine *e, int64_t now)
{
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		uint64_t ups = dir_health_recoveries(q->health);
		if (ups != q->seen_recoveries) {
			int64_t n = 0;
			int rc = store_retry_now(e->st, q->name, now, &n);
			/* a busy store: the next tick tries again */
			if (rc != JIT_EBUSY)
				q->seen_recoveries = ups;
			if (rc != JIT_OK && rc != JIT_EBUSY)
				log_err("directory %s: cannot reschedule pending removals", q->name);
			else if (rc == JIT_OK && n > 0)
				log_info("directory %s is back: retrying %lld pending removal(s) now",
					 q->name, (long long)n);
		}
		if (dir_health_probe_due(q->health, now, e->cfg0->retry_min_interval)) {
			struct job *j = xcalloc(1, sizeof(*j));
			j->kind = JOB_PROBE;
			enqueue_front(q, j);
		}
	}
}

/* expiring_soon: one audit event per grant (notifications follow from it).
 * Marked first, so a grant is never warned twice. */
static int warn_one(const struct grant_rec *r, void *arg)
{
	struct engine *e = arg;
	int64_t now = now_s();
	int rc = store_set_warned(e->st, r->id, now);
	if (rc == JIT_EBUSY)
		return 1; /* the store is locked elsewhere: the next tick warns */
	if (rc != JIT_OK)
		return 0; /* warned meanwhile, or no longer active */
	json_t *o = grant_audit_fields(r);
	json_object_set_new(o, "expires_in", json_integer(r->expires_at - now));
	if (audit_write(e->audit, "expiring_soon", o) != JIT_OK)
		log_err("audit: cannot record expiring_soon of %s", r->id);
	json_decref(o);
	return 0;
}

/*
 * Due grants of a directory that is not in the configuration (removed
 * from jitd.conf while it held live grants) cannot be ended: the scheduler
 * leaves them out (store_set_directories), so that they do not take the
 * places of the others, and says so every ELSEWHERE_EVERY seconds.
 */
#define ELSEWHERE_EVERY 60
static void tick_elsewhere(struct engine *e, int64_t now)
{
	int64_t n = 0;
	char dir[257]; /* config.c: names are at most 256 bytes */
	if (e->elsewhere_checked != 0 && now - e->elsewhere_checked < ELSEWHERE_EVERY)
		return;
	e->elsewhere_checked = now;
	if (store_due_elsewhere(e->st, now, &n, dir, sizeof(dir)) != JIT_OK) {
		log_err("scheduler: cannot look for grants of unconfigured directories");
		return;
	}
	if (n > 0)
		log_err("scheduler: %lld grant(s) are due but their directory (\"%s\"%s) is not in "
			"the configuration: jitd cannot end them until it is configured again",
			(long long)n, dir, n > 1 ? " or another" : "");
}

/* The main handle's wait: none during the tick, MAIN_STORE_WAIT_MS (once)
 * for the requests until the next one. */
static void main_wait(struct engine *e, int ms)
{
	if (store_set_wait(e->st, ms) != JIT_OK)
		log_err("engine: cannot bound the store's wait");
}

void engine_tick(struct engine *e, int64_t now)
{
	if (e->stopped)
		return;
	main_wait(e, 0);
	tick_health(e, now);
	/* At the cap no more due rows are read, but the expiries held back
	 * for a fuller batch are still queued (flush_expiries): they count
	 * against the cap, and only queuing them frees it. */
	if (e->n_inflight < e->inflight_max &&
	    store_due(e->st, now, (int64_t)e->inflight_max, schedule_one, e) < 0)
		log_err("scheduler: cannot read due grants");
	for (size_t i = 0; i < e->n_dirs; i++)
		flush_expiries(e, &e->dirs[i], mono_ms());
	tick_elsewhere(e, now);
	if (e->cfg->expiring_soon_before > 0 &&
	    store_expiring(e->st, now, e->cfg->expiring_soon_before, 100, warn_one, e) < 0)
		log_err("scheduler: cannot read expiring grants");
	main_wait(e, MAIN_STORE_WAIT_MS);
}

/* ---- requests ---- */

static void reply_now(struct engine *e, uint64_t conn_id, char *line)
{
	post_reply(e, conn_id, line, NULL);
}

static char *ok_grant_line(const struct grant_rec *r)
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

/* The answer to a request whose store access failed with rc. */
static char *store_error_line(int rc, const char *what)
{
	if (rc == JIT_EBUSY)
		return proto_error_line(JIT_EBUSY,
					"the store is locked (held by another process?); "
					"nothing was recorded: try again");
	return proto_error_line(JIT_EINTERNAL, what);
}

/* Loads the grant req->grant_id for client c, refusing (and auditing) a
 * client whose groups do not include the grant's group. */
static struct grant_rec *load_for(struct engine *e, const struct jit_client_cfg *c,
				  const struct jit_peer *peer, const struct jit_request *req,
				  char **line)
{
	struct grant_rec *r = load_grant(e, req->grant_id, line);
	if (r && !policy_group_allowed(c, r->group_name)) {
		const char *msg = "this client may not act on that grant's group";
		engine_audit_refusal(e, peer, c, req, JIT_EUNAUTH, msg);
		*line = proto_error_line(JIT_EUNAUTH, msg);
		grant_rec_free(r);
		return NULL;
	}
	return r;
}

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
		return store_error_line(rc, "cannot record the extension");
	rc = store_set_expiry(e->st, r->id, r->expires_at, new_exp, new_exp - r->created_at,
			      now_s());
	/* Ended or due since it was read (a worker expired or ended it). */
	if (rc == JIT_ENOTFOUND)
		line = proto_error_line(JIT_ENOTACTIVE, "the grant ended or expired meanwhile");
	else if (rc == JIT_OK && (rc = store_get(e->st, r->id, &n)) != JIT_OK)
		line = proto_error_line(JIT_EINTERNAL, NULL);
	else if (rc != JIT_OK)
		line = store_error_line(rc, "cannot record the extension");
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
	line = ok_grant_line(n);
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

	if (gc->approval_key_file &&
	    approval_verify(gc->approval_key_file, req, msg, sizeof(msg)) != JIT_OK) {
		rule = "approval_key_file";
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
	engine_audit_refusal_rule(e, peer, c, req, JIT_EPOLICY, msg, rule);
	return proto_error_line(JIT_EPOLICY, msg);
}

static char *refuse_unqueued(struct dirq *q, const struct jit_peer *peer, const char *client,
			     const struct jit_request *req);

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
	struct dirq *q = find_dir(e, gc->directory);
	char down[256], msg[512];

	if (!q)
		return proto_error_line(JIT_EINTERNAL, "the group's directory is not configured");
	if (dir_health_down(q->health, down, sizeof(down))) {
		snprintf(msg, sizeof(msg), "eligible_group: cannot check membership of %.200s: %s",
			 gc->eligible_group, down);
		engine_audit_refusal_rule(e, peer, c, req, JIT_EDIRUNAVAIL, msg, "eligible_group");
		return proto_error_line(JIT_EDIRUNAVAIL, msg);
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_ELIGIBLE;
	j->conn_id = conn_id;
	j->peer = *peer;
	j->client = xstrdup(c ? c->name : NULL);
	j->req = req;
	j->rules = policy_dirrules_new(e->cfg, gc);
	j->user = xstrdup(r->user);
	j->user_uuid = xstrdup(r->user_uuid);
	j->user_dn = xstrdup(r->user_dn);
	if (!enqueue(q, j)) {
		j->req = NULL;
		job_free(j);
		return refuse_unqueued(q, peer, c ? c->name : NULL, req);
	}
	return NULL;
}

/*
 * extend, on the main thread: every check against the grant as the store
 * holds it and the current configuration, then the write (one bounded
 * transaction, extend_recorded). checked_dn: the eligible_group DN a worker
 * has just confirmed the user in (NULL at first). NULL when the extension
 * went to the directory's queue (req is then the job's), else the answer
 * line (req still the caller's).
 */
static char *do_extend(struct engine *e, uint64_t conn_id, const struct jit_client_cfg *c,
		       struct jit_request *req, const struct jit_peer *peer, const char *checked_dn)
{
	char *line = NULL;
	char msg[512];
	const char *rule = NULL;
	struct grant_rec *r = load_for(e, c, peer, req, &line);
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
	} else if (!gc) {
		line = proto_error_line(JIT_EUNKGROUP, "the grant's group is no longer configured");
	} else if (policy_extend_denied(gc, r, msg, sizeof(msg)) != JIT_OK) {
		/* deny_users as the configuration says now (a reload may have
		 * added the user); the directory's view follows for eligible_group */
		engine_audit_refusal_rule(e, peer, c, req, JIT_EPOLICY, msg, "deny_users");
		line = proto_error_line(JIT_EPOLICY, msg);
	} else if (policy_check_extend(gc, c, new_exp - r->created_at, msg, sizeof(msg), &rule) !=
		   JIT_OK) {
		/* extensions count toward max_duration: the total is checked */
		engine_audit_refusal_rule(e, peer, c, req, JIT_EDURMAX, msg, rule);
		line = proto_error_line(JIT_EDURMAX, msg);
	} else if ((line = admit_extend(e, gc, peer, c, req, r)) != NULL) {
		/* refused and audited */
	} else if (gc->eligible_group &&
		   !(checked_dn && policy_dn_equal(checked_dn, gc->eligible_group))) {
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
	audit_refusal_x(e, &j->peer, j->client, j->req, j->check_rc, j->check_msg, j->check_rule,
			extra);
	json_decref(extra);
}

/*
 * Main thread: an extension is back from its directory check (j taken).
 * Refused there: audited and answered. Passed: the clients entry is
 * matched again (a reload may have come meanwhile) and do_extend() runs
 * again from the start with the grant as it is now, so that nothing the
 * main thread checked before the wait is trusted after it. NULL if it was
 * queued again (the group's eligible_group changed meanwhile).
 */
static char *extend_resume(struct engine *e, struct job *j)
{
	char *line = NULL;
	if (j->check_rc != JIT_OK) {
		audit_check_refusal(e, j);
		line = proto_error_line(j->check_rc, j->check_msg);
		job_free(j);
		return line;
	}
	if (policy_uses_groups(e->cfg))
		policy_peer_groups(&j->peer);
	const struct jit_client_cfg *c = policy_client(e->cfg, &j->peer);
	if (!c || !j->client || strcmp(c->name, j->client) != 0 || !(c->ops & (1u << OP_EXTEND))) {
		const char *msg = "the configuration was reloaded while the directory was asked, "
				  "and this client may no longer extend";
		audit_refusal(e, &j->peer, j->client, j->req, JIT_EUNAUTH, msg, "clients");
		line = proto_error_line(JIT_EUNAUTH, msg);
		job_free(j);
		return line;
	}
	struct jit_request *req = j->req;
	j->req = NULL;
	line = do_extend(e, j->conn_id, c, req, &j->peer, j->rules ? j->rules->eligible_dn : NULL);
	if (line)
		proto_request_free(req);
	job_free(j);
	return line;
}

struct list_ctx {
	json_t *arr;
	const struct jit_client_cfg *c;
};

static int list_one(const struct grant_rec *r, void *arg)
{
	struct list_ctx *lc = arg;
	if (lc->c && policy_group_allowed(lc->c, r->group_name))
		json_array_append_new(lc->arr, proto_grant_json(r));
	return 0;
}

static char *do_list(struct engine *e, const struct jit_client_cfg *c,
		     const struct jit_request *req)
{
	struct list_ctx lc = { json_array(), c };
	struct store_filter f = { .user = req->user, .group = req->group,
				  .state_mask = req->state_mask, .limit = req->limit };
	int rc = store_list(e->st, &f, list_one, &lc);
	if (rc < 0) {
		json_decref(lc.arr);
		return store_error_line(rc, "cannot read grants");
	}
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(lc.arr)));
	json_object_set_new(o, "grants", lc.arr);
	return proto_dump_line(o);
}

static char *do_status(struct engine *e)
{
	int64_t counts[GS__COUNT];
	int rc = store_counts(e->st, counts);
	if (rc != JIT_OK)
		return store_error_line(rc, "cannot read grant counts");
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
		return store_error_line(rc, "cannot read grant counts");
	}
	json_object_set_new(s, "revocations_failing", json_integer(failing));
	json_t *dirs = json_array();
	for (size_t i = 0; i < e->n_dirs; i++) {
		char err[256] = "";
		bool up = false;
		if (dir_health_down(e->dirs[i].health, err, sizeof(err))) {
			json_array_append_new(dirs, json_pack("{sssbss}", "name", e->dirs[i].name,
							      "connected", false, "last_error", err));
			continue;
		}
		for (int k = 0; k < e->dirs[i].n_workers; k++) {
			char buf[256] = "";
			if (dir_conn_healthy(e->dirs[i].conns[k], buf, sizeof(buf)))
				up = true;
			else if (buf[0] && !err[0])
				snprintf(err, sizeof(err), "%s", buf);
		}
		json_array_append_new(dirs, json_pack("{sssbss}", "name", e->dirs[i].name,
						      "connected", up, "last_error",
						      up ? "" : err));
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

/*
 * The answer to a client's request whose job q did not take (enqueue()
 * false): `shutting_down` while it stops (not audited: nothing new starts
 * then), else `busy`, its queue being full. That refusal is audited, but at
 * most once every 10 s per directory, the next audited one saying how many
 * were not: a full queue is an overload, and one synced audit line per
 * refused request (from the main thread, which also runs the expiry ticks)
 * would add to it (docs/audit-log.md). Any thread.
 */
static char *refuse_unqueued(struct dirq *q, const struct jit_peer *peer, const char *client,
			     const struct jit_request *req)
{
	char msg[200], amsg[280];
	int64_t held = 0;
	bool stopping, audit;

	pthread_mutex_lock(&q->lock);
	stopping = q->stopping;
	audit = !stopping && throttle_pass(&q->busy_audit, mono_ms(), BUSY_AUDIT_MS, &held);
	pthread_mutex_unlock(&q->lock);
	if (stopping)
		return proto_error_line(JIT_ESHUTDOWN, NULL);
	snprintf(msg, sizeof(msg), "the work queue of directory \"%.64s\" is full; try again "
		 "later", q->name);
	if (audit) {
		snprintf(amsg, sizeof(amsg), "%s (%lld earlier refusals not recorded)", msg,
			 (long long)held);
		audit_refusal(q->e, peer, client, req, JIT_EBUSY, held ? amsg : msg, NULL);
	}
	return proto_error_line(JIT_EBUSY, msg);
}

/* ---- the ticket check: between the listener and the workers ---- */

/* On the ticket checker's thread: the check of job j (a grant) is over. */
static void ticket_done(void *arg, int rc, const char *msg)
{
	struct job *j = arg;
	struct dirq *q = j->q;
	struct engine *e = q->e;

	if (rc == JIT_OK) {
		if (enqueue(q, j))
			return;
		post_reply(e, j->conn_id, refuse_unqueued(q, &j->peer, j->client, j->req), NULL);
		job_free(j);
		return;
	}
	if (rc == JIT_EPOLICY)
		audit_refusal(e, &j->peer, j->client, j->req, rc, msg, "ticket_check");
	else
		msg = NULL;
	post_reply(e, j->conn_id, proto_error_line(rc, msg), NULL);
	job_free(j);
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
			 const struct jit_request *req, bool *known)
{
	struct grant_rec *prev = NULL;
	const char *rule = NULL;
	char msg[512];

	*known = false;
	if (gc->approval_key_file &&
	    approval_verify(gc->approval_key_file, req, msg, sizeof(msg)) != JIT_OK)
		rule = "approval_key_file";
	if (!rule && req->request_id &&
	    store_get_by_request_id(e->st, req->request_id, &prev) == JIT_OK) {
		*known = true;
		if (!policy_same_request(req, prev)) {
			rule = "request_id";
			snprintf(msg, sizeof(msg), "request_id: \"%.128s\" was used for another "
				 "request (grant %s)", req->request_id, prev->id);
		}
	}
	grant_rec_free(prev);
	/* a retry of a known request is answered as a duplicate whatever its age */
	if (!rule && !*known && gc->approval_key_file &&
	    approval_fresh(req, gc->approval_max_age, now_s(), msg, sizeof(msg)) != JIT_OK)
		rule = "approval_max_age";
	if (!rule)
		return NULL;
	engine_audit_refusal_rule(e, peer, c, req, JIT_EPOLICY, msg, rule);
	return proto_error_line(JIT_EPOLICY, msg);
}

/* Queues a grant (or its ticket check). NULL when queued (req is then the
 * job's), else the answer line (req still the caller's). */
static char *submit_grant(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
			  const struct jit_client_cfg *c, struct jit_request *req,
			  int64_t duration)
{
	const struct jit_group_cfg *gc = config_group(e->cfg, req->group);
	struct dirq *q = gc ? find_dir(e, gc->directory) : NULL;
	bool known = false;
	if (!q)
		return proto_error_line(JIT_EUNKGROUP, NULL);
	char *line = admit_grant(e, gc, peer, c, req, &known);
	if (line)
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
	j->rules = policy_dirrules_new(e->cfg, gc);
	if (gc->ticket_check && req->ticket && !known) {
		if (!e->tickets && ticket_checker_new(&e->tickets) != JIT_OK) {
			j->req = NULL;
			job_free(j);
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
		job_free(j);
		return proto_error_line(JIT_EBUSY, msg);
	}
	if (!enqueue(q, j)) {
		line = refuse_unqueued(q, peer, j->client, req);
		j->req = NULL;
		job_free(j);
		return line;
	}
	return NULL;
}

static bool submit_end(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
		       const struct jit_client_cfg *c, struct jit_request *req, char **line)
{
	struct grant_rec *r = load_for(e, c, peer, req, line);
	if (!r)
		return false;
	struct dirq *q = find_dir(e, r->directory);
	if (!q) {
		*line = proto_error_line(JIT_EINTERNAL, "the grant's directory is not configured");
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
	grant_rec_free(r);
	if (!enqueue(q, j)) {
		*line = refuse_unqueued(q, peer, j->client, req);
		job_free(j);
		return false;
	}
	return true;
}

/* A grant into a directory known down is refused at once (and audited):
 * the client does not wait for a connect timeout. NULL if it may go on. */
static char *refuse_if_down(struct engine *e, const struct jit_peer *peer,
			    const struct jit_client_cfg *c, const struct jit_request *req)
{
	char msg[256];
	const struct jit_group_cfg *gc = config_group(e->cfg, req->group);
	struct dirq *q = gc ? find_dir(e, gc->directory) : NULL;
	if (!q || !dir_health_down(q->health, msg, sizeof(msg)))
		return NULL;
	engine_audit_refusal(e, peer, c, req, JIT_EDIRUNAVAIL, msg);
	return proto_error_line(JIT_EDIRUNAVAIL, msg);
}

void engine_submit(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
		   const struct jit_client_cfg *c, struct jit_request *req, int64_t duration)
{
	char *line = NULL;
	switch (req->op) {
	case OP_GRANT:
		if ((line = refuse_if_down(e, peer, c, req)) != NULL)
			break;
		line = submit_grant(e, conn_id, peer, c, req, duration);
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
		line = do_extend(e, conn_id, c, req, peer, NULL);
		if (!line)
			return; /* req now owned by the job */
		break;
	case OP_SHOW: {
		struct grant_rec *r = load_for(e, c, peer, req, &line);
		if (r) {
			line = ok_grant_line(r);
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
	audit_refusal(e, peer, c ? c->name : NULL, req, err, message, rule);
}

void engine_audit_refusal_named(struct engine *e, const struct jit_peer *peer, const char *client,
				const struct jit_request *req, int err, const char *message,
				const char *rule)
{
	audit_refusal(e, peer, client, req, err, message, rule);
}

/* Any thread: the `refused` event (client: the entry's name, may be NULL),
 * with the members of extra (may be NULL). */
static void audit_refusal_x(struct engine *e, const struct jit_peer *peer, const char *client,
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
	json_object_set_new(o, "message", json_string(message ? message : jit_err_message(err)));
	if (extra)
		json_object_update(o, extra);
	if (rule)
		json_object_set_new(o, "rule", json_string(rule));
	if (audit_write(e->audit, "refused", o) != JIT_OK)
		log_err("audit: cannot record a refusal");
	json_decref(o);
}

static void audit_refusal(struct engine *e, const struct jit_peer *peer, const char *client,
			  const struct jit_request *req, int err, const char *message,
			  const char *rule)
{
	audit_refusal_x(e, peer, client, req, err, message, rule, NULL);
}
