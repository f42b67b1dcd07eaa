#!/usr/bin/env python3
"""Reproducer (found while writing the benchmark): one read-only SQLite
connection from another process, opened and closed while jitd runs, makes
SQLite unlink jitd's jitd.db-wal and -shm; every grant jitd acknowledges
afterwards goes into the unlinked WAL, is invisible to other readers, and
is lost on kill -9. Likely cause: store.c's prepare_files()/check_file()
open() and close() jitd.db, -wal and -shm in each store_open(), and close()
drops every POSIX (fcntl) lock this process holds on the file -- including
those of the store connections other threads already opened -- so the
outside connection believes it is the last one and checkpoints and deletes
the WAL. Run from the build dir: python3 tests/bench/repro_wal_unlink.py
"""
import os, sys, sqlite3, time
sys.path.insert(0, "tests/lib"); os.environ["JITD_BUILDDIR"] = os.getcwd()
from slapd import Slapd
from jitd import Jitd
s = Slapd().start()
j = Jitd(s, top={"log_level": "info"}); j.start()
try:
    g1 = j.must_grant("alice", "admins", "1h")
    print("state_dir before:", sorted(os.listdir(j.state_dir)))
    db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db")); db.execute("select count(*) from grants").fetchall(); db.close()
    print("state_dir after one external read:", sorted(os.listdir(j.state_dir)))
    print("jitd fds:", sorted(set(os.readlink("/proc/%d/fd/%s" % (j.proc.pid, f)) for f in os.listdir("/proc/%d/fd" % j.proc.pid) if "jitd.db" in os.readlink("/proc/%d/fd/%s" % (j.proc.pid, f)))))
    g2 = j.must_grant("bob", "admins", "1h")
    db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
    print("grant", g2["grant_id"], "answered ok; external reader sees it:", db.execute("select count(*) from grants where id=?", (g2["grant_id"],)).fetchone()[0])
    db.close()
finally:
    j.kill(); 
    db = sqlite3.connect(os.path.join(j.state_dir, "jitd.db"))
    print("after kill -9, grant", g2["grant_id"], "in the store:", db.execute("select count(*) from grants where id=?", (g2["grant_id"],)).fetchone()[0])
    db.close()
    j.close(); s.close()
