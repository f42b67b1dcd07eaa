"""Privilege separation: the listener process (socket, parsing, per-client
policy) runs as an unprivileged uid, holds no secret, no store, no audit
log and no directory connection, and cannot read the secret files; killing
it does not stop expiries and a new one is started."""

import os
import signal
import socket
import struct
import time

from jittest import Env, eq, need_root, wait_until, expires_epoch, freeze, thaw
from jitd import sanitizer_build

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
        old = j.connect()
        eq(old.call({"op": "status"})["ok"], True, "a client of the old listener")
        os.kill(lp, signal.SIGKILL)
        # a client that was connected to the old listener sees its connection end
        assert old.closed_by_peer(5), "a connection of the killed listener stayed open"
        # expiry does not depend on the listener
        e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g) + 5,
                       "expiry while the listener was killed")
        new = listener_pid(j)
        assert new != lp, "no new listener"
        eq(status_ids(new)["Uid"][0], str(NOBODY), "new listener uid")
        assert j.running(), "the engine stopped with its listener"
        # the row is committed after the removal (and the audit line)
        wait_until(lambda: j.show(g["grant_id"])["state"] == "expired", 5,
                   "state expired, read through the new listener")
        e.grant_and_check("bob", "admins", "1h")
        log = j.stderr_tail(1000)
        assert "listener killed by signal 9" in log, log
        # new clients are served, and the old one's grants are intact
        eq(j.ok({"op": "status"})["status"]["grants"]["active"], 1, "active grants")


def test_stopped_listener_is_ended_and_replaced():
    """Any process of listener_user may stop the listener (SIGSTOP): it then
    answers no one. The engine sees it stopped, ends it and starts another
    (regression: a stopped listener went unnoticed, every client hung)."""
    need_root()
    with Env() as e:
        j = e.jitd
        lp = listener_pid(j)
        os.kill(lp, signal.SIGSTOP)
        wait_until(lambda: listener_pid(j) != lp, 10, "a new listener")
        eq(j.ok({"op": "status"})["ok"], True, "status through the new listener")
        assert "listener stopped by signal %d; ending it" % signal.SIGSTOP in \
            j.stderr_tail(300), j.stderr_tail(300)
        e.grant_and_check("alice", "admins", "1h")


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


def _dropping_env(e):
    """jitd as root that drops to `daemon` for the engine and `nobody` for
    the listener (the shipped deployment), not started."""
    j = e.jitd
    j.make_public()
    os.chown(j.dir, 1, 1)
    os.chown(j.secret_file, 1, 1)
    j.config["user"] = "daemon"
    j.write_config()
    return j


def test_with_user_a_dead_listener_stops_jitd_for_its_supervisor():
    """The engine, no longer root, cannot start another listener: it stops
    for its supervisor, but only once the grants due within 10 s of the
    listener's death are ended: bob's, due 6 s after the kill, first
    (regression: it stopped at once, so a listener killed at every start,
    as any process of listener_user may do, kept every grant from ending).
    Meanwhile the socket is gone: no client waits on it."""
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        j.start()
        g = e.grant_and_check("alice", "admins", "1h")
        lp = listener_pid(j)
        eq(status_ids(lp)["Uid"][0], str(NOBODY), "listener uid")
        eq(status_ids(j.proc.pid)["Uid"], ["1"] * 4, "engine uid")
        b = e.grant_and_check("bob", "admins", "6s")
        os.kill(lp, signal.SIGKILL)
        wait_until(lambda: not os.path.exists(j.sock), 5, "the socket removed")
        rc = j.proc.wait(30)
        eq(rc, 3, "exit status after the listener died (engine without root)")
        j.proc = None
        assert "supervisor restarts jitd" in j.stderr_tail(200)
        eq(e.is_member("admins", e.user_dn("bob")), False, "bob's grant ended before the stop")
        assert "the grants that were due are ended" in j.stderr_tail(200)
        j.start()  # what systemd's Restart= does
        eq(j.show(g["grant_id"])["state"], "active", "grant kept across the restart")
        eq(j.show(b["grant_id"])["state"], "expired", "bob's grant closed")


