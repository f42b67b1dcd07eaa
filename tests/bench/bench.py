#!/usr/bin/env python3
"""jitd's benchmark (`make bench`; docs/performance.md says what and how).

usage: tests/bench/bench.py --srcdir S --builddir B [--smoke] [--json FILE]
         [--seconds S] [--warmup S] [--conns N] [--clients 1,8,32]
         [--users-per-client N] [--revoke-grants K] [--revoke-groups N]
         [--scale-grants N] [--connections N] [--phases baseline,jitd,revoke,scale]
         [--uri URI --group-dn DN --member-prefix P [--member-suffix S]
          [--bind-dn DN --bind-pw-file F]]

One run starts a throwaway slapd (tests/lib/slapd.py) and jitd
(tests/lib/jitd.py), then measures:
  baseline  a synchronous libldap add/delete-member loop, 1 and N connections;
            and the directory's work of a grant + complete without jitd (the same
            searches and modifies, libldap), 1 and N connections
  jitd      grant + complete pairs through the socket at 1, 8, 32 clients
  revoke    K grants expiring in the same second: lag until gone from the directory
  scale     a store of 1,000,000 active grants: restart-to-ready, RSS, list, next due
and prints a table with the issue's targets (met/missed) and writes a JSON
summary. The load comes from tests/bench/benchload (C, threads); this
script only orchestrates. Standard library only. The benchmark is not a
pass/fail test: it exits 0 when every phase ran without errors, 1 otherwise.
"""

import argparse
import datetime
import json
import math
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

TARGETS = {
    "throughput_ratio_min": 0.9,        # jitd modifies/s at >= 8 clients / baseline N-conn
    "added_p50_ms_max": 0.5,            # grant RTT - baseline modify latency
    "added_p99_ms_max": 2.0,
    "drain_ratio_max": 1.1,             # drain time / (K / baseline N-conn rate)
    "restart_s_max": 1.0,
    "rss_mb_max": 64.0,
}


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(description="jitd benchmark (docs/performance.md)")
    p.add_argument("--srcdir", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    p.add_argument("--builddir", default=os.getcwd())
    p.add_argument("--json", help="summary file (default BUILDDIR/bench-result.json)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny counts, about 1 s per phase (for the integration test)")
    p.add_argument("--seconds", type=float, help="measuring time per level (default 10)")
    p.add_argument("--warmup", type=float, help="warm-up per level (default 2)")
    p.add_argument("--conns", type=int, default=8, help="baseline connections (default 8)")
    p.add_argument("--clients", default="1,8,32", help="jitd client levels (default 1,8,32)")
    p.add_argument("--users-per-client", type=int, default=4)
    p.add_argument("--revoke-grants", type=int, help="K (default 10000)")
    p.add_argument("--revoke-groups", type=int, default=20)
    p.add_argument("--scale-grants", type=int, help="store size (default 1000000)")
    p.add_argument("--connections", type=int,
                   help="jitd's directory `connections` (default: jitd's own default)")
    p.add_argument("--phases", default="baseline,jitd,revoke,scale")
    p.add_argument("--poll-ms", type=float, default=50, help="revocation poll period")
    p.add_argument("--uri", help="baseline against this directory instead (baseline only)")
    p.add_argument("--group-dn", help="with --uri: the group to modify")
    p.add_argument("--member-prefix", help="with --uri: member value = PREFIX<i>SUFFIX")
    p.add_argument("--member-suffix", default="")
    p.add_argument("--bind-dn", help="with --uri: simple bind (default SASL EXTERNAL)")
    p.add_argument("--bind-pw-file")
    a = p.parse_args(argv)
    a.seconds = a.seconds if a.seconds is not None else (1.0 if a.smoke else 10.0)
    a.warmup = a.warmup if a.warmup is not None else (0.3 if a.smoke else 2.0)
    a.revoke_grants = a.revoke_grants or (200 if a.smoke else 10000)
    a.scale_grants = a.scale_grants or (2000 if a.smoke else 1000000)
    if a.smoke:
        a.revoke_groups = min(a.revoke_groups, 4)
    a.clients = [int(x) for x in a.clients.split(",") if x]
    a.phases = set(x for x in a.phases.split(",") if x)
    a.srcdir = os.path.abspath(a.srcdir)
    a.builddir = os.path.abspath(a.builddir)
    a.json = a.json or os.path.join(a.builddir, "bench-result.json")
    if a.uri:
        if not (a.group_dn and a.member_prefix):
            p.error("--uri needs --group-dn and --member-prefix")
        a.phases = {"baseline"}
    if bool(a.bind_dn) != bool(a.bind_pw_file):
        p.error("--bind-dn and --bind-pw-file go together")
    return a


# -- helpers -------------------------------------------------------------------

def tool(args, name):
    return os.path.join(args.builddir, "tests", "bench", name)


def run_tool(cmd, what, timeout):
    """Runs a C tool; its JSON (errors reported inside are kept)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode not in (0, 3) or not r.stdout.strip():
        raise RuntimeError("%s failed (exit %d): %s" % (what, r.returncode, r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1])


def proc_ticks(pid):
    """CPU time (s) of pid and of its child processes still running."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read().rsplit(")", 1)[1].split()
                    if int(st[1]) == pid:
                        pids.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            total += (int(st[11]) + int(st[12])) / tck
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy():
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    tck = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / tck, sum(v[:8]) / tck


