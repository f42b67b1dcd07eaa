/*
 * server.h - the listener's connections: the Unix socket, client
 * connections and their poll() loop. It reads bounded request lines, asks
 * proto.c to parse them and policy.c to authorise them, and hands
 * validated requests on through hooks; it never talks to the directory and
 * holds no secret. Peer identity comes from the kernel (SO_PEERCRED), never
 * from the request. It runs in the unprivileged listener process
 * (listener.h), whose hooks send requests to the engine process.
 *
 * Usage: the engine process calls server_listen() (binds the socket with
 * socket_mode and socket_group) and passes the descriptor to the listener,
 * which calls server_new() and server_run() with its hooks. Answers come
 * back through server_deliver(); server_drain() makes server_run() stop
 * accepting and return once the answers in flight are delivered (10 s at
 * most).
 */
#ifndef JITD_SERVER_H
#define JITD_SERVER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "policy.h"
#include "proto.h"

struct server;

struct server_hooks {
	void *arg;
	/* A parsed request the policy check passed (req ownership passes).
	 * The answer must come back through server_deliver(conn_id, ...). */
	void (*submit)(void *arg, uint64_t conn_id, const struct jit_peer *peer,
		       const struct jit_client_cfg *c, struct jit_request *req, int64_t duration);
	/* A request of connection conn_id refused here (req may be NULL), for
	 * the audit log. True if the answer will come back through
	 * server_deliver() once the refusal is recorded (evidence first);
	 * false: the server answers at once. */
	bool (*refused)(void *arg, uint64_t conn_id, const struct jit_peer *peer,
			const struct jit_client_cfg *c, const struct jit_request *req, int err,
			const char *message, const char *rule);
	/* One more descriptor polled with the clients: the events wanted, and
	 * the handler of what arrived (false: stop at once). */
	int fd;
	short (*events)(void *arg);
	bool (*ready)(void *arg, short revents);
};

/* Binds and listens on cfg->socket_path (a stale socket file is replaced,
 * a live one or a non-socket refused). JIT_OK and *lfd (non-blocking). */
int server_listen(const struct jit_config *cfg, int *lfd) JIT_WUR;

/* A server on listening descriptor lfd (which it owns from now on). */
struct server *server_new(const struct jit_config *cfg, int lfd);
/* Replaces the config used for authorisation and limits (after a reload). */
void server_set_config(struct server *s, const struct jit_config *cfg);
/* Runs the loop until server_drain() has taken effect (JIT_OK), or a hook
 * said stop (JIT_ESHUTDOWN), or poll failed (JIT_EIO). */
int server_run(struct server *s, const struct server_hooks *h) JIT_WUR;
/* The answer (line taken) to the request in flight on connection conn_id;
 * dropped if that client has gone. */
void server_deliver(struct server *s, uint64_t conn_id, char *line);
void server_drain(struct server *s);
void server_free(struct server *s); /* closes connections and the socket; NULL-safe */

#endif
