/*
 * store.h - durable grant state in SQLite (WAL, synchronous=FULL) under
 * state_dir. The only module that includes <sqlite3.h>.
 *
 * One struct store is one SQLite connection; use it from one thread at a
 * time (each engine thread opens its own; SQLite serialises writers, with a
 * busy timeout). Every write is committed (durable) before the function
 * returns, unless the caller opened a transaction with store_begin(), in
 * which case it is durable at store_commit().
 *
 * The grant state machine itself is the grant module (grant.h; its
 * transition table is in grant.c); this module only persists rows and
 * answers queries. State changes are compare-and-set: store_set_state()
 * changes a row only if it is still in the expected state, so two threads
 * can never both apply a transition.
 */
#ifndef JITD_STORE_H
#define JITD_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "err.h"

enum grant_state {
	GS_PENDING = 0,   /* recorded; directory add in progress */
	GS_ACTIVE,        /* membership in place (or standing) until expires_at */
	GS_ENDING,        /* end decided (end_state says why); removal in progress / retrying */
	GS_EXPIRED,
	GS_COMPLETED,
	GS_REVOKED,
	GS_FAILED,
	GS__COUNT
};
#define GS_BIT(s) (1u << (s))
#define GS_LIVE_MASK (GS_BIT(GS_PENDING) | GS_BIT(GS_ACTIVE) | GS_BIT(GS_ENDING))

const char *grant_state_name(enum grant_state s);          /* "pending"...; "?" if bad */
int grant_state_parse(const char *s, enum grant_state *out) JIT_WUR; /* JIT_EBADREQ */

/* One row. Every char * is a heap string owned by the struct, or NULL. */
struct grant_rec {
	char *id;               /* "g-" + 24 hex */
	char *request_id;       /* client's idempotency key, unique, may be NULL */
	enum grant_state state;
	enum grant_state end_state; /* meaningful in GS_ENDING: EXPIRED/COMPLETED/REVOKED/FAILED */
	char *user;             /* the name the client asked for */
	char *user_dn;
	char *user_uuid;        /* entryUUID / objectGUID text, may be NULL */
	char *member_value;     /* the value written to member_attr (DN or uid) */
	char *group_name;
	char *group_dn;
	char *directory;        /* directory name */
	char *member_attr;
	char *placeholder;      /* may be NULL */
	char *pair_key;         /* identifies (directory, group, member value): see grant.c */
	int64_t created_at;
	int64_t expires_at;
	int64_t ended_at;       /* 0 while live */
	int64_t duration;       /* requested seconds (plus extensions) */
	char *ticket, *reason, *requested_by, *approved_by; /* may be NULL */
	char *client;           /* name of the clients entry that asked */
	int64_t peer_uid, peer_pid;
	bool standing;          /* membership existed before jitd: never removed */
	bool add_unknown;       /* recovered pending: its add's outcome is unknown */
	int64_t attempts;       /* failed removal attempts */
	int64_t next_attempt;   /* when an ENDING row is due again */
	char *last_error;       /* may be NULL */
	char *added_via;        /* URI of the server that wrote the membership,
				 * or that an add went to unanswered, or NULL */
	char *added_also_via;   /* another server that wrote it (or left it
				 * unanswered too) after the add to added_via
				 * went unanswered, or NULL */
	char *removed_via;      /* ENDING: removed on this other URI; checked again at
				 * next_attempt (replication_grace). NULL otherwise */
	char *removed_outcome;  /* with removed_via: "removed" or "already_absent" */
	char *end_client;       /* ENDING (and after): the clients entry whose
				 * complete or revoke ended it, or NULL */
	char *end_reason;       /* ... and the reason it gave, or NULL */
	int64_t end_peer_uid, end_peer_pid; /* ... and its peer (with end_client) */
	int64_t list_seq;       /* store_list() only: the row's insertion order
				 * (SQLite rowid), which orders grants of one
				 * second; 0 elsewhere. Never stored */
};
void grant_rec_free(struct grant_rec *r);   /* frees fields and r; NULL-safe */
void grant_rec_clear(struct grant_rec *r);  /* frees fields only */

