/*
 * report.c - aggregation of audit events into a report (see report.h).
 * Trust: the input may be a damaged or forged log, so every field is read
 * defensively (missing or mistyped fields are treated as absent), names are
 * capped per dimension, and memory stays bounded whatever the input holds.
 * Pure: no I/O here (rendering is in reportfmt.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "report.h"
#include "util.h"

/* Histogram for medians: one bucket per second below a day, one per hour
 * up to a year, one for the rest. Exact below a day. */
#define H_EXACT 86400
#define H_HOURS (24 * 366)
#define H_BUCKETS (H_EXACT + H_HOURS + 1)
/* Robustness: seconds read from the log are clamped to this (a forged
 * duration of 2^63 must not overflow a sum). 100 years. */
#define SECS_MAX ((int64_t)100 * 366 * 86400)

struct hist {
	uint32_t *b;            /* allocated on first use */
	int64_t n, sum, max;
};

enum dim { D_GROUP, D_USER, D_APPROVER, D_CLIENT, D__COUNT };
static const char *const dim_keys[D__COUNT] = { "by_group", "by_user", "by_approver",
						 "by_client" };
static const char *const dim_fields[D__COUNT] = { "group", "user", "approved_by", "client" };
static const char *const dim_metrics[] = { "granted", "expired", "completed", "revoked",
					   "failed", "refused", "held_seconds", NULL };

/* Ids of recently ended grants (see REPORT_ENDED_MAX): a ring of slots,
 * reused oldest first, chained into hash buckets. jitd's ids are 26 bytes;
 * a longer id (not jitd's) is not remembered. */
#define ENDED_ID_MAX 32
#define ENDED_BUCKETS (2 * REPORT_ENDED_MAX) /* a power of two */
#define ENDED_NONE UINT32_MAX
_Static_assert((ENDED_BUCKETS & (ENDED_BUCKETS - 1)) == 0, "ENDED_BUCKETS: a power of two");

struct ended {
	char (*id)[ENDED_ID_MAX]; /* REPORT_ENDED_MAX slots, allocated on first use */
	uint32_t *next;           /* slot -> next slot in its bucket, or ENDED_NONE */
	uint32_t *head;           /* bucket -> first slot, or ENDED_NONE */
	uint32_t used, pos;       /* slots in use; the slot to fill next */
};

/* Who asked, who approved, and why: copied from a grant's lines to its bar. */
/* user_dn and user_uuid tell one person from another where user (the name
 * as the client typed it) does not: "JÜRGEN" and "jürgen" are one entry, a
 * name reused after a rename two */
static const char *const bar_info[] = { "ticket", "reason", "requested_by", "approved_by",
					"user_dn", "user_uuid" };
#define BAR_INFO (sizeof(bar_info) / sizeof(bar_info[0]))

struct bar {
	char *user, *group, *grant_id, *end_kind;
	char *info[BAR_INFO];    /* bar_info's fields, NULL when absent */
	json_t *ext;             /* distinct approvers of its extensions, or NULL */
	int64_t extensions;      /* extended lines read */
	int64_t ext_omitted;     /* of those, with an approver not in ext */
	int64_t ext_none;        /* of those, with no approver */
	int64_t start, end;
	bool start_known;        /* false: start is created_at, the granted line was not read */
	bool kept;               /* the end left the membership: it predated the grant */
	bool forced;             /* closed by revoke --force */
	bool corrected;          /* start moved to a clock correction (rescheduled) */
	bool uncertain;          /* no granted line: its add went unanswered or was cut
				  * by a crash; held (an upper bound) until the removal */
};

struct report {
	struct report_opts o;
	int64_t first_ts, last_ts;       /* of every readable event, INT64_MIN/MAX if none */
	bool started;                    /* a readable line was read */
	int64_t input_start;             /* ts of the first readable line, in log order */
	int64_t lines, unreadable, in_period;
	int64_t before_input;            /* grants reported whose granted line was not read */
	int64_t granted, refused, expired, completed, revoked, failed, extended;
	int64_t revoke_failures, expiring_soon, drift, extended_seconds, forced;
	int64_t kept_standing;           /* final lines with outcome kept_standing */
	json_t *open;                    /* grant_id -> state of grants still active */
	json_t *failing;                 /* grant_id -> true: created before the first line
					  * read, failed (state ending) read: never active */
	struct ended ended;              /* grants whose final line was read */
	json_t *dims[D__COUNT];          /* name -> { metric: n } */
	size_t refusal_rows[D__COUNT];   /* rows a refused line made */
	json_t *refusals;                /* error code -> n */
	json_t *drift_groups;            /* group -> n */
	json_t *drift_kinds;             /* kind (unexplained, missing) -> n */
	json_t *events;                  /* event name -> n (in the period) */
	struct hist requested, actual, unused, lag;
	struct bar *bars;
	size_t n_bars;
	int64_t bars_dropped;
};

/* ---- small helpers ---- */

static int64_t clamp_secs(int64_t v)
{
	return v < -SECS_MAX ? -SECS_MAX : v > SECS_MAX ? SECS_MAX : v;
}

static void hist_add(struct hist *h, int64_t v)
{
	v = clamp_secs(v);
	if (v < 0)
		v = 0; /* a stepped clock: count it as immediate */
	if (!h->b)
		h->b = xcalloc(H_BUCKETS, sizeof(uint32_t));
	int64_t i = v < H_EXACT ? v : H_EXACT + (v - H_EXACT) / 3600;
	if (i >= H_BUCKETS)
		i = H_BUCKETS - 1;
	h->b[i]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

/* The value of the k-th smallest (0-based) element. */
static int64_t hist_kth(const struct hist *h, int64_t k)
{
	int64_t seen = 0;
	for (int64_t i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > k) {
			if (i < H_EXACT)
				return i;
			return i == H_BUCKETS - 1 ? h->max : H_EXACT + (i - H_EXACT) * 3600;
		}
	}
	return h->max;
}

