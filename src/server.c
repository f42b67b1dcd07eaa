/*
 * server.c - the listener's connections (see server.h). Runs in the
 * unprivileged listener process. Trust boundary: every byte read here
 * comes from a local client that may be hostile. Lines are bounded by
 * max_request_size; a client gets one request in flight at a time, no new
 * request while OUT_MAX bytes of its answers are unsent, idle clients and
 * clients that stop reading are dropped after client_timeout, and at most
 * max_clients are served, max_clients_per_uid of them from one peer uid, so
 * no client can stall another or exhaust the daemon. A client that shuts
 * its sending side (end of input) still gets the answers to every complete
 * line it sent, under the same bounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "fault.h"
#include "log.h"
#include "policy.h"
#include "proto.h"
#include "server.h"
#include "util.h"

#define TICK_MS 250
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: how long accept() rests */
/* Robustness: a client's next request is read only while less than this
 * much of its answers is unsent, so a client that pipelines requests and
 * never reads holds at most OUT_MAX plus one answer here. */
#define OUT_MAX (1024 * 1024)
/* Robustness: an answer longer than OUT_BIG (a long `list`) is answered
 * `busy` instead while the answers unsent to all clients together would
 * pass OUT_TOTAL_MAX with it: clients that ask and never read (up to
 * max_clients of them, each holding OUT_MAX plus one answer) cannot grow
 * the listener without bound. Shorter answers (a grant, an end) always go. */
#define OUT_BIG (64 * 1024)
#define OUT_TOTAL_MAX (64 * 1024 * 1024)
/* Refusals that a flood could multiply are audited at most once per this
 * period (per clients entry; for all unmatched peers together), each
 * audited one saying how many were not. */
#define AUDIT_EVERY_MS 10000
/* Connections refused for one cause are logged at most once per this
 * period, and the number not logged is logged after it (a connection
 * flood must not flood the log). */
#define LOG_EVERY_MS 10000

/* Why a new connection is refused (see refusal()). */
enum refusal_cause { RC_DRAINING, RC_MAX_CLIENTS, RC_PER_UID, RC__COUNT };
static const char *const cause_text[RC__COUNT] = {
	"shutting down", "max_clients reached", "max_clients_per_uid reached",
};

struct client {
	int fd;
	uint64_t id;
	struct jit_peer peer;
	char *in;
	size_t in_len, in_cap;  /* in_cap: max_request_size when it connected */
	char *out;
	size_t out_len, out_off; /* out[out_off..out_len) is unsent */
	bool busy;              /* a request is with the engine */
	bool closing;           /* close once out is flushed */
	bool eof;               /* the client shut its sending side: answer, then close */
	bool hup;               /* it closed both directions: one line more at most */
	bool groups_read;       /* peer.groups read (client_entry) */
	int64_t last_ms;        /* a line's first byte read, or an answer flushed */
	int64_t out_ms;         /* output pending since, or last written to */
};

/* max_requests_per_minute state of one clients entry, kept by name. */
struct rate {
	char *name;
	struct policy_bucket b;
	struct throttle audit;  /* its refusals: audited at most every 10 s */
};

struct server {
	const struct jit_config *cfg;
	struct rate *rates;     /* one per cfg->clients entry, same order */
	struct throttle unmatched; /* refusals of peers no entry matches: audit every 10 s */
	int64_t accept_paused_until; /* out of descriptors: the socket is not polled till then */
	struct throttle accept_log;  /* accept() failures: logged every 10 s */
	struct throttle refused_log[RC__COUNT]; /* refused connections: log every 10 s */
	const struct server_hooks *h; /* while server_run runs */
	int lfd;
	struct client **clients;
	size_t n_clients, cap_clients;
	uint64_t next_id;
	size_t out_total_max;   /* OUT_TOTAL_MAX (a test build may lower it) */
	struct throttle big_busy_log; /* long answers answered busy: logged every 10 s */
	bool stop;              /* server_drain() was called */
	bool draining;
};

static void client_free(struct client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static size_t out_pending(const struct client *c)
{
	return c->out_len - c->out_off;
}

/* Appends line (freed) to c's unsent output; what was sent is dropped
 * first, so out holds no more than what is pending. */
static void queue_out(struct client *c, char *line)
{
	size_t n = strlen(line);
	if (out_pending(c) == 0)
		c->out_ms = mono_ms();
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, out_pending(c));
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	c->out = xrealloc(c->out, c->out_len + n);
	memcpy(c->out + c->out_len, line, n);
	c->out_len += n;
	free(line);
}

