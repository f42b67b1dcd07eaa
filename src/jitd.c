/*
 * jitd.c - the daemon's entry point: options, configuration, logging,
 * daemonizing, signals, reload, and wiring the audit log, the engine and
 * the listener together. Trust: the config file is checked by config.c
 * (permissions, every key); nothing here parses client input.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include "audit.h"
#include "config.h"
#include "dnkey.h"
#include "engine.h"
#include "fault.h"
#include "log.h"
#include "privsep.h"
#include "listener.h"
#include "monitor.h"
#include "notify.h"
#include "server.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/jitd/jitd.conf"

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

struct daemon_state {
	const char *config_path;
	struct jit_config *cfg0;        /* the start-up config: lives until exit */
	struct jit_config *cfg;         /* current (== cfg0 or a reloaded one) */
	struct audit *audit;
	struct notify *notify;
	struct engine *engine;
	struct monitor *mon;
	/* cfg0->pid_file as this process wrote it (root's: never given to
	 * `user`, whose processes must not choose whom root's scripts signal),
	 * kept open to empty it at exit where it cannot be removed; or -1 */
	int pid_fd;
};

static void usage(FILE *fp)
{
	fprintf(fp, "usage: jitd [-c FILE] [-f] [--init-store] [-t [-v]] [-V] [-h]\n"
		    "  -c FILE       configuration file (default " DEFAULT_CONFIG ")\n"
		    "  -f            stay in the foreground, log to stderr\n"
		    "  --init-store  create an empty state database even though the audit\n"
		    "                log has history or a jitd.db-wal/-shm is left without\n"
		    "                its jitd.db (which then forgets the grants it held)\n"
		    "  -t            check the configuration and exit\n"
		    "  -v            with -t: print the effective configuration\n"
		    "  -V            print the version\n");
}

/* The audit observer: every durable line may become a notification. */
static void on_audit(void *arg, const char *event, json_t *rec, const char *line, size_t len)
{
	notify_event(arg, event, rec, line, len);
}

static json_t *notify_stats_json(const struct notify_stats *st)
{
	return json_pack("{sIsIsIsIsIsI}", "queued", (json_int_t)st->queued, "delivered",
			 (json_int_t)st->delivered, "attempts_failed", (json_int_t)st->attempts_failed,
			 "gave_up", (json_int_t)st->gave_up, "dropped", (json_int_t)st->dropped,
			 "waiting", (json_int_t)st->waiting);
}

/*
 * `status` gets "notifications": the counts over all receivers, and per
 * configured receiver (one per distinct url, shown redacted: a webhook's
 * path is its secret; "entry": the first notify entry with that url), so an operator sees a receiver that fails or drops
 * before the SIEM misses events. Counts since start (a receiver kept by a
 * reload keeps its counts).
 */
static void on_status(void *arg, json_t *status)
{
	struct daemon_state *d = arg;
	struct notify_stats st;
	if (d->notify == NULL)
		return;
	notify_get_stats(d->notify, &st);
	json_t *o = notify_stats_json(&st);
	json_t *rs = json_array();
	if (o == NULL || rs == NULL) { /* out of memory: status goes without them */
		json_decref(o);
		json_decref(rs);
		return;
	}
	for (size_t i = 0; i < d->cfg->n_notify; i++) {
		const char *url = d->cfg->notify[i].url;
		bool seen = false;
		char shown[256];
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(d->cfg->notify[k].url, url) == 0;
		if (seen || notify_get_receiver_stats(d->notify, url, &st) != JIT_OK)
			continue;
		url_redact(url, shown, sizeof(shown));
		json_t *r = notify_stats_json(&st);
		if (r == NULL)
			continue;
		json_object_set_new(r, "url", json_string(shown));
		json_object_set_new(r, "entry", json_integer((json_int_t)i));
		json_array_append_new(rs, r);
	}
	json_object_set_new(o, "receivers", rs);
	json_object_set_new(status, "notifications", o);
}

/* Applies the audit log's syslog mirror settings of cfg. */
static void set_syslog(struct daemon_state *d, const struct jit_config *cfg)
{
	int fac = 0;
	if (audit_syslog_facility(cfg->syslog_facility, &fac) != JIT_OK)
		fac = 0; /* config.c allows only known names */
	audit_set_syslog(d->audit, cfg->syslog && fac != 0, fac);
}

