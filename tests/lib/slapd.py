"""A throwaway OpenLDAP slapd for integration tests.

Slapd(...).start() writes a slapd.conf into a short temporary directory,
starts slapd on an ldapi socket and on ldap://127.0.0.1:<free port>, and
seeds it (as the rootdn, over ldapi) with ou=people, ou=groups and
ou=services. The service identity cn=jitd,ou=services,<suffix> is reached
two ways: SASL EXTERNAL over ldapi (peer uid 0) and SCRAM-SHA-256 /
DIGEST-MD5 through slapd's built-in auxprop (cleartext userPassword). Its
ACL lets it write only `member` and `memberUid` under ou=groups.
Slapd(tls=True) also listens on ldaps://127.0.0.1:<another port> (and
offers StartTLS) with a self-signed certificate for 127.0.0.1 made by
openssl at start; its path is .tls_cert (a CA file for tls_ca_file).

Every instance stops itself at interpreter exit (atexit) and its pid file
lives under the test's work directory, so tests/run can kill a leftover
slapd even if a test process was killed by its timeout. slapd runs in the
foreground (-d) as our child so that we reap it.

Standard library only; inspection goes through ldapsearch/ldapmodify.
"""

import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import urllib.parse

SUFFIX = "dc=example,dc=com"
REALM = "example.com"
ROOTPW = "rootsecret"
SERVICE_PW = "jitd-scram-secret"
MODULE_DIR = "/usr/lib/ldap"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMA_DIR = "/etc/ldap/schema"

DEFAULT_USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace",
                 "heidi", "ivan", "judy"]
# name -> (kind, initial members); kind "gon" = groupOfNames (member DNs,
# "@user" stands for that user's DN, "placeholder" for the placeholder DN),
# "posix" = posixGroup (memberUid values).
DEFAULT_GROUPS = {
    "admins": ("gon", ["placeholder"]),
    "dba": ("gon", ["placeholder"]),
    "ops": ("gon", ["placeholder"]),
    "web": ("gon", ["placeholder"]),
    "lonely": ("gon", ["@bob"]),          # no placeholder: see test_placeholder
    "unixops": ("posix", []),
}

_live = []


def _cleanup_all():
    for s in list(_live):
        try:
            s.kill()
        except Exception:
            pass


atexit.register(_cleanup_all)