/* Unlinks a stale socket file, but never a live one or a non-socket. */
static int clear_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? JIT_OK : JIT_EIO;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket; refusing to replace it", path);
		return JIT_EIO;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* Robustness: the listener of a jitd that was just killed dies a
	 * moment after it (PR_SET_PDEATHSIG); give it 2 s before deciding
	 * that another jitd is alive there. */
	for (int tries = 0;; tries++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (fd >= 0)
			close(fd);
		if (!live)
			break;
		if (tries == 20) {
			log_err("%s: another jitd is listening there", path);
			return JIT_EIO;
		}
		poll(NULL, 0, 100);
	}
	if (unlink(path) != 0) {
		log_err("cannot remove stale socket %s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	return JIT_OK;
}

/* socket_group as a gid: digits only are a gid (even where a group has
 * that name), anything else a group name, as jitd.conf(5) says and
 * config.c checks. */
static int socket_gid(const char *group, gid_t *out)
{
	struct nss_entry gr;
	bool found;
	int64_t v;
	int e;

	if (strspn(group, "0123456789") == strlen(group)) {
		if (parse_int64(group, 0, (int64_t)UINT32_MAX - 1, &v) != JIT_OK) {
			log_err("socket_group %s is not a gid", group);
			return JIT_ECONFIG;
		}
		*out = (gid_t)v;
		return JIT_OK;
	}
	e = nss_lookup(NSS_GROUP_BY_NAME, group, 0, &gr, &found);
	free(gr.name);
	if (e != 0) {
		log_err("socket_group \"%s\": cannot look it up: %s", group, strerror(e));
		return JIT_ECONFIG;
	}
	if (!found) {
		log_err("socket_group \"%s\" does not exist", group);
		return JIT_ECONFIG;
	}
	*out = (gid_t)gr.id;
	return JIT_OK;
}

static int set_socket_perms(const struct jit_config *cfg)
{
	if (cfg->socket_group) {
		gid_t gid;
		int rc = socket_gid(cfg->socket_group, &gid);
		if (rc != JIT_OK)
			return rc;
		if (chown(cfg->socket_path, (uid_t)-1, gid) != 0) {
			log_err("chown %s: %s", cfg->socket_path, strerror(errno));
			return JIT_EIO;
		}
	}
	if (chmod(cfg->socket_path, cfg->socket_mode) != 0) {
		log_err("chmod %s: %s", cfg->socket_path, strerror(errno));
		return JIT_EIO;
	}
	return JIT_OK;
}

/* Buckets for cfg's clients entries; an entry keeps its bucket across a
 * reload when its name stays (a reload must not reset a limit). */
static void rates_rebuild(struct server *s, const struct jit_config *cfg)
{
	struct rate *n = xcalloc(cfg->n_clients + 1, sizeof(*n));
	size_t old_n = s->rates && s->cfg ? s->cfg->n_clients : 0;

	for (size_t i = 0; i < cfg->n_clients; i++) {
		n[i].name = xstrdup(cfg->clients[i].name);
		for (size_t k = 0; k < old_n; k++) {
			if (s->rates[k].name && strcmp(s->rates[k].name, n[i].name) == 0) {
				n[i].b = s->rates[k].b;
				n[i].audit = s->rates[k].audit;
			}
		}
	}
	for (size_t k = 0; k < old_n; k++)
		free(s->rates[k].name);
	free(s->rates);
	s->rates = n;
}

int server_listen(const struct jit_config *cfg, int *lfd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		log_err("socket_path is longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return JIT_ECONFIG;
	}
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
	/* Robustness: the socket's mode and group are set by path after the
	 * bind; in a directory someone else may write, they could swap the
	 * socket for a link to another file first, or plant one of their own
	 * for clients to talk to. A sticky one (/tmp) is no better: while
	 * jitd is stopped the path is free, and a squatter's socket there
	 * would keep it from starting and answer its clients. */
	char *dir = xstrdup(cfg->socket_path), *slash = strrchr(dir, '/'), why[160];
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	int rc = dir_trusted(slash ? dir : ".", config_run_uid(cfg), why, sizeof(why));
	if (rc != JIT_OK)
		log_err("socket_path %s: its directory %s: %s", cfg->socket_path, slash ? dir : ".",
			why);
	free(dir);
	if (rc != JIT_OK)
		return JIT_ECONFIG;
	rc = clear_stale(cfg->socket_path);
	if (rc != JIT_OK)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("socket: %s", strerror(errno));
		return JIT_EIO;
	}
	/* Robustness: the socket appears with no access until its mode is set. */
	mode_t old = umask(0777);
	int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (b != 0 || listen(fd, 128) != 0) {
		log_err("cannot listen on %s: %s", cfg->socket_path, strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	rc = set_socket_perms(cfg);
	if (rc != JIT_OK) {
		close(fd);
		unlink(cfg->socket_path);
		return rc;
	}
	*lfd = fd;
	return JIT_OK;
}

struct server *server_new(const struct jit_config *cfg, int lfd)
{
	struct server *s = xcalloc(1, sizeof(*s));
	rates_rebuild(s, cfg);
	s->cfg = cfg;
	s->lfd = lfd;
	s->cap_clients = (size_t)cfg->max_clients;
	s->clients = xcalloc(s->cap_clients, sizeof(struct client *));
	s->next_id = 1;
	/* a test of the cap (fault.h) */
	s->out_total_max = (size_t)fault_env_cap("JITD_FAULT_OUT_TOTAL_MAX", OUT_TOTAL_MAX);
	return s;
}

void server_set_config(struct server *s, const struct jit_config *cfg)
{
	rates_rebuild(s, cfg);
	/* Robustness: limits that size buffers are read per connection (in_cap)
	 * and the slot array grows on demand, so a reload can raise or lower
	 * max_clients and max_request_size safely. */
	s->cfg = cfg;
}

void server_free(struct server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_clients; i++)
		client_free(s->clients[i]);
	free(s->clients);
	for (size_t i = 0; s->rates && i < s->cfg->n_clients; i++)
		free(s->rates[i].name);
	free(s->rates);
	if (s->lfd >= 0)
		close(s->lfd);
	free(s);
}

static size_t max_slots(const struct server *s)
{
	return (size_t)s->cfg->max_clients;
}

/* Connections open for peer uid. Robustness: counted afresh at each
 * accept (one pass over the open connections) rather than kept in a table
 * that could drift from the list of clients. */
static int uid_connections(const struct server *s, uid_t uid)
{
	int n = 0;
	for (size_t i = 0; i < s->n_clients; i++)
		if (s->clients[i]->peer.uid == uid)
			n++;
	return n;
}

/*
 * Why a new connection of peer uid is not served (an enum refusal_cause;
 * -1: it is), with the answer's code in *err and its message in msg.
 * max_clients_per_uid keeps one local user (any process that can open the
 * socket, matched by a clients entry or not) from holding every slot.
 */
static int refusal(const struct server *s, uid_t uid, int *err, char *msg, size_t len)
{
	*err = JIT_EBUSY;
	msg[0] = '\0';
	if (s->draining) {
		*err = JIT_ESHUTDOWN;
		return RC_DRAINING;
	}
	if (s->n_clients >= max_slots(s)) {
		snprintf(msg, len, "too many clients");
		return RC_MAX_CLIENTS;
	}
	if (uid_connections(s, uid) >= s->cfg->max_clients_per_uid) {
		snprintf(msg, len, "too many connections from uid %u (max_clients_per_uid %d)",
			 (unsigned)uid, s->cfg->max_clients_per_uid);
		return RC_PER_UID;
	}
	return -1;
}

/*
 * Logs a connection refused for cause: one line per cause every 10 s, so
 * that a flood of connections (from any process that can open the socket)
 * cannot flood the log; the number refused meanwhile is logged by
 * log_refusals_held() once the 10 s are over, or with the next line.
 */
static void log_refused(struct server *s, int cause, uid_t uid)
{
	int64_t held;

	if (!throttle_pass(&s->refused_log[cause], mono_ms(), LOG_EVERY_MS, &held))
		return;
	if (held > 0)
		log_warn("refused a client (uid %d): %s (%lld more refused for this cause "
			 "since the last such line, not logged)", (int)uid, cause_text[cause],
			 (long long)held);
	else
		log_warn("refused a client (uid %d): %s", (int)uid, cause_text[cause]);
}

/* Logs how many connections were refused without a line of their own,
 * per cause, once period_ms has passed since its last line (LOG_EVERY_MS;
 * 0 when the listener stops). */
static void log_refusals_held(struct server *s, int64_t now, int64_t period_ms)
{
	for (int i = 0; i < RC__COUNT; i++) {
		int64_t held;
		if (throttle_flush(&s->refused_log[i], now, period_ms, &held))
			log_warn("refused %lld more clients (%s) since the last such line, "
				 "not logged one by one", (long long)held, cause_text[i]);
	}
}

static void accept_clients(struct server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			/* Robustness: out of descriptors (EMFILE, ENFILE) or memory,
			 * the connection stays queued and the socket stays readable:
			 * polled at once again, that would spin and log without end.
			 * Pause taking connections a while; log once per pause. */
			int64_t now = mono_ms(), held = 0;
			if (throttle_pass(&s->accept_log, now, 10000, &held))
				log_warn("accept: %s; pausing %d ms before taking connections again "
					 "(%lld failure(s) since the last such line)", strerror(errno),
					 ACCEPT_PAUSE_MS, (long long)held + 1);
			s->accept_paused_until = now + ACCEPT_PAUSE_MS;
			return;
		}
		struct ucred cr;
		socklen_t len = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
			log_warn("SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		char msg[96];
		int err;
		int cause = refusal(s, cr.uid, &err, msg, sizeof(msg));
		if (cause >= 0) {
			char *line = proto_error_line(err, msg[0] ? msg : NULL);
			ssize_t w = write(fd, line, strlen(line)); /* best effort */
			(void)w;
			free(line);
			close(fd);
			log_refused(s, cause, cr.uid);
			continue;
		}
		if (s->n_clients == s->cap_clients) {
			s->cap_clients *= 2;
			s->clients = xrealloc(s->clients, s->cap_clients * sizeof(struct client *));
		}
		struct client *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->id = s->next_id++;
		c->peer.pid = cr.pid;
		c->peer.uid = cr.uid;
		c->peer.gid = cr.gid;
		c->in_cap = (size_t)s->cfg->max_request_size;
		c->in = xmalloc(c->in_cap);
		c->last_ms = mono_ms();
		s->clients[s->n_clients++] = c;
		log_debug("client %llu connected: uid %d pid %d", (unsigned long long)c->id,
			  (int)cr.uid, (int)cr.pid);
	}
}