/* config_diff() callbacks of a reload: the settings it leaves for the next
 * start (compared with the start-up config, so a warning repeats at every
 * reload until the restart), and the directory settings it does change
 * (compared with the running config), which surprise otherwise. */
static void warn_restart(void *arg, const char *dir, const char *key, bool restart, bool path)
{
	(void)arg;
	if (!restart)
		return;
	if (dir && path)
		/* the running daemon reads the old file at each bind: removing
		 * it now would take the directory down at the next reconnect */
		log_warn("directory %s: %s changed; takes effect at restart (until then jitd "
			 "still reads the old file at each bind: keep it in place)", dir, key);
	else if (dir)
		log_warn("directory %s: %s changed; takes effect at restart", dir, key);
	else if (strcmp(key, "user") == 0 || strcmp(key, "group") == 0)
		/* the reload checked the files as the daemon runs now */
		log_warn("%s changed; takes effect at restart, when the secret files must belong "
			 "to the new user: check with jitd -t before restarting", key);
	else
		log_warn("%s changed; takes effect at restart", key);
}

static void note_directory_change(void *arg, const char *dir, const char *key, bool restart,
				  bool path)
{
	(void)arg;
	(void)path;
	if (dir && !restart)
		log_info("directory %s: %s changed; applies to new grants (live grants keep the "
			 "value they were granted with)", dir, key);
}

static void reload(void *arg)
{
	struct daemon_state *d = arg;
	struct jit_config *n = NULL;
	struct notify_targets *targets = NULL;
	char *errors = NULL;
	char msg[512];
	if (audit_reopen(d->audit) != JIT_OK)
		log_err("audit log could not be reopened; still writing to the old file");
	if (config_load_ex(d->config_path, CONFIG_CHECK_FILES | CONFIG_RUNNING, &n, &errors) !=
	    JIT_OK) {
		log_err("reload refused, keeping the running configuration:\n%s",
			errors ? errors : "(no detail)");
		free(errors);
		return;
	}
	if (notify_targets_load(n, &targets, msg, sizeof(msg)) != JIT_OK) {
		log_err("reload refused, keeping the running configuration: %s", msg);
		config_free(n);
		return;
	}
	if (engine_set_config(d->engine, n, msg, sizeof(msg)) != JIT_OK) {
		log_err("reload refused, keeping the running configuration: %s", msg);
		notify_targets_free(targets);
		config_free(n);
		return;
	}
	notify_set_targets(d->notify, targets);
	set_syslog(d, n);
	enum log_level lvl;
	if (log_level_parse(n->log_level, &lvl) == JIT_OK)
		log_set_level(lvl);
	config_diff(d->cfg0, n, warn_restart, NULL);
	config_diff(d->cfg, n, note_directory_change, NULL);
	/* the listener answers with a CONFIGURED message (monitor.c logs it) */
	monitor_set_config(d->mon, n);
	if (d->cfg != d->cfg0)
		config_free(d->cfg);
	d->cfg = n;
	log_info("configuration reloaded from %s", d->config_path);
}

static int ensure_dir(const char *path, uid_t owner)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			log_err("%s is not a directory", path);
			return JIT_EIO;
		}
		if (st.st_mode & S_IWOTH) {
			log_err("%s is writable by others; refusing to use it", path);
			return JIT_EIO;
		}
		/* Robustness: a directory another user owns lets that user
		 * plant or swap the store or the log (its mode is theirs). */
		if (st.st_uid != 0 && st.st_uid != owner) {
			log_err("%s is owned by uid %lu, neither root nor uid %lu that jitd runs as; "
				"refusing to use it", path, (unsigned long)st.st_uid,
				(unsigned long)owner);
			return JIT_EIO;
		}
		return JIT_OK;
	}
	if (errno != ENOENT || mkdir(path, 0700) != 0) {
		log_err("cannot create %s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	return JIT_OK;
}

static int ensure_parent(const char *file, uid_t owner)
{
	char *dir = xstrdup(file);
	char *slash = strrchr(dir, '/');
	int rc = JIT_OK;
	if (slash && slash != dir) {
		*slash = '\0';
		rc = ensure_dir(dir, owner);
	}
	free(dir);
	return rc;
}

/*
 * One jitd per state_dir, for the process's whole life: an exclusive
 * flock on state_dir/jitd.lock, taken before anything is opened.
 * Robustness: a second jitd on the same store (another socket_path, or
 * started while the first one drains) would run start-up recovery over
 * the first one's grants in flight, write into the same audit chain and
 * decide memberships under pair locks the other process cannot see. The
 * descriptor is never closed: the lock ends with the process (fork keeps
 * it for the daemonized child; the listener's exec closes it).
 */
static int lock_state_dir(const char *dir)
{
	char *path = xasprintf("%s/jitd.lock", dir);
	int rc = JIT_OK;
	/* O_NONBLOCK: a FIFO put there must not hold the start */
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	struct stat st;
	if (fd < 0) {
		log_err("cannot open %s: %s", path, strerror(errno));
		rc = JIT_EIO;
	} else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_err("%s is not a regular file; not starting", path);
		close(fd);
		rc = JIT_EIO;
	} else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			log_err("another jitd is running with state_dir %s (%s is locked); "
				"not starting", dir, path);
		else
			log_err("cannot lock %s: %s", path, strerror(errno));
		close(fd);
		rc = JIT_EBUSY;
	}
	free(path);
	return rc;
}

