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
 *
 * The chain head (seq and hash of the last line written) is also kept in a
 * small file (head_path, in state_dir): a restart that finds the log empty
 * or missing (rotated away before jitd wrote to the new file) continues the
 * chain from there instead of starting a new one.
 *
 * Usage: audit_open(); optionally audit_set_observer() (notifications),
 * audit_set_syslog() and audit_start_head_flusher(); audit_write() from any
 * thread; audit_reopen() after logrotate; audit_close(). Readers: audit_verifier_*() checks lines of one
 * or more files in order.
 */
#ifndef JITD_AUDIT_H
#define JITD_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "err.h"

#define AUDIT_HASH_HEX 64

struct audit;

/*
 * Opens path for appending (creating it 0600) and continues the sequence
 * and the hash chain from the last line of the file, or from the chain head
 * stored in head_path when the file is empty or missing (head_path may be
 * NULL: no head file). If the head is ahead of the file's last line, lines
 * were removed from the end of the file: that is logged, and the chain
 * continues from the head so that the gap shows when the log is verified.
 */
int audit_open(const char *path, const char *head_path, struct audit **out) JIT_WUR;
/*
 * Starts a thread that makes the chain head durable (fdatasync) after
 * audit_write() has returned, instead of before: a writer then waits for
 * one flush (its line) instead of two, and the head's flushes are shared
 * (at most one every 2 ms). The head is still written after its lines are
 * on disk, so a crash can leave it behind the file (harmless: the file wins
 * at the next start), never ahead. Call it once the process has its final
 * credentials (jitd: after dropping root); audit_close() stops the thread
 * after its last flush. No-op without a head file.
 */
int audit_start_head_flusher(struct audit *a) JIT_WUR;
/* seq of the chain's last line: where audit_open() found the chain (the
 * log, the rotated file or the head file), then each line written; 0 if
 * the chain has no line yet (a log that never had one). Thread-safe. */
int64_t audit_last_seq(struct audit *a);
/* Reopens the same path (after logrotate moved the file); the chain goes on. */
int audit_reopen(struct audit *a) JIT_WUR;
void audit_close(struct audit *a); /* NULL-safe */

/*
 * Called after each line is durable, one call at a time and in seq order
 * (each writer waits for its turn): it must not block and must not call
 * audit_write(). event is
 * the event name, rec the line as an object (ts, seq, event and the fields;
 * borrowed: json_incref it to keep it), line the bytes written without '\n'.
 */
typedef void (*audit_observer_fn)(void *arg, const char *event, json_t *rec, const char *line,
				  size_t len);
void audit_set_observer(struct audit *a, audit_observer_fn fn, void *arg);

/* Mirrors every line to syslog(3) with facility (LOG_AUTHPRIV, ...) and
 * priority LOG_NOTICE when on. May be called again after a reload. */
void audit_set_syslog(struct audit *a, bool on, int facility);

/*
 * A JSON string of s for an audit field (s not NULL): s itself when it is
 * valid UTF-8, else a copy with each byte of invalid UTF-8 (a multi-byte
 * character cut by a bounded format, a directory's diagnostic in another
 * encoding) and each control character replaced by '?', so the field is
 * never dropped from the line. New reference.
 */
json_t *audit_text(const char *s);

/*
 * Appends one event. fields: a JSON object (may be NULL) whose members are
 * copied into the line after ts/seq/event; a reference is NOT stolen.
 * JIT_EIO if the line could not be written durably; a line whose write
 * failed part-way is cut off the file again (or, if that fails, the next
 * line starts with a newline), so no later line is appended to it.
 */
int audit_write(struct audit *a, const char *event, json_t *fields) JIT_WUR;

/*
 * Writes n lines (events[i] with fields[i]) one after the other in the
 * chain, with one wait for the disk for all of them: JIT_OK once every one
 * is on disk. On an error, the lines written before it stay (and are
 * synced); the caller treats all n as not recorded.
 */
int audit_write_many(struct audit *a, size_t n, const char *const events[],
		     json_t *const fields[]) JIT_WUR;

/*
 * Checks the chain of a sequence of audit lines (one file or several, oldest
 * first). Feed every line to audit_verify_line(); the first line given is
 * trusted as the start (seq 1 must then carry a prev of zeros). After a bad
 * line the verifier resynchronises on that line's own seq and hash, so each
 * break is reported once: an edited line is reported itself, a removal,
 * insertion or reordering at the first line whose prev or seq does not
 * follow.
 */
struct audit_verifier;
struct audit_verifier *audit_verifier_new(void);
/*
 * JIT_OK if the line continues the chain; JIT_EBADREQ and a message
 * ("seq 7: ...", without a location: the caller knows file and line) if
 * not; AUDIT_HELD for a line without a chain: its verdict waits for the
 * next line. jitd ends a line torn by a crash at its next start and writes
 * a `torn_line` record (AUDIT_TORN_EVENT, with the torn line's length and
 * SHA-256) right after it, chained to the line before it; that record
 * accounts for the held line, which then counts as torn, not bad. A
 * torn_line record after any other line is bad (its torn line was removed),
 * except as the first line given (its torn line is in an older file).
 * After every call, audit_verifier_take_held() tells whether the held line
 * turned out bad; after the last line, audit_verify_end() does. len may
 * include the trailing '\n'.
 */
#define AUDIT_HELD 1
#define AUDIT_TORN_EVENT "torn_line"
int audit_verify_line(struct audit_verifier *v, const char *line, size_t len,
		      char *msg, size_t msglen) JIT_WUR;
/* A line the caller could not read (too long, or a damaged .gz): a held
 * line before it is bad (then audit_verifier_take_held()). The caller
 * reports the unreadable line itself; it is not counted as bad here. */
void audit_verifier_unreadable(struct audit_verifier *v);
/* JIT_EBADREQ and why, once, if the held line was judged bad by the call
 * before (no torn_line record of it followed); JIT_OK otherwise. */
int audit_verifier_take_held(struct audit_verifier *v, char *msg, size_t msglen) JIT_WUR;
/* The end of the lines: a line still held is bad (JIT_EBADREQ and why),
 * else as audit_verifier_take_held(). */
int audit_verify_end(struct audit_verifier *v, char *msg, size_t msglen) JIT_WUR;
/* Lines fed, lines that broke the chain, and the seq/hash of the last line
 * that carried a readable chain (0 and "" if none). */
void audit_verifier_state(const struct audit_verifier *v, int64_t *lines, int64_t *bad,
			  int64_t *first_seq, int64_t *last_seq,
			  char last_hash[AUDIT_HASH_HEX + 1]);
/* Torn lines accounted for by a torn_line record. */
int64_t audit_verifier_torn(const struct audit_verifier *v);
/* Whether a line without a chain is held, its verdict still to come. */
bool audit_verifier_holds(const struct audit_verifier *v);
void audit_verifier_free(struct audit_verifier *v); /* NULL-safe */

/* "authpriv" -> LOG_AUTHPRIV, ...; JIT_ECONFIG if unknown. The names are
 * auth, authpriv, daemon, user, local0 ... local7. */
int audit_syslog_facility(const char *name, int *out) JIT_WUR;

#endif
