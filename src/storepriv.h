/*
 * storepriv.h - what the files of the store module share, and nothing
 * outside them includes: the connection (struct store), the prepared
 * statements' ids and SQL, the write lock and the helpers that run a
 * statement, and the mapping between a row and struct grant_rec. store.c
 * opens the connection, migrates the schema and holds the write lock;
 * storestmt.c holds the statements and the column table; storequery.c runs
 * them for the callers of store.h. Like those files, it includes <sqlite3.h>.
 */
#ifndef JITD_STOREPRIV_H
#define JITD_STOREPRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include "store.h"
#include "util.h"

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
	S_PAIR_LIVE_SAME,
	S_PAIR_CLEAR,
	S_PAIR_SET,
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
	S_USER_LIVE_GROUPS,
	S_COUNT_FAILING,
	S_COUNT_OVERDUE,
	S_RETRY_NOW,
	S_RETRY_SOONER,
	S_CREATED_AFTER,
	S_RESCHEDULE,
	S_PAIR_ENDING,
	S_EXPIRING,
	S_WARNED,
	S_UNWARN,
	S_ADDED_VIA,
	S_VERIFY,
	S_GROUP_LIVE,
	S_PAIR_WRITERS,
	S_PAIR_UNKNOWN,
	S__COUNT
};

/* One prepared statement: its name (logs, store_explain()) and its SQL. */
struct stmt_def {
	const char *name;
	const char *sql;
};
extern const struct stmt_def stmt_sql[S__COUNT]; /* storestmt.c, by enum stmt_id */

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S__COUNT];
	bool in_tx;
	char *dirs; /* store_set_directories(): "\x1fname\x1f...\x1f", or NULL */
	int wait_ms;  /* store_set_wait(): the longest wait for a lock */
	bool bounded; /* store_set_wait() was called: waits end in JIT_EBUSY */
	bool spent;   /* bounded: a wait ran out; no more waiting until re-armed */
	int64_t skipped;          /* rows the due reads skipped (store_rows_skipped) */
	/* Twice the most rows one read that skips them has skipped: later
	 * such reads (due, expiring, created after) ask SQLite for that many
	 * more rows than they want, so that unreadable rows, which stay first
	 * in their order, cannot fill every read. */
	int64_t due_bad;
	struct throttle skip_log; /* their log lines: one burst a minute */
};

extern const char *const state_names[GS__COUNT]; /* storestmt.c, by enum grant_state */

/* store.c: errors, the write lock, running a statement (see there) */
int db_fail(struct store *st, const char *what); /* JIT_EBUSY or JIT_EIO, logged */
int lock_writes(struct store *st);               /* JIT_OK, JIT_EBUSY, JIT_EINTERNAL */
void unlock_writes(struct store *st);
void stmt_done(sqlite3_stmt *s);                     /* reset and clear bindings */
int bind_txt(sqlite3_stmt *s, int i, const char *v); /* an SQLITE_ code; NULL binds NULL */
int run_write(struct store *st, enum stmt_id id, int bind_rc, int *changes);

/* storestmt.c: rows and statements (see there) */
/* JIT_EIO for a row that cannot be a grant, with why (not logged) */
int row_to_rec(struct store *st, sqlite3_stmt *s, struct grant_rec **out, char *why,
	       size_t whylen); /* grant_rec_free */
int bind_rec(sqlite3_stmt *s, const struct grant_rec *r);                  /* an SQLITE_ code */
int prepare_all(struct store *st);

#endif
