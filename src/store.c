/*
 * store.c - durable grant state: the SQLite schema and its migrations, and
 * every query the engine runs, prepared once per connection and reused.
 * Trust boundary: the database under state_dir is trusted only as far as
 * its permissions protect it, so open refuses a state_dir that group or
 * others may write and keeps jitd.db at 0600. Rows read back are still
 * checked (state names) so a hand-edited database yields JIT_EIO, never
 * undefined behaviour. The only file that includes <sqlite3.h>.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "directory.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define STORE_DB_NAME "jitd.db"
#define STORE_BUSY_MS 10000
/* Page size of a new store. A state change rewrites a page of the table
 * and of each index it touches (35 to 40 pages for a grant and its end):
 * with 1 KB pages that is 41 KB of WAL to write and sync instead of 143 KB
 * with SQLite's default 4 KB (docs/performance.md). An existing store keeps
 * the size it was made with. */
#define STORE_PAGE_SIZE "1024"
/* WAL bytes between checkpoints: SQLite checkpoints inside the commit
 * that takes the WAL past wal_autocheckpoint pages, and that commit is
 * what the 99th percentile of a grant sees. SQLite's default (1000
 * pages) is 4 MB with its default 4 KB pages but would be 1 MB with 1 KB
 * ones; the limit is set in pages from this, whatever the page size. */
#define STORE_CHECKPOINT_BYTES (4L * 1024 * 1024)
#define STORE_DEFAULT_LIMIT 1000
/* Robustness: list/due results are read completely before any callback
 * runs (so callbacks may use the store); this bounds the memory that takes. */
#define STORE_MAX_LIMIT 100000

static const char *const state_names[GS__COUNT] = {
	"pending", "active", "ending", "expired", "completed", "revoked", "failed",
};

const char *grant_state_name(enum grant_state s)
{
	if ((unsigned)s >= GS__COUNT)
		return "?";
	return state_names[s];
}

int grant_state_parse(const char *s, enum grant_state *out)
{
	for (unsigned i = 0; s && i < GS__COUNT; i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum grant_state)i;
			return JIT_OK;
		}
	}
	return JIT_EBADREQ;
}

static bool state_final(enum grant_state s)
{
	return s >= GS_EXPIRED && s < GS__COUNT;
}

/*
 * The columns of `grants`, in the order of GRANT_COLS, and where each lives
 * in struct grant_rec. store_open() checks the two agree. end_state is NULL
 * in the database while it means nothing (GS_PENDING, the zero value).
 */
enum fld_type { F_TEXT, F_INT, F_BOOL, F_STATE, F_END_STATE };
struct fld {
	const char *col;
	enum fld_type type;
	size_t off;
};
/* clang-format off */
#define FLD(name, type) { #name, type, offsetof(struct grant_rec, name) }
/* clang-format on */
static const struct fld fields[] = {
	FLD(id, F_TEXT),           FLD(request_id, F_TEXT),
	FLD(state, F_STATE),       FLD(end_state, F_END_STATE),
	FLD(user, F_TEXT),         FLD(user_dn, F_TEXT),
	FLD(user_uuid, F_TEXT),    FLD(member_value, F_TEXT),
	FLD(group_name, F_TEXT),   FLD(group_dn, F_TEXT),
	FLD(directory, F_TEXT),    FLD(member_attr, F_TEXT),
	FLD(placeholder, F_TEXT),  FLD(pair_key, F_TEXT),
	FLD(created_at, F_INT),    FLD(expires_at, F_INT),
	FLD(ended_at, F_INT),      FLD(duration, F_INT),
	FLD(ticket, F_TEXT),       FLD(reason, F_TEXT),
	FLD(requested_by, F_TEXT), FLD(approved_by, F_TEXT),
	FLD(client, F_TEXT),       FLD(peer_uid, F_INT),
	FLD(peer_pid, F_INT),      FLD(standing, F_BOOL),
	FLD(attempts, F_INT),      FLD(next_attempt, F_INT),
	FLD(last_error, F_TEXT),
	FLD(added_via, F_TEXT),    FLD(removed_via, F_TEXT),
	FLD(removed_outcome, F_TEXT),
};
#define NFIELDS ((int)(sizeof(fields) / sizeof(fields[0])))

#define GRANT_COLS                                                                                 \
	"id, request_id, state, end_state, user, user_dn, user_uuid, member_value, "               \
	"group_name, group_dn, directory, member_attr, placeholder, pair_key, "                    \
	"created_at, expires_at, ended_at, duration, ticket, reason, requested_by, "               \
	"approved_by, client, peer_uid, peer_pid, standing, attempts, next_attempt, "              \
	"last_error, added_via, removed_via, removed_outcome"
/* Seven parameters, one per state: the name if its bit is in the mask,
 * else NULL (which matches nothing), so that `state` can use an index.
 * Numbered explicitly: a bare ? after ?8 would become ?9. */
#define STATE_IN_1 "state IN (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
#define STATE_IN_3 "state IN (?3, ?4, ?5, ?6, ?7, ?8, ?9)"

void grant_rec_clear(struct grant_rec *r)
{
	if (!r)
		return;
	for (int i = 0; i < NFIELDS; i++)
		if (fields[i].type == F_TEXT)
			free(*(char **)((char *)r + fields[i].off));
	memset(r, 0, sizeof(*r));
}

void grant_rec_free(struct grant_rec *r)
{
	grant_rec_clear(r);
	free(r);
}

/*
 * Schema history. Entry i takes user_version i to i + 1; never edit an
 * entry once released, append one (ALTER TABLE ... ADD COLUMN) instead.
 */
