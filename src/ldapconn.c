/*
 * ldapconn.c - one LDAP connection of the directory module (directory_int.h):
 * results and their mapping, handle options (TLS, SASL security properties),
 * connect and bind with URI failover, an operation run with one reconnect and
 * retry, the reachability shared by a directory's connections, the lifecycle.
 * Trust boundary: all the server sends is untrusted; its text reaches messages
 * only through termsafe.h. libldap write()s to its sockets: the process must
 * ignore SIGPIPE.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <ldap.h>

#include "directory_int.h"
#include "fault.h"
#include "log.h"
#include "termsafe.h"
#include "util.h"

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

/* ---- results and health ---------------------------------------------- */

/* Copies untrusted server text, replacing control characters (C0, DEL,
 * C1) and invalid UTF-8, truncating between characters (termsafe.h). */
void dir_copy_printable(char *dst, size_t dstlen, const char *src)
{
	(void)termsafe_copy(dst, dstlen, src, 0);
}

/* Fills res with code and "ldap N (text): <diagnostic>"; an empty message
 * for success. stage (may be NULL) prefixes connection-level failures. */
void dir_set_result(struct dir_conn *c, struct dir_result *res, int code, const char *stage)
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
		dir_copy_printable(clean, sizeof(clean), diag);
	ldap_memfree(diag);
	/* Truncation is intended: the message is a bounded diagnostic. */
	(void)snprintf(res->message, sizeof(res->message), "%s%sldap %d (%s)%s%s",
		       stage ? stage : "", stage ? ": " : "", code, ldap_err2string(code),
		       clean[0] ? ": " : "", clean);
}

/* Forgets the previous diagnostic so a client-side failure (no answer)
 * is not reported with stale server text. */
void dir_clear_diag(struct dir_conn *c)
{
	if (ldap_set_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, NULL) != LDAP_OPT_SUCCESS)
		log_debug("directory %s: cannot reset the diagnostic message", c->cfg->name);
}

/* A local failure that is not an LDAP result (secret file, options...). */
void dir_set_local_result(struct dir_result *res, const char *what)
{
	res->ldap_code = LDAP_LOCAL_ERROR;
	dir_copy_printable(res->message, sizeof(res->message), what);
}

static void set_health(struct dir_conn *c, bool bound, const char *error)
{
	pthread_mutex_lock(&c->lock);
	c->bound = bound;
	if (error != NULL)
		dir_copy_printable(c->last_error, sizeof(c->last_error), error);
	pthread_mutex_unlock(&c->lock);
}

bool dir_conn_healthy(struct dir_conn *c, char *buf, size_t buflen)
{
	bool bound;

	pthread_mutex_lock(&c->lock);
	bound = c->bound;
	if (buf != NULL && buflen > 0)
		dir_copy_printable(buf, buflen, c->last_error);
	pthread_mutex_unlock(&c->lock);
	return bound;
}

/* No usable answer: drop the connection, reconnect and retry once. 51 busy
 * and 52 unavailable are answers, but a reconnect may reach another URI and
 * the outcome is the same for the caller: try again later. */
bool dir_code_is_unavailable(int code)
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
bool dir_code_is_internal(int code)
{
	return code < 0 && !dir_code_is_unavailable(code);
}

/* ---- connecting and binding ------------------------------------------ */

