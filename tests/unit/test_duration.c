/*
 * test_duration.c - duration_parse() grammar, bounds and overflow;
 * duration_format() output and parse/format round trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"
#include "t.h"

/* Parses s; returns the value, or -1 if it was refused. */
static int64_t p(const char *s)
{
	int64_t v = -12345;
	if (duration_parse(s, &v) != JIT_OK) {
		if (v != -12345) /* out-param must be untouched on failure */
			return -2;
		return -1;
	}
	return v;
}

static const char *fmt(int64_t secs)
{
	static char buf[64];
	duration_format(secs, buf, sizeof(buf));
	return buf;
}

static void test_valid(void)
{
	CHECK(p("0") == 0);
	CHECK(p("1") == 1);
	CHECK(p("90") == 90);
	CHECK(p("007") == 7);
	CHECK(p("0s") == 0);
	CHECK(p("90s") == 90);
	CHECK(p("15m") == 900);
	CHECK(p("1h") == 3600);
	CHECK(p("2d") == 2 * 86400);
	CHECK(p("1w") == 7 * 86400);
	CHECK(p("1h30m") == 5400);
	CHECK(p("1w2d3h4m5s") == 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
	CHECK(p("1d1s") == 86401);
	CHECK(p("2w1h") == 14 * 86400 + 3600);
	CHECK(p("0h0m0s") == 0);
	/* Parts need not be normalized. */
	CHECK(p("90m") == 5400);
	CHECK(p("100000s") == 100000);
	CHECK(p("48h") == 172800);
}

static void test_bounds(void)
{
	char buf[64];

	CHECK(DURATION_MAX == 316224000);
	snprintf(buf, sizeof(buf), "%lld", (long long)DURATION_MAX);
	CHECK(p(buf) == DURATION_MAX);
	snprintf(buf, sizeof(buf), "%lld", (long long)DURATION_MAX + 1);
	CHECK(p(buf) == -1);
	snprintf(buf, sizeof(buf), "%llds", (long long)DURATION_MAX);
	CHECK(p(buf) == DURATION_MAX);
	snprintf(buf, sizeof(buf), "%llds", (long long)DURATION_MAX + 1);
	CHECK(p(buf) == -1);
	/* 316224000 s = 3660 d = 522w 6d exactly. */
	CHECK(p("3660d") == DURATION_MAX);
	CHECK(p("3661d") == -1);
	CHECK(p("522w6d") == DURATION_MAX);
	CHECK(p("522w6d1s") == -1);
	CHECK(p("522w5d23h59m59s") == DURATION_MAX - 1);
	CHECK(p("523w") == -1);
	CHECK(p("87840h") == DURATION_MAX);
	CHECK(p("87840h1s") == -1);
	CHECK(p("5270400m") == DURATION_MAX);
	CHECK(p("5270401m") == -1);
	/* Each part within bounds, the sum beyond. */
	CHECK(p("522w7d") == -1);
	CHECK(p("3000d87840h") == -1);
}

static void test_overflow(void)
{
	/* Values that overflow int64 in the digits or in the multiplication. */
	CHECK(p("9223372036854775807") == -1);
	CHECK(p("9223372036854775808") == -1);
	CHECK(p("18446744073709551616") == -1);
	CHECK(p("99999999999999999999999999999999999999") == -1);
	CHECK(p("15250284452472w") == -1);   /* * 604800 > INT64_MAX */
	CHECK(p("30500568904944w") == -1);   /* * 604800 wraps to a small value */
	CHECK(p("106751991167301d") == -1);
	CHECK(p("2562047788015216h") == -1);
	CHECK(p("153722867280912931m") == -1);
	CHECK(p("1w9223372036854775807s") == -1);
	CHECK(p("4294967296") == -1);
	CHECK(p("4294967296s") == -1);
	/* Long runs of leading zeros are harmless. */
	CHECK(p("00000000000000000000000000000000000001h") == 3600);
}

static void test_malformed(void)
{
	static const char *bad[] = {
		"", " ", "s", "m", "h", "d", "w", "x",
		"-1", "+1", "-0", "+0", "-1h", "+1h", "1h-30m", "1h+30m",
		" 1", "1 ", " 1h", "1h ", "1 h", "1h 30m", "1h\t", "\t1h", "1h\n", "\n",
		"1x", "1H", "1M", "1S", "1D", "1W", "1y", "1ms", "1us", "1sec",
		"1hour", "1min", "1hr",
		"h1", "m30", "abc", "1h30", "1h30m5", "1w1", "10s1",
		"1m1h", "1s1m", "1d1w", "1s1h", "1h1d", "1m1w", /* wrong order */
		"1h1h", "1s1s", "1m2m", "1w1w", "1h30m1h", /* repeats */
		"1hh", "1h m", "1hm", "1h30mm", "1h30ms",
		"1.5h", "1,5h", "1.5", "0.5", "1e3", "0x10", "0x10s", "1_000",
		"1h_30m", "1h,30m", "1h:30m", "01:30", "1:00:00",
		"٣", "１", "1\xc2\xa0h", ("\xef\xbb\xbf" "1h"),
		"1\x01", "1h\x7f", "inf", "nan", "-inf", "1e",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = -12345;
		int rc = duration_parse(bad[i], &v);
		if (rc != JIT_EBADREQ || v != -12345)
			fprintf(stderr, "accepted or bad code for \"%s\"\n", bad[i]);
		CHECK(rc == JIT_EBADREQ);
		CHECK(v == -12345);
	}
	/* An embedded NUL ends the C string: the rest is not seen. */
	CHECK(p("1h\0junk") == 3600);
	{
		int64_t v = 7;
		CHECK(duration_parse(NULL, &v) == JIT_EBADREQ);
		CHECK(v == 7);
	}
}

static void test_format(void)
{
	CHECK_STR(fmt(0), "0s");
	CHECK_STR(fmt(1), "1s");
	CHECK_STR(fmt(45), "45s");
	CHECK_STR(fmt(59), "59s");
	CHECK_STR(fmt(60), "1m");
	CHECK_STR(fmt(61), "1m1s");
	CHECK_STR(fmt(900), "15m");
	CHECK_STR(fmt(3600), "1h");
	CHECK_STR(fmt(5400), "1h30m");
	CHECK_STR(fmt(3601), "1h1s");
	CHECK_STR(fmt(86400), "1d");
	CHECK_STR(fmt(86399), "23h59m59s");
	CHECK_STR(fmt(604800), "1w");
	CHECK_STR(fmt(604799), "6d23h59m59s");
	CHECK_STR(fmt(14 * 86400 + 3600), "2w1h");
	CHECK_STR(fmt(DURATION_MAX), "522w6d");
	CHECK_STR(fmt(DURATION_MAX - 1), "522w5d23h59m59s");
	CHECK_STR(fmt(INT64_MAX), "15250284452471w3d15h30m7s");
	/* Out of contract, but must not crash or lie about the sign. */
	CHECK_STR(fmt(-90), "-1m30s");
	CHECK_STR(fmt(INT64_MIN), "-15250284452471w3d15h30m8s");
}

static void test_format_buffers(void)
{
	char buf[8];

	memset(buf, 'X', sizeof(buf));
	duration_format(5400, buf, 4);
	CHECK_STR(buf, "1h3");      /* truncated, still terminated */
	CHECK(buf[4] == 'X');       /* nothing written past buflen */
	memset(buf, 'X', sizeof(buf));
	duration_format(5400, buf, 1);
	CHECK(buf[0] == '\0');
	CHECK(buf[1] == 'X');
	memset(buf, 'X', sizeof(buf));
	duration_format(5400, buf, 0); /* writes nothing */
	CHECK(buf[0] == 'X');
	duration_format(5400, NULL, 0); /* must not crash */
	duration_format(5400, buf, 6);
	CHECK_STR(buf, "1h30m");
}

static void test_round_trip(void)
{
	static const char *canon[] = {
		"0s", "1s", "59s", "1m", "1h30m", "1d1s", "1w", "2w1h",
		"1w2d3h4m5s", "522w6d", "522w5d23h59m59s", "6d23h59m59s",
	};
	char buf[64];
	int bad = 0;

	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		int64_t v;
		CHECK(duration_parse(canon[i], &v) == JIT_OK);
		duration_format(v, buf, sizeof(buf));
		CHECK_STR(buf, canon[i]);
	}
	/* format then parse gives the same number, over a spread of values. */
	for (int64_t v = 0; v <= DURATION_MAX; v = v < 200000 ? v + 1 : v * 3 / 2 + 7) {
		int64_t back = -1;
		duration_format(v, buf, sizeof(buf));
		if (duration_parse(buf, &back) != JIT_OK || back != v) {
			if (bad++ < 5)
				fprintf(stderr, "round trip %lld -> %s -> %lld\n",
					(long long)v, buf, (long long)back);
		}
	}
	duration_format(DURATION_MAX, buf, sizeof(buf));
	{
		int64_t back = -1;
		CHECK(duration_parse(buf, &back) == JIT_OK && back == DURATION_MAX);
	}
	CHECK(bad == 0);
	/* A non-canonical form normalizes. */
	{
		int64_t v;
		CHECK(duration_parse("90m", &v) == JIT_OK);
		duration_format(v, buf, sizeof(buf));
		CHECK_STR(buf, "1h30m");
		CHECK(duration_parse("5400", &v) == JIT_OK);
		duration_format(v, buf, sizeof(buf));
		CHECK_STR(buf, "1h30m");
	}
}

int main(void)
{
	test_valid();
	test_bounds();
	test_overflow();
	test_malformed();
	test_format();
	test_format_buffers();
	test_round_trip();
	T_DONE();
}