/* c's clients entry. Its user's groups are read (once per connection,
 * and at most once per uid every POLICY_GROUPS_TTL_MS) only when an entry
 * matches by gid: reading them costs the passwd and group databases, which
 * a name service may answer slowly, in this one loop; connections opened
 * one after another must not cost a read each. */
static const struct jit_client_cfg *client_entry(struct server *s, struct client *c)
{
	if (!c->groups_read && policy_uses_groups(s->cfg)) {
		policy_peer_groups_cached(&c->peer, s->cfg, mono_ms());
		c->groups_read = true;
	}
	return policy_client(s->cfg, &c->peer);
}

/* Answers c with a refusal; an audited one goes through the hook, which
 * has the engine record it before the answer is sent. */
static void refuse(struct server *s, struct client *c, const struct jit_client_cfg *cc,
		   const struct jit_request *req, int err, const char *msg, const char *rule,
		   bool audit)
{
	if (audit && s->h->refused(s->h->arg, c->id, &c->peer, cc, req, err, msg, rule)) {
		c->busy = true;
		return;
	}
	queue_out(c, proto_error_line(err, msg));
}

/*
 * max_requests_per_minute of entry cc: true if the request may pass. A
 * refusal is answered here; it is audited at most every 10 s per entry (a
 * flooding client must not flood the audit log), with the count of those
 * not audited in between.
 */
