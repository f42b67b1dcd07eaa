/*
 * directory.c - libldap + Cyrus SASL behind directory.h: connect, SASL bind,
 * resolve a user, check / add / remove a member, map result codes.
 * Trust boundary: all the server sends is untrusted; user names reach filters
 * only through escape.c. The SASL secret is read at each bind, refused if
 * group/other may read or write it, wiped right after, never logged.
 * libldap write()s to its sockets: the process must ignore SIGPIPE.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <ldap.h>
#include <sasl/sasl.h>

#include "directory.h"
#include "escape.h"
#include "fault.h"
#include "kerberos.h"
#include "log.h"
#include "termsafe.h"
#include "util.h"

#define SECRET_MAX 4096 /* bytes of the secret, not counting one trailing newline */

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
	int64_t *failed_at;     /* per URI: last failed connect (0 = never) */
	struct dir_health *health; /* shared by the directory's connections, or NULL */
	bool probing;           /* dir_probe() runs: do not fail fast */
	char *uuid_base;        /* where users are looked for by uuid, once known */
	struct ldap_conncb conncb; /* conn_added(): bounds the set-up I/O */
	int64_t io_deadline;    /* mono_ms() limit of set-up I/O; 0: none */
	bool io_timed_out;      /* ... and it was reached */
};

struct dir_health {
	pthread_mutex_t lock;   /* guards everything below */
	char *name;
	bool down;
	int64_t since;          /* when it went down */
	char error[sizeof(((struct dir_result *)0)->message)];
	uint64_t recoveries;
	bool probing;
	int64_t last_probe;
};

/* What the SASL interaction callback answers. */
struct sasl_answers {
	const char *authcid, *secret, *realm, *authzid;
	void *gss_cred;         /* GSSAPI credentials to hand to SASL, or NULL */
	bool gss_cred_set;      /* ... and they were handed over */
};

/* An operation run by dir_run(): returns an LDAP result code (negative for
 * client-side failures) and leaves its outputs in arg. */
typedef int (*dir_op_fn)(struct dir_conn *c, void *arg, struct dir_result *res);

/* ---- results and health ---------------------------------------------- */

/* Copies untrusted server text, replacing control characters (C0, DEL,
 * C1) and invalid UTF-8, truncating between characters (termsafe.h). */
static void copy_printable(char *dst, size_t dstlen, const char *src)
{
	(void)termsafe_copy(dst, dstlen, src, 0);
}

/* Fills res with code and "ldap N (text): <diagnostic>"; an empty message
 * for success. stage (may be NULL) prefixes connection-level failures. */
static void set_result(struct dir_conn *c, struct dir_result *res, int code, const char *stage)
{
	char *diag = NULL;
	char clean[160] = "";

	res->ldap_code = code;
	if (code == LDAP_SUCCESS) {
		res->message[0] = '\0';
		return;
	}
	if (c->ld != NULL &&
	    ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS &&
	    diag != NULL)
		copy_printable(clean, sizeof(clean), diag);
	ldap_memfree(diag);
	/* Truncation is intended: the message is a bounded diagnostic. */
	(void)snprintf(res->message, sizeof(res->message), "%s%sldap %d (%s)%s%s",
		       stage ? stage : "", stage ? ": " : "", code, ldap_err2string(code),
		       clean[0] ? ": " : "", clean);
}

/* Forgets the previous diagnostic so a client-side failure (no answer)
 * is not reported with stale server text. */
static void clear_diag(struct dir_conn *c)
{
	if (ldap_set_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, NULL) != LDAP_OPT_SUCCESS)
		log_debug("directory %s: cannot reset the diagnostic message", c->cfg->name);
}

/* A local failure that is not an LDAP result (secret file, options...). */
static void set_local_result(struct dir_result *res, const char *what)
{
	res->ldap_code = LDAP_LOCAL_ERROR;
	copy_printable(res->message, sizeof(res->message), what);
}

static void set_health(struct dir_conn *c, bool bound, const char *error)
{
	pthread_mutex_lock(&c->lock);
	c->bound = bound;
	if (error != NULL)
		copy_printable(c->last_error, sizeof(c->last_error), error);
	pthread_mutex_unlock(&c->lock);
}

bool dir_conn_healthy(struct dir_conn *c, char *buf, size_t buflen)
{
	bool bound;

	pthread_mutex_lock(&c->lock);
	bound = c->bound;
	if (buf != NULL && buflen > 0)
		copy_printable(buf, buflen, c->last_error);
	pthread_mutex_unlock(&c->lock);
	return bound;
}

/* No usable answer: drop the connection, reconnect and retry once. 51 busy
 * and 52 unavailable are answers, but a reconnect may reach another URI and
 * the outcome is the same for the caller: try again later. */
static bool code_is_unavailable(int code)
{
	if (code == LDAP_BUSY || code == LDAP_UNAVAILABLE)
		return true;
	/* Our own mistakes, not the connection's: never retried. */
	if (code == LDAP_FILTER_ERROR || code == LDAP_PARAM_ERROR || code == LDAP_NOT_SUPPORTED)
		return false;
	return code < 0;
}

/*
 * An answer on a connection that was already open that may mean the
 * session's bind no longer holds: operationsError (Active Directory's
 * "a successful bind must be completed", 000004DC), strongAuthRequired,
 * inappropriateAuthentication, invalidCredentials (an expired Kerberos
 * session). Bound again and retried once; a fresh connection's answer is
 * the answer.
 */
static bool code_is_session_lost(int code)
{
	return code == LDAP_OPERATIONS_ERROR || code == LDAP_STRONG_AUTH_REQUIRED ||
	       code == LDAP_INAPPROPRIATE_AUTH || code == LDAP_INVALID_CREDENTIALS;
}

/* A client-side LDAP error that means a bug or a bad configuration. */
static bool code_is_internal(int code)
{
	return code < 0 && !code_is_unavailable(code);
}

/* ---- connecting and binding ------------------------------------------ */

static void dir_drop(struct dir_conn *c)
{
	if (c->ld != NULL) {
		int rc = ldap_unbind_ext_s(c->ld, NULL, NULL);
		if (rc != LDAP_SUCCESS)
			log_debug("directory %s: unbind: %s", c->cfg->name, ldap_err2string(rc));
		c->ld = NULL;
	}
	c->cur = -1;
	set_health(c, false, NULL);
}

/*
 * Reads the SASL secret from path into a new heap string (*out, wipe with
 * free_secret). Robustness: a file group or others can read or write, or
 * that is not a regular file, is refused rather than used.
 */
static int read_secret(const char *path, char **out, struct dir_result *res)
{
	char buf[SECRET_MAX + 2]; /* the secret, a newline, and one byte too many */
	char msg[256];
	struct stat st;
	size_t n = 0;
	int fd, rc = JIT_EDIRUNAVAIL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: %s", path, strerror(errno));
		set_local_result(res, msg);
		return JIT_EDIRUNAVAIL;
	}
	if (fstat(fd, &st) != 0) {
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: %s", path, strerror(errno));
		goto refuse;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: not a regular file", path);
		goto refuse;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		(void)snprintf(msg, sizeof(msg),
			       "sasl_secret_file %s: mode %04o lets group or others read or "
			       "write it; refusing it (chmod 0600)",
			       path, (unsigned)(st.st_mode & 07777));
		goto refuse;
	}
	while (n < sizeof(buf)) {
		ssize_t got = read(fd, buf + n, sizeof(buf) - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: %s", path,
				       strerror(errno));
			goto refuse;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > 0 && n < sizeof(buf) && buf[n - 1] == '\n')
		n--;
	if (n > SECRET_MAX) {
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: longer than %d bytes",
			       path, SECRET_MAX);
		goto refuse;
	}
	if (n == 0 || memchr(buf, '\0', n) != NULL) {
		(void)snprintf(msg, sizeof(msg), "sasl_secret_file %s: %s", path,
			       n == 0 ? "empty" : "contains a NUL byte");
		goto refuse;
	}
	*out = xstrndup(buf, n);
	rc = JIT_OK;
	goto out;
refuse:
	set_local_result(res, msg);
out:
	wipe(buf, sizeof(buf));
	if (close(fd) != 0)
		log_debug("close sasl_secret_file: %s", strerror(errno));
	return rc;
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

static int tls_require_value(const char *s)
{
	if (s == NULL || strcasecmp(s, "demand") == 0)
		return LDAP_OPT_X_TLS_DEMAND;
	if (strcasecmp(s, "never") == 0)
		return LDAP_OPT_X_TLS_NEVER;
	if (strcasecmp(s, "allow") == 0)
		return LDAP_OPT_X_TLS_ALLOW;
	if (strcasecmp(s, "try") == 0)
		return LDAP_OPT_X_TLS_TRY;
	if (strcasecmp(s, "hard") == 0)
		return LDAP_OPT_X_TLS_HARD;
	return -1;
}

/* The configured timeout as a timeval (10 s if unset). */
static struct timeval cfg_timeout(const struct jit_dir_cfg *cfg)
{
	struct timeval tv = { .tv_sec = cfg->timeout > 0 ? (time_t)cfg->timeout : 10 };
	return tv;
}

static bool is_gssapi(const struct jit_dir_cfg *cfg)
{
	return cfg->sasl_mech != NULL && strcasecmp(cfg->sasl_mech, "GSSAPI") == 0;
}

