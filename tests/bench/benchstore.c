/*
 * benchstore.c - the store side of `make bench` (tests/bench/bench.py):
 *
 *   benchstore fill STATE_DIR COUNT USERS GROUPS SUFFIX
 *       inserts COUNT active grants through store.h (store_insert, 10,000 per
 *       transaction): user su<u> (u = i % USERS), group sg<(u + i / USERS) %
 *       GROUPS> so that no (user, group) pair repeats while COUNT <= USERS *
 *       GROUPS; created up to an hour ago, expiring 2 to 7 days ahead.
 *   benchstore probe STATE_DIR [REPEAT]
 *       times store_next_due() and store_due() (nothing due) REPEAT times and
 *       prints EXPLAIN QUERY PLAN of the scheduler's and list's queries.
 *
 * One JSON object on stdout. Test tool: it opens the store as jitd does
 * (migrations, WAL) and trusts its arguments.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "grant.h"
#include "lat.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define BATCH 10000

static void usage(void)
{
	fputs("usage: benchstore fill STATE_DIR COUNT USERS GROUPS SUFFIX\n"
	      "       benchstore probe STATE_DIR [REPEAT]\n",
	      stderr);
	exit(2);
}

static int64_t num_arg(const char *s, int64_t lo, int64_t hi)
{
	int64_t v;

	if (parse_int64(s, lo, hi, &v) != JIT_OK) {
		fprintf(stderr, "benchstore: bad number %s\n", s);
		exit(2);
	}
	return v;
}

static int emit(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	int ok = text != NULL && puts(text) != EOF && fflush(stdout) == 0;

	free(text);
	json_decref(o);
	return ok ? 0 : 1;
}

/* Grant number i, with the fields jitd fills for a real grant. */
static void make_rec(struct grant_rec *r, int64_t i, int64_t users, int64_t groups,
		     const char *suffix, int64_t now, uint32_t tag)
{
	int64_t u = i % users, g = (u + i / users) % groups;

	memset(r, 0, sizeof(*r));
	r->id = xasprintf("g-%08" PRIx32 "%016" PRIx64, tag, (uint64_t)i);
	r->request_id = xasprintf("bench-store-%08" PRIx32 "-%" PRId64, tag, i);
	r->state = GS_ACTIVE;
	r->end_state = GS_PENDING;
	r->user = xasprintf("su%" PRId64, u);
	r->user_dn = xasprintf("uid=su%" PRId64 ",ou=people,%s", u, suffix);
	r->user_uuid = xasprintf("%08" PRIx64 "-0000-4000-8000-%012" PRIx64, (uint64_t)u,
				 (uint64_t)i);
	r->member_value = xstrdup(r->user_dn);
	r->group_name = xasprintf("sg%" PRId64, g);
	r->group_dn = xasprintf("cn=sg%" PRId64 ",ou=groups,%s", g, suffix);
	r->directory = xstrdup("corp");
	r->member_attr = xstrdup("member");
	r->placeholder = xasprintf("cn=placeholder,ou=groups,%s", suffix);
	r->pair_key = grant_pair_key(r->directory, r->group_dn, r->member_attr, r->member_value);
	r->created_at = now - (i * 7919) % 3600;
	r->expires_at = now + 2 * 86400 + (i * 104729) % (5 * 86400);
	r->duration = r->expires_at - r->created_at;
	r->ticket = xasprintf("INC-%06" PRId64, i % 1000000);
	r->reason = xstrdup("benchmark: synthetic grant for the scale test");
	r->requested_by = xasprintf("su%" PRId64, u);
	r->approved_by = xstrdup("helpdesk");
	r->client = xstrdup("root");
	r->peer_uid = 0;
	r->peer_pid = 4242;
	r->added_via = xstrdup("ldapi://");
}

