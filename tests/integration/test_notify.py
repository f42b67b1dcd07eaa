"""Notifications: webhooks received by a small HTTP server this test runs on
127.0.0.1 (Python's http.server): signed JSON bodies that are exactly the
audit lines, Slack bodies, one expiring_soon per grant; a receiver that is
down and then up again, and one that hangs, neither delaying a grant; a full
queue counted and logged; a receiver that accepts and never answers holding
up only its own notifications; a secret_file with a loose mode refused."""

import hashlib
import hmac
import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jittest import Env, eq, refused, wait_until

SLACK = 5


class Receiver:
    """Records every POST; mode "ok" answers 200, "fail" 500, "hang" waits
    20 s before answering."""

    def __init__(self, port=0, sock=None):
        self.got = []
        self.mode = "ok"
        self.lock = threading.Lock()
        self.port = sock.getsockname()[1] if sock is not None else port
        self.sock = sock    # bound already (closed_port()): start() listens on it
        self.server = None

    def start(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = rec.mode
                if mode == "hang":
                    time.sleep(20)
                with rec.lock:
                    rec.got.append({"path": self.path, "headers": dict(self.headers),
                                    "body": body, "t": time.time(), "answered": mode})
                self.send_response(500 if mode == "fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        if self.sock is None:
            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        else:
            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler,
                                              bind_and_activate=False)
            self.server.socket.close()
            self.server.socket, self.sock = self.sock, None
            self.server.server_address = self.server.socket.getsockname()
            self.server.server_activate()   # listen()
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def events(self, path="/hook", event=None):
        with self.lock:
            return [g for g in self.got if g["path"] == path and g["answered"] == "ok"
                    and (event is None or g["headers"].get("X-Jitd-Event") == event)]


def closed_port():
    """(socket, port): a port that refuses connections, bound and not
    listening, so that no other test's server takes it meanwhile. Keep
    the socket; Receiver(sock=...) listens on it when it starts."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def write_secret(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def audit_line(j, seq):
    with open(j.audit_log, "rb") as f:
        for line in f:
            if json.loads(line)["seq"] == seq:
                return line.rstrip(b"\n")
    raise AssertionError("no audit line with seq %d" % seq)


def test_notify_signed_lines_slack_and_expiring_soon():
    r = Receiver().start()
    secret = os.path.join(os.getcwd(), "hook.secret")
    # a key file edited on Windows: its \r\n is not part of the key
    write_secret(secret, "s3cr3t-key\r\n")
    top = {"expiring_soon_before": "3s",
           "notify": [{"url": r.url("/hook/T0K3N"), "secret_file": secret},
                      {"url": r.url("/slack"), "format": "slack", "events": ["granted"]}]}
    try:
        with Env(top=top) as e:
            j = e.jitd
            g = j.must_grant("alice", "admins", "5s", ticket="INC-1", approved_by="carol")
            short = j.must_grant("bob", "dba", "2s")  # not longer than 3 s: no warning
            refused(j.grant("nobody", "admins", "1h"), "unknown_user")
            for gr in (g, short):
                wait_until(lambda: r.events("/hook/T0K3N", "expired") and
                           any(json.loads(x["body"])["grant_id"] == gr["grant_id"]
                               for x in r.events("/hook/T0K3N", "expired")),
                           10 + SLACK, "expired notification of %s" % gr["grant_id"])
            got = r.events("/hook/T0K3N")
            # Every body is exactly an audit line, signed with the key.
            for m in got:
                h = m["headers"]
                rec = json.loads(m["body"])
                eq(h.get("X-Jitd-Event"), rec["event"], "X-Jitd-Event")
                eq(h.get("X-Jitd-Seq"), str(rec["seq"]), "X-Jitd-Seq")
                eq(h.get("Content-Type"), "application/json", "Content-Type")
                eq(m["body"], audit_line(j, rec["seq"]), "body of seq %d" % rec["seq"])
                want = hmac.new(b"s3cr3t-key", h["X-Jitd-Timestamp"].encode() + b"." + m["body"],
                                hashlib.sha256).hexdigest()
                eq(h.get("X-Jitd-Signature"), "sha256=" + want, "signature of seq %d" % rec["seq"])
                assert abs(int(h["X-Jitd-Timestamp"]) - m["t"]) < 30, h
            kinds = [(json.loads(m["body"]).get("grant_id"), m["headers"]["X-Jitd-Event"])
                     for m in got]
            for want in ((g["grant_id"], "granted"), (g["grant_id"], "expiring_soon"),
                         (g["grant_id"], "expired"), (short["grant_id"], "granted"),
                         (None, "refused")):
                assert want in kinds, (want, kinds)
            eq(kinds.count((g["grant_id"], "expiring_soon")), 1, "one expiring_soon")
            eq(kinds.count((short["grant_id"], "expiring_soon")), 0, "no warning for 2s")
            eq(len(j.audit_events("expiring_soon")), 1, "expiring_soon audit lines")
            warn = j.audit_events("expiring_soon", g["grant_id"])[0]
            assert 0 < warn["expires_in"] <= 3, warn
            eq(warn["ticket"], "INC-1", "expiring_soon carries the grant's fields")
            # Each line once (deliveries run in parallel: order them by seq).
            seqs = [json.loads(m["body"])["seq"] for m in got]
            eq(len(seqs), len(set(seqs)), "no line delivered twice")
            # Slack: only granted, as {"text": ...}, no signature.
            sl = r.events("/slack")
            eq(len(sl), 2, "slack messages")
            text = json.loads(sl[0]["body"])["text"]
            assert text.startswith("jitd: alice was granted admins until "), text
            assert "ticket INC-1; approved by carol [%s]" % g["grant_id"] in text, text
            assert "X-Jitd-Signature" not in sl[0]["headers"], sl[0]["headers"]
            # The webhook URL's token is not written to the diagnostics.
            assert "T0K3N" not in j.stderr_tail(100000)
            # status: both receivers' deliveries counted, the token not shown
            st = j.ok({"op": "status"})
            assert "T0K3N" not in json.dumps(st), st["status"]["notifications"]
            n = st["status"]["notifications"]
            eq([x["entry"] for x in n["receivers"]], [0, 1], "receivers in status")
            assert all(x["delivered"] > 0 for x in n["receivers"]), n
            eq(n["delivered"], sum(x["delivered"] for x in n["receivers"]), "totals")
            # A secret file others can read: the reload is refused.
            os.chmod(secret, 0o644)
            j.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload refused" in j.stderr_tail(50), 5, "reload refused")
            assert "mode 0644" in j.stderr_tail(50), j.stderr_tail(50)
            os.chmod(secret, 0o600)
    finally:
        r.stop()


def test_notify_receiver_down_then_up_and_hanging():
    held, port = closed_port()
    r = Receiver(sock=held)
    # timeout 10 s against bounds of 5 s: a grant that waited for a delivery
    # would show, and a slow machine's grant has room
    top = {"notify": [{"url": r.url(), "events": ["granted", "completed"], "timeout": "10s"}]}
    with Env(top=top) as e:
        j = e.jitd
        # Down: nothing listens on the port. Grants are answered at once.
        t0 = time.time()
        g = j.must_grant("alice", "admins", "1h")
        j.ok({"op": "complete", "grant_id": g["grant_id"]})
        assert time.time() - t0 < 5, "grant + complete took %.1fs" % (time.time() - t0)
        wait_until(lambda: "retrying" in j.stderr_tail(50), 10, "a failed delivery logged")
        time.sleep(1)
        r.start()
        try:
            up = time.time()
            wait_until(lambda: len(r.events()) == 2, 10 + SLACK, "both notifications delivered")
            got = [(json.loads(m["body"])["grant_id"], m["headers"]["X-Jitd-Event"])
                   for m in r.events()]
            eq(sorted(got), sorted([(g["grant_id"], "granted"), (g["grant_id"], "completed")]),
               "delivered after the receiver came back")
            print("delivered %.1fs after the receiver came up" % (r.events()[-1]["t"] - up))
            # Hanging: the receiver never answers in time; grants do not wait.
            r.mode = "hang"
            t0 = time.time()
            g2 = j.must_grant("bob", "admins", "1h")
            eq(e.is_member("admins", e.user_dn("bob")), True, "bob added")
            assert time.time() - t0 < 5, "grant with a hanging receiver took %.1fs" \
                % (time.time() - t0)
            wait_until(lambda: "Operation timed out" in j.stderr_tail(50) or
                       "timed out" in j.stderr_tail(50), 25, "the hanging delivery timed out")
            r.mode = "ok"
            wait_until(lambda: any(json.loads(m["body"])["grant_id"] == g2["grant_id"]
                                   for m in r.events()), 20 + SLACK,
                       "delivered once the receiver answers again")
        finally:
            r.stop()


def test_notify_full_queue_is_counted_and_logged():
    held, port = closed_port()  # nobody listens: every delivery fails and waits
    top = {"notify": [{"url": "http://127.0.0.1:%d/hook" % port, "events": ["refused"]}]}
    with Env(top=top) as e:
        j = e.jitd
        # Each failed delivery logs retry lines (~1000 at a time): read
        # everything from here on, not a tail.
        since = j.stderr_pos()
        with j.connect() as c:
            for i in range(1100):
                a = c.call({"op": "grant", "user": "alice", "group": "nosuch%d" % i,
                            "duration": "1h"})
                assert a.get("error", {}).get("code") == "unknown_group", a
        wait_until(lambda: "(100 dropped so far)" in j.stderr_since(since), 10,
                   "the 100th drop logged")
        log = j.stderr_since(since)
        drops = [ln for ln in log.splitlines() if "dropped" in ln]
        assert "queue full (1000 deliveries waiting)" in log, drops
        assert "(1 dropped so far)" in log, drops
        # Grants are not held up by the full queue.
        t0 = time.time()
        e.grant_and_check("bob", "admins", "1h")
        assert time.time() - t0 < 5, time.time() - t0
        eq(len(j.audit_events("refused")), 1100, "every refusal audited")
        # status shows the receiver's queue and drops, its URL redacted
        n = j.ok({"op": "status"})["status"]["notifications"]
        assert n["dropped"] >= 100 and n["waiting"] <= 1000 and n["delivered"] == 0, n
        eq(len(n["receivers"]), 1, "receivers in status")
        rc = n["receivers"][0]
        eq((rc["url"], rc["entry"]), ("http://127.0.0.1:%d/***" % port, 0), "receiver shown")
        eq((rc["dropped"], rc["waiting"]), (n["dropped"], n["waiting"]), "one receiver's counts")
        out = j.jitctl("status").stdout
        line = [x for x in out.splitlines() if "notify http://127.0.0.1:%d/***" % port in x]
        assert len(line) == 1 and "delivered 0," in line[0] and "dropped" in line[0], out


class Stalled:
    """A receiver that accepts connections and never reads or answers
    (a SIEM behind a wedged proxy). Holds every connection open until
    close(); counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    c.close()
                    return
                self.conns.append(c)

    def accepted(self):
        with self.lock:
            return len(self.conns)

    def url(self, path="/siem/T0K3N"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        with self.lock:
            self.closed = True
            for c in self.conns:
                c.close()
        self.sock.close()


def test_notify_stalled_receiver_does_not_hold_up_another():
    """Two receivers: one accepts and never answers (timeout 5m, 100
    attempts), the other answers. The stalled one's queue fills up (its
    own drops counted and logged) and it holds at most its own transfer
    slots; the healthy one still gets every notification within seconds."""
    stalled = Stalled()
    ok = Receiver().start()
    top = {"notify": [
        {"url": stalled.url(), "events": ["refused", "granted", "expired"],
         "timeout": "5m", "max_attempts": 100},
        {"url": ok.url("/audit"), "events": ["granted", "expired"]}]}
    try:
        with Env(top=top) as e:
            j = e.jitd
            # 1100 refusals for the stalled receiver alone: more than its
            # queue holds (1000, waiting or in progress).
            t0 = time.time()
            with j.connect() as c:
                for i in range(1100):
                    a = c.call({"op": "grant", "user": "alice", "group": "nosuch%d" % i,
                                "duration": "1h"})
                    assert a.get("error", {}).get("code") == "unknown_group", a
            print("1100 refusals answered in %.1fs" % (time.time() - t0))
            wait_until(lambda: "(100 dropped so far)" in j.stderr_tail(400), 10,
                       "the stalled receiver's 100th drop logged")
            shown_stalled = "http://127.0.0.1:%d/***" % stalled.port
            shown_ok = "http://127.0.0.1:%d/***" % ok.port
            drops = [ln for ln in j.stderr_tail(5000).splitlines() if "dropped the" in ln]
            assert drops and all(shown_stalled in ln for ln in drops), drops[:5]
            assert not any(shown_ok in ln for ln in drops), drops[:5]
            assert "queue full (1000 deliveries waiting)" in drops[0], drops[0]
            # Grants and expiries now: the healthy receiver gets each of
            # their notifications within a few seconds.
            grants = []
            for u in ("alice", "bob"):
                t0 = time.time()
                grants.append(j.must_grant(u, "admins", "3s"))
                assert time.time() - t0 < 5, "grant took %.1fs" % (time.time() - t0)
            want = sorted([(g["grant_id"], "granted") for g in grants])
            wait_until(lambda: sorted((json.loads(m["body"])["grant_id"],
                                       m["headers"]["X-Jitd-Event"])
                                      for m in ok.events("/audit")) == want,
                       5, "the healthy receiver's granted notifications")
            for g in grants:
                wait_until(lambda: j.audit_events("expired", g["grant_id"]), 10 + SLACK,
                           "expiry of %s" % g["grant_id"])
            want += [(g["grant_id"], "expired") for g in grants]
            wait_until(lambda: sorted((json.loads(m["body"])["grant_id"],
                                       m["headers"]["X-Jitd-Event"])
                                      for m in ok.events("/audit")) == sorted(want),
                       5, "the healthy receiver's expired notifications")
            eq(len(ok.got), 4, "requests to the healthy receiver (each once)")
            # The stalled receiver still hangs: it holds at most 4
            # connections (its own transfer slots), none answered.
            assert 1 <= stalled.accepted() <= 4, stalled.accepted()
            drops = [ln for ln in j.stderr_tail(5000).splitlines() if "dropped the" in ln]
            assert all(shown_stalled in ln for ln in drops), drops[-5:]
            # A reload keeps each receiver's queue (and its count): the
            # stalled one is still full, the healthy one still served. 96
            # more make exactly 200 dropped only if its queue took nothing
            # since (the 4 grant notifications for it were dropped too).
            j.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in j.stderr_tail(50), 5, "reload")
            with j.connect() as c:
                for i in range(96):
                    c.call({"op": "grant", "user": "alice", "group": "nosuch%d" % i,
                            "duration": "1h"})
            wait_until(lambda: "(200 dropped so far)" in j.stderr_tail(400), 10,
                       "the stalled receiver's 200th drop logged")
            g3 = j.must_grant("carol", "admins", "1h")
            wait_until(lambda: any(json.loads(m["body"])["grant_id"] == g3["grant_id"]
                                   for m in ok.events("/audit")), 5,
                       "the healthy receiver's notification after the reload")
            assert 1 <= stalled.accepted() <= 4, stalled.accepted()
            drops = [ln for ln in j.stderr_tail(5000).splitlines() if "dropped the" in ln]
            assert all(shown_stalled in ln for ln in drops), drops[-5:]
            assert "T0K3N" not in j.stderr_tail(100000)
    finally:
        stalled.close()
        ok.stop()


def test_a_loopback_receiver_is_not_reached_through_a_proxy():
    """jitd runs with http_proxy (and the like) set: a receiver on loopback
    gets its audit lines directly (regression: libcurl sent them to the
    proxy, in clear for http://, which could read or drop them)."""
    r = Receiver().start()
    proxied = Receiver().start()    # stands in for the proxy: it records what reaches it
    env = {"http_proxy": proxied.url(""), "https_proxy": proxied.url(""),
           "HTTPS_PROXY": proxied.url(""), "all_proxy": proxied.url(""),
           "ALL_PROXY": proxied.url(""), "no_proxy": "", "NO_PROXY": ""}
    try:
        with Env(start=False, top={"notify": [{"url": r.url("/hook"), "events": ["granted"]}]}) as e:
            j = e.jitd
            j.start(env=env)
            g = j.must_grant("alice", "admins", "1h")
            wait_until(lambda: r.events("/hook", "granted"), 10 + SLACK,
                       "the granted line at the receiver")
            eq(json.loads(r.events("/hook", "granted")[0]["body"])["grant_id"], g["grant_id"],
               "the line delivered")
            eq(proxied.got, [], "requests that went through the proxy")
    finally:
        r.stop()
        proxied.stop()
