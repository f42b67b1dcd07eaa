/*
 * channel.c - the messages between the listener and the engine (see
 * channel.h). Trust boundary: the engine decodes what an unprivileged,
 * possibly compromised process sends. So a REQUEST is rebuilt field by
 * field into a fresh struct jit_request and accepted only if proto.c
 * could have produced it: a known op, exactly that op's fields, strings
 * within proto's limits without control characters, numbers in range,
 * nothing left over. The engine then runs its own policy check on it.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "channel.h"
#include "duration.h"
#include "util.h"

/* sizeof(struct jit_request) on the platforms jitd is built for (LP64)
 * when every field is carried below: a tripwire for new fields (one that
 * fits into padding would slip past it; proto.h says to look here). */
#define JIT_REQUEST_SIZE_CARRIED 136

const struct imsg_allow chan_from_engine[] = {
	{ CHAN_INIT, CHAN_MAX_CONFIG },
	{ CHAN_CONFIG, CHAN_MAX_CONFIG },
	{ CHAN_REPLY, CHAN_MAX_REPLY },
	{ CHAN_SHUTDOWN, 1 },
	{ 0, 0 },
};

const struct imsg_allow chan_from_listener[] = {
	{ CHAN_READY, 8 },
	{ CHAN_REQUEST, CHAN_MAX_REQUEST },
	{ CHAN_REFUSED, CHAN_MAX_REQUEST + 2 * CHAN_MAX_MESSAGE + 8 },
	{ CHAN_CONFIGURED, 8 + 1 + 4 + CHAN_MAX_MESSAGE - 1 },
	{ 0, 0 },
};

/* The string fields of a request: where, how long, which ops take them. */
#define OPB(op) (1u << (op))
static const struct {
	size_t off, max;
	unsigned ops;      /* ops that may carry it */
	unsigned required; /* ops that must carry it */
} str_fields[] = {
	{ offsetof(struct jit_request, user), PROTO_MAX_NAME, OPB(OP_GRANT) | OPB(OP_LIST),
	  OPB(OP_GRANT) },
	{ offsetof(struct jit_request, group), PROTO_MAX_NAME, OPB(OP_GRANT) | OPB(OP_LIST),
	  OPB(OP_GRANT) },
	{ offsetof(struct jit_request, ticket), PROTO_MAX_TICKET, OPB(OP_GRANT), 0 },
	{ offsetof(struct jit_request, reason), PROTO_MAX_REASON, OPB(OP_GRANT), 0 },
	{ offsetof(struct jit_request, requested_by), PROTO_MAX_NAME, OPB(OP_GRANT), 0 },
	{ offsetof(struct jit_request, approved_by), PROTO_MAX_NAME,
	  OPB(OP_GRANT) | OPB(OP_EXTEND), 0 },
	{ offsetof(struct jit_request, request_id), PROTO_MAX_ID, OPB(OP_GRANT), 0 },
	{ offsetof(struct jit_request, approval_sig), PROTO_MAX_SIG,
	  OPB(OP_GRANT) | OPB(OP_EXTEND), 0 },
	{ offsetof(struct jit_request, approved_at), PROTO_MAX_TIME,
	  OPB(OP_GRANT) | OPB(OP_EXTEND), 0 },
	{ offsetof(struct jit_request, expires_at), PROTO_MAX_TIME, OPB(OP_EXTEND), 0 },
	{ offsetof(struct jit_request, grant_id), PROTO_MAX_ID,
	  OPB(OP_COMPLETE) | OPB(OP_REVOKE) | OPB(OP_EXTEND) | OPB(OP_SHOW),
	  OPB(OP_COMPLETE) | OPB(OP_REVOKE) | OPB(OP_EXTEND) | OPB(OP_SHOW) },
	{ offsetof(struct jit_request, reason_end), PROTO_MAX_REASON,
	  OPB(OP_COMPLETE) | OPB(OP_REVOKE), 0 },
};
#define N_STR_FIELDS (sizeof(str_fields) / sizeof(str_fields[0]))

static char **str_at(struct jit_request *r, size_t i)
{
	return (char **)(void *)((char *)r + str_fields[i].off);
}