static int cmd_fill(int argc, char **argv)
{
	struct store *st = NULL;
	int64_t count, users, groups, now = now_s(), done = 0;
	uint32_t tag = (uint32_t)(lat_now_ns() & 0xffffffff);
	int rc;

	if (argc != 7)
		usage();
	count = num_arg(argv[3], 1, 100000000);
	users = num_arg(argv[4], 1, 100000000);
	groups = num_arg(argv[5], 1, 100000);
	if (count > users * groups) {
		fprintf(stderr, "benchstore: COUNT > USERS * GROUPS would repeat a pair\n");
		return 2;
	}
	if (store_open(argv[2], &st) != JIT_OK) {
		fprintf(stderr, "benchstore: cannot open the store in %s\n", argv[2]);
		return 1;
	}
	int64_t t0 = lat_now_ns();
	while (done < count) {
		int64_t end = done + BATCH < count ? done + BATCH : count;
		if ((rc = store_begin(st)) != JIT_OK)
			goto fail;
		for (; done < end; done++) {
			struct grant_rec r;
			make_rec(&r, done, users, groups, argv[6], now, tag);
			rc = store_insert(st, &r);
			grant_rec_clear(&r);
			if (rc != JIT_OK) {
				store_rollback(st);
				goto fail;
			}
		}
		if ((rc = store_commit(st)) != JIT_OK)
			goto fail;
	}
	double secs = (double)(lat_now_ns() - t0) / 1e9;
	store_close(st);
	json_t *o = json_object();
	json_object_set_new(o, "inserted", json_integer(done));
	json_object_set_new(o, "seconds", json_real(secs));
	json_object_set_new(o, "rate", json_real(secs > 0 ? (double)done / secs : 0));
	return emit(o);
fail:
	fprintf(stderr, "benchstore: insert of grant %" PRId64 " failed: %s\n", done,
		jit_err_code(rc));
	store_close(st);
	return 1;
}

static int count_cb(const struct grant_rec *r, void *arg)
{
	(void)r;
	(*(int64_t *)arg)++;
	return 0;
}

static int cmd_probe(int argc, char **argv)
{
	static const char *const plans[] = { "due", "next_due", "list_both", "list_user",
					     "counts" };
	struct store *st = NULL;
	struct lat next = { 0 }, due = { 0 };
	int64_t repeat = 100, when = 0, n_due = 0, counts[GS__COUNT];
	json_t *o, *ex;

	if (argc != 3 && argc != 4)
		usage();
	if (argc == 4)
		repeat = num_arg(argv[3], 1, 1000000);
	if (store_open(argv[2], &st) != JIT_OK) {
		fprintf(stderr, "benchstore: cannot open the store in %s\n", argv[2]);
		return 1;
	}
	for (int64_t i = 0; i < repeat; i++) {
		int64_t t0 = lat_now_ns();
		if (store_next_due(st, &when) != JIT_OK)
			goto fail;
		int64_t t1 = lat_now_ns();
		n_due = 0;
		if (store_due(st, now_s(), 4096, count_cb, &n_due) < 0)
			goto fail;
		int64_t t2 = lat_now_ns();
		lat_add(&next, (double)(t1 - t0) / 1000.0);
		lat_add(&due, (double)(t2 - t1) / 1000.0);
	}
	int64_t t0 = lat_now_ns();
	if (store_counts(st, counts) != JIT_OK)
		goto fail;
	double counts_ms = (double)(lat_now_ns() - t0) / 1e6;
	o = json_object();
	json_object_set_new(o, "next_due_ms", lat_summary(&next));
	json_object_set_new(o, "due_ms", lat_summary(&due));
	json_object_set_new(o, "next_due_at", json_integer(when));
	json_object_set_new(o, "due_rows", json_integer(n_due));
	json_object_set_new(o, "active", json_integer(counts[GS_ACTIVE]));
	json_object_set_new(o, "counts_ms", json_real(counts_ms));
	ex = json_object();
	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		char *plan = NULL;
		if (store_explain(st, plans[i], &plan) == JIT_OK)
			json_object_set_new(ex, plans[i], json_string(plan));
		free(plan);
	}
	json_object_set_new(o, "explain", ex);
	lat_free(&next);
	lat_free(&due);
	store_close(st);
	return emit(o);
fail:
	fprintf(stderr, "benchstore: store query failed\n");
	lat_free(&next);
	lat_free(&due);
	store_close(st);
	return 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	log_init("benchstore", true, LOG_LVL_WARN);
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "fill") == 0)
		return cmd_fill(argc, argv);
	if (strcmp(argv[1], "probe") == 0)
		return cmd_probe(argc, argv);
	usage();
	return 2;
}
