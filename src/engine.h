/*
 * engine.h - the engine: the grant state machine and everything that drives
 * it (per-directory worker threads with their own LDAP connection and store
 * handle, the expiry scheduler, crash recovery).
 *
 * The listener (server.c) hands the engine requests that proto.c parsed and
 * policy.c authorised, tagged with the connection they came from. The
 * engine answers through a reply queue: engine_reply_fd() becomes readable
 * when replies wait, engine_pop_reply() takes them one by one. Only the
 * engine talks to the directory and writes grants to the store.
 *
 * Threads: engine_submit / engine_tick / engine_pop_reply / engine_status
 * are called from the main thread only.
 *
 * Implemented by engine.c, workers.c, scheduler.c, requests.c and extend.c,
 * which share engine_priv.h (no other file includes it).
 */
#ifndef JITD_ENGINE_H
#define JITD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "audit.h"
#include "config.h"
#include "policy.h"
#include "proto.h"

struct engine;

struct engine_reply {
	uint64_t conn_id;       /* 0: not for a client (scheduler bookkeeping) */
	char *line;             /* answer line with '\n', or NULL */
	char *done_grant_id;    /* internal: scheduler job finished (never returned) */
	struct engine_reply *next; /* internal */
};
void engine_reply_free(struct engine_reply *r); /* NULL-safe */

/*
 * Opens the store under cfg->state_dir, turns interrupted `pending` grants
 * into ending(failed) (crash recovery), and starts the worker threads.
 * cfg must stay valid until engine_set_config() replaces it. A missing
 * store is created (audited as store_created) only where nothing says one
 * existed, or with init_store (--init-store): see store_init().
 */
int engine_new(const struct jit_config *cfg, struct audit *audit, bool init_store,
	       struct engine **out) JIT_WUR;

/* Makes cfg the config for new requests (after a reload). Directories are
 * not rebuilt: JIT_ECONFIG (and a message in msg) if cfg adds or removes a
 * directory; then nothing changes. A group may be dropped: its live grants
 * carry everything their removal needs. Of the directory settings only
 * member_attr and placeholder_member (read per new grant) follow cfg; the
 * others, and the retry intervals, keep their start-up values until a
 * restart (config_diff() names them). */
int engine_set_config(struct engine *e, const struct jit_config *cfg, char *msg,
		      size_t msglen) JIT_WUR;

/*
 * Takes a validated request (ownership of req passes to the engine) from a
 * client matching entry c, with the effective duration for grants.
 * Always answers exactly once, through the reply queue, with conn_id.
 */
void engine_submit(struct engine *e, uint64_t conn_id, const struct jit_peer *peer,
		   const struct jit_client_cfg *c, struct jit_request *req, int64_t duration);

/* Writes the `refused` audit event for a request refused before the engine. */
void engine_audit_refusal(struct engine *e, const struct jit_peer *peer,
			  const struct jit_client_cfg *c, const struct jit_request *req,
			  int err, const char *message);
/* The same, for a clients entry known by name only (may be NULL). */
void engine_audit_refusal_named(struct engine *e, const struct jit_peer *peer, const char *client,
				const struct jit_request *req, int err, const char *message,
				const char *rule);
/* The same, naming the policy rule that refused (rule may be NULL). */
void engine_audit_refusal_rule(struct engine *e, const struct jit_peer *peer,
			       const struct jit_client_cfg *c, const struct jit_request *req,
			       int err, const char *message, const char *rule);

/* Schedules due expiries and retries. Call about twice a second. */
void engine_tick(struct engine *e, int64_t now);
/* Nothing of the scheduler's in flight, and nothing due to end (an expiry, a
 * retry, a check after replication_grace) at now + horizon or before? False
 * when the store cannot tell. */
bool engine_ends_idle(struct engine *e, int64_t now, int64_t horizon);

int engine_reply_fd(struct engine *e);
/* Next reply or NULL. Caller frees with engine_reply_free. An extension
 * back from its directory check (eligible_group) is finished here, on the
 * main thread: checked again and written (bounded store wait), or queued
 * again. Extensions still waiting when the loop ends are not written. */
struct engine_reply *engine_pop_reply(struct engine *e);

/*
 * Lets the daemon add its own fields to the `status` answer: fn(arg, s) is
 * called on the main thread with the status object being built (fn adds
 * members; it must not block). NULL fn: none.
 */
typedef void (*engine_status_fn)(void *arg, json_t *status);
void engine_set_status_hook(struct engine *e, engine_status_fn fn, void *arg);

/* The first step of a stop, on the main thread while it still forwards
 * answers: nothing more is queued; the grants and checks not started are
 * answered shutting_down (nothing is recorded for them); the ends queued
 * still run, and jobs in progress finish. */
void engine_begin_stop(struct engine *e);
/* True when no directory's queue holds a job (jobs in progress aside). */
bool engine_queues_empty(struct engine *e);
/* Stops the workers: jobs not yet started are answered shutting_down;
 * jobs in progress finish. Returns when every worker has exited. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e); /* NULL-safe; calls engine_stop */

#endif
