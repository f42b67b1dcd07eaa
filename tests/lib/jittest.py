"""The integration-test framework used by tests/integration/test_*.py.

A test is a top-level function named test_* in a test_*.py file. tests/run
runs each one in its own process (tests/lib/runone.py) with its own work
directory and a timeout, so every test is independent: it starts its own
slapd and jitd (with Env() below), and whatever it leaves running is
killed afterwards. A test passes if it returns, fails on any exception
(the traceback is printed), and is skipped if it raises Skip.

    @slow                 marks a test that tests/run --quick skips
    @timeout(SECONDS)     a longer per-test timeout than tests/run's default
    quick()               true under tests/run --quick (do less)
    @exclusive(NAME)      never runs beside another test marked with NAME
                          (tests/run puts them in one lane, one at a time)
    with Env(...) as e:   e.slapd (tests/lib/slapd.py), e.jitd (tests/lib/jitd.py)
    wait_until(pred, timeout, what)
"""

import os
import signal
import sys
import threading
import time

from slapd import Slapd
from jitd import Jitd, parse_time


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer",
                     "LeakSanitizer has encountered a fatal error")


# Failure context collected by Env.dump(); tests/lib/runone.py prints it
# after the traceback.
DIAGNOSTICS = []


class Skip(Exception):
    """Raised by a test that cannot run here (says why)."""


def skip(reason):
    raise Skip(reason)


def slow(fn):
    fn.jittest_slow = True
    return fn


def timeout(seconds):
    def deco(fn):
        fn.jittest_timeout = seconds
        return fn
    return deco


def quick():
    """True under tests/run --quick: a test may do less (fewer trials)."""
    return os.environ.get("JITTEST_QUICK") == "1"


def exclusive(name):
    def deco(fn):
        fn.jittest_exclusive = name
        return fn
    return deco


def need_root():
    if os.geteuid() != 0:
        skip("needs root (to act as another uid)")


def wait_until(pred, timeout, what, interval=0.1):
    """Polls pred() until it returns a true value (returned) or timeout
    seconds pass (AssertionError naming what was awaited)."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for: %s" % (timeout, what))
        time.sleep(interval)


def _thread_states(pid):
    """The scheduler state letter of each of pid's threads (/proc)."""
    states = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:
            continue                      # the thread has just exited
        # "tid (comm) S ...": comm may hold spaces and parentheses
        states.append(stat[stat.rindex(")") + 2])
    return states


def freeze(pid, timeout=10):
    """SIGSTOPs pid and returns once every thread of it is stopped. kill(2)
    returns before that: the kernel wakes one thread to begin the group
    stop, and on a busy machine the others go on running meanwhile (a
    slapd answered a request sent after SIGSTOP that way)."""
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: all(s in "tTZX" for s in _thread_states(pid)), timeout,
               "process %d to stop" % pid, interval=0.002)


def thaw(pid):
    """Resumes a process freeze() stopped."""
    os.kill(pid, signal.SIGCONT)


def one_event(j, event, gid):
    """The one audit line `event` of grant gid (asserts there is exactly one)."""
    ev = j.audit_events(event, gid)
    eq(len(ev), 1, "%s events of %s" % (event, gid))
    return ev[0]


def wait_state(j, g, state, slack):
    """Waits until grant g is in state, at most slack seconds past its
    expires_at (at least 1 s)."""
    wait_until(lambda: j.show(g["grant_id"])["state"] == state,
               max(1, parse_time(g["expires_at"]) + slack - time.time()),
               "grant %s to become %s" % (g["grant_id"], state))


def in_parallel(fn, items, timeout=60):
    """Calls fn(item) for every item, each in a thread of its own, all
    started before any is waited for; returns {item: fn's result} (an item
    whose call raised or did not return within timeout is missing)."""
    out = {}

    def run(item):
        out[item] = fn(item)
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in items]
    for t in threads:
        t.start()
    deadline = time.time() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    return dict(out)


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what or "value", want, got))


def refused(answer, code, what=""):
    """Asserts that answer is a refusal with error code `code`."""
    if answer.get("ok") is not False or answer.get("error", {}).get("code") != code:
        raise AssertionError("%s: expected refusal %r, got %r" % (what or "answer", code, answer))
    if not isinstance(answer["error"].get("message"), str):
        raise AssertionError("refusal without a message: %r" % (answer,))


