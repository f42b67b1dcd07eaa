"""A wall clock stepped back under jitd (libfaketime: CLOCK_REALTIME only,
the monotonic clock left alone).

Times that only schedule jitd's own work must not wait for a clock that
ran ahead to be caught up with: the directory's probe interval (monotonic
now), and removals whose retry was scheduled under the old time (made due
at start and when a tick sees the step).
"""

import os
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
    return path, {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": path,
                  "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


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


def test_removal_scheduled_under_a_clock_ahead_is_retried_after_a_restart():
    """A removal failed while the clock was a day ahead, so its retry was
    set a day ahead of the true time. jitd is restarted with the clock
    corrected: the retry must not wait a day."""
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        _, env = _faked(j, "+1d")
        j.start(env=env)
        alice = s.user_dn("alice")
        g = j.must_grant("alice", "admins", 2)
        s.stop()
        wait_until(lambda: j.show(g["grant_id"])["state"] == "ending", 15,
                   "the expiry's removal failed")
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
