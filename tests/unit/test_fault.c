/*
 * test_fault.c - the JITD_FAULT grammar (fault_parse): probabilities,
 * @N counts, prefixes, and refusal of unknown points and bad values, so a
 * typo in a crash test can never silently arm nothing.
 */
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "t.h"

static int parse(const char *spec, struct fault_arm *arms, size_t *n)
{
	char msg[256] = "";
	int rc = fault_parse(spec, arms, 8, n, msg, sizeof(msg));
	if (rc != JIT_OK && msg[0] == '\0')
		return -99; /* a refusal must say why */
	return rc;
}

static void test_valid(void)
{
	struct fault_arm a[8];
	size_t n = 99;
	CHECK(parse("", a, &n) == JIT_OK && n == 0);
	CHECK(parse("grant.after_dir_add:0.5", a, &n) == JIT_OK && n == 1);
	CHECK_STR(a[0].name, "grant.after_dir_add");
	CHECK(!a[0].prefix && !a[0].always && a[0].nth == 0);
	CHECK(a[0].threshold > 2147000000u && a[0].threshold < 2148000000u);
	CHECK(parse("grant.after_pending:1,engine.after_extend:@3", a, &n) == JIT_OK && n == 2);
	CHECK(a[0].always && a[1].nth == 3);
	CHECK(parse("grant.*:0.01", a, &n) == JIT_OK && n == 1);
	CHECK(a[0].prefix);
	CHECK_STR(a[0].name, "grant.");
	CHECK(parse("*:0", a, &n) == JIT_OK && n == 1 && a[0].prefix && a[0].threshold == 0);
	CHECK(parse("grant.after_final:0.1,,", a, &n) == JIT_OK && n == 1);
	CHECK(parse("grant.before_ending:sleep=1500", a, &n) == JIT_OK && n == 1);
	CHECK(a[0].sleep_ms == 1500 && a[0].nth == 0);
	CHECK(parse("grant.before_ending:sleep=20@2", a, &n) == JIT_OK && n == 1);
	CHECK(a[0].sleep_ms == 20 && a[0].nth == 2);
	/* every listed point can be armed by its name */
	for (size_t i = 0; fault_names[i]; i++) {
		char spec[128];
		snprintf(spec, sizeof(spec), "%s:@1", fault_names[i]);
		CHECK(parse(spec, a, &n) == JIT_OK && n == 1);
	}
}

static void test_refused(void)
{
	struct fault_arm a[8];
	size_t n = 77;
	CHECK(parse("grant.after_dir_ad:0.5", a, &n) == JIT_ECONFIG);   /* typo */
	CHECK(parse("nosuch.*:0.5", a, &n) == JIT_ECONFIG);             /* prefix of nothing */
	CHECK(parse("grant.after_dir_add", a, &n) == JIT_ECONFIG);      /* no value */
	CHECK(parse(":0.5", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:1.5", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:-0.1", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:nan", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:0.5x", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:@0", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:@x", a, &n) == JIT_ECONFIG);
	CHECK(parse("gr*ant.after_dir_add:0.5", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:sleep=", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:sleep=0", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:sleep=600001", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:sleep=10@", a, &n) == JIT_ECONFIG);
	CHECK(parse("grant.after_dir_add:sleep=10@0", a, &n) == JIT_ECONFIG);
	CHECK(parse("a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1", a, &n) == JIT_ECONFIG);
	CHECK(parse("*:1,*:1,*:1,*:1,*:1,*:1,*:1,*:1,*:1", a, &n) == JIT_ECONFIG); /* > max */
	CHECK(n == 77); /* untouched on refusal */
}

int main(void)
{
	test_valid();
	test_refused();
#ifdef JITD_FAULT_INJECTION
	CHECK(fault_compiled_in());
#else
	CHECK(!fault_compiled_in());
#endif
	T_DONE();
}
