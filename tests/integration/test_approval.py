"""Signed approvals (approval_key_file): valid, wrong key, stale, replayed,
tampered, missing; and signed extensions (extend of such a grant). The
signing code is the Python examples in docs/policy.md, extracted and run,
so the documentation is tested too."""

import datetime
import os
import re
import time

from jittest import Env, eq, refused
from jitd import parse_time

KEY = b"Zm9vYmFyLWFwcHJvdmFsLWtleS0zMmJ5dGVzIQ=="


def _doc_function(marker, name):
    """Function `name` of docs/policy.md's example in the python block after
    the <!-- marker --> comment."""
    path = os.path.join(os.environ.get("JITD_SRCDIR", "."), "docs", "policy.md")
    text = open(path).read()
    m = re.search(r"<!-- %s[^>]*-->\s*```python\n(.*?)```" % marker, text, re.S)
    assert m, "no %s block in docs/policy.md" % marker
    code = m.group(1)
    assert len([l for l in code.split("\n") if l.strip()]) <= 10, "the example grew past ten lines"
    ns = {}
    exec(compile(code, "docs/policy.md:" + marker, "exec"), ns)
    return ns[name]


def _doc_sign():
    """The `sign` function of docs/policy.md's example (sign-example)."""
    return _doc_function("sign-example", "sign")


def _doc_sign_extend():
    """The `sign_extend` function of docs/policy.md (sign-extend-example)."""
    return _doc_function("sign-extend-example", "sign_extend")


def _doc_read_key(path):
    """The key as docs/policy.md's key-example reads approval_key_file."""
    text = open(os.path.join(os.environ.get("JITD_SRCDIR", "."), "docs", "policy.md")).read()
    m = re.search(r"<!-- key-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert m, "no key-example block in docs/policy.md"
    ns = {}
    exec(m.group(1).replace("/etc/jitd/approval.key", path), ns)
    return ns["key"]


def _env(max_age="5m", env=None, connections=None, **admins):
    """An Env (entered) whose group admins has approval_key_file (and the
    keys in admins), and its key file."""
    e = Env(start=False)
    e.__enter__()
    j = e.jitd
    key_file = os.path.join(j.dir, "approval.key")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, KEY + b"\n")
    os.close(fd)
    j.config["groups"] = [j.group_entry("admins", approval_key_file=key_file,
                                        approval_max_age=max_age, **admins),
                          j.group_entry("web")]
    if connections:
        j.config["directories"][0]["connections"] = connections
    j.write_config()
    j.start(env=env)
    return e, key_file


def _req(user="alice", rid="cab-1", **kw):
    r = {"op": "grant", "user": user, "group": "admins", "duration": 3600,
         "ticket": "CHG000123", "reason": "patch", "requested_by": user,
         "approved_by": "carol", "request_id": rid}
    r.update(kw)
    return r


def _denied(e, a, rule):
    refused(a, "policy_denied", rule)
    assert a["error"]["message"].startswith(rule), a
    eq(e.jitd.audit_events("refused")[-1].get("rule"), rule, "audited rule")


