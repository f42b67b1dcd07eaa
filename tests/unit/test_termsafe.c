/*
 * test_termsafe.c - termsafe_dup/termsafe_copy replace C0, DEL, C1 and
 * invalid UTF-8 and keep valid text; truncation never cuts a character;
 * termsafe_json_write escapes C1 and DEL losslessly, across pieces too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "termsafe.h"
#include "t.h"

static const char *clean(const char *s, unsigned keep)
{
	static char buf[256];
	char *c = termsafe_dup(s, keep);
	snprintf(buf, sizeof(buf), "%s", c);
	free(c);
	return buf;
}

static void test_controls(void)
{
	CHECK_STR(clean("alice", 0), "alice");
	CHECK_STR(clean("", 0), "");
	CHECK_STR(clean(NULL, 0), "");
	CHECK_STR(clean("a\x1b[2Jb", 0), "a?[2Jb");
	CHECK_STR(clean("a\rb\nc\td\x7f", 0), "a?b?c?d?");
	CHECK_STR(clean("a\nb\tc\rd", TERMSAFE_KEEP_NL), "a\nb?c?d");
	CHECK_STR(clean("a\nb\tc\rd", TERMSAFE_KEEP_NL | TERMSAFE_KEEP_TAB), "a\nb\tc?d");
	/* C1: U+0080..U+009F, one '?' each; the CSI of the report finding. */
	CHECK_STR(clean("al\xc2\x9b\x38mice", 0), "al?8mice");
	/* bidi controls and zero-width characters: one '?' each */
	CHECK_STR(clean("ad\xe2\x80\xae" "nimda", 0), "ad?nimda");
	CHECK_STR(clean("a\xe2\x81\xa6" "b\xe2\x80\x8b" "c\xd8\x9c", 0), "a?b?c?");
	/* their neighbours are shown: U+2010 hyphen, U+2070 superscript zero */
	CHECK_STR(clean("a\xe2\x80\x90" "b\xe2\x81\xb0", 0), "a\xe2\x80\x90" "b\xe2\x81\xb0");
	CHECK_STR(clean("\xc2\x80\xc2\x9f", 0), "??");
	/* other invisible characters: U+2060 word joiner, U+FEFF, U+00AD soft
	 * hyphen, U+2028, U+3164 and U+FFA0 fillers, U+FE0F, U+E0041 tag A */
	CHECK_STR(clean("bo\xe2\x81\xa0" "b", 0), "bo?b");
	CHECK_STR(clean("\xef\xbb\xbf" "a\xc2\xad" "b\xe2\x80\xa8" "c", 0), "?a?b?c");
	CHECK_STR(clean("\xe3\x85\xa4" "\xef\xbe\xa0" "\xef\xb8\x8f" "\xf3\xa0\x81\x81", 0), "????");
	/* their neighbours stay: U+00AC, U+2070, U+E1000 (private use) */
	CHECK_STR(clean("\xc2\xac\xe2\x81\xb0\xf3\xa1\x80\x80", 0),
		  "\xc2\xac\xe2\x81\xb0\xf3\xa1\x80\x80");
	/* Valid non-ASCII stays: U+00A0, U+00E9, U+2192, U+10FFFF, U+1F600. */
	CHECK_STR(clean("\xc2\xa0 Jos\xc3\xa9 \xe2\x86\x92 \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80", 0),
		  "\xc2\xa0 Jos\xc3\xa9 \xe2\x86\x92 \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80");
}

static void test_invalid_utf8(void)
{
	CHECK_STR(clean("a\x9b-b", 0), "a?-b"); /* raw 8-bit CSI */
	CHECK_STR(clean("a\xc2", 0), "a?");     /* cut at the end */
	CHECK_STR(clean("a\xc2z", 0), "a?z");
	CHECK_STR(clean("\xc0\x9b", 0), "??"); /* overlong ESC */
	CHECK_STR(clean("\xc1\xbf", 0), "??");
	CHECK_STR(clean("\xe0\x82\x9b", 0), "???");      /* overlong U+009B */
	CHECK_STR(clean("\xed\xa0\x80", 0), "???");      /* surrogate */
	CHECK_STR(clean("\xf4\x90\x80\x80", 0), "????"); /* > U+10FFFF */
	CHECK_STR(clean("\xf8\x88\x80\x80\x80", 0), "?????");
	CHECK_STR(clean("\xe2\x86", 0), "??");
	CHECK_STR(clean("\xff\xfe", 0), "??");
}

static void test_copy_bounds(void)
{
	char buf[8];

	memset(buf, 'x', sizeof(buf));
	CHECK(termsafe_copy(buf, sizeof(buf), "abc", 0));
	CHECK_STR(buf, "abc");
	CHECK(!termsafe_copy(buf, 4, "abcdef", 0));
	CHECK_STR(buf, "abc");
	CHECK(termsafe_copy(buf, 4, "abc", 0));
	/* Never half a character: 3 bytes of room, "a" + a 3-byte arrow. */
	CHECK(!termsafe_copy(buf, 4, "a\xe2\x86\x92", 0));
	CHECK_STR(buf, "a");
	CHECK(!termsafe_copy(buf, 1, "a", 0));
	CHECK_STR(buf, "");
	CHECK(termsafe_copy(buf, 1, "", 0));
	CHECK(termsafe_copy(buf, sizeof(buf), NULL, 0));
	CHECK_STR(buf, "");
	/* A C1 control takes one byte once replaced. */
	CHECK(termsafe_copy(buf, 3, "\xc2\x9b\xc2\x9b", 0));
	CHECK_STR(buf, "??");
}

/* termsafe_json_write over text given in pieces of `piece` bytes. */
static char *json_safe(const char *text, size_t piece)
{
	char *out = NULL;
	size_t outlen = 0, len = strlen(text);
	struct termsafe_json t = { open_memstream(&out, &outlen), false };

	for (size_t i = 0; i < len; i += piece)
		CHECK(termsafe_json_write(text + i, len - i < piece ? len - i : piece, &t) == 0);
	CHECK(termsafe_json_end(&t) == 0);
	fclose(t.out);
	return out;
}

static void test_json(void)
{
	json_t *v = json_pack("{s:s, s:s, s:[i]}", "user", "al\xc2\x9b\x38mice", "name",
			      "Jos\xc3\xa9\x7f\xc2\x80\xc2\xa0", "n", 1);
	char *dumped = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	for (size_t piece = 1; piece <= 4; piece++) {
		char *s = json_safe(dumped, piece);
		json_t *back = json_loads(s, 0, NULL);
		CHECK(strstr(s, "\xc2\x9b") == NULL && strstr(s, "\xc2\x80") == NULL);
		CHECK(strchr(s, 0x7f) == NULL);
		CHECK(strstr(s, "al\\u009b8mice") != NULL);
		CHECK(strstr(s, "Jos\xc3\xa9\\u007f\\u0080\xc2\xa0") != NULL);
		CHECK(strchr(s, '\n') != NULL);     /* the indentation kept */
		CHECK(back && json_equal(back, v)); /* the same value */
		json_decref(back);
		free(s);
	}
	/* C0 between tokens (only whitespace can be there) becomes a space. */
	char *s = json_safe("{\r\"a\":\t1}\n", 64);
	CHECK_STR(s, "{ \"a\":\t1}\n");
	free(s);
	s = json_safe("\"x\xc2", 64); /* cut: never a control */
	CHECK_STR(s, "\"x?");
	free(s);
	free(dumped);
	json_decref(v);
}

int main(void)
{
	test_controls();
	test_invalid_utf8();
	test_copy_bounds();
	test_json();
	T_DONE();
}
