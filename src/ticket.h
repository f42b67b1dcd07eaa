/*
 * ticket.h - the external ticket check of a group (`ticket_check`): asks
 * the ticket system over HTTP(S) whether a ticket is approved before a
 * grant goes to the directory. With notify.c, the only module that
 * includes <curl/curl.h>.
 *
 * A struct ticket_checker owns one thread that runs libcurl's multi
 * interface: checks are queued from any thread and run concurrently, so a
 * slow ticket system delays only the grants waiting for it, never other
 * clients nor the expiry of grants. At most TICKET_RUNNING_MAX run at once
 * (each holds a socket); the next wait, in order; a check beyond
 * TICKET_LIVE_MAX running and waiting is refused. Every accepted check
 * ends exactly once, with a call of its callback on the checker's thread.
 *
 * The check fails closed: only a 2xx answer whose JSON body holds
 * approved_field == approved_value approves. A timeout, a connection or
 * TLS error, another status, a body that is not a JSON object (or larger
 * than 1 MiB), a missing field or another value refuse, with a message
 * that says which. The bearer token is read from token_file for each
 * check (its mode and owner checked on the open file) and wiped after use.
 */
#ifndef JITD_TICKET_H
#define JITD_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "err.h"

struct ticket_checker;

#define TICKET_RUNNING_MAX 32   /* transfers at once (descriptors) */
#define TICKET_LIVE_MAX 288     /* running and waiting: 256 may wait */

/* Starts the checker's thread. JIT_OK and *out, or JIT_EINTERNAL. */
int ticket_checker_new(struct ticket_checker **out) JIT_WUR;

/* Ends checks still running (their callbacks get JIT_ESHUTDOWN), stops
 * the thread and frees. NULL-safe. */
void ticket_checker_free(struct ticket_checker *tc);

/*
 * Called once per check on the checker's thread: rc is JIT_OK (approved),
 * JIT_EPOLICY (not approved, or the check failed: msg says why) or
 * JIT_ESHUTDOWN. msg is never NULL and is valid only during the call.
 */
typedef void (*ticket_done_fn)(void *arg, int rc, const char *msg);

/* Queues a check of ticket against cfg (both copied: they may be freed
 * when this returns). JIT_OK: done(arg, ...) will be called exactly once.
 * JIT_EBUSY: TICKET_LIVE_MAX checks are running or waiting; nothing was
 * queued and done is never called (arg stays the caller's). */
int ticket_check(struct ticket_checker *tc, const struct jit_ticket_check_cfg *cfg,
		 const char *ticket, ticket_done_fn done, void *arg) JIT_WUR;

/* Pure helpers, exposed for tests. */

/* The URL: template with its one %s replaced by escaped (already URL-
 * escaped) and %% by %. Heap string. */
char *ticket_url(const char *template, const char *escaped);

/* True if ticket is, or holds between '/' or '\\', a "." or ".." path
 * segment: such a ticket is never sent (see ticket.c). */
bool ticket_has_dot_segment(const char *ticket);

/*
 * Judges an answer: HTTP status and body. JIT_OK if status is 2xx and body
 * is a JSON object whose field (dotted path) is the string value; else
 * JIT_EPOLICY with msg saying why (naming ticket).
 */
int ticket_judge(long status, const char *body, size_t len, const char *field,
		 const char *value, const char *ticket, char *msg, size_t msglen) JIT_WUR;

#endif
