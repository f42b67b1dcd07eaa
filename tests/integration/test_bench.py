"""`make bench --smoke`: the benchmark runs end to end on a tiny scale and
its JSON summary has every section with sane figures and no errors. The
issue's targets are not asserted: the benchmark is a measurement, not a
pass/fail test (machines are noisy); docs/performance.md."""

import json
import os
import subprocess
import sys

from jittest import eq, timeout
from jitd import builddir


def positive(d, *path):
    v = d
    for k in path:
        if not isinstance(v, dict) or k not in v:
            raise AssertionError("bench JSON lacks %s" % ".".join(path))
        v = v[k]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
        raise AssertionError("bench JSON %s = %r, expected a number > 0" % (".".join(path), v))
    return v


@timeout(180)
def test_bench_smoke():
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(os.environ.get("JITTEST_WORKDIR") or "/tmp", "bench-smoke.json")
    r = subprocess.run([sys.executable, os.path.join(src, "tests", "bench", "bench.py"),
                        "--srcdir", src, "--builddir", builddir(), "--smoke", "--json", out],
                       capture_output=True, text=True, timeout=170)
    if r.returncode != 0:
        raise AssertionError("bench --smoke exited %d\n--- stdout:\n%s\n--- stderr:\n%s"
                             % (r.returncode, r.stdout, r.stderr[-4000:]))
    with open(out) as f:
        d = json.load(f)
    assert d["smoke"] is True and d["errors"] == 0, d["errors"]
    # the disk's flush, measured before anything starts
    positive(d, "flush", "p50_ms")
    assert d["flush"]["n"] > 0 and d["flush"]["p50_ms"] <= d["flush"]["p99_ms"], d["flush"]
    # baseline: 1 and 8 connections
    for c in ("c1", "c8"):
        b = d["baseline"][c]
        assert b["errors"] == 0 and b["threads_failed"] == 0, b
        positive(b, "rate")
        positive(b, "modify_ms", "p50")
        positive(b, "modify_ms", "p99")
    # the directory's own work of a pair (libldap, no jitd), 1 and 8
    # connections: every pair ran its two modifies in slapd, no errors
    secs = d["params"]["seconds"]
    assert sorted(d["dirwork"]["levels"], key=int) == ["1", "8"], d["dirwork"]["levels"].keys()
    for c, x in d["dirwork"]["levels"].items():
        assert x["errors"] == 0 and x["threads_failed"] == 0, (c, x)
        positive(x, "pairs_per_s")
        assert x["modifies_per_s"] == 2 * x["pairs_per_s"]
        positive(x, "grant_ms", "p50")
        positive(x, "complete_ms", "p50")
        assert x["grant_ms"]["p50"] <= x["grant_ms"]["p99"], (c, x["grant_ms"])
        w = x["watch"]
        assert w["directory"]["modifies"] >= 0.9 * x["modifies_per_s"] * secs, (c, w)
        assert w["cpu_s"]["jitd"] == 0, w
    # what the directory saw: every modify of the measured window is in
    # slapd's log, and the CPU of each process was read (no jitd yet)
    for c in ("c1", "c8"):
        w = d["baseline"][c]["watch"]
        assert w["directory"]["modifies"] >= 0.9 * d["baseline"][c]["rate"] * secs, (c, w)
        positive(w, "directory", "etime_ms", "p50")
        positive(w, "cpu_s", "slapd")
        assert w["cpu_s"]["jitd"] == 0, w
    for c, x in d["jitd"]["levels"].items():
        w = x["watch"]
        assert w["directory"]["modifies"] >= 0.9 * x["modifies_per_s"] * secs, (c, w)
        positive(w, "directory", "etime_ms", "p99")
        positive(w, "directory", "in_flight")
        positive(w, "cpu_s", "per_modify_ms", "jitd")
        positive(w, "cpu_s", "per_modify_ms", "slapd")
        positive(w, "cpu_s", "machine_busy_cores")
        # jitd's own step times (status timings): each step of a grant and
        # of a complete ran at least once per pair measured, and took time
        steps = w["jitd_steps"]
        pairs = x["pairs_per_s"] * secs
        for step in ("lookup_user", "check_member", "record_pending", "directory_add",
                     "audit_granted", "record_active", "record_ending", "directory_remove",
                     "audit_ended", "record_ended"):
            assert steps[step]["count"] >= pairs, (c, step, steps[step], pairs)
            positive(steps, step, "mean_ms")
            positive(steps, step, "p99_ms")
            assert steps[step]["p50_ms"] <= steps[step]["p99_ms"], (c, step, steps[step])
        assert steps["queue"]["count"] >= 2 * pairs, (c, steps["queue"])
        # a request's whole time in the engine, from its histogram: a grant's
        # p50 holds at least the p50 of its slowest step
        assert steps["grant"]["count"] >= pairs and steps["end"]["count"] >= pairs, (c, steps)
        assert steps["grant"]["p50_ms"] >= steps["directory_add"]["p50_ms"] / 1.25, (c, steps)
    # jitd: three client levels, every answer ok
    assert sorted(d["jitd"]["levels"], key=int) == ["1", "8", "32"], d["jitd"]["levels"].keys()
    for c, x in d["jitd"]["levels"].items():
        assert x["errors"] == 0 and x["threads_failed"] == 0, (c, x)
        positive(x, "pairs_per_s")
        assert x["modifies_per_s"] == 2 * x["pairs_per_s"]
        for k in ("p50", "p95", "p99", "p999"):
            positive(x, "grant_ms", k)
        g = x["grant_ms"]
        assert g["p50"] <= g["p95"] <= g["p99"] <= g["p999"] <= g["max"], (c, g)
        positive(x, "complete_ms", "p50")
        positive(x, "complete_ms", "p99")
    # revocation: every grant gone from the directory and expired in the store
    rv = d["revoke"]
    k = rv["grants"]
    assert rv["errors"] == 0 and rv["fill"]["errors"] == 0, rv
    assert rv["gone"] == k and rv["still_present"] == 0 and rv["gone_before_T"] == 0, rv
    assert rv["expired_in_store"] == k and rv["audit_expired"] >= k, rv
    positive(rv, "drain_s")
    positive(rv, "lag_s", "p50")
    positive(rv, "drain_ratio")
    # jitd's own account of the drain: its batches queued, and each part
    # of a batch ended together (a batch whose pairs another worker held
    # is ended in two parts) through its steps
    steps = rv["watch"]["jitd_steps"]
    queued = steps["expire_queue"]["count"]
    parts = steps["expire_record_ending"]["count"]
    assert 1 <= queued <= parts <= k, steps
    eq(steps["expire_directory_remove"]["count"], parts, "removal steps")
    for step in ("expire_record_ending", "expire_directory_remove", "expire_audit",
                 "expire_record_ended"):
        assert 1 <= steps[step]["count"] <= parts, (step, steps[step], parts)
        positive(steps, step, "mean_ms")
    assert 1 <= rv["watch"]["directory"]["modifies"] <= k, rv["watch"]["directory"]
    # scale: the store tool's grants, jitd restarted on them, memory of both processes
    sc = d["scale"]
    assert sc["errors"] == 0 and sc["fill"]["inserted"] == sc["grants"], sc
    positive(sc, "restart_s")
    positive(sc, "mem_after", "daemon", "rss_mb")
    assert sc["mem_after"]["children"], "no listener process found"
    positive(sc["mem_after"]["children"][0], "rss_mb")
    positive(sc, "list_ms", "p50")
    assert sc["list_ms"]["returned"] >= 1, sc["list_ms"]
    assert sc["probe"]["active"] == sc["grants"], sc["probe"]
    assert "grants_active_due" in sc["probe"]["explain"]["next_due"], sc["probe"]["explain"]
    # the targets are reported (met or not), one per figure
    names = " ".join(t["name"] for t in d["targets"])
    for word in ("throughput", "added latency", "drain", "restart", "RSS"):
        assert word in names, (word, names)
    # and jitd against the directory work, for each level >= 8 and the latency
    ctx = " ".join(t["name"] for t in d["context"])
    for phrase in ("jitd 8 clients / directory work 8 conn",
                   "jitd 32 clients / directory work 8 conn", "own latency p50",
                   "own latency p99"):
        assert phrase in ctx, (phrase, ctx)
    for t in d["context"]:
        assert isinstance(t["value"], float), t
    print("figures: bench smoke: baseline %.0f/s, jitd 8 clients %.0f pairs/s, drain %.2fs"
          % (d["baseline"]["c8"]["rate"], d["jitd"]["levels"]["8"]["pairs_per_s"],
             rv["drain_s"]))
