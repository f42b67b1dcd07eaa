"""The audit log: the right events with the right fields, a continuous
sequence across restarts, and an intact hash chain."""

import os
import re
import stat

from jittest import Env, eq, expires_epoch, wait_until

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_chain(lines, first_seq=1):
    """seq 1, 2, ... without gaps; each prev is the previous line's hash;
    ts/seq/event first, prev/hash last."""
    assert lines, "empty audit log"
    for i, ev in enumerate(lines):
        eq(ev.get("seq"), first_seq + i, "seq of audit line %d" % (i + 1))
        keys = list(ev.keys())
        eq(keys[:3], ["ts", "seq", "event"], "first keys of line %d" % (i + 1))
        eq(keys[-2:], ["prev", "hash"], "last keys of line %d" % (i + 1))
        assert RFC3339.match(ev["ts"]), ev["ts"]
        assert HEX64.match(ev["hash"]), ev
        if i > 0:
            eq(ev["prev"], lines[i - 1]["hash"], "prev of audit line %d" % (i + 1))
    eq(len({ev["hash"] for ev in lines}), len(lines), "distinct hashes")


def test_audit_granted_and_expired():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "2s", ticket="INC-7", reason="db migration",
                              requested_by="alice@example.com",
                              approved_by="boss@example.com", request_id="R-77")
        gid = g["grant_id"]
        e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g) + 5, "expiry")
        wait_until(lambda: e.jitd.audit_events("expired", gid), 5, "expired audit line")
        log = e.jitd.audit()
        check_chain(log)

        granted = e.jitd.audit_events("granted", gid)
        eq(len(granted), 1, "granted lines for the grant")
        gr = granted[0]
        want = {"grant_id": gid, "user": "alice", "group": "admins", "directory": "corp",
                "duration": 2, "expires_at": g["expires_at"], "ticket": "INC-7",
                "reason": "db migration", "requested_by": "alice@example.com",
                "approved_by": "boss@example.com", "request_id": "R-77",
                "client": "root", "peer_uid": 0}
        for k, v in want.items():
            eq(gr.get(k), v, "granted.%s" % k)
        eq(gr.get("user_dn", "").lower(), e.user_dn("alice").lower(), "granted.user_dn")
        eq(gr.get("group_dn", "").lower(), e.slapd.group_dn("admins").lower(),
           "granted.group_dn")
        assert isinstance(gr.get("peer_pid"), int) and gr["peer_pid"] > 0, gr

        expired = e.jitd.audit_events("expired", gid)
        eq(len(expired), 1, "expired lines for the grant")
        ex = expired[0]
        for k in ("grant_id", "user", "group", "directory"):
            eq(ex.get(k), want[k], "expired.%s" % k)
        eq(ex.get("user_dn", "").lower(), e.user_dn("alice").lower(), "expired.user_dn")
        assert ex["seq"] > gr["seq"], (gr, ex)
        # No event claims a failure.
        bad = [x for x in log if x["event"] in ("failed", "revoke_failed")]
        eq(bad, [], "failure events")


def test_audit_sequence_continues_across_restart():
    with Env() as e:
        g1 = e.jitd.must_grant("alice", "admins", "1h")
        e.jitd.ok({"op": "complete", "grant_id": g1["grant_id"], "reason": "finished"})
        e.jitd.restart()
        g2 = e.jitd.must_grant("bob", "admins", "1h")
        e.jitd.ok({"op": "revoke", "grant_id": g2["grant_id"], "reason": "abuse"})
        e.jitd.kill()  # a crash leaves the chain intact too
        e.jitd.start()
        e.jitd.must_grant("carol", "dba", "1h")
        log = e.jitd.audit()
        check_chain(log)
        events = [x["event"] for x in log]
        for ev in ("started", "stopped", "granted", "completed", "revoked"):
            assert ev in events, "no %r event in %r" % (ev, events)
        c = e.jitd.audit_events("completed", g1["grant_id"])
        eq(len(c), 1, "completed lines")
        # The grant's own reason stays "reason"; the reason given to
        # complete/revoke is recorded as "end_reason".
        eq(c[0].get("end_reason"), "finished", "completed.end_reason")
        r = e.jitd.audit_events("revoked", g2["grant_id"])
        eq(len(r), 1, "revoked lines")
        eq(r[0].get("end_reason"), "abuse", "revoked.end_reason")
        eq(events.count("started"), 3, "started events (3 starts)")


def test_audit_refused():
    with Env() as e:
        e.jitd.grant("alice", "nosuchgroup", "1h")
        e.jitd.grant("nobody", "admins", "1h")
        e.jitd.grant("alice", "admins", "9h")
        log = e.jitd.audit()
        check_chain(log)
        codes = [x.get("error") for x in log if x["event"] == "refused"]
        for code in ("unknown_group", "unknown_user", "duration_exceeds_max"):
            assert code in codes, "no refused event with error %r: %r" % (code, codes)
        eq([x for x in log if x["event"] == "granted"], [], "granted events")


def test_audit_file_mode():
    with Env() as e:
        e.jitd.must_grant("alice", "admins", "1h")
        mode = stat.S_IMODE(os.stat(e.jitd.audit_log).st_mode)
        assert mode & 0o077 == 0, "audit log mode %o is readable by others" % mode