static const char *const migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE grants ("
	" id TEXT PRIMARY KEY NOT NULL,"
	" request_id TEXT UNIQUE,"
	" state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'ending',"
	"  'expired', 'completed', 'revoked', 'failed')),"
	" end_state TEXT CHECK (end_state IS NULL OR end_state IN ('expired',"
	"  'completed', 'revoked', 'failed')),"
	" user TEXT NOT NULL, user_dn TEXT NOT NULL, user_uuid TEXT,"
	" member_value TEXT NOT NULL, group_name TEXT NOT NULL,"
	" group_dn TEXT NOT NULL, directory TEXT NOT NULL,"
	" member_attr TEXT NOT NULL, placeholder TEXT, pair_key TEXT NOT NULL,"
	" created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
	" ended_at INTEGER NOT NULL DEFAULT 0, duration INTEGER NOT NULL,"
	" ticket TEXT, reason TEXT, requested_by TEXT, approved_by TEXT, client TEXT,"
	" peer_uid INTEGER NOT NULL, peer_pid INTEGER NOT NULL,"
	" standing INTEGER NOT NULL DEFAULT 0 CHECK (standing IN (0, 1)),"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT);"
	"CREATE INDEX grants_active_due ON grants (state, expires_at);"
	"CREATE INDEX grants_ending_due ON grants (state, next_attempt);"
	"CREATE INDEX grants_pair ON grants (pair_key, state);"
	"CREATE INDEX grants_user ON grants (user, created_at);"
	"CREATE INDEX grants_group ON grants (group_name, created_at);",
	/* 2: whether the last removal attempt of an ending row was refused by
	 * the directory (an answer, not an outage): status revocations_failing. */
	"ALTER TABLE grants ADD COLUMN refused INTEGER NOT NULL DEFAULT 0"
	" CHECK (refused IN (0, 1));",
	/* 3: when the expiring_soon warning of an active grant was written. */
	"ALTER TABLE grants ADD COLUMN warned_at INTEGER NOT NULL DEFAULT 0;",
	/* 4: which server (URI) wrote the membership, and where it was removed
	 * when that was another one (then checked again after the grace). */
	"ALTER TABLE grants ADD COLUMN added_via TEXT;"
	"ALTER TABLE grants ADD COLUMN removed_via TEXT;"
	"ALTER TABLE grants ADD COLUMN removed_outcome TEXT;",
	/* 5: a million live grants. `list` reads newest first per state from
	 * an index instead of sorting every live row; max_active_per_user
	 * counts a user's live grants from an index; status reads the counts
	 * per state that triggers keep, instead of counting every row. (IF
	 * [NOT] EXISTS: a file taken back to an older version by hand
	 * migrates again.) */
	"CREATE INDEX IF NOT EXISTS grants_state_created ON grants (state, created_at);"
	"DROP INDEX IF EXISTS grants_group;"
	"CREATE INDEX IF NOT EXISTS grants_group_state ON grants (group_name, state, created_at);"
	"CREATE INDEX IF NOT EXISTS grants_user_dn ON grants (user_dn COLLATE NOCASE, state);"
	"CREATE TABLE IF NOT EXISTS grant_counts (state TEXT PRIMARY KEY NOT NULL,"
	" n INTEGER NOT NULL) WITHOUT ROWID;"
	"DELETE FROM grant_counts;"
	"INSERT INTO grant_counts (state, n) SELECT state, count(*) FROM grants GROUP BY state;"
	"CREATE TRIGGER IF NOT EXISTS grant_counts_insert AFTER INSERT ON grants BEGIN"
	" INSERT INTO grant_counts (state, n) VALUES (new.state, 1)"
	"  ON CONFLICT (state) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER IF NOT EXISTS grant_counts_update AFTER UPDATE OF state ON grants"
	" WHEN old.state IS NOT new.state BEGIN"
	" UPDATE grant_counts SET n = n - 1 WHERE state = old.state;"
	" INSERT INTO grant_counts (state, n) VALUES (new.state, 1)"
	"  ON CONFLICT (state) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER IF NOT EXISTS grant_counts_delete AFTER DELETE ON grants BEGIN"
	" UPDATE grant_counts SET n = n - 1 WHERE state = old.state; END;",
	/* 6: the indexes that only the live states use hold only their rows
	 * (partial indexes, `state` no longer in the key), so a grant's state
	 * changes rewrite fewer index pages: fewer WAL frames to write and
	 * sync per transaction (docs/performance.md). The queries that need
	 * them name them (INDEXED BY): the planner cannot be left to prefer
	 * grants_state_created, which would read every active row. */
	"DROP INDEX IF EXISTS grants_active_due;"
	"CREATE INDEX grants_active_due ON grants (expires_at) WHERE state = 'active';"
	"DROP INDEX IF EXISTS grants_ending_due;"
	"CREATE INDEX grants_ending_due ON grants (next_attempt) WHERE state = 'ending';"
	"DROP INDEX IF EXISTS grants_user_dn;"
	"CREATE INDEX grants_user_dn ON grants (user_dn COLLATE NOCASE)"
	" WHERE state IN ('pending', 'active', 'ending');",
	/* 7: pair keys hold the group DN in one canonical form (dir_pair_key),
	 * no longer as jitd.conf spelled it: a grant made under
	 * "cn=dba,ou=groups,..." and one made under "cn=dba, ou=groups, ..."
	 * after a reload are the same pair. Only the live rows' keys are read
	 * (the pair queries look at live rows only), and only those of a group
	 * DN spelled otherwise are rewritten. Each distinct DN is parsed once
	 * (an aggregate in HAVING, which SQLite cannot move into the WHERE),
	 * and the rows are read by a table scan (+state: not through an index,
	 * which would read them in random order). The rest of the key was and
	 * stays lower-cased. */
	"UPDATE grants SET pair_key = lower(directory) || char(10) || jitd_dn_key(group_dn)"
	" || char(10) || lower(member_attr) || char(10) || lower(member_value)"
	" WHERE +state IN ('pending', 'active', 'ending') AND group_dn IN"
	" (SELECT min(group_dn) FROM grants WHERE +state IN ('pending', 'active', 'ending')"
	"  GROUP BY group_dn HAVING jitd_dn_key(min(group_dn)) IS NOT lower(min(group_dn)));"
	/* Two spellings of one DN were two pairs: a grant under the second
	 * spelling found the first one's member and recorded it as standing.
	 * Now one pair, their flags must agree, or the pair's last end would
	 * keep (standing) what jitd added. Within one old key the flags always
	 * agreed (record_pending), so a pair with both comes only from such a
	 * merge, and there a live grant with standing = 0 means jitd added
	 * the member: it owns it. */
	"UPDATE grants SET standing = 0 WHERE standing = 1 AND +state IN ('pending', 'active', 'ending')"
	" AND EXISTS (SELECT 1 FROM grants AS o WHERE o.pair_key = grants.pair_key"
	"  AND o.state IN ('pending', 'active', 'ending') AND o.standing = 0);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* A directory named in a store_set_directories() list (separator 0x1f,
 * which a configured name cannot hold: config.c allows printable
 * characters only), or any directory when the list is NULL. */
#define DIR_SEP '\x1f'
#define IN_DIRS(param) "(" param " IS NULL OR instr(" param ", char(31) || directory || char(31)) > 0)"

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_INSERT,
	S_GET,
	S_GET_REQ,
	S_TO_ENDING,
	S_TO_FINAL,
	S_TO_OTHER,
	S_RETRY,
	S_EXPIRY,
	S_EXPIRE_DUE,
	S_PAIR_LIVE,
	S_PAIR_CLEAR,
	S_LIST,
	S_LIST_USER,
	S_LIST_GROUP,
	S_LIST_BOTH,
	S_DUE,
	S_DUE_ELSEWHERE,
	S_NEXT_DUE,
	S_COUNTS,
	S_RECOVER,
	S_USER_LIVE,
	S_COUNT_FAILING,
	S_RETRY_NOW,
	S_PAIR_ENDING,
	S_EXPIRING,
	S_WARNED,
	S_ADDED_VIA,
	S_VERIFY,
	S__COUNT
};

/* Parameters of the list queries: ?1..?7 states, ?8 user, ?9 group, ?10 limit.
 * Newest first among many rows of the wanted states: one arm per state
 * (?1..?7: the name, or NULL for a state not asked for), each read in
 * order from an index on (..., state, created_at), merged; LIMIT stops
 * them early. */
#define LIST_ARM(where, n)                                                                         \
	"SELECT " GRANT_COLS ", created_at AS c_at, rowid AS r_id FROM grants WHERE " where       \
	"state = ?" #n
#define LIST_SQL(where)                                                                            \
	LIST_ARM(where, 1) " UNION ALL " LIST_ARM(where, 2) " UNION ALL " LIST_ARM(where, 3)       \
	" UNION ALL " LIST_ARM(where, 4) " UNION ALL " LIST_ARM(where, 5)                          \
	" UNION ALL " LIST_ARM(where, 6) " UNION ALL " LIST_ARM(where, 7)                          \
	" ORDER BY c_at DESC, r_id DESC LIMIT ?10"
