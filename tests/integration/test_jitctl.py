"""jitctl, the client CLI: readable and --json output, exit statuses
(0 ok, 1 refusal with the code on stderr, 2 usage, 3 no socket); control
characters in what the daemon sends never reach the terminal raw."""

import json
import os
import re
import sqlite3

from jittest import Env, eq

GRANT_ID = re.compile(r"\bg-[0-9a-f]{24}\b")


def test_jitctl_grant_show_list_complete():
    with Env() as e:
        j = e.jitd
        r = j.jitctl("grant", "alice", "admins", "--for", "1h", "--ticket", "T-9",
                     "--reason", "deploy", "--requested-by", "alice",
                     "--approved-by", "bob", "--request-id", "CLI-1")
        eq(r.returncode, 0, "grant exit status (stderr %r)" % r.stderr)
        m = GRANT_ID.search(r.stdout)
        assert m, "no grant id in readable output: %r" % r.stdout
        gid = m.group(0)
        for word in ("alice", "admins", "active", "T-9"):
            assert word in r.stdout, "%r missing from readable grant output:\n%s" % (word, r.stdout)
        assert e.is_member("admins", e.user_dn("alice"))
        g = j.show(gid)
        eq(g["ticket"], "T-9", "ticket")
        eq(g["reason"], "deploy", "reason")
        eq(g["requested_by"], "alice", "requested_by")
        eq(g["approved_by"], "bob", "approved_by")
        eq(g["request_id"], "CLI-1", "request_id")
        eq(g["duration"], 3600, "duration")

        # --json prints the server's answer line (unchanged: nothing to escape).
        r = j.jitctl("--json", "show", gid)
        eq(r.returncode, 0, "show --json exit status")
        lines = r.stdout.splitlines()
        eq(len(lines), 1, "one line of --json output")
        a = json.loads(lines[0])
        eq(a["ok"], True, "ok")
        eq(a["grant"]["grant_id"], gid, "grant_id")
        eq(a["grant"], j.show(gid), "--json grant equals the server's")

        r = j.jitctl("show", gid)
        eq(r.returncode, 0, "show exit status")
        assert gid in r.stdout and "alice" in r.stdout, r.stdout

        r = j.jitctl("list")
        eq(r.returncode, 0, "list exit status")
        assert gid in r.stdout and "alice" in r.stdout, r.stdout
        r = j.jitctl("--json", "list", "--user", "alice", "--state", "all", "--limit", "5")
        eq(r.returncode, 0, "list --json exit status")
        a = json.loads(r.stdout)
        eq(a["count"], 1, "list count")

        r = j.jitctl("extend", gid, "30m")
        eq(r.returncode, 0, "extend exit status (stderr %r)" % r.stderr)
        eq(j.show(gid)["duration"], 5400, "duration after extend")

        j.wait_bound()
        r = j.jitctl("status")
        eq(r.returncode, 0, "status exit status")
        assert re.search(r"^directory corp: +connected \(2 of 2 connections bound\)$",
                         r.stdout, re.M), r.stdout
        # one line of mean step times, of the steps that ran (the grant's)
        steps = [l for l in r.stdout.splitlines() if l.startswith("mean step times")]
        eq(len(steps), 1, "mean step times lines in %r" % r.stdout)
        assert re.search(r"\blookup_user \d+\.\d{3} ms\b", steps[0]), steps[0]
        assert "record_ended" not in steps[0], steps[0]  # nothing ended yet
        r = j.jitctl("--json", "status")
        eq(json.loads(r.stdout)["status"]["protocol"], 1, "status --json")

        r = j.jitctl("complete", gid, "--reason", "done")
        eq(r.returncode, 0, "complete exit status")
        assert "completed" in r.stdout, r.stdout
        assert not e.is_member("admins", e.user_dn("alice")), "complete via jitctl left member"


def test_jitctl_revoke():
    with Env() as e:
        r = e.jitd.jitctl("--json", "grant", "bob", "dba", "--for", "2h")
        eq(r.returncode, 0, "grant exit status")
        gid = json.loads(r.stdout)["grant"]["grant_id"]
        assert e.is_member("dba", e.user_dn("bob"))
        r = e.jitd.jitctl("revoke", gid, "--reason", "oops")
        eq(r.returncode, 0, "revoke exit status")
        assert not e.is_member("dba", e.user_dn("bob"))
        eq(e.jitd.show(gid)["state"], "revoked", "state")


