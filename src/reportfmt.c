/*
 * reportfmt.c - renders a report (the JSON object report_result() built)
 * as text, CSV, JSON or one self-contained HTML page with an inline SVG
 * timeline. Trust: every name in a report comes from the audit log, which
 * any requester influences (user names, reasons), so text, CSV and HTML
 * replace control characters (C1 too) and invalid UTF-8, JSON escapes C1
 * and DEL (termsafe.h), CSV cells that a spreadsheet would run as a formula
 * are quoted with a leading ', and HTML escapes everything and forbids any
 * network access with a Content-Security-Policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"
#include "report.h"
#include "termsafe.h"
#include "util.h"

#define HTML_ROWS_MAX 60 /* timeline rows (user, group) drawn */

static const char *const metric_cols[] = { "granted", "expired", "completed", "revoked",
					   "failed", "refused", "held_seconds", NULL };
static const char *const metric_titles[] = { "GRANTED", "EXPIRED", "COMPLETED", "REVOKED",
					     "FAILED", "REFUSED", "HELD", NULL };
static const char *const dim_keys[] = { "by_group", "by_user", "by_approver", "by_client", NULL };
static const char *const dim_titles[] = { "By group", "By user", "By approver", "By client", NULL };
static const char *const total_keys[] = { "granted", "refused", "expired", "completed", "revoked",
					  "revoke_failures", "revoked_forced", "ended_membership_kept",
					  "active_at_end",
					  "failed", "extended", "expiring_soon", "drift",
					  "started_before_input", NULL };
/* After a start taken from created_at because the granted line was not read. */
#define START_NOT_READ " (created_at: granted line not read)"
#define START_UNCERTAIN " (created_at: add unconfirmed, may have held the group)"
#define START_CORRECTED " (created_at: moved by a clock correction)"

/* What follows the start of a bar or an active grant: why it is created_at,
 * or nothing when it is the granted line's time. */
static const char *start_note(json_t *o)
{
	if (json_is_true(json_object_get(o, "membership_uncertain")))
		return START_UNCERTAIN;
	if (json_is_true(json_object_get(o, "start_corrected")))
		return START_CORRECTED;
	return json_is_false(json_object_get(o, "start_known")) ? START_NOT_READ : "";
}
/* The period ends after the report was made. */
#define NOT_OVER "the period is not over: it ends after this report was made, and grants " \
		 "still active are counted as held up to then"

/* The per-grant table of the text and HTML forms (timeline bars). */
static const char *const grant_titles[] = { "GRANT", "USER", "GROUP", "START", "END", "ENDED",
					    "TICKET", "APPROVED BY" };
#define GRANT_COLS (sizeof(grant_titles) / sizeof(grant_titles[0]))
#define GRANT_COL_MAX 40 /* text: a longer cell is written whole, and its row goes out of line */

/* ---- shared ---- */

