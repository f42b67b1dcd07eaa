/*
 * report.h - reports from audit logs: who held which privilege, when, for
 * how long, on whose approval, and whether the log's hash chain held.
 *
 * A pure aggregation over a stream of parsed audit events, in log order:
 *
 *   struct report *r = report_new(&opts);
 *   for each line:  report_add(r, parsed_object)  (or report_unreadable(r))
 *   json_t *res = report_result(r, &chain);       the JSON form (docs/audit-log.md)
 *   report_render(res, REPORT_HTML, stdout);      or TEXT, CSV, JSON
 *
 * A grant whose granted line is not among the lines fed (it is in an older
 * file) is still reported from any later line about it, even one after the
 * period, with start_known false and its created_at as start; one with no
 * line at all cannot be. The result's input.complete is true only when no
 * such grant can exist: the chain given starts at seq 1 and verified, and
 * every grant reported had its granted line read (docs/audit-log.md).
 *
 * Memory does not grow with the input: besides fixed-size histograms (for
 * medians) it holds one small record per grant still open, one counter row
 * per distinct group/user/approver/client (at most REPORT_NAMES_MAX each,
 * of which at most REPORT_REFUSED_NAMES_MAX made by refused lines, the rest
 * under "(other)"), at most REPORT_TIMELINE_MAX timeline bars (each with
 * the grant's ticket, reason, requester, approver and the approvers of its
 * extensions, at most REPORT_EXT_APPROVERS_MAX of them), and the ids of
 * the last REPORT_ENDED_MAX grants that ended (about 2.75 MiB, allocated
 * at the first final line). Each string field is cut to
 * REPORT_FIELD_MAX bytes, so a line of megabytes costs no more than others.
 */
#ifndef JITD_REPORT_H
#define JITD_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "err.h"

#define REPORT_NAMES_MAX 10000
#define REPORT_FIELD_MAX 4096 /* bytes of a line's string field kept (longer ones cut) */
#define REPORT_REFUSED_NAMES_MAX 1000 /* of those, made by refused lines */
#define REPORT_TIMELINE_MAX 2000
/* Per grant: the distinct approvers of its extensions kept (the others are
 * counted), and the bytes they may take together. */
#define REPORT_EXT_APPROVERS_MAX 16
#define REPORT_EXT_APPROVERS_BYTES REPORT_FIELD_MAX
/* A final line of a grant among the last REPORT_ENDED_MAX that ended is a
 * repeat (jitd writes it again after a crash before the final commit, and
 * retries that end at once on restart) and is ignored; a repeat further
 * back would be counted again. A power of two. */
#define REPORT_ENDED_MAX 65536

struct report_opts {
	bool has_since, has_until;
	int64_t since, until;   /* the period is [since, until) (epoch seconds) */
	int64_t generated_at;   /* shown in the report; 0: not shown. A period that
				 * ends after it is not over: grants still open are
				 * counted held up to generated_at, not to until */
};

/* What verifying the hash chain of the same lines found. */
struct report_chain {
	bool verified;          /* every line continued the chain */
	int64_t lines, bad_lines;
	int64_t torn_lines;     /* lines torn by a crash, each recorded by jitd (not bad) */
	int64_t first_seq, last_seq;
	const char *last_hash;  /* "" if none */
	const char *first_error; /* "FILE:LINE: why", or NULL */
	json_t *files;          /* array of file names read (borrowed), or NULL */
};

struct report;
struct report *report_new(const struct report_opts *o);
/* Feeds one audit line parsed as a JSON object (borrowed). Lines must come
 * in log order (oldest file first). Objects without a valid ts/event count
 * as unreadable. */
void report_add(struct report *r, json_t *ev);
/* Counts a line that is not a JSON object. */
void report_unreadable(struct report *r);
/* The summary as a new JSON object (see docs/audit-log.md, "Reports"). */
json_t *report_result(struct report *r, const struct report_chain *chain);
void report_free(struct report *r); /* NULL-safe */

enum report_format { REPORT_TEXT, REPORT_CSV, REPORT_JSON, REPORT_HTML };
/* "text" | "csv" | "json" | "html"; JIT_EBADREQ otherwise. */
int report_format_parse(const char *s, enum report_format *out) JIT_WUR;
/* Writes result (from report_result) in format f. JIT_EIO if out fails. */
int report_render(json_t *result, enum report_format f, FILE *out) JIT_WUR;

/*
 * Parses a time for --since / --until: "YYYY-MM-DD" (midnight UTC) or
 * "YYYY-MM-DDTHH:MM[:SS]" followed by "Z" or "+HH:MM"/"-HH:MM".
 * JIT_EBADREQ if it is not one of those.
 */
int report_parse_time(const char *s, int64_t *out) JIT_WUR;

#endif
