/*
 * fuzz_duration.c - libFuzzer harness for duration_parse(), which reads
 * durations from clients and from the config. Besides the sanitizers it
 * checks the parser's promises: a result in [0, DURATION_MAX] or a refusal
 * with JIT_EBADREQ and the out-parameter untouched, and that
 * duration_format() of any accepted value parses back to the same value.
 *
 * Build and run: tests/fuzz/run duration (or make fuzz).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"

#define FUZZ_MAX_INPUT 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[FUZZ_MAX_INPUT + 1], buf[64];
	int64_t v = -7, w = -7;
	if (size > FUZZ_MAX_INPUT)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int rc = duration_parse(s, &v);
	if (rc != JIT_OK) {
		if (rc != JIT_EBADREQ || v != -7)
			abort();
		return 0;
	}
	if (v < 0 || v > DURATION_MAX)
		abort();
	duration_format(v, buf, sizeof(buf));
	if (duration_parse(buf, &w) != JIT_OK || w != v)
		abort();
	return 0;
}
