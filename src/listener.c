/*
 * listener.c - the unprivileged listener process (see listener.h).
 * Trust boundary: faces every local client (through server.c) while
 * holding nothing worth stealing; what it sends the engine is checked
 * again there. Security: it drops to listener_user before reading a byte
 * from a client, cannot regain root, cannot fork (RLIMIT_NPROC 0), is not
 * dumpable, and dies with the engine (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "channel.h"
#include "fault.h"
#include "listener.h"
#include "log.h"
#include "privsep.h"
#include "server.h"
#include "termsafe.h"
#include "util.h"

#define INIT_TIMEOUT_MS 30000

struct lstate {
	struct imsg_chan *ch;
	struct server *srv;
	struct jit_config *cfg;
	char *path;
	bool rogue; /* fail.listener_ready fired: it acts as if taken over */
};

/* Are fd 3 and 4 what the engine hands over? Not when run by hand. */
static bool fds_ok(void)
{
	struct stat st;
	int acc = 0;
	socklen_t len = sizeof(acc);

	for (int fd = LISTENER_FD_SOCKET; fd <= LISTENER_FD_CHANNEL; fd++)
		if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
			return false;
	return getsockopt(LISTENER_FD_SOCKET, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc;
}

/* Waits for the INIT message (the engine sends it right after the exec). */
static int read_init(struct imsg_chan *ch, struct chan_init *init)
{
	int64_t deadline = mono_ms() + INIT_TIMEOUT_MS;
	struct imsg *m = NULL;

	for (;;) {
		int rc = imsg_chan_next(ch, &m);
		if (rc == JIT_OK)
			break;
		if (rc != JIT_ENOTFOUND)
			return rc;
		struct pollfd p = { .fd = imsg_chan_fd(ch), .events = POLLIN };
		int left = (int)(deadline - mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0 || imsg_chan_read(ch) != JIT_OK)
			return JIT_EIO;
	}
	int rc = m->type == CHAN_INIT ? chan_init_get(m, init) : JIT_EBADREQ;
	imsg_free(m);
	return rc;
}

/* errors ("FILE:LINE: KEY: message" lines) as one line for the engine's
 * log, control characters as '?', cut between characters to fit len (the
 * listener's own log has the whole text). */
static void one_line(const char *errors, char *buf, size_t len)
{
	char *joined = xcalloc(2 * strlen(errors) + 1, 1);
	size_t j = 0;

	for (const char *p = errors; *p; p++) {
		if (*p != '\n')
			joined[j++] = *p;
		else if (p[1]) {
			joined[j++] = ';';
			joined[j++] = ' ';
		}
	}
	(void)termsafe_copy(buf, len, joined, 0); /* a cut is fine: see above */
	free(joined);
	if (!buf[0])
		(void)snprintf(buf, len, "the configuration does not load");
}

/* The config from the engine's text, or NULL: logged, and why in one line. */
static struct jit_config *load(const char *path, const char *text, bool inject, char *why,
			       size_t whylen)
{
	struct jit_config *cfg = NULL;
	char *errors = NULL;
	int rc = inject ? JIT_ECONFIG : config_load_text(path, text, CONFIG_NO_IDS, &cfg, &errors);

	if (rc != JIT_OK) {
		const char *e = errors ? errors :
				inject ? "failure injected (fail.listener_config)\n" :
					 "";
		log_err("listener: the configuration from the engine does not load:\n%s", e);
		one_line(e, why, whylen);
		free(errors);
		return NULL;
	}
	return cfg;
}

/* Becomes uid/gid for good, and takes away what it does not need. */
static int confine(const struct chan_init *init, pid_t engine)
{
	struct rlimit none = { 0, 0 };

	if (init->has_ids && privsep_drop(init->uid, init->gid, "listener") != JIT_OK)
		return JIT_EINTERNAL;
	if (privsep_harden() != JIT_OK)
		return JIT_EINTERNAL;
	/* no fork, no exec of a helper: a compromised listener stays alone.
	 * (Not in AddressSanitizer builds: LeakSanitizer clones a thread at
	 * exit to inspect the process, and would fail.) */
#ifndef __SANITIZE_ADDRESS__
	if (setrlimit(RLIMIT_NPROC, &none) != 0) {
		log_err("listener: setrlimit: %s", strerror(errno));
		return JIT_EINTERNAL;
	}
#else
	(void)none;
#endif
	/* set after the uid change, which clears it; then check that the
	 * engine did not die before it took effect */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != engine) {
		log_err("listener: the engine is gone");
		return JIT_EINTERNAL;
	}
	return JIT_OK;
}

