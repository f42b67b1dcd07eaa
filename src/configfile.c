/*
 * configfile.c - reading jitd.conf, and collecting what is wrong with it.
 * Trust boundary: the file is trusted only if nobody but its owner (root or
 * the daemon's user) can write it, so its mode is checked on the open
 * descriptor before a byte is parsed, and @include (which would pull in
 * files that were never checked) is refused. A lexer pass finds the integer
 * literals libconfig would truncate. Every problem found, here or by the
 * other config files, becomes a "FILE:LINE: KEY: message" line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "configpriv.h"
#include "util.h"

#define CFG_MAX_BYTES (1024 * 1024) /* a config file larger than this is refused */
#define CFG_MAX_LINES 65535         /* libconfig keeps line numbers in 16 bits */
#define CFG_MAX_ERRORS 50           /* report this many, then summarize */

/* ---- error collection ---- */

void cerr(struct ctx *cx, int line, const char *key, const char *fmt, ...)
{
	struct strbuf sb = { 0 };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, not lost */
	va_end(ap);
	sb_addstr(&sb, cx->path);
	if (line > 0)
		sb_addf(&sb, ":%d", line);
	sb_addstr(&sb, ": ");
	if (key)
		sb_addf(&sb, "%s: ", key);
	sb_addf(&sb, "%s\n", msg);
	if (cx->n_errs == cx->cap_errs) {
		cx->cap_errs = cx->cap_errs ? cx->cap_errs * 2 : 8;
		cx->errs = xrealloc(cx->errs, cx->cap_errs * sizeof(*cx->errs));
	}
	cx->errs[cx->n_errs].line = line;
	cx->errs[cx->n_errs].seq = (int)cx->n_errs;
	cx->errs[cx->n_errs].text = sb_steal(&sb);
	cx->n_errs++;
	sb_free(&sb);
}

static int err_cmp(const void *a, const void *b)
{
	const struct cfg_error *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* All errors in line order, at most CFG_MAX_ERRORS of them; frees them. */
char *errors_join(struct ctx *cx)
{
	struct strbuf sb = { 0 };

	if (cx->n_errs > 1)
		qsort(cx->errs, cx->n_errs, sizeof(*cx->errs), err_cmp);
	for (size_t i = 0; i < cx->n_errs; i++) {
		if (i < CFG_MAX_ERRORS)
			sb_addstr(&sb, cx->errs[i].text);
		free(cx->errs[i].text);
	}
	if (cx->n_errs > CFG_MAX_ERRORS)
		sb_addf(&sb, "%s: %zu more errors not shown\n", cx->path,
			cx->n_errs - CFG_MAX_ERRORS);
	free(cx->errs);
	cx->errs = NULL;
	cx->n_errs = cx->cap_errs = 0;
	return sb_steal(&sb);
}

/* Remembers a file key of scope (if set) for check_files(). */
void file_ref(struct ctx *cx, const config_setting_t *scope, const char *key,
	      const char *path, bool secret)
{
	config_setting_t *m;

	if (!path || !*path || !(m = config_setting_get_member(scope, key)))
		return;
	cx->files = xrealloc(cx->files, (cx->n_files + 1) * sizeof(*cx->files));
	cx->files[cx->n_files++] = (struct file_ref){ key, path,
						      (int)config_setting_source_line(m), secret };
}

/* ---- reading the file ---- */

/*
 * Opens path, checks the descriptor (regular file, owner, not writable by
 * group or others, size) and reads it whole. Checking the open descriptor,
 * not the name, leaves no window for the file to be swapped in between.
 */
int read_config_file(struct ctx *cx, const char *path, char **textp)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, rc = JIT_ECONFIG;

	/* O_NONBLOCK: a FIFO in the config's place must not hang the load. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cerr(cx, 0, NULL, "cannot open: %s", strerror(errno));
		return JIT_ECONFIG;
	}
	if (fstat(fd, &st) != 0) {
		cerr(cx, 0, NULL, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		cerr(cx, 0, NULL, "config file is not a regular file");
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		cerr(cx, 0, NULL, "config file is writable by others (mode %04o)",
		     (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		cerr(cx, 0, NULL, "config file is owned by uid %lu, not by root or uid %lu",
		     (unsigned long)st.st_uid, (unsigned long)geteuid());
		goto out;
	}
	if (st.st_size > CFG_MAX_BYTES) {
		cerr(cx, 0, NULL, "config file is larger than %d bytes", CFG_MAX_BYTES);
		goto out;
	}
	text = xmalloc((size_t)st.st_size + 2);
	for (;;) {
		/* Read one byte beyond the size fstat saw to notice growth. */
		ssize_t n = read(fd, text + got, (size_t)st.st_size + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cerr(cx, 0, NULL, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size) {
			cerr(cx, 0, NULL, "config file changed while being read");
			goto out;
		}
	}
	text[got] = '\0';
	if (memchr(text, '\0', got)) {
		cerr(cx, 0, NULL, "config file contains a NUL byte");
		goto out;
	}
	*textp = text;
	text = NULL;
	rc = JIT_OK;
out:
	free(text);
	close(fd);
	return rc;
}

