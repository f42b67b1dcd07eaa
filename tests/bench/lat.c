/*
 * lat.c - latency samples and their summary (see lat.h). Benchmark tool
 * code: no trust boundary; inputs are our own measurements.
 */
#include <stdlib.h>
#include <time.h>
#include "lat.h"
#include "util.h"

int64_t lat_now_ns(void)
{
	struct timespec ts;
	/* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		l->us = xrealloc(l->us, l->cap * sizeof(*l->us));
	}
	l->us[l->n++] = us;
}

void lat_merge(struct lat *dst, const struct lat *src)
{
	for (size_t i = 0; i < src->n; i++)
		lat_add(dst, src->us[i]);
}

void lat_free(struct lat *l)
{
	free(l->us);
	l->us = NULL;
	l->n = l->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
static double pct(const struct lat *l, double p)
{
	size_t rank = (size_t)((p / 100.0) * (double)l->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return l->us[rank - 1] / 1000.0;
}

json_t *lat_summary(struct lat *l)
{
	json_t *o = json_object();
	double sum = 0;

	json_object_set_new(o, "n", json_integer((json_int_t)l->n));
	if (l->n == 0)
		return o;
	qsort(l->us, l->n, sizeof(*l->us), cmp_double);
	for (size_t i = 0; i < l->n; i++)
		sum += l->us[i];
	json_object_set_new(o, "p50", json_real(pct(l, 50)));
	json_object_set_new(o, "p95", json_real(pct(l, 95)));
	json_object_set_new(o, "p99", json_real(pct(l, 99)));
	json_object_set_new(o, "p999", json_real(pct(l, 99.9)));
	json_object_set_new(o, "max", json_real(l->us[l->n - 1] / 1000.0));
	json_object_set_new(o, "mean", json_real(sum / (double)l->n / 1000.0));
	return o;
}
