/*
 * ticket.c - the external ticket check (see ticket.h): one thread running
 * libcurl's multi interface. Trust: the ticket comes from the client and
 * reaches the URL only escaped; the ticket system's answer is untrusted
 * data (bounded, parsed by jansson, compared, quoted only in short escaped
 * excerpts). Security: the bearer token is read per check, wiped from our
 * buffers and from curl's header list after the transfer; it never
 * reaches a log or a message. Fail closed: anything but a clear "approved"
 * refuses.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "log.h"
#include "privsep.h"
#include "secret.h"
#include "termsafe.h"
#include "ticket.h"
#include "util.h"

#define BODY_MAX (1024 * 1024) /* a longer answer is refused */
#define TOKEN_MAX 8192
#define FIELD_DEPTH 8          /* "a.b.c": at most this many parts */

struct check {
	char *url_template, *field, *value, *ticket, *ca_file, *token_file;
	long timeout_ms;
	ticket_done_fn done;
	void *arg;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t body_len;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	struct check *next;
};

/*
 * Robustness: every running check holds a socket in this (root-started)
 * process, and a check may last up to ticket_check's timeout (5 min). A
 * flood of grants (a client that sends and hangs up, or a compromised
 * listener) must not use up the engine's descriptors, which the directory
 * connections, secret reads and the audit log need: at most
 * TICKET_RUNNING_MAX transfers run at once, the next wait in order, and
 * beyond TICKET_LIVE_MAX accepted checks ticket_check() refuses.
 */
struct ticket_checker {
	pthread_t thread;
	pthread_mutex_t lock;
	struct check *queue;    /* submitted, not yet added to multi, FIFO (under lock) */
	struct check *tail;     /* the queue's last (under lock) */
	size_t n_live;          /* accepted and not finished (under lock) */
	bool stopping;          /* under lock */
	CURLM *multi;
	struct check *running;  /* thread only */
	size_t n_running;       /* thread only: checks in multi */
};

char *ticket_url(const char *template, const char *escaped)
{
	struct strbuf sb = { 0 };

	for (const char *p = template; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			sb_addstr(&sb, escaped);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			sb_add(&sb, "%", 1);
			p++;
		} else {
			sb_add(&sb, p, 1);
		}
	}
	return sb_steal(&sb);
}

/*
 * Robustness: URL escaping leaves '.' alone, and a path segment "." or
 * ".." is resolved on the way (by libcurl unless CURLOPT_PATH_AS_IS, by a
 * proxy, or by the ticket system's web server, some of which decode %2F
 * and %5C first), so ".." in .../tickets/%s would ask .../ instead: the
 * client would choose what jitd asks. No ticket name needs such a segment.
 */
bool ticket_has_dot_segment(const char *ticket)
{
	const char *p = ticket;

	for (;;) {
		size_t n = strcspn(p, "/\\");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		if (!p[n])
			return false;
		p += n + 1;
	}
}

/* A short printable excerpt of an untrusted string, for messages: at most
 * 48 bytes of it, cut between characters, each control character, invisible
 * or text-direction character and byte of invalid UTF-8 shown as '?'
 * (termsafe), '"' and '\\' escaped. */
static void excerpt(const char *s, char *out, size_t outlen)
{
	char safe[49];
	size_t j = 0;

	(void)termsafe_copy(safe, sizeof(safe), s, 0); /* cut short on purpose */
	for (const char *p = safe; *p && j + 5 < outlen; p++) {
		if (*p == '"' || *p == '\\')
			j += (size_t)snprintf(out + j, outlen - j, "\\x%02x", (unsigned char)*p);
		else
			out[j++] = *p;
	}
	out[j] = '\0';
}

