/*
 * fault.c - crash points for fault-injection tests (see fault.h).
 * Trust: JITD_FAULT comes from whoever starts jitd, who can kill it anyway;
 * it is still parsed with bounds. Security note: only a build configured
 * with --enable-fault-injection can act on it; a normal build ignores it
 * and says so.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fault.h"
#include "log.h"
#include "util.h"

/* Every FAULT_POINT in the daemon, with where it sits (keep in step with
 * docs/testing.md and tests/lib/crash.py). */
const char *const fault_names[] = {
	"grant.before_pending",      /* user resolved, membership read; nothing durable yet */
	"grant.after_pending",       /* pending row committed; directory add not sent */
	"grant.after_dir_add",       /* member added; no granted line, row still pending */
	"grant.after_audit_granted", /* granted line on disk; row still pending */
	"grant.after_active",        /* row active; client not answered yet */
	"grant.after_add_failed",    /* add failed, failure recorded; client not answered */
	"grant.before_ending",       /* an end decided; row still active */
	"grant.after_ending",        /* ending committed; directory removal not sent */
	"grant.after_dir_remove",    /* member removed (or kept); final audit line not written */
	"grant.after_final_audit",   /* final audit line on disk; final state not committed */
	"grant.after_final",         /* final state committed; client not answered */
	"grant.before_retry",        /* removal failed; retry not yet recorded */
	"grant.after_retry",         /* removal failed; retry recorded */
	"engine.after_recover",      /* start-up recovery committed; workers not started */
	"jitd.before_run",           /* configuration read, signal handling not yet set up */
	"jitd.before_daemon",        /* signals held, about to detach (without -f) */
	"engine.after_extend_audit", /* extended line on disk; extension not committed */
	"engine.after_extend",       /* extension committed; client not answered */
	"audit.torn_write",          /* half of an audit line written (FAULT_CUT): a torn line */
	/* failure points (FAULT_FAIL): the step fails instead of running */
	"fail.audit_granted",        /* the `granted` line cannot be written */
	"fail.record_failure",       /* a pending row cannot be handed on (failed / ending) */
	"fail.final_audit",          /* the final line of one grant's end cannot be written */
	"fail.batch_audit",          /* the `expired` lines of a batch cannot be written */
	"fail.drift_audit",          /* a `drift` line cannot be written */
	"fail.drift_removing_audit", /* the `drift_removing` line before an enforced removal */
	"fail.session_lost",         /* an open connection's op answered 1 */
	"fail.listener_config",      /* the listener cannot load a reloaded config */
	"fail.member_check",         /* a grant's check misses a member that is there */
	"fail.end_lookup",           /* a worker cannot read the grant to end (store busy) */
	"fail.request_lookup",       /* a grant's request_id cannot be looked up (store busy) */
	"fail.listener_ready",       /* the listener sends a READY one byte too long (as if taken over) */
	"fail.verify_record",        /* the check after replication_grace cannot be recorded */
	"fail.settle_kept",          /* an end cannot read whether another grant keeps it (store busy) */
	"fail.warn_audit",           /* an expiring_soon line cannot be written */
	"fail.set_standing",         /* a membership found at the add cannot be recorded standing */
	NULL,
};

#define FAULT_MAX_ARMS 32

bool fault_compiled_in(void)
{
#ifdef JITD_FAULT_INJECTION
	return true;
#else
	return false;
#endif
}

int64_t fault_env_cap(const char *name, int64_t dflt)
{
#ifdef JITD_FAULT_INJECTION
	const char *cap = getenv(name);
	int64_t v;
	if (cap && parse_int64(cap, 1, dflt, &v) == JIT_OK)
		return v;
#else
	(void)name;
#endif
	return dflt;
}

static bool known_name(const char *name, size_t len, bool prefix)
{
	for (size_t i = 0; fault_names[i]; i++) {
		if (prefix ? strncmp(fault_names[i], name, len) == 0
			   : strlen(fault_names[i]) == len && memcmp(fault_names[i], name, len) == 0)
			return true;
	}
	return false;
}

