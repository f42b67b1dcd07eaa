/*
 * test_notifyq.c - the per-receiver notification queues: a full queue
 * drops only its own receiver's notifications (counted per receiver), a
 * receiver whose transfers hang cannot take the slot another one needs,
 * lanes take turns, retries go to the tail, and receivers removed by a
 * reload drain, then go (their waiting items dropped beyond retired_max).
 */
#include <stdlib.h>
#include "notifyq.h"
#include "t.h"

#define N_ITEMS 64
static struct notifyq_item items[N_ITEMS];

static struct notifyq *new_q(size_t qmax, int lane_par, int total_par, size_t retired_max,
			     const char *const *keys, size_t n)
{
	struct notifyq_limits lim = { .queue_max = qmax,
				      .lane_parallel = lane_par,
				      .total_parallel = total_par,
				      .retired_max = retired_max };
	struct notifyq *q = notifyq_new(&lim);
	struct notifyq_item *dropped = NULL;
	notifyq_configure(q, keys, n, &dropped);
	CHECK(dropped == NULL);
	return q;
}

static int push(struct notifyq *q, const char *key, int i, int64_t due)
{
	uint64_t d = 0;
	return notifyq_push(q, notifyq_lane(q, key), &items[i], due, &d);
}

static struct notify_counts {
	size_t waiting, inflight;
	uint64_t dropped;
} counts(struct notifyq *q, const char *key)
{
	struct notifyq_stats st = { 0 };
	struct notify_counts c = { (size_t)-1, (size_t)-1, (uint64_t)-1 };
	if (notifyq_lane_stats(q, key, &st) == JIT_OK) {
		c.waiting = st.waiting;
		c.inflight = st.inflight;
		c.dropped = st.dropped;
	}
	return c;
}

static void empty(struct notifyq *q)
{
	while (notifyq_take_any(q))
		;
	notifyq_free(q);
}

/* A full queue refuses only its own receiver's new items. */
static void check_full_queue_is_per_receiver(void)
{
	const char *keys[] = { "http://siem/", "http://chat/" };
	struct notifyq *q = new_q(3, 4, 16, 4, keys, 2);
	uint64_t d = 0;
	for (int i = 0; i < 3; i++)
		CHECK(push(q, "http://chat/", i, 0) == JIT_OK);
	CHECK(notifyq_push(q, notifyq_lane(q, "http://chat/"), &items[3], 0, &d) == JIT_EBUSY);
	CHECK(d == 1);
	CHECK(notifyq_push(q, notifyq_lane(q, "http://chat/"), &items[4], 0, &d) == JIT_EBUSY);
	CHECK(d == 2);
	for (int i = 5; i < 8; i++)
		CHECK(push(q, "http://siem/", i, 0) == JIT_OK);
	CHECK(counts(q, "http://chat/").dropped == 2 && counts(q, "http://chat/").waiting == 3);
	CHECK(counts(q, "http://siem/").dropped == 0 && counts(q, "http://siem/").waiting == 3);
	/* in progress counts against the queue too */
	struct notifyq_item *it = notifyq_start(q, 0);
	CHECK(it == &items[5]); /* the configured order, first lane first */
	CHECK(push(q, "http://siem/", 8, 0) == JIT_EBUSY);
	notifyq_done(q, it, true);
	CHECK(push(q, "http://siem/", 8, 0) == JIT_OK);
	struct notifyq_stats tot;
	notifyq_totals(q, &tot);
	CHECK(tot.queued == 7 && tot.dropped == 3 && tot.delivered == 1 && tot.waiting == 6);
	empty(q);
}

/* Lane A's transfers hang: it keeps at most lane_parallel slots, and never
 * the one lane B needs, even when the slots are scarce. */
