"""Identities that move (OpenLDAP): a grant records the user's entryUUID and
at revocation removes the value that refers to the user now, whether the
directory's refint overlay rewrote the member value after a rename or not;
a deleted user's grant ends cleanly. And several servers: the server that
wrote a membership is asked first at revocation, and a removal answered by
another one is checked again after replication_grace.
"""

import contextlib
import os
import time

from jittest import Env, eq, refused, wait_until, one_event, wait_state
from jitd import Jitd, parse_time
from slapd import Slapd, norm_dn

SLACK = 4  # seconds a removal may take after expires_at


def _move(s, uid, new_uid, new_parent=None):
    """modrdn uid=<uid> to uid=<new_uid> (under new_parent); the new DN."""
    dn = s.user_dn(uid)
    ldif = "dn: %s\nchangetype: modrdn\nnewrdn: uid=%s\ndeleteoldrdn: 1\n" % (dn, new_uid)
    if new_parent:
        ldif += "newsuperior: %s\n" % new_parent
    s.ldapmodify(ldif)
    return "uid=%s,%s" % (new_uid, new_parent or s.people)


def _staff(s):
    dn = "ou=staff," + s.people
    s.ldapadd("dn: %s\nobjectClass: organizationalUnit\nou: staff\n" % dn)
    return dn



def test_rename_with_refint_removes_the_rewritten_value():
    with Env() as e:
        s, j = e.slapd, e.jitd
        if "refint" not in s.overlays and "memberof" not in s.overlays:
            raise AssertionError("this test needs slapd's refint (or memberof) overlay")
        uuid = s.entry_uuid(s.user_dn("alice"))
        # 6 s: the grant must outlive the rename and the new owner's add
        # (six LDAP tool calls), or what it guards is not tested.
        g = j.must_grant("alice", "admins", 6)
        eq(one_event(j, "granted", g["grant_id"])["user_uuid"], uuid, "entryUUID recorded")
        old_dn = s.user_dn("alice")
        new_dn = _move(s, "alice", "alice.smith", _staff(s))
        # refint carried the rename into the group: the value jitd wrote is gone.
        eq(s.is_member("admins", old_dn), False, "old DN rewritten by refint")
        eq(s.is_member("admins", new_dn), True, "new DN in the group")
        # Someone else now has the old DN, and is a member in their own right.
        s.add_user("alice")
        s.add_member("admins", old_dn)
        e.wait_removed("admins", new_dn, parse_time(g["expires_at"]) + SLACK, "expiry after rename")
        eq(s.is_member("admins", old_dn), True, "the new owner of the old DN keeps theirs")
        ev = one_event(j, "expired", g["grant_id"])
        eq(ev["outcome"], "removed", "outcome")
        eq(norm_dn(ev["removed_value"]), norm_dn(new_dn), "removed value")
        eq(s.is_member("admins", s.placeholder), True, "placeholder kept")


def test_rename_without_refint_removes_the_value_written_and_the_currentone_event():
    with Env(slapd_kw={"overlays": False}) as e:
        s, j = e.slapd, e.jitd
        # 6 s: both must outlive the renames and the hand-made add.
        gb = j.must_grant("bob", "admins", 6)
        gc = j.must_grant("carol", "admins", 6)
        bob_old, carol_old = s.user_dn("bob"), s.user_dn("carol")
        _move(s, "bob", "robert")
        carol_new = _move(s, "carol", "caroline")
        eq(s.is_member("admins", bob_old), True, "no refint: the old DN stays in the group")
        # Carol's new DN is added by hand meanwhile: it is still carol, whose
        # grant ends; both values go (the old one names no entry any more).
        s.add_member("admins", carol_new)
        e.wait_removed("admins", bob_old, parse_time(gb["expires_at"]) + SLACK, "bob expiry")
        e.wait_removed("admins", carol_new, parse_time(gc["expires_at"]) + SLACK, "carol expiry")
        eq(s.is_member("admins", carol_old), False, "carol's old (dangling) value removed")
        ev = one_event(j, "expired", gb["grant_id"])
        eq((ev["outcome"], ev.get("removed_value")), ("removed", None),
           "bob: the recorded value itself was removed")
        ev = one_event(j, "expired", gc["grant_id"])
        eq(ev["outcome"], "removed", "carol outcome")
        eq(norm_dn(ev["removed_value"]), norm_dn(carol_new), "carol: the current DN")


