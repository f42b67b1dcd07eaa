/*
 * ldapbind.c - setting an LDAP connection up (directory_int.h): a deadline on
 * the set-up I/O (a Sockbuf layer under TLS, so a server that never answers
 * cannot hold a worker), the SASL bind, and GSSAPI credentials from the
 * keytab, one bind per credential cache at a time.
 * Trust boundary: the SASL secret is read at each bind, refused if group/other
 * may read or write it, wiped right after, never logged.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldap.h>
#include <sasl/sasl.h>

#include "directory_int.h"
#include "kerberos.h"
#include "log.h"
#include "secret.h"
#include "util.h"

#define SECRET_MAX 4096 /* bytes of the secret, not counting one trailing newline */

/* What the SASL interaction callback answers. */
struct sasl_answers {
	const char *authcid, *secret, *realm, *authzid;
	void *gss_cred;         /* GSSAPI credentials to hand to SASL, or NULL */
	bool gss_cred_set;      /* ... and they were handed over */
};

/* ---- the SASL secret and prompts -------------------------------------- */

/*
 * Reads the SASL secret from path into a new heap string (*out, wipe with
 * free_secret), with secret.h's checks made on the open file at every read
 * (a regular file, not a symbolic link, owned by the user jitd runs as, no
 * access for group or others): a file swapped or loosened after start is
 * refused rather than used. One trailing "\n" or "\r\n" is dropped.
 */
static int read_secret(const char *path, char **out, struct dir_result *res)
{
	char why[160], msg[256];
	size_t len = 0;
	char *buf = NULL;
	int rc = secret_file_read(path, geteuid(), SECRET_MAX, &buf, &len, why, sizeof(why));

	if (rc == JIT_OK && memchr(buf, '\0', len) != NULL) {
		snprintf(why, sizeof(why), "contains a NUL byte");
		rc = JIT_ECONFIG;
	}
	if (rc != JIT_OK) {
		if (buf) {
			wipe(buf, len);
			free(buf);
		}
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %.80s: %.150s", path, why);
		dir_set_local_result(res, msg);
		return JIT_EDIRUNAVAIL;
	}
	*out = buf;
	return JIT_OK;
}

/*
 * libldap calls this with the prompts the mechanism needs. GSSAPI asks for
 * the authorization identity before it starts its security context, and the
 * SASL context exists by then: the only moment libldap accepts credentials
 * for it (LDAP_OPT_X_SASL_GSS_CREDS needs a live SASL context).
 */
static int sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
	struct sasl_answers *a = defaults;
	sasl_interact_t *it;

	(void)flags;
	if (a->gss_cred != NULL && !a->gss_cred_set) {
		if (ldap_set_option(ld, LDAP_OPT_X_SASL_GSS_CREDS, a->gss_cred) != LDAP_OPT_SUCCESS)
			return LDAP_LOCAL_ERROR;
		a->gss_cred_set = true;
	}
	for (it = in; it->id != SASL_CB_LIST_END; it++) {
		const char *v = NULL;
		switch (it->id) {
		case SASL_CB_AUTHNAME:
			v = a->authcid;
			break;
		case SASL_CB_PASS:
			v = a->secret;
			break;
		case SASL_CB_GETREALM:
			v = a->realm ? a->realm : (const char *)it->defresult;
			break;
		case SASL_CB_USER:
			v = a->authzid;
			break;
		default:
			v = (const char *)it->defresult;
			break;
		}
		if (v == NULL)
			v = "";
		it->result = v;
		it->len = (unsigned)strlen(v);
	}
	return LDAP_SUCCESS;
}

/* ---- a deadline on the set-up I/O ------------------------------------- */

/*
 * Robustness: a deadline for the I/O that sets a connection up. libldap 2.5
 * runs the TLS handshake (ldaps:// and StartTLS) on a non-blocking socket
 * when LDAP_OPT_NETWORK_TIMEOUT is set and retries a read that would block
 * at once, with no deadline: it polls with that timeout only under
 * LDAP_OPT_CONNECT_ASYNC, which a synchronous bind cannot use (it answers
 * LDAP_X_CONNECTING while a remote connect is in progress). SO_RCVTIMEO
 * cannot help a non-blocking socket. A server that accepts the connection
 * and never answers would hold the worker, spinning, until it closes the
 * connection. So dir_conn_added() (libldap calls it once TCP is connected,
 * before any TLS) puts one I/O layer between the socket and TLS: while
 * c->io_deadline is set, a read or write first waits for the socket with
 * poll(), until the deadline at most, then fails with ETIMEDOUT, which fails
 * the handshake. Unset, the layer passes everything through.
 */
int64_t dir_io_deadline(const struct jit_dir_cfg *cfg)
{
	return mono_ms() + (int64_t)dir_cfg_timeout(cfg).tv_sec * 1000;
}

