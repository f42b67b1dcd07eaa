"""Crash safety, proven by fault injection (tests/lib/crash.py has the
driver and the invariants).

Four tests of TRIALS trials each (200 in all; 10 each under --quick) kill
jitd with SIGKILL while several clients send grants, completes, revokes,
extends and shows and grants expire: from outside at random moments, and
from inside at the named crash points of a build configured with
--enable-fault-injection (between each store commit and the directory
write next to it, in both orders). After each kill, with jitd dead, the
store and the directory are checked against the invariants; at the end
every grant must run out and leave only the standing members behind.
Each test prints a "figures:" line (trials, faults injected, grants,
violations) and fails on any violation.

A seed is printed; JITTEST_SEED=N repeats a run's choices (the timing of
threads still varies).
"""

import os
import threading
import time

from jittest import Env, eq, refused, skip, timeout, quick, wait_until
from crash import CrashTest, env_kwargs, fault_build
from jitd import parse_time
from test_identity import _mods_of

TRIALS = 50
QUICK_TRIALS = 10


def figures(name, ct, st):
    print("figures: %s: %s" % (name, st.summary()))
    if st.faults_by_point:
        print("figures: %s: faults by crash point: %s" % (name, ", ".join(
            "%s=%d" % kv for kv in sorted(st.faults_by_point.items()))))


def run(name, faults=True, mix=None, outage_rate=0.1, need_points=None):
    if faults and not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    seed = os.environ.get("JITTEST_SEED")
    trials = QUICK_TRIALS if quick() else TRIALS
    with Env(**env_kwargs()) as e:
        ct = CrashTest(e, seed=int(seed) if seed else None, faults=faults, name=name,
                       mix=mix, outage_rate=outage_rate)
        st = ct.run(trials=trials)
        figures(name, ct, st)
        if st.violations:
            raise AssertionError("%d invariant violations (seed %d):\n  %s"
                                 % (len(st.violations), ct.seed,
                                    "\n  ".join(st.violations[:30])))
        if faults and st.faults == 0:
            raise AssertionError("no fault was injected: the crash points never fired")
        if need_points and not quick():
            missed = [p for p in need_points if p not in st.faults_by_point]
            if missed:
                raise AssertionError("crash points that never fired in %d trials: %s"
                                     % (trials, ", ".join(missed)))
        if st.grants_acked == 0:
            raise AssertionError("no grant was ever acknowledged: the load did nothing")


@timeout(600)
def test_crash_sigkill_from_outside():
    """Kills only from outside (runs in any build)."""
    run("sigkill", faults=False)


@timeout(600)
def test_crash_at_every_point():
    """Every crash point in turn (round robin), a few at random."""
    from crash import FAULT_POINTS
    run("points", mix={"kill": 0.0, "any": 0.05, "point": 0.95}, outage_rate=0.05,
        need_points=[p for p in FAULT_POINTS if p != "grant.after_retry"])


@timeout(600)
def test_crash_mixed():
    """External kills, single points and all points armed at once."""
    run("mixed")


@timeout(600)
def test_crash_with_directory_restarts():
    """As mixed, with slapd killed and restarted during a third of the
    trials: removals are retried across jitd crashes."""
    run("outages", mix={"kill": 0.4, "any": 0.2, "point": 0.4}, outage_rate=0.35)


def wait_stderr(j, text, timeout_s):
    wait_until(lambda: text in j.stderr_tail(200), timeout_s, "jitd stderr: %r" % text)


