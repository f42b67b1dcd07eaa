/*
 * fuzz_imsg.c - libFuzzer harness for what the engine reads from the
 * listener process: the frame parser (imsg_chan_next with the engine's
 * allow-list) and the decoders of every message type the engine accepts
 * (channel.c). Besides the sanitizers it checks their promises: a frame
 * is returned only for an allowed type within its size; a decoded REQUEST
 * or REFUSED is one that proto.c could have produced, a decoded CONFIGURED
 * carries a reason exactly when it reports a failure, and encoding it
 * again gives back exactly the payload that was accepted (the decoders
 * accept one canonical encoding and nothing left over).
 *
 * Build and run: tests/fuzz/run imsg (or make fuzz).
 * (tests/unit/test_imsg.c writes the seed corpus with JITD_WRITE_CORPUS=DIR.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "channel.h"
#include "util.h"

static void same_payload(const struct imsg *orig, struct imsg *again)
{
	if (again->len != orig->len || memcmp(again->data, orig->data, orig->len) != 0)
		abort();
	imsg_free(again);
}

static void check_request(struct imsg *m)
{
	struct jit_peer peer;
	struct jit_request *req = NULL;
	char *client = NULL;
	uint64_t conn;
	int64_t d;

	if (chan_request_get(m, &conn, &peer, &client, &req, &d) != JIT_OK)
		return;
	if (!client || !req || req->op >= OP__COUNT || (req->op == OP_GRANT && !req->user))
		abort();
	same_payload(m, chan_request_msg(conn, &peer, client, req, d));
	free(client);
	proto_request_free(req);
}

static void check_refused(struct imsg *m)
{
	struct chan_refusal r;

	if (chan_refused_get(m, &r) != JIT_OK)
		return;
	if (r.err >= 0 || !r.message)
		abort();
	same_payload(m, chan_refused_msg(r.conn, &r.peer, r.client, r.req, r.err, r.message,
					 r.rule));
	chan_refusal_clear(&r);
}

static void check_configured(struct imsg *m)
{
	uint64_t gen;
	bool ok;
	char *why = NULL;

	if (chan_configured_get(m, &gen, &ok, &why) != JIT_OK)
		return;
	if (ok ? why != NULL : !why || !*why || strlen(why) >= CHAN_MAX_MESSAGE)
		abort();
	same_payload(m, chan_configured_msg(gen, ok, why));
	free(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imsg_chan *ch = imsg_chan_new(-1, chan_from_listener);
	struct imsg *m;
	uint32_t u, g;

	imsg_chan_feed(ch, data, size);
	while (imsg_chan_next(ch, &m) == JIT_OK) {
		if (m->type == CHAN_REQUEST) {
			if (m->len > CHAN_MAX_REQUEST)
				abort();
			check_request(m);
		} else if (m->type == CHAN_REFUSED) {
			check_refused(m);
		} else if (m->type == CHAN_CONFIGURED) {
			check_configured(m);
		} else if (m->type == CHAN_READY) {
			if (chan_ready_get(m, &u, &g) == JIT_OK && m->len != 8)
				abort();
		} else {
			abort(); /* not in the engine's allow-list */
		}
		imsg_free(m);
	}
	imsg_chan_free(ch);
	return 0;
}
