"""The grant lifecycle against a real slapd: every assertion about
membership reads the directory (ldapsearch as the rootdn), not jitd's
answer."""

import time

from jittest import Env, eq, refused, expires_epoch, wait_until, slow
from jitd import parse_time
from slapd import norm_dn

# jitd must remove a membership within ~2 s of expires_at; the tests allow 5.
SLACK = 5


def _members(e, group):
    return sorted(e.slapd.members(group))


def test_grant_adds_member():
    with Env() as e:
        before = e.slapd.members("admins")
        g = e.jitd.must_grant("alice", "admins", "1h", ticket="T-1", reason="on call")
        assert e.is_member("admins", e.user_dn("alice")), _members(e, "admins")
        eq(e.slapd.members("admins") - before, {e.user_dn("alice")}, "new members")
        eq(g["state"], "active", "state")
        eq(g["user"], "alice", "user")
        eq(g["group"], "admins", "group")
        eq(g["directory"], "corp", "directory")
        eq(g["duration"], 3600, "duration")
        eq(g["standing"], False, "standing")
        eq(g["ticket"], "T-1", "ticket")
        assert g["grant_id"].startswith("g-"), g
        assert g["user_dn"].lower() == e.user_dn("alice").lower(), g
        assert g["group_dn"].lower() == e.slapd.group_dn("admins").lower(), g
        eq(parse_time(g["expires_at"]) - parse_time(g["created_at"]), 3600, "expires-created")
        assert abs(parse_time(g["created_at"]) - time.time()) < 5, g
        # The other groups are untouched.
        eq(e.slapd.members("dba"), {e.slapd.placeholder}, "dba")
        # show answers the same grant.
        s = e.jitd.show(g["grant_id"])
        eq(s["grant_id"], g["grant_id"], "show id")
        eq(s["state"], "active", "show state")


def test_default_duration_applies():
    with Env() as e:
        g = e.jitd.must_grant("alice", "admins")
        eq(g["duration"], 3600, "default_duration of admins (1h)")


def test_expiry_removes_member():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "3s")
        eq(g["duration"], 3, "duration")
        exp = expires_epoch(g)
        eq(exp - parse_time(g["created_at"]), 3, "expires_at - created_at")
        e.stays_member("admins", e.user_dn("alice"), exp - 0.5, exp, "not removed early")
        e.wait_removed("admins", e.user_dn("alice"), exp + SLACK, "expiry")
        eq(e.slapd.members("admins"), {e.slapd.placeholder}, "members after expiry")
        s = wait_until(lambda: (lambda x: x if x["state"] == "expired" else None)(
            e.jitd.show(g["grant_id"])), 5, "state expired")
        assert "ended_at" in s, s


def test_complete_removes_member():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "1h")
        a = e.jitd.ok({"op": "complete", "grant_id": g["grant_id"], "reason": "done"})
        eq(a["grant"]["state"], "completed", "state after complete")
        assert not e.is_member("admins", e.user_dn("alice")), _members(e, "admins")
        # Idempotent: completing again answers ok with the grant as it is.
        a2 = e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(a2["grant"]["state"], "completed", "second complete")
        # And revoking an ended grant does not change its state.
        a3 = e.jitd.ok({"op": "revoke", "grant_id": g["grant_id"]})
        eq(a3["grant"]["state"], "completed", "revoke after complete")


def test_revoke_removes_member():
    with Env() as e:
        g = e.grant_and_check("bob", "dba", "2h")
        a = e.jitd.ok({"op": "revoke", "grant_id": g["grant_id"], "reason": "incident"})
        eq(a["grant"]["state"], "revoked", "state after revoke")
        assert not e.is_member("dba", e.user_dn("bob")), _members(e, "dba")
        eq(e.jitd.show(g["grant_id"])["state"], "revoked", "show")


