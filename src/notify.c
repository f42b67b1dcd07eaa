/*
 * notify.c - webhook deliveries: a bounded queue per receiver (notifyq.c),
 * one thread driving a curl multi handle, retries with backoff, HMAC-SHA256
 * signatures.
 * Trust: receivers are remote and untrusted: their answers are discarded
 * (only the status code is read), transfers are time-limited, only http and
 * https are allowed and redirects are not followed. A webhook URL often
 * carries a token, so logs show it redacted (url_redact). HMAC keys are
 * wiped when their target set is freed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "log.h"
#include "secret.h"
#include "privsep.h"
#include "notify.h"
#include "notifyq.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define SECRET_MAX 4096
#define DROP_LOG_EVERY 100
/* Receivers removed by reloads that may keep deliveries waiting. */
#define RETIRED_MAX 16

struct target {
	char *url, *shown;              /* shown: redacted for logs */
	enum notify_format format;
	unsigned char *secret;          /* NULL: no signature */
	size_t secret_len;
	int64_t timeout_ms;
	int max_attempts;
	char **events;
	size_t n_events;
};

struct notify_targets {
	struct target *t;
	size_t n;
	int refs;                       /* under notify.lock once handed to a notify */
};

struct item {
	struct notifyq_item q;          /* first: the queue's links, lane, due time */
	struct notify_targets *set;     /* holds a reference */
	struct target *t;
	char *body;
	size_t body_len;
	char event[32];
	long long seq;
	int attempts;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
};

struct notify {
	pthread_mutex_t lock;
	pthread_t thread;
	CURLM *multi;
	struct notify_targets *targets;
	struct notifyq *q;              /* under lock: the queues, one per receiver */
	struct notify_limits lim;
	bool stop;
	int64_t stop_deadline_ms;
};

static struct item *item_of(struct notifyq_item *q)
{
	return (struct item *)q; /* q is the first member */
}

/* ---- targets ---- */

static void target_clear(struct target *t)
{
	free(t->url);
	free(t->shown);
	if (t->secret) {
		wipe(t->secret, t->secret_len);
		free(t->secret);
	}
	for (size_t i = 0; i < t->n_events; i++)
		free(t->events[i]);
	free(t->events);
}

void notify_targets_free(struct notify_targets *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		target_clear(&s->t[i]);
	free(s->t);
	free(s);
}

/* Reads an HMAC key with secret.h's checks (as sasl_secret_file: a
 * regular file, no symbolic link, owned by owner, no access for group or
 * others; one trailing "\n" or "\r\n" dropped). */
static int read_key(const char *path, uid_t owner, struct target *t, char *msg, size_t msglen)
{
	char why[160];
	char *buf = NULL;
	size_t len = 0;

	if (secret_file_read(path, owner, SECRET_MAX, &buf, &len, why, sizeof(why)) != JIT_OK) {
		snprintf(msg, msglen, "notify secret_file %.200s: %s", path, why);
		return JIT_ECONFIG;
	}
	t->secret = (unsigned char *)buf;
	t->secret_len = len;
	return JIT_OK;
}

int notify_targets_load(const struct jit_config *cfg, struct notify_targets **out, char *msg,
			size_t msglen)
{
	struct notify_targets *s = xcalloc(1, sizeof(*s));
	char shown[512];
	/* the key files belong to the user jitd runs as (after dropping root) */
	uid_t owner = config_run_uid(cfg);
	s->t = xcalloc(cfg->n_notify + 1, sizeof(struct target));
	for (size_t i = 0; i < cfg->n_notify; i++, s->n++) {
		const struct jit_notify_cfg *c = &cfg->notify[i];
		struct target *t = &s->t[i];
		t->url = xstrdup(c->url);
		url_redact(c->url, shown, sizeof(shown));
		t->shown = xstrdup(shown);
		t->format = strcmp(c->format, "slack") == 0   ? NOTIFY_SLACK
			    : strcmp(c->format, "teams") == 0 ? NOTIFY_TEAMS
							      : NOTIFY_JSON;
		t->timeout_ms = c->timeout * 1000;
		t->max_attempts = c->max_attempts;
		t->events = xcalloc(c->n_events + 1, sizeof(char *));
		for (; t->n_events < c->n_events; t->n_events++)
			t->events[t->n_events] = xstrdup(c->events[t->n_events]);
		if (c->secret_file && read_key(c->secret_file, owner, t, msg, msglen) != JIT_OK) {
			s->n++;
			notify_targets_free(s);
			return JIT_ECONFIG;
		}
	}
	s->refs = 1;
	*out = s;
	return JIT_OK;
}