class Env:
    """A slapd and a jitd wired to it, for one test.

    Keyword arguments go to Jitd (groups, clients, directory, top, mech,
    public); slapd_kw to Slapd (users, groups, overlays). start=False leaves
    jitd stopped (for config tests). On an exception the jitd stderr and the
    slapd log tail are printed, then everything is stopped.
    """

    def __init__(self, start=True, slapd_kw=None, **jitd_kw):
        self.slapd = Slapd(**(slapd_kw or {}))
        self.jitd = None
        self._start = start
        self._jitd_kw = jitd_kw

    def __enter__(self):
        try:
            self.slapd.start()
            self.jitd = Jitd(self.slapd, **self._jitd_kw)
            if self._start:
                self.jitd.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        problem = None
        if exc_type is None and self.jitd is not None:
            problem = self.check_clean_exit()
        if (exc_type is not None and not issubclass(exc_type, Skip)) or problem:
            self.dump()
        if self.jitd is not None:
            self.jitd.close()
        self.slapd.close()
        if problem:
            raise AssertionError(problem)
        return False

    def check_clean_exit(self):
        """At the end of a passing test: jitd must exit 0 on SIGTERM, and
        its stderr must hold no sanitizer report."""
        j = self.jitd
        if j.running():
            try:
                rc = j.stop()
            except RuntimeError as e:
                return str(e)
            if rc != 0:
                return "jitd exited with status %r on SIGTERM" % rc
        text = j.stderr_tail(100000)
        for marker in SANITIZER_MARKERS:
            if marker in text:
                return "jitd stderr holds a sanitizer report (%r)" % marker
        return None

    def dump(self):
        """Collects what helps explain a failure (printed after the
        traceback by runone.py, or at once when run some other way)."""
        parts = []
        if self.jitd is not None:
            parts.append("--- jitd stderr (tail):\n%s" % self.jitd.stderr_tail())
            try:
                with open(self.jitd.audit_log) as f:
                    parts.append("--- audit log (tail):\n%s" % "".join(f.readlines()[-20:]))
            except OSError:
                pass
            try:
                with open(self.jitd.conf) as f:
                    parts.append("--- jitd config (%s):\n%s" % (self.jitd.conf, f.read()))
            except OSError:
                pass
        parts.append("--- slapd log (tail):\n%s" % self.slapd.log_tail(15))
        DIAGNOSTICS.append("\n".join(parts))

    # -- shortcuts --------------------------------------------------------
    def user_dn(self, u):
        return self.slapd.user_dn(u)

    def is_member(self, group, value):
        return self.slapd.is_member(group, value)

    def wait_removed(self, group, value, deadline_epoch, what=None):
        """Polls the directory until value is gone from group; fails once
        deadline_epoch has passed with the member still there. Returns the
        time it was seen gone."""
        while True:
            if not self.slapd.is_member(group, value):
                return time.time()
            if time.time() > deadline_epoch:
                raise AssertionError(
                    "%s still in %s %.1fs after the deadline (%s); members now: %r"
                    % (value, group, time.time() - deadline_epoch, what or "removal",
                       sorted(self.slapd.members(group))))
            time.sleep(0.1)

    def stays_member(self, group, value, until, limit, what):
        """Polls the directory until the epoch `until` (a little before
        `limit`): value must be in group. Only an answer that came back
        before `limit` counts against it: on a slow machine a search sent
        before `until` may be served after a removal at `limit`."""
        while time.time() < until:
            if not self.slapd.is_member(group, value) and time.time() < limit:
                raise AssertionError("%s: %s left %s %.1fs before %d"
                                     % (what, value, group, limit - time.time(), limit))
            time.sleep(0.2)

    def grant_and_check(self, user, group, duration, value=None, **kw):
        g = self.jitd.must_grant(user, group, duration, **kw)
        v = value or self.user_dn(user)
        if not self.slapd.is_member(group, v):
            raise AssertionError("grant answered ok but %s is not in %s: %r"
                                 % (v, group, sorted(self.slapd.members(group))))
        return g


def expires_epoch(grant):
    return parse_time(grant["expires_at"])