static const char *sget(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int64_t iget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Display text of a scalar: durations for *_seconds keys. */
static char *scalar_text(const char *key, json_t *v)
{
	char d[64];
	if (json_is_string(v))
		return termsafe_dup(json_string_value(v), 0);
	if (json_is_integer(v)) {
		int64_t n = json_integer_value(v);
		if (key && strstr(key, "seconds")) {
			duration_format(n, d, sizeof(d));
			return xstrdup(d);
		}
		return xasprintf("%lld", (long long)n);
	}
	if (json_is_real(v)) {
		double x = json_real_value(v);
		if (key && strstr(key, "seconds")) {
			/* a median between two seconds: "30m1.5s", "1h0.5s" */
			size_t n;
			duration_format((int64_t)x, d, sizeof(d));
			n = strlen(d);
			if (x - (double)(int64_t)x < 0.5)
				return xstrdup(d);
			if (n > 0 && d[n - 1] == 's')
				return xasprintf("%.*s.5s", (int)(n - 1), d);
			return xasprintf("%s0.5s", d);
		}
		return xasprintf("%.1f", x);
	}
	if (json_is_boolean(v))
		return xstrdup(json_is_true(v) ? "yes" : "no");
	return xstrdup("-");
}

/*
 * What the input covers, as sentences (at most COVERAGE_MAX, each to be
 * freed): whether every grant's granted line was read, and if not, which
 * grants the report may lack or shows with a start it could not read.
 * Returns the number of sentences; the first starts with "complete" or
 * "INCOMPLETE".
 */
#define COVERAGE_MAX 6
static size_t coverage_notes(json_t *res, char *n[COVERAGE_MAX])
{
	json_t *in = json_object_get(res, "input"), *ch = json_object_get(res, "chain");
	int64_t first = iget(ch, "first_seq");
	int64_t before = iget(json_object_get(res, "totals"), "started_before_input");
	size_t k = 0;
	if (json_is_true(json_object_get(in, "complete"))) {
		n[k++] = xstrdup("complete: the files read begin at the log's first line (seq 1).");
		return k;
	}
	if (first == 0) {
		n[k++] = xstrdup("INCOMPLETE: no audit line was read.");
	} else if (first != 1) {
		n[k++] = xasprintf(
			"INCOMPLETE: the files read begin at seq %lld (%s), not at seq 1.",
			(long long)first, sget(in, "first_line_at"));
		n[k++] = xstrdup("A grant made before then that has no line in these files is not "
				 "in this report:");
		n[k++] = xasprintf("it would still be open at the last line read (%s); jitctl list "
				   "shows the open grants.",
				   sget(in, "last_event"));
		/* both RFC 3339 in UTC, as jitd writes them: they compare as text */
		const char *since = sget(json_object_get(res, "period"), "since");
		const char *first_at = sget(in, "first_line_at");
		if (*since && *first_at && strcmp(since, first_at) < 0)
			n[k++] = xasprintf("The period begins at %s, before the first line read: a "
					   "grant made and ended before %s is not in this report "
					   "at all; report this period from older files.",
					   since, first_at);
	}
	if (!json_is_true(json_object_get(ch, "verified"))) {
		n[k] = xasprintf("%sthe hash chain did not verify: lines may be missing.",
				 k ? "And " : "INCOMPLETE: ");
		k++;
	}
	if (before > 0) {
		n[k] = xasprintf("%s%lld grant(s) here began before the files read: their start "
				 "is the created_at of a later line.",
				 k ? "" : "INCOMPLETE: ", (long long)before);
		k++;
	}
	return k;
}

/* How bar b ended: its end_event, and whether by force or leaving the
 * membership (it predated the grant). */
static char *ended_text(json_t *b)
{
	return xasprintf("%s%s%s", sget(b, "end_event"),
			 json_is_true(json_object_get(b, "forced")) ? " (forced)" : "",
			 json_is_true(json_object_get(b, "membership_kept")) ? " (membership kept)"
									      : "");
}

/* The cells of bar b in the per-grant table, unescaped (each to be freed). */
static void grant_cells(json_t *b, char *c[GRANT_COLS])
{
	bool active = strcmp(sget(b, "end_event"), "active") == 0;
	c[0] = xstrdup(sget(b, "grant_id"));
	c[1] = xstrdup(sget(b, "user"));
	c[2] = xstrdup(sget(b, "group"));
	c[3] = xstrdup(sget(b, "start"));
	c[4] = xstrdup(active ? "-" : sget(b, "end"));
	c[5] = ended_text(b);
	c[6] = xstrdup(*sget(b, "ticket") ? sget(b, "ticket") : "-");
	c[7] = xstrdup(*sget(b, "approved_by") ? sget(b, "approved_by") : "-");
}

static void free_cells(char *c[GRANT_COLS])
{
	for (size_t i = 0; i < GRANT_COLS; i++)
		free(c[i]);
}

/* ---- text ---- */

/* A copy safe for a terminal: audit log fields are anyone's text. */
static char *clean(const char *s)
{
	return termsafe_dup(s, 0);
}

static size_t width_of(const char *s)
{
	size_t w = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			w++;
	return w;
}

static void pad(FILE *out, const char *s, size_t w, bool right)
{
	size_t n = width_of(s);
	if (right)
		for (; n < w; n++)
			fputc(' ', out);
	fputs(s, out);
	if (!right)
		for (; n < w; n++)
			fputc(' ', out);
}

static void text_stats(FILE *out, const char *title, json_t *st)
{
	char *m = scalar_text("median_seconds", json_object_get(st, "median_seconds"));
	char *x = scalar_text("max_seconds", json_object_get(st, "max_seconds"));
	char *t = scalar_text("total_seconds", json_object_get(st, "total_seconds"));
	fprintf(out, "  %-24s %6lld   median %-10s max %-10s total %s\n", title,
		(long long)iget(st, "count"), m, x, t);
	free(m);
	free(x);
	free(t);
}

static void text_dim(FILE *out, const char *title, json_t *dim)
{
	size_t ncol = 0, w[8];
	const char *name;
	json_t *row;
	while (metric_cols[ncol])
		ncol++;
	w[0] = 4;
	for (size_t c = 0; c < ncol; c++)
		w[c + 1] = strlen(metric_titles[c]);
	json_object_foreach(dim, name, row) {
		char *cn = clean(name);
		if (width_of(cn) > w[0])
			w[0] = width_of(cn);
		free(cn);
		for (size_t c = 0; c < ncol; c++) {
			char *t = scalar_text(metric_cols[c], json_object_get(row, metric_cols[c]));
			if (strlen(t) > w[c + 1])
				w[c + 1] = strlen(t);
			free(t);
		}
	}
	fprintf(out, "\n%s\n  ", title);
	pad(out, "NAME", w[0], false);
	for (size_t c = 0; c < ncol; c++) {
		fputs("  ", out);
		pad(out, metric_titles[c], w[c + 1], true);
	}
	fputc('\n', out);
	if (json_object_size(dim) == 0)
		fputs("  (none)\n", out);
	json_object_foreach(dim, name, row) {
		char *cn = clean(name);
		fputs("  ", out);
		pad(out, cn, w[0], false);
		free(cn);
		for (size_t c = 0; c < ncol; c++) {
			char *t = scalar_text(metric_cols[c], json_object_get(row, metric_cols[c]));
			fputs("  ", out);
			pad(out, t, w[c + 1], true);
			free(t);
		}
		fputc('\n', out);
	}
}

static void text_counts(FILE *out, const char *title, json_t *obj)
{
	const char *k;
	json_t *v;
	fprintf(out, "\n%s\n", title);
	if (json_object_size(obj) == 0)
		fputs("  (none)\n", out);
	json_object_foreach(obj, k, v) {
		char *c = clean(k);
		fprintf(out, "  %-32s %6lld\n", c, (long long)json_integer_value(v));
		free(c);
	}
}

/* One part of text_grant_notes: label and v cleaned, after *sep; none for
 * an empty v. */
static void text_part(FILE *out, const char **sep, const char *label, const char *v)
{
	if (!*v)
		return;
	char *c = clean(v);
	fprintf(out, "%s%s%s", *sep, label, c);
	free(c);
	*sep = "; ";
}

/* Under a grant's row: what else is known of it (each part cleaned). */
static void text_grant_notes(FILE *out, json_t *b)
{
	static const char *const first = "      ";
	const char *sep = first;
	json_t *ext = json_object_get(b, "extension_approved_by"), *x;
	size_t i;
	char *c;
	if (*start_note(b)) {
		fprintf(out, "%sstart%s", sep, start_note(b));
		sep = "; ";
	}
	text_part(out, &sep, "requested by ", sget(b, "requested_by"));
	if (iget(b, "extensions") > 0) {
		fprintf(out, "%sextended %lld time(s)", sep, (long long)iget(b, "extensions"));
		json_array_foreach(ext, i, x) {
			c = clean(json_string_value(x));
			fprintf(out, "%s%s", i ? ", " : ", approved by ", c);
			free(c);
		}
		if (iget(b, "extension_approvals_omitted") > 0)
			fprintf(out, " (%lld approval(s) by others not listed)",
				(long long)iget(b, "extension_approvals_omitted"));
		if (iget(b, "extensions_without_approver") > 0)
			fprintf(out, ", %lld without an approver",
				(long long)iget(b, "extensions_without_approver"));
		sep = "; ";
	}
	text_part(out, &sep, "reason: ", sget(b, "reason"));
	if (sep != first)
		fputc('\n', out);
}

/* The grants of the timeline, one row each: who held what, when, how it
 * ended, on which ticket and whose approval. */
static void text_grants(FILE *out, json_t *res)
{
	json_t *bars = json_object_get(res, "timeline"), *b;
	size_t i, w[GRANT_COLS];
	char *c[GRANT_COLS];
	for (size_t k = 0; k < GRANT_COLS; k++)
		w[k] = strlen(grant_titles[k]);
	json_array_foreach(bars, i, b) {
		grant_cells(b, c);
		for (size_t k = 0; k < GRANT_COLS; k++) {
			char *t = clean(c[k]);
			size_t n = width_of(t);
			if (n > GRANT_COL_MAX)
				n = GRANT_COL_MAX;
			if (n > w[k])
				w[k] = n;
			free(t);
		}
		free_cells(c);
	}
	fprintf(out, "\nGrants in the period (%zu)\n", json_array_size(bars));
	if (iget(res, "timeline_omitted") > 0)
		fprintf(out, "  (and %lld more, not listed: a report lists at most %d; the tables "
			"above count every grant)\n", (long long)iget(res, "timeline_omitted"),
			REPORT_TIMELINE_MAX);
	if (json_array_size(bars) == 0) {
		fputs("  (none)\n", out);
		return;
	}
	for (size_t k = 0; k < GRANT_COLS; k++) {
		fputs("  ", out);
		pad(out, grant_titles[k], k + 1 < GRANT_COLS ? w[k] : 0, false);
	}
	fputc('\n', out);
	json_array_foreach(bars, i, b) {
		grant_cells(b, c);
		for (size_t k = 0; k < GRANT_COLS; k++) {
			char *t = clean(c[k]);
			fputs("  ", out);
			pad(out, t, k + 1 < GRANT_COLS ? w[k] : 0, false);
			free(t);
		}
		fputc('\n', out);
		free_cells(c);
		text_grant_notes(out, b);
	}
}

static void render_text(json_t *res, FILE *out)
{
	json_t *p = json_object_get(res, "period"), *in = json_object_get(res, "input");
	json_t *ch = json_object_get(res, "chain"), *t = json_object_get(res, "totals");
	json_t *files = json_object_get(in, "files"), *f;
	size_t i;
	fputs("jitd access report\n", out);
	fprintf(out, "period      %s .. %s\n", sget(p, "since")[0] ? sget(p, "since") : "-",
		sget(p, "until")[0] ? sget(p, "until") : "-");
	if (json_object_get(p, "generated_at"))
		fprintf(out, "generated   %s\n", sget(p, "generated_at"));
	if (json_is_false(json_object_get(res, "period_complete")))
		fprintf(out, "            NOT OVER: %s (%s)\n", NOT_OVER, sget(p, "generated_at"));
	fprintf(out, "input       %zu file(s), %lld lines (%lld unreadable), %lld events in the "
		"period\n", json_array_size(files), (long long)iget(in, "lines"),
		(long long)iget(in, "unreadable_lines"), (long long)iget(in, "events_in_period"));
	json_array_foreach(files, i, f) {
		char *c = clean(json_string_value(f));
		fprintf(out, "            %s\n", c);
		free(c);
	}
	if (json_is_true(json_object_get(ch, "verified"))) {
		fprintf(out, "hash chain  verified: seq %lld .. %lld, last hash %s\n",
			(long long)iget(ch, "first_seq"), (long long)iget(ch, "last_seq"),
			sget(ch, "last_hash"));
		if (iget(ch, "torn_lines") > 0)
			fprintf(out, "            %lld torn line(s), each recorded by jitd at its "
				"next start (a crash in the middle of a write)\n",
				(long long)iget(ch, "torn_lines"));
	} else {
		char *c = clean(sget(ch, "first_error"));
		fprintf(out, "hash chain  NOT VERIFIED: %lld bad line(s); first: %s\n",
			(long long)iget(ch, "bad_lines"), c);
		free(c);
	}
	char *cov[COVERAGE_MAX];
	size_t ncov = coverage_notes(res, cov);
	for (i = 0; i < ncov; i++) {
		fprintf(out, "%s%s\n", i ? "            " : "coverage    ", cov[i]);
		free(cov[i]);
	}
	fputs("\nTotals\n", out);
	for (i = 0; total_keys[i]; i++)
		fprintf(out, "  %-24s %6lld\n", total_keys[i], (long long)iget(t, total_keys[i]));
	for (i = 0; dim_keys[i]; i++)
		text_dim(out, dim_titles[i], json_object_get(res, dim_keys[i]));
	json_t *d = json_object_get(res, "durations");
	fputs("\nDurations (grants that ended in the period)\n", out);
	text_stats(out, "requested", json_object_get(d, "requested"));
	text_stats(out, "actual", json_object_get(d, "actual"));
	fputs("\nEarly completions (time given back)\n", out);
	text_stats(out, "completed early", json_object_get(res, "early_completions"));
	fputs("\nRevocation lag (expires_at -> membership removed)\n", out);
	text_stats(out, "expired", json_object_get(res, "revocation_lag"));
	text_counts(out, "Refusals by reason", json_object_get(res, "refusals_by_reason"));
	text_counts(out, "Drift events by group",
		    json_object_get(json_object_get(res, "drift"), "by_group"));
	json_t *act = json_object_get(res, "active_at_end"), *a;
	if (json_is_false(json_object_get(res, "period_complete")))
		fprintf(out, "\nActive when the report was made: the period is not over (%zu)\n",
			json_array_size(act));
	else
		fprintf(out, "\nActive at the end of the period (%zu)\n", json_array_size(act));
	if (json_array_size(act) == 0)
		fputs("  (none)\n", out);
	json_array_foreach(act, i, a) {
		char *id = clean(sget(a, "grant_id"));
		char *u = clean(sget(a, "user")), *g = clean(sget(a, "group"));
		char *ap = clean(sget(a, "approved_by")), *tk = clean(sget(a, "ticket"));
		fprintf(out, "  %s  %s -> %s  since %s%s  until %s  approved by %s  ticket %s\n",
			id, u, g, sget(a, "granted_at"),
			start_note(a),
			sget(a, "expires_at"), *ap ? ap : "-", *tk ? tk : "-");
		free(id);
		free(u);
		free(g);
		free(ap);
		free(tk);
	}
	text_grants(out, res);
}

/* ---- CSV: one row per number, section,name,metric,value ---- */

/* No value of a report needs a control character (requests and names
 * cannot hold one): a cell gets none, so each row stays one line and a
 * CSV file shown on a terminal cannot drive it. */
static bool formula_char(char ch)
{
	return ch != '\0' && strchr("=+-@", ch) != NULL;
}

/* A cell's text; one a spreadsheet would run as a formula gets a leading
 * '. Robustness: so does each part after a ';' that would, since many
 * spreadsheets split a CSV file on ';' where the locale uses a decimal
 * comma ("x;=HYPERLINK(...)" is two cells there, the second a formula). */
static void csv_cell(FILE *out, const char *text)
{
	char *c = termsafe_dup(text, 0);
	bool quote = strpbrk(c, ",;\"") != NULL;
	bool formula = formula_char(c[strspn(c, " ")]);
	if (quote || formula)
		fputc('"', out);
	if (formula)
		fputc('\'', out);
	for (const char *s = c; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
		if (*s == ';' && formula_char(s[1 + strspn(s + 1, " \"")]))
			fputc('\'', out); /* "; =x" and ";\"=x" too: trimmed, unquoted */
	}
	if (quote || formula)
		fputc('"', out);
	free(c);
}

static void csv_row(FILE *out, const char *sec, const char *name, const char *metric, json_t *v)
{
	csv_cell(out, sec);
	fputc(',', out);
	csv_cell(out, name);
	fputc(',', out);
	csv_cell(out, metric);
	fputc(',', out);
	if (json_is_string(v)) {
		csv_cell(out, json_string_value(v));
	} else if (!json_is_null(v)) {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		fputs(s ? s : "", out);
		free(s);
	}
	fputs("\r\n", out);
}

/* Leaves are rows; name is the path between the section and the metric. */
static void csv_walk(FILE *out, const char *sec, const char *name, json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x) {
			if (json_is_object(x) || json_is_array(x)) {
				char *n = *name ? xasprintf("%s.%s", name, k) : xstrdup(k);
				csv_walk(out, sec, n, x);
				free(n);
			} else {
				csv_row(out, sec, name, k, x);
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			const char *id = sget(x, "grant_id");
			char *n = *id ? xstrdup(id) : xasprintf("%s%s%zu", name, *name ? "." : "", i + 1);
			if (json_is_object(x)) {
				csv_walk(out, sec, n, x);
			} else {
				char idx[32];
				snprintf(idx, sizeof(idx), "%zu", i + 1);
				csv_row(out, sec, name, idx, x);
			}
			free(n);
		}
	}
}