static bool wants(const struct target *t, const char *event)
{
	for (size_t i = 0; i < t->n_events; i++)
		if (strcmp(t->events[i], event) == 0)
			return true;
	return false;
}

/* Drops one reference (lock held); returns the set if it is now unused. */
static struct notify_targets *set_unref(struct notify_targets *s)
{
	return --s->refs == 0 ? s : NULL;
}

/* ---- formats ---- */

static const char *fld(json_t *rec, const char *k)
{
	const char *s = json_string_value(json_object_get(rec, k));
	return s && *s ? s : NULL;
}

static const char *fld_or(json_t *rec, const char *k, const char *dflt)
{
	const char *s = fld(rec, k);
	return s ? s : dflt;
}

char *notify_summary(const char *event, json_t *rec)
{
	struct strbuf sb = { 0 };
	const char *user = fld(rec, "user"), *group = fld(rec, "group");
	const char *u = user ? user : "?", *g = group ? group : "?";
	const char *by = fld(rec, "by_client"), *why = fld(rec, "end_reason");
	if (strcmp(event, "granted") == 0) {
		sb_addf(&sb, "%s was granted %s until %s", u, g, fld_or(rec, "expires_at", "?"));
	} else if (strcmp(event, "expired") == 0 || strcmp(event, "completed") == 0 ||
		   strcmp(event, "revoked") == 0) {
		sb_addf(&sb, "%s's membership of %s ended: %s", u, g, event);
		if (by)
			sb_addf(&sb, " by %s", by);
		if (fld(rec, "outcome"))
			sb_addf(&sb, " (%s)", fld(rec, "outcome"));
	} else if (strcmp(event, "expiring_soon") == 0) {
		sb_addf(&sb, "%s's membership of %s expires at %s: extend or complete it", u, g,
			fld_or(rec, "expires_at", "?"));
	} else if (strcmp(event, "refused") == 0) {
		sb_addf(&sb, "%s request refused: %s", fld_or(rec, "op", "a"), fld_or(rec, "error", "?"));
		if (user || group)
			sb_addf(&sb, " (user %s, group %s)", u, g);
	} else if (strcmp(event, "revoke_failed") == 0) {
		sb_addf(&sb, "removing %s from %s failed: %s; jitd retries", u, g,
			fld_or(rec, "outcome", "?"));
	} else if (strcmp(event, "torn_line") == 0) {
		sb_addf(&sb, "audit log: a torn line of %lld bytes before seq %lld",
			(long long)json_integer_value(json_object_get(rec, "torn_bytes")),
			(long long)json_integer_value(json_object_get(rec, "seq")));
	} else if (strcmp(event, "drift") == 0) {
		sb_addf(&sb, "drift in group %s: %s member %s", g, fld_or(rec, "kind", "?"),
			fld_or(rec, "member", "?"));
		if (fld(rec, "action"))
			sb_addf(&sb, " (%s)", fld(rec, "action"));
	} else {
		sb_addf(&sb, "%s", event);
		if (user || group)
			sb_addf(&sb, ": user %s, group %s", u, g);
	}
	if (fld(rec, "ticket"))
		sb_addf(&sb, "; ticket %s", fld(rec, "ticket"));
	if (strcmp(event, "granted") == 0 && fld(rec, "approved_by"))
		sb_addf(&sb, "; approved by %s", fld(rec, "approved_by"));
	if (why)
		sb_addf(&sb, "; reason: %s", why);
	if (fld(rec, "message") && strcmp(event, "granted") != 0)
		sb_addf(&sb, "; %s", fld(rec, "message"));
	if (fld(rec, "grant_id"))
		sb_addf(&sb, " [%s]", fld(rec, "grant_id"));
	return sb_steal(&sb);
}

