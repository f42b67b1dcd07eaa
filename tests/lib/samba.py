"""A throwaway Samba Active Directory domain controller for integration tests.

SambaDC().start() restores a provisioned domain EXAMPLE.TEST into a short
temporary directory and runs `samba -i -M single` on 127.0.0.1 with only
the LDAP server and the KDC. The domain is provisioned once per test run
(tests/run's JITTEST_SHARED directory; once per process without it) and
saved as a tarball, so each test starts from the same fresh domain in about
two seconds:

  users        alice bob carol dave erin frank (enabled), mallory (disabled)
  jitsvc       the service account jitd binds as: GSSAPI from an exported
               keytab (self.keytab); its only right is "write member" on
               Domain Admins and on "JIT Ops" (an ACE per group, dsacl)
  groups       Domain Admins (Administrator is a standing member),
               JIT Ops (a global group, empty), Not Delegated (empty; jitsvc
               may not write it)
  OU=Moved     an organizational unit to move users into
  SPN          ldap/localhost on DC1$, so GSSAPI to ldap://localhost works
               with host name canonicalization off (sasl_nocanon)

Samba binds the fixed AD ports (88, 389, 636, ...): only one can run per
machine. tests/run runs the tests marked @exclusive("samba") one at a
time, and start() also holds a machine-wide lock (/tmp/jitd-samba.lock)
while its Samba runs, so that two test runs never collide. Tests that
cannot run Samba here are skipped with the reason (SambaDC.unavailable()),
never passed.

The harness writes its own krb5.conf (kdc = 127.0.0.1, no DNS) and sets
KRB5_CONFIG in this process's environment, so jitd and the Kerberos tools
started by the test use it. Administration (renames, moves, deletes,
membership by hand) goes through Samba's local ldapi socket as
Administrator, which is fast; checks of what the service account may do go
through GSSAPI as jitsvc.

Standard library only.
"""

import atexit
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse

from slapd import work_root, parse_ldif, norm_dn, LdapError

REALM = "EXAMPLE.TEST"
DOMAIN = "EXAMPLE"
BASE = "DC=example,DC=test"
USERS_CN = "CN=Users," + BASE
ADMIN_PW = "Adm1n-Passw0rd!x"
SVC = "jitsvc"
USER_PW = "Us3r-Passw0rd!x"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
DISABLED = ["mallory"]
# The member attribute's schemaIDGUID: an ACE with it grants "write member".
MEMBER_GUID = "bf9679c0-0de6-11d0-a285-00aa003049e2"
DELEGATED_GROUPS = ["Domain Admins", "JIT Ops"]
LOCK_PATH = "/tmp/jitd-samba.lock"
PYTHON = "/usr/bin/python3"  # samba-tool needs Debian's python3
SAMBA = shutil.which("samba") or "/usr/sbin/samba"
SAMBA_TOOL = shutil.which("samba-tool") or "/usr/bin/samba-tool"
# Bumped when the template's content changes.
TEMPLATE_VERSION = "2"

_live = []


def _cleanup_all():
    for s in list(_live):
        try:
            s.close()
        except Exception:
            pass


atexit.register(_cleanup_all)


def unavailable():
    """Why Samba AD cannot run here, or None."""
    if not os.access(SAMBA, os.X_OK):
        return "samba is not installed (apt-get install samba samba-ad-dc samba-ad-provision)"
    if not os.access(SAMBA_TOOL, os.X_OK):
        return "samba-tool is not installed (apt-get install samba)"
    if not os.path.isdir("/usr/share/samba/setup/ad-schema"):
        return "samba-ad-provision is not installed (apt-get install samba-ad-provision)"
    for tool in ("kinit", "klist"):
        if not shutil.which(tool):
            return "%s not found (apt-get install krb5-user)" % tool
    gss = [d for d in ("/usr/lib/x86_64-linux-gnu/sasl2", "/usr/lib/sasl2",
                       "/usr/lib/aarch64-linux-gnu/sasl2")
           if os.path.exists(os.path.join(d, "libgssapiv2.so"))]
    if not gss:
        return "the SASL GSSAPI module is missing (apt-get install libsasl2-modules-gssapi-mit)"
    if os.geteuid() != 0:
        return "Samba binds ports 88 and 389: needs root"
    return None


