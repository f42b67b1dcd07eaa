/*
 * auditfile.c - line reader over plain or gzip-compressed audit files.
 * Trust: the files may have been tampered with (that is what the verifier
 * is for), so lines are bounded (AUDITFILE_LINE_MAX) and the reader's
 * memory never depends on the file's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "auditfile.h"
#include "util.h"

#define CHUNK 65536

struct auditfile {
	gzFile gz;
	char *buf;          /* bytes read but not yet returned: buf[pos..end) */
	size_t pos, end, cap;
	int64_t lineno;
	bool eof, failed;
	char err[256];
};

int auditfile_open(const char *path, struct auditfile **out, char *err, size_t errlen)
{
	struct stat st;
	/* Robustness: a directory (which gzopen would open, to fail at the
	 * first read as if the log were damaged: a false tamper alarm) or a
	 * FIFO (whose open would wait for a writer) is not a log: refused
	 * as unreadable. O_NONBLOCK only for the open itself. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return JIT_EIO;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		close(fd);
		return JIT_EIO;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return JIT_EIO;
	}
	errno = 0;
	gzFile gz = gzdopen(fd, "rb");
	if (!gz) {
		snprintf(err, errlen, "%s", errno ? strerror(errno) : "cannot open");
		close(fd);
		return JIT_EIO;
	}
	if (gzbuffer(gz, CHUNK) != 0) {
		snprintf(err, errlen, "cannot set up decompression");
		(void)gzclose(gz);
		return JIT_EIO;
	}
	struct auditfile *f = xcalloc(1, sizeof(*f));
	f->gz = gz;
	f->cap = CHUNK;
	f->buf = xmalloc(f->cap + 1);
	*out = f;
	return JIT_OK;
}

/* Reads more bytes after buf[end]; the buffer grows up to one line's max. */
static int fill(struct auditfile *f)
{
	if (f->pos > 0) {
		memmove(f->buf, f->buf + f->pos, f->end - f->pos);
		f->end -= f->pos;
		f->pos = 0;
	}
	if (f->end == f->cap) {
		if (f->cap >= AUDITFILE_LINE_MAX + 1)
			return JIT_ETOOBIG;
		f->cap = f->cap * 2 > AUDITFILE_LINE_MAX + 1 ? AUDITFILE_LINE_MAX + 1 : f->cap * 2;
		f->buf = xrealloc(f->buf, f->cap + 1);
	}
	unsigned want = f->cap - f->end > CHUNK ? CHUNK : (unsigned)(f->cap - f->end);
	int n = gzread(f->gz, f->buf + f->end, want);
	if (n < 0) {
		int zerr = 0;
		const char *m = gzerror(f->gz, &zerr);
		snprintf(f->err, sizeof(f->err), "%s",
			 zerr == Z_ERRNO ? strerror(errno) : (m && *m ? m : "read error"));
		f->failed = true;
		return JIT_EIO;
	}
	if (n == 0) {
		int zerr = 0;
		const char *m = gzerror(f->gz, &zerr);
		/* A truncated .gz ends with Z_BUF_ERROR instead of a clean end. */
		if (zerr != Z_OK) {
			snprintf(f->err, sizeof(f->err), "%s", m && *m ? m : "damaged file");
			f->failed = true;
			return JIT_EIO;
		}
		f->eof = true;
	}
	f->end += (size_t)n;
	return JIT_OK;
}

/* Drops bytes up to and including the next '\n' (an over-long line). */
static int skip_line(struct auditfile *f)
{
	for (;;) {
		char *nl = memchr(f->buf + f->pos, '\n', f->end - f->pos);
		if (nl) {
			f->pos = (size_t)(nl - f->buf) + 1;
			return JIT_OK;
		}
		f->pos = f->end = 0;
		if (f->eof)
			return JIT_OK;
		int rc = fill(f);
		if (rc != JIT_OK)
			return rc;
	}
}

int auditfile_next(struct auditfile *f, const char **line, size_t *len)
{
	if (f->failed)
		return JIT_EIO;
	size_t scanned = f->pos;
	for (;;) {
		char *nl = memchr(f->buf + scanned, '\n', f->end - scanned);
		if (nl || (f->eof && f->end > f->pos)) {
			size_t e = nl ? (size_t)(nl - f->buf) : f->end;
			f->buf[e] = '\0';
			*line = f->buf + f->pos;
			*len = e - f->pos;
			f->pos = nl ? e + 1 : e;
			f->lineno++;
			return 1;
		}
		if (f->eof)
			return 0;
		size_t off = f->end - f->pos; /* already scanned, relative to pos */
		int rc = fill(f);
		if (rc == JIT_ETOOBIG) {
			f->lineno++;
			rc = skip_line(f);
			return rc == JIT_OK ? JIT_ETOOBIG : rc;
		}
		if (rc != JIT_OK)
			return rc;
		scanned = f->pos + off;
	}
}

int64_t auditfile_lineno(const struct auditfile *f)
{
	return f->lineno;
}

const char *auditfile_error(const struct auditfile *f)
{
	return f->err;
}

void auditfile_close(struct auditfile *f)
{
	if (!f)
		return;
	(void)gzclose(f->gz);
	free(f->buf);
	free(f);
}