/* ---- the hooks server.c calls ---- */

static void on_submit(void *arg, uint64_t conn_id, const struct jit_peer *peer,
		      const struct jit_client_cfg *c, struct jit_request *req, int64_t duration)
{
	struct lstate *ls = arg;
	imsg_chan_send(ls->ch, chan_request_msg(conn_id, peer, c->name, req, duration));
	proto_request_free(req);
	if (imsg_chan_flush(ls->ch) != JIT_OK)
		log_err("listener: cannot write to the engine");
}

static bool on_refused(void *arg, uint64_t conn_id, const struct jit_peer *peer,
		       const struct jit_client_cfg *c, const struct jit_request *req, int err,
		       const char *message, const char *rule)
{
	struct lstate *ls = arg;
	imsg_chan_send(ls->ch, chan_refused_msg(conn_id, peer, c ? c->name : NULL, req, err,
						message, rule));
	if (imsg_chan_flush(ls->ch) != JIT_OK)
		log_err("listener: cannot write to the engine");
	return true; /* the engine answers once the refusal is in the audit log */
}

static short chan_events(void *arg)
{
	struct lstate *ls = arg;
	return (short)(POLLIN | (imsg_chan_pending(ls->ch) ? POLLOUT : 0));
}

/* A reloaded config (CONFIG): applied with its log_level, or the one in force
 * kept; either way the engine hears which (CONFIGURED). False if the message
 * is malformed. */
static bool reconfigure(struct lstate *ls, struct imsg *m)
{
	struct chan_init in;
	struct jit_config *n;
	enum log_level lvl;
	char why[CHAN_MAX_MESSAGE] = "";

	if (chan_init_get(m, &in) != JIT_OK)
		return false;
	n = load(in.path, in.text, FAULT_FAIL("fail.listener_config"), why, sizeof(why));
	if (n) {
		server_set_config(ls->srv, n);
		config_free(ls->cfg);
		ls->cfg = n;
		/* the engine checked the config, log_level included */
		if (log_level_parse(n->log_level, &lvl) == JIT_OK)
			log_set_level(lvl);
		log_debug("listener: configuration %llu applied", (unsigned long long)in.gen);
	}
	imsg_chan_send(ls->ch, chan_configured_msg(in.gen, n != NULL, why));
	if (imsg_chan_flush(ls->ch) != JIT_OK)
		log_err("listener: cannot write to the engine");
	chan_init_clear(&in);
	return true;
}

/* One message from the engine. False if the channel must be dropped. */
static bool on_message(struct lstate *ls, struct imsg *m)
{
	uint64_t conn;
	char *line;

	switch (m->type) {
	case CHAN_REPLY:
		if (chan_reply_get(m, &conn, &line) != JIT_OK)
			return false;
		server_deliver(ls->srv, conn, line);
		return true;
	case CHAN_CONFIG:
		return reconfigure(ls, m);
	case CHAN_SHUTDOWN:
		server_drain(ls->srv);
		return true;
	default:
		return false;
	}
}

/* Handles every whole message read from the engine so far; false on a
 * malformed one. */
static bool chan_drain(struct lstate *ls)
{
	struct imsg *m;
	int rc;

	while ((rc = imsg_chan_next(ls->ch, &m)) == JIT_OK) {
		bool ok = on_message(ls, m);
		imsg_free(m);
		if (!ok) {
			log_err("listener: malformed message from the engine");
			return false;
		}
	}
	return rc == JIT_ENOTFOUND;
}