struct store;

/*
 * Opens state_dir/jitd.db, applies the schema/migrations, WAL,
 * synchronous=FULL, busy timeout. Creates it (mode 0600) only where
 * state_dir holds no store file at all: with a jitd.db-wal or jitd.db-shm
 * left there without their jitd.db it refuses (JIT_ECONFIG, logged), since
 * SQLite would delete that WAL, and the grants in it, when it opened an
 * empty database next to it. jitd itself calls store_init() first.
 */
int store_open(const char *state_dir, struct store **out) JIT_WUR;

/*
 * jitd's start-up, before its first store_open(): makes sure a store that
 * should exist is not silently replaced by an empty one, which would forget
 * every live grant and never remove their memberships. If jitd.db exists
 * and may hold grants, JIT_OK and *created = NULL. An empty file, or a
 * database whose header says schema version 0 with no -wal or -shm beside
 * it, holds nothing (a creation interrupted before SQLite wrote its schema)
 * and is judged like a missing file, side files and all.
 * Otherwise it creates an empty jitd.db (0600, the directory synced) and
 * sets *created to its path (heap; the caller opens the store, then writes
 * the store_created audit line, and frees it), unless refused: JIT_ECONFIG, logged with the path
 * and what to do, when a jitd.db-wal or jitd.db-shm is there (the database
 * they belong to was moved or deleted), or when history is not NULL (why a
 * store should exist, e.g. the audit log has lines; ends the message).
 * init (--init-store) overrides both: the leftover -wal and -shm are then
 * renamed aside (".orphaned-<epoch seconds>"), never deleted.
 */
int store_init(const char *state_dir, const char *history, bool init, char **created) JIT_WUR;
void store_close(struct store *st); /* NULL-safe */

/*
 * How long st waits for a lock. A new handle waits up to 10 s: for SQLite's
 * lock held by another process (an operator's sqlite3 shell, a backup), and
 * without limit for the process's own write lock, which another handle of
 * jitd holds for one statement or transaction (its own wait bounded so).
 * A bounded handle (after this call; for a thread that must not stall, the
 * engine's main loop) waits at most ms for both together; once a wait has
 * run out it waits no more (tries once) until this is called again, so a
 * burst of statements during a long lock costs one wait. ms in 0..10000;
 * not inside a transaction.
 *
 * Every function below that meets a lock it could not get in time fails
 * with JIT_EBUSY and has changed nothing (a transaction: store_begin()).
 */
int store_set_wait(struct store *st, int ms) JIT_WUR;

/* Explicit transaction (BEGIN IMMEDIATE ... COMMIT / ROLLBACK). */
int store_begin(struct store *st) JIT_WUR;
int store_commit(struct store *st) JIT_WUR;
void store_rollback(struct store *st);

/* Inserts r. JIT_EEXISTS if r->id or r->request_id already exists. */
int store_insert(struct store *st, const struct grant_rec *r) JIT_WUR;

/* Loads one row; JIT_ENOTFOUND if absent. *out freed with grant_rec_free. */
int store_get(struct store *st, const char *id, struct grant_rec **out) JIT_WUR;
int store_get_by_request_id(struct store *st, const char *request_id,
			    struct grant_rec **out) JIT_WUR;

/*
 * Compare-and-set state change of one row: only if its state is `from`.
 * to == GS_ENDING: also sets end_state, attempts = 0, next_attempt = now.
 * to is final (EXPIRED..FAILED): also sets ended_at, clears next_attempt.
 * last_error: stored as given (NULL clears).
 * JIT_ENOTFOUND if no row with that id is in state `from`.
 */
int store_set_state(struct store *st, const char *id, enum grant_state from,
		    enum grant_state to, enum grant_state end_state, int64_t now,
		    const char *last_error) JIT_WUR;

/* Who ends a grant: a client's complete or revoke (client NULL: nobody). */
struct store_end_by {
	const char *client, *reason;
	int64_t peer_uid, peer_pid;
};

/* store_set_state() that, for to == GS_ENDING, records who ends it (by may
 * be NULL: nobody) in end_client, end_reason, end_peer_uid, end_peer_pid. */
