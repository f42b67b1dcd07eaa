/*
 * escape.c - LDAP string escaping: RFC 4515 filter values, RFC 4514 DN
 * values and the user_filter template expansion.
 *
 * Trust boundary: every input here may come from a client (a user name in
 * a grant request) and ends up inside a filter or DN sent to the directory.
 * The functions are pure and length-based, so an embedded NUL cannot cut a
 * value short; the escaped result never contains a raw special character.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "util.h"

static const char hexdigits[] = "0123456789abcdef";

static void sb_add_hex(struct strbuf *sb, unsigned char c)
{
	char esc[3] = { '\\', hexdigits[c >> 4], hexdigits[c & 0x0f] };
	sb_add(sb, esc, sizeof(esc));
}

/* Bytes escaped in a filter value: RFC 4515 requires * ( ) \ NUL; we also
 * escape every non-ASCII and control byte so the filter is plain ASCII. */
static bool filter_needs_escape(unsigned char c)
{
	return c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x80;
}

char *escape_filter_value(const char *in, size_t len)
{
	struct strbuf sb = { 0 };

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (filter_needs_escape(c))
			sb_add_hex(&sb, c);
		else
			sb_add(&sb, &in[i], 1);
	}
	return sb_steal(&sb);
}

/* RFC 4514 section 2.4: characters that are escaped as backslash + char. */
static bool dn_special(unsigned char c)
{
	return c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' ||
	       c == ';' || c == '=';
}

char *escape_dn_value(const char *in, size_t len)
{
	struct strbuf sb = { 0 };

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		bool first = (i == 0), last = (i + 1 == len);

		if (dn_special(c) || (first && c == '#') || ((first || last) && c == ' ')) {
			char esc[2] = { '\\', (char)c };
			sb_add(&sb, esc, sizeof(esc));
		} else if (c < 0x20 || c == 0x7f) {
			/* NUL must be escaped; other control bytes are escaped
			 * too (allowed by RFC 4514) so a DN never carries a raw
			 * newline into a log line. */
			sb_add_hex(&sb, c);
		} else {
			sb_add(&sb, &in[i], 1);
		}
	}
	return sb_steal(&sb);
}

/*
 * Walks tmpl once. When sb is not NULL it writes the expansion into it with
 * the escaped value at the %s. Returns JIT_OK only for exactly one %s and
 * no % sequence other than %s and %%.
 */
static int template_walk(const char *tmpl, const char *escaped, struct strbuf *sb)
{
	int n_s = 0;

	if (tmpl == NULL)
		return JIT_EBADREQ;
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p != '%') {
			if (sb)
				sb_add(sb, p, 1);
			continue;
		}
		p++;
		if (*p == '%') {
			if (sb)
				sb_add(sb, "%", 1);
		} else if (*p == 's') {
			if (++n_s > 1)
				return JIT_EBADREQ;
			if (sb)
				sb_addstr(sb, escaped);
		} else {
			return JIT_EBADREQ; /* %d, %x, a trailing lone % ... */
		}
	}
	return n_s == 1 ? JIT_OK : JIT_EBADREQ;
}

int filter_template_check(const char *tmpl)
{
	return template_walk(tmpl, NULL, NULL);
}

int filter_expand(const char *tmpl, const char *value, char **out)
{
	struct strbuf sb = { 0 };
	char *escaped = NULL;
	int rc;

	if (value == NULL) {
		rc = JIT_EBADREQ;
		goto out;
	}
	escaped = escape_filter_value(value, strlen(value));
	rc = template_walk(tmpl, escaped, &sb);
	if (rc != JIT_OK)
		goto out;
	*out = sb_steal(&sb);
out:
	sb_free(&sb);
	free(escaped);
	return rc;
}
