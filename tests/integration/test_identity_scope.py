"""Users who leave user_base during a grant (OpenLDAP with refint): jitd
looks for the user by entryUUID in the naming context that holds
user_base, so a user moved to ou=former loses the membership refint
rewrote to the new DN, alone or in a batch of expiries. And when neither
the user nor the value jitd wrote can be found, "already absent" is
believed only if no value of the group can be the user: a user moved
where jitd cannot see keeps the grant `ending` and reported, not closed.
"""

import time

from jittest import Env, eq, wait_until, one_event, wait_state
from jitd import parse_time
from slapd import norm_dn

SLACK = 4  # seconds a removal may take after expires_at


def _need_refint(s):
    if "refint" not in s.overlays:
        raise AssertionError("this test needs slapd's refint overlay")


def _ou(s, name):
    dn = "ou=%s,%s" % (name, s.suffix)
    s.ldapadd("dn: %s\nobjectClass: organizationalUnit\nou: %s\n" % (dn, name))
    return dn


def _move(s, uid, parent):
    """modrdn uid=<uid> from ou=people to under parent; the new DN."""
    s.ldapmodify("dn: %s\nchangetype: modrdn\nnewrdn: uid=%s\ndeleteoldrdn: 1\n"
                 "newsuperior: %s\n" % (s.user_dn(uid), uid, parent))
    return "uid=%s,%s" % (uid, parent)



def test_user_moved_out_of_user_base_loses_the_membership():
    with Env() as e:
        s, j = e.slapd, e.jitd
        _need_refint(s)
        g = j.must_grant("alice", "admins", 6)  # outlives the move and checks
        old_dn = s.user_dn("alice")
        new_dn = _move(s, "alice", _ou(s, "former"))
        eq((s.is_member("admins", old_dn), s.is_member("admins", new_dn)), (False, True),
           "refint rewrote the value (old, new)")
        wait_state(j, g, "expired", SLACK)
        eq(s.is_member("admins", new_dn), False, "membership removed at expiry")
        ev = one_event(j, "expired", g["grant_id"])
        eq((ev["outcome"], norm_dn(ev.get("removed_value") or "")), ("removed", norm_dn(new_dn)),
           "expired event (outcome, removed_value)")
        eq(j.audit_events("revoke_failed"), [], "no failed removal")


def test_users_moved_out_of_user_base_in_a_batch_lose_the_membership():
    users = ["alice", "bob", "carol", "dave"]
    with Env() as e:
        s, j = e.slapd, e.jitd
        _need_refint(s)
        gs = {u: j.must_grant(u, "ops", 6) for u in users}  # outlive the moves
        former = _ou(s, "former")
        moved = {u: _move(s, u, former) for u in ("alice", "carol")}
        for g in gs.values():
            wait_state(j, g, "expired", SLACK)
        for u, dn in moved.items():
            eq(s.is_member("ops", dn), False, "%s (moved) removed" % u)
            ev = one_event(j, "expired", gs[u]["grant_id"])
            eq((ev["outcome"], norm_dn(ev.get("removed_value") or "")),
               ("removed", norm_dn(dn)), "%s expired event" % u)
        for u in ("bob", "dave"):
            eq(s.is_member("ops", s.user_dn(u)), False, "%s removed" % u)
            eq(one_event(j, "expired", gs[u]["grant_id"])["outcome"], "removed", u)
        eq(j.audit_events("revoke_failed"), [], "no failed removal")


def _hide_from_jitd(s, base):
    """An ACL that hides base's subtree from the service identity."""
    with open(s.conf) as f:
        conf = f.read()
    rule = ('access to dn.subtree="%s"\n    by dn.exact="%s" none\n    by * read\n'
            % (base, s.service_dn))
    conf = conf.replace("access to attrs=userPassword", rule + "access to attrs=userPassword", 1)
    with open(s.conf, "w") as f:
        f.write(conf)
    s.restart()


def test_user_moved_out_of_sight_is_not_taken_for_deleted():
    """The user moves to an OU jitd may not read: no search finds the
    user, and the value jitd wrote is gone (refint rewrote it). That is
    what a deletion looks like too, but the group holds a value a move of
    the user would produce: the grant stays ending, reported, and the
    membership is not claimed removed. Once jitd may read the OU, the next
    attempt removes it."""
    with Env() as e:
        s, j = e.slapd, e.jitd
        _need_refint(s)
        hidden = _ou(s, "hidden")
        _hide_from_jitd(s, hidden)
        g = j.must_grant("alice", "admins", 5)  # outlives the move
        new_dn = _move(s, "alice", hidden)
        eq(s.is_member("admins", new_dn), True, "refint rewrote the value")
        wait_until(lambda: j.audit_events("revoke_failed", g["grant_id"]),
                   parse_time(g["expires_at"]) + SLACK - time.time(), "revoke_failed")
        eq(j.show(g["grant_id"])["state"], "ending", "not closed")
        eq(j.audit_events("expired", g["grant_id"]), [], "no expired line")
        ev = j.audit_events("revoke_failed", g["grant_id"])[0]
        if "may be the user" not in ev.get("message", ""):
            raise AssertionError("revoke_failed message: %r" % ev.get("message"))
        eq(j.ok({"op": "status"})["status"]["revocations_failing"], 1, "counted as failing")
        # The operator lets jitd read the OU again: the retry removes it.
        with open(s.conf) as f:
            conf = f.read()
        with open(s.conf, "w") as f:
            f.write(conf.replace('by dn.exact="%s" none' % s.service_dn,
                                 'by dn.exact="%s" read' % s.service_dn))
        s.restart()
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 15, "expiry after fix")
        eq(s.is_member("admins", new_dn), False, "membership removed")
        eq(one_event(j, "expired", g["grant_id"])["outcome"], "removed", "outcome")


def test_user_moved_out_of_sight_of_a_group_jitd_may_not_read_is_not_taken_for_deleted():
    """As above, but jitd may write the group's member values and not read
    them (an "=w" access): the list of the group comes back with no value,
    which accounted for every member it could not see, and the grant was
    closed "already_absent" with the moved user still a member (regression).
    Now an empty list the server does not confirm empty is a refusal."""
    with Env() as e:
        s, j = e.slapd, e.jitd
        _need_refint(s)
        hidden = _ou(s, "hidden")
        _hide_from_jitd(s, hidden)
        g = j.must_grant("alice", "admins", 5)  # outlives the move and the restart
        with open(s.conf) as f:
            conf = f.read()
        rule = ('access to dn.exact="%s" attrs=member\n    by dn.exact="%s" =w\n'
                '    by * read\n' % (s.group_dn("admins"), s.service_dn))
        with open(s.conf, "w") as f:
            f.write(conf.replace('access to dn.subtree="ou=groups,',
                                 rule + 'access to dn.subtree="ou=groups,', 1))
        s.restart()
        new_dn = _move(s, "alice", hidden)
        eq(s.is_member("admins", new_dn), True, "refint rewrote the value")
        wait_until(lambda: j.audit_events("revoke_failed", g["grant_id"])
                   or j.audit_events("expired", g["grant_id"]),
                   parse_time(g["expires_at"]) + SLACK - time.time(), "the removal's outcome")
        eq(j.audit_events("expired", g["grant_id"]), [], "no expired line")
        eq(j.show(g["grant_id"])["state"], "ending", "not closed")
        ev = j.audit_events("revoke_failed", g["grant_id"])[0]
        if "may not read" not in ev.get("message", ""):
            raise AssertionError("revoke_failed message: %r" % ev.get("message"))
        eq(s.is_member("admins", new_dn), True, "still a member: the grant stays ending")