static json_t *median_json(const struct hist *h)
{
	if (h->n == 0)
		return json_null();
	int64_t a = hist_kth(h, (h->n - 1) / 2), b = hist_kth(h, h->n / 2);
	if ((a + b) % 2 == 0)
		return json_integer((a + b) / 2);
	return json_real((double)(a + b) / 2.0);
}

static json_t *stats_json(const struct hist *h)
{
	json_t *o = json_object();
	json_object_set_new(o, "count", json_integer(h->n));
	json_object_set_new(o, "total_seconds", json_integer(h->sum));
	json_object_set_new(o, "median_seconds", median_json(h));
	json_object_set_new(o, "max_seconds", h->n ? json_integer(h->max) : json_null());
	return o;
}

static const char *str_of(json_t *ev, const char *k)
{
	const char *s = json_string_value(json_object_get(ev, k));
	return s && *s ? s : NULL;
}

/* An integer field, clamped to +-SECS_MAX (every integer read is seconds). */
static bool int_of(json_t *ev, const char *k, int64_t *v)
{
	json_t *x = json_object_get(ev, k);
	if (!json_is_integer(x))
		return false;
	*v = clamp_secs(json_integer_value(x));
	return true;
}

/* An RFC 3339 field; years beyond 9999 do not parse, so differences of
 * two times cannot overflow. */
static bool time_of(json_t *ev, const char *k, int64_t *v)
{
	const char *s = str_of(ev, k);
	return s && parse_rfc3339(s, v) == JIT_OK;
}

static void counter_add(json_t *obj, const char *name, int64_t delta)
{
	json_t *v = json_object_get(obj, name);
	if (v)
		json_integer_set(v, json_integer_value(v) + delta);
	else
		json_object_set_new(obj, name, json_integer(delta));
}

/* Adds delta to metric of name in dimension d ("(none)" if name is NULL). */
static void dim_add(struct report *r, enum dim d, const char *name, const char *metric,
		    int64_t delta)
{
	json_t *row;
	/* Names in refused lines are whatever a client sent: they get at most
	 * REPORT_REFUSED_NAMES_MAX rows, so that a flood of them cannot push
	 * the names of grants into "(other)". */
	bool refused = strcmp(metric, "refused") == 0;
	if (!name)
		name = "(none)";
	row = json_object_get(r->dims[d], name);
	if (!row && (json_object_size(r->dims[d]) >= REPORT_NAMES_MAX ||
		     (refused && r->refusal_rows[d] >= REPORT_REFUSED_NAMES_MAX))) {
		name = "(other)";
		row = json_object_get(r->dims[d], name);
	}
	if (!row) {
		row = json_object();
		for (int i = 0; dim_metrics[i]; i++)
			json_object_set_new(row, dim_metrics[i], json_integer(0));
		json_object_set_new(r->dims[d], name, row);
		if (refused)
			r->refusal_rows[d]++;
	}
	counter_add(row, metric, delta);
}

/* metric += delta for each dimension of event/grant record src. */
static void dims_add(struct report *r, json_t *src, const char *metric, int64_t delta)
{
	for (int d = 0; d < D__COUNT; d++)
		dim_add(r, (enum dim)d, str_of(src, dim_fields[d]), metric, delta);
}

/* Seconds of [start, end) inside the period. */
static int64_t overlap(const struct report *r, int64_t start, int64_t end)
{
	if (r->o.has_since && start < r->o.since)
		start = r->o.since;
	if (r->o.has_until && end > r->o.until)
		end = r->o.until;
	return end > start ? end - start : 0;
}

/* ---- recently ended grants ---- */

static uint32_t ended_bucket(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h & (ENDED_BUCKETS - 1);
}

static bool ended_has(const struct ended *e, const char *id)
{
	if (!e->id)
		return false;
	for (uint32_t i = e->head[ended_bucket(id)]; i != ENDED_NONE; i = e->next[i])
		if (strcmp(e->id[i], id) == 0)
			return true;
	return false;
}

/* Remembers id, forgetting the oldest one when every slot is in use. */
static void ended_add(struct ended *e, const char *id)
{
	size_t len = strlen(id);
	uint32_t i = e->pos, *p;
	if (len >= ENDED_ID_MAX)
		return;
	if (!e->id) {
		e->id = xcalloc(REPORT_ENDED_MAX, sizeof(*e->id));
		e->next = xcalloc(REPORT_ENDED_MAX, sizeof(*e->next));
		e->head = xcalloc(ENDED_BUCKETS, sizeof(*e->head));
		memset(e->head, 0xff, ENDED_BUCKETS * sizeof(*e->head)); /* ENDED_NONE */
	}
	if (e->used == REPORT_ENDED_MAX) {
		/* unlink slot i from its bucket: it is there, so the walk ends */
		for (p = &e->head[ended_bucket(e->id[i])]; *p != i; p = &e->next[*p])
			;
		*p = e->next[i];
	} else {
		e->used++;
	}
	memcpy(e->id[i], id, len + 1);
	e->next[i] = e->head[ended_bucket(id)];
	e->head[ended_bucket(id)] = i;
	e->pos = (i + 1) % REPORT_ENDED_MAX;
}

static void ended_free(struct ended *e)
{
	free(e->id);
	free(e->next);
	free(e->head);
}

/* Its start was moved to a clock correction (rescheduled): not known, but
 * not because a granted line was missed. */
static bool start_corrected(json_t *g)
{
	return json_is_true(json_object_get(g, "start_corrected"));
}

/*
 * A bar of the timeline: the grant of line (or record) g, with its ticket,
 * reason, requester and approver from g, else from rec, and the approvers
 * of its extensions from rec (the record of the open grant, or NULL: never
 * taken from a line, whose members are anyone's).
 */