def _run(cmd, input_text=None, check=True, timeout=120, env=None):
    r = subprocess.run(cmd, input=input_text, capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise LdapError(cmd, r.returncode, r.stdout, r.stderr)
    return r


def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _smb_options(d):
    """smb.conf settings for a DC living in directory d (paths under d)."""
    return {
        "interfaces": "127.0.0.1",
        "bind interfaces only": "yes",
        "netbios name": "DC1",
        "server services": "ldap kdc",
        # Authentication audit (Kerberos AS requests among them) in the log.
        "log level": "1 auth_audit:3",
        "log file": os.path.join(d, "log.%m"),
        "pid directory": os.path.join(d, "run"),
        "ntp signd socket directory": os.path.join(d, "ntp"),
        "winbindd socket directory": os.path.join(d, "winbindd"),
    }


def _samba_tool(conf, *args, check=True):
    return _run([PYTHON, SAMBA_TOOL] + list(args) + ["-s", conf], check=check)


def _provision(d):
    """Provisions the domain into d and adds the fixtures (about 10 s)."""
    os.makedirs(d, exist_ok=True)
    opts = []
    for k, v in _smb_options(d).items():
        opts.append("--option=%s=%s" % (k, v))
    _run([PYTHON, SAMBA_TOOL, "domain", "provision", "--targetdir=" + d, "--realm=" + REALM,
          "--domain=" + DOMAIN, "--server-role=dc", "--dns-backend=NONE",
          "--adminpass=" + ADMIN_PW, "--host-name=dc1"] + opts, timeout=300)
    conf = os.path.join(d, "etc", "smb.conf")
    for sub in ("run", "ntp", "winbindd"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for u in [SVC] + USERS + DISABLED:
        _samba_tool(conf, "user", "create", u, USER_PW)
    for u in DISABLED:
        _samba_tool(conf, "user", "disable", u)
    _samba_tool(conf, "group", "add", "JIT Ops")
    _samba_tool(conf, "group", "add", "Not Delegated")
    _samba_tool(conf, "ou", "create", "OU=Moved," + BASE)
    _samba_tool(conf, "spn", "add", "ldap/localhost", "DC1$")
    sid = None
    out = _samba_tool(conf, "user", "show", SVC, "--attributes=objectSid").stdout
    m = re.search(r"^objectSid: (S-[0-9-]+)$", out, re.M)
    if not m:
        raise RuntimeError("no objectSid for %s in: %r" % (SVC, out))
    sid = m.group(1)
    for g in DELEGATED_GROUPS:
        _samba_tool(conf, "dsacl", "set", "--objectdn=CN=%s,%s" % (g, USERS_CN),
                    "--sddl=(OA;;WP;%s;;%s)" % (MEMBER_GUID, sid))
    _samba_tool(conf, "domain", "exportkeytab", os.path.join(d, "jitsvc.keytab"),
                "--principal=%s@%s" % (SVC, REALM))
    return d


def _template():
    """The path of the provisioned domain's tarball, made once per run."""
    shared = os.environ.get("JITTEST_SHARED")
    if not shared or not os.path.isdir(shared):
        # Not under tests/run: one template for this process only.
        shared = tempfile.mkdtemp(prefix="sbt", dir="/tmp")
        atexit.register(shutil.rmtree, shared, True)
        os.environ["JITTEST_SHARED"] = shared
    tar = os.path.join(shared, "samba-dc-v%s.tar" % TEMPLATE_VERSION)
    with open(os.path.join(shared, "samba-template.lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not os.path.exists(tar):
            src = tempfile.mkdtemp(prefix="sbp", dir="/tmp")
            try:
                _provision(os.path.join(src, "dc"))
                with tarfile.open(tar + ".tmp", "w") as t:
                    t.add(os.path.join(src, "dc"), arcname="dc")
                os.rename(tar + ".tmp", tar)
                with open(os.path.join(shared, "samba-template.from"), "w") as f:
                    f.write(os.path.join(src, "dc"))
            finally:
                shutil.rmtree(src, ignore_errors=True)
    with open(os.path.join(shared, "samba-template.from")) as f:
        return tar, f.read().strip()


class SambaDC:
    def __init__(self, ticket_lifetime="1h"):
        self.dir = tempfile.mkdtemp(prefix="sb", dir=work_root())
        self.dc = os.path.join(self.dir, "dc")
        self.conf = os.path.join(self.dc, "etc", "smb.conf")
        self.krb5_conf = os.path.join(self.dir, "krb5.conf")
        self.keytab = os.path.join(self.dc, "jitsvc.keytab")
        self.log = os.path.join(self.dir, "samba.log")
        self.ldap_uri = "ldap://localhost"
        self.ldapi_uri = "ldapi://" + urllib.parse.quote(
            os.path.join(self.dc, "private", "ldap_priv", "ldapi"), safe="")
        self.realm = REALM
        self.base = BASE
        self.people = USERS_CN
        self.ticket_lifetime = ticket_lifetime
        self.proc = None
        self._lock = None

    # -- names ---------------------------------------------------------
    def user_dn(self, name):
        return "CN=%s,%s" % (name, USERS_CN)

    def group_dn(self, name):
        return "CN=%s,%s" % (name, USERS_CN)

    # -- process control -----------------------------------------------
    def start(self, lock_timeout=600):
        why = unavailable()
        if why:
            from jittest import skip
            skip("Samba AD DC cannot run here: " + why)
        tar, origin = _template()
        with tarfile.open(tar) as t:
            t.extractall(self.dir)
        with open(self.conf) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(text.replace(origin, self.dc))
        self._write_krb5_conf()
        self._take_lock(lock_timeout)
        if self not in _live:
            _live.append(self)
        self._spawn()
        return self

    def _write_krb5_conf(self):
        with open(self.krb5_conf, "w") as f:
            f.write("[libdefaults]\n"
                    "\tdefault_realm = %s\n"
                    "\tdns_lookup_realm = false\n"
                    "\tdns_lookup_kdc = false\n"
                    "\trdns = false\n"
                    "\tticket_lifetime = %s\n"
                    "[realms]\n"
                    "\t%s = {\n\t\tkdc = 127.0.0.1\n\t}\n"
                    % (REALM, self.ticket_lifetime, REALM))
        os.environ["KRB5_CONFIG"] = self.krb5_conf

    def _take_lock(self, timeout):
        self._lock = open(LOCK_PATH, "a")
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.time() > deadline:
                    raise RuntimeError("another Samba test held %s for %ds" % (LOCK_PATH, timeout))
                time.sleep(0.2)

    def _spawn(self):
        if _port_open(389) or _port_open(88):
            raise RuntimeError("ports 88/389 on 127.0.0.1 are taken by something else "
                               "(a system Samba or slapd?)")
        with open(self.log, "ab") as logf:
            # New session: the DC's children go with it; --maximum-runtime
            # ends it even if this test is killed without cleaning up.
            self.proc = subprocess.Popen(
                [SAMBA, "-i", "-M", "single", "-s", self.conf, "--maximum-runtime=900"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        with open(os.path.join(self.dir, "samba.pid"), "w") as f:
            f.write("%d\n" % self.proc.pid)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("samba exited at start-up (%s):\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if _port_open(88) and self.ping():
                return
            time.sleep(0.1)
        raise RuntimeError("samba did not answer within 60 s:\n%s" % self.log_tail())

    def ping(self):
        r = subprocess.run(["ldapsearch", "-x", "-H", "ldap://127.0.0.1", "-LLL", "-s", "base",
                            "-b", "", "(objectClass=*)", "defaultNamingContext"],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def restart(self):
        """Stops Samba and starts it again on the same data (every client
        connection drops)."""
        self.stop()
        self._spawn()

    def stop(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
            # Children (smbd) may outlive the parent for a moment.
            deadline = time.time() + 10
            while time.time() < deadline and (_port_open(389) or _port_open(88)):
                time.sleep(0.1)

    def close(self):
        self.stop()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self in _live:
            _live.remove(self)
        if not os.environ.get("JITTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def kdc_logins(self, user):
        """How many Kerberos logins (AS requests) of user the KDC logged."""
        needle = "\\[%s@%s]" % (user, REALM)
        with open(self.log, errors="replace") as f:
            return sum(1 for line in f
                       if line.startswith("Auth: [Kerberos KDC") and needle in line
                       and "NT_STATUS_OK" in line)

    def log_tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no samba log)"

    # -- administration (Administrator over the local ldapi socket) -----
    def _admin_args(self):
        return ["-x", "-H", self.ldapi_uri, "-D", "Administrator@" + REALM, "-w", ADMIN_PW]

    def ldapmodify(self, ldif, check=True):
        return _run(["ldapmodify"] + self._admin_args(), ldif, check)

    def search(self, base, filt="(objectClass=*)", attrs=None, scope="sub"):
        cmd = ["ldapsearch"] + self._admin_args() + [
            "-LLL", "-o", "ldif-wrap=no", "-s", scope, "-b", base, filt] + list(attrs or ["1.1"])
        r = _run(cmd, check=False)
        if r.returncode == 32:
            return []
        if r.returncode != 0:
            raise LdapError(cmd, r.returncode, r.stdout, r.stderr)
        return [e for e in parse_ldif(r.stdout) if not e[0].startswith("ref")]

    def find_user(self, name):
        """The DN of the user with sAMAccountName name, or None."""
        e = self.search(BASE, "(sAMAccountName=%s)" % name)
        return e[0][0] if e else None

    def guid(self, name):
        """The user's objectGUID as text (as jitd records it)."""
        cmd = ["ldapsearch"] + self._admin_args() + [
            "-LLL", "-b", BASE, "(sAMAccountName=%s)" % name, "objectGUID"]
        out = _run(cmd).stdout
        m = re.search(r"^objectGUID:: (\S+)$", out, re.M)
        import base64
        import uuid
        return str(uuid.UUID(bytes_le=base64.b64decode(m.group(1))))

    def members(self, group):
        """Member DNs of group (name or DN), normalized."""
        dn = group if "=" in group else self.group_dn(group)
        e = self.search(dn, scope="base", attrs=["member"])
        if not e:
            raise LookupError("no such group: %s" % dn)
        return {norm_dn(m) for m in e[0][1].get("member", [])}

    def is_member(self, group, user):
        """Is user (a sAMAccountName, found wherever it lives now) in group?"""
        dn = self.find_user(user)
        return dn is not None and norm_dn(dn) in self.members(group)

    def add_member(self, group, dn):
        return self.ldapmodify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n"
                               % (self.group_dn(group), dn))

    def remove_member(self, group, dn):
        return self.ldapmodify("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n"
                               % (self.group_dn(group), dn))

    def rename(self, dn, newrdn, new_superior=None):
        """modrdn of dn (a rename, and a move with new_superior)."""
        ldif = "dn: %s\nchangetype: modrdn\nnewrdn: %s\ndeleteoldrdn: 1\n" % (dn, newrdn)
        if new_superior:
            ldif += "newsuperior: %s\n" % new_superior
        self.ldapmodify(ldif)
        parent = new_superior or dn.split(",", 1)[1]
        return "%s,%s" % (newrdn, parent)

    def delete(self, dn):
        return _run(["ldapdelete"] + self._admin_args() + [dn])

    def add_user(self, cn, sam, parent=USERS_CN):
        """A plain user entry (no password: it stays disabled-by-default
        only if Samba says so; used as a member value only)."""
        dn = "CN=%s,%s" % (cn, parent)
        self.ldapmodify("dn: %s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\n"
                        % (dn, sam))
        return dn

    # -- as the service account (GSSAPI from the keytab) ----------------
    def svc_env(self, ccache):
        env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5_CLIENT_KTNAME=self.keytab,
                   KRB5CCNAME=ccache)
        return env

    def svc_modify(self, ldif, ccache):
        """ldapmodify as jitsvc over GSSAPI with sealing; CompletedProcess."""
        return _run(["ldapmodify", "-Q", "-Y", "GSSAPI", "-N", "-O", "minssf=56",
                     "-H", self.ldap_uri], ldif, check=False, env=self.svc_env(ccache))

    def kinit_admin(self, ccache):
        """Puts a TGT for Administrator into ccache (a FILE: cache)."""
        env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5CCNAME=ccache)
        _run(["kinit", "Administrator@" + REALM], ADMIN_PW + "\n", env=env)

    def klist(self, ccache):
        env = dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5CCNAME=ccache)
        return _run(["klist"], check=False, env=env).stdout


def jitd_directory(dc, **kw):
    """The jitd.conf directory entry for dc: GSSAPI from the keytab, sealing,
    users by sAMAccountName, identity by objectGUID."""
    d = {"name": "ad", "uri": dc.ldap_uri, "sasl_mech": "GSSAPI", "keytab": dc.keytab,
         "sasl_nocanon": True, "sasl_secprops": "minssf=56",
         "user_base": BASE, "user_filter": "(&(sAMAccountType=805306368)(sAMAccountName=%s))",
         "uid_attr": "sAMAccountName", "uuid_attr": "objectGUID", "member_attr": "member",
         "timeout": 10, "connections": 2}
    d.update(kw)
    return d


def jitd_group(dc, name, group_cn, **kw):
    g = {"name": name, "directory": "ad", "dn": dc.group_dn(group_cn),
         "max_duration": "4h", "default_duration": "1h"}
    g.update(kw)
    return g


class AdEnv:
    """A Samba DC and a jitd bound to it as jitsvc, for one test.

        with AdEnv() as e:     e.dc (SambaDC), e.jitd (jitd.Jitd)

    groups: jitd group entries (default: "domain-admins" -> Domain Admins,
    "jit-ops" -> JIT Ops, "not-delegated" -> Not Delegated); directory:
    overrides for the directory entry; env: added to jitd's environment.
    On an exception the jitd stderr, audit tail and Samba log are printed.
    """

    def __init__(self, groups=None, directory=None, env=None, start=True, top=None,
                 ticket_lifetime="1h"):
        self.dc = SambaDC(ticket_lifetime=ticket_lifetime)
        self.jitd = None
        self._groups = groups
        self._directory = directory or {}
        self._env = env
        self._start = start
        self._top = top

    def __enter__(self):
        from jitd import Jitd
        try:
            self.dc.start()
            groups = self._groups
            if groups is None:
                groups = [jitd_group(self.dc, "domain-admins", "Domain Admins"),
                          jitd_group(self.dc, "jit-ops", "JIT Ops"),
                          jitd_group(self.dc, "not-delegated", "Not Delegated")]
            self.jitd = Jitd(self.dc, groups=groups, mech="GSSAPI",
                             directory=jitd_directory(self.dc, **self._directory),
                             env=self._env, top=self._top)
            if self._start:
                self.jitd.start()
        except BaseException:
            self.__exit__(*__import__("sys").exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        import jittest
        problem = None
        if exc_type is None and self.jitd is not None:
            problem = self._check_clean_exit()
        if (exc_type is not None and not issubclass(exc_type, jittest.Skip)) or problem:
            parts = []
            if self.jitd is not None:
                parts.append("--- jitd stderr (tail):\n%s" % self.jitd.stderr_tail())
                try:
                    with open(self.jitd.audit_log) as f:
                        parts.append("--- audit log (tail):\n%s" % "".join(f.readlines()[-12:]))
                except OSError:
                    pass
            parts.append("--- samba log (tail):\n%s" % self.dc.log_tail(20))
            jittest.DIAGNOSTICS.append("\n".join(parts))
        if self.jitd is not None:
            self.jitd.close()
        self.dc.close()
        if problem:
            raise AssertionError(problem)
        return False

    def _check_clean_exit(self):
        import jittest
        j = self.jitd
        if j.running():
            try:
                rc = j.stop()
            except RuntimeError as e:
                return str(e)
            if rc != 0:
                return "jitd exited with status %r on SIGTERM" % rc
        text = j.stderr_tail(100000)
        for marker in jittest.SANITIZER_MARKERS:
            if marker in text:
                return "jitd stderr holds a sanitizer report (%r)" % marker
        return None

    def wait_not_member(self, group, user, deadline_epoch, what="removal"):
        """Polls until user (found by sAMAccountName wherever it lives) is
        not in group; fails once deadline_epoch has passed."""
        while True:
            if not self.dc.is_member(group, user):
                return time.time()
            if time.time() > deadline_epoch:
                raise AssertionError("%s still in %s %.1fs after the deadline (%s); members: %r"
                                     % (user, group, time.time() - deadline_epoch, what,
                                        sorted(self.dc.members(group))))
            time.sleep(0.1)


def _serve(envfile):
    """Provisions and starts a DC, writes shell variables describing it to
    envfile, and keeps it running until SIGTERM/SIGINT (scripts/demo --samba)."""
    import sys
    done = []
    signal.signal(signal.SIGTERM, lambda *a: done.append(1))
    signal.signal(signal.SIGINT, lambda *a: done.append(1))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    why = unavailable()
    if why:
        sys.stderr.write("samba.py: cannot run a Samba AD DC here: %s\n" % why)
        sys.exit(1)
    dc = SambaDC().start()
    try:
        env = {"KRB5_CONFIG": dc.krb5_conf, "KEYTAB": dc.keytab, "LDAP_URI": dc.ldap_uri,
               "REALM": REALM, "BASE": BASE, "SAMBA_DIR": dc.dir}
        tmp = envfile + ".tmp"
        with open(tmp, "w") as f:
            for k, v in env.items():
                f.write("%s='%s'\n" % (k, v.replace("'", "'\\''")))
        os.rename(tmp, envfile)
        while not done and dc.running():
            time.sleep(0.2)
    finally:
        dc.close()


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve(sys.argv[2])
        sys.exit(0)
    sys.stderr.write("usage: samba.py serve ENVFILE\n")
    sys.exit(2)
