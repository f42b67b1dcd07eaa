"""Per-group policy rules (docs/policy.md) against a real slapd: each rule
refused with `policy_denied` (or `duration_exceeds_max`) naming the rule,
with a `refused` audit event carrying it, and accepted at its boundary."""

import concurrent.futures
import json
import os
import signal
import time

from jittest import Env, eq, refused, need_root, wait_until, freeze, thaw


def _denied(e, answer, rule, code="policy_denied", what=None):
    """answer is a refusal with code naming rule, and the newest `refused`
    audit event carries that rule."""
    refused(answer, code, what or rule)
    assert rule in answer["error"]["message"], (rule, answer)
    ev = e.jitd.audit_events("refused")
    assert ev, "no refused event for %s" % rule
    eq(ev[-1].get("rule"), rule, "rule of the last refused event (%r)" % ev[-1])
    eq(ev[-1].get("error"), code, "error of the last refused event")


def test_group_rules_at_their_boundaries():
    with Env(start=False) as e:
        sl = e.slapd
        g = e.jitd.group_entry("admins", min_duration="10m", default_duration="1h",
                               max_duration="2h", require_ticket=True,
                               ticket_pattern="^(INC|CHG)[0-9]{5,}$", require_reason=True,
                               require_approver=True, forbid_self_approval=True,
                               deny_users=["dave", "UID=erin, ou=people," + sl.suffix])
        e.jitd.config["groups"] = [g, e.jitd.group_entry("dba")]
        e.jitd.write_config()
        e.jitd.start()
        j = e.jitd
        good = {"ticket": "INC12345", "reason": "restore", "requested_by": "alice",
                "approved_by": "carol"}

        def ask(user="alice", duration="1h", **kw):
            req = dict(good)
            req.update(kw)
            return j.grant(user, "admins", duration, **{k: v for k, v in req.items()
                                                          if v is not None})

        before = sl.members("admins")
        _denied(e, ask(duration="599s"), "min_duration")
        _denied(e, ask(duration="2h1s"), "max_duration", code="duration_exceeds_max")
        _denied(e, ask(ticket=None), "require_ticket")
        _denied(e, ask(ticket="INC1234"), "ticket_pattern")
        _denied(e, ask(ticket="INC12345x"), "ticket_pattern")
        _denied(e, ask(reason=None), "require_reason")
        _denied(e, ask(approved_by=None), "require_approver")
        _denied(e, ask(approved_by="Alice"), "forbid_self_approval")
        _denied(e, ask(requested_by="bob", approved_by="bob"), "forbid_self_approval")
        _denied(e, ask(user="dave"), "deny_users")
        _denied(e, ask(user="DAVE"), "deny_users")
        # a DN entry: refused once the directory names the user
        _denied(e, ask(user="erin"), "deny_users")
        eq(sl.members("admins"), before, "no refusal changed the group")
        # every refusal is in the audit log with the peer and the rule
        ev = j.audit_events("refused")
        eq(len(ev), 12, "refused events")
        assert all(x.get("peer_uid") == 0 and x.get("group") == "admins" for x in ev), ev

        # accepted exactly at the boundaries
        g1 = e.grant_and_check("alice", "admins", "10m", **good)
        eq(g1["duration"], 600, "min_duration boundary")
        g2 = j.must_grant("bob", "admins", "2h", **dict(good, requested_by="bob"))
        eq(g2["duration"], 7200, "max_duration boundary")
        # the default applies when no duration is given (and passes min)
        g3 = j.must_grant("carol", "admins", None, **dict(good, requested_by="carol",
                                                           approved_by="frank"))
        eq(g3["duration"], 3600, "default_duration")
        # extensions count toward max_duration: 10m + 1h50m = 2h ok, +1s not
        j.ok({"op": "extend", "grant_id": g1["grant_id"], "duration": "1h50m",
              "approved_by": "frank"})
        a = j.request({"op": "extend", "grant_id": g1["grant_id"], "duration": 1,
                       "approved_by": "frank"})
        _denied(e, a, "max_duration", code="duration_exceeds_max", what="extend past max")
        eq(j.show(g1["grant_id"])["duration"], 7200, "duration after refused extend")
        # a group without rules needs none of the fields
        e.grant_and_check("dave", "dba", "1m")