/* 0 once the socket under sbiod is ready for ev (or has failed: the read
 * or write says how); -1 with errno set, ETIMEDOUT at the deadline. */
static int io_wait(Sockbuf_IO_Desc *sbiod, short ev)
{
	struct dir_conn *c = sbiod->sbiod_pvt;
	ber_socket_t fd = -1;
	struct pollfd p;
	/* Robustness: after the set-up too, no read or write waits longer
	 * than the timeout for the socket. libldap bounds only the wait for
	 * an answer's first byte; the rest of a TLS record or SASL packet is
	 * read blocking, and an answer cut off halfway (a network cut, a
	 * server paused) would hold the worker, and its pair lock, for ever. */
	int64_t deadline = c->io_deadline;

	if (deadline == 0 && c->io_idle_ms > 0)
		deadline = mono_ms() + c->io_idle_ms;
	if (deadline == 0)
		return 0;
	if (ber_sockbuf_ctrl(sbiod->sbiod_sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0) {
		errno = EBADF;
		return -1;
	}
	p.fd = fd;
	p.events = ev;
	for (;;) {
		int64_t left = deadline - mono_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n > 0)
			return 0;
		if (n == 0) {
			c->io_timed_out = true;
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

static int io_setup(Sockbuf_IO_Desc *sbiod, void *arg)
{
	sbiod->sbiod_pvt = arg;
	return 0;
}

static int io_ctrl(Sockbuf_IO_Desc *sbiod, int opt, void *arg)
{
	return LBER_SBIOD_CTRL_NEXT(sbiod, opt, arg);
}

static ber_slen_t io_read(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (io_wait(sbiod, POLLIN) != 0)
		return -1;
	return LBER_SBIOD_READ_NEXT(sbiod, buf, len);
}

static ber_slen_t io_write(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	if (io_wait(sbiod, POLLOUT) != 0)
		return -1;
	return LBER_SBIOD_WRITE_NEXT(sbiod, buf, len);
}

static Sockbuf_IO deadline_io = {
	.sbi_setup = io_setup,
	.sbi_ctrl = io_ctrl,
	.sbi_read = io_read,
	.sbi_write = io_write,
};

/* libldap's connect callback: TCP is connected, TLS not started. A
 * connection that cannot get the layer fails rather than run unbounded. */
int dir_conn_added(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
		   struct ldap_conncb *ctx)
{
	struct dir_conn *c = ctx->lc_arg;

	(void)ld;
	(void)srv;
	(void)addr;
	if (!c->connecting) {
		/* Robustness: libldap reconnects by itself inside an operation
		 * after the server ended the session (a Notice of
		 * Disconnection), with no bind, StartTLS or SASL layer: every
		 * later operation would go out anonymous, maybe in clear text.
		 * Refused: the operation fails as unreachable, and jitd
		 * connects and binds again. */
		log_warn("directory %s: refused a connection libldap opened by itself after the "
			 "server ended the session; binding again", c->cfg->name);
		c->conn_lost = true;
		return -1;
	}
	c->io_deadline = dir_io_deadline(c->cfg);
	c->io_idle_ms = (int64_t)dir_cfg_timeout(c->cfg).tv_sec * 1000;
	if (ber_sockbuf_add_io(sb, &deadline_io, LBER_SBIOD_LEVEL_TRANSPORT - 1, c) != 0) {
		log_warn("directory %s: cannot bound the connection set-up", c->cfg->name);
		return -1;
	}
	return 0;
}

/* Called when libldap closes a connection (sb NULL when the handle goes):
 * the layer goes with the Sockbuf, nothing is ours to free. A close jitd did
 * not ask for (c->ld still set: not dir_drop()) leaves the handle with no
 * bound connection. */
void dir_conn_deleted(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	struct dir_conn *c = ctx->lc_arg;

	if (sb != NULL && ld != NULL && c->ld == ld && !c->dropping)
		c->conn_lost = true;
}

/* ---- GSSAPI and the bind ---------------------------------------------- */

/*
 * GSSAPI with a keytab: credentials for jitd alone, in a credential cache
 * private to this process and directory ("MEMORY:jitd-<name>"), so neither
 * KRB5CCNAME nor anybody's kinit matters. Two threads must not initialise
 * one cache at once: MIT gets the TGT into it during the bind (the first,
 * and again when it is due for refresh), and its initialise-then-store is
 * not atomic. So the binds that share a cache (one directory's
 * connections, the engine's and reconcile's alike, across reloads: the
 * cache goes by the directory's name) run one at a time, from taking the
 * credentials to the bind's answer; the binds of different directories,
 * with different caches, do not wait for each other: a stalled domain
 * controller holds back only its own directory (each bind bounded by its
 * timeout). One lock per cache name ever used, kept until exit.
 */
struct gss_lock {
	char *ccache;
	pthread_mutex_t mu;
	struct gss_lock *next;
};
static pthread_mutex_t gss_locks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gss_lock *gss_locks; /* guarded by gss_locks_mu */

int dir_ccache_name(const char *name, char *buf, size_t len)
{
	/* Robustness: a cut name could be another directory's cache, holding
	 * that directory's identity; refuse instead. */
	if (strlen(DIR_CCACHE_PREFIX) + strlen(name) >= len)
		return JIT_ETOOBIG;
	(void)snprintf(buf, len, "%s%s", DIR_CCACHE_PREFIX, name);
	return JIT_OK;
}

static pthread_mutex_t *gss_lock_for(const char *ccache)
{
	struct gss_lock *l;

	pthread_mutex_lock(&gss_locks_mu);
	for (l = gss_locks; l != NULL && strcmp(l->ccache, ccache) != 0; l = l->next)
		;
	if (l == NULL) {
		int err;
		l = xcalloc(1, sizeof(*l));
		l->ccache = xstrdup(ccache);
		err = pthread_mutex_init(&l->mu, NULL);
		if (err != 0)
			fatal("pthread_mutex_init: %s", strerror(err));
		l->next = gss_locks;
		gss_locks = l;
	}
	pthread_mutex_unlock(&gss_locks_mu);
	return &l->mu;
}

static int gss_acquire(struct dir_conn *c, const char *ccache, void **cred,
		       struct dir_result *res)
{
	char err[200], msg[256];

	/* The keytab is a secret file: the checks made at start and reload
	 * hold at each bind too (libkrb5 then reads it by path). */
	if (c->cfg->keytab && secret_file_check(c->cfg->keytab, geteuid(), err, sizeof(err)) !=
				      JIT_OK) {
		(void)snprintf(msg, sizeof(msg), "keytab %s: %s", c->cfg->keytab, err);
		dir_set_local_result(res, msg);
		return JIT_EDIRUNAVAIL;
	}
	if (krb_cred_acquire(c->cfg->keytab, c->cfg->principal, ccache, cred, err,
			     sizeof(err)) != JIT_OK) {
		(void)snprintf(msg, sizeof(msg), "keytab %s: %s", c->cfg->keytab, err);
		dir_set_local_result(res, msg);
		return JIT_EDIRUNAVAIL;
	}
	return JIT_OK;
}

/* Binds c->ld with SASL. The secret lives only for the bind. */
int dir_bind(struct dir_conn *c, struct dir_result *res)
{
	const struct jit_dir_cfg *cfg = c->cfg;
	const char *mech = cfg->sasl_mech ? cfg->sasl_mech : "EXTERNAL";
	struct sasl_answers a = { cfg->sasl_authcid, NULL, cfg->sasl_realm, cfg->sasl_authzid,
				  NULL, false };
	bool gss = dir_is_gssapi(cfg) && cfg->keytab != NULL;
	pthread_mutex_t *gss_lock = NULL;
	char ccache[DIR_CCACHE_MAX];
	char *secret = NULL;
	int code, rc = JIT_EDIRUNAVAIL;

	if (cfg->sasl_secret_file != NULL) {
		int err = read_secret(cfg->sasl_secret_file, &secret, res);
		if (err != JIT_OK)
			return err;
		a.secret = secret;
	}
	if (gss && dir_ccache_name(cfg->name, ccache, sizeof(ccache)) != JIT_OK) {
		dir_set_local_result(res, "directory name too long for a credential cache name");
		free_secret(secret);
		return JIT_EDIRUNAVAIL;
	}
	if (gss) {
		gss_lock = gss_lock_for(ccache);
		pthread_mutex_lock(gss_lock);
		/* The bind's deadline (set after StartTLS) starts once the lock
		 * is ours: waiting for another connection's bind is not the
		 * server failing to answer. */
		if (c->io_deadline != 0)
			c->io_deadline = dir_io_deadline(cfg);
		if (gss_acquire(c, ccache, &a.gss_cred, res) != JIT_OK)
			goto out;
	}
	dir_clear_diag(c);
	code = ldap_sasl_interactive_bind_s(c->ld, NULL, mech, NULL, NULL, LDAP_SASL_QUIET,
					    sasl_interact, &a);
	if (code != LDAP_SUCCESS) {
		char stage[64];
		(void)snprintf(stage, sizeof(stage), "bind %s", mech);
		dir_set_result(c, res, code, stage);
		goto out;
	}
	if (gss && !a.gss_cred_set) {
		/* Robustness: never run on credentials other than the keytab's. */
		dir_set_local_result(res, "bind GSSAPI: the keytab's credentials could not be "
					  "handed to SASL");
		goto out;
	}
	rc = JIT_OK;
out:
	if (gss) {
		krb_cred_release(a.gss_cred);
		pthread_mutex_unlock(gss_lock);
	}
	free_secret(secret);
	a.secret = NULL;
	return rc;
}
