"""Privilege separation: the listener process (socket, parsing, per-client
policy) runs as an unprivileged uid, holds no secret, no store, no audit
log and no directory connection, and cannot read the secret files; killing
it does not stop expiries and a new one is started."""

import os
import signal
import time

from jittest import Env, eq, need_root, wait_until, expires_epoch

NOBODY = 65534


def listener_pid(j, timeout=10):
    """The pid of jitd's listener process (a child of the engine)."""
    def find():
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == j.proc.pid and b"-L" in cmd:
                return int(d)
        return None
    return wait_until(find, timeout, "jitd's listener process")


def status_ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def open_as(uid, path):
    """Tries to open path for reading as uid; returns the errno (0 = opened)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.close(os.open(path, os.O_RDONLY))
        except OSError as e:
            code = e.errno
        os.write(w, str(code).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 32)
    os.close(r)
    os.waitpid(pid, 0)
    return int(data)


def _secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


def test_listener_is_unprivileged_and_cannot_read_secrets():
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256", public=True) as e:
        j = e.jitd
        token, key = os.path.join(j.dir, "itsm.token"), os.path.join(j.dir, "approval.key")
        _secret(token, "t0ken")
        _secret(key, "k3y")
        j.config["groups"][0]["approval_key_file"] = key
        j.config["groups"][1]["ticket_check"] = {
            "url": "http://127.0.0.1:9/%s", "approved_field": "s", "approved_value": "ok",
            "token_file": token}
        j.write_config()
        j.start()
        e.grant_and_check("alice", "web", "1h")  # the directory is bound by now
        lp = listener_pid(j)
        ids = status_ids(lp)
        eq(ids["Uid"], [str(NOBODY)] * 4, "listener Uid line (real, effective, saved, fs)")
        eq(ids["Gid"], [str(NOBODY)] * 4, "listener Gid line")
        eq(ids.get("Groups", []), [str(NOBODY)], "listener supplementary groups")
        eq(ids["NoNewPrivs"], ["1"], "listener NoNewPrivs")
        eq(status_ids(j.proc.pid)["Uid"][1], "0", "engine euid (no `user` set)")
        # the listener's descriptors: no secret, no store, no audit log, and no
        # socket but the listening one and its channel to the engine
        fds = {}
        for fd in os.listdir("/proc/%d/fd" % lp):
            try:
                fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (lp, fd))
            except OSError:
                pass
        for target in fds.values():
            for secret in (j.secret_file, token, key, j.audit_log, j.state_dir):
                assert not target.startswith(secret), "listener holds %s" % target
        sockets = [t for t in fds.values() if t.startswith("socket:")]
        eq(len(sockets), 2, "listener sockets (listening + channel): %r" % fds)
        # as the listener's uid, the secret files cannot be opened
        for path in (j.secret_file, token, key, j.conf, j.audit_log,
                     os.path.join(j.state_dir, "jitd.db")):
            eq(open_as(NOBODY, path), 13, "EACCES opening %s as uid %d" % (path, NOBODY))
        # and the engine's memory is not readable by that uid either
        eq(open_as(NOBODY, "/proc/%d/mem" % j.proc.pid), 13, "engine memory as nobody")
        # the listener still serves
        e.grant_and_check("bob", "web", "1h")


def test_killed_listener_is_restarted_and_expiry_goes_on():
    need_root()
    with Env() as e:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "3s")
        lp = listener_pid(j)
        os.kill(lp, signal.SIGKILL)
        # expiry does not depend on the listener
        e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g) + 5,
                       "expiry while the listener was killed")
        new = listener_pid(j)
        assert new != lp, "no new listener"
        eq(status_ids(new)["Uid"][0], str(NOBODY), "new listener uid")
        assert j.running(), "the engine stopped with its listener"
        eq(j.show(g["grant_id"])["state"], "expired", "state through the new listener")
        e.grant_and_check("bob", "admins", "1h")
        log = j.stderr_tail(1000)
        assert "listener killed by signal 9" in log, log
        # a client that was connected to the old listener saw its connection end;
        # new clients are served, and the old one's grants are intact
        eq(j.ok({"op": "status"})["status"]["grants"]["active"], 1, "active grants")


def test_listener_dies_with_the_engine():
    need_root()
    with Env() as e:
        j = e.jitd
        lp = listener_pid(j)
        j.kill()  # SIGKILL the engine: the listener must not outlive it
        wait_until(lambda: not os.path.exists("/proc/%d" % lp)
                   or open("/proc/%d/stat" % lp).read().split()[2] == "Z", 5,
                   "listener gone after the engine was killed")
        j.start()  # the socket is free again
        e.grant_and_check("alice", "web", "1h")


def test_with_user_a_dead_listener_stops_jitd_for_its_supervisor():
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = e.jitd
        j.make_public()
        os.chown(j.dir, 1, 1)
        os.chown(j.secret_file, 1, 1)
        j.config["user"] = "daemon"
        j.write_config()
        j.start()
        g = e.grant_and_check("alice", "admins", "1h")
        lp = listener_pid(j)
        eq(status_ids(lp)["Uid"][0], str(NOBODY), "listener uid")
        eq(status_ids(j.proc.pid)["Uid"], ["1"] * 4, "engine uid")
        os.kill(lp, signal.SIGKILL)
        rc = j.proc.wait(15)
        eq(rc, 3, "exit status after the listener died (engine without root)")
        j.proc = None
        assert "supervisor restarts jitd" in j.stderr_tail(200)
        j.start()  # what systemd's Restart=on-failure does
        eq(j.show(g["grant_id"])["state"], "active", "grant kept across the restart")


def test_second_jitd_on_the_same_socket_refuses_to_start():
    with Env() as e:
        import subprocess
        from jitd import binary
        r = subprocess.run([binary("jitd"), "-f", "-c", e.jitd.conf], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 3, "second jitd exit status")
        assert "another jitd is listening there" in r.stderr, r.stderr
        e.grant_and_check("alice", "web", "1h")