static char *const *cstr_at(const struct jit_request *r, size_t i)
{
	return (char *const *)(const void *)((const char *)r + str_fields[i].off);
}

/* proto.c's rule for strings: non-empty valid UTF-8 (proto.c's JSON
 * parser guarantees it; here jansson's own check, so that no field the
 * listener sends can silently drop out of an audit line, where
 * json_string() refuses invalid UTF-8), no C0/DEL control character.
 * (C1 controls are refused by proto.c too; they are harmless bytes here.) */
static bool clean(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	json_t *utf8 = json_string(s);
	bool ok = utf8 != NULL;
	json_decref(utf8);
	return ok;
}

static void put_peer(struct imsg *m, const struct jit_peer *p)
{
	imsg_put_i64(m, (int64_t)p->pid);
	imsg_put_u32(m, (uint32_t)p->uid);
	imsg_put_u32(m, (uint32_t)p->gid);
}

static int get_peer(struct imsg *m, struct jit_peer *p)
{
	int64_t pid;
	uint32_t uid, gid;
	if (imsg_get_i64(m, &pid) != JIT_OK || imsg_get_u32(m, &uid) != JIT_OK ||
	    imsg_get_u32(m, &gid) != JIT_OK || pid < 0 || pid > INT32_MAX)
		return JIT_EBADREQ;
	memset(p, 0, sizeof(*p));
	p->pid = (pid_t)pid;
	p->uid = (uid_t)uid;
	p->gid = (gid_t)gid;
	return JIT_OK;
}

/* Robustness: a field added to struct jit_request must be carried here
 * too, or it would be lost between the processes (this size changes). */
_Static_assert(sizeof(struct jit_request) == JIT_REQUEST_SIZE_CARRIED,
	       "struct jit_request changed: carry the new field in channel.c");

static void put_req(struct imsg *m, const struct jit_request *r)
{
	imsg_put_u32(m, (uint32_t)r->op);
	for (size_t i = 0; i < N_STR_FIELDS; i++)
		imsg_put_str(m, *cstr_at(r, i));
	imsg_put_u8(m, r->force);
	imsg_put_u8(m, r->has_duration);
	imsg_put_i64(m, r->duration);
	imsg_put_u32(m, r->state_mask);
	imsg_put_i64(m, r->limit);
}

/* Numbers and presence of fields against the op's rules. */
static int req_valid(const struct jit_request *r)
{
	unsigned bit = OPB(r->op);

	for (size_t i = 0; i < N_STR_FIELDS; i++) {
		const char *s = *cstr_at(r, i);
		if (s ? !(str_fields[i].ops & bit) || !clean(s) : (str_fields[i].required & bit) != 0)
			return JIT_EBADREQ;
	}
	if (r->has_duration ? !(bit & (OPB(OP_GRANT) | OPB(OP_EXTEND))) || r->duration <= 0 ||
				      r->duration > DURATION_MAX
			    : r->op == OP_EXTEND || r->duration != 0)
		return JIT_EBADREQ;
	if (r->force && r->op != OP_REVOKE)
		return JIT_EBADREQ;
	if ((r->state_mask && r->op != OP_LIST) || r->state_mask >= GS_BIT(GS__COUNT))
		return JIT_EBADREQ;
	if (r->limit < 0 || r->limit > PROTO_MAX_LIST || (r->limit && r->op != OP_LIST))
		return JIT_EBADREQ;
	return JIT_OK;
}

/* A request read field by field. JIT_OK and *out, or JIT_EBADREQ. */
static int get_req(struct imsg *m, struct jit_request **out)
{
	struct jit_request *r = xcalloc(1, sizeof(*r));
	uint32_t op;
	uint8_t has_dur, force;
	int rc = JIT_EBADREQ;

	if (imsg_get_u32(m, &op) != JIT_OK || op >= OP__COUNT)
		goto out;
	r->op = (enum jit_op)op;
	for (size_t i = 0; i < N_STR_FIELDS; i++)
		if (imsg_get_str(m, str_fields[i].max, true, str_at(r, i)) != JIT_OK)
			goto out;
	if (imsg_get_u8(m, &force) != JIT_OK || force > 1 ||
	    imsg_get_u8(m, &has_dur) != JIT_OK || has_dur > 1 ||
	    imsg_get_i64(m, &r->duration) != JIT_OK || imsg_get_u32(m, &r->state_mask) != JIT_OK ||
	    imsg_get_i64(m, &r->limit) != JIT_OK)
		goto out;
	r->has_duration = has_dur;
	r->force = force;
	rc = req_valid(r);
out:
	if (rc == JIT_OK)
		*out = r;
	else
		proto_request_free(r);
	return rc;
}

