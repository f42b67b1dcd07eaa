/*
 * engine_priv.h - what the engine's own files share; no other file includes
 * it (everyone else uses engine.h). The engine is five files:
 *   engine.c     its life (start with crash recovery, reload, stop, free)
 *                and the reply queue from other threads to the main thread
 *   workers.c    each directory's job queue and worker threads
 *   scheduler.c  engine_tick(): due expiries and retries, directory health
 *   requests.c   engine_submit(): grants, ends, show, list, status, and
 *                the `refused` audit events
 *   extend.c     extend, with its directory check (eligible_group)
 *
 * Owns struct engine, a directory's queue and workers (struct dirq) and the
 * jobs they run (struct job). Ownership: a job belongs to whoever holds it
 * and is freed with workers_job_free(); workers_enqueue() true passes it to
 * the queue, and a worker frees it after running it (or hands a JOB_ELIGIBLE
 * back to the main thread with engine_post_resume()). Lines given to
 * engine_post_reply() are taken.
 * Names: a function shared between these files carries the prefix of the
 * file that defines it (workers_enqueue() is in workers.c).
 * Threads: fields say which lock guards them or which thread owns them;
 * the main thread is the one that calls the engine.h functions.
 */
#ifndef JITD_ENGINE_PRIV_H
#define JITD_ENGINE_PRIV_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "engine.h"
#include "grant.h"
#include "reconcile.h"
#include "ticket.h"
#include "util.h"

#define INFLIGHT_BUCKETS 1024

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
	bool approval_signed;           /* JOB_GRANT: its signed approval was verified */
	bool racing;                    /* JOB_GRANT: admitted as a retry racing
					 * its first attempt (no age check then) */
	int64_t approval_max_age;       /* JOB_GRANT: the group's, with
					 * approval_key_file; else 0 */
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
	uint64_t cfg_gen;               /* JOB_GRANT, JOB_END: engine cfg_gen it was checked under */
	/* JOB_GRANT: its request_id, held in engine's set of requests in
	 * progress until the job is freed (engine_rid_hold) */
	char *rid_held;
	struct engine *rid_engine;
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
	/* The last job of the run of ends (JOB_END, JOB_EXPIRE) at the head
	 * of the queue, or NULL: an end is queued after the ends already
	 * waiting but before every grant, so that a burst of grants (up to
	 * queue_max) never delays a removal. */
	struct job *rtail;
	size_t len;
	size_t n_client_ends;           /* of len: clients' completes and revokes */
	size_t n_inflight;              /* the scheduler's grants in flight here (main thread) */
	bool stopping;
	/* engine_begin_stop: nothing more is queued, and of what is queued
	 * only the ends (JOB_END, JOB_EXPIRE) still run during the drain */
	bool draining;
	struct throttle busy_audit;     /* refusals at a full queue (workers_refuse_unqueued) */
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
	struct dirq *q;                 /* its directory's queue (n_inflight) */
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
	struct job *chead, *ctail;      /* JOB_ELIGIBLE back from a worker, JOB_GRANT to check
					 * again after a reload; under reply_lock */
	_Atomic uint64_t cfg_gen;       /* +1 per reload taken (engine_set_config) */
	int efd;
	int64_t started;
	struct ticket_checker *tickets; /* started at the first ticket_check */
	struct inflight *inflight[INFLIGHT_BUCKETS];
	size_t n_inflight;
	size_t inflight_max;            /* INFLIGHT_MAX (a test build may lower it) */
	size_t queue_max;               /* QUEUE_MAX (a test build may lower it) */
	int64_t overdue_after;          /* OVERDUE_AFTER (a test build may lower it) */
	int64_t elsewhere_checked;      /* last look for due grants of unknown directories */
	int64_t due_unreadable;         /* due rows the last read_due() skipped (status) */
	uint64_t due_seq;
	int64_t tick_wall, tick_mono;   /* now_s() and mono_ms() at the last tick */
	bool pull_retries;              /* store_retry_sooner() due (start, clock step) */
	bool pull_future;               /* grants created in the future to shorten */
	int64_t pull_until_mono;        /* mono_ms() until which both run each tick */
	bool stopped;
	bool draining;                  /* engine_begin_stop came (main thread) */
	struct reconciler *rc;          /* drift reconciliation thread */
	/* request_ids of grants queued or running (not yet in the store, or
	 * not yet answered): request_id -> {"n": count, "req": the fields
	 * that tell one request from another}; under rid_lock */
	pthread_mutex_t rid_lock;
	json_t *rids;
};

/* ---- engine.c ---- */

/* Grant job j carries request_id rid from now until it is freed: a retry
 * with the same request_id meanwhile (engine_rid_busy) is not judged as a
 * new request while the first may still be granted. */