def test_signed_approvals():
    sign = _doc_sign()
    e, _ = _env()
    try:
        j = e.jitd
        sl = e.slapd
        # valid
        req = sign(_req(), KEY)
        a = j.request(req)
        assert a.get("ok"), a
        g = a["grant"]
        assert sl.is_member("admins", sl.user_dn("alice"))
        # the granted line says the approval was a verified signature, and when
        # it was given (regression: a signed grant read like a typed name)
        ev = [x for x in j.audit_events("granted") if x["grant_id"] == g["grant_id"]][0]
        eq((ev.get("approval_signed"), ev.get("approved_at")), (True, req["approved_at"]),
           "approval_signed, approved_at of the granted line")
        w = j.must_grant("carol", "web", "1h", approved_by="dave")
        ev = [x for x in j.audit_events("granted") if x["grant_id"] == w["grant_id"]][0]
        assert "approval_signed" not in ev, ev
        # the duration given as a string is signed as seconds
        a = j.request(sign(_req("bob", "cab-2", duration="1h"), KEY))
        refused(a, "policy_denied", "signed '1h'")  # signed "1h", jitd computes 3600
        # wrong key
        _denied(e, j.request(sign(_req("bob", "cab-3"), b"another key")), "approval_key_file")
        # tampered after signing: the user
        r = sign(_req("bob", "cab-4"), KEY)
        r["user"] = "dave"
        _denied(e, j.request(r), "approval_key_file")
        # tampered: the duration
        r = sign(_req("bob", "cab-5"), KEY)
        r["duration"] = 7200
        _denied(e, j.request(r), "approval_key_file")
        # missing parts (refused by the listener already)
        r = sign(_req("bob", "cab-6"), KEY)
        del r["approval_sig"]
        _denied(e, j.request(r), "approval_key_file")
        r = _req("bob", None)
        del r["request_id"]
        _denied(e, j.request(sign(r, KEY)), "approval_key_file")
        # stale: older than approval_max_age (5m); and from the future
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        _denied(e, j.request(sign(_req("bob", "cab-7"), KEY, old)), "approval_max_age")
        ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        _denied(e, j.request(sign(_req("bob", "cab-8"), KEY, ahead)), "approval_max_age")
        # just inside the window
        ok = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=4)
        e.jitd.ok(sign(_req("bob", "cab-9"), KEY, ok))
        assert not sl.is_member("admins", sl.user_dn("dave"))

        # replayed: the same signed request again is the same grant, nothing new
        replay = sign(_req("erin", "cab-10"), KEY)
        g1 = j.ok(dict(replay))["grant"]
        a = j.ok(dict(replay))
        eq(a.get("duplicate"), True, "replay is a duplicate")
        eq(a["grant"]["grant_id"], g1["grant_id"], "same grant")
        j.ok({"op": "complete", "grant_id": g1["grant_id"]})
        assert not sl.is_member("admins", sl.user_dn("erin"))
        a = j.ok(dict(replay))
        eq(a["grant"]["state"], "completed", "a replay after the end does not grant again")
        assert not sl.is_member("admins", sl.user_dn("erin")), "replay re-granted"
        # a fresh, validly signed request that reuses a request_id: refused
        _denied(e, j.request(sign(_req("frank", "cab-10"), KEY)), "request_id")
        assert not sl.is_member("admins", sl.user_dn("frank"))
        eq(len(j.ok({"op": "list", "user": "erin", "state": "all"})["grants"]), 1,
           "one grant for the replayed request")
        # the same request_id reused without signature in another group
        refused(j.grant("frank", "web", "1h", request_id="cab-10"), "policy_denied",
                "request_id reused in another group")
        # a group without a key needs no signature
        e.grant_and_check("grace", "web", "1h")
        # jitctl relays a signed approval
        r = sign(_req("heidi", "cab-11"), KEY)
        p = j.jitctl("grant", "heidi", "admins", "--for", "3600", "--ticket", r["ticket"],
                     "--reason", r["reason"], "--requested-by", "heidi", "--approved-by",
                     "carol", "--request-id", "cab-11", "--approved-at", r["approved_at"],
                     "--approval-sig", r["approval_sig"])
        eq(p.returncode, 0, "jitctl signed grant: %s" % p.stderr)
        assert sl.is_member("admins", sl.user_dn("heidi"))
        p = j.jitctl("grant", "ivan", "admins", "--for", "3600", "--request-id", "cab-12",
                     "--approved-at", r["approved_at"], "--approval-sig", r["approval_sig"])
        eq(p.returncode, 1, "jitctl with a signature of another request")
        assert "policy_denied" in p.stderr, p.stderr
        eq(j.show(g["grant_id"])["state"], "active", "the first grant is untouched")
        assert KEY.decode() not in j.stderr_tail(100000)
    finally:
        e.__exit__(None, None, None)


