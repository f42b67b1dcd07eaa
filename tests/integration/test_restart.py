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


def test_store_locked_elsewhere_at_start_is_waited_for():
    """jitd is restarted while another process holds the store's write lock
    for 13 s (longer than one busy timeout, 10 s): start-up recovery waits
    for it and jitd starts, its grant still there (regression: it exited
    with status 3 after one busy timeout, and under systemd only restarted
    into the same wait)."""
    import os
    import sqlite3
    import threading
    with Env() as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h")
        j.stop()
        db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"), timeout=5,
                             isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")
        released = threading.Event()

        def release():
            time.sleep(13)
            db.execute("ROLLBACK")
            db.close()
            released.set()
        t = threading.Thread(target=release, daemon=True)
        t.start()
        try:
            j.start(timeout=40)
            assert released.is_set(), "jitd was ready while the store was still locked"
        finally:
            t.join(20)
        eq(j.show(g["grant_id"])["state"], "active", "the grant after the wait")
        assert "store: locked by another process; trying again" in j.stderr_tail(300)


def _move(src_dir, dst_dir, names):
    import os
    os.makedirs(dst_dir, mode=0o700, exist_ok=True)
    for n in names:
        os.rename(os.path.join(src_dir, n), os.path.join(dst_dir, n))


def _verify_chain(j):
    import subprocess
    from jitd import binary
    r = subprocess.run([binary("jitctl"), "audit", "verify", j.audit_log],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "jitctl audit verify: %s%s" % (r.stdout, r.stderr))


def test_missing_store_is_refused_not_recreated():
    """jitd.db moved away (or deleted, or state_dir changed) while the audit
    log has history: a new, empty store would forget every live grant and
    never remove its membership. jitd refuses to start, says why and what
    to do, and exits 3; --init-store makes the new store on purpose, with a
    store_created line."""
    import os
    with Env() as e:
        j = e.jitd
        alice = e.user_dn("alice")
        db = os.path.join(j.state_dir, "jitd.db")
        eq([(x["path"], x["init_store"]) for x in j.audit_events("store_created")],
           [(db, False)], "store_created at the first start")
        g = e.grant_and_check("alice", "admins", "4h")
        eq(j.stop(), 0, "exit status on SIGTERM")
        away = os.path.join(j.dir, "away")
        moved = sorted(f for f in os.listdir(j.state_dir) if f.startswith("jitd.db"))
        eq(moved, ["jitd.db"], "store files after a clean stop")
        _move(j.state_dir, away, moved)
        before = j.audit()

        rc, err = j.start_refused()
        eq(rc, 3, "exit status of a start without its store")
        assert "%s does not exist" % db in err, err
        assert "the audit log %s has history" % j.audit_log in err, err
        assert "--init-store" in err, err
        assert not os.path.exists(db), "an empty store was created"
        eq(j.audit(), before, "audit log untouched by the refused start")
        assert e.is_member("admins", alice), "the membership is still there"

        # The store put back: the grant is still known, and still ends.
        _move(away, j.state_dir, moved)
        j.start()
        eq(j.show(g["grant_id"])["state"], "active", "the grant after the store came back")
        eq(j.stop(), 0, "exit status on SIGTERM")

        # On purpose: a new store, recorded in the audit log.
        _move(j.state_dir, away, moved)
        j.start(args=["--init-store"])
        ev = j.audit()[len(before):]
        created = [x for x in ev if x["event"] == "store_created"]
        eq(len(created), 1, "store_created lines: %r" % (ev,))
        eq((created[0]["path"], created[0]["init_store"]), (db, True), "store_created fields")
        eq([x["event"] for x in ev][-2:], ["store_created", "started"], "written before started")
        refused(j.request({"op": "show", "grant_id": g["grant_id"]}), "not_found",
                "the old grant in the new store")
        # Once made, the store is simply opened: no option, no new line.
        j.restart()
        eq(len(j.audit_events("store_created")), 2, "store_created lines after a restart")
        _verify_chain(j)


