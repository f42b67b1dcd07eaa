"""Who may talk to jitd (kernel peer credentials against `clients`), and
how jitd authenticates to the directory (SASL EXTERNAL over ldapi,
SCRAM-SHA-256 over ldap://127.0.0.1)."""

import re

from jittest import Env, eq, refused, expires_epoch, need_root

NOBODY = 65534
SLACK = 5


def test_unauthorized_peer():
    need_root()
    with Env(public=True) as e:
        before = e.slapd.members("admins")
        a = e.jitd.request_as(NOBODY, NOBODY, {"op": "grant", "user": "alice",
                                               "group": "admins", "duration": "1h"})
        refused(a, "unauthorized", "grant from uid 65534")
        refused(e.jitd.request_as(NOBODY, NOBODY, {"op": "status"}), "unauthorized", "status")
        refused(e.jitd.request_as(NOBODY, NOBODY, {"op": "list"}), "unauthorized", "list")
        eq(e.slapd.members("admins"), before, "members unchanged")
        # jitctl as that uid: refusal, exit 1.
        r = e.jitd.jitctl("grant", "alice", "admins", "--for", "1h", as_uid=NOBODY)
        eq(r.returncode, 1, "jitctl exit status as uid 65534 (stderr %r)" % r.stderr)
        assert "unauthorized" in r.stderr, r.stderr
        eq(e.slapd.members("admins"), before, "members unchanged after jitctl")
        # Root, which has a clients entry, is served.
        e.grant_and_check("alice", "admins", "1h")