int store_set_state_by(struct store *st, const char *id, enum grant_state from,
		       enum grant_state to, enum grant_state end_state, int64_t now,
		       const char *last_error, const struct store_end_by *by) JIT_WUR;

/* Records a failed removal attempt of an ENDING row. */
int store_set_retry(struct store *st, const char *id, int64_t attempts,
		    int64_t next_attempt, const char *last_error) JIT_WUR;

/* store_set_retry() that also records whether the directory refused the
 * removal (answered with an error) rather than being unreachable. */
int store_set_retry_kind(struct store *st, const char *id, int64_t attempts,
			 int64_t next_attempt, const char *last_error, bool refused) JIT_WUR;

/* *n = ENDING rows whose last removal attempt the directory refused: they
 * will not succeed without a change by a human (status revocations_failing). */
int store_count_failing(struct store *st, int64_t *n) JIT_WUR;
/* Active grants of the configured directories (store_set_directories)
 * whose expires_at is at or before `before`: expiries whose end has not
 * even been recorded (status expiries_overdue). */
int store_count_overdue(struct store *st, int64_t before, int64_t *n) JIT_WUR;

/* Makes every ENDING row of directory due at now (it came back after an
 * outage), except those waiting for their check after replication_grace.
 * *n = rows changed. */
int store_retry_now(struct store *st, const char *directory, int64_t now, int64_t *n) JIT_WUR;

/* Makes due at now ENDING rows whose next attempt lies further ahead than
 * any can, unless the clock was stepped back since it was scheduled: more
 * than plain seconds for an ordinary retry (at most retry_max_interval
 * ahead), more than horizon (>= plain) for a row with removed_via (a check
 * after replication_grace, or a retry). A row waiting for its check after a
 * removal made elsewhere (removed_via) is due at now + grace instead: the
 * grace is what lets a late add arrive. At most limit rows; *n = rows
 * changed. */
int store_retry_sooner(struct store *st, int64_t now, int64_t plain, int64_t horizon,
		       int64_t grace,
		       int64_t limit, int64_t *n) JIT_WUR;

/* Records which server (URI) wrote the membership of grant id. */
int store_set_added_via(struct store *st, const char *id, const char *uri,
			const char *also) JIT_WUR;

/*
 * An ENDING row whose membership was removed on removed_via, another server
 * than the one that wrote it, with that outcome ("removed" or
 * "already_absent"): check it again at verify_at (next_attempt; attempts =
 * 0, last_error cleared). JIT_ENOTFOUND if the row is not ENDING.
 */
int store_set_verify(struct store *st, const char *id, const char *removed_via,
		     const char *outcome, int64_t verify_at) JIT_WUR;

/*
 * extend: sets expires_at and duration of an ACTIVE row whose expires_at is
 * still `from` and later than now (compare-and-set). JIT_ENOTFOUND if it is
 * not: ended, due, or moved meanwhile.
 */
int store_set_expiry(struct store *st, const char *id, int64_t from, int64_t expires_at,
		     int64_t duration, int64_t now) JIT_WUR;

/*
 * The scheduler's expiry: ACTIVE -> ENDING with end_state EXPIRED (as
 * store_set_state() does) only if the row's expires_at is still <= now.
 * JIT_ENOTFOUND if the row is not active or no longer due (extended after
 * the caller read it: the extension wins).
 */
int store_expire_due(struct store *st, const char *id, int64_t now) JIT_WUR;

/*
 * Among the live rows (pending, active, ending) with pair_key whose state is
 * in state_mask (GS_BIT()s; final states in it match nothing), other than
 * exclude_id (may be NULL): *count, and *any_jitd = true if at least one of
 * them has standing == false.
 */
/* As store_pair_live, counting only the rows of the same membership: with
 * exact_value (memberUid, which compares case), those whose member_value is
 * exactly it, whoever's; else those of user uuid (NULL: those without
 * one). A pair key can be shared by two users (a DN given to a new entry
 * after a rename) or two memberUid values differing in case. */
