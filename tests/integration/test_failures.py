"""Steps that fail without a crash: the failure points of a build configured
with --enable-fault-injection (`fail.*` in src/fault.c) make one write fail
as if the disk or SQLite had refused it. Whatever fails, a membership jitd
added is removed, no grant is closed without its final audit line, and the
scheduler keeps ending grants.
"""

import re
import threading
import time

from jittest import (Env, eq, refused, skip, wait_until, wait_state, expires_epoch, need_root,
                     one_event)
from crash import fault_build

SLACK = 8  # the scheduler's tick, whole-second expiries, retry_min_interval 1 s


def need_faults():
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")


def wait_stderr(j, text, timeout_s):
    wait_until(lambda: text in j.stderr_tail(200), timeout_s, "jitd stderr: %r" % text)


def final_events(j, gid):
    return [ev for ev in j.audit_events(grant_id=gid)
            if ev["event"] in ("expired", "completed", "revoked", "failed")]


def test_final_audit_failure_keeps_the_grant_ending_until_its_line_is_written():
    """The `completed` line of a complete cannot be written: the membership
    is removed, but the grant is not closed without its evidence. It stays
    `ending`, and the retry writes the line and then closes it (regression:
    the grant used to be closed and the event lost)."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.final_audit:@1"})
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "dba", "1h")
        a = j.ok({"op": "complete", "grant_id": g["grant_id"], "reason": "restored"})
        wait_stderr(j, "fault fail at fail.final_audit", 5)
        eq(a["grant"]["state"], "ending", "state answered when the line could not be written")
        assert not e.is_member("dba", alice), "the membership stays after the complete"
        s = j.show(g["grant_id"])
        assert s["state"] in ("ending", "completed"), s
        wait_until(lambda: j.show(g["grant_id"])["state"] == "completed", SLACK,
                   "the grant closed by its retry")
        ev = final_events(j, g["grant_id"])
        eq([x["event"] for x in ev], ["completed"], "final lines of the grant")
        # written by the retry, it still names who asked and why
        eq(ev[0].get("by_client"), ev[0]["client"], "by_client of the retry's line")
        eq(ev[0].get("end_reason"), "restored", "end_reason of the retry's line")
        assert "by_peer_pid" in ev[0], ev[0]
        assert "the grant stays ending" in j.stderr_tail(200)
        assert j.running()


def test_batch_audit_failure_keeps_the_grants_ending_until_their_lines_are_written():
    """The `expired` lines of an expiry batch cannot be written: the
    memberships are removed, the grants stay `ending`, and each one's retry
    writes its line before it is closed."""
    need_faults()
    users = ["alice", "bob", "carol"]
    with Env(start=False) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.batch_audit:@1"})
        gs = {u: j.must_grant(u, "ops", "2s") for u in users}
        end = max(expires_epoch(g) for g in gs.values()) + SLACK
        wait_stderr(j, "fault fail at fail.batch_audit", end - time.time())
        for u in users:
            e.wait_removed("ops", e.user_dn(u), end, "expiry of %s" % u)
        for u, g in gs.items():
            wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", SLACK,
                       "%s's grant closed" % u)
            ev = final_events(j, g["grant_id"])
            eq([x["event"] for x in ev], ["expired"], "final lines of %s's grant" % u)


def test_pending_row_that_cannot_be_handed_on_stops_jitd_for_recovery():
    """After the add, the `granted` line cannot be written, and neither can
    the pending row be handed to the ending path. A running jitd would never
    look at that row again (and it would count as a live grant of the pair,
    keeping a later grant's membership at its end): jitd stops instead, and
    start-up recovery removes the membership (regression: it logged and
    went on, leaving alice in the group)."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        # a recovered grant's add may still be applied: its end is checked
        # once more after the grace before the row closes
        j.config["directories"][0]["replication_grace"] = 1
        j.write_config()
        j.start(env={"JITD_FAULT": "fail.audit_granted:@1,fail.record_failure:@1"})
        alice = e.user_dn("alice")
        try:
            a = j.request({"op": "grant", "user": "alice", "group": "dba", "duration": "1h"},
                          timeout=20)
        except (ConnectionError, OSError, ValueError):
            a = None
        assert not (a and a.get("ok")), "granted although its line was not written: %r" % a
        wait_until(lambda: not j.running(), 10, "jitd stopped")
        tail = j.stderr_tail(200)
        assert "fault fail at fail.record_failure" in tail, tail
        assert "restarting for recovery" in tail, tail
        j.proc = None
        j.start()
        wait_until(lambda: not e.is_member("dba", alice), SLACK,
                   "the membership of the grant that could not be recorded is removed")
        # the removal is done before its row is closed: wait for the row too
        wait_until(lambda: [r["state"] for r in j.ok({"op": "list", "user": "alice",
                                                       "state": "all"})["grants"]] == ["failed"],
                   SLACK, "alice's grants after recovery: one failed")
        # the pair is usable again, and its end removes the membership
        g = e.grant_and_check("alice", "dba", "1h")
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        assert not e.is_member("dba", alice)


def test_held_expiries_at_the_inflight_cap_are_still_queued():
    """The scheduler caps the grants in flight (INFLIGHT_MAX; lowered to 4
    here). Expiries held back for a fuller batch while the workers are busy
    count against the cap; at the cap they must still be queued when the
    hold ends (regression: the tick returned at the cap before queuing
    them, and from then on no grant expired)."""
    need_faults()
    users = ["alice", "bob", "carol", "dave"]
    with Env(start=False, directory={"connections": 1}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "grant.after_pending:sleep=3000@5",
                     "JITD_FAULT_INFLIGHT_MAX": "4"})
        while time.time() % 1.0 > 0.2:
            time.sleep(0.02)
        gs = {u: j.must_grant(u, "ops", 3) for u in users}
        t_exp = max(expires_epoch(g) for g in gs.values())
        answers = []

        def grant(user):
            answers.append(j.request({"op": "grant", "user": user, "group": "dba",
                                      "duration": "1h"}, timeout=60))

        # the fifth grant pauses the only worker as the four fall due; a
        # sixth waits in the queue, so the workers count as busy
        time.sleep(max(0.0, t_exp - 1.0 - time.time()))
        ths = [threading.Thread(target=grant, args=(u,), daemon=True)
               for u in ("erin", "frank")]
        ths[0].start()
        wait_stderr(j, "fault pause 3000 ms at grant.after_pending", 10)
        ths[1].start()
        for u in users:
            e.wait_removed("ops", e.user_dn(u), t_exp + 3 + SLACK, "expiry of %s" % u)
        for u in users:
            wait_until(lambda: j.show(gs[u]["grant_id"])["state"] == "expired", SLACK,
                       "%s's grant expired" % u)
        for t in ths:
            t.join(30)
        eq(len(answers), 2, "answers of the two grants")
        for a in answers:
            assert a.get("ok"), a
        # and the scheduler still works afterwards
        g = j.must_grant("alice", "ops", "2s")
        e.wait_removed("ops", e.user_dn("alice"), expires_epoch(g) + SLACK, "a later expiry")