def test_self_approval_by_another_spelling_and_of_an_extension():
    """forbid_self_approval compares names as the directory does, and also
    with the uid of the entry the user resolves to: " alice@..." finds the
    same entry as "alice@...", and alice's mail (which the user_filter
    matches here) is alice, whose uid is "alice", so none of those can be
    approved by alice (regression: names were compared as text, and the
    grant was made). An extension is a new approval: it needs approved_by
    where the group has require_approver, and it may not name the grant's
    user or requester where forbid_self_approval is set (regression:
    extensions skipped both rules)."""
    with Env(start=False, directory={"user_filter": "(mail=%s)"}) as e:
        sl, j = e.slapd, e.jitd
        for u in ("alice", "dave"):
            sl.ldapmodify("dn: %s\nchangetype: modify\nadd: mail\nmail: %s@example.org\n"
                          % (sl.user_dn(u), u))
        alice, dave = "alice@example.org", "dave@example.org"
        j.config["groups"] = [j.group_entry("admins", require_approver=True,
                                            forbid_self_approval=True),
                              j.group_entry("dba", forbid_self_approval=True),
                              j.group_entry("web")]
        j.write_config()
        j.start()
        before = sl.members("admins")
        _denied(e, j.grant(" " + alice, "admins", "1h", approved_by=alice.upper(),
                           requested_by="bob"), "forbid_self_approval")
        _denied(e, j.grant(alice, "admins", "1h", approved_by="Alice ", requested_by="bob"),
                "forbid_self_approval")
        assert "in the directory" in j.audit_events("refused")[-1]["message"]
        _denied(e, j.grant(alice, "admins", "1h", approved_by=" bob", requested_by="bob"),
                "forbid_self_approval")
        eq(sl.members("admins"), before, "no refusal changed the group")

        g = j.must_grant(alice, "admins", "1h", approved_by="carol", requested_by="bob")
        assert e.is_member("admins", sl.user_dn("alice"))
        _extend_denied(e, g, "require_approver")
        # "alice": the directory's uid of the entry alice@example.org names
        # (regression: extensions compared only the names as asked)
        for approver in (alice, "Bob", "alice"):
            a = j.request({"op": "extend", "grant_id": g["grant_id"], "duration": 60,
                           "approved_by": approver})
            _denied(e, a, "forbid_self_approval", what="extension approved by " + approver)
        eq(j.show(g["grant_id"])["duration"], 3600, "no refused extension changed the grant")
        x = j.ok({"op": "extend", "grant_id": g["grant_id"], "duration": 60,
                  "approved_by": "carol"})["grant"]
        eq(x["duration"], 3660, "extended with another approver")
        eq(j.audit_events("extended")[-1].get("extension_approved_by"), "carol",
           "the extension's approver audited")
        # forbid_self_approval without require_approver: none is fine, self is not
        d = j.must_grant(dave, "dba", "1h", requested_by="erin")
        j.ok({"op": "extend", "grant_id": d["grant_id"], "duration": 60})
        a = j.request({"op": "extend", "grant_id": d["grant_id"], "duration": 60,
                       "approved_by": "Dave@Example.org"})
        _denied(e, a, "forbid_self_approval", what="dave approving his own extension")
        # a group with neither rule: as before
        w = j.must_grant(alice, "web", "1h")
        j.ok({"op": "extend", "grant_id": w["grant_id"], "duration": 60,
              "approved_by": alice})
        # deny_users added by a reload, naming the uid of a grant asked by
        # mail: no extension (regression: only the name as asked was compared)
        dd = j.must_grant(dave, "web", "1h")
        for grp in j.config["groups"]:
            if grp["name"] == "web":
                grp["deny_users"] = ["dave"]
        _reload(e)
        _extend_denied(e, dd, "deny_users")


def test_deny_users_dn_matches_the_directory_s_spelling():
    """A deny_users DN written the way an admin writes it is the same entry
    as the directory's own spelling of the user's DN: slapd answers
    `cn=Smith\\, John` as `cn=Smith\\2C John`, and a DN in other case
    (also non-ASCII) or with a multi-valued RDN in another order names the
    same entry. Each is refused (regression: the DNs were compared as
    text, so the denied user was granted)."""
    with Env(start=False) as e:
        sl = e.slapd
        sl.ldapadd("dn: cn=Smith\\, John,%s\nobjectClass: inetOrgPerson\ncn: Smith, John\n"
                   "sn: Smith\nuid: smithj\n" % sl.people)
        sl.ldapadd("dn: uid=\u00c9mile,%s\nobjectClass: inetOrgPerson\ncn: Emile\n"
                   "sn: E\nuid: \u00c9mile\n" % sl.people)
        sl.ldapadd("dn: cn=Ops+uid=opsbot,%s\nobjectClass: inetOrgPerson\ncn: Ops\n"
                   "sn: Bot\nuid: opsbot\n" % sl.people)
        g = e.jitd.group_entry("admins", deny_users=[
            "cn=Smith\\, John," + sl.people,
            "UID=\u00e9MILE," + sl.people.upper(),
            "uid=opsbot+cn=ops," + sl.people])
        e.jitd.config["groups"] = [g, e.jitd.group_entry("dba")]
        e.jitd.write_config()
        e.jitd.start()
        before = sl.members("admins")
        for user in ("smithj", "\u00c9mile", "opsbot"):
            _denied(e, e.jitd.grant(user, "admins", "10m"), "deny_users")
        eq(sl.members("admins"), before, "no denied user became a member")
        # the same users are not denied elsewhere, and the directory knows them
        for user in ("smithj", "\u00c9mile", "opsbot"):
            e.jitd.must_grant(user, "dba", "10m")