/* &, < and > as HTML entities (markup to Slack and Teams); false for
 * any other character, which the caller adds. */
static bool add_entity(struct strbuf *sb, char c)
{
	const char *ent = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : NULL;
	if (ent)
		sb_addstr(sb, ent);
	return ent != NULL;
}

/* Slack reads &, < and > as markup: escape them. */
static char *slack_escape(const char *s)
{
	struct strbuf sb = { 0 };
	for (; *s; s++)
		if (!add_entity(&sb, *s))
			sb_add(&sb, s, 1);
	return sb_steal(&sb);
}

/*
 * A Teams card's text is Markdown (and some HTML): text from requests
 * (a user name, a ticket, a reason) must not become a link or markup that
 * jitd then posts under its name. The punctuation that makes links,
 * emphasis, code and headings is escaped with a backslash (not '-' or '.',
 * which only matter at a line's start and fill every time and id), and &,
 * < and > as HTML entities.
 */
static char *teams_escape(const char *s)
{
	struct strbuf sb = { 0 };
	for (; *s; s++) {
		if (add_entity(&sb, *s))
			continue;
		if (strchr("\\`*_[]()#|~", *s) != NULL)
			sb_add(&sb, "\\", 1);
		sb_add(&sb, s, 1);
	}
	return sb_steal(&sb);
}

char *notify_body(enum notify_format f, const char *event, json_t *rec, const char *line,
		  size_t len)
{
	if (f == NOTIFY_JSON)
		return xstrndup(line, len);
	char *sum = notify_summary(event, rec), *text = xasprintf("jitd: %s", sum);
	json_t *o;
	if (f == NOTIFY_SLACK) {
		char *esc = slack_escape(text);
		o = json_pack("{ss}", "text", esc);
		free(esc);
	} else {
		char *title = xasprintf("jitd: %s", event), *esc = teams_escape(sum);
		/* summary: plain text (the notification's preview); text: Markdown */
		o = json_pack("{ssssssssss}", "@type", "MessageCard", "@context",
			      "https://schema.org/extensions", "summary", text, "title", title,
			      "text", esc);
		free(esc);
		free(title);
	}
	char *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	free(sum);
	free(text);
	return body ? body : xstrndup(line, len);
}

int notify_signature(const unsigned char *key, size_t keylen, const char *timestamp,
		     const char *body, size_t bodylen, char out[72])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t tl = strlen(timestamp);
	unsigned char *data = xmalloc(tl + 1 + bodylen);
	memcpy(data, timestamp, tl);
	data[tl] = '.';
	memcpy(data + tl + 1, body, bodylen);
	unsigned char *r = HMAC(EVP_sha256(), key, (int)keylen, data, tl + 1 + bodylen, md, &mdlen);
	free(data);
	if (!r || mdlen != 32)
		return JIT_EINTERNAL;
	memcpy(out, "sha256=", 7);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	return JIT_OK;
}

/* ---- the queues ---- */

/* Makes the receivers of s the configured ones (lock held); the waiting
 * deliveries of receivers removed long ago come back in *dropped. */
static void configure(struct notify *n, const struct notify_targets *s,
		      struct notifyq_item **dropped)
{
	const char **keys = xcalloc(s->n + 1, sizeof(char *));
	for (size_t i = 0; i < s->n; i++)
		keys[i] = s->t[i].url;
	notifyq_configure(n->q, keys, s->n, dropped);
	free(keys);
}

static void item_free(struct notify *n, struct item *it)
{
	struct notify_targets *unused;
	pthread_mutex_lock(&n->lock);
	unused = set_unref(it->set);
	pthread_mutex_unlock(&n->lock);
	notify_targets_free(unused);
	curl_slist_free_all(it->hdrs);
	free(it->body);
	free(it);
}

/* Frees what notifyq_configure() dropped (waiting, never in progress):
 * one line per receiver. */
