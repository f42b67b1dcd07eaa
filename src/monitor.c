/*
 * monitor.c - the engine process's loop and its side of privilege
 * separation (see monitor.h). Trust boundary: everything that arrives from
 * the listener is untrusted; it is decoded by channel.c and checked again
 * here against the configuration before the engine acts on it. Security:
 * the listener is started by fork + exec of jitd's own binary, so it
 * begins from a fresh image that never held a secret; between fork and
 * exec the child calls only async-signal-safe functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "channel.h"
#include "listener.h"
#include "log.h"
#include "monitor.h"
#include "termsafe.h"
#include "util.h"

#define TICK_MS 250
/* Robustness: the longest take_messages() works through the listener's
 * messages before the loop runs its tick again (each may cost a synced
 * audit line): a listener that floods the channel cannot hold off the
 * expiries. */
#define TAKE_BUDGET_MS 50
#define CONN_BITS 40            /* engine conn id = generation << 40 | listener's id */
#define DRAIN_MS 12000          /* the listener drains for 10 s at most */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 10000         /* a listener that lived this long died by accident */
/* Robustness: the engine takes no message from the listener while this
 * much of its answers waits unread in the channel, so a listener that
 * sends requests and never reads cannot grow the engine (which must stay
 * up to run expiries). A listener that works reads all the time. */
#define CHAN_OUT_MAX (1024 * 1024)

extern char **environ;

struct monitor {
	const struct jit_config *cfg0; /* start-up config: the listener's identity */
	const struct jit_config *cfg;  /* current: re-checks, text for the listener */
	struct engine *e;
	int lfd;
	int exe_fd;                    /* this very binary, opened at start */
	char *sock_path;
	bool foreground;
	pid_t pid;                     /* the listener, 0 while there is none */
	struct imsg_chan *ch;          /* to it, NULL while there is none */
	uint64_t gen;                  /* listeners started */
	bool out_of_time;              /* take_messages() stopped at its time budget */
	uint64_t cfg_gen;              /* configs sent: 1 the start-up one, +1 per reload */
	uint64_t acked_gen;            /* the last one this listener answered (or got in INIT) */
	int64_t started_ms, respawn_ms, backoff_ms;
	/* Requests the listener passed for an entry that no longer matches
	 * (a listener that could not take a reload passes them all): audited
	 * every 10 s per peer uid (uid % 64: peers sharing a slot share it). */
	struct throttle mismatch[64];
	bool stopping, failed;
	/* The listener is gone and this process, no longer root, cannot start
	 * another: it stops for its supervisor once no end is due soon. */
	bool orphaned;
	int64_t orphan_cutoff;         /* now_s() + ORPHAN_IDLE_S when it was orphaned */
	int64_t orphan_deadline;       /* mono_ms() after which it stops whatever is due */
	int64_t stop_deadline;
};

/* An orphaned engine stops once nothing is in flight and nothing is due
 * by a cutoff fixed at the listener's death plus this many seconds (retries
 * rescheduled past it do not keep it running; expiries that come due after
 * it are made while others are in flight, so a steady stream of them does),
 * and after ORPHAN_MAX_MS whatever is due: a listener killed again and again
 * (any process of listener_user may) must not keep jitd from ending grants,
 * and an engine no client can reach must not run on for long. */
#define ORPHAN_IDLE_S 10
#define ORPHAN_MAX_MS 60000

/* Where the child keeps the binary's descriptor for execve. */
#define EXE_FD 5
#define EXE_PATH "/proc/self/fd/5"
_Static_assert(EXE_FD == LISTENER_FD_CHANNEL + 1, "EXE_FD follows the channel");

/*
 * In the child between fork and exec: async-signal-safe calls only. It
 * executes the binary the engine runs: the descriptor of /proc/self/exe
 * opened at start (the same inode even if the file was replaced since).
 * Through a descriptor rather than /proc/self/exe itself so that tools that
 * run jitd (valgrind --trace-children) follow the listener too; not
 * close-on-exec, as such a tool opens it again after its own exec: the
 * listener closes it first thing.
 */
