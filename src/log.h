/*
 * log.h - diagnostics for operators (not the audit log, see audit.h).
 * stderr in the foreground, syslog(LOG_DAEMON) otherwise. Thread-safe.
 * Never pass a secret to these functions.
 */
#ifndef JITD_LOG_H
#define JITD_LOG_H

#include <stdbool.h>
#include "err.h"

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* ident: program name; to_stderr: foreground mode. */
void log_init(const char *ident, bool to_stderr, enum log_level min);
void log_set_level(enum log_level min);
/* "debug" | "info" | "warning" | "error" -> level; JIT_ECONFIG if unknown. */
int log_level_parse(const char *s, enum log_level *out) JIT_WUR;

void log_debug(const char *fmt, ...) JIT_PRINTF(1, 2);
void log_info(const char *fmt, ...) JIT_PRINTF(1, 2);
void log_warn(const char *fmt, ...) JIT_PRINTF(1, 2);
void log_err(const char *fmt, ...) JIT_PRINTF(1, 2);
/* A broken internal invariant: logs and aborts. Never for bad input. */
void fatal(const char *fmt, ...) JIT_PRINTF(1, 2) JIT_NORETURN;

#endif
