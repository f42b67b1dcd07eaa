/*
 * storestmt.c - the store's prepared statements: the SQL of every query the
 * engine runs (prepared once per connection and reused, shown by
 * store_explain()), and the column table that maps a row of `grants` to
 * struct grant_rec and back; the state names.
 * Trust: rows read back are still checked (state names) so a hand-edited
 * database yields JIT_EIO, never undefined behaviour.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storepriv.h"
#include "util.h"

const char *const state_names[GS__COUNT] = {
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
	FLD(removed_outcome, F_TEXT), FLD(added_also_via, F_TEXT),
	FLD(add_unknown, F_BOOL),
	FLD(end_client, F_TEXT),   FLD(end_reason, F_TEXT),
	FLD(end_peer_uid, F_INT),  FLD(end_peer_pid, F_INT),
};
#define NFIELDS ((int)(sizeof(fields) / sizeof(fields[0])))

#define GRANT_COLS                                                                                 \
	"id, request_id, state, end_state, user, user_dn, user_uuid, member_value, "               \
	"group_name, group_dn, directory, member_attr, placeholder, pair_key, "                    \
	"created_at, expires_at, ended_at, duration, ticket, reason, requested_by, "               \
	"approved_by, client, peer_uid, peer_pid, standing, attempts, next_attempt, "              \
	"last_error, added_via, removed_via, removed_outcome, added_also_via, add_unknown, "       \
	"end_client, end_reason, end_peer_uid, end_peer_pid"
/* Seven parameters, one per state: the name if its bit is in the mask,
 * else NULL (which matches nothing), so that `state` can use an index.
 * Numbered explicitly: a bare ? after ?8 would become ?9. */
#define STATE_IN_1 "state IN (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
#define STATE_IN_3 "state IN (?3, ?4, ?5, ?6, ?7, ?8, ?9)"
/* The rows of one membership among those of a pair key (which two users,
 * or two memberUid values differing in case, may share): with value (a
 * memberUid, which compares case) given, those of that very value, byte for
 * byte; else those of the same user (uuid, NULL matching NULL). */
#define SAME_HOLDER(uuid, value)                                                         \
	" AND (CASE WHEN " value " IS NULL THEN user_uuid IS " uuid                      \
	" ELSE member_value = " value " END)"

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
	"SELECT " GRANT_COLS ", created_at AS c_at, rowid AS r_id FROM grants INDEXED BY "          \
	"grants_user WHERE " where STATE_IN_1 " ORDER BY created_at DESC, rowid DESC LIMIT ?10"