def work_root():
    """The directory temp dirs go under: JITTEST_WORKDIR (set by tests/run
    per test) or /tmp. Kept short: socket paths must stay under 108 bytes."""
    d = os.environ.get("JITTEST_WORKDIR")
    if d and os.path.isdir(d):
        return d
    return "/tmp"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True if pid exists and is not a zombie (an unreaped dead slapd still
    answers kill -0, and in a container nobody may reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    state = st[st.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def norm_dn(dn):
    """A comparison key for a DN: lower case, no spaces around separators."""
    parts = []
    for rdn in dn.split(","):
        parts.append("+".join(a.strip() for a in rdn.split("+")))
    return ",".join(p.strip() for p in parts).lower()


def parse_ldif(text):
    """ldapsearch -LLL output -> list of (dn, {attr_lower: [values]})."""
    entries = []
    lines = []
    for raw in text.split("\n"):
        if raw.startswith(" ") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    dn, attrs = None, {}
    for line in lines + [""]:
        if line == "":
            if dn is not None:
                entries.append((dn, attrs))
            dn, attrs = None, {}
            continue
        if line.startswith("#"):
            continue
        i = line.find(":")
        if i <= 0:
            continue
        key, rest = line[:i], line[i + 1:]
        if rest.startswith(":"):
            val = base64.b64decode(rest[1:].strip()).decode("utf-8", "replace")
        else:
            val = rest[1:] if rest.startswith(" ") else rest
        if key.lower() == "dn":
            dn = val
        else:
            attrs.setdefault(key.lower(), []).append(val)
    return entries


class LdapError(Exception):
    def __init__(self, cmd, rc, out, err):
        super().__init__("%s exited %d: %s %s" % (cmd[0], rc, err.strip(), out.strip()))
        self.rc = rc
        self.out = out
        self.err = err


class Slapd:
    def __init__(self, suffix=SUFFIX, users=None, groups=None, overlays=True,
                 extra_ldif="", idletimeout=None, tls=False):
        self.suffix = suffix
        self.users = list(DEFAULT_USERS if users is None else users)
        self.groups = dict(DEFAULT_GROUPS if groups is None else groups)
        self.want_overlays = overlays
        self.extra_ldif = extra_ldif
        self.idletimeout = idletimeout  # seconds: slapd closes idle connections
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="sl", dir=work_root())
        self.sock = os.path.join(self.dir, "ldapi")
        if len(self.sock.encode()) >= 100:
            raise RuntimeError("ldapi socket path too long: %s" % self.sock)
        self.ldapi_uri = "ldapi://" + urllib.parse.quote(self.sock, safe="")
        self.tls_cert = os.path.join(self.dir, "cert.pem") if tls else None
        self.tls_key = os.path.join(self.dir, "key.pem") if tls else None
        self.ldaps_port = None
        self.ldaps_uri = None
        self.port = None
        self.ldap_uri = None
        self.conf = os.path.join(self.dir, "slapd.conf")
        self.pidfile = os.path.join(self.dir, "slapd.pid")
        self.log = os.path.join(self.dir, "slapd.log")
        self.rootdn = "cn=admin," + suffix
        self.rootpw = ROOTPW
        self.service_dn = "cn=jitd,ou=services," + suffix
        self.service_pw = SERVICE_PW
        self.realm = REALM
        self.people = "ou=people," + suffix
        self.groups_base = "ou=groups," + suffix
        self.placeholder = "cn=placeholder,ou=groups," + suffix
        self.overlays = []
        self.proc = None
        self.pid = None

    # -- names ---------------------------------------------------------
    def user_dn(self, name):
        return "uid=%s,%s" % (name, self.people)

    def group_dn(self, name):
        return "cn=%s,%s" % (name, self.groups_base)

    # -- configuration -------------------------------------------------
    def _module_exists(self, name):
        return os.path.exists(os.path.join(MODULE_DIR, name + ".la")) or \
            os.path.exists(os.path.join(MODULE_DIR, name + ".so"))

    def _write_conf(self):
        s = self.suffix
        svc = self.service_dn
        mods = ["back_mdb"]
        self.overlays = []
        if self.want_overlays:
            for ov in ("memberof", "refint"):
                if self._module_exists(ov):
                    mods.append(ov)
                    self.overlays.append(ov)
        lines = []
        for sch in ("core", "cosine", "inetorgperson", "nis"):
            lines.append("include %s/%s.schema" % (SCHEMA_DIR, sch))
        lines.append("modulepath %s" % MODULE_DIR)
        for m in mods:
            lines.append("moduleload %s" % m)
        lines += [
            "pidfile %s" % self.pidfile,
            "argsfile %s" % os.path.join(self.dir, "slapd.args"),
            "loglevel stats",
        ] + (["idletimeout %d" % self.idletimeout] if self.idletimeout else []) + (
            ["TLSCertificateFile %s" % self.tls_cert,
             "TLSCertificateKeyFile %s" % self.tls_key] if self.tls else []) + [
            "sasl-realm %s" % self.realm,
            # Peer credentials of our own uid (the uid jitd runs as) over
            # ldapi -> the service entry. The literal plus is written [+]:
            # "\+" does not survive the config parser's unescaping.
            'authz-regexp "gidNumber=[0-9]+[+]uidNumber=%d,cn=peercred,cn=external,cn=auth" "%s"'
            % (os.geteuid(), svc),
            # SCRAM / DIGEST through the built-in auxprop (userPassword).
            'authz-regexp "uid=jitd,cn=%s,cn=[^,]*,cn=auth" "%s"' % (self.realm, svc),
            'authz-regexp "uid=jitd,cn=[^,]*,cn=auth" "%s"' % svc,
            "",
            "database mdb",
            "maxsize 1073741824",
            'suffix "%s"' % s,
            'rootdn "%s"' % self.rootdn,
            "rootpw %s" % self.rootpw,
            "directory %s" % os.path.join(self.dir, "db"),
            "index objectClass eq",
            "index uid,member,memberUid,cn eq",
            "index entryUUID eq",
        ]
        if "memberof" in self.overlays:
            lines += ["overlay memberof",
                      "memberof-refint true"]
        if "refint" in self.overlays:
            lines += ["overlay refint", "refint_attributes member"]
        lines += [
            # The service may write only the membership attributes of groups.
            'access to dn.subtree="ou=groups,%s" attrs=member,memberUid' % s,
            '    by dn.exact="%s" write' % svc,
            "    by * read",
            "access to attrs=userPassword",
            "    by self read",
            "    by anonymous auth",
            "    by * none",
            "access to *",
            "    by * read",
            "",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)

    def _make_cert(self):
        """A self-signed certificate for 127.0.0.1 and localhost."""
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                        "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", self.tls_key, "-out", self.tls_cert],
                       check=True, capture_output=True, timeout=30)

    def seed_ldif(self):
        s = self.suffix
        out = [
            "dn: %s\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: %s\no: Example\n" % (s, s.split(",")[0].split("=")[1]),
            "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n" % s,
            "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n" % s,
            "dn: ou=services,%s\nobjectClass: organizationalUnit\nou: services\n" % s,
            "dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
            "cn: jitd\nuserPassword: %s\n" % (self.service_dn, self.service_pw),
        ]
        for i, u in enumerate(self.users):
            # The same entryUUID for the same DN in every test slapd, as
            # replicas of one directory have (several servers in `uri`).
            out.append(
                "dn: %s\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
                "uid: %s\ncn: %s\nsn: %s\nuidNumber: %d\ngidNumber: %d\n"
                "homeDirectory: /home/%s\nentryUUID: %s\n"
                % (self.user_dn(u), u, u.capitalize(), u.capitalize(),
                   10000 + i, 10000 + i, u,
                   uuid.uuid5(uuid.NAMESPACE_URL, "ldap:///" + self.user_dn(u).lower())))
        for g, (kind, members) in self.groups.items():
            out.append(self._group_ldif(g, kind, members))
        if self.extra_ldif:
            out.append(self.extra_ldif)
        return "\n".join(out)

    def _group_ldif(self, name, kind, members):
        dn = self.group_dn(name)
        if kind == "posix":
            txt = "dn: %s\nobjectClass: posixGroup\ncn: %s\ngidNumber: %d\n" % (
                dn, name, 5000 + abs(hash(name)) % 1000)
            for m in members:
                txt += "memberUid: %s\n" % m
            return txt
        txt = "dn: %s\nobjectClass: groupOfNames\ncn: %s\n" % (dn, name)
        for m in members:
            txt += "member: %s\n" % self._member_value(m)
        return txt

    def _member_value(self, m):
        if m == "placeholder":
            return self.placeholder
        if m.startswith("@"):
            return self.user_dn(m[1:])
        return m

    # -- process control -----------------------------------------------
    def start(self):
        """Starts slapd (first time: writes the config and seeds it)."""
        first = self.port is None
        if first:
            if self.tls:
                self._make_cert()
            self._write_conf()
        last = None
        for attempt in range(5):
            if first:
                self.port = free_port()
                self.ldap_uri = "ldap://127.0.0.1:%d" % self.port
                if self.tls:
                    self.ldaps_port = free_port()
                    self.ldaps_uri = "ldaps://127.0.0.1:%d" % self.ldaps_port
            try:
                self._spawn()
                break
            except RuntimeError as e:
                last = e
                time.sleep(0.3)
        else:
            raise last
        if self not in _live:
            _live.append(self)
        if first:
            # relax: the seed sets the users' entryUUID (seed_ldif)
            self._run(["ldapadd", "-e", "relax"] + self._root_args(), self.seed_ldif())
        return self

    def _spawn(self):
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        # In the foreground (-d): slapd stays our child, so we reap it (in a
        # container nobody else may) and never mistake a zombie for a server.
        if not os.access(SLAPD, os.X_OK):
            raise RuntimeError("slapd not found (apt-get install slapd; see scripts/deps)")
        urls = [self.ldapi_uri, self.ldap_uri] + ([self.ldaps_uri] if self.tls else [])
        cmd = [SLAPD, "-d", "256", "-f", self.conf, "-h", " ".join(urls)]
        if os.geteuid() == 0:
            cmd += ["-u", "root", "-g", "root"]
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                self.pid = None
                raise RuntimeError("slapd exited at start-up: %s" % self.log_tail())
            if self.ping():
                return
            time.sleep(0.02)
        self._signal_and_wait(signal.SIGKILL)
        raise RuntimeError("slapd did not answer within 15 s: %s" % self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no slapd log)"

    def ping(self):
        r = subprocess.run(["ldapsearch", "-x", "-H", self.ldapi_uri, "-LLL",
                            "-s", "base", "-b", "", "(objectClass=*)", "namingContexts"],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal_and_wait(self, sig, timeout=15):
        if self.proc is None:
            return
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.pid = None

    def stop(self):
        """Clean shutdown; the data stays for start()."""
        self._signal_and_wait(signal.SIGTERM)
        # Make sure the listeners are gone before a restart binds them.
        try:
            os.unlink(self.sock)
        except OSError:
            pass

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL (data on disk stays; mdb survives it)."""
        self._signal_and_wait(signal.SIGKILL)
        try:
            os.unlink(self.sock)
        except OSError:
            pass

    def close(self, remove=True):
        """Stops slapd and removes its directory (unless JITTEST_KEEP is set)."""
        self.stop()
        if self in _live:
            _live.remove(self)
        if remove and not os.environ.get("JITTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- directory access as rootdn ------------------------------------
    def _run(self, cmd, input_text=None, check=True):
        r = subprocess.run(cmd, input=input_text, capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise LdapError(cmd, r.returncode, r.stdout, r.stderr)
        return r

    def _root_args(self):
        return ["-x", "-H", self.ldapi_uri, "-D", self.rootdn, "-w", self.rootpw]

    def ldapadd(self, ldif):
        return self._run(["ldapadd"] + self._root_args(), ldif)

    def ldapmodify(self, ldif, check=True):
        return self._run(["ldapmodify"] + self._root_args(), ldif, check)

    def search(self, base, filt="(objectClass=*)", attrs=None, scope="sub"):
        """-> list of (dn, {attr_lower: [values]}); [] if base does not exist."""
        cmd = ["ldapsearch"] + self._root_args() + [
            "-LLL", "-o", "ldif-wrap=no", "-s", scope, "-b", base, filt]
        cmd += list(attrs or [])
        r = self._run(cmd, check=False)
        if r.returncode == 32:
            return []
        if r.returncode != 0:
            raise LdapError(cmd, r.returncode, r.stdout, r.stderr)
        return parse_ldif(r.stdout)

    def entry(self, dn, attrs=None):
        e = self.search(dn, scope="base", attrs=attrs or ["*", "+"])
        return e[0][1] if e else None

    def members(self, group_dn, attr=None):
        """The set of member (or memberUid) values of group_dn, as stored."""
        if "=" not in group_dn:
            group_dn = self.group_dn(group_dn)
        e = self.entry(group_dn, ["member", "memberUid", "uniqueMember"])
        if e is None:
            raise LookupError("no such group: %s" % group_dn)
        if attr:
            return set(e.get(attr.lower(), []))
        return set(e.get("member", []) + e.get("memberuid", []) +
                   e.get("uniquemember", []))

    def is_member(self, group, value):
        """Is value (a DN, compared normalized, or a uid) a member of group?"""
        key = norm_dn(value) if "=" in value else value
        for m in self.members(group):
            if (norm_dn(m) if "=" in m else m) == key:
                return True
        return False

    def _modify_member(self, op, group, value, attr):
        gdn = group if "=" in group else self.group_dn(group)
        if attr is None:
            attr = "member" if "=" in value else "memberUid"
        ldif = "dn: %s\nchangetype: modify\n%s: %s\n%s: %s\n" % (
            gdn, op, attr, attr, value)
        return self.ldapmodify(ldif)

    def add_member(self, group, value, attr=None):
        """As rootdn (a membership that jitd did not make)."""
        return self._modify_member("add", group, value, attr)

    def remove_member(self, group, value, attr=None):
        return self._modify_member("delete", group, value, attr)

    def entry_uuid(self, dn):
        e = self.entry(dn, ["entryUUID"])
        return e["entryuuid"][0] if e else None

    def add_group(self, name, kind="gon", members=("placeholder",)):
        self.ldapadd(self._group_ldif(name, kind, list(members)))
        return self.group_dn(name)

    def add_user(self, name, base=None):
        dn = "uid=%s,%s" % (name, base or self.people)
        self.ldapadd("dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n"
                     % (dn, name, name, name))
        return dn

    # -- as the service identity ---------------------------------------
    def service_search_external(self, base=None):
        """ldapsearch as cn=jitd via SASL EXTERNAL (checks the mapping)."""
        return self._run(["ldapsearch", "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri,
                          "-LLL", "-b", base or self.suffix, "-s", "base", "1.1"],
                         check=False)

    def whoami_external(self):
        r = self._run(["ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri])
        return r.stdout.strip()

    def whoami_scram(self, mech="SCRAM-SHA-256"):
        r = self._run(["ldapwhoami", "-Q", "-Y", mech, "-U", "jitd", "-R", self.realm,
                       "-w", self.service_pw, "-H", self.ldap_uri])
        return r.stdout.strip()


def _serve(envfile):
    """Starts a seeded slapd, writes shell variables describing it to
    envfile, and keeps it running until SIGTERM/SIGINT (used by scripts/demo)."""
    done = []
    signal.signal(signal.SIGTERM, lambda *a: done.append(1))
    signal.signal(signal.SIGINT, lambda *a: done.append(1))
    s = Slapd().start()
    try:
        env = {"SLAPD_DIR": s.dir, "LDAPI_URI": s.ldapi_uri, "LDAP_URI": s.ldap_uri,
               "SUFFIX": s.suffix, "ROOTDN": s.rootdn, "ROOTPW": s.rootpw,
               "PEOPLE_BASE": s.people, "GROUPS_BASE": s.groups_base,
               "PLACEHOLDER": s.placeholder, "SLAPD_PID": str(s.pid)}
        tmp = envfile + ".tmp"
        with open(tmp, "w") as f:
            for k, v in env.items():
                f.write("%s='%s'\n" % (k, v.replace("'", "'\\''")))
        os.rename(tmp, envfile)
        while not done and s.running():
            time.sleep(0.2)
    finally:
        s.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve(sys.argv[2])
        sys.exit(0)
    # Manual check: python3 tests/lib/slapd.py
    s = Slapd().start()
    try:
        print("ldapi:", s.ldapi_uri, "ldap:", s.ldap_uri, "overlays:", s.overlays)
        print("EXTERNAL whoami:", s.whoami_external())
        print("SCRAM whoami:", s.whoami_scram())
        print("admins:", s.members("admins"))
    finally:
        s.close()
