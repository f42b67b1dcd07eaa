"""Reports from audit logs (`jitctl report`): a day of activity driven
through jitd and its JSON report checked number by number; a generated day
spread over a rotated .gz, a rotated plain file and the current file, with
grants across the period's edges (every number exact, medians included);
lines left by crashes at fault points (a `failed` line after `granted`, a
final line written twice) counted once; text and CSV; control characters
never printed raw; a broken chain still reported, with exit status 1; memory
that does not grow with the input; the HTML form rendered by headless
Chromium; the nightly job in contrib/."""

import calendar
import gzip
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from auditgen import AuditWriter
from crash import fault_build
from jitd import binary
from jittest import Env, eq, need_root, refused, skip, slow, timeout, wait_until

NOBODY = 65534
SLACK = 5
D = calendar.timegm((2026, 11, 23, 0, 0, 0))  # the generated day, UTC


def report(*args, **kw):
    return subprocess.run([binary("jitctl"), "report"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=kw.get("timeout", 120))


def report_json(*args):
    r = report("--format", "json", *args)
    assert r.returncode == 0, "jitctl report: exit %d\n%s" % (r.returncode, r.stderr)
    return json.loads(r.stdout)


def check_counts(got, want, what):
    for k, v in want.items():
        eq(got.get(k), v, "%s.%s" % (what, k))


def test_report_day_through_daemon():
    """Grants, an extension, early completion, revocation, expiries and
    refusals by two clients; then the report's numbers, exactly."""
    need_root()
    clients = [{"name": "helpdesk", "uid": NOBODY, "groups": ["*"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        j = e.jitd

        def hd(req):  # as the helpdesk client
            a = j.request_as(NOBODY, NOBODY, req)
            assert a.get("ok"), (req, a)
            return a

        g1 = j.must_grant("alice", "admins", "2s", approved_by="carol", ticket="T-1")
        g2 = hd({"op": "grant", "user": "bob", "group": "dba", "duration": "1h",
                 "approved_by": "dave", "ticket": "T-2"})["grant"]
        g3 = j.must_grant("carol", "ops", "1h", approved_by="carol")
        g4 = hd({"op": "grant", "user": "dave", "group": "web", "duration": "3s",
                 "approved_by": "erin"})["grant"]
        hd({"op": "extend", "grant_id": g4["grant_id"], "duration": "1s"})
        g5 = j.must_grant("erin", "admins", "1h", approved_by="carol")
        refused(j.grant("nobody", "admins", "1h"), "unknown_user")
        refused(j.grant("alice", "nosuchgroup", "1h"), "unknown_group")
        refused(j.request_as(NOBODY, NOBODY, {"op": "grant", "user": "alice",
                                              "group": "admins", "duration": "9h"}),
                "duration_exceeds_max")
        hd({"op": "complete", "grant_id": g2["grant_id"], "reason": "done"})
        j.ok({"op": "revoke", "grant_id": g3["grant_id"], "reason": "not needed"})
        for g in (g1, g4):
            wait_until(lambda: j.audit_events("expired", g["grant_id"]), 8 + SLACK,
                       "expiry of %s" % g["grant_id"])
        j.stop()
        n_lines = len(j.audit())

        res = report_json(j.audit_log)
        eq(res["chain_verified"], True, "chain_verified")
        check_counts(res["chain"], {"verified": True, "lines": n_lines, "bad_lines": 0,
                                    "first_seq": 1, "last_seq": n_lines}, "chain")
        check_counts(res["totals"], {"granted": 5, "refused": 3, "expired": 2, "completed": 1,
                                     "revoked": 1, "revoke_failures": 0, "revoked_forced": 0,
                                     "active_at_end": 1,
                                     "failed": 0, "extended": 1, "drift": 0}, "totals")
        dims = {
            "by_group": {"admins": {"granted": 2, "expired": 1, "refused": 2},
                         "dba": {"granted": 1, "completed": 1, "refused": 0},
                         "ops": {"granted": 1, "revoked": 1},
                         "web": {"granted": 1, "expired": 1},
                         "nosuchgroup": {"granted": 0, "refused": 1}},
            "by_user": {"alice": {"granted": 1, "expired": 1, "refused": 2},
                        "bob": {"granted": 1, "completed": 1},
                        "carol": {"granted": 1, "revoked": 1},
                        "dave": {"granted": 1, "expired": 1},
                        "erin": {"granted": 1, "expired": 0},
                        "nobody": {"refused": 1}},
            "by_approver": {"carol": {"granted": 3, "expired": 1, "revoked": 1},
                            "dave": {"granted": 1, "completed": 1},
                            "erin": {"granted": 1, "expired": 1},
                            "(none)": {"granted": 0, "refused": 3}},
            "by_client": {"root": {"granted": 3, "expired": 1, "revoked": 1, "refused": 2},
                          "helpdesk": {"granted": 2, "expired": 1, "completed": 1,
                                       "refused": 1}},
        }
        for dim, rows in dims.items():
            eq(sorted(res[dim]), sorted(rows), "%s names" % dim)
            for name, want in rows.items():
                check_counts(res[dim][name], want, "%s[%s]" % (dim, name))
        assert res["by_group"]["admins"]["held_seconds"] >= 2, res["by_group"]
        eq(res["refusals_by_reason"], {"duration_exceeds_max": 1, "unknown_group": 1,
                                       "unknown_user": 1}, "refusals_by_reason")
        # requested: 2 s, 1 h, 1 h, 3 s (the extension is counted apart)
        check_counts(res["durations"]["requested"], {"count": 4, "total_seconds": 7205,
                                                     "median_seconds": 1801.5,
                                                     "max_seconds": 3600}, "requested")
        eq(res["durations"]["extended_seconds"], 1, "extended_seconds")
        act = res["durations"]["actual"]
        eq(act["count"], 4, "actual.count")
        assert 2 <= act["max_seconds"] <= 60, act
        eq(res["early_completions"]["count"], 1, "early_completions.count")
        assert 3600 - 60 <= res["early_completions"]["total_seconds"] <= 3600, res
        lag = res["revocation_lag"]
        eq(lag["count"], 2, "revocation_lag.count")
        assert 0 <= lag["median_seconds"] <= lag["max_seconds"] <= SLACK, lag
        eq([a["grant_id"] for a in res["active_at_end"]], [g5["grant_id"]], "active_at_end")
        check_counts(res["active_at_end"][0], {"user": "erin", "group": "admins",
                                               "approved_by": "carol", "client": "root"},
                     "active_at_end[0]")
        check_counts(res["events"], {"started": 1, "stopped": 1, "granted": 5, "refused": 3,
                                     "extended": 1}, "events")
        eq(len(res["timeline"]), 5, "timeline bars")
        # The text form, as an auditor reads it (shown with tests/run -v).
        t = report(j.audit_log)
        eq(t.returncode, 0, t.stderr)
        print(t.stdout)
        assert "hash chain  verified: seq 1 .. %d" % n_lines in t.stdout, t.stdout
        assert "%s  erin -> admins" % g5["grant_id"] in t.stdout, t.stdout


def test_report_tells_a_standing_membership_from_an_ended_one():
    """alice was in dba before her grant: the grant expires, the
    membership stays (outcome kept_standing). The report must not read as
    if her access ended: it counts the end apart (ended_membership_kept)
    and marks the bar (regression: it showed an expiry and nothing else)."""
    with Env() as e:
        j = e.jitd
        e.slapd.add_member("dba", e.user_dn("alice"))
        g = j.must_grant("alice", "dba", "2s")
        b = j.must_grant("bob", "dba", "2s")
        for x in (g, b):
            wait_until(lambda: j.audit_events("expired", x["grant_id"]), 8 + SLACK,
                       "expiry of %s" % x["grant_id"])
        eq(j.audit_events("expired", g["grant_id"])[-1]["outcome"], "kept_standing", "outcome")
        assert e.is_member("dba", e.user_dn("alice")), "the standing membership stays"
        j.stop()
        res = report_json(j.audit_log)
        check_counts(res["totals"], {"granted": 2, "expired": 2, "ended_membership_kept": 1},
                     "totals")
        kept = {t["grant_id"]: t.get("membership_kept", False) for t in res["timeline"]}
        eq(kept, {g["grant_id"]: True, b["grant_id"]: False}, "membership_kept in the timeline")
        t = report(j.audit_log)
        eq(t.returncode, 0, t.stderr)
        assert re.search(r"^  ended_membership_kept +1$", t.stdout, re.M), t.stdout


def test_report_counts_crash_interrupted_grants_once():
    """Two crashes of the real daemon at fault points, each leaving lines
    that jitd writes by design: a crash right after a `granted` line
    (start-up recovery then removes the membership and writes `failed`),
    and a crash between a `completed` line and its commit (the end is
    retried and the `completed` line written again, outcome
    already_absent). The report ends the first grant at its `failed` line
    and counts the second once."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    with Env(start=False) as e:
        j = e.jitd
        # the recovered grant closes after its check after the grace
        j.config["directories"][0]["replication_grace"] = 1
        j.write_config()
        j.start(env={"JITD_FAULT": "grant.after_audit_granted:@1"})
        try:
            a = j.grant("alice", "dba", "1h")
        except ConnectionError:
            a = None
        assert a is None, "grant answered despite the crash: %r" % a
        j.kill()
        assert "fault injected at grant.after_audit_granted" in j.stderr_tail(20)
        ga = j.audit_events("granted")[0]["grant_id"]
        j.start()
        wait_until(lambda: j.show(ga)["state"] == "failed", 20, "recovery of %s" % ga)
        gb = j.must_grant("bob", "dba", "1h")["grant_id"]
        j.stop()
        j.start(env={"JITD_FAULT": "grant.after_final_audit:@1"})
        try:
            a = j.request({"op": "complete", "grant_id": gb})
        except ConnectionError:
            a = None
        assert a is None, "complete answered despite the crash: %r" % a
        j.kill()
        assert "fault injected at grant.after_final_audit" in j.stderr_tail(20)
        j.start()
        wait_until(lambda: j.show(gb)["state"] == "completed", 20, "retried end of %s" % gb)
        j.stop()
        eq([ev["event"] for ev in j.audit_events(grant_id=ga)], ["granted", "failed"],
           "lines of the grant interrupted after its granted line")
        eq([ev["outcome"] for ev in j.audit_events("completed", gb)],
           ["removed", "already_absent"], "outcomes of the completed lines written twice")

        res = report_json(j.audit_log)
        check_counts(res["totals"], {"granted": 2, "completed": 1, "failed": 1,
                                     "active_at_end": 0}, "totals")
        eq(res["active_at_end"], [], "active_at_end")
        check_counts(res["events"], {"granted": 2, "completed": 2, "failed": 1}, "events")
        check_counts(res["by_user"]["alice"], {"granted": 1, "failed": 1}, "by_user[alice]")
        check_counts(res["by_user"]["bob"], {"granted": 1, "completed": 1}, "by_user[bob]")
        eq(res["durations"]["actual"]["count"], 2, "durations.actual.count")
        eq(res["early_completions"]["count"], 1, "early_completions.count")
        bars = {b["grant_id"]: b["end_event"] for b in res["timeline"]}
        eq(bars, {ga: "failed", gb: "completed"}, "timeline")
        # alice held the membership from her granted line to the failed line
        # written at the restart, not to the end of the log
        alice = res["by_user"]["alice"]["held_seconds"]
        assert alice <= res["durations"]["actual"]["max_seconds"] <= 60, res["durations"]


def test_report_shows_ticket_and_approvers_of_every_grant():
    """A grant made, extended on another approver's word and completed: the
    report must say, for that grant, its ticket, reason, requester, the
    approver and the extension's approver, in every format (regression:
    once a grant had ended the report showed only who held what and when;
    the ticket and approver were listed only for grants still active, and
    an extension's approver nowhere)."""
    with Env() as e:
        j = e.jitd
        g = j.must_grant("alice", "dba", "1h", ticket="INC-4711", reason="restore the orders",
                         requested_by="alice", approved_by="carol")
        j.ok({"op": "extend", "grant_id": g["grant_id"], "duration": "30m",
              "approved_by": "dave"})
        j.ok({"op": "complete", "grant_id": g["grant_id"], "reason": "restored"})
        j.stop()
        gid = g["grant_id"]
        res = report_json(j.audit_log)
        bars = [b for b in res["timeline"] if b["grant_id"] == gid]
        eq(len(bars), 1, "the grant's bar")
        check_counts(bars[0], {"end_event": "completed", "ticket": "INC-4711",
                               "reason": "restore the orders", "requested_by": "alice",
                               "approved_by": "carol", "extensions": 1,
                               "extension_approved_by": ["dave"]}, "timeline[0]")
        out = {}
        for fmt in ("text", "csv", "html"):
            r = report("--format", fmt, j.audit_log)
            eq(r.returncode, 0, "%s: %s" % (fmt, r.stderr))
            out[fmt] = r.stdout
        row = [ln for ln in out["text"].splitlines() if ln.startswith("  " + gid)]
        eq(len(row), 1, "the grant's row in the text: %s" % out["text"])
        for s in ("completed", "INC-4711", "carol"):
            assert " %s" % s in row[0], (s, row[0])
        assert "requested by alice; extended 1 time(s), approved by dave; reason: restore " \
            "the orders" in out["text"], out["text"]
        rows = out["csv"].splitlines()
        for want in ("timeline,%s,ticket,INC-4711" % gid, "timeline,%s,approved_by,carol" % gid,
                     "timeline,%s.extension_approved_by,1,dave" % gid,
                     "timeline,%s,reason,restore the orders" % gid):
            assert want in rows, (want, [x for x in rows if x.startswith("timeline")])
        page = out["html"]
        grants = page[page.index("<h2>Grants in the period</h2>"):]
        grants = grants[:grants.index("</table>")]
        for s in (gid, "INC-4711", "carol", "dave (1 extension(s))", "restore the orders"):
            assert s in grants, (s, grants)


# -- a generated day -----------------------------------------------------------

def g(gid, user, group, start, duration, approved_by="carol", client="helpdesk", **kw):
    d = dict(id=gid, user=user, group=group, start=start, duration=duration,
             approved_by=approved_by, client=client)
    d.update(kw)
    return d


def write_day(dirpath):
    """The day 2026-11-23 (UTC) and its edges, in three files like
    logrotate leaves them. Returns the paths, oldest first."""
    h = 3600
    paths = [os.path.join(dirpath, n) for n in ("audit.log.2.gz", "audit.log.1", "audit.log")]
    w = AuditWriter(paths[0], compress=True)
    w.event(D - 5 * h, "started", version="0.1.0")
    gB = g("g-b", "bob", "admins", D - 4 * h, h)
    w.grant(gB)
    w.end(gB, D - 3 * h + 1, "expired")
    gA = g("g-a", "alice", "dba", D - 2 * h, 4 * h)
    w.grant(gA)
    w.refused(D - h, "mallory", "dba", "unknown_user")      # before the day
    w.end(gA, D + 2 * h + 4, "expired")                     # lag 4 s
    w.switch(paths[1])
    w.refused(D + 8 * h, "mallory", "dba", "unknown_user")
    w.refused(D + 8 * h + 300, "alice", "nosuch", "unknown_group", client="ops")
    w.refused(D + 8 * h + 600, "bob", "admins", "duration_exceeds_max", approved_by="dave")
    gC = g("g-c", "carol", "ops", D + 9 * h, 2 * h, approved_by="dave", ticket="INC-1")
    w.grant(gC)
    w.end(gC, D + 9 * h + 1800, "completed", end_reason="done")  # 5400 s given back
    gD = g("g-d", "dave", "web", D + 10 * h, h)
    w.grant(gD)
    w.extend(gD, D + 10 * h + 1800, 1800)
    w.event(D + 11 * h + 1200, "expiring_soon", **w.grant_fields(gD, "active"))
    w.switch(paths[2])
    f = w.grant_fields(gD, "ending")
    f.update(outcome="directory_unavailable", ldap_code=-1, message="ldap -1: can't contact")
    w.event(D + 11 * h + 1805, "revoke_failed", **f)
    w.end(gD, D + 11 * h + 1840, "expired")                 # lag 40 s
    gE = g("g-e", "erin", "dba", D + 12 * h, 1800, approved_by="frank", client="ops")
    w.grant(gE)
    w.end(gE, D + 12 * h + 600, "revoked", end_reason="left the team")
    w.event(D + 14 * h, "drift", kind="unexplained", directory="corp", group="admins",
            member="uid=mallory,ou=people", mode="report", action="reported")
    w.event(D + 15 * h, "drift", kind="missing", group="dba", member="uid=eve,ou=people",
            mode="report", action="reported")
    gG = g("g-g", "grace", "ops", D + 16 * h, h)
    gG["expires"] = gG["start"] + h
    f = w.grant_fields(gG, "failed")
    f.update(outcome="directory_refused", ldap_code=50, message="ldap 50")
    w.event(D + 16 * h, "failed", **f)
    gF = g("g-f", "frank", "admins", D + 23 * h, 2 * h, ticket="INC-9")
    w.grant(gF)
    w.end(gF, D + 25 * h + 2, "expired")                    # after the day
    w.close()
    return paths


DAY_TOTALS = {"granted": 4, "refused": 3, "expired": 2, "completed": 1, "revoked": 1,
              "revoke_failures": 1, "revoked_forced": 0, "active_at_end": 1, "failed": 1,
              "extended": 1, "expiring_soon": 1, "drift": 2}


def check_day(res):
    check_counts(res["totals"], DAY_TOTALS, "totals")
    eq(res["chain_verified"], True, "chain_verified")
    check_counts(res["chain"], {"lines": 23, "bad_lines": 0, "first_seq": 1, "last_seq": 23},
                 "chain")
    eq(res["period"]["since"], "2026-11-23T00:00:00Z", "period.since")
    eq(res["period"]["until"], "2026-11-24T00:00:00Z", "period.until")
    check_counts(res["input"], {"lines": 23, "unreadable_lines": 0, "events_in_period": 17},
                 "input")
    want_groups = {
        "dba": {"granted": 1, "expired": 1, "completed": 0, "revoked": 1, "failed": 0,
                "refused": 1, "held_seconds": 7204 + 600},
        "admins": {"granted": 1, "expired": 0, "refused": 1, "held_seconds": 3600},
        "ops": {"granted": 1, "completed": 1, "failed": 1, "held_seconds": 1800},
        "web": {"granted": 1, "expired": 1, "held_seconds": 5440},
        "nosuch": {"granted": 0, "refused": 1, "held_seconds": 0},
    }
    eq(sorted(res["by_group"]), sorted(want_groups), "by_group names")
    for name, want in want_groups.items():
        check_counts(res["by_group"][name], want, "by_group[%s]" % name)
    check_counts(res["by_approver"]["carol"], {"granted": 2, "expired": 2, "refused": 0,
                                               "held_seconds": 7204 + 5440 + 3600},
                 "by_approver[carol]")
    check_counts(res["by_client"]["ops"], {"granted": 1, "revoked": 1, "refused": 1},
                 "by_client[ops]")
    check_counts(res["durations"]["requested"], {"count": 4, "total_seconds": 27000,
                                                 "median_seconds": 5400, "max_seconds": 14400},
                 "requested")
    check_counts(res["durations"]["actual"], {"count": 4, "total_seconds": 22244,
                                              "median_seconds": 3620, "max_seconds": 14404},
                 "actual")
    eq(res["durations"]["extended_seconds"], 1800, "extended_seconds")
    check_counts(res["early_completions"], {"count": 1, "total_seconds": 5400,
                                            "median_seconds": 5400}, "early_completions")
    check_counts(res["revocation_lag"], {"count": 2, "total_seconds": 44, "median_seconds": 22,
                                         "max_seconds": 40}, "revocation_lag")
    eq(res["refusals_by_reason"], {"duration_exceeds_max": 1, "unknown_group": 1,
                                   "unknown_user": 1}, "refusals_by_reason")
    eq(res["drift"], {"events": 2, "by_group": {"admins": 1, "dba": 1},
                      "by_kind": {"missing": 1, "unexplained": 1}}, "drift")
    eq([(a["grant_id"], a["granted_at"], a["ticket"]) for a in res["active_at_end"]],
       [("g-f", "2026-11-23T23:00:00Z", "INC-9")], "active_at_end")


def test_report_generated_day_exact():
    paths = write_day(os.getcwd())
    check_day(report_json("--since", "2026-11-23", "--until", "2026-11-24T00:00:00Z", *paths))
    # The same period in another time zone's notation.
    check_day(report_json("--since", "2026-11-23T01:00:00+01:00", "--until",
                          "2026-11-23T19:00-05:00", *paths))
    # CSV: one row per number, RFC 4180 line ends.
    r = subprocess.run([binary("jitctl"), "report", "--format", "csv", "--since", "2026-11-23",
                        "--until", "2026-11-24"] + paths, capture_output=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    rows = r.stdout.decode().split("\r\n")
    eq(rows[0], "section,name,metric,value", "CSV header")
    for row in ("totals,,granted,4", "totals,,active_at_end,1", "by_group,dba,held_seconds,7804",
                "revocation_lag,,median_seconds,22", "refusals_by_reason,,unknown_group,1",
                "chain,,verified,true", "active_at_end,g-f,ticket,INC-9"):
        assert row in rows, (row, rows[:60])
    # Text, written to a file with -o.
    out = os.path.join(os.getcwd(), "day.txt")
    r = report("--since", "2026-11-23", "--until", "2026-11-24", "-o", out, *paths)
    eq(r.returncode, 0, r.stderr)
    with open(out) as f:
        text = f.read()
    for s in ("period      2026-11-23T00:00:00Z .. 2026-11-24T00:00:00Z",
              "hash chain  verified: seq 1 .. 23",
              "g-f  frank -> admins  since 2026-11-23T23:00:00Z"):
        assert s in text, (s, text)
    assert re.search(r"^  revoke_failures +1$", text, re.M), text
    eq(oct(os.stat(out).st_mode & 0o777), oct(0o640), "mode of the report file")
    # -o replaces a symbolic link instead of writing through it, and a
    # write that fails (an unwritable directory) leaves the old file.
    victim = os.path.join(os.getcwd(), "victim.txt")
    with open(victim, "w") as f:
        f.write("keep me\n")
    link = os.path.join(os.getcwd(), "link.txt")
    os.symlink(victim, link)
    r = report("--since", "2026-11-23", "--until", "2026-11-24", "-o", link, *paths)
    eq(r.returncode, 0, r.stderr)
    assert not os.path.islink(link), "the link is still there"
    with open(victim) as f:
        eq(f.read(), "keep me\n", "the link's target")
    # a device is written to, never replaced
    r = report("--since", "2026-11-23", "--until", "2026-11-24", "-o", "/dev/null", *paths)
    eq(r.returncode, 0, r.stderr)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null was replaced"
    r = report("-o", os.path.join(os.getcwd(), "no-such-dir", "x.txt"), *paths)
    eq(r.returncode, 3, "an output that cannot be written: %s" % r.stderr)
    eq([n for n in os.listdir(os.getcwd()) if ".txt." in n], [], "temporary files left")
    # Without a period: everything, and grants still open at the last line.
    res = report_json(*paths)
    eq(res["totals"]["granted"], 6, "granted over all lines")
    eq(res["totals"]["active_at_end"], 0, "active at the last line")
    # Bad arguments.
    for args in (["--format", "pdf", paths[2]], ["--since", "yesterday", paths[2]],
                 ["--since", "2026-11-24", "--until", "2026-11-23", paths[2]], []):
        eq(report(*args).returncode, 2, "exit status for %r" % (args,))
    eq(report(os.path.join(os.getcwd(), "missing.log")).returncode, 3, "missing file")
    # a directory or a FIFO is no log: unreadable (3), not a broken chain
    # (1), and a FIFO with no writer does not hang the report
    fifo = os.path.join(os.getcwd(), "fifo.log")
    os.mkfifo(fifo)
    for p in (os.getcwd(), fifo):
        r = report(p)
        eq(r.returncode, 3, "exit status for %s: %s" % (p, r.stderr))
        r = subprocess.run([binary("jitctl"), "audit", "verify", p], capture_output=True,
                           timeout=30)
        eq(r.returncode, 3, "audit verify of %s: %s" % (p, r.stderr))


def test_report_broken_chain_is_reported():
    paths = write_day(os.getcwd())
    with open(paths[1], "rb") as f:
        lines = f.read().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"user":"bob"', b'"user":"bot"')
    with open(paths[1], "wb") as f:
        f.writelines(lines)
    r = report("--format", "json", "--since", "2026-11-23", "--until", "2026-11-24", *paths)
    eq(r.returncode, 1, "exit status with a broken chain (%s)" % r.stderr)
    res = json.loads(r.stdout)
    eq(res["chain_verified"], False, "chain_verified")
    eq(res["chain"]["bad_lines"], 1, "bad_lines")
    assert res["chain"]["first_error"].startswith(paths[1] + ":3: "), res["chain"]
    assert "did NOT verify" in r.stderr, r.stderr
    eq(res["totals"]["refused"], 3, "the report is still made")


def test_report_shows_the_held_time_of_a_forced_close_of_a_grant_never_active():
    """An add unanswered (a failed line, state ending: the add may have
    been applied, no granted line), removals that keep failing, and days
    later revoke --force (previous_end_state failed). Read from seq 1: a
    failed grant, not a revocation, and the coverage complete; but jitd
    never saw the member absent, so the report must show the grant as held
    from created_at to the forced line, start not known, with a forced bar
    and a row in the per-grant table (regression: nothing held, no bar, no
    row: the days the user may have held the group were not in the report)."""
    h = 3600
    path = os.path.join(os.getcwd(), "audit.log")
    w = AuditWriter(path)
    w.event(D, "started", version="0.1.0")
    gN = g("g-n", "nina", "dba", D + h, h, ticket="INC-77")
    gN["expires"] = gN["start"] + h
    f = w.grant_fields(gN, "ending")
    f.update(outcome="directory_unavailable", ldap_code=-1, message="ldap -1: timed out")
    w.event(D + h + 30, "failed", **f)
    for n, ts in ((1, D + h + 31), (2, D + h + 33), (3, D + h + 37)):
        f = w.grant_fields(gN, "ending")
        f.update(outcome="directory_refused", ldap_code=50, message="ldap 50", attempts=n)
        w.event(ts, "revoke_failed", **f)
    forced_at = D + 3 * 86400 + 600
    f = w.grant_fields(gN, "revoked")
    f.update(outcome="forced", previous_end_state="failed", attempts=4000,
             last_error="ldap 50", by_client="root", by_peer_uid=0, by_peer_pid=4250,
             end_reason="removed by hand")
    w.event(forced_at, "revoked", **f)
    w.close()

    res = report_json("--since", "2026-11-23", "--until", "2026-11-30", path)
    check_counts(res["totals"], {"failed": 1, "revoked": 0, "revoked_forced": 1,
                                 "revoke_failures": 3, "active_at_end": 0,
                                 "started_before_input": 0}, "totals")
    eq(res["input"]["complete"], True, "input.complete")
    eq(res["by_user"]["nina"]["held_seconds"], forced_at - gN["start"], "held_seconds")
    eq(res["by_group"]["dba"]["failed"], 1, "by_group[dba].failed")
    bars = [b for b in res["timeline"] if b["grant_id"] == "g-n"]
    eq(len(bars), 1, "the grant's bar")
    check_counts(bars[0], {"start": "2026-11-23T01:00:00Z", "start_known": False,
                           "end": "2026-11-26T00:10:00Z", "end_event": "failed",
                           "forced": True, "ticket": "INC-77"}, "timeline[0]")
    t = report("--since", "2026-11-23", "--until", "2026-11-30", path)
    eq(t.returncode, 0, t.stderr)
    assert "INCOMPLETE" not in t.stdout, t.stdout
    row = [ln for ln in t.stdout.splitlines() if ln.startswith("  g-n")]
    eq(len(row), 1, "the grant's row in the text: %s" % t.stdout)
    for s in ("nina", "dba", "failed (forced)", "INC-77"):
        assert " %s" % s in row[0], (s, row[0])



def test_report_control_characters_not_printed_raw():
    """Names with a C1 control (U+009B: CSI, which some terminals obey and
    which could hide the warning printed after the report), DEL and ESC in
    the audit log: no format prints them raw, JSON escapes them (the same
    value), and the log itself is left as it was."""
    path = os.path.join(os.getcwd(), "audit.log")
    user, group, ticket = "al\x9b8mice", "adm\x7fins", "T\x1b[2J-1"
    w = AuditWriter(path)
    w.grant(g("g-c1", user, group, D + 3600, 7200, approved_by="car\x9bol", ticket=ticket))
    w.refused(D + 3700, "mal\x9blory", "dba", "unknown_user")
    w.close()
    with open(path, "rb") as f:
        logged = f.read()
    assert b"al\xc2\x9b8mice" in logged, "test setup: the log holds the raw C1"
    for fmt in ("text", "csv", "html", "json"):
        r = subprocess.run([binary("jitctl"), "report", "--format", fmt, "--since", "2026-11-23",
                            "--until", "2026-11-24", path], capture_output=True, timeout=60)
        eq(r.returncode, 0, "%s: exit status (%s)" % (fmt, r.stderr))
        for raw in (b"\xc2\x9b", b"\x7f", b"\x1b"):
            assert raw not in r.stdout, "%s: raw %r in the output" % (fmt, raw)
        if fmt == "json":
            res = json.loads(r.stdout)
            assert user in res["by_user"], res["by_user"]
            eq(res["active_at_end"][0]["ticket"], ticket, "json: ticket")
            assert b"al\\u009b8mice" in r.stdout, r.stdout
        elif fmt != "html":
            assert b"al?8mice" in r.stdout and b"adm?ins" in r.stdout, (fmt, r.stdout)
    with open(path, "rb") as f:
        eq(f.read(), logged, "the audit log after the reports")

# -- memory ------------------------------------------------------------------------

def write_big(path, n_grants, open_at_once=50):
    """n_grants grants over consecutive minutes, about open_at_once of them
    active at any time, with refusals and completions mixed in."""
    w = AuditWriter(path)
    t0 = D
    live = []
    for i in range(n_grants):
        t = t0 + 60 * i
        gr = g("g-%024x" % i, "user%d" % (i % 500), "group%d" % (i % 20), t, 3600,
               approved_by="appr%d" % (i % 30), ticket="INC-%d" % i,
               reason="routine maintenance of the service number %d" % i)
        w.grant(gr)
        live.append(gr)
        if len(live) > open_at_once:
            old = live.pop(0)
            w.end(old, t + 1, "completed" if i % 3 else "expired", end_reason="done")
        if i % 7 == 0:
            w.refused(t + 2, "user%d" % (i % 500), "group%d" % (i % 20), "unknown_user")
    w.close()
    return w.seq


def vm_hwm_kib(pid):
    """Peak resident memory of a running process since its exec (VmHWM:
    unlike ru_maxrss it does not include the forking parent's pages)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def small_quarantine_env():
    # Under AddressSanitizer freed memory stays in a quarantine (256 MB by
    # default) that would grow with the number of lines read; shrink it so
    # that the measurement shows jitctl's own memory.
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "quarantine_size_mb=1:thread_local_quarantine_size_kb=64"
    return env


def report_peak_kib(fmt, path):
    """jitctl report's peak memory once it has read every line: taken when
    its output starts (it writes more than a pipe holds, so it waits there
    until we read on)."""
    p = subprocess.Popen([binary("jitctl"), "report", "--format", fmt, path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=small_quarantine_env())
    first = p.stdout.read(1)
    peak = vm_hwm_kib(p.pid)
    rest = p.stdout.read()
    err = p.stderr.read()
    p.wait()
    eq(p.returncode, 0, "jitctl report: %s" % err)
    assert first and len(rest) > 65536, "output too small to hold jitctl at the pipe"
    assert peak > 0, "no VmHWM for jitctl"
    return peak


def verify_peak_kib(path):
    p = subprocess.Popen([binary("jitctl"), "audit", "verify", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=small_quarantine_env())
    peak = 0
    while p.poll() is None:
        peak = max(peak, vm_hwm_kib(p.pid))
        time.sleep(0.005)
    out = p.stdout.read().decode()
    eq(p.returncode, 0, "jitctl audit verify: %s" % out)
    return peak


@timeout(300)
def test_report_memory_does_not_grow_with_input():
    small = os.path.join(os.getcwd(), "small.log")
    big = os.path.join(os.getcwd(), "big.log")
    n_small = write_big(small, 2000)
    n_big = write_big(big, 20000)
    size_big = os.path.getsize(big)
    assert n_big > 9 * n_small and size_big > 25 * 1024 * 1024, (n_big, size_big)
    for fmt in ("json", "html"):
        rs = report_peak_kib(fmt, small)
        rb = report_peak_kib(fmt, big)
        print("peak memory, --format %s: %d lines %d KiB; %d lines (%d MiB) %d KiB"
              % (fmt, n_small, rs, n_big, size_big >> 20, rb))
        assert rb <= rs + 4096, "report memory grows with the input: %d KiB -> %d KiB" % (rs, rb)
    rv = verify_peak_kib(big)
    print("peak memory, audit verify: %d lines %d KiB" % (n_big, rv))
    assert rv <= rs + 4096, (rv, rs)


# -- HTML in a browser -------------------------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    skip("Chromium is not installed (apt-get install chromium; scripts/deps installs it), "
         "so the HTML report cannot be rendered")


def render(browser, html, out, kind):
    profile = tempfile.mkdtemp(prefix="chr", dir=os.getcwd())
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--user-data-dir=" + profile]
    if kind == "png":
        args += ["--window-size=1280,2000", "--screenshot=" + out]
    else:
        args += ["--print-to-pdf=" + out, "--no-pdf-header-footer"]
    r = subprocess.run(args + ["file://" + html], capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, "chromium exit status (%s)" % r.stderr[-2000:])
    assert os.path.exists(out), "chromium wrote no %s: %s" % (kind, r.stderr[-2000:])
    # Nothing may have been fetched: the page is one self-contained file.
    for bad in ("net::ERR_", "Refused to load", "Uncaught"):
        assert bad not in r.stderr, r.stderr[-2000:]
    return r


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: %r" % head[:8]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@timeout(240)
def test_report_html_renders_in_chromium():
    browser = chromium()
    paths = write_day(os.getcwd())
    html = os.path.join(os.getcwd(), "report.html")
    r = report("--format", "html", "--since", "2026-11-23", "--until", "2026-11-24", "-o", html,
               *paths)
    eq(r.returncode, 0, r.stderr)
    with open(html) as f:
        page = f.read()
    for s in ("<svg", "dave \u2192 web", "frank \u2192 admins", "default-src 'none'"):
        assert s in page, s
    for s in ("src=", "href=", "http://", "https://"):
        assert s not in page, "the page refers to %r" % s
    png = os.path.join(os.getcwd(), "report.png")
    render(browser, html, png, "png")
    w, h = png_size(png)
    eq((w, h), (1280, 2000), "screenshot size")
    assert os.path.getsize(png) > 30000, "the screenshot looks empty"
    pdf = os.path.join(os.getcwd(), "report.pdf")
    render(browser, html, pdf, "pdf")
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-", "not a PDF"
    keep = os.environ.get("JITTEST_ARTIFACTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for p in (html, png, pdf):
            shutil.copy(p, keep)


# -- the nightly job ----------------------------------------------------------------

def test_nightly_job_writes_and_mails_the_report():
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    paths = write_day(logdir)
    outdir = os.path.join(work, "reports")
    mailbox = os.path.join(work, "mail.txt")
    sendmail = os.path.join(work, "sendmail")
    with open(sendmail, "w") as f:
        f.write("#!/bin/sh\necho \"ARGS: $*\" > %s\ncat >> %s\n" % (mailbox, mailbox))
    os.chmod(sendmail, 0o755)
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=paths[2], JITD_REPORT_DIR=outdir,
               JITD_REPORT_DATE="2026-11-23", JITD_REPORT_DAYS="0", JITCTL=binary("jitctl"),
               SENDMAIL=sendmail, JITD_REPORT_MAILTO="auditors@example.com",
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=120)
    eq(r.returncode, 0, "nightly job: %s %s" % (r.stdout, r.stderr))
    base = os.path.join(outdir, "jitd-report-2026-11-23")
    for ext in ("txt", "html", "json", "csv"):
        assert os.path.exists("%s.%s" % (base, ext)), os.listdir(outdir)
    with open(base + ".json") as f:
        check_day(json.load(f))
    mode = stat.S_IMODE(os.stat(base + ".json").st_mode)
    assert mode & 0o007 == 0, "report readable by others (%o)" % mode
    with open(mailbox) as f:
        mail = f.read()
    assert "ARGS: -t" in mail, mail[:300]
    for s in ("To: auditors@example.com", "Subject: jitd access report 2026-11-23",
              "Content-Type: text/html", "filename=\"jitd-report-2026-11-23.html\""):
        assert s in mail, (s, mail[:3000])
    # every line within SMTP's 998 bytes, whatever the report holds (the
    # text part is base64: a long reason made a longer line, refused by
    # mail servers); the text part decodes to the report
    assert max(len(x) for x in mail.split("\n")) <= 998, "a mail line over 998 bytes"
    import email
    msg = email.message_from_string(mail.split("\n", 1)[1])
    parts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    eq(len(parts), 1, "text parts")
    text = parts[0].get_payload(decode=True).decode()
    with open(base + ".txt") as f:
        eq(text, f.read(), "the mail's text part")
    assert "hash chain  verified: seq 1 .. 23" in text, text[:2000]
    # A broken chain: the job still writes the report, says so in the
    # subject, and exits non-zero (cron and systemd then report it).
    with open(paths[2], "ab") as f:
        f.write(b'{"ts":"2026-11-23T23:59:00Z","seq":99,"event":"forged"}\n')
    os.unlink(mailbox)
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=120)
    eq(r.returncode, 1, "nightly job with a broken chain: %s %s" % (r.stdout, r.stderr))
    with open(mailbox) as f:
        mail = f.read()
    assert "Subject: jitd access report 2026-11-23: HASH CHAIN NOT VERIFIED" in mail, mail[:500]


def test_nightly_job_mails_lines_smtp_accepts():
    """A reason of 1,000 bytes (the protocol allows 1,024) puts a longer
    line in the text report than the 998 bytes SMTP allows: the mail must
    still keep every line within it (regression: the text part went as
    8bit, a line as long as the reason, which mail servers refuse), and
    its text part decodes to the report."""
    import email
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    path = os.path.join(logdir, "audit.log")
    w = AuditWriter(path)
    w.event(D + 60, "started", version="0.1.0")
    gl = g("g-l", "lee", "dba", D + 3600, 3600, reason="R" * 1000)
    w.grant(gl)
    w.end(gl, D + 7200, "expired")
    w.close()
    outdir = os.path.join(work, "reports")
    mailbox = os.path.join(work, "mail.txt")
    sendmail = os.path.join(work, "sendmail")
    with open(sendmail, "w") as f:
        f.write("#!/bin/sh\ncat > %s\n" % mailbox)
    os.chmod(sendmail, 0o755)
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=path, JITD_REPORT_DIR=outdir,
               JITD_REPORT_DATE="2026-11-23", JITD_REPORT_DAYS="0", JITCTL=binary("jitctl"),
               SENDMAIL=sendmail, JITD_REPORT_MAILTO="auditors@example.com",
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=120)
    eq(r.returncode, 0, "nightly job: %s %s" % (r.stdout, r.stderr))
    with open(os.path.join(outdir, "jitd-report-2026-11-23.txt")) as f:
        report = f.read()
    assert "R" * 1000 in report, "the reason is not in the text report"
    with open(mailbox) as f:
        mail = f.read()
    longest = max(len(x.encode()) for x in mail.split("\n"))
    assert longest <= 998, "a mail line of %d bytes" % longest
    parts = [p for p in email.message_from_string(mail).walk()
             if p.get_content_type() == "text/plain"]
    eq(len(parts), 1, "text parts")
    eq(parts[0].get_payload(decode=True).decode(), report, "the mail's text part")


def test_nightly_job_removes_snapshots_a_killed_run_left():
    """A run ended by SIGKILL (or a power cut) leaves its .snapshot.*
    directory behind, holding links to every audit file it read: the next
    run removes one older than a day, and leaves a recent one (another run
    may be using it). A run ended by SIGTERM removes its own."""
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    paths = write_day(logdir)
    outdir = os.path.join(work, "reports")
    os.makedirs(outdir)
    stale, recent = (os.path.join(outdir, ".snapshot." + x) for x in ("OLD123", "NEW456"))
    for d in (stale, recent):
        os.makedirs(os.path.join(d, "1"))
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=paths[2], JITD_REPORT_DIR=outdir,
               JITD_REPORT_DATE="2026-11-23", JITD_REPORT_DAYS="0", JITCTL=binary("jitctl"),
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=120)
    eq(r.returncode, 0, "nightly job: %s %s" % (r.stdout, r.stderr))
    eq((os.path.exists(stale), os.path.exists(recent)), (False, True),
       "stale snapshot removed, recent one kept")
    # SIGTERM while it runs (a jitctl that hangs), to the whole job as systemd
    # sends it: its own snapshot goes
    hang = os.path.join(work, "jitctl-hang")
    with open(hang, "w") as f:
        f.write("#!/bin/sh\nsleep 30\n")
    os.chmod(hang, 0o755)
    env2 = dict(env, JITCTL=hang, JITD_REPORT_DATE="2026-11-22")
    p = subprocess.Popen(["sh", script], env=env2, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: len([x for x in os.listdir(outdir) if x.startswith(".snapshot.")]) == 2,
               20, "the run's own snapshot made")
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGTERM)  # as systemctl stop: every process of the job
    p.wait(30)
    eq(sorted(x for x in os.listdir(outdir) if x.startswith(".snapshot.")),
       [".snapshot.NEW456"], "the killed run's snapshot removed")


def write_long_grants(logdir):
    """22 files as daily rotation leaves them: audit.log.21.gz (the day
    D - 20) ... audit.log.2.gz, audit.log.1 (the day D), audit.log (D + 1);
    audit.log.N last written N - 1 days and an hour ago. Grants far longer
    than the nightly job's old 8-day window: g-long (alice, 30 days from
    D - 20, no line after its granted line), g-ends (bob, from D - 20,
    extended at D - 16, expires on D) and g-ext (erin, from D - 12, extended
    at D - 3). Returns the current file's path."""
    h, day = 3600, 86400
    log = os.path.join(logdir, "audit.log")

    def path(n):
        return log + (".%d.gz" % n if n >= 2 else ".1" if n == 1 else "")

    w = AuditWriter(path(21), compress=True)
    w.event(D - 20 * day + 60, "started", version="0.1.0")
    g_long = g("g-long", "alice", "dba", D - 20 * day + h, 30 * day, ticket="INC-L",
               reason="database migration")
    g_ends = g("g-ends", "bob", "admins", D - 20 * day + 2 * h, 18 * day, ticket="INC-E")
    g_ext = g("g-ext", "erin", "ops", D - 12 * day, 10 * day, ticket="INC-X")
    w.grant(g_long)
    w.grant(g_ends)
    for n in range(20, -1, -1):
        w.switch(path(n), compress=n >= 2)
        start = D + (1 - n) * day
        w.refused(start + 600, "mallory", "dba", "unknown_user")
        if n == 17:
            w.extend(g_ends, start + h, 2 * day)       # now expires at D + 2 h
        if n == 13:
            w.grant(g_ext)
        if n == 4:
            w.extend(g_ext, start + h, 5 * day)        # now expires at D + 3 days
        if n == 1:
            w.end(g_ends, D + 2 * h + 5, "expired")
    w.close()
    now = time.time()
    for n in range(21, 0, -1):
        t = now - (n - 1) * day - h
        os.utime(path(n), (t, t))
    return log


def test_nightly_job_reports_grants_older_than_its_window():
    """A grant made 20 days before the reported day and still active, one
    that ends on it after an extension, one extended inside the old 8-day
    window: by default the job reads every kept file, so each is reported
    with its real start and requested duration. With a window set
    (JITD_REPORT_DAYS=8), the report says which starts it could not read
    and that its input is incomplete, instead of dropping them silently."""
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    log = write_long_grants(logdir)
    outdir = os.path.join(work, "reports")
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=log, JITD_REPORT_DIR=outdir,
               JITD_REPORT_DATE="2026-11-23", JITCTL=binary("jitctl"),
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    env.pop("JITD_REPORT_DAYS", None)
    env.pop("JITD_REPORT_MAILTO", None)
    base = os.path.join(outdir, "jitd-report-2026-11-23")
    day = 86400

    def run(**extra):
        r = subprocess.run(["sh", script], capture_output=True, text=True,
                           env=dict(env, **extra), timeout=120)
        eq(r.returncode, 0, "nightly job: %s %s" % (r.stdout, r.stderr))
        with open(base + ".json") as f:
            res = json.load(f)
        with open(base + ".txt") as f:
            return res, f.read()

    # The default: every kept file.
    res, text = run()
    eq(sorted((a["grant_id"], a["granted_at"], a["expires_at"], a.get("start_known"))
              for a in res["active_at_end"]),
       [("g-ext", "2026-11-11T00:00:00Z", "2026-11-26T00:00:00Z", True),
        ("g-long", "2026-11-03T01:00:00Z", "2026-12-03T01:00:00Z", True)], "active_at_end")
    eq(len(res["input"]["files"]), 22, "files read")
    eq(res["input"].get("complete"), True, "input.complete")
    check_counts(res["totals"], {"granted": 0, "expired": 1, "active_at_end": 2,
                                 "started_before_input": 0}, "totals")
    eq(res["by_user"]["alice"]["held_seconds"], day, "alice held")
    eq(res["by_user"]["bob"]["held_seconds"], 7205, "bob held")
    check_counts(res["durations"]["requested"], {"count": 1, "total_seconds": 18 * day},
                 "requested (before the extension)")
    check_counts(res["durations"]["actual"], {"count": 1, "total_seconds": 20 * day + 5},
                 "actual")
    bars = {b["grant_id"]: (b["start"], b["end_event"], b.get("start_known"))
            for b in res["timeline"]}
    eq(bars, {"g-long": ("2026-11-03T01:00:00Z", "active", True),
              "g-ext": ("2026-11-11T00:00:00Z", "active", True),
              "g-ends": ("2026-11-03T02:00:00Z", "expired", True)}, "timeline")
    assert "coverage    complete: the files read begin at the log's first line (seq 1)." \
        in text, text[:2000]
    assert "g-long  alice -> dba  since 2026-11-03T01:00:00Z  until 2026-12-03T01:00:00Z" \
        in text, text

    # A window of 8 days: g-long has no line in it and cannot be shown; the
    # report says the input is incomplete and marks the starts it lacks.
    res, text = run(JITD_REPORT_DAYS="8")
    eq([(a["grant_id"], a["granted_at"], a["expires_at"], a.get("start_known"))
        for a in res["active_at_end"]],
       [("g-ext", "2026-11-11T00:00:00Z", "2026-11-26T00:00:00Z", False)], "active_at_end")
    eq(len(res["input"]["files"]), 9, "files read with JITD_REPORT_DAYS=8")
    eq(res["input"].get("complete"), False, "input.complete")
    check_counts(res["totals"], {"expired": 1, "active_at_end": 1, "started_before_input": 2},
                 "totals")
    eq(res["durations"]["requested"]["count"], 0, "requested duration not known")
    bars = {b["grant_id"]: (b["start"], b["end_event"], b.get("start_known"))
            for b in res["timeline"]}
    eq(bars, {"g-ext": ("2026-11-11T00:00:00Z", "active", False),
              "g-ends": ("2026-11-03T02:00:00Z", "expired", False)}, "timeline")
    first = res["chain"]["first_seq"]
    for s in ("coverage    INCOMPLETE: the files read begin at seq %d (2026-11-16T00:10:00Z), "
              "not at seq 1." % first,
              "A grant made before then that has no line in these files is not in this report:",
              "2 grant(s) here began before the files read",
              "g-ext  erin -> ops  since 2026-11-11T00:00:00Z (created_at: granted line not "
              "read)  until 2026-11-26T00:00:00Z"):
        assert s in text, (s, text[:2500])


def test_nightly_job_catches_up_missed_days_and_reads_dateext_files():
    """Without JITD_REPORT_DATE the job reports yesterday (UTC) and every
    day before it since the newest report it finds, so a run missed (the
    machine off, a cron time that moved with summer time) leaves no day
    unreported, and a run again reports nothing twice. Files rotated with
    logrotate's dateext (audit.log-YYYYMMDD) are read too."""
    import datetime
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    paths = write_day(logdir)
    os.rename(paths[1], os.path.join(logdir, "audit.log-20261123"))
    os.rename(paths[0], os.path.join(logdir, "audit.log-20261122.gz"))
    # logrotate compressing audit.log-20261123 right now: its .gz is being
    # written beside it, and is not read (regression: read as well, its
    # lines repeated, and the chain did not verify)
    with open(os.path.join(logdir, "audit.log-20261123"), "rb") as f:
        part = f.read()[:200]
    import gzip
    with gzip.open(os.path.join(logdir, "audit.log-20261123.gz"), "wb") as f:
        f.write(part)
    outdir = os.path.join(work, "reports")
    os.makedirs(outdir)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    days = [(today - datetime.timedelta(days=k)).isoformat() for k in (4, 3, 2, 1)]
    with open(os.path.join(outdir, "jitd-report-%s.txt" % days[0]), "w") as f:
        f.write("an earlier run\n")
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=paths[2], JITD_REPORT_DIR=outdir,
               JITCTL=binary("jitctl"), JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    for k in ("JITD_REPORT_DATE", "JITD_REPORT_DAYS", "JITD_REPORT_MAILTO"):
        env.pop(k, None)
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=300)
    eq(r.returncode, 0, "nightly job: %s %s" % (r.stdout, r.stderr))
    got = sorted(n for n in os.listdir(outdir) if n.endswith(".json"))
    eq(got, ["jitd-report-%s.json" % d for d in days[1:]], "the days reported")
    with open(os.path.join(outdir, "jitd-report-%s.json" % days[3])) as f:
        res = json.load(f)
    eq([os.path.basename(p) for p in res["input"]["files"]],
       ["audit.log-20261122.gz", "audit.log-20261123", "audit.log"], "files read, oldest first")
    eq(res["chain_verified"], True, "chain verified across the dateext files")
    before = sorted(os.listdir(outdir))
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=300)
    eq(r.returncode, 0, "again: %s %s" % (r.stdout, r.stderr))
    eq(sorted(os.listdir(outdir)), before, "nothing reported twice")
    # a first run reports yesterday only
    r2 = os.path.join(work, "r2")
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=300,
                       env=dict(env, JITD_REPORT_DIR=r2))
    eq(r.returncode, 0, "first run: %s %s" % (r.stdout, r.stderr))
    eq(sorted(n for n in os.listdir(r2) if n.endswith(".json")),
       ["jitd-report-%s.json" % days[3]], "a first run")
    # a long gap is capped, and said
    r3 = os.path.join(work, "r3")
    os.makedirs(r3)
    old = (today - datetime.timedelta(days=10)).isoformat()
    with open(os.path.join(r3, "jitd-report-%s.txt" % old), "w") as f:
        f.write("long ago\n")
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=300,
                       env=dict(env, JITD_REPORT_DIR=r3, JITD_REPORT_CATCHUP="2"))
    eq(r.returncode, 0, "capped run: %s %s" % (r.stdout, r.stderr))
    assert "reporting the last 2 days only" in r.stderr, r.stderr
    eq(sorted(n for n in os.listdir(r3) if n.endswith(".json")),
       ["jitd-report-%s.json" % d for d in days[2:]], "the last 2 days")
    # a day that failed part-way (a format, or the mail) is not done: the
    # next run makes and mails it again (regression: its .txt was in place,
    # so no later run did it, and its other formats and mail never came)
    r4 = os.path.join(work, "r4")
    os.makedirs(r4)
    with open(os.path.join(r4, "jitd-report-%s.txt" % days[2]), "w") as f:
        f.write("the day before\n")
    broken = os.path.join(work, "jitctl-no-html")
    with open(broken, "w") as f:
        f.write('#!/bin/sh\ncase " $* " in *" html "*) exit 3 ;; esac\nexec %s "$@"\n'
                % binary("jitctl"))
    os.chmod(broken, 0o755)
    mailbox = os.path.join(work, "mail4.txt")
    sendmail = os.path.join(work, "sendmail4")
    with open(sendmail, "w") as f:
        f.write("#!/bin/sh\n[ -e %s.fail ] && exit 75\ncat >> %s\n" % (sendmail, mailbox))
    os.chmod(sendmail, 0o755)
    env4 = dict(env, JITD_REPORT_DIR=r4, SENDMAIL=sendmail,
                JITD_REPORT_MAILTO="auditors@example.com")
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=300,
                       env=dict(env4, JITCTL=broken))
    eq(r.returncode, 3, "a run whose html report fails: %s" % r.stderr)
    assert not os.path.exists(os.path.join(r4, "jitd-report-%s.txt" % days[3])), \
        "the day is marked done"
    open(sendmail + ".fail", "w").close()
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=300, env=env4)
    eq(r.returncode, 3, "a run whose mail fails: %s" % r.stderr)
    assert "makes and mails day %s again" % days[3] in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(r4, "jitd-report-%s.txt" % days[3])), \
        "the day is marked done without its mail"
    os.unlink(sendmail + ".fail")
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=300, env=env4)
    eq(r.returncode, 0, "the next run: %s" % r.stderr)
    for ext in ("txt", "html", "json", "csv"):
        assert os.path.exists(os.path.join(r4, "jitd-report-%s.%s" % (days[3], ext))), ext
    with open(mailbox) as f:
        eq(f.read().count("Subject: jitd access report %s" % days[3]), 1, "mailed once")