/* A user has few grants: their index, whatever else is asked. */
#define LIST_USER_SQL(where)                                                                       \
	"SELECT " GRANT_COLS " FROM grants INDEXED BY grants_user WHERE " where STATE_IN_1         \
	" ORDER BY created_at DESC, rowid DESC LIMIT ?10"

static const struct {
	const char *name;
	const char *sql;
} stmt_sql[S__COUNT] = {
	[S_BEGIN] = { "begin", "BEGIN IMMEDIATE" },
	[S_COMMIT] = { "commit", "COMMIT" },
	[S_ROLLBACK] = { "rollback", "ROLLBACK" },
	[S_INSERT] = { "insert", "INSERT INTO grants (" GRANT_COLS ") VALUES "
				 "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)" },
	[S_GET] = { "get", "SELECT " GRANT_COLS " FROM grants WHERE id = ?1" },
	[S_GET_REQ] = { "get_by_request_id",
			"SELECT " GRANT_COLS " FROM grants WHERE request_id = ?1" },
	/* set_state: ?1 id, ?2 from, ?3 to, ?4 end_state, ?5 now, ?6 last_error */
	[S_TO_ENDING] = { "to_ending", "UPDATE grants SET state = ?3, end_state = ?4,"
				       " attempts = 0, next_attempt = ?5, last_error = ?6"
				       " WHERE id = ?1 AND state = ?2" },
	[S_TO_FINAL] = { "to_final",
			 "UPDATE grants SET state = ?3, ended_at = ?5,"
			 " next_attempt = 0, last_error = ?6 WHERE id = ?1 AND state = ?2" },
	[S_TO_OTHER] = { "to_other", "UPDATE grants SET state = ?3, last_error = ?6"
				     " WHERE id = ?1 AND state = ?2" },
	[S_RETRY] = { "retry", "UPDATE grants SET attempts = ?2, next_attempt = ?3,"
			       " last_error = ?4, refused = ?5 WHERE id = ?1 AND state = 'ending'" },
	/* extend: a compare-and-set on the expiry that was checked, which
	 * must not have passed (an extension never revives a due grant) */
	[S_EXPIRY] = { "expiry", "UPDATE grants SET expires_at = ?2, duration = ?3"
				 " WHERE id = ?1 AND state = 'active' AND expires_at = ?4"
				 " AND expires_at > ?5" },
	/* The scheduler's expiry: a compare-and-set on expires_at as well, so
	 * that an extend committed after the row was read wins. */
	[S_EXPIRE_DUE] = { "expire_due", "UPDATE grants SET state = 'ending',"
					 " end_state = 'expired', attempts = 0, next_attempt = ?2,"
					 " last_error = NULL"
					 " WHERE id = ?1 AND state = 'active' AND expires_at <= ?2" },
	[S_PAIR_LIVE] = { "pair_live",
			  "SELECT count(*), coalesce(max(standing = 0), 0)"
			  " FROM grants WHERE pair_key = ?1 AND id IS NOT ?2 AND " STATE_IN_3 },
	[S_PAIR_CLEAR] = { "pair_clear_standing",
			   "UPDATE grants SET standing = 0"
			   " WHERE pair_key = ?1 AND state IN ('pending', 'active', 'ending')"
			   " AND standing <> 0" },
	[S_LIST] = { "list", LIST_SQL("") },
	[S_LIST_USER] = { "list_user", LIST_USER_SQL("user = ?8 AND ") },
	[S_LIST_GROUP] = { "list_group", LIST_SQL("group_name = ?9 AND ") },
	[S_LIST_BOTH] = { "list_both", LIST_USER_SQL("user = ?8 AND group_name = ?9 AND ") },
	/* Two index range scans merged in due order: LIMIT stops both early. */
	/* ?3: the configured directories (store_set_directories), NULL = all */
	[S_DUE] = { "due", "SELECT " GRANT_COLS ", expires_at AS due FROM grants"
			   " INDEXED BY grants_active_due WHERE state = 'active' AND expires_at <= ?1"
			   " AND " IN_DIRS("?3")
			   " UNION ALL SELECT " GRANT_COLS ", next_attempt FROM grants"
			   " INDEXED BY grants_ending_due"
			   " WHERE state = 'ending' AND next_attempt <= ?1 AND " IN_DIRS("?3")
			   " ORDER BY due LIMIT ?2" },
	[S_DUE_ELSEWHERE] = { "due_elsewhere",
			      "SELECT count(*), min(directory) FROM (SELECT directory FROM grants"
			      " INDEXED BY grants_active_due WHERE state = 'active'"
			      " AND expires_at <= ?1 AND ?2 IS NOT NULL AND NOT " IN_DIRS("?2")
			      " UNION ALL SELECT directory FROM grants INDEXED BY grants_ending_due"
			      " WHERE state = 'ending' AND next_attempt <= ?1 AND ?2 IS NOT NULL"
			      " AND NOT " IN_DIRS("?2") ")" },
	[S_NEXT_DUE] = { "next_due",
			 "SELECT (SELECT min(expires_at) FROM grants INDEXED BY grants_active_due"
			 " WHERE state = 'active'), (SELECT min(next_attempt) FROM grants"
			 " INDEXED BY grants_ending_due WHERE state = 'ending')" },
	[S_COUNTS] = { "counts", "SELECT state, n FROM grant_counts" },
	[S_RECOVER] = { "recover", "UPDATE grants SET state = 'ending',"
				   " end_state = 'failed', attempts = 0, next_attempt = ?1"
				   " WHERE state = 'pending'" },
	/* The user's live rows, from grants_user_dn (which holds only those). */
	[S_USER_LIVE] = { "user_live",
			  "SELECT count(*) FROM grants WHERE state IN ('pending', 'active',"
			  " 'ending') AND user_dn = ?1 COLLATE NOCASE" },
	[S_COUNT_FAILING] = { "count_failing", "SELECT count(*) FROM grants"
					       " WHERE state = 'ending' AND refused <> 0" },
	/* ?1 directory, ?2 now */
	[S_RETRY_NOW] = { "retry_now", "UPDATE grants SET next_attempt = ?2"
				       " WHERE state = 'ending' AND next_attempt > ?2"
				       " AND directory = ?1 AND removed_via IS NULL" },
	[S_PAIR_ENDING] = { "pair_ending", "SELECT " GRANT_COLS " FROM grants"
					   " WHERE pair_key = ?1 AND state = 'ending'"
					   " ORDER BY created_at, rowid" },
	/* ?1 now + before, ?2 now, ?3 before, ?4 limit: uses grants_active_due. */
	[S_EXPIRING] = { "expiring", "SELECT " GRANT_COLS " FROM grants"
				     " INDEXED BY grants_active_due WHERE state = 'active'"
				     " AND expires_at <= ?1 AND expires_at > ?2 AND warned_at = 0"
				     " AND duration > ?3 ORDER BY expires_at LIMIT ?4" },
	[S_WARNED] = { "warned", "UPDATE grants SET warned_at = ?2"
				 " WHERE id = ?1 AND state = 'active' AND warned_at = 0" },
	[S_ADDED_VIA] = { "added_via", "UPDATE grants SET added_via = ?2 WHERE id = ?1" },
	[S_VERIFY] = { "verify", "UPDATE grants SET removed_via = ?2, next_attempt = ?3,"
				 " removed_outcome = ?4, attempts = 0, last_error = NULL, refused = 0"
				 " WHERE id = ?1 AND state = 'ending'" },
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S__COUNT];
	bool in_tx;
	char *dirs; /* store_set_directories(): "\x1fname\x1f...\x1f", or NULL */
	int wait_ms;  /* store_set_wait(): the longest wait for a lock */
	bool bounded; /* store_set_wait() was called: waits end in JIT_EBUSY */
	bool spent;   /* bounded: a wait ran out; no more waiting until re-armed */
};

