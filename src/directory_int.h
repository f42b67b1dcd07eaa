/*
 * directory_int.h - what the files of the directory module share: the
 * directory module is directory.c (resolve, members), revoke.c (ending a
 * membership by identity), ldapconn.c (the connection, its health), ldapbind.c
 * (the bounded set-up and the SASL bind) and dn.c (pure DN helpers), and
 * together they implement directory.h. Only they include this header: to the
 * rest of jitd struct dir_conn stays opaque and <ldap.h> unseen.
 *
 * An operation is a dir_op_fn handed to dir_run() (ldapconn.c), which
 * connects and binds when needed, fails at once while the directory is known
 * down, reconnects and retries once; the operation talks to c->ld, which is
 * bound while it runs, and fills res with dir_set_result(). Nothing here keeps a
 * pointer to its arguments; a returned heap string is the caller's to free.
 */
#ifndef JITD_DIRECTORY_INT_H
#define JITD_DIRECTORY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <ldap.h>

#include "directory.h"

struct dir_conn {
	const struct jit_dir_cfg *cfg;
	LDAP *ld;               /* NULL while not bound; used by the owning thread only */
	pthread_mutex_t lock;   /* guards bound and last_error (status reads them) */
	bool bound;
	char last_error[sizeof(((struct dir_result *)0)->message)];
	char **uris;            /* cfg->uri split at spaces: failover order */
	int n_uris;
	int cur;                /* index of the URI c->ld is bound to, or -1 */
	int prefer;             /* tried first by the next connect, or -1 */
	int64_t *failed_at;     /* per URI: mono_ms() of the last failed connect
				 * (0 = never); not the wall clock, which a
				 * step back would make "just failed" for hours */
	struct dir_health *health; /* shared by the directory's connections, or NULL */
	bool health_passive;    /* never marks health down (dir_conn_set_health) */
	bool probing;           /* dir_probe() runs: do not fail fast */
	bool run_snap;          /* run_recov is set (c has a health) */
	uint64_t run_recov;     /* the last dir_run() began when health had come
				 * back this many times */
	char *uuid_base;        /* where users are looked for by uuid, once known */
	struct ldap_conncb conncb; /* dir_conn_added(): bounds the set-up I/O */
	int64_t io_deadline;    /* mono_ms() limit of set-up I/O; 0: none */
	int64_t io_idle_ms;     /* otherwise: how long one read or write may wait
				 * for the socket (a stalled answer); 0: none */
	bool io_timed_out;      /* ... and it was reached */
	bool connecting;        /* dir_connect_one() runs: the one time libldap
				 * may open a connection of c->ld */
	bool dropping;          /* dir_drop() unbinds c->ld */
	bool conn_lost;         /* libldap closed c->ld's connection by itself
				 * (a Notice of Disconnection): dropped after
				 * the operation */
};

/* An operation run by dir_run(): returns an LDAP result code (negative for
 * client-side failures) and leaves its outputs in arg. */
typedef int (*dir_op_fn)(struct dir_conn *c, void *arg, struct dir_result *res);

/* ---- ldapconn.c: results, options, running an operation --------------- */

/* Untrusted server text into dst, made safe to show (termsafe.h). */
void dir_copy_printable(char *dst, size_t dstlen, const char *src);
/* res = code and "ldap N (text): <diagnostic>" ("" for success); stage
 * (may be NULL) names the step that failed. */
void dir_set_result(struct dir_conn *c, struct dir_result *res, int code, const char *stage);
/* Forgets the last diagnostic: call before each request. */
void dir_clear_diag(struct dir_conn *c);
/* res = LDAP_LOCAL_ERROR and what: a failure that is not the server's. */
void dir_set_local_result(struct dir_result *res, const char *what);
/* No usable answer (down, busy, timeout): worth a reconnect and a retry. */
bool dir_code_is_unavailable(int code);
/* A client-side error that means a bug or a bad configuration. */
bool dir_code_is_internal(int code);
/* The configured timeout of one request (10 s if unset). */
struct timeval dir_cfg_timeout(const struct jit_dir_cfg *cfg);
/* Does cfg bind with SASL GSSAPI? */
bool dir_is_gssapi(const struct jit_dir_cfg *cfg);
/* Does cfg identify users by AD's objectGUID (an Active Directory)? */
bool dir_uuid_is_guid(const struct jit_dir_cfg *cfg);
/* Runs op on c, bound (see ldapconn.c). JIT_OK: the directory answered,
 * *code = its answer, res filled; JIT_EDIRUNAVAIL: no answer. */
int dir_run(struct dir_conn *c, dir_op_fn op, void *arg, struct dir_result *res, int *code);

/* ---- ldapbind.c: setting a connection up ------------------------------ */

/* The mono_ms() time one timeout from now: a deadline of set-up I/O. */
int64_t dir_io_deadline(const struct jit_dir_cfg *cfg);
/* libldap's connect callbacks (c->conncb, lc_arg = c): dir_conn_added() puts the
 * deadline layer under TLS; 0, or -1 to fail the connection: any connection
 * libldap opens outside dir_connect_one() (after a Notice of Disconnection
 * it opens one itself, unbound and without StartTLS). dir_conn_deleted()
 * marks c->conn_lost when a connection closes outside dir_drop(). */
int dir_conn_added(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
		   struct ldap_conncb *ctx);
void dir_conn_deleted(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx);
/* Binds c->ld (connected) with SASL as cfg says. JIT_OK, or
 * JIT_EDIRUNAVAIL with res filled. */
int dir_bind(struct dir_conn *c, struct dir_result *res);

/* ---- directory.c: values and member operations ------------------------ */

/* The first value of attr in entry e (a uuid rendered as text if uuid), a
 * new heap string; NULL if absent. */
char *dir_first_value(LDAP *ld, LDAPMessage *e, const char *attr, bool uuid);
/* Is a an attribute description fit to paste into a filter? */
bool dir_attr_ok(const char *a);
/* dir_remove_member() with res not NULL; by_guid: value is an AD extended
 * DN "<GUID=...>". */
int dir_remove_value(struct dir_conn *c, const char *group_dn, const char *attr, const char *value,
		     const char *placeholder, bool by_guid, bool *already_gone,
		     struct dir_result *res);

/* ---- dn.c: DNs, pure -------------------------------------------------- */

/* Parses s as a DN (*dn: free with ldap_dnfree), *n = its number of RDNs.
 * False (and *dn NULL) if it is not one. */
bool dn_parse(const char *s, LDAPDN *dn, int *n);
/* Is dn base itself or an entry below it (RDN by RDN, not by string)? */
bool dn_under(const char *dn, const char *base);
/* Could dn be what a rename or move made of was (same first RDN, or same
 * parent)? */
bool dn_related(const char *dn, const char *was);

#endif