static void render_csv(json_t *res, FILE *out)
{
	const char *k;
	json_t *v;
	fputs("section,name,metric,value\r\n", out);
	json_object_foreach(res, k, v) {
		if (json_is_object(v) || json_is_array(v))
			csv_walk(out, k, "", v);
		else
			csv_row(out, k, "", k, v);
	}
}

/* ---- HTML ---- */

/* Escaped text, without controls (HTML forbids C1 and most of C0, and the
 * file may be shown on a terminal); white space stays white space. */
static void h(FILE *out, const char *text)
{
	char *c = termsafe_dup(text, TERMSAFE_KEEP_NL | TERMSAFE_KEEP_TAB);
	for (const char *s = c; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fputc(*s, out);
		}
	}
	free(c);
}

static const char html_head[] =
	"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	"style-src 'unsafe-inline'\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<style>\n"
	"body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#111;background:#fff;"
	"margin:24px;font-size:14px}\n"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;"
	"border-bottom:1px solid #999}\n"
	".meta{color:#333}.ok{color:#0a6b1f;font-weight:bold}.bad{color:#b00020;font-weight:bold}\n"
	".tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{border:1px solid #888;border-radius:4px;"
	"padding:6px 10px;min-width:92px}.tile b{display:block;font-size:20px}\n"
	"table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #aaa;padding:2px 8px;"
	"text-align:right}th{background:#eee}td.n,th.n{text-align:left}\n"
	"svg text{font-family:'DejaVu Sans',Arial,sans-serif;font-size:11px;fill:#111}\n"
	".legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px}\n"
	"@media print{body{margin:0;font-size:10pt}h2,table,svg{page-break-inside:avoid}"
	"*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}\n"
	"</style>\n";

