/*
 * fuzz_config.c - libFuzzer harness for the configuration loader
 * (config_load_text: the lexer pass, libconfig, the key tables and every
 * cross-check; with CONFIG_NO_IDS user names are not resolved). It checks the loader's promises: a config or a refusal
 * with JIT_ECONFIG, errors that all cite "fuzz.conf", the out-parameter
 * untouched on refusal; and that the effective configuration printed by
 * config_dump() (jitd -t -v) loads again, and so does the text the
 * listener gets (config_text_redacted()).
 *
 * libconfig 1.5 leaks inside its lexer on some malformed input; the fuzz
 * run suppresses exactly that (tests/fuzz/lsan.supp).
 *
 * Build and run: tests/fuzz/run config (or make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "util.h"

#define FUZZ_MAX_INPUT 16384

static void check_errors(const char *errors)
{
	if (!errors || !*errors)
		abort();
	for (const char *p = errors; *p;) {
		if (strncmp(p, "fuzz.conf", 9) != 0)
			abort();
		const char *nl = strchr(p, '\n');
		if (!nl)
			abort(); /* every message ends with a newline */
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jit_config sentinel;
	struct jit_config *cfg = &sentinel, *again = NULL;
	char *errors = NULL, *dump = NULL, *text;
	size_t dlen = 0;
	/* the file reader refuses a NUL byte before the loader sees the text */
	if (size > FUZZ_MAX_INPUT || memchr(data, '\0', size))
		return 0;
	text = xstrndup((const char *)data, size);
	int rc = config_load_text("fuzz.conf", text, CONFIG_NO_IDS, &cfg, &errors);
	free(text);
	if (rc != JIT_OK) {
		if (rc != JIT_ECONFIG || cfg != &sentinel)
			abort();
		check_errors(errors);
		free(errors);
		return 0;
	}
	if (cfg == &sentinel || cfg == NULL)
		abort();
	FILE *f = open_memstream(&dump, &dlen);
	if (!f)
		abort();
	config_dump(cfg, f);
	if (fclose(f) != 0)
		abort();
	char *errs2 = NULL;
	if (config_load_text("fuzz.conf", dump, CONFIG_NO_IDS, &again, &errs2) != JIT_OK) {
		fprintf(stderr, "config_dump output does not load again:\n%s\n--- dump:\n%s\n",
			errs2 ? errs2 : "", dump);
		abort();
	}
	config_free(again);
	free(dump);
	/* what the listener gets (its url values redacted) loads too */
	char *red = config_text_redacted(cfg->text), *errs3 = NULL;
	again = NULL;
	if (config_load_text("fuzz.conf", red, CONFIG_NO_IDS, &again, &errs3) != JIT_OK) {
		fprintf(stderr, "the redacted text does not load:\n%s\n--- text:\n%s\n",
			errs3 ? errs3 : "", red);
		abort();
	}
	config_free(again);
	free(red);
	config_free(cfg);
	return 0;
}