def test_grants_of_a_directory_dropped_from_the_config_do_not_stop_the_others():
    """jitd restarted with a configuration that no longer names the directory
    of some live grants: those cannot be ended (jitd says so in its log),
    but they must not take the scheduler's places (the cap on grants in
    flight is lowered to 2 here, below the three orphaned due grants) and
    stop the grants of the configured directory from ending (regression:
    being the oldest due rows, they filled every tick's read)."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        j.start()
        old = [j.must_grant(u, "ops", "2s") for u in ("alice", "bob", "carol")]
        j.stop()
        # the directory is renamed: the three grants belong to no directory now
        j.config["directories"][0]["name"] = "corp2"
        for g in j.config["groups"]:
            g["directory"] = "corp2"
        j.write_config()
        time.sleep(max(0.0, max(expires_epoch(g) for g in old) + 1 - time.time()))
        j.start(env={"JITD_FAULT_INFLIGHT_MAX": "2"})
        g = j.must_grant("dave", "dba", "2s")
        e.wait_removed("dba", e.user_dn("dave"), expires_epoch(g) + SLACK,
                       "expiry of a grant of the configured directory")
        wait_stderr(j, "is not in the configuration", 5)
        assert "\"corp\"" in j.stderr_tail(200)
        for x in old:
            eq(j.show(x["grant_id"])["state"], "active", "grant of the unconfigured directory")
        eq(j.ok({"op": "status"})["status"]["due_in_unconfigured_directories"], 3,
           "status: due grants jitd cannot end")
        r = j.jitctl("status")
        assert re.search(r"^due in unconfigured directories: +3$", r.stdout, re.M), r.stdout
        # configured again: they end, and the count is 0
        j.stop()
        j.config["directories"].append(dict(j.config["directories"][0], name="corp"))
        j.write_config()
        j.start()
        for u in ("alice", "bob", "carol"):
            e.wait_removed("ops", e.user_dn(u), time.time() + 15, "expiry once configured")
        wait_until(lambda: j.ok({"op": "status"})["status"]["due_in_unconfigured_directories"]
                   == 0, 10, "status count back to 0")


def test_grant_of_an_unconfigured_directory_is_closed_by_force():
    """jitd restarted without the directory of a live grant: nothing can end
    it. complete says what to do instead; revoke with force closes it (an
    active one too: no removal could ever make it ending), audited as forced
    and the directory untouched (regression: answered `internal` whatever
    was asked, so such grants stayed open for good)."""
    with Env(start=False) as e:
        j = e.jitd
        j.start()
        g = j.must_grant("alice", "ops", "1h")
        other = j.must_grant("bob", "ops", "1h")
        j.stop()
        j.config["directories"][0]["name"] = "corp2"
        for x in j.config["groups"]:
            x["directory"] = "corp2"
        j.write_config()
        j.start()
        a = j.request({"op": "complete", "grant_id": other["grant_id"]})
        refused(a, "internal", "complete of a grant of an unconfigured directory")
        assert "remove it by hand, then close the grant with revoke and force" in \
            a["error"]["message"], a
        eq(j.show(other["grant_id"])["state"], "active", "nothing changed by the refusal")
        # the operator removes alice by hand, then closes her grant
        e.slapd.remove_member("ops", e.user_dn("alice"))
        a = j.ok({"op": "revoke", "grant_id": g["grant_id"], "force": True,
                  "reason": "directory retired, removed by hand"})
        eq(a["grant"]["state"], "revoked", "forced")
        ev = j.audit_events("revoked", g["grant_id"])
        eq(len(ev), 1, "one revoked line")
        eq((ev[0]["outcome"], ev[0]["previous_end_state"], ev[0]["by_client"]),
           ("forced", "revoked", "root"), "the forced line")
        assert "not configured" in ev[0]["last_error"], ev[0]
        eq(ev[0]["end_reason"], "directory retired, removed by hand", "reason")
        # again: answered as it is
        eq(j.ok({"op": "revoke", "grant_id": g["grant_id"], "force": True})["grant"]["state"],
           "revoked", "forced again")
        eq(len(j.audit_events("revoked", g["grant_id"])), 1, "still one line")
        # the directory was not touched: bob, whose grant stays, is a member
        assert e.is_member("ops", e.user_dn("bob")), "the directory was touched"
        eq(j.show(other["grant_id"])["state"], "active", "the other grant")


def test_session_the_server_no_longer_accepts_is_bound_again():
    """Every operation on a connection that was already open is answered
    operationsError (1), as Active Directory answers a session whose bind no
    longer holds: jitd binds again and retries once, so grants and
    completes still work (regression: the answer was taken as the
    directory's refusal, and the connection kept, until a restart)."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.session_lost:1"})
        binds0 = e.slapd.log_tail(1000000).count("BIND dn=")
        alice = e.user_dn("alice")
        g = e.grant_and_check("alice", "dba", "1h")
        a = j.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(a["grant"]["state"], "completed", "complete answered")
        assert not e.is_member("dba", alice), "the membership stays after the complete"
        wait_stderr(j, "fault fail at fail.session_lost", 5)
        assert "binding again" in j.stderr_tail(400), j.stderr_tail(50)
        binds = e.slapd.log_tail(1000000).count("BIND dn=")
        assert binds > binds0, "no new bind after the session was refused (%d, %d)" % (
            binds0, binds)
        assert j.running()


def test_requests_refused_at_a_full_queue_are_audited_with_a_count():
    """A grant refused `busy` because its directory's queue is full is
    audited like any other refusal, but at most once per 10 s per
    directory, the next audited one counting those not recorded: a full
    queue is an overload, which a synced line per refusal would add to
    (docs/audit-log.md). The queue's cap is lowered to 2 and the only
    worker paused, so the queue fills deterministically (regression:
    these refusals were not audited at all). A `complete` at the full
    queue is queued all the same, ahead of the grants, and made
    (regression: it was refused `busy`, and the membership stayed until
    the client tried again)."""
    need_faults()
    with Env(start=False, directory={"connections": 1}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "grant.after_pending:sleep=15000@2",
                     "JITD_FAULT_QUEUE_MAX": "2"})
        erin = j.must_grant("erin", "dba", "1h")  # the first pass: no pause
        answers = {}

        def grant(user):
            answers[user] = j.request({"op": "grant", "user": user, "group": "dba",
                                       "duration": "1h"}, timeout=60)

        th = threading.Thread(target=grant, args=("alice",), daemon=True)
        th.start()
        wait_stderr(j, "fault pause 15000 ms at grant.after_pending", 10)
        t_pause = time.time()
        queued = []
        for user in ("bob", "carol"):
            c = j.connect(timeout=60)
            c.send({"op": "grant", "user": user, "group": "dba", "duration": "1h"})
            queued.append(c)
        # answered after the two grants reached the engine (one channel, in order)
        j.ok({"op": "status"})
        before = len(j.audit_events("refused"))
        # The 10 s without audit lines count from the first refusal, sent
        # no earlier than this.
        t_first = time.time()
        for i in range(20):
            a = j.grant("dave", "dba", "1h")
            refused(a, "busy", "grant %d at the full queue" % i)
            assert "work queue" in a["error"]["message"], a
        refused(j.grant("dave", "dba", "1h"), "busy", "grant 21 at the full queue")
        ender = j.connect(timeout=60)
        ender.send({"op": "complete", "grant_id": erin["grant_id"]})
        # answered after the complete reached the engine (one channel, in order)
        j.ok({"op": "status"})
        ev = j.audit_events("refused")[before:]
        eq(len(ev), 1, "refused events for 21 refusals at the full queue")
        eq(ev[0].get("error"), "busy", "error")
        eq((ev[0].get("op"), ev[0].get("user"), ev[0].get("group")), ("grant", "dave", "dba"),
           "the refused request")
        assert "not recorded" not in ev[0]["message"], ev[0]
        time.sleep(max(0.0, t_first + 10.5 - time.time()))
        assert time.time() < t_pause + 14, "too slow: the worker's pause is nearly over"
        refused(j.grant("frank", "dba", "1h"), "busy", "a grant at the full queue, 10 s later")
        last = j.audit_events("refused")[-1]
        eq((last.get("op"), last.get("user"), last.get("error")),
           ("grant", "frank", "busy"), "the refusal audited 10 s later")
        assert "(20 earlier refusals not recorded)" in last["message"], last
        # once the worker goes on, the complete is made, then the queued grants
        th.join(30)
        assert answers["alice"].get("ok"), answers
        a = ender.recv()
        assert a.get("ok"), a
        eq(a["grant"]["state"], "completed", "the complete queued at the full queue")
        ender.close()
        assert not e.is_member("dba", e.user_dn("erin")), "erin is still a member"
        for c in queued:
            a = c.recv()
            assert a.get("ok"), a
            c.close()
        ends = [x for x in j.audit_events("refused") if x.get("op") == "complete"]
        eq(ends, [], "refused completes")