def test_leftover_wal_without_its_database_is_refused():
    """jitd was killed (its jitd.db-wal holds the latest grants), then only
    jitd.db went away. Even with a new audit chain (nothing else says a
    store existed), jitd must not create a database next to that WAL:
    SQLite would delete it, grants and all. --init-store moves it aside."""
    import glob
    import hashlib
    import os
    with Env() as e:
        j = e.jitd
        e.grant_and_check("alice", "admins", "4h")
        j.kill()
        db = os.path.join(j.state_dir, "jitd.db")
        wal = db + "-wal"
        assert os.path.getsize(wal) > 0, "no WAL left by kill -9"
        with open(wal, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        away = os.path.join(j.dir, "away")
        _move(j.state_dir, away, ["jitd.db", "audit.head"])
        _move(j.dir, away, [os.path.basename(j.audit_log)])

        rc, err = j.start_refused()
        eq(rc, 3, "exit status of a start next to a WAL without its database")
        assert "%s does not exist but %s does" % (db, wal) in err, err
        assert "--init-store" in err, err
        assert not os.path.exists(db), "a database was created next to the WAL"
        with open(wal, "rb") as f:
            eq(hashlib.sha256(f.read()).hexdigest(), digest, "the WAL, untouched")

        j.start(args=["--init-store"])
        aside = glob.glob(wal + ".orphaned-*")
        eq(len(aside), 1, "the WAL moved aside: %r" % (os.listdir(j.state_dir),))
        with open(aside[0], "rb") as f:
            eq(hashlib.sha256(f.read()).hexdigest(), digest, "the WAL moved aside whole")
        eq(len(glob.glob(db + "-shm.orphaned-*")), 1, "the -shm moved aside")
        created = j.audit_events("store_created")
        eq([(x["path"], x["init_store"]) for x in created], [(db, True)], "store_created")
        e.grant_and_check("bob", "dba", "1h")


def test_an_unreadable_row_does_not_stop_expiries():
    """A due row the store cannot read (an ending row with an end_state it
    does not know, or with none: hand-edited, or damaged) used to fail the
    scheduler's whole read at every tick (no grant expired) or, the second,
    to stop jitd on an illegal transition at every start. Now such a row is
    skipped, named in the log and counted in status; the others expire."""
    import os
    import sqlite3
    with Env() as e:
        j = e.jitd
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "admins", "8s")
        eq(j.stop(), 0, "exit status on SIGTERM")
        bad = {"g-bad000000000000000000001": "bogus", "g-bad000000000000000000002": None}
        db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"), isolation_level=None)
        try:
            db.execute("PRAGMA ignore_check_constraints = ON")
            cols = [r[1] for r in db.execute("PRAGMA table_info(grants)")]
            row = dict(zip(cols, db.execute("SELECT * FROM grants WHERE id = ?",
                                            (g["grant_id"],)).fetchone()))
            for gid, end_state in bad.items():
                row.update(id=gid, request_id=None, state="ending", end_state=end_state,
                           next_attempt=0, pair_key="damaged " + gid)
                db.execute("INSERT INTO grants (%s) VALUES (%s)"
                           % (", ".join(cols), ", ".join("?" * len(cols))),
                           [row[c] for c in cols])
        finally:
            db.close()
        pos = j.stderr_pos()
        j.start()
        e.wait_removed("admins", alice, expires_epoch(g) + SLACK, "expiry beside unreadable rows")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 5, "expired")
        wait_until(lambda: j.request({"op": "status"})["status"]["due_unreadable"] == 2, 5,
                   "status due_unreadable")
        err = j.stderr_since(pos)
        assert "grant g-bad000000000000000000001: bad end_state bogus: row skipped" in err, err
        assert ("grant g-bad000000000000000000002: state ending without an end_state: "
                "row skipped") in err, err
        assert j.running(), "jitd stopped"
        # Logged once a minute, not at every tick.
        eq(err.count("g-bad000000000000000000001"), 1, "log lines naming the row")
