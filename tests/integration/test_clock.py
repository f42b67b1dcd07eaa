"""A wall clock stepped back under jitd (libfaketime: CLOCK_REALTIME only,
the monotonic clock left alone).

Times that only schedule jitd's own work must not wait for a clock that
ran ahead to be caught up with: the directory's probe interval (monotonic
now), and removals whose retry was scheduled under the old time (made due
at start and when a tick sees the step).
"""

import os
import signal
import time

from jittest import Env, eq, skip, wait_until

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def _faked(j, offset):
    """The environment that runs j under a wall clock shifted by offset (a
    libfaketime string such as "+1d"), changed later by _set()."""
    if not os.path.exists(FAKETIME_LIB):
        skip("libfaketime is not installed (Debian package libfaketime)")
    path = os.path.join(j.dir, "faketime")
    _set(path, offset)
    return path, {"LD_PRELOAD": " ".join(_asan_runtime() + [FAKETIME_LIB]),
                  "FAKETIME_TIMESTAMP_FILE": path,
                  "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def _asan_runtime():
    """[the ASan runtime jitd links], which must come first in LD_PRELOAD
    in the sanitizer pass, or [] in a plain build."""
    import subprocess
    from jitd import binary
    out = subprocess.run(["ldd", binary("jitd")], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libasan") and len(parts) >= 3:
            return [parts[2]]
    return []


def _set(path, offset):
    with open(path, "w") as f:
        f.write(offset + "\n")


def test_outage_after_a_step_back_ends_with_the_directory():
    """A probe made while the clock was a day ahead must not hold the next
    probe back for a day: the directory would stay "down" and every removal
    fail at once, also those of grants made after the correction."""
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        path, env = _faked(j, "+1d")
        j.start(env=env)
        # 1. A short outage while the clock is ahead: probes run.
        s.stop()
        eq((j.grant("bob", "ops", "1h").get("error") or {}).get("code"),
           "directory_unavailable", "grant during the first outage")
        time.sleep(1.5)
        s.start()
        wait_until(lambda: j.grant("bob", "ops", "1h").get("ok"), 10,
                   "directory back after the first outage")
        # 2. The clock is corrected: a day back.
        _set(path, "+0")
        wait_until(lambda: "stepped back" in j.stderr_tail(400), 10,
                   "the tick notices the step")
        alice = s.user_dn("alice")
        g = j.must_grant("alice", "admins", 4)
        eq(s.is_member("admins", alice), True, "alice granted")
        # 3. A one-second outage, then the grant expires.
        s.stop()
        j.grant("carol", "web", "1h")  # finds the directory down
        s.start()
        wait_until(lambda: not s.is_member("admins", alice), 20,
                   "alice removed after her grant expired")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 10, "grant expired")


def _removal_failing_under(e, offset):
    """jitd started under a wall clock shifted by offset; alice's 5 s grant
    expires while slapd is stopped, so its removal fails and its retry is
    scheduled under the shifted time. -> (the faketime file, the grant)."""
    s, j = e.slapd, e.jitd
    path, env = _faked(j, offset)
    j.start(env=env)
    g = j.must_grant("alice", "admins", 5)  # still active when slapd is stopped
    s.stop()
    wait_until(lambda: j.show(g["grant_id"])["state"] == "ending", 20,
               "the expiry's removal failed")
    return path, g


def test_removal_scheduled_under_a_clock_ahead_is_retried_after_a_restart():
    """A removal failed while the clock was a day ahead, so its retry was
    set a day ahead of the true time. jitd is restarted with the clock
    corrected: the retry must not wait a day."""
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        alice = s.user_dn("alice")
        _, g = _removal_failing_under(e, "+1d")
        wait_until(lambda: any(ev.get("grant_id") == g["grant_id"]
                               for ev in j.audit_events("revoke_failed")), 10,
                   "revoke_failed written")
        j.stop()
        s.start()
        j.start()  # the true time
        wait_until(lambda: not s.is_member("admins", alice), 15,
                   "alice removed after the restart")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 10, "grant expired")
        assert "retrying them now" in j.stderr_tail(200), j.stderr_tail(40)


def test_grant_given_under_a_clock_ahead_is_shortened_when_the_clock_steps_back():
    """A 1 h grant given while the clock ran a day ahead would last 25 h
    once the clock is corrected. It must last at most its duration from the
    correction, with a `rescheduled` line saying so."""
    from jitd import parse_time
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        path, env = _faked(j, "+1d")
        j.start(env=env)
        alice = s.user_dn("alice")
        g = j.must_grant("alice", "admins", "1h")
        other = j.must_grant("bob", "ops", "2h")
        was = parse_time(g["expires_at"])
        assert was > time.time() + 86000, g
        _set(path, "+0")
        wait_until(lambda: len(j.audit_events("rescheduled")) == 2, 15,
                   "both grants rescheduled")
        ev = {x["grant_id"]: x for x in j.audit_events("rescheduled")}
        for grant, length in ((g, 3600), (other, 7200)):
            x = ev[grant["grant_id"]]
            eq(x["reason"], "clock_stepped_back", "reason")
            eq(x["previous_expires_at"], grant["expires_at"], "previous_expires_at")
            now_exp = parse_time(j.show(grant["grant_id"])["expires_at"])
            eq(now_exp, parse_time(x["expires_at"]), "the line's expires_at is the grant's")
            assert abs(now_exp - (time.time() + length)) < 30, (grant, now_exp)
        eq(s.is_member("admins", alice), True, "the grant itself goes on")
        eq(j.show(g["grant_id"])["state"], "active", "still active")
        # once: a grant given after the correction is left alone
        g2 = j.must_grant("carol", "web", "1h")
        time.sleep(3)
        eq(len(j.audit_events("rescheduled")), 2, "no other rescheduled line")
        eq(j.show(g2["grant_id"])["expires_at"], g2["expires_at"], "carol's expiry")
        j.stop()
        j.start()  # at start: nothing in the future any more
        eq(len(j.audit_events("rescheduled")), 2, "nothing rescheduled at the restart")