/* Does the connection to uri run over TLS (ldaps:// or StartTLS)? */
static bool uses_tls(const struct jit_dir_cfg *cfg, const char *uri)
{
	return cfg->starttls || strncasecmp(uri, "ldaps://", 8) == 0;
}

/*
 * The SASL security properties: sasl_secprops if set. Otherwise, for
 * GSSAPI, a security layer (signing and sealing) is required on a plain
 * connection, and none is asked for over TLS: Active Directory and Samba
 * refuse a SASL layer inside TLS ("Sign or Seal are not allowed if TLS is
 * used"), and TLS already protects the connection. Other mechanisms: the
 * library default.
 */
static const char *secprops_for(const struct jit_dir_cfg *cfg, const char *uri)
{
	if (cfg->sasl_secprops != NULL)
		return cfg->sasl_secprops;
	if (!is_gssapi(cfg))
		return NULL;
	return uses_tls(cfg, uri) ? "maxssf=0" : "minssf=56";
}

/* The minssf that a SASL_SECPROPS string asks for; 0 if none (or not a
 * number: libldap then refuses the string at the bind). */
static int64_t secprops_minssf(const char *secprops)
{
	const char *p = secprops;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, ",");
		if (len > 7 && strncasecmp(p, "minssf=", 7) == 0) {
			char num[16];
			int64_t v;
			if (len - 7 >= sizeof(num))
				return 0;
			memcpy(num, p + 7, len - 7);
			num[len - 7] = '\0';
			return parse_int64(num, 0, INT32_MAX, &v) == JIT_OK ? v : 0;
		}
		p += len;
		p += strspn(p, ",");
	}
	return 0;
}

bool dir_cfg_tls_unverified(const struct jit_dir_cfg *cfg)
{
	const char *req = cfg->tls_require_cert ? cfg->tls_require_cert : "demand";
	const char *p = cfg->uri;

	if (tls_require_value(req) == LDAP_OPT_X_TLS_DEMAND ||
	    tls_require_value(req) == LDAP_OPT_X_TLS_HARD)
		return false;
	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, " ");
		char *uri = xstrndup(p, len);
		bool bad = len > 0 && uses_tls(cfg, uri) &&
			   secprops_minssf(secprops_for(cfg, uri)) == 0;
		free(uri);
		if (bad)
			return true;
		p += len;
		p += strspn(p, " ");
	}
	return false;
}

/* Sets every handle option; the name of the first that fails, or NULL. */
static const char *set_options(LDAP *ld, const struct jit_dir_cfg *cfg, const char *uri)
{
	const char *secprops = secprops_for(cfg, uri);
	int version = LDAP_VERSION3, reqcert = tls_require_value(cfg->tls_require_cert);
	int is_server = 0;
	struct timeval tv = cfg_timeout(cfg);

	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS)
		return "protocol version";
	if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return "network timeout";
	if (ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return "timeout";
	if (ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
		return "referrals";
	if (ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS)
		return "restart";
	if (ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON,
			    cfg->sasl_nocanon ? LDAP_OPT_ON : LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
		return "sasl_nocanon";
	if (secprops != NULL &&
	    ldap_set_option(ld, LDAP_OPT_X_SASL_SECPROPS, (void *)secprops) != LDAP_OPT_SUCCESS)
		return "sasl_secprops";
	if (cfg->tls_ca_file != NULL &&
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->tls_ca_file) != LDAP_OPT_SUCCESS)
		return "tls_ca_file";
	if (reqcert < 0 ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &reqcert) != LDAP_OPT_SUCCESS)
		return "tls_require_cert";
	/* The TLS options above take effect only in a new context. */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server) != LDAP_OPT_SUCCESS)
		return "tls context (tls_ca_file readable?)";
	return NULL;
}

/*
 * Robustness: a deadline for the I/O that sets a connection up. libldap 2.5
 * runs the TLS handshake (ldaps:// and StartTLS) on a non-blocking socket
 * when LDAP_OPT_NETWORK_TIMEOUT is set and retries a read that would block
 * at once, with no deadline: it polls with that timeout only under
 * LDAP_OPT_CONNECT_ASYNC, which a synchronous bind cannot use (it answers
 * LDAP_X_CONNECTING while a remote connect is in progress). SO_RCVTIMEO
 * cannot help a non-blocking socket. A server that accepts the connection
 * and never answers would hold the worker, spinning, until it closes the
 * connection. So conn_added() (libldap calls it once TCP is connected,
 * before any TLS) puts one I/O layer between the socket and TLS: while
 * c->io_deadline is set, a read or write first waits for the socket with
 * poll(), until the deadline at most, then fails with ETIMEDOUT, which fails
 * the handshake. Unset, the layer passes everything through.
 */
static int64_t io_deadline_from_now(const struct jit_dir_cfg *cfg)
{
	return mono_ms() + (int64_t)cfg_timeout(cfg).tv_sec * 1000;
}

/* 0 once the socket under sbiod is ready for ev (or has failed: the read
 * or write says how); -1 with errno set, ETIMEDOUT at the deadline. */