static void JIT_NORETURN child_exec(int lfd, int chan, int exe, const sigset_t *none)
{
	static char *const argv[] = { "jitd-listener", "-L", NULL };
	int a = fcntl(lfd, F_DUPFD, 10), b = fcntl(chan, F_DUPFD, 10);
	int c = exe >= 0 ? fcntl(exe, F_DUPFD, 10) : -1;

	/* Robustness: the listener faces untrusted clients; it gets neither
	 * the operator's terminal (a foreground jitd's standard input, which
	 * TIOCSTI could type commands into) nor a controlling terminal: its
	 * own session, /dev/null for input and output (its log goes to
	 * stderr in the foreground, to syslog otherwise). */
	int nul = open("/dev/null", O_RDWR); /* closed by close_from, if above 2 */
	if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 || dup2(nul, STDOUT_FILENO) < 0 ||
	    setsid() < 0)
		_exit(126);
	if (pthread_sigmask(SIG_SETMASK, none, NULL) != 0 || a < 0 || b < 0 ||
	    dup2(a, LISTENER_FD_SOCKET) < 0 || dup2(b, LISTENER_FD_CHANNEL) < 0 ||
	    (c >= 0 && dup2(c, EXE_FD) < 0))
		_exit(126);
	/* Robustness: what the engine's libraries opened without
	 * close-on-exec (LDAP, HTTP connections) must not reach the
	 * unprivileged listener: no exec unless every other descriptor is
	 * closed. */
	if (close_from(c >= 0 ? EXE_FD + 1 : LISTENER_FD_CHANNEL + 1) != 0)
		_exit(126);
	execve(c >= 0 ? EXE_PATH : "/proc/self/exe", argv, environ);
	_exit(127);
}

static void send_config(struct monitor *m, uint32_t type)
{
	const struct jit_config *c0 = m->cfg0;
	/* the listener checks the notify and ticket_check URLs but never uses
	 * them: it gets them without their paths (a webhook's credential) */
	char *text = config_text_redacted(m->cfg->text);
	struct chan_init in = { .path = m->cfg->path, .text = text,
				.foreground = m->foreground, .log_level = m->cfg->log_level,
				.has_ids = c0->has_listener_ids, .uid = c0->listener_uid,
				.gid = c0->listener_gid, .gen = m->cfg_gen };
	imsg_chan_send(m->ch, chan_init_msg(type, &in));
	free(text);
	if (imsg_chan_flush(m->ch) != JIT_OK)
		log_err("cannot write to the listener");
}

static int spawn(struct monitor *m)
{
	sigset_t none;
	int sv[2];
	pid_t pid;

	sigemptyset(&none);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("socketpair: %s", strerror(errno));
		return JIT_EINTERNAL;
	}
	pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return JIT_EINTERNAL;
	}
	if (pid == 0)
		child_exec(m->lfd, sv[1], m->exe_fd, &none);
	close(sv[1]);
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
		log_err("fcntl: %s", strerror(errno));
	m->ch = imsg_chan_new(sv[0], chan_from_listener);
	m->pid = pid;
	m->gen++;
	m->started_ms = mono_ms();
	m->respawn_ms = 0;
	m->acked_gen = m->cfg_gen; /* INIT is answered by READY, or the listener exits */
	send_config(m, CHAN_INIT);
	log_debug("listener started: pid %d", (int)pid);
	return JIT_OK;
}

static void close_channel(struct monitor *m)
{
	if (!m->ch)
		return;
	close(imsg_chan_fd(m->ch));
	imsg_chan_free(m->ch);
	m->ch = NULL;
}

static void begin_stop(struct monitor *m);
static void unlink_socket(struct monitor *m);

/* No listener can serve clients any more and this process cannot start one:
 * the socket goes (clients fail at once), and the engine goes on ending
 * what is due for a while before it stops for its supervisor (see
 * ORPHAN_IDLE_S). Once only: a later event does not move the limits. */
static void orphan(struct monitor *m)
{
	if (m->orphaned || m->stopping)
		return;
	m->orphaned = true;
	m->orphan_cutoff = now_s() + ORPHAN_IDLE_S;
	m->orphan_deadline = mono_ms() + ORPHAN_MAX_MS;
	unlink_socket(m);
}

/*
 * A listener that broke the channel's rules: it is not trusted again. If it
 * cannot be killed (the engine kept no CAP_KILL after dropping root: an
 * older unit file's CapabilityBoundingSet), it would go on answering on the
 * socket with no engine behind it and never be reaped: jitd stops instead,
 * so that its supervisor ends every process of the service and starts a
 * fresh one.
 */