static void free_dropped(struct notify *n, struct notifyq_item *q)
{
	while (q) {
		char shown[512];
		size_t count = 0;
		snprintf(shown, sizeof(shown), "%s", item_of(q)->t->shown);
		while (q && strcmp(item_of(q)->t->shown, shown) == 0) {
			struct item *it = item_of(q);
			q = q->next;
			count++;
			item_free(n, it);
		}
		log_warn("notify: dropped %zu waiting notification(s) for %s: it is no longer "
			 "configured, and more than %d such receivers still had notifications waiting",
			 count, shown, RETIRED_MAX);
	}
}

void notify_event(struct notify *n, const char *event, json_t *rec, const char *line,
		  size_t len)
{
	struct notify_targets *s, *unused;
	bool queued = false;
	pthread_mutex_lock(&n->lock);
	s = n->targets;
	s->refs++;
	pthread_mutex_unlock(&n->lock);
	for (size_t i = 0; i < s->n; i++) {
		struct target *t = &s->t[i];
		uint64_t d = 0;
		if (!wants(t, event))
			continue;
		struct item *it = xcalloc(1, sizeof(*it));
		it->set = s;
		it->t = t;
		it->body = notify_body(t->format, event, rec, line, len);
		it->body_len = strlen(it->body);
		snprintf(it->event, sizeof(it->event), "%s", event);
		it->seq = (long long)json_integer_value(json_object_get(rec, "seq"));
		int64_t now = mono_ms();
		pthread_mutex_lock(&n->lock);
		int rc = notifyq_push(n->q, notifyq_lane(n->q, t->url), &it->q, now, &d);
		if (rc == JIT_OK)
			s->refs++;
		pthread_mutex_unlock(&n->lock);
		if (rc == JIT_OK) {
			queued = true;
			continue;
		}
		/* Only this receiver's queue is full: the others still take theirs. */
		if (d == 1 || d % DROP_LOG_EVERY == 0)
			log_warn("notify: queue full (%zu deliveries waiting); dropped the %s "
				 "notification of seq %lld for %s (%llu dropped so far)",
				 n->lim.queue_max, event, it->seq, t->shown, (unsigned long long)d);
		free(it->body);
		free(it);
	}
	pthread_mutex_lock(&n->lock);
	unused = set_unref(s);
	pthread_mutex_unlock(&n->lock);
	notify_targets_free(unused);
	if (queued && curl_multi_wakeup(n->multi) != CURLM_OK)
		log_debug("notify: cannot wake the delivery thread");
}

void notify_set_targets(struct notify *n, struct notify_targets *t)
{
	struct notify_targets *unused;
	struct notifyq_item *dropped = NULL;
	pthread_mutex_lock(&n->lock);
	unused = set_unref(n->targets);
	n->targets = t;
	configure(n, t, &dropped);
	pthread_mutex_unlock(&n->lock);
	notify_targets_free(unused);
	free_dropped(n, dropped);
}

static void stats_of(const struct notifyq_stats *s, struct notify_stats *out)
{
	out->queued = s->queued;
	out->delivered = s->delivered;
	out->attempts_failed = s->attempts_failed;
	out->gave_up = s->gave_up;
	out->dropped = s->dropped;
	out->waiting = s->waiting;
}

void notify_get_stats(struct notify *n, struct notify_stats *out)
{
	struct notifyq_stats s;
	pthread_mutex_lock(&n->lock);
	notifyq_totals(n->q, &s);
	pthread_mutex_unlock(&n->lock);
	stats_of(&s, out);
}

int notify_get_receiver_stats(struct notify *n, const char *url, struct notify_stats *out)
{
	struct notifyq_stats s;
	pthread_mutex_lock(&n->lock);
	int rc = notifyq_lane_stats(n->q, url, &s);
	pthread_mutex_unlock(&n->lock);
	if (rc == JIT_OK)
		stats_of(&s, out);
	return rc;
}

/* ---- the delivery thread ---- */

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

/* "Name: value"; an empty value removes a header curl would add itself. */
static int add_header(struct item *it, const char *name, const char *val)
{
	char *h = *val ? xasprintf("%s: %s", name, val) : xasprintf("%s:", name);
	struct curl_slist *l = curl_slist_append(it->hdrs, h);
	free(h);
	if (!l)
		return JIT_EINTERNAL;
	it->hdrs = l;
	return JIT_OK;
}

