"""Misbehaving LDAP servers on 127.0.0.1 for outage tests.

    with MuteServer() as m:          accepts connections, never sends a byte
        m.port, m.accepted           (an ldaps:// server stuck before its TLS
                                     handshake)
    with MuteServer(starttls=True):  answers the first request (StartTLS)
                                     with success, then never sends again
                                     (stuck in the StartTLS handshake)

Each runs in a daemon thread, keeps every connection open until stop() (or
the end of the with block) and never reads more than one request per
connection. Standard library only.
"""

import select
import socket
import threading

STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


def _ber_len(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag, value):
    return bytes([tag]) + _ber_len(len(value)) + value


def split_message(buf):
    """(the first whole BER LDAPMessage of buf, the bytes after it), or
    (None, buf) while buf does not hold a whole one yet."""
    if len(buf) >= 2:
        first = buf[1]
        hdr = None
        if first < 0x80:
            hdr, length = 2, first
        else:
            k = first & 0x7F
            if len(buf) >= 2 + k:
                hdr, length = 2 + k, int.from_bytes(buf[2:2 + k], "big")
        if hdr is not None and len(buf) >= hdr + length:
            return buf[:hdr + length], buf[hdr + length:]
    return None, buf


def read_message(sock, buf=b""):
    """(one BER LDAPMessage from sock, after the bytes buf already read;
    the bytes read past it), or (None, b"") when the connection ends."""
    try:
        while True:
            msg, rest = split_message(buf)
            if msg is not None:
                return msg, rest
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
    except OSError:
        return None, b""


def _read_message(conn, timeout=5.0):
    """One BER LDAPMessage from conn (bytes), or None."""
    conn.settimeout(timeout)
    return read_message(conn)[0]


def _message_id(msg):
    """The messageID of an LDAPMessage (SEQUENCE { INTEGER id, ... })."""
    i = 2 if msg[1] < 0x80 else 2 + (msg[1] & 0x7F)
    if msg[i] != 0x02:
        raise ValueError("no messageID")
    n = msg[i + 1]
    return int.from_bytes(msg[i + 2:i + 2 + n], "big")


def starttls_success(msgid):
    """An ExtendedResponse: success for StartTLS."""
    op = _tlv(0x78, _tlv(0x0A, b"\x00") + _tlv(0x04, b"") + _tlv(0x04, b"")
              + _tlv(0x8A, STARTTLS_OID))
    return _tlv(0x30, _tlv(0x02, msgid.to_bytes(1 if msgid < 128 else 4, "big")) + op)


class MuteServer:
    def __init__(self, starttls=False):
        self.starttls = starttls
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            if self.starttls:
                msg = _read_message(conn)
                if msg is not None:
                    try:
                        conn.sendall(starttls_success(_message_id(msg)))
                    except (OSError, ValueError):
                        pass

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False