static void dir_drop(struct dir_conn *c)
{
	if (c->ld != NULL) {
		c->dropping = true;
		int rc = ldap_unbind_ext_s(c->ld, NULL, NULL);
		c->dropping = false;
		if (rc != LDAP_SUCCESS)
			log_debug("directory %s: unbind: %s", c->cfg->name, ldap_err2string(rc));
		c->ld = NULL;
	}
	c->cur = -1;
	c->conn_lost = false;
	set_health(c, false, NULL);
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
struct timeval dir_cfg_timeout(const struct jit_dir_cfg *cfg)
{
	struct timeval tv = { .tv_sec = cfg->timeout > 0 ? (time_t)cfg->timeout : 10 };
	return tv;
}

bool dir_is_gssapi(const struct jit_dir_cfg *cfg)
{
	return cfg->sasl_mech != NULL && strcasecmp(cfg->sasl_mech, "GSSAPI") == 0;
}

bool dir_uuid_is_guid(const struct jit_dir_cfg *cfg)
{
	return cfg->uuid_attr != NULL && strcasecmp(cfg->uuid_attr, "objectGUID") == 0;
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
	if (!dir_is_gssapi(cfg))
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
	struct timeval tv = dir_cfg_timeout(cfg);

	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS)
		return "protocol version";
	if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return "network timeout";
	if (ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return "timeout";
	if (ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS)
		return "referrals";
	/* Security: aliases are never followed, whatever ldap.conf's DEREF
	 * says: a user search under user_base must not resolve an alias to
	 * an entry outside it. */
	int deref = LDAP_DEREF_NEVER;
	if (ldap_set_option(ld, LDAP_OPT_DEREF, &deref) != LDAP_OPT_SUCCESS)
		return "deref";
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

/* Connects and binds c to URI number i. JIT_EDIRUNAVAIL on any failure,
 * with res filled and the handle dropped. */
static int dir_connect_one(struct dir_conn *c, int i, struct dir_result *res)
{
	const struct jit_dir_cfg *cfg = c->cfg;
	const char *bad, *uri = c->uris[i];
	char msg[256];
	int code, rc = JIT_EDIRUNAVAIL;

	c->connecting = true;
	c->conn_lost = false;
	code = ldap_initialize(&c->ld, uri);
	if (code != LDAP_SUCCESS) {
		c->ld = NULL;
		dir_set_result(c, res, code, "initialize (uri)");
		goto out;
	}
	c->io_timed_out = false;
	bad = set_options(c->ld, cfg, uri);
	if (bad == NULL &&
	    ldap_set_option(c->ld, LDAP_OPT_CONNECT_CB, &c->conncb) != LDAP_OPT_SUCCESS)
		bad = "connect callback";
	if (bad != NULL) {
		(void)snprintf(msg, sizeof(msg), "cannot set LDAP option: %s", bad);
		dir_set_local_result(res, msg);
		goto out;
	}
	/* The connection opens with the first request (StartTLS or the bind),
	 * and dir_conn_added() then starts the deadline of its TLS handshake: for
	 * StartTLS, the request and the handshake share it. The bind gets a
	 * deadline of its own. */
	if (cfg->starttls) {
		dir_clear_diag(c);
		code = ldap_start_tls_s(c->ld, NULL, NULL);
		if (code != LDAP_SUCCESS) {
			dir_set_result(c, res, code, "starttls");
			goto out;
		}
		c->io_deadline = dir_io_deadline(cfg);
	}
	rc = dir_bind(c, res);
	if (rc != JIT_OK)
		goto out;
	c->io_deadline = 0;
	c->connecting = false;
	c->cur = i;
	dir_set_result(c, res, LDAP_SUCCESS, NULL);
	set_health(c, true, "");
	log_debug("directory %s: connected and bound to %s", cfg->name, uri);
	return JIT_OK;
out:
	c->io_deadline = 0;
	c->connecting = false;
	dir_drop(c);
	if (c->io_timed_out) {
		char *tmp = xasprintf("%s (no answer within %llds)", res->message,
				      (long long)dir_cfg_timeout(cfg).tv_sec);
		dir_copy_printable(res->message, sizeof(res->message), tmp);
		free(tmp);
	}
	if (c->n_uris > 1) {
		/* Name the server: the next one may answer. */
		char *tmp = xasprintf("%s: %s", uri, res->message);
		dir_copy_printable(res->message, sizeof(res->message), tmp);
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
		c->failed_at[i] = mono_ms();
	}
	set_health(c, false, res->message);
	return rc;
}

/*
 * Runs op on a bound connection. A connection that was already open and
 * turns out dead (see dir_code_is_unavailable), or whose session the server no
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
			dir_copy_printable(res->message, sizeof(res->message),
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
		if (!dir_code_is_unavailable(*code)) {
			(void)snprintf(res->uri, sizeof(res->uri), "%s", c->uris[c->cur]);
			if (c->conn_lost) {
				/* the answer stands; the handle has no bound
				 * connection left: the next operation binds again */
				log_info("directory %s: the server ended the session (%s); binding "
					 "again at the next operation", c->cfg->name, res->message);
				dir_drop(c);
			}
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

void dir_conn_set_health(struct dir_conn *c, struct dir_health *h, bool passive)
{
	c->health = h;
	c->health_passive = passive;
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
		dir_copy_printable(h->error, sizeof(h->error), error ? error : "");
	}
	pthread_mutex_unlock(&h->lock);
}

