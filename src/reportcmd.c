/*
 * reportcmd.c - `jitctl audit verify` and `jitctl report`: read audit files
 * (plain or .gz, oldest first), check the hash chain across all of them,
 * and for a report feed every event to report.c and render the result.
 * Trust: the files are untrusted input (that is what verifying is for):
 * lines are bounded by auditfile.c, parsed by jansson, and every message
 * printed about a line names it by file and line number, never echoes it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "audit.h"
#include "auditfile.h"
#include "report.h"
#include "reportcmd.h"
#include "util.h"

enum { EXIT_BROKEN = 1, EXIT_USAGE = 2, EXIT_IO = 3 };
#define SHOW_BAD_MAX 100 /* bad lines printed by audit verify */

void reportcmd_usage(FILE *fp)
{
	fprintf(fp, "  audit verify FILE...          check the hash chain (files oldest first, .gz too)\n"
		    "  report [--since T] [--until T] [--format text|csv|json|html] [-o FILE] FILE...\n");
}

/* Reads files in order; calls line_cb for every line that continues the
 * chain or not. The chain's verdict is in the verifier. */
struct scan {
	struct audit_verifier *v;
	char *first_error;      /* "FILE:LINE: why" */
	bool print_bad;         /* audit verify: print each bad line */
	int64_t shown;
	struct report *rep;     /* report: feed events */
	bool io_failed;
	/* a line without a chain, held by the verifier until the next line */
	char *held_file;
	int64_t held_lineno;
	char *held_line;        /* its bytes, for the report once judged bad */
	size_t held_len;
};

static void bad_line(struct scan *s, const char *file, int64_t lineno, const char *why)
{
	char *m = lineno ? xasprintf("%s:%lld: %s", file, (long long)lineno, why)
			 : xasprintf("%s: %s", file, why);
	if (s->print_bad && s->shown++ < SHOW_BAD_MAX)
		printf("%s\n", m);
	if (!s->first_error)
		s->first_error = m;
	else
		free(m);
}

static void feed(struct scan *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (json_is_object(o))
		report_add(s->rep, o);
	else
		report_unreadable(s->rep);
	json_decref(o);
}

/* After each verifier call: rc and msg from audit_verifier_take_held() or
 * audit_verify_end(). The held line is reported if judged bad, dropped if a
 * torn_line record of jitd accounted for it (not an event, not a bad line),
 * and kept while undecided. */
static void held_verdict(struct scan *s, int rc, const char *msg)
{
	if (!s->held_file)
		return;
	if (rc != JIT_OK) {
		bad_line(s, s->held_file, s->held_lineno, msg);
		if (s->rep)
			feed(s, s->held_line, s->held_len);
	} else if (audit_verifier_holds(s->v)) {
		return; /* still held */
	}
	free(s->held_file);
	free(s->held_line);
	s->held_file = s->held_line = NULL;
}

static int scan_file(struct scan *s, const char *file)
{
	struct auditfile *f = NULL;
	char err[256], msg[512];
	const char *line;
	size_t len;
	int rc;
	if (auditfile_open(file, &f, err, sizeof(err)) != JIT_OK) {
		fprintf(stderr, "jitctl: %s: %s\n", file, err);
		s->io_failed = true;
		return EXIT_IO;
	}
	while ((rc = auditfile_next(f, &line, &len)) != 0) {
		if (rc < 0) {
			/* not a line the verifier sees: a held line before it is bad */
			audit_verifier_unreadable(s->v);
			held_verdict(s, audit_verifier_take_held(s->v, msg, sizeof(msg)), msg);
		}
		if (rc == JIT_ETOOBIG) {
			bad_line(s, file, auditfile_lineno(f), "line longer than the 8 MiB limit");
			if (s->rep)
				report_unreadable(s->rep);
			continue;
		}
		if (rc < 0) {
			snprintf(msg, sizeof(msg), "damaged after line %lld: %s",
				 (long long)auditfile_lineno(f), auditfile_error(f));
			bad_line(s, file, 0, msg);
			break;
		}
		int vr = audit_verify_line(s->v, line, len, msg, sizeof(msg));
		char hmsg[512];
		held_verdict(s, audit_verifier_take_held(s->v, hmsg, sizeof(hmsg)), hmsg);
		if (vr == AUDIT_HELD) {
			s->held_file = xstrdup(file);
			s->held_lineno = auditfile_lineno(f);
			s->held_line = xmalloc(len + 1);
			memcpy(s->held_line, line, len);
			s->held_len = len;
			continue;
		}
		if (vr != JIT_OK)
			bad_line(s, file, auditfile_lineno(f), msg);
		if (s->rep)
			feed(s, line, len);
	}
	auditfile_close(f);
	return 0;
}

