/*
 * escape.h - LDAP string escaping (pure functions, fed untrusted input).
 * RFC 4515 for values placed in search filters, RFC 4514 for values
 * placed in DNs, and the filter template expansion used for user_filter.
 */
#ifndef JITD_ESCAPE_H
#define JITD_ESCAPE_H

#include <stddef.h>
#include "err.h"

/* RFC 4515: escapes * ( ) \ NUL and every byte >= 0x80 or < 0x20 as \XX.
 * Returns a new heap string (never NULL). len: bytes of in. */
char *escape_filter_value(const char *in, size_t len);

/* RFC 4514: escapes , + " \ < > ; = NUL, a leading space or #, a trailing
 * space, as \XX or \c. Returns a new heap string (never NULL). */
char *escape_dn_value(const char *in, size_t len);

/*
 * Expands a filter template that holds exactly one "%s" (and "%%" for a
 * literal percent) with the RFC 4515-escaped value. On success *out is a
 * new heap string. JIT_EBADREQ if the template is malformed (no %s, two
 * %s, another % sequence).
 */
int filter_expand(const char *tmpl, const char *value, char **out) JIT_WUR;

/* JIT_OK if tmpl is a valid template for filter_expand (config check). */
int filter_template_check(const char *tmpl) JIT_WUR;

#endif
