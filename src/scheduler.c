/*
 * scheduler.c - engine_tick(), on the main thread: due expiries and retries
 * read from the store become jobs for the directories' queues (expiries
 * batched per group), each grant in flight once and at most inflight_max
 * at once; directory health (probes while a directory is down, pending
 * removals made due when it is back); expiring_soon warnings; due grants of
 * directories no longer configured reported. Trust: works from the store
 * alone; the tick's own writes never wait for a lock (main_wait).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "directory.h"
#include "engine_priv.h"
#include "fault.h"
#include "grant.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define EXPIRE_BATCH 64        /* due grants ended by one job (grant_expire_batch) */
#define EXPIRE_HOLD_MS 1000    /* longest a part batch waits to fill while workers are busy */
#define RETRY_SOONER_PER_TICK 1000 /* rows store_retry_sooner() changes in one tick */
#define CLOCK_STEP_SLACK 5     /* seconds the wall clock may lag the monotonic one between ticks */
/* After a step back, how long both scans of tick_clock() run at every tick:
 * a job a worker had begun under the old time (a grant's created_at and
 * expires_at are read before its pair lock, its checks and its add) is
 * recorded after the first scan, and would keep the time run ahead. Both
 * scans are index range reads that find nothing once it is done. */
#define CLOCK_STEP_WINDOW_MS (10 * 60 * 1000)

/* ---- the scheduler's in-flight set (main thread only) ---- */

static unsigned id_bucket(const char *id)
{
	unsigned h = 5381;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = h * 33 + *p;
	return h % INFLIGHT_BUCKETS;
}

static bool inflight_has(struct engine *e, const char *id)
{
	for (struct inflight *f = e->inflight[id_bucket(id)]; f; f = f->next)
		if (strcmp(f->id, id) == 0)
			return true;
	return false;
}

static void inflight_add(struct engine *e, const char *id, struct dirq *q)
{
	struct inflight *f = xmalloc(sizeof(*f));
	unsigned b = id_bucket(id);
	f->id = xstrdup(id);
	f->q = q;
	f->next = e->inflight[b];
	e->inflight[b] = f;
	e->n_inflight++;
	q->n_inflight++;
}

/* The grants one directory may have in flight: its share of the cap, so
 * that one slow directory's backlog never holds up another's expiries. */
static size_t dir_cap(const struct engine *e)
{
	size_t cap = e->n_dirs ? e->inflight_max / e->n_dirs : e->inflight_max;
	return cap ? cap : 1;
}

void scheduler_inflight_del(struct engine *e, const char *id)
{
	for (struct inflight **pp = &e->inflight[id_bucket(id)]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			struct inflight *f = *pp;
			*pp = f->next;
			f->q->n_inflight--;
			free(f->id);
			free(f);
			e->n_inflight--;
			return;
		}
	}
}

