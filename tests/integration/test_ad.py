"""Active Directory: jitd against a real Samba AD DC (tests/lib/samba.py).

jitd binds as the delegated service account jitsvc with GSSAPI from an
exported keytab, with SASL sealing, and finds users by sAMAccountName and
objectGUID. Each test restores a freshly provisioned domain and checks the
directory itself. Skipped, with the reason, where Samba cannot run.
"""

import os
import time

from jittest import exclusive, eq, refused, timeout, wait_until, skip
from jitd import parse_time
from samba import AdEnv, jitd_directory, jitd_group

GRANT_SLACK = 4  # seconds a removal may take after expires_at (scheduler + LDAP)


def _grant(e, user, group, duration, **kw):
    return e.jitd.must_grant(user, group, duration, **kw)


def _event(e, event, grant_id):
    ev = e.jitd.audit_events(event, grant_id)
    if len(ev) != 1:
        raise AssertionError("expected one %s event for %s, got %r" % (event, grant_id, ev))
    return ev[0]


@exclusive("samba")
@timeout(240)
def test_ad_grant_expiry_complete_and_standing_member():
    with AdEnv() as e:
        dc = e.dc
        eq(dc.is_member("Domain Admins", "alice"), False, "alice before")
        eq(dc.is_member("Domain Admins", "Administrator"), True, "Administrator before")

        ga = _grant(e, "alice", "domain-admins", 3, ticket="INC-1")
        eq(dc.is_member("Domain Admins", "alice"), True, "alice granted")
        eq(ga["user_dn"].lower(), dc.user_dn("alice").lower(), "user_dn")
        granted = _event(e, "granted", ga["grant_id"])
        eq(granted["outcome"], "added", "granted outcome")
        eq(granted["user_uuid"], dc.guid("alice"), "objectGUID recorded")

        gb = _grant(e, "bob", "domain-admins", "1h")
        eq(dc.is_member("Domain Admins", "bob"), True, "bob granted")
        done = e.jitd.ok({"op": "complete", "grant_id": gb["grant_id"], "reason": "done"})
        eq(done["grant"]["state"], "completed", "complete answer")
        eq(dc.is_member("Domain Admins", "bob"), False, "bob after complete")
        eq(_event(e, "completed", gb["grant_id"])["outcome"], "removed", "complete outcome")

        gadm = _grant(e, "Administrator", "domain-admins", 2)
        eq(gadm["standing"], True, "Administrator is a standing member")

        e.wait_not_member("Domain Admins", "alice", parse_time(ga["expires_at"]) + GRANT_SLACK,
                          "expiry of alice")
        wait_until(lambda: e.jitd.show(gadm["grant_id"])["state"] == "expired", 10,
                   "the Administrator grant to expire")
        # The membership goes first, then the `expired` line, then the row's
        # final state: the row may still say `ending` for a moment.
        wait_until(lambda: e.jitd.show(ga["grant_id"])["state"] == "expired", 10,
                   "alice's grant to be recorded expired")
        eq(_event(e, "expired", ga["grant_id"])["outcome"], "removed", "expiry outcome")
        eq(_event(e, "expired", gadm["grant_id"])["outcome"], "kept_standing", "standing")
        eq(dc.is_member("Domain Admins", "Administrator"), True,
           "Administrator (standing) after its grant expired")
        st = e.jitd.ok({"op": "status"})["status"]
        eq(st["directories"][0]["connected"], True, "status: directory connected")


@exclusive("samba")
@timeout(240)
def test_ad_a_user_renamed_between_look_up_and_add_is_the_one_added():
    """carol is looked up; before the add (a fault pause), she is renamed
    away and another account is created at her old DN. The add goes to the
    entry jitd looked up and checked (by <GUID=...>), not to whoever holds
    the DN now (regression: the DN was written, the other account became a
    Domain Admin, and carol's removal by GUID at the end left it there)."""
    from test_failures import need_faults
    need_faults()
    with AdEnv(env={"JITD_FAULT": "grant.before_pending:sleep=6000@1"}) as e:
        dc, j = e.dc, e.jitd
        guid = dc.guid("carol")
        old_dn = dc.user_dn("carol")
        c = j.connect(timeout=60)
        c.send({"op": "grant", "user": "carol", "group": "domain-admins", "duration": "1h"})
        wait_until(lambda: "fault pause" in j.stderr_tail(40), 20, "the grant held before its add")
        new_dn = dc.rename(old_dn, "CN=Carol Moved", "OU=Moved," + dc.base)
        other = dc.add_user("carol", "carol2")
        eq(other.lower(), old_dn.lower(), "the other account holds carol's old DN")
        a = c.recv()
        c.close()
        assert a.get("ok"), a
        eq(dc.is_member("Domain Admins", "carol2"), False, "the account that took the DN")
        eq(dc.is_member("Domain Admins", "carol"), True, "carol, the user looked up")
        eq(dc.find_user("carol").lower(), new_dn.lower(), "carol's DN now")
        j.ok({"op": "complete", "grant_id": a["grant"]["grant_id"]})
        eq(dc.is_member("Domain Admins", "carol"), False, "carol after the complete")
        eq(_event(e, "completed", a["grant"]["grant_id"])["removed_value"], "<GUID=%s>" % guid,
           "removed by GUID")