static int build_headers(struct item *it)
{
	char ts[32], seq[32], sig[72];
	snprintf(ts, sizeof(ts), "%lld", (long long)now_s());
	snprintf(seq, sizeof(seq), "%lld", it->seq);
	curl_slist_free_all(it->hdrs);
	it->hdrs = NULL;
	if (add_header(it, "Content-Type", "application/json") != JIT_OK ||
	    add_header(it, "X-Jitd-Event", it->event) != JIT_OK ||
	    add_header(it, "X-Jitd-Seq", seq) != JIT_OK ||
	    add_header(it, "X-Jitd-Timestamp", ts) != JIT_OK ||
	    add_header(it, "Expect", "") != JIT_OK)
		return JIT_EINTERNAL;
	if (!it->t->secret)
		return JIT_OK;
	if (notify_signature(it->t->secret, it->t->secret_len, ts, it->body, it->body_len, sig) !=
	    JIT_OK)
		return JIT_EINTERNAL;
	return add_header(it, "X-Jitd-Signature", sig);
}

/* Creates the transfer of it and adds it to the multi handle. Only this
 * thread touches it->easy. */
static int start(struct notify *n, struct item *it)
{
	const struct target *t = it->t;
	CURL *e = curl_easy_init();
	int bad = 0;
	if (!e || build_headers(it) != JIT_OK) {
		snprintf(it->errbuf, sizeof(it->errbuf), "cannot set up the request");
		if (e)
			curl_easy_cleanup(e);
		return JIT_EINTERNAL;
	}
	it->errbuf[0] = '\0';
	bad |= curl_easy_setopt(e, CURLOPT_URL, t->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
				(long)(t->timeout_ms < 5000 ? t->timeout_ms : 5000)) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->body_len) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, it->hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "jitd/" PACKAGE_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, it->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, it) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075700
	/* Robustness: a transfer that timed out during a name lookup that hangs
	 * would otherwise wait for the resolver thread, and stall every other
	 * receiver with it (and the drain at shutdown). */
	bad |= curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L) != CURLE_OK;
#endif
	/* Robustness: libcurl takes a proxy from http_proxy and the like even
	 * for a loopback receiver, which would carry the audit lines over the
	 * network (in clear for http://) to a proxy's own loopback: a loopback
	 * receiver is reached directly ("" turns the proxy off). */
	if (url_host_is_loopback(t->url))
		bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
	if (bad || curl_multi_add_handle(n->multi, e) != CURLM_OK) {
		snprintf(it->errbuf, sizeof(it->errbuf), "cannot set up the request");
		curl_easy_cleanup(e);
		return JIT_EINTERNAL;
	}
	it->easy = e;
	return JIT_OK;
}

static int64_t backoff_ms(const struct notify *n, int attempts)
{
	int64_t d = n->lim.retry_min_ms;
	for (int i = 1; i < attempts && d < n->lim.retry_max_ms; i++)
		d *= 2;
	return d < n->lim.retry_max_ms ? d : n->lim.retry_max_ms;
}

/*
 * A transfer ended (or could not start): delivered, retried, or given up.
 * Logging: a receiver that starts failing is a warning, and so is its
 * recovery; single retries are debug (a dead receiver must not flood the
 * log); a notification given up is an error, each time.
 */
