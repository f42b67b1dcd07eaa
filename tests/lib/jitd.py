"""Runs the jitd daemon under test and talks to it.

Jitd(slapd, ...) writes a jitd.conf (libconfig syntax, mode 0600) into a
temporary directory that also holds the socket, state_dir, audit_log,
pid_file and secret files, starts `jitd -f -c FILE` with its stderr in a
file (shown when a test fails), and offers:

  request(obj)            one JSON request on a fresh connection -> answer dict
  connect()               a Conn for several requests / raw bytes on one connection
  jitctl(*args)           runs the jitctl binary (CompletedProcess)
  stop() / kill() / start() / restart()
  audit()                 the audit log as a list of dicts

The binaries come from $JITD_BUILDDIR (tests/run sets it from --builddir).
Standard library only.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from slapd import work_root

_live = []


def _cleanup_all():
    for j in list(_live):
        try:
            j.kill()
        except Exception:
            pass


atexit.register(_cleanup_all)


def builddir():
    return os.environ.get("JITD_BUILDDIR") or os.getcwd()


def binary(name):
    p = os.path.join(builddir(), name)
    if not os.access(p, os.X_OK):
        raise RuntimeError("%s not built (looked for %s; set JITD_BUILDDIR)" % (name, p))
    return p


def sanitizer_build():
    """Is jitd built with ASan/UBSan? (Its memory figures then include the
    sanitizers' shadow and quarantine, and valgrind cannot run it.)"""
    r = subprocess.run(["ldd", binary("jitd")], capture_output=True, text=True)
    return "libasan" in r.stdout or "libubsan" in r.stdout


# -- libconfig writer --------------------------------------------------------

def _cfg_str(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def cfg_value(v, indent=""):
    """A Python value in libconfig syntax: dict -> group, list of dicts ->
    list ( ), list of scalars -> array [ ], bool, int, str."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if v > 2**31 - 1 or v < -2**31:
            return "%dL" % v
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _cfg_str(v)
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, dict):
        inner = indent + "  "
        body = "".join("%s%s = %s;\n" % (inner, k, cfg_value(x, inner))
                       for k, x in v.items() if x is not None)
        return "{\n%s%s}" % (body, indent)
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, dict) for x in v):
            inner = indent + "  "
            return "(\n%s\n%s)" % (",\n".join(inner + cfg_value(x, inner) for x in v), indent)
        return "[ %s ]" % ", ".join(cfg_value(x, indent) for x in v)
    raise TypeError("cannot write %r as libconfig" % (v,))


class Raw:
    """Text written into the config verbatim (for deliberately bad configs)."""

    def __init__(self, text):
        self.text = text


def cfg_text(top):
    return "".join("%s = %s;\n" % (k, cfg_value(v)) for k, v in top.items() if v is not None)


# -- wire client ---------------------------------------------------------------

class Conn:
    """One client connection: send() a dict or raw bytes, recv() one answer."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send(self, obj):
        if isinstance(obj, (bytes, bytearray)):
            data = bytes(obj)
        else:
            data = (json.dumps(obj) + "\n").encode()
        self.sock.sendall(data)

    def recv_line(self):
        """One answer line (bytes, without newline); b"" if the server closed."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self):
        line = self.recv_line()
        if not line:
            raise ConnectionError("server closed the connection without an answer")
        return json.loads(line)

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def closed_by_peer(self, timeout=5):
        """True if the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# -- the daemon ------------------------------------------------------------------

class Jitd:
    """A jitd for one test, wired to one Slapd.

    groups: list of group dicts (name, dn/or short name, optional member_attr,
    placeholder_member, max_duration, default_duration); defaults cover the
    groups Slapd seeds. clients: list of client dicts (default: uid 0, all
    ops, all groups). directory: overrides for the "corp" directory entry.
    top: overrides for top-level keys. mech: "EXTERNAL" (ldapi) or
    "SCRAM-SHA-256" / "DIGEST-MD5" (ldap://127.0.0.1 with a secret file).
    public: makes the socket reachable by any uid (for peer-identity tests).
    mech "GSSAPI": ldap_uri of the directory (slapd may be a samba.SambaDC);
    the rest of the directory entry comes with `directory`. env: variables
    added to jitd's environment (e.g. KRB5CCNAME).
    """

    def __init__(self, slapd, groups=None, clients=None, directory=None, top=None,
                 mech="EXTERNAL", public=False, env=None):
        self.slapd = slapd
        self.dir = tempfile.mkdtemp(prefix="jd", dir=work_root())
        self.public = public
        self.sock = os.path.join(self.dir, "jitd.sock")
        self.conf = os.path.join(self.dir, "jitd.conf")
        self.state_dir = os.path.join(self.dir, "state")
        self.audit_log = os.path.join(self.dir, "audit.log")
        self.pid_file = os.path.join(self.dir, "jitd.pid")
        self.stderr_path = os.path.join(self.dir, "jitd.stderr")
        self.secret_file = os.path.join(self.dir, "ldap.secret")
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.proc = None
        self.mech = mech
        self.extra_env = dict(env or {})
        self.config = self.default_config(groups, clients, directory, top)
        self.write_config()
        if public:
            self.make_public()

    # -- configuration -------------------------------------------------
    def group_entry(self, name, **kw):
        g = {"name": name, "directory": "corp", "dn": self.slapd.group_dn(name),
             "max_duration": "4h", "default_duration": "1h"}
        g.update(kw)
        return g

    def default_config(self, groups, clients, directory, top):
        s = self.slapd
        d = {"name": "corp", "user_base": s.people, "user_filter": "(uid=%s)",
             "timeout": 5, "connections": 2}
        if self.mech == "EXTERNAL":
            d.update({"uri": s.ldapi_uri, "sasl_mech": "EXTERNAL"})
        elif self.mech == "GSSAPI":
            d.update({"uri": s.ldap_uri, "sasl_mech": "GSSAPI"})
        else:
            self.write_secret(s.service_pw)
            d.update({"uri": s.ldap_uri, "sasl_mech": self.mech, "sasl_authcid": "jitd",
                      "sasl_realm": s.realm, "sasl_secret_file": self.secret_file})
        d.update(directory or {})
        if groups is None:
            groups = [self.group_entry(n) for n in ("admins", "dba", "ops", "web")]
            groups.append(self.group_entry("lonely", placeholder_member=s.placeholder))
            groups.append(self.group_entry("unixops", member_attr="memberUid"))
        if clients is None:
            clients = [{"name": "root", "uid": 0, "groups": ["*"]}]
        cfg = {
            "socket_path": self.sock,
            "socket_mode": "0666" if self.public else "0600",
            "state_dir": self.state_dir,
            "audit_log": self.audit_log,
            "pid_file": self.pid_file,
            "log_level": "debug",
            "client_timeout": 60,
            "retry_min_interval": 1,
            "retry_max_interval": 2,
            "directories": [d],
            "groups": groups,
            "clients": clients,
        }
        cfg.update(top or {})
        return cfg

    def write_secret(self, text):
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(self.secret_file, 0o600)

    def write_config(self, text=None):
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text if text is not None else cfg_text(self.config))
        os.chmod(self.conf, 0o600)

    def make_public(self):
        """Lets other uids reach the socket: every directory on the way +x."""
        d = self.dir
        while d not in ("/", ""):
            st = os.stat(d)
            if not st.st_mode & 0o001:
                os.chmod(d, (st.st_mode & 0o7777) | 0o111)
            d = os.path.dirname(d)

    # -- process control -----------------------------------------------
    def start(self, wait=True, timeout=20, env=None, wrapper=None, args=()):
        """Starts jitd -f. env: extra environment variables (e.g.
        JITD_FAULT); wrapper: a command prefix (e.g. valgrind ...); args:
        more options (e.g. --init-store, for a test that means a new
        store)."""
        if self.running():
            raise RuntimeError("jitd already running")
        err = open(self.stderr_path, "ab")
        err.write(b"---- start %s\n" % time.strftime("%H:%M:%S").encode())
        err.flush()
        extra = env
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(extra or {})
        cmd = list(wrapper or []) + [binary("jitd"), "-f", "-c", self.conf] + list(args)
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     env=env)
        err.close()
        if self not in _live:
            _live.append(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("jitd exited with %s at start-up:\n%s"
                                   % (self.proc.returncode, self.stderr_tail()))
            if os.path.exists(self.sock):
                try:
                    a = self.request({"op": "status"}, timeout=5)
                    if a.get("ok"):
                        return a
                    last = a
                except (OSError, ValueError, ConnectionError) as e:
                    last = e
            time.sleep(0.05)
        raise RuntimeError("jitd not ready within %ss (last: %r)\n%s"
                           % (timeout, last, self.stderr_tail()))

    def reload(self, timeout=10):
        """Writes self.config and reloads it (SIGHUP); returns once the
        engine has taken it ("configuration reloaded from" logged)."""
        done = self.stderr_tail(100000).count("configuration reloaded from")
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + timeout
        while self.stderr_tail(100000).count("configuration reloaded from") <= done:
            if time.time() > deadline:
                raise AssertionError("configuration not reloaded within %ss:\n%s"
                                     % (timeout, self.stderr_tail()))
            time.sleep(0.02)

    def wait_bound(self, timeout=30):
        """Waits until every worker connection of every directory is bound
        (status connections_up == connections). A test that stops slapd
        needs this: jitd answers status before its workers have bound, and
        a worker caught binding by the stop waits the directory's timeout."""
        def bound():
            dirs = self.request({"op": "status"})["status"]["directories"]
            return all(d["connections_up"] == d["connections"] for d in dirs)
        deadline = time.time() + timeout
        while not bound():
            if time.time() > deadline:
                raise AssertionError("jitd's directory connections not all bound within "
                                     "%ss:\n%s" % (timeout, self.stderr_tail()))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal_wait(self, sig, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("jitd did not exit within %ss of signal %d\n%s"
                               % (timeout, sig, self.stderr_tail()))
        self.proc = None
        return rc

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit status."""
        return self._signal_wait(signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL (a crash): nothing gets to clean up."""
        return self._signal_wait(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def start_refused(self, timeout=20, args=()):
        """Starts jitd expecting it to refuse: returns (exit status, what it
        wrote to stderr)."""
        pos = self.stderr_pos()
        self.start(wait=False, args=args)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("jitd did not refuse to start within %ss:\n%s"
                                 % (timeout, self.stderr_since(pos)))
        self.proc = None
        return rc, self.stderr_since(pos)

    def close(self, remove=True):
        if self.running():
            try:
                self.stop(timeout=10)
            except RuntimeError:
                pass
        if self in _live:
            _live.remove(self)
        if remove and not os.environ.get("JITTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_tail(self, n=60):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no jitd stderr)"

    def stderr_pos(self):
        """The size of jitd's stderr now: pass it to stderr_since()."""
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def stderr_since(self, pos):
        """Everything jitd wrote to stderr from byte pos on (however much:
        a tail of n lines can miss a line a flood pushed out of it)."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(pos)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- requests --------------------------------------------------------
    def connect(self, timeout=30):
        return Conn(self.sock, timeout)

    def request(self, obj, timeout=30):
        with self.connect(timeout) as c:
            return c.call(obj)

    def grant(self, user, group, duration=None, **kw):
        req = {"op": "grant", "user": user, "group": group}
        if duration is not None:
            req["duration"] = duration
        req.update(kw)
        return self.request(req)

    def ok(self, obj):
        """request() that must succeed; returns the answer."""
        a = self.request(obj)
        if not a.get("ok"):
            raise AssertionError("request %r refused: %r\n--- jitd stderr:\n%s"
                                 % (obj, a, self.stderr_tail()))
        return a

    def must_grant(self, user, group, duration=None, **kw):
        req = {"op": "grant", "user": user, "group": group}
        if duration is not None:
            req["duration"] = duration
        req.update(kw)
        return self.ok(req)["grant"]

    @staticmethod
    def run_as(uid, gid, fn):
        """Runs fn() in a forked child running as uid/gid (no supplementary
        groups) and returns the bytes it returned. Fork without exec: no
        interpreter needs to be readable by that uid."""
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(rfd)
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                out = fn()
                os.write(wfd, b"OK " + out)
                code = 0
            except BaseException as e:
                try:
                    os.write(wfd, ("ERR %r" % (e,)).encode())
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(wfd)
        data = b""
        with os.fdopen(rfd, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        if not data.startswith(b"OK "):
            raise RuntimeError("client as uid %d failed: %s" % (uid, data.decode(errors="replace")))
        return data[3:]

    def request_as(self, uid, gid, obj, timeout=30):
        """Sends obj as uid/gid (run_as) and returns the answer."""
        def ask():
            c = Conn(self.sock, timeout)
            c.send(obj)
            return c.recv_line()
        line = self.run_as(uid, gid, ask)
        if line == b"":
            raise ConnectionError("server closed the connection of uid %d without an answer" % uid)
        return json.loads(line)

    def public_binary(self, name):
        """A copy of a built binary that any uid can execute (the build
        tree may sit under a directory other users cannot enter)."""
        dst = os.path.join(self.dir, "bin-" + name)
        if not os.path.exists(dst):
            shutil.copy2(binary(name), dst)
            os.chmod(dst, 0o755)
            self.make_public()
        return dst

    def jitctl(self, *args, socket_path=None, as_uid=None, timeout=30, env=None):
        """Runs jitctl -s SOCKET ARGS...; returns CompletedProcess (text)."""
        cmd = [binary("jitctl") if as_uid is None else self.public_binary("jitctl")]
        if socket_path is not False:
            cmd += ["-s", socket_path or self.sock]
        cmd += [str(a) for a in args]
        e = dict(os.environ)
        e.update(env or {})
        pre = None
        if as_uid is not None:
            def pre():
                os.setgroups([])
                os.setgid(as_uid)
                os.setuid(as_uid)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=e, preexec_fn=pre)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in r.stderr:
                raise AssertionError("jitctl %s: sanitizer report:\n%s" % (args, r.stderr))
        return r

    # -- audit log -------------------------------------------------------
    def audit(self):
        out = []
        try:
            with open(self.audit_log) as f:
                for n, line in enumerate(f, 1):
                    line = line.rstrip("\n")
                    if not line:
                        continue
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        raise AssertionError("audit line %d is not JSON: %r" % (n, line))
        except FileNotFoundError:
            pass
        return out

    def audit_events(self, event=None, grant_id=None):
        return [e for e in self.audit()
                if (event is None or e.get("event") == event)
                and (grant_id is None or e.get("grant_id") == grant_id)]

    # -- grants ----------------------------------------------------------
    def show(self, grant_id):
        return self.ok({"op": "show", "grant_id": grant_id})["grant"]


def parse_time(ts):
    """RFC 3339 UTC "2026-11-23T16:27:51Z" -> epoch seconds (int)."""
    import calendar
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