static const struct {
	const char *kind, *color, *label;
} kinds[] = {
	{ "expired", "#3b6fb6", "expired" },   { "completed", "#2e8b57", "completed" },
	{ "revoked", "#c0392b", "revoked" },   { "failed", "#d68910", "failed" },
	{ "active", "#8e44ad", "still active" },
	{ NULL, "#777", "other" },
};

static const char *kind_color(const char *k)
{
	size_t i = 0;
	while (kinds[i].kind && strcmp(kinds[i].kind, k) != 0)
		i++;
	return kinds[i].color;
}

static void html_dim(FILE *out, const char *title, json_t *dim)
{
	const char *name;
	json_t *row;
	fprintf(out, "<h2>%s</h2>\n<table><tr><th class=\"n\">name</th>", title);
	for (size_t c = 0; metric_cols[c]; c++)
		fprintf(out, "<th>%s</th>", strcmp(metric_cols[c], "held_seconds") ? metric_cols[c]
										  : "held");
	fputs("</tr>\n", out);
	json_object_foreach(dim, name, row) {
		fputs("<tr><td class=\"n\">", out);
		h(out, name);
		fputs("</td>", out);
		for (size_t c = 0; metric_cols[c]; c++) {
			char *t = scalar_text(metric_cols[c], json_object_get(row, metric_cols[c]));
			fputs("<td>", out);
			h(out, t);
			fputs("</td>", out);
			free(t);
		}
		fputs("</tr>\n", out);
	}
	if (json_object_size(dim) == 0)
		fputs("<tr><td class=\"n\" colspan=\"8\">none</td></tr>\n", out);
	fputs("</table>\n", out);
}