def test_extend_refused_at_a_full_queue_is_audited():
    """An extend of an eligible_group group goes through the directory's
    queue (the membership check); refused `busy` there, it is audited like
    a grant refused at the full queue (regression: the extend path answered
    busy without an audit line)."""
    need_faults()
    groups = {"admins": ("gon", ["placeholder"]), "dba": ("gon", ["placeholder"]),
              "eligible": ("gon", ["@alice", "@bob"])}
    with Env(start=False, directory={"connections": 1}, slapd_kw={"groups": groups}) as e:
        sl, j = e.slapd, e.jitd
        j.config["groups"] = [j.group_entry("admins", eligible_group=sl.group_dn("eligible")),
                              j.group_entry("dba")]
        j.write_config()
        j.start(env={"JITD_FAULT": "grant.after_pending:sleep=8000@2",
                     "JITD_FAULT_QUEUE_MAX": "1"})
        a = j.must_grant("alice", "admins", "1h")  # the first pass: no pause
        th = threading.Thread(target=lambda: j.request(
            {"op": "grant", "user": "carol", "group": "dba", "duration": "1h"}, timeout=60),
            daemon=True)
        th.start()
        wait_stderr(j, "fault pause 8000 ms at grant.after_pending", 10)
        c = j.connect(timeout=60)
        c.send({"op": "grant", "user": "dave", "group": "dba", "duration": "1h"})  # fills it
        j.ok({"op": "status"})
        before = len(j.audit_events("refused"))
        x = j.request({"op": "extend", "grant_id": a["grant_id"], "duration": 60})
        refused(x, "busy", "extend at the full queue")
        ev = j.audit_events("refused")[before:]
        eq([(v.get("op"), v.get("grant_id"), v.get("error")) for v in ev],
           [("extend", a["grant_id"], "busy")], "the refused extend audited")
        eq(j.show(a["grant_id"])["duration"], 3600, "nothing extended")
        th.join(30)
        c.recv()
        c.close()