/* The end of the files: a line still held is judged. */
static void scan_end(struct scan *s)
{
	char msg[512];
	held_verdict(s, audit_verify_end(s->v, msg, sizeof(msg)), msg);
}

static int verify_usage(FILE *fp, int rc)
{
	fprintf(fp, "usage: jitctl audit verify FILE...   (oldest first: rotated files, then "
		    "the current one; .gz is read too)\n");
	return rc;
}

/*
 * The report goes to a new file beside output, mode 0640, and takes its
 * name only once whole: a failed write leaves the previous report (or
 * nothing) there, never half a report, and output is never followed if it
 * is a symbolic link (it is replaced). An output that is neither a regular
 * file nor a link (/dev/null, a FIFO) is written to as it is (*tmp NULL).
 * *tmp: the temporary name (caller frees). NULL with errno set when it
 * cannot be created.
 */
static FILE *open_output(const char *output, char **tmp)
{
	struct stat st;
	*tmp = NULL;
	if (lstat(output, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return fopen(output, "w"); /* a device, a FIFO: written to, never replaced */
	*tmp = xasprintf("%s.XXXXXX", output);
	mode_t old = umask(0027);
	int fd = mkstemp(*tmp);
	umask(old);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int e = errno;
		close(fd);
		unlink(*tmp);
		errno = e;
	}
	return f;
}

/* Closes the report written to tmp, and, if ok, makes it output (flushed to
 * disk first); else removes it. True when output now holds the report. */
static bool close_output(FILE *f, const char *tmp, const char *output, bool ok)
{
	bool written = ok;
	if (fflush(f) != 0 || (tmp && fsync(fileno(f)) != 0))
		ok = false;
	if (fclose(f) != 0)
		ok = false;
	if (!tmp) {
		if (written && !ok)
			fprintf(stderr, "jitctl: report: cannot write %s: %s\n", output,
				strerror(errno));
		return ok;
	}
	if (ok && chmod(tmp, 0640) == 0 && rename(tmp, output) == 0)
		return true;
	if (written) /* else the render's failure was said already */
		fprintf(stderr, "jitctl: report: cannot write %s: %s\n", output, strerror(errno));
	unlink(tmp);
	return false;
}

int reportcmd_audit(int argc, char **argv)
{
	struct scan s = { 0 };
	int64_t lines, bad, first, last;
	char hash[AUDIT_HASH_HEX + 1];
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return verify_usage(stdout, 0);
	if (argc < 3 || strcmp(argv[1], "verify") != 0)
		return verify_usage(stderr, EXIT_USAGE);
	if (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)
		return verify_usage(stdout, 0);
	s.v = audit_verifier_new();
	s.print_bad = true;
	for (int i = 2; i < argc && !s.io_failed; i++)
		(void)scan_file(&s, argv[i]);
	if (s.io_failed) {
		audit_verifier_free(s.v);
		free(s.first_error);
		free(s.held_file);
		free(s.held_line);
		return EXIT_IO;
	}
	scan_end(&s);
	audit_verifier_state(s.v, &lines, &bad, &first, &last, hash);
	int64_t torn = audit_verifier_torn(s.v);
	audit_verifier_free(s.v);
	if (s.first_error) {
		if (s.shown > SHOW_BAD_MAX)
			printf("... %lld more\n", (long long)(s.shown - SHOW_BAD_MAX));
		printf("BROKEN: the first bad line is %s\n", s.first_error);
		free(s.first_error);
		return EXIT_BROKEN;
	}
	if (lines == 0) {
		printf("OK: no lines\n");
		return 0;
	}
	printf("OK: %lld lines in %d file(s), seq %lld .. %lld, last hash %s\n", (long long)lines,
	       argc - 2, (long long)first, (long long)last, hash);
	if (first != 1)
		printf("(the first line, seq %lld, was taken as the start: older files were not "
		       "given)\n", (long long)first);
	if (torn > 0)
		printf("(%lld torn line(s), each followed by jitd's torn_line record of it: jitd "
		       "stopped in the middle of writing them; they were never acknowledged)\n",
		       (long long)torn);
	return 0;
}

static int report_usage(FILE *fp, int rc)
{
	fprintf(fp, "usage: jitctl report [--since T] [--until T] [--format text|csv|json|html] "
		    "[-o FILE] FILE...\n"
		    "  T: YYYY-MM-DD (midnight UTC) or YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM\n"
		    "  FILEs oldest first (rotated files, then the current one; .gz is read too)\n");
	return rc;
}

static int parse_opts(int argc, char **argv, struct report_opts *o, enum report_format *fmt,
		      const char **output)
{
	static const struct option lo[] = {
		{ "since", required_argument, NULL, 's' }, { "until", required_argument, NULL, 'u' },
		{ "format", required_argument, NULL, 'f' }, { "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },	     { NULL, 0, NULL, 0 }
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":o:h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
		case 'u':
			if (report_parse_time(optarg, c == 's' ? &o->since : &o->until) != JIT_OK) {
				fprintf(stderr, "jitctl: report: --%s: not a date or time: %s\n",
					c == 's' ? "since" : "until", optarg);
				return EXIT_USAGE;
			}
			*(c == 's' ? &o->has_since : &o->has_until) = true;
			break;
		case 'f':
			if (report_format_parse(optarg, fmt) != JIT_OK) {
				fprintf(stderr, "jitctl: report: --format: text, csv, json or html\n");
				return EXIT_USAGE;
			}
			break;
		case 'o':
			*output = optarg;
			break;
		case 'h':
			return report_usage(stdout, -1);
		default:
			fprintf(stderr, "jitctl: report: bad option %s\n", argv[optind - 1]);
			return report_usage(stderr, EXIT_USAGE);
		}
	}
	if (optind >= argc)
		return report_usage(stderr, EXIT_USAGE);
	if (o->has_since && o->has_until && o->until <= o->since) {
		fprintf(stderr, "jitctl: report: --until must be later than --since\n");
		return EXIT_USAGE;
	}
	return 0;
}

int reportcmd_report(int argc, char **argv)
{
	struct report_opts o = { .generated_at = now_s() };
	enum report_format fmt = REPORT_TEXT;
	const char *output = NULL;
	struct scan s = { 0 };
	struct report_chain ch = { 0 };
	char hash[AUDIT_HASH_HEX + 1];
	int rc = parse_opts(argc, argv, &o, &fmt, &output);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	json_t *files = json_array();
	s.v = audit_verifier_new();
	s.rep = report_new(&o);
	for (int i = optind; i < argc && !s.io_failed; i++) {
		json_array_append_new(files, json_string(argv[i]));
		(void)scan_file(&s, argv[i]);
	}
	rc = EXIT_IO;
	if (s.io_failed)
		goto out;
	scan_end(&s);
	audit_verifier_state(s.v, &ch.lines, &ch.bad_lines, &ch.first_seq, &ch.last_seq, hash);
	ch.torn_lines = audit_verifier_torn(s.v);
	ch.verified = s.first_error == NULL;
	ch.last_hash = hash;
	ch.first_error = s.first_error;
	ch.files = files;
	json_t *res = report_result(s.rep, &ch);
	char *tmp = NULL;
	FILE *out = output ? open_output(output, &tmp) : stdout;
	if (!out) {
		fprintf(stderr, "jitctl: report: cannot write %s: %s\n", output, strerror(errno));
	} else {
		bool ok = report_render(res, fmt, out) == JIT_OK;
		if (!ok)
			fprintf(stderr, "jitctl: report: write error\n");
		if (output)
			ok = close_output(out, tmp, output, ok);
		if (ok)
			rc = ch.verified ? 0 : EXIT_BROKEN;
	}
	free(tmp);
	json_decref(res);
out:
	if (!ch.verified && s.first_error && rc == EXIT_BROKEN)
		fprintf(stderr, "jitctl: report: the hash chain did NOT verify: %s\n", s.first_error);
	json_decref(files);
	report_free(s.rep);
	audit_verifier_free(s.v);
	free(s.first_error);
	free(s.held_file); /* left by an unreadable file */
	free(s.held_line);
	return rc;
}
