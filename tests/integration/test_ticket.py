"""The external ticket check (ticket_check) against a small HTTP server
this test starts on 127.0.0.1: approved, pending, 404, slower than the
timeout, server down, garbage JSON; the bearer token and URL escaping;
a slow ticket system that must not stall other clients, nor make the
engine hold a socket per waiting grant."""

import http.server
import json
import os
import select
import socket
import threading
import time
import urllib.parse

from jittest import Env, eq, refused, wait_until

TOKEN = "s3cr3t-t0ken"
RUNNING_MAX = 32    # ticket.h: TICKET_RUNNING_MAX, checks (sockets) at once
LIVE_MAX = 288      # ticket.h: TICKET_LIVE_MAX, running and waiting


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # many checks may connect at once

    def handle_error(self, request, client_address):
        pass  # a check that jitd gave up on: its connection is gone


class Itsm:
    """A ticket system: GET /tickets/<ticket> answers per ticket. HOLD
    tickets wait for release (an Event) and count how many wait at once."""

    def __init__(self):
        self.seen = []      # (path, authorization header)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.holding = 0    # HOLD requests waiting now
        self.most_held = 0  # and the most at once
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
                    time.sleep(6)
                    return self.answer(200, {"state": "approved"})
                if ticket.startswith("HOLD"):
                    return self.hold(ticket)
                if ticket.startswith("GARBAGE"):
                    return self.answer(200, b"<html>{not json")
                if ticket.startswith("MISSING"):
                    return self.answer(404, {"error": "no such ticket"})
                if ticket.startswith("PENDING"):
                    return self.answer(200, {"result": {"state": "pending"}})
                return self.answer(200, {"result": {"state": "approved", "id": ticket}})

            def hold(self, ticket):
                with itsm.lock:
                    itsm.holding += 1
                    itsm.most_held = max(itsm.most_held, itsm.holding)
                itsm.release.wait(120)
                with itsm.lock:
                    itsm.holding -= 1
                return self.answer(200, {"result": {"state": "approved", "id": ticket}})

            def answer(self, code, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _Server(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


_held = []  # the sockets of _closed_port(), bound until this test's process ends


def _closed_port():
    """A port that refuses connections: bound and never listening (closing
    it would let another test's server take the port meanwhile)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def _env(itsm, check_timeout="1s", top=None, env=None, dba_url=None, **group_kw):
    e = Env(start=False, top=top)
    e.__enter__()
    j = e.jitd
    token_file = os.path.join(j.dir, "itsm.token")
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)

    def check(port):
        return {"url": "http://127.0.0.1:%d/tickets/%%s" % port,
                "approved_field": "result.state", "approved_value": "approved",
                "timeout": check_timeout, "token_file": token_file}

    j.config["groups"] = [
        j.group_entry("admins", ticket_check=check(itsm.port), **group_kw),
        j.group_entry("dba", ticket_check=dict(check(_closed_port()), **(
            {"url": dba_url} if dba_url else {}))),
        j.group_entry("web")]
    j.write_config()
    j.start(env=env)
    return e, token_file


class Proxy:
    """An HTTP proxy that approves every ticket asked through it (GET) and
    refuses tunnels (CONNECT); seen: the request lines it got."""

    def __init__(self):
        self.seen = []
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy.seen.append(self.requestline)
                data = json.dumps({"result": {"state": "approved"}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_CONNECT(self):
                proxy.seen.append(self.requestline)
                self.send_response(502)
                self.end_headers()

        self.httpd = _Server(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


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
    dead = _closed_port()
    e, _ = _env(itsm, dba_url="http://127.0.0.1:%d/tickets/%%s" % dead)
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
        assert 0.9 <= took < 4.5, "timeout 1s took %.2fs" % took  # the answer: 6 s
        a = j.grant("bob", "dba", "1h", ticket="INC00001")
        _ticket_refused(e, a, "cannot reach the ticket system")
        # libcurl's text (host, port, address) goes to jitd's log only
        # (regression: it told helpdesk clients where the ticket system is)
        assert str(dead) not in a["error"]["message"], a
        assert str(dead) not in e.jitd.audit_events("refused")[-1]["message"]
        wait_until(lambda: str(dead) in j.stderr_tail(200), 5, "libcurl's text in the log")
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


def test_ticket_dot_segments_are_not_sent():
    """URL escaping leaves '.' alone: a ticket ".." in .../tickets/%s must
    not make jitd ask another path of the ticket system (here "/", which
    this stub would approve)."""
    itsm = Itsm()
    e, _ = _env(itsm)
    try:
        j = e.jitd
        for t in ("..", ".", "../../admin", "x/..", "..\\x"):
            _ticket_refused(e, j.grant("bob", "admins", "1h", ticket=t), "path segment")
        assert not e.is_member("admins", e.user_dn("bob"))
        eq(itsm.seen, [], "requests sent to the ticket system")
        # dots that are not a whole segment are sent as they are
        e.grant_and_check("carol", "admins", "1h", ticket="v1.2..x")
        e.grant_and_check("dave", "admins", "1h", ticket="...")
        eq([p for p, _ in itsm.seen], ["/tickets/v1.2..x", "/tickets/..."], "paths asked")
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_loopback_ticket_check_does_not_go_through_a_proxy():
    """With http_proxy (or https_proxy, all_proxy) set, libcurl would send
    a check to 127.0.0.1 through the proxy: an http:// one, its token and
    its approving answer in clear over the network (here: a proxy that
    approves everything). Checks to a loopback host are asked directly
    (regression: the proxy approved a ticket the ticket system refused)."""
    itsm, proxy = Itsm(), Proxy()
    env = {"http_proxy": proxy.url, "https_proxy": proxy.url, "HTTPS_PROXY": proxy.url,
           "all_proxy": proxy.url, "ALL_PROXY": proxy.url, "no_proxy": "", "NO_PROXY": ""}
    e, _ = _env(itsm, env=env, dba_url="https://127.0.0.1:%d/tickets/%%s" % _closed_port())
    try:
        j = e.jitd
        _ticket_refused(e, j.grant("bob", "admins", "1h", ticket="PENDING1"), "not approved")
        _ticket_refused(e, j.grant("bob", "dba", "1h", ticket="INC00001"),
                        "cannot reach the ticket system")
        assert not e.is_member("admins", e.user_dn("bob"))
        assert not e.is_member("dba", e.user_dn("bob"))
        eq(proxy.seen, [], "requests through the proxy")
        eq([p for p, _ in itsm.seen], ["/tickets/PENDING1"], "asked of the ticket system")
        e.grant_and_check("alice", "admins", "1h", ticket="INC00001")
        eq(proxy.seen, [], "requests through the proxy")
    finally:
        e.__exit__(None, None, None)
        itsm.close()
        proxy.close()


def test_ticket_token_file_with_loose_mode_refuses():
    itsm = Itsm()
    e, token_file = _env(itsm)
    try:
        os.chmod(token_file, 0o644)
        a = e.jitd.grant("alice", "admins", "1h", ticket="INC00001")
        # jitd's own set-up, not the request: internal (retryable), and the
        # file's path and mode go to jitd's log, not to the client or the
        # audit log (regression: policy_denied, naming the readable file)
        refused(a, "internal", "an unsafe token file")
        msg = a["error"]["message"]
        assert msg.startswith("ticket_check:") and "token" in msg, a
        assert token_file not in msg and "0644" not in msg, a
        ev = e.jitd.audit_events("refused")[-1]
        eq(ev.get("error"), "internal", "audited")
        assert token_file not in ev.get("message", ""), ev
        assert "%s: mode 0644" % token_file in e.jitd.stderr_tail(100), \
            "the reason is not in jitd's log"
        eq(itsm.seen, [], "nothing sent with an unsafe token file")
        assert not e.is_member("admins", e.user_dn("alice"))
        os.chmod(token_file, 0o600)
        e.grant_and_check("alice", "admins", "1h", ticket="INC00001")
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_slow_ticket_system_does_not_stall_others():
    itsm = Itsm()
    # The slow checks are answered after 6 s, inside the timeout: a request
    # stalled behind one waits those 6 s, far above the bound below.
    e, _ = _env(itsm, check_timeout="10s")
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
        assert took < 4.5, "other requests waited %.2fs behind a slow ticket system" % took
        for c in slow:
            # {"state": ...} at the top, not result.state: refused
            _ticket_refused(e, c.recv(), 'has no field "result.state"')
            c.close()
        # ...after the 3 s the ticket system took: they were in flight above
        assert time.time() - t0 >= 2.9, "slow checks answered after %.2fs" % (time.time() - t0)
        assert not e.is_member("admins", e.user_dn("alice"))
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_grant_waiting_for_its_ticket_is_checked_again_after_a_reload():
    """A grant accepted, then waiting for its ticket check while the
    configuration is reloaded, is checked again under the new one before
    it runs: an admin who adds the user to deny_users (or takes the group
    from the client) during an incident stops it (regression: the grant ran
    with the rules it was accepted under). One the new configuration still
    allows is granted."""
    itsm = Itsm()
    e, _ = _env(itsm, check_timeout="30s")
    try:
        j = e.jitd
        ca, cb = j.connect(timeout=60), j.connect(timeout=60)
        ca.send({"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
                 "ticket": "HOLDA", "request_id": "reload-a"})
        cb.send({"op": "grant", "user": "bob", "group": "admins", "duration": "1h",
                 "ticket": "HOLDB", "request_id": "reload-b"})
        wait_until(lambda: itsm.holding == 2, 20, "both ticket checks under way")
        for g in j.config["groups"]:
            if g["name"] == "admins":
                g["deny_users"] = ["Alice"]
        j.reload()
        itsm.release.set()
        a, b = ca.recv(), cb.recv()
        refused(a, "policy_denied", "alice, denied by the reload while her ticket was checked")
        assert a["error"]["message"].startswith("deny_users:"), a
        ev = [x for x in j.audit_events("refused") if x.get("request_id") == "reload-a"]
        eq([x.get("rule") for x in ev], ["deny_users"], "alice's refusal audited once")
        eq(b.get("ok"), True, "bob, still allowed: %r" % b)
        assert not e.is_member("admins", e.user_dn("alice")), "alice was granted"
        assert e.is_member("admins", e.user_dn("bob"))
        # checked again as if it came now: the ticket system was asked again
        eq(sum(1 for p, _ in itsm.seen if p.endswith("/HOLDB")), 2, "bob's ticket checks")
        assert "the configuration was reloaded while it waited; checked again: refused" \
            in j.stderr_tail(200), "no log line for the check"
        ca.close()
        cb.close()
        # a reload that changes nothing (logrotate's daily SIGHUP) leaves a
        # waiting grant as it is: its ticket is asked once
        itsm.release = threading.Event()
        cc = j.connect(timeout=60)
        cc.send({"op": "grant", "user": "carol", "group": "admins", "duration": "1h",
                 "ticket": "HOLDC", "request_id": "reload-c"})
        wait_until(lambda: itsm.holding == 1, 20, "carol's ticket check under way")
        j.reload()
        itsm.release.set()
        eq(cc.recv().get("ok"), True, "carol, across a reload that changed nothing")
        eq(sum(1 for p, _ in itsm.seen if p.endswith("/HOLDC")), 1, "carol's ticket checks")
        cc.close()
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def _engine_fds(j):
    """Descriptors open in the engine (the jitd process; the listener is
    its child)."""
    return len(os.listdir("/proc/%d/fd" % j.proc.pid))


def _connect(j):
    """A connection, waiting while the listener's backlog is full."""
    for _ in range(200):
        try:
            return j.connect()
        except BlockingIOError:
            time.sleep(0.01)
    return j.connect()


def _answers(conns, want, timeout):
    """Reads the answers that arrive on conns: waits until `want` came and
    none more for a second, or timeout. {conn: answer}."""
    got = {}
    by_fd = {c.sock.fileno(): c for c in conns}
    deadline = time.time() + timeout
    last = time.time()
    while time.time() < deadline and not (len(got) >= want and time.time() - last > 1):
        ready, _, _ = select.select([fd for fd, c in by_fd.items() if c not in got], [], [],
                                    0.2)
        for fd in ready:
            c = by_fd[fd]
            got[c] = c.recv()
            last = time.time()
    return got


def test_ticket_checks_are_bounded():
    """A slow ticket system and a flood of grants: at most RUNNING_MAX
    checks (sockets of the engine) at once, LIVE_MAX accepted in all (also
    those whose client hung up), the rest refused at once with `busy` and
    audited; once the ticket system answers, the accepted ones are granted."""
    itsm = Itsm()
    e, _ = _env(itsm, check_timeout="90s",
                top={"max_clients": 1000, "max_clients_per_uid": 1000})
    try:
        j = e.jitd
        e.grant_and_check("alice", "admins", "1h", ticket="INC00001")  # checker started
        base = _engine_fds(j)
        n = LIVE_MAX + 40
        conns = []
        for i in range(n):
            c = _connect(j)
            c.send({"op": "grant", "user": "bob", "group": "admins", "duration": "1h",
                    "ticket": "HOLD%d" % i})
            conns.append(c)
        early = _answers(conns, n - LIVE_MAX, 20)
        wait_until(lambda: itsm.holding >= min(RUNNING_MAX, n), 20, "checks under way")
        time.sleep(1)  # give more checks a chance to start, were they not bounded
        fds = _engine_fds(j)
        assert fds <= base + RUNNING_MAX + 8, \
            "the engine holds %d descriptors (%d before the flood)" % (fds, base)
        print("figures: engine descriptors: %d before the flood, %d during" % (base, fds))
        eq(itsm.most_held, RUNNING_MAX, "checks at once")
        eq(len(early), n - LIVE_MAX, "grants answered before the ticket system did")
        for a in early.values():
            refused(a, "busy", "grant beyond the ticket checks' queue")
            assert a["error"]["message"].startswith("ticket_check:"), a
        waiting = [c for c in conns if c not in early]
        # clients that hang up: their checks keep their places, so more are refused
        for c in waiting[:100]:
            c.close()
        for i in range(5):
            refused(j.grant("carol", "admins", "1h", ticket="HOLDX%d" % i), "busy",
                    "grant while the hung-up ones wait")
        busy = [ev for ev in j.audit_events("refused") if ev.get("error") == "busy"]
        eq(len(busy), n - LIVE_MAX + 5, "busy refusals audited")
        assert all(ev["message"].startswith("ticket_check:") for ev in busy), busy[0]
        # the ticket system answers: every accepted grant completes
        itsm.release.set()
        for c in waiting[100:]:
            a = c.recv()
            assert a.get("ok"), a
            c.close()
        wait_until(lambda: len(j.audit_events("granted")) == 1 + LIVE_MAX, 60,
                   "the grants of the hung-up clients")
        assert _engine_fds(j) <= base + RUNNING_MAX + 8
        for c in early:
            c.close()
        e.grant_and_check("dave", "admins", "1h", ticket="INC00002")
        # stopping with checks running and waiting ends each of them once
        itsm.release = threading.Event()
        conns = []
        for i in range(RUNNING_MAX + 8):
            c = _connect(j)
            c.send({"op": "grant", "user": "erin", "group": "admins", "duration": "1h",
                    "ticket": "HOLDS%d" % i})
            conns.append(c)
        wait_until(lambda: itsm.holding == RUNNING_MAX, 20, "checks under way")
        # (the listener waits up to 10 s for their answers, then closes)
        eq(j.stop(), 0, "exit status")
        for c in conns:
            line = c.recv_line()
            assert not line or json.loads(line)["error"]["code"] == "shutting_down", line
            c.close()
        assert not e.is_member("admins", e.user_dn("erin"))
        j.start()
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_request_id_taken_while_a_grant_waits_for_its_ticket_does_not_name_another_group_s_grant():
    """A client that may see only admins asks with request_id R; while its
    ticket check is held, root asks for a grant of web with the same R.
    First come: root's request is refused (R is taken by a request in
    progress, which has no grant yet to name), and A's grant is made once
    its ticket is approved. Then the other order: root's grant of web holds
    R, and A's request with R is refused without naming root's grant, of a
    group A may not see (regression: the worker's check named it, where
    the main thread's check does not)."""
    from jittest import need_root
    need_root()
    nobody = 65534
    itsm = Itsm()
    e = Env(start=False, public=True,
            clients=[{"name": "admins-desk", "uid": nobody, "groups": ["admins"]},
                     {"name": "root", "uid": 0, "groups": ["*"]}])
    e.__enter__()
    try:
        j = e.jitd
        token_file = os.path.join(j.dir, "itsm.token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (TOKEN + "\n").encode())
        os.close(fd)
        j.config["groups"] = [
            j.group_entry("admins", ticket_check={
                "url": "http://127.0.0.1:%d/tickets/%%s" % itsm.port,
                "approved_field": "result.state", "approved_value": "approved",
                "timeout": "30s", "token_file": token_file}),
            j.group_entry("web")]
        j.write_config()
        j.start()
        out = {}
        t = threading.Thread(target=lambda: out.update(a=j.request_as(nobody, nobody, {
            "op": "grant", "user": "alice", "group": "admins", "duration": "1h",
            "ticket": "HOLD1", "request_id": "R-shared"})))
        t.start()
        wait_until(lambda: itsm.holding == 1, 10, "A's ticket check held")
        b = j.request({"op": "grant", "user": "bob", "group": "web", "duration": "1h",
                       "request_id": "R-shared"})
        refused(b, "policy_denied", "root's grant with the request_id A's holds")
        assert "was used for another request" in b["error"]["message"], b
        itsm.release.set()
        t.join(30)
        a = out.get("a")
        assert a and a.get("ok"), "A's grant, first with R-shared: %r" % a
        assert not e.is_member("web", e.user_dn("bob"))
        # the other order: root's grant recorded first
        b = j.ok({"op": "grant", "user": "bob", "group": "web", "duration": "1h",
                  "request_id": "R-two"})
        a = j.request_as(nobody, nobody, {"op": "grant", "user": "carol", "group": "admins",
                                          "duration": "1h", "ticket": "INC00001",
                                          "request_id": "R-two"})
        refused(a, "policy_denied", "A's grant after its request_id was taken")
        msg = a["error"]["message"]
        assert "was used for another request" in msg, msg
        assert b["grant"]["grant_id"] not in msg, "names a grant of web: %r" % msg
        assert not e.is_member("admins", e.user_dn("carol"))
    finally:
        e.__exit__(None, None, None)
        itsm.close()


def test_a_check_waiting_at_sigterm_is_answered_shutting_down():
    """The ticket system holds its answer; SIGTERM comes while the check
    waits: the client is answered shutting_down during the drain, nothing is
    recorded, and alice is not added (regression: the check was ended only
    after the drain, and its answer went nowhere: the client saw its
    connection close)."""
    import signal
    itsm = Itsm()
    e, _ = _env(itsm, check_timeout="60s")
    try:
        j = e.jitd
        c = j.connect(timeout=30)
        c.send({"op": "grant", "user": "alice", "group": "admins", "duration": "1h",
                "ticket": "HOLD1", "request_id": "r-hold"})
        wait_until(lambda: itsm.holding == 1, 10, "the check waiting at the ticket system")
        j.proc.send_signal(signal.SIGTERM)
        a = c.recv()
        refused(a, "shutting_down")
        c.close()
        wait_until(lambda: not j.running(), 20, "jitd to exit")
        assert not e.is_member("admins", e.user_dn("alice"))
        eq(j.audit_events("granted"), [], "granted lines")
    finally:
        itsm.release.set()
        e.__exit__(None, None, None)
        itsm.close()
