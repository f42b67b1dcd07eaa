"""SIGHUP (audit log reopen for logrotate, config reload), blank lines, and
isolation between directories: a stalled directory must not hold up grants
or expiries in another one."""

import os
import re
import signal
import time

from jitd import Jitd
from jittest import Env, eq, refused, expires_epoch, wait_until, freeze, thaw
from slapd import Slapd

SLACK = 5


def _seqs(path):
    import json
    with open(path) as f:
        return [json.loads(l)["seq"] for l in f if l.strip()]


def test_sighup_reopens_audit_log_and_chain_continues():
    with Env() as e:
        e.jitd.must_grant("alice", "admins", "1h")
        rotated = e.jitd.audit_log + ".1"
        os.rename(e.jitd.audit_log, rotated)
        e.jitd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(e.jitd.audit_log), 5, "audit log reopened")
        g = e.jitd.must_grant("bob", "admins", "1h")
        old, new = _seqs(rotated), _seqs(e.jitd.audit_log)
        assert new, "nothing written to the reopened audit log"
        eq(new[0], old[-1] + 1, "seq continues across rotation")
        with open(e.jitd.audit_log) as f:
            assert g["grant_id"] in f.read(), "new grant not in the reopened log"
        with open(rotated) as f:
            assert g["grant_id"] not in f.read(), "new grant written to the rotated file"


def test_sighup_reloads_config_and_keeps_old_one_when_broken():
    with Env() as e:
        refused(e.jitd.grant("alice", "admins", "5h"), "duration_exceeds_max")
        for g in e.jitd.config["groups"]:
            if g["name"] == "admins":
                g["max_duration"] = "8h"
        e.jitd.write_config()
        e.jitd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: e.jitd.grant("alice", "admins", "5h").get("ok"), 5,
                   "reloaded max_duration in effect")
        # A broken file on reload: the daemon keeps serving with the old config.
        e.jitd.write_config("this is not a config;\n")
        e.jitd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in e.jitd.stderr_tail(200)
                   or not e.jitd.running(), 10, "the broken reload refused")
        assert e.jitd.running(), "jitd died on a broken reload"
        assert "reload refused" in e.jitd.stderr_tail(200), e.jitd.stderr_tail(50)
        g = e.jitd.must_grant("bob", "admins", "6h")
        eq(g["duration"], 6 * 3600, "old (reloaded) config still in force")


def test_group_dn_respelled_by_reload_is_the_same_pair():
    """A reload that writes a group's DN another way (case, spaces) leaves
    it the same pair: a grant after it sees the live grant from before it
    (not a standing membership), and the first grant's end keeps the
    membership the second still holds."""
    with Env() as e:
        alice = e.user_dn("alice")
        a = e.jitd.must_grant("alice", "admins", "1h")
        assert e.is_member("admins", alice)
        plain = e.slapd.group_dn("admins")
        respelled = ", ".join(r.split("=", 1)[0].upper() + "=" + r.split("=", 1)[1]
                              for r in plain.split(","))
        assert respelled != plain
        for g in e.jitd.config["groups"]:
            if g["name"] == "admins":
                g["dn"] = respelled
        e.jitd.write_config()
        e.jitd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: e.jitd.stderr_tail(200).count("configuration reloaded") >= 1, 5,
                   "reload done")
        b = e.jitd.must_grant("alice", "admins", "1h")
        eq(e.jitd.show(b["grant_id"])["standing"], False, "second grant not standing")
        eq(e.jitd.audit_events("granted")[-1].get("outcome"), "already_member",
           "second grant's outcome")
        e.jitd.ok({"op": "complete", "grant_id": a["grant_id"]})
        assert e.is_member("admins", alice), "first grant's end removed what the second holds"
        e.jitd.ok({"op": "complete", "grant_id": b["grant_id"]})
        assert not e.is_member("admins", alice), "last grant's end left the membership"


def _log(e):
    """jitd's whole stderr (the engine's and the listener's lines)."""
    with open(e.jitd.stderr_path, errors="replace") as f:
        return f.read()