def test_rename_without_refint_removes_the_value_written_when_another_entry_took_its_dn():
    """No refint: bob is renamed, the group still holds the DN jitd wrote,
    and a new entry takes that DN. The value is still the one jitd wrote
    (nothing rewrote it, and bob's current DN is not in the group): it goes
    at the expiry (regression: it stayed, giving the new bob the membership,
    and the grant closed already_absent)."""
    with Env(slapd_kw={"overlays": False}) as e:
        s, j = e.slapd, e.jitd
        g = j.must_grant("bob", "admins", 6)  # outlives the rename and the add
        bob_old = s.user_dn("bob")
        _move(s, "bob", "robert")
        s.add_user("bob")
        eq(s.is_member("admins", bob_old), True, "no refint: the old DN stays in the group")
        e.wait_removed("admins", bob_old, parse_time(g["expires_at"]) + SLACK, "bob expiry")
        ev = one_event(j, "expired", g["grant_id"])
        eq(ev["outcome"], "removed", "outcome")


def test_deleted_user_grant_ends_cleanly_with_and_without_refint():
    for overlays in (True, False):
        with Env(slapd_kw={"overlays": overlays}) as e:
            s, j = e.slapd, e.jitd
            g = j.must_grant("carol", "ops", 5)  # outlives the delete
            dn = s.user_dn("carol")
            s._run(["ldapdelete"] + s._root_args() + [dn])
            wait_state(j, g, "expired", SLACK)
            ev = one_event(j, "expired", g["grant_id"])
            # With refint the value went with the entry; without, jitd
            # removes the dangling value it wrote.
            want = "already_absent" if s.overlays else "removed"
            eq(ev["outcome"], want, "outcome (overlays %r)" % s.overlays)
            eq(s.is_member("ops", dn), False, "no dangling member left")
            eq(j.audit_events("revoke_failed"), [], "no failed removal")


def test_grant_under_the_new_name_after_a_rename_leaves_nothing_behind():
    """A second grant asked under the user's new name while the first runs:
    the grants are two pairs (keys are member values), so the second finds
    the membership there and counts it as standing; the first grant's end
    removes the user's (renamed) membership, early for the second grant.
    Nothing is left behind, nothing fails."""
    with Env() as e:
        s, j = e.slapd, e.jitd
        # g1 must outlive the rename and g2's grant; g2 must outlive g1.
        g1 = j.must_grant("dave", "web", 5)
        new_dn = _move(s, "dave", "david")
        g2 = j.must_grant("david", "web", 8)
        eq(one_event(j, "granted", g2["grant_id"])["outcome"], "standing", "second grant")
        wait_state(j, g1, "expired", SLACK)
        eq(one_event(j, "expired", g1["grant_id"])["outcome"], "removed", "first grant")
        eq(s.is_member("web", new_dn), False, "the user's membership ended with the first grant")
        wait_state(j, g2, "expired", SLACK)
        eq(s.is_member("web", new_dn), False, "nothing left")
        eq(j.audit_events("revoke_failed"), [], "no failed removal")


@contextlib.contextmanager
def _two_servers(env=None):
    """jitd with two independent slapd servers A and B as one directory's
    URIs (replication_grace 2 s). Yields (e, a, b, j)."""
    b = Slapd().start()
    try:
        with Env(start=False) as e:
            a, j = e.slapd, e.jitd
            d = j.config["directories"][0]
            d["uri"] = "%s %s" % (a.ldapi_uri, b.ldapi_uri)
            d["replication_grace"] = 2
            j.write_config()
            j.start(env=env)
            yield e, a, b, j
    finally:
        b.close()