def test_not_found_grant_id():
    with Env() as e:
        for op in ("complete", "revoke", "show"):
            refused(e.jitd.request({"op": op, "grant_id": "g-000000000000000000000000"}),
                    "not_found", op)
        refused(e.jitd.request({"op": "extend", "grant_id": "g-000000000000000000000000",
                                "duration": "1h"}), "not_found", "extend")


@slow
def test_extend_moves_expiry():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "3s")
        old = expires_epoch(g)
        a = e.jitd.ok({"op": "extend", "grant_id": g["grant_id"], "duration": "5s"})
        new = parse_time(a["grant"]["expires_at"])
        eq(new, old + 5, "expires_at after extend")
        eq(a["grant"]["duration"], 8, "duration after extend")
        # Still a member well past the old expiry.
        e.stays_member("admins", e.user_dn("alice"), new - 0.5, new,
                       "removed at the old expiry despite extend, or before the new one")
        e.wait_removed("admins", e.user_dn("alice"), new + SLACK, "expiry after extend")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 5, "expired")


def test_extend_over_max_refused():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "3h")  # max_duration 4h
        refused(e.jitd.request({"op": "extend", "grant_id": g["grant_id"], "duration": "2h"}),
                "duration_exceeds_max", "extend past max")
        eq(e.jitd.show(g["grant_id"])["expires_at"], g["expires_at"], "expiry unchanged")
        a = e.jitd.ok({"op": "extend", "grant_id": g["grant_id"], "duration": "1h"})
        eq(parse_time(a["grant"]["expires_at"]), expires_epoch(g) + 3600, "extend to max")


def test_extend_ended_grant_not_active():
    with Env() as e:
        g = e.grant_and_check("alice", "admins", "1h")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        refused(e.jitd.request({"op": "extend", "grant_id": g["grant_id"], "duration": "1h"}),
                "not_active", "extend after complete")
        assert not e.is_member("admins", e.user_dn("alice"))


def test_standing_member_survives_expiry():
    with Env() as e:
        bob = e.user_dn("bob")
        e.slapd.add_member("admins", bob)
        g = e.jitd.must_grant("bob", "admins", "2s")
        eq(g["standing"], True, "standing")
        exp = expires_epoch(g)
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired",
                   (exp + SLACK) - time.time(), "grant expired")
        time.sleep(1)
        assert e.is_member("admins", bob), "jitd removed a standing membership: %r" \
            % _members(e, "admins")
        # Completing a standing grant does not remove it either.
        g2 = e.jitd.must_grant("bob", "admins", "1h")
        eq(g2["standing"], True, "second standing")
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert e.is_member("admins", bob), "complete removed a standing membership"


@slow
def test_overlapping_grants_keep_membership():
    with Env() as e:
        alice = e.user_dn("alice")
        g1 = e.grant_and_check("alice", "admins", "2s")
        g2 = e.grant_and_check("alice", "admins", "7s")
        assert g1["grant_id"] != g2["grant_id"]
        eq(g2["standing"], False, "second grant is not standing (jitd made it)")
        exp1, exp2 = expires_epoch(g1), expires_epoch(g2)
        wait_until(lambda: e.jitd.show(g1["grant_id"])["state"] == "expired",
                   (exp1 + SLACK) - time.time(), "first grant expired")
        assert e.is_member("admins", alice), "first expiry removed a membership " \
            "the second grant still holds"
        e.stays_member("admins", alice, exp2 - 0.5, exp2, "removed before the last grant ended")
        e.wait_removed("admins", alice, exp2 + SLACK, "expiry of the last grant")


def test_complete_one_of_two_keeps_membership():
    with Env() as e:
        alice = e.user_dn("alice")
        g1 = e.grant_and_check("alice", "ops", "1h")
        g2 = e.grant_and_check("alice", "ops", "2h")
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
        assert e.is_member("ops", alice), "complete of one grant removed the other's membership"
        e.jitd.ok({"op": "revoke", "grant_id": g1["grant_id"]})
        assert not e.is_member("ops", alice), "membership left after both grants ended"