def test_retry_when_the_store_cannot_be_read_is_busy_not_judged_as_new():
    """A signed grant is retried after its approval has aged past
    approval_max_age (a retry is answered as a duplicate whatever its age),
    and at that moment the store cannot be read (another process holds its
    lock: failure point fail.request_lookup). The retry must not be judged
    as a new request: the answer is busy (retry as is), not policy_denied
    approval_max_age (which tells the client the request must change). The
    next retry is the duplicate."""
    from test_failures import need_faults, wait_stderr
    need_faults()
    sign = _doc_sign()
    e, _ = _env(max_age="4s", env={"JITD_FAULT": "fail.request_lookup:@2"})
    try:
        j = e.jitd
        req = sign(_req(rid="cab-busy-1"), KEY)
        g = j.ok(dict(req))["grant"]
        time.sleep(5.5)  # the approval is now older than approval_max_age
        a = j.request(dict(req))
        wait_stderr(j, "fault fail at fail.request_lookup", 5)
        refused(a, "busy", "a retry while the store cannot be read")
        a = j.ok(dict(req))
        eq(a.get("duplicate"), True, "the next retry is the duplicate")
        eq(a["grant"]["grant_id"], g["grant_id"], "the same grant")
    finally:
        e.__exit__(None, None, None)


def test_retry_while_the_first_is_in_progress_is_not_judged_as_new():
    """A signed grant is held before its pending row (fault pause, 6 s)
    and its client, timed out, sends it again after its approval has aged
    past approval_max_age. The first is still in progress, not in the
    store: the retry must not be refused policy_denied approval_max_age
    (which tells the client to ask again under a new request_id, and the
    first was granted meanwhile: two grants for one approval); it waits
    behind the first and is answered as its duplicate."""
    from test_failures import need_faults, wait_stderr
    need_faults()
    import threading
    sign = _doc_sign()
    e, _ = _env(max_age="2s", env={"JITD_FAULT": "grant.before_pending:sleep=6000@1"})
    try:
        j = e.jitd
        req = sign(_req(rid="cab-slow-1"), KEY)
        first = {}
        th = threading.Thread(target=lambda: first.update(a=j.request(dict(req), timeout=60)))
        th.start()
        wait_stderr(j, "fault pause 6000 ms at grant.before_pending", 5)
        time.sleep(3.2)  # the approval is now older than approval_max_age (whole seconds)
        a = j.request(dict(req), timeout=60)
        th.join(30)
        assert first["a"].get("ok"), first
        assert a.get("ok"), "the retry while the first was in progress: %r" % a
        eq(a.get("duplicate"), True, "the retry while the first was in progress")
        eq(a["grant"]["grant_id"], first["a"]["grant"]["grant_id"], "the same grant")
        eq(j.audit_events("refused"), [], "refusals")
        eq(len([g for g in j.ok({"op": "list"})["grants"] if g.get("request_id") == "cab-slow-1"]),
           1, "grants with that request_id")
    finally:
        e.__exit__(None, None, None)