def test_deny_users_name_matches_in_any_case_of_unicode():
    """deny_users "J\u00dcRGEN" refuses j\u00fcrgen, however asked: slapd's
    uid compares case over all of Unicode (regression: names were compared
    in ASCII case only, so the denied user was granted)."""
    with Env(start=False) as e:
        sl = e.slapd
        sl.add_user("j\u00fcrgen")
        g = e.jitd.group_entry("admins", deny_users=["J\u00dcRGEN"])
        e.jitd.config["groups"] = [g, e.jitd.group_entry("dba")]
        e.jitd.write_config()
        e.jitd.start()
        before = sl.members("admins")
        _denied(e, e.jitd.grant("j\u00fcrgen", "admins", "10m"), "deny_users")
        _denied(e, e.jitd.grant("J\u00fcrgen", "admins", "10m"), "deny_users")
        eq(sl.members("admins"), before, "the denied user did not become a member")
        # the directory does find him, and he is not denied elsewhere
        e.jitd.must_grant("J\u00dcRGEN", "dba", "10m")


def test_refusal_quoting_a_cut_character_keeps_its_message():
    """A refusal's message quotes the ticket cut at 64 bytes, inside a
    two-byte character: the answer and the `refused` line still carry the
    message (regression: the line lost its `message` field, as invalid
    UTF-8 is no JSON string)."""
    with Env(start=False) as e:
        g = e.jitd.group_entry("admins", ticket_pattern="^INC[0-9]+$")
        e.jitd.config["groups"] = [g]
        e.jitd.write_config()
        e.jitd.start()
        ticket = "A" * 63 + "\u00e9"
        a = e.jitd.grant("alice", "admins", "10m", ticket=ticket)
        _denied(e, a, "ticket_pattern")
        ev = e.jitd.audit_events("refused")[-1]
        assert "message" in ev, "the refused line has no message: %r" % ev
        assert ev["message"].startswith("ticket_pattern"), ev
        assert "A" * 63 in ev["message"], ev
        eq(ev.get("ticket"), ticket, "the ticket as sent, whole")


def test_eligible_group_is_checked_live():
    with Env(start=False, slapd_kw={"groups": {"admins": ("gon", ["placeholder"]),
                                               "eligible": ("gon", ["@alice"])}}) as e:
        sl = e.slapd
        e.jitd.config["groups"] = [
            e.jitd.group_entry("admins", eligible_group=sl.group_dn("eligible")),
            e.jitd.group_entry("broken", dn=sl.group_dn("admins"),
                               eligible_group="cn=missing," + sl.groups_base)]
        e.jitd.write_config()
        e.jitd.start()
        e.grant_and_check("alice", "admins", "1h")
        _denied(e, e.jitd.grant("bob", "admins", "1h"), "eligible_group")
        assert not sl.is_member("admins", sl.user_dn("bob"))
        # the check is live: bob becomes eligible in the directory, no reload
        sl.add_member("eligible", sl.user_dn("bob"))
        e.grant_and_check("bob", "admins", "1h")
        sl.remove_member("eligible", sl.user_dn("alice"))
        _denied(e, e.jitd.grant("alice", "admins", "1h", request_id="again"),
                "eligible_group")
        # an eligible_group the directory does not have refuses (fail closed)
        a = e.jitd.grant("carol", "broken", "1h")
        _denied(e, a, "eligible_group", code="directory_refused")
        assert not sl.is_member("admins", sl.user_dn("carol"))


def test_retry_racing_its_first_request_is_a_duplicate_under_max_active_per_user():
    """The same grant (one request_id) arrives twice at once: a client's
    retry after a timeout, an at-least-once queue. Both pass the first
    look-up (neither is recorded yet); the first to record it makes the
    grant. Under max_active_per_user 1 the other must be answered as the
    retry it is (ok, duplicate), not policy_denied (regression: it was
    counted as the user's second live grant)."""
    from crash import fault_build
    if not fault_build():
        from jittest import skip
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    with Env(start=False) as e:
        j = e.jitd
        j.config["groups"] = [j.group_entry(n, max_active_per_user=1)
                              for n in ("admins", "dba")]
        j.config["directories"][0]["connections"] = 2
        j.write_config()
        j.start(env={"JITD_FAULT": "grant.before_pending:sleep=2000@1"})
        req = {"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
               "request_id": "inc-77-retry"}
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            first = ex.submit(j.request, dict(req))
            time.sleep(0.3)
            second = ex.submit(j.request, dict(req))
            answers = [first.result(), second.result()]
        for a in answers:
            eq(a.get("ok"), True, "answers: %r" % (answers,))
        eq(answers[0]["grant"]["grant_id"], answers[1]["grant"]["grant_id"], "one grant")
        eq(sorted(bool(a.get("duplicate")) for a in answers), [False, True], "one duplicate")
        eq(j.audit_events("refused"), [], "refusals")
        eq(len(j.ok({"op": "list", "user": "alice"})["grants"]), 1, "alice's grants")