static void finish(struct notify *n, struct item *it, bool ok, bool retryable, const char *why)
{
	bool retry, changed;
	if (it->easy) {
		if (curl_multi_remove_handle(n->multi, it->easy) != CURLM_OK)
			log_debug("notify: cannot remove a transfer");
		curl_easy_cleanup(it->easy);
		it->easy = NULL;
	}
	it->attempts++;
	pthread_mutex_lock(&n->lock);
	changed = notifyq_set_failing(it->q.lane, !ok);
	retry = !ok && retryable && it->attempts < it->t->max_attempts && !n->stop;
	pthread_mutex_unlock(&n->lock);
	/* Logged while the item is still in flight, which only this thread
	 * starts or ends: once it waits in its receiver's queue again, a
	 * reload may drop and free it (notifyq_configure). */
	if (changed && ok)
		log_warn("notify: deliveries to %s succeed again", it->t->shown);
	else if (changed)
		log_warn("notify: delivery of the %s notification of seq %lld to %s failed (%s); "
			 "retrying with backoff (further failures are logged at debug level until "
			 "a delivery succeeds)", it->event, it->seq, it->t->shown, why);
	else if (retry)
		log_debug("notify: attempt %d of the %s notification of seq %lld to %s failed (%s)",
			  it->attempts, it->event, it->seq, it->t->shown, why);
	else if (ok)
		log_debug("notify: %s notification of seq %lld delivered to %s", it->event, it->seq,
			  it->t->shown);
	if (!ok && !retry)
		log_err("notify: gave up the %s notification of seq %lld to %s after %d attempt(s): %s",
			it->event, it->seq, it->t->shown, it->attempts, why);
	pthread_mutex_lock(&n->lock);
	if (retry)
		notifyq_retry(n->q, &it->q, mono_ms() + backoff_ms(n, it->attempts));
	else
		notifyq_done(n->q, &it->q, ok);
	pthread_mutex_unlock(&n->lock);
	/* after notifyq_retry, `it` belongs to the queue: not touched again */
	if (!retry)
		item_free(n, it);
}

static void collect(struct notify *n)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(n->multi, &left)) != NULL) {
		struct item *it = NULL;
		long code = 0;
		char why[CURL_ERROR_SIZE + 64];
		if (m->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&it) != CURLE_OK ||
		    !it)
			continue;
		CURLcode res = m->data.result;
		if (res == CURLE_OK &&
		    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
			code = 0;
		if (res != CURLE_OK) {
			snprintf(why, sizeof(why), "%s", it->errbuf[0] ? it->errbuf : curl_easy_strerror(res));
			finish(n, it, false, true, why);
		} else if (code >= 200 && code < 300) {
			finish(n, it, true, false, "");
		} else {
			snprintf(why, sizeof(why), "HTTP %ld", code);
			finish(n, it, false, code >= 500 || code == 408 || code == 429, why);
		}
	}
}

/* Starts due items while their receivers have slots (notifyq.h). */
static void start_due(struct notify *n, int64_t now)
{
	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct notifyq_item *q = notifyq_start(n->q, now);
		if (!q)
			break;
		struct item *it = item_of(q);
		pthread_mutex_unlock(&n->lock);
		if (start(n, it) != JIT_OK)
			finish(n, it, false, true, it->errbuf);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
}

/* How long to sleep: until the next due item, curl's own timer, or a
 * stop deadline; at most a minute (a new event wakes the thread). */
static long sleep_ms(struct notify *n, int64_t now)
{
	long t = 60000, ct = -1;
	pthread_mutex_lock(&n->lock);
	int64_t due = notifyq_next_due(n->q, true);
	if (due >= 0)
		t = due <= now ? 0 : (long)(due - now < t ? due - now : t);
	if (n->stop)
		t = n->stop_deadline_ms <= now ? 0 : (long)(n->stop_deadline_ms - now < t ?
							     n->stop_deadline_ms - now : t);
	pthread_mutex_unlock(&n->lock);
	if (curl_multi_timeout(n->multi, &ct) == CURLM_OK && ct >= 0 && ct < t)
		t = ct;
	return t;
}

/* Stopping: done once nothing due is left, or at the deadline. */
static bool stop_now(struct notify *n, int64_t now)
{
	bool done;
	pthread_mutex_lock(&n->lock);
	int64_t due = notifyq_next_due(n->q, false);
	done = n->stop && (now >= n->stop_deadline_ms ||
			   (notifyq_inflight(n->q) == 0 && (due < 0 || due > n->stop_deadline_ms)));
	pthread_mutex_unlock(&n->lock);
	return done;
}

static void *run(void *arg)
{
	struct notify *n = arg;
	int running = 0;
	privsep_thread_no_caps();
	for (;;) {
		int64_t now = mono_ms();
		if (stop_now(n, now))
			break;
		start_due(n, now);
		if (curl_multi_perform(n->multi, &running) != CURLM_OK)
			log_err("notify: curl_multi_perform failed");
		collect(n);
		if (curl_multi_poll(n->multi, NULL, 0, (int)sleep_ms(n, mono_ms()), NULL) != CURLM_OK)
			log_err("notify: curl_multi_poll failed");
	}
	return NULL;
}