static bool chan_ready(void *arg, short revents)
{
	struct lstate *ls = arg;
	int rc;

	if ((revents & POLLOUT) && imsg_chan_flush(ls->ch) != JIT_OK)
		return false;
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return true;
	rc = imsg_chan_read(ls->ch);
	if (rc != JIT_OK) {
		if (rc == JIT_ENOTFOUND && ls->rogue) {
			/* fail.listener_ready: a listener taken over does not exit
			 * when told to; only a signal ends it */
			log_err("listener: fault: staying after the channel's end");
			for (;;)
				pause();
		}
		if (rc == JIT_ENOTFOUND)
			log_info("listener: the engine closed the channel; exiting");
		return false;
	}
	return chan_drain(ls);
}

/* Test builds: the failure points armed in JITD_FAULT (which the engine
 * checked and reported at start) apply here too. */
static void arm_faults(void)
{
	char msg[256];
	bool armed = false;

	if (fault_init(&armed, msg, sizeof(msg)) != JIT_OK)
		log_err("listener: %s", msg);
}

int listener_main(void)
{
	struct lstate ls = { 0 };
	struct chan_init init = { 0 };
	enum log_level lvl = LOG_LVL_INFO;
	char why[CHAN_MAX_MESSAGE];
	pid_t engine = getppid();
	int status = 3;

	if (!fds_ok()) {
		fprintf(stderr, "jitd -L is the listener process that jitd starts itself\n");
		return 2;
	}
	/* Only the socket and the channel: anything else the engine left
	 * open (the descriptor of the binary it executed) goes. */
	if (close_from(LISTENER_FD_CHANNEL + 1) != 0)
		return 3;
	signal(SIGHUP, SIG_IGN);  /* SIGHUP and ^C are the engine's business */
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (fcntl(LISTENER_FD_CHANNEL, F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(LISTENER_FD_CHANNEL, F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(LISTENER_FD_SOCKET, F_SETFD, FD_CLOEXEC) != 0)
		return 3;
	log_init("jitd-listener", true, LOG_LVL_INFO);
	ls.ch = imsg_chan_new(LISTENER_FD_CHANNEL, chan_from_engine);
	if (read_init(ls.ch, &init) != JIT_OK) {
		log_err("listener: no valid INIT message from the engine");
		goto out;
	}
	if (log_level_parse(init.log_level, &lvl) != JIT_OK)
		lvl = LOG_LVL_INFO;
	log_init("jitd-listener", init.foreground, lvl);
	if (confine(&init, engine) != JIT_OK)
		goto out;
	arm_faults();
	ls.cfg = load(init.path, init.text, false, why, sizeof(why));
	if (!ls.cfg)
		goto out;
	struct imsg *ready = chan_ready_msg((uint32_t)getuid(), (uint32_t)getgid());
	if (FAULT_FAIL("fail.listener_ready")) {
		imsg_put_u8(ready, 1); /* as a listener taken over could: a READY too long */
		ls.rogue = true;
	}
	imsg_chan_send(ls.ch, ready);
	ls.srv = server_new(ls.cfg, LISTENER_FD_SOCKET);
	struct server_hooks h = { .arg = &ls, .submit = on_submit, .refused = on_refused,
				  .fd = LISTENER_FD_CHANNEL, .events = chan_events,
				  .ready = chan_ready };
	/* A reload sent right after INIT may have come in the same read: it
	 * would wait for the engine's next message otherwise. */
	if (!chan_drain(&ls))
		goto out;
	status = server_run(ls.srv, &h) == JIT_OK ? 0 : 3;
	/* the answers delivered last may still sit in the channel */
	if (imsg_chan_flush(ls.ch) != JIT_OK)
		log_debug("listener: the engine is gone");
out:
	server_free(ls.srv);
	config_free(ls.cfg);
	imsg_chan_free(ls.ch);
	chan_init_clear(&init);
	return status;
}