def test_deny_users_and_self_approval_see_every_uid_of_the_entry():
    """An entry with two uid values, the alias first: "mallory" is the
    same person as "mx". deny_users naming the second value refuses a
    grant asked under the first, and that person may not approve their
    own grant under the other name (regression: only the first value the
    server returned was compared)."""
    with Env(start=False) as e:
        sl, j = e.slapd, e.jitd
        dn = "uid=mx,%s" % sl.people
        sl.ldapadd("dn: %s\nobjectClass: inetOrgPerson\nuid: mx\nuid: mallory\ncn: mx\n"
                   "sn: mx\n" % dn)
        j.config["groups"] = [j.group_entry("admins", deny_users=["mallory"]),
                              j.group_entry("dba", forbid_self_approval=True)]
        j.write_config()
        j.start()
        _denied(e, j.grant("mx", "admins", "1h"), "deny_users")
        _denied(e, j.grant("mx", "dba", "1h", approved_by="mallory"), "forbid_self_approval")
        assert not e.is_member("admins", dn) and not e.is_member("dba", dn)
        e.grant_and_check("mx", "dba", "1h", approved_by="carol")  # someone else approves


def test_extend_after_a_reload_gave_the_group_name_to_another_group():
    """A grant in admins (max 4h); a reload renames that entry to
    admins-old and gives the name "admins" to the dba group with a 30-day
    maximum. An extension of the old grant must not be judged by the new
    entry's rules (regression: the grant's group was looked up by name
    alone, and its Domain-Admins-like grant could be extended to 30
    days)."""
    with Env() as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h")
        groups = [x for x in j.config["groups"] if x["name"] not in ("admins", "dba")]
        groups += [j.group_entry("admins-old", dn=e.slapd.group_dn("admins")),
                   j.group_entry("admins", dn=e.slapd.group_dn("dba"), max_duration="30d")]
        j.config["groups"] = groups
        j.reload()
        refused(j.request({"op": "extend", "grant_id": g["grant_id"], "duration": "10d"}),
                "unknown_group", "extend under a name that now names another group")
        eq(j.show(g["grant_id"])["expires_at"], g["expires_at"], "expires_at unchanged")


