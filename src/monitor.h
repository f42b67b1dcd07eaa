/*
 * monitor.h - the engine process's side of privilege separation: it
 * starts the listener process (listener.h), relays between it and the
 * engine, and runs the engine process's main loop (signals, the expiry
 * tick, answers).
 *
 * Usage (jitd.c): monitor_new() right after the socket is bound and
 * before any secret is read: it executes the listener with that socket.
 * Then (after dropping root and starting the engine) monitor_set_engine()
 * and monitor_run(), which returns on SIGTERM/SIGINT once the listener has
 * delivered the answers in flight. monitor_set_config() passes a reloaded
 * configuration on; the listener answers whether it applied it, and a
 * listener that could not is named in the engine's log.
 *
 * What the engine accepts from the listener: only the message types of
 * chan_from_listener, each decoded completely (channel.h); a REQUEST is
 * checked again here (the clients entry is matched anew from the peer's
 * uid and gid, and the whole policy check runs again) before the engine
 * acts on it. A listener that sends anything malformed is killed. A
 * listener that dies is started again (after a pause that grows if it
 * keeps dying); meanwhile the engine goes on expiring grants, and clients
 * wait in the socket's backlog.
 */
#ifndef JITD_MONITOR_H
#define JITD_MONITOR_H

#include <stdbool.h>
#include "config.h"
#include "engine.h"

struct monitor;

/* cfg: the start-up config (its listener identity is used for every
 * listener started); lfd: the listening socket (the monitor owns it). */
int monitor_new(const struct jit_config *cfg, int lfd, bool foreground,
		struct monitor **out) JIT_WUR;
void monitor_set_engine(struct monitor *m, struct engine *e);
/* The current config (re-checks) and, to the listener, its text as the next
 * generation (1 is the start-up config). */
void monitor_set_config(struct monitor *m, const struct jit_config *cfg);
/* The loop: reload(arg) on SIGHUP. Returns JIT_OK after SIGTERM/SIGINT. */
int monitor_run(struct monitor *m, int sigfd, void (*reload)(void *arg), void *arg) JIT_WUR;
/* Stops the listener if it still runs; closes and unlinks the socket. */
void monitor_free(struct monitor *m);

#endif