static void kill_listener(struct monitor *m, const char *why)
{
	log_err("listener pid %d %s; killing it", (int)m->pid, why);
	if (m->pid > 0 && kill(m->pid, SIGKILL) != 0 && errno != ESRCH) {
		log_err("cannot kill listener pid %d: %s; stopping once the grants due to end "
			"within %ds are ended (the supervisor stops its processes and restarts "
			"jitd)", (int)m->pid, strerror(errno), ORPHAN_IDLE_S);
		close_channel(m);
		orphan(m);
		return;
	}
	close_channel(m);
}

int monitor_new(const struct jit_config *cfg, int lfd, bool foreground, struct monitor **out)
{
	struct monitor *m = xcalloc(1, sizeof(*m));
	m->cfg0 = m->cfg = cfg;
	m->cfg_gen = 1;
	m->lfd = lfd;
	m->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (m->exe_fd < 0)
		log_warn("cannot open /proc/self/exe (%s); the listener is started through "
			 "the path", strerror(errno));
	m->sock_path = xstrdup(cfg->socket_path);
	m->foreground = foreground;
	if (spawn(m) != JIT_OK) {
		monitor_free(m);
		return JIT_EINTERNAL;
	}
	*out = m;
	return JIT_OK;
}

void monitor_set_engine(struct monitor *m, struct engine *e)
{
	m->e = e;
}

void monitor_set_config(struct monitor *m, const struct jit_config *cfg)
{
	m->cfg = cfg;
	m->cfg_gen++;
	if (m->ch)
		send_config(m, CHAN_CONFIG);
}

/* ---- what the listener sends ---- */

static void answer(struct monitor *m, uint64_t conn, char *line)
{
	imsg_chan_send(m->ch, chan_reply_msg(conn, line));
	free(line);
}

/* Queues the engine's answers for the listener that asked, if it still
 * runs (the caller flushes). */
static void queue_replies(struct monitor *m)
{
	struct engine_reply *r;
	while ((r = engine_pop_reply(m->e)) != NULL) {
		if (m->ch && r->line && r->conn_id >> CONN_BITS == m->gen) {
			answer(m, r->conn_id & ((1ULL << CONN_BITS) - 1), r->line);
			r->line = NULL;
		}
		engine_reply_free(r);
	}
}

/* Too many answers unread: take nothing more from the listener for now. */
static bool backlogged(const struct monitor *m)
{
	return imsg_chan_queued(m->ch) >= CHAN_OUT_MAX;
}

/*
 * A request the listener passed. The engine trusts none of it beyond the
 * peer's credentials: it matches the clients entry itself and runs the
 * policy check again with the current configuration.
 */
static void on_request(struct monitor *m, struct imsg *msg)
{
	struct jit_peer peer;
	struct jit_request *req = NULL;
	char *client = NULL, text[512];
	const char *rule = NULL;
	uint64_t conn;
	int64_t dur, d2 = 0;

	if (chan_request_get(msg, &conn, &peer, &client, &req, &dur) != JIT_OK ||
	    conn == 0 || conn >> CONN_BITS) {
		kill_listener(m, "sent a malformed request");
		return;
	}
	/* The groups cost a read of the passwd and group databases (per uid
	 * and a few seconds: this loop also runs the expiries, and the name
	 * service may be slow): only when a clients entry matches by gid. */
	if (policy_uses_groups(m->cfg))
		policy_peer_groups_cached(&peer, m->cfg, mono_ms());
	const struct jit_client_cfg *c = policy_client(m->cfg, &peer);
	int rc = JIT_OK;
	if (!c || strcmp(c->name, client) != 0) {
		int64_t held = 0;
		rc = JIT_EUNAUTH;
		rule = "clients";
		snprintf(text, sizeof(text), "the engine matched %s clients entry for this peer",
			 c ? "another" : "no");
		if (!throttle_pass(&m->mismatch[peer.uid % 64], mono_ms(), 10000, &held)) {
			/* answered, not audited: the first of each 10 s is */
			answer(m, conn, proto_error_line(rc, text));
			proto_request_free(req);
			free(client);
			return;
		}
		if (held > 0)
			log_warn("listener passed a request as client \"%s\" for uid %lu: %s (and "
				 "%lld more since the last such line, refused without an audit line)",
				 client, (unsigned long)peer.uid, text, (long long)held);
		else
			log_warn("listener passed a request as client \"%s\" for uid %lu: %s", client,
				 (unsigned long)peer.uid, text);
	} else {
		rc = policy_check(m->cfg, c, req, &d2, text, sizeof(text), &rule);
	}
	if (rc != JIT_OK) {
		engine_audit_refusal_rule(m->e, &peer, c, req, rc, text, rule);
		answer(m, conn, proto_error_line(rc, text));
		proto_request_free(req);
	} else {
		engine_submit(m->e, m->gen << CONN_BITS | conn, &peer, c, req, d2);
	}
	free(client);
}

