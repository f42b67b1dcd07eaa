/*
 * termsafe.h - text made safe to show on a terminal. What jitd and jitctl
 * display was often written by someone else (audit log fields, directory
 * diagnostics, the daemon's answers); a control character in it could move
 * the cursor, clear the screen or hide a warning printed after it.
 *
 * A control character is any C0 byte (U+0000..U+001F), DEL (U+007F) or a
 * C1 control (U+0080..U+009F, UTF-8 C2 80..C2 9F: C2 9B is a CSI that some
 * terminals obey). Bytes that are not part of valid UTF-8 (stray
 * continuation bytes, overlong forms, surrogates, beyond U+10FFFF, cut
 * sequences) are treated like control characters: a terminal may decode
 * them either way. So are the bidirectional controls and zero-width
 * characters (U+061C, U+200B..U+200F, U+202A..U+202E, U+2066..U+2069), which
 * make one name look like another.
 *
 * Only what is displayed is cleaned: the audit log itself is evidence and
 * is never rewritten.
 *
 *   char *c = termsafe_dup(user, 0);                  (heap, free it)
 *   termsafe_copy(buf, sizeof(buf), diag, 0);          (bounded, truncates)
 *   struct termsafe_json t = { stdout, false };
 *   json_dump_callback(j, termsafe_json_write, &t, flags);
 *   termsafe_json_end(&t);
 */
#ifndef JITD_TERMSAFE_H
#define JITD_TERMSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Flags: control characters a format needs kept (multi-line HTML text). */
#define TERMSAFE_KEEP_NL 0x1u  /* keep '\n' */
#define TERMSAFE_KEEP_TAB 0x2u /* keep '\t' */

/* A copy of s (NULL: "") with each control character and each byte of
 * invalid UTF-8 replaced by '?', except those keep names. Heap, never
 * NULL, never longer than s; the caller frees it. */
char *termsafe_dup(const char *s, unsigned keep);

/* The same into dst (dstlen > 0: always NUL-terminated), cut between
 * characters, never inside one, when dst is too small. src NULL is "".
 * Returns true if all of src fit. */
bool termsafe_copy(char *dst, size_t dstlen, const char *src, unsigned keep);

/*
 * JSON text written to a terminal without changing what it means: DEL and
 * the C1 controls (inside strings, the only place non-ASCII can be) are
 * written as \u007f and \u0080..\u009f, and C0 bytes other than '\n' and
 * '\t' (outside strings: a JSON string cannot hold a raw one) as spaces.
 * The text must be valid JSON, as jansson loaded or wrote it: its UTF-8 is
 * not checked again. termsafe_json_write has the signature of jansson's
 * json_dump_callback_t; the text may come in pieces. Returns 0, or -1
 * once out has an error. termsafe_json_end writes what a last piece left
 * pending.
 */
struct termsafe_json {
	FILE *out;
	bool c2; /* the last byte was 0xC2: a C1 control may follow */
};
int termsafe_json_write(const char *buf, size_t len, void *state);
int termsafe_json_end(struct termsafe_json *t);

#endif