static bool rate_ok(struct server *s, struct client *c, const struct jit_client_cfg *cc)
{
	struct rate *r = &s->rates[cc - s->cfg->clients];
	int64_t now = mono_ms(), held;
	char msg[200];

	if (policy_bucket_take(&r->b, cc->max_requests_per_minute, now))
		return true;
	snprintf(msg, sizeof(msg), "max_requests_per_minute: client \"%.64s\" may send %d "
		 "requests per minute", cc->name, cc->max_requests_per_minute);
	if (throttle_pass(&r->audit, now, AUDIT_EVERY_MS, &held)) {
		char amsg[260];
		snprintf(amsg, sizeof(amsg), "%s (%lld earlier refusals not recorded)", msg,
			 (long long)held);
		refuse(s, c, cc, NULL, JIT_ERATELIMIT, held ? amsg : msg,
		       "clients.max_requests_per_minute", true);
	} else {
		refuse(s, c, cc, NULL, JIT_ERATELIMIT, msg, NULL, false);
	}
	return false;
}

/*
 * Whether this refusal of a peer no clients entry matches is audited: one
 * such refusal every 10 s, for all such peers and every cause together
 * (a bad line, an unauthorised request, an over-long line), so that any
 * process able to open the socket cannot flood the synced audit log. If
 * so, *held is the number not recorded since (see note_held).
 */
