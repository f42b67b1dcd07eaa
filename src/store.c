/*
 * store.c - durable grant state: opening state_dir/jitd.db (files, pragmas),
 * the schema and its migrations, the write lock, transactions. Statements and
 * rows are in storestmt.c, the operations on grants in storequery.c; these
 * files and storepriv.h are the only code that includes <sqlite3.h>.
 * Trust boundary: the database under state_dir is trusted only as far as
 * its permissions protect it, so open refuses a state_dir that group or
 * others may write and keeps jitd.db at 0600.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "directory.h"
#include "log.h"
#include "storepriv.h"
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
	/* 8: the pair index holds only the live rows (partial, as in 6): every
	 * pair query looks at live rows only, and the reconciler reads a
	 * group's live grants as one range of pair keys (store_group_live),
	 * which over an index of every row would read the group's whole
	 * history. The queries name it (INDEXED BY) and state the live states
	 * in their text, for the planner to see that the index applies. */
	"DROP INDEX IF EXISTS grants_pair;"
	"CREATE INDEX grants_pair ON grants (pair_key, state)"
	" WHERE state IN ('pending', 'active', 'ending');",
	/* 9: a second server that wrote the membership: the add to added_via
	 * went unanswered (it may have applied it, or apply it late) and the
	 * retry was answered by this one. The removal asks both. */
	"ALTER TABLE grants ADD COLUMN added_also_via TEXT;",
	/* 10: a pending row recovered at start-up: whether its add reached
	 * the directory is unknown, so its end is checked again after
	 * replication_grace, with one server too. */
	"ALTER TABLE grants ADD COLUMN add_unknown INTEGER NOT NULL DEFAULT 0"
	" CHECK (add_unknown IN (0, 1));",
	/* 11: who ended the grant and why (a client's complete or revoke),
	 * recorded with its move to ending, so that the final line of an end
	 * made later (a retried removal, an end recorded at a stop and made
	 * at the next start) still names them. The peer's uid and pid mean
	 * something only with end_client. */
	"ALTER TABLE grants ADD COLUMN end_client TEXT;"
	"ALTER TABLE grants ADD COLUMN end_reason TEXT;"
	"ALTER TABLE grants ADD COLUMN end_peer_uid INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE grants ADD COLUMN end_peer_pid INTEGER NOT NULL DEFAULT 0;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

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
int db_fail(struct store *st, const char *what)
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
int lock_writes(struct store *st)
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
void unlock_writes(struct store *st)
{
	if (st->bounded && sqlite3_busy_timeout(st->db, st->spent ? 0 : st->wait_ms) != SQLITE_OK)
		log_err("store: busy timeout: %s", sqlite3_errmsg(st->db));
	pthread_mutex_unlock(&write_lock);
}

/* Ends one use of a prepared statement. The reset's return value only
 * repeats the error sqlite3_step already returned and we handled. */
void stmt_done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