int store_pair_live_same(struct store *st, const char *pair_key, const char *exclude_id,
			 unsigned state_mask, const char *uuid, const char *exact_value,
			 int64_t *count, bool *any_jitd) JIT_WUR;
int store_pair_live(struct store *st, const char *pair_key, const char *exclude_id,
		    unsigned state_mask, int64_t *count, bool *any_jitd) JIT_WUR;

/* Calls fn with the directory, group DN and member attribute of each live
 * grant of the user with this DN (compared case-blind), at most 256, until
 * it returns true (*hit). */
int store_user_live_groups(struct store *st, const char *user_dn,
			   bool (*fn)(const char *directory, const char *group_dn,
				      const char *member_attr, void *arg),
			   void *arg, bool *hit) JIT_WUR;

/* *count = live rows (pending, active, ending) of the user with this DN,
 * compared case-blind (max_active_per_user). Use inside the transaction
 * that inserts the next grant so that the limit holds under concurrency. */
int store_count_user_live(struct store *st, const char *user_dn, int64_t *count) JIT_WUR;

/* The live rows of pair_key of the same membership (uuid, exact_value: as
 * store_pair_live_same) other than except_id take on add_unknown: an add
 * of it whose outcome is unknown may still be applied, so the end of
 * whichever keeps the membership is checked after the grace. */
int store_pair_take_unknown(struct store *st, const char *pair_key, const char *except_id,
			    const char *uuid, const char *exact_value) JIT_WUR;

/* The same rows take on two writers:
 * added_via (a server whose add went unanswered) and also (the one that
 * wrote it after); a row's own writer, when another, becomes its second;
 * rows with two already are left. For an ending grant whose membership
 * another grant keeps: the one that ends last removes it from both. */
int store_pair_take_writers(struct store *st, const char *pair_key, const char *except_id,
			    const char *uuid, const char *exact_value, const char *added_via,
			    const char *also) JIT_WUR;
/* Sets standing = false on every live row of pair_key of the same
 * membership (jitd now owns it): with exact_value (memberUid) the rows of
 * that very value, else those of user uuid (as store_pair_live_same). */
int store_pair_clear_standing(struct store *st, const char *pair_key, const char *uuid,
			      const char *exact_value) JIT_WUR;
/* Sets standing on the same rows: an add found the membership there after
 * the check had not (someone else made it meanwhile), so no grant of it
 * owns it. */
int store_pair_set_standing(struct store *st, const char *pair_key, const char *uuid,
			    const char *exact_value) JIT_WUR;

struct store_filter {
	const char *user;       /* NULL = any */
	const char *group;      /* group name; NULL = any */
	unsigned state_mask;    /* GS_BIT()s; 0 = GS_LIVE_MASK */
	int64_t limit;          /* <= 0 means 1000 */
};
/* Calls cb for each matching row, newest first; stops early if cb returns
 * non-zero (that value is returned). The rec passed to cb is freed after. */
typedef int (*store_cb)(const struct grant_rec *r, void *arg);
int store_list(struct store *st, const struct store_filter *f, store_cb cb, void *arg) JIT_WUR;
/* The row limit the store's queries apply for limit: the default when it
 * is <= 0, at most STORE_MAX_LIMIT (what store_list() yields at most). */
int64_t store_list_limit(int64_t limit);

/*
 * Rows that need the engine now: ACTIVE with expires_at <= now, and ENDING
 * with next_attempt <= now; at most limit, oldest due first.
 *
 * Robustness: this read and store_due_in(), store_expiring() and
 * store_created_after() skip a row that cannot be read (a state or
 * end_state they do not know, or an ENDING row without its end_state: a
 * damaged or hand-edited row) and go on with the others, so one such row
 * cannot stop every expiry. A skipped row still counts against limit. The
 * other reads fail on it (JIT_EIO): those decide about one pair or group,
 * where a row left out could be a grant that still needs the membership.
 * Skipped rows are logged with their ids (at most once a minute per
 * handle, with how many were skipped in between) and counted:
 * store_rows_skipped().
 */
int store_due(struct store *st, int64_t now, int64_t limit, store_cb cb, void *arg) JIT_WUR;
/* store_due of the directories names[0..n) only (a subset of those
 * store_set_directories() gave). */