/* ---- INIT / CONFIG ---- */

struct imsg *chan_init_msg(uint32_t type, const struct chan_init *in)
{
	struct imsg *m = imsg_new(type);
	imsg_put_str(m, in->path);
	imsg_put_str(m, in->text);
	imsg_put_u8(m, in->foreground);
	imsg_put_str(m, in->log_level);
	imsg_put_u8(m, in->has_ids);
	imsg_put_u32(m, in->uid);
	imsg_put_u32(m, in->gid);
	imsg_put_u64(m, in->gen);
	return m;
}

int chan_init_get(struct imsg *m, struct chan_init *out)
{
	struct chan_init in;
	uint8_t fg = 0, ids = 0;

	memset(&in, 0, sizeof(in));
	if (imsg_get_str(m, 4096, false, &in.path) != JIT_OK ||
	    imsg_get_str(m, CHAN_MAX_CONFIG, false, &in.text) != JIT_OK ||
	    imsg_get_u8(m, &fg) != JIT_OK || imsg_get_str(m, 32, false, &in.log_level) != JIT_OK ||
	    imsg_get_u8(m, &ids) != JIT_OK || imsg_get_u32(m, &in.uid) != JIT_OK ||
	    imsg_get_u32(m, &in.gid) != JIT_OK || imsg_get_u64(m, &in.gen) != JIT_OK ||
	    imsg_end(m) != JIT_OK || fg > 1 || ids > 1) {
		chan_init_clear(&in);
		return JIT_EBADREQ;
	}
	in.foreground = fg;
	in.has_ids = ids;
	*out = in;
	return JIT_OK;
}

void chan_init_clear(struct chan_init *in)
{
	free(in->path);
	free(in->text);
	free(in->log_level);
	memset(in, 0, sizeof(*in));
}

/* ---- CONFIGURED ---- */

struct imsg *chan_configured_msg(uint64_t gen, bool ok, const char *message)
{
	struct imsg *m = imsg_new(CHAN_CONFIGURED);
	imsg_put_u64(m, gen);
	imsg_put_u8(m, ok);
	imsg_put_str(m, ok ? NULL : message);
	return m;
}

int chan_configured_get(struct imsg *m, uint64_t *gen, bool *ok, char **message)
{
	uint64_t g;
	uint8_t applied = 0;
	char *msg = NULL;

	if (imsg_get_u64(m, &g) != JIT_OK || imsg_get_u8(m, &applied) != JIT_OK || applied > 1 ||
	    imsg_get_str(m, CHAN_MAX_MESSAGE - 1, true, &msg) != JIT_OK || imsg_end(m) != JIT_OK ||
	    (applied ? msg != NULL : !msg || !clean(msg))) {
		free(msg);
		return JIT_EBADREQ;
	}
	*gen = g;
	*ok = applied;
	*message = msg;
	return JIT_OK;
}

/* ---- REPLY / READY ---- */

struct imsg *chan_reply_msg(uint64_t conn, const char *line)
{
	struct imsg *m = imsg_new(CHAN_REPLY);
	imsg_put_u64(m, conn);
	imsg_put_str(m, line);
	return m;
}

int chan_reply_get(struct imsg *m, uint64_t *conn, char **line)
{
	uint64_t c;
	char *l = NULL;
	if (imsg_get_u64(m, &c) != JIT_OK ||
	    imsg_get_str(m, CHAN_MAX_REPLY - 16, false, &l) != JIT_OK || imsg_end(m) != JIT_OK) {
		free(l);
		return JIT_EBADREQ;
	}
	*conn = c;
	*line = l;
	return JIT_OK;
}