/*
 * Every handle of this process (one per engine worker) takes write_lock for
 * each write: a transaction holds it from BEGIN to COMMIT/ROLLBACK, a write
 * outside one for its statement. Writers then queue here, in order, instead
 * of meeting SQLite's busy handler, which sleeps 1 to 100 ms between tries
 * and made concurrent grants wait for nothing. Other processes (jitctl, a
 * second jitd refused by the pid file) are still met by the busy timeout.
 * Reads take no lock (WAL: readers never wait for the writer).
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

/* A bounded handle's wait ran out: it waits no more until store_set_wait()
 * re-arms it, so a burst of statements during a long lock costs one wait. */
static void wait_spent(struct store *st)
{
	if (!st->bounded || st->spent)
		return;
	st->spent = true;
	if (sqlite3_busy_timeout(st->db, 0) != SQLITE_OK)
		log_err("store: busy timeout: %s", sqlite3_errmsg(st->db));
}

/*
 * Logs the connection's last error and maps it: JIT_EBUSY when another
 * process held the database's lock past the wait (nothing was changed),
 * else JIT_EIO. A bounded handle's caller says what it does about a busy
 * store, so that is only a debug line there.
 */
static int db_fail(struct store *st, const char *what)
{
	int code = sqlite3_extended_errcode(st->db);

	if ((code & 0xff) != SQLITE_BUSY) {
		log_err("store: %s: %s (%d)", what, sqlite3_errmsg(st->db), code);
		return JIT_EIO;
	}
	if (st->bounded)
		log_debug("store: %s: %s (%d)", what, sqlite3_errmsg(st->db), code);
	else
		log_err("store: %s: %s (%d)", what, sqlite3_errmsg(st->db), code);
	wait_spent(st);
	return JIT_EBUSY;
}

/*
 * Takes write_lock for a write of st. An ordinary handle waits as long as
 * it takes (the holder's own wait is bounded by STORE_BUSY_MS). A bounded
 * handle waits at most its wait_ms (none once spent), and SQLite's wait for
 * another process then gets what is left of it: JIT_EBUSY if it ran out.
 */