def test_last_member_removed_with_placeholder():
    # "lonely" is seeded with bob only (no placeholder). alice is granted,
    # then bob leaves, so alice is the last member when jitd removes her:
    # plain removal is refused (objectClassViolation) and jitd must add the
    # configured placeholder_member in the same modify.
    with Env() as e:
        alice, bob = e.user_dn("alice"), e.user_dn("bob")
        # 6 s: bob must be gone before the expiry (three LDAP tool calls).
        g = e.grant_and_check("alice", "lonely", "6s")
        e.slapd.remove_member("lonely", bob)
        eq({m.lower() for m in e.slapd.members("lonely")}, {alice.lower()}, "only alice left")
        e.wait_removed("lonely", alice, expires_epoch(g) + SLACK, "removal of the last member")
        eq({m.lower() for m in e.slapd.members("lonely")}, {e.slapd.placeholder.lower()},
           "placeholder in place")
        wait_until(lambda: e.jitd.show(g["grant_id"])["state"] == "expired", 5, "expired")


def test_posix_group_memberuid():
    with Env() as e:
        g = e.jitd.must_grant("carol", "unixops", "3s")
        eq(e.slapd.members("unixops", "memberUid"), {"carol"}, "memberUid after grant")
        eq(e.slapd.members("unixops", "member"), set(), "no member DN on a posixGroup")
        e.wait_removed("unixops", "carol", expires_epoch(g) + SLACK, "memberUid expiry")
        eq(e.slapd.members("unixops"), set(), "posixGroup empty again")
        # And complete on a posixGroup.
        g2 = e.jitd.must_grant("dave", "unixops", "1h")
        eq(e.slapd.members("unixops"), {"dave"}, "dave added by uid")
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
        eq(e.slapd.members("unixops"), set(), "dave removed")


def test_request_id_idempotent():
    with Env() as e:
        req = {"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
               "request_id": "REQ-42"}
        a1 = e.jitd.ok(req)
        a2 = e.jitd.ok(req)
        eq(a2["grant"]["grant_id"], a1["grant"]["grant_id"], "same grant_id")
        eq(a2.get("duplicate"), True, "duplicate flag on the repeat")
        assert a1.get("duplicate") in (None, False), a1
        # Even with different fields, the same request_id is the same grant.
        a3 = e.jitd.ok(dict(req, duration="2h"))
        eq(a3["grant"]["grant_id"], a1["grant"]["grant_id"], "same grant_id (other duration)")
        eq(a3.get("duplicate"), True, "duplicate flag (other duration)")
        lst = e.jitd.ok({"op": "list", "user": "alice", "group": "admins", "state": "all"})
        eq(lst["count"], 1, "one grant recorded")
        eq(len(e.slapd.members("admins", "member")), 2, "placeholder + alice once")
        # One complete ends it.
        e.jitd.ok({"op": "complete", "grant_id": a1["grant"]["grant_id"]})
        assert not e.is_member("admins", e.user_dn("alice"))


def test_unknown_group():
    with Env() as e:
        refused(e.jitd.grant("alice", "nosuchgroup", "1h"), "unknown_group")
        # A group that exists in LDAP but is not configured is just as unknown.
        e.slapd.add_group("unlisted")
        refused(e.jitd.grant("alice", "unlisted", "1h"), "unknown_group", "unlisted")
        eq(e.slapd.members("unlisted"), {e.slapd.placeholder}, "unlisted untouched")


def test_unknown_user():
    extra = ("dn: cn=Twin One,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
             "cn: Twin One\nsn: One\nuid: twin\n\n"
             "dn: cn=Twin Two,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
             "cn: Twin Two\nsn: Two\nuid: twin\n")
    with Env(slapd_kw={"extra_ldif": extra}) as e:
        before = e.slapd.members("admins")
        for name in ("nobody", "twin"):
            refused(e.jitd.grant(name, "admins", "1h"), "unknown_user", repr(name))
        eq(e.slapd.members("admins"), before, "members unchanged")