def test_removal_goes_to_the_writing_server_and_is_checked_after_replication_grace():
    """Two independent slapd instances stand for two domain controllers of
    one domain; the test plays replication by hand (they do not replicate)."""
    with _two_servers() as (e, a, b, j):
        alice = a.user_dn("alice")

        # 1. Written on A; A goes down; the removal goes to B, which never
        # saw the add: "not there" is not believed while A may hold it.
        g = j.must_grant("alice", "admins", 5)  # due only after A is down
        eq(one_event(j, "granted", g["grant_id"])["added_via"], a.ldapi_uri, "added_via")
        eq((a.is_member("admins", alice), b.is_member("admins", alice)), (True, False),
           "after the add (A, B)")
        a.stop()
        time.sleep(max(0, parse_time(g["expires_at"]) - time.time()) + 3)
        eq(j.show(g["grant_id"])["state"], "ending", "waits for the writer or replication")
        # 2. The add replicates to B late: the next check finds it there.
        b.add_member("admins", alice)
        wait_until(lambda: not b.is_member("admins", alice), 8, "removal on B")
        wait_state(j, g, "expired", 12)
        ev = one_event(j, "expired", g["grant_id"])
        eq((ev["outcome"], ev["removed_via"], ev.get("checked_after_grace")),
           ("removed", b.ldapi_uri, True), "expired event")

        # 3. Written on A, A down at expiry, A back: A itself removes it.
        # (A restart of jitd makes it connect to A, the first URI, again.)
        a.start()
        j.restart()
        g2 = j.must_grant("bob", "admins", 5)  # due only after A is down
        bob = a.user_dn("bob")
        eq(one_event(j, "granted", g2["grant_id"])["added_via"], a.ldapi_uri, "bob added_via")
        a.stop()
        time.sleep(max(0, parse_time(g2["expires_at"]) - time.time()) + 3)
        eq(j.show(g2["grant_id"])["state"], "ending", "bob: waiting for A")
        a.start()
        wait_state(j, g2, "expired", 12)
        eq(a.is_member("admins", bob), False, "removed on the server that wrote it")
        ev = one_event(j, "expired", g2["grant_id"])
        eq((ev["outcome"], ev["removed_via"]), ("removed", a.ldapi_uri), "bob expired event")
        eq(j.audit_events("revoke_failed"), [], "no failed removal")


def test_check_after_replication_grace_that_cannot_be_recorded_keeps_the_grant_ending():
    """Written on A; A down at the end; B answers the removal (it never saw
    the value), and the check after replication_grace cannot be recorded
    (a store write fails). The grant must not close on B's word: it stays
    ending, its removal is made again, and A, once back, removes alice
    (regression: the grant closed `already_absent` and A kept alice)."""
    from test_failures import need_faults
    need_faults()
    with _two_servers(env={"JITD_FAULT": "fail.verify_record:@1"}) as (e, a, b, j):
        alice = a.user_dn("alice")
        g = j.must_grant("alice", "admins", "1h")
        eq(one_event(j, "granted", g["grant_id"])["added_via"], a.ldapi_uri, "added_via")
        a.stop()
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        wait_until(lambda: "fault fail at fail.verify_record" in j.stderr_tail(200), 10,
                   "the failed record")
        eq(j.show(g["grant_id"])["state"], "ending", "not closed on B's answer")
        eq(j.audit_events("completed"), [], "no completed line")
        a.start()
        wait_state(j, g, "completed", 30)
        eq(a.is_member("admins", alice), False, "removed on the server that wrote it")
        ev = one_event(j, "completed", g["grant_id"])
        eq((ev["outcome"], ev["removed_via"]), ("removed", a.ldapi_uri), "completed event")


def test_member_list_of_a_group_on_openldap():
    """The member list as jitd's directory code reads it (tests/tools/dirlist):
    OpenLDAP has no range retrieval, and the plain attribute comes first."""
    import os
    import subprocess
    from jitd import builddir
    with Env(start=False) as e:
        s, j = e.slapd, e.jitd
        for u in ("alice", "bob", "carol"):
            s.add_member("dba", s.user_dn(u))
        tool = os.path.join(builddir(), "tests", "tools", "dirlist")
        r = subprocess.run([tool, j.conf, "corp", s.group_dn("dba"), "member"],
                           capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, "dirlist: %s" % r.stderr)
        got = sorted(norm_dn(v) for v in r.stdout.splitlines()[:-1])
        eq(got, sorted(norm_dn(v) for v in s.members("dba")), "members")
        eq(r.stdout.splitlines()[-1], "count 4", "count (with the placeholder)")