const struct stmt_def stmt_sql[S__COUNT] = {
	[S_BEGIN] = { "begin", "BEGIN IMMEDIATE" },
	[S_COMMIT] = { "commit", "COMMIT" },
	[S_ROLLBACK] = { "rollback", "ROLLBACK" },
	[S_INSERT] = { "insert", "INSERT INTO grants (" GRANT_COLS ") VALUES "
				 "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
				 " ?,?,?,?)" },
	[S_GET] = { "get", "SELECT " GRANT_COLS " FROM grants WHERE id = ?1" },
	[S_GET_REQ] = { "get_by_request_id",
			"SELECT " GRANT_COLS " FROM grants WHERE request_id = ?1" },
	/* set_state: ?1 id, ?2 from, ?3 to, ?4 end_state, ?5 now, ?6 last_error;
	 * to ending: ?7..?10 who ended it (store_set_state_by) */
	[S_TO_ENDING] = { "to_ending", "UPDATE grants SET state = ?3, end_state = ?4,"
				       " attempts = 0, next_attempt = ?5, last_error = ?6,"
				       " end_client = ?7, end_reason = ?8, end_peer_uid = ?9,"
				       " end_peer_pid = ?10"
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
			  " FROM grants INDEXED BY grants_pair WHERE pair_key = ?1 AND id IS NOT ?2"
			  " AND state IN ('pending', 'active', 'ending') AND " STATE_IN_3 },
	/* as pair_live, only the rows of the same membership: when ?11 is
	 * given (memberUid, which compares case), those of that very value,
	 * byte for byte, whoever's; else those of the same user (?10:
	 * user_uuid, NULL matching NULL) */
	[S_PAIR_LIVE_SAME] = { "pair_live_same",
			       "SELECT count(*), coalesce(max(standing = 0), 0)"
			       " FROM grants INDEXED BY grants_pair WHERE pair_key = ?1 AND id IS NOT ?2"
			       " AND state IN ('pending', 'active', 'ending') AND " STATE_IN_3
			       SAME_HOLDER("?10", "?11") },
	[S_PAIR_CLEAR] = { "pair_clear_standing",
			   "UPDATE grants INDEXED BY grants_pair SET standing = 0"
			   " WHERE pair_key = ?1 AND state IN ('pending', 'active', 'ending')"
			   " AND standing <> 0" SAME_HOLDER("?2", "?3") },
	/* The other live rows of a pair take on an ending row's two writers
	 * (added_via a server that never answered the add, ?4 the one that
	 * wrote it after); a row's own writer, when another, becomes its
	 * second. Not rows with two already. (SET reads the old values.) */
	[S_PAIR_UNKNOWN] = { "pair_take_unknown",
			     "UPDATE grants INDEXED BY grants_pair SET add_unknown = 1"
			     " WHERE pair_key = ?1 AND id IS NOT ?2"
			     " AND state IN ('pending', 'active', 'ending')" SAME_HOLDER("?3", "?4") },
	[S_PAIR_WRITERS] = { "pair_take_writers",
			     "UPDATE grants INDEXED BY grants_pair SET added_via = ?3,"
			     " added_also_via = CASE WHEN added_via IS NULL"
			     "  OR lower(added_via) = lower(?3) THEN ?4 ELSE added_via END"
			     " WHERE pair_key = ?1 AND id IS NOT ?2"
			     " AND state IN ('pending', 'active', 'ending') AND added_also_via IS NULL"
			     SAME_HOLDER("?5", "?6") },
	[S_PAIR_SET] = { "pair_set_standing",
			 "UPDATE grants INDEXED BY grants_pair SET standing = 1"
			 " WHERE pair_key = ?1 AND state IN ('pending', 'active', 'ending')"
			 " AND standing = 0" SAME_HOLDER("?2", "?3") },
	/* The live rows of one membership group (directory, DN, attribute):
	 * the pair keys between ?1 (the key prefix, ending in a newline) and
	 * ?2 (the same with the newline raised by one), whatever the group's
	 * name in the configuration is now. */
	[S_GROUP_LIVE] = { "group_live", "SELECT " GRANT_COLS " FROM grants INDEXED BY grants_pair"
					 " WHERE pair_key >= ?1 AND pair_key < ?2"
					 " AND state IN ('pending', 'active', 'ending') LIMIT ?3" },
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
				   " end_state = 'failed', attempts = 0, next_attempt = ?1,"
				   " add_unknown = 1"
				   " WHERE state = 'pending'" },
	/* The user's live rows, from grants_user_dn (which holds only those). */
	[S_USER_LIVE] = { "user_live",
			  "SELECT count(*) FROM grants WHERE state IN ('pending', 'active',"
			  " 'ending') AND user_dn = ?1 COLLATE NOCASE" },
	/* the groups of a user's live grants (reconcile: a member whose
	 * grant names its group under another spelling) */
	[S_USER_LIVE_GROUPS] = { "user_live_groups",
				 "SELECT directory, group_dn, member_attr FROM grants"
				 " INDEXED BY grants_user_dn WHERE user_dn = ?1 COLLATE NOCASE"
				 " AND state IN ('pending', 'active', 'ending') LIMIT 256" },
	[S_COUNT_FAILING] = { "count_failing", "SELECT count(*) FROM grants"
					       " WHERE state = 'ending' AND refused <> 0" },
	/* active grants of the configured directories (?2, as for due) due
	 * since ?1 or before: a range of the due index, empty while expiries
	 * keep up (those of unconfigured directories are due_elsewhere's) */
	[S_COUNT_OVERDUE] = { "count_overdue", "SELECT count(*) FROM grants"
					       " INDEXED BY grants_active_due"
					       " WHERE state = 'active' AND expires_at <= ?1"
					       " AND " IN_DIRS("?2") },
	/* ?1 directory, ?2 now */
	[S_RETRY_NOW] = { "retry_now", "UPDATE grants SET next_attempt = ?2"
				       " WHERE state = 'ending' AND next_attempt > ?2"
				       " AND directory = ?1 AND removed_via IS NULL" },
	/* ?1 now, ?2 the latest a retry or a check can lie ahead of now, ?3
	 * the grace of a check after a removal made elsewhere, ?4 the most
	 * rows, ?5 the latest an ordinary retry (no removed_via) can lie ahead
	 * of now (<= ?2) */
	[S_RETRY_SOONER] = { "retry_sooner", "UPDATE grants SET next_attempt = ?1"
					     " + CASE WHEN removed_via IS NULL THEN 0 ELSE ?3 END"
					     " WHERE rowid IN (SELECT rowid FROM grants"
					     " INDEXED BY grants_ending_due WHERE state = 'ending'"
					     " AND next_attempt > ?1 + ?5 AND next_attempt > ?1"
					     " + CASE WHEN removed_via IS NULL THEN ?5 ELSE ?2 END"
					     " LIMIT ?4)" },
	/* ?1 a time, ?2 limit: from grants_state_created */
	[S_CREATED_AFTER] = { "created_after", "SELECT " GRANT_COLS " FROM grants"
					       " INDEXED BY grants_state_created WHERE state = 'active'"
					       " AND created_at > ?1 ORDER BY created_at LIMIT ?2" },
	[S_RESCHEDULE] = { "reschedule", "UPDATE grants SET created_at = ?2, expires_at = ?3"
					 " WHERE id = ?1 AND state = 'active' AND created_at = ?4"
					 " AND expires_at = ?5" },
	[S_PAIR_ENDING] = { "pair_ending", "SELECT " GRANT_COLS " FROM grants"
					   " INDEXED BY grants_pair WHERE pair_key = ?1 AND state = 'ending'"
					   " AND state IN ('pending', 'active', 'ending')"
					   " ORDER BY created_at, rowid" },
	/* ?1 now + before, ?2 now, ?3 before, ?4 limit: uses grants_active_due. */
	[S_EXPIRING] = { "expiring", "SELECT " GRANT_COLS " FROM grants"
				     " INDEXED BY grants_active_due WHERE state = 'active'"
				     " AND expires_at <= ?1 AND expires_at > ?2 AND warned_at = 0"
				     " AND duration > ?3 ORDER BY expires_at LIMIT ?4" },
	[S_WARNED] = { "warned", "UPDATE grants SET warned_at = ?2"
				 " WHERE id = ?1 AND state = 'active' AND warned_at = 0" },
	[S_UNWARN] = { "unwarn", "UPDATE grants SET warned_at = 0 WHERE id = ?1 AND warned_at = ?2" },
	[S_ADDED_VIA] = { "added_via", "UPDATE grants SET added_via = ?2, added_also_via = ?3 WHERE id = ?1" },
	[S_VERIFY] = { "verify", "UPDATE grants SET removed_via = ?2, next_attempt = ?3,"
				 " removed_outcome = ?4, attempts = 0, last_error = NULL, refused = 0"
				 " WHERE id = ?1 AND state = 'ending'" },
};

