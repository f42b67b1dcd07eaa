"""jitd under valgrind memcheck: a short life with grants, an extension, a
completion, a revocation, expiries, refusals, a reload and a clean stop
must show no invalid access, no use of uninitialised memory and no leak.

Leak kinds counted as errors: "definitely lost" and "indirectly lost".
"Still reachable" (memory the libraries keep until exit: OpenSSL's and
libsasl2's global tables, SQLite's page cache, libldap's option globals) and
"possibly lost" (interior pointers kept by those same libraries) are not:
they are not leaks of jitd. tests/valgrind.supp holds the suppressions for
what the libraries themselves do (each one says why); it suppresses nothing
in jitd's own code.

Skipped when valgrind is not installed, and in a sanitizer build (valgrind
cannot run an ASan binary; that build has LeakSanitizer instead).
"""

import glob
import os
import re
import shutil
import signal
import time

from jittest import Env, eq, refused, skip, timeout, wait_until
from jitd import binary, sanitizer_build


@timeout(300)
def test_valgrind_memcheck_clean():
    if not shutil.which("valgrind"):
        skip("valgrind not installed (apt-get install valgrind; scripts/deps does)")
    if sanitizer_build():
        skip("sanitizer build: valgrind cannot run ASan binaries (LeakSanitizer covers it)")
    supp = os.path.join(os.environ.get("JITD_SRCDIR", "."), "tests", "valgrind.supp")
    with Env(start=False) as e:
        # --trace-children: the listener is the same binary exec'ed by the
        # engine (/proc/self/exe -L); each process gets its own log.
        logs = os.path.join(e.jitd.dir, "valgrind.%p.log")
        wrapper = ["valgrind", "--tool=memcheck", "--trace-children=yes", "--leak-check=full",
                   "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--track-origins=yes", "--error-exitcode=99",
                   "--suppressions=" + supp, "--log-file=" + logs]
        e.jitd.start(wrapper=wrapper, timeout=120)
        alice, bob, carol = e.user_dn("alice"), e.user_dn("bob"), e.user_dn("carol")
        g1 = e.jitd.must_grant("alice", "admins", "2s", request_id="vg-1", ticket="INC-1")
        g2 = e.jitd.must_grant("bob", "dba", "1h", reason="valgrind")
        g3 = e.jitd.must_grant("carol", "ops", "1h")
        g4 = e.jitd.must_grant("dave", "unixops", "2s")
        dup = e.jitd.ok({"op": "grant", "user": "alice", "group": "admins", "duration": "2s",
                         "request_id": "vg-1", "ticket": "INC-1"})
        eq(dup.get("duplicate"), True, "duplicate answer")
        refused(e.jitd.grant("nosuchuser", "admins", "1h"), "unknown_user")
        refused(e.jitd.grant("alice", "nosuchgroup", "1h"), "unknown_group")
        e.jitd.ok({"op": "extend", "grant_id": g2["grant_id"], "duration": "10m"})
        e.jitd.ok({"op": "complete", "grant_id": g2["grant_id"], "reason": "done"})
        e.jitd.ok({"op": "revoke", "grant_id": g3["grant_id"]})
        e.jitd.ok({"op": "list"})
        e.jitd.ok({"op": "status"})
        with e.jitd.connect() as c:   # a malformed line, then a good one
            c.send(b'{"op":"grant","user":\n')
            c.recv()
        e.jitd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: not e.is_member("admins", alice), 30, "expiry of alice's grant")
        wait_until(lambda: not e.is_member("unixops", "dave"), 30, "expiry of dave's grant")
        wait_until(lambda: e.jitd.show(g1["grant_id"])["state"] == "expired", 30, "expired")
        wait_until(lambda: e.jitd.show(g4["grant_id"])["state"] == "expired", 30, "expired")
        assert not e.is_member("dba", bob) and not e.is_member("ops", carol)
        t0 = time.time()
        rc = e.jitd.stop(timeout=120)
        texts = []
        for name in sorted(glob.glob(os.path.join(e.jitd.dir, "valgrind.*.log"))):
            with open(name) as f:
                texts.append(f.read())
        if len(texts) < 2:
            raise AssertionError("expected valgrind logs of the engine and the listener, "
                                 "found %d" % len(texts))
        for text in texts:
            summary = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
            if rc != 0 or not summary or summary[-1] != "0":
                raise AssertionError("valgrind found errors (exit %r):\n%s"
                                     % (rc, text[-20000:]))
            for kind in ("definitely lost", "indirectly lost"):
                m = re.search(kind + r": ([\d,]+) bytes", text)
                if m and m.group(1) != "0":
                    raise AssertionError("%s: %s bytes\n%s" % (kind, m.group(1),
                                                               text[-20000:]))
            print("valgrind: %s: clean; leak summary:\n%s" % (
                re.search(r"Command: (.*)", text).group(1),
                "\n".join(re.findall(r"==\d+==\s+(?:definitely|indirectly|possibly) lost.*|"
                                     r"==\d+==\s+still reachable.*", text))))
        print("valgrind: %d processes clean; stop took %.1fs" % (len(texts), time.time() - t0))