def test_extend_racing_expiry():
    """An extend that arrives while the expiry of the same grant is under
    way (the expiring worker paused at grant.before_ending, after it has
    decided the grant is due): it must either be refused or keep the grant.
    Acknowledging the extension and then removing the membership anyway
    would break a promise made to the client."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    with Env(start=False) as e:
        e.jitd.start(env={"JITD_FAULT": "grant.before_ending:sleep=2000@1"})
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "dba", "1s")
        wait_stderr(e.jitd, "fault pause 2000 ms at grant.before_ending", 10)
        a = e.jitd.request({"op": "extend", "grant_id": g["grant_id"], "duration": "1h"})
        if a.get("ok"):
            # the paused expiry goes on after its 2 s: time for one that
            # (wrongly) went ahead anyway (a slow machine only weakens this)
            time.sleep(3)
            s = e.jitd.show(g["grant_id"])
            eq(s["state"], "active", "state of a grant whose extension was acknowledged")
            assert e.is_member("dba", alice), \
                "extension acknowledged (%r) but the membership was removed" % a["grant"]
        else:
            refused(a, "not_active", "extend of a grant that is being expired")
            wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 15,
                       "the paused expiry to finish")
            assert not e.is_member("dba", alice)


def test_crash_during_extend_keeps_evidence():
    """A crash on either side of an extension's commit: the audit log never
    says less than the store (regression: the extension used to be
    committed before its `extended` line was written, so a crash at
    engine.after_extend left a longer privilege than the log showed)."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    with Env(start=False) as e:
        for point in ("engine.after_extend_audit", "engine.after_extend"):
            e.jitd.start(env={"JITD_FAULT": point + ":@1"})
            g = e.jitd.must_grant("alice", "dba", "1h")
            try:
                a = e.jitd.request({"op": "extend", "grant_id": g["grant_id"],
                                    "duration": "10m"})
            except ConnectionError:
                a = None
            assert a is None, "extend answered despite the crash at %s: %r" % (point, a)
            e.jitd.kill()
            assert "fault injected at " + point in e.jitd.stderr_tail(20)
            e.jitd.start()
            s = e.jitd.show(g["grant_id"])
            logged = [parse_time(ev["expires_at"]) for ev in e.jitd.audit_events(
                grant_id=g["grant_id"]) if ev["event"] in ("granted", "extended")]
            assert max(logged) >= parse_time(s["expires_at"]), \
                "after a crash at %s the store says %s, the log only %r" % (
                    point, s["expires_at"], logged)
            assert s["state"] == "active" and e.is_member("dba", e.user_dn("alice"))
            e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
            e.jitd.stop()


# jitd's wait for SQLite's write lock before a write fails (STORE_BUSY_MS).
STORE_BUSY_S = 10
PAUSE_MS = 3000  # the lock must be taken within it