int ticket_judge(long status, const char *body, size_t len, const char *field,
		 const char *value, const char *ticket, char *msg, size_t msglen)
{
	char part[256], got[200], tk[200];
	json_error_t jerr;
	json_t *root, *v;
	const char *p = field;
	int depth = 0, rc = JIT_EPOLICY;

	excerpt(ticket, tk, sizeof(tk));
	if (status < 200 || status > 299) {
		snprintf(msg, msglen, "ticket_check: the ticket system answered HTTP %ld for "
			 "ticket \"%s\"", status, tk);
		return JIT_EPOLICY;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		snprintf(msg, msglen, "ticket_check: the ticket system's answer for \"%s\" is not "
			 "a JSON object", tk);
		goto out;
	}
	v = root;
	while (v && depth++ < FIELD_DEPTH) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof(part) || !json_is_object(v)) {
			v = NULL;
			break;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		v = json_object_get(v, part);
		if (!p[n])
			break;
		p += n + 1;
	}
	if (!v || depth > FIELD_DEPTH) {
		snprintf(msg, msglen, "ticket_check: the answer for \"%s\" has no field \"%s\"", tk,
			 field);
	} else if (!json_is_string(v)) {
		snprintf(msg, msglen, "ticket_check: field \"%s\" of the answer for \"%s\" is not a "
			 "string", field, tk);
	} else if (strcmp(json_string_value(v), value) != 0) {
		excerpt(json_string_value(v), got, sizeof(got));
		snprintf(msg, msglen, "ticket_check: ticket \"%s\" is not approved (%s is \"%s\", "
			 "not \"%s\")", tk, field, got, value);
	} else {
		rc = JIT_OK;
	}
out:
	json_decref(root);
	return rc;
}

static void check_free(struct check *c)
{
	if (!c)
		return;
	if (c->headers) {
		/* the Authorization line holds the token */
		for (struct curl_slist *h = c->headers; h; h = h->next)
			wipe(h->data, strlen(h->data));
		curl_slist_free_all(c->headers);
	}
	if (c->easy)
		curl_easy_cleanup(c->easy);
	free(c->url_template);
	free(c->field);
	free(c->value);
	free(c->ticket);
	free(c->ca_file);
	free(c->token_file);
	free(c->body);
	free(c);
}

static void finish(struct ticket_checker *tc, struct check *c, int rc, const char *msg)
{
	c->done(c->arg, rc, msg);
	check_free(c);
	pthread_mutex_lock(&tc->lock);
	tc->n_live--;
	pthread_mutex_unlock(&tc->lock);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct check *c = arg;
	size_t len = size * n;

	if (c->body_len + len > BODY_MAX) {
		c->too_big = true;
		return 0; /* aborts the transfer */
	}
	c->body = xrealloc(c->body, c->body_len + len + 1);
	memcpy(c->body + c->body_len, data, len);
	c->body_len += len;
	return len;
}

/* The Authorization header from token_file. JIT_OK or a message. */
static int add_token(struct check *c, char *msg, size_t msglen)
{
	char why[160];
	char *token = NULL, *line;
	size_t len = 0;
	struct curl_slist *h;

	if (secret_file_read(c->token_file, geteuid(), TOKEN_MAX, &token, &len, why,
			     sizeof(why)) != JIT_OK) {
		snprintf(msg, msglen, "ticket_check: token_file %s: %s", c->token_file, why);
		return JIT_EINTERNAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (!isgraph((unsigned char)token[i])) {
			free_secret(token);
			snprintf(msg, msglen, "ticket_check: token_file %s holds a space or a "
				 "control character", c->token_file);
			return JIT_EINTERNAL;
		}
	}
	line = xasprintf("Authorization: Bearer %s", token);
	h = curl_slist_append(c->headers, line);
	free_secret(line);
	free_secret(token);
	if (!h) {
		snprintf(msg, msglen, "ticket_check: out of memory");
		return JIT_EINTERNAL;
	}
	c->headers = h;
	return JIT_OK;
}

/* Sets every option of c->easy. JIT_OK, or JIT_EPOLICY (the ticket cannot
 * be asked about) or JIT_EINTERNAL (jitd's own set-up: the token file) with
 * a message for the log. */