static void html_stats_row(FILE *out, const char *title, json_t *st)
{
	static const char *const k[] = { "count", "median_seconds", "max_seconds",
					 "total_seconds", NULL };
	fputs("<tr><td class=\"n\">", out);
	h(out, title);
	fputs("</td>", out);
	for (size_t i = 0; k[i]; i++) {
		char *t = scalar_text(k[i], json_object_get(st, k[i]));
		fputs("<td>", out);
		h(out, t);
		fputs("</td>", out);
		free(t);
	}
	fputs("</tr>\n", out);
}

static void html_counts(FILE *out, const char *title, json_t *obj)
{
	const char *k;
	json_t *v;
	fprintf(out, "<h2>%s</h2>\n<table><tr><th class=\"n\">name</th><th>count</th></tr>\n",
		title);
	json_object_foreach(obj, k, v) {
		fputs("<tr><td class=\"n\">", out);
		h(out, k);
		fprintf(out, "</td><td>%lld</td></tr>\n", (long long)json_integer_value(v));
	}
	if (json_object_size(obj) == 0)
		fputs("<tr><td class=\"n\" colspan=\"2\">none</td></tr>\n", out);
	fputs("</table>\n", out);
}

/* x axis ticks: a round step giving at most about 8 ticks. */
static int64_t tick_step(int64_t span)
{
	static const int64_t steps[] = { 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
					 86400, 7 * 86400, 30 * 86400 };
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (span / steps[i] <= 8)
			return steps[i];
	return 365 * 86400;
}

