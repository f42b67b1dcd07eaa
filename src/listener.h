/*
 * listener.h - the listener process: jitd's unprivileged half. It accepts
 * client connections, reads and parses requests and applies the
 * per-client and per-group policy that needs no secret, then sends each
 * request to the engine process over a socketpair (channel.h). It holds no
 * directory connection, credential, keytab, token, approval key, store or
 * audit log: those stay in the engine process.
 *
 * The engine starts it (monitor.h) by executing jitd's own binary again
 * (`jitd -L`, a fresh image that never held a secret) with the listening
 * socket on descriptor 3 and its end of the socketpair on descriptor 4.
 * listener_main() reads the INIT message (the configuration text, its
 * `url` values without their paths: config_text_redacted(); the uid
 * and gid to become), drops to that uid (listener_user), hardens itself
 * and serves until the engine says SHUTDOWN or goes away. A CONFIG (a
 * reload) is applied, log_level included, or the config in force kept;
 * either way the listener answers CONFIGURED, so the engine can log it.
 */
#ifndef JITD_LISTENER_H
#define JITD_LISTENER_H

#define LISTENER_FD_SOCKET 3
#define LISTENER_FD_CHANNEL 4

/* The process's main; returns its exit status. */
int listener_main(void);

#endif