@exclusive("samba")
@timeout(240)
def test_ad_a_group_moved_during_the_grant_is_not_taken_for_an_absent_member():
    """The group is renamed while alice's grant lasts (AD keeps its links):
    the removal, made at the group's old DN, is answered 32. That is no
    answer about alice: the grant stays ending and is retried, and she is
    still in the renamed group (regression: the 32 was confirmed by a
    search of the old DN, which answered 32 too, and the grant closed
    already_absent with alice a member for good)."""
    with AdEnv() as e:
        dc, j = e.dc, e.jitd
        g = _grant(e, "alice", "jit-ops", "1h")
        moved = dc.rename(dc.group_dn("JIT Ops"), "CN=JIT Ops Moved")
        a = j.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(a["grant"]["state"], "ending", "the complete's answer")
        sh = j.show(g["grant_id"])
        eq(sh["state"], "ending", "the grant after the refused removal")
        assert "32" in sh.get("last_error", ""), sh
        eq(j.audit_events("completed", g["grant_id"]), [], "completed lines")
        from samba import norm_dn
        members = dc.members(moved)
        assert norm_dn(dc.find_user("alice")) in members, \
            "alice left the renamed group: %r" % members


@exclusive("samba")
@timeout(240)
def test_ad_refusals_disabled_unknown_and_not_delegated():
    with AdEnv() as e:
        dc = e.dc
        a = e.jitd.grant("mallory", "domain-admins", "1h")
        refused(a, "policy_denied", "disabled account")
        eq(dc.is_member("Domain Admins", "mallory"), False, "mallory after refusal")
        ev = [x for x in e.jitd.audit_events("refused") if x.get("user") == "mallory"]
        eq(len(ev), 1, "refused event for mallory")
        eq(ev[0]["error"], "policy_denied", "refused error")

        refused(e.jitd.grant("nobody", "domain-admins", "1h"), "unknown_user", "unknown user")
        refused(e.jitd.grant("*", "domain-admins", "1h"), "unknown_user", "wildcard user")
        refused(e.jitd.grant("alice)(sAMAccountName=*", "domain-admins", "1h"), "unknown_user",
                "filter injection")
        # a computer account is no user: the documented filter does not find
        # it (objectClass=user would, and make the machine a Domain Admin)
        refused(e.jitd.grant("DC1$", "domain-admins", "1h"), "unknown_user", "computer account")
        eq(dc.is_member("Domain Admins", "DC1$"), False, "DC1$ after refusal")

        # The service account may write member of the delegated groups only.
        before = dc.members("Not Delegated")
        a = e.jitd.grant("alice", "not-delegated", "1h")
        refused(a, "directory_refused", "group jitsvc may not write")
        eq(dc.members("Not Delegated"), before, "Not Delegated unchanged")
        failed = e.jitd.audit_events("failed")
        eq(len(failed), 1, "one failed grant")
        eq(failed[0]["ldap_code"], 50, "insufficientAccess")

        # The same identity, by hand: nothing but member of Domain Admins.
        cc = "FILE:" + os.path.join(dc.dir, "svc.ccache")
        r = dc.svc_modify("dn: %s\nchangetype: modify\nreplace: description\n"
                          "description: owned\n" % dc.group_dn("Domain Admins"), cc)
        eq(r.returncode, 50, "jitsvc writing description: %s" % r.stderr.strip())
        r = dc.svc_modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n"
                          % (dc.group_dn("Enterprise Admins"), dc.user_dn("alice")), cc)
        eq(r.returncode, 50, "jitsvc adding to Enterprise Admins: %s" % r.stderr.strip())
        r = dc.svc_modify("dn: %s\nchangetype: modify\nreplace: description\n"
                          "description: owned\n" % dc.user_dn("alice"), cc)
        eq(r.returncode, 50, "jitsvc writing a user: %s" % r.stderr.strip())
        # ... and it can write member there (so the 50s above are the ACL).
        r = dc.svc_modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n"
                          % (dc.group_dn("JIT Ops"), dc.user_dn("frank")), cc)
        eq(r.returncode, 0, "jitsvc adding to JIT Ops: %s" % r.stderr.strip())


