"""Process hardening: secret files that group or others can read (or that
another user owns) refuse the start and `jitd -t`, naming file:line; the
`user` key drops root after start-up (checked in /proc) and jitd still
works; no secret reaches stderr or `jitd -t -v`."""

import os
import re
import shutil
import signal
import subprocess

from jittest import Env, eq, need_root, wait_until
from jitd import binary

DAEMON = 1  # uid and gid of the "daemon" user on Debian


def _secret(path, text="s3cret-value\n", mode=0o600, owner=None):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner, owner)


def _check(j):
    r = subprocess.run([binary("jitd"), "-t", "-c", j.conf], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stderr


def _line_of(j, key):
    for n, line in enumerate(open(j.conf), 1):
        if re.match(r"\s*%s = " % key, line):
            return n
    raise AssertionError("%s not in the config" % key)


def test_secret_files_with_mode_0644_refused_at_start():
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = e.jitd
        files = {k: os.path.join(j.dir, k) for k in ("keytab", "token_file",
                                                      "approval_key_file")}
        files["sasl_secret_file"] = j.secret_file
        for k in ("keytab", "token_file", "approval_key_file"):
            _secret(files[k])
        j.config["directories"][0]["keytab"] = files["keytab"]
        j.config["groups"][0]["ticket_check"] = {
            "url": "http://127.0.0.1:9/t/%s", "approved_field": "state",
            "approved_value": "approved", "token_file": files["token_file"]}
        j.config["groups"][0]["approval_key_file"] = files["approval_key_file"]
        j.write_config()
        eq(_check(j)[0], 0, "jitd -t with safe files: %r" % (_check(j),))
        for key, path in files.items():
            for mode, owner, words in ((0o644, None, "mode 0644"), (0o640, None, "mode 0640"),
                                       (0o604, None, "mode 0604"),
                                       (0o600, DAEMON, "owned by uid 1")):
                os.chmod(path, mode)
                if owner is not None:
                    os.chown(path, owner, owner)
                want = "%s:%d: %s: %s: " % (j.conf, _line_of(j, key), key, path)
                rc, err = _check(j)
                eq(rc, 1, "jitd -t exit status with %s %o" % (key, mode))
                assert want in err and words in err, (want, words, err)
                # the daemon refuses to start, before it creates its socket
                p = subprocess.run([binary("jitd"), "-f", "-c", j.conf], capture_output=True,
                                   text=True, timeout=30)
                eq(p.returncode, 1, "start with %s mode %o owner %s" % (key, mode, owner))
                assert want in p.stderr and words in p.stderr, p.stderr
                assert not os.path.exists(j.sock), "socket created despite %s" % key
                os.chmod(path, 0o600)
                os.chown(path, 0, 0)
        # a missing secret file is refused too
        os.rename(files["token_file"], files["token_file"] + ".away")
        rc, err = _check(j)
        assert rc == 1 and "token_file: %s: No such file" % files["token_file"] in err, err
        os.rename(files["token_file"] + ".away", files["token_file"])
        j.start()
        e.grant_and_check("alice", "web", "1h")
        # secrets never reach stderr nor the effective configuration
        out = subprocess.run([binary("jitd"), "-t", "-v", "-c", j.conf], capture_output=True,
                             text=True, timeout=30)
        eq(out.returncode, 0, "jitd -t -v")
        for text in (out.stdout, out.stderr, j.stderr_tail(100000)):
            assert "s3cret-value" not in text and e.slapd.service_pw not in text
        assert files["token_file"] in out.stdout, "paths are shown"


def _uid_of(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    return None


def test_user_drops_root_after_start():
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = e.jitd
        j.make_public()  # the daemon user must reach state_dir
        os.chown(j.dir, DAEMON, DAEMON)  # audit log reopen after rotation
        os.chown(j.secret_file, DAEMON, DAEMON)
        j.config["user"] = "daemon"
        j.write_config()
        j.start()
        eq(_uid_of(j.proc.pid), [DAEMON] * 4, "engine process uid after start")
        g = e.grant_and_check("alice", "admins", "2s")
        eq(os.stat(j.state_dir).st_uid, DAEMON, "state_dir owner")
        eq(os.stat(os.path.join(j.state_dir, "jitd.db")).st_uid, DAEMON, "db owner")
        e.wait_removed("admins", e.user_dn("alice"), __import__("time").time() + 10, "expiry")
        # the row is committed after the removal (and the audit line)
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 5, "expired as uid 1")
        j.stop()
        # the secret must belong to the user jitd runs as, not to root
        os.chown(j.secret_file, 0, 0)
        rc, err = _check(j)
        eq(rc, 1, "jitd -t with a root-owned secret and user = daemon")
        assert "owned by uid 0, not by uid 1" in err, err


def test_sasl_secret_swapped_for_a_symlink_after_start_is_refused_at_the_next_bind():
    """The SASL password file is checked at start; jitd reads it again at
    every bind, and the same checks hold then (regression: the bind read
    followed a symbolic link and ignored the owner). Swapped for a symlink
    after start, the next bind (slapd restarted) refuses it; put back, the
    bind works again. A password file ending in \\r\\n is read as the
    password alone."""
    with Env(mech="SCRAM-SHA-256") as e:
        j, s = e.jitd, e.slapd
        j.wait_bound()
        real = j.secret_file + ".real"
        os.rename(j.secret_file, real)
        os.symlink(real, j.secret_file)
        s.stop()
        s.start()
        a = j.grant("alice", "admins", "1h")
        eq((a.get("error") or {}).get("code"), "directory_unavailable", "grant: %r" % (a,))
        assert "symbolic link" in j.stderr_tail(300), "the reason is not in jitd's log"
        os.unlink(j.secret_file)
        os.rename(real, j.secret_file)
        j.write_secret(s.service_pw + "\r\n")
        wait_until(lambda: j.grant("alice", "admins", "1h").get("ok"), 20,
                   "a grant once the file is itself again")


def test_ca_files_others_may_write_are_refused():
    """tls_ca_file and a ticket_check's ca_file decide whom jitd believes
    is its directory and its ticket system: one that group or others may
    write, or that another user owns, refuses `jitd -t` and the start,
    naming file:line (regression: only "a regular file" was checked)."""
    need_root()
    with Env(start=False) as e:
        j = e.jitd
        ca, ca2 = os.path.join(j.dir, "ca.pem"), os.path.join(j.dir, "ca2.pem")
        for p in (ca, ca2):
            with open(p, "w") as dst:  # its content is read at connect time only
                dst.write("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
            os.chmod(p, 0o644)
        j.config["directories"][0]["tls_ca_file"] = ca
        j.config["groups"][0]["ticket_check"] = {
            "url": "https://127.0.0.1:9/t/%s", "approved_field": "state",
            "approved_value": "approved", "ca_file": ca2}
        j.write_config()
        eq(_check(j)[0], 0, "jitd -t with root-owned 0644 CA files: %r" % (_check(j),))
        for key, path in (("tls_ca_file", ca), ("ca_file", ca2)):
            for mode, owner, words in ((0o664, None, "writable by group or others (mode 0664)"),
                                       (0o646, None, "writable by group or others (mode 0646)"),
                                       (0o644, DAEMON, "owned by uid 1")):
                os.chmod(path, mode)
                if owner is not None:
                    os.chown(path, owner, owner)
                rc, err = _check(j)
                eq(rc, 1, "jitd -t with %s %s: %s" % (key, words, err))
                want = "%s: %s: %s" % (key, path, words)
                assert want in err and (":%d: " % _line_of(j, key)) in err, (want, err)
                os.chown(path, 0, 0)
                os.chmod(path, 0o644)
        os.chmod(ca, 0o666)
        _start_refused(j, "tls_ca_file: %s: writable by group or others" % ca)


def _set_ca(j, key, path):
    if key == "tls_ca_file":
        j.config["directories"][0]["tls_ca_file"] = path
    else:
        j.config["groups"][3]["ticket_check"]["ca_file"] = path
    j.write_config()


def test_ca_files_in_or_through_directories_others_may_write_are_refused():
    """libldap and libcurl read a CA file again by its path for each new
    connection: a directory on the way that others may write would let them
    swap the file, or a symbolic link to it, after jitd checked it
    (regression: a link was followed and only its target judged, and no
    directory was checked). A link to a good CA file in a 0777 directory,
    or in a 01777 one when the link is not root's, is refused by `jitd -t`,
    at start and at reload, naming the directory; so is a link to a file
    group may write, naming that file. Accepted: a link in a root-owned 0755
    directory (as /etc/ssl/certs/*.pem are), over which jitd binds with
    ldaps://, and a root-owned link in a sticky directory (there only root
    may remove or rename it)."""
    need_root()
    with Env(mech="SCRAM-SHA-256", slapd_kw={"tls": True}, start=False) as e:
        j = e.jitd
        d = {}
        for name, mode in (("real", 0o755), ("links", 0o755), ("open", 0o777),
                           ("sticky", 0o1777)):
            d[name] = os.path.join(j.dir, name)
            os.mkdir(d[name])
            os.chmod(d[name], mode)
        real, gw = os.path.join(d["real"], "ca.pem"), os.path.join(d["real"], "gw.pem")
        for path, mode in ((real, 0o644), (gw, 0o664)):
            shutil.copyfile(e.slapd.tls_cert, path)
            os.chmod(path, mode)
        good, to_gw = os.path.join(d["links"], "ca.pem"), os.path.join(d["links"], "gw.pem")
        in_open, in_sticky = os.path.join(d["open"], "ca.pem"), os.path.join(d["sticky"], "ca.pem")
        os.symlink("../real/ca.pem", good)
        os.symlink("../real/gw.pem", to_gw)
        os.symlink(real, in_open)
        os.symlink(real, in_sticky)
        j.config["directories"][0].update({"uri": e.slapd.ldaps_uri, "tls_ca_file": good})
        j.config["groups"][3]["ticket_check"] = {
            "url": "https://127.0.0.1:9/t/%s", "approved_field": "state",
            "approved_value": "approved", "ca_file": good}
        j.write_config()
        eq(_check(j)[0], 0, "jitd -t with CA files through links: %r" % (_check(j),))
        open_words = "directory %s: writable by group or others (mode 0777)" % d["open"]
        sticky_words = ("directory %s: writable by group or others (mode 1777), and ca.pem in "
                        "it is owned by uid 1, neither root nor uid 0 that jitd runs as"
                        % d["sticky"])
        for key in ("tls_ca_file", "ca_file"):
            for path, words in ((in_open, open_words), (in_sticky, None),
                                (to_gw, "resolves to %s: writable by group or others "
                                 "(mode 0664)" % gw)):
                _set_ca(j, key, path)
                rc, err = _check(j)
                if words is None:
                    eq(rc, 0, "jitd -t with %s %s: %s" % (key, path, err))
                    continue
                eq(rc, 1, "jitd -t with %s %s: %s" % (key, path, err))
                want = "%s: %s: %s" % (key, path, words)
                assert want in err and (":%d: " % _line_of(j, key)) in err, (want, err)
            _set_ca(j, key, good)
        os.lchown(in_sticky, DAEMON, DAEMON)  # its owner may now retarget it
        for key in ("tls_ca_file", "ca_file"):
            _set_ca(j, key, in_sticky)
            rc, err = _check(j)
            want = "%s: %s: %s" % (key, in_sticky, sticky_words)
            assert rc == 1 and want in err, (want, err)
            _set_ca(j, key, good)
        _set_ca(j, "tls_ca_file", in_open)
        _start_refused(j, "tls_ca_file: %s: %s" % (in_open, open_words))
        _set_ca(j, "tls_ca_file", good)
        j.start()
        e.grant_and_check("alice", "admins", "1h")  # over ldaps://, the CA read through good
        # at reload, the running configuration is kept
        mark = j.stderr_pos()
        j.config["groups"][3]["ticket_check"]["ca_file"] = in_open
        j.write_config()
        j.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in j.stderr_since(mark), 5, "reload refused")
        want = "ca_file: %s: %s" % (in_open, open_words)
        assert want in j.stderr_since(mark), (want, j.stderr_since(mark))
        e.grant_and_check("bob", "admins", "1h")


def _start_refused(j, text):
    try:
        j.start()
    except RuntimeError as err:
        assert text in str(err), str(err)
        return
    raise AssertionError("jitd started; expected a refusal naming %r" % text)


def test_directories_others_could_swap_files_in_are_refused():
    """state_dir owned by another user (who could plant or swap the store
    while its mode looks right), and a socket directory others may write
    and that is not sticky (the socket's mode is set by path after the
    bind: it could be swapped for a link first), refuse the start; so does
    a sticky one like /tmp (regression: it was accepted, and anyone may
    create a socket at a free path there: while jitd is stopped, a
    squatter's socket kept it from starting and answered its clients)."""
    need_root()
    with Env(start=False) as e:
        j = e.jitd
        os.makedirs(j.state_dir, exist_ok=True)
        os.chown(j.state_dir, DAEMON, DAEMON)
        _start_refused(j, "owned by uid 1, neither root nor uid 0 that jitd runs as")
        os.chown(j.state_dir, 0, 0)
        # the audit log's directory (here also the socket's)
        os.chown(j.dir, DAEMON, DAEMON)
        _start_refused(j, "%s is owned by uid 1" % j.dir)
        os.chown(j.dir, 0, 0)
        shared = os.path.join(j.dir, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        j.sock = os.path.join(shared, "jitd.sock")
        j.config["socket_path"] = j.sock
        j.write_config()
        _start_refused(j, "writable by group or others (mode 0777)")
        os.chmod(shared, 0o1777)
        _start_refused(j, "writable by group or others (mode 1777)")
        os.chmod(shared, 0o755)
        j.start()
        eq(j.ok({"op": "status"})["ok"], True, "status with the socket in a directory of its own")


def _unit_capabilities():
    """The capabilities contrib/jitd.service leaves jitd (its
    CapabilityBoundingSet), as setpriv's --bounding-set argument."""
    src = os.environ.get("JITD_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(src, "contrib", "jitd.service")) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                caps = line.split("=", 1)[1].split()
                return "-all," + ",".join("+" + c.lower().replace("cap_", "") for c in caps)
    raise AssertionError("no CapabilityBoundingSet in contrib/jitd.service")


def test_user_jitd_starts_again_under_the_unit_s_capabilities():
    """With `user` set, jitd hands state_dir and the audit log to that user.
    Under the capabilities the shipped unit leaves root, it must start, and
    start again (regression: the unit kept no CAP_DAC_OVERRIDE, so root could
    not look into state_dir once it had given it away, nor open the user's
    0600 audit log at the next start: jitd never started with `user` set, and
    under systemd no membership was removed)."""
    need_root()
    import shutil
    if not shutil.which("setpriv"):
        from jittest import skip
        skip("setpriv (util-linux) is not installed")
    caps = _unit_capabilities()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = e.jitd
        j.make_public()  # the daemon user must reach state_dir
        os.chown(j.secret_file, DAEMON, DAEMON)
        j.config["user"] = "daemon"
        j.write_config()
        for run in (1, 2):
            j.start(wrapper=["setpriv", "--bounding-set=" + caps, "--"])
            e.grant_and_check(("alice", "bob")[run - 1], "admins", "1h")
            eq(os.stat(j.audit_log).st_uid, DAEMON, "audit log owner after run %d" % run)
            j.stop()


def test_reload_that_sets_user_checks_the_files_as_the_daemon_runs_now():
    """jitd runs as root (no `user`); a reload adds `user = "daemon"`, which
    takes effect only at a restart. The running daemon still reads its SASL
    password as root at every bind, so the reload checks the files as root:
    it is taken (with a warning naming the restart), not refused with "owned
    by uid 0, not by uid 1" (regression: an operator who chowned the file to
    follow that message got a reload accepted and a daemon whose next bind
    refused its own password: no removal until a restart)."""
    need_root()
    with Env(mech="SCRAM-SHA-256") as e:
        j = e.jitd
        eq(os.stat(j.secret_file).st_uid, 0, "the secret belongs to root")
        j.config["user"] = "daemon"
        j.reload()
        log = j.stderr_tail(400)
        assert "reload refused" not in log, log[-3000:]
        assert ("user changed; takes effect at restart, when the secret files must belong to "
                "the new user") in log, log[-3000:]
        # the running daemon binds as before (slapd restarted: a new bind)
        e.slapd.restart()
        g = wait_until(lambda: j.grant("alice", "admins", "1h").get("grant"), 20,
                       "a grant through a new bind after the reload")
        assert e.is_member("admins", e.user_dn("alice")), "alice's grant"
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        assert not e.is_member("admins", e.user_dn("alice")), "alice's end"
        # as the restart would see it: refused until the file is the new user's
        rc, err = _check(j)
        eq(rc, 1, "jitd -t with a root-owned secret and user = daemon")
        assert "owned by uid 0, not by uid 1" in err, err


def test_working_directory_and_ldap_client_settings_do_not_steer_the_searches():
    """jitd started in the foreground from a directory holding an ldaprc,
    with LDAPDEREF=always in its environment: it works in "/" (libldap
    reads ./ldaprc, and a shell's directory may be one anyone can write),
    and its searches never follow aliases (deref=0 in slapd's log: a user
    search must not resolve an alias under user_base to an entry outside
    it)."""
    with Env(start=False) as e:
        d = os.path.join(e.jitd.dir, "cwd")
        os.makedirs(d)
        with open(os.path.join(d, "ldaprc"), "w") as f:
            f.write("DEREF always\n")
        e.jitd.start(env={"LDAPDEREF": "always"},
                     wrapper=["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", d])
        eq(os.readlink("/proc/%d/cwd" % e.jitd.proc.pid), "/", "jitd's working directory")
        e.grant_and_check("alice", "admins", "1h")
        searches = [l for l in e.slapd.log_tail(100000).splitlines()
                    if " SRCH base=" in l and "uid=alice" in l]
        assert searches, "no user search in slapd's log"
        bad = [l for l in searches if " deref=0 " not in l]
        assert not bad, "searches that may follow aliases: %r" % bad
