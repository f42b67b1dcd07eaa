/*
 * timing.c - per-step counters (see timing.h). Relaxed atomics: each
 * counter is exact; a reader may see a count and a total from slightly
 * different moments, which a mean over thousands of runs does not notice.
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
};

static atomic_uint_fast64_t step_count[STEP__COUNT];
static atomic_uint_fast64_t step_total[STEP__COUNT];

void timing_since(enum jit_step step, int64_t start)
{
	int64_t d = mono_us() - start;
	if ((unsigned)step >= STEP__COUNT)
		return;
	atomic_fetch_add_explicit(&step_count[step], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&step_total[step], (uint_fast64_t)(d > 0 ? d : 0),
				  memory_order_relaxed);
}

json_t *timing_json(void)
{
	json_t *o = json_object();
	for (int i = 0; i < STEP__COUNT; i++) {
		uint64_t n = atomic_load_explicit(&step_count[i], memory_order_relaxed);
		uint64_t t = atomic_load_explicit(&step_total[i], memory_order_relaxed);
		json_object_set_new(o, step_names[i],
				    json_pack("{sIsI}", "count", (json_int_t)n, "total_us",
					      (json_int_t)t));
	}
	return o;
}