def test_filter_injection_names_are_unknown_users():
    with Env() as e:
        before = e.slapd.members("admins")
        for name in ("*", "x)(uid=*", "alice)(|(uid=*", "alice*", "*)(objectClass=*",
                     "al\\2aice", "alice\\"):
            refused(e.jitd.grant(name, "admins", "1h"), "unknown_user", repr(name))
        eq(e.slapd.members("admins"), before, "members unchanged")
        eq(e.jitd.ok({"op": "list", "state": "all"})["count"], 0, "no grant recorded")


def test_duration_exceeds_max():
    with Env() as e:
        before = e.slapd.members("admins")
        refused(e.jitd.grant("alice", "admins", "5h"), "duration_exceeds_max", "5h > 4h")
        refused(e.jitd.grant("alice", "admins", 4 * 3600 + 1), "duration_exceeds_max",
                "4h+1s")
        eq(e.slapd.members("admins"), before, "members unchanged")
        g = e.grant_and_check("alice", "admins", "4h")
        eq(g["duration"], 4 * 3600, "exactly max_duration is allowed")


def test_bad_durations():
    with Env() as e:
        for d in ("0", 0, -5, "1x", "1m1h", "", "1.5h", True, None, [1]):
            req = {"op": "grant", "user": "alice", "group": "admins", "duration": d}
            refused(e.jitd.request(req), "bad_request", "duration %r" % (d,))
        assert not e.is_member("admins", e.user_dn("alice"))
        g = e.jitd.must_grant("alice", "admins", 90)
        eq(g["duration"], 90, "integer seconds")
        g = e.jitd.must_grant("bob", "admins", "1h30m")
        eq(g["duration"], 5400, "1h30m")


def test_directory_refusal_fails_grant():
    # A configured group outside ou=groups: the ACL refuses the service
    # (insufficientAccess), so the grant is failed, not active.
    extra = ("dn: cn=locked,ou=services,dc=example,dc=com\nobjectClass: groupOfNames\n"
             "cn: locked\nmember: cn=placeholder,ou=groups,dc=example,dc=com\n")
    with Env(slapd_kw={"extra_ldif": extra}, start=False) as e:
        groups = [e.jitd.group_entry("admins"),
                  e.jitd.group_entry("locked", dn="cn=locked,ou=services,dc=example,dc=com")]
        e.jitd.config["groups"] = groups
        e.jitd.write_config()
        e.jitd.start()
        a = e.jitd.grant("alice", "locked", "1h")
        refused(a, "directory_refused", "ACL refusal")
        assert not e.is_member("cn=locked,ou=services,dc=example,dc=com", e.user_dn("alice"))
        lst = e.jitd.ok({"op": "list", "user": "alice", "state": "all"})
        eq(lst["count"], 1, "the refused grant is recorded")
        eq(lst["grants"][0]["state"], "failed", "state of the refused grant")
        # The service can still write where it may.
        e.grant_and_check("alice", "admins", "1h")


def test_list_show_status():
    with Env() as e:
        g1 = e.jitd.must_grant("alice", "admins", "1h")
        g2 = e.jitd.must_grant("bob", "dba", "1h")
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"]})
        live = e.jitd.ok({"op": "list"})
        eq([g["grant_id"] for g in live["grants"]], [g1["grant_id"]], "live list")
        eq(live["count"], 1, "live count")
        every = e.jitd.ok({"op": "list", "state": "all"})
        eq({g["grant_id"] for g in every["grants"]}, {g2["grant_id"], g1["grant_id"]}, "all")
        eq(e.jitd.ok({"op": "list", "state": "completed"})["count"], 1, "completed")
        eq(e.jitd.ok({"op": "list", "user": "bob", "state": "all"})["count"], 1, "by user")
        eq(e.jitd.ok({"op": "list", "group": "admins"})["count"], 1, "by group")
        eq(e.jitd.ok({"op": "list", "state": "all", "limit": 1})["count"], 1, "limit")
        st = e.jitd.ok({"op": "status"})["status"]
        eq(st["protocol"], 1, "protocol")
        eq(st["grants"]["active"], 1, "active count")
        eq(st["grants"]["completed"], 1, "completed count")
        dirs = st["directories"]
        eq([d["name"] for d in dirs], ["corp"], "directories")
        eq(dirs[0]["connected"], True, "connected")
        assert isinstance(st["uptime"], int) and st["uptime"] >= 0, st