def test_step_back_after_a_reload_of_retry_max_interval_pulls_removals_forward():
    """retry_max_interval keeps its start-up value until a restart, and the
    removals were scheduled with it: a reload that raises it (logged as
    taking effect at restart) must not stop a clock step from pulling them
    forward (regression: the step used the reloaded value, a day, as the
    horizon, and a removal scheduled an hour ahead waited that hour)."""
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        alice = s.user_dn("alice")
        path, g = _removal_failing_under(e, "+1h")
        j.config["retry_max_interval"] = "1d"
        j.write_config()
        pos = j.stderr_pos()
        j.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "retry_max_interval changed; takes effect at restart"
                   in j.stderr_since(pos), 10, "the reload's warning")
        # The clock is corrected: an hour back. The retry, scheduled at most
        # retry_max_interval (2 s) after the failure under the old time, is
        # an hour ahead now.
        _set(path, "+0")
        wait_until(lambda: "retrying them now" in j.stderr_since(pos), 10,
                   "the removal pulled forward")
        s.start()
        wait_until(lambda: not s.is_member("admins", alice), 20,
                   "alice removed once the directory is back")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 10, "grant expired")


def test_grant_in_flight_when_the_clock_steps_back_is_shortened_too():
    """A grant that a worker began under a clock a day ahead (its
    created_at and expires_at read) and that is recorded active only after
    the tick saw the step back: it must be shortened as well (regression:
    the tick's one scan found no active grant yet and stopped looking, and
    the grant lasted 25 h). Every directory answer is held 2 s by a proxy,
    so the grant is in flight for several seconds."""
    from jitd import parse_time
    from test_lost_answer import SlowProxy
    import sqlite3
    import threading

    with Env(start=False, mech="SCRAM-SHA-256", directory={"connections": 1}) as e:
        s, j = e.slapd, e.jitd
        proxy = SlowProxy(s.port)
        j.config["directories"][0]["uri"] = "ldap://127.0.0.1:%d" % proxy.port
        j.write_config()
        path, env = _faked(j, "+1d")
        j.start(env=env, timeout=60)
        out = {}
        t = threading.Thread(target=lambda: out.update(g=j.request(
            {"op": "grant", "user": "alice", "group": "admins", "duration": "1h"}, timeout=60)))
        t.start()

        def pending():
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(j.state_dir, "jitd.db"),
                                 uri=True, timeout=5)
            try:
                return db.execute("SELECT count(*) FROM grants WHERE state = 'pending'"
                                  ).fetchone()[0]
            finally:
                db.close()
        # recorded pending (its times read under +1d), its add held 2 s
        wait_until(lambda: pending() == 1, 30, "the grant recorded pending")
        _set(path, "+0")
        t.join(60)
        g = out.get("g") or {}
        assert g.get("ok"), g
        g = g["grant"]
        if parse_time(g["expires_at"]) < time.time() + 86000:
            raise AssertionError("the grant was not begun under the clock ahead: the test "
                                 "proves nothing: %r" % (g,))
        wait_until(lambda: j.audit_events("rescheduled", g["grant_id"]), 15,
                   "the grant in flight rescheduled")
        now_exp = parse_time(j.show(g["grant_id"])["expires_at"])
        assert abs(now_exp - (time.time() + 3600)) < 60, (g, now_exp)


def test_step_back_within_the_replication_grace_pulls_ordinary_retries_forward():
    """replication_grace of an hour, retry_max_interval of 2 s. A removal
    refused (its group deleted) is retried every 2 s under a clock 30 min
    ahead; the clock is corrected. Its retry, 30 min ahead now, lies
    beyond any ordinary retry's backoff: it is pulled forward, whatever the
    grace (regression: one horizon, the longest grace plus a minute, was
    applied to every removal, and this one waited the 30 minutes). The
    group is put back after the step, with alice in it: she is removed."""
    with Env(start=False, directory={"replication_grace": "1h"}) as e:
        s, j = e.slapd, e.jitd
        alice = s.user_dn("alice")
        path, env = _faked(j, "+30m")
        j.start(env=env)
        g = j.must_grant("alice", "dba", "1h")
        s._run(["ldapdelete"] + s._root_args() + [s.group_dn("dba")])
        j.request({"op": "complete", "grant_id": g["grant_id"]})
        wait_until(lambda: any(ev.get("grant_id") == g["grant_id"]
                               for ev in j.audit_events("revoke_failed")), 10,
                   "the refused removal")
        pos = j.stderr_pos()
        _set(path, "+0")
        wait_until(lambda: "stepped back" in j.stderr_since(pos), 10, "the tick notices the step")
        s.add_group("dba", members=("placeholder", "@alice"))
        wait_until(lambda: not s.is_member("dba", alice), 15,
                   "alice removed once her group is back")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "completed", 10, "completed")