/* The pid the file open as fd names (its first line), or 0. */
static pid_t pid_file_pid(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int64_t v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return parse_int64(buf, 1, INT32_MAX, &v) == JIT_OK ? (pid_t)v : 0;
}

/* The pid in pid file fd when it is a running process called jitd other
 * than this one, else 0. */
static pid_t pid_file_names_jitd(int fd)
{
	char path[64], comm[32] = "";
	pid_t v = pid_file_pid(fd);

	if (v == 0 || v == getpid())
		return 0;
	snprintf(path, sizeof(path), "/proc/%lld/comm", (long long)v);
	int cfd = open(path, O_RDONLY | O_CLOEXEC);
	if (cfd < 0)
		return 0; /* no such process */
	ssize_t m = read(cfd, comm, sizeof(comm) - 1);
	close(cfd);
	if (m <= 0)
		return 0;
	comm[m] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "jitd") == 0 ? (pid_t)v : 0;
}

/* Writes the pid file; *fd keeps it open (read and write) for
 * remove_pid_file. */
static int write_pid_file(const char *path, int *fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	struct stat st;

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
	if (*fd < 0 || fstat(*fd, &st) != 0) {
		log_err("cannot write pid file %s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	/* Robustness: root truncates it and makes it root's: not a FIFO or
	 * device planted there, nor a hard link to another file */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_err("pid file %s: not a regular file with one name; remove it", path);
		close(*fd);
		*fd = -1;
		return JIT_EIO;
	}
	/* Robustness: another jitd (another state_dir, so its own lock) that
	 * is given this pid_file must not empty it, then remove it as its
	 * own: logrotate's script would find no jitd to tell to reopen the
	 * log. Not by a lock on the file, which any user who may read it
	 * could hold to keep jitd from starting again: by the process it
	 * names, when that is a jitd still running. */
	pid_t other = pid_file_names_jitd(*fd);
	if (other > 0) {
		log_err("pid file %s names jitd %ld, which is running", path, (long)other);
		close(*fd);
		*fd = -1;
		return JIT_EIO;
	}
	if (ftruncate(*fd, 0) != 0) {
		log_err("cannot write pid file %s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	/* Robustness: one left by an older jitd may belong to `user` (which
	 * it was given to): it is taken back, so that no process of that user
	 * chooses whom a script reading it signals. */
	if (geteuid() == 0 && (st.st_uid != 0 || (st.st_mode & 07777) != 0644) &&
	    (fchown(*fd, 0, 0) != 0 || fchmod(*fd, 0644) != 0)) {
		log_err("cannot make pid file %s root's: %s", path, strerror(errno));
		return JIT_EIO;
	}
	if (write(*fd, buf, (size_t)n) != n) {
		log_err("cannot write pid file %s: %s", path, strerror(errno));
		return JIT_EIO;
	}
	return JIT_OK;
}

/* At exit: the pid file goes if it still names this process (a stale one
 * would have logrotate's script signal whatever process gets the pid next).
 * After dropping root its directory may no longer let it (/run/jitd is
 * root's): it is emptied instead, through the descriptor opened while root
 * (the file stays root's), which the script's `[ -s ]` test skips. */
static void remove_pid_file(const char *path, int fd)
{
	struct stat held, named;

	if (!path || fd < 0)
		return;
	if (pid_file_pid(fd) == getpid()) {
		/* the name is unlinked only while it is still the file written */
		bool same = fstat(fd, &held) == 0 && lstat(path, &named) == 0 &&
			    held.st_dev == named.st_dev && held.st_ino == named.st_ino;
		if (!(same && unlink(path) == 0) && ftruncate(fd, 0) != 0)
			log_warn("pid file %s left: %s", path, strerror(errno));
	}
	close(fd);
}

/* Test builds: arms the crash points named in JITD_FAULT (see fault.h). */
static int arm_faults(void)
{
	char msg[256];
	bool armed = false;
	if (fault_init(&armed, msg, sizeof(msg)) != JIT_OK) {
		log_err("%s", msg);
		return JIT_ECONFIG;
	}
	if (msg[0])
		log_warn("%s", msg);
	if (armed)
		log_warn("fault injection armed: %s", getenv("JITD_FAULT"));
	return JIT_OK;
}

/*
 * With `user`: hands state_dir, its database files and the audit log to
 * that user, then becomes it. Robustness: the store's WAL files are
 * created and removed next to the database, so the directory must be the
 * user's too; the audit log's directory must let the user create a file
 * for the reopen after rotation (systemd's LogsDirectory= does that).
 */
static int drop_root(const struct jit_config *cfg)
{
	static const char *const db_files[] = { "jitd.db", "jitd.db-wal", "jitd.db-shm",
						"audit.head", "jitd.lock" };
	uid_t u = cfg->run_uid;
	gid_t g = cfg->run_gid;
	int rc = JIT_OK;

	if (!cfg->has_run_ids)
		return JIT_OK;
	if (geteuid() != 0 && geteuid() != u) {
		log_err("user \"%s\": jitd must be started as root to switch users", cfg->user);
		return JIT_EINTERNAL;
	}
	if (geteuid() != 0) {
		/* Started as that user already: nothing to switch, but it must
		 * be that user and group through and through (no root to take
		 * back, no other group kept), as a switch would have left it. */
		uid_t ru, eu, su;
		gid_t rg, eg, sg, groups[2];
		int n = getgroups(2, groups);
		bool ok = getresuid(&ru, &eu, &su) == 0 && getresgid(&rg, &eg, &sg) == 0 &&
			  ru == u && su == u && rg == g && eg == g && sg == g && n >= 0 &&
			  (n == 0 || (n == 1 && groups[0] == g));
		if (!ok) {
			log_err("user \"%s\": jitd was started as uid %lu but not only as that user "
				"and group %lu (other real or saved ids, or other groups): start it "
				"as root, or as that user and group alone",
				cfg->user, (unsigned long)u, (unsigned long)g);
			return JIT_EINTERNAL;
		}
		return JIT_OK;
	}
	/* the files first: once the directory (0700) is the user's, root
	 * without CAP_DAC_OVERRIDE may no longer look into it */
	for (size_t i = 0; rc == JIT_OK && i < sizeof(db_files) / sizeof(db_files[0]); i++) {
		char *p = xasprintf("%s/%s", cfg->state_dir, db_files[i]);
		rc = privsep_chown(p, u, g);
		free(p);
	}
	if (rc == JIT_OK)
		rc = privsep_chown(cfg->state_dir, u, g);
	if (rc == JIT_OK)
		rc = privsep_chown(cfg->audit_log, u, g);
	if (rc != JIT_OK)
		return rc;
	if (privsep_drop_keep_kill(u, g, "jitd", cfg->has_listener_ids) != JIT_OK)
		return JIT_EINTERNAL;
	log_info("running as user %s (uid %lu)", cfg->user, (unsigned long)u);
	return JIT_OK;
}

static int check_only(const char *path, bool verbose)
{
	struct jit_config *cfg = NULL;
	char *errors = NULL;
	if (config_load_ex(path, CONFIG_CHECK_FILES, &cfg, &errors) != JIT_OK) {
		fputs(errors ? errors : "configuration invalid\n", stderr);
		free(errors);
		return EXIT_CONFIG;
	}
	if (verbose)
		config_dump(cfg, stdout);
	fprintf(stderr, "%s: configuration OK\n", path);
	config_free(cfg);
	return 0;
}

/* The signals the daemon reads from its signalfd, blocked in *set: before any
 * thread exists, so that only the signalfd sees them. */
static int block_daemon_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGCHLD);
	return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? JIT_OK : JIT_EINTERNAL;
}

