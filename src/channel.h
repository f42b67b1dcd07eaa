/*
 * channel.h - what jitd's two processes say to each other over their
 * socketpair (imsg.h frames): the message types, their size limits, and
 * the encoding of each message.
 *
 *   engine -> listener   INIT (config text, identity to drop to), CONFIG
 *                        (reloaded text and its generation), REPLY (answer
 *                        line for a connection), SHUTDOWN (stop accepting,
 *                        drain)
 *   listener -> engine   READY (dropped to uid), REQUEST (a parsed request
 *                        the listener's policy check passed, with the
 *                        peer's kernel credentials), REFUSED (a refusal to
 *                        audit), CONFIGURED (a CONFIG applied, or why not)
 *
 * Each side reads only the types in its allow-list (chan_from_engine,
 * chan_from_listener). The decoders read field by field, refuse anything
 * the listener could not have produced from a valid request (an unknown
 * op, a missing required field, a control character, an out-of-range
 * number) and require the payload to be fully consumed.
 */
#ifndef JITD_CHANNEL_H
#define JITD_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>
#include "imsg.h"
#include "policy.h"
#include "proto.h"

enum chan_type {
	CHAN_INIT = 1,
	CHAN_CONFIG = 2,
	CHAN_REPLY = 3,
	CHAN_SHUTDOWN = 4,
	CHAN_READY = 16,
	CHAN_REQUEST = 17,
	CHAN_REFUSED = 18,
	CHAN_CONFIGURED = 19,
};

#define CHAN_MAX_CONFIG (1024 * 1024 + 4096) /* config text and a path */
#define CHAN_MAX_REPLY (64 * 1024 * 1024)    /* a list answer of 10,000 grants fits */
#define CHAN_MAX_REQUEST (64 * 1024)         /* every field at its limit fits */
#define CHAN_MAX_MESSAGE 1024                /* refusal message */

/* The allow-lists: what the listener accepts, what the engine accepts. */
extern const struct imsg_allow chan_from_engine[];
extern const struct imsg_allow chan_from_listener[];

/* INIT and CONFIG: the config text the listener parses (no file is read
 * there), where it came from (for messages), its log_level, its generation
 * (the engine counts the configs it sends; CONFIGURED names one), and for
 * INIT whether to log to stderr and whom to become. */
struct chan_init {
	char *path, *text;
	bool foreground;
	char *log_level;
	bool has_ids;
	uint32_t uid, gid;
	uint64_t gen;
};
struct imsg *chan_init_msg(uint32_t type, const struct chan_init *in);
int chan_init_get(struct imsg *m, struct chan_init *out) JIT_WUR; /* JIT_OK / JIT_EBADREQ */
void chan_init_clear(struct chan_init *in);

struct imsg *chan_reply_msg(uint64_t conn, const char *line);
int chan_reply_get(struct imsg *m, uint64_t *conn, char **line) JIT_WUR;

/* CONFIGURED: the listener's answer to CONFIG generation gen: applied (ok,
 * message NULL) or not, and why (message: one line, at most
 * CHAN_MAX_MESSAGE - 1 bytes; the listener keeps the config it had). The
 * decoder requires message absent when ok, and present, non-empty, valid
 * UTF-8 without C0 controls otherwise. On success *message is NULL or new
 * (caller frees). */
struct imsg *chan_configured_msg(uint64_t gen, bool ok, const char *message);
int chan_configured_get(struct imsg *m, uint64_t *gen, bool *ok, char **message) JIT_WUR;

struct imsg *chan_ready_msg(uint32_t uid, uint32_t gid);
int chan_ready_get(struct imsg *m, uint32_t *uid, uint32_t *gid) JIT_WUR;

/* REQUEST: conn, peer (pid, uid, gid), the matching clients entry's name,
 * the effective duration (grants) and the request. */
struct imsg *chan_request_msg(uint64_t conn, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int64_t duration);
/* On success *req and *client are new (caller frees); peer->groups are not
 * sent: the engine looks them up itself. */
int chan_request_get(struct imsg *m, uint64_t *conn, struct jit_peer *peer, char **client,
		     struct jit_request **req, int64_t *duration) JIT_WUR;

/* REFUSED: the refusal of a request (req may be NULL: unparsable) on
 * connection conn, which waits for its answer (0: answered already). */
struct imsg *chan_refused_msg(uint64_t conn, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int err, const char *message,
			      const char *rule);
struct chan_refusal {
	uint64_t conn;
	struct jit_peer peer;
	char *client, *message, *rule;
	struct jit_request *req;
	int err;
};
int chan_refused_get(struct imsg *m, struct chan_refusal *out) JIT_WUR;
void chan_refusal_clear(struct chan_refusal *r);

#endif
