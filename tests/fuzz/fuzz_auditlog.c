/*
 * fuzz_auditlog.c - libFuzzer harness for what reads audit files that may
 * have been tampered with: the chain verifier (audit_verify_line) and the
 * report (report_add over jansson-parsed lines, report_result, every
 * renderer). The input is split into lines as jitctl does. Besides the
 * sanitizers it checks the report's promises: the totals are never
 * negative, the rendered HTML holds no unescaped '<' from the input, and
 * the JSON form parses back.
 *
 * Build and run: tests/fuzz/run auditlog (or make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "audit.h"
#include "report.h"

static void render_all(json_t *res)
{
	for (int f = REPORT_TEXT; f <= REPORT_HTML; f++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&buf, &len);
		if (!fp)
			abort();
		if (report_render(res, (enum report_format)f, fp) != JIT_OK)
			abort();
		fclose(fp);
		if (f == REPORT_JSON) {
			json_t *back = json_loadb(buf, len, 0, NULL);
			if (!back)
				abort();
			json_decref(back);
		}
		if (f == REPORT_HTML && strstr(buf, "<script"))
			abort(); /* every input name is escaped */
		free(buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* bit 2: made in the middle of the period (not over yet) */
	struct report_opts o = { .has_since = size > 0 && (data[0] & 1),
				 .since = 1795392000, .has_until = size > 0 && (data[0] & 2),
				 .until = 1795392000 + 86400,
				 .generated_at = size > 0 && (data[0] & 4) ? 1795392000 + 43200 : 0 };
	struct report *r = report_new(&o);
	struct audit_verifier *v = audit_verifier_new();
	struct report_chain ch = { .verified = true, .last_hash = "" };
	char msg[512], hash[AUDIT_HASH_HEX + 1];
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int rc = audit_verify_line(v, p, len, msg, sizeof(msg));
		if ((rc != JIT_OK && rc != AUDIT_HELD) ||
		    audit_verifier_take_held(v, msg, sizeof(msg)) != JIT_OK)
			ch.verified = false;
		json_t *ev = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
		if (json_is_object(ev))
			report_add(r, ev);
		else
			report_unreadable(r);
		json_decref(ev);
		p += len + 1;
	}
	if (audit_verify_end(v, msg, sizeof(msg)) != JIT_OK)
		ch.verified = false;
	audit_verifier_state(v, &ch.lines, &ch.bad_lines, &ch.first_seq, &ch.last_seq, hash);
	ch.torn_lines = audit_verifier_torn(v);
	ch.last_hash = hash;
	json_t *res = report_result(r, &ch);
	json_t *t = json_object_get(res, "totals");
	const char *k;
	json_t *val;
	json_object_foreach(t, k, val) {
		if (json_integer_value(val) < 0)
			abort();
	}
	render_all(res);
	json_decref(res);
	report_free(r);
	audit_verifier_free(v);
	return 0;
}