/* The timeline: one row per (user, group), one bar per grant. */
static void html_timeline(FILE *out, json_t *res, int64_t t0, int64_t t1)
{
	json_t *bars = json_object_get(res, "timeline"), *b, *rows = json_object();
	size_t i, nrows = 0, omitted = 0;
	const double left = 230, width = 900, rowh = 20, top = 24;
	if (t1 <= t0)
		t1 = t0 + 1;
	json_array_foreach(bars, i, b) {
		char *key = xasprintf("%s \xe2\x86\x92 %s", sget(b, "user"), sget(b, "group"));
		if (!json_object_get(rows, key) && nrows < HTML_ROWS_MAX)
			json_object_set_new(rows, key, json_integer((json_int_t)nrows++));
		free(key);
	}
	double hgt = top + rowh * (double)(nrows ? nrows : 1) + 24;
	fprintf(out, "<svg role=\"img\" aria-label=\"timeline\" width=\"100%%\" viewBox=\"0 0 %.0f "
		"%.0f\" preserveAspectRatio=\"xMinYMin meet\">\n", left + width + 20, hgt);
	int64_t step = tick_step(t1 - t0);
	for (int64_t t = (t0 / step + 1) * step; t < t1; t += step) {
		char ts[32];
		double x = left + width * (double)(t - t0) / (double)(t1 - t0);
		fmt_rfc3339(t, ts);
		ts[16] = '\0'; /* YYYY-MM-DDTHH:MM */
		fprintf(out, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ccc\"/>"
			"<text x=\"%.1f\" y=\"14\" text-anchor=\"middle\">%s</text>\n", x, top - 4, x,
			hgt - 20, x, step >= 86400 ? ts : ts + 11);
	}
	const char *key;
	json_t *idx;
	json_object_foreach(rows, key, idx) {
		double y = top + rowh * (double)json_integer_value(idx);
		fprintf(out, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, y + 14);
		h(out, key);
		fprintf(out, "</text><line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
			"stroke=\"#eee\"/>\n", left, y + rowh, left + width, y + rowh);
	}
	json_array_foreach(bars, i, b) {
		int64_t s = 0, e = 0;
		char *k = xasprintf("%s \xe2\x86\x92 %s", sget(b, "user"), sget(b, "group"));
		idx = json_object_get(rows, k);
		free(k);
		if (!idx || parse_rfc3339(sget(b, "start"), &s) != JIT_OK ||
		    parse_rfc3339(sget(b, "end"), &e) != JIT_OK) {
			omitted++;
			continue;
		}
		s = s < t0 ? t0 : s;
		e = e > t1 ? t1 : e;
		double x = left + width * (double)(s - t0) / (double)(t1 - t0);
		double w = width * (double)(e - s) / (double)(t1 - t0);
		double y = top + rowh * (double)json_integer_value(idx) + 3;
		fprintf(out, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" fill=\"%s\">"
			"<title>", x, y, w < 2 ? 2 : w, rowh - 6, kind_color(sget(b, "end_event")));
		h(out, sget(b, "grant_id"));
		fputs(": ", out);
		h(out, sget(b, "start"));
		fputs(start_note(b), out);
		fputs(" .. ", out);
		h(out, sget(b, "end"));
		fputs(" (", out);
		h(out, sget(b, "end_event"));
		fputs(")</title></rect>\n", out);
	}
	fputs("</svg>\n<p class=\"legend\">", out);
	for (i = 0; kinds[i].kind; i++)
		fprintf(out, "<span style=\"background:%s\"></span>%s", kinds[i].color, kinds[i].label);
	fputs("</p>\n", out);
	omitted += (size_t)iget(res, "timeline_omitted");
	if (omitted || nrows == HTML_ROWS_MAX)
		fprintf(out, "<p class=\"meta\">The timeline shows at most %d rows and %d grants; %zu "
			"grant(s) are not drawn (the tables count every grant).</p>\n",
			HTML_ROWS_MAX, REPORT_TIMELINE_MAX, omitted);
	json_decref(rows);
}