static void check_stalled_lane_leaves_a_slot(void)
{
	const char *keys[] = { "A", "B" };
	struct notifyq *q = new_q(100, 4, 2, 4, keys, 2);
	for (int i = 0; i < 10; i++)
		CHECK(push(q, "A", i, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == &items[0]);
	/* one more for A would take B's reserved slot */
	CHECK(notifyq_start(q, 0) == NULL);
	CHECK(notifyq_next_due(q, true) == -1); /* nothing startable: sleep */
	CHECK(notifyq_next_due(q, false) == 0); /* but A has due items */
	CHECK(push(q, "B", 20, 0) == JIT_OK);
	CHECK(push(q, "B", 21, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == &items[20]);
	CHECK(notifyq_inflight(q) == 2);
	CHECK(notifyq_start(q, 0) == NULL); /* two slots, both used */
	notifyq_done(q, &items[20], true);
	CHECK(notifyq_start(q, 0) == &items[21]); /* B again; A still waits */
	notifyq_done(q, &items[21], true);
	/* B idle again: A still may not take the reserved slot */
	CHECK(notifyq_start(q, 0) == NULL);
	CHECK(counts(q, "A").inflight == 1 && counts(q, "B").inflight == 0);
	empty(q);
}

/* With enough slots a lane uses up to lane_parallel, never more; a lane
 * that is new after a reload gets the next free slot before the busy one. */
static void check_lane_limit_and_new_lane(void)
{
	const char *one[] = { "A" }, *two[] = { "A", "B" };
	struct notifyq *q = new_q(100, 3, 3, 4, one, 1);
	struct notifyq_item *dropped = NULL;
	for (int i = 0; i < 10; i++)
		CHECK(push(q, "A", i, 0) == JIT_OK);
	for (int i = 0; i < 3; i++)
		CHECK(notifyq_start(q, 0) == &items[i]);
	CHECK(notifyq_start(q, 0) == NULL); /* lane_parallel */
	notifyq_configure(q, two, 2, &dropped);
	CHECK(dropped == NULL);
	CHECK(push(q, "B", 30, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == NULL); /* all 3 slots in use */
	notifyq_done(q, &items[0], false);
	CHECK(notifyq_start(q, 0) == &items[30]); /* B's reserved slot, not A's 4th */
	empty(q);
}

/* Lanes take turns; within a lane, queue order; a retry goes to the tail
 * and waits for its due time. */
static void check_turns_and_retries(void)
{
	const char *keys[] = { "A", "B" };
	struct notifyq *q = new_q(100, 4, 8, 4, keys, 2);
	for (int i = 0; i < 4; i++) {
		CHECK(push(q, "A", i, 0) == JIT_OK);
		CHECK(push(q, "B", 10 + i, 0) == JIT_OK);
	}
	struct notifyq_item *want[] = { &items[0], &items[10], &items[1], &items[11] };
	for (int i = 0; i < 4; i++)
		CHECK(notifyq_start(q, 0) == want[i]);
	notifyq_retry(q, &items[0], 500);
	CHECK(notifyq_start(q, 0) == &items[2]);
	CHECK(notifyq_start(q, 0) == &items[12]);
	CHECK(notifyq_start(q, 0) == &items[3]);
	CHECK(notifyq_start(q, 0) == &items[13]);
	CHECK(notifyq_start(q, 0) == NULL); /* the retry is not due yet */
	CHECK(notifyq_next_due(q, false) == 500);
	notifyq_done(q, &items[3], true);
	CHECK(notifyq_next_due(q, true) == 500);
	CHECK(notifyq_start(q, 499) == NULL);
	CHECK(notifyq_start(q, 500) == &items[0]);
	notifyq_done(q, &items[0], false);
	struct notifyq_stats st;
	CHECK(notifyq_lane_stats(q, "A", &st) == JIT_OK);
	CHECK(st.attempts_failed == 2 && st.gave_up == 1 && st.delivered == 1);
	CHECK(st.waiting == 2 && st.inflight == 2);
	CHECK(notifyq_set_failing(items[1].lane, true));
	CHECK(!notifyq_set_failing(items[1].lane, true));
	CHECK(notifyq_set_failing(items[1].lane, false));
	empty(q);
}

/* A receiver a reload removes drains and goes; beyond retired_max retired
 * receivers with waiting items, the oldest one's waiting items are dropped. */
static void check_retired_lanes(void)
{
	const char *a[] = { "A" }, *b[] = { "B" }, *c[] = { "C" }, *ca[] = { "C", "A" };
	struct notifyq *q = new_q(100, 4, 8, 1, a, 1);
	struct notifyq_item *dropped = NULL;
	CHECK(push(q, "A", 0, 0) == JIT_OK);
	CHECK(push(q, "A", 1, 0) == JIT_OK);
	CHECK(push(q, "A", 2, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == &items[0]);
	notifyq_configure(q, b, 1, &dropped);
	CHECK(dropped == NULL && counts(q, "A").waiting == 3);
	CHECK(push(q, "B", 10, 0) == JIT_OK);
	notifyq_configure(q, c, 1, &dropped); /* A and B retired: one too many */
	int n = 0;
	for (struct notifyq_item *it = dropped; it; it = it->next, n++)
		CHECK(it->lane == NULL && (it == &items[1] || it == &items[2]));
	CHECK(n == 2);
	CHECK(counts(q, "A").waiting == 1 && counts(q, "A").dropped == 2); /* in progress */
	CHECK(counts(q, "B").waiting == 1);
	notifyq_done(q, &items[0], true);
	CHECK(counts(q, "A").waiting == (size_t)-1); /* gone */
	/* configured again: a lane again, counting anew */
	dropped = NULL;
	notifyq_configure(q, ca, 2, &dropped);
	CHECK(dropped == NULL && counts(q, "A").waiting == 0 && counts(q, "C").waiting == 0);
	CHECK(notifyq_start(q, 0) == &items[10]); /* B still delivers */
	notifyq_done(q, &items[10], true);
	CHECK(counts(q, "B").waiting == (size_t)-1);
	/* an item for a receiver no longer configured (queued while a reload ran) */
	CHECK(push(q, "Z", 40, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == &items[40]);
	notifyq_done(q, &items[40], true);
	CHECK(counts(q, "Z").waiting == (size_t)-1);
	struct notifyq_stats tot;
	notifyq_totals(q, &tot);
	CHECK(tot.queued == 5 && tot.delivered == 3 && tot.dropped == 2 && tot.waiting == 0);
	notifyq_free(q);
}

/* More receivers than total_parallel: each still has its reserved slot. */
static void check_more_lanes_than_slots(void)
{
	const char *keys[] = { "A", "B", "C", "D" };
	struct notifyq *q = new_q(100, 4, 2, 4, keys, 4);
	for (int i = 0; i < 4; i++)
		CHECK(push(q, keys[i], i, 0) == JIT_OK);
	for (int i = 0; i < 4; i++)
		CHECK(notifyq_start(q, 0) == &items[i]);
	CHECK(notifyq_inflight(q) == 4);
	CHECK(push(q, "A", 10, 0) == JIT_OK);
	CHECK(notifyq_start(q, 0) == NULL);
	/* teardown hands out what is in progress first */
	CHECK(notifyq_take_any(q) == &items[0]);
	CHECK(notifyq_take_any(q) == &items[10]);
	empty(q);
}

int main(void)
{
	check_full_queue_is_per_receiver();
	check_stalled_lane_leaves_a_slot();
	check_lane_limit_and_new_lane();
	check_turns_and_retries();
	check_retired_lanes();
	check_more_lanes_than_slots();
	T_DONE();
}