static void add_bar(struct report *r, json_t *g, json_t *rec, const char *id, int64_t start,
		    int64_t end, const char *kind, bool start_known, bool forced, bool uncertain)
{
	if ((r->o.has_since && end < r->o.since) || (r->o.has_until && start >= r->o.until))
		return;
	if (r->n_bars >= REPORT_TIMELINE_MAX) {
		r->bars_dropped++;
		return;
	}
	if (r->n_bars == 0)
		r->bars = xcalloc(REPORT_TIMELINE_MAX, sizeof(*r->bars));
	struct bar *b = &r->bars[r->n_bars++];
	b->user = xstrdup(str_of(g, "user") ? str_of(g, "user") : "?");
	b->group = xstrdup(str_of(g, "group") ? str_of(g, "group") : "?");
	b->grant_id = xstrdup(id);
	b->end_kind = xstrdup(kind);
	for (size_t i = 0; i < BAR_INFO; i++) {
		const char *v = str_of(g, bar_info[i]);
		if (!v && rec)
			v = str_of(rec, bar_info[i]);
		b->info[i] = v ? xstrdup(v) : NULL;
	}
	if (rec) {
		json_t *ext = json_object_get(rec, "ext_approved_by");
		b->ext = json_array_size(ext) ? json_incref(ext) : NULL;
		b->extensions = json_integer_value(json_object_get(rec, "extensions"));
		b->ext_omitted = json_integer_value(json_object_get(rec, "ext_omitted"));
		b->ext_none = json_integer_value(json_object_get(rec, "ext_none"));
	}
	b->start = start;
	b->end = end;
	b->start_known = start_known;
	const char *out = str_of(g, "outcome");
	b->kept = out && strcmp(out, "kept_standing") == 0;
	b->forced = forced;
	b->uncertain = uncertain;
	b->corrected = rec && start_corrected(rec);
}

/* ---- lifecycle ---- */

struct report *report_new(const struct report_opts *o)
{
	struct report *r = xcalloc(1, sizeof(*r));
	r->o = *o;
	r->first_ts = INT64_MAX;
	r->last_ts = INT64_MIN;
	r->open = json_object();
	r->failing = json_object();
	for (int d = 0; d < D__COUNT; d++)
		r->dims[d] = json_object();
	r->refusals = json_object();
	r->drift_groups = json_object();
	r->drift_kinds = json_object();
	r->events = json_object();
	return r;
}

void report_free(struct report *r)
{
	if (!r)
		return;
	json_decref(r->open);
	json_decref(r->failing);
	ended_free(&r->ended);
	for (int d = 0; d < D__COUNT; d++)
		json_decref(r->dims[d]);
	json_decref(r->refusals);
	json_decref(r->drift_groups);
	json_decref(r->drift_kinds);
	json_decref(r->events);
	free(r->requested.b);
	free(r->actual.b);
	free(r->unused.b);
	free(r->lag.b);
	for (size_t i = 0; i < r->n_bars; i++) {
		free(r->bars[i].user);
		free(r->bars[i].group);
		free(r->bars[i].grant_id);
		free(r->bars[i].end_kind);
		for (size_t k = 0; k < BAR_INFO; k++)
			free(r->bars[i].info[k]);
		json_decref(r->bars[i].ext);
	}
	free(r->bars);
	free(r);
}

void report_unreadable(struct report *r)
{
	r->lines++;
	r->unreadable++;
}

/* ---- events ---- */

/*
 * The record of an open grant: its names, ticket, reason and requester,
 * start, the duration its granted line asked for (-1: not known) and
 * expiry; later the approvers of its extensions (note_extension). The
 * reason of a rescheduled line is that event's cause, not the grant's: not
 * taken. start_known false: its granted line was not read, and start is the
 * created_at of a later line about it.
 */
static json_t *grant_record(json_t *ev, int64_t start, bool start_known, int64_t requested,
			    int64_t exp)
{
	static const char *const more[] = { "ticket", "requested_by", "reason", "user_dn",
					    "user_uuid" };
	const char *event = str_of(ev, "event");
	bool own_reason = !event || strcmp(event, "rescheduled") != 0;
	json_t *g = json_object();
	for (int d = 0; d < D__COUNT; d++)
		if (str_of(ev, dim_fields[d]))
			json_object_set_new(g, dim_fields[d],
					    json_string(str_of(ev, dim_fields[d])));
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		if (str_of(ev, more[i]) && (own_reason || strcmp(more[i], "reason") != 0))
			json_object_set_new(g, more[i], json_string(str_of(ev, more[i])));
	json_object_set_new(g, "start", json_integer(start));
	json_object_set_new(g, "requested", json_integer(requested));
	json_object_set_new(g, "expires_at", json_integer(exp));
	if (!start_known)
		json_object_set_new(g, "start_unknown", json_true());
	return g;
}

static bool start_known(json_t *g)
{
	return !json_is_true(json_object_get(g, "start_unknown"));
}

/* Open record g: a grant with no granted line whose membership may be there
 * (its add went unanswered, or a crash cut it: failed with state ending,
 * or a removal of it failing), until its final line says otherwise. */
static bool maybe_held(json_t *g)
{
	return json_is_true(json_object_get(g, "maybe_held"));
}

/*
 * Did the grant of this line (not open, its end not read) begin before the
 * first line read, so that its granted line, if it had one, was not read?
 * Judged by created_at (*created): a grant's granted line follows its
 * created_at by one answer of the directory, so a grant created after the
 * first line read either had its granted line read or never had one (it
 * failed before it was active). The same holds for one whose failed line
 * with state ending was read. Created at or after the period's end: not
 * in the report.
 */
static bool began_before(struct report *r, const char *id, int64_t created)
{
	if (!id || json_object_get(r->open, id) || ended_has(&r->ended, id) ||
	    json_object_get(r->failing, id))
		return false;
	if (created >= r->input_start)
		return false;
	return !r->o.has_until || created < r->o.until;
}

