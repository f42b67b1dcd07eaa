"""The external ticket check (ticket_check) against a small HTTP server
this test starts on 127.0.0.1: approved, pending, 404, slower than the
timeout, server down, garbage JSON; the bearer token and URL escaping;
and a slow ticket system that must not stall other clients."""

import http.server
import json
import os
import socket
import threading
import time
import urllib.parse

from jittest import Env, eq, refused

TOKEN = "s3cr3t-t0ken"


class Itsm:
    """A ticket system: GET /tickets/<ticket> answers per ticket."""

    def __init__(self):
        self.seen = []      # (path, authorization header)
        itsm = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                itsm.seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != "Bearer " + TOKEN:
                    return self.answer(401, {"error": "no token"})
                ticket = urllib.parse.unquote(self.path.split("/tickets/", 1)[-1])
                if ticket.startswith("SLOW"):
                    time.sleep(3)
                    return self.answer(200, {"state": "approved"})
                if ticket.startswith("GARBAGE"):
                    return self.answer(200, b"<html>{not json")
                if ticket.startswith("MISSING"):
                    return self.answer(404, {"error": "no such ticket"})
                if ticket.startswith("PENDING"):
                    return self.answer(200, {"result": {"state": "pending"}})
                return self.answer(200, {"result": {"state": "approved", "id": ticket}})

            def answer(self, code, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _env(itsm, **group_kw):
    e = Env(start=False)
    e.__enter__()
    j = e.jitd
    token_file = os.path.join(j.dir, "itsm.token")
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)

    def check(port):
        return {"url": "http://127.0.0.1:%d/tickets/%%s" % port,
                "approved_field": "result.state", "approved_value": "approved",
                "timeout": "1s", "token_file": token_file}

    j.config["groups"] = [
        j.group_entry("admins", ticket_check=check(itsm.port), **group_kw),
        j.group_entry("dba", ticket_check=check(_closed_port())),
        j.group_entry("web")]
    j.write_config()
    j.start()
    return e, token_file


def _ticket_refused(e, answer, words):
    refused(answer, "policy_denied", words)
    msg = answer["error"]["message"]
    assert msg.startswith("ticket_check:"), msg
    assert words in msg, (words, msg)
    assert TOKEN not in msg
    ev = e.jitd.audit_events("refused")[-1]
    eq(ev.get("rule"), "ticket_check", "rule in the audit")
    eq(ev.get("error"), "policy_denied", "audit error")


def test_ticket_check_answers():
    itsm = Itsm()
    e, _ = _env(itsm)
    try:
        j = e.jitd
        g = e.grant_and_check("alice", "admins", "1h", ticket="INC00001")
        eq(g["ticket"], "INC00001", "ticket recorded")
        _ticket_refused(e, j.grant("bob", "admins", "1h", ticket="PENDING1"), "not approved")
        _ticket_refused(e, j.grant("bob", "admins", "1h", ticket="MISSING1"), "HTTP 404")
        _ticket_refused(e, j.grant("bob", "admins", "1h", ticket="GARBAGE1"),
                        "not a JSON object")
        t0 = time.time()
        _ticket_refused(e, j.grant("bob", "admins", "1h", ticket="SLOW1"),
                        "did not answer")
        took = time.time() - t0
        assert 0.9 <= took < 2.5, "timeout 1s took %.2fs" % took
        _ticket_refused(e, j.grant("bob", "dba", "1h", ticket="INC00001"),
                        "cannot reach the ticket system")
        assert not e.is_member("admins", e.user_dn("bob"))
        assert not e.is_member("dba", e.user_dn("bob"))
        # a group with ticket_check needs a ticket
        _ticket_refused(e, j.grant("bob", "admins", "1h"), "give one")
        # the token went as a bearer token; the ticket was URL-escaped
        e.grant_and_check("carol", "admins", "1h", ticket="A B/C?&x=%")
        paths = [p for p, _ in itsm.seen]
        assert "/tickets/A%20B%2FC%3F%26x%3D%25" in paths, paths
        assert all(a == "Bearer " + TOKEN for _, a in itsm.seen), itsm.seen
        # a duplicate request_id is answered from the store, not checked again
        n = len(itsm.seen)
        g = j.must_grant("dave", "admins", "1h", ticket="INC00009", request_id="r-1")
        g2 = j.ok({"op": "grant", "user": "dave", "group": "admins", "duration": "1h",
                   "ticket": "INC00009", "request_id": "r-1"})
        eq(g2.get("duplicate"), True, "duplicate")
        eq(g2["grant"]["grant_id"], g["grant_id"], "same grant")
        eq(len(itsm.seen), n + 1, "ticket system asked once")
        # groups without a check never call it
        e.grant_and_check("erin", "web", "1h")
        eq(len(itsm.seen), n + 1, "no call for a group without ticket_check")
        # the token never reaches the diagnostics or the audit log
        assert TOKEN not in e.jitd.stderr_tail(100000)
        assert TOKEN not in open(j.audit_log).read()
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_ticket_token_file_with_loose_mode_refuses():
    itsm = Itsm()
    e, token_file = _env(itsm)
    try:
        os.chmod(token_file, 0o644)
        a = e.jitd.grant("alice", "admins", "1h", ticket="INC00001")
        _ticket_refused(e, a, "token_file")
        assert "0644" in a["error"]["message"], a
        eq(itsm.seen, [], "nothing sent with an unsafe token file")
        assert not e.is_member("admins", e.user_dn("alice"))
        os.chmod(token_file, 0o600)
        e.grant_and_check("alice", "admins", "1h", ticket="INC00001")
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_slow_ticket_system_does_not_stall_others():
    itsm = Itsm()
    e, _ = _env(itsm)
    try:
        j = e.jitd
        slow = [j.connect() for _ in range(3)]
        t0 = time.time()
        for i, c in enumerate(slow):
            c.send({"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
                     "ticket": "SLOW%d" % i})
        time.sleep(0.2)  # the checks are under way
        # other clients, other groups, and the same group with a fast ticket
        eq(j.ok({"op": "status"})["status"]["grants"]["active"], 0, "status")
        e.grant_and_check("bob", "web", "1h")
        e.grant_and_check("carol", "admins", "1h", ticket="INC00002")
        took = time.time() - t0
        assert took < 0.9, "other requests waited %.2fs behind a slow ticket system" % took
        for c in slow:
            _ticket_refused(e, c.recv(), "did not answer")
            c.close()
        assert not e.is_member("admins", e.user_dn("alice"))
    finally:
        e.__exit__(None, None, None)
        itsm.close()