def _other_config(j, **changes):
    """A copy of j's configuration with changes, in a file of its own."""
    from jitd import cfg_text
    cfg = dict(j.config)
    cfg.update(changes)
    path = os.path.join(j.dir, "other.conf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cfg_text(cfg))
    return path


def test_second_jitd_on_the_same_socket_refuses_to_start():
    with Env() as e:
        import subprocess
        from jitd import binary
        j = e.jitd
        # a store of its own (else the state_dir lock refuses it first)
        other_state = os.path.join(j.dir, "other-state")
        os.mkdir(other_state, 0o700)
        conf = _other_config(j, state_dir=other_state,
                             audit_log=os.path.join(j.dir, "other-audit.log"),
                             pid_file=os.path.join(j.dir, "other.pid"))
        r = subprocess.run([binary("jitd"), "-f", "-c", conf], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 3, "second jitd exit status")
        assert "another jitd is listening there" in r.stderr, r.stderr
        e.grant_and_check("alice", "web", "1h")


def test_second_jitd_with_the_same_pid_file_leaves_it_alone():
    """A second jitd with a store, a log and a socket of its own but the
    running one's pid_file: it refuses to start (the file names a running
    jitd), and the file still names the running jitd (regression: the
    second overwrote it, so logrotate's script signalled the wrong jitd,
    or removed it as its own when its start failed). A lock that another
    user holds on a pid file left behind does not keep jitd from starting
    (an flock on the file, tried first, let any user who may read it do
    that)."""
    with Env() as e:
        import subprocess
        from jitd import binary
        j = e.jitd
        path = os.path.join(j.dir, "jitd.pid")
        with open(path) as f:
            eq(f.read().strip(), str(j.proc.pid), "pid file of the running jitd")
        other_state = os.path.join(j.dir, "other-state")
        os.mkdir(other_state, 0o700)
        conf = _other_config(j, state_dir=other_state,
                             audit_log=os.path.join(j.dir, "other-audit.log"),
                             socket_path=os.path.join(j.dir, "other.sock"), pid_file=path)
        r = subprocess.run([binary("jitd"), "-f", "-c", conf], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 3, "second jitd exit status")
        assert "names jitd %d, which is running" % j.proc.pid in r.stderr, r.stderr
        with open(path) as f:
            eq(f.read().strip(), str(j.proc.pid), "pid file after the second jitd")
        e.grant_and_check("alice", "web", "1h")
        j.stop()
        with open(path, "w") as f:
            f.write("999999\n")  # left behind, naming no process
        os.chmod(path, 0o644)
        for d in (j.dir, os.path.dirname(j.dir)):
            os.chmod(d, 0o755)  # as /run/jitd: anyone may open the pid file
        import shutil
        if shutil.which("flock") and shutil.which("setpriv"):
            holder = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534",
                                       "--clear-groups", "flock", "-s", path, "sleep", "60"])
            try:
                time.sleep(0.5)
                assert holder.poll() is None, "the lock holder ended: no test"
                j.start()
                with open(path) as f:
                    eq(f.read().strip(), str(j.proc.pid), "pid file of the new jitd")
            finally:
                holder.kill()
                holder.wait()


def test_second_jitd_on_the_same_state_dir_refuses_to_start():
    """Another socket_path, the same state_dir: the second jitd would run
    start-up recovery over the first one's grants and write into the same
    audit chain. It must refuse before opening anything, and say why."""
    with Env() as e:
        import subprocess
        from jitd import binary
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h")
        before = j.audit()
        sock = os.path.join(j.dir, "other.sock")
        pid = os.path.join(j.dir, "other.pid")
        conf = _other_config(j, socket_path=sock, pid_file=pid)
        r = subprocess.run([binary("jitd"), "-f", "-c", conf], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 3, "second jitd exit status")
        assert "another jitd is running with state_dir" in r.stderr, r.stderr
        assert not os.path.exists(sock), "the second jitd made a socket"
        assert not os.path.exists(pid), "the second jitd wrote a pid file"
        eq(j.audit(), before, "audit log untouched by the second jitd")
        eq(j.show(g["grant_id"])["state"], "active", "the first one's grant")
        e.grant_and_check("bob", "web", "1h")
        # the lock ends with the process: a restart takes it again
        j.restart()
        eq(j.show(g["grant_id"])["state"], "active", "after a restart")


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