static bool began_before_input(struct report *r, json_t *ev, const char *id, int64_t *created)
{
	return time_of(ev, "created_at", created) && began_before(r, id, *created);
}

/*
 * A line that shows a grant was not over yet: extended, expiring_soon,
 * revoke_failed, drift (kind missing), or, after the period, any line
 * about a grant. If the grant began before the files read, it becomes an
 * open grant with an unknown start (its created_at), so that it is never
 * missing from the report because its granted line is in an older file.
 * after: the line comes after the period; the expiry at the period's end
 * is the one before an extension this line makes.
 */
/*
 * Opens the grant of ev, which had no granted line and may hold its
 * membership (see maybe_held), from its created_at, its start not known;
 * not if it is open or ended already, or created at or after the period's
 * end. Robustness: its membership may stay for days while the removal
 * fails, and every report of those days must show it (it was in none
 * until its final line).
 */
static void open_maybe_held(struct report *r, json_t *ev)
{
	const char *id = str_of(ev, "grant_id");
	int64_t created, exp = 0;
	if (!id || json_object_get(r->open, id) || ended_has(&r->ended, id) ||
	    !time_of(ev, "created_at", &created) || (r->o.has_until && created >= r->o.until))
		return;
	(void)time_of(ev, "expires_at", &exp);
	json_t *g = grant_record(ev, created, false, -1, exp);
	json_object_set_new(g, "maybe_held", json_true());
	json_object_set_new(r->open, id, g);
}

/* A final line of a grant that never became active which says its
 * membership may have been there until that line: failed with outcome
 * removed, or closed by force on its way to failed (see on_end). */
static bool held_never_granted(json_t *ev, const char *event)
{
	const char *outcome = str_of(ev, "outcome"), *prev = str_of(ev, "previous_end_state");
	const char *st = str_of(ev, "state");
	if (!outcome)
		return false;
	if (strcmp(event, "failed") == 0)
		return strcmp(outcome, "removed") == 0 && !(st && strcmp(st, "ending") == 0);
	return strcmp(event, "revoked") == 0 && strcmp(outcome, "forced") == 0 && prev &&
	       strcmp(prev, "failed") == 0;
}

static void seen_open(struct report *r, json_t *ev, const char *event, bool after)
{
	const char *id = str_of(ev, "grant_id");
	int64_t created, exp = 0, added;
	bool moved = strcmp(event, "rescheduled") == 0 && time_of(ev, "previous_created_at", &created);
	/* rescheduled: created_at is now the clock's correction, the time the
	 * grant was given is previous_created_at */
	if (moved ? !began_before(r, id, created) : !began_before_input(r, ev, id, &created)) {
		/* a removal failing for a grant created after the first line
		 * read that is not open: it had no granted line (recovered at
		 * start-up, its add cut by a crash), and may be held; so may
		 * one whose final line, after the period, says jitd removed
		 * its membership (or an operator closed it by hand) */
		if (strcmp(event, "revoke_failed") == 0 || held_never_granted(ev, event))
			open_maybe_held(r, ev);
		return;
	}
	(void)time_of(ev, "expires_at", &exp);
	if (after && strcmp(event, "extended") == 0 && int_of(ev, "added", &added) && added > 0)
		exp -= added;
	if (after && strcmp(event, "rescheduled") == 0)
		(void)time_of(ev, "previous_expires_at", &exp);
	json_object_set_new(r->open, id, grant_record(ev, created, false, -1, exp));
}

/* A failed line with state ending: the grant never became active, and its
 * final failed line follows. Remembered only when created_at alone would
 * not tell that (it was created before the first line read). */
static void on_failing(struct report *r, json_t *ev)
{
	const char *id = str_of(ev, "grant_id");
	int64_t created;
	if (began_before_input(r, ev, id, &created))
		json_object_set_new(r->failing, id, json_true());
	/* its add may have been applied: held until its final line */
	const char *st = str_of(ev, "state");
	if (st && strcmp(st, "ending") == 0)
		open_maybe_held(r, ev);
}

static void on_granted(struct report *r, json_t *ev, int64_t ts, bool in)
{
	const char *id = str_of(ev, "grant_id");
	int64_t dur = 0, exp = 0;
	if (!id)
		return;
	(void)int_of(ev, "duration", &dur);
	(void)time_of(ev, "expires_at", &exp);
	json_object_set_new(r->open, id, grant_record(ev, ts, true, dur, exp));
	if (in) {
		r->granted++;
		dims_add(r, ev, "granted", 1);
	}
}

/*
 * Counts an extension of open grant g and keeps its approver, once per
 * name, at most REPORT_EXT_APPROVERS_MAX names and REPORT_EXT_APPROVERS_BYTES
 * bytes per grant: an extension whose approver is left out is counted in
 * ext_omitted, so the report never suggests the list is whole when it is
 * not; one without an approver in ext_none.
 */
static void note_extension(json_t *g, json_t *ev)
{
	const char *ap = str_of(ev, "extension_approved_by");
	json_t *arr = json_object_get(g, "ext_approved_by"), *x;
	size_t i, bytes = 0;
	counter_add(g, "extensions", 1);
	if (!ap) {
		counter_add(g, "ext_none", 1);
		return;
	}
	json_array_foreach(arr, i, x) {
		if (strcmp(json_string_value(x), ap) == 0)
			return;
		bytes += json_string_length(x);
	}
	if (json_array_size(arr) >= REPORT_EXT_APPROVERS_MAX ||
	    bytes + strlen(ap) > REPORT_EXT_APPROVERS_BYTES) {
		counter_add(g, "ext_omitted", 1);
		return;
	}
	if (!arr) {
		arr = json_array();
		json_object_set_new(g, "ext_approved_by", arr);
	}
	json_array_append_new(arr, json_string(ap));
}

