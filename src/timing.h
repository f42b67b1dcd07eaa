/*
 * timing.h - where a request's time goes: per step of a grant, of its end
 * and of an expiry batch, how often the step ran and how long it took in
 * all (monotonic clock, microseconds), since the daemon started. `status`
 * reports them (docs/protocol.md, "timings"), so that an operator can tell the
 * directory's time from jitd's own, and per step a histogram of the
 * durations, so that a tail (a p99) can be put down to the steps that make
 * it. Thread-safe (atomic counters); the cost is two clock reads and three
 * atomic adds per step.
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
	/* A request's whole time in the engine, queue included: job queued ->
	 * its answer ready for the listener. */
	STEP_GRANT,            /* a grant request */
	STEP_END,              /* a complete or revoke request, or a retried removal */
	STEP__COUNT
};

/*
 * The histogram's buckets: four per power of two, so a bucket's upper
 * bound is at most 1.25 x its lower one. Durations of 0-3 us have a bucket
 * each; a duration d >= 4 us with highest set bit o falls in the bucket
 * [(4 + s) << (o - 2), (5 + s) << (o - 2)), s being the two bits below o.
 * Durations from 2^40 us (12 days) on count in the last bucket.
 */
#define TIMING_BUCKETS 157 /* 4 + 4 per power of two from 4 us to 2^40 us, + 1 */
/* The bucket of a duration (us, negative counts as 0). */
int timing_bucket(int64_t us);
/* The bucket's bounds: lo <= d < hi for every d in it (hi of the last:
 * INT64_MAX). */
void timing_bucket_bounds(int bucket, int64_t *lo, int64_t *hi);

/* Adds the time since start (a mono_us() value) to step. */
void timing_since(enum jit_step step, int64_t start);
/* {"<step>": {"count": n, "total_us": t, "hist": [[lo, hi, n], ...]}, ...}
 * for every step; hist lists the buckets that are not empty, lowest
 * first. */
json_t *timing_json(void);

#endif