void engine_rid_hold(struct engine *e, struct job *j, const struct jit_request *req);
void engine_rid_release(struct job *j); /* workers_job_free */
/* 0: no grant with req's request_id in progress; 1: one of the same
 * request (policy_same_request's fields); -1: one of another request. */
int engine_rid_busy(struct engine *e, const struct jit_request *req);
/* Does another job than j hold j's request_id (engine_rid_hold)? */
bool engine_rid_others(const struct job *j);

/* Any thread: queue a reply (line and done id taken) and wake the loop. */
void engine_post_reply(struct engine *e, uint64_t conn_id, char *line, char *done_id);
/* A worker: hands extension job j (taken) back to the main thread; or any
 * thread: a grant job to check again (engine_grant_stale). */
void engine_post_resume(struct engine *e, struct job *j);
/* Any thread: grant job j was checked under a configuration a reload has
 * replaced since, and must be checked again (requests_grant_resume) before
 * it runs. */
bool engine_grant_stale(struct engine *e, const struct job *j);

/* ---- workers.c ---- */

void workers_job_free(struct job *j); /* NULL-safe */
/* Starts the workers of directory dc into q (zeroed); JIT_OK or an error,
 * after which engine_free() frees what was made. */
int workers_start_dir(struct engine *e, struct dirq *q, const struct jit_dir_cfg *dc);
/* The queue of directory name, or NULL. */
struct dirq *workers_find_dir(struct engine *e, const char *name);
/* Queues j (taken) and returns true; false (j still the caller's) while q
 * stops, or for a client's job when the queue is full. */
bool workers_enqueue(struct dirq *q, struct job *j);
/* Is a client's complete or revoke of grant_id waiting in q's queue? */
bool workers_end_waiting(struct dirq *q, const char *grant_id);
/* Queues j (taken) first in line; frees it while q stops. */
void workers_enqueue_front(struct dirq *q, struct job *j);
/* The answer line (caller frees) to a client's request that
 * workers_enqueue() refused, audited as its definition says. */
char *workers_refuse_unqueued(struct dirq *q, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req);

/* ---- scheduler.c ---- */

/* Main thread: grant id is no longer in flight (its job is done). */
void scheduler_inflight_del(struct engine *e, const char *id);
/* Main thread, at the start of a stop: the expiries a tick held back for a
 * fuller batch are queued now (no tick comes during the drain). */
void scheduler_flush_held(struct engine *e);

/* ---- requests.c ---- */

/* The `grant` answer line for r (caller frees). */
char *requests_ok_grant_line(const struct grant_rec *r);
/* Does groups entry gc still name the group grant r was made in (its
 * directory, DN and member attribute, as the pair key compares them)? */
bool requests_same_group(const struct jit_config *cfg, const struct jit_group_cfg *gc,
			 const struct grant_rec *r);
/* May client c (NULL: none) see and act on grant r (see requests.c)? */
bool requests_grant_visible(const struct jit_config *cfg, const struct jit_client_cfg *c,
			    const struct grant_rec *r);
/* Grant req->grant_id (caller frees with grant_rec_free) if client c may
 * act on it (requests_grant_visible); else NULL and *line (caller frees)
 * the answer. */
struct grant_rec *requests_load_for(struct engine *e, const struct jit_client_cfg *c,
				    const struct jit_peer *peer, const struct jit_request *req,
				    char **line);
/* Any thread: the `refused` audit event (client and rule may be NULL),
 * with the members of extra (may be NULL) added. */
void requests_audit_refusal_x(struct engine *e, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int err, const char *message,
			      const char *rule, json_t *extra);
void requests_audit_refusal(struct engine *e, const struct jit_peer *peer, const char *client,
			    const struct jit_request *req, int err, const char *message,
			    const char *rule);

/* Main thread: the clients entry job j's peer matches under the current
 * configuration (its groups read again where an entry needs them), if it is
 * still the one that sent the request; else NULL. */
const struct jit_client_cfg *requests_client_again(struct engine *e, struct job *j);
/* Main thread: a grant job (j taken) that waited (ticket check, queue)
 * while the configuration was reloaded: matched and checked again as if it
 * came now, then queued again. NULL if queued, else the answer line. */
char *requests_grant_resume(struct engine *e, struct job *j);

/* ---- extend.c ---- */

/* Main thread: an extend request; NULL when it went to the directory's
 * queue (req is then the job's), else the answer line (caller frees; req
 * still the caller's). checked: the rules a worker has just checked the
 * user against in the directory, or NULL. */
char *extend_request(struct engine *e, uint64_t conn_id, const struct jit_client_cfg *c,
		     struct jit_request *req, const struct jit_peer *peer,
		     const struct policy_dirrules *checked);
/* Main thread: an extension back from its directory check (j taken): the
 * answer line (caller frees), or NULL if it was queued again. */
char *extend_resume(struct engine *e, struct job *j);

#endif