GRANT_STEPS = ("lookup_user", "check_member", "record_pending", "directory_add",
               "audit_granted", "record_active")
END_STEPS = ("record_ending", "directory_remove", "audit_ended", "record_ended")
EXPIRE_STEPS = ("expire_queue", "expire_record_ending", "expire_directory_remove",
                "expire_audit", "expire_record_ended")


def test_status_timings_count_each_step():
    # status.timings: per step of a grant and of its end, how often it ran
    # and how long it took in all (protocol.md). Two grants (one of them a
    # member already: no add) and one complete.
    with Env() as e:
        t0 = e.jitd.ok({"op": "status"})["status"]["timings"]
        eq(sorted(t0), sorted(("queue", "grant", "end") + GRANT_STEPS + END_STEPS +
                              EXPIRE_STEPS), "steps")
        for name, s in t0.items():
            eq(s, {"count": 0, "total_us": 0, "hist": []}, "%s before any request" % name)
        g = e.jitd.must_grant("alice", "admins", "1h")
        e.jitd.must_grant("alice", "admins", "2h")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        t = e.jitd.ok({"op": "status"})["status"]["timings"]
        want = {"queue": 3, "lookup_user": 2, "check_member": 2, "record_pending": 2,
                "directory_add": 1, "audit_granted": 2, "record_active": 2,
                "record_ending": 1, "directory_remove": 1, "audit_ended": 1,
                "record_ended": 1, "grant": 2, "end": 1}
        want.update({k: 0 for k in EXPIRE_STEPS})
        eq({k: v["count"] for k, v in t.items()}, want, "counts")
        for name in GRANT_STEPS + END_STEPS + ("grant", "end"):
            # ("queue": a worker can be waiting already)
            assert t[name]["total_us"] > 0, (name, t[name])
        # each step's histogram: ordered buckets [lo, hi, n] whose counts add
        # up to the step's count, and whose bounds hold the step's mean
        for name, s in t.items():
            h = s["hist"]
            eq(sum(n for _, _, n in h), s["count"], "%s: hist counts" % name)
            for (lo, hi, n), nxt in zip(h, h[1:] + [None]):
                assert 0 <= lo < hi and n > 0, (name, h)
                assert nxt is None or hi <= nxt[0], (name, h)
            if s["count"]:
                mean = s["total_us"] / s["count"]
                assert h[0][0] <= mean < h[-1][1], (name, mean, h)
        # a request's engine time holds its steps
        steps = sum(t[k]["total_us"] for k in GRANT_STEPS)
        assert t["grant"]["total_us"] >= steps, (t["grant"], steps)
        # A refusal before the directory is asked is not a lookup.
        refused(e.jitd.grant("alice", "nosuchgroup", "1h"), "unknown_group")
        t2 = e.jitd.ok({"op": "status"})["status"]["timings"]
        eq(t2["lookup_user"]["count"], 2, "lookup_user after an unknown group")