class Watch:
    """What the directory and the processes did during one level: the
    directory's own time for each modify of `groups` (slapd's stats log:
    etime of the MOD's RESULT, and how many were in flight on average), and
    the CPU time of jitd, slapd and this script's children (the load tool);
    with jitd, the mean time of each step of its grants and ends (status
    `timings`, read before and after)."""

    def __init__(self, slapd, groups, jitd=None):
        self.slapd, self.jitd = slapd, jitd
        self.groups = set(g.lower() for g in groups)
        self.off = os.path.getsize(slapd.log) if slapd else 0
        self.steps0 = jitd_timings(jitd) if jitd else None
        self.t0 = time.monotonic()
        self.cpu0 = self._cpu()

    def _cpu(self):
        t = os.times()
        return {"jitd": proc_ticks(self.jitd.proc.pid) if self.jitd else 0.0,
                "slapd": proc_ticks(self.slapd.pid) if self.slapd else 0.0,
                "load": t.children_user + t.children_system,
                "machine": machine_busy()}

    def stop(self):
        wall = time.monotonic() - self.t0
        c1 = self._cpu()
        out = {"wall_s": wall}
        mods = self._modifies()
        n = len(mods)
        out["directory"] = {"modifies": n, "etime_ms": {
            "p50": pct(mods, 50), "p99": pct(mods, 99)},
            "in_flight": (sum(mods) / 1000.0 / wall) if wall > 0 else None}
        cpu = {k: c1[k] - self.cpu0[k] for k in ("jitd", "slapd", "load")}
        busy = c1["machine"][0] - self.cpu0["machine"][0]
        tot = c1["machine"][1] - self.cpu0["machine"][1]
        cpu["machine_busy_cores"] = busy / wall if wall > 0 else None
        cpu["machine_cores"] = tot / wall if wall > 0 else None
        if n:
            cpu["per_modify_ms"] = {k: 1000.0 * cpu[k] / n for k in ("jitd", "slapd", "load")}
        out["cpu_s"] = cpu
        if self.steps0 is not None:
            s1 = jitd_timings(self.jitd)
            steps = {}
            for k, v in s1.items():
                v0 = self.steps0.get(k, {"count": 0, "total_us": 0, "hist": []})
                dn, dt = v["count"] - v0["count"], v["total_us"] - v0["total_us"]
                h = hist_diff(v.get("hist", []), v0.get("hist", []))
                steps[k] = {"count": dn, "mean_ms": dt / dn / 1000.0 if dn > 0 else None,
                            "p50_ms": hist_pct(h, 50), "p99_ms": hist_pct(h, 99)}
            out["jitd_steps"] = steps
        return out

    def _modifies(self):
        """etime (ms) of each modify of our groups logged since the start."""
        if not self.slapd:
            return []
        started = {}
        et = []
        with open(self.slapd.log, "rb") as f:
            f.seek(self.off)
            data = f.read().decode("utf-8", "replace")
        for line in data.splitlines():
            i = line.find(" conn=")
            if i < 0:
                continue
            rest = line[i + 1:].split(" ", 3)
            if len(rest) < 3:
                continue
            key = (rest[0], rest[1])
            if rest[2] == "MOD" and len(rest) > 3 and rest[3].startswith('dn="'):
                dn = rest[3][4:].split('"', 1)[0].lower()
                if dn in self.groups:
                    started[key] = True
            elif rest[2] == "RESULT" and key in started and len(rest) > 3:
                for field in rest[3].split():
                    if field.startswith("etime="):
                        try:
                            et.append(1000.0 * float(field[6:]))
                        except ValueError:
                            pass
                del started[key]
        return et


def hist_diff(h1, h0):
    """Buckets [lo, hi, n] of status timings: h1 - h0 (two readings)."""
    before = {(lo, hi): n for lo, hi, n in h0}
    out = []
    for lo, hi, n in h1:
        d = n - before.get((lo, hi), 0)
        if d > 0:
            out.append((lo, hi, d))
    return out


def hist_pct(h, p):
    """Nearest-rank percentile (ms) of a bucket list: the upper bound of
    the bucket that holds it (so at most 1.25 x the true value), None if
    empty."""
    total = sum(n for _, _, n in h)
    if not total:
        return None
    k = max(1, int(math.ceil(p / 100.0 * total)))
    seen = 0
    for lo, hi, n in h:
        seen += n
        if seen >= k:
            return hi / 1000.0
    return h[-1][1] / 1000.0


def jitd_timings(jitd):
    """jitd's status `timings`: {step: {"count", "total_us"}}."""
    with jitd.connect(timeout=60) as c:
        a = c.call({"v": 1, "op": "status"})
    if not a.get("ok"):
        raise RuntimeError("status refused: %r" % (a,))
    return a["status"]["timings"]