static int lock_writes(struct store *st)
{
	struct timespec dl;
	int64_t start, left;
	int rc;

	if (!st->bounded) {
		pthread_mutex_lock(&write_lock);
		return JIT_OK;
	}
	left = st->spent ? 0 : st->wait_ms;
	start = mono_ms();
	if (left == 0) {
		rc = pthread_mutex_trylock(&write_lock);
	} else if (clock_gettime(CLOCK_MONOTONIC, &dl) != 0) {
		log_err("store: clock_gettime: %s", strerror(errno));
		return JIT_EINTERNAL;
	} else {
		dl.tv_sec += left / 1000;
		dl.tv_nsec += (long)(left % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		rc = pthread_mutex_clocklock(&write_lock, CLOCK_MONOTONIC, &dl);
	}
	if (rc == EBUSY || rc == ETIMEDOUT) {
		log_debug("store: the write lock is held by another thread of jitd");
		wait_spent(st);
		return JIT_EBUSY;
	}
	if (rc != 0) {
		log_err("store: write lock: %s", strerror(rc));
		return JIT_EINTERNAL;
	}
	left -= mono_ms() - start;
	if (sqlite3_busy_timeout(st->db, left > 0 ? (int)left : 0) != SQLITE_OK) {
		pthread_mutex_unlock(&write_lock);
		return db_fail(st, "busy timeout");
	}
	return JIT_OK;
}

/* Gives write_lock back; a bounded handle's next wait is whole again. */
static void unlock_writes(struct store *st)
{
	if (st->bounded && sqlite3_busy_timeout(st->db, st->spent ? 0 : st->wait_ms) != SQLITE_OK)
		log_err("store: busy timeout: %s", sqlite3_errmsg(st->db));
	pthread_mutex_unlock(&write_lock);
}

/* Ends one use of a prepared statement. The reset's return value only
 * repeats the error sqlite3_step already returned and we handled. */
static void stmt_done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

static int bind_txt(sqlite3_stmt *s, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Binds the names of the states in mask to ?first .. ?first+6. */
static int bind_mask(sqlite3_stmt *s, int first, unsigned mask)
{
	int rc = SQLITE_OK;
	for (int i = 0; i < GS__COUNT && rc == SQLITE_OK; i++)
		rc = bind_txt(s, first + i, (mask & GS_BIT(i)) ? state_names[i] : NULL);
	return rc;
}

/*
 * Runs statement id, whose parameters were bound with result bind_rc, to
 * completion (no rows). *changes (if not NULL) = rows written.
 */
static int run_write(struct store *st, enum stmt_id id, int bind_rc, int *changes)
{
	sqlite3_stmt *s = st->stmt[id];
	int ret = JIT_OK;
	/* BEGIN, COMMIT and ROLLBACK run under the transaction's own hold */
	bool own = !st->in_tx && id != S_BEGIN && id != S_COMMIT && id != S_ROLLBACK;

	if (own && (ret = lock_writes(st)) != JIT_OK) {
		stmt_done(s); /* the caller's bindings */
		return ret;
	}
	if (bind_rc != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE)
		ret = db_fail(st, stmt_sql[id].name);
	else if (changes)
		*changes = sqlite3_changes(st->db);
	stmt_done(s);
	if (own)
		unlock_writes(st);
	return ret;
}

/* run_write for an UPDATE of one row: JIT_ENOTFOUND if it matched none. */
static int update_one(struct store *st, enum stmt_id id, int bind_rc)
{
	int changes = 0;
	int ret = run_write(st, id, bind_rc, &changes);

	if (ret == JIT_OK && changes == 0)
		ret = JIT_ENOTFOUND;
	return ret;
}

/* Copies the row at column 0.. of s into a new grant_rec. */
static int row_to_rec(struct store *st, sqlite3_stmt *s, struct grant_rec **out)
{
	struct grant_rec *r = xcalloc(1, sizeof(*r));
	int ret = JIT_OK;

	for (int i = 0; i < NFIELDS && ret == JIT_OK; i++) {
		void *p = (char *)r + fields[i].off;
		bool null = sqlite3_column_type(s, i) == SQLITE_NULL;
		const char *txt = NULL;

		if (!null && (fields[i].type == F_TEXT || fields[i].type == F_STATE ||
			      fields[i].type == F_END_STATE)) {
			txt = (const char *)sqlite3_column_text(s, i);
			if (!txt) { /* out of memory converting the value */
				ret = db_fail(st, "read column");
				break;
			}
		}
		switch (fields[i].type) {
		case F_TEXT:
			*(char **)p =
				null ? NULL : xstrndup(txt, (size_t)sqlite3_column_bytes(s, i));
			break;
		case F_INT:
			*(int64_t *)p = sqlite3_column_int64(s, i);
			break;
		case F_BOOL:
			*(bool *)p = sqlite3_column_int64(s, i) != 0;
			break;
		case F_END_STATE:
			if (null) {
				*(enum grant_state *)p = GS_PENDING;
				break;
			}
			/* fall through */
		case F_STATE:
			if (grant_state_parse(txt, (enum grant_state *)p) != JIT_OK) {
				log_err("store: grant %s: bad %s %s", r->id ? r->id : "?",
					fields[i].col, txt ? txt : "NULL");
				ret = JIT_EIO;
			}
			break;
		}
	}
	if (ret != JIT_OK) {
		grant_rec_free(r);
		return ret;
	}
	*out = r;
	return JIT_OK;
}

/* Binds every field of r to the INSERT statement, in column order. */
static int bind_rec(sqlite3_stmt *s, const struct grant_rec *r)
{
	int rc = SQLITE_OK;

	for (int i = 0; i < NFIELDS && rc == SQLITE_OK; i++) {
		const void *p = (const char *)r + fields[i].off;
		enum grant_state gs;

		switch (fields[i].type) {
		case F_TEXT:
			rc = bind_txt(s, i + 1, *(char *const *)p);
			break;
		case F_INT:
			rc = sqlite3_bind_int64(s, i + 1, *(const int64_t *)p);
			break;
		case F_BOOL:
			rc = sqlite3_bind_int(s, i + 1, *(const bool *)p ? 1 : 0);
			break;
		case F_STATE:
		case F_END_STATE:
			gs = *(const enum grant_state *)p;
			if (fields[i].type == F_END_STATE && gs == GS_PENDING)
				rc = sqlite3_bind_null(s, i + 1);
			else
				rc = bind_txt(s, i + 1, state_names[gs]);
			break;
		}
	}
	return rc;
}

/* One-shot SQL (schema, pragmas): not on any hot path. */
static int exec_sql(struct store *st, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("store: %s: %s (%d)", what, msg ? msg : sqlite3_errstr(rc), rc);
		sqlite3_free(msg);
		return JIT_EIO;
	}
	return JIT_OK;
}

/* Runs a pragma and returns its single answer as text (caller frees). */
static int pragma_text(struct store *st, const char *sql, char **out)
{
	sqlite3_stmt *s = NULL;
	char *val = NULL;
	int ret = JIT_EIO;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);

	if (rc != SQLITE_OK) {
		ret = db_fail(st, sql);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		val = xstrdup((const char *)sqlite3_column_text(s, 0));
	if (!val) { /* an error, no row, NULL, or out of memory */
		ret = db_fail(st, sql);
		goto out;
	}
	*out = val;
	val = NULL;
	ret = JIT_OK;
out:
	(void)sqlite3_finalize(s); /* repeats the step's error, handled above */
	free(val);
	return ret;
}

/* Sets a pragma and checks the connection took it (they fail silently). */
static int pragma_set(struct store *st, const char *set, const char *get, const char *want)
{
	char *got = NULL;
	int ret = exec_sql(st, set, set);

	if (ret == JIT_OK)
		ret = pragma_text(st, get, &got);
	if (ret == JIT_OK && strcmp(got, want) != 0) {
		log_err("store: %s: the database answered %s", set, got);
		ret = JIT_EIO;
	}
	free(got);
	return ret;
}

/* Applies the migrations this database has not seen, in one transaction. */
static int migrate(struct store *st)
{
	char *txt = NULL, sql[64];
	int64_t ver = 0;
	int ret = exec_sql(st, "BEGIN IMMEDIATE", "migrate: begin");

	if (ret != JIT_OK)
		return ret;
	/* Read inside the write transaction: another process may migrate too. */
	ret = pragma_text(st, "PRAGMA user_version", &txt);
	if (ret == JIT_OK && parse_int64(txt, 0, INT32_MAX, &ver) != JIT_OK)
		ret = JIT_EIO;
	if (ret == JIT_OK && ver > SCHEMA_VERSION) {
		log_err("store: database schema version %lld is newer than this jitd (%d)",
			(long long)ver, SCHEMA_VERSION);
		ret = JIT_ECONFIG;
	}
	for (int64_t v = ver; ret == JIT_OK && v < SCHEMA_VERSION; v++) {
		log_info("store: migrating schema to version %lld", (long long)v + 1);
		ret = exec_sql(st, migrations[v], "migrate");
	}
	if (ret == JIT_OK && ver < SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
		ret = exec_sql(st, sql, "migrate: set user_version");
	}
	if (ret == JIT_OK)
		ret = exec_sql(st, "COMMIT", "migrate: commit");
	if (ret != JIT_OK && !sqlite3_get_autocommit(st->db))
		(void)exec_sql(st, "ROLLBACK", "migrate: rollback");
	free(txt);
	return ret;
}

/*
 * Creates path if create (mode 0600, whatever the umask says) and makes
 * sure an existing file of ours is a regular file we own, mode 0600.
 * Robustness: an existing file is checked by name, never opened. Other
 * threads of this process may hold it open through SQLite, and close() of
 * any descriptor of a file drops every POSIX lock the process holds on it,
 * SQLite's included; a connection of another process (jitctl, sqlite3)
 * then believes it was the last one and deletes the WAL jitd still writes
 * into, and acknowledged grants are lost at the next crash. (state_dir is
 * checked first: nobody else can swap the names.)
 */
static int check_file(const char *path, bool create)
{
	struct stat sb;

	if (create) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			close(fd); /* new: nobody had it open */
			return JIT_OK;
		}
		if (errno != EEXIST) {
			log_err("store: %s: %s", path, strerror(errno));
			return JIT_ECONFIG;
		}
	}
	if (lstat(path, &sb) != 0) {
		if (!create && errno == ENOENT)
			return JIT_OK;
		log_err("store: %s: %s", path, strerror(errno));
		return JIT_ECONFIG;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_err("store: %s: not a regular file", path);
		return JIT_ECONFIG;
	}
	if (sb.st_uid != geteuid() && geteuid() != 0) {
		log_err("store: %s: owned by uid %lu, not by us", path, (unsigned long)sb.st_uid);
		return JIT_ECONFIG;
	}
	if ((sb.st_mode & 077) != 0) {
		log_warn("store: %s: mode %03o, setting 0600", path, (unsigned)(sb.st_mode & 0777));
		if (chmod(path, 0600) != 0) {
			log_err("store: %s: chmod: %s", path, strerror(errno));
			return JIT_ECONFIG;
		}
	}
	return JIT_OK;
}

/* Robustness: a database file created but whose directory entry is lost in
 * a crash would take every grant with it; sync the directory once. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = JIT_OK;

	if (fd < 0 || fsync(fd) != 0) {
		log_err("store: state_dir %s: sync: %s", dir, strerror(errno));
		ret = JIT_EIO;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Refuses a state_dir others could use to swap our files; prepares jitd.db. */
static int prepare_files(const char *state_dir, char **dbpath)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	struct stat sb;
	int ret = JIT_OK;

	if (stat(state_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		log_err("store: state_dir %s: not a directory", state_dir);
		return JIT_ECONFIG;
	}
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		log_err("store: state_dir %s: writable by group or others (mode %03o)", state_dir,
			(unsigned)(sb.st_mode & 0777));
		return JIT_ECONFIG;
	}
	*dbpath = xasprintf("%s/%s", state_dir, STORE_DB_NAME);
	for (unsigned i = 0; i < 3 && ret == JIT_OK; i++) {
		char *p = xasprintf("%s%s", *dbpath, suffix[i]);
		ret = check_file(p, i == 0);
		free(p);
	}
	if (ret == JIT_OK)
		ret = sync_dir(state_dir);
	if (ret != JIT_OK) {
		free(*dbpath);
		*dbpath = NULL;
	}
	return ret;
}