static int io_wait(Sockbuf_IO_Desc *sbiod, short ev)
{
	struct dir_conn *c = sbiod->sbiod_pvt;
	ber_socket_t fd = -1;
	struct pollfd p;

	if (c->io_deadline == 0)
		return 0;
	if (ber_sockbuf_ctrl(sbiod->sbiod_sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0) {
		errno = EBADF;
		return -1;
	}
	p.fd = fd;
	p.events = ev;
	for (;;) {
		int64_t left = c->io_deadline - mono_ms();
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
static int conn_added(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
		      struct ldap_conncb *ctx)
{
	struct dir_conn *c = ctx->lc_arg;

	(void)ld;
	(void)srv;
	(void)addr;
	c->io_deadline = io_deadline_from_now(c->cfg);
	if (ber_sockbuf_add_io(sb, &deadline_io, LBER_SBIOD_LEVEL_TRANSPORT - 1, c) != 0) {
		log_warn("directory %s: cannot bound the connection set-up", c->cfg->name);
		return -1;
	}
	return 0;
}

/* Called when libldap closes a connection (sb NULL when the handle goes):
 * the layer goes with the Sockbuf, nothing is ours to free. */
static void conn_deleted(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

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

	if (krb_cred_acquire(c->cfg->keytab, c->cfg->principal, ccache, cred, err,
			     sizeof(err)) != JIT_OK) {
		(void)snprintf(msg, sizeof(msg), "keytab %s: %s", c->cfg->keytab, err);
		set_local_result(res, msg);
		return JIT_EDIRUNAVAIL;
	}
	return JIT_OK;
}

/* Binds c->ld with SASL. The secret lives only for the bind. */
static int dir_bind(struct dir_conn *c, struct dir_result *res)
{
	const struct jit_dir_cfg *cfg = c->cfg;
	const char *mech = cfg->sasl_mech ? cfg->sasl_mech : "EXTERNAL";
	struct sasl_answers a = { cfg->sasl_authcid, NULL, cfg->sasl_realm, cfg->sasl_authzid,
				  NULL, false };
	bool gss = is_gssapi(cfg) && cfg->keytab != NULL;
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
		set_local_result(res, "directory name too long for a credential cache name");
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
			c->io_deadline = io_deadline_from_now(cfg);
		if (gss_acquire(c, ccache, &a.gss_cred, res) != JIT_OK)
			goto out;
	}
	clear_diag(c);
	code = ldap_sasl_interactive_bind_s(c->ld, NULL, mech, NULL, NULL, LDAP_SASL_QUIET,
					    sasl_interact, &a);
	if (code != LDAP_SUCCESS) {
		char stage[64];
		(void)snprintf(stage, sizeof(stage), "bind %s", mech);
		set_result(c, res, code, stage);
		goto out;
	}
	if (gss && !a.gss_cred_set) {
		/* Robustness: never run on credentials other than the keytab's. */
		set_local_result(res, "bind GSSAPI: the keytab's credentials could not be "
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

/* Connects and binds c to URI number i. JIT_EDIRUNAVAIL on any failure,
 * with res filled and the handle dropped. */
static int dir_connect_one(struct dir_conn *c, int i, struct dir_result *res)
{
	const struct jit_dir_cfg *cfg = c->cfg;
	const char *bad, *uri = c->uris[i];
	char msg[256];
	int code, rc = JIT_EDIRUNAVAIL;

	code = ldap_initialize(&c->ld, uri);
	if (code != LDAP_SUCCESS) {
		c->ld = NULL;
		set_result(c, res, code, "initialize (uri)");
		goto out;
	}
	c->io_timed_out = false;
	bad = set_options(c->ld, cfg, uri);
	if (bad == NULL &&
	    ldap_set_option(c->ld, LDAP_OPT_CONNECT_CB, &c->conncb) != LDAP_OPT_SUCCESS)
		bad = "connect callback";
	if (bad != NULL) {
		(void)snprintf(msg, sizeof(msg), "cannot set LDAP option: %s", bad);
		set_local_result(res, msg);
		goto out;
	}
	/* The connection opens with the first request (StartTLS or the bind),
	 * and conn_added() then starts the deadline of its TLS handshake: for
	 * StartTLS, the request and the handshake share it. The bind gets a
	 * deadline of its own. */
	if (cfg->starttls) {
		clear_diag(c);
		code = ldap_start_tls_s(c->ld, NULL, NULL);
		if (code != LDAP_SUCCESS) {
			set_result(c, res, code, "starttls");
			goto out;
		}
		c->io_deadline = io_deadline_from_now(cfg);
	}
	rc = dir_bind(c, res);
	if (rc != JIT_OK)
		goto out;
	c->io_deadline = 0;
	c->cur = i;
	set_result(c, res, LDAP_SUCCESS, NULL);
	set_health(c, true, "");
	log_debug("directory %s: connected and bound to %s", cfg->name, uri);
	return JIT_OK;
out:
	c->io_deadline = 0;
	dir_drop(c);
	if (c->io_timed_out) {
		char *tmp = xasprintf("%s (no answer within %llds)", res->message,
				      (long long)cfg_timeout(cfg).tv_sec);
		copy_printable(res->message, sizeof(res->message), tmp);
		free(tmp);
	}
	if (c->n_uris > 1) {
		/* Name the server: the next one may answer. */
		char *tmp = xasprintf("%s: %s", uri, res->message);
		copy_printable(res->message, sizeof(res->message), tmp);
		free(tmp);
	}
	set_health(c, false, res->message);
	if (c->probing) /* every second during an outage: the change is logged once */
		log_debug("directory %s: probe: %s", cfg->name, res->message);
	else
		log_warn("directory %s: %s", cfg->name, res->message);
	return rc;
}

/*
 * Connects and binds c (which must be unconnected): the preferred URI first
 * (see dir_conn_prefer), then every URI in the configured order.
 */
static int dir_connect(struct dir_conn *c, struct dir_result *res)
{
	int first = c->prefer, rc = JIT_EDIRUNAVAIL;

	c->prefer = -1;
	for (int k = -1; k < c->n_uris; k++) {
		int i = k < 0 ? first : k;
		if (i < 0 || (k >= 0 && i == first))
			continue;
		rc = dir_connect_one(c, i, res);
		if (rc == JIT_OK) {
			c->failed_at[i] = 0;
			return JIT_OK;
		}
		c->failed_at[i] = now_s();
	}
	set_health(c, false, res->message);
	return rc;
}

/*
 * Runs op on a bound connection. A connection that was already open and
 * turns out dead (see code_is_unavailable), or whose session the server no
 * longer accepts (code_is_session_lost), is dropped, reconnected once and
 * the operation retried once; a fresh connection is not retried, so a dead
 * directory costs one connect attempt per operation, not two. On JIT_OK
 * *code is what the directory answered.
 */
static int dir_run_conn(struct dir_conn *c, dir_op_fn op, void *arg, struct dir_result *res,
			int *code)
{
	res->uri[0] = '\0';
	for (int attempt = 0;; attempt++) {
		bool fresh = false;
		int rc;

		if (c->ld == NULL) {
			rc = dir_connect(c, res);
			if (rc != JIT_OK)
				return rc;
			fresh = true;
		}
		if (!fresh && attempt == 0 && FAULT_FAIL("fail.session_lost")) {
			/* as a server that no longer accepts the session answers */
			res->ldap_code = LDAP_OPERATIONS_ERROR;
			copy_printable(res->message, sizeof(res->message),
				       "operations error: a bind must be completed (fault)");
			*code = LDAP_OPERATIONS_ERROR;
		} else {
			*code = op(c, arg, res);
		}
		c->io_deadline = 0; /* libldap may have connected again inside op */
		if (!fresh && attempt == 0 && code_is_session_lost(*code)) {
			log_info("directory %s: answered %d on an open connection (%s); binding "
				 "again", c->cfg->name, *code, res->message);
			dir_drop(c);
			continue;
		}
		if (!code_is_unavailable(*code)) {
			(void)snprintf(res->uri, sizeof(res->uri), "%s", c->uris[c->cur]);
			return JIT_OK;
		}
		dir_drop(c);
		set_health(c, false, res->message);
		if (fresh || attempt > 0) {
			log_warn("directory %s: %s", c->cfg->name, res->message);
			return JIT_EDIRUNAVAIL;
		}
		log_info("directory %s: %s; reconnecting", c->cfg->name, res->message);
	}
}

/* ---- reachability shared by a directory's connections ----------------- */

struct dir_health *dir_health_new(const char *name)
{
	struct dir_health *h = xcalloc(1, sizeof(*h));
	int err = pthread_mutex_init(&h->lock, NULL);

	if (err != 0)
		fatal("pthread_mutex_init: %s", strerror(err));
	h->name = xstrdup(name ? name : "?");
	return h;
}

void dir_health_free(struct dir_health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->name);
	free(h);
}

void dir_conn_set_health(struct dir_conn *c, struct dir_health *h)
{
	c->health = h;
}

/* Records the outcome of one attempt to reach the directory. */
static void health_note(struct dir_health *h, bool reached, const char *error)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	if (reached && h->down) {
		h->down = false;
		h->recoveries++;
		log_info("directory %s: reachable again after %llds", h->name,
			 (long long)(now_s() - h->since));
	} else if (!reached) {
		if (!h->down) {
			h->down = true;
			h->since = now_s();
			log_warn("directory %s: unreachable (%s); requests fail at once until a "
				 "probe reaches it", h->name, error ? error : "");
		}
		copy_printable(h->error, sizeof(h->error), error ? error : "");
	}
	pthread_mutex_unlock(&h->lock);
}

bool dir_health_down(struct dir_health *h, char *buf, size_t buflen)
{
	bool down;
	char ts[32];

	if (h == NULL)
		return false;
	pthread_mutex_lock(&h->lock);
	down = h->down;
	if (down && buf != NULL && buflen > 0) {
		fmt_rfc3339(h->since, ts);
		/* Truncation is acceptable: a bounded diagnostic. */
		(void)snprintf(buf, buflen, "directory %.32s unreachable since %s: %.160s",
			       h->name, ts, h->error);
	}
	pthread_mutex_unlock(&h->lock);
	return down;
}

uint64_t dir_health_recoveries(struct dir_health *h)
{
	uint64_t n;

	pthread_mutex_lock(&h->lock);
	n = h->recoveries;
	pthread_mutex_unlock(&h->lock);
	return n;
}

bool dir_health_probe_due(struct dir_health *h, int64_t now, int64_t interval)
{
	bool due;

	pthread_mutex_lock(&h->lock);
	due = h->down && !h->probing && now - h->last_probe >= interval;
	if (due) {
		h->probing = true;
		h->last_probe = now;
	}
	pthread_mutex_unlock(&h->lock);
	return due;
}

/*
 * Runs op through dir_run_conn(), failing at once while the directory is
 * known down (unless this is the probe), and records whether the server
 * was reached: any answer, also a refusal, counts.
 */
static int dir_run(struct dir_conn *c, dir_op_fn op, void *arg, struct dir_result *res,
		   int *code)
{
	char why[sizeof(res->message)];
	int rc;

	if (c->health != NULL && !c->probing && dir_health_down(c->health, why, sizeof(why))) {
		res->ldap_code = LDAP_SERVER_DOWN;
		res->uri[0] = '\0';
		copy_printable(res->message, sizeof(res->message), why);
		return JIT_EDIRUNAVAIL;
	}
	rc = dir_run_conn(c, op, arg, res, code);
	if (rc != JIT_OK)
		health_note(c->health, false, res->message);
	else if (*code >= 0)
		health_note(c->health, true, NULL);
	return rc;
}

/* ---- public: lifecycle ------------------------------------------------ */

struct dir_conn *dir_conn_new(const struct jit_dir_cfg *cfg)
{
	struct dir_conn *c = xcalloc(1, sizeof(*c));
	int err = pthread_mutex_init(&c->lock, NULL);
	const char *p = cfg->uri;

	if (err != 0)
		fatal("pthread_mutex_init: %s", strerror(err));
	c->cfg = cfg;
	c->cur = c->prefer = -1;
	c->conncb.lc_add = conn_added;
	c->conncb.lc_del = conn_deleted;
	c->conncb.lc_arg = c;
	while (p && *p) {
		size_t len = strcspn(p, " ");
		if (len > 0) {
			c->uris = xrealloc(c->uris, sizeof(char *) * (size_t)(c->n_uris + 1));
			c->uris[c->n_uris++] = xstrndup(p, len);
		}
		p += len;
		p += strspn(p, " ");
	}
	if (c->n_uris == 0)
		fatal("directory %s: no URI (the config check should have refused it)", cfg->name);
	c->failed_at = xcalloc((size_t)c->n_uris, sizeof(int64_t));
	return c;
}

bool dir_conn_prefer(struct dir_conn *c, const char *uri)
{
	int i;

	if (uri == NULL || c->n_uris < 2)
		return false;
	for (i = 0; i < c->n_uris; i++)
		if (strcasecmp(c->uris[i], uri) == 0)
			break;
	if (i == c->n_uris)
		return false;
	if (c->ld != NULL && c->cur == i)
		return true;
	/* Robustness: a server that just failed is not waited for again at
	 * every revocation; the caller removes elsewhere and checks later. */
	if (c->failed_at[i] != 0 && now_s() - c->failed_at[i] < c->cfg->replication_grace)
		return false;
	dir_drop(c);
	c->prefer = i;
	return true;
}

const char *dir_conn_uuid_attr(const struct dir_conn *c)
{
	return c->cfg->uuid_attr;
}

int dir_conn_uri_count(const struct dir_conn *c)
{
	return c->n_uris;
}

bool dir_conn_has_uri(const struct dir_conn *c, const char *uri)
{
	for (int i = 0; uri != NULL && i < c->n_uris; i++)
		if (strcasecmp(c->uris[i], uri) == 0)
			return true;
	return false;
}

void dir_conn_free(struct dir_conn *c)
{
	if (c == NULL)
		return;
	dir_drop(c);
	pthread_mutex_destroy(&c->lock);
	for (int i = 0; i < c->n_uris; i++)
		free(c->uris[i]);
	free(c->uris);
	free(c->failed_at);
	free(c->uuid_base);
	free(c);
}

int dir_conn_open(struct dir_conn *c, struct dir_result *res)
{
	struct dir_result dummy;

	if (res == NULL)
		res = &dummy;
	if (c->ld != NULL) {
		set_result(c, res, LDAP_SUCCESS, NULL);
		return JIT_OK;
	}
	int rc = dir_connect(c, res);
	health_note(c->health, rc == JIT_OK, res->message);
	return rc;
}

void dir_user_clear(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->dn);
	free(u->uid);
	free(u->uuid);
	u->dn = u->uid = u->uuid = NULL;
}

/* ---- values ------------------------------------------------------------ */

static bool is_printable(const struct berval *bv)
{
	for (ber_len_t i = 0; i < bv->bv_len; i++) {
		unsigned char ch = (unsigned char)bv->bv_val[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/* A uuid value as text: printable values as they are, 16 binary bytes (AD
 * objectGUID, little-endian first three fields) as the GUID string, any
 * other binary value as hex. */
static char *uuid_text(const struct berval *bv, const char *attr)
{
	const unsigned char *b = (const unsigned char *)bv->bv_val;
	bool guid_attr = strcasecmp(attr, "objectGUID") == 0;

	if (bv->bv_len == 16 && (guid_attr || !is_printable(bv)))
		return xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				 "%02x%02x%02x%02x%02x%02x",
				 b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9],
				 b[10], b[11], b[12], b[13], b[14], b[15]);
	if (is_printable(bv))
		return xstrndup(bv->bv_val, bv->bv_len);
	struct strbuf sb = { 0 };
	for (ber_len_t i = 0; i < bv->bv_len; i++)
		sb_addf(&sb, "%02x", b[i]);
	return sb_steal(&sb);
}

/* The first value of attr in entry e, rendered by how (NULL if absent). */
static char *first_value(LDAP *ld, LDAPMessage *e, const char *attr, bool uuid)
{
	struct berval **vals;
	char *v = NULL;

	if (attr == NULL)
		return NULL;
	vals = ldap_get_values_len(ld, e, attr);
	if (vals == NULL)
		return NULL;
	if (vals[0] != NULL) {
		if (uuid)
			v = uuid_text(vals[0], attr);
		else if (memchr(vals[0]->bv_val, '\0', vals[0]->bv_len) == NULL)
			v = xstrndup(vals[0]->bv_val, vals[0]->bv_len);
	}
	ldap_value_free_len(vals);
	return v;
}

/* An attribute description we are willing to paste into a filter. */
static bool attr_ok(const char *a)
{
	if (a == NULL || a[0] == '\0')
		return false;
	for (; *a; a++) {
		char ch = *a;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == ';'))
			return false;
	}
	return true;
}

/* ---- operations ------------------------------------------------------ */

/* Active Directory's account flags; ACCOUNTDISABLE is bit 0x2. Other
 * directories do not have the attribute: asking for it costs nothing. */
#define UAC_ATTR "userAccountControl"
#define UAC_ACCOUNTDISABLE 0x2

/* Is the account in entry e disabled (userAccountControl & 0x2)? */
static bool account_disabled(LDAP *ld, LDAPMessage *e)
{
	char *v = first_value(ld, e, UAC_ATTR, false);
	int64_t flags = 0;
	bool off = false;

	/* An Integer (32 bits, sometimes written as a negative number). */
	if (v != NULL && parse_int64(v, INT32_MIN, UINT32_MAX, &flags) == JIT_OK)
		off = ((uint32_t)flags & UAC_ACCOUNTDISABLE) != 0;
	else if (v != NULL)
		off = true; /* Robustness: unreadable flags are not "enabled". */
	free(v);
	return off;
}

struct resolve_arg {
	const char *filter;
	struct dir_user user;   /* filled when exactly one entry matched */
	int matched;            /* 0, 1 or 2 (= two or more) */
};

static int op_resolve(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct resolve_arg *arg = varg;
	const struct jit_dir_cfg *cfg = c->cfg;
	char *attrs[4] = { (char *)UAC_ATTR, NULL, NULL, NULL };
	int na = 1;
	struct timeval tv = cfg_timeout(cfg);
	LDAPMessage *msg = NULL, *e;
	char *dn;
	int code, n;

	if (cfg->uid_attr != NULL)
		attrs[na++] = cfg->uid_attr;
	if (cfg->uuid_attr != NULL)
		attrs[na++] = cfg->uuid_attr;
	clear_diag(c);
	code = ldap_search_ext_s(c->ld, cfg->user_base, LDAP_SCOPE_SUBTREE, arg->filter,
				 attrs, 0, NULL, NULL, &tv, 2, &msg);
	set_result(c, res, code, NULL);
	if (code == LDAP_SIZELIMIT_EXCEEDED) {
		arg->matched = 2;
		code = LDAP_SUCCESS;
		goto out;
	}
	if (code != LDAP_SUCCESS)
		goto out;
	n = ldap_count_entries(c->ld, msg);
	if (n < 0) {
		code = LDAP_DECODING_ERROR;
		set_result(c, res, code, "search result");
		goto out;
	}
	if (n != 1) {
		arg->matched = n == 0 ? 0 : 2;
		goto out;
	}
	e = ldap_first_entry(c->ld, msg);
	dn = e ? ldap_get_dn(c->ld, e) : NULL;
	if (dn == NULL) {
		code = LDAP_DECODING_ERROR;
		set_result(c, res, code, "entry");
		goto out;
	}
	dir_user_clear(&arg->user);
	arg->user.dn = xstrdup(dn);
	ldap_memfree(dn);
	arg->user.uid = first_value(c->ld, e, cfg->uid_attr, false);
	arg->user.uuid = first_value(c->ld, e, cfg->uuid_attr, true);
	arg->user.disabled = account_disabled(c->ld, e);
	arg->matched = 1;
out:
	ldap_msgfree(msg);
	return code;
}

int dir_resolve_user(struct dir_conn *c, const char *name, struct dir_user *out,
		     struct dir_result *res)
{
	struct resolve_arg arg = { 0 };
	struct dir_result dummy;
	char *filter = NULL;
	int rc, code;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	if (name == NULL || name[0] == '\0') {
		set_local_result(res, "empty user name");
		res->ldap_code = 0;
		return JIT_EUNKUSER;
	}
	rc = filter_expand(c->cfg->user_filter ? c->cfg->user_filter : "(uid=%s)", name,
			   &filter);
	if (rc != JIT_OK) {
		set_local_result(res, "user_filter is not a valid template");
		goto out;
	}
	arg.filter = filter;
	rc = dir_run(c, op_resolve, &arg, res, &code);
	if (rc != JIT_OK)
		goto out;
	if (code != LDAP_SUCCESS) {
		rc = code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
		goto out;
	}
	if (arg.matched != 1) {
		(void)snprintf(res->message, sizeof(res->message), "%s",
			       arg.matched == 0 ? "no entry matches the user filter"
						: "more than one entry matches the user filter");
		rc = JIT_EUNKUSER;
		goto out;
	}
	*out = arg.user;
	memset(&arg.user, 0, sizeof(arg.user));
out:
	dir_user_clear(&arg.user);
	free(filter);
	return rc;
}

struct member_arg {
	const char *group_dn, *attr, *value, *placeholder;
	bool is_member;         /* op_is_member */
	bool gone;              /* op_remove: the value was not there */
	bool unanswered;        /* op_add: the last attempt went unanswered */
	bool after_unanswered;  /* op_add: this attempt follows an unanswered one */
	bool by_guid;           /* op_remove: value is "<GUID=...>" (AD extended DN) */
};

/* Base-scope search of the group for (attr=value). */
static int search_member(struct dir_conn *c, struct member_arg *arg, struct dir_result *res)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	char *esc = escape_filter_value(arg->value, strlen(arg->value));
	char *filter = xasprintf("(%s=%s)", arg->attr, esc);
	LDAPMessage *msg = NULL;
	int code, n;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->group_dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	set_result(c, res, code, NULL);
	if (code == LDAP_SUCCESS) {
		n = ldap_count_entries(c->ld, msg);
		if (n < 0) {
			code = LDAP_DECODING_ERROR;
			set_result(c, res, code, "search result");
		} else {
			arg->is_member = n > 0;
		}
	}
	ldap_msgfree(msg);
	free(filter);
	free(esc);
	return code;
}