def test_active_write_failure_removes_the_membership_at_once():
    """The store refuses the pending -> active write after the add and the
    `granted` line (here another process holds SQLite's write lock past
    jitd's busy timeout). The client must hear `internal`, never ok, and
    the membership jitd has just added must be removed by the running
    daemon (pending -> ending(failed)), not left until the next start."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    import sqlite3
    with Env(start=False) as e:
        e.jitd.start(env={"JITD_FAULT": "grant.after_audit_granted:sleep=%d@1" % PAUSE_MS})
        alice = e.user_dn("alice")
        answer = {}

        def ask():
            answer["a"] = e.jitd.request({"op": "grant", "user": "alice", "group": "dba",
                                          "duration": "1h", "request_id": "held-store"},
                                         timeout=60)
        t = threading.Thread(target=ask)
        t.start()
        wait_stderr(e.jitd, "fault pause %d ms at grant.after_audit_granted" % PAUSE_MS, 10)
        db = sqlite3.connect(os.path.join(e.jitd.state_dir, "jitd.db"), timeout=5,
                             isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            assert e.is_member("dba", alice), "the add had not happened before the pause"
            # Past the pause and the busy timeout of the active write, well
            # before that of the write that hands the row to the ending path
            # (which would stop jitd): 5 s from each.
            time.sleep(PAUSE_MS / 1000 + STORE_BUSY_S + 5)
            assert "a" not in answer, "answered while the store was locked: %r" % answer
        finally:
            db.execute("ROLLBACK")
            db.close()
        t.join(30)
        assert not t.is_alive(), "no answer after the store was released"
        refused(answer["a"], "internal", "grant whose active write failed")
        granted = e.jitd.audit_events("granted")
        eq(len(granted), 1, "granted lines")
        gid = granted[0]["grant_id"]
        wait_until(lambda: not e.is_member("dba", alice), 20,
                   "the membership of the grant that could not turn active is removed")
        wait_until(lambda: e.jitd.show(gid)["state"] == "failed", 20, "grant %s failed" % gid)
        events = [ev["event"] for ev in e.jitd.audit_events(grant_id=gid)]
        eq(events[0], "granted", "first event of the grant")
        assert "failed" in events[1:], "no `failed` line after `granted`: %r" % events
        assert "fatal" not in e.jitd.stderr_tail(200), "jitd restarted instead"
        assert e.jitd.running(), "jitd is not running"
        # The pair is usable again at once.
        e.grant_and_check("alice", "dba", "1h")


def test_batch_expiry_does_not_wait_for_a_busy_pair():
    """Four grants of one group expire in the same second, while a second
    grant of alice's pair is paused (grant.after_pending, 10 s) holding that
    pair's lock. The batch ends bob, carol and dave at once, with one
    modify, and only alice's grant waits for the lock; once the new grant
    is active, alice's old one ends keeping the membership (kept_other_grant)."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    users = ["alice", "bob", "carol", "dave"]
    with Env(start=False, directory={"connections": 3}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "grant.after_pending:sleep=10000@5"})
        # the four due in one second, so that they fall due in one tick: each
        # asks for the seconds left to one instant 8 s ahead (the grants may
        # then take several seconds on a slow machine)
        while time.time() % 1.0 > 0.2:
            time.sleep(0.02)
        due = int(time.time()) + 8
        gs = {u: j.must_grant(u, "ops", due - int(time.time())) for u in users}
        eq(len(set(g["expires_at"] for g in gs.values())), 1,
           "the four grants expire in one second")
        t_exp = parse_time(gs["alice"]["expires_at"])
        answer = {}

        def second_grant():
            answer["a"] = j.request({"op": "grant", "user": "alice", "group": "ops",
                                     "duration": "1h", "ticket": "INC-2",
                                     "requested_by": "t", "approved_by": "t"})

        time.sleep(max(0.0, t_exp - 3 - time.time()))
        since = os.path.getsize(e.slapd.log)  # the group's modifies from here
        th = threading.Thread(target=second_grant, daemon=True)
        th.start()
        wait_stderr(j, "fault pause 10000 ms at grant.after_pending", 10)
        paused_at = time.time()
        # while alice's pair is locked: the others of the batch are gone
        for u in users[1:]:
            e.wait_removed("ops", e.user_dn(u), t_exp + 5, "expiry of %s" % u)
            wait_until(lambda: j.show(gs[u]["grant_id"])["state"] == "expired", 3,
                       "%s expired" % u)
        assert th.is_alive() and time.time() < paused_at + 10, \
            "the batch waited for the paused grant (it answered before the others ended)"
        assert j.show(gs["alice"]["grant_id"])["state"] in ("active", "ending"), \
            "alice's grant ended while its pair lock was held"
        assert e.is_member("ops", e.user_dn("alice"))
        assert "3 expired membership(s) left %s with one modify" % e.slapd.group_dn("ops") \
            in j.stderr_tail(400), "bob, carol and dave did not leave with one modify"
        # what slapd saw (alice's second add is still paused before its add)
        eq(_mods_of(e.slapd, "ops", since), 1, "modifies of ops in slapd's log")
        th.join(15)
        assert not th.is_alive() and answer["a"].get("ok"), answer
        wait_until(lambda: j.show(gs["alice"]["grant_id"])["state"] == "expired", 10,
                   "alice's first grant expired")
        ev = j.audit_events("expired", gs["alice"]["grant_id"])
        eq([x.get("outcome") for x in ev], ["kept_other_grant"], "alice's first grant")
        assert e.is_member("ops", e.user_dn("alice")), "the second grant's membership stays"
        eq(j.show(answer["a"]["grant"]["grant_id"])["state"], "active", "second grant")