int bind_txt(sqlite3_stmt *s, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/*
 * Runs statement id, whose parameters were bound with result bind_rc, to
 * completion (no rows). *changes (if not NULL) = rows written.
 */
int run_write(struct store *st, enum stmt_id id, int bind_rc, int *changes)
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

/* One-shot SQL (schema, pragmas): not on any hot path. */
static int exec_sql(struct store *st, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("store: %s: %s (%d)", what, msg ? msg : sqlite3_errstr(rc), rc);
		sqlite3_free(msg);
		/* another process held the lock past the busy timeout: nothing
		 * was done, and the caller may try again */
		return (rc & 0xff) == SQLITE_BUSY ? JIT_EBUSY : JIT_EIO;
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

/* The first of dbpath's -wal and -shm that exists (heap), in *side, or
 * NULL. JIT_ECONFIG (logged) if it cannot tell. */
static int side_file(const char *dbpath, char **side)
{
	static const char *const suffix[] = { "-wal", "-shm" };
	struct stat sb;

	*side = NULL;
	for (unsigned i = 0; i < 2; i++) {
		char *p = xasprintf("%s%s", dbpath, suffix[i]);
		if (lstat(p, &sb) == 0) {
			*side = p;
			return JIT_OK;
		}
		if (errno != ENOENT) {
			log_err("store: %s: %s", p, strerror(errno));
			free(p);
			return JIT_ECONFIG;
		}
		free(p);
	}
	return JIT_OK;
}

/* Refuses a state_dir others could use to swap our files. */
static int check_state_dir(const char *state_dir)
{
	struct stat sb;

	if (stat(state_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		log_err("store: state_dir %s: not a directory", state_dir);
		return JIT_ECONFIG;
	}
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		log_err("store: state_dir %s: writable by group or others (mode %03o)", state_dir,
			(unsigned)(sb.st_mode & 0777));
		return JIT_ECONFIG;
	}
	return JIT_OK;
}

/* Refuses a state_dir others could use to swap our files; prepares jitd.db. */
static int prepare_files(const char *state_dir, char **dbpath)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	struct stat sb;
	char *side = NULL;
	int ret = check_state_dir(state_dir);

	if (ret != JIT_OK)
		return ret;
	*dbpath = xasprintf("%s/%s", state_dir, STORE_DB_NAME);
	/* Robustness: SQLite deletes a WAL it finds next to an empty database,
	 * and with it the grants it holds (store_init() says more). */
	if (lstat(*dbpath, &sb) != 0 && errno == ENOENT &&
	    (ret = side_file(*dbpath, &side)) == JIT_OK && side) {
		log_err("store: %s does not exist but %s does; not creating a new database next "
			"to it", *dbpath, side);
		ret = JIT_ECONFIG;
	}
	free(side);
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

/* Renames path aside to path.orphaned-<now> (never over another file). */
static int move_aside(const char *path)
{
	char *to = xasprintf("%s.orphaned-%lld", path, (long long)time(NULL));
	struct stat sb;
	int ret = JIT_OK;

	if (lstat(to, &sb) == 0 || errno != ENOENT) {
		log_err("store: cannot move %s aside: %s is in the way", path, to);
		ret = JIT_ECONFIG;
	} else if (rename(path, to) != 0) {
		log_err("store: cannot move %s aside to %s: %s", path, to, strerror(errno));
		ret = JIT_ECONFIG;
	} else {
		log_warn("store: --init-store: moved %s aside to %s", path, to);
	}
	free(to);
	return ret;
}

/*
 * Whether a regular file of size bytes at path is an SQLite database whose
 * schema was never written: its header says user_version 0 (migrate()
 * writes the schema and the version in one transaction). SQLite writes the
 * header before that (the switch to WAL), so a creation interrupted there
 * leaves such a file. Read by descriptor before this process opens the
 * store (store_init runs first: no SQLite lock of ours to lose at close).
 */
static bool db_schemaless(const char *path, off_t size)
{
	static const char magic[16] = "SQLite format 3";
	unsigned char h[100];
	ssize_t n = -1;
	int fd;

	if (size < (off_t)sizeof(h))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	n = pread(fd, h, sizeof(h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h, magic, sizeof(magic)) != 0)
		return false; /* not ours to judge: SQLite says what it is */
	return h[60] == 0 && h[61] == 0 && h[62] == 0 && h[63] == 0; /* user_version */
}

/*
 * Whether path is a database that may hold grants. An empty regular file
 * holds none, nor does one whose schema was never written (db_schemaless)
 * with no -wal or -shm beside it: each is what a creation leaves when jitd
 * stopped before SQLite wrote its schema, and is judged like a missing
 * file (*what says which), so that the store_created line is still written
 * and the rules of a new store apply. With a -wal or -shm beside it, the
 * file's header says nothing: until the first checkpoint the schema and
 * every grant are in the WAL alone, and the database is in use.
 */
static int db_present(const char *path, bool *present, bool *exists, const char **what)
{
	struct stat sb;

	*exists = lstat(path, &sb) == 0;
	if (!*exists && errno != ENOENT) {
		log_err("store: %s: %s", path, strerror(errno));
		return JIT_ECONFIG;
	}
	*what = "does not exist";
	*present = *exists;
	if (*exists && S_ISREG(sb.st_mode) && sb.st_size == 0) {
		*present = false;
		*what = "is empty";
	} else if (*exists && S_ISREG(sb.st_mode) && db_schemaless(path, sb.st_size)) {
		char *side = NULL;
		if (side_file(path, &side) != JIT_OK)
			return JIT_ECONFIG;
		if (!side) {
			*present = false;
			*what = "holds no schema";
		}
		free(side);
	}
	return JIT_OK;
}

int store_init(const char *state_dir, const char *history, bool init, char **created)
{
	char *path = NULL, *side = NULL;
	const char *what = NULL;
	bool present = false, exists = false;
	int ret = check_state_dir(state_dir);

	if (ret != JIT_OK)
		return ret;
	path = xasprintf("%s/%s", state_dir, STORE_DB_NAME);
	if ((ret = db_present(path, &present, &exists, &what)) != JIT_OK || present) {
		if (ret == JIT_OK && init)
			log_info("store: --init-store: %s exists, opening it as it is", path);
		if (ret == JIT_OK)
			*created = NULL;
		goto out;
	}
	if ((ret = side_file(path, &side)) != JIT_OK)
		goto out;
	if (side && !init) {
		log_err("store: %s %s but %s does: the database it belongs to was moved or "
			"deleted, and a new one would forget every live grant in it and never "
			"remove their memberships (SQLite would also delete that file). Put jitd.db "
			"back next to it; or, to start with an empty store on purpose, start jitd "
			"once with --init-store (which moves %s aside)", path, what, side, side);
		ret = JIT_ECONFIG;
		goto out;
	}
	if (history && !init) {
		log_err("store: %s %s, but %s: the store of those grants was moved or deleted, "
			"or state_dir changed, and a new one would forget every live grant and "
			"never remove their memberships. Put jitd.db back (with its jitd.db-wal, if "
			"any) or set state_dir to where it is; or, to start with an empty store on "
			"purpose, start jitd once with --init-store", path, what, history);
		ret = JIT_ECONFIG;
		goto out;
	}
	for (int i = 0; i < 2 && side; i++) { /* init: -wal, then -shm */
		if ((ret = move_aside(side)) != JIT_OK)
			goto out;
		free(side);
		if ((ret = side_file(path, &side)) != JIT_OK)
			goto out;
	}
	if (!exists) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			log_err("store: %s: %s", path, strerror(errno));
			ret = JIT_ECONFIG;
			goto out;
		}
		close(fd);
	}
	if ((ret = sync_dir(state_dir)) != JIT_OK)
		goto out;
	if (init)
		log_warn("store: --init-store: %s: a new, empty store", path);
	else
		log_info("store: %s: a new, empty store", path);
	*created = path;
	path = NULL;
out:
	free(side);
	free(path);
	return ret;
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
 * (dir_pair_dn_key), for migration 7. Not usable from the schema (triggers,
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
	sqlite3_result_text(ctx, dir_pair_dn_key(dn), -1, free);
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

/* Tries of the schema check while the store is locked elsewhere. */
#define STORE_OPEN_BUSY_TRIES 6

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
	if ((ret = configure(st)) != JIT_OK)
		goto out;
	/* Robustness: the schema check takes the write lock, which another
	 * process (a backup, an operator's sqlite3) may hold for a while:
	 * waited for, six busy timeouts, rather than failing the start (the
	 * engine's handle, each worker's and the reconciler's). */
	for (int tries = 1;; tries++) {
		ret = migrate(st);
		if (ret != JIT_EBUSY || tries >= STORE_OPEN_BUSY_TRIES)
			break;
		log_warn("store: locked by another process; trying again (%d of %d)", tries + 1,
			 STORE_OPEN_BUSY_TRIES);
	}
	if (ret != JIT_OK || (ret = prepare_all(st)) != JIT_OK)
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

/*
 * Rolls the open transaction back. Robustness: if even that fails, the
 * handle stays inside it, holding SQLite's write lock: its next writes,
 * outside any transaction as far as the callers know, would return "done"
 * without being durable, and every other writer would wait. Start-up
 * recovery is the way back (as for a pending row that cannot be handed on).
 */
static void rollback_or_die(struct store *st)
{
	if (run_write(st, S_ROLLBACK, SQLITE_OK, NULL) != JIT_OK && !sqlite3_get_autocommit(st->db))
		fatal("store: a transaction can be neither committed nor rolled back; restarting "
		      "for recovery");
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
		rollback_or_die(st); /* nothing half-done stays */
	unlock_writes(st);
	return ret;
}

void store_rollback(struct store *st)
{
	bool held = st->in_tx;
	st->in_tx = false;
	if (!sqlite3_get_autocommit(st->db))
		rollback_or_die(st);
	if (held)
		unlock_writes(st);
}
