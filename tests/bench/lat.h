/*
 * lat.h - latency samples for the benchmark tools (tests/bench): a growable
 * array of microsecond samples per thread, merged and summarised once at the
 * end (nearest-rank percentiles). Not thread-safe: one struct lat per thread.
 */
#ifndef JITD_BENCH_LAT_H
#define JITD_BENCH_LAT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct lat {
	double *us;     /* samples in microseconds, owned */
	size_t n, cap;
};

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
int64_t lat_now_ns(void);

void lat_add(struct lat *l, double us);
/* Appends every sample of src to dst (src unchanged). */
void lat_merge(struct lat *dst, const struct lat *src);
void lat_free(struct lat *l); /* frees the samples; l itself is the caller's */

/* Sorts l and returns {"n":..,"p50":..,"p95":..,"p99":..,"max":..,"mean":..}
 * in milliseconds (a new reference, or an object with n = 0). */
json_t *lat_summary(struct lat *l);

#endif