def test_a_group_name_given_to_another_group_gives_no_hold_on_the_old_grants():
    """A grant in admins; a reload renames that entry to admins-old and
    gives the name "admins" to the dba group. A client allowed only
    "admins" was never allowed the old group: it may not show, list,
    complete, revoke or force-close the old grant (regression: the grant's
    group was matched by name alone); a client with "*" still may."""
    need_root()
    clients = [{"name": "helpdesk", "uid": NOBODY, "groups": ["admins"],
                "ops": ["show", "list", "complete", "revoke", "force"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h")
        gid = g["grant_id"]
        a = j.request_as(NOBODY, NOBODY, {"op": "show", "grant_id": gid})
        assert a.get("ok"), a  # before the reload: its own group
        groups = [x for x in j.config["groups"] if x["name"] not in ("admins", "dba")]
        groups += [j.group_entry("admins-old", dn=e.slapd.group_dn("admins")),
                   j.group_entry("admins", dn=e.slapd.group_dn("dba"))]
        j.config["groups"] = groups
        j.reload()
        for req in ({"op": "show", "grant_id": gid},
                    {"op": "complete", "grant_id": gid},
                    {"op": "revoke", "grant_id": gid},
                    {"op": "revoke", "grant_id": gid, "force": True}):
            refused(j.request_as(NOBODY, NOBODY, req), "unauthorized", req["op"])
        a = j.request_as(NOBODY, NOBODY, {"op": "list"})
        assert a.get("ok"), a
        assert gid not in [x["grant_id"] for x in a["grants"]], a
        a = j.request_as(NOBODY, NOBODY, {"op": "list", "group": "admins"})
        assert a.get("ok"), a
        assert gid not in [x["grant_id"] for x in a["grants"]], a
        eq(j.show(gid)["state"], "active", "the old grant, untouched")
        assert e.is_member("admins", e.user_dn("alice"))
        j.ok({"op": "complete", "grant_id": gid})  # root ("*") still may
        eq(j.show(gid)["state"], "completed", "ended by a client with \"*\"")
        assert not e.is_member("admins", e.user_dn("alice"))


def test_max_active_per_user_counts_all_groups():
    with Env(start=False) as e:
        e.jitd.config["groups"] = [e.jitd.group_entry(n, max_active_per_user=2)
                                   for n in ("admins", "dba", "ops", "web")]
        e.jitd.write_config()
        e.jitd.start()
        j = e.jitd
        g1 = e.grant_and_check("alice", "admins", "1h")
        e.grant_and_check("alice", "dba", "1h")
        _denied(e, j.grant("alice", "ops", "1h"), "max_active_per_user")
        assert not e.is_member("ops", e.user_dn("alice"))
        e.grant_and_check("bob", "ops", "1h")  # per user
        j.ok({"op": "complete", "grant_id": g1["grant_id"]})
        e.grant_and_check("alice", "ops", "1h")  # one ended: room again
        # concurrent requests in four groups (two workers): exactly two pass
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            answers = list(ex.map(lambda g: j.grant("carol", g, "1h"),
                                  ["admins", "dba", "ops", "web"]))
        oks = [a for a in answers if a.get("ok")]
        eq(len(oks), 2, "concurrent grants within max_active_per_user 2: %r" % answers)
        for a in answers:
            if not a.get("ok"):
                refused(a, "policy_denied")
        live = j.ok({"op": "list", "user": "carol"})["grants"]
        eq(len(live), 2, "carol's live grants")


NOBODY = 65534


def test_client_rules_ops_groups_max_duration_and_other_uid():
    need_root()
    clients = [{"name": "helpdesk", "uid": NOBODY, "ops": ["grant", "show", "extend"],
                "groups": ["web"], "max_duration": "30m"},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        j = e.jitd
        grant = {"op": "grant", "user": "alice", "group": "web"}
        # the client's cap: 30m passes, 30m1s does not, whatever the group allows
        a = j.request_as(NOBODY, NOBODY, dict(grant, duration="30m1s"))
        _denied(e, a, "clients.max_duration", code="duration_exceeds_max")
        # no duration: the group's default (1h) is above the cap: refused, not shortened
        a = j.request_as(NOBODY, NOBODY, grant)
        _denied(e, a, "clients.max_duration", code="duration_exceeds_max")
        a = j.request_as(NOBODY, NOBODY, dict(grant, duration="30m"))
        assert a.get("ok"), a
        gid = a["grant"]["grant_id"]
        # extensions count toward the client's cap too (root has no cap)
        a = j.request_as(NOBODY, NOBODY, {"op": "extend", "grant_id": gid, "duration": 1})
        _denied(e, a, "clients.max_duration", code="duration_exceeds_max")
        eq(j.show(gid)["duration"], 1800, "the capped client's extension changed nothing")
        j.ok({"op": "extend", "grant_id": gid, "duration": "1h"})
        # ops and groups
        refused(j.request_as(NOBODY, NOBODY, {"op": "list"}), "unauthorized", "list")
        refused(j.request_as(NOBODY, NOBODY, dict(grant, group="admins", duration="1m")),
                "unauthorized", "group")
        ev = j.audit_events("refused")
        eq([x.get("rule") for x in ev[-3:]],
           ["clients.max_duration", "clients.ops", "clients.groups"],
           "rules of the client refusals")
        # a grant of another group, named by id: refused with its rule
        # (regression: audited without one)
        other = j.must_grant("bob", "admins", "1h", request_id="root-req-1")
        a = j.request_as(NOBODY, NOBODY, {"op": "show", "grant_id": other["grant_id"]})
        refused(a, "unauthorized", "show of another group's grant")
        assert a["error"]["message"].startswith("clients.groups:"), a
        eq(j.audit_events("refused")[-1].get("rule"), "clients.groups", "rule of that refusal")
        # a request_id used in another group: refused without naming that
        # grant (regression: its id was in the message)
        a = j.request_as(NOBODY, NOBODY, dict(grant, duration="1m", request_id="root-req-1"))
        refused(a, "policy_denied", "request_id of another group's grant")
        assert "request_id" in a["error"]["message"], a
        assert other["grant_id"] not in a["error"]["message"], a
        # root, who may see it, is told which grant
        a = j.request(dict(grant, user="carol", duration="1m", request_id="root-req-1"))
        refused(a, "policy_denied", "request_id used for another request")
        assert other["grant_id"] in a["error"]["message"], a
        # a peer running as a uid no entry names: refused, the socket answered it
        a = j.request_as(4242, 4242, dict(grant, duration="1m"))
        refused(a, "unauthorized", "uid 4242")
        eq(j.audit_events("refused")[-1].get("peer_uid"), 4242, "peer uid in the audit")
        eq(j.audit_events("refused")[-1].get("rule"), "clients", "rule")
        assert not e.is_member("admins", e.user_dn("alice"))


def test_list_of_a_client_limited_to_some_groups_counts_only_its_groups():
    """A client limited to dba and web lists with a limit while the newest
    grants are in another group: it gets the newest grants of its own
    groups, as many as the limit (regression: the limit was applied before
    the groups, so it got none), newest first, and nothing of admins."""
    need_root()
    clients = [{"name": "dbadesk", "uid": NOBODY, "ops": ["grant", "list", "show"],
                "groups": ["dba", "web", "dba"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        j = e.jitd
        mine = [j.must_grant("alice", "dba", "1h")["grant_id"],
                j.must_grant("bob", "web", "1h")["grant_id"],
                j.must_grant("carol", "dba", "1h")["grant_id"]]
        time.sleep(1.1)  # the admins grants are newer by created_at
        for u in ("alice", "bob", "carol", "dave", "erin"):
            j.must_grant(u, "admins", "1h")
        for limit, want in ((3, mine[::-1]), (2, mine[:0:-1]), (1, mine[2:])):
            a = j.request_as(NOBODY, NOBODY, {"op": "list", "limit": limit})
            assert a.get("ok"), a
            got = [g["grant_id"] for g in a["grants"]]
            eq(a["count"], len(want), "count at limit %d" % limit)
            eq(got, want, "grants at limit %d (newest first)" % limit)
        a = j.request_as(NOBODY, NOBODY, {"op": "list"})
        eq(sorted(g["grant_id"] for g in a["grants"]), sorted(mine), "the default limit")
        eq(len(j.ok({"op": "list", "limit": 3})["grants"]), 3, "root's list")


def test_client_rate_limit():
    need_root()
    # 12 a minute: one token back every 5 s, so a slow machine's round trips
    # (a fraction of a token each) cannot refill the bucket between the checks
    clients = [{"name": "helpdesk", "uid": 0, "groups": ["*"], "max_requests_per_minute": 12},
               {"name": "other", "uid": NOBODY, "groups": ["*"], "ops": ["status"]}]
    with Env(public=True, clients=clients, top={"max_request_size": 1024}) as e:
        j = e.jitd
        answers = []
        with j.connect() as c:
            # wait_ready used a token or two: drain the bucket to empty first
            while True:
                a = c.call({"op": "status"})
                answers.append(a)
                if not a.get("ok"):
                    break
                assert len(answers) <= 12, "no limit after 12 requests"
            refused(answers[-1], "rate_limited", "request past the limit")
            assert "max_requests_per_minute" in answers[-1]["error"]["message"]
            assert len(answers) >= 10, "limited too early: after %d" % len(answers)
            for _ in range(5):
                refused(c.call({"op": "status"}), "rate_limited", "still limited")
            # a grant is a request like any other
            refused(c.call({"op": "grant", "user": "alice", "group": "web", "duration": 60}),
                    "rate_limited", "grant while limited")
            # so is a line over max_request_size (regression: it was answered
            # bad_request and audited, every one, whatever the limit)
            n_bad = len([x for x in j.audit_events("refused") if x.get("error") == "bad_request"])
            for _ in range(3):
                with j.connect() as o:
                    o.sock.sendall(b"x" * 1024)
                    refused(o.recv(), "rate_limited", "over-long line while limited")
            eq(len([x for x in j.audit_events("refused") if x.get("error") == "bad_request"]),
               n_bad, "over-long lines of a limited client audited")
            # another entry has its own bucket
            eq(j.request_as(NOBODY, NOBODY, {"op": "status"}).get("ok"), True, "other client")
            # one token per 5 s comes back
            time.sleep(5.2)
            eq(c.call({"op": "status"}).get("ok"), True, "after 5 s")
            refused(c.call({"op": "status"}), "rate_limited", "and only one")
        assert not e.is_member("web", e.user_dn("alice"))
        # refusals are audited, but a flood is not: one event for this burst
        ev = [x for x in j.audit_events("refused")
              if x.get("rule") == "clients.max_requests_per_minute"]
        eq(len(ev), 1, "rate_limited refusals audited (first of 10 s)")
        eq(ev[0].get("error"), "rate_limited", "code")
        eq(ev[0].get("client"), "helpdesk", "client")


def test_peer_no_entry_matches_cannot_flood_the_audit_log():
    """A process of a uid no clients entry names can open a public socket
    and send line after line: each is answered `unauthorized`, but one
    refusal is audited every 10 seconds (for all such peers together), and
    the next one audited says how many were not (regression: each line was
    one `refused` event, written and synced by the engine's main thread)."""
    need_root()
    import socket
    clients = [{"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        j = e.jitd
        before = len(j.audit_events("refused"))

        def flood():
            n = 0
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(30)
            c.connect(j.sock)
            f = c.makefile("rb")
            for i in range(300):
                # a line that does not parse too, first (the audited one):
                # whatever it sends, such a peer hears unauthorized
                # (regression: the audited one was answered bad_request)
                c.sendall(b'{"v":1,"op":"status","x":1}\n' if i % 2 == 0 else
                          b'{"v":1,"op":"status"}\n')
                if b'"unauthorized"' in f.readline():
                    n += 1
            return str(n).encode()

        answered = int(j.run_as(NOBODY, NOBODY, flood))
        eq(answered, 300, "lines answered unauthorized")
        ev = [x for x in j.audit_events("refused")[before:] if x.get("peer_uid") == NOBODY]
        assert 1 <= len(ev) <= 2, "%d refused events for 300 lines" % len(ev)
        eq(ev[0].get("rule"), "clients", "rule")
        # after the 10 s, the next refusal is audited with the count of the others
        time.sleep(10.5)
        refused(j.request_as(NOBODY, NOBODY, {"op": "status"}), "unauthorized", "later")
        last = j.audit_events("refused")[-1]
        eq(last.get("peer_uid"), NOBODY, "peer of the later refusal")
        assert "earlier refusals of peers no entry matches not recorded" in last["message"], last
        # a matched client is not affected
        j.ok({"op": "status"})


def test_unmatched_peer_over_long_lines_cannot_flood_the_audit_log():
    """A line longer than max_request_size from a peer no clients entry
    matches is refused and its connection closed, under the same audit
    throttle as that peer's other refusals: 300 over-long lines (a new
    connection each) cost one or two `refused` events, and the next
    refusal audited after the 10 s says how many were not recorded
    (regression: each over-long line was audited)."""
    need_root()
    import socket
    clients = [{"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients, top={"max_request_size": 1024}) as e:
        j = e.jitd
        before = len(j.audit_events("refused"))

        def flood():
            n = 0
            for _ in range(300):
                c = socket.socket(socket.AF_UNIX)
                c.settimeout(30)
                c.connect(j.sock)
                c.sendall(b"x" * 1024)  # exactly the bound, no newline
                a = c.makefile("rb").readline()
                if b'"bad_request"' in a and b"request exceeds 1024 bytes" in a:
                    n += 1
                c.close()
            return str(n).encode()

        answered = int(j.run_as(NOBODY, NOBODY, flood))
        eq(answered, 300, "over-long lines answered bad_request")
        ev = [x for x in j.audit_events("refused")[before:] if x.get("peer_uid") == NOBODY]
        assert 1 <= len(ev) <= 2, "%d refused events for 300 over-long lines" % len(ev)
        eq(ev[0].get("error"), "bad_request", "error of the audited one")
        time.sleep(10.5)

        def one_more():
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(30)
            c.connect(j.sock)
            c.sendall(b"x" * 1024)
            return c.makefile("rb").readline()

        refused(json.loads(j.run_as(NOBODY, NOBODY, one_more)), "bad_request", "later")
        last = j.audit_events("refused")[-1]
        eq(last.get("peer_uid"), NOBODY, "peer of the later refusal")
        assert "request exceeds 1024 bytes" in last["message"], last
        assert "earlier refusals of peers no entry matches not recorded" in last["message"], last
        # a matched client's over-long line is still audited every time
        n0 = len(j.audit_events("refused"))
        for _ in range(3):
            with j.connect() as c:
                c.send(b"y" * 1024)
                refused(c.recv(), "bad_request", "root's over-long line")
        eq(len(j.audit_events("refused")) - n0, 3, "refusals of a matched client audited")
        j.ok({"op": "status"})


def _reload(e):
    """Writes e.jitd.config and reloads it (SIGHUP); returns once it is in force."""
    e.jitd.reload()


def _extend_denied(e, g, rule, code="policy_denied"):
    """An extend of grant g is refused by rule (audited as an extend of g)
    and leaves the grant as it was."""
    before = e.jitd.show(g["grant_id"])
    a = e.jitd.request({"op": "extend", "grant_id": g["grant_id"], "duration": 60})
    _denied(e, a, rule, code=code, what="extend refused by " + rule)
    ev = e.jitd.audit_events("refused")[-1]
    eq((ev.get("op"), ev.get("grant_id")), ("extend", g["grant_id"]), "refused extend event")
    after = e.jitd.show(g["grant_id"])
    eq((after["state"], after["expires_at"], after["duration"]),
       (before["state"], before["expires_at"], before["duration"]), "grant after the refusal")


def test_deny_users_added_by_reload_stops_extensions():
    with Env() as e:
        j, sl = e.jitd, e.slapd
        a = j.must_grant("alice", "admins", "1h")
        b = j.must_grant("bob", "admins", "1h")
        c = j.must_grant("carol", "admins", "1h")
        g = j.must_grant("dave", "unixops", "1h")
        j.ok({"op": "extend", "grant_id": a["grant_id"], "duration": 60})
        n_ext = len(j.audit_events("extended"))
        for grp in j.config["groups"]:
            if grp["name"] in ("admins", "unixops"):
                grp["deny_users"] = ["ALICE", "UID=bob, ou=people," + sl.suffix, "dave"]
        _reload(e)
        _extend_denied(e, a, "deny_users")          # by name
        _extend_denied(e, b, "deny_users")          # by DN, spelled another way
        _extend_denied(e, g, "deny_users")          # memberUid group
        eq(len(j.audit_events("extended")), n_ext, "no extended line after the reload")
        # the others are extended as before; the denied keep what they hold until it ends
        j.ok({"op": "extend", "grant_id": c["grant_id"], "duration": 60})
        eq(j.show(a["grant_id"])["state"], "active", "the reload itself ends nothing")
        assert e.is_member("admins", e.user_dn("alice"))


def test_eligible_group_is_checked_on_extend():
    groups = {"admins": ("gon", ["placeholder"]), "web": ("gon", ["placeholder"]),
              "eligible": ("gon", ["@alice", "@bob"])}
    # directory timeout 20 s against a bound of 5 s below
    with Env(start=False, slapd_kw={"groups": groups}, directory={"timeout": 20}) as e:
        sl, j = e.slapd, e.jitd
        j.config["groups"] = [j.group_entry("admins", eligible_group=sl.group_dn("eligible")),
                              j.group_entry("web")]
        j.write_config()
        j.start()
        a = e.grant_and_check("alice", "admins", "1h")
        b = e.grant_and_check("bob", "admins", "1h")
        w = e.grant_and_check("carol", "web", "1h")
        x = j.ok({"op": "extend", "grant_id": a["grant_id"], "duration": 60})["grant"]
        eq(x["duration"], 3660, "an eligible user is extended")
        # alice leaves the eligible group: no further extension, no reload needed
        sl.remove_member("eligible", sl.user_dn("alice"))
        _extend_denied(e, a, "eligible_group")
        assert "is not a member of" in j.audit_events("refused")[-1]["message"]
        j.ok({"op": "extend", "grant_id": b["grant_id"], "duration": 60})

        # the check waits for the directory; the main loop does not
        freeze(sl.pid)
        try:
            stalled = j.connect(timeout=30)
            stalled.send({"op": "extend", "grant_id": b["grant_id"], "duration": 60})
            time.sleep(0.3)
            t0 = time.time()
            j.ok({"op": "status"})
            j.ok({"op": "extend", "grant_id": w["grant_id"], "duration": 60})
            eq(j.show(b["grant_id"])["duration"], 3660, "nothing written before the answer")
            assert time.time() - t0 < 5, "the main loop waited for the directory"
        finally:
            thaw(sl.pid)
        r = stalled.recv()
        stalled.close()
        assert r.get("ok"), r
        eq(r["grant"]["duration"], 3720, "extended once the directory answered")

        # no directory, no extension (fail closed), and nothing written
        sl.stop()
        _extend_denied(e, b, "eligible_group", code="directory_unavailable")
        j.ok({"op": "extend", "grant_id": w["grant_id"], "duration": 60})


def test_memberuid_group_needs_the_entry_s_own_uid():
    """user_filter on mail: the entry found for "root-ops@example.org" has
    no uid. A memberUid group must not get the name as asked (another
    account's uid, or none) in its place: refused directory_refused, the
    group unchanged (regression: jitd wrote memberUid: root-ops@example.org,
    a value no rule was checked for). An entry with a uid gets its uid."""
    with Env(start=False, directory={"user_filter": "(mail=%s)"}) as e:
        sl, j = e.slapd, e.jitd
        sl.ldapadd("dn: cn=ops,%s\nobjectClass: inetOrgPerson\ncn: ops\nsn: ops\n"
                   "mail: root-ops@example.org\n" % sl.people)
        sl.ldapmodify("dn: %s\nchangetype: modify\nadd: mail\nmail: carol@example.org\n"
                      % sl.user_dn("carol"))
        j.start()
        before = sl.members("unixops", "memberUid")
        refused(j.grant("root-ops@example.org", "unixops", "1h"), "directory_refused",
                "a memberUid grant of an entry without a uid")
        eq(sl.members("unixops", "memberUid"), before, "memberUid values after the refusal")
        j.must_grant("carol@example.org", "unixops", "1h")
        eq(sl.members("unixops", "memberUid"), before | {"carol"}, "carol's own uid added")


def test_deny_users_fails_closed_for_an_entry_with_more_aliases_than_read():
    """An entry with 70 uid values, the one deny_users names among the last:
    jitd reads 64 besides the first, so it cannot see them all, and refuses
    (regression: the alias past the 65th was never compared, and the denied
    account was granted under another of its names)."""
    with Env(start=False) as e:
        sl, j = e.slapd, e.jitd
        aliases = "".join("uid: alias%02d\n" % i for i in range(69))
        sl.ldapadd("dn: uid=zed,%s\nobjectClass: inetOrgPerson\ncn: zed\nsn: zed\n"
                   "uid: zed\n%s" % (sl.people, aliases))
        j.config["groups"] = [j.group_entry("admins", deny_users=["alias68"]),
                              j.group_entry("dba")]
        j.write_config()
        j.start()
        before = sl.members("admins")
        _denied(e, j.grant("zed", "admins", "1h"), "deny_users")
        eq(sl.members("admins"), before, "the group after the refusal")
        j.must_grant("zed", "dba", "1h")
