/*
 * log.c - operator diagnostics: stderr in the foreground, syslog otherwise.
 * Messages are formatted with printf checking; callers never pass secrets.
 * Control characters are replaced so a hostile value cannot forge lines.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool log_stderr = true;
static enum log_level log_min = LOG_LVL_INFO;
static const char *log_ident = "jitd";

void log_init(const char *ident, bool to_stderr, enum log_level min)
{
	log_ident = ident;
	log_stderr = to_stderr;
	log_min = min;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level min)
{
	log_min = min;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *names[] = { "debug", "info", "warning", "error" };
	for (int i = 0; i < 4; i++) {
		if (s && strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return JIT_OK;
		}
	}
	return JIT_ECONFIG;
}

static void log_v(enum log_level lvl, const char *fmt, va_list ap) JIT_PRINTF(2, 0);
static void log_v(enum log_level lvl, const char *fmt, va_list ap)
{
	static const char *tags[] = { "debug", "info", "warning", "error" };
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char msg[2048];
	if (lvl < log_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	pthread_mutex_lock(&log_lock);
	if (log_stderr) {
		char ts[32];
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(stderr, "%s %s[%s]: %s\n", ts, log_ident, tags[lvl], msg);
		fflush(stderr);
	} else {
		syslog(prio[lvl], "%s", msg);
	}
	pthread_mutex_unlock(&log_lock);
}

#define LOG_FN(name, lvl)                          \
	void name(const char *fmt, ...)            \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_v(lvl, fmt, ap);               \
		va_end(ap);                        \
	}
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_err, LOG_LVL_ERR)

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	abort();
}