def _reload(e, what="reload done"):
    """Writes e.jitd.config and sends SIGHUP; returns once the engine has
    logged the outcome (reloaded or refused)."""
    def outcomes():
        log = _log(e)
        return log.count("configuration reloaded") + log.count("reload refused")
    n = outcomes()
    e.jitd.write_config()
    e.jitd.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: outcomes() > n, 5, what)


def _corp(e):
    return e.jitd.config["directories"][0]


def test_reload_that_changes_directory_uri_warns_and_keeps_the_old_one():
    """A directory's connections are set up at start: a reload that changes
    its uri (or connections) logs one warning per changed setting, naming it,
    and jitd goes on granting through the URI it started with."""
    with Env() as e:
        _corp(e)["uri"] = "ldap://127.0.0.1:9"   # nothing answers there
        _corp(e)["connections"] = 3
        ca = os.path.join(e.jitd.dir, "new-ca.pem")
        with open(ca, "w") as f:
            f.write("not used before a restart\n")
        _corp(e)["tls_ca_file"] = ca
        _reload(e)
        log = _log(e)
        # a file the running daemon reads at each bind: the warning says to keep the old one
        eq(log.count("directory corp: tls_ca_file changed; takes effect at restart (until then "
                     "jitd still reads the old file at each bind: keep it in place)"), 1,
           "tls_ca_file warning\n" + log[-3000:])
        eq(log.count("directory corp: uri changed; takes effect at restart"), 1,
           "uri warnings\n" + log[-3000:])
        eq(log.count("directory corp: connections changed; takes effect at restart"), 1,
           "connections warnings")
        assert "timeout changed" not in log and "user_base changed" not in log, log[-3000:]
        assert "socket_path changed" not in log, "an unchanged setting was named"
        g = e.grant_and_check("alice", "admins", "1h")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        assert not e.is_member("admins", e.user_dn("alice")), "end not written to the old URI"
        # still pending at the next reload: said again
        _reload(e)
        eq(_log(e).count("directory corp: uri changed; takes effect at restart"), 2,
           "uri warning at the second reload")


LISTENER_DEBUG = re.compile(r"jitd-listener\[debug\]: client \d+ connected")


def test_reload_that_sets_log_level_debug_reaches_the_listener():
    with Env(top={"log_level": "info"}) as e:
        e.jitd.ok({"op": "status"})
        assert not LISTENER_DEBUG.search(_log(e)), "listener logs debug at info"
        e.jitd.config["log_level"] = "debug"
        _reload(e)

        def listener_debug():
            e.jitd.ok({"op": "status"})
            return LISTENER_DEBUG.search(_log(e))
        wait_until(listener_debug, 5, "a debug line of the listener after the reload")
        assert re.search(r"jitd\[info\]: listener pid \d+ applied configuration 2",
                         _log(e)), "the engine did not hear that the listener applied it"


def test_reload_that_changes_member_attr_applies_to_new_grants_only():
    """Documented in jitd.conf(5): a directory's member_attr (and
    placeholder_member) changed by a reload applies to grants made after
    it; a live grant keeps the group DN, attribute and placeholder it was
    granted with, and its end removes exactly what it added."""
    with Env(start=False) as e:
        for g in e.jitd.config["groups"]:
            if g["name"] == "unixops":      # a posixGroup that follows the directory
                del g["member_attr"]
        e.jitd.write_config()
        e.jitd.start()
        alice = e.user_dn("alice")
        a = e.grant_and_check("alice", "admins", "1h")              # member: DN
        assert not e.jitd.grant("bob", "unixops", "1h").get("ok"), \
            "a DN into a posixGroup's member attribute was accepted"
        _corp(e)["member_attr"] = "memberUid"
        _reload(e)
        assert "directory corp: member_attr changed; applies to new grants" in _log(e), \
            _log(e)[-3000:]
        assert "member_attr changed; takes effect at restart" not in _log(e)
        b = e.grant_and_check("bob", "unixops", "1h", value="bob")   # memberUid: uid
        assert e.slapd.members("unixops", "memberUid") == {"bob"}, "new grant's attribute"
        # the live grant ends with what it was granted with (member: DN)
        e.jitd.ok({"op": "complete", "grant_id": a["grant_id"]})
        assert not e.is_member("admins", alice), "the live grant's end used the new attribute"
        e.jitd.ok({"op": "complete", "grant_id": b["grant_id"]})
        assert not e.is_member("unixops", "bob")


