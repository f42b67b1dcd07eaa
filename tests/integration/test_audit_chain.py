"""The audit log's hash chain end to end: `jitctl audit verify` over files
that jitd wrote across a SIGHUP rotation and a restart after rotation (plain
and .gz), tampering (edit, delete, insert, swap) named at the right line,
a log cut at its end noticed at the next start, a line torn by a crash
accounted for by the record jitd writes of it at its next start, and the
verification script printed in docs/audit-log.md agreeing with jitctl on
every case."""

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

from crash import fault_build
from jitd import binary
from jittest import Env, eq, skip, wait_until


def verify(*files):
    r = subprocess.run([binary("jitctl"), "audit", "verify"] + list(files),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def doc_script(workdir):
    """The Python verifier printed in docs/audit-log.md, as a file."""
    src = os.path.join(os.environ["JITD_SRCDIR"], "docs", "audit-log.md")
    with open(src) as f:
        text = f.read()
    m = re.search(r"```python\n(#!/usr/bin/python3\n.*?)```", text, re.S)
    assert m, "no verification script in docs/audit-log.md"
    path = os.path.join(workdir, "verify-audit.py")
    with open(path, "w") as f:
        f.write(m.group(1))
    return path


def doc_verify(script, *files):
    r = subprocess.run([sys.executable, script] + list(files), capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout


def first_bad(out):
    """(file basename, line) of the first line jitctl names."""
    m = re.search(r"^(\S+?):(\d+): ", out, re.M)
    assert m, "no FILE:LINE in %r" % out
    return os.path.basename(m.group(1)), int(m.group(2))


def lines_of(path):
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def write_lines(path, lines):
    with open(path, "wb") as f:
        f.writelines(lines)


def make_log(e):
    """A log in three files: audit.log.2.gz (rotated with SIGHUP, then
    compressed), audit.log.1 (rotated, then jitd restarted before writing to
    a new file) and audit.log. Returns the paths, oldest first."""
    j = e.jitd
    for u in ("alice", "bob"):
        g = j.must_grant(u, "admins", "1h", ticket="T-" + u)
        j.ok({"op": "complete", "grant_id": g["grant_id"], "reason": "done"})
    r2 = j.audit_log + ".2"
    os.rename(j.audit_log, r2)
    j.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(j.audit_log), 5, "audit log reopened")
    for u in ("carol", "dave", "erin"):
        g = j.must_grant(u, "dba", "1h")
        j.ok({"op": "revoke", "grant_id": g["grant_id"], "reason": "no longer needed"})
    # Rotated again, and jitd restarted before it wrote to a new file: the
    # chain head in state_dir carries the chain over.
    j.stop()
    r1 = j.audit_log + ".1"
    os.rename(j.audit_log, r1)
    j.start()
    j.must_grant("dave", "web", "1h")
    with open(r2, "rb") as f, gzip.open(r2 + ".gz", "wb") as z:
        shutil.copyfileobj(f, z)
    os.unlink(r2)
    return [r2 + ".gz", r1, j.audit_log]


def test_verify_across_rotation_restart_and_gz():
    with Env() as e:
        files = make_log(e)
        e.jitd.stop()
        rc, out = verify(*files)
        eq(rc, 0, "jitctl audit verify: %s" % out)
        assert out.startswith("OK: "), out
        with gzip.open(files[0]) as z:
            n = len(z.read().splitlines()) + len(lines_of(files[1])) + len(lines_of(files[2]))
        assert ("OK: %d lines in 3 file(s), seq 1 .. %d," % (n, n)) in out, out
        # The first line of the file after the restart continues the chain.
        first = lines_of(files[2])[0].decode()
        last_before = lines_of(files[1])[-1].decode()
        seq_before = int(re.search(r'"seq":(\d+)', last_before).group(1))
        assert '"seq":%d,' % (seq_before + 1) in first, (last_before, first)
        assert re.search(r'"hash":"([0-9a-f]{64})"', last_before).group(1) in first
        # The documented script agrees.
        script = doc_script(os.getcwd())
        rc, out = doc_verify(script, *files)
        eq(rc, 0, "docs/audit-log.md script: %s" % out)
        assert "last seq %d" % n in out, out
        # The current file alone: its first line is taken as the start.
        rc, out = verify(files[2])
        eq(rc, 0, out)
        assert "was taken as the start" in out, out
        # Files out of order: the break is named where the order goes wrong.
        rc, out = verify(files[1], files[0], files[2])
        eq(rc, 1, out)
        eq(first_bad(out), (os.path.basename(files[0]), 1), "first bad line, files swapped")


def test_tampering_is_named_at_the_right_line():
    with Env() as e:
        files = make_log(e)
        e.jitd.stop()
        script = doc_script(os.getcwd())
        cur = files[1]  # audit.log.1, plain text
        orig = lines_of(cur)
        assert len(orig) >= 5, orig
        k = 3  # 1-based line number tampered with
        cases = {}
        edited = list(orig)
        edited[k - 1] = edited[k - 1].replace(b'"user":"', b'"user":"x', 1)
        assert edited[k - 1] != orig[k - 1]
        cases["edit"] = (edited, k)
        cases["delete"] = (orig[:k - 1] + orig[k:], k)
        cases["insert"] = (orig[:k] + [orig[k - 1]] + orig[k:], k + 1)
        swapped = list(orig)
        swapped[k - 1], swapped[k] = swapped[k], swapped[k - 1]
        cases["swap"] = (swapped, k)
        cases["truncate-last"] = (orig[:-1], None)  # caught in the next file
        for name, (lines, want) in cases.items():
            write_lines(cur, lines)
            rc, out = verify(*files)
            eq(rc, 1, "%s: jitctl exit status (%s)" % (name, out))
            where = (os.path.basename(cur), want) if want else (os.path.basename(files[2]), 1)
            eq(first_bad(out), where, "%s: first bad line" % name)
            assert "BROKEN: the first bad line is" in out, out
            drc, dout = doc_verify(script, *files)
            eq(drc, 1, "%s: docs script exit status (%s)" % (name, dout))
            assert "%s:%d: chain broken here" % (cur if want else files[2], want or 1) in dout, \
                (name, dout)
        # An edit only reports that line: verification resynchronises.
        write_lines(cur, cases["edit"][0])
        rc, out = verify(*files)
        eq(len([l for l in out.splitlines() if re.match(r"^\S+:\d+: ", l)]), 1, out)
        # A damaged .gz is named too.
        write_lines(cur, orig)
        with open(files[0], "rb") as f:
            data = f.read()
        with open(files[0], "wb") as f:
            f.write(data[:len(data) // 2])
        rc, out = verify(*files)
        eq(rc, 1, out)
        assert "damaged" in out, out
        # An unreadable file is exit status 3.
        rc, out = verify(files[1], os.path.join(os.getcwd(), "nope.log"))
        eq(rc, 3, out)


def test_truncated_log_is_noticed_at_start():
    with Env() as e:
        j = e.jitd
        j.must_grant("alice", "admins", "1h")
        j.must_grant("bob", "admins", "1h")
        j.stop()
        lines = lines_of(j.audit_log)
        cut = lines[-2:]
        write_lines(j.audit_log, lines[:-2])  # someone removed the last two lines
        j.start()
        j.must_grant("carol", "admins", "1h")
        j.stop()
        assert "lines were removed or the file was replaced" in j.stderr_tail(200)
        rc, out = verify(j.audit_log)
        eq(rc, 1, out)
        eq(first_bad(out), ("audit.log", len(lines) - 1), "the gap shows at the next line")
        assert "expected seq %d" % (len(lines) - 1) in out, out
        # Putting the removed lines back makes the chain whole again.
        now = lines_of(j.audit_log)
        write_lines(j.audit_log, now[:len(lines) - 2] + cut + now[len(lines) - 2:])
        rc, out = verify(j.audit_log)
        eq(rc, 0, out)


def test_line_torn_by_a_crash_is_recorded_at_the_next_start():
    """jitd killed in the middle of writing a line (crash point
    audit.torn_write: half the line reaches the file, then SIGKILL) leaves
    a torn line. The next start ends it and writes a `torn_line` record of
    it (length and SHA-256), chained to the last whole line: `jitctl audit
    verify`, `jitctl report` and the documented script accept the log and
    count the torn line; a changed fragment, a torn line that no record
    follows, or a record whose torn line was removed, is still named. A
    notify receiver gets the record (event torn_line)."""
    if not fault_build():
        skip("jitd was built without --enable-fault-injection (scripts/test enables it)")
    from test_notify import Receiver
    hook = Receiver().start()
    with Env(top={"notify": [{"url": hook.url()}]}) as e:
        j = e.jitd
        j.must_grant("alice", "admins", "1h")
        j.stop()
        # line 1 of the next start is `started`; line 2, bob's `granted`, is torn
        j.start(env={"JITD_FAULT": "audit.torn_write:@2"})
        try:
            a = j.request({"op": "grant", "user": "bob", "group": "admins", "duration": "1h",
                           "ticket": "T-1", "requested_by": "helpdesk"})
        except ConnectionError:
            a = None
        assert a is None, "grant answered despite the crash: %r" % a
        j.kill()
        assert "fault injected at audit.torn_write" in j.stderr_tail(20)
        raw = lines_of(j.audit_log)
        torn = raw[-1]
        assert torn.startswith(b'{"ts":') and not torn.endswith(b"\n"), torn
        j.start()
        j.must_grant("carol", "admins", "1h")
        wait_until(lambda: hook.events(event="torn_line"), 10, "the torn_line notification")
        j.stop()
        lines = lines_of(j.audit_log)
        i = lines.index(torn + b"\n")
        before, rec = json.loads(lines[i - 1]), json.loads(lines[i + 1])
        eq(rec["event"], "torn_line", "the line after the torn one")
        eq(rec["torn_bytes"], len(torn), "torn_bytes")
        eq(rec["torn_sha256"], hashlib.sha256(torn).hexdigest(), "torn_sha256")
        eq((rec["seq"], rec["prev"]), (before["seq"] + 1, before["hash"]),
           "the record continues the chain from the last whole line")
        got = hook.events(event="torn_line")
        eq([json.loads(g["body"]) for g in got], [rec], "the torn_line notification")
        hook.stop()
        assert ("its last line (%d bytes) is incomplete: jitd stopped in the middle of "
                "writing it" % len(torn)) in j.stderr_tail(400)
        rc, out = verify(j.audit_log)
        eq(rc, 0, "jitctl audit verify: %s" % out)
        assert "(1 torn line(s), each followed by jitd's torn_line record" in out, out
        script = doc_script(os.getcwd())
        rc, dout = doc_verify(script, j.audit_log)
        eq(rc, 0, "docs/audit-log.md script: %s" % dout)
        r = subprocess.run([binary("jitctl"), "report", "--format", "json", j.audit_log],
                           capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, "jitctl report: %s" % r.stderr)
        chain = json.loads(r.stdout)["chain"]
        eq((chain["verified"], chain["bad_lines"], chain["torn_lines"]), (True, 0, 1),
           "the report's chain")
        def named_first(content, why, what):
            """Both verifiers name line i + 1 of content first; jitctl says why."""
            write_lines(j.audit_log, content)
            rc, out = verify(j.audit_log)
            eq(rc, 1, out)
            eq(first_bad(out), ("audit.log", i + 1), what)
            assert why in out, out
            rc, dout = doc_verify(script, j.audit_log)
            eq(rc, 1, dout)
            assert "%s:%d: chain broken here" % (j.audit_log, i + 1) in dout, dout

        # The fragment changed: the record no longer accounts for it.
        edited = list(lines)
        edited[i] = edited[i].replace(b'"ts":"', b'"ts":"x', 1)
        named_first(edited, "no torn_line record of jitd follows it", "the changed torn line")
        # A torn line with no record after it: inserted, and at the very end.
        write_lines(j.audit_log, lines[:i + 3] + [torn + b"\n"] + lines[i + 3:] + [torn])
        rc, out = verify(j.audit_log)
        eq(rc, 1, out)
        named = [int(m) for m in re.findall(r"^\S+:(\d+): ", out, re.M)]
        eq(named[:2], [i + 4, len(lines) + 2], "the unrecorded torn lines")
        assert "a torn last line" in out, out
        rc, dout = doc_verify(script, j.audit_log)
        eq(rc, 1, dout)
        assert "2 broken line(s)" in dout, dout
        # The torn line removed: its record is named.
        named_first(lines[:i] + lines[i + 1:],
                    "a torn_line record without the torn line before it",
                    "the record whose torn line was removed")


def test_audit_lines_mirrored_to_syslog():
    """syslog = true: every audit line also goes to syslog(3) with the
    configured facility. jitd runs in a private mount namespace whose /dev/log
    is a socket this test reads (the machine's /dev is not touched)."""
    import socket
    import time
    work = os.getcwd()
    logsock = os.path.join(work, "log")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(logsock)
    s.settimeout(10)
    olddev = os.path.join(work, "olddev")
    nodes = " ".join(n for n in ("null", "zero", "urandom", "random", "full")
                     if os.path.exists("/dev/" + n))
    setup = ("mkdir -p {o} && mount --bind /dev {o} && mount -t tmpfs tmpfs /dev && "
             "for n in {nodes}; do touch /dev/$n && mount --bind {o}/$n /dev/$n; done && "
             "ln -s {sock} /dev/log && exec \"$@\"").format(o=olddev, nodes=nodes, sock=logsock)
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            setup, "sh", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        from jittest import skip
        skip("cannot make a private /dev/log (unshare/mount: %s)" % probe.stderr.strip())
    with Env(start=False, top={"syslog": True, "syslog_facility": "authpriv"}) as e:
        j = e.jitd
        err = open(j.stderr_path, "ab")
        j.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   setup, "sh", binary("jitd"), "-f", "-c", j.conf],
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        j.wait_ready()
        g = j.must_grant("alice", "admins", "1h")
        got = {}
        deadline = time.time() + 10
        # (a first start writes store_created before started: wait for both)
        while not ("started" in got and "granted" in got) and time.time() < deadline:
            msg = s.recv(1 << 20).decode()
            m = re.match(r"^<(\d+)>.*?(\{\"ts\".*)$", msg, re.S)
            if m:
                rec = json.loads(m.group(2))
                got[rec["event"]] = (int(m.group(1)), m.group(2))
        j.stop()
        s.close()
        for ev in ("started", "granted"):
            assert ev in got, "no %s line on syslog: %r" % (ev, got)
            eq(got[ev][0], 10 * 8 + 5, "priority of %s (authpriv.notice)" % ev)
        with open(j.audit_log) as f:
            lines = [l.rstrip("\n") for l in f]
        assert got["granted"][1] in lines, (got["granted"], lines)
        assert g["grant_id"] in got["granted"][1]


def test_a_second_jitd_writing_the_same_audit_log_is_refused():
    """A second jitd with a state_dir, socket and pid file of its own but
    the first one's audit_log (a copied configuration) is refused at start:
    its lines would break the first one's chain (regression: it started and
    both wrote into one chain). Also after the first one's reload, which
    reopens the log (regression: the reopen lost the lock)."""
    from jitd import cfg_text
    with Env() as e:
        j = e.jitd
        j.reload()  # reopens the log: the lock must go with it
        assert "cannot lock it after the reopen" not in j.stderr_tail(200)
        cfg = dict(j.config)
        d2 = os.path.join(j.dir, "second")
        os.makedirs(d2, mode=0o700)
        cfg.update({"state_dir": os.path.join(d2, "state"),
                    "socket_path": os.path.join(d2, "jitd.sock"),
                    "pid_file": os.path.join(d2, "jitd.pid")})
        conf2 = os.path.join(d2, "jitd.conf")
        fd = os.open(conf2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cfg_text(cfg))
        r = subprocess.run([binary("jitd"), "-f", "-c", conf2], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0, r
        assert "another process writes this audit log" in r.stderr, r.stderr
        e.grant_and_check("alice", "admins", "1h")  # the first goes on
        rc, out = verify(j.audit_log)
        eq(rc, 0, "the first one's chain: " + out)