/*
 * Whether the states of r go together. Robustness: an ENDING row without
 * its end_state would reach the state machine as ENDING -> PENDING, a
 * broken invariant that stops jitd at every start (fatal). A PENDING or
 * ACTIVE row with an end_state is let through: every transition to ENDING
 * sets the end_state anew, and refusing the row would leave its membership
 * in place for good.
 */
static bool states_fit(const struct grant_rec *r)
{
	return r->state != GS_ENDING || (r->end_state >= GS_EXPIRED && r->end_state < GS__COUNT);
}

/*
 * Copies the row at column 0.. of s into a new grant_rec. A row that cannot
 * be one (a state name not known, an end_state not final, states that do
 * not go together): JIT_EIO with why saying which row and what is wrong,
 * not logged (the caller decides how loud). An SQLite error: JIT_EIO,
 * logged, why "".
 */
int row_to_rec(struct store *st, sqlite3_stmt *s, struct grant_rec **out, char *why,
	       size_t whylen)
{
	struct grant_rec *r = xcalloc(1, sizeof(*r));
	int ret = JIT_OK;

	why[0] = '\0';
	for (int i = 0; i < NFIELDS && ret == JIT_OK; i++) {
		void *p = (char *)r + fields[i].off;
		bool null = sqlite3_column_type(s, i) == SQLITE_NULL;
		const char *txt = NULL;
		enum grant_state gs;

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
			/* only a final state, as the schema's CHECK says */
			if (grant_state_parse(txt, &gs) != JIT_OK || gs < GS_EXPIRED) {
				snprintf(why, whylen, "grant %s: bad end_state %s", r->id ? r->id : "?",
					 txt);
				ret = JIT_EIO;
				break;
			}
			*(enum grant_state *)p = gs;
			break;
		case F_STATE:
			if (null || grant_state_parse(txt, (enum grant_state *)p) != JIT_OK) {
				snprintf(why, whylen, "grant %s: bad state %s", r->id ? r->id : "?",
					 txt ? txt : "NULL");
				ret = JIT_EIO;
			}
			break;
		}
	}
	if (ret == JIT_OK && !states_fit(r)) {
		snprintf(why, whylen, "grant %s: state %s without an end_state",
			 r->id ? r->id : "?",
			 grant_state_name(r->state));
		ret = JIT_EIO;
	}
	if (ret != JIT_OK) {
		grant_rec_free(r);
		return ret;
	}
	/* the list statements add created_at AS c_at, rowid AS r_id */
	if (sqlite3_column_count(s) > NFIELDS + 1) {
		const char *name = sqlite3_column_name(s, NFIELDS + 1);
		if (name && strcmp(name, "r_id") == 0)
			r->list_seq = sqlite3_column_int64(s, NFIELDS + 1);
	}
	*out = r;
	return JIT_OK;
}

/* Binds every field of r to the INSERT statement, in column order. */
int bind_rec(sqlite3_stmt *s, const struct grant_rec *r)
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

/* Prepares every statement once; checks the column table matches GRANT_COLS. */
int prepare_all(struct store *st)
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
