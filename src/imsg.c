/*
 * imsg.c - framed, typed messages between jitd's processes (see imsg.h).
 * Trust boundary: the engine reads what the unprivileged listener sends,
 * and the listener may be compromised, so every byte passes through
 * bounded getters: a header's length is checked against its type's
 * maximum before anything is buffered, every field against what is left,
 * strings against their limit and for NUL bytes, and imsg_end() refuses
 * leftovers. Pure apart from read()/write(); fuzzed (tests/fuzz/fuzz_imsg.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "imsg.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK 65536

struct imsg *imsg_new(uint32_t type)
{
	struct imsg *m = xcalloc(1, sizeof(*m));
	m->type = type;
	return m;
}

void imsg_free(struct imsg *m)
{
	if (!m)
		return;
	if (m->data) {
		wipe(m->data, m->cap); /* payloads may carry request fields */
		free(m->data);
	}
	free(m);
}

static void put(struct imsg *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap : 256;
		while (cap < m->len + n)
			cap *= 2;
		m->data = xrealloc(m->data, cap);
		m->cap = cap;
	}
	memcpy(m->data + m->len, p, n);
	m->len += n;
}

static void put_le(struct imsg *m, uint64_t v, int bytes)
{
	uint8_t b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(m, b, (size_t)bytes);
}

void imsg_put_u8(struct imsg *m, uint8_t v)
{
	put(m, &v, 1);
}

void imsg_put_u32(struct imsg *m, uint32_t v)
{
	put_le(m, v, 4);
}

void imsg_put_u64(struct imsg *m, uint64_t v)
{
	put_le(m, v, 8);
}

void imsg_put_i64(struct imsg *m, int64_t v)
{
	put_le(m, (uint64_t)v, 8);
}

void imsg_put_str(struct imsg *m, const char *s)
{
	if (!s) {
		put_le(m, IMSG_NULL_LEN, 4);
		return;
	}
	size_t n = strlen(s);
	if (n >= IMSG_NULL_LEN)
		fatal("imsg: string of %zu bytes", n); /* callers bound their strings */
	put_le(m, n, 4);
	put(m, s, n);
}

/* The next n bytes, or NULL (and the message is bad). */
static const uint8_t *take(struct imsg *m, size_t n)
{
	if (m->bad || n > m->len - m->off) {
		m->bad = true;
		return NULL;
	}
	const uint8_t *p = m->data + m->off;
	m->off += n;
	return p;
}

static int get_le(struct imsg *m, int bytes, uint64_t *out)
{
	const uint8_t *p = take(m, (size_t)bytes);
	uint64_t v = 0;
	if (!p)
		return JIT_EBADREQ;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*out = v;
	return JIT_OK;
}

int imsg_get_u8(struct imsg *m, uint8_t *out)
{
	const uint8_t *p = take(m, 1);
	if (!p)
		return JIT_EBADREQ;
	*out = *p;
	return JIT_OK;
}

int imsg_get_u32(struct imsg *m, uint32_t *out)
{
	uint64_t v;
	if (get_le(m, 4, &v) != JIT_OK)
		return JIT_EBADREQ;
	*out = (uint32_t)v;
	return JIT_OK;
}

int imsg_get_u64(struct imsg *m, uint64_t *out)
{
	return get_le(m, 8, out);
}

int imsg_get_i64(struct imsg *m, int64_t *out)
{
	uint64_t v;
	if (get_le(m, 8, &v) != JIT_OK)
		return JIT_EBADREQ;
	*out = (int64_t)v;
	return JIT_OK;
}

int imsg_get_str(struct imsg *m, size_t max, bool allow_null, char **out)
{
	uint32_t n;
	const uint8_t *p;

	if (imsg_get_u32(m, &n) != JIT_OK)
		return JIT_EBADREQ;
	if (n == IMSG_NULL_LEN) {
		if (!allow_null) {
			m->bad = true;
			return JIT_EBADREQ;
		}
		*out = NULL;
		return JIT_OK;
	}
	if (n > max || !(p = take(m, n)) || memchr(p, '\0', n)) {
		m->bad = true;
		return JIT_EBADREQ;
	}
	*out = xstrndup((const char *)p, n);
	return JIT_OK;
}

int imsg_end(const struct imsg *m)
{
	return !m->bad && m->off == m->len ? JIT_OK : JIT_EBADREQ;
}

uint8_t *imsg_frame(const struct imsg *m, size_t *len)
{
	uint8_t *f = xmalloc(IMSG_HDR + m->len);
	for (int i = 0; i < 4; i++) {
		f[i] = (uint8_t)(m->type >> (8 * i));
		f[4 + i] = (uint8_t)((uint64_t)m->len >> (8 * i));
	}
	if (m->len)
		memcpy(f + IMSG_HDR, m->data, m->len);
	*len = IMSG_HDR + m->len;
	return f;
}

