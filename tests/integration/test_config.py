"""jitd -t: configuration errors name FILE:LINE and the key; a good
configuration passes; a bad one keeps the daemon from starting."""

import copy
import os
import signal
import subprocess

from jittest import Env, eq, need_root, wait_until
from jitd import binary, cfg_text


def _check(path):
    r = subprocess.run([binary("jitd"), "-t", "-c", path], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr


def _write(e, name, text):
    path = os.path.join(e.jitd.dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _line_of(text, needle):
    for n, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return n
    raise AssertionError("%r not in config" % needle)


def _expect_error(e, name, text, needle, key):
    path = _write(e, name, text)
    rc, out = _check(path)
    assert rc != 0, "jitd -t accepted %s:\n%s\noutput: %s" % (name, text, out)
    where = "%s:%d" % (path, _line_of(text, needle))
    assert where in out, "error does not name %s:\n%s" % (where, out)
    assert key in out, "error does not name the key %r:\n%s" % (key, out)
    return out


def test_good_config_checks_ok():
    with Env(start=False) as e:
        rc, out = _check(e.jitd.conf)
        eq(rc, 0, "jitd -t on the test config (output %r)" % out)


def test_config_errors_name_file_line_key():
    with Env(start=False) as e:
        good = cfg_text(e.jitd.config)

        # An unknown top-level key.
        text = good.replace("log_level =", "bogus_key = 1;\nlog_level =", 1)
        _expect_error(e, "unknown.conf", text, "bogus_key", "bogus_key")

        # A value of the wrong type.
        text = good.replace('client_timeout = 60;', 'client_timeout = true;', 1)
        assert text != good
        _expect_error(e, "type.conf", text, "client_timeout", "client_timeout")

        # A bad duration string inside a group.
        text = good.replace('max_duration = "4h";', 'max_duration = "4 hours";', 1)
        assert text != good
        _expect_error(e, "dur.conf", text, "4 hours", "max_duration")

        # An unknown key inside a directories entry.
        text = good.replace("user_filter =", "colour = \"red\";\n    user_filter =", 1)
        _expect_error(e, "dirkey.conf", text, "colour", "colour")

        # A group naming a directory that does not exist.
        text = good.replace('directory = "corp";', 'directory = "nowhere";', 1)
        _expect_error(e, "nodir.conf", text, "nowhere", "directory")

        # A socket mode that is not octal text.
        text = good.replace('socket_mode = "0600";', 'socket_mode = "rw-------";', 1)
        assert text != good
        _expect_error(e, "mode.conf", text, "socket_mode", "socket_mode")

        # A libconfig syntax error names the file and line too.
        text = good.replace("log_level =", "state_dir_oops \n = = ;\nlog_level =", 1)
        path = _write(e, "syntax.conf", text)
        rc, out = _check(path)
        assert rc != 0, "syntax error accepted"
        assert path + ":" in out, "syntax error does not name the file: %s" % out


def test_config_reports_every_error():
    with Env(start=False) as e:
        good = cfg_text(e.jitd.config)
        text = good.replace("log_level =", "first_bogus = 1;\nlog_level =", 1)
        text = text.replace("retry_min_interval =", "second_bogus = 2;\nretry_min_interval =", 1)
        path = _write(e, "two.conf", text)
        rc, out = _check(path)
        assert rc != 0
        for key in ("first_bogus", "second_bogus"):
            assert "%s:%d" % (path, _line_of(text, key)) in out and key in out, \
                "error for %s missing:\n%s" % (key, out)


def test_bad_config_does_not_start():
    with Env(start=False) as e:
        text = cfg_text(e.jitd.config).replace("log_level =", "bogus_key = 1;\nlog_level =", 1)
        e.jitd.write_config(text)
        p = subprocess.run([binary("jitd"), "-f", "-c", e.jitd.conf], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode != 0, "jitd started with a bad config"
        assert "bogus_key" in p.stdout + p.stderr, p.stderr
        assert not os.path.exists(e.jitd.sock), "socket created despite the bad config"


def test_config_errors_do_not_show_url_tokens():
    """A webhook URL usually carries its token (Slack, Teams): a config
    error about a notify or ticket_check URL shows it redacted, in `jitd -t`
    and in the refused reload's message (which goes to syslog)."""
    with Env() as e:
        j = e.jitd
        bad = copy.deepcopy(j.config)
        bad["notify"] = [
            {"url": "htps://hooks.example/services/T0/B1/SECRETTOKEN1"},
            {"url": "https://hooks.example/services/T0/B1/SECRET TOKEN2"},
        ]
        bad["groups"][0]["ticket_check"] = {
            "url": "ftp://itsm.example/api/SECRETTOKEN3/%s", "approved_field": "state",
            "approved_value": "approved"}
        text = cfg_text(bad)
        path = _write(e, "tokens.conf", text)
        rc, out = _check(path)
        eq(rc, 1, "jitd -t exit status (output %r)" % out)
        for needle, what in (("SECRETTOKEN1", "is not an http:// or https:// URL"),
                             ("SECRET TOKEN2", "contains a space"),
                             ("SECRETTOKEN3", "is not an http:// or https:// URL")):
            want = "%s:%d: url: " % (path, _line_of(text, needle))
            lines = [ln for ln in out.splitlines() if ln.startswith(want)]
            assert lines and what in lines[0], "no %r error at %s:\n%s" % (what, want, out)
        assert '"htps://hooks.example/***"' in out, out
        assert '"ftp://itsm.example/***"' in out, out
        assert "SECRET" not in out, out
        # the same errors on a reload: refused, logged without the tokens
        j.write_config(text)
        j.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in j.stderr_tail(200), 10, "the reload refused")
        log = j.stderr_tail(100000)
        assert "hooks.example/***" in log, log
        assert "SECRET" not in log, log
        assert j.running(), "jitd died on a refused reload"
        j.ok({"op": "status"})


def test_effective_config_does_not_show_url_tokens():
    """`jitd -t -v` prints notify and ticket_check URLs redacted (a token
    may sit in the path or the query), and what it prints checks again
    (regression: ticket_check URLs were printed in full)."""
    with Env(start=False) as e:
        cfg = copy.deepcopy(e.jitd.config)
        cfg["notify"] = [{"url": "https://hooks.example/services/T0/B1/SECRETTOKEN1"}]
        cfg["groups"][0]["ticket_check"] = {
            "url": "https://itsm.example/api/tickets/%s?access_token=SECRETTOKEN2",
            "approved_field": "state", "approved_value": "approved"}
        path = _write(e, "tokens.conf", cfg_text(cfg))
        r = subprocess.run([binary("jitd"), "-t", "-v", "-c", path], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 0, "jitd -t -v (stderr %r)" % r.stderr)
        assert "SECRET" not in r.stdout + r.stderr, r.stdout
        assert 'url = "https://hooks.example/***";' in r.stdout, r.stdout
        assert 'url = "https://itsm.example/***%s";' in r.stdout, r.stdout
        rc, out = _check(_write(e, "dumped.conf", r.stdout))
        eq(rc, 0, "jitd -t on the printed configuration (output %r)" % out)


def _private_etc_group(extra):
    """From now on this test process (and what it starts) sees /etc/group
    with the line extra added: a private mount namespace, the host's file
    untouched."""
    import ctypes
    import tempfile
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    fd, path = tempfile.mkstemp(prefix="group.")
    with os.fdopen(fd, "w") as f, open("/etc/group") as g:
        f.write(g.read() + extra + "\n")
    os.chmod(path, 0o644)
    subprocess.run(["mount", "--bind", path, "/etc/group"], check=True)


def test_numeric_socket_group_is_a_gid():
    need_root()
    # A group *named* "4242" (gid 4243) must not be taken for gid 4242.
    _private_etc_group("4242:x:4243:")
    import grp
    eq(grp.getgrnam("4242").gr_gid, 4243, "the group named 4242 (test set-up)")
    for value, gid in (("0", 0), ("4242", 4242), ("daemon", grp.getgrnam("daemon").gr_gid)):
        with Env(start=False, top={"socket_group": value}) as e:
            rc, out = _check(e.jitd.conf)
            eq(rc, 0, "jitd -t with socket_group = \"%s\" (output %r)" % (value, out))
            e.jitd.start()
            eq(os.stat(e.jitd.sock).st_gid, gid, "group of the socket with socket_group = "
                                                  "\"%s\"" % value)
            eq(e.jitd.ok({"op": "status"})["ok"], True, "status")


def test_socket_group_gid_out_of_range():
    with Env(start=False) as e:
        good = cfg_text(e.jitd.config)
        for bad in ("4294967295", "99999999999999999999"):
            text = good + 'socket_group = "%s";\n' % bad
            _expect_error(e, "gid.conf", text, "socket_group", "socket_group")