static bool unmatched_audited(struct server *s, int64_t *held)
{
	return throttle_pass(&s->unmatched, mono_ms(), AUDIT_EVERY_MS, held);
}

/* Appends to the audited message msg (of size len) how many refusals of
 * unmatched peers were not recorded before it, if any were. */
static void note_held(char *msg, size_t len, int64_t held)
{
	size_t l = strlen(msg);
	if (held > 0 && l + 1 < len)
		snprintf(msg + l, len - l, "%s(%lld earlier refusals of peers no entry matches "
			 "not recorded)", l ? " " : "", (long long)held);
}

/* Handles one complete request line (without '\n'). */
static void handle_line(struct server *s, struct client *c, char *line, size_t len)
{
	char msg[256];
	struct jit_request *req = NULL;
	int64_t duration = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	const struct jit_client_cfg *cc = client_entry(s, c);
	const char *rule = NULL;
	if (cc && !rate_ok(s, c, cc))
		return;
	/* Every request of a peer no entry matches is refused; one that is
	 * not audited is answered without being parsed. */
	int64_t held = 0;
	if (!cc && !unmatched_audited(s, &held)) {
		queue_out(c, proto_error_line(JIT_EUNAUTH, "no clients entry matches this peer"));
		return;
	}
	msg[0] = '\0';
	int rc = proto_parse_request(line, len, &req, msg, sizeof(msg));
	if (rc == JIT_OK || !cc)
		/* a peer no entry matches hears unauthorized whatever it sent
		 * (the audited one too); its request, if it parsed, is audited */
		rc = policy_check(s->cfg, cc, req, &duration, msg, sizeof(msg), &rule);
	if (rc != JIT_OK) {
		note_held(msg, sizeof(msg), held);
		refuse(s, c, cc, req, rc, msg[0] ? msg : NULL, rule, true);
		proto_request_free(req);
		return;
	}
	c->busy = true;
	s->h->submit(s->h->arg, c->id, &c->peer, cc, req, duration);
}

/* May c's next request be taken? Not while one is in flight, nor while
 * OUT_MAX of its answers wait for it to read them. */
static bool takes_input(const struct client *c)
{
	return !c->busy && !c->closing && out_pending(c) < OUT_MAX;
}

/*
 * The client ended its input in the middle of a line. Only a line ended by
 * '\n' is a request: end of input cannot tell a client that half-closed on
 * purpose from one that died mid-write, and a request that grants privilege
 * must be one the client finished. It is answered, not audited: no request
 * was received (as when a client disconnects mid-line), and auditing it
 * would let any peer bypass the audit throttle of unmatched peers.
 */
static void unterminated(struct client *c)
{
	log_debug("client %llu (uid %d) ended its input inside a line of %zu bytes",
		  (unsigned long long)c->id, (int)c->peer.uid, c->in_len);
	queue_out(c, proto_error_line(JIT_EBADREQ, "end of input inside a request line (a "
						   "request ends with a newline)"));
	c->closing = true;
	c->in_len = 0;
}

