/*
 * proto.c - socket protocol v1: request line -> struct jit_request, and the
 * answer lines. Trust boundary: proto_parse_request() reads bytes from any
 * local client before anything else looks at them, so it accepts only an
 * allow-list (known op, that op's fields, right type, bounded length, no
 * control characters, depth 1) and its messages quote at most a short,
 * escaped excerpt of the input. Pure; fuzzed by tests/fuzz/fuzz_proto.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"
#include "proto.h"
#include "util.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define EXCERPT_MAX 32          /* input bytes quoted in a message */
#define EXCERPT_BUF (EXCERPT_MAX * 4 + 4)
#define DURATION_STR_MAX 64     /* longer duration strings are refused unparsed */

enum ftype { FT_STR, FT_DURATION, FT_STATE, FT_LIMIT, FT_FORCE };

struct field_spec {
	const char *name;
	enum ftype type;
	size_t max;             /* FT_STR: longest value in bytes */
	size_t off;             /* FT_STR: offset of the char * in struct jit_request */
	bool required;
};

#define STR_FIELD(n, m, member, req) \
	{ n, FT_STR, m, offsetof(struct jit_request, member), req }

static const struct field_spec grant_fields[] = {
	STR_FIELD("user", PROTO_MAX_NAME, user, true),
	STR_FIELD("group", PROTO_MAX_NAME, group, true),
	{ "duration", FT_DURATION, 0, 0, false },
	STR_FIELD("ticket", PROTO_MAX_TICKET, ticket, false),
	STR_FIELD("reason", PROTO_MAX_REASON, reason, false),
	STR_FIELD("requested_by", PROTO_MAX_NAME, requested_by, false),
	STR_FIELD("approved_by", PROTO_MAX_NAME, approved_by, false),
	STR_FIELD("request_id", PROTO_MAX_ID, request_id, false),
	STR_FIELD("approval_sig", PROTO_MAX_SIG, approval_sig, false),
	STR_FIELD("approved_at", PROTO_MAX_TIME, approved_at, false),
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec end_fields[] = {       /* complete, revoke */
	STR_FIELD("grant_id", PROTO_MAX_ID, grant_id, true),
	STR_FIELD("reason", PROTO_MAX_REASON, reason_end, false),
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec revoke_fields[] = {
	STR_FIELD("grant_id", PROTO_MAX_ID, grant_id, true),
	STR_FIELD("reason", PROTO_MAX_REASON, reason_end, false),
	{ "force", FT_FORCE, 0, 0, false },
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec extend_fields[] = {
	STR_FIELD("grant_id", PROTO_MAX_ID, grant_id, true),
	{ "duration", FT_DURATION, 0, 0, true },
	STR_FIELD("expires_at", PROTO_MAX_TIME, expires_at, false),
	STR_FIELD("approved_by", PROTO_MAX_NAME, approved_by, false),
	STR_FIELD("approval_sig", PROTO_MAX_SIG, approval_sig, false),
	STR_FIELD("approved_at", PROTO_MAX_TIME, approved_at, false),
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec show_fields[] = {
	STR_FIELD("grant_id", PROTO_MAX_ID, grant_id, true),
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec list_fields[] = {
	STR_FIELD("user", PROTO_MAX_NAME, user, false),
	STR_FIELD("group", PROTO_MAX_NAME, group, false),
	{ "state", FT_STATE, 0, 0, false },
	{ "limit", FT_LIMIT, 0, 0, false },
	{ NULL, FT_STR, 0, 0, false }
};
static const struct field_spec no_fields[] = {
	{ NULL, FT_STR, 0, 0, false }
};

/* The wire names of the ops, indexed by enum jit_op, with their fields. */
static const struct op_spec {
	const char *name;
	const struct field_spec *fields;
} op_table[OP__COUNT] = {
	[OP_GRANT] = { "grant", grant_fields },
	[OP_COMPLETE] = { "complete", end_fields },
	[OP_REVOKE] = { "revoke", revoke_fields },
	[OP_EXTEND] = { "extend", extend_fields },
	[OP_SHOW] = { "show", show_fields },
	[OP_LIST] = { "list", list_fields },
	[OP_STATUS] = { "status", no_fields },
};

/* Replaces anything but printable ASCII in a finished message. */
static void msg_clean(char *msg)
{
	for (unsigned char *p = (unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

static void msgf(char *msg, size_t msglen, const char *fmt, ...) JIT_PRINTF(3, 4);
static void msgf(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	if (!msg || msglen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap); /* truncation is acceptable here */
	va_end(ap);
	msg_clean(msg);
}

/* At most EXCERPT_MAX bytes of s, anything but printable ASCII (and the
 * quote and backslash) as \xHH, "..." appended if cut. */
static const char *excerpt(const char *s, size_t n, char buf[EXCERPT_BUF])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n && i < EXCERPT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	if (n > EXCERPT_MAX) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * Robustness: refuse nesting before the JSON library builds it. Valid JSON
 * is tracked exactly; for invalid JSON this may refuse with the "nested"
 * message instead of the parser's, which is a refusal either way.
 */
static bool depth_ok(const char *s, size_t len)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > 1)
				return false;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return true;
}

/* Bytes < 0x20, 0x7f and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F;
 * the input is known to be valid UTF-8). */
static bool has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9f)
			return true;
	}
	return false;
}

static const struct field_spec *field_find(const struct field_spec *fs, const char *name)
{
	for (; fs->name; fs++)
		if (strcmp(fs->name, name) == 0)
			return fs;
	return NULL;
}

/* A non-empty string within max bytes without control characters. */
static int get_string(const char *name, json_t *v, size_t max, const char **out,
		      char *msg, size_t msglen)
{
	if (!json_is_string(v)) {
		msgf(msg, msglen, "field \"%s\" must be a string", name);
		return JIT_EBADREQ;
	}
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0) {
		msgf(msg, msglen, "field \"%s\" must not be empty", name);
		return JIT_EBADREQ;
	}
	if (n > max) {
		msgf(msg, msglen, "field \"%s\" is too long (at most %zu bytes)", name, max);
		return JIT_EBADREQ;
	}
	if (has_control(s, n)) {
		msgf(msg, msglen, "field \"%s\" contains a control character", name);
		return JIT_EBADREQ;
	}
	*out = s;
	return JIT_OK;
}

static int get_duration(json_t *v, int64_t *out, char *msg, size_t msglen)
{
	char ex[EXCERPT_BUF];
	int64_t d;
	if (json_is_integer(v)) {
		d = (int64_t)json_integer_value(v);
		if (d <= 0 || d > DURATION_MAX) {
			msgf(msg, msglen, "field \"duration\" must be between 1 and %lld seconds",
			     (long long)DURATION_MAX);
			return JIT_EBADREQ;
		}
	} else if (json_is_string(v)) {
		const char *s;
		int rc = get_string("duration", v, DURATION_STR_MAX, &s, msg, msglen);
		if (rc != JIT_OK)
			return rc;
		if (duration_parse(s, &d) != JIT_OK) {
			msgf(msg, msglen, "field \"duration\": invalid duration \"%s\"",
			     excerpt(s, json_string_length(v), ex));
			return JIT_EBADREQ;
		}
		if (d <= 0) {
			msgf(msg, msglen, "field \"duration\" must be greater than 0");
			return JIT_EBADREQ;
		}
	} else {
		msgf(msg, msglen, "field \"duration\" must be an integer or a string");
		return JIT_EBADREQ;
	}
	*out = d;
	return JIT_OK;
}

static int get_state(json_t *v, unsigned *mask, char *msg, size_t msglen)
{
	char ex[EXCERPT_BUF];
	const char *s;
	enum grant_state st;
	int rc = get_string("state", v, 32, &s, msg, msglen);
	if (rc != JIT_OK)
		return rc;
	if (strcmp(s, "live") == 0) {
		*mask = GS_LIVE_MASK;
	} else if (strcmp(s, "all") == 0) {
		*mask = (1u << GS__COUNT) - 1;
	} else if (grant_state_parse(s, &st) == JIT_OK) {
		*mask = GS_BIT(st);
	} else {
		msgf(msg, msglen, "field \"state\": unknown state \"%s\"",
		     excerpt(s, json_string_length(v), ex));
		return JIT_EBADREQ;
	}
	return JIT_OK;
}

static int get_limit(json_t *v, int64_t *out, char *msg, size_t msglen)
{
	if (!json_is_integer(v)) {
		msgf(msg, msglen, "field \"limit\" must be an integer");
		return JIT_EBADREQ;
	}
	json_int_t n = json_integer_value(v);
	if (n < 1 || n > PROTO_MAX_LIST) {
		msgf(msg, msglen, "field \"limit\" must be between 1 and %d", PROTO_MAX_LIST);
		return JIT_EBADREQ;
	}
	*out = (int64_t)n;
	return JIT_OK;
}

/* Stores one member of the request after checking it against its spec. */
static int set_field(struct jit_request *r, const struct field_spec *fs, json_t *v,
		     char *msg, size_t msglen)
{
	const char *s;
	int rc;
	switch (fs->type) {
	case FT_STR:
		rc = get_string(fs->name, v, fs->max, &s, msg, msglen);
		if (rc == JIT_OK)
			*(char **)((char *)r + fs->off) = xstrdup(s);
		return rc;
	case FT_DURATION:
		rc = get_duration(v, &r->duration, msg, msglen);
		if (rc == JIT_OK)
			r->has_duration = true;
		return rc;
	case FT_STATE:
		return get_state(v, &r->state_mask, msg, msglen);
	case FT_LIMIT:
		return get_limit(v, &r->limit, msg, msglen);
	case FT_FORCE:
		if (!json_is_boolean(v)) {
			msgf(msg, msglen, "field \"force\" must be true or false");
			return JIT_EBADREQ;
		}
		r->force = json_is_true(v);
		return JIT_OK;
	}
	return JIT_EINTERNAL;
}

/* "v" (optional, integer 1) and "op" (required, a known name). */
static int check_header(json_t *root, enum jit_op *op, char *msg, size_t msglen)
{
	char ex[EXCERPT_BUF];
	json_t *v = json_object_get(root, "v");
	if (v && (!json_is_integer(v) || json_integer_value(v) != PROTO_VERSION)) {
		msgf(msg, msglen, "unsupported protocol version (\"v\" must be %d)", PROTO_VERSION);
		return JIT_EBADREQ;
	}
	json_t *o = json_object_get(root, "op");
	if (!o) {
		msgf(msg, msglen, "missing field \"op\"");
		return JIT_EBADREQ;
	}
	if (!json_is_string(o)) {
		msgf(msg, msglen, "field \"op\" must be a string");
		return JIT_EBADREQ;
	}
	const char *name = json_string_value(o);
	for (int i = 0; i < OP__COUNT; i++) {
		if (strcmp(op_table[i].name, name) == 0) {
			*op = (enum jit_op)i;
			return JIT_OK;
		}
	}
	msgf(msg, msglen, "unknown op \"%s\"", excerpt(name, json_string_length(o), ex));
	return JIT_EUNKNOWNOP;
}

/* Every member of root against the op's field list; then the required ones. */
static int fill_request(json_t *root, struct jit_request *r, char *msg, size_t msglen)
{
	char ex[EXCERPT_BUF];
	const struct field_spec *fields = op_table[r->op].fields;
	const char *key;
	json_t *v;
	int rc;

	json_object_foreach(root, key, v) {
		if (strcmp(key, "op") == 0 || strcmp(key, "v") == 0)
			continue;
		const struct field_spec *fs = field_find(fields, key);
		if (!fs) {
			msgf(msg, msglen, "unknown field \"%s\" for op \"%s\"",
			     excerpt(key, strlen(key), ex), op_table[r->op].name);
			return JIT_EBADREQ;
		}
		if ((rc = set_field(r, fs, v, msg, msglen)) != JIT_OK)
			return rc;
	}
	for (const struct field_spec *fs = fields; fs->name; fs++) {
		if (fs->required && !json_object_get(root, fs->name)) {
			msgf(msg, msglen, "missing field \"%s\"", fs->name);
			return JIT_EBADREQ;
		}
	}
	return JIT_OK;
}

/* Structure of the line: size, NULs, JSON, an object of scalars. */
static int load_object(const char *line, size_t len, json_t **out, char *msg, size_t msglen)
{
	json_error_t jerr;
	const char *key;
	json_t *root, *v;

	if (len > PROTO_MAX_LINE) {
		msgf(msg, msglen, "request too large (at most %d bytes)", PROTO_MAX_LINE);
		return JIT_EBADREQ;
	}
	if (len > 0 && memchr(line, '\0', len)) {
		msgf(msg, msglen, "request contains a NUL byte");
		return JIT_EBADREQ;
	}
	if (!depth_ok(line, len)) {
		msgf(msg, msglen, "nested arrays or objects are not allowed");
		return JIT_EBADREQ;
	}
	/* Robustness: no JSON_DISABLE_EOF_CHECK (trailing bytes are refused),
	 * no JSON_ALLOW_NUL ("\u0000" is refused), duplicates refused. */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		/* jerr.text quotes up to 20 input bytes: msgf() cleans them. */
		msgf(msg, msglen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
		return JIT_EBADREQ;
	}
	if (!json_is_object(root)) {
		msgf(msg, msglen, "a request must be a JSON object");
		json_decref(root);
		return JIT_EBADREQ;
	}
	json_object_foreach(root, key, v) {
		if (json_is_object(v) || json_is_array(v)) {
			char ex[EXCERPT_BUF];
			msgf(msg, msglen, "field \"%s\": nested values are not allowed",
			     excerpt(key, strlen(key), ex));
			json_decref(root);
			return JIT_EBADREQ;
		}
	}
	*out = root;
	return JIT_OK;
}

int proto_parse_request(const char *line, size_t len, struct jit_request **out,
			char *msg, size_t msglen)
{
	struct jit_request *r = NULL;
	json_t *root = NULL;
	enum jit_op op;
	int rc;

	if (msg && msglen)
		msg[0] = '\0';
	if ((rc = load_object(line, len, &root, msg, msglen)) != JIT_OK)
		goto out;
	if ((rc = check_header(root, &op, msg, msglen)) != JIT_OK)
		goto out;
	r = xcalloc(1, sizeof(*r));
	r->op = op;
	if ((rc = fill_request(root, r, msg, msglen)) != JIT_OK)
		goto out;
	*out = r;
	r = NULL;
out:
	proto_request_free(r);
	json_decref(root);
	return rc;
}

void proto_request_free(struct jit_request *r)
{
	if (!r)
		return;
	free(r->user);
	free(r->group);
	free(r->ticket);
	free(r->reason);
	free(r->requested_by);
	free(r->approved_by);
	free(r->request_id);
	free(r->approval_sig);
	free(r->approved_at);
	free(r->expires_at);
	free(r->grant_id);
	free(r->reason_end);
	free(r);
}

/*
 * A JSON string for text that did not come through the request parser
 * (directory messages, stored rows): if it is not valid UTF-8, bytes
 * >= 0x80 become '?' so that the answer can still be serialised.
 */
static json_t *text_json(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *c = xstrdup(s);
	for (unsigned char *p = (unsigned char *)c; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(c);
	free(c);
	return j ? j : json_string("?");
}

static void set_text(json_t *o, const char *key, const char *s)
{
	if (s)
		json_object_set_new(o, key, text_json(s));
}

static void set_time(json_t *o, const char *key, int64_t t)
{
	char buf[32];
	fmt_rfc3339(t, buf);
	json_object_set_new(o, key, json_string(buf));
}

json_t *proto_grant_json(const struct grant_rec *r)
{
	json_t *o = json_object();
	set_text(o, "grant_id", r->id);
	json_object_set_new(o, "state", json_string(grant_state_name(r->state)));
	set_text(o, "user", r->user);
	set_text(o, "user_dn", r->user_dn);
	set_text(o, "group", r->group_name);
	set_text(o, "group_dn", r->group_dn);
	set_text(o, "directory", r->directory);
	set_time(o, "created_at", r->created_at);
	set_time(o, "expires_at", r->expires_at);
	json_object_set_new(o, "duration", json_integer((json_int_t)r->duration));
	json_object_set_new(o, "standing", json_boolean(r->standing));
	set_text(o, "ticket", r->ticket);
	set_text(o, "reason", r->reason);
	set_text(o, "requested_by", r->requested_by);
	set_text(o, "approved_by", r->approved_by);
	set_text(o, "request_id", r->request_id);
	if (r->ended_at != 0)
		set_time(o, "ended_at", r->ended_at);
	if (r->state == GS_ENDING)
		json_object_set_new(o, "end_state", json_string(grant_state_name(r->end_state)));
	set_text(o, "last_error", r->last_error);
	/* Several URIs: where the membership was written, and while ending,
	 * where it was removed and when jitd tries or checks again. */
	set_text(o, "added_via", r->added_via);
	set_text(o, "added_also_via", r->added_also_via);
	if (r->state == GS_ENDING) {
		set_text(o, "removed_via", r->removed_via);
		if (r->next_attempt > 0)
			set_time(o, "next_attempt_at", r->next_attempt);
	}
	return o;
}

/* obj (stolen) as one compact line with '\n'; NULL if it cannot be dumped. */
static char *dump_line(json_t *obj)
{
	if (!obj)
		return NULL;
	char *s = json_dumps(obj, DUMP_FLAGS);
	json_decref(obj);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = xmalloc(n + 2);
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	free(s);
	return line;
}

/* The answer to a request whose store access failed with rc: busy when
 * another process held the store's lock (retryable), else internal
 * with what. */
char *proto_store_error_line(int rc, const char *what)
{
	if (rc == JIT_EBUSY)
		return proto_error_line(JIT_EBUSY,
					"the store is locked (held by another process?); "
					"nothing was recorded: try again");
	return proto_error_line(JIT_EINTERNAL, what);
}

char *proto_error_line(int err, const char *message)
{
	if (err >= 0)
		err = JIT_EINTERNAL;
	json_t *e = json_object();
	json_object_set_new(e, "code", json_string(jit_err_code(err)));
	json_object_set_new(e, "message", text_json(message ? message : jit_err_message(err)));
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", e);
	char *line = dump_line(o);
	if (!line) /* cannot happen: every string above is valid UTF-8 */
		line = xstrdup("{\"ok\":false,\"error\":{\"code\":\"internal\","
			       "\"message\":\"internal error\"}}\n");
	return line;
}

char *proto_ok_line(const char *key, json_t *value)
{
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_true());
	if (key && value) {
		json_object_set_new(o, key, value);
	} else if (value) {
		if (json_is_object(value))
			json_object_update_missing(o, value);
		json_decref(value);
	}
	char *line = dump_line(o);
	return line ? line : proto_error_line(JIT_EINTERNAL, NULL);
}

char *proto_dump_line(json_t *obj)
{
	return dump_line(obj);
}