int notify_new(struct notify_targets *t, const struct notify_limits *lim, struct notify **out)
{
	static const struct notify_limits defaults = {
		.queue_max = 1000, .retry_min_ms = 1000, .retry_max_ms = 60000, .parallel = 4,
		.drain_ms = 2000, .parallel_total = 16,
	};
	struct notify *n = xcalloc(1, sizeof(*n));
	struct notifyq_item *none = NULL;
	n->lim = lim ? *lim : defaults;
	if (n->lim.queue_max == 0)
		n->lim.queue_max = 1;
	if (n->lim.parallel < 1)
		n->lim.parallel = 1;
	if (n->lim.parallel_total < n->lim.parallel)
		n->lim.parallel_total = n->lim.parallel;
	if (n->lim.retry_min_ms < 1)
		n->lim.retry_min_ms = 1;
	n->targets = t;
	n->q = notifyq_new(&(struct notifyq_limits){ .queue_max = n->lim.queue_max,
						     .lane_parallel = n->lim.parallel,
						     .total_parallel = n->lim.parallel_total,
						     .retired_max = RETIRED_MAX });
	configure(n, t, &none); /* nothing queued yet: nothing dropped */
	pthread_mutex_init(&n->lock, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	n->multi = curl_multi_init();
	if (!n->multi) {
		curl_global_cleanup();
		goto fail;
	}
	/* Idle connections kept for reuse hold descriptors too: no more of
	 * them than transfers at once (libcurl keeps 4 per handle added). */
	if (curl_multi_setopt(n->multi, CURLMOPT_MAXCONNECTS, (long)n->lim.parallel_total) !=
	    CURLM_OK) {
		log_err("notify: cannot limit libcurl's connections");
		(void)curl_multi_cleanup(n->multi);
		curl_global_cleanup();
		goto fail;
	}
	int err = pthread_create(&n->thread, NULL, run, n);
	if (err != 0) {
		log_err("notify: cannot start the delivery thread: %s", strerror(err));
		(void)curl_multi_cleanup(n->multi);
		curl_global_cleanup();
		goto fail;
	}
	*out = n;
	return JIT_OK;
fail:
	pthread_mutex_destroy(&n->lock);
	notifyq_free(n->q);
	notify_targets_free(t);
	free(n);
	return JIT_EINTERNAL;
}

/* Takes any delivery left (in progress first), or NULL. */
static struct item *take_left(struct notify *n)
{
	pthread_mutex_lock(&n->lock);
	struct notifyq_item *q = notifyq_take_any(n->q);
	pthread_mutex_unlock(&n->lock);
	return q ? item_of(q) : NULL;
}

/* Frees what is left after the thread stopped, logged per receiver (the
 * queue hands them out receiver by receiver). */
static void free_left(struct notify *n)
{
	struct item *it = take_left(n);
	while (it) {
		char shown[512];
		size_t left = 0;
		snprintf(shown, sizeof(shown), "%s", it->t->shown);
		for (; it && strcmp(it->t->shown, shown) == 0; it = take_left(n)) {
			left++;
			if (it->easy) {
				if (curl_multi_remove_handle(n->multi, it->easy) != CURLM_OK)
					log_debug("notify: cannot remove a transfer");
				curl_easy_cleanup(it->easy);
				it->easy = NULL;
			}
			item_free(n, it);
		}
		log_warn("notify: stopping with %zu notification(s) undelivered for %s", left, shown);
	}
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	n->stop_deadline_ms = mono_ms() + n->lim.drain_ms;
	pthread_mutex_unlock(&n->lock);
	if (curl_multi_wakeup(n->multi) != CURLM_OK)
		log_debug("notify: cannot wake the delivery thread");
	pthread_join(n->thread, NULL);
	free_left(n);
	(void)curl_multi_cleanup(n->multi);
	curl_global_cleanup();
	pthread_mutex_lock(&n->lock);
	struct notify_targets *unused = set_unref(n->targets);
	pthread_mutex_unlock(&n->lock);
	notify_targets_free(unused);
	notifyq_free(n->q);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
