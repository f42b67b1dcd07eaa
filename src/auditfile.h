/*
 * auditfile.h - reads an audit log file line by line, plain or gzip (zlib
 * detects which), with a hard maximum line length, in constant memory.
 * Used by jitctl's offline commands (audit verify, report).
 *
 *   struct auditfile *f;
 *   if (auditfile_open(path, &f) == JIT_OK) {
 *       const char *line; size_t len; int rc;
 *       while ((rc = auditfile_next(f, &line, &len)) > 0) ...;
 *       auditfile_close(f);
 *   }
 */
#ifndef JITD_AUDITFILE_H
#define JITD_AUDITFILE_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define AUDITFILE_LINE_MAX (8u * 1024 * 1024)

struct auditfile;

/* Opens path for reading. JIT_EIO and a message in err if it cannot. */
int auditfile_open(const char *path, struct auditfile **out, char *err, size_t errlen) JIT_WUR;

/*
 * The next line, without its '\n': returns 1 and sets *line (valid until the
 * next call; NUL-terminated) and *len; 0 at the end of the file; JIT_ETOOBIG
 * for a line longer than AUDITFILE_LINE_MAX (skipped: the next call goes on
 * after it); JIT_EIO if the file cannot be read or a .gz file is damaged
 * or truncated (auditfile_error() says why; nothing more can be read).
 * A last line without '\n' is returned like any other.
 */
int auditfile_next(struct auditfile *f, const char **line, size_t *len) JIT_WUR;

/* 1-based number of the line last returned (or skipped). */
int64_t auditfile_lineno(const struct auditfile *f);
/* Why the last JIT_EIO happened ("" if none). */
const char *auditfile_error(const struct auditfile *f);
void auditfile_close(struct auditfile *f); /* NULL-safe */

#endif
