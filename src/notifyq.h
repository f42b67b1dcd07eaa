/*
 * notifyq.h - the notification queues: one bounded queue per receiver and
 * a fair share of the transfer slots, so that a receiver that stalls or
 * fails delays and drops only its own notifications.
 *
 * Pure bookkeeping: no I/O, no clock (times are passed in), no locking
 * (notify.c holds its mutex around every call). A delivery embeds a
 * struct notifyq_item as its first member; the queue links it, never
 * allocates or frees it.
 *
 * A receiver is a lane, named by a key (its URL: entries with the same URL
 * are one receiver). notifyq_configure() names the lanes of the running
 * configuration. A lane it no longer names is retired: it keeps delivering
 * what it holds and goes away once empty; when more than retired_max
 * retired lanes still have deliveries waiting, the oldest ones' waiting
 * deliveries are handed back as dropped. Bounds therefore: per lane
 * queue_max items (waiting or in progress); in all queue_max * (lanes
 * configured + retired_max) plus those in progress.
 *
 * Transfer slots: a lane has at most lane_parallel in progress; all lanes
 * together at most max(total_parallel, number of lanes). One slot is
 * reserved for each lane with nothing in progress, so a lane whose
 * transfers hang can never take the slot another lane needs to start.
 * Lanes are served in turn (round robin), each in queue order.
 *
 *   q = notifyq_new(&lim)
 *   notifyq_configure(q, urls, n, &dropped)        at start, after a reload
 *   notifyq_push(q, notifyq_lane(q, url), it, due, &count)   a new delivery
 *   while ((it = notifyq_start(q, now)))  start its transfer
 *   notifyq_retry(q, it, due)  or  notifyq_done(q, it, delivered)
 */
#ifndef JITD_NOTIFYQ_H
#define JITD_NOTIFYQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

struct notifyq_lane;

struct notifyq_item {
	struct notifyq_item *next; /* the queue's */
	struct notifyq_lane *lane; /* set by notifyq_push; valid while queued */
	int64_t due_ms;
};

struct notifyq_limits {
	size_t queue_max;   /* per lane, waiting or in progress; >= 1 */
	int lane_parallel;  /* per lane, in progress; >= 1 */
	int total_parallel; /* all lanes (raised to the number of lanes); >= 1 */
	size_t retired_max; /* retired lanes that may keep waiting items */
};

struct notifyq_stats {
	uint64_t queued, delivered, attempts_failed, gave_up, dropped;
	size_t waiting; /* waiting or in progress */
	size_t inflight;
};

struct notifyq;
/* A new empty set of queues; never NULL. Limits below 1 are raised to 1. */
struct notifyq *notifyq_new(const struct notifyq_limits *lim);
/* Frees the lanes; the caller has taken every item (notifyq_take_any). NULL-safe. */
void notifyq_free(struct notifyq *q);

/* Makes keys[0..n) the configured lanes (creating those that are new) and
 * retires the others. Waiting items of retired lanes beyond retired_max
 * (oldest retired first) are counted as dropped and prepended to *dropped
 * (linked by next, lane NULL) for the caller to free. */
void notifyq_configure(struct notifyq *q, const char *const *keys, size_t n,
		       struct notifyq_item **dropped);
/* The lane of key; created (retired) if unknown. Valid until the next call
 * that may free a lane (configure, done, take_any) once it is empty. */
struct notifyq_lane *notifyq_lane(struct notifyq *q, const char *key);

/* Queues it at the tail of lane l, due at due_ms. JIT_EBUSY if the lane
 * holds queue_max items: it is not queued, the drop is counted, and
 * *dropped (if not NULL) is the lane's drop count so far. */
int notifyq_push(struct notifyq *q, struct notifyq_lane *l, struct notifyq_item *it, int64_t due_ms,
		 uint64_t *dropped) JIT_WUR;
/* The next item to start at time now (due, and its lane may take a slot),
 * now counted in progress; NULL if none. Lanes take turns. */
struct notifyq_item *notifyq_start(struct notifyq *q, int64_t now);
/* An attempt of it (in progress) failed and it goes back to its lane's
 * tail, due at due_ms. */
void notifyq_retry(struct notifyq *q, struct notifyq_item *it, int64_t due_ms);
/* it (in progress) leaves: delivered, or given up. May free its lane. */
void notifyq_done(struct notifyq *q, struct notifyq_item *it, bool delivered);
/* Records whether the lane's last attempt failed; true if that changed. */
bool notifyq_set_failing(struct notifyq_lane *l, bool failing);

/* The earliest due time of waiting items (with startable: only of lanes
 * that may start a transfer now); -1 if none. */
int64_t notifyq_next_due(const struct notifyq *q, bool startable);
size_t notifyq_inflight(const struct notifyq *q);
/* Removes and returns any item (those in progress first), uncounted; NULL
 * when empty. For tearing down. May free its lane. */
struct notifyq_item *notifyq_take_any(struct notifyq *q);

/* Totals over every lane there ever was. */
void notifyq_totals(const struct notifyq *q, struct notifyq_stats *out);
/* One lane's counts; JIT_ENOTFOUND if no lane has that key. */
int notifyq_lane_stats(const struct notifyq *q, const char *key, struct notifyq_stats *out) JIT_WUR;

#endif