/* Prepares every statement once; checks the column table matches GRANT_COLS. */
static int prepare_all(struct store *st)
{
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
				       &st->stmt[i], NULL) != SQLITE_OK)
			return db_fail(st, stmt_sql[i].name);
	}
	if (sqlite3_column_count(st->stmt[S_GET]) != NFIELDS ||
	    sqlite3_bind_parameter_count(st->stmt[S_INSERT]) != NFIELDS)
		fatal("store: column table and GRANT_COLS disagree");
	for (int i = 0; i < NFIELDS; i++) {
		const char *name = sqlite3_column_name(st->stmt[S_GET], i);
		if (!name || strcmp(name, fields[i].col) != 0)
			fatal("store: column %d is %s, expected %s", i, name ? name : "?",
			      fields[i].col);
	}
	return JIT_OK;
}

/*
 * Robustness: when several connections open a new database at once, the
 * switch to WAL may answer SQLITE_BUSY without waiting (SQLite will not
 * wait where waiting could deadlock), so retry it within the busy timeout.
 */
static int set_wal(struct store *st)
{
	const struct timespec pause = { 0, 10 * 1000 * 1000 };
	char *got = NULL;
	int rc, ret;

	for (int waited = 0;; waited += 10) {
		rc = sqlite3_exec(st->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			break;
		if ((rc & 0xff) != SQLITE_BUSY || waited >= STORE_BUSY_MS)
			return db_fail(st, "PRAGMA journal_mode = WAL");
		nanosleep(&pause, NULL);
	}
	ret = pragma_text(st, "PRAGMA journal_mode", &got);
	if (ret == JIT_OK && strcmp(got, "wal") != 0) {
		log_err("store: PRAGMA journal_mode = WAL: the database answered %s", got);
		ret = JIT_EIO;
	}
	free(got);
	return ret;
}

/* wal_autocheckpoint: STORE_CHECKPOINT_BYTES in this database's pages. */
static int set_checkpoint(struct store *st)
{
	char *txt = NULL, set[64], want[24];
	int64_t page = 0;
	int ret = pragma_text(st, "PRAGMA page_size", &txt);

	/* SQLite's page sizes: powers of two from 512 to 65536 */
	if (ret == JIT_OK && parse_int64(txt, 512, 65536, &page) != JIT_OK) {
		log_err("store: PRAGMA page_size: the database answered %s", txt);
		ret = JIT_EIO;
	}
	free(txt);
	if (ret != JIT_OK)
		return ret;
	snprintf(want, sizeof(want), "%lld", (long long)(STORE_CHECKPOINT_BYTES / page));
	snprintf(set, sizeof(set), "PRAGMA wal_autocheckpoint = %s", want);
	return pragma_set(st, set, "PRAGMA wal_autocheckpoint", want);
}

/* jitd_dn_key(dn): a DN in the canonical form pair keys hold
 * (dir_value_key), for migration 7. Not usable from the schema (triggers,
 * views): SQLITE_DIRECTONLY. */
static void sql_dn_key(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	const char *dn = (const char *)sqlite3_value_text(argv[0]);
	if (dn == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, dir_value_key(dn), -1, free);
}

/* Connection settings, verified: a pragma that fails says nothing. */
static int configure(struct store *st)
{
	int ret;

	if (sqlite3_extended_result_codes(st->db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(st->db, STORE_BUSY_MS) != SQLITE_OK)
		return db_fail(st, "configure");
	if (sqlite3_create_function(st->db, "jitd_dn_key", 1,
				    SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
				    sql_dn_key, NULL, NULL) != SQLITE_OK)
		return db_fail(st, "jitd_dn_key function");
#ifdef SQLITE_DBCONFIG_DEFENSIVE
	if (sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK)
		return db_fail(st, "defensive mode");
#endif
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA
	if (sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK)
		return db_fail(st, "trusted_schema");
#endif
	/* Takes effect only in a new, empty database (before WAL is set); a
	 * no-op for an existing one. */
	if (exec_sql(st, "PRAGMA page_size = " STORE_PAGE_SIZE, "PRAGMA page_size") != JIT_OK)
		return JIT_EIO;
	ret = set_wal(st);
	if (ret == JIT_OK)
		ret = pragma_set(st, "PRAGMA synchronous = FULL", "PRAGMA synchronous", "2");
	if (ret == JIT_OK)
		ret = set_checkpoint(st);
	if (ret == JIT_OK)
		ret = pragma_set(st, "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys", "1");
	/* Statement journals and sorts in memory: no temporary file per write
	 * transaction in /var/tmp (one each time an insert's statement needed
	 * a journal), and no need for a writable temporary directory. */
	if (ret == JIT_OK)
		ret = pragma_set(st, "PRAGMA temp_store = MEMORY", "PRAGMA temp_store", "2");
	return ret;
}

int store_open(const char *state_dir, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char *path = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int ret;

	/* Each thread opens its own store; that needs a thread-safe library. */
	if (!sqlite3_threadsafe()) {
		log_err("store: the SQLite library was built without thread support");
		ret = JIT_EINTERNAL;
		goto out;
	}
	if ((ret = prepare_files(state_dir, &path)) != JIT_OK)
		goto out;
#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		if (st->db)
			ret = db_fail(st, path);
		else
			log_err("store: %s: cannot open (out of memory)", path);
		ret = JIT_EIO;
		goto out;
	}
	if ((ret = configure(st)) != JIT_OK || (ret = migrate(st)) != JIT_OK ||
	    (ret = prepare_all(st)) != JIT_OK)
		goto out;
	*out = st;
	st = NULL;
out:
	free(path);
	store_close(st);
	return ret;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->in_tx) {
		log_warn("store: closing with a transaction open; rolling it back");
		store_rollback(st);
	}
	for (int i = 0; i < S__COUNT; i++)
		if (sqlite3_finalize(st->stmt[i]) != SQLITE_OK)
			(void)db_fail(st, "finalize"); /* the step error again; logged */
	free(st->dirs);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		(void)db_fail(st, "close");
	free(st);
}

int store_set_wait(struct store *st, int ms)
{
	if (ms < 0 || ms > STORE_BUSY_MS || st->in_tx) {
		log_err("store: set_wait %d ms%s (a bug)", ms,
			st->in_tx ? " in a transaction" : "");
		return JIT_EINTERNAL;
	}
	if (sqlite3_busy_timeout(st->db, ms) != SQLITE_OK)
		return db_fail(st, "busy timeout");
	st->wait_ms = ms;
	st->bounded = true;
	st->spent = false;
	return JIT_OK;
}

int store_begin(struct store *st)
{
	if (st->in_tx || !sqlite3_get_autocommit(st->db)) {
		log_err("store: nested transaction (a bug)");
		return JIT_EINTERNAL;
	}
	int ret = lock_writes(st);
	if (ret != JIT_OK)
		return ret;
	ret = run_write(st, S_BEGIN, SQLITE_OK, NULL);
	if (ret == JIT_OK)
		st->in_tx = true;
	else
		unlock_writes(st);
	return ret;
}