/* The grants of the timeline as a table, with all that is known of each. */
static void html_grants(FILE *out, json_t *res)
{
	static const char *const titles[] = { "grant", "user", "group", "start", "end", "ended",
					      "ticket", "approved by", "extensions approved by",
					      "requested by", "reason" };
	json_t *bars = json_object_get(res, "timeline"), *b, *x;
	char *c[GRANT_COLS];
	size_t i, j, ncol = sizeof(titles) / sizeof(titles[0]);
	_Static_assert(sizeof(titles) / sizeof(titles[0]) == GRANT_COLS + 3, "titles");
	fputs("<h2>Grants in the period</h2>\n<table><tr>", out);
	for (i = 0; i < ncol; i++)
		fprintf(out, "<th class=\"n\">%s</th>", titles[i]);
	fputs("</tr>\n", out);
	json_array_foreach(bars, i, b) {
		grant_cells(b, c);
		fputs("<tr>", out);
		for (j = 0; j < GRANT_COLS; j++) {
			fputs("<td class=\"n\">", out);
			h(out, c[j]);
			if (j == 3)
				fputs(start_note(b), out);
			fputs("</td>", out);
		}
		free_cells(c);
		fputs("<td class=\"n\">", out);
		json_array_foreach(json_object_get(b, "extension_approved_by"), j, x) {
			fputs(j ? ", " : "", out);
			h(out, json_string_value(x));
		}
		if (iget(b, "extensions") > 0)
			fprintf(out, "%s(%lld extension(s)", j ? " " : "",
				(long long)iget(b, "extensions"));
		if (iget(b, "extension_approvals_omitted") > 0)
			fprintf(out, "; %lld approval(s) by others not listed",
				(long long)iget(b, "extension_approvals_omitted"));
		if (iget(b, "extensions_without_approver") > 0)
			fprintf(out, "; %lld without an approver",
				(long long)iget(b, "extensions_without_approver"));
		if (iget(b, "extensions") > 0)
			fputs(")", out);
		fputs("</td><td class=\"n\">", out);
		h(out, sget(b, "requested_by"));
		fputs("</td><td class=\"n\">", out);
		h(out, sget(b, "reason"));
		fputs("</td></tr>\n", out);
	}
	if (json_array_size(bars) == 0)
		fprintf(out, "<tr><td class=\"n\" colspan=\"%zu\">none</td></tr>\n", ncol);
	fputs("</table>\n", out);
	if (iget(res, "timeline_omitted") > 0)
		fprintf(out, "<p class=\"meta\">%lld more grant(s) not listed: a report lists "
			"at most %d (the tables count every grant).</p>\n",
			(long long)iget(res, "timeline_omitted"), REPORT_TIMELINE_MAX);
}

static void html_summary(FILE *out, json_t *res)
{
	json_t *p = json_object_get(res, "period"), *in = json_object_get(res, "input");
	json_t *ch = json_object_get(res, "chain"), *t = json_object_get(res, "totals"), *f;
	size_t i;
	fputs("<title>jitd access report ", out);
	h(out, sget(p, "since"));
	fputs("</title>\n</head>\n<body>\n<h1>jitd access report</h1>\n<p class=\"meta\">Period ", out);
	h(out, sget(p, "since"));
	fputs(" .. ", out);
	h(out, sget(p, "until"));
	if (json_object_get(p, "generated_at")) {
		fputs(" &middot; generated ", out);
		h(out, sget(p, "generated_at"));
	}
	if (json_is_false(json_object_get(res, "period_complete")))
		fputs("<br><span class=\"bad\">NOT OVER</span>: " NOT_OVER, out);
	fprintf(out, "<br>Input: %lld lines (%lld unreadable), %lld events in the period, from ",
		(long long)iget(in, "lines"), (long long)iget(in, "unreadable_lines"),
		(long long)iget(in, "events_in_period"));
	json_array_foreach(json_object_get(in, "files"), i, f) {
		fputs(i ? ", " : "", out);
		h(out, json_string_value(f));
	}
	fputs("</p>\n<p>Hash chain: ", out);
	if (json_is_true(json_object_get(ch, "verified"))) {
		fprintf(out, "<span class=\"ok\">verified</span> (seq %lld .. %lld, last hash <code>",
			(long long)iget(ch, "first_seq"), (long long)iget(ch, "last_seq"));
		h(out, sget(ch, "last_hash"));
		fputs("</code>)</p>\n", out);
	} else {
		fprintf(out, "<span class=\"bad\">NOT VERIFIED</span>: %lld bad line(s); first: ",
			(long long)iget(ch, "bad_lines"));
		h(out, sget(ch, "first_error"));
		fputs("</p>\n", out);
	}
	char *cov[COVERAGE_MAX];
	size_t ncov = coverage_notes(res, cov);
	fprintf(out, "<p>Coverage: <span class=\"%s\">",
		json_is_true(json_object_get(in, "complete")) ? "ok" : "bad");
	for (i = 0; i < ncov; i++) {
		fputs(i == 0 ? "" : i == 1 ? "</span> " : " ", out);
		h(out, cov[i]);
		free(cov[i]);
	}
	fputs(ncov == 1 ? "</span></p>\n" : "</p>\n", out);
	fputs("<h2>Totals</h2>\n<div class=\"tiles\">\n", out);
	for (i = 0; total_keys[i]; i++)
		fprintf(out, "<div class=\"tile\"><b>%lld</b>%s</div>\n",
			(long long)iget(t, total_keys[i]), total_keys[i]);
	fputs("</div>\n", out);
}

