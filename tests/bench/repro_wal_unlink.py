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