/* ---- the stream ---- */

struct outq {
	uint8_t *data;
	size_t len, off;
	struct outq *next;
};

struct imsg_chan {
	int fd;
	const struct imsg_allow *allow;
	uint8_t *in;
	size_t in_len, in_cap;
	bool broken;
	struct outq *head, *tail;
	size_t out_bytes;       /* unwritten bytes in head..tail */
};

struct imsg_chan *imsg_chan_new(int fd, const struct imsg_allow *allow)
{
	struct imsg_chan *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->allow = allow;
	return c;
}

void imsg_chan_free(struct imsg_chan *c)
{
	if (!c)
		return;
	while (c->head) {
		struct outq *q = c->head;
		c->head = q->next;
		wipe(q->data, q->len);
		free(q->data);
		free(q);
	}
	if (c->in) {
		wipe(c->in, c->in_cap);
		free(c->in);
	}
	free(c);
}

int imsg_chan_fd(const struct imsg_chan *c)
{
	return c->fd;
}

static void reserve_in(struct imsg_chan *c, size_t extra)
{
	if (c->in_len + extra <= c->in_cap)
		return;
	size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
	while (cap < c->in_len + extra)
		cap *= 2;
	c->in = xrealloc(c->in, cap);
	c->in_cap = cap;
}

void imsg_chan_feed(struct imsg_chan *c, const void *data, size_t len)
{
	if (len == 0)
		return; /* nothing to add; c->in may still be NULL */
	reserve_in(c, len);
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
}

int imsg_chan_read(struct imsg_chan *c)
{
	/* One chunk per call: the caller takes the complete messages out
	 * between calls, so a flooding peer cannot make the buffer grow past
	 * the largest allowed message and a chunk. */
	for (;;) {
		reserve_in(c, READ_CHUNK);
		ssize_t n = read(c->fd, c->in + c->in_len, READ_CHUNK);
		if (n > 0) {
			c->in_len += (size_t)n;
			return JIT_OK;
		}
		if (n == 0)
			return JIT_ENOTFOUND;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? JIT_OK : JIT_EIO;
	}
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int imsg_chan_next(struct imsg_chan *c, struct imsg **out)
{
	const struct imsg_allow *a;
	uint32_t type, len;

	if (c->broken)
		return JIT_EBADREQ;
	if (c->in_len < IMSG_HDR)
		return JIT_ENOTFOUND;
	type = le32(c->in);
	len = le32(c->in + 4);
	for (a = c->allow; a->max && a->type != type; a++)
		;
	if (!a->max || len > a->max) {
		/* Robustness: judged from the header alone, before the peer can
		 * make us buffer an oversized payload. */
		c->broken = true;
		return JIT_EBADREQ;
	}
	if (c->in_len - IMSG_HDR < len)
		return JIT_ENOTFOUND;
	struct imsg *m = imsg_new(type);
	if (len) {
		m->data = xmalloc(len);
		m->cap = m->len = len;
		memcpy(m->data, c->in + IMSG_HDR, len);
	}
	wipe(c->in, IMSG_HDR + len);
	memmove(c->in, c->in + IMSG_HDR + len, c->in_len - IMSG_HDR - len);
	c->in_len -= IMSG_HDR + len;
	*out = m;
	return JIT_OK;
}

void imsg_chan_send(struct imsg_chan *c, struct imsg *m)
{
	struct outq *q = xcalloc(1, sizeof(*q));
	q->data = imsg_frame(m, &q->len);
	imsg_free(m);
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	c->out_bytes += q->len;
}

int imsg_chan_flush(struct imsg_chan *c)
{
	while (c->head) {
		struct outq *q = c->head;
		ssize_t n = write(c->fd, q->data + q->off, q->len - q->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? JIT_OK : JIT_EIO;
		}
		q->off += (size_t)n;
		c->out_bytes -= (size_t)n;
		if (q->off < q->len)
			continue;
		c->head = q->next;
		if (!c->head)
			c->tail = NULL;
		wipe(q->data, q->len);
		free(q->data);
		free(q);
	}
	return JIT_OK;
}

bool imsg_chan_pending(const struct imsg_chan *c)
{
	return c->head != NULL;
}

size_t imsg_chan_buffered(const struct imsg_chan *c)
{
	return c->in_len;
}

size_t imsg_chan_queued(const struct imsg_chan *c)
{
	return c->out_bytes;
}