@exclusive("samba")
@timeout(240)
def test_ad_user_renamed_and_moved_during_window_is_still_removed():
    with AdEnv() as e:
        dc = e.dc
        guid = dc.guid("carol")
        g = _grant(e, "carol", "domain-admins", 4)
        old_dn = dc.user_dn("carol")
        # Renamed and moved to another OU while the grant runs.
        new_dn = dc.rename(old_dn, "CN=Carol Moved", "OU=Moved," + dc.base)
        eq(dc.find_user("carol").lower(), new_dn.lower(), "carol's new DN")
        eq(dc.is_member("Domain Admins", "carol"), True, "membership follows the rename (AD)")
        # Someone else now holds the old DN, and is a member in their own right.
        other = dc.add_user("carol", "carol2")
        dc.add_member("Domain Admins", other)
        e.wait_not_member("Domain Admins", "carol", parse_time(g["expires_at"]) + GRANT_SLACK,
                          "expiry after rename")
        eq(dc.is_member("Domain Admins", "carol2"), True,
           "the new owner of the old DN keeps their membership")
        ev = _event(e, "expired", g["grant_id"])
        eq(ev["outcome"], "removed", "outcome")
        eq(ev["removed_value"], "<GUID=%s>" % guid, "removed by GUID")


@exclusive("samba")
@timeout(240)
def test_ad_already_gone_deleted_user_and_overlapping_grants():
    with AdEnv() as e:
        dc = e.dc
        # Removed by hand during the window: AD answers 53, which jitd
        # believes only after a search agrees.
        gd = _grant(e, "dave", "jit-ops", 2)
        dc.remove_member("JIT Ops", dc.user_dn("dave"))
        # Deleted during the window: the GUID names no object any more (21).
        ge = _grant(e, "erin", "jit-ops", 2)
        dc.delete(dc.user_dn("erin"))
        # Two grants for one user: the membership stays until the last ends.
        g1 = _grant(e, "frank", "jit-ops", 2)
        g2 = _grant(e, "frank", "jit-ops", 8)
        eq(_event(e, "granted", g2["grant_id"])["outcome"], "already_member", "second grant")
        for g in (gd, ge, g1):
            wait_until(lambda g=g: e.jitd.show(g["grant_id"])["state"] == "expired",
                       parse_time(g["expires_at"]) + GRANT_SLACK - time.time(),
                       "grant %s to expire" % g["grant_id"])
        eq(_event(e, "expired", gd["grant_id"])["outcome"], "already_absent", "dave")
        eq(_event(e, "expired", ge["grant_id"])["outcome"], "already_absent", "erin (deleted)")
        eq(_event(e, "expired", g1["grant_id"])["outcome"], "kept_other_grant", "frank #1")
        eq(dc.is_member("JIT Ops", "frank"), True, "frank while grant #2 runs")
        e.wait_not_member("JIT Ops", "frank", parse_time(g2["expires_at"]) + GRANT_SLACK,
                          "expiry of frank's second grant")
        eq(e.jitd.audit_events("revoke_failed"), [], "no failed removal")