def test_client_limited_ops_and_groups():
    need_root()
    clients = [{"name": "helpdesk", "uid": NOBODY, "ops": ["grant", "show"],
                "groups": ["web", "unixops"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        a = e.jitd.request_as(NOBODY, NOBODY, {"op": "grant", "user": "alice",
                                               "group": "web", "duration": "1h"})
        assert a.get("ok") is True, a
        assert e.is_member("web", e.user_dn("alice")), "allowed grant did not add the member"
        gid = a["grant"]["grant_id"]
        s = e.jitd.request_as(NOBODY, NOBODY, {"op": "show", "grant_id": gid})
        eq(s.get("ok"), True, "show allowed")
        refused(e.jitd.request_as(NOBODY, NOBODY, {"op": "grant", "user": "alice",
                                                   "group": "admins", "duration": "1h"}),
                "unauthorized", "grant on a group not in the entry")
        assert not e.is_member("admins", e.user_dn("alice"))
        for req in ({"op": "complete", "grant_id": gid}, {"op": "revoke", "grant_id": gid},
                    {"op": "extend", "grant_id": gid, "duration": "1h"}, {"op": "list"},
                    {"op": "status"}):
            refused(e.jitd.request_as(NOBODY, NOBODY, req), "unauthorized", req["op"])
        eq(e.jitd.show(gid)["state"], "active", "still active after refused complete/revoke")
        assert e.is_member("web", e.user_dn("alice"))
        # The second entry (root) may do the rest.
        e.jitd.ok({"op": "complete", "grant_id": gid})
        assert not e.is_member("web", e.user_dn("alice"))


def test_client_matched_by_gid():
    """A clients entry by gid: the listener and the engine both match the
    peer's gid (the engine reads the peer's groups only when some entry
    matches by gid); another gid of the same uid is refused."""
    need_root()
    clients = [{"name": "opsgroup", "gid": 4242, "groups": ["web"]},
               {"name": "root", "uid": 0, "groups": ["*"]}]
    with Env(public=True, clients=clients) as e:
        a = e.jitd.request_as(NOBODY, 4242, {"op": "grant", "user": "alice",
                                             "group": "web", "duration": "1h"})
        assert a.get("ok") is True, a
        assert e.is_member("web", e.user_dn("alice")), "grant by gid did not add the member"
        eq(e.jitd.audit_events("granted")[-1].get("client"), "opsgroup", "client recorded")
        refused(e.jitd.request_as(NOBODY, NOBODY, {"op": "grant", "user": "bob",
                                                   "group": "web", "duration": "1h"}),
                "unauthorized", "same uid, another gid")
        assert not e.is_member("web", e.user_dn("bob"))


def _bind_mechs(slapd):
    """SASL mechanisms slapd logged for binds as the service DN."""
    log = slapd.log_tail(100000)
    return set(re.findall(r'BIND dn="cn=jitd,ou=services,[^"]*" mech=([A-Z0-9-]+)', log))


def test_sasl_external_over_ldapi():
    with Env(mech="EXTERNAL") as e:
        g = e.grant_and_check("alice", "admins", "3s")
        e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g) + SLACK, "EXTERNAL expiry")
        mechs = _bind_mechs(e.slapd)
        assert "EXTERNAL" in mechs, "slapd saw no EXTERNAL bind as cn=jitd: %r" % mechs
        assert "nothing protects" not in e.jitd.stderr_tail(400), "warned about ldapi://"


def test_sasl_scram_sha256_over_tcp():
    with Env(mech="SCRAM-SHA-256") as e:
        assert e.jitd.config["directories"][0]["uri"].startswith("ldap://127.0.0.1:")
        g = e.grant_and_check("bob", "admins", "3s")
        e.wait_removed("admins", e.user_dn("bob"), expires_epoch(g) + SLACK, "SCRAM expiry")
        mechs = _bind_mechs(e.slapd)
        assert "SCRAM-SHA-256" in mechs, "slapd saw no SCRAM-SHA-256 bind as cn=jitd: %r" % mechs
        assert "EXTERNAL" not in mechs, mechs
        # SCRAM has no security layer: on ldap:// without starttls jitd says
        # that nothing protects the operations after the bind
        assert "SCRAM-SHA-256 on ldap:// without starttls" in e.jitd.stderr_tail(400)


def test_sasl_scram_over_ldaps_with_the_certificate_checked():
    # The TLS handshake runs through jitd's set-up deadline layer (see
    # dir_conn_added in src/ldapbind.c): a real handshake, certificate demanded.
    with Env(mech="SCRAM-SHA-256", slapd_kw={"tls": True}, start=False) as e:
        d = e.jitd.config["directories"][0]
        d["uri"] = e.slapd.ldaps_uri
        d["tls_ca_file"] = e.slapd.tls_cert
        e.jitd.write_config()
        e.jitd.start()
        g = e.grant_and_check("bob", "admins", "3s")
        e.wait_removed("admins", e.user_dn("bob"), expires_epoch(g) + SLACK, "ldaps expiry")
        assert "SCRAM-SHA-256" in _bind_mechs(e.slapd)
        assert "nothing protects" not in e.jitd.stderr_tail(400), "warned about ldaps://"
        eq(e.jitd.ok({"op": "status"})["status"]["directories"][0]["connected"], True,
           "connected over ldaps://")


def test_gssapi_over_unverified_tls_is_warned_about():
    # GSSAPI over TLS asks for no SASL layer (AD refuses one inside TLS), so
    # with tls_require_cert never, allow or try nothing proves the server is
    # the directory: jitd says so at start, like the SCRAM warning above.
    # Nothing listens on the port: the warning is about the configuration.
    import socket as _s
    probe = _s.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    warning = "GSSAPI over TLS with tls_require_cert = %s and no SASL security layer"
    cases = [  # (directory overrides, warned?)
        ({"uri": "ldaps://127.0.0.1:%d" % port, "tls_require_cert": "never"}, True),
        ({"uri": "ldaps://127.0.0.1:%d" % port, "tls_require_cert": "allow"}, True),
        ({"uri": "ldap://127.0.0.1:%d" % port, "starttls": True, "tls_require_cert": "try"},
         True),
        # ... and not when the certificate is demanded, when a layer is asked
        # for, or on ldap:// where GSSAPI seals.
        ({"uri": "ldaps://127.0.0.1:%d" % port, "tls_require_cert": "demand"}, False),
        ({"uri": "ldaps://127.0.0.1:%d" % port, "tls_require_cert": "never",
          "sasl_secprops": "minssf=56"}, False),
        ({"uri": "ldap://127.0.0.1:%d" % port, "tls_require_cert": "never"}, False),
    ]
    with Env(mech="GSSAPI", start=False) as e:
        base = dict(e.jitd.config["directories"][0])
        for overrides, warned in cases:
            d = dict(base)
            d.update(overrides)
            e.jitd.config["directories"][0] = d
            e.jitd.write_config()
            with open(e.jitd.stderr_path, "w"):
                pass  # this start's lines only
            e.jitd.start()
            e.jitd.stop()
            req = overrides["tls_require_cert"]
            got = (warning % req) in e.jitd.stderr_tail(400)
            eq(got, warned, "warning for %r" % overrides)
            if warned:
                assert "set tls_require_cert = demand" in e.jitd.stderr_tail(400)


def test_scram_wrong_password_grants_nothing():
    with Env(mech="SCRAM-SHA-256", start=False) as e:
        e.jitd.write_secret("not-the-password")
        try:
            e.jitd.start()
        except RuntimeError:
            # Refusing to start with a directory it cannot bind to is fine too;
            # then there is nothing more to check.
            eq(e.slapd.members("admins"), {e.slapd.placeholder}, "members")
            return
        a = e.jitd.grant("alice", "admins", "1h")
        assert a.get("ok") is False, "grant succeeded with a wrong bind password: %r" % a
        eq(a["error"]["code"], "directory_unavailable", "code for a failed bind")
        eq(e.slapd.members("admins"), {e.slapd.placeholder}, "members")
        st = e.jitd.ok({"op": "status"})["status"]
        eq(st["directories"][0]["connected"], False, "status: not connected")
        eq(st["directories"][0]["connections_up"], 0, "status: no connection bound")
        eq(st["directories"][0]["connections"], 2, "status: connections")
        assert st["directories"][0]["last_error"], st


def test_uri_list_fails_over_to_next_uri():
    # The first URI answers nothing (a closed port); the second is the real
    # directory. Grants and removals must go through the second.
    import socket as _s
    probe = _s.socket()
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with Env(start=False) as e:
        e.jitd.config["directories"][0]["uri"] = "ldap://127.0.0.1:%d %s" % (dead, e.slapd.ldapi_uri)
        e.jitd.write_config()
        e.jitd.start()
        g = e.grant_and_check("alice", "admins", "1h")
        e.jitd.ok({"op": "complete", "grant_id": g["grant_id"]})
        assert not e.is_member("admins", e.user_dn("alice")), "removal through the second URI"
        st = e.jitd.ok({"op": "status"})["status"]
        eq(st["directories"][0]["connected"], True, "connected through the second URI")
