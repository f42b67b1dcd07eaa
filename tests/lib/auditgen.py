"""Writes audit log files exactly as jitd does (docs/audit-log.md, "The hash
chain"), for tests that need a log with chosen timestamps: a day of grants
at fixed times, a log large enough to measure a report's memory.

    w = AuditWriter(path)                  # a new chain (seq 1, zero prev)
    w.event(ts, "granted", grant_id=..., user=..., ...)
    w.grant(...) / w.end(...)              # grant lines with every field
    w.switch(path2)                        # rotation: the chain goes on there
    w.close()

Also verify(paths) -> list of (file, line) that break the chain: an
independent check written from the documentation, not from audit.c.
"""

import gzip
import hashlib
import json
import time

ZERO = "0" * 64


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class AuditWriter:
    def __init__(self, path, seq=0, prev=ZERO, compress=False):
        self.seq, self.prev = seq, prev
        self.f = None
        self.switch(path, compress)

    def switch(self, path, compress=False):
        if self.f:
            self.f.close()
        self.path = path
        self.f = gzip.open(path, "wb") if compress else open(path, "wb")

    def close(self):
        if self.f:
            self.f.close()
            self.f = None

    def line(self, ts, event, fields):
        rec = {"ts": rfc3339(ts), "seq": self.seq + 1, "event": event}
        rec.update({k: v for k, v in fields.items() if v is not None})
        body = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        content = body[:-1]
        h = hashlib.sha256(self.prev.encode() + content).hexdigest()
        out = content + (',"prev":"%s","hash":"%s"}\n' % (self.prev, h)).encode()
        self.seq += 1
        self.prev = h
        return out

    def event(self, ts, event, **fields):
        self.f.write(self.line(ts, event, fields))

    def grant_fields(self, g, state):
        return {"grant_id": g["id"], "state": state, "user": g["user"],
                "user_dn": "uid=%s,ou=people,dc=example,dc=com" % g["user"],
                "group": g["group"], "group_dn": "cn=%s,ou=groups,dc=example,dc=com" % g["group"],
                "directory": "corp", "duration": g["duration"],
                "created_at": rfc3339(g["start"]), "expires_at": rfc3339(g["expires"]),
                "ticket": g.get("ticket"), "reason": g.get("reason"),
                "requested_by": g.get("requested_by"), "approved_by": g.get("approved_by"),
                "request_id": g.get("request_id"), "client": g.get("client", "helpdesk"),
                "peer_uid": 998, "peer_pid": 4242, "standing": False}

    def grant(self, g):
        """g: dict with id, user, group, start, duration (+ ticket, approved_by,
        client ...). Writes `granted` at g["start"]."""
        g.setdefault("expires", g["start"] + g["duration"])
        f = self.grant_fields(g, "active")
        f["outcome"] = "added"
        self.event(g["start"], "granted", **f)

    def extend(self, g, ts, added):
        g["expires"] += added
        g["duration"] += added
        f = self.grant_fields(g, "active")
        f.update(added=added, by_client=g.get("client", "helpdesk"), by_peer_uid=998,
                 by_peer_pid=4243)
        self.event(ts, "extended", **f)

    def end(self, g, ts, event, outcome="removed", end_reason=None):
        f = self.grant_fields(g, event)
        f["outcome"] = outcome
        if event != "expired":
            f.update(by_client=g.get("client", "helpdesk"), by_peer_uid=998, by_peer_pid=4244,
                     end_reason=end_reason)
        self.event(ts, event, **f)

    def refused(self, ts, user, group, error, client="helpdesk", approved_by=None):
        self.event(ts, "refused", op="grant", user=user, group=group, client=client,
                   approved_by=approved_by, peer_uid=998, peer_pid=4245, error=error,
                   message="refused: %s" % error)


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().splitlines()


def verify(paths):
    """Independent chain check (the algorithm of docs/audit-log.md): returns
    the (path, line number) of every line that breaks the chain."""
    bad, prev, seq = [], None, None
    for p in paths:
        for n, line in enumerate(read_lines(p), 1):
            rec = None
            try:
                rec = json.loads(line)
                cut = line.rindex(b',"prev":"')
                tail = ',"prev":"%s","hash":"%s"}' % (rec["prev"], rec["hash"])
                ok = line[cut:] == tail.encode() and rec["hash"] == hashlib.sha256(
                    rec["prev"].encode() + line[:cut]).hexdigest()
                if prev is None:
                    ok = ok and (rec["seq"] != 1 or rec["prev"] == ZERO)
                else:
                    ok = ok and rec["prev"] == prev and rec["seq"] == seq + 1
            except (ValueError, KeyError, TypeError):
                ok, rec = False, None
            if not ok:
                bad.append((p, n))
            if rec is not None:
                prev, seq = rec["hash"], rec["seq"]
    return bad