def test_member_made_between_the_check_and_the_add_is_standing():
    """The check found no member, the add found one: someone else made it
    in between. jitd did not make it, so it must not remove it: the grant is
    standing, and so again is the pair's earlier standing grant, whose flag
    the new grant's record had cleared (regression: the grant counted as
    `added` and the pair's last end removed a membership that predates
    jitd). The failure point makes the second check answer "absent" for a
    member that is there."""
    need_faults()
    with Env(start=False) as e:
        j, s = e.jitd, e.slapd
        bob = e.user_dn("bob")
        s.add_member("admins", bob)  # a permanent member, made by hand
        j.start(env={"JITD_FAULT": "fail.member_check:@2"})
        g0 = j.must_grant("bob", "admins", "1h")
        eq(g0["standing"], True, "the first grant sees the member")
        g = j.must_grant("bob", "admins", "1h")
        wait_stderr(j, "fault fail at fail.member_check", 5)
        eq(g["standing"], True, "standing in the answer")
        ev = [x for x in j.audit_events("granted") if x["grant_id"] == g["grant_id"]][0]
        eq(ev["outcome"], "standing", "the granted line's outcome")
        assert "already when added; recorded as standing" in j.stderr_tail(200)
        for x in (g, g0):
            a = j.ok({"op": "complete", "grant_id": x["grant_id"]})
            eq(a["grant"]["state"], "completed", "complete answered")
            assert e.is_member("admins", bob), "jitd removed a membership it did not make"