int store_commit(struct store *st)
{
	int ret;

	if (!st->in_tx) {
		log_err("store: commit without a transaction (a bug)");
		return JIT_EINTERNAL;
	}
	st->in_tx = false;
	/* SQLite rolls back by itself after some errors (I/O, full disk). */
	if (sqlite3_get_autocommit(st->db)) {
		unlock_writes(st);
		log_err("store: commit: the transaction was already rolled back");
		return JIT_EIO;
	}
	ret = run_write(st, S_COMMIT, SQLITE_OK, NULL);
	if (ret != JIT_OK && !sqlite3_get_autocommit(st->db))
		(void)run_write(st, S_ROLLBACK, SQLITE_OK, NULL); /* nothing half-done stays */
	unlock_writes(st);
	return ret;
}

void store_rollback(struct store *st)
{
	bool held = st->in_tx;
	st->in_tx = false;
	if (!sqlite3_get_autocommit(st->db))
		(void)run_write(st, S_ROLLBACK, SQLITE_OK, NULL); /* run_write logs a failure */
	if (held)
		unlock_writes(st);
}

int store_insert(struct store *st, const struct grant_rec *r)
{
	sqlite3_stmt *s = st->stmt[S_INSERT];
	int rc, ret = JIT_OK;

	if ((unsigned)r->state >= GS__COUNT ||
	    (r->end_state != GS_PENDING && !state_final(r->end_state))) {
		log_err("store: insert %s: bad state %d/%d", r->id ? r->id : "?", (int)r->state,
			(int)r->end_state);
		return JIT_EINTERNAL;
	}
	bool own = !st->in_tx;

	if (own && (ret = lock_writes(st)) != JIT_OK)
		return ret;
	if (bind_rec(s, r) != SQLITE_OK) {
		ret = db_fail(st, "insert: bind");
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		log_debug("store: insert %s: %s", r->id ? r->id : "?", sqlite3_errmsg(st->db));
		ret = JIT_EEXISTS;
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		/* NOT NULL or CHECK: the caller built an incomplete record. */
		(void)db_fail(st, "insert");
		ret = JIT_EINTERNAL;
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(st, "insert");
	}
out:
	stmt_done(s);
	if (own)
		unlock_writes(st);
	return ret;
}

/* Runs a bound query that yields at most one grant row. */
static int get_one(struct store *st, enum stmt_id id, const char *key, struct grant_rec **out)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc, ret;

	if (!key)
		return JIT_ENOTFOUND;
	if (bind_txt(s, 1, key) != SQLITE_OK) {
		ret = db_fail(st, stmt_sql[id].name);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ret = row_to_rec(st, s, out);
	else if (rc == SQLITE_DONE)
		ret = JIT_ENOTFOUND;
	else
		ret = db_fail(st, stmt_sql[id].name);
out:
	stmt_done(s);
	return ret;
}

int store_get(struct store *st, const char *id, struct grant_rec **out)
{
	return get_one(st, S_GET, id, out);
}

int store_get_by_request_id(struct store *st, const char *request_id, struct grant_rec **out)
{
	return get_one(st, S_GET_REQ, request_id, out);
}

int store_set_state(struct store *st, const char *id, enum grant_state from, enum grant_state to,
		    enum grant_state end_state, int64_t now, const char *last_error)
{
	enum stmt_id sid = to == GS_ENDING ? S_TO_ENDING :
			   state_final(to) ? S_TO_FINAL :
					     S_TO_OTHER;
	sqlite3_stmt *s = st->stmt[sid];
	int rc;

	if ((unsigned)from >= GS__COUNT || (unsigned)to >= GS__COUNT ||
	    (to == GS_ENDING && !state_final(end_state))) {
		log_err("store: set_state %s: bad states %d -> %d (%d)", id, (int)from, (int)to,
			(int)end_state);
		return JIT_EINTERNAL;
	}
	rc = bind_txt(s, 1, id);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, state_names[from]);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, state_names[to]);
	if (rc == SQLITE_OK && sid == S_TO_ENDING)
		rc = bind_txt(s, 4, state_names[end_state]);
	if (rc == SQLITE_OK && sid != S_TO_OTHER)
		rc = sqlite3_bind_int64(s, 5, now);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 6, last_error);
	return update_one(st, sid, rc);
}

int store_set_retry(struct store *st, const char *id, int64_t attempts, int64_t next_attempt,
		    const char *last_error)
{
	return store_set_retry_kind(st, id, attempts, next_attempt, last_error, false);
}

int store_set_retry_kind(struct store *st, const char *id, int64_t attempts,
			 int64_t next_attempt, const char *last_error, bool refused)
{
	sqlite3_stmt *s = st->stmt[S_RETRY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, attempts);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, next_attempt);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, last_error);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(s, 5, refused ? 1 : 0);
	return update_one(st, S_RETRY, rc); /* JIT_ENOTFOUND: no longer ENDING */
}

int store_count_failing(struct store *st, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_COUNT_FAILING];
	int ret = JIT_OK;

	if (sqlite3_step(s) != SQLITE_ROW)
		ret = db_fail(st, "count_failing");
	else
		*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return ret;
}

int store_retry_now(struct store *st, const char *directory, int64_t now, int64_t *n)
{
	sqlite3_stmt *s = st->stmt[S_RETRY_NOW];
	int changes = 0;
	int rc = bind_txt(s, 1, directory);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	rc = run_write(st, S_RETRY_NOW, rc, &changes);
	if (rc == JIT_OK)
		*n = changes;
	return rc;
}

int store_set_added_via(struct store *st, const char *id, const char *uri)
{
	int rc = bind_txt(st->stmt[S_ADDED_VIA], 1, id);

	if (rc == SQLITE_OK)
		rc = bind_txt(st->stmt[S_ADDED_VIA], 2, uri);
	return update_one(st, S_ADDED_VIA, rc);
}

int store_set_verify(struct store *st, const char *id, const char *removed_via,
		     const char *outcome, int64_t verify_at)
{
	sqlite3_stmt *s = st->stmt[S_VERIFY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, removed_via);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, verify_at);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 4, outcome);
	return update_one(st, S_VERIFY, rc); /* JIT_ENOTFOUND: no longer ENDING */
}

int store_set_expiry(struct store *st, const char *id, int64_t from, int64_t expires_at,
		     int64_t duration, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRY];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, expires_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, duration);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 5, now);
	return update_one(st, S_EXPIRY, rc);
}

int store_expire_due(struct store *st, const char *id, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRE_DUE];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	return update_one(st, S_EXPIRE_DUE, rc);
}