/* Takes complete lines out of c->in while takes_input(c). */
static void process_input(struct server *s, struct client *c)
{
	while (takes_input(c)) {
		char *nl = memchr(c->in, '\n', c->in_len);
		if (!nl) {
			if (c->in_len >= c->in_cap) {
				const struct jit_client_cfg *cc = client_entry(s, c);
				int64_t held = 0;
				char m[160];
				if (cc && !rate_ok(s, c, cc)) {
					/* counted like any request (the refusal is
					 * rate_limited, audited as such at most every
					 * 10 s) */
					c->closing = true;
					c->in_len = 0;
					return;
				}
				snprintf(m, sizeof(m), "request exceeds %zu bytes", c->in_cap);
				bool audit = cc || unmatched_audited(s, &held);
				note_held(m, sizeof(m), held);
				refuse(s, c, cc, NULL, JIT_EBADREQ, m, NULL, audit);
				c->closing = true;
				c->in_len = 0;
			} else if (c->eof && c->in_len > 0) {
				unterminated(c);
			}
			return;
		}
		if (s->draining) {
			/* Stopping: nothing new starts. Every complete line read
			 * is answered so (nothing was recorded; retry with the
			 * same request_id) instead of a silent close, up to
			 * OUT_MAX of unsent answers (the lines after get none). */
			for (size_t k = 0; k < c->in_len && out_pending(c) < OUT_MAX; k++)
				if (c->in[k] == '\n')
					queue_out(c, proto_error_line(JIT_ESHUTDOWN, NULL));
			c->closing = true;
			c->in_len = 0;
			return;
		}
		size_t len = (size_t)(nl - c->in);
		handle_line(s, c, c->in, len);
		memmove(c->in, nl + 1, c->in_len - len - 1);
		c->in_len -= len + 1;
		if (c->hup) {
			/* gone: the first line is the request in progress, the
			 * lines after it are not started */
			c->closing = true;
			c->in_len = 0;
			return;
		}
	}
}

/* Is c finished: nothing in flight, nothing unsent, and nothing more to
 * take (closing, or its input ended and every line of it was taken)? */
static bool client_done(const struct client *c)
{
	return (c->closing || c->eof) && !c->busy && c->out_len == 0;
}

/* Should c be polled for input? Not once its input has ended: a socket at
 * end of input is always readable. */
static bool wants_read(const struct client *c)
{
	return takes_input(c) && !c->eof;
}

/*
 * Reads what c sent. End of input is not the end of the client: a client
 * that shut only its sending side (shutdown(SHUT_WR), nc -N) waits for the
 * answers to the lines it sent, which are taken one by one as before; the
 * connection closes once the last is written (client_done). Returns false
 * when the client is gone or done.
 */
static bool read_client(struct server *s, struct client *c)
{
	size_t room = c->in_cap - c->in_len;
	if (room == 0)
		return true;
	ssize_t n = read(c->fd, c->in + c->in_len, room);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		c->eof = true;
	/* Only the first byte of a line restarts the idle clock (its answer,
	 * when flushed, does too): a client trickling a line one byte at a
	 * time, never ending it, must not hold its slot for ever. */
	if (c->in_len == 0 && n > 0)
		c->last_ms = mono_ms();
	c->in_len += (size_t)n;
	process_input(s, c);
	return !client_done(c);
}

/* Writes what c takes; once its backlog is below OUT_MAX, the requests it
 * pipelined meanwhile are taken up again. Returns false when c is gone (a
 * write failed: EPIPE once it closed) or done. */
static bool write_client(struct server *s, struct client *c)
{
	bool alive = true;
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			alive = errno == EAGAIN || errno == EINTR;
			break;
		}
		c->out_off += (size_t)n;
		c->out_ms = mono_ms();
	}
	if (!alive)
		return false;
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		c->last_ms = mono_ms();
	}
	process_input(s, c);
	return !client_done(c);
}

static struct client *find_client(struct server *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_clients; i++)
		if (s->clients[i]->id == id)
			return s->clients[i];
	return NULL;
}

void server_deliver(struct server *s, uint64_t conn_id, char *line)
{
	struct client *c = find_client(s, conn_id);
	if (!c || !c->busy) {
		free(line); /* the client left meanwhile */
		return;
	}
	size_t n = strlen(line), total = 0;
	if (n > OUT_BIG) {
		for (size_t i = 0; i < s->n_clients; i++)
			total += out_pending(s->clients[i]);
		int64_t held = 0;
		if (total + n > s->out_total_max) {
			if (throttle_pass(&s->big_busy_log, mono_ms(), LOG_EVERY_MS, &held))
				log_warn("client %llu: an answer of %zu bytes answered busy: %zu bytes "
					 "of answers wait to be read by clients (%lld more since the "
					 "last such line)", (unsigned long long)conn_id, n, total,
					 (long long)held);
			free(line);
			line = proto_error_line(JIT_EBUSY, "answers that clients have not read yet "
						"fill jitd's buffer; try again later");
		}
	}
	queue_out(c, line);
	c->busy = false;
	process_input(s, c);
}

