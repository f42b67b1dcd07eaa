"""Crash-safety driver: random load, kills, restarts, and the invariants.

Used by tests/integration/test_crash.py (a fixed number of trials) and by
tests/soak (for N minutes). One CrashTest owns an Env (a real slapd and a
jitd wired to it). Each trial:

  1. starts jitd, possibly with crash points armed (JITD_FAULT, see
     src/fault.h) — recovery of the previous crash runs under them too;
  2. checks through the protocol (show) that the grants touched in the
     previous trial are still there as acknowledged;
  3. drives random grants, completes, revokes, extends and shows from
     several client threads, and sometimes restarts slapd meanwhile;
  4. ends with jitd dead: killed with SIGKILL from outside at a random
     moment, or killed by itself at an armed crash point;
  5. with jitd dead (nothing can move), reads the store (SQLite, read-only)
     and the directory and checks every invariant below.

At the end: jitd runs without faults and without load until every grant is
over, is killed once more for a last frozen check, and the audit log's hash
chain is verified from its first line to its last.

Invariants (any breach is a violation, printed with its evidence):
  I1 every grant acknowledged to a client (an answer showing it `active`)
     still exists, was never rolled back (`failed`), ended only by its expiry
     (at or after expires_at) or by a complete/revoke a client sent, keeps
     every extension acknowledged (expires_at never below an acknowledged
     value, never above what was asked for), and never moves back from a
     state an answer showed;
  I2 a membership that jitd added does not outlive its grant by more than
     the retry window: every member that was not there before the test
     belongs to a pending/active/ending grant of that (group, member), and
     no such membership, nor any `active` grant, is still there after
     WINDOW seconds of jitd uptime (with the directory up) past its expiry;
     every `active` grant's membership is in the directory;
  I3 no standing membership (one present before the test) was removed;
  I4 no grant stays `pending` or `ending` for WINDOW seconds of uptime;
  I5 the audit log's hash chain is intact, and it is evidence for what
     happened: every acknowledged grant has its `granted` line, every grant
     that ended after a `granted` line has a line for its final state, and
     the log never understates a privilege (the latest expires_at the log
     gives a grant, in `granted` or `extended`, is not before the store's).

Uptime is counted only while jitd ran (from ready to its death, a lower
bound) and the directory was up: jitd cannot remove anything while either
is down, and removals after a restart are checked against that.

Standard library only.
"""

import hashlib
import json
import os
import random
import re
import sqlite3
import subprocess
import threading
import time

from jitd import binary, parse_time
from slapd import norm_dn

# The crash points of src/fault.c (a name missing there makes jitd refuse
# to start, so this list cannot silently drift).
FAULT_POINTS = [
    "grant.before_pending",
    "grant.after_pending",
    "grant.after_dir_add",
    "grant.after_audit_granted",
    "grant.after_active",
    "grant.after_add_failed",
    "grant.before_ending",
    "grant.after_ending",
    "grant.after_dir_remove",
    "grant.after_final",
    "grant.after_final_audit",
    "grant.after_retry",
    "engine.after_recover",
    "engine.after_extend_audit",
    "engine.after_extend",
    "audit.torn_write",
]

RETRY_MAX = 2                  # retry_max_interval in the test config (s)
GRACE = 1                      # replication_grace in the test config (s)
# The retry window: the longest a removal may wait once due (the capped
# retry interval, then the check after replication_grace that follows a
# "not there" for an add whose answer was lost), plus the scheduler's tick,
# whole-second expiry times and a loaded two-core CI machine running
# sanitizer builds.
WINDOW = RETRY_MAX + GRACE + 4

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "oscar"]
GROUPS = ["admins", "dba", "ops", "unixops"]
BROKEN = "broken"              # a posixGroup configured with member_attr member:
                               # every add is refused (exercises the failure path)