static int setup(struct check *c, char *msg, size_t msglen)
{
	CURLcode e = CURLE_OK;
	char *esc, *url;

	if (ticket_has_dot_segment(c->ticket)) {
		char tk[200];
		excerpt(c->ticket, tk, sizeof(tk));
		snprintf(msg, msglen, "ticket_check: ticket \"%s\" is not sent to the ticket "
			 "system: it holds a \".\" or \"..\" path segment", tk);
		return JIT_EPOLICY;
	}
	c->easy = curl_easy_init();
	if (!c->easy) {
		snprintf(msg, msglen, "ticket_check: cannot create a transfer");
		return JIT_EPOLICY;
	}
	esc = curl_easy_escape(c->easy, c->ticket, 0);
	if (!esc) {
		snprintf(msg, msglen, "ticket_check: cannot escape the ticket");
		return JIT_EPOLICY;
	}
	url = ticket_url(c->url_template, esc);
	curl_free(esc);
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	if (!h) {
		free(url);
		snprintf(msg, msglen, "ticket_check: out of memory");
		return JIT_EPOLICY;
	}
	c->headers = h;
	if (c->token_file && add_token(c, msg, msglen) != JIT_OK) {
		free(url);
		return JIT_EINTERNAL;
	}
	/* Each call is checked; the first failure is reported. */
#define SET(opt, val) \
	do { if (e == CURLE_OK) e = curl_easy_setopt(c->easy, opt, val); } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PATH_AS_IS, 1L); /* the path is sent as built, never resolved */
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_HTTPHEADER, c->headers);
	SET(CURLOPT_USERAGENT, "jitd/" PACKAGE_VERSION);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, c);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_PRIVATE, c);
#if LIBCURL_VERSION_NUM >= 0x075700
	/* Robustness: a check that timed out during a name lookup that hangs
	 * would otherwise wait for the resolver thread, past its timeout, and
	 * every other group's checks with it. */
	SET(CURLOPT_QUICK_EXIT, 1L);
#endif
	/* Robustness: libcurl takes a proxy from http_proxy, https_proxy and
	 * all_proxy, even for a loopback host. An http:// check (accepted to
	 * loopback only) would then carry its token and its answer in clear
	 * over the network, and a loopback name would be the proxy's own: a
	 * loopback host is asked directly ("" turns the proxy off). */
	if (strncasecmp(url, "http://", 7) == 0 || url_host_is_loopback(url))
		SET(CURLOPT_PROXY, "");
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file) {
		/* ca_file alone: not added to the system's CA directory, which
		 * libcurl would otherwise search too */
		SET(CURLOPT_CAINFO, c->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL);
	}
#undef SET
	free(url); /* libcurl copied it */
	if (e != CURLE_OK) {
		snprintf(msg, msglen, "ticket_check: %s", curl_easy_strerror(e));
		return JIT_EPOLICY;
	}
	return JIT_OK;
}