static void on_extended(struct report *r, json_t *ev, bool in)
{
	const char *id = str_of(ev, "grant_id");
	json_t *g = id ? json_object_get(r->open, id) : NULL;
	int64_t exp, added = 0;
	if (g && time_of(ev, "expires_at", &exp))
		json_object_set_new(g, "expires_at", json_integer(exp));
	if (g)
		note_extension(g, ev);
	if (in) {
		r->extended++;
		if (int_of(ev, "added", &added) && added > 0)
			r->extended_seconds += added;
	}
}

/*
 * rescheduled: a grant given while the clock ran ahead, taken as given at
 * the clock's correction (created_at) with a new expires_at. Its granted
 * line's time came from the clock that ran ahead, so where that lies after
 * the correction the start is not known: the correction is the latest it
 * can have been.
 */
static void on_rescheduled(struct report *r, json_t *ev)
{
	const char *id = str_of(ev, "grant_id");
	json_t *g = id ? json_object_get(r->open, id) : NULL;
	int64_t exp = 0, created;
	if (!g) {
		/* Only an active grant is rescheduled. Not open here: its
		 * granted line's time, from the clock that ran ahead, lies
		 * after the period (so it was passed over). Open from the
		 * correction, the start not known. */
		if (!id || ended_has(&r->ended, id) || json_object_get(r->failing, id) ||
		    !time_of(ev, "created_at", &created) ||
		    (r->o.has_until && created >= r->o.until))
			return;
		(void)time_of(ev, "expires_at", &exp);
		g = grant_record(ev, created, false, -1, exp);
		json_object_set_new(g, "start_corrected", json_true());
		json_object_set_new(r->open, id, g);
		return;
	}
	if (time_of(ev, "expires_at", &exp))
		json_object_set_new(g, "expires_at", json_integer(exp));
	if (time_of(ev, "created_at", &created) &&
	    json_integer_value(json_object_get(g, "start")) > created) {
		/* moved from its granted line's time; one whose granted line
		 * was not read stays "not read" (a line was missed) */
		if (start_known(g))
			json_object_set_new(g, "start_corrected", json_true());
		json_object_set_new(g, "start", json_integer(created));
		json_object_set_new(g, "start_unknown", json_true());
	}
}

/*
 * A final line (expired, completed, revoked, or failed with state failed):
 * the grant's membership ended at ts. Counted once per grant: jitd writes
 * the final line again when it crashed between that line and the commit
 * of the final state, and the repeat finds the grant already ended.
 */
static void on_end(struct report *r, json_t *ev, const char *event, int64_t ts, bool in)
{
	const char *id = str_of(ev, "grant_id");
	json_t *g = id ? json_object_get(r->open, id) : NULL;
	int64_t start = ts, requested = -1, exp = 0, created;
	bool known = false, before = !g && began_before_input(r, ev, id, &created);
	bool uncertain = g && maybe_held(g); /* no granted line (open_maybe_held) */
	const char *outcome = str_of(ev, "outcome"), *prev = str_of(ev, "previous_end_state");
	if (!g && id && ended_has(&r->ended, id))
		return;
	if (id)
		ended_add(&r->ended, id);
	/* revoke --force: an operator removed the membership by hand. A grant
	 * that was heading to failed (its add went unanswered, or jitd
	 * crashed before it was active) ends as a failed grant, by the rules
	 * of failed lines: it is counted in failed, not revoked. */
	bool forced = strcmp(event, "revoked") == 0 && outcome && strcmp(outcome, "forced") == 0;
	if (forced && prev && strcmp(prev, "failed") == 0)
		event = "failed";
	/* no granted line, and none before the files read: the grant never
	 * became active. Its membership may still have existed: outcome
	 * removed says jitd removed one it had added (an add whose answer was
	 * lost, a granted line not written, a crash before it), and outcome
	 * forced that jitd's removals kept failing until an operator closed
	 * it by hand, so jitd never saw the member absent. Either counts as
	 * held from created_at to this line, the upper bound, its start not
	 * known; not in before_input, as it had no granted line to miss. */
	bool never_granted = (!g || uncertain) && !before && strcmp(event, "failed") == 0;
	bool held_maybe = forced || (outcome && strcmp(outcome, "removed") == 0);
	if (never_granted && id)
		json_object_del(r->failing, id);
	if (never_granted && !held_maybe) {
		/* the removal found nothing there: no time held counted here
		 * (the reports of the days before showed it as maybe held) */
		if (uncertain)
			json_object_del(r->open, id);
		if (in) {
			r->failed++;
			dims_add(r, ev, "failed", 1);
		}
		return;
	}
	if (g) {
		start = json_integer_value(json_object_get(g, "start"));
		requested = json_integer_value(json_object_get(g, "requested"));
		known = start_known(g);
	} else {
		/* Its granted line was not read (normally: it is in an older
		 * file), or it had none (never_granted, above). The line tells
		 * when the grant was created, not what it first asked for
		 * (duration includes extensions). A failed line cannot tell
		 * whether it was ever active: counted as held, the upper
		 * bound, and marked like the others. */
		(void)time_of(ev, "created_at", &start);
	}
	(void)time_of(ev, "expires_at", &exp);
	if (in) {
		if (strcmp(event, "expired") == 0) {
			r->expired++;
			hist_add(&r->lag, ts - exp);
		} else if (strcmp(event, "completed") == 0) {
			r->completed++;
			if (exp > ts)
				hist_add(&r->unused, exp - ts);
		} else if (strcmp(event, "failed") == 0) {
			r->failed++; /* after its granted line: crash, or the active write failed */
		} else {
			r->revoked++;
		}
		if (forced)
			r->forced++; /* closed by hand: jitd could not remove it */
		dims_add(r, ev, event, 1);
		/* the grant ended, the membership did not: it was there before
		 * the grant (standing), and jitd leaves it as it found it */
		if (outcome && strcmp(outcome, "kept_standing") == 0)
			r->kept_standing++;
		if (requested >= 0)
			hist_add(&r->requested, requested);
		hist_add(&r->actual, ts - start);
		/* only a grant that began before the first line read: one
		 * created later without a granted line never had one */
		if (before || (g && !known && !uncertain && !start_corrected(g)))
			r->before_input++;
	}
	int64_t held = overlap(r, start, ts);
	if (held > 0)
		dims_add(r, ev, "held_seconds", held);
	add_bar(r, ev, g, id ? id : "?", start, ts, event, known, forced, never_granted);
	if (g)
		json_object_del(r->open, id);
}