static int op_is_member(struct dir_conn *c, void *varg, struct dir_result *res)
{
	return search_member(c, varg, res);
}

/* One modify of group_dn: each of the n (op, value) pairs on attr. */
static int modify_values(struct dir_conn *c, const char *group_dn, const char *attr,
			 const int *ops, const char *const *values, int n, struct dir_result *res)
{
	struct berval bv[2], *bvals[2][2];
	LDAPMod mods[2], *modp[3];
	int code;

	for (int i = 0; i < n && i < 2; i++) {
		bv[i].bv_val = (char *)values[i];
		bv[i].bv_len = strlen(values[i]);
		bvals[i][0] = &bv[i];
		bvals[i][1] = NULL;
		mods[i].mod_op = ops[i] | LDAP_MOD_BVALUES;
		mods[i].mod_type = (char *)attr;
		mods[i].mod_bvalues = bvals[i];
		modp[i] = &mods[i];
		modp[i + 1] = NULL;
	}
	clear_diag(c);
	code = ldap_modify_ext_s(c->ld, group_dn, modp, NULL, NULL);
	set_result(c, res, code, NULL);
	return code;
}

static int op_add(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct member_arg *arg = varg;
	int op = LDAP_MOD_ADD;

	/* A retry after an answer (a session the server no longer accepted)
	 * is not one after an unanswered add: the first changed nothing. */
	arg->after_unanswered = arg->unanswered;
	int code = modify_values(c, arg->group_dn, arg->attr, &op, &arg->value, 1, res);
	arg->unanswered = code_is_unavailable(code);
	return code;
}

