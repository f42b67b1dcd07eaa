/*
 * replay.c - runs a libFuzzer harness (LLVMFuzzerTestOneInput, linked in
 * beside this file) over its seed corpus and its regression inputs, as a
 * unit test of `make check`: every input that once crashed a target stays
 * in tests/fuzz/regress/TARGET/ and is replayed by every build, with and
 * without sanitizers. A harness signals a broken promise with abort().
 *
 * usage: test_fuzz_TARGET SRCDIR   (tests/run passes the source directory)
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=\"name\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_file(const char *path, uint8_t **out, size_t *n)
{
	FILE *f = fopen(path, "rb");
	struct strbuf sb = { 0 };
	char buf[4096];
	size_t got;
	if (!f)
		return -1;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&sb, buf, got);
	int err = ferror(f);
	fclose(f);
	if (err) {
		sb_free(&sb);
		return -1;
	}
	*n = sb.len;
	*out = (uint8_t *)sb_steal(&sb);
	return 0;
}

/* Replays every regular file in dir; returns the number replayed, -1 on error. */
static int replay_dir(const char *dir, int *failed)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int count = 0;
	if (!d)
		return 0; /* no regression inputs yet */
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		uint8_t *data = NULL;
		size_t n = 0;
		if (read_file(path, &data, &n) != 0) {
			fprintf(stderr, "FAIL cannot read %s\n", path);
			(*failed)++;
		} else {
			/* an exact-size copy, so ASan sees reads past the end */
			uint8_t *copy = xmalloc(n ? n : 1);
			memcpy(copy, data, n);
			LLVMFuzzerTestOneInput(copy, n);
			free(copy);
			count++;
		}
		free(data);
		free(path);
	}
	closedir(d);
	return count;
}

int main(int argc, char **argv)
{
	const char *src = argc > 1 ? argv[1] : getenv("JITD_SRCDIR");
	int failed = 0;
	if (!src)
		src = ".";
	char *corpus = xasprintf("%s/tests/fuzz/corpus/%s", src, FUZZ_TARGET);
	char *regress = xasprintf("%s/tests/fuzz/regress/%s", src, FUZZ_TARGET);
	int n = replay_dir(corpus, &failed);
	int m = replay_dir(regress, &failed);
	if (n == 0) {
		fprintf(stderr, "FAIL no seed corpus in %s\n", corpus);
		failed++;
	}
	fprintf(stderr, "%s: replayed %d seed and %d regression inputs\n", FUZZ_TARGET, n, m);
	free(corpus);
	free(regress);
	/* reaching here means no input aborted */
	printf("%d passed, %d failed\n", n + m, failed);
	return failed ? 1 : 0;
}