def steps_row(x):
    """The table line of jitd's mean step times for a level, '' without."""
    s = (x.get("watch") or {}).get("jitd_steps")
    if not s:
        return ""
    ran = [(k, v) for k, v in s.items() if v["count"] > 0]
    return "jitd steps, mean ms: " + ", ".join(
        "%s %s" % (k, fmt(v["mean_ms"], 3)) for k, v in ran) + (
        "\n" + " " * 25 + "jitd steps, p99 ms (bucket bound, <= 1.25 x): " + ", ".join(
            "%s %s" % (k, fmt(v.get("p99_ms"), 2)) for k, v in ran)
        if any(v.get("p99_ms") is not None for _, v in ran) else "")


def batch_row(rv):
    """The revocation's batches: how many were ended (a batch whose pairs
    another worker held ends in two parts, counted apart), grants per batch
    and per modify."""
    w = rv.get("watch") or {}
    b = ((w.get("jitd_steps") or {}).get("expire_record_ending") or {}).get("count")
    m = (w.get("directory") or {}).get("modifies")
    if not b:
        return ""
    return "%d batches (%.1f grants each), %s modifies of the groups (%s grants each)" % (
        b, rv["grants"] / b, fmt(m), fmt(rv["grants"] / m if m else None, 1))


def watch_row(x):
    """The table line for a level's Watch, '' without one."""
    w = x.get("watch")
    if not w:
        return ""
    d, c = w["directory"], w["cpu_s"]
    per = c.get("per_modify_ms") or {}
    return ("directory: modify etime p50 %s / p99 %s ms, %s in flight; CPU per modify: "
            "jitd %s, slapd %s, load %s ms; machine busy %s of %s cores" % (
                fmt(d["etime_ms"]["p50"], 2), fmt(d["etime_ms"]["p99"], 2),
                fmt(d["in_flight"], 1), fmt(per.get("jitd"), 2), fmt(per.get("slapd"), 2),
                fmt(per.get("load"), 2), fmt(c["machine_busy_cores"], 2),
                fmt(c["machine_cores"], 0)))