@exclusive("samba")
@timeout(240)
def test_ad_primary_group_membership_is_not_taken_as_removed():
    """A grantee who makes the granted group their primary group
    (primaryGroupID = its primaryGroupToken) leaves its `member` values, so
    jitd's removal answers 53 and a search finds no value, while the user
    is still a member. jitd does not close the grant as already_absent: the
    removal is refused and retried (revoke_failed, revocations_failing)
    until the primary group is changed back, and then it ends. (Regression:
    the grant closed already_absent and the membership stayed.)"""
    with AdEnv() as e:
        dc = e.dc
        gdn = dc.group_dn("JIT Ops")
        g = _grant(e, "dave", "jit-ops", "1h")
        token = int(dc.search(gdn, scope="base", attrs=["primaryGroupToken"])[0][1]
                    ["primarygrouptoken"][0])
        dave = dc.find_user("dave")
        dc.ldapmodify("dn: %s\nchangetype: modify\nreplace: primaryGroupID\n"
                      "primaryGroupID: %d\n" % (dave, token))
        e.jitd.request({"op": "complete", "grant_id": g["grant_id"]})
        wait_until(lambda: e.jitd.audit_events("revoke_failed", g["grant_id"]), 10,
                   "a revoke_failed event")
        fail = e.jitd.audit_events("revoke_failed", g["grant_id"])[0]
        assert "primary group" in fail.get("message", ""), fail
        eq(e.jitd.show(g["grant_id"])["state"], "ending", "the grant while AD keeps it")
        eq(e.jitd.ok({"op": "status"})["status"]["revocations_failing"], 1,
           "revocations_failing")
        # Changed back (Domain Users: 513): AD puts the value back in
        # `member`, and the next retry removes it.
        dc.ldapmodify("dn: %s\nchangetype: modify\nreplace: primaryGroupID\n"
                      "primaryGroupID: 513\n" % dave)
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "completed", 30,
                   "the grant to complete after the primary group changed back")
        eq(dc.is_member("JIT Ops", "dave"), False, "dave after the grant")
        eq(_event(e, "completed", g["grant_id"])["outcome"], "removed", "outcome")


def _set_primary_group(dc, user_dn, rid):
    dc.ldapmodify("dn: %s\nchangetype: modify\nreplace: primaryGroupID\n"
                  "primaryGroupID: %d\n" % (user_dn, rid))


@exclusive("samba")
@timeout(240)
def test_ad_drift_sees_members_by_primary_group():
    """A user whose primary group is a managed group (primaryGroupID = its
    primaryGroupToken) is a member that `member` never lists. The drift
    check finds it: frank, made a member that way by hand, is reported
    unexplained with via primaryGroupID and a message saying jitd cannot
    remove it (enforce does not try); dave, a grantee who did the same, is
    not reported missing. (Before, neither was seen: frank's privilege was
    invisible to drift, and dave was reported removed by someone else.)"""
    with AdEnv(start=False, top={"reconcile_interval": "1s"}) as e:
        dc, j = e.dc, e.jitd
        for g in j.config["groups"]:
            if g["name"] == "jit-ops":
                g["reconcile"] = "enforce"
        gdn = dc.group_dn("JIT Ops")
        token = int(dc.search(gdn, scope="base", attrs=["primaryGroupToken"])[0][1]
                    ["primarygrouptoken"][0])
        frank = dc.find_user("frank")
        dc.add_member("JIT Ops", frank)  # AD wants a member before it is primary
        _set_primary_group(dc, frank, token)
        eq(dc.is_member("JIT Ops", "frank"), False, "frank is no value of member")
        j.write_config()
        j.start()
        _grant(e, "dave", "jit-ops", "1h")
        dave = dc.find_user("dave")
        _set_primary_group(dc, dave, token)

        def by_primary():
            return [d for d in j.audit_events("drift") if d.get("via") == "primaryGroupID"]
        wait_until(by_primary, 20, "a drift event for frank")
        pos = j.stderr_pos()
        wait_until(lambda: j.stderr_since(pos).count("group(s) checked in") >= 3, 20,
                   "three more reconcile passes")
        drift = [d for d in j.audit_events("drift") if d["group"] == "jit-ops"]
        eq([(d["kind"], d["member"].lower(), d.get("via"), d["action"]) for d in drift],
           [("unexplained", frank.lower(), "primaryGroupID", "reported")],
           "drift: frank once, dave not missing: %r" % (drift,))
        assert "cannot remove it" in drift[0].get("message", ""), drift[0]
        eq(int(dc.search(frank, scope="base", attrs=["primaryGroupID"])[0][1]
               ["primarygroupid"][0]), token, "frank's primary group unchanged")
        _set_primary_group(dc, dave, 513)  # Domain Users, before the domain is reset