def test_jitctl_refusal_exit_1():
    with Env() as e:
        r = e.jitd.jitctl("grant", "nobody", "admins", "--for", "1h")
        eq(r.returncode, 1, "exit status for a refusal")
        assert "jitctl: unknown_user:" in r.stderr, r.stderr
        r = e.jitd.jitctl("grant", "alice", "admins", "--for", "9h")
        eq(r.returncode, 1, "exit status for duration_exceeds_max")
        assert "jitctl: duration_exceeds_max:" in r.stderr, r.stderr
        r = e.jitd.jitctl("show", "g-000000000000000000000000")
        eq(r.returncode, 1, "exit status for not_found")
        assert "not_found" in r.stderr, r.stderr
        r = e.jitd.jitctl("--json", "grant", "alice", "nosuchgroup")
        eq(r.returncode, 1, "exit status for a refusal with --json")
        assert "unknown_group" in r.stdout + r.stderr, (r.stdout, r.stderr)
        assert not e.is_member("admins", e.user_dn("alice"))


def test_jitctl_no_socket_exit_3():
    with Env() as e:
        missing = os.path.join(e.jitd.dir, "nothing-here.sock")
        r = e.jitd.jitctl("status", socket_path=missing)
        eq(r.returncode, 3, "exit status without a socket (stderr %r)" % r.stderr)
        assert r.stderr.strip(), "no message on stderr"
        # $JITD_SOCKET is the default socket.
        r = e.jitd.jitctl("status", socket_path=False, env={"JITD_SOCKET": e.jitd.sock})
        eq(r.returncode, 0, "status via $JITD_SOCKET (stderr %r)" % r.stderr)
        r = e.jitd.jitctl("status", socket_path=False, env={"JITD_SOCKET": missing})
        eq(r.returncode, 3, "missing $JITD_SOCKET")
        # A stopped daemon: its socket path is gone or refuses connections.
        e.jitd.stop()
        r = e.jitd.jitctl("status")
        eq(r.returncode, 3, "exit status with the daemon stopped")


def test_jitctl_output_that_cannot_be_written_is_exit_3():
    """jitctl whose output goes to a full disk (/dev/full) must not exit 0:
    a script would take an empty or cut `list` for the whole (regression:
    exit 0, nothing written)."""
    import subprocess
    from jitd import binary
    with Env() as e:
        e.grant_and_check("alice", "admins", "1h")
        for args in (["--json", "list"], ["list"], ["status"]):
            with open("/dev/full", "w") as full:
                r = subprocess.run([binary("jitctl"), "-s", e.jitd.sock] + args, stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=30)
            eq(r.returncode, 3, "exit status of %r with stdout on /dev/full" % args)
            assert "cannot write the answer" in r.stderr, r.stderr


def test_jitctl_usage_exit_2():
    with Env() as e:
        for args in (["frobnicate"], ["grant", "alice"], ["extend", "g-1"], [],
                     ["grant", "alice", "admins", "--for"], ["list", "--bogus"]):
            r = e.jitd.jitctl(*args)
            eq(r.returncode, 2, "exit status for usage error %r (stderr %r)" % (args, r.stderr))
            assert r.stderr.strip(), "no usage message for %r" % (args,)
        eq(e.slapd.members("admins"), {e.slapd.placeholder}, "nothing granted")


def test_jitctl_control_characters_not_printed_raw():
    """A C1 control (U+009B, a CSI some terminals obey) and DEL in a stored
    field (a request cannot carry one, but the daemon passes on what its
    store or the directory holds): the readable form shows '?', --json
    escapes them as \\u009b and \\u007f (the same JSON value); neither
    prints them raw."""
    with Env() as e:
        j = e.jitd
        gid = j.must_grant("alice", "admins", "1h", reason="deploy")["grant_id"]
        j.stop()
        db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
        try:
            db.execute("UPDATE grants SET reason = ? WHERE id = ?", ("de\x9b2Jploy\x7f", gid))
            db.commit()
        finally:
            db.close()
        j.start()
        eq(j.show(gid)["reason"], "de\x9b2Jploy\x7f", "the daemon's answer holds the C1")
        for args in (["--json", "show", gid], ["--json", "list", "--state", "all"]):
            r = j.jitctl(*args)
            eq(r.returncode, 0, "%r exit status (stderr %r)" % (args, r.stderr))
            for ch in ("\x9b", "\x7f"):
                assert ch not in r.stdout, "raw %r in %r output: %r" % (ch, args, r.stdout)
            assert "de\\u009b2Jploy\\u007f" in r.stdout, r.stdout
            a = json.loads(r.stdout)
            got = a["grant"] if "grant" in a else a["grants"][0]
            eq(got["reason"], "de\x9b2Jploy\x7f", "%r: the same JSON value" % (args,))
        r = j.jitctl("show", gid)
        eq(r.returncode, 0, "show exit status")
        assert "\x9b" not in r.stdout and "\x7f" not in r.stdout, r.stdout
        assert "de?2Jploy?" in r.stdout, r.stdout
