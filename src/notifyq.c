/*
 * notifyq.c - per-receiver notification queues and transfer slots (see
 * notifyq.h). Pure: no I/O, no clock, no locks; notify.c serialises calls.
 * Robustness: the only shared resources are the slots, and a lane with
 * nothing in progress always has one reserved, so whatever one receiver
 * does (hang for its whole timeout, fail every attempt) it fills only its
 * own queue and holds only its own slots.
 */
#include <stdlib.h>
#include <string.h>
#include "notifyq.h"
#include "util.h"

struct notifyq_lane {
	char *key;
	struct notifyq_item *head, *tail; /* waiting, in queue order */
	struct notifyq_item *busy;        /* in progress */
	bool current, failing;
	uint64_t retired_at; /* order of retirement; 0 while configured */
	struct notifyq_stats st;
};

struct notifyq {
	struct notifyq_limits lim;
	struct notifyq_lane **lanes;
	size_t n;
	size_t turn; /* the lane served first next time */
	size_t inflight;
	uint64_t retire_clock;
	struct notifyq_stats total;
};

struct notifyq *notifyq_new(const struct notifyq_limits *lim)
{
	struct notifyq *q = xcalloc(1, sizeof(*q));
	q->lim = *lim;
	if (q->lim.queue_max < 1)
		q->lim.queue_max = 1;
	if (q->lim.lane_parallel < 1)
		q->lim.lane_parallel = 1;
	if (q->lim.total_parallel < 1)
		q->lim.total_parallel = 1;
	return q;
}

static void lane_free(struct notifyq_lane *l)
{
	free(l->key);
	free(l);
}

void notifyq_free(struct notifyq *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		lane_free(q->lanes[i]);
	free(q->lanes);
	free(q);
}

static size_t find(const struct notifyq *q, const char *key)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->lanes[i]->key, key) == 0)
			return i;
	return SIZE_MAX;
}

static struct notifyq_lane *lane_add(struct notifyq *q, const char *key, bool current)
{
	struct notifyq_lane *l = xcalloc(1, sizeof(*l));
	l->key = xstrdup(key);
	l->current = current;
	if (!current)
		l->retired_at = ++q->retire_clock;
	q->lanes = xrealloc(q->lanes, (q->n + 1) * sizeof(*q->lanes));
	q->lanes[q->n++] = l;
	return l;
}

/* Frees l if it is retired and holds nothing. */
static void lane_gc(struct notifyq *q, struct notifyq_lane *l)
{
	if (l->current || l->st.waiting > 0)
		return;
	size_t i = 0;
	while (i < q->n && q->lanes[i] != l)
		i++;
	if (i == q->n)
		return;
	memmove(&q->lanes[i], &q->lanes[i + 1], (q->n - i - 1) * sizeof(*q->lanes));
	q->n--;
	if (i < q->turn)
		q->turn--;
	if (q->turn >= q->n)
		q->turn = 0;
	lane_free(l);
}

struct notifyq_lane *notifyq_lane(struct notifyq *q, const char *key)
{
	size_t i = find(q, key);
	return i == SIZE_MAX ? lane_add(q, key, false) : q->lanes[i];
}

/* Takes every waiting item of l and prepends them to *out, as dropped. */
static void drop_waiting(struct notifyq *q, struct notifyq_lane *l, struct notifyq_item **out)
{
	while (l->head) {
		struct notifyq_item *it = l->head;
		l->head = it->next;
		l->st.waiting--;
		l->st.dropped++;
		q->total.dropped++;
		it->lane = NULL;
		it->next = *out;
		*out = it;
	}
	l->tail = NULL;
}

/* The retired lane with waiting items retired first; NULL if none. */
static struct notifyq_lane *oldest_retired(const struct notifyq *q, size_t *count)
{
	struct notifyq_lane *old = NULL;
	*count = 0;
	for (size_t i = 0; i < q->n; i++) {
		struct notifyq_lane *l = q->lanes[i];
		if (l->current || !l->head)
			continue;
		(*count)++;
		if (!old || l->retired_at < old->retired_at)
			old = l;
	}
	return old;
}

void notifyq_configure(struct notifyq *q, const char *const *keys, size_t n,
		       struct notifyq_item **dropped)
{
	for (size_t i = 0; i < q->n; i++) {
		struct notifyq_lane *l = q->lanes[i];
		bool named = false;
		for (size_t k = 0; k < n && !named; k++)
			named = strcmp(l->key, keys[k]) == 0;
		if (named)
			l->retired_at = 0;
		else if (l->current)
			l->retired_at = ++q->retire_clock;
		l->current = named;
	}
	for (size_t k = 0; k < n; k++)
		if (find(q, keys[k]) == SIZE_MAX)
			lane_add(q, keys[k], true);
	for (;;) {
		size_t count;
		struct notifyq_lane *old = oldest_retired(q, &count);
		if (!old || count <= q->lim.retired_max)
			break;
		drop_waiting(q, old, dropped);
		lane_gc(q, old);
	}
	for (size_t i = q->n; i-- > 0;)
		lane_gc(q, q->lanes[i]);
}