def pct(values, p):
    """Nearest-rank percentile of a list (None if empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, min(len(v), int(math.ceil(p / 100.0 * len(v)))))
    return v[k - 1]


def proc_mem(pid):
    """{"rss_mb":..,"hwm_mb":..,"name":..} of a process from /proc."""
    out = {"pid": pid}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Name":
                    out["name"] = v.strip()     # "5" for the listener (fexecve)
                elif k in ("VmRSS", "VmHWM"):
                    out["rss_mb" if k == "VmRSS" else "hwm_mb"] = int(v.split()[0]) / 1024.0
    except OSError:
        pass
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        out["cmdline"] = " ".join(a.decode(errors="replace") for a in argv if a)
        if argv and argv[0]:
            out["name"] = os.path.basename(argv[0].decode(errors="replace"))
    except OSError:
        pass
    return out


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": cpu, "mem_mb": mem,
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def flush_probe(seconds):
    """The disk's flush as jitd and slapd meet it: 100-byte appends, each
    followed by fdatasync, for `seconds` in the directory where the
    throwaway slapd and jitd keep their files (tempfile's)."""
    fd, path = tempfile.mkstemp(prefix="bench-flush-")
    lat = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            a = time.monotonic()
            os.write(fd, b"x" * 99 + b"\n")
            os.fdatasync(fd)
            lat.append(1000.0 * (time.monotonic() - a))
    finally:
        os.close(fd)
        os.unlink(path)
    return {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "per_s": len(lat) / seconds if seconds > 0 else None,
            "dir": os.path.dirname(path)}


def git_commit(srcdir):
    r = subprocess.run(["git", "-C", srcdir, "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    b = subprocess.run(["git", "-C", srcdir, "rev-parse", "--abbrev-ref", "HEAD"],
                       capture_output=True, text=True)
    return {"commit": r.stdout.strip() or None, "branch": b.stdout.strip() or None}


# -- the directory ------------------------------------------------------------------

class Names:
    """Users and groups of the throwaway directory."""

    def __init__(self, args):
        self.base_users = ["bb%d" % i for i in range(max(args.conns, 1))]
        # jitd's clients and the directory-work connections share them
        self.jitd_users = ["bu%d" % i for i in range(max(args.clients + [args.conns, 1]) *
                                                     args.users_per_client)]
        self.revoke_users = ["rv%d" % i for i in range(args.revoke_grants)]
        self.base_group = "bbase"
        self.jitd_groups = ["bj%d" % i for i in range(4)]
        self.revoke_groups = ["rg%d" % i for i in range(args.revoke_groups)]
        self.scale_groups = ["sg%d" % i for i in range(50)]

    def users(self):
        return self.base_users + self.jitd_users + self.revoke_users

    def groups(self):
        g = {}
        for name in ([self.base_group] + self.jitd_groups + self.revoke_groups +
                     self.scale_groups):
            g[name] = ("gon", ["placeholder"])
        return g


def start_directory(args, names):
    from slapd import Slapd
    t0 = time.monotonic()
    s = Slapd(users=names.users(), groups=names.groups())
    s.start()
    log("slapd up with %d users, %d groups in %.1fs (%s)" % (
        len(names.users()), len(names.groups()), time.monotonic() - t0, s.ldapi_uri))
    return s


def make_jitd(slapd, args, groups, reconcile=None):
    from jitd import Jitd
    entries = []
    for g in groups:
        e = {"name": g, "directory": "corp", "dn": slapd.group_dn(g),
             "max_duration": "30d", "default_duration": "1h"}
        if reconcile:
            e["reconcile"] = reconcile
        entries.append(e)
    # All of the load comes from one uid: max_clients_per_uid equal to
    # max_clients (128, the default) lifts the per-uid cap.
    j = Jitd(slapd, groups=entries, top={"log_level": "info", "max_clients": 128,
                                         "max_clients_per_uid": 128})
    d = j.config["directories"][0]
    if args.connections is None:
        d.pop("connections", None)       # jitd's own default
    else:
        d["connections"] = args.connections
    j.write_config()
    return j


# -- phases ---------------------------------------------------------------------------

def phase_baseline(args, slapd, names):
    if args.uri:
        uri, group, prefix, suffix = args.uri, args.group_dn, args.member_prefix, \
            args.member_suffix
    else:
        uri, group = slapd.ldapi_uri, slapd.group_dn(names.base_group)
        prefix, suffix = "uid=bb", "," + slapd.people
    out = {"uri": uri, "group_dn": group,
           "bind": "simple " + args.bind_dn if args.bind_dn else "SASL EXTERNAL"}
    for n in (1, args.conns):
        cmd = [tool(args, "benchload"), "ldap", "-u", uri, "-g", group, "-v", prefix,
               "-V", suffix, "-c", str(n), "-t", str(args.seconds), "-w", str(args.warmup)]
        if args.bind_dn:
            cmd += ["-D", args.bind_dn, "-y", args.bind_pw_file]
        w = Watch(slapd, [group])
        r = run_tool(cmd, "baseline %d" % n, args.seconds + args.warmup + 120)
        r["watch"] = w.stop()
        out["c%d" % n] = r
        log("baseline %d conn: %.0f modifies/s, p50 %.3f ms, p99 %.3f ms, %d errors" % (
            n, r["rate"], r["modify_ms"].get("p50", 0), r["modify_ms"].get("p99", 0),
            r["errors"]))
    return out


def phase_dirwork(args, slapd, names):
    """The directory's work of jitd's pairs, sent by libldap without jitd:
    what the directory alone can do of that work (context, not a target)."""
    out = {"levels": {}, "groups": names.jitd_groups,
           "users_per_client": args.users_per_client}
    for n in (1, args.conns):
        cmd = [tool(args, "benchload"), "pair", "-u", slapd.ldapi_uri, "-b", slapd.people,
               "-f", "bu", "-c", str(n), "-U", str(args.users_per_client),
               "-t", str(args.seconds), "-w", str(args.warmup)]
        cmd += [slapd.group_dn(g) for g in names.jitd_groups]
        w = Watch(slapd, [slapd.group_dn(g) for g in names.jitd_groups])
        r = run_tool(cmd, "directory work %d" % n, args.seconds + args.warmup + 120)
        r["watch"] = w.stop()
        r["pairs_per_s"] = r["rate"]
        r["modifies_per_s"] = 2 * r["rate"]
        out["levels"][str(n)] = r
        log("directory work of a pair, %d conn: %.0f pairs/s, grant part p50 %.3f ms, "
            "%d errors" % (n, r["rate"], r["grant_ms"].get("p50", 0), r["errors"]))
    return out


def phase_jitd(args, jitd, names):
    out = {"levels": {}, "connections": args.connections or "default",
           "users_per_client": args.users_per_client, "groups": names.jitd_groups}
    for c in args.clients:
        cmd = [tool(args, "benchload"), "jitd", "-s", jitd.sock, "-f", "bu", "-c", str(c),
               "-U", str(args.users_per_client), "-t", str(args.seconds),
               "-w", str(args.warmup), "-d", "1h", "-p", "pair-c%d" % c] + names.jitd_groups
        w = Watch(jitd.slapd, [jitd.slapd.group_dn(g) for g in names.jitd_groups], jitd)
        r = run_tool(cmd, "jitd %d clients" % c, args.seconds + args.warmup + 300)
        r["watch"] = w.stop()
        r["pairs_per_s"] = r["rate"]
        r["modifies_per_s"] = 2 * r["rate"]
        out["levels"][str(c)] = r
        log("jitd %d clients: %.0f pairs/s, grant p50 %.3f p99 %.3f ms, %d errors" % (
            c, r["rate"], r["grant_ms"].get("p50", 0), r["grant_ms"].get("p99", 0),
            r["errors"]))
    return out


def search_members(slapd, base, filt):
    """Lower-cased member values under base (one subtree search)."""
    r = subprocess.run(["ldapsearch", "-x", "-H", slapd.ldapi_uri, "-D", slapd.rootdn,
                        "-w", slapd.rootpw, "-LLL", "-o", "ldif-wrap=no", "-b", base,
                        filt, "member"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("ldapsearch: %s" % r.stderr.strip())
    vals = set()
    for line in r.stdout.splitlines():
        if line.startswith("member: "):
            vals.add(line[8:].lower())
    return vals


def store_states(state_dir, like):
    db = sqlite3.connect(os.path.join(state_dir, "jitd.db"), timeout=30)
    try:
        rows = db.execute("SELECT state, count(*) FROM grants WHERE group_name LIKE ?"
                          " GROUP BY state", (like,)).fetchall()
    finally:
        db.close()
    return dict(rows)


def phase_revoke(args, slapd, jitd, names):
    k = args.revoke_grants
    filt = "(|%s)" % "".join("(cn=%s)" % g for g in names.revoke_groups)
    expected = set(slapd.user_dn(u).lower() for u in names.revoke_users)
    out = {"grants": k, "groups": len(names.revoke_groups), "poll_ms": args.poll_ms}
    # 1. K grants through the socket, a long duration.
    t0 = time.monotonic()
    r = run_tool([tool(args, "benchload"), "fill", "-s", jitd.sock, "-f", "rv",
                  "-n", str(k), "-c", "8", "-d", "1d", "-p", "revoke"] + names.revoke_groups,
                 "revocation fill", 3600)
    out["fill"] = {"seconds": time.monotonic() - t0, "granted": r["ops"],
                   "errors": r["errors"], "first_error": r.get("first_error"),
                   "grant_ms": r["grant_ms"]}
    log("revocation: %d grants made in %.1fs (%d errors)" % (r["ops"], out["fill"]["seconds"],
                                                           r["errors"]))
    present = search_members(slapd, slapd.groups_base, filt) & expected
    out["present_before"] = len(present)
    # 2. Move every expiry to the same second T, a few seconds ahead, while
    # jitd runs (its scheduler reads the store every tick). Their
    # expiring_soon warnings are marked written (at T - 600 s, as they would
    # have been when expiring_soon_before = 600 s came): a real expiry was
    # warned of long before, not in the same second as its removal.
    lead = 3 if k <= 20000 else 5
    watch = Watch(slapd, [slapd.group_dn(g) for g in names.revoke_groups], jitd)
    T = int(time.time()) + lead
    db = sqlite3.connect(os.path.join(jitd.state_dir, "jitd.db"), timeout=60)
    try:
        with db:
            cur = db.execute("UPDATE grants SET expires_at = ?, warned_at = ? WHERE state = 'active'"
                             " AND group_name LIKE 'rg%'", (T, T - 600))
            out["rows_moved"] = cur.rowcount
    finally:
        db.close()
    wall, mono = time.time(), time.monotonic()
    out["lead_s"] = T - wall
    if wall >= T:
        log("warning: jitd was ready only after T; lags are overstated")
    t_mono = mono + (T - wall)        # T on the monotonic clock
    # 3. Poll the directory until every value is gone.
    gone = {}
    polls = []
    deadline = t_mono + max(60.0, 20.0 * k / 500.0)
    remaining = set(present)
    while remaining and time.monotonic() < deadline:
        start = time.monotonic()
        vals = search_members(slapd, slapd.groups_base, filt)
        now = time.monotonic()
        polls.append(now - start)
        for v in list(remaining):
            if v not in vals:
                gone[v] = now - t_mono
                remaining.discard(v)
        rest = args.poll_ms / 1000.0 - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
    lags = sorted(gone.values())
    out["gone"] = len(gone)
    out["still_present"] = len(remaining)
    out["gone_before_T"] = sum(1 for x in lags if x < 0)
    out["lag_s"] = {"p50": pct(lags, 50), "p99": pct(lags, 99), "max": pct(lags, 100),
                    "first": lags[0] if lags else None}
    out["drain_s"] = lags[-1] if lags else None
    out["poll_s"] = {"n": len(polls), "p50": pct(polls, 50), "max": pct(polls, 100)}
    # 4. jitd must say expired for every one of them: its status while it
    # runs (nothing else expires in this run), then the store once stopped.
    t1 = time.monotonic()
    counts = {}
    while time.monotonic() - t1 < 30:
        counts = jitd.request({"v": 1, "op": "status"}).get("status", {}).get("grants", {})
        if counts.get("expired", 0) >= k:
            break
        time.sleep(0.1)
    out["status_grants"] = counts
    out["expired_status_s"] = time.monotonic() - t_mono
    out["watch"] = watch.stop()
    jitd.stop()
    states = store_states(jitd.state_dir, "rg%")
    out["store_states"] = states
    out["expired_in_store"] = states.get("expired", 0)
    audit_expired = sum(1 for e in jitd.audit() if e.get("event") == "expired")
    out["audit_expired"] = audit_expired
    ok = (out["fill"]["errors"] == 0 and out["present_before"] == k and
          out["rows_moved"] == k and out["still_present"] == 0 and
          out["expired_in_store"] == k)
    out["errors"] = 0 if ok else 1
    log("revocation: %d/%d gone, lag p50 %s p99 %s max %s s; store %s" % (
        len(gone), len(present), out["lag_s"]["p50"], out["lag_s"]["p99"],
        out["lag_s"]["max"], states))
    return out


def wait_status(sock, timeout):
    """Polls status on the socket every 2 ms. Returns (monotonic time the
    socket first accepted a connection, monotonic time status answered ok)."""
    t0 = time.monotonic()
    first_connect = None
    while time.monotonic() - t0 < timeout:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(sock)
                if first_connect is None:
                    first_connect = time.monotonic()
                s.sendall(b'{"v":1,"op":"status"}\n')
                buf = b""
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if buf and json.loads(buf.split(b"\n")[0]).get("ok"):
                    return first_connect, time.monotonic()
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    raise RuntimeError("jitd did not answer status within %ss" % timeout)


def timed_request(jitd, req, repeat):
    times, last = [], None
    with jitd.connect(timeout=120) as c:
        for _ in range(repeat):
            t0 = time.monotonic()
            last = c.call(req)
            times.append((time.monotonic() - t0) * 1000.0)
            if not last.get("ok"):
                raise RuntimeError("%r refused: %r" % (req, last))
    return times, last


def mem_of(jitd):
    pid = jitd.proc.pid
    return {"daemon": proc_mem(pid), "children": [proc_mem(p) for p in children(pid)]}


def phase_scale(args, slapd, names):
    n = args.scale_grants
    groups = len(names.scale_groups)
    users = max(1, -(-n // 10))
    j = make_jitd(slapd, args, names.scale_groups, reconcile="off")
    out = {"grants": n, "users": users, "groups": groups,
           "note": "reconcile = \"off\" for these groups: the synthetic grants are not in "
                   "the directory"}
    try:
        r = run_tool([tool(args, "benchstore"), "fill", j.state_dir, str(n), str(users),
                      str(groups), slapd.suffix], "store fill", 7200)
        out["fill"] = r
        log("scale: %d grants inserted in %.1fs" % (r["inserted"], r["seconds"]))
        db = os.path.join(j.state_dir, "jitd.db")
        out["db_mb"] = sum(os.path.getsize(p) for p in (db, db + "-wal")
                           if os.path.exists(p)) / 1048576.0
        # First start (cold for jitd), then a restart: both timed from exec.
        for key in ("first_start_s", "restart_s"):
            if j.running():
                j.stop()
            t0 = time.monotonic()
            j.start(wait=False)
            conn_at, ok_at = wait_status(j.sock, 600)
            out[key] = ok_at - t0
            out[key.replace("_s", "_connect_s")] = conn_at - t0
            log("scale: %s %.3fs (socket accepting after %.3fs)" % (key, out[key], conn_at - t0))
        out["mem_ready"] = mem_of(j)
        # status (counts every state) and list with a filter.
        st_times, st = timed_request(j, {"v": 1, "op": "status"}, 5)
        out["status_ms"] = {"p50": pct(st_times, 50), "max": max(st_times)}
        u = 123 % users
        req = {"v": 1, "op": "list", "user": "su%d" % u, "group": "sg%d" % (u % groups),
               "limit": 50}
        l_times, ans = timed_request(j, req, 20)
        out["list_ms"] = {"p50": pct(l_times, 50), "max": max(l_times), "n": len(l_times),
                          "returned": len(ans.get("grants", []))}
        out["list_request"] = req
        out["mem_after"] = mem_of(j)
        j.stop()          # no outside SQLite connection while jitd runs (see above)
        p = run_tool([tool(args, "benchstore"), "probe", j.state_dir, "100"], "store probe",
                     600)
        out["probe"] = p
        log("scale: list %.2f ms, next_due p50 %.3f ms, RSS %s" % (
            out["list_ms"]["p50"], p["next_due_ms"].get("p50", 0),
            [(m.get("name"), round(m.get("rss_mb", 0), 1))
             for m in [out["mem_after"]["daemon"]] + out["mem_after"]["children"]]))
        out["errors"] = 0 if out["list_ms"]["returned"] >= 1 and \
            p.get("active") == n else 1
    finally:
        j.close()
    return out


# -- report -----------------------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "MISSED"


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (nd, v)
    return str(v)


def compare(res, args):
    """Ratios and targets; fills res["targets"] and returns table rows."""
    rows, targets = [], []
    b = res.get("baseline")
    j = res.get("jitd")
    rv = res.get("revoke")
    sc = res.get("scale")
    bn = b and b.get("c%d" % args.conns)
    b1 = b and b.get("c1")
    if b:
        for key, n in (("c1", 1), ("c%d" % args.conns, args.conns)):
            x = b[key]
            rows.append(("baseline %d conn" % n, "%s modifies/s" % fmt(x["rate"], 0),
                         "modify p50 %s / p99 %s ms" % (fmt(x["modify_ms"].get("p50"), 3),
                                                       fmt(x["modify_ms"].get("p99"), 3)),
                         "errors %d" % x["errors"], watch_row(x)))
    fl = res.get("flush")
    if fl:
        rows.append(("disk flush", "fdatasync of a 100-byte append: p50 %s / p99 %s ms "
                     "(%s per s, one at a time, in %s)" % (
                         fmt(fl["p50_ms"], 3), fmt(fl["p99_ms"], 3), fmt(fl["per_s"], 0),
                         fl["dir"])))
    dw = res.get("dirwork")
    if dw:
        for n, x in dw["levels"].items():
            rows.append(("dir. work %s conn" % n,
                         "%s pairs/s = %s modifies/s (libldap, no jitd)" % (
                             fmt(x["pairs_per_s"], 0), fmt(x["modifies_per_s"], 0)),
                         "grant part p50/p99 %s/%s ms; complete part p50/p99 %s/%s ms" % (
                             fmt(x["grant_ms"].get("p50"), 2), fmt(x["grant_ms"].get("p99"), 2),
                             fmt(x["complete_ms"].get("p50"), 2),
                             fmt(x["complete_ms"].get("p99"), 2)),
                         "errors %d" % x["errors"], watch_row(x)))
    if j:
        for c, x in j["levels"].items():
            rows.append(("jitd %s clients" % c,
                         "%s pairs/s = %s modifies/s" % (fmt(x["pairs_per_s"], 0),
                                                         fmt(x["modifies_per_s"], 0)),
                         "grant p50/p95/p99/p99.9 %s/%s/%s/%s ms; complete p50/p99 %s/%s ms" % (
                             fmt(x["grant_ms"].get("p50"), 2), fmt(x["grant_ms"].get("p95"), 2),
                             fmt(x["grant_ms"].get("p99"), 2), fmt(x["grant_ms"].get("p999"), 2),
                             fmt(x["complete_ms"].get("p50"), 2),
                             fmt(x["complete_ms"].get("p99"), 2)),
                         "errors %d" % x["errors"], watch_row(x), steps_row(x)))
    if j and bn:
        for c, x in j["levels"].items():
            if int(c) < 8:
                continue
            ratio = x["modifies_per_s"] / bn["rate"] if bn["rate"] else None
            ok = ratio is not None and ratio >= TARGETS["throughput_ratio_min"]
            targets.append({"name": "throughput %s clients / baseline %d conn" % (c, args.conns),
                            "value": ratio, "target": ">= %.1f" % TARGETS["throughput_ratio_min"],
                            "met": ok})
    if j and b1:
        pairs = [("1", b1)] if "1" in j["levels"] else []
        if str(args.conns) in j["levels"] and bn:
            pairs.append((str(args.conns), bn))
        for c, base in pairs:
            g = j["levels"][c]["grant_ms"]
            for p, lim in (("p50", TARGETS["added_p50_ms_max"]), ("p99", TARGETS["added_p99_ms_max"])):
                if g.get(p) is None or base["modify_ms"].get(p) is None:
                    continue
                added = g[p] - base["modify_ms"][p]
                targets.append({"name": "added latency %s: grant RTT (%s clients) - modify (%s conn)"
                                % (p, c, base["threads"]),
                                "value": added, "target": "<= %.1f ms" % lim, "met": added <= lim})
    if rv:
        rows.append(("revocation K=%d" % rv["grants"],
                     "drain %s s" % fmt(rv["drain_s"], 2),
                     "lag p50/p99/max %s/%s/%s s" % (fmt(rv["lag_s"]["p50"], 2),
                                                     fmt(rv["lag_s"]["p99"], 2),
                                                     fmt(rv["lag_s"]["max"], 2)),
                     "gone %d/%d, expired in store %d" % (rv["gone"], rv["grants"],
                                                          rv["expired_in_store"]),
                     batch_row(rv), watch_row(rv), steps_row(rv)))
        if bn and rv["drain_s"] is not None and bn["rate"]:
            ideal = rv["grants"] / bn["rate"]
            ratio = rv["drain_s"] / ideal
            rv["ideal_s"] = ideal
            rv["drain_ratio"] = ratio
            targets.append({"name": "drain / (K / baseline %d-conn rate = %.2f s)" % (args.conns, ideal),
                            "value": ratio, "target": "<= %.1f" % TARGETS["drain_ratio_max"],
                            "met": ratio <= TARGETS["drain_ratio_max"]})
    if sc:
        d = sc["mem_after"]["daemon"]
        kids = sc["mem_after"]["children"]
        rows.append(("scale %d grants" % sc["grants"],
                     "restart %s s (socket accepting at %s s; first start %s s)" % (
                         fmt(sc["restart_s"], 3), fmt(sc.get("restart_connect_s"), 3),
                         fmt(sc["first_start_s"], 3)),
                     "list(user,group,50) p50 %s ms; status p50 %s ms" % (
                         fmt(sc["list_ms"]["p50"], 2), fmt(sc["status_ms"]["p50"], 1)),
                     "next_due p50 %s ms; due p50 %s ms" % (
                         fmt(sc["probe"]["next_due_ms"].get("p50"), 3),
                         fmt(sc["probe"]["due_ms"].get("p50"), 3)),
                     "RSS jitd %s MB%s" % (fmt(d.get("rss_mb")), "".join(
                         ", %s %s MB" % (k.get("name"), fmt(k.get("rss_mb"))) for k in kids))))
        targets.append({"name": "restart-to-ready with %d grants" % sc["grants"],
                        "value": sc["restart_s"], "target": "<= %.0f s" % TARGETS["restart_s_max"],
                        "met": sc["restart_s"] <= TARGETS["restart_s_max"]})
        targets.append({"name": "RSS of the jitd daemon (engine) with %d grants" % sc["grants"],
                        "value": d.get("rss_mb"), "target": "<= %.0f MB" % TARGETS["rss_mb_max"],
                        "met": d.get("rss_mb", 1e9) <= TARGETS["rss_mb_max"]})
        for k in kids:
            targets.append({"name": "RSS of the %s child (listener)" % k.get("name"),
                            "value": k.get("rss_mb"), "target": "<= %.0f MB" % TARGETS["rss_mb_max"],
                            "met": k.get("rss_mb", 1e9) <= TARGETS["rss_mb_max"]})
    res["targets"] = targets
    res["context"] = context_ratios(j, dw, args)
    return rows


def context_ratios(j, dw, args):
    """jitd against the directory's own work of a pair (no targets: the
    issue's targets compare with the bare modify; these say how much of
    the gap is the directory's searches and how much is jitd)."""
    out = []
    if not (j and dw):
        return out
    dn = dw["levels"].get(str(args.conns))
    d1 = dw["levels"].get("1")
    for c, x in j["levels"].items():
        if int(c) >= 8 and dn and dn["pairs_per_s"]:
            out.append({"name": "pairs/s: jitd %s clients / directory work %d conn" % (
                c, args.conns), "value": x["pairs_per_s"] / dn["pairs_per_s"]})
    x1 = j["levels"].get("1")
    if x1 and d1:
        for p in ("p50", "p99"):
            if x1["grant_ms"].get(p) is not None and d1["grant_ms"].get(p) is not None:
                out.append({"name": "jitd's own latency %s: grant RTT - directory work's "
                            "grant part, ms" % p,
                            "value": x1["grant_ms"][p] - d1["grant_ms"][p]})
    return out


def print_report(res, rows):
    m = res["machine"]
    print("jitd benchmark  %s  %s  %d CPUs (%s)  %s@%s%s" % (
        m["date"], m["host"], m["cpus"], m["cpu"], res["git"]["branch"], res["git"]["commit"],
        "  SMOKE" if res["smoke"] else ""))
    print()
    for r in rows:
        print("  %-22s %s" % (r[0], r[1]))
        for extra in r[2:]:
            if extra:
                print("  %-22s %s" % ("", extra))
    print()
    print("  %-66s %10s  %-10s %s" % ("target", "value", "target", ""))
    for t in res["targets"]:
        print("  %-66s %10s  %-10s %s" % (t["name"], fmt(t["value"], 3), t["target"],
                                           verdict(t["met"])))
    if res.get("context"):
        print()
        print("  context, not targets: jitd against the directory's own work of a pair")
        for t in res["context"]:
            print("  %-66s %10s" % (t["name"], fmt(t["value"], 3)))
    print()
    print("  errors: %d%s" % (res["errors"], "" if not res["errors"] else
                              "  -- THIS RUN HAD ERRORS: see %s" % res["json"]))


def main(argv):
    args = parse_args(argv)
    sys.path.insert(0, os.path.join(args.srcdir, "tests", "lib"))
    os.environ["JITD_BUILDDIR"] = args.builddir
    for t in ("benchload", "benchstore"):
        if not os.access(tool(args, t), os.X_OK):
            sys.exit("bench: %s not built (make %s)" % (tool(args, t), "tests/bench/" + t))
    res = {"machine": machine(), "git": git_commit(args.srcdir), "smoke": args.smoke,
           "json": args.json,
           "params": {"seconds": args.seconds, "warmup": args.warmup, "conns": args.conns,
                      "clients": args.clients, "users_per_client": args.users_per_client,
                      "revoke_grants": args.revoke_grants, "revoke_groups": args.revoke_groups,
                      "scale_grants": args.scale_grants, "connections": args.connections,
                      "phases": sorted(args.phases), "uri": args.uri},
           "targets_def": TARGETS}
    names = Names(args)
    slapd = jitd = None
    t_all = time.monotonic()
    try:
        res["flush"] = flush_probe(0.5 if args.smoke else 3.0)
        log("disk flush: p50 %.3f ms, p99 %.3f ms (%s)" % (
            res["flush"]["p50_ms"], res["flush"]["p99_ms"], res["flush"]["dir"]))
        if not args.uri:
            slapd = start_directory(args, names)
        if "baseline" in args.phases:
            res["baseline"] = phase_baseline(args, slapd, names)
            if not args.uri:
                res["dirwork"] = phase_dirwork(args, slapd, names)
        if args.phases & {"jitd", "revoke"}:
            jitd = make_jitd(slapd, args, names.jitd_groups + names.revoke_groups)
            jitd.start()
            if "jitd" in args.phases:
                res["jitd"] = phase_jitd(args, jitd, names)
            if "revoke" in args.phases:
                res["revoke"] = phase_revoke(args, slapd, jitd, names)
            jitd.close()
            jitd = None
        if "scale" in args.phases:
            res["scale"] = phase_scale(args, slapd, names)
    finally:
        if jitd is not None:
            jitd.close()
        if slapd is not None:
            slapd.close()
    res["total_s"] = time.monotonic() - t_all
    errors = 0
    for key in ("baseline", "dirwork", "jitd"):
        sec = res.get(key) or {}
        for x in list(sec.values()) + list((sec.get("levels") or {}).values()):
            if isinstance(x, dict) and "errors" in x:
                errors += x["errors"] + x.get("threads_failed", 0)
    for key in ("revoke", "scale"):
        errors += (res.get(key) or {}).get("errors", 0)
    res["errors"] = errors
    rows = compare(res, args)
    with open(args.json + ".tmp", "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(args.json + ".tmp", args.json)
    print_report(res, rows)
    print("  summary: %s (%.0f s in all)" % (args.json, res["total_s"]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
