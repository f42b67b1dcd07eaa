/*
 * t.h - the tiny unit-test harness: CHECK() records a pass or a failure
 * with file:line, T_DONE() prints "N passed, N failed" and sets the exit
 * status. Every test binary under tests/unit uses it.
 */
#ifndef JITD_T_H
#define JITD_T_H

#include <stdio.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			t_pass++;                                          \
		} else {                                                   \
			t_fail++;                                          \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,      \
				__LINE__, #cond);                          \
		}                                                          \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *t_a = (a), *t_b = (b);                         \
		if (t_a && t_b && strcmp(t_a, t_b) == 0) {                 \
			t_pass++;                                          \
		} else {                                                   \
			t_fail++;                                          \
			fprintf(stderr, "FAIL %s:%d: %s == \"%s\", got \"%s\"\n", \
				__FILE__, __LINE__, #a, t_b ? t_b : "(null)", \
				t_a ? t_a : "(null)");                     \
		}                                                          \
	} while (0)

#define T_DONE()                                                           \
	do {                                                               \
		printf("%d passed, %d failed\n", t_pass, t_fail);          \
		return t_fail ? 1 : 0;                                     \
	} while (0)

#endif
