"""`jitd -t` on a configuration broken in every way this issue adds: each
problem listed with FILE:LINE, in line order, nothing else; no secret in
the output; and the daemon refuses to start with the same list."""

import os
import subprocess

from jittest import Env, eq
from jitd import binary


BROKEN = """\
# a Domain Admins policy with one mistake per line that matters
listener_user = "root";
user = "no-such-user-jt";
socket_path = "@DIR@/jitd.sock";
state_dir = "@DIR@/state";
audit_log = "@DIR@/audit.log";
directories = (
  { name = "corp"; uri = "ldapi:///"; user_base = "dc=example,dc=com";
    sasl_mech = "SCRAM-SHA-256"; sasl_authcid = "jitd";
    sasl_secret_file = "@DIR@/ldap.secret";
    keytab = "@DIR@/missing.keytab"; }
);
groups = (
  { name = "domain-admins"; directory = "corp"; dn = "cn=da,dc=example,dc=com";
    min_duration = "2h";
    ticket_pattern = "^(INC|CHG[0-9]{5,}$";
    eligible_group = "da-eligible";
    max_active_per_user = 0;
    approval_key_file = "@DIR@/approval.key";
    ticket_check = {
      url = "https://admin:hunter2@itsm.example.com/api/tickets";
      approved_field = "state";
      colour = "red";
      token_file = "@DIR@/itsm.token";
    };
    require_tickets = true;
  },
  { name = "dba"; directory = "ldap-two"; dn = "cn=dba,dc=example,dc=com"; }
);
clients = (
  { name = "helpdesk"; unix_user = "helpdesk-jt-missing"; groups = [ "domain-admins", "web" ];
    ops = [ "grant", "approve" ]; max_duration = "0s"; max_requests_per_minute = 0; }
);
"""

EXPECTED = """\
@C@:2: listener_user: "root" is root: the listener must run unprivileged
@C@:3: user: no such user "no-such-user-jt"
@C@:10: sasl_secret_file: @DIR@/ldap.secret: mode 0644 lets group or others use it (make it 0600 or 0400)
@C@:11: keytab: @DIR@/missing.keytab: No such file or directory
@C@:15: min_duration: 2h is longer than default_duration 1h
@C@:16: ticket_pattern: "^(INC|CHG[0-9]{5,}$" is not a POSIX extended regular expression: Unmatched ( or \\(
@C@:17: eligible_group: "da-eligible" is not a DN
@C@:18: max_active_per_user: must be between 1 and 100000 (got 0)
@C@:19: approval_key_file: @DIR@/approval.key: owned by uid 1, not by uid 0 that jitd runs as
@C@:20: approved_value: required in ticket_check
@C@:21: url: must not hold a user name or password (put a token in token_file)
@C@:21: url: must hold exactly one %s (the ticket) and %% for a literal %
@C@:23: colour: unknown key in ticket_check
@C@:24: token_file: @DIR@/itsm.token: mode 0640 lets group or others use it (make it 0600 or 0400)
@C@:26: require_tickets: unknown key in a groups entry
@C@:28: directory: no directory named "ldap-two"
@C@:31: unix_user: no such user "helpdesk-jt-missing"
@C@:31: groups: no group named "web"
@C@:32: max_duration: must be between 1s and 522w6d (got 0s)
@C@:32: max_requests_per_minute: must be between 1 and 1000000 (got 0)
@C@:32: ops: unknown operation "approve"
"""


def _file(path, text, mode, owner=0):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, mode)
    os.chown(path, owner, owner)


def test_check_lists_every_problem_with_file_and_line():
    with Env(start=False) as e:
        d = e.jitd.dir
        conf = os.path.join(d, "broken.conf")
        _file(conf, BROKEN.replace("@DIR@", d), 0o600)
        _file(os.path.join(d, "ldap.secret"), "pw-s3cret\n", 0o644)
        _file(os.path.join(d, "approval.key"), "key-s3cret\n", 0o600, owner=1)
        _file(os.path.join(d, "itsm.token"), "token-s3cret\n", 0o640)
        r = subprocess.run([binary("jitd"), "-t", "-c", conf], capture_output=True, text=True,
                           timeout=30)
        eq(r.returncode, 1, "jitd -t exit status")
        want = EXPECTED.replace("@C@", conf).replace("@DIR@", d)
        if r.stderr != want:
            import difflib
            raise AssertionError("jitd -t output differs:\n" + "".join(
                difflib.unified_diff(want.splitlines(True), r.stderr.splitlines(True),
                                     "expected", "got")))
        eq(r.stdout, "", "nothing on stdout")
        for secret in ("pw-s3cret", "key-s3cret", "token-s3cret", "hunter2\n"):
            assert secret not in r.stderr, secret
        # the daemon prints the same list and does not start
        r = subprocess.run([binary("jitd"), "-f", "-c", conf], capture_output=True, text=True,
                           timeout=30)
        eq(r.returncode, 1, "start with the broken config")
        eq(r.stderr, want, "start-up errors")
        assert not os.path.exists(os.path.join(d, "jitd.sock"))


def test_listener_sharing_jitd_s_group_is_refused():
    """The listener may not share the group jitd runs as (jitd.conf is kept
    readable by that group, and may hold what the listener only gets
    redacted): user daemon, group nogroup, listener nobody (primary group
    nogroup) is refused by jitd -t, naming listener_user."""
    with Env(start=False) as e:
        j = e.jitd
        j.config.update({"user": "daemon", "group": "nogroup", "listener_user": "nobody"})
        j.write_config()
        r = subprocess.run([binary("jitd"), "-t", "-c", j.conf], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0, r
        assert 'listener_user: "nobody" has gid 65534, the group jitd runs as' in r.stdout + \
            r.stderr, r.stdout + r.stderr