def test_nightly_job_refuses_a_day_that_is_not_over():
    """JITD_REPORT_DATE today (UTC) or later is refused: its report would
    leave out the rest of the day, and its .txt marks the day done, so the
    next night's catch-up started after it and the day was never reported
    whole (regression). A partial report an older job left (a .txt written
    before its day was over) does not count as done: the day is made again.
    And jitctl report of a period not over counts open grants as held up to
    the time of the report, not to --until, and says the period is not over."""
    import datetime
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    now = int(time.time())
    today = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).date()
    midnight = calendar.timegm(today.timetuple())
    log = os.path.join(logdir, "audit.log")
    w = AuditWriter(log)
    w.event(midnight - 2 * 86400, "started", version="0.1.0")
    gx = g("g-%024x" % 1, "alice", "dba", midnight - 86400 + 3600, 3 * 86400, ticket="INC-1")
    w.grant(gx)
    w.close()
    outdir = os.path.join(work, "reports")
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=log, JITD_REPORT_DIR=outdir, JITCTL=binary("jitctl"),
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    for k in ("JITD_REPORT_DAYS", "JITD_REPORT_MAILTO"):
        env.pop(k, None)
    for day in (today, today + datetime.timedelta(days=1)):
        r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=120,
                           env=dict(env, JITD_REPORT_DATE=day.isoformat()))
        eq(r.returncode, 2, "JITD_REPORT_DATE=%s: %s %s" % (day, r.stdout, r.stderr))
        assert "JITD_REPORT_DATE=%s is not over yet" % day in r.stderr, r.stderr
        assert not os.path.exists(outdir) or os.listdir(outdir) == [], os.listdir(outdir)
    # yesterday is over: reported
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=120,
                       env=dict(env, JITD_REPORT_DATE=yesterday))
    eq(r.returncode, 0, "JITD_REPORT_DATE=%s: %s" % (yesterday, r.stderr))
    txt = os.path.join(outdir, "jitd-report-%s.txt" % yesterday)
    with open(os.path.join(outdir, "jitd-report-%s.json" % yesterday)) as f:
        res = json.load(f)
    eq(res.get("period_complete"), True, "period_complete of yesterday")
    eq(res["by_user"]["alice"]["held_seconds"], 86400 - 3600, "held yesterday")
    # that report as an older job would have left it, written during the
    # day: the catch-up makes the day again instead of starting after it
    os.unlink(os.path.join(outdir, "jitd-report-%s.json" % yesterday))
    os.utime(txt, (midnight - 3600, midnight - 3600))
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=120, env=env)
    eq(r.returncode, 0, "catch-up: %s" % r.stderr)
    assert "was written before %s was over; reporting %s again" % (yesterday, yesterday) \
        in r.stderr, r.stderr
    assert os.path.exists(os.path.join(outdir, "jitd-report-%s.json" % yesterday)), \
        os.listdir(outdir)
    assert os.stat(txt).st_mtime >= midnight, "the partial .txt was not replaced"
    r = subprocess.run(["sh", script], capture_output=True, text=True, timeout=120, env=env)
    eq((r.returncode, r.stderr), (0, ""), "a run again: nothing to do")
    # jitctl report of today: held up to now, and the period not over
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    res = report_json("--since", today.isoformat(), "--until", tomorrow, log)
    eq(res.get("period_complete"), False, "period_complete of today")
    held = res["by_user"]["alice"]["held_seconds"]
    after = int(time.time())
    assert now - midnight <= held <= after - midnight, (held, now - midnight)
    bar = res["timeline"][0]
    assert bar["end"] <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(after)), bar
    t = report("--since", today.isoformat(), "--until", tomorrow, log)
    assert "NOT OVER: the period is not over" in t.stdout, t.stdout
    assert "Active when the report was made: the period is not over (1)" in t.stdout, t.stdout