static void on_other(struct report *r, json_t *ev, const char *event)
{
	if (strcmp(event, "refused") == 0) {
		const char *code = str_of(ev, "error");
		r->refused++;
		/* jitd writes a few dozen codes; a crafted log could hold any
		 * number: past 64 they are counted together */
		const char *k = code ? code : "(none)";
		if (json_object_size(r->refusals) >= 64 && !json_object_get(r->refusals, k))
			k = "(other)";
		counter_add(r->refusals, k, 1);
		dims_add(r, ev, "refused", 1);
	} else if (strcmp(event, "revoke_failed") == 0) {
		r->revoke_failures++;
	} else if (strcmp(event, "expiring_soon") == 0) {
		r->expiring_soon++;
	} else if (strcmp(event, "drift") == 0) {
		const char *grp = str_of(ev, "group") ? str_of(ev, "group") : str_of(ev, "group_dn");
		r->drift++;
		if (json_object_size(r->drift_groups) < REPORT_NAMES_MAX ||
		    json_object_get(r->drift_groups, grp ? grp : "(none)"))
			counter_add(r->drift_groups, grp ? grp : "(none)", 1);
		else
			counter_add(r->drift_groups, "(other)", 1);
		const char *kind = str_of(ev, "kind");
		if (json_object_size(r->drift_kinds) < 16 || json_object_get(r->drift_kinds, kind ? kind : "(none)"))
			counter_add(r->drift_kinds, kind ? kind : "(none)", 1);
	}
}

/* A final line: expired, completed, revoked, or failed with state failed
 * (with state ending, the removal follows, then the final failed line). */
static bool is_final(json_t *ev, const char *event)
{
	const char *st = str_of(ev, "state");
	if (strcmp(event, "failed") == 0)
		return st && strcmp(st, "failed") == 0;
	return strcmp(event, "expired") == 0 || strcmp(event, "completed") == 0 ||
	       strcmp(event, "revoked") == 0;
}

/* A line written only while its grant is open (drift: kind missing, the
 * only kind with a grant_id). */
static bool shows_open(const char *event)
{
	return strcmp(event, "extended") == 0 || strcmp(event, "expiring_soon") == 0 ||
	       strcmp(event, "revoke_failed") == 0 || strcmp(event, "drift") == 0 ||
	       strcmp(event, "rescheduled") == 0;
}

/*
 * Cuts every string field of ev longer than REPORT_FIELD_MAX bytes (at a
 * character boundary, "..." appended). jitd writes none that long (its
 * protocol's fields are shorter); a log that was altered may hold lines of
 * megabytes, and the open grants, the rows and the timeline keep copies.
 */
static void cut_fields(json_t *ev)
{
	const char *key;
	json_t *v;
	json_object_foreach(ev, key, v) {
		size_t n = json_string_length(v);
		if (!json_is_string(v) || n <= REPORT_FIELD_MAX)
			continue;
		const char *t = json_string_value(v);
		n = REPORT_FIELD_MAX - 3;
		while (n > 0 && ((unsigned char)t[n] & 0xc0) == 0x80)
			n--; /* not inside a UTF-8 sequence */
		char *c = xmalloc(n + 4);
		memcpy(c, t, n);
		memcpy(c + n, "...", 4);
		(void)json_string_set(v, c);
		free(c);
	}
}

void report_add(struct report *r, json_t *ev)
{
	if (json_is_object(ev))
		cut_fields(ev); /* first: the strings below point into ev */
	const char *event = str_of(ev, "event");
	int64_t ts;
	if (!json_is_object(ev) || !event || !time_of(ev, "ts", &ts)) {
		report_unreadable(r);
		return;
	}
	r->lines++;
	if (!r->started) {
		r->started = true;
		r->input_start = ts;
	}
	if (ts < r->first_ts)
		r->first_ts = ts;
	if (ts > r->last_ts)
		r->last_ts = ts;
	/* After the period nothing changes the picture at its end, except
	 * that a line about a grant that began before the files read shows
	 * that it was still open then. */
	if (r->o.has_until && ts >= r->o.until) {
		if (is_final(ev, event) || shows_open(event))
			seen_open(r, ev, event, true);
		else if (strcmp(event, "failed") == 0)
			on_failing(r, ev);
		else if (strcmp(event, "granted") == 0)
			/* asked before the period's end, granted after it: the
			 * add may have been applied before the end (the line is
			 * written after the directory's answer, which can take
			 * up to the directory's timeout and a retry), so it may
			 * have been held from created_at */
			open_maybe_held(r, ev);
		return;
	}
	bool in = !r->o.has_since || ts >= r->o.since;
	if (in) {
		r->in_period++;
		if (json_object_size(r->events) < 64 || json_object_get(r->events, event))
			counter_add(r->events, event, 1);
	}
	if (strcmp(event, "granted") == 0) {
		on_granted(r, ev, ts, in);
		return;
	}
	if (is_final(ev, event)) {
		on_end(r, ev, event, ts, in);
		return;
	}
	if (shows_open(event))
		seen_open(r, ev, event, false);
	else if (strcmp(event, "failed") == 0)
		on_failing(r, ev);
	if (strcmp(event, "extended") == 0)
		on_extended(r, ev, in);
	else if (strcmp(event, "rescheduled") == 0)
		on_rescheduled(r, ev);
	else if (in)
		on_other(r, ev, event);
}