def test_status_timings_count_expiry_batches():
    # Expiries are ended in batches (one per group and tick, docs/design.md):
    # each batch step counts once per batch (or per part of one, when
    # another worker held some of its pairs), not per grant, and none of
    # the one-grant end steps counts them.
    with Env() as e:
        # the three due at one instant 4 s ahead, so that they fall due in
        # one tick (each asks for the seconds left to it)
        while time.time() % 1.0 > 0.2:
            time.sleep(0.02)
        due = int(time.time()) + 4
        gs = [e.jitd.must_grant(u, "ops", due - int(time.time()))
              for u in ("alice", "bob", "carol")]
        eq(len(set(g["expires_at"] for g in gs)), 1, "the three grants expire in one second")
        end = max(expires_epoch(g) for g in gs) + SLACK
        for u in ("alice", "bob", "carol"):
            wait_until(lambda: not e.is_member("ops", e.user_dn(u)), end - time.time(),
                       "expiry of %s" % u)
        wait_until(lambda: all(e.jitd.show(g["grant_id"])["state"] == "expired" for g in gs),
                   SLACK, "the three rows expired")
        t = e.jitd.ok({"op": "status"})["status"]["timings"]
        batches = t["expire_queue"]["count"]
        parts = t["expire_record_ending"]["count"]
        # the three share a group and expire in one second: one batch (two
        # at most, when a tick's read fell in the middle of that second's
        # rows being found), never one per grant
        assert 1 <= batches <= 2, (batches, t)
        assert batches <= parts <= 3, (batches, parts, t)
        eq(t["expire_directory_remove"]["count"], parts, "expire_directory_remove")
        for name in ("expire_audit", "expire_record_ended"):
            assert 1 <= t[name]["count"] <= parts, (name, t[name], parts)
        for name in EXPIRE_STEPS[1:]:
            assert t[name]["total_us"] > 0, (name, t[name])
        for name in END_STEPS:
            eq(t[name]["count"], 0, "%s of an expiry ended in a batch" % name)


def test_list_newest_first():
    # Grants made within the same second must still list newest first
    # (created_at has one-second resolution; the tie is the insertion order).
    with Env() as e:
        users = ["alice", "bob", "carol", "dave", "erin", "frank"]
        ids = [e.jitd.must_grant(u, "ops", "1h")["grant_id"] for u in users]
        got = [g["grant_id"] for g in e.jitd.ok({"op": "list"})["grants"]]
        eq(got, ids[::-1], "list order (newest first)")
        got = [g["grant_id"] for g in e.jitd.ok({"op": "list", "limit": 2})["grants"]]
        eq(got, ids[::-1][:2], "limit keeps the newest")


def test_member_removed_by_someone_else_before_expiry():
    # An administrator removed the membership already: the expiry finds it
    # gone, which is success (expired), not a failure retried forever.
    with Env() as e:
        alice = e.user_dn("alice")
        # 6 s: the grant must still be active when the test removes the value
        g = e.grant_and_check("alice", "admins", "6s")
        e.slapd.remove_member("admins", alice)
        exp = expires_epoch(g)
        s = wait_until(lambda: (lambda x: x if x["state"] in ("expired", "failed") else None)(
            e.jitd.show(g["grant_id"])), (exp + SLACK) - time.time(), "grant ended")
        eq(s["state"], "expired", "state when the member was already gone")
        assert not e.is_member("admins", alice)
        eq([x for x in e.jitd.audit() if x["event"] in ("revoke_failed", "failed")], [],
           "failure events")


@slow
def test_many_grants_all_expire_on_time():
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    groups = ["admins", "dba", "ops"]
    with Env() as e:
        grants = []
        for i, u in enumerate(users):
            for k, grp in enumerate(groups):
                grants.append((u, grp, e.jitd.must_grant(u, grp, 4 + (i + k) % 3)))
                # Checked at once: a 4 s grant may live only a little over
                # 3 s (whole-second expires_at), less than 30 searches take
                # on a loaded machine.
                assert e.is_member(grp, e.user_dn(u)), (u, grp)
        for u, grp, g in sorted(grants, key=lambda t: expires_epoch(t[2])):
            e.wait_removed(grp, e.user_dn(u), expires_epoch(g) + SLACK, "expiry of %s" % g["grant_id"])
        for grp in groups:
            eq(e.slapd.members(grp), {e.slapd.placeholder}, "members of %s at the end" % grp)
        st = e.jitd.ok({"op": "status"})["status"]
        eq(st["grants"]["expired"], len(grants), "expired count")
        eq(st["pending_revocations"], 0, "pending revocations")


