/*
 * directory.h - everything jitd says to an LDAP directory. The only module
 * that includes <ldap.h> or <sasl/sasl.h>. Its files: directory.c (resolve,
 * members), revoke.c (removal by identity), ldapconn.c (connections, health),
 * ldapbind.c (set-up and bind), dn.c (DN helpers); what they share is in
 * directory_int.h, which nothing else includes.
 *
 * A struct dir_conn is one LDAP connection to one configured directory,
 * used by one thread at a time (the engine gives each worker thread its
 * own). It connects and binds lazily, on first use and again after the
 * server dropped it, trying each URI of `uri` in order (failover), or first
 * the one dir_conn_prefer() named. Every operation that meets a dropped or
 * unreachable server reconnects once and retries once before it gives up
 * with JIT_EDIRUNAVAIL. res->uri says which server answered, so that a
 * caller can remove a membership on the domain controller that wrote it.
 *
 * GSSAPI with `keytab`: each bind takes credentials from the keytab into a
 * credential cache private to jitd (see kerberos.h); tickets are renewed
 * from the keytab when they expire. A SASL security layer is required on
 * plain ldap:// unless sasl_secprops says otherwise.
 *
 * Results:
 *   JIT_OK           the directory answered and the operation did what was asked
 *   JIT_EDIRUNAVAIL  no answer (down, timeout, bind failed): for a write, the
 *                    outcome is unknown
 *   JIT_EDIRREFUSED  the directory answered with an error; res->ldap_code says which
 *   JIT_EUNKUSER     (dir_resolve_user) zero or several entries matched
 * Every operation fills *res (when not NULL) with the LDAP result code and a
 * short diagnostic fit for the audit log (never a secret).
 */
#ifndef JITD_DIRECTORY_H
#define JITD_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "config.h"

struct dir_conn;

struct dir_result {
	int ldap_code;          /* last LDAP result code (0 success, -1 = LDAP_SERVER_DOWN ...) */
	char message[256];      /* "ldap 50 insufficientAccess: <server text>" or "" */
	char uri[256];          /* the URI of the server that answered, or "" */
	char unanswered_uri[256]; /* dir_add_member: the server an add was sent to
				   * that never answered (it may have applied it),
				   * the first such one, or "" */
	char unanswered_also_uri[256]; /* dir_add_member: another server that
				   * left the retried add unanswered too, the last
				   * such one, or "" */
};

struct dir_user {
	char *dn;               /* the entry's DN as the server returned it */
	char *uid;              /* first value of uid_attr, or NULL */
	char **uid_others;      /* its other values (aliases), NULL-terminated,
				 * at most 64; or NULL */
	bool uid_others_cut;    /* it had more values than uid_others holds, or
				 * one jitd cannot read as text */
	char *uuid;             /* first value of uuid_attr as text, or NULL */
	bool disabled;          /* Active Directory: userAccountControl has
				 * ACCOUNTDISABLE (0x2) set */
};
void dir_user_clear(struct dir_user *u); /* frees the fields, NULL-safe */

/* True if some URI of cfg would run over TLS (ldaps://, or starttls) with
 * a server certificate that need not check out (tls_require_cert never,
 * allow or try) and no SASL security layer asked for (GSSAPI over TLS
 * asks for none by default; see sasl_secprops): nothing would then prove
 * the server is the directory, nor protect what follows the bind. */
bool dir_cfg_tls_unverified(const struct jit_dir_cfg *cfg);

/* Creates a connection object for cfg (which must outlive it). Does not
 * connect yet. Never fails except on memory exhaustion (aborts). */
struct dir_conn *dir_conn_new(const struct jit_dir_cfg *cfg);
void dir_conn_free(struct dir_conn *c); /* unbinds; NULL-safe */

/*
 * Makes the next operations go to uri (one of the configured URIs) while it
 * answers: drops a connection bound elsewhere so that the next operation
 * connects to uri first. False (and nothing changes) if uri is not in the
 * list, is the only URI, or failed to connect less than replication_grace
 * ago (a dead server is not waited for at every revocation).
 */
bool dir_conn_prefer(struct dir_conn *c, const char *uri);
/* How many URIs the directory has (> 1: replication matters). */
int dir_conn_uri_count(const struct dir_conn *c);
/* The configured uuid_attr (for messages). */
const char *dir_conn_uuid_attr(const struct dir_conn *c);
/* Is uri one of the directory's URIs (compared case-insensitively)? */
bool dir_conn_has_uri(const struct dir_conn *c, const char *uri);