static int due_cmp(const void *a, const void *b)
{
	const struct due *x = a, *y = b;
	int c = strcasecmp(x->group_dn, y->group_dn);
	return c != 0 ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * Queues the due active grants gathered for q in batches of one group
 * each: a batch shares its disk syncs, and its grants leave their group
 * with one modify (grant_expire_batch). While q's workers have jobs
 * waiting, a part batch waits (up to EXPIRE_HOLD_MS) for the next ticks to
 * fill it: no worker is idle meanwhile, and a drain of many expiries then
 * needs fewer, fuller modifies. Ownership of the ids passes to the jobs;
 * those the queue refuses are due again next tick.
 */
static void flush_expiries(struct engine *e, struct dirq *q, int64_t now_ms)
{
	bool full = false, busy;
	size_t kept = 0;

	if (q->n_due == 0)
		return;
	pthread_mutex_lock(&q->lock);
	busy = q->len >= (size_t)q->n_workers;
	pthread_mutex_unlock(&q->lock);
	qsort(q->due, q->n_due, sizeof(*q->due), due_cmp);
	for (size_t i = 0; i < q->n_due;) {
		size_t k = 1;
		bool young = now_ms - q->due[i].found_ms < EXPIRE_HOLD_MS;
		while (i + k < q->n_due && k < EXPIRE_BATCH &&
		       strcasecmp(q->due[i + k].group_dn, q->due[i].group_dn) == 0) {
			young = young && now_ms - q->due[i + k].found_ms < EXPIRE_HOLD_MS;
			k++;
		}
		if (k < EXPIRE_BATCH && busy && young && !full) {
			for (size_t m = 0; m < k; m++)
				q->due[kept++] = q->due[i + m];
			i += k;
			continue;
		}
		struct job *j = xcalloc(1, sizeof(*j));
		j->kind = JOB_EXPIRE;
		j->ids = xcalloc(k, sizeof(char *));
		j->keys = xcalloc(k, sizeof(char *));
		for (size_t m = 0; m < k; m++) {
			j->ids[m] = q->due[i + m].id;
			j->keys[m] = q->due[i + m].pair_key;
			free(q->due[i + m].group_dn);
		}
		j->n_ids = k;
		if (full || !workers_enqueue(q, j)) {
			full = true;
			for (size_t m = 0; m < k; m++)
				scheduler_inflight_del(e, j->ids[m]);
			workers_job_free(j);
		}
		i += k;
	}
	q->n_due = kept;
}

void scheduler_flush_held(struct engine *e)
{
	/* INT64_MAX / 2: every part batch is old enough to go now */
	for (size_t i = 0; i < e->n_dirs; i++)
		flush_expiries(e, &e->dirs[i], INT64_MAX / 2);
}

static int schedule_one(const struct grant_rec *r, void *arg)
{
	struct engine *e = arg;
	if (e->n_inflight >= e->inflight_max)
		return 1;
	if (inflight_has(e, r->id))
		return 0;
	struct dirq *q = workers_find_dir(e, r->directory);
	if (!q) /* not read since store_set_directories(); tick_elsewhere() tells */
		return 0;
	if (q->n_inflight >= dir_cap(e))
		return 0; /* at its share: the others' rows go on */
	if (r->state == GS_ACTIVE) {
		/* Expiries due together are ended together: flush_expiries().
		 * store_due yields each row once. */
		if (q->n_due == q->cap_due) {
			q->cap_due = q->cap_due ? 2 * q->cap_due : 64;
			q->due = xrealloc(q->due, q->cap_due * sizeof(*q->due));
		}
		q->due[q->n_due++] = (struct due){ xstrdup(r->group_dn), xstrdup(r->id),
						   xstrdup(r->pair_key), e->due_seq++, mono_ms() };
		inflight_add(e, r->id, q);
		return 0;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = JOB_END;
	j->grant_id = xstrdup(r->id);
	j->end_state = r->state == GS_ACTIVE ? GS_EXPIRED : r->end_state;
	if (!workers_enqueue(q, j)) {
		workers_job_free(j);
		return 1;
	}
	inflight_add(e, r->id, q);
	return 0;
}

/*
 * Directory health, from the main thread: a directory known down gets a
 * probe every retry_min_interval; one that came back has its pending
 * removals made due at once instead of after their backoff.
 */
static void tick_health(struct engine *e, int64_t now)
{
	for (size_t i = 0; i < e->n_dirs; i++) {
		struct dirq *q = &e->dirs[i];
		uint64_t ups = dir_health_recoveries(q->health);
		if (ups != q->seen_recoveries) {
			int64_t n = 0;
			int rc = store_retry_now(e->st, q->name, now, &n);
			/* a busy or failing store: the next tick tries again */
			if (rc == JIT_OK)
				q->seen_recoveries = ups;
			if (rc != JIT_OK && rc != JIT_EBUSY)
				log_err("directory %s: cannot reschedule pending removals", q->name);
			else if (rc == JIT_OK && n > 0)
				log_info("directory %s is back: retrying %lld pending removal(s) now",
					 q->name, (long long)n);
		}
		if (dir_health_probe_due(q->health, mono_ms() / 1000, e->cfg0->retry_min_interval)) {
			struct job *j = xcalloc(1, sizeof(*j));
			j->kind = JOB_PROBE;
			workers_enqueue_front(q, j);
		}
	}
}

/* expiring_soon: one audit event per grant (notifications follow from it).
 * Marked first, so a grant is never warned twice; unmarked when the line
 * cannot be written, so a later tick warns (the line is not lost). */
static int warn_one(const struct grant_rec *r, void *arg)
{
	struct engine *e = arg;
	int64_t now = now_s();
	int rc = store_set_warned(e->st, r->id, now);
	if (rc == JIT_EBUSY)
		return 1; /* the store is locked elsewhere: the next tick warns */
	if (rc != JIT_OK)
		return 0; /* warned meanwhile, or no longer active */
	json_t *o = grant_audit_fields(r);
	json_object_set_new(o, "expires_in", json_integer(r->expires_at - now));
	if (FAULT_FAIL("fail.warn_audit") || audit_write(e->audit, "expiring_soon", o) != JIT_OK) {
		rc = store_clear_warned(e->st, r->id, now);
		log_err("audit: cannot record expiring_soon of %s%s", r->id,
			rc == JIT_OK ? "; tried again at a later tick" : "");
		json_decref(o);
		/* the log is failing: the rest of the pass waits for a later
		 * tick (not two commits and a failed write per grant now) */
		return 1;
	}
	json_decref(o);
	return 0;
}

/*
 * Due grants of a directory that is not in the configuration (removed
 * from jitd.conf while it held live grants) cannot be ended: the scheduler
 * leaves them out (store_set_directories), so that they do not take the
 * places of the others, and says so every ELSEWHERE_EVERY seconds.
 */
#define ELSEWHERE_EVERY 60
static void tick_elsewhere(struct engine *e, int64_t now)
{
	int64_t n = 0;
	char dir[257]; /* config.c: names are at most 256 bytes */
	if (e->elsewhere_checked != 0 && now - e->elsewhere_checked < ELSEWHERE_EVERY)
		return;
	e->elsewhere_checked = now;
	if (store_due_elsewhere(e->st, now, &n, dir, sizeof(dir)) != JIT_OK) {
		log_err("scheduler: cannot look for grants of unconfigured directories");
		return;
	}
	if (n > 0)
		log_err("scheduler: %lld grant(s) are due but their directory (\"%s\"%s) is not in "
			"the configuration: jitd cannot end them until it is configured again",
			(long long)n, dir, n > 1 ? " or another" : "");
}

/* The main handle's wait: none during the tick, MAIN_STORE_WAIT_MS (once)
 * for the requests until the next one. */
static void main_wait(struct engine *e, int ms)
{
	if (store_set_wait(e->st, ms) != JIT_OK)
		log_err("engine: cannot bound the store's wait");
}

/* The longest replication_grace of the directories, as the workers use it:
 * the start-up configuration's (a reload changes it only with a warning). */
static int64_t longest_grace(const struct engine *e)
{
	int64_t h = 0;

	for (size_t i = 0; i < e->cfg0->n_dirs; i++)
		if (e->cfg0->dirs[i].replication_grace > h)
			h = e->cfg0->dirs[i].replication_grace;
	return h;
}

/* Seconds within which every ENDING row's next attempt lies when the clock
 * only moves forward: a retry's backoff, or a check after
 * replication_grace; with a minute to spare. (An ordinary retry's row, with
 * no removed_via, lies within retry_max_interval + 60.) Both from the start-up
 * configuration, which is what the workers scheduled them with. */
static int64_t retry_horizon(const struct engine *e)
{
	int64_t g = longest_grace(e);
	int64_t r = e->cfg0->retry_max_interval;

	return (r > g ? r : g) + 60;
}

/*
 * An active grant created "in the future": it was given while the wall
 * clock ran ahead, which has since been stepped back. Its expires_at was
 * reckoned from the wrong time and would keep the privilege for as long as
 * the clock ran ahead. How long it really has lasted cannot be known, so it
 * is taken as created now: its whole duration (extensions included) from
 * now. (The `granted` line keeps the time it was given.)
 * Store first, then the `rescheduled` line: after a crash in between the
 * log overstates the grant's end, never understates it.
 */
#define SHORTEN_PER_TICK 100
struct shorten {
	struct engine *e;
	int64_t now;
	int64_t seen;
	bool stopped;           /* the store was locked elsewhere */
	bool failed;            /* a row could not be moved: the pass stays open */
};

static int shorten_one(const struct grant_rec *r, void *arg)
{
	struct shorten *s = arg;
	struct grant_rec n = *r;
	char was[32], made[32];
	int rc;

	s->seen++;
	n.created_at = s->now;
	n.expires_at = s->now + (r->expires_at - r->created_at);
	rc = store_reschedule(s->e->st, r, n.created_at, n.expires_at);
	if (rc == JIT_EBUSY) {
		s->stopped = true; /* locked elsewhere: this row and the rest next tick */
		return 1;
	}
	if (rc != JIT_OK && rc != JIT_ENOTFOUND) {
		/* failed: the next rows still go; the pass stays open, so the
		 * next tick tries this one again */
		s->failed = true;
		return 0;
	}
	if (rc != JIT_OK)
		return 0; /* ended, extended or due meanwhile */
	fmt_rfc3339(r->expires_at, was);
	fmt_rfc3339(r->created_at, made);
	log_warn("grant %s: created after the current time (the clock was stepped back); "
		 "its expiry moves from %s to %lld s from now", r->id, was,
		 (long long)(n.expires_at - s->now));
	json_t *o = grant_audit_fields(&n);
	json_object_set_new(o, "previous_expires_at", json_string(was));
	json_object_set_new(o, "previous_created_at", json_string(made));
	json_object_set_new(o, "reason", json_string("clock_stepped_back"));
	if (audit_write(s->e->audit, "rescheduled", o) != JIT_OK)
		log_err("audit: cannot record rescheduled of %s", r->id);
	json_decref(o);
	return 0;
}

/*
 * A wall clock stepped back (NTP correcting a clock that ran ahead, a VM
 * resumed with a wrong time): the retries of removals scheduled under the
 * old time would wait for the clock to catch up with them, for as long as
 * it ran ahead. The tick compares the wall clock's progress with the
 * monotonic clock's, and at start and after a step back makes such rows
 * due now, and shortens the grants given under the old time (shorten_one).
 */
static void tick_clock(struct engine *e, int64_t now)
{
	int64_t mono = mono_ms(), n = 0;

	if (e->tick_mono != 0) {
		int64_t back = (mono - e->tick_mono) / 1000 - (now - e->tick_wall);
		if (back > CLOCK_STEP_SLACK) {
			log_warn("the wall clock was stepped back by about %llds; removals scheduled "
				 "and grants given under the old time are rescheduled",
				 (long long)back);
			e->pull_retries = true;
			e->pull_future = true;
			e->pull_until_mono = mono + CLOCK_STEP_WINDOW_MS;
		}
	}
	bool window = mono < e->pull_until_mono;
	e->tick_wall = now;
	e->tick_mono = mono;
	if (e->pull_retries) {
		int rc = store_retry_sooner(e->st, now, e->cfg0->retry_max_interval + 60,
					    retry_horizon(e), longest_grace(e),
					    RETRY_SOONER_PER_TICK, &n);
		/* locked elsewhere, failed, or more rows than one tick takes:
		 * the next tick (the pass is over only when it was done whole) */
		if (rc == JIT_OK && n < RETRY_SOONER_PER_TICK && !window)
			e->pull_retries = false;
		if (rc != JIT_OK && rc != JIT_EBUSY)
			log_err("scheduler: cannot reschedule removals after a clock step");
		else if (rc == JIT_OK && n > 0)
			log_warn("%lld pending removal(s) were scheduled beyond any retry interval "
				 "(the clock was stepped back): retrying them now", (long long)n);
	}
	if (e->pull_future) {
		struct shorten s = { e, now, 0, false, false };
		int rc = store_created_after(e->st, now + CLOCK_STEP_SLACK, SHORTEN_PER_TICK,
					     shorten_one, &s);
		if (rc < 0)
			log_err("scheduler: cannot read grants created in the future");
		else if (!s.stopped && !s.failed && s.seen < SHORTEN_PER_TICK && !window)
			e->pull_future = false; /* else: the rest at the next tick */
	}
}

/*
 * Reads the due grants of the directories below their share of the cap.
 * Robustness: each directory is read on its own, or a slow directory's
 * oldest rows (in flight, or its backlog) would fill every read and another
 * directory's expiries would wait for that backlog to drain.
 */
static int read_due(struct engine *e, int64_t now)
{
	if (e->n_dirs <= 1)
		return store_due(e->st, now, (int64_t)e->inflight_max, schedule_one, e);
	/* One read per directory, of as many rows as its share: its rows in
	 * flight (the oldest, still due in the store) and its room. Another
	 * directory's backlog never fills it. */
	int ret = 0;
	for (size_t i = 0; i < e->n_dirs; i++) {
		const char *name = e->dirs[i].name;
		if (e->dirs[i].n_inflight >= dir_cap(e))
			continue;
		/* Robustness: a read that fails for one directory (a damaged
		 * page of its part of the index) does not keep the others'
		 * expiries from being read */
		if (store_due_in(e->st, now, (int64_t)dir_cap(e), &name, 1, schedule_one, e) < 0) {
			log_err("scheduler: cannot read the due grants of directory %s", name);
			ret = -1;
		}
	}
	return ret;
}

bool engine_ends_idle(struct engine *e, int64_t now, int64_t horizon)
{
	int64_t when = 0;

	if (e->n_inflight > 0)
		return false;
	for (size_t i = 0; i < e->n_dirs; i++)
		if (e->dirs[i].n_inflight > 0)
			return false;
	return store_next_due(e->st, &when) == JIT_OK && when > now + horizon;
}

void engine_tick(struct engine *e, int64_t now)
{
	if (e->stopped)
		return;
	main_wait(e, 0);
	tick_clock(e, now);
	tick_health(e, now);
	/* At the cap no more due rows are read, but the expiries held back
	 * for a fuller batch are still queued (flush_expiries): they count
	 * against the cap, and only queuing them frees it. */
	if (e->n_inflight < e->inflight_max) {
		/* a row it cannot read is skipped (and logged) by the store:
		 * the others still end; status shows how many there are */
		int64_t skipped = store_rows_skipped(e->st);
		if (read_due(e, now) < 0)
			log_err("scheduler: cannot read due grants");
		e->due_unreadable = store_rows_skipped(e->st) - skipped;
	}
	for (size_t i = 0; i < e->n_dirs; i++)
		flush_expiries(e, &e->dirs[i], mono_ms());
	tick_elsewhere(e, now);
	if (e->cfg->expiring_soon_before > 0 &&
	    store_expiring(e->st, now, e->cfg->expiring_soon_before, 100, warn_one, e) < 0)
		log_err("scheduler: cannot read expiring grants");
	main_wait(e, MAIN_STORE_WAIT_MS);
}