def test_retry_racing_a_first_attempt_that_fails_is_judged_on_its_approval_s_age():
    """A signed grant's first attempt is held under its pair lock (fault
    pause) and then refused (max_active_per_user: alice holds a web grant);
    its retry, sent meanwhile after the approval aged past approval_max_age,
    was admitted as racing the first (no age check: it was to be its
    duplicate). The first leaves no row, and alice's other grant ends before
    the retry records its own: the retry is now a new request and must be
    refused approval_max_age (regression: it was granted on the stale
    approval; retries racing one another could carry an approval for hours)."""
    from test_failures import need_faults, wait_stderr
    need_faults()
    import threading
    sign = _doc_sign()
    # passes of grant.before_pending: 1 alice's web grant, 2 the first
    # attempt (held 4 s), 3 the retry (held 3 s on the old code)
    e, _ = _env(max_age="2s", connections=3, max_active_per_user=1,
                env={"JITD_FAULT": "grant.before_pending:sleep=4000@2,"
                                   "grant.before_pending:sleep=3000@3"})
    try:
        j = e.jitd
        web = j.must_grant("alice", "web", "1h")
        req = sign(_req(rid="cab-race-2"), KEY)
        first = {}
        th = threading.Thread(target=lambda: first.update(a=j.request(dict(req), timeout=60)))
        th.start()
        wait_stderr(j, "fault pause 4000 ms at grant.before_pending", 5)
        time.sleep(3.2)  # the approval is now older than approval_max_age (whole seconds)
        second = {}
        th2 = threading.Thread(target=lambda: second.update(a=j.request(dict(req), timeout=60)))
        th2.start()
        th.join(30)
        refused(first["a"], "policy_denied", "the first attempt")
        assert first["a"]["error"]["message"].startswith("max_active_per_user"), first
        j.ok({"op": "complete", "grant_id": web["grant_id"]})  # alice may hold one again
        th2.join(30)
        a = second["a"]
        if a.get("error", {}).get("code") == "busy":
            # it reached the pair lock before the first had let go of the
            # request_id: sent again as it is, it is judged as new
            a = j.request(dict(req))
        refused(a, "policy_denied", "the retry of a first attempt that failed")
        assert a["error"]["message"].startswith("approval_max_age"), a
        eq(sorted(x.get("rule") for x in j.audit_events("refused") if x.get("rule")),
           ["approval_max_age", "max_active_per_user"], "refusals audited")
        eq([g for g in j.ok({"op": "list", "state": "all"})["grants"]
            if g.get("request_id") == "cab-race-2"], [], "grants with that request_id")
        assert not e.is_member("admins", e.user_dn("alice")), "alice was granted admins"
    finally:
        e.__exit__(None, None, None)


def test_loose_key_file_refuses_signed_grants():
    sign = _doc_sign()
    e, key_file = _env()
    try:
        os.chmod(key_file, 0o644)
        a = e.jitd.request(sign(_req(), KEY))
        # jitd's fault, not the request's: internal (retryable as is), the
        # rule audited, the reason (mode, path) in jitd's log only
        refused(a, "internal", "a signed grant while the key file is loose")
        assert a["error"]["message"].startswith("approval_key_file"), a
        assert "0644" not in a["error"]["message"] and key_file not in a["error"]["message"], a
        ev = e.jitd.audit_events("refused")[-1]
        eq((ev.get("rule"), ev.get("error")), ("approval_key_file", "internal"), "audited")
        assert "0644" in e.jitd.stderr_tail(50), "the reason is not in jitd's log"
        assert not e.is_member("admins", e.user_dn("alice"))
        # mended: the same request, sent again as it is, is granted
        os.chmod(key_file, 0o600)
        a = e.jitd.request(sign(_req(), KEY))
        assert a.get("ok"), a
    finally:
        e.__exit__(None, None, None)


def test_key_file_line_ends_read_as_the_docs_say():
    """The approval system reads the key as docs/policy.md shows and jitd
    reads it the same way, whatever single line end the file has (regression:
    the docs stripped every trailing newline, jitd one, so a file ending in
    "\r\n" or two newlines gave the two sides different keys)."""
    sign = _doc_sign()
    e, key_file = _env()
    try:
        for i, ending in enumerate((b"\n", b"\r\n", b"", b"\n\n")):
            with open(key_file, "wb") as f:
                f.write(KEY + ending)
            key = _doc_read_key(key_file)
            eq(key, KEY + (b"\n" if ending == b"\n\n" else b""), "key read as the docs say")
            a = e.jitd.request(sign(_req(rid="line-end-%d" % i), key))
            assert a.get("ok"), (ending, a)
            e.jitd.ok({"op": "revoke", "grant_id": a["grant"]["grant_id"]})
    finally:
        e.__exit__(None, None, None)


def _ext(g, duration=1800, **kw):
    """An extend request for grant g as the approver sees it now."""
    r = {"op": "extend", "grant_id": g["grant_id"], "duration": duration,
         "expires_at": g["expires_at"], "approved_by": "carol"}
    r.update(kw)
    return r