/* ---- the result ---- */

static json_t *time_json(int64_t t)
{
	char buf[32];
	if (t == INT64_MIN || t == INT64_MAX)
		return json_null();
	fmt_rfc3339(t, buf);
	return json_string(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of obj with its keys in byte order (deterministic output). */
static json_t *sorted(json_t *obj)
{
	size_t n = json_object_size(obj), i = 0;
	const char **keys = xcalloc(n + 1, sizeof(char *));
	const char *k;
	json_t *v, *out = json_object();
	json_object_foreach(obj, k, v) keys[i++] = k;
	qsort(keys, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++)
		json_object_set(out, keys[i], json_object_get(obj, keys[i]));
	free(keys);
	return out;
}

static json_t *totals_json(const struct report *r, int64_t active)
{
	json_t *t = json_object();
	json_object_set_new(t, "granted", json_integer(r->granted));
	json_object_set_new(t, "refused", json_integer(r->refused));
	json_object_set_new(t, "expired", json_integer(r->expired));
	json_object_set_new(t, "completed", json_integer(r->completed));
	json_object_set_new(t, "revoked", json_integer(r->revoked));
	json_object_set_new(t, "revoke_failures", json_integer(r->revoke_failures));
	json_object_set_new(t, "revoked_forced", json_integer(r->forced));
	json_object_set_new(t, "ended_membership_kept", json_integer(r->kept_standing));
	json_object_set_new(t, "active_at_end", json_integer(active));
	json_object_set_new(t, "failed", json_integer(r->failed));
	json_object_set_new(t, "extended", json_integer(r->extended));
	json_object_set_new(t, "expiring_soon", json_integer(r->expiring_soon));
	json_object_set_new(t, "drift", json_integer(r->drift));
	json_object_set_new(t, "started_before_input", json_integer(r->before_input));
	return t;
}

/* A grant's extensions into o (active_at_end, timeline), when it had any:
 * how many, their distinct approvers, how many approvals were left out of
 * that list, and how many named no approver. */
static void ext_json(json_t *o, json_t *ext, int64_t extensions, int64_t omitted, int64_t none)
{
	if (extensions > 0)
		json_object_set_new(o, "extensions", json_integer(extensions));
	if (json_array_size(ext))
		json_object_set_new(o, "extension_approved_by", json_deep_copy(ext));
	if (omitted > 0)
		json_object_set_new(o, "extension_approvals_omitted", json_integer(omitted));
	if (none > 0)
		json_object_set_new(o, "extensions_without_approver", json_integer(none));
}

/* Grants still open at the period's end (or, for a period not over, when
 * the report was made: end): the list, their held time, bars; those whose
 * granted line was not read count in before_input. */
static json_t *active_json(struct report *r, int64_t end)
{
	json_t *arr = json_array(), *g;
	const char *id;
	char buf[32];
	json_object_foreach(r->open, id, g) {
		int64_t start = json_integer_value(json_object_get(g, "start"));
		json_t *a = json_object();
		json_object_set_new(a, "grant_id", json_string(id));
		for (int d = 0; d < D__COUNT; d++) {
			const char *s = str_of(g, dim_fields[d]);
			if (s)
				json_object_set_new(a, dim_fields[d], json_string(s));
		}
		for (size_t i = 0; i < BAR_INFO; i++) {
			const char *v = str_of(g, bar_info[i]);
			if (v && !json_object_get(a, bar_info[i]))
				json_object_set_new(a, bar_info[i], json_string(v));
		}
		ext_json(a, json_object_get(g, "ext_approved_by"),
			 json_integer_value(json_object_get(g, "extensions")),
			 json_integer_value(json_object_get(g, "ext_omitted")),
			 json_integer_value(json_object_get(g, "ext_none")));
		fmt_rfc3339(start, buf);
		json_object_set_new(a, "granted_at", json_string(buf));
		json_object_set_new(a, "start_known", json_boolean(start_known(g)));
		if (maybe_held(g))
			json_object_set_new(a, "membership_uncertain", json_true());
		if (start_corrected(g))
			json_object_set_new(a, "start_corrected", json_true());
		fmt_rfc3339(json_integer_value(json_object_get(g, "expires_at")), buf);
		json_object_set_new(a, "expires_at", json_string(buf));
		json_array_append_new(arr, a);
		if (!start_known(g) && !maybe_held(g) && !start_corrected(g))
			r->before_input++;
		int64_t held = overlap(r, start, end);
		if (held > 0)
			dims_add(r, g, "held_seconds", held);
		add_bar(r, g, g, id, start, end > start ? end : start, "active", start_known(g),
			false, maybe_held(g));
	}
	return arr;
}

static json_t *timeline_json(const struct report *r)
{
	json_t *arr = json_array();
	char s[32], e[32];
	for (size_t i = 0; i < r->n_bars; i++) {
		const struct bar *b = &r->bars[i];
		fmt_rfc3339(b->start, s);
		fmt_rfc3339(b->end, e);
		json_t *o = json_pack("{sssssssssbssss}", "grant_id", b->grant_id, "user", b->user,
				      "group", b->group, "start", s, "start_known",
				      (int)b->start_known, "end", e, "end_event", b->end_kind);
		if (b->kept)
			json_object_set_new(o, "membership_kept", json_true());
		if (b->forced)
			json_object_set_new(o, "forced", json_true());
		if (b->uncertain)
			json_object_set_new(o, "membership_uncertain", json_true());
		if (b->corrected)
			json_object_set_new(o, "start_corrected", json_true());
		for (size_t k = 0; k < BAR_INFO; k++)
			if (b->info[k])
				json_object_set_new(o, bar_info[k], json_string(b->info[k]));
		ext_json(o, b->ext, b->extensions, b->ext_omitted, b->ext_none);
		json_array_append_new(arr, o);
	}
	return arr;
}

static json_t *chain_json(const struct report_chain *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "verified", json_boolean(c->verified));
	json_object_set_new(o, "lines", json_integer(c->lines));
	json_object_set_new(o, "bad_lines", json_integer(c->bad_lines));
	json_object_set_new(o, "torn_lines", json_integer(c->torn_lines));
	json_object_set_new(o, "first_seq", c->first_seq ? json_integer(c->first_seq) : json_null());
	json_object_set_new(o, "last_seq", c->last_seq ? json_integer(c->last_seq) : json_null());
	json_object_set_new(o, "last_hash", c->last_hash && *c->last_hash ?
						   json_string(c->last_hash) : json_null());
	json_object_set_new(o, "first_error",
			    c->first_error ? json_string(c->first_error) : json_null());
	return o;
}

json_t *report_result(struct report *r, const struct report_chain *c)
{
	json_t *res = json_object(), *p = json_object(), *in = json_object();
	int64_t start = r->o.has_since ? r->o.since : r->first_ts;
	int64_t end = r->o.has_until ? r->o.until : r->last_ts;
	/* A period that ends after the report is made is not over: a grant
	 * still open has held its membership up to now, not up to until
	 * (what follows has not happened, and may never). */
	bool over = !(r->o.has_until && r->o.generated_at && r->o.until > r->o.generated_at);
	int64_t held_end = over ? end : r->o.generated_at;
	json_object_set_new(p, "since", time_json(start));
	json_object_set_new(p, "until", time_json(end));
	if (r->o.generated_at)
		json_object_set_new(p, "generated_at", time_json(r->o.generated_at));
	json_object_set_new(res, "period", p);
	json_object_set_new(res, "period_complete", json_boolean(over));
	json_object_set_new(in, "files", c->files ? json_incref(c->files) : json_array());
	json_object_set_new(in, "lines", json_integer(r->lines));
	json_object_set_new(in, "unreadable_lines", json_integer(r->unreadable));
	json_object_set_new(in, "events_in_period", json_integer(r->in_period));
	json_object_set_new(in, "first_event", time_json(r->first_ts));
	json_object_set_new(in, "last_event", time_json(r->last_ts));
	json_object_set_new(in, "first_line_at",
			    r->started ? time_json(r->input_start) : json_null());
	json_object_set_new(res, "input", in);
	json_object_set_new(res, "chain_verified", json_boolean(c->verified));
	json_object_set_new(res, "chain", chain_json(c));
	/* active grants first: their held time goes into the dimensions */
	json_t *active = end == INT64_MIN ? json_array() : active_json(r, held_end);
	/* Complete: the files reach back to the log's first line and the chain
	 * holds, so every grant's granted line was read (none is missing for
	 * lack of it, and none is shown with a start taken from created_at). */
	json_object_set_new(in, "complete",
			    json_boolean(c->first_seq == 1 && c->verified && r->before_input == 0));
	json_object_set_new(res, "totals", totals_json(r, (int64_t)json_array_size(active)));
	for (int d = 0; d < D__COUNT; d++)
		json_object_set_new(res, dim_keys[d], sorted(r->dims[d]));
	json_t *dur = json_object();
	json_object_set_new(dur, "requested", stats_json(&r->requested));
	json_object_set_new(dur, "actual", stats_json(&r->actual));
	json_object_set_new(dur, "extended_seconds", json_integer(r->extended_seconds));
	json_object_set_new(res, "durations", dur);
	json_object_set_new(res, "early_completions", stats_json(&r->unused));
	json_object_set_new(res, "refusals_by_reason", sorted(r->refusals));
	json_object_set_new(res, "revocation_lag", stats_json(&r->lag));
	json_t *drift = json_object();
	json_object_set_new(drift, "events", json_integer(r->drift));
	json_object_set_new(drift, "by_group", sorted(r->drift_groups));
	json_object_set_new(drift, "by_kind", sorted(r->drift_kinds));
	json_object_set_new(res, "drift", drift);
	json_object_set_new(res, "events", sorted(r->events));
	json_object_set_new(res, "active_at_end", active);
	json_object_set_new(res, "timeline", timeline_json(r));
	json_object_set_new(res, "timeline_omitted", json_integer(r->bars_dropped));
	return res;
}

/* ---- parsing options ---- */

int report_format_parse(const char *s, enum report_format *out)
{
	static const char *const names[] = { "text", "csv", "json", "html" };
	for (int i = 0; s && i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum report_format)i;
			return JIT_OK;
		}
	}
	return JIT_EBADREQ;
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int report_parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	int off = 0;
	size_t n = s ? strlen(s) : 0;
	memset(&tm, 0, sizeof(tm));
	if (n < 10 || s[4] != '-' || s[7] != '-')
		return JIT_EBADREQ;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = 0, mi = 0, se = 0;
	const char *p = s + 10;
	if (*p == 'T') {
		if (strlen(p) < 6 || p[3] != ':' || (h = digits(p + 1, 2)) < 0 ||
		    (mi = digits(p + 4, 2)) < 0)
			return JIT_EBADREQ;
		p += 6;
		if (*p == ':') {
			if ((se = digits(p + 1, 2)) < 0)
				return JIT_EBADREQ;
			p += 3;
		}
		if (*p == 'Z') {
			p++;
		} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
			int oh = digits(p + 1, 2), om = digits(p + 4, 2);
			if (oh < 0 || om < 0 || oh > 23 || om > 59)
				return JIT_EBADREQ;
			off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
			p += 6;
		} else {
			return JIT_EBADREQ;
		}
	}
	if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60)
		return JIT_EBADREQ;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) /* 2026-02-31 normalises: refuse it */
		return JIT_EBADREQ;
	*out = (int64_t)t - off;
	return JIT_OK;
}