/*
 * Delete answered 53: AD's "not a member", but also what a read-only
 * replica says. Robustness: believe "already gone" only if a search agrees,
 * so a privilege is never reported removed while it is still there.
 */
static int confirm_gone(struct dir_conn *c, struct member_arg *arg, struct dir_result *res)
{
	struct dir_result orig = *res;
	int code = search_member(c, arg, res);

	if (code_is_unavailable(code))
		return code;
	*res = orig;
	if ((code == LDAP_SUCCESS && !arg->is_member) || code == LDAP_NO_SUCH_OBJECT)
		arg->gone = true;
	return orig.ldap_code;
}

/* The last value cannot go (65): add the placeholder in the same modify. */
static int remove_with_placeholder(struct dir_conn *c, struct member_arg *arg,
				   struct dir_result *res)
{
	struct dir_result orig = *res;
	const int ops[2] = { LDAP_MOD_ADD, LDAP_MOD_DELETE };
	const char *values[2] = { arg->placeholder, arg->value };
	int code = modify_values(c, arg->group_dn, arg->attr, ops, values, 2, res);

	if (code == LDAP_TYPE_OR_VALUE_EXISTS) {
		/* The placeholder is already there, so the value was not the
		 * last one: the 65 had another cause. Report it as it was. */
		*res = orig;
		return orig.ldap_code;
	}
	if (code == LDAP_NO_SUCH_ATTRIBUTE)
		arg->gone = true;
	return code;
}

static int op_remove(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct member_arg *arg = varg;
	int op = LDAP_MOD_DELETE;
	int code = modify_values(c, arg->group_dn, arg->attr, &op, &arg->value, 1, res);

	arg->gone = false;
	if (code == LDAP_NO_SUCH_ATTRIBUTE)
		arg->gone = true;
	else if (code == LDAP_UNWILLING_TO_PERFORM ||
		 (arg->by_guid && code == LDAP_INVALID_SYNTAX))
		/* AD: 53 "not a member"; 21 when the GUID names no object
		 * any more (the user was deleted). */
		code = confirm_gone(c, arg, res);
	else if (code == LDAP_OBJECT_CLASS_VIOLATION && arg->placeholder != NULL &&
		 strcasecmp(arg->placeholder, arg->value) != 0)
		code = remove_with_placeholder(c, arg, res);
	return code;
}

/* Shared front of the member operations: argument checks, run, map. */
static int member_run(struct dir_conn *c, dir_op_fn op, struct member_arg *arg,
		      struct dir_result *res, int *code)
{
	int rc;

	res->ldap_code = 0;
	res->message[0] = '\0';
	if (arg->group_dn == NULL || arg->value == NULL || !attr_ok(arg->attr)) {
		set_local_result(res, "bad group DN, attribute or value");
		return JIT_EBADREQ;
	}
	rc = dir_run(c, op, arg, res, code);
	if (rc != JIT_OK)
		return rc;
	if (code_is_internal(*code))
		return JIT_EINTERNAL;
	return JIT_OK;
}

int dir_is_member(struct dir_conn *c, const char *group_dn, const char *attr,
		  const char *value, bool *is_member, struct dir_result *res)
{
	struct member_arg arg = { group_dn, attr, value, NULL, false, false, false, false, false };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	rc = member_run(c, op_is_member, &arg, res, &code);
	if (rc != JIT_OK)
		return rc;
	if (code != LDAP_SUCCESS)
		return JIT_EDIRREFUSED;
	*is_member = arg.is_member;
	return JIT_OK;
}

int dir_add_member(struct dir_conn *c, const char *group_dn, const char *attr,
		   const char *value, bool *already, struct dir_result *res)
{
	struct member_arg arg = { group_dn, attr, value, NULL, false, false, false, false, false };
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	rc = member_run(c, op_add, &arg, res, &code);
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_SUCCESS)
		*already = false;
	else if (code != LDAP_TYPE_OR_VALUE_EXISTS && code != LDAP_ALREADY_EXISTS)
		return JIT_EDIRREFUSED;
	else if (!arg.after_unanswered)
		*already = true;
	else {
		/* Robustness: the first add went unanswered and the server may
		 * have applied it before the retry found the value. "Already
		 * there" would pass our own change off as a membership that
		 * predates jitd, one jitd then never removes: report it as
		 * added by this call. */
		*already = false;
		log_info("directory %s: add to %s: value present after an unanswered "
			 "attempt; counted as added by this call", c->cfg->name, group_dn);
	}
	return JIT_OK;
}

/* dir_remove_member; by_guid: value is an AD extended DN "<GUID=...>". */
static int remove_value(struct dir_conn *c, const char *group_dn, const char *attr,
			const char *value, const char *placeholder, bool by_guid,
			bool *already_gone, struct dir_result *res)
{
	struct member_arg arg = { group_dn, attr, value, placeholder, false, false, false, false, by_guid };
	int code = 0, rc;

	rc = member_run(c, op_remove, &arg, res, &code);
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_SUCCESS || arg.gone) {
		*already_gone = arg.gone;
		return JIT_OK;
	}
	return JIT_EDIRREFUSED;
}

int dir_remove_member(struct dir_conn *c, const char *group_dn, const char *attr,
		      const char *value, const char *placeholder, bool *already_gone,
		      struct dir_result *res)
{
	struct dir_result dummy;

	if (res == NULL)
		res = &dummy;
	return remove_value(c, group_dn, attr, value, placeholder, false, already_gone, res);
}

/* ---- identities that move ---------------------------------------------- */

/* The directory identifies users by AD's objectGUID. */
static bool uuid_is_guid(const struct jit_dir_cfg *cfg)
{
	return cfg->uuid_attr != NULL && strcasecmp(cfg->uuid_attr, "objectGUID") == 0;
}

/* A GUID as uuid_text() writes it: 8-4-4-4-12 hex digits. */
static bool guid_text_ok(const char *u)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(u) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == '-' ? u[i] != '-' : !isxdigit((unsigned char)u[i]))
			return false;
	return true;
}

/* Values of these attributes are user names, not DNs: nothing can move. */
static bool attr_holds_dns(const char *attr)
{
	return strcasecmp(attr, "memberUid") != 0;
}

/* Parses s as a DN; *n = its number of RDNs. False (and *dn NULL) if it
 * is not one. */
