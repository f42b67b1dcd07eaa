/*
 * notify.h - webhook notifications of audit events; the only module that
 * includes <curl/curl.h>.
 *
 * A dedicated thread runs a curl multi handle fed by one bounded queue per
 * receiver (notifyq.h), so a slow or dead receiver never delays the caller,
 * nor another receiver: notify_event() only copies the event into each
 * subscribed receiver's queue (or, when that queue is full, counts and logs
 * the drop for that receiver) and returns. Each receiver has its own share of
 * the transfer slots, one of them always reserved. Failed deliveries (no connection, timeout, HTTP 5xx,
 * 408, 429) are retried with exponential backoff up to the target's
 * max_attempts; other HTTP 4xx answers are final. With a secret_file the
 * request carries an HMAC-SHA256 signature header (docs/audit-log.md,
 * "Notifications").
 *
 *   struct notify_targets *t;
 *   notify_targets_load(cfg, &t, msg, sizeof msg)   reads the secret files
 *   notify_new(t, NULL, &n)                         starts the thread
 *   audit observer -> notify_event(n, event, rec)   any thread, never blocks
 *   notify_set_targets(n, t2)                       after a reload
 *   notify_free(n)                                  drains for a moment, stops
 */
#ifndef JITD_NOTIFY_H
#define JITD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "config.h"
#include "err.h"

enum notify_format { NOTIFY_JSON, NOTIFY_SLACK, NOTIFY_TEAMS };

/* The receivers of one configuration, with their secrets read. */
struct notify_targets;
/* Builds the targets of cfg->notify, reading and checking each secret_file
 * (a regular file that group and others cannot read, 1..4096 bytes).
 * JIT_ECONFIG and a message if one cannot be used. */
int notify_targets_load(const struct jit_config *cfg, struct notify_targets **out, char *msg,
			size_t msglen) JIT_WUR;
void notify_targets_free(struct notify_targets *t); /* NULL-safe; wipes secrets */

/* Limits; tests shrink them. NULL in notify_new() means the defaults. */
struct notify_limits {
	size_t queue_max;       /* per receiver: waiting or in progress, default 1000 */
	int64_t retry_min_ms;   /* first backoff, default 1000, doubling */
	int64_t retry_max_ms;   /* backoff cap, default 60000 */
	int parallel;           /* per receiver: transfers at once, default 4 */
	int64_t drain_ms;       /* notify_free waits this long for due deliveries, default 2000 */
	int parallel_total;     /* all receivers: transfers at once, default 16 (at least
				 * parallel, and one per receiver whatever the value) */
};

struct notify;
/* Starts the delivery thread; takes t. JIT_EINTERNAL if libcurl fails. */
int notify_new(struct notify_targets *t, const struct notify_limits *lim,
	       struct notify **out) JIT_WUR;
/* Replaces the targets for events queued from now on (takes t); queued
 * deliveries still go to the targets they were queued for. */
void notify_set_targets(struct notify *n, struct notify_targets *t);
/* Queues event (rec: the audit line as an object, line: its bytes) for each
 * target that subscribed to it. Never blocks on the network. */
void notify_event(struct notify *n, const char *event, json_t *rec, const char *line,
		  size_t len);

struct notify_stats {
	uint64_t queued, delivered, attempts_failed, gave_up, dropped;
	size_t waiting;         /* waiting or in progress */
};
/* Counts over all receivers. */
void notify_get_stats(struct notify *n, struct notify_stats *out);
/* Counts of the receiver with this url; JIT_ENOTFOUND if there is none
 * (not configured, and nothing of it left in the queues). */
int notify_get_receiver_stats(struct notify *n, const char *url, struct notify_stats *out) JIT_WUR;
/* Waits up to drain_ms for deliveries that are due, then stops the thread
 * and logs what was left undelivered. NULL-safe. No notify_event() may run
 * concurrently or after (unregister the audit observer first). */
void notify_free(struct notify *n);

/* Pure: the request body for format f (a new string), and the one-line
 * human summary the slack and teams formats carry. */
char *notify_body(enum notify_format f, const char *event, json_t *rec, const char *line,
		  size_t len);
char *notify_summary(const char *event, json_t *rec);
/* Pure: "sha256=" + hex HMAC-SHA256(key, timestamp "." body) into out
 * (>= 72 bytes). JIT_EINTERNAL if libcrypto fails. */
int notify_signature(const unsigned char *key, size_t keylen, const char *timestamp,
		     const char *body, size_t bodylen, char out[72]) JIT_WUR;

#endif