def test_listener_that_cannot_apply_a_reload_is_named_in_the_engine_log():
    """The listener keeps the config it had when it cannot load a reloaded
    one, and says so to the engine, which logs it. A stale listener config
    grants nothing: the engine checks every request again with its own."""
    with Env(start=False) as e:
        e.jitd.start(env={"JITD_FAULT": "fail.listener_config:@1"})
        e.jitd.must_grant("alice", "admins", "1h")
        for g in e.jitd.config["groups"]:
            if g["name"] == "admins":
                g["max_duration"], g["default_duration"] = "30m", "10m"
        _reload(e)
        wait_until(lambda: re.search(r"jitd\[error\]: listener pid \d+ could not apply "
                                     r"configuration 2: .*fail\.listener_config", _log(e)),
                   5, "the listener's failure in the engine's log")
        # the listener still allows 1h; the engine refuses it under the new config
        refused(e.jitd.grant("bob", "admins", "1h"), "duration_exceeds_max",
                "grant beyond the reloaded max_duration")
        _reload(e)
        wait_until(lambda: re.search(r"listener pid \d+ applied configuration 3", _log(e)),
                   5, "the next reload applied by the listener")


def test_reload_that_adds_or_removes_a_directory_is_refused():
    """Directories (their connections and workers) are set up at start: a
    reload that adds or removes one is refused as a whole, and says why."""
    with Env() as e:
        e.jitd.config["directories"].append(dict(_corp(e), name="branch"))
        e.jitd.config["groups"].append(e.jitd.group_entry(
            "branch-admins", directory="branch", dn=e.slapd.group_dn("branch-admins")))
        for g in e.jitd.config["groups"]:
            if g["name"] == "admins":
                g["max_duration"] = "8h"
        _reload(e)
        assert ('reload refused, keeping the running configuration: directory "branch" was '
                'added; directories are added and removed only at a restart') in _log(e), \
            _log(e)[-3000:]
        refused(e.jitd.grant("alice", "branch-admins", "1h"), "unknown_group")
        refused(e.jitd.grant("alice", "admins", "5h"), "duration_exceeds_max",
                "the rest of a refused reload applied")
        e.jitd.config["directories"] = [dict(_corp(e), name="corp2")]
        for g in e.jitd.config["groups"]:
            g["directory"] = "corp2"
        _reload(e)
        assert 'directory "corp" was removed; directories are added and removed only at ' \
            'a restart' in _log(e), _log(e)[-3000:]
        e.grant_and_check("alice", "admins", "1h")


def test_blank_line_is_answered():
    with Env() as e:
        with e.jitd.connect() as c:
            c.sock.sendall(b"\n")
            refused(c.recv(), "bad_request", "blank line")
            eq(c.call({"op": "status"})["ok"], True, "connection still usable")