/* Connects and binds now if not yet bound (used at start-up and by status). */
int dir_conn_open(struct dir_conn *c, struct dir_result *res) JIT_WUR;
/* True while the connection is bound; the last error text (or "") into buf. */
bool dir_conn_healthy(struct dir_conn *c, char *buf, size_t buflen);

/*
 * Finds the one entry under user_base (subtree) matching user_filter with
 * name escaped per RFC 4515. JIT_EUNKUSER when zero or more than one entry
 * match (a name such as "*" or "x)(uid=*" can never match someone else).
 * On success fills *out (caller clears with dir_user_clear); a disabled
 * account is found all the same, with out->disabled set.
 */
int dir_resolve_user(struct dir_conn *c, const char *name, struct dir_user *out,
		     struct dir_result *res) JIT_WUR;

/* Is the user search the default one, by uid (user_filter unset or
 * "(uid=%s)", uid_attr uid)? Then a name it found an entry by is a uid
 * value of that entry alone. */
bool dir_user_filter_is_uid(const struct dir_conn *c);

/*
 * Does uid value value name the entry dn alone? A subtree search of
 * user_base for (uid_attr=<escaped value>): *alone when it finds exactly
 * one entry, dn (compared ignoring case, as the server returned both).
 */
int dir_uid_names_only(struct dir_conn *c, const char *value, const char *dn, bool *alone,
		       struct dir_result *res) JIT_WUR;

/*
 * Is value a member of group_dn through attr? A base-scope search of the
 * group with filter (attr=<escaped value>), so large groups are fine.
 * JIT_EDIRREFUSED with ldap_code 32 if the group does not exist.
 */
int dir_is_member(struct dir_conn *c, const char *group_dn, const char *attr,
		  const char *value, bool *is_member, struct dir_result *res) JIT_WUR;

/*
 * Adds value to attr of group_dn. JIT_OK with *already = true when the
 * directory says it is already there (OpenLDAP 20, AD 68).
 */
int dir_add_member(struct dir_conn *c, const char *group_dn, const char *attr,
		   const char *value, bool *already, struct dir_result *res) JIT_WUR;

/*
 * Removes value from attr of group_dn. JIT_OK with *already_gone = true when
 * it was not there (OpenLDAP 16, AD 53). When the schema refuses to remove
 * the last value (65 objectClassViolation) and placeholder is not NULL, it
 * retries with one modify that adds placeholder and deletes value.
 */
int dir_remove_member(struct dir_conn *c, const char *group_dn, const char *attr,
		      const char *value, const char *placeholder, bool *already_gone,
		      struct dir_result *res) JIT_WUR;

/* A membership jitd wrote, as the grant recorded it. */
struct dir_member {
	const char *group_dn, *attr;
	const char *value;       /* the value written (the user's DN then, or a uid) */
	const char *uuid;        /* the user's uuid_attr value then, or NULL */
	const char *placeholder; /* see dir_remove_member; may be NULL */
};

/*
 * Ends membership m whatever happened to the user meanwhile. For DN-valued
 * attributes with a recorded uuid:
 *  - uuid_attr objectGUID (Active Directory): removes "<GUID=uuid>", which
 *    the server resolves to the user wherever it lives now;
 *  - otherwise (entryUUID): finds the user's current DN by uuid in the
 *    naming context that holds user_base (root DSE namingContexts), so a
 *    user moved out of user_base is found. Not renamed: removes the
 *    recorded value. Renamed or moved: removes the current DN (refint
 *    rewrote jitd's value to it, or someone added it), and the recorded DN
 *    too if no entry has that DN any more (jitd's dangling value), or if
 *    the current DN was not in the group (no refint: the recorded value is
 *    still jitd's, even when another entry took that DN; only after refint
 *    moved jitd's value is a value at a DN someone took theirs). Not found:
 *    removes the recorded value; if that is not there either, "already
 *    gone" only when no other value of the group can be the user (a value
 *    with the user's uuid is removed; one jitd cannot tell about - an
 *    entry without a readable uuid, or a hidden DN shaped like a move of
 *    the user - gives JIT_EDIRREFUSED: retry, never closed on a guess).
 * Without a uuid, or for memberUid, the recorded value is removed.
 * "Not there" answers are believed only when a search of the group agrees.
 * JIT_OK with *removed = true when a value was removed, false when none
 * referring to the user was there; *value_out (may be NULL; caller frees)
 * = the value removed, or NULL. Errors as dir_remove_member.
 */
int dir_revoke_member(struct dir_conn *c, const struct dir_member *m, bool *removed,
		      char **value_out, struct dir_result *res) JIT_WUR;