def _mods_of(s, group, since):
    """MOD operations on group's entry in slapd's log after byte offset since."""
    want = 'MOD dn="%s"' % s.group_dn(group)
    with open(s.log, errors="replace") as f:
        f.seek(since)
        return sum(1 for line in f if want.lower() in line.lower())


def test_expiries_of_one_group_leave_it_with_one_modify():
    """Grants of one group that expire together leave it with one modify
    (the renamed user's goes alone, the standing member's stays): fewer
    modifies of the group than grants, and each grant's outcome as if it
    had ended alone."""
    users = ["alice", "bob", "carol", "dave", "frank", "heidi"]
    with Env() as e:
        s, j = e.slapd, e.jitd
        s.add_member("ops", s.user_dn("grace"))           # standing: stays
        # 6 s: erin's grant must outlive her rename, and all must fall due
        # after `since`.
        gs = {u: j.must_grant(u, "ops", 6) for u in users + ["erin", "grace"]}
        new_erin = _move(s, "erin", "erin.new", _staff(s))  # refint rewrites it
        since = os.path.getsize(s.log)
        end = max(parse_time(g["expires_at"]) for g in gs.values()) + SLACK
        for u in users:
            e.wait_removed("ops", s.user_dn(u), end, "expiry of %s" % u)
        e.wait_removed("ops", new_erin, end, "expiry of renamed erin")
        for g in gs.values():
            wait_state(j, g, "expired", SLACK)
        for u in users:
            eq(one_event(j, "expired", gs[u]["grant_id"])["outcome"], "removed", u)
        ev = one_event(j, "expired", gs["erin"]["grant_id"])
        eq((ev["outcome"], norm_dn(ev["removed_value"])), ("removed", norm_dn(new_erin)),
           "renamed erin")
        eq(one_event(j, "expired", gs["grace"]["grant_id"])["outcome"], "kept_standing", "grace")
        eq(s.is_member("ops", s.user_dn("grace")), True, "the standing member stays")
        mods = _mods_of(s, "ops", since)
        # The six plain expiries: one modify per second their expiries fall
        # in. Erin, renamed, goes alone: the current DN's removal, and a
        # try of the old DN (refint rewrote it, so it is not there). One
        # grant at a time: 6 + 2 = 8.
        seconds = len(set(gs[u]["expires_at"] for u in users))
        if not 1 <= mods <= seconds + 2:
            raise AssertionError("%d modifies of the group for 8 expiries (want 1..%d)"
                                 % (mods, seconds + 2))


def test_a_batch_the_directory_refuses_ends_one_grant_at_a_time():
    """One value of the batch was removed by hand: the group's one modify
    is refused as a whole (noSuchAttribute), and each grant then ends
    alone: the others removed, the hand-removed one already_absent."""
    users = ["alice", "bob", "carol", "dave"]
    with Env() as e:
        s, j = e.slapd, e.jitd
        gs = {u: j.must_grant(u, "ops", 4) for u in users}
        s.remove_member("ops", s.user_dn("carol"))
        end = max(parse_time(g["expires_at"]) for g in gs.values()) + SLACK
        for u in users:
            e.wait_removed("ops", s.user_dn(u), end, "expiry of %s" % u)
        for g in gs.values():
            wait_state(j, g, "expired", SLACK)
        got = {u: one_event(j, "expired", gs[u]["grant_id"])["outcome"] for u in users}
        eq(got, {"alice": "removed", "bob": "removed", "carol": "already_absent",
                 "dave": "removed"}, "outcomes")