def test_a_member_found_by_the_add_that_cannot_be_recorded_standing_is_left():
    """The check found no member (failure point), the add found one, and
    the store cannot record it standing (failure point): jitd wrote
    nothing, so the grant fails without a removal, with a `failed` line
    (outcome kept_standing), and the member made by hand stays (regression:
    the grant went to ending, and its removal took away a membership that
    predates jitd)."""
    need_faults()
    with Env(start=False) as e:
        j, s = e.jitd, e.slapd
        bob = e.user_dn("bob")
        s.add_member("admins", bob)  # a permanent member, made by hand
        j.start(env={"JITD_FAULT": "fail.member_check:@1,fail.set_standing:@1"})
        refused(j.grant("bob", "admins", "1h"), "internal", "the grant whose standing failed")
        wait_stderr(j, "fault fail at fail.set_standing", 5)
        time.sleep(2)  # a removal would be made at once
        assert e.is_member("admins", bob), "jitd removed a membership it did not make"
        ev = [x for x in j.audit_events("failed")]
        eq([(x["state"], x["outcome"]) for x in ev], [("failed", "kept_standing")],
           "failed lines")
        eq(j.show(ev[0]["grant_id"])["state"], "failed", "the grant's state")
        g = j.must_grant("bob", "admins", "1h")
        eq(g["standing"], True, "the next grant sees the member")


def test_member_found_by_the_add_while_the_pair_has_a_grant_of_jitd_stays_jitd_s():
    """The add finds the member, but another live grant of the pair is
    jitd's own: the membership may be that grant's (a group jitd may write
    but not read, an add replicated meanwhile), so it is not standing, and
    the pair's last end removes it. The failure point makes every check
    that sees the member answer "absent"."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        alice = e.user_dn("alice")
        j.start(env={"JITD_FAULT": "fail.member_check:1"})
        g1 = j.must_grant("alice", "admins", "1h")
        eq(g1["standing"], False, "the first grant adds the member")
        g2 = j.must_grant("alice", "admins", "1h")
        wait_stderr(j, "fault fail at fail.member_check", 5)
        eq(g2["standing"], False, "not standing: the pair's other grant is jitd's")
        j.ok({"op": "complete", "grant_id": g1["grant_id"]})
        assert e.is_member("admins", alice), "removed while the second grant was live"
        j.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert not e.is_member("admins", alice), "the membership jitd made outlived its grants"



def test_a_store_busy_at_a_removal_is_no_directory_refusal():
    """An end whose store read fails (another process holds the store:
    failure point fail.settle_kept) is retried, and status does not count
    it in revocations_failing, which means the directory refused a removal
    and a human must act (regression: it was counted, and an operator
    looked for an ACL problem that was not there)."""
    need_faults()
    with Env(start=False, top={"retry_min_interval": "3s", "retry_max_interval": "3s"}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.settle_kept:@1"})
        g = j.must_grant("alice", "admins", "1h")
        a = j.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(a["grant"]["state"], "ending", "the end after the store failed")
        st = j.ok({"op": "status"})["status"]
        eq(st["pending_revocations"], 1, "pending_revocations")
        eq(st["revocations_failing"], 0, "revocations_failing for a store that was busy")
        wait_state(j, g, "completed", 15)
        assert not e.is_member("admins", e.user_dn("alice")), "alice still a member"


def test_end_the_worker_cannot_read_is_answered_busy_not_not_found():
    """The worker that ends a grant cannot read it (the store locked by
    another process past the wait: failure point fail.end_lookup). The
    answer must be the retryable `busy`, not `not_found` (regression: a
    revoke during a store hiccup said the id was wrong, and an operator
    or a tool would stop while the grant stayed); the grant stays active,
    and the same request later revokes it."""
    need_faults()
    with Env(start=False) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.end_lookup:1"})
        g = j.must_grant("alice", "admins", "1h")
        for op in ("revoke", "complete"):
            refused(j.request({"op": op, "grant_id": g["grant_id"]}), "busy",
                    "%s while the grant cannot be read" % op)
        eq(j.show(g["grant_id"])["state"], "active", "the grant after the refused ends")
        j.stop()
        j.start()
        assert e.is_member("admins", e.user_dn("alice")), "alice's membership"
        eq(j.ok({"op": "revoke", "grant_id": g["grant_id"]})["grant"]["state"], "revoked",
           "the revoke again")
        assert not e.is_member("admins", e.user_dn("alice")), "alice still a member"


def test_an_expiry_is_not_queued_behind_a_burst_of_grants():
    """One worker, each grant slowed to 0.5 s (fault pause), and 50 grants
    queued before an expiry falls due: the removal must run next, not after
    the 25 s of grants ahead of it (regression: ends joined the tail
    of the one queue, so a burst of requests delayed every removal of the
    directory by the whole queue's drain)."""
    need_faults()
    with Env(top={"max_clients_per_uid": 100}, directory={"connections": 1}) as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "10s")
        alice = e.user_dn("alice")
        j.stop()
        j.start(env={"JITD_FAULT": "grant.before_pending:sleep=500"})
        due = expires_epoch(g)
        answers = []

        def ask():
            answers.append(j.request({"op": "grant", "user": "bob", "group": "dba",
                                      "duration": "1h"}, timeout=90))
        threads = [threading.Thread(target=ask) for _ in range(50)]
        for t in threads:
            t.start()
        assert time.time() < due - 1, "the burst began too late to be ahead of the expiry"
        wait_until(lambda: not e.is_member("admins", alice), max(due - time.time(), 0) + 10,
                   "alice removed within 10 s of her expiry, ahead of the queued grants")
        left = 50 - len(answers)
        assert left >= 10, "only %d grants still queued when the removal ran" % left
        for t in threads:
            t.join(90)
        eq(sum(1 for a in answers if a.get("ok")), 50, "the grants after the removal")