@exclusive("samba")
@timeout(240)
def test_ad_gssapi_uses_only_its_keytab_in_a_private_cache():
    with AdEnv(start=False) as e:
        dc = e.dc
        # A ticket cache holding Administrator's TGT in jitd's environment:
        # a jitd that used it could write any group.
        admin_cc = "FILE:" + os.path.join(dc.dir, "admin.ccache")
        dc.kinit_admin(admin_cc)
        before = dc.klist(admin_cc)
        e.jitd.extra_env.update({"KRB5CCNAME": admin_cc,
                                 "KRB5_CLIENT_KTNAME": "/nonexistent.keytab"})
        e.jitd.start()
        refused(e.jitd.grant("alice", "not-delegated", "1h"), "directory_refused",
                "not delegated, whatever ticket lies around")
        g = _grant(e, "alice", "jit-ops", "1h")
        eq(dc.is_member("JIT Ops", "alice"), True, "bound with the keytab")
        eq(dc.klist(admin_cc), before, "Administrator's cache untouched")
        if "ldap/localhost" in before:
            raise AssertionError("test setup: unexpected service ticket in %s" % before)
        e.jitd.ok({"op": "revoke", "grant_id": g["grant_id"]})
        eq(dc.is_member("JIT Ops", "alice"), False, "revoked")

        # An explicit principal that is in the keytab works; one that is not
        # fails to bind (no other credentials are tried).
        e.jitd.stop()
        e.jitd.config["directories"][0]["principal"] = "jitsvc@" + dc.realm
        e.jitd.write_config()
        e.jitd.start()
        _grant(e, "bob", "jit-ops", "1h")
        eq(dc.is_member("JIT Ops", "bob"), True, "explicit principal")
        e.jitd.stop()
        e.jitd.config["directories"][0]["principal"] = "alice@" + dc.realm
        e.jitd.write_config()
        e.jitd.start()
        a = e.jitd.grant("carol", "jit-ops", "1h")
        refused(a, "directory_unavailable", "principal not in the keytab")
        if "keytab" not in a["error"]["message"]:
            raise AssertionError("message should name the keytab: %r" % a)
        st = e.jitd.ok({"op": "status"})["status"]["directories"][0]
        eq(st["connected"], False, "status after a failed bind")
        eq(dc.is_member("JIT Ops", "carol"), False, "carol not added")


@exclusive("samba")
@timeout(900)
def test_ad_ticket_renewal_over_ticket_lifetime():
    """Tickets expire (5 minutes, the shortest Samba's KDC issues a service
    ticket for); jitd keeps working because it gets new ones from the keytab.
    Takes six minutes: runs only with JITTEST_LONG=1."""
    if not os.environ.get("JITTEST_LONG"):
        skip("takes 6 minutes (Samba's KDC refuses ticket lifetimes under 5 minutes); "
             "run with JITTEST_LONG=1")
    with AdEnv(ticket_lifetime="5m") as e:
        dc = e.dc
        g = _grant(e, "alice", "jit-ops", "1h")
        first = dc.kdc_logins("jitsvc")
        if first < 1:
            raise AssertionError("no Kerberos login of jitsvc in the KDC's audit log")
        t_end = time.time() + 330
        while time.time() < t_end:
            time.sleep(10)
        # The first TGT and service tickets have expired by now (Samba also
        # ends an LDAP session when its ticket expires, so jitd may have
        # bound again already). A restart of the DC drops jitd's connections
        # too: the next request binds again, with tickets jitd must have got
        # from the keytab by itself since the first ones.
        dc.restart()
        g2 = _grant(e, "bob", "jit-ops", 2)
        eq(dc.is_member("JIT Ops", "bob"), True, "grant after the tickets expired")
        if dc.kdc_logins("jitsvc") <= first:
            raise AssertionError("no new Kerberos login (AS-REQ) of jitsvc after the first "
                                 "tickets expired")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(dc.is_member("JIT Ops", "alice"), False, "complete after the tickets expired")
        e.wait_not_member("JIT Ops", "bob", parse_time(g2["expires_at"]) + GRANT_SLACK)


