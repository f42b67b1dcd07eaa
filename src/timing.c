/*
 * timing.c - per-step counters (see timing.h). Relaxed atomics: each
 * counter is exact; a reader may see a count and a total from slightly
 * different moments (and a histogram a bucket's count from another), which
 * a mean or a percentile over thousands of runs does not notice.
 */
#include <stdatomic.h>
#include "timing.h"
#include "util.h"

static const char *const step_names[STEP__COUNT] = {
	[STEP_QUEUE] = "queue",
	[STEP_LOOKUP_USER] = "lookup_user",
	[STEP_CHECK_MEMBER] = "check_member",
	[STEP_RECORD_PENDING] = "record_pending",
	[STEP_DIRECTORY_ADD] = "directory_add",
	[STEP_AUDIT_GRANTED] = "audit_granted",
	[STEP_RECORD_ACTIVE] = "record_active",
	[STEP_RECORD_ENDING] = "record_ending",
	[STEP_DIRECTORY_REMOVE] = "directory_remove",
	[STEP_AUDIT_ENDED] = "audit_ended",
	[STEP_RECORD_ENDED] = "record_ended",
	[STEP_EXPIRE_QUEUE] = "expire_queue",
	[STEP_EXPIRE_RECORD_ENDING] = "expire_record_ending",
	[STEP_EXPIRE_REMOVE] = "expire_directory_remove",
	[STEP_EXPIRE_AUDIT] = "expire_audit",
	[STEP_EXPIRE_RECORD_ENDED] = "expire_record_ended",
	[STEP_GRANT] = "grant",
	[STEP_END] = "end",
};

static atomic_uint_fast64_t step_count[STEP__COUNT];
static atomic_uint_fast64_t step_total[STEP__COUNT];
static atomic_uint_fast64_t step_hist[STEP__COUNT][TIMING_BUCKETS];

#define TOP_BIT 40 /* durations from 2^TOP_BIT us share the last bucket */
_Static_assert(TIMING_BUCKETS == 4 * TOP_BIT - 3, "timing.h's TIMING_BUCKETS");

int timing_bucket(int64_t us)
{
	if (us < 4)
		return us < 0 ? 0 : (int)us;
	if (us >= (INT64_C(1) << TOP_BIT))
		return TIMING_BUCKETS - 1;
	int o = 63 - __builtin_clzll((unsigned long long)us); /* 2 .. TOP_BIT - 1 */
	int s = (int)((us >> (o - 2)) & 3);
	return 4 + (o - 2) * 4 + s;
}

void timing_bucket_bounds(int bucket, int64_t *lo, int64_t *hi)
{
	if (bucket < 4) {
		*lo = bucket < 0 ? 0 : bucket;
		*hi = *lo + 1;
		return;
	}
	if (bucket >= TIMING_BUCKETS - 1) {
		*lo = INT64_C(1) << TOP_BIT;
		*hi = INT64_MAX;
		return;
	}
	int o = (bucket - 4) / 4 + 2, s = (bucket - 4) % 4;
	*lo = (int64_t)(4 + s) << (o - 2);
	*hi = (int64_t)(5 + s) << (o - 2);
}

void timing_since(enum jit_step step, int64_t start)
{
	int64_t d = mono_us() - start;
	if ((unsigned)step >= STEP__COUNT)
		return;
	if (d < 0)
		d = 0;
	atomic_fetch_add_explicit(&step_count[step], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&step_total[step], (uint_fast64_t)d, memory_order_relaxed);
	atomic_fetch_add_explicit(&step_hist[step][timing_bucket(d)], 1, memory_order_relaxed);
}

json_t *timing_json(void)
{
	json_t *o = json_object();
	for (int i = 0; i < STEP__COUNT; i++) {
		uint64_t n = atomic_load_explicit(&step_count[i], memory_order_relaxed);
		uint64_t t = atomic_load_explicit(&step_total[i], memory_order_relaxed);
		json_t *h = json_array();
		for (int b = 0; b < TIMING_BUCKETS; b++) {
			uint64_t c = atomic_load_explicit(&step_hist[i][b], memory_order_relaxed);
			int64_t lo, hi;
			if (c == 0)
				continue;
			timing_bucket_bounds(b, &lo, &hi);
			json_array_append_new(h, json_pack("[III]", (json_int_t)lo, (json_int_t)hi,
							   (json_int_t)c));
		}
		json_object_set_new(o, step_names[i],
				    json_pack("{sIsIso}", "count", (json_int_t)n, "total_us",
					      (json_int_t)t, "hist", h));
	}
	return o;
}