static bool dn_parse(const char *s, LDAPDN *dn, int *n)
{
	*dn = NULL;
	*n = 0;
	if (s == NULL || strchr(s, '=') == NULL ||
	    ldap_str2dn(s, dn, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS || *dn == NULL) {
		ldap_dnfree(*dn);
		*dn = NULL;
		return false;
	}
	while ((*dn)[*n] != NULL)
		(*n)++;
	return true;
}

/* k RDNs of a from ia against k of b from ib, case-insensitively. */
static bool rdns_equal(LDAPDN a, int ia, LDAPDN b, int ib, int k)
{
	bool eq = true;

	for (int i = 0; eq && i < k; i++) {
		char *x = NULL, *y = NULL;
		eq = ldap_rdn2str(a[ia + i], &x, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
		     ldap_rdn2str(b[ib + i], &y, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
		     x != NULL && y != NULL && strcasecmp(x, y) == 0;
		ldap_memfree(x);
		ldap_memfree(y);
	}
	return eq;
}

/* Parses DNs a and b and applies test to their RDNs (na, nb: how many);
 * false if either does not parse or holds no RDN. */
static bool dn_test(const char *a, const char *b, bool (*test)(LDAPDN, int, LDAPDN, int))
{
	LDAPDN x = NULL, y = NULL;
	int nx = 0, ny = 0;
	bool r = dn_parse(a, &x, &nx) && dn_parse(b, &y, &ny) && nx > 0 && ny > 0 &&
		 test(x, nx, y, ny);

	ldap_dnfree(x);
	ldap_dnfree(y);
	return r;
}

static bool rdns_under(LDAPDN d, int nd, LDAPDN b, int nb)
{
	return nb <= nd && rdns_equal(d, nd - nb, b, 0, nb);
}

/* Is dn base itself or an entry below it (RDN by RDN, not by string)? */
static bool dn_under(const char *dn, const char *base)
{
	return dn_test(dn, base, rdns_under);
}

static bool rdns_related(LDAPDN d, int nd, LDAPDN w, int nw)
{
	return rdns_equal(d, 0, w, 0, 1) || (nd == nw && rdns_equal(d, 1, w, 1, nw - 1));
}

/* Could dn be what a rename or move made of was (both DNs)? True when it
 * keeps was's first RDN (moved) or its parent (renamed in place). */
static bool dn_related(const char *dn, const char *was)
{
	return dn_test(dn, was, rdns_related);
}

struct naming_arg {
	char *found;            /* the longest naming context holding user_base */
};

/* Reads namingContexts from the root DSE. */
static int op_naming(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct naming_arg *arg = varg;
	char *attrs[] = { "namingContexts", NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	struct berval **vals = NULL;
	int code, best = 0;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	set_result(c, res, code, NULL);
	e = code == LDAP_SUCCESS ? ldap_first_entry(c->ld, msg) : NULL;
	vals = e ? ldap_get_values_len(c->ld, e, "namingContexts") : NULL;
	for (size_t i = 0; vals && vals[i]; i++) {
		char *nc = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		LDAPDN d = NULL;
		int n = 0;
		if (dn_parse(nc, &d, &n) && n > best && dn_under(c->cfg->user_base, nc)) {
			best = n;
			free(arg->found);
			arg->found = xstrdup(nc);
		}
		ldap_dnfree(d);
		free(nc);
	}
	ldap_value_free_len(vals);
	ldap_msgfree(msg);
	return code;
}

/*
 * Where a user is looked for by uuid: the naming context that holds
 * user_base (the root DSE's namingContexts), not user_base itself. A user
 * moved out of user_base (to ou=former, say) is still the grantee, and
 * refint has rewritten jitd's value to the new DN; a move cannot leave the
 * naming context (servers refuse modrdn across databases), so that search
 * finds every DN the user can have. Without an answer naming one (root DSE
 * unreadable), user_base; dir_revoke_member() then does not take "not
 * found" for "deleted" on its own anyway. Known once per connection.
 */
static int uuid_base(struct dir_conn *c, const char **base, struct dir_result *res)
{
	struct naming_arg arg = { NULL };
	int rc, code = 0;

	if (c->uuid_base == NULL) {
		rc = dir_run(c, op_naming, &arg, res, &code);
		if (rc != JIT_OK)
			return rc;
		if (arg.found == NULL) {
			log_warn("directory %s: no naming context holding user_base in the root "
				 "DSE (%s): users are looked for by %s under user_base only",
				 c->cfg->name, code == LDAP_SUCCESS ? "none listed" : res->message,
				 c->cfg->uuid_attr);
			arg.found = xstrdup(c->cfg->user_base);
		}
		c->uuid_base = arg.found;
		res->ldap_code = 0;
		res->message[0] = '\0';
	}
	*base = c->uuid_base;
	return JIT_OK;
}

struct uuid_arg {
	const char *base, *filter;
	char *dn;               /* the one entry found, or NULL */
};

/* Subtree search of the uuid base for the entry with the recorded uuid. */
static int op_find_uuid(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct uuid_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	int code;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->base, LDAP_SCOPE_SUBTREE, arg->filter, attrs, 0,
				 NULL, NULL, &tv, 2, &msg);
	set_result(c, res, code, NULL);
	free(arg->dn);
	arg->dn = NULL;
	if (code == LDAP_NO_SUCH_OBJECT || code == LDAP_SIZELIMIT_EXCEEDED) {
		code = LDAP_SUCCESS; /* no base, or not one entry: not found */
	} else if (code == LDAP_SUCCESS && ldap_count_entries(c->ld, msg) == 1 &&
		   (e = ldap_first_entry(c->ld, msg)) != NULL) {
		char *dn = ldap_get_dn(c->ld, e);
		arg->dn = xstrdup(dn);
		ldap_memfree(dn);
	}
	ldap_msgfree(msg);
	return code;
}

/* The current DN of the entry whose uuid_attr is uuid: JIT_OK with *dn
 * (NULL when no single entry visible to jitd has it). */
static int find_by_uuid(struct dir_conn *c, const char *uuid, char **dn, struct dir_result *res)
{
	char *esc = escape_filter_value(uuid, strlen(uuid));
	struct uuid_arg arg = { NULL, NULL, NULL };
	int rc, code = 0;

	rc = uuid_base(c, &arg.base, res);
	if (rc != JIT_OK) {
		free(esc);
		return rc;
	}
	arg.filter = xasprintf("(%s=%s)", c->cfg->uuid_attr, esc);
	free(esc);
	rc = dir_run(c, op_find_uuid, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*dn = arg.dn;
	else
		free(arg.dn);
	free((char *)arg.filter);
	return rc;
}

struct exists_arg {
	const char *dn;
	bool exists;
};

static int op_exists(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct exists_arg *arg = varg;
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
				 NULL, NULL, &tv, 1, &msg);
	set_result(c, res, code, NULL);
	arg->exists = code == LDAP_SUCCESS && ldap_count_entries(c->ld, msg) > 0;
	if (code == LDAP_NO_SUCH_OBJECT)
		code = LDAP_SUCCESS;
	ldap_msgfree(msg);
	return code;
}

/* Does an entry with this DN exist? */
static int entry_exists(struct dir_conn *c, const char *dn, bool *exists, struct dir_result *res)
{
	struct exists_arg arg = { dn, false };
	int code = 0, rc = dir_run(c, op_exists, &arg, res, &code);

	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	if (rc == JIT_OK)
		*exists = arg.exists;
	return rc;
}

/*
 * The user was renamed or moved (cur is the DN now, m->value the DN jitd
 * wrote). The user's current DN goes: refint rewrote jitd's value to it, or
 * someone added it; either way it is the grantee's membership. The value
 * jitd wrote goes too if it names no entry any more (jitd's own leftover);
 * if another entry has taken that DN, the value is theirs and stays.
 */
static int revoke_renamed(struct dir_conn *c, const struct dir_member *m, const char *cur,
			  bool *removed, const char **value, struct dir_result *res)
{
	bool gone = true, exists = true;
	int rc = remove_value(c, m->group_dn, m->attr, cur, m->placeholder, false, &gone, res);

	if (rc != JIT_OK)
		return rc;
	if (!gone) {
		*removed = true;
		*value = cur;
	}
	rc = entry_exists(c, m->value, &exists, res);
	if (rc != JIT_OK || exists)
		return rc;
	rc = remove_value(c, m->group_dn, m->attr, m->value, m->placeholder, false, &gone, res);
	if (rc == JIT_OK && !gone && !*removed) {
		*removed = true;
		*value = m->value;
	}
	return rc;
}

/* ---- a user no search finds ------------------------------------------- */

struct values {
	char **v;
	size_t n, cap;
};

static int collect_value(const char *value, void *varg)
{
	struct values *vs = varg;

	if (vs->n == vs->cap) {
		vs->cap = vs->cap ? 2 * vs->cap : 64;
		vs->v = xrealloc(vs->v, vs->cap * sizeof(*vs->v));
	}
	vs->v[vs->n++] = xstrdup(value);
	return 0;
}

struct read_uuid_arg {
	const char *dn;
	bool exists;            /* an entry jitd can see has this DN */
	char *uuid;             /* its uuid_attr as text, or NULL */
};

/* Base-scope read of one entry's uuid_attr (32 = no such entry, answered). */
static int op_read_uuid(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct read_uuid_arg *arg = varg;
	char *attrs[] = { (char *)c->cfg->uuid_attr, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	int code;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
				 NULL, NULL, &tv, 1, &msg);
	set_result(c, res, code, NULL);
	free(arg->uuid);
	arg->uuid = NULL;
	e = code == LDAP_SUCCESS ? ldap_first_entry(c->ld, msg) : NULL;
	arg->exists = e != NULL;
	if (e != NULL)
		arg->uuid = first_value(c->ld, e, c->cfg->uuid_attr, true);
	if (code == LDAP_NO_SUCH_OBJECT)
		code = LDAP_SUCCESS;
	ldap_msgfree(msg);
	return code;
}

/*
 * Could value v of the group be m's user, whom no search by uuid finds?
 * *is_user: its entry has the user's uuid; *unsure: jitd cannot tell (an
 * entry without a readable uuid_attr, an entry it may not read, or no
 * entry visible at a DN a move or rename of the user would produce: the
 * user may sit where jitd cannot see). A DN naming no visible entry
 * elsewhere (a placeholder, a member deleted long ago) is not the user.
 */
static int judge_value(struct dir_conn *c, const struct dir_member *m, const char *v,
		       bool *is_user, bool *unsure, struct dir_result *res)
{
	struct read_uuid_arg arg = { v, false, NULL };
	int code = 0, rc = dir_run(c, op_read_uuid, &arg, res, &code);

	*is_user = *unsure = false;
	if (rc != JIT_OK)
		return rc;
	if (code == LDAP_INVALID_DN_SYNTAX)
		; /* not a DN: no entry's name */
	else if (code != LDAP_SUCCESS)
		*unsure = true;
	else if (arg.exists && arg.uuid != NULL)
		*is_user = strcasecmp(arg.uuid, m->uuid) == 0;
	else if (arg.exists)
		*unsure = true;
	else
		*unsure = dn_related(v, m->value);
	free(arg.uuid);
	return JIT_OK;
}

/*
 * Neither the user (by uuid) nor the value jitd wrote is found: the user
 * was deleted (refint took the value with the entry) - or moved where jitd
 * cannot see, with refint rewriting the value to a DN jitd cannot find.
 * "Already absent" is believed only when no value of the group can be the
 * user. JIT_OK with *found (caller frees) = a value whose entry has the
 * user's uuid after all, or NULL; JIT_EDIRREFUSED (message in res) when a
 * value might be the user: the removal stays pending and is reported.
 */
static int account_group(struct dir_conn *c, const struct dir_member *m, char **found,
			 struct dir_result *res)
{
	struct values vs = { NULL, 0, 0 };
	struct dir_result lres = { 0 };
	char *wrote = dir_value_key(m->value);
	char *ph = m->placeholder ? dir_value_key(m->placeholder) : NULL;
	bool is_user = false, unsure = false;
	int rc = dir_list_members(c, m->group_dn, m->attr, collect_value, &vs, &lres);

	*found = NULL;
	if (rc == JIT_EDIRREFUSED && lres.ldap_code == LDAP_NO_SUCH_OBJECT)
		rc = JIT_OK; /* no group: no membership */
	else if (rc != JIT_OK)
		*res = lres;
	for (size_t i = 0; rc == JIT_OK && i < vs.n && !is_user && !unsure; i++) {
		char *key = dir_value_key(vs.v[i]);
		bool skip = strcmp(key, wrote) == 0 || (ph != NULL && strcmp(key, ph) == 0);
		free(key);
		if (skip)
			continue;
		rc = judge_value(c, m, vs.v[i], &is_user, &unsure, &lres);
		if (rc != JIT_OK)
			*res = lres;
		else if (is_user)
			*found = xstrdup(vs.v[i]);
		else if (unsure) {
			char msg[512];
			rc = JIT_EDIRREFUSED;
			/* Truncation is intended; server text is cleaned below. */
			(void)snprintf(msg, sizeof(msg),
				       "%s=%.40s found nowhere and %.60s not in the group, but "
				       "member %.80s may be the user where jitd cannot see: not "
				       "taken as removed",
				       c->cfg->uuid_attr, m->uuid, m->value, vs.v[i]);
			copy_printable(res->message, sizeof(res->message), msg);
		}
	}
	for (size_t i = 0; i < vs.n; i++)
		free(vs.v[i]);
	free(vs.v);
	free(wrote);
	free(ph);
	return rc;
}

int dir_revoke_member(struct dir_conn *c, const struct dir_member *m, bool *removed,
		      char **value_out, struct dir_result *res)
{
	struct dir_result dummy;
	char *guid = NULL, *cur = NULL;
	const char *value = NULL;
	bool gone = true, done = false;
	bool ident = m->uuid != NULL && m->attr != NULL && attr_holds_dns(m->attr);
	int rc = JIT_OK;

	if (res == NULL)
		res = &dummy;
	if (m->attr == NULL || m->value == NULL) {
		set_local_result(res, "bad group DN, attribute or value");
		return JIT_EBADREQ;
	}
	if (ident && uuid_is_guid(c->cfg) && guid_text_ok(m->uuid)) {
		/* AD links members by GUID: this finds the user after any
		 * rename or move, and never someone who took the old name. */
		guid = xasprintf("<GUID=%s>", m->uuid);
		rc = remove_value(c, m->group_dn, m->attr, guid, m->placeholder, true, &gone, res);
		if (rc == JIT_OK && !gone) {
			done = true;
			value = guid;
		}
	} else {
		if (ident)
			rc = find_by_uuid(c, m->uuid, &cur, res);
		if (rc == JIT_OK && cur != NULL && strcasecmp(cur, m->value) != 0) {
			/* Renamed. Robustness: "already gone" by the old DN is
			 * never believed after a rename; the identity decides. */
			rc = revoke_renamed(c, m, cur, &done, &value, res);
		} else if (rc == JIT_OK) {
			/* Not renamed, deleted, or no identity: the value written. */
			rc = remove_value(c, m->group_dn, m->attr, m->value, m->placeholder, false,
					  &gone, res);
			if (rc == JIT_OK && !gone) {
				done = true;
				value = m->value;
			} else if (rc == JIT_OK && ident && cur == NULL) {
				/* Robustness: "not found" and "not there" together
				 * are not yet "gone": the user may have moved out of
				 * sight. The group must agree. */
				rc = account_group(c, m, &cur, res);
				if (rc == JIT_OK && cur != NULL)
					rc = remove_value(c, m->group_dn, m->attr, cur,
							  m->placeholder, false, &gone, res);
				if (rc == JIT_OK && cur != NULL && !gone) {
					done = true;
					value = cur;
				}
			}
		}
	}
	if (rc == JIT_OK) {
		*removed = done;
		if (value_out != NULL)
			*value_out = done ? xstrdup(value) : NULL;
	}
	free(guid);
	free(cur);
	return rc;
}

/* ---- several memberships of one group at once --------------------------- */

struct uuids_arg {
	const char *base, *filter;
	const struct dir_member *m;
	size_t n;
	char **cur;             /* per member: the one DN found, or NULL */
	int *hits;              /* per member: entries found with its uuid */
};

/* One subtree search of the uuid base for every uuid of the batch. */
static int op_find_uuids(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct uuids_arg *arg = varg;
	char *attrs[] = { (char *)c->cfg->uuid_attr, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->base, LDAP_SCOPE_SUBTREE, arg->filter, attrs, 0,
				 NULL, NULL, &tv, (int)(2 * arg->n + 1), &msg);
	set_result(c, res, code, NULL);
	for (size_t i = 0; i < arg->n; i++) {
		free(arg->cur[i]);
		arg->cur[i] = NULL;
		arg->hits[i] = 0;
	}
	if (code == LDAP_NO_SUCH_OBJECT) {
		code = LDAP_SUCCESS; /* no base: nobody found */
	} else if (code == LDAP_SUCCESS) {
		for (LDAPMessage *e = ldap_first_entry(c->ld, msg); e != NULL;
		     e = ldap_next_entry(c->ld, e)) {
			char *u = first_value(c->ld, e, c->cfg->uuid_attr, true);
			char *dn = u ? ldap_get_dn(c->ld, e) : NULL;
			for (size_t i = 0; dn != NULL && i < arg->n; i++) {
				if (arg->m[i].uuid == NULL || strcasecmp(arg->m[i].uuid, u) != 0)
					continue;
				if (arg->hits[i]++ == 0)
					arg->cur[i] = xstrdup(dn);
			}
			ldap_memfree(dn);
			free(u);
		}
	}
	/* LDAP_SIZELIMIT_EXCEEDED and other answers are returned as they
	 * are: the caller then settles nothing here. */
	ldap_msgfree(msg);
	return code;
}

/* The current DN of each member's user (cur[i] NULL: none or several). */
static int find_by_uuids(struct dir_conn *c, const struct dir_member *m, size_t n, char **cur,
			 int *hits, struct dir_result *res)
{
	struct strbuf sb = { 0 };
	struct uuids_arg arg = { NULL, NULL, m, n, cur, hits };
	int rc, code = 0;

	rc = uuid_base(c, &arg.base, res);
	if (rc != JIT_OK)
		return rc;
	sb_addstr(&sb, "(|");
	for (size_t i = 0; i < n; i++) {
		if (m[i].uuid == NULL)
			continue;
		char *esc = escape_filter_value(m[i].uuid, strlen(m[i].uuid));
		sb_addf(&sb, "(%s=%s)", c->cfg->uuid_attr, esc);
		free(esc);
	}
	sb_addstr(&sb, ")");
	arg.filter = sb_steal(&sb);
	rc = dir_run(c, op_find_uuids, &arg, res, &code);
	if (rc == JIT_OK && code != LDAP_SUCCESS)
		rc = code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
	free((char *)arg.filter);
	return rc;
}

struct many_arg {
	const char *group_dn, *attr;
	const char **values;
	size_t n;
};

/* One modify of the group deleting every value. */
static int op_remove_many(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct many_arg *arg = varg;
	struct berval *bv = xcalloc(arg->n, sizeof(*bv));
	struct berval **bvals = xcalloc(arg->n + 1, sizeof(*bvals));
	LDAPMod mod = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES,
			.mod_type = (char *)arg->attr,
			.mod_bvalues = bvals };
	LDAPMod *modp[2] = { &mod, NULL };
	int code;

	for (size_t i = 0; i < arg->n; i++) {
		bv[i].bv_val = (char *)arg->values[i];
		bv[i].bv_len = strlen(arg->values[i]);
		bvals[i] = &bv[i];
	}
	clear_diag(c);
	code = ldap_modify_ext_s(c->ld, arg->group_dn, modp, NULL, NULL);
	set_result(c, res, code, NULL);
	free(bvals);
	free(bv);
	return code;
}

/* The value that names m's user in the group now, when it can be told
 * without asking about this user alone; NULL when it cannot. */
static const char *many_value(const struct dir_conn *c, const struct dir_member *m,
			      const char *cur, int hits, char **guid)
{
	bool ident = m->uuid != NULL && attr_holds_dns(m->attr);

	if (!ident)
		return m->value;
	if (uuid_is_guid(c->cfg))
		return guid_text_ok(m->uuid) ? (*guid = xasprintf("<GUID=%s>", m->uuid)) : NULL;
	if (hits == 0)
		return NULL;     /* deleted, or out of sight: dir_revoke_member checks */
	if (hits == 1 && strcasecmp(cur, m->value) == 0)
		return m->value; /* not renamed */
	return NULL;             /* renamed, or several entries: one at a time */
}

int dir_revoke_many(struct dir_conn *c, const struct dir_member *m, size_t n, bool *done,
		    char **value_out, struct dir_result *res)
{
	struct dir_result dummy;
	char **cur = xcalloc(n, sizeof(*cur));
	char **guid = xcalloc(n, sizeof(*guid));
	int *hits = xcalloc(n, sizeof(*hits));
	const char **values = xcalloc(n, sizeof(*values));
	size_t *which = xcalloc(n, sizeof(*which));
	size_t nv = 0, nuuid = 0;
	int rc = JIT_OK, code = 0;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		done[i] = false;
		value_out[i] = NULL;
		if (m[i].uuid != NULL && m[i].attr != NULL && attr_holds_dns(m[i].attr) &&
		    !uuid_is_guid(c->cfg))
			nuuid++;
	}
	if (n == 0 || m[0].group_dn == NULL || m[0].attr == NULL || !attr_ok(m[0].attr))
		goto out;
	if (nuuid > 0 && (rc = find_by_uuids(c, m, n, cur, hits, res)) != JIT_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const char *v;
		bool dup = false;
		if (m[i].value == NULL || m[i].group_dn == NULL || m[i].attr == NULL ||
		    strcasecmp(m[i].group_dn, m[0].group_dn) != 0 ||
		    strcasecmp(m[i].attr, m[0].attr) != 0)
			continue;
		v = many_value(c, &m[i], cur[i], hits[i], &guid[i]);
		for (size_t k = 0; v != NULL && k < nv; k++)
			dup = dup || strcasecmp(values[k], v) == 0;
		if (v == NULL || dup)
			continue; /* a second grant of the same value: it goes alone */
		values[nv] = v;
		which[nv++] = i;
	}
	if (nv > 0) {
		struct many_arg arg = { m[0].group_dn, m[0].attr, values, nv };
		rc = dir_run(c, op_remove_many, &arg, res, &code);
		if (rc == JIT_OK && code_is_internal(code))
			rc = JIT_EINTERNAL;
		/* Any refusal (one value absent, the last value, a read-only
		 * server) settles nothing: each member then goes alone. */
		if (rc == JIT_OK && code == LDAP_SUCCESS) {
			for (size_t k = 0; k < nv; k++) {
				done[which[k]] = true;
				value_out[which[k]] = xstrdup(values[k]);
			}
		}
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(cur[i]);
		free(guid[i]);
	}
	free(cur);
	free(guid);
	free(hits);
	free(values);
	free(which);
	return rc;
}

/* ---- probe, member lists, value keys ----------------------------------- */

/* A read of the root DSE: the cheapest question every server answers. */
static int op_ping(struct dir_conn *c, void *arg, struct dir_result *res)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	(void)arg;
	clear_diag(c);
	code = ldap_search_ext_s(c->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	set_result(c, res, code, "probe");
	ldap_msgfree(msg);
	return code;
}

int dir_probe(struct dir_conn *c, struct dir_result *res)
{
	struct dir_result dummy;
	int code = 0, rc;

	if (res == NULL)
		res = &dummy;
	c->probing = true;
	rc = dir_run(c, op_ping, NULL, res, &code);
	c->probing = false;
	if (c->health != NULL) {
		pthread_mutex_lock(&c->health->lock);
		c->health->probing = false;
		pthread_mutex_unlock(&c->health->lock);
	}
	return rc;
}

bool dir_parse_range(const char *desc, const char *attr, long *low, long *high)
{
	static const char tag[] = ";range=";
	size_t n = strlen(attr);
	const char *p;
	char *end;
	long lo, hi;

	if (strncasecmp(desc, attr, n) != 0 || strncasecmp(desc + n, tag, sizeof(tag) - 1) != 0)
		return false;
	p = desc + n + sizeof(tag) - 1;
	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	lo = strtol(p, &end, 10);
	if (errno != 0 || *end != '-')
		return false;
	p = end + 1;
	if (p[0] == '*' && p[1] == '\0') {
		hi = -1;
	} else {
		if (*p < '0' || *p > '9')
			return false;
		hi = strtol(p, &end, 10);
		if (errno != 0 || *end != '\0' || hi < lo)
			return false;
	}
	*low = lo;
	*high = hi;
	return true;
}

struct list_arg {
	const char *group_dn, *attr;
	dir_value_cb cb;
	void *cb_arg;
	char *want;             /* attribute description asked for this round */
	long next_low;          /* -1: done */
	int cb_rc;
	long step;              /* values per request; 0: what the server gives */
};

/* Calls the callback for each value of vals (values holding a NUL, which
 * no DN or uid can, are skipped). */
static void list_values(struct list_arg *arg, struct berval **vals)
{
	for (size_t i = 0; vals && vals[i] && arg->cb_rc == 0; i++) {
		if (memchr(vals[i]->bv_val, '\0', vals[i]->bv_len) != NULL)
			continue;
		char *v = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		arg->cb_rc = arg->cb(v, arg->cb_arg);
		free(v);
	}
}

/* One base-scope read of the group: the whole attribute, or one range. */
static int op_list_range(struct dir_conn *c, void *varg, struct dir_result *res)
{
	struct list_arg *arg = varg;
	char *attrs[] = { arg->want, NULL };
	struct timeval tv = cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL, *e;
	BerElement *ber = NULL;
	char *desc;
	long lo, hi, next = -1;
	int code;

	clear_diag(c);
	code = ldap_search_ext_s(c->ld, arg->group_dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs,
				 0, NULL, NULL, &tv, 1, &msg);
	set_result(c, res, code, NULL);
	if (code != LDAP_SUCCESS)
		goto out;
	e = ldap_first_entry(c->ld, msg);
	if (e == NULL) { /* the ACL hides the group: as good as missing */
		code = LDAP_NO_SUCH_OBJECT;
		set_result(c, res, code, "list members");
		goto out;
	}
	for (desc = ldap_first_attribute(c->ld, e, &ber); desc != NULL;
	     desc = ldap_next_attribute(c->ld, e, ber)) {
		bool whole = strcasecmp(desc, arg->attr) == 0;
		bool ranged = !whole && dir_parse_range(desc, arg->attr, &lo, &hi);
		if (whole || ranged) {
			struct berval **vals = ldap_get_values_len(c->ld, e, desc);
			list_values(arg, vals);
			ldap_value_free_len(vals);
			if (ranged && hi >= 0)
				next = hi + 1;
		}
		ldap_memfree(desc);
	}
	ber_free(ber, 0);
	/* Robustness: a server whose ranges do not move forward would loop us. */
	arg->next_low = next > arg->next_low ? next : -1;
out:
	ldap_msgfree(msg);
	return code;
}

int dir_list_members(struct dir_conn *c, const char *group_dn, const char *attr,
		     dir_value_cb cb, void *cb_arg, struct dir_result *res)
{
	return dir_list_members_step(c, group_dn, attr, 0, cb, cb_arg, res);
}

int dir_list_members_step(struct dir_conn *c, const char *group_dn, const char *attr, long step,
			  dir_value_cb cb, void *cb_arg, struct dir_result *res)
{
	struct list_arg arg = { group_dn, attr, cb, cb_arg, NULL, 0, 0, step > 0 ? step : 0 };
	struct dir_result dummy;
	int rc = JIT_OK, code = 0;

	if (res == NULL)
		res = &dummy;
	res->ldap_code = 0;
	res->message[0] = '\0';
	if (group_dn == NULL || !attr_ok(attr)) {
		set_local_result(res, "bad group DN or attribute");
		return JIT_EBADREQ;
	}
	arg.want = arg.step ? xasprintf("%s;range=0-%ld", attr, arg.step - 1) : xstrdup(attr);
	while (rc == JIT_OK && arg.cb_rc == 0) {
		rc = dir_run(c, op_list_range, &arg, res, &code);
		if (rc != JIT_OK)
			break;
		if (code != LDAP_SUCCESS) {
			rc = code_is_internal(code) ? JIT_EINTERNAL : JIT_EDIRREFUSED;
			break;
		}
		if (arg.next_low < 0)
			break;
		free(arg.want);
		if (arg.step)
			arg.want = xasprintf("%s;range=%ld-%ld", attr, arg.next_low,
					     arg.next_low + arg.step - 1);
		else
			arg.want = xasprintf("%s;range=%ld-*", attr, arg.next_low);
	}
	free(arg.want);
	return rc;
}

char *dir_value_key(const char *value)
{
	LDAPDN dn = NULL;
	char *out = NULL, *key;

	if (value != NULL && strchr(value, '=') != NULL &&
	    ldap_str2dn(value, &dn, LDAP_DN_FORMAT_LDAP) == LDAP_SUCCESS && dn != NULL &&
	    ldap_dn2str(dn, &out, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && out != NULL)
		key = xstrdup(out);
	else
		key = xstrdup(value ? value : "");
	ldap_memfree(out);
	ldap_dnfree(dn);
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

char *dir_pair_key(const char *directory, const char *group_dn, const char *attr,
		   const char *value)
{
	char *dn = dir_value_key(group_dn);
	char *k = xasprintf("%s\n%s\n%s\n%s", directory ? directory : "", dn, attr ? attr : "",
			    value ? value : "");
	free(dn);
	for (char *p = k; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}