/* Parses one "name:value" entry of length len. */
static int parse_one(const char *s, size_t len, struct fault_arm *a, char *msg, size_t msglen)
{
	const char *colon = memchr(s, ':', len);
	memset(a, 0, sizeof(*a));
	if (!colon || colon == s) {
		snprintf(msg, msglen, "JITD_FAULT: \"%.*s\" is not name:probability or name:@N",
			 (int)(len > 80 ? 80 : len), s);
		return JIT_ECONFIG;
	}
	size_t nlen = (size_t)(colon - s);
	if (s[nlen - 1] == '*') {
		a->prefix = true;
		nlen--;
	}
	if (nlen >= sizeof(a->name) || memchr(s, '*', nlen) ||
	    !known_name(s, nlen, a->prefix)) {
		snprintf(msg, msglen, "JITD_FAULT: no fault point is called \"%.*s\"",
			 (int)(colon - s > 80 ? 80 : colon - s), s);
		return JIT_ECONFIG;
	}
	memcpy(a->name, s, nlen);
	a->name[nlen] = '\0';
	char val[32];
	size_t vlen = len - nlen - (a->prefix ? 1 : 0) - 1;
	if (vlen == 0 || vlen >= sizeof(val))
		goto bad_value;
	memcpy(val, colon + 1, vlen);
	val[vlen] = '\0';
	if (strncmp(val, "sleep=", 6) == 0) {
		char *at = strchr(val, '@');
		if (at) {
			*at = '\0';
			if (parse_int64(at + 1, 1, INT64_MAX, &a->nth) != JIT_OK)
				goto bad_value;
		}
		if (parse_int64(val + 6, 1, 600000, &a->sleep_ms) != JIT_OK)
			goto bad_value;
		return JIT_OK;
	}
	if (val[0] == '@') {
		if (parse_int64(val + 1, 1, INT64_MAX, &a->nth) != JIT_OK)
			goto bad_value;
		return JIT_OK;
	}
	char *end = NULL;
	errno = 0;
	double p = strtod(val, &end);
	if (errno != 0 || end == val || *end != '\0' || !isfinite(p) || p < 0.0 || p > 1.0)
		goto bad_value;
	a->always = p >= 1.0;
	a->threshold = (uint32_t)(p * 4294967295.0);
	return JIT_OK;
bad_value:
	snprintf(msg, msglen, "JITD_FAULT: the value of \"%s\" must be a probability in [0, 1], "
		 "@N, sleep=MS or sleep=MS@N", a->name);
	return JIT_ECONFIG;
}

int fault_parse(const char *spec, struct fault_arm *arms, size_t max, size_t *n, char *msg,
		size_t msglen)
{
	size_t count = 0;
	const char *p = spec;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len > 0) {
			if (count == max) {
				snprintf(msg, msglen, "JITD_FAULT: more than %zu entries", max);
				return JIT_ECONFIG;
			}
			if (parse_one(p, len, &arms[count], msg, msglen) != JIT_OK)
				return JIT_ECONFIG;
			count++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*n = count;
	return JIT_OK;
}

#ifdef JITD_FAULT_INJECTION

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault_arm armed[FAULT_MAX_ARMS];
static int64_t passes[FAULT_MAX_ARMS];
static size_t n_armed;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: plenty for choosing crash moments; called under fault_lock. */
static uint32_t draw32(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static bool is_fail_point(const char *name)
{
	return strncmp(name, "fail.", 5) == 0;
}

static bool arm_matches(const struct fault_arm *a, const char *name)
{
	if (!a->prefix)
		return strcmp(name, a->name) == 0;
	/* "*" or "grant.*" arm crash points only; "fail.*" arms failure points */
	if (is_fail_point(name) && strncmp(a->name, "fail", 4) != 0)
		return false;
	return strncmp(name, a->name, strlen(a->name)) == 0;
}

bool fault_fail(const char *name)
{
	bool hit = false;
	if (!is_fail_point(name) || !known_name(name, strlen(name), false))
		fatal("FAULT_FAIL(\"%s\") is not a failure point of fault_names in fault.c", name);
	pthread_mutex_lock(&fault_lock);
	for (size_t i = 0; i < n_armed && !hit; i++) {
		if (!arm_matches(&armed[i], name))
			continue;
		hit = armed[i].nth > 0 ? ++passes[i] == armed[i].nth
				       : armed[i].always || draw32() < armed[i].threshold;
	}
	pthread_mutex_unlock(&fault_lock);
	if (hit) {
		char line[160];
		int n = snprintf(line, sizeof(line), "jitd: fault fail at %s\n", name);
		if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
			/* a test waiting for this line times out and says so */
		}
	}
	return hit;
}