int store_pair_live(struct store *st, const char *pair_key, const char *exclude_id,
		    unsigned state_mask, int64_t *count, bool *any_jitd)
{
	sqlite3_stmt *s = st->stmt[S_PAIR_LIVE];
	int ret = JIT_OK;

	if (bind_txt(s, 1, pair_key) != SQLITE_OK || bind_txt(s, 2, exclude_id) != SQLITE_OK ||
	    bind_mask(s, 3, state_mask) != SQLITE_OK) {
		ret = db_fail(st, "pair_live: bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, "pair_live");
		goto out;
	}
	*count = sqlite3_column_int64(s, 0);
	*any_jitd = sqlite3_column_int64(s, 1) != 0;
out:
	stmt_done(s);
	return ret;
}

int store_count_user_live(struct store *st, const char *user_dn, int64_t *count)
{
	sqlite3_stmt *s = st->stmt[S_USER_LIVE];
	int ret = JIT_OK;

	if (bind_txt(s, 1, user_dn) != SQLITE_OK) {
		ret = db_fail(st, "user_live: bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, "user_live");
		goto out;
	}
	*count = sqlite3_column_int64(s, 0);
out:
	stmt_done(s);
	return ret;
}

int store_pair_clear_standing(struct store *st, const char *pair_key)
{
	return run_write(st, S_PAIR_CLEAR, bind_txt(st->stmt[S_PAIR_CLEAR], 1, pair_key), NULL);
}

static int64_t clamp_limit(int64_t limit)
{
	if (limit <= 0)
		return STORE_DEFAULT_LIMIT;
	return limit > STORE_MAX_LIMIT ? STORE_MAX_LIMIT : limit;
}

/*
 * Steps a bound query to the end, collecting its rows, then resets it and
 * only then calls cb on each: a callback may use this store (even the same
 * query) and holds no read transaction open while it works.
 */
static int collect_and_call(struct store *st, enum stmt_id id, int bind_rc, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[id];
	struct grant_rec **recs = NULL;
	size_t n = 0, cap = 0;
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	int ret = JIT_OK;

	for (; rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = xrealloc(recs, cap * sizeof(*recs));
		}
		if ((ret = row_to_rec(st, s, &recs[n])) != JIT_OK)
			break;
		n++;
	}
	if (ret == JIT_OK && rc != SQLITE_DONE)
		ret = db_fail(st, stmt_sql[id].name);
	stmt_done(s);
	for (size_t i = 0; i < n; i++) {
		if (ret == JIT_OK)
			ret = cb(recs[i], arg);
		grant_rec_free(recs[i]);
	}
	free(recs);
	return ret;
}

int store_list(struct store *st, const struct store_filter *f, store_cb cb, void *arg)
{
	static const enum stmt_id which[4] = { S_LIST, S_LIST_USER, S_LIST_GROUP, S_LIST_BOTH };
	enum stmt_id id = which[(f->user ? 1 : 0) | (f->group ? 2 : 0)];
	sqlite3_stmt *s = st->stmt[id];
	int rc = bind_mask(s, 1, f->state_mask ? f->state_mask : GS_LIVE_MASK);

	/* ?8 and ?9 exist in every variant (the highest index is ?10). */
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 8, f->user);
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 9, f->group);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 10, clamp_limit(f->limit));
	return collect_and_call(st, id, rc, cb, arg);
}

void store_set_directories(struct store *st, const char *const *names, size_t n)
{
	size_t len = 2;
	free(st->dirs);
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	st->dirs = xmalloc(len);
	char *p = st->dirs;
	*p++ = DIR_SEP;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		memcpy(p, names[i], l);
		p += l;
		*p++ = DIR_SEP;
	}
	*p = '\0';
}

int store_due(struct store *st, int64_t now, int64_t limit, store_cb cb, void *arg)
{
	sqlite3_stmt *s = st->stmt[S_DUE];
	int rc = sqlite3_bind_int64(s, 1, now);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, clamp_limit(limit));
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 3, st->dirs);
	return collect_and_call(st, S_DUE, rc, cb, arg);
}

int store_due_elsewhere(struct store *st, int64_t now, int64_t *n, char *dir, size_t dirlen)
{
	sqlite3_stmt *s = st->stmt[S_DUE_ELSEWHERE];
	int rc = sqlite3_bind_int64(s, 1, now);
	int ret = JIT_OK;

	*n = 0;
	if (dirlen > 0)
		dir[0] = '\0';
	if (rc == SQLITE_OK)
		rc = bind_txt(s, 2, st->dirs);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *d = sqlite3_column_text(s, 1);
		*n = sqlite3_column_int64(s, 0);
		if (d && dirlen > 0)
			snprintf(dir, dirlen, "%s", (const char *)d);
	} else {
		ret = db_fail(st, "due_elsewhere");
	}
	stmt_done(s);
	return ret;
}

int store_pair_ending(struct store *st, const char *pair_key, store_cb cb, void *arg)
{
	return collect_and_call(st, S_PAIR_ENDING, bind_txt(st->stmt[S_PAIR_ENDING], 1, pair_key),
				cb, arg);
}

int store_expiring(struct store *st, int64_t now, int64_t before, int64_t limit, store_cb cb,
		   void *arg)
{
	sqlite3_stmt *s = st->stmt[S_EXPIRING];
	int rc = sqlite3_bind_int64(s, 1, now + before);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 3, before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 4, clamp_limit(limit));
	return collect_and_call(st, S_EXPIRING, rc, cb, arg);
}

int store_set_warned(struct store *st, const char *id, int64_t now)
{
	sqlite3_stmt *s = st->stmt[S_WARNED];
	int rc = bind_txt(s, 1, id);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, now);
	return update_one(st, S_WARNED, rc);
}

int store_next_due(struct store *st, int64_t *when)
{
	sqlite3_stmt *s = st->stmt[S_NEXT_DUE];
	int64_t best = INT64_MAX;
	int ret = JIT_OK;

	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = db_fail(st, "next_due");
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		if (sqlite3_column_type(s, i) == SQLITE_NULL)
			continue; /* no row in that state */
		int64_t v = sqlite3_column_int64(s, i);
		if (v < best)
			best = v;
	}
	*when = best;
out:
	stmt_done(s);
	return ret;
}

int store_counts(struct store *st, int64_t counts[GS__COUNT])
{
	sqlite3_stmt *s = st->stmt[S_COUNTS];
	int64_t c[GS__COUNT] = { 0 };
	enum grant_state gs;
	int rc, ret = JIT_OK;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		if (grant_state_parse(name, &gs) != JIT_OK) {
			log_err("store: counts: bad state %s", name ? name : "NULL");
			ret = JIT_EIO;
			goto out;
		}
		c[gs] = sqlite3_column_int64(s, 1);
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(st, "counts");
		goto out;
	}
	memcpy(counts, c, sizeof(c));
out:
	stmt_done(s);
	return ret;
}

int store_recover(struct store *st, int64_t now, int64_t *n)
{
	int changes = 0;
	int ret =
		run_write(st, S_RECOVER, sqlite3_bind_int64(st->stmt[S_RECOVER], 1, now), &changes);

	if (ret == JIT_OK)
		*n = changes;
	return ret;
}

int store_explain(struct store *st, const char *query, char **out)
{
	struct strbuf sb = { 0 };
	sqlite3_stmt *s = NULL;
	char *sql = NULL;
	int rc, ret = JIT_ENOTFOUND;

	for (int i = 0; i < S__COUNT; i++)
		if (strcmp(stmt_sql[i].name, query) == 0)
			sql = xasprintf("EXPLAIN QUERY PLAN %s", stmt_sql[i].sql);
	if (!sql)
		return ret;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		ret = db_fail(st, "explain");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *detail = (const char *)sqlite3_column_text(s, 3);
		if (sb.len)
			sb_addstr(&sb, "; ");
		sb_addstr(&sb, detail ? detail : "?");
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(st, "explain");
		goto out;
	}
	*out = sb_steal(&sb);
	ret = JIT_OK;
out:
	(void)sqlite3_finalize(s); /* repeats the step's error, handled above */
	sb_free(&sb);
	free(sql);
	return ret;
}