static int run(struct daemon_state *d, bool foreground, bool init_store)
{
	sigset_t set;
	int rc, sigfd;
	if (block_daemon_signals(&set) != JIT_OK) /* main() did already: the set */
		return EXIT_RUNTIME;
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit (e.g. systemd's LimitFSIZE) makes a write fail
	 * with EFBIG, which the audit log and the store handle, instead of
	 * killing the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	/* before daemonizing, so that a second jitd says why on its terminal;
	 * before the pid file, which is the running one's */
	if (ensure_dir(d->cfg->state_dir, config_run_uid(d->cfg)) != JIT_OK ||
	    lock_state_dir(d->cfg->state_dir) != JIT_OK)
		return EXIT_RUNTIME;
	/* Signals held since the start (block_signals) that came meanwhile
	 * are pending in this process, and a fork does not pass them on: the
	 * daemon raises them again, for its signal loop to act on. */
	sigset_t pending;
	FAULT_POINT("jitd.before_daemon");
	if (!foreground && sigpending(&pending) != 0)
		sigemptyset(&pending);
	if (!foreground && daemon(0, 0) != 0) {
		log_err("daemon: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	static const int held[] = { SIGHUP, SIGTERM, SIGINT };
	for (size_t i = 0; !foreground && i < sizeof(held) / sizeof(held[0]); i++)
		if (sigismember(&pending, held[i]) == 1 && raise(held[i]) != 0)
			log_err("cannot raise signal %d again: %s", held[i], strerror(errno));
	if (d->cfg->pid_file && write_pid_file(d->cfg->pid_file, &d->pid_fd) != JIT_OK)
		return EXIT_RUNTIME;
	if (ensure_parent(d->cfg->audit_log, config_run_uid(d->cfg)) != JIT_OK)
		return EXIT_RUNTIME;
	char *head = xasprintf("%s/audit.head", d->cfg->state_dir);
	int arc = audit_open(d->cfg->audit_log, head, &d->audit);
	free(head);
	if (arc != JIT_OK)
		return EXIT_RUNTIME;
	int lfd = -1;
	if (server_listen(d->cfg, &lfd) != JIT_OK)
		return EXIT_RUNTIME;
	/* The listener process starts now, before this process has read any
	 * secret or opened the store; it drops to listener_user itself. */
	if (monitor_new(d->cfg, lfd, foreground, &d->mon) != JIT_OK)
		return EXIT_RUNTIME;
	/* Root was needed for the socket (socket_group), the pid file, the
	 * directories and starting the listener. Nothing after this point runs
	 * as root when `user` is set: no thread, no LDAP bind, no secret read,
	 * no ticket check. */
	if (drop_root(d->cfg) != JIT_OK || privsep_harden() != JIT_OK)
		return EXIT_RUNTIME;
	/* Notifications (libcurl, webhook secrets) run in this process too,
	 * never as root when `user` is set. */
	set_syslog(d, d->cfg);
	struct notify_targets *targets = NULL;
	char msg[256];
	if (notify_targets_load(d->cfg, &targets, msg, sizeof(msg)) != JIT_OK) {
		log_err("%s", msg);
		return EXIT_RUNTIME;
	}
	if (notify_new(targets, NULL, &d->notify) != JIT_OK) {
		log_err("cannot start the notification thread");
		return EXIT_RUNTIME;
	}
	audit_set_observer(d->audit, on_audit, d->notify);
	if (audit_start_head_flusher(d->audit) != JIT_OK)
		return EXIT_RUNTIME;
	if (engine_new(d->cfg, d->audit, init_store, &d->engine) != JIT_OK) {
		log_err("cannot start the engine");
		return EXIT_RUNTIME;
	}
	monitor_set_engine(d->mon, d->engine);
	engine_set_status_hook(d->engine, on_status, d);
	json_t *o = json_pack("{ss}", "version", PACKAGE_VERSION);
	if (audit_write(d->audit, "started", o) != JIT_OK)
		log_err("audit: cannot record start");
	json_decref(o);
	log_info("jitd %s listening on %s", PACKAGE_VERSION, d->cfg->socket_path);
	rc = monitor_run(d->mon, sigfd, reload, d);
	engine_stop(d->engine);
	if (audit_write(d->audit, "stopped", NULL) != JIT_OK)
		log_err("audit: cannot record stop");
	/* Notifications still due go out now (briefly), then the thread stops. */
	audit_set_observer(d->audit, NULL, NULL);
	notify_free(d->notify);
	d->notify = NULL;
	close(sigfd);
	log_info("jitd stopped");
	return rc == JIT_OK ? 0 : EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
	struct daemon_state d = { .config_path = DEFAULT_CONFIG, .pid_fd = -1 };
	static const struct option longopts[] = {
		{ "init-store", no_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	bool foreground = false, test = false, verbose = false, init_store = false;
	char *errors = NULL;
	int opt, status;
	if (argc == 2 && strcmp(argv[1], "-L") == 0)
		return listener_main(); /* the listener process: see listener.h */
	while ((opt = getopt_long(argc, argv, "c:ftvVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'I': init_store = true; break;
		case 'c': d.config_path = optarg; break;
		case 'f': foreground = true; break;
		case 't': test = true; break;
		case 'v': verbose = true; break;
		case 'V':
			printf("jitd %s%s\n", PACKAGE_VERSION,
			       fault_compiled_in() ? " (fault injection compiled in)" : "");
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	umask(077);
	if (test)
		return check_only(d.config_path, verbose);
	/* Robustness: a reload reads the file again after daemon() has made
	 * "/" the working directory: a relative -c would name another file
	 * (or none) then, and every reload would be refused. */
	static char *config_abs; /* static: lives as long as the process */
	if (d.config_path[0] != '/') {
		/* not realpath(): a link re-pointed later is followed at reload */
		char *cwd = getcwd(NULL, 0);
		if (cwd) {
			config_abs = xasprintf("%s/%s", cwd, d.config_path);
			d.config_path = config_abs;
		}
		free(cwd);
	}
	/* Security: "/" as the working directory from here, in the foreground
	 * too (every path in jitd.conf is absolute): libldap reads an ldaprc
	 * file from the working directory, which must not be one that another
	 * user can write (a shell in /tmp). */
	if (chdir("/") != 0) {
		log_err("chdir /: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	/* Robustness: under systemd (Type=simple) jitd counts as running from
	 * its exec, and a reload (SIGHUP, logrotate's too) may come while the
	 * configuration is still being read; its default action would end
	 * jitd. Held from here; run() reads them from its signalfd. */
	sigset_t early;
	if (block_daemon_signals(&early) != JIT_OK)
		return EXIT_RUNTIME;
	log_init("jitd", foreground, LOG_LVL_INFO);
	if (config_load_ex(d.config_path, CONFIG_CHECK_FILES, &d.cfg0, &errors) != JIT_OK) {
		fputs(errors ? errors : "configuration invalid\n", stderr);
		free(errors);
		return EXIT_CONFIG;
	}
	d.cfg = d.cfg0;
	if (arm_faults() != JIT_OK) {
		config_free(d.cfg0);
		return EXIT_CONFIG;
	}
	enum log_level lvl;
	if (log_level_parse(d.cfg->log_level, &lvl) == JIT_OK)
		log_set_level(lvl);
	if (!fold_is_unicode())
		log_warn("the C.UTF-8 locale is missing: names and DNs are compared ignoring "
			 "case in ASCII only, so deny_users, standing_members and the other "
			 "lists miss a spelling in another case of a non-ASCII letter (install "
			 "the C.UTF-8 locale: Debian's libc-bin has it)");
	if (geteuid() != 0) {
		/* Without root the listener cannot become another user: it parses
		 * what clients send with the engine's rights (the secret files,
		 * the store, the audit log). Said at every start; refused where
		 * listener_user asks for what cannot be done. */
		if (d.cfg->listener_user) {
			log_err("listener_user \"%s\": jitd must be started as root to run the "
				"listener as another user", d.cfg->listener_user);
			config_free(d.cfg0);
			return EXIT_CONFIG;
		}
		log_warn("not started as root: the listener runs as uid %d, as the engine does, "
			 "and could read the secret files, the store and the audit log: no "
			 "privilege separation (start jitd as root, with user and listener_user)",
			 (int)geteuid());
	}
	FAULT_POINT("jitd.before_run");
	status = run(&d, foreground, init_store);
	remove_pid_file(d.cfg0->pid_file, d.pid_fd);
	monitor_free(d.mon);
	engine_free(d.engine);
	if (d.audit)
		audit_set_observer(d.audit, NULL, NULL);
	notify_free(d.notify);
	audit_close(d.audit);
	if (d.cfg != d.cfg0)
		config_free(d.cfg);
	config_free(d.cfg0);
	return status;
}