/* dir_health_down(), and how many times h had come back then (*recov). */
static bool health_down_at(struct dir_health *h, char *buf, size_t buflen, uint64_t *recov)
{
	bool down;
	char ts[32];

	if (h == NULL)
		return false;
	pthread_mutex_lock(&h->lock);
	down = h->down;
	if (recov != NULL)
		*recov = h->recoveries;
	if (down && buf != NULL && buflen > 0) {
		fmt_rfc3339(h->since, ts);
		/* Truncation is acceptable: a bounded diagnostic. */
		(void)snprintf(buf, buflen, "directory %.32s unreachable since %s: %.160s",
			       h->name, ts, h->error);
	}
	pthread_mutex_unlock(&h->lock);
	return down;
}

bool dir_health_down(struct dir_health *h, char *buf, size_t buflen)
{
	return health_down_at(h, buf, buflen, NULL);
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
int dir_run(struct dir_conn *c, dir_op_fn op, void *arg, struct dir_result *res,
	    int *code)
{
	char why[sizeof(res->message)];
	int rc;

	/* how many times the directory had come back when this began (see
	 * dir_conn_back_since_run) */
	c->run_snap = c->health != NULL;
	bool down = c->run_snap && health_down_at(c->health, why, sizeof(why), &c->run_recov);
	if (down && !c->probing) {
		res->ldap_code = LDAP_SERVER_DOWN;
		res->uri[0] = '\0';
		dir_copy_printable(res->message, sizeof(res->message), why);
		return JIT_EDIRUNAVAIL;
	}
	rc = dir_run_conn(c, op, arg, res, code);
	if (rc != JIT_OK && !c->health_passive)
		health_note(c->health, false, res->message);
	else if (rc == JIT_OK && *code >= 0)
		health_note(c->health, true, NULL);
	return rc;
}

bool dir_conn_back_since_run(struct dir_conn *c)
{
	return c->run_snap && c->health != NULL && dir_health_recoveries(c->health) != c->run_recov;
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
	c->conncb.lc_add = dir_conn_added;
	c->conncb.lc_del = dir_conn_deleted;
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
	if (c->failed_at[i] != 0 && mono_ms() - c->failed_at[i] < c->cfg->replication_grace * 1000)
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
		dir_set_result(c, res, LDAP_SUCCESS, NULL);
		return JIT_OK;
	}
	int rc = dir_connect(c, res);
	health_note(c->health, rc == JIT_OK, res->message);
	return rc;
}

/* ---- probe ------------------------------------------------------------ */

/* A read of the root DSE: the cheapest question every server answers. */
static int op_ping(struct dir_conn *c, void *arg, struct dir_result *res)
{
	char *attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval tv = dir_cfg_timeout(c->cfg);
	LDAPMessage *msg = NULL;
	int code;

	(void)arg;
	dir_clear_diag(c);
	code = ldap_search_ext_s(c->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL,
				 NULL, &tv, 1, &msg);
	dir_set_result(c, res, code, "probe");
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
