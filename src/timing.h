/*
 * timing.h - where a request's time goes: per step of a grant, of its end
 * and of an expiry batch, how often the step ran and how long it took in
 * all (monotonic clock, microseconds), since the daemon started. `status`
 * reports them (docs/protocol.md, "timings"), so that an operator can tell the
 * directory's time from jitd's own. Thread-safe (atomic counters); the
 * cost is two clock reads per step.
 */
#ifndef JITD_TIMING_H
#define JITD_TIMING_H

#include <stdint.h>
#include <jansson.h>

enum jit_step {
	STEP_QUEUE,            /* queued by the engine -> a worker starts it */
	STEP_LOOKUP_USER,      /* the user's search */
	STEP_CHECK_MEMBER,     /* is the user already a member? */
	STEP_RECORD_PENDING,   /* the pending row's transaction */
	STEP_DIRECTORY_ADD,    /* the add */
	STEP_AUDIT_GRANTED,    /* the `granted` line, on disk */
	STEP_RECORD_ACTIVE,    /* pending -> active */
	STEP_RECORD_ENDING,    /* active -> ending */
	STEP_DIRECTORY_REMOVE, /* the removal (with its checks) */
	STEP_AUDIT_ENDED,      /* the end's line, on disk */
	STEP_RECORD_ENDED,     /* ending -> the final state */
	/* Expiries ended in a batch (grant_expire_batch): once per batch
	 * queued, and once per part of a batch ended together (the grants
	 * whose pairs another worker held are a second part). */
	STEP_EXPIRE_QUEUE,     /* the batch queued -> a worker starts it */
	STEP_EXPIRE_RECORD_ENDING, /* its due grants marked ending, one transaction */
	STEP_EXPIRE_REMOVE,    /* its memberships removed (one modify per group, or alone) */
	STEP_EXPIRE_AUDIT,     /* its `expired` lines, on disk */
	STEP_EXPIRE_RECORD_ENDED, /* its grants closed, one transaction */
	STEP__COUNT
};

/* Adds the time since start (a mono_us() value) to step. */
void timing_since(enum jit_step step, int64_t start);
/* {"<step>": {"count": n, "total_us": t}, ...} for every step. */
json_t *timing_json(void);

#endif