/*
 * Checks an integer literal token t[0..n). libconfig 1.5 stores an integer
 * without an L suffix in an int and silently truncates larger values
 * (uid = 4294967296 would become uid 0), so such a literal is an error
 * here, reported at its own line under the last key seen. (Matching it to
 * libconfig's setting afterwards by line let "uid =" followed by the value
 * on the next line through, truncated.) Returns JIT_ECONFIG for one.
 */
static int lex_number(struct ctx *cx, const char *t, size_t n, int line, const char *key)
{
	bool neg = false, hex = false;
	size_t i = 0, digits = 0;
	uint64_t v = 0;

	if (t[i] == '-' || t[i] == '+')
		neg = t[i++] == '-';
	if (n - i > 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
		hex = true;
		i += 2;
	}
	for (; i < n; i++) {
		int d;
		if (t[i] >= '0' && t[i] <= '9')
			d = t[i] - '0';
		else if (hex && isxdigit((unsigned char)t[i]))
			d = tolower((unsigned char)t[i]) - 'a' + 10;
		else
			break;
		if (v <= UINT32_MAX)
			v = v * (hex ? 16 : 10) + (uint64_t)d;
		digits++;
	}
	if (digits == 0 || (i == n - 1 && t[i] == 'L') ||
	    (i == n - 2 && t[i] == 'L' && t[i + 1] == 'L'))
		return JIT_OK; /* nothing, or a 64-bit literal that libconfig keeps whole */
	if (i != n)
		return JIT_OK; /* a float or junk: libconfig types or refuses it */
	if (v <= (uint64_t)INT32_MAX || (neg && !hex && v == (uint64_t)INT32_MAX + 1))
		return JIT_OK;
	cerr(cx, line, key[0] ? key : NULL,
	     "integer out of 32-bit range (write a larger value with an L suffix, "
	     "e.g. 4000000000L)");
	return JIT_ECONFIG;
}

/* The name (a setting's key, true, false ...) that starts at t[i] into
 * key, cut to keylen; returns the position after it. */
static size_t scan_name(const char *t, size_t len, size_t i, char *key, size_t keylen)
{
	size_t j = i;
	while (j < len && (isalnum((unsigned char)t[j]) || strchr("-_*", t[j])))
		j++;
	snprintf(key, keylen, "%.*s", (int)(j - i), t + i);
	return j;
}

/*
 * A light pass over the raw text before libconfig sees it: counts lines,
 * refuses @include, and finds integer literals that would be truncated.
 * It knows strings and comments so that neither can fool it.
 */
int lex_scan(struct ctx *cx, const char *t, size_t len)
{
	char key[64] = "";
	int line = 1, rc = JIT_OK;
	size_t i = 0;

	while (i < len) {
		char c = t[i], nx = i + 1 < len ? t[i + 1] : '\0';
		if (c == '\n') {
			line++;
			i++;
		} else if (c == '"') {
			for (i++; i < len && t[i] != '"'; i++) {
				if (t[i] == '\\' && i + 1 < len)
					i++;
				line += t[i] == '\n';
			}
			i++;
		} else if (c == '#' || (c == '/' && nx == '/')) {
			while (i < len && t[i] != '\n')
				i++;
		} else if (c == '/' && nx == '*') {
			for (i += 2; i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/');
			     i++)
				line += t[i] == '\n';
			i += 2;
		} else if (c == '@' && strncmp(t + i, "@include", 8) == 0) {
			cerr(cx, line, "@include",
			     "include directives are not supported "
			     "(only this file's permissions are checked)");
			rc = JIT_ECONFIG;
			i++;
		} else if (isalpha((unsigned char)c) || c == '*') {
			i = scan_name(t, len, i, key, sizeof(key));
		} else if (isdigit((unsigned char)c) ||
			   ((c == '-' || c == '+') && (isdigit((unsigned char)nx) || nx == '.'))) {
			size_t j = i + 1;
			while (j < len && (isalnum((unsigned char)t[j]) || t[j] == '.' ||
					   ((t[j] == '-' || t[j] == '+') &&
					    (t[j - 1] == 'e' || t[j - 1] == 'E'))))
				j++;
			if (lex_number(cx, t + i, j - i, line, key) != JIT_OK)
				rc = JIT_ECONFIG;
			i = j;
		} else {
			i++;
		}
		if (line > CFG_MAX_LINES) {
			cerr(cx, 0, NULL, "config file has more than %d lines", CFG_MAX_LINES);
			return JIT_ECONFIG;
		}
	}
	return rc;
}

/* The value of a libconfig string literal's body (raw, n bytes): its
 * escapes \\ \" \f \n \r \t \xHH decoded. */