static void on_refused(struct monitor *m, struct imsg *msg)
{
	struct chan_refusal r;

	if (chan_refused_get(msg, &r) != JIT_OK || r.conn >> CONN_BITS) {
		kill_listener(m, "sent a malformed refusal");
		return;
	}
	/* evidence first: the client hears the refusal once it is recorded */
	engine_audit_refusal_named(m->e, &r.peer, r.client, r.req, r.err, r.message, r.rule);
	if (r.conn)
		answer(m, r.conn, proto_error_line(r.err, r.message));
	chan_refusal_clear(&r);
}

/*
 * The listener's answer to a CONFIG. Its failure is logged here, in the
 * engine's log, because the engine has already said "configuration
 * reloaded"; it is not a security problem (on_request checks every request
 * against the engine's config), but the listener's own limits and
 * log_level stay as they were.
 */
static void on_configured(struct monitor *m, struct imsg *msg)
{
	uint64_t gen;
	bool ok;
	char *why = NULL, text[CHAN_MAX_MESSAGE];

	if (chan_configured_get(msg, &gen, &ok, &why) != JIT_OK || gen <= m->acked_gen ||
	    gen > m->cfg_gen) {
		free(why);
		kill_listener(m, "sent a malformed CONFIGURED");
		return;
	}
	m->acked_gen = gen;
	if (ok) {
		log_info("listener pid %d applied configuration %llu", (int)m->pid,
			 (unsigned long long)gen);
		return;
	}
	/* a listener is not trusted with the engine's terminal or syslog */
	(void)termsafe_copy(text, sizeof(text), why, 0);
	log_err("listener pid %d could not apply configuration %llu: %s; it keeps serving with "
		"its previous one (clients, limits, timeouts, log_level), while the engine checks "
		"every request against the new one", (int)m->pid, (unsigned long long)gen, text);
	free(why);
}

/*
 * Handles the complete messages buffered from the listener while it is not
 * backlogged(); the answers of synchronous requests are queued after each,
 * so that one read's worth of requests cannot pile up answers either.
 */
static void take_messages(struct monitor *m)
{
	struct imsg *msg;
	uint32_t uid, gid;
	int rc = JIT_ENOTFOUND;
	int64_t until = mono_ms() + TAKE_BUDGET_MS;

	m->out_of_time = false;
	while (m->ch && !backlogged(m) && !(m->out_of_time = mono_ms() >= until) &&
	       (rc = imsg_chan_next(m->ch, &msg)) == JIT_OK) {
		if (msg->type == CHAN_REQUEST) {
			on_request(m, msg);
		} else if (msg->type == CHAN_REFUSED) {
			on_refused(m, msg);
		} else if (msg->type == CHAN_CONFIGURED) {
			on_configured(m, msg);
		} else if (chan_ready_get(msg, &uid, &gid) == JIT_OK) {
			log_info("listener pid %d serving %s as uid %lu gid %lu", (int)m->pid,
				 m->sock_path, (unsigned long)uid, (unsigned long)gid);
		} else {
			kill_listener(m, "sent a malformed READY");
		}
		imsg_free(msg);
		queue_replies(m);
	}
	if (m->ch && rc != JIT_OK && rc != JIT_ENOTFOUND)
		kill_listener(m, "broke the channel's framing (type or size)");
}

/*
 * Writes the answers queued to the listener, and while that leaves the
 * channel below the bound, handles the messages still buffered from it
 * (left there while it was backlogged()): no event will bring them back,
 * as their bytes have been read already. Ends when nothing complete is
 * buffered or the channel is backlogged again.
 */