static void render_html(json_t *res, FILE *out)
{
	json_t *p = json_object_get(res, "period"), *a;
	int64_t t0 = 0, t1 = 0;
	size_t i;
	fputs(html_head, out);
	html_summary(out, res);
	fputs("<h2>Who held what</h2>\n", out);
	if (parse_rfc3339(sget(p, "since"), &t0) == JIT_OK &&
	    parse_rfc3339(sget(p, "until"), &t1) == JIT_OK)
		html_timeline(out, res, t0, t1);
	else
		fputs("<p>No events.</p>\n", out);
	html_grants(out, res);
	for (i = 0; dim_keys[i]; i++)
		html_dim(out, dim_titles[i], json_object_get(res, dim_keys[i]));
	fputs("<h2>Durations, early completions, revocation lag</h2>\n<table><tr><th class=\"n\">"
	      "</th><th>count</th><th>median</th><th>max</th><th>total</th></tr>\n", out);
	json_t *d = json_object_get(res, "durations");
	html_stats_row(out, "requested duration", json_object_get(d, "requested"));
	html_stats_row(out, "actual duration", json_object_get(d, "actual"));
	html_stats_row(out, "early completions: time given back",
		       json_object_get(res, "early_completions"));
	html_stats_row(out, "revocation lag (expiry to removal)",
		       json_object_get(res, "revocation_lag"));
	fputs("</table>\n", out);
	html_counts(out, "Refusals by reason", json_object_get(res, "refusals_by_reason"));
	html_counts(out, "Drift events by group",
		    json_object_get(json_object_get(res, "drift"), "by_group"));
	fputs(json_is_false(json_object_get(res, "period_complete"))
		      ? "<h2>Active when the report was made: the period is not over</h2>\n"
		      : "<h2>Active at the end of the period</h2>\n",
	      out);
	fputs("<table><tr><th class=\"n\">grant</th><th class=\"n\">user</th>"
	      "<th class=\"n\">group</th><th class=\"n\">since</th><th class=\"n\">expires</th>"
	      "<th class=\"n\">approved by</th><th class=\"n\">ticket"
	      "</th></tr>\n", out);
	json_array_foreach(json_object_get(res, "active_at_end"), i, a) {
		static const char *const k[] = { "grant_id", "user", "group", "granted_at",
						 "expires_at", "approved_by", "ticket", NULL };
		fputs("<tr>", out);
		for (size_t c = 0; k[c]; c++) {
			fputs("<td class=\"n\">", out);
			h(out, sget(a, k[c]));
			if (strcmp(k[c], "granted_at") == 0)
				fputs(start_note(a), out);
			fputs("</td>", out);
		}
		fputs("</tr>\n", out);
	}
	if (json_array_size(json_object_get(res, "active_at_end")) == 0)
		fputs("<tr><td class=\"n\" colspan=\"7\">none</td></tr>\n", out);
	fputs("</table>\n</body>\n</html>\n", out);
}

int report_render(json_t *res, enum report_format f, FILE *out)
{
	switch (f) {
	case REPORT_TEXT:
		render_text(res, out);
		break;
	case REPORT_CSV:
		render_csv(res, out);
		break;
	case REPORT_JSON: {
		/* Lossless: C1 controls and DEL only escaped (\u0080), for terminals. */
		struct termsafe_json t = { out, false };
		if (json_dump_callback(res, termsafe_json_write, &t,
				       JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
		    termsafe_json_end(&t) != 0)
			return JIT_EIO;
		fputc('\n', out);
		break;
	}
	case REPORT_HTML:
		render_html(res, out);
		break;
	}
	return fflush(out) == 0 && !ferror(out) ? JIT_OK : JIT_EIO;
}