def test_nightly_job_reads_one_view_of_the_files_while_logrotate_runs():
    """logrotate rotates the files while the job runs (after its first
    format), and jitd is in the middle of writing a line of the current
    file. Every format must come from the files as they were when the job
    began, and the line being written is not a torn one: the chain
    verifies and the day's report is whole (regression: each format
    opened the files again by name, so a rotation in between read other
    files, or a half-compressed one, and the day was marked done with
    HASH CHAIN NOT VERIFIED)."""
    work = os.getcwd()
    logdir = os.path.join(work, "log")
    os.makedirs(logdir)
    paths = write_day(logdir)
    with open(paths[2], "ab") as f:
        f.write(b'{"ts":"2026-11-24T09:00:00Z","seq":')   # jitd is writing this line
    outdir = os.path.join(work, "reports")
    shim = os.path.join(work, "jitctl-rotating")
    with open(shim, "w") as f:
        f.write("""#!/bin/sh
# the first call runs, then logrotate rotates (rename, compress, new file)
d=%(logdir)s
if [ ! -e %(work)s/rotated ]; then
    %(jitctl)s "$@"; rc=$?
    mv "$d/audit.log.2.gz" "$d/audit.log.3.gz"
    mv "$d/audit.log.1" "$d/audit.log.2" && gzip "$d/audit.log.2"
    mv "$d/audit.log" "$d/audit.log.1" && : > "$d/audit.log"
    touch %(work)s/rotated
    exit $rc
fi
exec %(jitctl)s "$@"
""" % {"logdir": logdir, "work": work, "jitctl": binary("jitctl")})
    os.chmod(shim, 0o755)
    script = os.path.join(os.environ["JITD_SRCDIR"], "contrib", "jitd-report-nightly")
    env = dict(os.environ, JITD_AUDIT_LOG=paths[2], JITD_REPORT_DIR=outdir,
               JITD_REPORT_DATE="2026-11-23", JITD_REPORT_DAYS="0", JITCTL=shim,
               JITD_REPORT_DEFAULTS=os.path.join(work, "none"))
    r = subprocess.run(["sh", script], capture_output=True, text=True, env=env, timeout=120)
    assert os.path.exists(os.path.join(work, "rotated")), "the shim never rotated"
    eq(r.returncode, 0, "nightly job during a rotation: %s %s" % (r.stdout, r.stderr))
    base = os.path.join(outdir, "jitd-report-2026-11-23")
    with open(base + ".json") as f:
        check_day(json.load(f))           # written after the rotation
    with open(base + ".txt") as f:
        assert "hash chain  verified: seq 1 .. 23" in f.read()
    eq([n for n in os.listdir(outdir) if n.startswith(".")], [], "snapshot left behind")
