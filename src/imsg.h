/*
 * imsg.h - typed, size-limited messages between jitd's two processes (the
 * unprivileged listener and the engine), over a socketpair.
 *
 * A message is a frame: a 4-byte type and a 4-byte payload length (both
 * little-endian), then the payload. The payload is a sequence of fields
 * written with imsg_put_*() and read back, in the same order, with
 * imsg_get_*(): each getter checks that the field is complete and within
 * its limit, and imsg_end() checks that nothing is left over. A reader
 * that meets a short, oversized or malformed field fails (the message is
 * refused as a whole), never guesses.
 *
 * Wire types of fields:
 *   u8, u32, u64, i64   fixed size, little-endian
 *   str                 u32 length then that many bytes, no NUL among them;
 *                       length 0xffffffff = absent (NULL)
 *
 * struct imsg_chan frames a non-blocking stream: imsg_chan_read() takes
 * what the socket has, imsg_chan_next() returns the next complete message
 * once its type is in the reader's allow-list and its length within that
 * type's maximum (checked from the header, before the payload is
 * buffered); imsg_chan_send() queues a message and imsg_chan_flush()
 * writes what the socket takes.
 */
#ifndef JITD_IMSG_H
#define JITD_IMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define IMSG_HDR 8
#define IMSG_NULL_LEN 0xffffffffu

struct imsg {
	uint32_t type;
	uint8_t *data;          /* payload (heap) */
	size_t len, cap;
	size_t off;             /* read position */
	bool bad;               /* a getter failed: everything after fails too */
};

/* A new message of type (free with imsg_free). */
struct imsg *imsg_new(uint32_t type);
void imsg_free(struct imsg *m); /* NULL-safe */

void imsg_put_u8(struct imsg *m, uint8_t v);
void imsg_put_u32(struct imsg *m, uint32_t v);
void imsg_put_u64(struct imsg *m, uint64_t v);
void imsg_put_i64(struct imsg *m, int64_t v);
void imsg_put_str(struct imsg *m, const char *s); /* NULL: absent */

/* Getters: JIT_OK and *out, or JIT_EBADREQ (and the message is bad). */
int imsg_get_u8(struct imsg *m, uint8_t *out) JIT_WUR;
int imsg_get_u32(struct imsg *m, uint32_t *out) JIT_WUR;
int imsg_get_u64(struct imsg *m, uint64_t *out) JIT_WUR;
int imsg_get_i64(struct imsg *m, int64_t *out) JIT_WUR;
/* A string of at most max bytes; *out is a new heap string or NULL
 * (absent) — absent is refused unless allow_null. */
int imsg_get_str(struct imsg *m, size_t max, bool allow_null, char **out) JIT_WUR;
/* JIT_OK if every getter succeeded and the payload is fully consumed. */
int imsg_end(const struct imsg *m) JIT_WUR;

/* What a reader accepts: type -> largest payload. Ends with max == 0. */
struct imsg_allow {
	uint32_t type;
	size_t max;
};

struct imsg_chan;

/* A channel over fd (non-blocking; the channel does not own it). */
struct imsg_chan *imsg_chan_new(int fd, const struct imsg_allow *allow);
void imsg_chan_free(struct imsg_chan *c); /* NULL-safe; leaves fd open */
int imsg_chan_fd(const struct imsg_chan *c);

/* Reads once from fd (at most 64 KiB): JIT_OK (maybe nothing was there),
 * JIT_ENOTFOUND at end of stream, JIT_EIO. Take messages out before the
 * next call. */
int imsg_chan_read(struct imsg_chan *c) JIT_WUR;
/* Feeds bytes as if read (for tests and the fuzzer). */
void imsg_chan_feed(struct imsg_chan *c, const void *data, size_t len);
/*
 * The next complete message: JIT_OK and *out (caller frees), JIT_ENOTFOUND
 * if none is complete yet, JIT_EBADREQ if the stream broke the rules (a
 * type not allowed, a length above its maximum): the channel is then
 * unusable and the caller must drop its peer.
 */
int imsg_chan_next(struct imsg_chan *c, struct imsg **out) JIT_WUR;

/* Queues m (which is freed) for sending. */
void imsg_chan_send(struct imsg_chan *c, struct imsg *m);
/* Writes what fd takes. JIT_OK (maybe with data still queued), JIT_EIO. */
int imsg_chan_flush(struct imsg_chan *c) JIT_WUR;
bool imsg_chan_pending(const struct imsg_chan *c); /* output queued? */
/* Bytes read and not yet taken out as messages. */
size_t imsg_chan_buffered(const struct imsg_chan *c);
/* Bytes queued and not yet written (what a reader that stops reading its
 * peer's messages while this is high bounds). */
size_t imsg_chan_queued(const struct imsg_chan *c);

/* A whole frame of m as bytes (for tests and the fuzzer's corpus). */
uint8_t *imsg_frame(const struct imsg *m, size_t *len);

#endif
