/*
 * server.h - the listener: the Unix socket, client connections and the
 * main poll() loop. It reads bounded request lines, asks proto.c to parse
 * them and policy.c to authorise them, and hands validated requests to the
 * engine; it never talks to the directory. Peer identity comes from the
 * kernel (SO_PEERCRED), never from the request.
 *
 * Usage: server_new() binds the socket (mode socket_mode, group
 * socket_group); server_run() loops until SIGTERM/SIGINT arrive on sigfd
 * (a signalfd), calling reload() on SIGHUP.
 */
#ifndef JITD_SERVER_H
#define JITD_SERVER_H

#include "config.h"
#include "engine.h"

struct server;

int server_new(const struct jit_config *cfg, struct engine *e, struct server **out) JIT_WUR;
/* The engine requests go to (server_new may be given NULL: set it before
 * server_run). */
void server_set_engine(struct server *s, struct engine *e);
/* Replaces the config used for authorisation and limits (after a reload). */
void server_set_config(struct server *s, const struct jit_config *cfg);
/* Runs the loop. reload(arg) is called on SIGHUP. Returns on SIGTERM/SIGINT
 * after answering in-flight requests. */
int server_run(struct server *s, int sigfd, void (*reload)(void *arg), void *arg) JIT_WUR;
void server_free(struct server *s); /* closes and unlinks the socket; NULL-safe */

#endif
