/*
 * test_escape.c - RFC 4515 / RFC 4514 escaping and filter templates
 * (src/escape.c), including hostile user names.
 */
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "t.h"

/* Checks escape_filter_value(in, len) == want and frees the result. */
static void check_filter(const char *in, size_t len, const char *want, int line)
{
	char *got = escape_filter_value(in, len);
	if (got == NULL || strcmp(got, want) != 0)
		fprintf(stderr, "  (filter case at line %d)\n", line);
	CHECK_STR(got, want);
	free(got);
}

static void check_dn(const char *in, size_t len, const char *want, int line)
{
	char *got = escape_dn_value(in, len);
	if (got == NULL || strcmp(got, want) != 0)
		fprintf(stderr, "  (dn case at line %d)\n", line);
	CHECK_STR(got, want);
	free(got);
}

#define FILTER(lit, want) check_filter(lit, sizeof(lit) - 1, want, __LINE__)
#define DN(lit, want) check_dn(lit, sizeof(lit) - 1, want, __LINE__)

static void test_filter_value(void)
{
	FILTER("alice", "alice");
	FILTER("", "");
	FILTER("*", "\\2a");
	FILTER("(", "\\28");
	FILTER(")", "\\29");
	FILTER("\\", "\\5c");
	FILTER("a*b(c)d\\e", "a\\2ab\\28c\\29d\\5ce");
	FILTER("x)(uid=*", "x\\29\\28uid=\\2a");
	/* NUL inside the value: the length, not strlen, decides. */
	FILTER("ab\0cd", "ab\\00cd");
	FILTER("\0", "\\00");
	/* UTF-8 bytes and control bytes become \XX. */
	FILTER("J\xc3\xbcrgen", "J\\c3\\bcrgen");
	FILTER("a\nb\tc", "a\\0ab\\09c");
	FILTER("\xff", "\\ff");
	/* Characters RFC 4515 does not require escaping stay as they are. */
	FILTER("a=b,c+d#e f%s", "a=b,c+d#e f%s");
	/* A prefix length stops there. */
	char *p = escape_filter_value("abc*", 3);
	CHECK_STR(p, "abc");
	free(p);
}

static void test_dn_value(void)
{
	DN("alice", "alice");
	DN("", "");
	DN("Smith, John", "Smith\\, John");
	DN("a+b\"c\\d<e>f;g=h", "a\\+b\\\"c\\\\d\\<e\\>f\\;g\\=h");
	DN("#hash", "\\#hash");
	DN("a#b", "a#b");
	DN(" lead", "\\ lead");
	DN("trail ", "trail\\ ");
	DN(" ", "\\ ");
	DN("  ", "\\ \\ ");
	DN("mid dle", "mid dle");
	DN("a\0b", "a\\00b");
	DN("a\nb", "a\\0ab");
	/* UTF-8 is legal in a DN value and passes through. */
	DN("J\xc3\xbcrgen", "J\xc3\xbcrgen");
	/* Filter metacharacters mean nothing in a DN. */
	DN("x)(uid=*", "x)(uid\\=*");
}

static void test_expand(void)
{
	char *out = NULL;

	CHECK(filter_expand("(uid=%s)", "alice", &out) == JIT_OK);
	CHECK_STR(out, "(uid=alice)");
	free(out);
	out = NULL;

	CHECK(filter_expand("(&(objectClass=person)(uid=%s))", "x)(uid=*", &out) == JIT_OK);
	CHECK_STR(out, "(&(objectClass=person)(uid=x\\29\\28uid=\\2a))");
	free(out);
	out = NULL;

	CHECK(filter_expand("(uid=%s)", "*", &out) == JIT_OK);
	CHECK_STR(out, "(uid=\\2a)");
	free(out);
	out = NULL;

	CHECK(filter_expand("(uid=%s)", "", &out) == JIT_OK);
	CHECK_STR(out, "(uid=)");
	free(out);
	out = NULL;

	/* %% is a literal percent; the value's own % is not interpreted. */
	CHECK(filter_expand("(&(cn=100%%)(uid=%s))", "a%sb%d", &out) == JIT_OK);
	CHECK_STR(out, "(&(cn=100%)(uid=a%sb%d))");
	free(out);
	out = NULL;

	CHECK(filter_expand("%s", "x", &out) == JIT_OK);
	CHECK_STR(out, "x");
	free(out);
	out = NULL;

	/* Malformed templates leave *out untouched. */
	char *sentinel = (char *)"untouched";
	out = sentinel;
	CHECK(filter_expand("(uid=alice)", "x", &out) == JIT_EBADREQ);
	CHECK(out == sentinel);
	CHECK(filter_expand("(|(uid=%s)(cn=%s))", "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand("(uid=%d)", "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand("(uid=%s)%", "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand("(uid=%%s)", "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand("", "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand(NULL, "x", &out) == JIT_EBADREQ);
	CHECK(filter_expand("(uid=%s)", NULL, &out) == JIT_EBADREQ);
	CHECK(out == sentinel);
}

static void test_template_check(void)
{
	CHECK(filter_template_check("(uid=%s)") == JIT_OK);
	CHECK(filter_template_check("(&(objectClass=posixAccount)(|(uid=%s)(x=50%%)))") == JIT_OK);
	CHECK(filter_template_check("%s") == JIT_OK);
	CHECK(filter_template_check("(uid=alice)") == JIT_EBADREQ);
	CHECK(filter_template_check("") == JIT_EBADREQ);
	CHECK(filter_template_check(NULL) == JIT_EBADREQ);
	CHECK(filter_template_check("(|(uid=%s)(mail=%s))") == JIT_EBADREQ);
	CHECK(filter_template_check("(uid=%d)") == JIT_EBADREQ);
	CHECK(filter_template_check("(uid=%S)") == JIT_EBADREQ);
	CHECK(filter_template_check("(uid=%s)%") == JIT_EBADREQ);
	CHECK(filter_template_check("(uid=%%)") == JIT_EBADREQ);
	CHECK(filter_template_check("(uid=%%%s)") == JIT_OK);
}

int main(void)
{
	test_filter_value();
	test_dn_value();
	test_expand();
	test_template_check();
	T_DONE();
}
