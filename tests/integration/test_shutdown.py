"""Clean shutdown and restart under load (issue 4, item 5): SIGTERM while
clients are sending; every request either completes and is durable, or its
client gets an error; nothing is half-applied. Start-up recovery finishes a
pair's unfinished work before a new grant for that pair is decided."""

import json
import os
import signal
import sqlite3
import threading
import time

from jittest import Env, eq, refused, wait_until, slow, timeout, freeze, thaw, expires_epoch
from jitd import Conn

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
GROUPS = ["admins", "dba", "ops", "web"]


class Load:
    """Clients that send grants (and complete half of what they got) until
    the daemon stops answering: even-numbered ones on a fresh connection per
    request, odd-numbered ones request after request on one connection."""

    def __init__(self, e, tag, n_threads=24):
        self.e, self.tag = e, tag
        self.lock = threading.Lock()
        self.records = []          # dicts: op, request_id/grant_id, how, answer
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(n_threads)]

    def call(self, req, keep):
        """-> ("ok", answer) | ("refused", answer) | ("unsent", exc) | ("no_answer", exc).
        keep: a one-element list holding the connection to reuse, or None."""
        c = keep[0] if keep else None
        if c is None:
            try:
                c = Conn(self.e.jitd.sock, timeout=60)
            except OSError as exc:
                return "unsent", exc
        try:
            c.send(req)
            a = c.recv()
        except (OSError, ConnectionError, ValueError) as exc:
            c.close()
            if keep:
                keep[0] = None
            return "no_answer", exc
        if keep and a.get("ok") is not False:
            keep[0] = c
        else:
            c.close()
            if keep:
                keep[0] = None
        return ("ok" if a.get("ok") else "refused"), a

    def record(self, rec):
        with self.lock:
            self.records.append(rec)

    def run(self, i):
        keep = [None] if i % 2 else None
        k = 0
        while True:
            rid = "%s-t%d-%d" % (self.tag, i, k)
            req = {"op": "grant", "user": USERS[(i + k) % len(USERS)],
                   "group": GROUPS[(i * 7 + k) % len(GROUPS)], "duration": "1h",
                   "request_id": rid}
            how, a = self.call(req, keep)
            self.record({"op": "grant", "request_id": rid, "how": how, "answer": a})
            if how in ("unsent", "no_answer") or (how == "refused" and not keep):
                return
            if how == "ok" and k % 2 == 0:
                gid = a["grant"]["grant_id"]
                how2, a2 = self.call({"op": "complete", "grant_id": gid}, keep)
                self.record({"op": "complete", "grant_id": gid, "how": how2, "answer": a2})
                if how2 in ("unsent", "no_answer"):
                    return
            k += 1

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a client thread hangs"


def _all_grants(e):
    return e.jitd.ok({"op": "list", "state": "all", "limit": 10000})["grants"]