/*
 * Ends several memberships of one group (m[i].group_dn and attr as m[0]'s)
 * with one modify that deletes all their values, when the value naming
 * each user now is known without asking about that user alone: one search
 * finds the users by uuid (entryUUID), AD removes "<GUID=...>", memberUid
 * and members without a uuid remove the value written. done[i] = true and
 * value_out[i] (caller frees) = the value removed, for each member the
 * modify removed. A member not settled here (renamed or moved, found
 * nowhere, several entries with its uuid, a second grant of the same value, another group) or any
 * refusal of the modify (a value not there, the last value, a read-only
 * server): done[i] = false, end it with dir_revoke_member(). Returns JIT_OK,
 * or the error of the search or modify (nothing settled).
 */
/* The uuid_attr (as text, as dir_resolve_user gives it) of the entry named
 * dn: JIT_OK with *uuid (caller frees), NULL when no entry jitd can see has
 * that DN (or dn is no DN) or it shows no uuid; JIT_EDIRREFUSED or
 * JIT_EDIRUNAVAIL (message in res, which may be NULL). */
/* The value an add writes for the user whose entry jitd read (value: its
 * DN or uid, uuid: its uuid_attr as text; heap). On AD, <GUID=uuid>: the
 * link goes to the very entry jitd resolved and checked, even if another
 * entry took its DN meanwhile (a rename between the look-up and the add).
 * Elsewhere value itself. */
char *dir_add_value(const struct dir_conn *c, const char *attr, const char *value,
		    const char *uuid);
/* Does an entry jitd can see have this DN? JIT_OK with *exists, or the
 * directory's error (res may be NULL). */
int dir_entry_exists(struct dir_conn *c, const char *dn, bool *exists,
		     struct dir_result *res) JIT_WUR;
/* Could dn be what a move made of was (the same first RDN under another
 * parent)? False when either is no DN. */
bool dir_dn_moved(const char *dn, const char *was);
int dir_entry_uuid(struct dir_conn *c, const char *dn, char **uuid,
		   struct dir_result *res) JIT_WUR;

int dir_revoke_many(struct dir_conn *c, const struct dir_member *m, size_t n, bool *done,
		    char **value_out, struct dir_result *res) JIT_WUR;

/*
 * ---- reachability of one directory, shared by all its connections ----
 *
 * A struct dir_health records whether a directory is known to be down: the
 * last attempt to reach it (connect, bind, or an operation that went
 * unanswered twice) failed. While it is down, every operation on a
 * connection attached to it fails at once with JIT_EDIRUNAVAIL (res says
 * since when and why) instead of waiting for a connect timeout, and only
 * dir_probe() talks to the server. Any answer from the server (also a
 * refusal) marks it up again. Thread-safe.
 */
struct dir_health;
struct dir_health *dir_health_new(const char *name); /* never NULL */
void dir_health_free(struct dir_health *h);          /* NULL-safe */
/* Attaches c to h (h outlives c). Without it, c never fails fast.
 * passive: c fails fast while h says down and marks it up when it reaches
 * the server, but never marks it down (the reconciler: a slow read of a
 * huge group is no outage, and must not fail every grant and removal at
 * once until a probe; the workers and probes find a real one). */
void dir_conn_set_health(struct dir_conn *c, struct dir_health *h, bool passive);
/* True while the directory is known down; then the reason into buf. */
bool dir_health_down(struct dir_health *h, char *buf, size_t buflen);
/* Has c's directory come back (a recovery, see dir_health_recoveries)
 * since c's last operation began? Then the main thread's rescheduling of
 * pending removals at the recovery may have run before a failure of that
 * operation was recorded. */
bool dir_conn_back_since_run(struct dir_conn *c);
/* How many times the directory came back up (changes on each recovery). */
uint64_t dir_health_recoveries(struct dir_health *h);
/* True (and the probe is then claimed until dir_probe() finishes) when the
 * directory is down, no probe is running and the last one is at least
 * interval seconds old. now: monotonic seconds (mono_ms() / 1000), never
 * the wall clock: after a step back the last probe would lie in the
 * future, and no probe would run until the clock caught up with it. */
bool dir_health_probe_due(struct dir_health *h, int64_t now, int64_t interval);

/* A real round trip to the server (connect and bind if needed, then a read
 * of the root DSE), even while the directory is known down. Updates the
 * health. JIT_OK if the server answered. */
int dir_probe(struct dir_conn *c, struct dir_result *res) JIT_WUR;