def test_many_expiries_due_together():
    """Forty grants over four groups due in the same seconds (batches of one
    group each, two workers taking them at once): every membership is
    removed, every grant ends `expired`, and each has exactly one `expired`
    audit line with outcome `removed`."""
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    groups = ["admins", "dba", "ops", "web"]
    with Env() as e:
        grants = []
        # One expiry for all forty, 12 s ahead: enough for a slow machine to
        # make every grant and read its group before the first is due.
        due = int(time.time()) + 12
        for g in groups:
            for u in users:
                grants.append((u, g, e.jitd.must_grant(u, g, max(1, due - int(time.time())))))
            # One read of the group right after its ten grants (one search
            # per grant would spread them over more seconds; all of them
            # after the forty could come after the first expiries).
            have = set(norm_dn(m) for m in e.slapd.members(g))
            for u in users:
                assert norm_dn(e.user_dn(u)) in have, (u, g, sorted(have))
        deadline = max(expires_epoch(x) for _, _, x in grants) + SLACK
        for u, g, _ in grants:
            e.wait_removed(g, e.user_dn(u), deadline, "expiry of %s in %s" % (u, g))
        ids = set(x["grant_id"] for _, _, x in grants)
        wait_until(lambda: all(e.jitd.show(i)["state"] == "expired" for i in ids), 15,
                   "every grant expired")
        ended = [a for a in e.jitd.audit() if a.get("event") == "expired"]
        eq(sorted(a["grant_id"] for a in ended), sorted(ids), "one expired line per grant")
        eq(set(a["outcome"] for a in ended), {"removed"}, "outcomes")


def _group_mod_conns(slapd, group, since):
    """slapd's connection number of each MOD of group's entry logged after
    byte offset since, in order."""
    want = ('MOD dn="%s"' % slapd.group_dn(group)).lower()
    conns = []
    with open(slapd.log, errors="replace") as f:
        f.seek(since)
        for line in f:
            if want in line.lower():
                for field in line.split():
                    if field.startswith("conn="):
                        conns.append(field[5:])
                        break
    return conns


def test_one_request_at_a_time_stays_on_one_worker():
    """With four connections and requests arriving one at a time, the
    worker that went idle last takes the next job: the grants and completes
    all reach the directory through one of jitd's connections (the same
    SQLite connection too, whose page cache is then current), instead of
    going round the four."""
    import os
    with Env(directory={"connections": 4}) as e:
        s, j = e.slapd, e.jitd
        j.ok({"op": "status"})
        since = os.path.getsize(s.log)
        for i in range(12):
            g = j.must_grant("alice", "ops", "1h", request_id="one-at-a-time-%d" % i)
            j.ok({"op": "complete", "grant_id": g["grant_id"]})
        conns = _group_mod_conns(s, "ops", since)
        eq(len(conns), 24, "modifies of ops: an add and a delete per pair")
        # Count the hand-overs between consecutive modifies. A job can go to
        # another worker when it arrives before the last one has gone back
        # to wait, or when a background job (a probe, the scheduler) made
        # another worker the last idle one; the requests then stay there.
        # Waking the worker idle longest instead hands over at every one of
        # the 23; a loaded CI machine gave 2 hand-overs here.
        switches = sum(1 for a, b in zip(conns, conns[1:]) if a != b)
        if switches > 6:
            raise AssertionError("modifies spread over jitd's connections "
                                 "(%d hand-overs): %r" % (switches, conns))