def test_stalled_directory_does_not_block_another():
    slow = Slapd()
    slow.start()
    try:
        with Env(start=False) as e:
            s = e.slapd
            d2 = {"name": "slow", "uri": slow.ldapi_uri, "sasl_mech": "EXTERNAL",
                  "user_base": slow.people, "user_filter": "(uid=%s)", "timeout": 15,
                  "connections": 1}
            e.jitd.config["directories"].append(d2)
            e.jitd.config["groups"].append(
                {"name": "slow-admins", "directory": "slow", "dn": slow.group_dn("admins"),
                 "max_duration": "1h", "default_duration": "10m"})
            e.jitd.write_config()
            e.jitd.start()
            g_fast = e.grant_and_check("alice", "admins", "3s")
            freeze(slow.pid)
            try:
                # a grant into the stalled directory: its client waits (or fails)...
                stalled = e.jitd.connect(timeout=30)
                stalled.send({"op": "grant", "user": "bob", "group": "slow-admins",
                              "duration": "5m"})
                # ...while the healthy directory keeps granting and expiring on
                # time. Held up behind the stalled one, they would wait its 15 s
                # timeout: far past these bounds.
                t0 = time.time()
                g2 = e.grant_and_check("carol", "dba", "1h")
                assert time.time() - t0 < 5, "grant in the healthy directory was held up"
                e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g_fast) + SLACK,
                               "expiry in the healthy directory while another is stalled")
                e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
                assert not e.is_member("dba", e.user_dn("carol"))
            finally:
                thaw(slow.pid)
            a = stalled.recv()
            stalled.close()
            assert a.get("ok") or a["error"]["code"] == "directory_unavailable", a
    finally:
        slow.close()


def test_grant_queued_across_a_reload_is_checked_again():
    """A grant waiting in its directory's queue while the configuration is
    reloaded is checked again under the new one when a worker takes it up:
    here the reload takes group admins from the client, so the queued grant
    into admins is refused `unauthorized` and never reaches the directory,
    while the grants already in progress finish (regression: the queued
    grant ran under the rules it was accepted with)."""
    with Env(directory={"timeout": 20}) as e:
        j = e.jitd
        j.wait_bound()
        taken = lambda: j.ok({"op": "status"})["status"].get("timings", {}) \
            .get("queue", {}).get("count", 0)
        n = taken()
        freeze(e.slapd.pid)
        try:
            busy = []
            for u in ("carol", "dave"):   # one for each of the two workers
                c = j.connect(timeout=60)
                c.send({"op": "grant", "user": u, "group": "dba", "duration": "1h"})
                busy.append(c)
            wait_until(lambda: taken() >= n + 2, 10, "both workers busy")
            queued = j.connect(timeout=60)
            queued.send({"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
                         "request_id": "queued-over-reload"})
            time.sleep(0.3)  # in the queue: no worker is free
            eq(taken(), n + 2, "the third grant waits in the queue")
            j.config["clients"][0]["groups"] = ["dba", "web"]
            j.reload()
        finally:
            thaw(e.slapd.pid)
        for c in busy:
            eq(c.recv().get("ok"), True, "a grant in progress during the reload")
        a = queued.recv()
        refused(a, "unauthorized", "the queued grant, its group taken from the client")
        ev = [x for x in j.audit_events("refused") if x.get("request_id") == "queued-over-reload"]
        eq(len(ev), 1, "its refusal audited once")
        assert not e.is_member("admins", e.user_dn("alice")), "alice was granted"
        eq(sorted(g.get("user") for g in j.audit_events("granted")), ["carol", "dave"],
           "granted lines")


def test_requests_of_a_client_a_stale_listener_still_passes_are_audited_once_per_10_s():
    """A reload removes a client entry, and the listener cannot apply it (it
    keeps the old one, where the peer still matches): the engine refuses each
    request, and audits the first of every 10 s with a count in its log, not
    each one (regression: a removed client could flood the audit log with
    synced lines on the engine's main thread)."""
    NOBODY = 65534
    clients = [{"name": "root", "uid": 0, "groups": ["*"]},
               {"name": "viewer", "uid": NOBODY, "groups": ["*"], "ops": ["status"]}]
    with Env(start=False, clients=clients) as e:
        j = e.jitd
        j.make_public()
        j.config["socket_mode"] = "0666"
        j.write_config()
        j.start(env={"JITD_FAULT": "fail.listener_config:1"})
        eq(j.request_as(NOBODY, NOBODY, {"op": "status"})["ok"], True, "the viewer before")
        j.config["clients"] = [c for c in j.config["clients"] if c["name"] != "viewer"]
        _reload(e)
        wait_until(lambda: "could not apply configuration 2" in _log(e), 5, "the stale listener")
        for _ in range(30):
            refused(j.request_as(NOBODY, NOBODY, {"op": "status"}), "unauthorized",
                    "the removed viewer")
        ev = [x for x in j.audit_events("refused") if x.get("rule") == "clients"]
        eq(len(ev), 1, "refused lines for 30 requests in a few seconds")