def _ptrace(req, pid):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(req, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace %d %d" % (req, pid))


def _hold(pid):
    """Stops single-threaded pid under ptrace (needs root) until _release."""
    _ptrace(PTRACE_SEIZE, pid)
    _ptrace(PTRACE_INTERRUPT, pid)
    os.waitpid(pid, 0x40000000)  # __WALL: until it is stopped


def _release(pid):
    _ptrace(PTRACE_DETACH, pid)


def _take_fd(pid, fd):
    """A duplicate of fd of process pid (pidfd_getfd(2); needs root)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        n = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd
        if n < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd %d %d" % (pid, fd))
        return n
    finally:
        os.close(pidfd)


def _engine_channel(pid):
    """The engine's end of its socketpair with the listener: the unnamed
    Unix stream socket whose peer credentials are the engine's own."""
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                continue
        except OSError:
            continue
        s = socket.socket(fileno=_take_fd(pid, int(name)))
        cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if (s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM
                and not s.getsockname() and struct.unpack("3i", cred)[0] == pid):
            return s
        s.close()
    raise AssertionError("no channel socket in the engine pid %d" % pid)


def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "the channel ended"
        data += chunk
    return data


def _rss_kb(pid):
    return int(status_ids(pid)["VmRSS"][0])


def test_listener_that_never_reads_answers_cannot_grow_the_engine():
    # A compromised listener: it sends valid REQUEST frames (a status request
    # as the real listener framed it) and never reads the channel. The engine
    # takes requests only while less than 1 MiB of answers waits unread, and
    # goes on running expiries.
    need_root()
    with Env() as e:
        j = e.jitd
        lp = listener_pid(j)
        ech = _engine_channel(j.proc.pid)
        # one genuine REQUEST frame, peeked while the engine is stopped
        c = j.connect()
        freeze(j.proc.pid)
        try:
            c.send({"op": "status"})

            def whole_frame():
                try:
                    d = ech.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return None
                return d if len(d) >= 8 and len(d) >= 8 + struct.unpack("<II", d[:8])[1] \
                    else None
            data = wait_until(whole_frame, 10, "the listener's frame", interval=0.05)
        finally:
            thaw(j.proc.pid)
        ech.close()
        typ, n = struct.unpack("<II", data[:8])
        eq(typ, 17, "type of the frame the listener sent (CHAN_REQUEST)")
        frame = data[:8 + n]
        assert "status" in c.recv()
        c.close()
        g = e.grant_and_check("alice", "admins", "3s")
        # the listener stops; the test writes in its place and reads nothing
        # (held under ptrace: a listener stopped by a signal is ended by the
        # engine, which a ptrace stop is not reported to)
        _hold(lp)
        try:
            lch = socket.socket(fileno=_take_fd(lp, 4))  # LISTENER_FD_CHANNEL
            lch.setblocking(False)
            before = peak = _rss_kb(j.proc.pid)
            buf, sent_bytes = b"", 0
            t0 = time.time()
            while sent_bytes < 100000 * len(frame) and time.time() - t0 < 8:
                if not buf:
                    buf = frame * 500
                try:
                    k = lch.send(buf)
                    buf = buf[k:]
                    sent_bytes += k
                except BlockingIOError:
                    time.sleep(0.05)
                peak = max(peak, _rss_kb(j.proc.pid))
            sent = sent_bytes // len(frame)
            # End on a frame boundary, so that the listener's own frames still
            # parse once it runs again: send the rest of the frame begun,
            # taking whole answer frames off the channel to make room.
            tail = buf[:(-sent_bytes) % len(frame)]
            while tail:
                try:
                    lch.setblocking(False)
                    tail = tail[lch.send(tail):]
                except BlockingIOError:
                    lch.settimeout(10)
                    _, n = struct.unpack("<II", _recv_exact(lch, 8))
                    _recv_exact(lch, n)
            time.sleep(0.5)
            peak = max(peak, _rss_kb(j.proc.pid))
            print("figures: engine RSS %d kB, peak %d kB; %d request frames taken "
                  "(%d bytes each) in %.1f s" % (before, peak, sent, len(frame),
                                                 time.time() - t0))
            # (RSS means nothing under ASan: freed memory waits in its
            # quarantine; the frames taken say the same there)
            assert sanitizer_build() or peak - before < 16 * 1024, \
                "engine RSS grew by %d kB for answers its listener never read" \
                % (peak - before)
            assert sent < 20000, "the engine took %d requests whose answers nobody read" % sent
            # expiry goes on meanwhile
            e.wait_removed("admins", e.user_dn("alice"), expires_epoch(g) + 5,
                           "expiry while the listener read nothing")
            lch.close()
        finally:
            _release(lp)
        assert j.running(), "the engine stopped"
        # the show waits behind the status requests still buffered in the
        # channel (thousands; under a loaded CI that took over 30 s once)
        a = j.request({"op": "show", "grant_id": g["grant_id"]}, timeout=180)
        eq(a["grant"]["state"], "expired", "state once the listener reads again")


def _cap_hex(pid, line):
    return int(status_ids(pid)[line][0], 16)


def _rogue_pid(log):
    import re
    m = re.search(r"listener pid (\d+) [^\n]*; killing it", log)
    assert m, log
    return int(m.group(1))


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_listener_breaking_the_channel_is_killed_by_an_engine_that_dropped_root():
    """The engine runs as `daemon`, its listener as `nobody`: only CAP_KILL,
    kept alone across the drop, lets the engine kill a listener that breaks
    the channel's rules (as one taken over by a client could). It is
    killed, and the engine, which cannot start another without root, stops
    for its supervisor (regression: kill failed with EPERM, the listener
    kept answering on the socket, nothing reaped it, and jitd ran on)."""
    need_root()
    from test_failures import need_faults
    need_faults()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        j.start()
        eq(_cap_hex(j.proc.pid, "CapEff"), 1 << 5, "engine's effective capabilities: CAP_KILL")
        eq(_cap_hex(j.proc.pid, "CapPrm"), 1 << 5, "engine's permitted capabilities")
        eq(_cap_hex(j.proc.pid, "CapInh"), 0, "engine's inheritable capabilities")
        eq(_cap_hex(listener_pid(j), "CapPrm"), 0, "listener's permitted capabilities")
        # the main thread alone: the workers, the audit, notify, ticket
        # and reconciler threads hold none (they inherit their creator's)
        e.grant_and_check("alice", "web", "1h")
        tids = [int(t) for t in os.listdir("/proc/%d/task" % j.proc.pid)]
        assert len(tids) > 2, tids
        for tid in tids:
            with open("/proc/%d/task/%d/status" % (j.proc.pid, tid)) as f:
                prm = [l.split()[1] for l in f if l.startswith("CapPrm:")][0]
            eq(int(prm, 16), (1 << 5) if tid == j.proc.pid else 0,
               "permitted capabilities of thread %d" % tid)
        j.stop()
        j.start(wait=False, env={"JITD_FAULT": "fail.listener_ready:@1"})
        rc = j.proc.wait(30)
        j.proc = None
        eq(rc, 3, "exit status")
        log = j.stderr_tail(300)
        lp = _rogue_pid(log)
        assert "cannot kill" not in log, log
        assert "killed by signal 9" in log, log
        assert _gone(lp), "the listener still runs"


def test_listener_that_cannot_be_killed_stops_jitd():
    """The same under an older unit file whose bounding set lacks CAP_KILL
    (setpriv): the engine keeps no capability at all, and when the listener
    breaks the rules, cannot be killed and does not exit (the failure point
    makes it stay, as one taken over would), jitd stops (exit 3) rather
    than run on with a listener it neither trusts nor reaps (regression:
    it ran on); the supervisor then ends the service's processes, and
    here the listener's parent-death signal does."""
    need_root()
    from test_failures import need_faults
    need_faults()
    import shutil
    if not shutil.which("setpriv"):
        from jittest import skip
        skip("setpriv (util-linux) is not installed")
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        j.start(wait=False, env={"JITD_FAULT": "fail.listener_ready:@1"},
                wrapper=["setpriv", "--bounding-set=-kill", "--"])
        rc = j.proc.wait(60)
        j.proc = None
        log = j.stderr_tail(300)
        lp = _rogue_pid(log)
        try:
            eq(rc, 3, "exit status")
            assert "cannot keep CAP_KILL" in log, log
            assert "cannot kill listener pid %d" % lp in log, log
            assert "staying after the channel's end" in log, log
        finally:
            try:
                os.kill(lp, signal.SIGKILL)  # what the supervisor does
            except ProcessLookupError:
                pass


def test_a_stopped_listener_that_cannot_be_ended_still_lets_due_grants_end():
    """Under a unit whose bounding set lacks CAP_KILL, a process of
    listener_user stops the listener (SIGSTOP), which the engine cannot end:
    jitd stops for its supervisor, but only once bob's grant, due 6 s
    later, is ended (regression: it stopped at once and ticked no more
    during its drain, so a listener stopped at every start kept every grant
    from ending)."""
    need_root()
    import shutil
    if not shutil.which("setpriv"):
        from jittest import skip
        skip("setpriv (util-linux) is not installed")
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        j.start(wrapper=["setpriv", "--bounding-set=-kill", "--"])
        b = e.grant_and_check("bob", "admins", "6s")
        lp = listener_pid(j)
        os.kill(lp, signal.SIGSTOP)
        try:
            rc = j.proc.wait(60)
            j.proc = None
            eq(rc, 3, "exit status")
            log = j.stderr_tail(300)
            assert "cannot end the stopped listener" in log, log
            eq(e.is_member("admins", e.user_dn("bob")), False,
               "bob's grant ended before the stop")
        finally:
            try:
                os.kill(lp, signal.SIGKILL)  # what the supervisor does
            except ProcessLookupError:
                pass
        j.start()
        eq(j.show(b["grant_id"])["state"], "expired", "bob's grant closed")


def test_the_pid_file_stays_root_s_and_is_emptied_at_exit():
    """With `user`, the pid file in a directory of root's stays root's
    while jitd runs (regression: it was given to the user, whose processes
    could then write any pid into it for root's logrotate script or init
    script to signal), and since the engine, no longer root, cannot remove
    it there, it is emptied at a clean stop through the descriptor it kept."""
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        run = os.path.join(j.dir, "run")
        os.mkdir(run, 0o755)              # root's, like /run/jitd
        pid = os.path.join(run, "jitd.pid")
        # one left by an older jitd, which gave it to the user
        with open(pid, "w") as f:
            f.write("12345\n")
        os.chown(pid, 1, 1)
        os.chmod(pid, 0o664)
        j.config["pid_file"] = pid
        j.write_config()
        j.start()
        st = os.stat(pid)
        eq((st.st_uid, st.st_gid), (0, 0), "pid file owner while jitd runs as daemon")
        eq(st.st_mode & 0o022, 0, "pid file writable by group or others")
        with open(pid) as f:
            eq(f.read().strip(), str(j.proc.pid), "pid file while running")
        eq(status_ids(j.proc.pid)["Uid"], ["1"] * 4, "engine uid")
        j.stop()
        if os.path.exists(pid):
            eq(os.path.getsize(pid), 0, "pid file left with content after the stop")


def _mem_holds(pid, needle):
    """Whether any readable mapping of process pid holds needle (root)."""
    found = False
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if "r" not in perms:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > 256 << 20:
                continue
            try:
                mem.seek(lo)
                if needle in mem.read(hi - lo):
                    found = True
                    break
            except (OSError, ValueError, OverflowError):
                continue
    return found


def test_listener_never_holds_the_notify_urls():
    """A webhook URL's path is its credential (Slack, Teams). The listener
    checks the configuration but never sends a notification: it gets the
    URLs without their paths, so a listener taken over cannot read them in
    its own memory (regression: the engine sent it the file's whole text).
    The engine holds and uses them."""
    need_root()
    token = b"N0T1FY-S3CR3T-7781"
    top = {"notify": [{"url": "http://127.0.0.1:9/hook/" + token.decode(),
                       "events": ["granted"]}]}
    with Env(top=top) as e:
        j = e.jitd
        e.grant_and_check("alice", "web", "1h")
        lp = listener_pid(j)
        assert _mem_holds(j.proc.pid, token), "the engine does not hold the URL (the check is blind)"
        assert not _mem_holds(lp, token), "the listener holds a notify URL's path"
        pos = j.stderr_pos()
        os.kill(j.proc.pid, signal.SIGHUP)  # a reload hands the listener the text again
        wait_until(lambda: "applied configuration 2" in j.stderr_since(pos), 10,
                   "the listener applied the reload")
        assert not _mem_holds(lp, token), "the listener holds a notify URL's path after a reload"


def test_started_without_root_it_says_there_is_no_privilege_separation():
    """Started as another user than root, jitd cannot run its listener as
    anyone else: with listener_user it exits 1 at once and says why
    (before, it went on to fail later, on whatever it met first, with no
    word of the cause). Without listener_user it warns at every start that
    the listener has the engine's rights (not tested here: it needs a
    state_dir and a log of that user's)."""
    need_root()
    import shutil
    if not shutil.which("setpriv"):
        from jittest import skip
        skip("setpriv (util-linux) is not installed")
    with Env(start=False) as e:
        j = e.jitd
        j.config["listener_user"] = "daemon"
        j.write_config()
        # nobody may read the configuration (the only file read before the check)
        for d in (j.dir, os.path.dirname(j.dir)):
            os.chmod(d, 0o755)
        os.chmod(j.conf, 0o644)
        pos = j.stderr_pos()
        j.start(wait=False, wrapper=["setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups", "--"])
        rc = j.proc.wait(20)
        j.proc = None
        err = j.stderr_since(pos)
        eq(rc, 1, "exit status of a non-root start with listener_user:\n" + err)
        assert "must be started as root to run the listener as another user" in err, err


def test_listener_has_no_terminal_of_the_operator():
    """A foreground jitd started from a shell: the listener, which faces
    untrusted clients, gets a session of its own (no controlling terminal,
    so no TIOCSTI into the operator's shell) and /dev/null as standard
    input and output (regression: it kept the engine's descriptors 0-2 and
    its session). Its log still reaches the engine's stderr."""
    with Env() as e:
        j = e.jitd
        pid = listener_pid(j)

        def session(p):
            with open("/proc/%d/stat" % p) as f:
                return int(f.read().rsplit(")", 1)[1].split()[3])
        assert session(pid) != session(j.proc.pid), "the listener is in the engine's session"
        eq(session(pid), pid, "the listener leads its own session")
        eq(os.readlink("/proc/%d/fd/0" % pid), "/dev/null", "the listener's stdin")
        eq(os.readlink("/proc/%d/fd/1" % pid), "/dev/null", "the listener's stdout")
        assert "jitd-listener" in j.stderr_tail(200), "the listener's log is lost"


def test_a_pid_file_that_is_a_hard_link_to_another_file_is_refused():
    """Where the pid file should be there is a second name of another file
    (a hard link planted by whoever may write that directory): jitd, still
    root there, refuses it and leaves that file as it is (regression: it
    truncated it, wrote its pid, and made it root's and world-readable)."""
    with Env(start=False) as e:
        j = e.jitd
        victim = os.path.join(j.dir, "victim")
        with open(victim, "w") as f:
            f.write("secret data\n")
        os.chmod(victim, 0o600)
        if os.path.exists(j.pid_file):
            os.unlink(j.pid_file)
        os.link(victim, j.pid_file)
        try:
            j.start()
        except RuntimeError as err:
            assert "not a regular file with one name" in str(err), err
        else:
            raise AssertionError("jitd started with a hard-linked pid file")
        with open(victim) as f:
            eq(f.read(), "secret data\n", "the other file's content")
        eq(os.stat(victim).st_mode & 0o777, 0o600, "the other file's mode")


def test_a_state_file_linked_to_a_file_of_root_s_is_not_given_away():
    """After a start with user daemon the state directory is daemon's: a
    process of daemon's replaces audit.head with a hard link to a file of
    root's. The next start (as root) must not give that file to daemon: it
    refuses to start, the file still root's (regression: root chowned
    whatever the name led to, links with several names included)."""
    need_root()
    with Env(start=False, mech="SCRAM-SHA-256") as e:
        j = _dropping_env(e)
        j.start()
        e.grant_and_check("alice", "admins", "1h")
        j.stop()
        victim = os.path.join(j.dir, "root-only")
        with open(victim, "w") as f:
            f.write("root's\n")
        os.chmod(victim, 0o600)
        head = os.path.join(j.state_dir, "audit.head")
        os.unlink(head)
        os.link(victim, head)
        rc, out = j.start_refused()
        assert rc != 0, out
        eq(os.stat(victim).st_uid, 0, "owner of root's file")
        assert "not a directory nor a regular file with one name" in out, out
