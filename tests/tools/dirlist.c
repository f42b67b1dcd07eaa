/*
 * dirlist.c - test tool: prints every value of a group's member attribute
 * as jitd's directory module reads it (range retrieval), one per line.
 *
 *   dirlist CONFIG DIRECTORY GROUP_DN ATTR [STEP]
 *
 * STEP > 0 asks for that many values per request ("member;range=0-4", ...),
 * so that the range loop can be checked against a server with small groups;
 * 0 (the default) is what jitd does. Exit 0 and "count N" last, or 1 with
 * the error on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>

#include "config.h"
#include "directory.h"
#include "log.h"
#include "util.h"

static int print_value(const char *value, void *arg)
{
	size_t *n = arg;

	printf("%s\n", value);
	(*n)++;
	return 0;
}

int main(int argc, char **argv)
{
	struct jit_config *cfg = NULL;
	char *errors = NULL;
	struct dir_result res = { 0 };
	int64_t step = 0;
	size_t n = 0;
	int rc;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: dirlist CONFIG DIRECTORY GROUP_DN ATTR [STEP]\n");
		return 2;
	}
	if (argc == 6 && parse_int64(argv[5], 0, 1000000, &step) != JIT_OK) {
		fprintf(stderr, "dirlist: bad STEP %s\n", argv[5]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("dirlist", true, LOG_LVL_WARN);
	if (config_load(argv[1], &cfg, &errors) != JIT_OK) {
		fputs(errors ? errors : "configuration invalid\n", stderr);
		free(errors);
		return 1;
	}
	const struct jit_dir_cfg *d = config_directory(cfg, argv[2]);
	if (d == NULL) {
		fprintf(stderr, "dirlist: no directory %s\n", argv[2]);
		config_free(cfg);
		return 1;
	}
	struct dir_conn *c = dir_conn_new(d);
	rc = dir_list_members_step(c, argv[3], argv[4], (long)step, print_value, &n, &res);
	if (rc == JIT_OK) {
		printf("count %zu\n", n);
	} else {
		fprintf(stderr, "dirlist: %s: %s\n", jit_err_code(rc), res.message);
	}
	dir_conn_free(c);
	config_free(cfg);
	return rc == JIT_OK ? 0 : 1;
}