bool fault_cut(const char *name)
{
	bool die = false;
	int64_t pause_ms = 0;
	if (is_fail_point(name) || !known_name(name, strlen(name), false))
		fatal("FAULT_POINT(\"%s\") is missing from fault_names in fault.c", name);
	pthread_mutex_lock(&fault_lock);
	for (size_t i = 0; i < n_armed && !die; i++) {
		if (!arm_matches(&armed[i], name))
			continue;
		bool hit = armed[i].nth > 0 ? ++passes[i] == armed[i].nth
					    : armed[i].sleep_ms > 0 || armed[i].always ||
						      draw32() < armed[i].threshold;
		if (hit && armed[i].sleep_ms > 0)
			pause_ms = armed[i].sleep_ms > pause_ms ? armed[i].sleep_ms : pause_ms;
		else
			die = hit;
	}
	pthread_mutex_unlock(&fault_lock);
	if (!die && pause_ms > 0) {
		char line[160];
		int n = snprintf(line, sizeof(line), "jitd: fault pause %lld ms at %s\n",
				 (long long)pause_ms, name);
		if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
			/* a test waiting for this line times out and says so */
		}
		struct timespec ts = { pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
	}
	return die;
}

void fault_die(const char *name)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "jitd: fault injected at %s\n", name);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing to do: we are about to die either way */
	}
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

void fault_point(const char *name)
{
	if (fault_cut(name))
		fault_die(name);
}

int fault_init(bool *armed_out, char *msg, size_t msglen)
{
	const char *spec = getenv("JITD_FAULT");
	const char *seed = getenv("JITD_FAULT_SEED");
	int64_t s = 0;
	size_t n = 0;
	msg[0] = '\0';
	*armed_out = false;
	if (!spec || !*spec)
		return JIT_OK;
	struct fault_arm parsed[FAULT_MAX_ARMS];
	if (fault_parse(spec, parsed, FAULT_MAX_ARMS, &n, msg, msglen) != JIT_OK)
		return JIT_ECONFIG;
	if (seed && *seed) {
		if (parse_int64(seed, 0, INT64_MAX, &s) != JIT_OK) {
			snprintf(msg, msglen, "JITD_FAULT_SEED must be a non-negative integer");
			return JIT_ECONFIG;
		}
	} else {
		s = (int64_t)time(NULL) ^ ((int64_t)getpid() << 20);
	}
	pthread_mutex_lock(&fault_lock);
	memcpy(armed, parsed, n * sizeof(parsed[0]));
	n_armed = n;
	memset(passes, 0, sizeof(passes));
	rng_state = (uint64_t)s * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	if (rng_state == 0)
		rng_state = 1;
	pthread_mutex_unlock(&fault_lock);
	*armed_out = n > 0;
	return JIT_OK;
}

#else

int fault_init(bool *armed_out, char *msg, size_t msglen)
{
	const char *spec = getenv("JITD_FAULT");
	*armed_out = false;
	msg[0] = '\0';
	if (spec && *spec)
		snprintf(msg, msglen, "JITD_FAULT is set but this jitd was built without "
			 "--enable-fault-injection; ignored");
	return JIT_OK;
}

#endif