static void flush_and_take(struct monitor *m)
{
	while (m->ch) {
		if (imsg_chan_flush(m->ch) != JIT_OK) {
			close_channel(m);
			return;
		}
		size_t before = imsg_chan_buffered(m->ch);
		if (before == 0 || backlogged(m))
			return;
		take_messages(m);
		if (m->out_of_time)
			return; /* the rest after the tick (monitor_run) */
		if (m->ch && imsg_chan_buffered(m->ch) == before)
			return; /* only part of a message is there */
	}
}

/* The channel is readable or writable. Messages left buffered when it was
 * backlogged() are handled first; the socket is read only below the bound
 * (and only then polled for input: see monitor_run). */
static void on_channel(struct monitor *m, short revents)
{
	if ((revents & POLLOUT) && imsg_chan_flush(m->ch) != JIT_OK) {
		close_channel(m);
		return;
	}
	take_messages(m);
	if (m->ch && !backlogged(m) && !m->out_of_time &&
	    (revents & (POLLIN | POLLHUP | POLLERR))) {
		if (imsg_chan_read(m->ch) != JIT_OK) {
			close_channel(m); /* it exited or is exiting: SIGCHLD follows */
			return;
		}
		take_messages(m);
	}
	flush_and_take(m);
}

/* ---- the loop ---- */

static void unlink_socket(struct monitor *m)
{
	if (m->lfd >= 0) {
		close(m->lfd);
		m->lfd = -1;
		if (unlink(m->sock_path) != 0 && errno != ENOENT)
			log_warn("cannot remove %s: %s", m->sock_path, strerror(errno));
	}
}

static void begin_stop(struct monitor *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	m->stop_deadline = mono_ms() + DRAIN_MS;
	unlink_socket(m);
	/* queued jobs are not started: answered shutting_down while this loop
	 * still forwards answers to the draining listener */
	engine_begin_stop(m->e);
	if (m->ch) {
		imsg_chan_send(m->ch, imsg_new(CHAN_SHUTDOWN));
		if (imsg_chan_flush(m->ch) != JIT_OK)
			close_channel(m);
	}
}

/* Reaps the listener; decides whether and when to start another. */
static void reap(struct monitor *m)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG | WUNTRACED)) > 0) {
		if (pid != m->pid)
			continue;
		if (WIFSTOPPED(st)) {
			/* Robustness: any process of listener_user may stop it
			 * (SIGSTOP); stopped, it answers no one and nothing says
			 * so. It is ended, and reaped below as killed. */
			log_err("listener stopped by signal %d; ending it", WSTOPSIG(st));
			if (kill(pid, SIGKILL) != 0) {
				log_err("cannot end the stopped listener: %s; stopping once the "
					"grants due to end within %ds are ended (the supervisor "
					"restarts jitd)", strerror(errno), ORPHAN_IDLE_S);
				close_channel(m);
				orphan(m);
			}
			continue;
		}
		int64_t now = mono_ms(), lived = now - m->started_ms;
		close_channel(m);
		m->pid = 0;
		if (m->stopping) {
			log_debug("listener exited");
			continue;
		}
		if (m->orphaned) {
			log_warn("the listener jitd could not end has exited");
			continue;
		}
		if (WIFSIGNALED(st))
			log_err("listener killed by signal %d after %llds", WTERMSIG(st),
				(long long)(lived / 1000));
		else
			log_err("listener exited with status %d after %llds", WEXITSTATUS(st),
				(long long)(lived / 1000));
		if (m->cfg0->has_listener_ids && geteuid() != 0) {
			/* Robustness: after dropping root the engine cannot start a
			 * listener under another uid; rather than serve no one, it
			 * stops and lets its supervisor start jitd again (grants are
			 * in the store). Not at once: the ends due now and soon are
			 * made first, or a listener killed at every start would
			 * keep every grant from ending. */
			if (!m->orphaned)
				log_err("cannot start a new listener as uid %lu without root; "
					"stopping once the grants due to end within %ds are ended "
					"(the supervisor restarts jitd)",
					(unsigned long)m->cfg0->listener_uid, ORPHAN_IDLE_S);
			orphan(m);
			continue;
		}
		m->backoff_ms = lived >= STABLE_MS ? 0 :
				m->backoff_ms ? m->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (m->backoff_ms > BACKOFF_MAX_MS)
			m->backoff_ms = BACKOFF_MAX_MS;
		m->respawn_ms = now + m->backoff_ms;
		log_warn("starting a new listener in %lld ms", (long long)m->backoff_ms);
	}
}