static char *literal_value(const char *raw, size_t n)
{
	struct strbuf sb = { 0 };
	for (size_t i = 0; i < n; i++) {
		char ch = raw[i];
		if (ch == '\\' && i + 1 < n) {
			char e = raw[++i];
			ch = e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
			if (e == 'x' && i + 2 < n && isxdigit((unsigned char)raw[i + 1]) &&
			    isxdigit((unsigned char)raw[i + 2])) {
				char hex[3] = { raw[i + 1], raw[i + 2], '\0' };
				ch = (char)strtol(hex, NULL, 16);
				i += 2;
			}
		}
		sb_add(&sb, &ch, 1);
	}
	return sb_steal(&sb);
}

/*
 * The literal written for a redacted url value v (decoded): its scheme and
 * host (never a user or password), then "/", and "%s" if v is a
 * ticket_check URL's form (one %s, see ticket_url_conversions), so the
 * listener's checks pass as the engine's did; a host that is not plain
 * (a %, a quote, a backslash ...) or cannot be told from a password
 * (url_host) becomes redacted.invalid. A plain one is
 * at most one byte longer than the value's literal; redacted.invalid at
 * most 30 bytes in all (the channel takes the largest config file plus
 * 4 KiB).
 */
static void put_redacted_url(struct strbuf *sb, const char *v)
{
	const char *sep = strstr(v, "://");
	size_t n = 0;
	const char *host = url_host(v, &n); /* as url_redact: never a user or password */
	bool plain = sep && sep > v && host && n > 0;
	for (const char *p = v; plain && p < sep; p++)
		plain = isalpha((unsigned char)*p);
	for (size_t i = 0; plain && i < n; i++)
		plain = isalnum((unsigned char)host[i]) || strchr(".-_:[]", host[i]);
	sb_add(sb, "\"", 1);
	if (plain) {
		sb_add(sb, v, (size_t)(sep + 3 - v));
		sb_add(sb, host, n);
	} else {
		sb_addstr(sb, "https://redacted.invalid");
	}
	sb_addstr(sb, ticket_url_conversions(v) == 1 ? "/%s\"" : "/\"");
}

/* The end of the string literal that starts at t[i] (a '"'). */
static size_t literal_end(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i++)
		if (t[i] == '\\' && i + 1 < len)
			i++;
	return i < len ? i + 1 : len;
}

/* After position i: spaces and comments skipped, where the next token is. */
static size_t skip_blank(const char *t, size_t len, size_t i)
{
	while (i < len) {
		if (isspace((unsigned char)t[i])) {
			i++;
		} else if (t[i] == '#' || (t[i] == '/' && i + 1 < len && t[i + 1] == '/')) {
			while (i < len && t[i] != '\n')
				i++;
		} else if (t[i] == '/' && i + 1 < len && t[i + 1] == '*') {
			for (i += 2; i < len && !(t[i] == '*' && i + 1 < len && t[i + 1] == '/'); i++)
				;
			i = i + 2 < len ? i + 2 : len;
		} else {
			break;
		}
	}
	return i;
}

char *config_text_redacted(const char *t)
{
	struct strbuf sb = { 0 };
	size_t len = strlen(t), i = 0, done = 0;
	char key[64] = "";

	while (i < len) {
		char c = t[i], nx = i + 1 < len ? t[i + 1] : '\0';
		if (c == '"') {
			size_t start = i;
			i = literal_end(t, len, i);
			if (strcmp(key, "url") != 0)
				continue;
			/* the value: this literal and those joined to it */
			struct strbuf raw = { 0 };
			size_t end = i, lines = 0;
			sb_add(&raw, t + start + 1, i - start >= 2 ? i - start - 2 : 0);
			for (size_t k = skip_blank(t, len, i); k < len && t[k] == '"';
			     k = skip_blank(t, len, end)) {
				size_t e = literal_end(t, len, k);
				sb_add(&raw, t + k + 1, e - k >= 2 ? e - k - 2 : 0);
				end = e;
			}
			for (size_t k = start; k < end; k++)
				lines += t[k] == '\n';
			sb_add(&sb, t + done, start - done);
			char *r = sb_steal(&raw), *v = literal_value(r, strlen(r));
			put_redacted_url(&sb, v);
			free(v);
			free(r);
			for (size_t k = 0; k < lines; k++)
				sb_add(&sb, "\n", 1); /* the lines stay where they were */
			done = i = end;
			key[0] = '\0';
		} else if (c == '#' || (c == '/' && (nx == '/' || nx == '*'))) {
			/* Comments go too (a webhook URL commented out still holds
			 * its token), all but their line breaks. */
			size_t end = skip_blank(t, len, i);
			sb_add(&sb, t + done, i - done);
			sb_add(&sb, " ", 1);
			for (size_t k = i; k < end; k++)
				if (t[k] == '\n')
					sb_add(&sb, "\n", 1);
			done = i = end;
		} else if (isalpha((unsigned char)c) || c == '*') {
			i = scan_name(t, len, i, key, sizeof(key));
		} else {
			if (!isspace((unsigned char)c) && c != '=' && c != ':')
				key[0] = '\0';
			i++;
		}
	}
	sb_add(&sb, t + done, len - done);
	return sb_steal(&sb);
}