# Members present before the test: standing, must never be removed.
SLAPD_GROUPS = {
    "admins": ("gon", ["placeholder", "@alice"]),
    "dba": ("gon", ["placeholder"]),
    "ops": ("gon", ["placeholder", "@dave"]),
    "unixops": ("posix", ["erin"]),
    BROKEN: ("posix", []),
}

STATE_RANK = {"pending": 0, "active": 1, "ending": 2, "expired": 3, "completed": 3,
              "revoked": 3, "failed": 3}
FINAL = ("expired", "completed", "revoked", "failed")
FAULT_RE = re.compile(r"^jitd: fault injected at (\S+)$", re.M)


def fault_build():
    """True if the jitd under test was configured --enable-fault-injection."""
    r = subprocess.run([binary("jitd"), "-V"], capture_output=True, text=True, timeout=10)
    return "fault injection" in r.stdout


def env_kwargs():
    """Keyword arguments for jittest.Env: the directory of a crash test,
    jitd not started (CrashTest configures and starts it)."""
    return {"slapd_kw": {"users": USERS, "groups": dict(SLAPD_GROUPS)}, "start": False}


def jitd_groups(jitd):
    gs = [jitd.group_entry(g, max_duration="1h", default_duration="2s")
          for g in ("admins", "dba", "ops")]
    gs.append(jitd.group_entry("unixops", member_attr="memberUid", max_duration="1h"))
    gs.append(jitd.group_entry(BROKEN, member_attr="member", max_duration="1h"))
    return gs


class Grant:
    """What clients were told about one grant."""

    def __init__(self, gid, user, group):
        self.id = gid
        self.user = user
        self.group = group
        self.seen_active = False     # an answer showed it active: acknowledged
        self.floor = -1              # highest STATE_RANK an answer showed
        self.final = None            # final state an answer showed
        self.ending_end = None       # end_state of an `ending` answer
        self.exp_lo = None           # highest expires_at an answer showed
        self.exp_hi = None           # first expires_at + every extension sent
        self.ends_sent = set()       # "completed" / "revoked" requested
        self.extends = 0
        self.touched = 0             # trial that last did something with it


class Stats:
    def __init__(self):
        self.trials = 0
        self.kills_external = 0
        self.faults = 0
        self.faults_by_point = {}
        self.startup_deaths = 0
        self.outages = 0
        self.requests = 0
        self.grants_acked = 0
        self.grants_refused = 0
        self.unanswered = 0
        self.completes = 0
        self.revokes = 0
        self.extends = 0
        self.retries = 0
        self.torn_lines = 0          # audit lines torn by a crash (each with its record)
        self.final_states = {}       # store rows by final state, at the end
        self.violations = []

    def summary(self):
        finals = self.final_states
        return ("%d trials: %d SIGKILLs from outside, %d faults injected at %d crash points "
                "(%d during start-up), %d directory restarts; %d requests, %d grants "
                "acknowledged, %d refused, %d unanswered (crash), %d completes, %d revokes, "
                "%d extends, %d duplicate retries, %d torn audit lines; final states %s; "
                "%d violations"
                % (self.trials, self.kills_external, self.faults, len(self.faults_by_point),
                   self.startup_deaths, self.outages, self.requests, self.grants_acked,
                   self.grants_refused, self.unanswered, self.completes, self.revokes,
                   self.extends, self.retries, self.torn_lines,
                   ", ".join("%s=%d" % kv for kv in sorted(finals.items())) or "none",
                   len(self.violations)))