int store_due_in(struct store *st, int64_t now, int64_t limit, const char *const *names,
		 size_t n, store_cb cb, void *arg) JIT_WUR;

/* Rows the reads above skipped on this handle since it was opened. */
int64_t store_rows_skipped(const struct store *st);

/*
 * Limits store_due() of this handle to the grants of these directories
 * (the configured ones): the grants of a directory missing from the
 * configuration cannot be ended, and must not take the places of those that
 * can. Names must not contain 0x1f.
 */
void store_set_directories(struct store *st, const char *const *names, size_t n);

/*
 * The rows store_due() leaves out for their directory: how many are due
 * now (*n), and the first such directory's name (dir, "" if none).
 * Reads the due rows only.
 */
int store_due_elsewhere(struct store *st, int64_t now, int64_t *n, char *dir,
			size_t dirlen) JIT_WUR;

/*
 * Calls cb for each live row (pending, active, ending) whose pair key
 * starts with prefix: grant_pair_key() with an empty value, so the grants
 * of one group DN and attribute in one directory, whatever group name they
 * were made under. At most limit rows (store_list_limit()), in no
 * particular order. JIT_EINTERNAL if prefix does not end with a newline.
 */
int store_group_live(struct store *st, const char *prefix, int64_t limit, store_cb cb,
		     void *arg) JIT_WUR;

/* Calls cb for each ENDING row of pair_key, oldest first (see store_list). */
int store_pair_ending(struct store *st, const char *pair_key, store_cb cb, void *arg) JIT_WUR;
/*
 * Active grants not warned yet whose expires_at is in (now, now + before]
 * and whose duration is longer than before (a grant that short would be
 * warned at once): at most limit, soonest first. For expiring_soon. Skips
 * a row it cannot read, as store_due() does.
 */
int store_expiring(struct store *st, int64_t now, int64_t before, int64_t limit, store_cb cb,
		   void *arg) JIT_WUR;
/* Calls cb for ACTIVE rows created after t (the clock was stepped back
 * since: created_at lies in the future), at most limit, oldest first;
 * stops early if cb returns non-zero (that value is returned). Skips a
 * row it cannot read, as store_due() does. */
int store_created_after(struct store *st, int64_t t, int64_t limit, store_cb cb,
			void *arg) JIT_WUR;
/* Moves ACTIVE row r's created_at and expires_at (compare-and-set on both
 * as r holds them; JIT_ENOTFOUND if either moved or the row is no longer
 * active). For a grant created under a clock since stepped back. */
int store_reschedule(struct store *st, const struct grant_rec *r, int64_t created_at,
		     int64_t expires_at) JIT_WUR;
/* Records that grant id was warned; JIT_ENOTFOUND if it already was or is
 * no longer active (so each grant is warned once). */
int store_set_warned(struct store *st, const char *id, int64_t now) JIT_WUR;
/* Undoes store_set_warned(id, when) when its warning could not be written,
 * so that a later tick writes it (JIT_ENOTFOUND: marked otherwise since). */
int store_clear_warned(struct store *st, const char *id, int64_t when) JIT_WUR;

/* Earliest time anything becomes due (INT64_MAX if nothing is live). */
int store_next_due(struct store *st, int64_t *when) JIT_WUR;

/* counts[s] = number of rows in state s. */
int store_counts(struct store *st, int64_t counts[GS__COUNT]) JIT_WUR;

/* Crash recovery at start-up: every PENDING row (never acknowledged to a
 * client) becomes ENDING with end_state FAILED, due now. *n = rows changed. */
int store_recover(struct store *st, int64_t now, int64_t *n) JIT_WUR;

/* Diagnostics and tests: SQLite's EXPLAIN QUERY PLAN of one of this
 * module's prepared queries by name ("due", "next_due", "pair_live",
 * "list", "list_user", "get", ...), detail lines joined with "; ".
 * *out freed with free(). JIT_ENOTFOUND for an unknown name. */
int store_explain(struct store *st, const char *query, char **out) JIT_WUR;

#endif