def test_grant_refused_when_the_entry_has_no_uuid():
    """uuid_attr names an attribute the user's entry lacks (a typo, an ACL
    that hides it, AD left at entryUUID): jitd could not follow the user
    through a rename, so a DN-valued grant is refused with
    directory_refused and a message that says why, and nothing is written
    (regression: it was granted without a uuid, and a rename during the
    grant left the membership behind). A memberUid group, whose value is
    the uid, is not affected."""
    from jittest import refused
    with Env(directory={"uuid_attr": "employeeNumber"}) as e:
        a = e.jitd.grant("alice", "dba", "1h")
        refused(a, "directory_refused", "grant without a uuid")
        assert "employeeNumber" in a["error"]["message"], a
        assert not e.is_member("dba", e.user_dn("alice"))
        eq(e.jitd.ok({"op": "list", "state": "all"})["count"], 0, "grants recorded")
        ev = e.jitd.audit_events("refused")
        assert ev and ev[-1].get("error") == "directory_refused", ev[-1:]
        g = e.jitd.must_grant("bob", "unixops", "1h")
        assert e.is_member("unixops", "bob")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})


def test_two_users_behind_one_dn_each_lose_their_own_membership():
    """alice is granted, renamed (refint moves the group's value to her new
    DN), and a new entry takes her old DN and is granted the same group: the
    two grants share one pair (the DN) but are two users. Whichever ends
    first, each end removes its own user's membership (regression: the first
    to end was taken as kept by the other's live grant, and its user's
    membership stayed for good once both rows were final)."""
    for first in ("old", "new"):
        with Env() as e:
            s, j = e.slapd, e.jitd
            if "refint" not in s.overlays and "memberof" not in s.overlays:
                raise AssertionError("this test needs slapd's refint (or memberof) overlay")
            ga = j.must_grant("alice", "admins", "1h")
            old_dn = s.user_dn("alice")
            new_dn = _move(s, "alice", "alice.smith", _staff(s))
            eq(s.is_member("admins", new_dn), True, "refint rewrote the value")
            eq(s.add_user("alice"), old_dn, "the new entry takes alice's old DN")
            gb = j.must_grant("alice", "admins", "1h")
            eq(one_event(j, "granted", gb["grant_id"])["outcome"], "added", "the new alice's add")
            order = [ga, gb] if first == "old" else [gb, ga]
            for g in order:
                j.ok({"op": "complete", "grant_id": g["grant_id"]})
            eq(s.is_member("admins", new_dn), False, "the renamed alice (%s ended first)" % first)
            eq(s.is_member("admins", old_dn), False, "the new alice (%s ended first)" % first)
            for g in (ga, gb):
                eq(one_event(j, "completed", g["grant_id"])["outcome"], "removed",
                   "outcome of %s (%s ended first)" % (g["grant_id"], first))


def test_memberuid_values_differing_in_case_are_each_removed():
    """memberUid compares case: a grant writes carol's uid, the uid's case
    is changed, and a second grant writes the new spelling. They share a
    pair key (keys fold case) but not a value: each end removes its own
    (regression: the first to end was kept by the other, and its value
    stayed)."""
    for first in ("old", "new"):
        with Env() as e:
            s, j = e.slapd, e.jitd
            ga = j.must_grant("carol", "unixops", "1h")
            dn = s.user_dn("carol")
            s.ldapmodify("dn: %s\nchangetype: modify\nreplace: uid\nuid: Carol\n" % dn)
            gb = j.must_grant("Carol", "unixops", "1h")
            vals = s.members("unixops", "memberUid")
            eq(sorted(vals), ["Carol", "carol"], "both spellings written")
            order = [ga, gb] if first == "old" else [gb, ga]
            for g in order:
                j.ok({"op": "complete", "grant_id": g["grant_id"]})
            eq(s.members("unixops", "memberUid"), set(), "memberUid values left (%s first)" % first)


def _two_entries_with_uid_mx(s):
    """mx (uid values mx and mallory, cn mallory) and other-mx (uid mx)."""
    s.ldapadd("dn: uid=mx,%s\nobjectClass: inetOrgPerson\nuid: mx\nuid: mallory\n"
              "cn: mallory\nsn: mx\n" % s.people)
    s.ldapadd("dn: cn=other-mx,%s\nobjectClass: inetOrgPerson\nuid: mx\ncn: other-mx\n"
              "sn: o\n" % s.people)


