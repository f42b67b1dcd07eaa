/*
 * duration.c - parse and format durations ("90", "15m", "1h30m", "2w").
 * Pure. duration_parse() reads untrusted bytes from the socket protocol and
 * the config file: every accumulation is bounded by DURATION_MAX before it
 * can overflow, and anything other than the documented grammar is refused.
 */
#include <stdio.h>
#include <string.h>

#include "duration.h"

struct dur_unit {
	char c;
	int64_t secs;
};

/* Decreasing order: a string must use the units in this order, each once. */
static const struct dur_unit dur_units[] = {
	{ 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};
#define N_UNITS (sizeof(dur_units) / sizeof(dur_units[0]))

/* Index of unit c in dur_units, or -1. */
static int unit_index(char c)
{
	for (size_t i = 0; i < N_UNITS; i++)
		if (dur_units[i].c == c)
			return (int)i;
	return -1;
}

/*
 * Reads the digits at *pp into *n, stopping at the first non-digit.
 * Robustness: the value is capped at DURATION_MAX + 1 while it is read, so
 * neither n * 10 nor a later n * unit can overflow int64_t.
 */
static int read_digits(const char **pp, int64_t *n)
{
	const char *p = *pp;
	int64_t v = 0;

	if (*p < '0' || *p > '9')
		return JIT_EBADREQ;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > DURATION_MAX)
			return JIT_EBADREQ;
		p++;
	}
	*pp = p;
	*n = v;
	return JIT_OK;
}

int duration_parse(const char *s, int64_t *out)
{
	const char *p = s;
	int64_t total = 0, n;
	int next = 0; /* first unit index still allowed */

	if (!s || !*s)
		return JIT_EBADREQ;
	if (read_digits(&p, &n) != JIT_OK)
		return JIT_EBADREQ;
	if (*p == '\0') { /* a bare integer is seconds */
		*out = n;
		return JIT_OK;
	}
	for (;;) {
		int u = unit_index(*p);
		if (u < next) /* unknown unit (-1), repeat or wrong order */
			return JIT_EBADREQ;
		/* n <= DURATION_MAX and secs <= 1 week: no overflow here. */
		total += n * dur_units[u].secs;
		if (total > DURATION_MAX)
			return JIT_EBADREQ;
		next = u + 1;
		p++;
		if (*p == '\0')
			break;
		/* "1h30": the loop then finds '\0' where a unit must be. */
		if (read_digits(&p, &n) != JIT_OK)
			return JIT_EBADREQ;
	}
	*out = total;
	return JIT_OK;
}

void duration_format(int64_t secs, char *buf, size_t buflen)
{
	char tmp[64];
	size_t len = 0;
	uint64_t rest;

	if (!buf || buflen == 0)
		return;
	if (secs < 0) {
		/* Not a valid duration; keep the sign visible rather than lie. */
		tmp[len++] = '-';
		rest = (uint64_t)0 - (uint64_t)secs;
	} else {
		rest = (uint64_t)secs;
	}
	if (rest == 0) {
		snprintf(buf, buflen, "0s");
		return;
	}
	for (size_t i = 0; i < N_UNITS; i++) {
		uint64_t per = (uint64_t)dur_units[i].secs;
		uint64_t q = rest / per;
		if (q == 0)
			continue;
		rest -= q * per;
		/* 20 digits + unit always fit: tmp holds 64 bytes. */
		int w = snprintf(tmp + len, sizeof(tmp) - len, "%llu%c", (unsigned long long)q,
				 dur_units[i].c);
		if (w < 0 || (size_t)w >= sizeof(tmp) - len)
			break;
		len += (size_t)w;
	}
	tmp[len] = '\0';
	/* Truncates to buflen - 1 bytes if the caller's buffer is short. */
	snprintf(buf, buflen, "%s", tmp);
}