def test_sighup_while_jitd_starts_does_not_end_it():
    """A reload (systemctl reload, logrotate's SIGHUP) that arrives while
    jitd is still reading its configuration, before its signal handling is
    set up (a fault pause holds it there): jitd starts and takes the reload
    (regression: SIGHUP's default action ended it)."""
    from test_failures import need_faults
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        j.start(wait=False, env={"JITD_FAULT": "jitd.before_run:sleep=5000"})
        wait_until(lambda: "fault pause" in j.stderr_tail(20), 10, "jitd held before run()")
        j.proc.send_signal(signal.SIGHUP)
        j.wait_ready(30)
        eq(j.proc.poll(), None, "jitd still running")
        wait_until(lambda: "SIGHUP: reopening" in j.stderr_tail(50), 10, "the reload taken")
        e.grant_and_check("alice", "admins", "1h")


def test_sigterm_while_jitd_detaches_stops_the_daemon():
    """SIGTERM to a jitd started without -f, while it still holds its
    signals before it detaches (a fault pause): the daemon it leaves behind
    takes the stop (regression: the signal stayed pending in the parent,
    which the fork does not pass on, and the daemon ran on as if nothing
    had been asked)."""
    import subprocess
    from test_failures import need_faults
    from jitd import binary
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        pid_file = os.path.join(j.dir, "jitd.pid")
        env = dict(os.environ, JITD_FAULT="jitd.before_daemon:sleep=2000")
        p = subprocess.Popen([binary("jitd"), "-c", j.conf], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.8)
        assert p.poll() is None, "jitd ended before the pause"
        p.send_signal(signal.SIGTERM)
        eq(p.wait(10), 0, "the parent's exit status (daemon(3))")
        try:
            # the daemon started (its `started` line) and then stopped on
            # the signal held across the fork (its `stopped` line)
            wait_until(lambda: j.audit_events("started"), 20, "the daemon's start")
            wait_until(lambda: j.audit_events("stopped"), 20,
                       "the daemon to take the SIGTERM and stop")
        finally:
            try:
                with open(pid_file) as f:
                    left = int(f.read().strip() or 0)
                if left:
                    os.kill(left, signal.SIGKILL)
            except (OSError, ValueError):
                pass


def test_reload_of_a_daemon_started_with_a_relative_config_path():
    """`jitd -c jitd.conf` (relative, no -f): daemon() makes "/" the working
    directory, and a reload must read the same file again (regression: it
    opened /jitd.conf, and every reload was refused)."""
    from jitd import binary
    import subprocess
    with Env(start=False) as e:
        j = e.jitd
        r = subprocess.run([binary("jitd"), "-c", os.path.basename(j.conf)], cwd=j.dir,
                           capture_output=True, text=True, timeout=30)
        eq(r.returncode, 0, "jitd detached: %s" % r.stderr)
        pid = None
        try:
            pid = int(wait_until(lambda: os.path.exists(j.pid_file) and
                                 open(j.pid_file).read().strip(), 10, "the pid file"))
            wait_until(lambda: os.path.exists(j.sock), 10, "the socket")
            e.grant_and_check("alice", "dba", "1h")
            # the reload takes dba out: the file read again is this one
            j.config["groups"] = [g for g in j.config["groups"] if g["name"] != "dba"]
            j.write_config()
            os.kill(pid, signal.SIGHUP)
            wait_until(lambda: j.grant("bob", "dba", "1h").get("error", {}).get("code") ==
                       "unknown_group", 10, "dba gone after the reload")
        finally:
            if pid:
                os.kill(pid, signal.SIGTERM)
                wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                           open("/proc/%d/stat" % pid).read().split()[2] == "Z", 30,
                           "jitd stopped")