class CrashTest:
    def __init__(self, env, seed=None, clients=3, faults=True, log=print, name="crash",
                 mix=None, outage_rate=0.1, verbose=False, think=0.08):
        self.e = env
        self.j = env.jitd
        self.s = env.slapd
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.nclients = clients
        self.faults = faults
        # Shares of trials: SIGKILL from outside, every point armed at a
        # low probability, one point armed (round robin). outage_rate: the
        # share of trials in which slapd is killed and restarted meanwhile.
        self.mix = mix or {"kill": 0.3, "any": 0.1, "point": 0.6}
        self.outage_rate = outage_rate
        self.verbose = verbose
        # Each client waits up to `think` seconds between requests: enough
        # load for contention on a pair, little enough that pairs also fall
        # empty (so that adds and removals happen, not only kept_other_grant).
        self.think = think
        self.recent = []             # open grants touched in the last trials
        self.unsettled = set()       # acknowledged ids not yet seen final and consistent
        self.last_check = 0.0
        self.reported = set()
        self.log = log
        self.name = name
        self.stats = Stats()
        self.lock = threading.Lock()
        self.grants = {}             # id -> Grant
        self.unacked = []            # grant requests without an answer: retried later
        self.trial = 0
        self.up = []                 # [start, end] intervals jitd ran
        self.slapd_down = []         # [start, end] intervals slapd was down
        self.first_seen = {}         # (id, state) -> time first seen pending/ending
        self.last_ok = 0.0
        self.stderr_pos = 0
        self.standing = set()
        self.point_cycle = []

    # -- set-up ------------------------------------------------------------
    def prepare(self):
        self.j.config["groups"] = jitd_groups(self.j)
        self.j.config["retry_min_interval"] = 1
        self.j.config["retry_max_interval"] = RETRY_MAX
        self.j.config["directories"][0]["replication_grace"] = GRACE
        self.j.config["log_level"] = "info"
        self.j.write_config()
        for g in GROUPS + [BROKEN]:
            for m in self.s.members(g):
                self.standing.add((g, self.norm(m)))

    @staticmethod
    def norm(v):
        return norm_dn(v) if "=" in v else v

    # -- time accounting -----------------------------------------------------
    def uptime(self, a, b):
        """Seconds in [a, b] during which jitd ran and slapd was up. The
        intervals are in time order: walk back from the newest."""
        total = 0.0
        for (s, e) in reversed(self.up):
            if e <= a:
                break
            lo, hi = max(s, a), min(e, b)
            if hi <= lo:
                continue
            total += hi - lo
            for (ds, de) in reversed(self.slapd_down):
                if de <= lo:
                    break
                dlo, dhi = max(ds, lo), min(de, hi)
                if dhi > dlo:
                    total -= dhi - dlo
        return total

    # -- protocol ------------------------------------------------------------
    def call(self, obj, timeout=15):
        """One request; the answer, or None if jitd did not answer (dead)."""
        with self.lock:
            self.stats.requests += 1
        try:
            a = self.j.request(obj, timeout=timeout)
        except (OSError, ValueError, ConnectionError):
            return None
        with self.lock:
            self.last_ok = max(self.last_ok, time.time())
        return a

    def observe(self, gj, user=None, group=None):
        """Records what an answer showed about a grant."""
        gid = gj.get("grant_id")
        if not gid:
            return None
        with self.lock:
            g = self.grants.get(gid)
            if g is None:
                g = self.grants[gid] = Grant(gid, user or gj.get("user"), group or gj.get("group"))
            st = gj.get("state")
            exp = parse_time(gj["expires_at"])
            if g.exp_hi is None:
                g.exp_hi = exp
            g.exp_lo = exp if g.exp_lo is None else max(g.exp_lo, exp)
            g.exp_hi = max(g.exp_hi, g.exp_lo)
            if st == "active" and not g.seen_active:
                g.seen_active = True
                self.unsettled.add(gid)
                self.stats.grants_acked += 1
            g.floor = max(g.floor, STATE_RANK.get(st, -1))
            if st in FINAL:
                g.final = st
            if st == "ending":
                g.ending_end = gj.get("end_state")
            g.touched = self.trial
        return g

    # -- load ------------------------------------------------------------------
    def pick_grant(self, rng, want_active=False):
        with self.lock:
            cands = [g for g in self.recent
                     if g.final is None and (g.seen_active or not want_active)]
            if not cands:
                return None
            return rng.choice(cands)

    def client(self, k, rng, stop, dead, broken_weight):
        n = 0
        while not stop.is_set():
            n += 1
            if self.think:
                time.sleep(rng.uniform(0, self.think))
            r = rng.random()
            a = None
            if r < 0.45 or (r < 0.5 and not self.unacked):
                group = BROKEN if rng.random() < broken_weight else rng.choice(GROUPS)
                user = rng.choice(USERS)
                req = {"op": "grant", "user": user, "group": group,
                       "duration": rng.randint(1, 4),
                       "request_id": "%s-t%d-c%d-%d" % (self.name, self.trial, k, n)}
                a = self.do_grant(req)
            elif r < 0.5:
                with self.lock:
                    req = self.unacked.pop(rng.randrange(len(self.unacked))) \
                        if self.unacked else None
                if req is not None:
                    with self.lock:
                        self.stats.retries += 1
                    a = self.do_grant(req)
            elif r < 0.7:
                g = self.pick_grant(rng)
                if g is not None:
                    kind = "complete" if rng.random() < 0.65 else "revoke"
                    with self.lock:
                        g.ends_sent.add("completed" if kind == "complete" else "revoked")
                        if kind == "complete":
                            self.stats.completes += 1
                        else:
                            self.stats.revokes += 1
                    a = self.call({"op": kind, "grant_id": g.id})
                    if a is not None and a.get("ok"):
                        self.observe(a["grant"])
            elif r < 0.9:
                g = self.pick_grant(rng, want_active=True)
                if g is not None and g.extends < 2:
                    d = rng.randint(1, 3)
                    with self.lock:
                        g.extends += 1
                        g.exp_hi += d
                        self.stats.extends += 1
                    a = self.call({"op": "extend", "grant_id": g.id, "duration": d})
                    if a is not None and a.get("ok"):
                        self.observe(a["grant"])
            else:
                g = self.pick_grant(rng)
                if g is not None:
                    a = self.call({"op": "show", "grant_id": g.id})
                    if a is not None and a.get("ok"):
                        self.observe(a["grant"])
            if a is None and not self.j.running():
                dead.set()
                return

    def do_grant(self, req):
        a = self.call(req)
        if a is None:
            with self.lock:
                self.stats.unanswered += 1
                self.unacked.append(req)
            return None
        if a.get("ok"):
            g = self.observe(a["grant"], req["user"], req["group"])
            with self.lock:
                if g is not None and g not in self.recent:
                    self.recent.append(g)
            if req["group"] == BROKEN and a["grant"].get("state") == "active":
                self.violation("I1", "a grant in the broken group is active: %r" % (a,))
        else:
            with self.lock:
                self.stats.grants_refused += 1
        return a

    # -- one trial -------------------------------------------------------------
    def plan(self):
        """-> (JITD_FAULT spec or None, kill-after seconds, outage?, broken weight)."""
        rng = self.rng
        outage = rng.random() < self.outage_rate
        r = rng.random()
        if not self.faults or r < self.mix["kill"]:
            return None, rng.uniform(0.2, 1.6), outage, 0.03
        if r < self.mix["kill"] + self.mix["any"]:
            return "*:0.03", 2.5, outage, 0.05
        if not self.point_cycle:
            self.point_cycle = list(FAULT_POINTS)
            rng.shuffle(self.point_cycle)
        p = self.point_cycle.pop()
        if p == "engine.after_recover":
            return p + ":@1", 2.5, False, 0.03
        if p == "grant.after_add_failed":
            return p + ":@%d" % rng.randint(1, 3), 2.5, False, 0.3
        if p == "grant.after_retry":
            return p + ":@%d" % rng.randint(1, 2), 3.0, True, 0.03
        if p in ("grant.after_active", "grant.after_pending", "grant.before_pending",
                 "audit.torn_write"):
            return p + ":0.1", 2.5, outage, 0.03
        return p + ":0.25", 2.5, outage, 0.03

    def start_jitd(self, spec):
        env = {"JITD_FAULT": spec or "", "JITD_FAULT_SEED": str(self.rng.randrange(1 << 30))}
        try:
            self.j.start(env=env, timeout=30)
        except RuntimeError:
            if self.j.proc is not None and self.j.proc.poll() is not None:
                self.j.proc = None
                return False         # died at start-up (a crash point in recovery)
            raise
        t = time.time()
        self.up.append([t, t])
        with self.lock:
            self.last_ok = t
        return True

    def new_faults(self):
        """Crash-point messages jitd wrote since the last call."""
        try:
            with open(self.j.stderr_path, "rb") as f:
                f.seek(self.stderr_pos)
                data = f.read()
                self.stderr_pos = f.tell()
        except OSError:
            return []
        return FAULT_RE.findall(data.decode("utf-8", "replace"))

    def record_death(self, external_at=None):
        if self.up and self.up[-1][1] == self.up[-1][0]:
            self.up[-1][1] = external_at if external_at else max(self.up[-1][0], self.last_ok)
        for p in self.new_faults():
            self.stats.faults += 1
            self.stats.faults_by_point[p] = self.stats.faults_by_point.get(p, 0) + 1

    def recheck_touched(self):
        """After a restart: the grants touched last trial, through the protocol."""
        with self.lock:
            ids = [g.id for g in self.grants.values()
                   if g.touched >= self.trial - 1 and g.seen_active][:40]
        for gid in ids:
            a = self.call({"op": "show", "grant_id": gid}, timeout=10)
            if a is None:
                return
            if not a.get("ok"):
                self.violation("I1", "acknowledged grant %s: show answered %r" % (gid, a))
                continue
            g = self.grants[gid]
            before = (g.floor, g.final)
            self.observe(a["grant"])
            if before[1] and a["grant"]["state"] != before[1]:
                self.violation("I1", "grant %s was %s, now %s" % (gid, before[1],
                                                                  a["grant"]["state"]))

    def outage(self, at):
        time.sleep(at)
        t0 = time.time()
        self.s.kill()
        time.sleep(self.rng.uniform(0.3, 1.0))
        self.s.start()
        self.slapd_down.append([t0, time.time()])
        self.stats.outages += 1

    def run_trial(self):
        self.trial += 1
        self.stats.trials += 1
        with self.lock:
            self.recent = [g for g in self.recent
                           if g.final is None and g.touched >= self.trial - 3]
        spec, kill_after, outage, broken_weight = self.plan()
        faults0, t0 = self.stats.faults, time.time()
        if not self.start_jitd(spec):
            self.stats.startup_deaths += 1
            self.record_death()
            self.frozen_check()
            if self.verbose:
                self.log("trial %d: JITD_FAULT=%s: died at start-up" % (self.trial, spec))
            return
        self.recheck_touched()
        stop, dead = threading.Event(), threading.Event()
        threads = []
        for k in range(self.nclients):
            crng = random.Random(self.rng.randrange(1 << 30))
            t = threading.Thread(target=self.client, args=(k, crng, stop, dead, broken_weight),
                                 daemon=True)
            t.start()
            threads.append(t)
        if outage:
            ot = threading.Thread(target=self.outage, args=(self.rng.uniform(0.1, 0.6),),
                                  daemon=True)
            ot.start()
        else:
            ot = None
        deadline = time.time() + kill_after
        while time.time() < deadline and self.j.running():
            time.sleep(0.02)
        external = None
        if self.j.running():
            external = time.time()
            self.j.kill()
            self.stats.kills_external += 1
        else:
            self.j.kill()            # reaps it
        stop.set()
        for t in threads:
            t.join(30)
        if ot is not None:
            ot.join(30)
        if not self.s.running():
            self.s.start()
        self.record_death(external)
        self.frozen_check()
        if self.verbose:
            self.log("trial %d: JITD_FAULT=%s outage=%s: %s after %.2fs"
                     % (self.trial, spec, outage, "killed from outside" if external
                        else "fault" if self.stats.faults > faults0 else "died (?)",
                        time.time() - t0))

    # -- invariants --------------------------------------------------------------
    def violation(self, inv, text, key=None):
        """Records a violation; the same text (or key) is reported once (a
        leaked membership would otherwise repeat at every later check)."""
        with self.lock:
            if (key or text) in self.reported:
                return
            self.reported.add(key or text)
            self.stats.violations.append("%s (trial %d): %s" % (inv, self.trial, text))
        self.log("VIOLATION %s (trial %d): %s" % (inv, self.trial, text))

    def read_store(self, since=None, ids=()):
        """Rows of the store: all, or (since given) the live ones, those that
        ended at or after `since`, and those named in ids."""
        path = os.path.join(self.j.state_dir, "jitd.db")
        if not os.path.exists(path):
            # jitd died at its first start before it made the store: it
            # holds nothing (every acknowledged grant is then reported
            # missing by check_acked, as it should be)
            return {}
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            if since is None:
                cur = db.execute("SELECT * FROM grants")
            else:
                cur = db.execute("SELECT * FROM grants WHERE state IN ('pending', 'active', "
                                 "'ending') OR ended_at >= ?", (int(since),))
            rows = {r["id"]: dict(r) for r in cur}
            for gid in ids:
                if gid not in rows:
                    for r in db.execute("SELECT * FROM grants WHERE id = ?", (gid,)):
                        rows[gid] = dict(r)
            return rows
        finally:
            db.close()

    def read_members(self):
        out = {}
        for dn, attrs in self.s.search(self.s.groups_base, "(objectClass=*)",
                                       ["member", "memberUid"], scope="one"):
            name = dn.split(",")[0].split("=", 1)[1]
            out[name] = set(self.norm(v) for v in attrs.get("member", []) +
                            attrs.get("memberuid", []))
        return out

    def frozen_check(self, final=False):
        """jitd is dead: the store and the directory cannot move."""
        now = time.time()
        if final:
            with self.lock:
                self.unsettled = set(g.id for g in self.grants.values() if g.seen_active)
            rows = self.read_store()
        else:
            # Rows that ended before the previous check were checked then.
            with self.lock:
                todo = list(self.unsettled)
            rows = self.read_store(since=self.last_check - 5, ids=todo)
        self.last_check = now
        members = self.read_members()
        self.check_acked(rows, now)
        self.check_rows(rows, members, now)
        self.check_members(rows, members, now)
        if final:
            for r in rows.values():
                if r["state"] not in FINAL:
                    self.violation("I4", "grant %s still %s at the end" % (r["id"], r["state"]))
            extra = set((g, m) for g, ms in members.items() for m in ms) - self.standing
            if extra:
                self.violation("I2", "memberships left at the end: %r" % sorted(extra))

    def check_acked(self, rows, now):
        with self.lock:
            todo = [self.grants[gid] for gid in self.unsettled]
        for g in todo:
            r = rows.get(g.id)
            if r is None:
                self.violation("I1", "acknowledged grant %s (%s in %s) is gone from the store"
                               % (g.id, g.user, g.group))
                continue
            st, end = r["state"], r["end_state"]
            kind = st if st in FINAL else (end if st == "ending" else None)
            if kind == "failed":
                self.violation("I1", "acknowledged grant %s was rolled back (%s)" % (g.id, st))
            if kind in ("completed", "revoked") and kind not in g.ends_sent:
                self.violation("I1", "grant %s ended as %s but no client asked" % (g.id, kind))
            if kind == "expired":
                when = r["ended_at"] if st == "expired" else now
                if when < r["expires_at"]:
                    self.violation("I1", "grant %s ended as expired at %d before its expiry "
                                   "%d (an acknowledged extension lost?)"
                                   % (g.id, when, r["expires_at"]))
            if not (g.exp_lo <= r["expires_at"] <= g.exp_hi):
                self.violation("I1", "grant %s expires_at %d outside [%d, %d] (acknowledged, "
                               "asked for)" % (g.id, r["expires_at"], g.exp_lo, g.exp_hi))
            if STATE_RANK[st] < g.floor:
                self.violation("I1", "grant %s is %s after an answer showed rank %d"
                               % (g.id, st, g.floor))
            if g.final and st != g.final:
                self.violation("I1", "grant %s answered %s, store says %s" % (g.id, g.final, st))
            if g.ending_end and kind not in (None, g.ending_end):
                self.violation("I1", "grant %s answered ending(%s), store says %s(%s)"
                               % (g.id, g.ending_end, st, end))
            if st in FINAL and g.touched < self.trial:
                with self.lock:
                    self.unsettled.discard(g.id)

    def check_rows(self, rows, members, now):
        for r in rows.values():
            st = r["state"]
            value = self.norm(r["member_value"])
            if st == "active":
                if value not in members.get(r["group_name"], set()):
                    self.violation("I2", "grant %s is active but %s is not in %s"
                                   % (r["id"], value, r["group_name"]))
                late = self.uptime(r["expires_at"], now)
                if late > WINDOW:
                    self.violation("I2", "grant %s still active %.1fs of uptime after its "
                                   "expiry" % (r["id"], late), key=("late", r["id"]))
            if st in ("pending", "ending"):
                t0 = self.first_seen.setdefault((r["id"], st), now)
                stuck = self.uptime(t0, now)
                if stuck > WINDOW:
                    self.violation("I4", "grant %s stuck %s for %.1fs of uptime (attempts %d, "
                                   "last error %r)" % (r["id"], st, stuck, r["attempts"],
                                                       r["last_error"]),
                                   key=("stuck", r["id"], st))

    def check_members(self, rows, members, now):
        live = {}
        for r in rows.values():
            if r["state"] in ("pending", "active", "ending"):
                key = (r["group_name"], self.norm(r["member_value"]))
                live.setdefault(key, []).append(r)
        for key in self.standing:
            if key[1] not in members.get(key[0], set()):
                self.violation("I3", "standing member %s was removed from %s" % (key[1], key[0]))
        for g, ms in members.items():
            for m in ms:
                if (g, m) in self.standing:
                    continue
                rs = live.get((g, m))
                if not rs:
                    self.violation("I2", "%s is in %s without a live grant (leaked)" % (m, g))
                    continue
                until = max(now if r["state"] != "active" else r["expires_at"] for r in rs)
                late = self.uptime(until, now)
                if late > WINDOW:
                    self.violation("I2", "%s still in %s %.1fs of uptime after its last grant "
                                   "expired" % (m, g, late), key=("member-late", g, m))

    def verify_audit_chain(self):
        """I5: the chain, line by line. A line without a chain is accepted
        only as a line torn by a crash: the next line must be jitd's
        torn_line record of it (its length and SHA-256), continuing the
        chain from the line before it. Returns (lines, {grant id: what the
        log says about it})."""
        prev_hash, prev_seq, n = "0" * 64, None, 0
        said = {}
        held = None                  # (line number, the chainless line)

        def unrecorded(torn):
            self.violation("I5", "audit line %d has no chain and no torn_line record: %r"
                           % (torn[0], torn[1][:120]))
        tail = re.compile(rb',"prev":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"}$')
        with open(self.j.audit_log, "rb") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip(b"\n")
                m = tail.search(line)
                if not m:
                    if held:
                        unrecorded(held)
                    held = (n, line)
                    continue
                content = line[:m.start()]
                calc = hashlib.sha256(m.group(1) + content).hexdigest().encode()
                ev = json.loads(line)
                seq = ev["seq"]
                if held:
                    torn = held[1]
                    if not (ev.get("event") == "torn_line" and
                            ev.get("torn_bytes") == len(torn) and
                            ev.get("torn_sha256") == hashlib.sha256(torn).hexdigest()):
                        unrecorded(held)
                    else:
                        self.stats.torn_lines += 1
                    held = None
                elif ev.get("event") == "torn_line":
                    self.violation("I5", "audit line %d: a torn_line record after a whole "
                                   "line" % n)
                gid = ev.get("grant_id")
                if gid and ev.get("event"):
                    d = said.setdefault(gid, {"events": set(), "exp": None})
                    d["events"].add(ev["event"])
                    if ev["event"] in ("granted", "extended") and ev.get("expires_at"):
                        exp = parse_time(ev["expires_at"])
                        d["exp"] = exp if d["exp"] is None else max(d["exp"], exp)
                if calc != m.group(2):
                    self.violation("I5", "audit line %d: hash does not match" % n)
                if m.group(1).decode() != prev_hash or (prev_seq is not None
                                                       and seq != prev_seq + 1):
                    self.violation("I5", "audit line %d (seq %d): chain broken" % (n, seq))
                prev_hash, prev_seq = m.group(2).decode(), seq
        if held:
            unrecorded(held)
        return n, said

    def check_evidence(self, rows, said):
        """I5: the log against the store, at the end."""
        for g in self.grants.values():
            if g.seen_active and "granted" not in said.get(g.id, {}).get("events", ()):
                self.violation("I5", "acknowledged grant %s has no granted line" % g.id)
        for r in rows.values():
            d = said.get(r["id"])
            if not d or "granted" not in d["events"]:
                continue
            if r["state"] in FINAL and r["state"] not in d["events"]:
                self.violation("I5", "grant %s is %s but the log has no %s line (events %s)"
                               % (r["id"], r["state"], r["state"], sorted(d["events"])))
            if d["exp"] is None or d["exp"] < r["expires_at"]:
                self.violation("I5", "grant %s runs until %d but the log says %r: an "
                               "extension without evidence" % (r["id"], r["expires_at"],
                                                               d["exp"]))

    # -- the whole run -------------------------------------------------------------
    def settle(self):
        """No faults, no load: every grant runs out; then the last frozen check."""
        self.trial += 1
        if not self.start_jitd(None):
            raise AssertionError("jitd died at start-up without faults armed")
        self.recheck_touched()
        with self.lock:
            for g in self.grants.values():
                g.touched = self.trial
        deadline = time.time() + 60
        while time.time() < deadline:
            a = self.call({"op": "list", "limit": 10000})
            if a is None:
                raise AssertionError("jitd died while settling:\n" + self.j.stderr_tail())
            if a.get("ok") and a["count"] == 0:
                break
            time.sleep(0.5)
        self.j.kill()
        self.record_death(time.time())
        self.frozen_check(final=True)
        rows = self.read_store()
        # The kill above may itself have torn a line: a start and a clean
        # stop record it, and the chain is read with jitd stopped.
        self.j.start()
        self.j.stop()
        lines, said = self.verify_audit_chain()
        self.check_evidence(rows, said)
        for r in rows.values():
            self.stats.final_states[r["state"]] = self.stats.final_states.get(r["state"], 0) + 1
        # Left running without faults: the caller's Env stops it with SIGTERM
        # and checks that it exits cleanly.
        self.j.start()
        return lines

    def run(self, trials=None, seconds=None, progress_seconds=0):
        """Runs trials (a number, or until seconds pass), then settles.
        Returns the Stats; the caller fails the test on violations."""
        self.prepare()
        t_start = time.time()
        t_end = t_start + seconds if seconds else None
        next_progress = t_start + progress_seconds
        while True:
            if trials is not None and self.stats.trials >= trials:
                break
            if t_end is not None and time.time() >= t_end:
                break
            self.run_trial()
            if progress_seconds and time.time() >= next_progress:
                next_progress += progress_seconds
                self.log("[%5.0fs] %s" % (time.time() - t_start, self.stats.summary()))
        lines = self.settle()
        self.log("%s (seed %d): %s; audit chain of %d lines verified"
                 % (self.name, self.seed, self.stats.summary(), lines))
        if self.stats.faults_by_point:
            self.log("faults by crash point: " + ", ".join(
                "%s=%d" % kv for kv in sorted(self.stats.faults_by_point.items())))
        return self.stats