def test_forced_revoke_waiting_across_a_reload_is_made_as_an_ordinary_one():
    """A revoke with force waits in the directory's queue while a reload
    changes the clients (it may have taken "force" from the client): it is
    then made as an ordinary revoke, which removes or stays ending, never
    closing the grant without the directory on the old configuration's
    word (regression: the queued job closed it, the membership left
    behind)."""
    need_faults()
    from test_outage import _set_service_writes
    with Env(directory={"connections": 1}) as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h")
        _set_service_writes(e.slapd, False)          # removals refused from now on
        eq(j.ok({"op": "complete", "grant_id": g["grant_id"]})["grant"]["state"], "ending",
           "a refused removal")
        j.stop()
        j.start(env={"JITD_FAULT": "grant.before_pending:sleep=3000@1"})
        busy = threading.Thread(target=lambda: j.request(
            {"op": "grant", "user": "bob", "group": "dba", "duration": "1h"}, timeout=60))
        busy.start()
        wait_stderr(j, "fault pause 3000 ms at grant.before_pending", 10)
        answer = {}
        forced = threading.Thread(target=lambda: answer.update(a=j.request(
            {"op": "revoke", "grant_id": g["grant_id"], "force": True}, timeout=60)))
        forced.start()
        time.sleep(0.5)                                # the forced revoke is queued
        j.config["clients"].append({"name": "another", "uid": 12345, "groups": ["*"]})
        j.reload()
        forced.join(60)
        busy.join(60)
        eq(answer["a"]["grant"]["state"], "ending", "the forced revoke after the reload")
        assert "made as an ordinary revoke" in j.stderr_tail(300), j.stderr_tail(300)
        assert e.is_member("admins", e.user_dn("alice")), "alice's membership"
        eq(j.audit_events("revoked", grant_id=g["grant_id"]), [], "revoked lines")


def test_a_slow_directory_s_backlog_does_not_hold_up_another_directory_s_expiries():
    """Two directories; corp answers slowly (every answer held 2 s by a
    proxy) and has five expiries due, branch one. The cap on grants in flight
    is lowered to 2: each directory gets its share, and branch's expiry is
    read and made at once (regression: corp's oldest rows filled every read
    up to the cap, and branch's expiry waited for corp's backlog to drain)."""
    need_faults()
    from test_lost_answer import SlowProxy

    with Env(start=False, mech="SCRAM-SHA-256", directory={"connections": 1}) as e:
        j, s = e.jitd, e.slapd
        corp = j.config["directories"][0]
        j.config["directories"].append(dict(corp, name="branch"))
        for g in j.config["groups"]:
            g["directory"] = "branch" if g["name"] == "dba" else "corp"
        j.write_config()
        j.start()
        slow = [j.must_grant(u, "ops", "12s") for u in ("alice", "bob", "carol", "dave", "erin")]
        j.stop()
        proxy = SlowProxy(s.port)
        corp["uri"] = "ldap://127.0.0.1:%d" % proxy.port
        j.write_config()
        j.start(env={"JITD_FAULT_INFLIGHT_MAX": "2"})
        g = j.must_grant("frank", "dba", max(int(expires_epoch(slow[-1])) - int(time.time()) + 1, 2))
        e.wait_removed("dba", e.user_dn("frank"), expires_epoch(g) + 4,
                       "branch's expiry within 4 s, whatever corp's backlog")
        assert any(s.is_member("ops", e.user_dn(u)) for u in ("alice", "bob", "carol", "dave",
                                                                "erin")), \
            "corp's backlog was gone already: the test proved nothing"