static void on_signals(struct monitor *m, int sigfd, void (*reload)(void *), void *arg)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reopening the audit log and reloading the configuration");
			reload(arg);
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("signal %u: shutting down", si.ssi_signo);
			begin_stop(m);
		} else if (si.ssi_signo == SIGCHLD) {
			reap(m);
		}
	}
}

/* Answers from the engine go to the listener that asked, if it still runs. */
static void forward_replies(struct monitor *m)
{
	queue_replies(m);
	flush_and_take(m);
}

int monitor_run(struct monitor *m, int sigfd, void (*reload)(void *arg), void *arg)
{
	int64_t next_tick = 0;

	for (;;) {
		int64_t now = mono_ms();
		/* the drain lasts while the listener answers its clients and
		 * the ends queued before the stop are made, up to its deadline */
		if (m->stopping && ((m->pid == 0 && engine_queues_empty(m->e)) ||
				    now > m->stop_deadline))
			break;
		if (!m->stopping && !m->orphaned && m->pid == 0 && m->respawn_ms &&
		    now >= m->respawn_ms && spawn(m) != JIT_OK)
			m->respawn_ms = now + BACKOFF_MAX_MS;
		if (!m->stopping && now >= next_tick) {
			engine_tick(m->e, now_s());
			next_tick = now + TICK_MS;
			if (m->orphaned && (engine_ends_idle(m->e, m->orphan_cutoff, 0) ||
					    now > m->orphan_deadline)) {
				log_err("the grants that were due are ended (or %ds have passed); "
					"stopping for the supervisor", ORPHAN_MAX_MS / 1000);
				m->failed = true;
				begin_stop(m);
			}
		}
		struct pollfd p[3] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = engine_reply_fd(m->e), .events = POLLIN },
			{ .fd = m->ch ? imsg_chan_fd(m->ch) : -1,
			  .events = !m->ch ? 0 : (short)((backlogged(m) ? 0 : POLLIN) |
							 (imsg_chan_pending(m->ch) ? POLLOUT : 0)) },
		};
		/* messages left buffered at the time budget: handled after the
		 * tick, without waiting for an event (their bytes are read) */
		bool left = m->ch && m->out_of_time && !backlogged(m) &&
			    imsg_chan_buffered(m->ch) > 0;
		if (!left)
			m->out_of_time = false;
		if (poll(p, 3, left ? 0 : TICK_MS) < 0 && errno != EINTR) {
			log_err("poll: %s", strerror(errno));
			return JIT_EIO;
		}
		if (left && m->ch && !(p[2].revents))
			flush_and_take(m);
		if (p[0].revents & POLLIN)
			on_signals(m, sigfd, reload, arg);
		if (p[1].revents & POLLIN)
			forward_replies(m);
		if (m->ch && p[2].fd == imsg_chan_fd(m->ch) && p[2].revents)
			on_channel(m, p[2].revents);
	}
	return m->failed ? JIT_EINTERNAL : JIT_OK;
}

void monitor_free(struct monitor *m)
{
	if (!m)
		return;
	close_channel(m); /* the listener sees the end of the channel and exits */
	if (m->pid > 0) {
		/* An honest listener exits at once; one that does not (it broke
		 * the rules and could not be killed) is not waited for long. */
		int st;
		pid_t r = 0;
		if (kill(m->pid, SIGTERM) != 0 && errno != ESRCH)
			log_err("kill: %s", strerror(errno));
		for (int i = 0; i < 200 && (r = waitpid(m->pid, &st, WNOHANG)) == 0; i++)
			(void)poll(NULL, 0, 10);
		if (r == 0 && kill(m->pid, SIGKILL) == 0)
			r = waitpid(m->pid, &st, 0);
		if (r == 0)
			log_err("listener pid %d did not exit and cannot be killed; leaving it to "
				"the supervisor", (int)m->pid);
		else if (r < 0 && errno != ECHILD)
			log_err("waitpid: %s", strerror(errno));
	}
	unlink_socket(m);
	if (m->exe_fd >= 0)
		close(m->exe_fd);
	free(m->sock_path);
	free(m);
}