int notifyq_push(struct notifyq *q, struct notifyq_lane *l, struct notifyq_item *it, int64_t due_ms,
		 uint64_t *dropped)
{
	if (l->st.waiting >= q->lim.queue_max) {
		l->st.dropped++;
		q->total.dropped++;
		if (dropped)
			*dropped = l->st.dropped;
		return JIT_EBUSY;
	}
	it->lane = l;
	it->due_ms = due_ms;
	it->next = NULL;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
	l->st.waiting++;
	l->st.queued++;
	q->total.queued++;
	return JIT_OK;
}

static size_t slots(const struct notifyq *q)
{
	return (size_t)q->lim.total_parallel > q->n ? (size_t)q->lim.total_parallel : q->n;
}

static size_t idle_lanes(const struct notifyq *q)
{
	size_t idle = 0;
	for (size_t i = 0; i < q->n; i++)
		idle += q->lanes[i]->st.inflight == 0;
	return idle;
}

/* A lane with nothing in progress takes its reserved slot; one with some
 * in progress may take another only from the slots not reserved by the
 * idle lanes. */
static bool may_start(const struct notifyq *q, const struct notifyq_lane *l, size_t idle)
{
	if (l->st.inflight >= (size_t)q->lim.lane_parallel)
		return false;
	if (l->st.inflight == 0)
		return q->inflight < slots(q);
	return q->inflight + idle < slots(q);
}

/* Unlinks and returns the first waiting item of l that is due at now. */
static struct notifyq_item *take_due(struct notifyq_lane *l, int64_t now)
{
	struct notifyq_item *prev = NULL;
	for (struct notifyq_item *it = l->head; it; prev = it, it = it->next) {
		if (it->due_ms > now)
			continue;
		if (prev)
			prev->next = it->next;
		else
			l->head = it->next;
		if (l->tail == it)
			l->tail = prev;
		it->next = NULL;
		return it;
	}
	return NULL;
}

struct notifyq_item *notifyq_start(struct notifyq *q, int64_t now)
{
	size_t idle = idle_lanes(q);
	for (size_t k = 0; k < q->n; k++) {
		size_t i = (q->turn + k) % q->n;
		struct notifyq_lane *l = q->lanes[i];
		if (!may_start(q, l, idle))
			continue;
		struct notifyq_item *it = take_due(l, now);
		if (!it)
			continue;
		it->next = l->busy;
		l->busy = it;
		l->st.inflight++;
		q->inflight++;
		q->turn = (i + 1) % q->n;
		return it;
	}
	return NULL;
}

/* Takes it off its lane's list of items in progress. */
static void unbusy(struct notifyq *q, struct notifyq_item *it)
{
	struct notifyq_lane *l = it->lane;
	for (struct notifyq_item **pp = &l->busy; *pp; pp = &(*pp)->next) {
		if (*pp == it) {
			*pp = it->next;
			it->next = NULL;
			l->st.inflight--;
			q->inflight--;
			return;
		}
	}
}

void notifyq_retry(struct notifyq *q, struct notifyq_item *it, int64_t due_ms)
{
	struct notifyq_lane *l = it->lane;
	unbusy(q, it);
	l->st.attempts_failed++;
	q->total.attempts_failed++;
	it->due_ms = due_ms;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
}

void notifyq_done(struct notifyq *q, struct notifyq_item *it, bool delivered)
{
	struct notifyq_lane *l = it->lane;
	unbusy(q, it);
	l->st.waiting--;
	if (delivered) {
		l->st.delivered++;
		q->total.delivered++;
	} else {
		l->st.attempts_failed++;
		l->st.gave_up++;
		q->total.attempts_failed++;
		q->total.gave_up++;
	}
	it->lane = NULL;
	lane_gc(q, l);
}

bool notifyq_set_failing(struct notifyq_lane *l, bool failing)
{
	if (l->failing == failing)
		return false;
	l->failing = failing;
	return true;
}

int64_t notifyq_next_due(const struct notifyq *q, bool startable)
{
	size_t idle = idle_lanes(q);
	int64_t next = -1;
	for (size_t i = 0; i < q->n; i++) {
		const struct notifyq_lane *l = q->lanes[i];
		if (startable && !may_start(q, l, idle))
			continue;
		for (const struct notifyq_item *it = l->head; it; it = it->next)
			if (next < 0 || it->due_ms < next)
				next = it->due_ms;
	}
	return next;
}

size_t notifyq_inflight(const struct notifyq *q)
{
	return q->inflight;
}

struct notifyq_item *notifyq_take_any(struct notifyq *q)
{
	for (size_t i = 0; i < q->n; i++) {
		struct notifyq_lane *l = q->lanes[i];
		struct notifyq_item *it = l->busy;
		if (it) {
			unbusy(q, it);
		} else if ((it = l->head) != NULL) {
			l->head = it->next;
			if (!l->head)
				l->tail = NULL;
		} else {
			continue;
		}
		l->st.waiting--;
		it->next = NULL;
		it->lane = NULL;
		lane_gc(q, l);
		return it;
	}
	return NULL;
}

void notifyq_totals(const struct notifyq *q, struct notifyq_stats *out)
{
	*out = q->total;
	out->waiting = 0;
	for (size_t i = 0; i < q->n; i++)
		out->waiting += q->lanes[i]->st.waiting;
	out->inflight = q->inflight;
}

int notifyq_lane_stats(const struct notifyq *q, const char *key, struct notifyq_stats *out)
{
	size_t i = find(q, key);
	if (i == SIZE_MAX)
		return JIT_ENOTFOUND;
	*out = q->lanes[i]->st;
	return JIT_OK;
}
