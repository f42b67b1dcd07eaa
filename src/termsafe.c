/*
 * termsafe.c - replaces control characters and invalid UTF-8 in text that
 * is about to be displayed. Trust: every input is untrusted (audit log
 * fields, directory diagnostics, the daemon's answers); the output holds
 * no byte a terminal would act on.
 */
#include <stdint.h>
#include <string.h>
#include "termsafe.h"
#include "util.h"

static bool cont(unsigned char c)
{
	return c >= 0x80 && c <= 0xbf;
}

/*
 * Length (1-4) of the valid UTF-8 character at p (*p != 0), or 0 if p does
 * not start one (RFC 3629: no overlong forms, surrogates or code points
 * beyond U+10FFFF). Never reads past a NUL: a NUL is not a continuation.
 */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2) /* a continuation byte, or C0/C1: overlong */
		return 0;
	if (c < 0xe0)
		return cont(p[1]) ? 2 : 0;
	if (c < 0xf0) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && cont(p[2]) ? 3 : 0;
	}
	if (c < 0xf5) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && cont(p[2]) && cont(p[3]) ? 4 : 0;
	}
	return 0;
}

/* The code point of the n-byte valid UTF-8 character at p. */
static uint32_t code_point(const unsigned char *p, size_t n)
{
	if (n == 1)
		return p[0];
	if (n == 2)
		return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	if (n == 3)
		return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
	       (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
}

/*
 * Characters that show nothing, or change how the text around them shows:
 * controls, bidirectional marks and overrides, zero-width and invisible
 * characters, fillers, variation selectors and tags. They make a name look
 * like another one ("alice" reversed, an invisible difference) to whoever
 * reads a report or a terminal.
 */
static const struct { uint32_t lo, hi; } hidden[] = {
	{ 0x0080, 0x009f },   /* C1 controls */
	{ 0x00ad, 0x00ad },   /* soft hyphen */
	{ 0x034f, 0x034f },   /* combining grapheme joiner */
	{ 0x061c, 0x061c },   /* arabic letter mark */
	{ 0x115f, 0x1160 },   /* hangul fillers */
	{ 0x17b4, 0x17b5 },   /* khmer inherent vowels */
	{ 0x180b, 0x180f },   /* mongolian selectors and vowel separator */
	{ 0x200b, 0x200f },   /* zero width, LRM, RLM */
	{ 0x2028, 0x202e },   /* line and paragraph separators, bidi embeddings */
	{ 0x2060, 0x206f },   /* word joiner, invisible operators, bidi isolates */
	{ 0x3164, 0x3164 },   /* hangul filler */
	{ 0xfe00, 0xfe0f },   /* variation selectors */
	{ 0xfeff, 0xfeff },   /* zero width no-break space */
	{ 0xffa0, 0xffa0 },   /* halfwidth hangul filler */
	{ 0xfff9, 0xfffb },   /* interlinear annotation */
	{ 0x1d173, 0x1d17a }, /* musical formatting */
	{ 0xe0000, 0xe0fff }, /* tags, variation selectors supplement */
};

/* Whether the n-byte valid character at p is shown as it is. */
static bool shown(const unsigned char *p, size_t n, unsigned keep)
{
	if (n == 1) {
		if (p[0] == '\n')
			return keep & TERMSAFE_KEEP_NL;
		if (p[0] == '\t')
			return keep & TERMSAFE_KEEP_TAB;
		return p[0] >= 0x20 && p[0] != 0x7f;
	}
	uint32_t cp = code_point(p, n);
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (cp >= hidden[i].lo && cp <= hidden[i].hi)
			return false;
	return true;
}

bool termsafe_copy(char *dst, size_t dstlen, const char *src, unsigned keep)
{
	const unsigned char *p = (const unsigned char *)(src ? src : "");
	size_t used = 0;

	if (dstlen == 0)
		return *p == '\0';
	while (*p) {
		size_t n = utf8_len(p);
		bool ok = n > 0 && shown(p, n, keep);
		size_t out = ok ? n : 1;
		if (used + out >= dstlen)
			break;
		if (ok)
			memcpy(dst + used, p, n);
		else
			dst[used] = '?';
		used += out;
		p += n ? n : 1;
	}
	dst[used] = '\0';
	return *p == '\0';
}

char *termsafe_dup(const char *s, unsigned keep)
{
	size_t len = s ? strlen(s) : 0;
	char *d = xmalloc(len + 1);
	(void)termsafe_copy(d, len + 1, s, keep); /* never longer: always fits */
	return d;
}

int termsafe_json_write(const char *buf, size_t len, void *state)
{
	struct termsafe_json *t = state;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (t->c2) {
			t->c2 = false;
			if (c >= 0x80 && c <= 0x9f) { /* C2 xx is U+00xx */
				fprintf(t->out, "\\u%04x", c);
				continue;
			}
			fputc(0xc2, t->out);
		}
		if (c == 0xc2)
			t->c2 = true;
		else if (c == 0x7f)
			fputs("\\u007f", t->out);
		else if (c < 0x20 && c != '\n' && c != '\t')
			fputc(' ', t->out);
		else
			fputc(c, t->out);
	}
	return ferror(t->out) ? -1 : 0;
}

int termsafe_json_end(struct termsafe_json *t)
{
	if (t->c2) /* cut UTF-8: not valid JSON text, but never a control */
		fputc('?', t->out);
	t->c2 = false;
	return ferror(t->out) ? -1 : 0;
}
