"""Durability: grants survive jitd crashes and restarts, and removals
survive directory outages (retried, never dropped)."""

import time

from jittest import Env, eq, refused, expires_epoch, wait_until, slow

SLACK = 5


def test_kill9_after_grant_still_expires():
    with Env() as e:
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "admins", "10s")
        e.jitd.kill()
        assert e.is_member("admins", alice)
        e.jitd.start()
        s = e.jitd.show(g["grant_id"])
        eq(s["state"], "active", "state after crash + restart")
        eq(s["expires_at"], g["expires_at"], "expires_at after restart")
        e.wait_removed("admins", alice, expires_epoch(g) + SLACK, "expiry after kill -9")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 5, "expired")


def test_expired_while_down_removed_at_start():
    with Env() as e:
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "admins", "2s")
        e.jitd.kill()
        exp = expires_epoch(g)
        while time.time() < exp + 1.5:
            time.sleep(0.2)
        assert e.is_member("admins", alice)  # nobody removed it while jitd was down
        t0 = time.time()
        e.jitd.start()
        e.wait_removed("admins", alice, t0 + SLACK, "removal of an overdue grant after restart")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 5, "expired")


def test_sigterm_restart_keeps_grants():
    with Env() as e:
        alice, bob = e.user_dn("alice"), e.user_dn("bob")
        # 8 s: g1 must outlive a stop and a start (slow under ASan) to
        # show that neither ends it.
        g1 = e.grant_and_check("alice", "admins", "8s")
        g2 = e.grant_and_check("bob", "dba", "1h")
        rc = e.jitd.stop()
        eq(rc, 0, "exit status on SIGTERM")
        # A clean stop must not end grants: memberships stay.
        assert e.is_member("admins", alice), "SIGTERM removed a live membership"
        assert e.is_member("dba", bob), "SIGTERM removed a live membership"
        e.jitd.start()
        live = {g["grant_id"]: g for g in e.jitd.ok({"op": "list"})["grants"]}
        assert g1["grant_id"] in live and g2["grant_id"] in live, live
        eq(live[g2["grant_id"]]["expires_at"], g2["expires_at"], "expires_at kept")
        e.wait_removed("admins", alice, expires_epoch(g1) + SLACK, "expiry after restart")
        assert e.is_member("dba", bob)
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert not e.is_member("dba", bob)


@slow
def test_directory_down_at_expiry_is_retried():
    with Env() as e:
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "admins", "6s")  # still active when slapd stops
        e.slapd.stop()
        exp = expires_epoch(g)
        while time.time() < exp + 3:
            time.sleep(0.2)
        # While the directory is away the grant cannot be over yet.
        s = e.jitd.show(g["grant_id"])
        assert s["state"] in ("active", "ending"), s
        e.slapd.start()
        back = time.time()
        # retry_max_interval is 2 s in the test config.
        e.wait_removed("admins", alice, back + 2 + SLACK, "removal retried after the outage")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 5, "expired")


def test_directory_down_at_complete_is_retried():
    with Env() as e:
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "admins", "1h")
        e.slapd.stop()
        a = e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(a["grant"]["state"], "ending", "complete while the directory is down")
        eq(a["grant"].get("end_state"), "completed", "end_state")
        e.slapd.start()
        back = time.time()
        e.wait_removed("admins", alice, back + 2 + SLACK, "removal retried after the outage")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "completed", 5, "completed")


def test_directory_down_at_grant():
    with Env() as e:
        e.slapd.stop()
        a = e.jitd.grant("alice", "admins", "1h")
        refused(a, "directory_unavailable", "grant while the directory is down")
        e.slapd.start()
        time.sleep(3)  # let any retry of an interrupted grant run
        assert not e.is_member("admins", e.user_dn("alice")), \
            "refused grant left a membership: %r" % sorted(e.slapd.members("admins"))
        # jitd reconnects by itself.
        e.grant_and_check("bob", "admins", "1h")


def test_directory_killed_and_back():
    with Env() as e:
        e.grant_and_check("alice", "admins", "1h")
        e.slapd.kill()
        e.slapd.start()
        # The old connection is dead; the next operation must reconnect once.
        e.grant_and_check("bob", "admins", "1h")


def test_outside_reader_does_not_unlink_the_wal():
    """Regression (found by the benchmark): a read-only SQLite connection of
    another process (an operator's sqlite3, a report script), opened and
    closed while jitd runs, must not take jitd's WAL away. It did when each
    store_open() opened and closed jitd.db*, which dropped the POSIX locks
    of the connections already open: the outside connection then believed
    it was the last, deleted jitd.db-wal, and a grant acknowledged after
    that was lost at the next kill -9."""
    import os
    import sqlite3
    with Env(directory={"connections": 4}) as e:
        db = os.path.join(e.jitd.state_dir, "jitd.db")
        g1 = e.grant_and_check("alice", "admins", "1h")
        c = sqlite3.connect(db)
        eq(c.execute("SELECT count(*) FROM grants WHERE id = ?", (g1["grant_id"],)).fetchone()[0],
           1, "the outside reader sees the first grant")
        c.close()
        assert os.path.exists(db + "-wal"), "jitd.db-wal was deleted by an outside reader"
        fds = [os.readlink("/proc/%d/fd/%s" % (e.jitd.proc.pid, f))
               for f in os.listdir("/proc/%d/fd" % e.jitd.proc.pid)]
        eq([f for f in fds if "jitd.db" in f and f.endswith("(deleted)")], [],
           "store files jitd holds open that were unlinked")
        g2 = e.grant_and_check("bob", "admins", "1h")
        c = sqlite3.connect(db)
        eq(c.execute("SELECT count(*) FROM grants WHERE id = ?", (g2["grant_id"],)).fetchone()[0],
           1, "the outside reader sees the grant made after its first read")
        c.close()
        e.jitd.kill()
        e.jitd.start()
        eq(e.jitd.show(g2["grant_id"])["state"], "active", "second grant after kill -9")
        eq(e.jitd.show(g1["grant_id"])["state"], "active", "first grant after kill -9")
