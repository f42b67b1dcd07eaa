/*
 * secret.c - checking and reading secret files (see secret.h). Trust: the
 * files are trusted only if nobody but jitd's user can read or change
 * them; a file that others could read may already be known to them, one
 * that others could write may hold their key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "secret.h"
#include "util.h"

static int check_stat(const struct stat *st, uid_t owner, char *why, size_t whylen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "not a regular file");
		return JIT_ECONFIG;
	}
	if (st->st_mode & 077) {
		snprintf(why, whylen, "mode %04o lets group or others use it (make it 0600 or 0400)",
			 (unsigned)(st->st_mode & 07777));
		return JIT_ECONFIG;
	}
	if (st->st_uid != owner) {
		snprintf(why, whylen, "owned by uid %lu, not by uid %lu that jitd runs as",
			 (unsigned long)st->st_uid, (unsigned long)owner);
		return JIT_ECONFIG;
	}
	return JIT_OK;
}

int secret_file_check(const char *path, uid_t owner, char *why, size_t whylen)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return errno == ENOENT ? JIT_ECONFIG : JIT_EIO;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, whylen, "is a symbolic link (name the file itself)");
		return JIT_ECONFIG;
	}
	return check_stat(&st, owner, why, whylen);
}

int secret_file_read(const char *path, uid_t owner, size_t max, char **out, size_t *len,
		     char *why, size_t whylen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc = JIT_EIO;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return errno == ENOENT || errno == ELOOP ? JIT_ECONFIG : JIT_EIO;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	rc = check_stat(&st, owner, why, whylen);
	if (rc != JIT_OK)
		goto out;
	rc = JIT_EIO;
	/* room for the secret, "\r\n", and one byte too many */
	buf = xmalloc(max + 4);
	while (got < max + 3) {
		ssize_t n = read(fd, buf + got, max + 3 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "%s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > 0 && buf[got - 1] == '\n')
		got--;
	if (got > 0 && buf[got - 1] == '\r')
		got--;
	if (got > max) {
		snprintf(why, whylen, "longer than %zu bytes", max);
		rc = JIT_ECONFIG;
		goto out;
	}
	if (got == 0) {
		snprintf(why, whylen, "is empty");
		rc = JIT_ECONFIG;
		goto out;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
	rc = JIT_OK;
out:
	if (buf) {
		wipe(buf, max + 4);
		free(buf);
	}
	close(fd);
	return rc;
}
