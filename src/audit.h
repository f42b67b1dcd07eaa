/*
 * audit.h - the audit log: evidence for auditors, written only here.
 *
 * One JSON object per line (format in docs/audit-log.md). Each line carries
 * "ts" (RFC 3339 UTC), "seq" (1, 2, ... continuing across restarts and
 * rotation), "event", the event's fields, and last "prev" and "hash": the
 * SHA-256 (libcrypto) of the previous line's hash and this line's content,
 * so that an edit, removal, insertion or reordering is detectable.
 * audit_write() returns only once the line is on disk (fdatasync), so the
 * caller may then answer the client. Thread-safe.
 */
#ifndef JITD_AUDIT_H
#define JITD_AUDIT_H

#include <jansson.h>
#include "err.h"

struct audit;

/* Opens path for appending (creating it 0600), and reads its last line to
 * continue the sequence and the hash chain. */
int audit_open(const char *path, struct audit **out) JIT_WUR;
/* Reopens the same path (after logrotate moved the file); the chain goes on. */
int audit_reopen(struct audit *a) JIT_WUR;
void audit_close(struct audit *a); /* NULL-safe */

/*
 * Appends one event. fields: a JSON object (may be NULL) whose members are
 * copied into the line after ts/seq/event; a reference is NOT stolen.
 * JIT_EIO if the line could not be written durably.
 */
int audit_write(struct audit *a, const char *event, json_t *fields) JIT_WUR;

/*
 * Checks the chain of a sequence of audit lines (one file or several in
 * order). Feed lines with audit_verify_line(); first_bad gets the 1-based
 * line number of the first line that breaks the chain.
 */
struct audit_verifier;
struct audit_verifier *audit_verifier_new(void);
/* JIT_OK if the line continues the chain; JIT_EBADREQ and a message otherwise. */
int audit_verify_line(struct audit_verifier *v, const char *line, size_t len,
		      char *msg, size_t msglen) JIT_WUR;
void audit_verifier_free(struct audit_verifier *v);

#endif