@timeout(240)
def test_sigterm_under_load():
    rounds = 3
    with Env(directory={"connections": 2}) as e:
        records = []
        for r in range(rounds):
            load = Load(e, "r%d" % r)
            load.start()
            time.sleep(1.0 + 0.3 * r)
            rc = e.jitd.stop(timeout=30)      # SIGTERM in the middle of it
            load.join()
            eq(rc, 0, "exit status on SIGTERM under load")
            records += load.records
            e.jitd.start()
        # Every removal decided before or at start-up finishes.
        wait_until(lambda: e.jitd.ok({"op": "status"})["status"]["pending_revocations"] == 0,
                   15, "no pending removals after the restarts")
        by_rid = {g["request_id"]: g for g in _all_grants(e) if g.get("request_id")}
        counts = {}
        for rec in records:
            counts[(rec["op"], rec["how"])] = counts.get((rec["op"], rec["how"]), 0) + 1
            if rec["op"] == "grant":
                g = by_rid.get(rec["request_id"])
                if rec["how"] == "ok":
                    assert g is not None, "acknowledged grant lost: %r" % rec
                    eq(g["grant_id"], rec["answer"]["grant"]["grant_id"], "grant id")
                elif rec["how"] == "refused":
                    code = rec["answer"]["error"]["code"]
                    assert code in ("shutting_down", "busy"), rec
                    assert g is None, "refused with %s but recorded: %r" % (code, g)
                elif g is not None:
                    # No answer: recorded or not, but never half-done.
                    assert g["state"] in ("active", "completed", "failed"), g
            else:
                if rec["how"] == "ok":
                    assert rec["answer"]["grant"]["state"] in ("completed", "ending"), rec
                elif rec["how"] == "refused":
                    assert rec["answer"]["error"]["code"] in ("shutting_down", "busy"), rec
        # Nothing half-applied: each group holds exactly the members of its
        # active grants (and its placeholder); no grant is stuck.
        grants = _all_grants(e)
        states = {}
        for g in grants:
            states[g["state"]] = states.get(g["state"], 0) + 1
            assert g["state"] not in ("pending", "ending"), g
        for grp in GROUPS:
            want = {g["user_dn"].lower() for g in grants
                    if g["group"] == grp and g["state"] == "active"}
            want.add(e.slapd.placeholder.lower())
            got = {m.lower() for m in e.slapd.members(grp)}
            eq(got, want, "members of %s vs its active grants" % grp)
        for rec in records:
            if rec["op"] == "complete" and rec["how"] == "ok":
                g = [x for x in grants if x["grant_id"] == rec["grant_id"]][0]
                eq(g["state"], "completed", "acknowledged complete")
        assert counts.get(("grant", "ok"), 0) > 20, counts
        print("%d rounds: %s; grants by state %s" % (
            rounds, ", ".join("%s %s %d" % (k[0], k[1], v) for k, v in sorted(counts.items())),
            states))


def _edit_grant(e, gid, sql, *args):
    db = sqlite3.connect(os.path.join(e.jitd.state_dir, "jitd.db"))
    try:
        db.execute(sql, args + (gid,))
        db.commit()
    finally:
        db.close()


def _check_settled_first(e, g1, g2):
    ev = e.jitd.audit()
    i_end = [i for i, x in enumerate(ev) if x.get("grant_id") == g1["grant_id"]
             and x["event"] == "failed"]
    i_new = [i for i, x in enumerate(ev) if x.get("grant_id") == g2["grant_id"]
             and x["event"] == "granted"]
    assert i_end and i_new, (i_end, i_new)
    assert i_end[0] < i_new[0], "the new grant was decided before the old one was settled"
    eq(ev[i_end[0]]["outcome"], "removed", "the interrupted grant's membership")
    eq(ev[i_new[0]]["outcome"], "added", "the new grant's membership")
    eq(e.jitd.show(g1["grant_id"])["state"], "failed", "the interrupted grant")
    eq(g2["standing"], False, "the new grant is jitd's own")
    assert e.is_member("admins", e.user_dn("alice"))
    e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
    assert not e.is_member("admins", e.user_dn("alice")), "membership outlived its grants"


def test_recovered_grant_settled_before_new_grant_of_pair():
    """A grant recovered from pending has its membership removed before a
    new grant of the pair decides (the new one adds it: its own). Its add's
    outcome is unknown, so it closes only after the check after
    replication_grace, by then kept for the new grant. (A grace of 3 s: the
    new grant must come within it, which a loaded machine can miss by
    more than 1 s.)"""
    with Env(directory={"replication_grace": 3}) as e:
        j = e.jitd
        g1 = e.grant_and_check("alice", "admins", "1h")
        j.kill()
        # As if jitd died between the directory add and the `active` commit.
        _edit_grant(e, g1["grant_id"], "UPDATE grants SET state = 'pending' WHERE id = ?")
        j.start()
        g2 = j.must_grant("alice", "admins", "1h")
        granted = j.audit_events("granted", grant_id=g2["grant_id"])
        eq(granted[0]["outcome"], "added", "the new grant's membership (the old one removed first)")
        eq(g2["standing"], False, "the new grant is jitd's own")
        wait_until(lambda: j.show(g1["grant_id"])["state"] == "failed", 10,
                   "the interrupted grant closed after the check")
        assert e.is_member("admins", e.user_dn("alice")), "the new grant's membership"
        last = [x for x in j.audit_events(grant_id=g1["grant_id"]) if x["event"] == "failed"][-1]
        eq(last["outcome"], "kept_other_grant", "the interrupted grant's last line")
        j.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert not e.is_member("admins", e.user_dn("alice")), "membership outlived its grants"
        # the interrupted grant's unknown add passed to the new grant: its end is checked too
        wait_until(lambda: j.show(g2["grant_id"])["state"] == "completed", 10, "g2 completed")
        done = j.audit_events("completed", grant_id=g2["grant_id"])[-1]
        eq(done.get("checked_after_grace"), True, "the new grant's completed line: %r" % (done,))