struct imsg *chan_ready_msg(uint32_t uid, uint32_t gid)
{
	struct imsg *m = imsg_new(CHAN_READY);
	imsg_put_u32(m, uid);
	imsg_put_u32(m, gid);
	return m;
}

int chan_ready_get(struct imsg *m, uint32_t *uid, uint32_t *gid)
{
	uint32_t u, g;
	if (imsg_get_u32(m, &u) != JIT_OK || imsg_get_u32(m, &g) != JIT_OK ||
	    imsg_end(m) != JIT_OK)
		return JIT_EBADREQ;
	*uid = u;
	*gid = g;
	return JIT_OK;
}

/* ---- REQUEST ---- */

struct imsg *chan_request_msg(uint64_t conn, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int64_t duration)
{
	struct imsg *m = imsg_new(CHAN_REQUEST);
	imsg_put_u64(m, conn);
	put_peer(m, peer);
	imsg_put_str(m, client);
	imsg_put_i64(m, duration);
	put_req(m, req);
	return m;
}

int chan_request_get(struct imsg *m, uint64_t *conn, struct jit_peer *peer, char **client,
		     struct jit_request **req, int64_t *duration)
{
	struct jit_peer p;
	struct jit_request *r = NULL;
	char *cl = NULL;
	uint64_t c;
	int64_t d;

	if (imsg_get_u64(m, &c) != JIT_OK || get_peer(m, &p) != JIT_OK ||
	    imsg_get_str(m, 256, false, &cl) != JIT_OK || !clean(cl) ||
	    imsg_get_i64(m, &d) != JIT_OK || get_req(m, &r) != JIT_OK || imsg_end(m) != JIT_OK ||
	    (r->op == OP_GRANT ? d <= 0 || d > DURATION_MAX : d != 0)) {
		free(cl);
		proto_request_free(r);
		return JIT_EBADREQ;
	}
	*conn = c;
	*peer = p;
	*client = cl;
	*req = r;
	*duration = d;
	return JIT_OK;
}

/* ---- REFUSED ---- */

struct imsg *chan_refused_msg(uint64_t conn, const struct jit_peer *peer, const char *client,
			      const struct jit_request *req, int err, const char *message,
			      const char *rule)
{
	struct imsg *m = imsg_new(CHAN_REFUSED);
	char msg[CHAN_MAX_MESSAGE];

	imsg_put_u64(m, conn);
	put_peer(m, peer);
	imsg_put_str(m, client);
	imsg_put_i64(m, err);
	snprintf(msg, sizeof(msg), "%s", message ? message : jit_err_message(err));
	imsg_put_str(m, msg);
	imsg_put_str(m, rule);
	imsg_put_u8(m, req != NULL);
	if (req)
		put_req(m, req);
	return m;
}

int chan_refused_get(struct imsg *m, struct chan_refusal *out)
{
	struct chan_refusal r;
	int64_t err;
	uint8_t has_req;

	memset(&r, 0, sizeof(r));
	if (imsg_get_u64(m, &r.conn) != JIT_OK || get_peer(m, &r.peer) != JIT_OK ||
	    imsg_get_str(m, 256, true, &r.client) != JIT_OK ||
	    (r.client && !clean(r.client)) || imsg_get_i64(m, &err) != JIT_OK ||
	    err >= JIT_OK || err < JIT_EERR_MIN ||
	    imsg_get_str(m, CHAN_MAX_MESSAGE - 1, false, &r.message) != JIT_OK ||
	    imsg_get_str(m, 64, true, &r.rule) != JIT_OK || (r.rule && !clean(r.rule)) ||
	    imsg_get_u8(m, &has_req) != JIT_OK || has_req > 1 ||
	    (has_req && get_req(m, &r.req) != JIT_OK) || imsg_end(m) != JIT_OK) {
		chan_refusal_clear(&r);
		return JIT_EBADREQ;
	}
	r.err = (int)err;
	*out = r;
	return JIT_OK;
}

void chan_refusal_clear(struct chan_refusal *r)
{
	free(r->client);
	free(r->message);
	free(r->rule);
	proto_request_free(r->req);
	memset(r, 0, sizeof(*r));
}