/* A transfer ended with result res: judge it and finish c. */
static void judge(struct ticket_checker *tc, struct check *c, CURLcode res)
{
	char msg[512], tk[200];
	long status = 0;

	excerpt(c->ticket, tk, sizeof(tk));
	if (res == CURLE_OPERATION_TIMEDOUT) {
		snprintf(msg, sizeof(msg), "ticket_check: the ticket system did not answer for "
			 "\"%s\" within %lds", tk, c->timeout_ms / 1000);
	} else if (c->too_big) {
		snprintf(msg, sizeof(msg), "ticket_check: the answer for \"%s\" is larger than "
			 "%d bytes", tk, BODY_MAX);
	} else if (res != CURLE_OK) {
		/* libcurl's own text names hosts, ports and addresses of the
		 * network behind jitd: for jitd's log only; the client and the
		 * audit line get the kind of failure */
		log_warn("ticket_check: \"%s\": %.300s", tk,
			 c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
		snprintf(msg, sizeof(msg), "ticket_check: cannot reach the ticket system for "
			 "\"%s\": %.200s (details in jitd's log)", tk, curl_easy_strerror(res));
	} else if (curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
		snprintf(msg, sizeof(msg), "ticket_check: no HTTP status for \"%s\"", tk);
	} else if (ticket_judge(status, c->body ? c->body : "", c->body_len, c->field, c->value,
				c->ticket, msg, sizeof(msg)) == JIT_OK) {
		log_debug("ticket_check: \"%s\" approved", tk);
		finish(tc, c, JIT_OK, "approved");
		return;
	}
	log_info("%s", msg);
	finish(tc, c, JIT_EPOLICY, msg);
}

/* Takes from the queue what may start now: all of it once stopping (to
 * end it), else up to TICKET_RUNNING_MAX running. Under tc->lock. */
static struct check *dequeue_locked(struct ticket_checker *tc)
{
	struct check *q = tc->queue, **pp = &tc->queue;
	size_t room = TICKET_RUNNING_MAX - tc->n_running;

	if (!tc->stopping) {
		for (; *pp && room > 0; room--)
			pp = &(*pp)->next;
	} else {
		while (*pp)
			pp = &(*pp)->next;
	}
	if (pp == &tc->queue)
		return NULL;
	tc->queue = *pp;
	if (!tc->queue)
		tc->tail = NULL;
	*pp = NULL;
	return q;
}

/* Moves the queued checks that may start into the multi handle (again
 * while some failed to start and others wait). False once stopping. */
static bool take_queue(struct ticket_checker *tc)
{
	for (;;) {
		pthread_mutex_lock(&tc->lock);
		struct check *q = dequeue_locked(tc);
		bool stopping = tc->stopping;
		pthread_mutex_unlock(&tc->lock);
		if (!q)
			return !stopping;
		while (q) {
			struct check *c = q;
			char msg[300];
			int src;
			q = q->next;
			c->next = NULL;
			if (stopping) {
				finish(tc, c, JIT_ESHUTDOWN, "shutting down");
			} else if ((src = setup(c, msg, sizeof(msg))) != JIT_OK) {
				log_warn("%s", msg);
				/* jitd's own fault (the token file): internal, and
				 * its path and mode stay in jitd's log */
				finish(tc, c, src, src == JIT_EINTERNAL
							   ? "ticket_check: the ticket system's "
							     "token cannot be used (jitd's log says "
							     "why)"
							   : msg);
			} else if (curl_multi_add_handle(tc->multi, c->easy) != CURLM_OK) {
				finish(tc, c, JIT_EPOLICY, "ticket_check: cannot start the transfer");
			} else {
				c->next = tc->running;
				tc->running = c;
				tc->n_running++;
			}
		}
	}
}

static void unlink_running(struct ticket_checker *tc, struct check *c)
{
	for (struct check **pp = &tc->running; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			c->next = NULL;
			tc->n_running--;
			return;
		}
	}
}