def test_waiting_removal_settled_before_new_grant_of_pair():
    """A removal waiting for its retry (not due for an hour) is run before a
    new grant of the same user and group is decided. (retry_max_interval of
    2 h: a retry an hour ahead is one jitd can have scheduled; one beyond
    any retry interval would be taken for a clock stepped back and made due
    at start, test_clock.py.)"""
    with Env(top={"retry_max_interval": 7200}) as e:
        g1 = e.grant_and_check("alice", "admins", "1h")
        e.jitd.kill()
        _edit_grant(e, g1["grant_id"],
                    "UPDATE grants SET state = 'ending', end_state = 'failed', attempts = 7,"
                    " next_attempt = ?, last_error = 'ldap -1 (test)' WHERE id = ?",
                    int(time.time()) + 3600)
        e.jitd.start()
        time.sleep(0.5)
        eq(e.jitd.show(g1["grant_id"])["state"], "ending", "not due yet")
        g2 = e.jitd.must_grant("alice", "admins", "1h")
        _check_settled_first(e, g1, g2)


def _listening(path):
    """Is a socket bound at path listening, in any process? /proc/net/unix
    names a socket by the path it was bound to, even once unlinked."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000:
                return True
    return False


def _started(e):
    """How many grants and ends a worker has taken up so far."""
    st = e.jitd.ok({"op": "status"})["status"]
    return st.get("timings", {}).get("queue", {}).get("count", 0)


def test_draining_answers_shutting_down():
    # The in-flight grant holds the drain open until slapd is resumed below
    # (or the directory's timeout): 20 s, so that a slow machine cannot let
    # jitd finish draining and exit before the idle client's request.
    with Env(directory={"timeout": 20}) as e:
        idle = e.jitd.connect()
        eq(idle.call({"op": "status"})["ok"], True, "idle client's first request")
        # every worker bound: one caught binding by the stop would take
        # nothing up for the directory's timeout
        e.jitd.wait_bound()
        freeze(e.slapd.pid)
        try:
            n = _started(e)
            busy = e.jitd.connect(timeout=60)
            busy.send({"op": "grant", "user": "bob", "group": "admins", "duration": "1h",
                       "request_id": "drain-busy"})
            # In flight: a worker has it (and waits on the stopped slapd,
            # up to the directory's timeout).
            wait_until(lambda: _started(e) > n, 10, "the grant taken up by a worker",
                       interval=0.02)
            assert _listening(e.jitd.sock), "no listening socket at %s" % e.jitd.sock
            e.jitd.proc.send_signal(signal.SIGTERM)
            # Draining has begun once the listener closed its listening
            # socket (a failed connect proves less: the engine unlinks the
            # socket's path before it tells the listener to drain).
            wait_until(lambda: not _listening(e.jitd.sock), 5, "the listener to drain",
                       interval=0.02)
            # Three lines in one write (read together): each is answered.
            idle.send(b"".join((json.dumps(r) + "\n").encode() for r in (
                {"op": "grant", "user": "carol", "group": "dba", "duration": "1h",
                 "request_id": "drain-idle"},
                {"op": "status"},
                {"op": "grant", "user": "dave", "group": "dba", "duration": "1h",
                 "request_id": "drain-idle2"})))
            for k in range(3):
                refused(idle.recv(), "shutting_down",
                        "request %d of 3 sent while jitd drains" % (k + 1))
            assert idle.closed_by_peer(5), "connection left open after shutting_down"
            try:
                Conn(e.jitd.sock, timeout=5)
                raise AssertionError("a new connection was accepted while draining")
            except OSError:
                pass
        finally:
            thaw(e.slapd.pid)
        first = busy.recv()               # the request in flight is answered
        eq(e.jitd.proc.wait(30), 0, "exit status")
        e.jitd.proc = None
        e.jitd.start()
        wait_until(lambda: e.jitd.ok({"op": "status"})["status"]["pending_revocations"] == 0,
                   15, "no pending removals")
        grants = {g["request_id"]: g for g in _all_grants(e) if g.get("request_id")}
        assert "drain-idle" not in grants, "a shutting_down request was recorded"
        assert "drain-idle2" not in grants, "a shutting_down request was recorded"
        if first.get("ok"):
            eq(grants["drain-busy"]["state"], "active", "the in-flight grant")
            assert e.is_member("admins", e.user_dn("bob"))
        else:
            eq(first["error"]["code"], "directory_unavailable", "the in-flight grant")
            assert not e.is_member("admins", e.user_dn("bob")), "a refused grant left a member"


def test_queued_grants_are_answered_shutting_down_at_sigterm():
    """One worker; its grant waits on a stopped slapd and two more are
    queued behind it when SIGTERM comes. The queued ones are not started:
    each is answered shutting_down, while the drain still forwards answers,
    and nothing is recorded for them (regression: the workers went on
    starting queued grants after SIGTERM, adding memberships, and their
    answers, made after the loop ended, were dropped). They are answered at
    once, not when the worker gets free."""
    with Env(directory={"timeout": 20, "connections": 1}) as e:
        j = e.jitd
        j.wait_bound()
        freeze(e.slapd.pid)
        conns = []
        try:
            n = _started(e)
            busy = j.connect(timeout=60)
            busy.send({"op": "grant", "user": "bob", "group": "admins", "duration": "1h",
                       "request_id": "q-busy"})
            wait_until(lambda: _started(e) > n, 10, "the grant taken up by the worker",
                       interval=0.02)
            for u in ("carol", "dave"):
                c = j.connect(timeout=60)
                c.send({"op": "grant", "user": u, "group": "dba", "duration": "1h",
                        "request_id": "q-" + u})
                conns.append(c)
            time.sleep(1.0)  # both queued behind bob's
            j.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: not _listening(j.sock), 5, "the listener to drain",
                       interval=0.02)
            # answered at once, while the one worker is still held by the
            # stopped slapd (it could be for longer than the drain)
            for c, u in zip(conns, ("carol", "dave")):
                refused(c.recv(), "shutting_down", "%s's queued grant" % u)
        finally:
            thaw(e.slapd.pid)
        busy.recv()
        eq(j.proc.wait(30), 0, "exit status")
        j.proc = None
        j.start()
        grants = {g["request_id"] for g in _all_grants(e) if g.get("request_id")}
        eq(sorted(grants & {"q-carol", "q-dave"}), [], "nothing recorded for the queued ones")
        for u in ("carol", "dave"):
            assert not e.is_member("dba", e.user_dn(u)), "%s is a member" % u


def test_pid_file_is_removed_at_a_clean_stop():
    """The pid file names the running jitd and goes when it stops
    (regression: it stayed, and logrotate's script without systemd would
    signal whatever process got that pid next)."""
    with Env() as e:
        j = e.jitd
        path = os.path.join(j.dir, "jitd.pid")
        with open(path) as f:
            eq(f.read().strip(), str(j.proc.pid), "pid file while running")
        j.stop()
        assert not os.path.exists(path), "pid file left after the stop"


def test_expiries_queued_at_sigterm_are_still_made_during_the_drain():
    """One worker; three grants of three groups expire together while
    slapd is stopped: the first group's expiry waits on slapd, the other two
    are queued behind it when SIGTERM comes. slapd resumes: the drain makes
    the queued expiries too before jitd exits (regression: SIGTERM dropped
    every queued job, removals included, so those memberships stayed until
    the next start)."""
    with Env(directory={"timeout": 20, "connections": 1}) as e:
        j = e.jitd
        j.wait_bound()
        pairs = [("alice", "admins"), ("bob", "dba"), ("carol", "ops")]
        due = int(time.time()) + 5
        gs = [j.must_grant(u, grp, due - int(time.time())) for u, grp in pairs]
        ends = sorted(expires_epoch(g) for g in gs)
        assert ends[-1] - ends[0] <= 1, "the three grants expire within a second: %r" % ends
        wait_until(lambda: time.time() >= ends[0] - 0.5, 10, "just before the expiry")
        freeze(e.slapd.pid)
        try:
            # the first batch waits on slapd; the two others are queued
            # (a part batch waits up to 1 s for a fuller one while the
            # worker is busy)
            time.sleep(3.5)
            assert j.running()
            db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
            live = db.execute("SELECT count(*) FROM grants WHERE state IN ('active', 'ending')"
                              ).fetchone()[0]
            db.close()
            assert live == 3, "%d of the grants still to end at SIGTERM: the test proves " \
                "nothing" % live
            j.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        finally:
            thaw(e.slapd.pid)
        wait_until(lambda: not j.running(), 30, "jitd to exit")
        for u, grp in pairs:
            assert not e.is_member(grp, e.user_dn(u)), \
                "%s is still in %s after the drain" % (u, grp)
        db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
        states = dict(db.execute("SELECT id, state FROM grants").fetchall())
        db.close()
        for g in gs:
            eq(states[g["grant_id"]], "expired", "state of %s after the drain" % g["grant_id"])


def test_a_complete_no_worker_reached_before_the_stop_is_made_at_the_next_start():
    """One worker, held 15 s by a complete of alice's grant (fault pause),
    and a complete of bob's queued behind it when SIGTERM comes: the drain
    (12 s) ends before the worker is free, so bob's end is not made before
    jitd exits. It must be recorded (the grant ending) and made at the next
    start (regression: the job was dropped with the grant still active, so
    bob kept the group until his grant expired, an hour later)."""
    from crash import fault_build
    if not fault_build():
        from jittest import skip
        skip("jitd was built without --enable-fault-injection")
    with Env(start=False, directory={"connections": 1}) as e:
        j = e.jitd
        j.start()
        a = e.grant_and_check("alice", "admins", "1h")
        b = e.grant_and_check("bob", "dba", "1h")
        j.stop()
        j.start(env={"JITD_FAULT": "grant.before_ending:sleep=15000@1"})
        first = j.connect(timeout=60)
        first.send({"op": "complete", "grant_id": a["grant_id"]})
        wait_until(lambda: "fault pause 15000 ms at grant.before_ending" in j.stderr_tail(50),
                   10, "alice's complete taken up by the worker")
        second = j.connect(timeout=60)
        second.send({"op": "complete", "grant_id": b["grant_id"], "reason": "done"})
        j.ok({"op": "status"})  # bob's complete reached the engine (one channel, in order)
        j.proc.send_signal(signal.SIGTERM)
        eq(j.proc.wait(40), 0, "exit status")
        j.proc = None
        first.close()
        second.close()
        db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
        st = dict(db.execute("SELECT id, state FROM grants").fetchall())
        db.close()
        eq(st[b["grant_id"]], "ending", "bob's grant after the stop")
        assert e.is_member("dba", e.user_dn("bob")), "bob's end was made after all: no test"
        j.start()
        wait_until(lambda: j.show(b["grant_id"])["state"] == "completed", 15,
                   "bob's end made at the next start")
        assert not e.is_member("dba", e.user_dn("bob")), "bob is still in dba"
        eq(j.show(a["grant_id"])["state"], "completed", "alice's grant")
        ev = [x for x in j.audit_events("completed", b["grant_id"])]
        eq(len(ev), 1, "bob's completed lines")
        # the final line, written at the next start, names who asked and why
        # (regression: by_client, by_peer_* and end_reason were lost)
        eq(ev[0].get("end_reason"), "done", "end_reason of bob's completed line")
        assert ev[0].get("by_client"), ev[0]
        eq(ev[0].get("by_client"), ev[0]["client"], "by_client (the same clients entry)")
        eq(ev[0].get("by_peer_uid"), os.getuid(), "by_peer_uid")
        assert ev[0].get("by_peer_pid", 0) > 0, ev[0]
