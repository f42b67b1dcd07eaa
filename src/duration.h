/*
 * duration.h - durations as written in the config and the protocol:
 * an integer number of seconds ("90", or a JSON/libconfig integer), or a
 * string of one or more <digits><unit> with units s, m, h, d, w, in any
 * combination without repeats and in decreasing order ("1h30m", "2d", "15m").
 * Pure; fed untrusted input, so every overflow is checked.
 */
#ifndef JITD_DURATION_H
#define JITD_DURATION_H

#include <stdint.h>
#include <stddef.h>
#include "err.h"

/* Longest accepted duration: 10 years, in seconds. */
#define DURATION_MAX ((int64_t)10 * 366 * 86400)

/* Parses s into seconds in [0, DURATION_MAX]. JIT_OK or JIT_EBADREQ. */
int duration_parse(const char *s, int64_t *out) JIT_WUR;
/* Formats secs (>= 0) compactly ("1h30m", "45s", "0s") into buf. */
void duration_format(int64_t secs, char *buf, size_t buflen);

#endif