static void *checker_main(void *arg)
{
	struct ticket_checker *tc = arg;
	int running = 0, msgs = 0;
	CURLMsg *m;
	privsep_thread_no_caps();

	while (take_queue(tc)) {
		bool ended = false;
		if (curl_multi_perform(tc->multi, &running) != CURLM_OK)
			log_err("ticket_check: curl_multi_perform failed");
		while ((m = curl_multi_info_read(tc->multi, &msgs)) != NULL) {
			char *priv = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			CURLcode res = m->data.result;
			CURL *easy = m->easy_handle;
			if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
				continue;
			struct check *c = (struct check *)(void *)priv;
			if (curl_multi_remove_handle(tc->multi, easy) != CURLM_OK)
				log_err("ticket_check: cannot remove a finished transfer");
			unlink_running(tc, c);
			judge(tc, c, res);
			ended = true;
		}
		if (ended)
			continue; /* a waiting check may start now */
		if (curl_multi_poll(tc->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			log_err("ticket_check: curl_multi_poll failed");
	}
	while (tc->running) {
		struct check *c = tc->running;
		tc->running = c->next;
		tc->n_running--;
		if (curl_multi_remove_handle(tc->multi, c->easy) != CURLM_OK)
			log_err("ticket_check: cannot remove a transfer");
		finish(tc, c, JIT_ESHUTDOWN, "shutting down");
	}
	return NULL;
}

int ticket_checker_new(struct ticket_checker **out)
{
	struct ticket_checker *tc;
	int err;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("ticket_check: curl_global_init failed");
		return JIT_EINTERNAL;
	}
	tc = xcalloc(1, sizeof(*tc));
	pthread_mutex_init(&tc->lock, NULL);
	tc->multi = curl_multi_init();
	if (!tc->multi) {
		log_err("ticket_check: curl_multi_init failed");
		goto fail;
	}
	/* Connections too, not only transfers: idle ones kept for reuse
	 * hold descriptors as well. */
	if (curl_multi_setopt(tc->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			      (long)TICKET_RUNNING_MAX) != CURLM_OK ||
	    curl_multi_setopt(tc->multi, CURLMOPT_MAXCONNECTS, (long)TICKET_RUNNING_MAX) !=
		    CURLM_OK) {
		log_err("ticket_check: cannot limit libcurl's connections");
		goto fail;
	}
	err = pthread_create(&tc->thread, NULL, checker_main, tc);
	if (err != 0) {
		log_err("ticket_check: cannot start its thread: %s", strerror(err));
		goto fail;
	}
	*out = tc;
	return JIT_OK;
fail:
	if (tc->multi)
		curl_multi_cleanup(tc->multi);
	pthread_mutex_destroy(&tc->lock);
	free(tc);
	curl_global_cleanup();
	return JIT_EINTERNAL;
}

void ticket_checker_free(struct ticket_checker *tc)
{
	if (!tc)
		return;
	pthread_mutex_lock(&tc->lock);
	tc->stopping = true;
	pthread_mutex_unlock(&tc->lock);
	if (curl_multi_wakeup(tc->multi) != CURLM_OK)
		log_err("ticket_check: cannot wake its thread");
	pthread_join(tc->thread, NULL);
	/* checks queued after the thread's last look */
	take_queue(tc);
	curl_multi_cleanup(tc->multi);
	pthread_mutex_destroy(&tc->lock);
	free(tc);
	curl_global_cleanup();
}

int ticket_check(struct ticket_checker *tc, const struct jit_ticket_check_cfg *cfg,
		 const char *ticket, ticket_done_fn done, void *arg)
{
	struct check *c;

	pthread_mutex_lock(&tc->lock);
	if (tc->n_live >= TICKET_LIVE_MAX) {
		pthread_mutex_unlock(&tc->lock);
		return JIT_EBUSY;
	}
	tc->n_live++;
	pthread_mutex_unlock(&tc->lock);
	c = xcalloc(1, sizeof(*c));
	c->url_template = xstrdup(cfg->url);
	c->field = xstrdup(cfg->approved_field);
	c->value = xstrdup(cfg->approved_value);
	c->ticket = xstrdup(ticket);
	c->ca_file = xstrdup(cfg->ca_file);
	c->token_file = xstrdup(cfg->token_file);
	c->timeout_ms = (long)cfg->timeout * 1000;
	c->done = done;
	c->arg = arg;
	pthread_mutex_lock(&tc->lock);
	if (tc->tail)
		tc->tail->next = c;
	else
		tc->queue = c;
	tc->tail = c;
	pthread_mutex_unlock(&tc->lock);
	if (curl_multi_wakeup(tc->multi) != CURLM_OK)
		log_err("ticket_check: cannot wake its thread");
	return JIT_OK;
}