def test_memberuid_is_the_uid_asked_for_and_names_the_entry_alone():
    """An entry with two uid values (mx, mallory), and another entry whose
    uid is mx. A memberUid grant asked for "mallory" writes "mallory", the
    value that names this entry alone (regression: it wrote the first
    value, mx, which the name service may take for the other entry). With
    a user_filter on cn, the value written is checked by a search: asked
    for the other entry by its cn, its uid (mx) names two entries and the
    grant is refused, nothing written."""
    with Env() as e:
        s, j = e.slapd, e.jitd
        _two_entries_with_uid_mx(s)
        g = j.must_grant("mallory", "unixops", "1h")
        eq(s.members("unixops", "memberUid"), {"mallory"}, "the value written")
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        eq(s.members("unixops", "memberUid"), set(), "memberUid values left")
    with Env(directory={"user_filter": "(cn=%s)"}) as e:
        s, j = e.slapd, e.jitd
        _two_entries_with_uid_mx(s)
        g = j.must_grant("mallory", "unixops", "1h")  # checked by a search: alone
        eq(s.members("unixops", "memberUid"), {"mallory"}, "the value written (cn filter)")
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        a = j.grant("other-mx", "unixops", "1h")
        refused(a, "directory_refused", "a grant whose uid value names two entries")
        assert "does not name its entry alone" in a["error"]["message"], a
        eq(s.members("unixops", "memberUid"), set(), "nothing written")


def test_a_standing_member_behind_a_reused_dn_is_kept():
    """Standing is decided per user, as keeping is: (a) alice is a standing
    member when granted, is renamed (refint moves her value), and a new
    entry at her old DN is granted: her grant stays standing and her
    membership stays, whichever grant ends first; (b) the new entry is made
    a standing member by hand before its own grant: that grant is standing
    too, whatever the renamed bob's live grant of the same DN, and the
    hand-made membership stays (regression: the pair's other user's grant
    cleared or decided standing, and a standing membership was removed)."""
    for first in ("old", "new"):
        with Env() as e:
            s, j = e.slapd, e.jitd
            if "refint" not in s.overlays and "memberof" not in s.overlays:
                raise AssertionError("this test needs slapd's refint (or memberof) overlay")
            # (a)
            old_dn = s.user_dn("alice")
            s.add_member("admins", old_dn)
            ga = j.must_grant("alice", "admins", "1h")
            eq(ga["standing"], True, "alice's grant, a standing member")
            new_dn = _move(s, "alice", "alice.smith", _staff(s))
            s.add_user("alice")
            gb = j.must_grant("alice", "admins", "1h")
            eq(gb["standing"], False, "the new entry's grant")
            for g in ([ga, gb] if first == "old" else [gb, ga]):
                j.ok({"op": "complete", "grant_id": g["grant_id"]})
            eq(s.is_member("admins", new_dn), True,
               "alice's standing membership (%s ended first)" % first)
            eq(s.is_member("admins", old_dn), False,
               "the new entry's granted membership (%s ended first)" % first)
            eq(one_event(j, "completed", ga["grant_id"])["outcome"], "kept_standing", "outcome")
            # (b)
            bob_old = s.user_dn("bob")
            gc = j.must_grant("bob", "dba", "1h")
            robert = _move(s, "bob", "robert")
            s.add_user("bob")
            s.add_member("dba", bob_old)      # the new bob's, by hand
            gd = j.must_grant("bob", "dba", "1h")
            eq(gd["standing"], True, "the new bob's grant, a standing member")
            for g in ([gc, gd] if first == "old" else [gd, gc]):
                j.ok({"op": "complete", "grant_id": g["grant_id"]})
            eq(s.is_member("dba", bob_old), True,
               "the new bob's standing membership (%s ended first)" % first)
            eq(s.is_member("dba", robert), False,
               "the renamed bob's granted membership (%s ended first)" % first)
