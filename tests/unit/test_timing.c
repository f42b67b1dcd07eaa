/*
 * test_timing.c - the step histograms' buckets: every duration falls in
 * the bucket whose bounds hold it, the buckets tile the durations without
 * gap or overlap and grow by at most 1.25 x, and status's JSON lists the
 * non-empty buckets of each step with counts that add up to its count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>
#include "t.h"
#include "timing.h"
#include "util.h"

int main(void)
{
	int64_t lo, hi, prev_hi = 0;
	int bad_tile = 0, bad_ratio = 0, bad_place = 0;

	/* the buckets tile [0, INT64_MAX) in order */
	for (int b = 0; b < TIMING_BUCKETS; b++) {
		timing_bucket_bounds(b, &lo, &hi);
		if (lo != prev_hi || hi <= lo)
			bad_tile++;
		if (b >= 4 && b < TIMING_BUCKETS - 1 && hi * 4 > lo * 5)
			bad_ratio++;
		if (timing_bucket(lo) != b || timing_bucket(hi - 1) != b)
			bad_place++;
		prev_hi = hi;
	}
	CHECK(bad_tile == 0);
	CHECK(bad_ratio == 0);
	CHECK(bad_place == 0);
	CHECK(prev_hi == INT64_MAX);

	/* fixed points of the scheme (timing.h) */
	CHECK(timing_bucket(-5) == 0);
	CHECK(timing_bucket(0) == 0);
	CHECK(timing_bucket(3) == 3);
	CHECK(timing_bucket(4) == 4);
	CHECK(timing_bucket(7) == 7);
	CHECK(timing_bucket(8) == 8);
	CHECK(timing_bucket(9) == 8);
	CHECK(timing_bucket(10) == 9);
	timing_bucket_bounds(timing_bucket(1000), &lo, &hi);
	CHECK(lo == 896 && hi == 1024);
	timing_bucket_bounds(timing_bucket(1024), &lo, &hi);
	CHECK(lo == 1024 && hi == 1280);
	CHECK(timing_bucket(INT64_C(1) << 40) == TIMING_BUCKETS - 1);
	CHECK(timing_bucket(INT64_MAX) == TIMING_BUCKETS - 1);
	CHECK(timing_bucket((INT64_C(1) << 40) - 1) == TIMING_BUCKETS - 2);

	/* every duration from 0 to 1 s lands inside its bucket's bounds */
	int outside = 0;
	for (int64_t d = 0; d < 1000000; d += 1 + d / 64) {
		timing_bucket_bounds(timing_bucket(d), &lo, &hi);
		if (d < lo || d >= hi)
			outside++;
	}
	CHECK(outside == 0);

	/* the JSON: three durations of one step in two buckets */
	int64_t now = mono_us();
	timing_since(STEP_LOOKUP_USER, now);                /* ~0 us */
	timing_since(STEP_LOOKUP_USER, now - 5000000);      /* ~5 s */
	timing_since(STEP_LOOKUP_USER, now - 5000000);
	timing_since(STEP_GRANT, now - 1000);
	json_t *o = timing_json();
	json_t *s = json_object_get(o, "lookup_user");
	json_t *h = json_object_get(s, "hist");
	CHECK(json_integer_value(json_object_get(s, "count")) == 3);
	CHECK(json_is_array(h) && json_array_size(h) == 2);
	json_int_t sum = 0, last_hi = -1;
	int order = 0;
	for (size_t i = 0; i < json_array_size(h); i++) {
		json_t *e = json_array_get(h, i);
		json_int_t l = json_integer_value(json_array_get(e, 0));
		json_int_t u = json_integer_value(json_array_get(e, 1));
		sum += json_integer_value(json_array_get(e, 2));
		if (l < last_hi || u <= l)
			order++;
		last_hi = u;
	}
	CHECK(sum == 3);
	CHECK(order == 0);
	json_t *big = json_array_get(h, 1);
	CHECK(json_integer_value(json_array_get(big, 2)) == 2);
	CHECK(json_integer_value(json_array_get(big, 0)) <= 5000000 &&
	      json_integer_value(json_array_get(big, 1)) > 5000000);
	CHECK(json_integer_value(json_object_get(json_object_get(o, "grant"), "count")) == 1);
	CHECK(json_array_size(json_object_get(json_object_get(o, "end"), "hist")) == 0);
	json_decref(o);
	T_DONE();
}