static void drop_client(struct server *s, size_t i)
{
	log_debug("client %llu disconnected", (unsigned long long)s->clients[i]->id);
	client_free(s->clients[i]);
	s->clients[i] = s->clients[--s->n_clients];
}

void server_drain(struct server *s)
{
	s->stop = true;
}

static bool any_busy(struct server *s)
{
	for (size_t i = 0; i < s->n_clients; i++)
		if (s->clients[i]->busy || s->clients[i]->out_len > 0)
			return true;
	return false;
}

int server_run(struct server *s, const struct server_hooks *h)
{
	int64_t drain_deadline = 0;
	struct pollfd *pfd = NULL;
	size_t pcap = 0;
	int rc = JIT_OK;
	s->h = h;
	for (;;) {
		int64_t now = mono_ms();
		if (s->stop && !s->draining) {
			/* Stop taking connections; answer those in flight, then leave. */
			s->draining = true;
			drain_deadline = now + 10000;
			close(s->lfd);
			s->lfd = -1;
		}
		if (s->draining && (!any_busy(s) || now > drain_deadline))
			break;
		size_t need = s->n_clients + 2;
		if (need > pcap) {
			pcap = need * 2;
			pfd = xrealloc(pfd, pcap * sizeof(*pfd));
		}
		size_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = h->fd, .events = h->events(h->arg) };
		bool paused = now < s->accept_paused_until;
		pfd[n++] = (struct pollfd){ .fd = s->lfd,
					    .events = s->lfd >= 0 && !paused ? POLLIN : 0 };
		for (size_t i = 0; i < s->n_clients; i++) {
			struct client *c = s->clients[i];
			short ev = 0;
			if (wants_read(c))
				ev |= POLLIN; /* while draining: to answer shutting_down */
			if (c->out_len > 0)
				ev |= POLLOUT;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfd, n, TICK_MS) < 0 && errno != EINTR) {
			log_err("poll: %s", strerror(errno));
			rc = JIT_EIO;
			break;
		}
		if (pfd[0].revents && !h->ready(h->arg, pfd[0].revents)) {
			rc = JIT_ESHUTDOWN; /* the engine is gone: nothing can be answered */
			break;
		}
		/* clients: walk backwards so drop_client's swap is safe; pfd[i + 2]
		 * is clients[i] */
		int64_t idle_ms = s->cfg->client_timeout * 1000;
		now = mono_ms();
		log_refusals_held(s, now, LOG_EVERY_MS);
		for (size_t i = n - 2; i-- > 0;) {
			struct client *c = s->clients[i];
			short re = pfd[i + 2].revents;
			/* POLLHUP: the client closed both directions (a half-close
			 * is only a read of 0): nobody is left to read an answer.
			 * What it sent before is read all the same, and its first
			 * complete line is carried out, as the request in progress
			 * would be: whether a line sent just before the close was
			 * read before the close was seen must not decide whether
			 * it is (a complete or revoke a script sends and forgets).
			 * Nothing after that line is started. */
			bool alive = !(re & (POLLERR | POLLNVAL | POLLHUP));
			if ((re & POLLHUP) && !(re & (POLLERR | POLLNVAL)) && (re & POLLIN) &&
			    takes_input(c)) {
				c->hup = true;
				(void)read_client(s, c);
			}
			if (alive && (re & POLLOUT))
				alive = write_client(s, c);
			if (alive && (re & POLLIN))
				alive = read_client(s, c);
			if (alive && client_done(c))
				alive = false;
			if (alive && !c->busy && c->out_len == 0 && now - c->last_ms > idle_ms)
				alive = false;
			if (alive && out_pending(c) > 0 && now - c->out_ms > idle_ms) {
				log_warn("client %llu (uid %d) read none of its %zu pending bytes "
					 "for client_timeout; dropping it", (unsigned long long)c->id,
					 (int)c->peer.uid, out_pending(c));
				alive = false;
			}
			if (alive && c->out_len > 0 && !(re & POLLOUT))
				alive = write_client(s, c);
			if (!alive)
				drop_client(s, i);
		}
		/* Robustness: accepted after the clients are handled, so that a
		 * client that closed a connection and opened another at once is
		 * not refused (max_clients, max_clients_per_uid) for the one it
		 * closed. */
		if (s->lfd >= 0 && (pfd[1].revents & POLLIN))
			accept_clients(s);
	}
	log_refusals_held(s, mono_ms(), 0);
	free(pfd);
	s->h = NULL;
	return rc;
}