/*
 * Reads every value of attr of group_dn and calls cb(value, arg) for each
 * (the value is only valid during the call; a non-zero return stops the
 * walk). Large groups: where the server hands the attribute out in ranges
 * (Active Directory's `member;range=0-1499`), the ranges are fetched one
 * after another until the last. JIT_EDIRREFUSED with ldap_code 32 if the
 * group does not exist or jitd cannot see it (an ACL that hides the entry:
 * the callers cannot tell the two apart and must not take either for an
 * empty group), and with 50 when a list with no value could not be
 * confirmed empty (a member attribute jitd may write but not search).
 */
typedef int (*dir_value_cb)(const char *value, void *arg);
/*
 * Active Directory: the DNs of the entries whose primaryGroupID is the
 * group's primaryGroupToken, members that `member` never lists, searched
 * in the group's domain (the DC= part of its DN; user_base if it has none).
 * JIT_OK without calling cb when the group has no primaryGroupToken (not
 * AD); a size limit or any other refusal is JIT_EDIRREFUSED.
 */
int dir_list_primary_members(struct dir_conn *c, const char *group_dn, dir_value_cb cb,
			     void *cb_arg, struct dir_result *res) JIT_WUR;
int dir_list_members(struct dir_conn *c, const char *group_dn, const char *attr,
		     dir_value_cb cb, void *arg, struct dir_result *res) JIT_WUR;
/* The same, with the values that hold a NUL byte (a memberUid can; no DN
 * can) given to odd_cb as text, NUL written \00 and '\' \5c: no modify
 * can name them so. dir_list_members skips them. */
int dir_list_members_odd(struct dir_conn *c, const char *group_dn, const char *attr,
			 dir_value_cb cb, dir_value_cb odd_cb, void *arg,
			 struct dir_result *res) JIT_WUR;
/* The same, asking for `step` values per request ("member;range=0-4", ...;
 * 0: as dir_list_members). For tests of the range loop against a server
 * that honours the window asked for (Samba does; AD caps it). */
int dir_list_members_step(struct dir_conn *c, const char *group_dn, const char *attr, long step,
			  dir_value_cb cb, void *arg, struct dir_result *res) JIT_WUR;

/*
 * A comparison key for a member value (new heap string): a DN gets its
 * dn_key() (escapes decoded, case folded over Unicode, insignificant spaces
 * dropped, a multi-valued RDN's values sorted), so "UID=a, ou=People",
 * "uid=a,ou=people" and "uid=A,OU=PEOPLE" get one key; anything that does
 * not parse as a DN (memberUid values) is kept as it is: memberUid compares
 * case (caseExactIA5Match), and so does the name service that reads it.
 */
char *dir_value_key(const char *value);

/*
 * The group DN's part of a pair key (new heap string): libldap's own RFC
 * 4514 form, lower-cased in ASCII (anything that does not parse: just
 * lower-cased). Pair keys are stored with the grants, so this form never
 * changes (dir_value_key() folds more: it serves comparisons made afresh).
 */
char *dir_pair_dn_key(const char *dn);

/*
 * The key of a (directory, group, member attribute, member value) pair
 * (new heap string): the group DN in libldap's RFC 4514 form lower-cased
 * in ASCII (stored with the grants: this form never changes), the directory
 * name, the attribute and the value lower-cased, joined by '\n'. Two
 * spellings of one group DN in jitd.conf (spaces, case, escapes) give the
 * same key, so a grant made under one spelling and a grant or drift check
 * under the other see each other. (The value is the directory's own
 * spelling of the user's DN, or a uid: always written the same way.)
 */
char *dir_pair_key(const char *directory, const char *group_dn, const char *attr,
		   const char *value);

/*
 * The name of directory `name`'s private Kerberos credential cache,
 * "MEMORY:jitd-<name>", into buf: distinct directory names give distinct
 * caches (so distinct identities), never a shared cut-off prefix. JIT_OK,
 * or JIT_ETOOBIG with buf untouched if it does not fit in len (a buffer of
 * DIR_CCACHE_MAX bytes fits every name the config accepts). Pure.
 */
#define DIR_CCACHE_PREFIX "MEMORY:jitd-"
#define DIR_CCACHE_MAX (sizeof(DIR_CCACHE_PREFIX) + CFG_NAME_MAX)
int dir_ccache_name(const char *name, char *buf, size_t len) JIT_WUR;

/*
 * AD range retrieval, pure (unit-tested): desc is an attribute description
 * returned by the server. If it is attr;range=LOW-HIGH (HIGH a number or
 * '*'), returns true with *high = HIGH or -1 for '*'. False for anything
 * else (for attr itself too).
 */
bool dir_parse_range(const char *desc, const char *attr, long *low, long *high);

#endif