def test_a_slow_batch_s_audit_failure_waits_its_backoff_from_the_failure():
    """An expiry batch's removal is slow (every answer held 2 s by a proxy:
    the user's search and the modify, about 4 s) and its `expired` line
    cannot be written: the grant stays `ending` and is tried again
    retry_min_interval (3 s) after the failure (regression: the backoff
    counted from the batch's start, so a batch longer than it was retried at
    once)."""
    need_faults()
    from test_lost_answer import SlowProxy
    from jittest import parse_time

    with Env(start=False, mech="SCRAM-SHA-256",
             directory={"connections": 1, "timeout": "8s"},
             top={"retry_min_interval": 3, "retry_max_interval": 3}) as e:
        j, s = e.jitd, e.slapd
        proxy = SlowProxy(s.port)
        j.config["directories"][0]["uri"] = "ldap://127.0.0.1:%d" % proxy.port
        j.write_config()
        j.start(env={"JITD_FAULT": "fail.batch_audit:@1"})
        g = j.must_grant("alice", "ops", "2s")
        wait_stderr(j, "fault fail at fail.batch_audit", expires_epoch(g) + 15 - time.time())
        failed = time.time()
        sh = j.show(g["grant_id"])
        eq(sh["state"], "ending", "the grant after its line failed")
        nxt = parse_time(sh["next_attempt_at"])
        assert nxt >= failed + 1, \
            "next attempt at %.0f, the batch's line failed at %.1f: the backoff counted " \
            "from the batch's start" % (nxt, failed)
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 20,
                   "grant closed by its retry")
        eq([x["event"] for x in final_events(j, g["grant_id"])], ["expired"], "final lines")
        assert not e.is_member("ops", e.user_dn("alice"))


def test_expiring_soon_line_that_cannot_be_written_is_written_at_a_later_tick():
    """The `expiring_soon` line of a grant cannot be written: the grant was
    marked warned first (so it is never warned twice), and the mark is now
    taken back, so a later tick writes the line (regression: the warning
    was lost for good)."""
    need_faults()
    with Env(start=False, top={"expiring_soon_before": "8s"}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "fail.warn_audit:@1"})
        g = j.must_grant("alice", "dba", "10s")
        wait_stderr(j, "fault fail at fail.warn_audit", SLACK)
        wait_until(lambda: j.audit_events("expiring_soon", g["grant_id"]), 5,
                   "the expiring_soon line written at a later tick")
        eq(len(j.audit_events("expiring_soon", g["grant_id"])), 1, "expiring_soon lines")
        assert "tried again at a later tick" in j.stderr_tail(200)
        eq(j.show(g["grant_id"])["state"], "active", "the grant is still active")


def _two_grants_and_a_paused_worker(e, pause_ms, env=None):
    """jitd with one worker: erin's and bob's grants of dba, then a third
    grant (alice's) whose worker pauses pause_ms after its pending row.
    Returns (g1, g2, the thread waiting for the third's answer)."""
    j = e.jitd
    j.start(env=dict({"JITD_FAULT": "grant.after_pending:sleep=%d@3" % pause_ms}, **(env or {})))
    g1 = j.must_grant("erin", "dba", "1h")
    g2 = j.must_grant("bob", "dba", "1h")
    th = threading.Thread(target=lambda: j.request(
        {"op": "grant", "user": "alice", "group": "dba", "duration": "1h"}, timeout=60),
        daemon=True)
    th.start()
    wait_stderr(j, "fault pause %d ms at grant.after_pending" % pause_ms, 10)
    return g1, g2, th


def test_client_ends_have_a_cap_of_their_own():
    """Clients' completes are not refused for a queue full of grants, but
    they have a cap of their own (queue_max of them waiting): an honest
    listener never reaches it (one request in flight per connection, far
    fewer connections), one that does not keep to that no longer grows the
    engine's queue without bound (regression: ends were never refused).
    The cap is lowered to 1 and the only worker paused."""
    need_faults()
    with Env(start=False, directory={"connections": 1}) as e:
        j = e.jitd
        g1, g2, th = _two_grants_and_a_paused_worker(e, 8000, {"JITD_FAULT_QUEUE_MAX": "1"})
        first = j.connect(timeout=60)
        first.send({"op": "complete", "grant_id": g1["grant_id"]})
        j.ok({"op": "status"})  # the first complete reached the engine (in order)
        a = j.request({"op": "complete", "grant_id": g2["grant_id"]})
        refused(a, "busy", "a second complete past the ends' cap of 1")
        th.join(30)
        b = first.recv()
        assert b.get("ok"), b
        eq(b["grant"]["state"], "completed", "the first complete")
        first.close()
        eq(j.show(g2["grant_id"])["state"], "active", "the refused one changed nothing")
        j.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert not e.is_member("dba", e.user_dn("bob"))


