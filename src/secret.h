/*
 * secret.h - files that hold secrets (SASL passwords, keytabs, ticket
 * system tokens, approval keys): the check jitd makes on them at start,
 * in `jitd -t` and on every read, and a bounded reader.
 *
 * A secret file must be a regular file, owned by the user jitd runs as
 * (after dropping root: `user`), with no permission at all for group or
 * others. Checks are made on the open descriptor when reading, so the file
 * cannot be swapped between check and read. Nothing here logs a secret.
 */
#ifndef JITD_SECRET_H
#define JITD_SECRET_H

#include <stddef.h>
#include <sys/types.h>
#include "err.h"

/* JIT_OK if path is a safe secret file for owner; else JIT_ECONFIG (or
 * JIT_EIO when it cannot be examined) with the reason in why. */
int secret_file_check(const char *path, uid_t owner, char *why, size_t whylen) JIT_WUR;

/*
 * Reads path after the same checks on the open file: at most max bytes,
 * one trailing "\n" (or "\r\n") dropped. *out is a heap buffer of *len
 * bytes plus a NUL; wipe it with wipe() + free() or free_secret(). Empty
 * content is refused. JIT_OK, or JIT_ECONFIG / JIT_EIO with why.
 */
int secret_file_read(const char *path, uid_t owner, size_t max, char **out, size_t *len,
		     char *why, size_t whylen) JIT_WUR;

#endif