def _dirlist(j, group_dn, step):
    """Runs tests/tools/dirlist (jitd's directory code) -> list of values."""
    import subprocess
    from jitd import builddir
    tool = os.path.join(builddir(), "tests", "tools", "dirlist")
    r = subprocess.run([tool, j.conf, "ad", group_dn, "member", str(step)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("dirlist step %d: %s" % (step, r.stderr))
    lines = r.stdout.splitlines()
    eq(lines[-1], "count %d" % (len(lines) - 1), "dirlist count line")
    return lines[:-1]


@exclusive("samba")
@timeout(240)
def test_ad_member_list_by_range_retrieval():
    with AdEnv(start=False) as e:
        dc = e.dc
        names = ["Administrator", "alice", "bob", "carol", "dave", "erin", "frank", "mallory",
                 "jitsvc", "Guest"]
        for n in names:
            dc.add_member("JIT Ops", dc.user_dn(n))
        want = sorted(norm for norm in dc.members("JIT Ops"))
        eq(len(want), len(names), "members added")
        gdn = dc.group_dn("JIT Ops")
        from slapd import norm_dn
        for step in (0, 1, 3, 4, 10, 11):
            got = sorted(norm_dn(v) for v in _dirlist(e.jitd, gdn, step))
            eq(got, want, "member list read %s at a time" % (step or "all"))
        eq(_dirlist(e.jitd, dc.group_dn("Not Delegated"), 3), [], "empty group")


@exclusive("samba")
@timeout(240)
def test_ad_expiries_of_one_group_leave_it_with_one_modify():
    """Three grants of one group expiring together leave it with one modify
    that deletes their <GUID=...> values (jitd's log says so), each
    outcome `removed` with the GUID as the value removed."""
    users = ["alice", "bob", "carol"]
    with AdEnv() as e:
        dc = e.dc
        # 6 s: each must outlive the three checks after the grants (two
        # searches of the DC each, slower under load); made back to back,
        # they still fall due together.
        gs = {u: _grant(e, u, "jit-ops", 6) for u in users}
        for u in users:
            eq(dc.is_member("JIT Ops", u), True, "%s granted" % u)
        for u in users:
            e.wait_not_member("JIT Ops", u, parse_time(gs[u]["expires_at"]) + GRANT_SLACK,
                              "expiry of %s" % u)
        for u in users:
            wait_until(lambda u=u: e.jitd.show(gs[u]["grant_id"])["state"] == "expired", 10,
                       "grant of %s to expire" % u)
            ev = _event(e, "expired", gs[u]["grant_id"])
            eq((ev["outcome"], ev["removed_value"]), ("removed", "<GUID=%s>" % dc.guid(u)), u)
        with open(e.jitd.stderr_path, errors="replace") as f:
            together = [line for line in f
                        if "with one modify" in line and "jit ops" in line.lower()]
        n = sum(int(line.split(" expired membership")[0].split()[-1]) for line in together)
        if not together or n < 2:
            raise AssertionError("no modify removed two or more members at once: %r" % together)
        eq(e.jitd.audit_events("revoke_failed"), [], "no failed removal")


@exclusive("samba")
@timeout(240)
def test_ad_a_stalled_directory_does_not_hold_back_the_binds_of_another():
    """Two directories with GSSAPI from keytabs; the first's server accepts
    connections and never answers (its binds wait the whole timeout). The
    second's binds must not wait for them: GSSAPI binds are serialised per
    credential cache (per directory), not process-wide."""
    from fakeldap import MuteServer
    with MuteServer() as mute, AdEnv(start=False) as e:
        dc, j = e.dc, e.jitd
        ad = j.config["directories"][0]
        stalled = jitd_directory(dc, name="stalled", uri="ldap://localhost:%d" % mute.port,
                                 timeout=20, connections=2)
        # The stalled directory first: its workers start (and bind) first.
        j.config["directories"] = [stalled, ad]
        j.config["groups"].append(jitd_group(dc, "elsewhere", "JIT Ops", directory="stalled"))
        j.write_config()
        t0 = time.time()
        j.start()
        g = _grant(e, "alice", "jit-ops", "1h")
        took = time.time() - t0
        eq(dc.is_member("JIT Ops", "alice"), True, "granted on the answering directory")
        assert mute.accepted >= 1, "the stalled directory was never tried"
        # A bind to the answering DC takes well under a second (the start
        # and the grant, a few under load); one stalled bind holding a
        # process-wide lock costs the 20 s timeout.
        assert took < 10, "the first grant waited %.1fs for another directory's binds" % took
        e.jitd.ok({"op": "revoke", "grant_id": g["grant_id"]})
        eq(dc.is_member("JIT Ops", "alice"), False, "revoked")
        print("first grant %.2fs after start, beside a stalled directory (timeout 20s)" % took)
        # Its connections closed, the stalled binds end now: jitd's stop
        # need not wait out their 20 s.
        mute.stop()