def test_signed_extensions():
    sign = _doc_sign()
    sign_extend = _doc_sign_extend()
    e, _ = _env()
    try:
        j = e.jitd
        g = j.ok(sign(_req(duration=1800), KEY))["grant"]
        gid = g["grant_id"]
        held = {"expires_at": g["expires_at"], "duration": 1800}  # what the grant must hold

        def unchanged(what):
            now = j.show(gid)
            eq((now["expires_at"], now["duration"]), (held["expires_at"], held["duration"]),
               "expires_at and duration after " + what)

        def denied(req, rule, what):
            n = len(j.audit_events("refused"))
            _denied(e, j.request(req), rule)
            ev = j.audit_events("refused")
            eq(len(ev), n + 1, "one refused event for " + what)
            eq((ev[-1].get("op"), ev[-1].get("grant_id")), ("extend", gid), "refused event")
            unchanged(what)

        # unsigned: the helpdesk (or a listener) alone cannot extend it
        denied({"op": "extend", "grant_id": gid, "duration": "3h"}, "approval_key_file",
               "an unsigned extend")
        denied({"op": "extend", "grant_id": gid, "duration": 1800,
                "expires_at": g["expires_at"]},
               "approval_key_file", "an unsigned extend with expires_at")
        # signed with another key, or changed after signing
        denied(sign_extend(_ext(g), b"another key"), "approval_key_file", "another key")
        r = sign_extend(_ext(g), KEY)
        r["duration"] = 3 * 3600
        denied(r, "approval_key_file", "a changed duration")
        r = sign_extend(_ext(g), KEY)
        del r["expires_at"]
        denied(r, "approval_key_file", "no expires_at")
        # a grant's signature is not an extension's
        denied(sign(_ext(g), KEY), "approval_key_file", "a grant-form signature")
        # too old, or from the future
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        denied(sign_extend(_ext(g), KEY, old), "approval_max_age", "an old approval")
        ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        denied(sign_extend(_ext(g), KEY, ahead), "approval_max_age", "a future approval")
        # a signed extension is applied once
        signed = sign_extend(_ext(g), KEY)
        a = j.ok(dict(signed))["grant"]
        eq(parse_time(a["expires_at"]), parse_time(g["expires_at"]) + 1800,
           "extended by 30 minutes")
        eq(a["duration"], 3600, "duration after the signed extension")
        ev = j.audit_events("extended")[-1]
        eq((ev["grant_id"], ev["added"], ev.get("extension_approved_by"),
            ev.get("extension_approved_at")), (gid, 1800, "carol", signed["approved_at"]),
           "extended event")
        # the same signed extension again: refused, nothing changes
        held = {"expires_at": a["expires_at"], "duration": 3600}
        g = dict(g, expires_at=a["expires_at"], duration=3600)
        n_ext = len(j.audit_events("extended"))
        denied(dict(signed), "expires_at", "a replay")
        assert "applied already" in j.audit_events("refused")[-1]["message"]
        eq(len(j.audit_events("extended")), n_ext, "no extended line for the replay")
        eq(j.show(gid)["duration"], 3600, "duration after the replay")
        # the whole grant still counts toward max_duration (4h)
        a = j.request(sign_extend(_ext(dict(g, duration=3600), duration=3 * 3600 + 1), KEY))
        refused(a, "duration_exceeds_max", "signed extension past max_duration")
        # jitctl relays a signed extension
        r = sign_extend(_ext(g, duration=600), KEY)
        p = j.jitctl("extend", gid, "600", "--expires-at", r["expires_at"], "--approved-by",
                     "carol", "--approved-at", r["approved_at"], "--approval-sig",
                     r["approval_sig"])
        eq(p.returncode, 0, "jitctl signed extend: %s" % p.stderr)
        eq(j.show(gid)["duration"], 4200, "duration after jitctl's extension")
        # a group without a key extends without a signature; expires_at pins it
        w = j.must_grant("grace", "web", "1h")
        j.ok({"op": "extend", "grant_id": w["grant_id"], "duration": 60,
              "expires_at": w["expires_at"]})
        a = j.request({"op": "extend", "grant_id": w["grant_id"], "duration": 60,
                       "expires_at": w["expires_at"]})
        _denied(e, a, "expires_at")
        eq(j.show(w["grant_id"])["duration"], 3660, "web grant extended once")
        assert KEY.decode() not in j.stderr_tail(100000)
    finally:
        e.__exit__(None, None, None)