def test_a_client_end_asked_again_while_one_waits_is_busy():
    """A complete waits behind a busy worker; its client hangs up and asks
    again: the second is answered busy, not queued twice (clients that ask,
    hang up and ask again while the directory is slow could otherwise fill
    the queue's cap for ends, and other clients' ends would be refused). A
    complete of another grant is queued, and once the worker goes on both
    are made; the retry then finds the grant completed."""
    need_faults()
    with Env(start=False, directory={"connections": 1}) as e:
        j = e.jitd
        g1, g2, th = _two_grants_and_a_paused_worker(e, 6000)
        first = j.connect(timeout=60)
        first.send({"op": "complete", "grant_id": g1["grant_id"]})
        j.ok({"op": "status"})  # the first complete reached the engine (in order)
        first.close()  # hangs up: its complete still waits
        again = j.request({"op": "complete", "grant_id": g1["grant_id"]})
        refused(again, "busy", "the same grant's complete asked again while one waits")
        other = j.connect(timeout=60)
        other.send({"op": "complete", "grant_id": g2["grant_id"]})
        th.join(30)
        b = other.recv()
        assert b.get("ok"), b
        eq(b["grant"]["state"], "completed", "the other grant's complete")
        other.close()
        wait_until(lambda: j.show(g1["grant_id"])["state"] == "completed", 10,
                   "the first complete made although its client left")
        a = j.ok({"op": "complete", "grant_id": g1["grant_id"]})
        eq(a["grant"]["state"], "completed", "the retry finds it completed")
        assert not e.is_member("dba", e.user_dn("erin"))


def test_a_removal_that_failed_at_once_as_the_directory_came_back_is_made_at_once():
    """A complete while slapd is down: its removal fails, is retried with
    backoff, and its third attempt fails at once (the directory known
    down). The worker pauses before recording that retry; meanwhile slapd
    is back and the other worker's probe reaches it, and the main thread
    makes the pending removals due, before this row's retry is written.
    The retry is then made at once, not after its backoff of 8 s
    (regression: it waited the whole backoff, up to retry_max_interval,
    with the directory back)."""
    need_faults()
    with Env(start=False, directory={"connections": 2},
             top={"retry_min_interval": 2, "retry_max_interval": "120s"}) as e:
        j = e.jitd
        j.start(env={"JITD_FAULT": "grant.before_retry:sleep=4000@3"})
        g = j.must_grant("alice", "admins", "1h")
        e.slapd.stop()
        a = j.request({"op": "complete", "grant_id": g["grant_id"]})
        assert not a.get("ok") or a["grant"]["state"] == "ending", a
        wait_stderr(j, "fault pause 4000 ms at grant.before_retry", 20)
        paused_at = time.time()
        e.slapd.start()
        wait_until(lambda: "reachable again" in j.stderr_tail(300), 3.5,
                   "the other worker's probe reaching the directory during the pause")
        e.wait_removed("admins", e.user_dn("alice"), paused_at + 7.5,
                       "the removal once the paused worker records its retry")
        wait_until(lambda: j.show(g["grant_id"])["state"] == "completed", 5, "completed")


def test_an_end_asked_for_again_is_recorded_as_the_first_request_made_it():
    """root completes alice's grant ("first ask"); the removal fails (the
    group was deleted) and waits its backoff. The group is back, and
    another client revokes the grant ("second ask"): the removal is made
    at once, and the final line is still the first request's end
    (completed, by root, its reason and peer), naming the second client as
    retried_by (regression: it named the second client and reason as the
    end's author)."""
    need_root()
    nobody = 65534
    clients = [{"name": "helpdesk", "uid": nobody, "groups": ["*"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients,
             top={"retry_min_interval": 30, "retry_max_interval": "60s"}) as e:
        s, j = e.slapd, e.jitd
        g = j.must_grant("alice", "dba", "1h")
        gid = g["grant_id"]
        s._run(["ldapdelete"] + s._root_args() + [s.group_dn("dba")])
        j.request({"op": "complete", "grant_id": gid, "reason": "first ask"})
        wait_until(lambda: j.audit_events("revoke_failed", gid), 10, "the failed removal")
        s.add_group("dba", members=("placeholder", "@alice"))
        a = j.request_as(nobody, nobody, {"op": "revoke", "grant_id": gid,
                                          "reason": "second ask"})
        assert a.get("ok"), a
        eq(a["grant"]["state"], "completed", "the end asked for again")
        assert not s.is_member("dba", s.user_dn("alice"))
        ev = one_event(j, "completed", gid)
        eq((ev.get("by_client"), ev.get("end_reason"), ev.get("by_peer_uid")),
           ("root", "first ask", 0), "who made the end")
        eq((ev.get("retried_by_client"), ev.get("retried_by_peer_uid")), ("helpdesk", nobody),
           "who asked again")
        assert not j.audit_events("revoked", gid), "a revoked line for a completed grant"
