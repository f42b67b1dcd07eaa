/*
 * util.h - small helpers shared by every module: allocation that never
 * returns NULL (it aborts on exhaustion, the one case where dying is the
 * safe choice), secret wiping, time, RFC 3339 formatting, random ids, a
 * throttle for lines a flood must not multiply, a growable string buffer,
 * UTF-8 decoding, passwd and group look-ups, and checks that a directory,
 * or the way to a CA file, is safe from other users.
 */
#ifndef JITD_UTIL_H
#define JITD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include "err.h"

void *xmalloc(size_t n);                 /* never NULL */
void *xcalloc(size_t n, size_t size);    /* never NULL, overflow-checked */
void *xrealloc(void *p, size_t n);       /* never NULL */
char *xstrdup(const char *s);            /* NULL in -> NULL out */
char *xstrndup(const char *s, size_t n);
/* Formats into a new heap string; never NULL. */
char *xasprintf(const char *fmt, ...) JIT_PRINTF(1, 2);

/* Overwrites n bytes of p so the compiler cannot elide it. NULL-safe. */
void wipe(void *p, size_t n);
/* Wipes and frees a NUL-terminated secret. NULL-safe. */
void free_secret(char *s);

/* Seconds since the epoch (wall clock), and a monotonic clock (the one
 * pthread condition variables set to CLOCK_MONOTONIC wait on) in ms and in
 * microseconds. */
int64_t now_s(void);
int64_t mono_ms(void);
int64_t mono_us(void);

/* Formats t (UTC) as "2026-11-23T16:27:51Z" into buf (>= 21 bytes). */
void fmt_rfc3339(int64_t t, char buf[32]);
/* Parses "YYYY-MM-DDTHH:MM:SSZ"; 0 or JIT_EBADREQ. */
int parse_rfc3339(const char *s, int64_t *out) JIT_WUR;

/* Fills out with 2*nbytes lowercase hex chars + NUL from getrandom(). */
int random_hex(char *out, size_t nbytes) JIT_WUR;

/* Checked decimal conversion of the whole string; JIT_EBADREQ if it is not
 * an integer in [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) JIT_WUR;

/* Copies url without what may be a secret: the userinfo, and the path and
 * query (many webhooks carry a token there), which become three stars:
 * "https://user:pw@host:8443/T0/B1/xyz" -> "https://host:8443/" "***".
 * Where the host cannot be told from a user name or password (url_host()),
 * only the scheme is left: "https://" "***" "/" "***". */
void url_redact(const char *url, char *buf, size_t len);

/* The host and port of url, without a user name and password: a pointer
 * into url, its length in *len (which may be 0). NULL when url has no
 * "://", or when the host cannot be told from a user name or password,
 * which people type with a '/', '?' or '#' in it: where an '@' follows the
 * first of these, the text before that is the host only if it has no '@'
 * and is a name with a dot, "localhost" or an [IPv6] address (a port of
 * digits allowed), or a name alone with the '@' in the query or fragment.
 * "https://x.webhook.office.com/webhookb2/a@b/..." and "https://itsm/?m=a@b"
 * have a host, but not "https://bot:s3cr?t@hooks.example.com/",
 * "https://u:pa/ss@host/", "https://AbC/dEf@host/" (a token), nor so
 * "https://itsm/api/a@b". */
const char *url_host(const char *url, size_t *len);

/* Is the host of url (url_host()) localhost, 127.0.0.1 or [::1]? */
bool url_host_is_loopback(const char *url);

/* Closes every descriptor from fd up: close_range(2), or where the kernel
 * or a seccomp filter refuses it, one close(2) each up to the descriptor
 * limit. Async-signal-safe (between fork and exec). 0, or -1 when the
 * limit cannot be read. */
int close_from(int fd);

/* May url hold a user name or password: an '@' before the first '/', '?'
 * or '#', or an '@' after it where url_host() cannot tell the host
 * ("u:pa/ss@host", "bot:s3cr?t@host", and "https://itsm/a@b": a name
 * without a dot before a '/' might be a token's start)? An '@' in the path
 * of a URL with a host ("https://h.example/webhookb2/x@y/...") or in its
 * query ("https://itsm/?m=a@b") is not one. */
bool url_has_userinfo(const char *url);

/* May jitd trust directory path, owned by uid owner (or root), not to have
 * its entries swapped or planted by someone else? Not when another user
 * owns it, nor when group or others may write it, sticky or not (a sticky
 * directory keeps entries from being removed, not a free name from being
 * taken). JIT_OK, or JIT_ECONFIG / JIT_EIO with the reason in why. */
int dir_trusted(const char *path, uid_t owner, char *why, size_t whylen) JIT_WUR;

/* May jitd trust a file others could use to deceive it (a CA file), at
 * absolute path, not to be changed or replaced by anyone but root and uid
 * owner? It must lead (through symbolic links, which are followed) to a
 * regular file owned by one of them and not writable by group or others;
 * and every directory a name on the way is looked up in (on the path as
 * written, on the path links lead to, and holding each link) must be owned
 * by one of them and not writable by group or others, unless it is sticky
 * (/tmp) and the entry looked up in it belongs to root or owner, who alone
 * may then rename or remove it. JIT_OK, or JIT_ECONFIG / JIT_EIO with the
 * reason in why: "directory D: ..." for a directory, "resolves to F: ..."
 * for where a link led. */
int file_trusted(const char *path, uid_t owner, char *why, size_t whylen) JIT_WUR;

/*
 * A throttle lets one event through per period and counts those it holds
 * back, so that a flood (of refusals, say) costs one audit or log line per
 * period, which says how many were not written. Zeroed, the first event
 * passes. Not locked: the caller serialises.
 */
struct throttle {
	int64_t last_ms;        /* mono_ms() when one last passed; 0: none yet */
	int64_t held;           /* events held back since */
};
/* True if the event at now_ms passes (the first, or period_ms or more
 * after the last that passed); *held is then the number held back since,
 * and the count restarts. False: it is counted as held back. */
bool throttle_pass(struct throttle *t, int64_t now_ms, int64_t period_ms, int64_t *held) JIT_WUR;
/* True if events were held back and period_ms has passed since one last
 * passed: *held is their number, and a new period starts now (for a
 * summary line when no further event comes). */
bool throttle_flush(struct throttle *t, int64_t now_ms, int64_t period_ms, int64_t *held) JIT_WUR;

/* Growable string; sb.s is always NUL-terminated once anything was added. */
struct strbuf {
	char *s;
	size_t len, cap;
};
void sb_add(struct strbuf *sb, const char *s, size_t n);
void sb_addf(struct strbuf *sb, const char *fmt, ...) JIT_PRINTF(2, 3);
void sb_addstr(struct strbuf *sb, const char *s);
char *sb_steal(struct strbuf *sb); /* returns the string ("" if empty); sb reset */
void sb_free(struct strbuf *sb);

/* Decodes one UTF-8 sequence at p (n > 0 bytes left): its code point and
 * length, or false for a malformed, overlong or surrogate sequence. */
bool utf8_decode(const unsigned char *p, size_t n, unsigned *cp, size_t *len);
/* Is s well-formed UTF-8 (as JSON strings, and so the audit log, need)? */
bool utf8_valid(const char *s);

/* One look-up in the passwd or group database, by name or by id, with a
 * buffer that grows while the name service answers ERANGE (up to 2 MB). */
enum nss_kind { NSS_USER_BY_NAME, NSS_USER_BY_ID, NSS_GROUP_BY_NAME, NSS_GROUP_BY_ID };
struct nss_entry {
	int64_t id;  /* the uid or gid */
	int64_t gid; /* a user's primary group */
	char *name;  /* malloc'd; free it */
};
/* 0: *found says whether the entry is there (*e filled when it is);
 * otherwise the error number of the failure (ERANGE: an entry is there
 * but larger than 2 MB). name is used by the _BY_NAME kinds, id by the
 * _BY_ID ones. */
int nss_lookup(enum nss_kind kind, const char *name, int64_t id, struct nss_entry *e,
	       bool *found) JIT_WUR;

#endif
