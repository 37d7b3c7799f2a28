"""Helpers for the fault-table tests (test_faults_*.py; the misbehaving key server is
upstreams.KeyServer): /proc readings of a process (fds, RSS, CPU),
RLIMIT_NOFILE handling, tokens naming arbitrary kids, and a small keep-alive load generator.
Stdlib only, like the rest of the suite.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import socket
import threading
import time

import pytest

from helpers import RawConn, request_bytes

# -- /proc ------------------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_fd_count(pid: int) -> int:
    n = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the whole process, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls predicate() until truthy; returns its value or fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    value = predicate()
    if value:
        return value
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")


def wait_fds(pid: int, target: int, timeout: float, slack: int = 0) -> int:
    """Waits until the process holds at most target + slack descriptors; returns the count."""
    counts = []

    def settled():
        counts.append(fd_count(pid))
        return counts[-1] <= target + slack

    try:
        wait_until(settled, timeout, "descriptors back to baseline")
    except AssertionError:
        raise AssertionError(f"pid {pid} holds {counts[-1]} descriptors, baseline {target} (+{slack}) "
                             f"after {timeout}s: {sorted(_fd_kinds(pid).items())}") from None
    return counts[-1]


def _fd_kinds(pid: int) -> dict:
    kinds: dict = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


@contextlib.contextmanager
def nofile_limit(soft: int):
    """Sets this process's soft RLIMIT_NOFILE (children started inside inherit it), raising the
    hard limit too where allowed (root, as in CI); restored after. Skips the test when the
    limit cannot be had."""
    old_soft, old_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = max(old_hard, soft) if old_hard != resource.RLIM_INFINITY else old_hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except (ValueError, OSError) as exc:
        pytest.skip(f"RLIMIT_NOFILE {soft} not allowed here (hard limit {old_hard}): {exc}")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old_soft, old_hard))


# -- tokens -----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_kid(token: str, kid: str) -> str:
    """The token with its header's kid replaced (the signature no longer matches, but a verifier
    looks the kid up before it checks the signature: an unknown kid is refused as unknown-kid)."""
    _, payload, signature = token.split(".")
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
    return ".".join([header, payload, signature])


def jwks_union(*paths) -> bytes:
    """One JWK set holding the keys of several jwks.json files."""
    keys = []
    for path in paths:
        keys += json.loads(open(path).read())["keys"]
    return json.dumps({"keys": keys}).encode()


# -- load -------------------------------------------------------------------------------------


class KeepAliveLoad:
    """`clients` threads, each sending GETs on its own keep-alive connection (reconnecting when
    the proxy closes it; the first `fresh` clients use a new connection per request), the token
    chosen per request by token_for(client, n) -> (label, token).
    Every request is recorded as (sent, done, client, label, status or 'error: ...')."""

    def __init__(self, port: int, clients: int, token_for, path: str = "/load", pause: float = 0.0,
                 timeout: float = 10, fresh: int = 0):
        self.fresh = fresh  # clients 0 .. fresh-1 open a new connection per request
        self.port = port
        self.token_for = token_for
        self.path = path
        self.pause = pause
        self.timeout = timeout
        self.records: list[tuple] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def _run(self, client: int):
        conn = None
        n = 0
        while not self.stopping.is_set():
            label, token = self.token_for(client, n)
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = RawConn(self.port, timeout=self.timeout)
                headers = [("Connection", "close")] if client < self.fresh else []
                conn.send(request_bytes("GET", f"{self.path}/{client}/{n}", headers, token=token))
                resp = conn.read_response()
                status = resp.status
                if client < self.fresh or (resp.header("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as exc:  # noqa: BLE001 - recorded; the test decides
                status = f"error: {exc!r}"
                if conn is not None:
                    conn.close()
                    conn = None
            with self.lock:
                self.records.append((sent, time.monotonic(), client, label, status))
            n += 1
            if self.pause:
                self.stopping.wait(self.pause)
        if conn is not None:
            conn.close()

    def snapshot(self) -> list[tuple]:
        with self.lock:
            return list(self.records)


# -- an upstream for client faults ------------------------------------------------------------


def ws_accept(key: str) -> str:
    import hashlib
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B65").encode()).digest()).decode()


def _header(req: dict, name: str) -> str | None:
    for key, value in req["headers"]:
        if key.lower() == name:
            return value
    return None


def router(slow: float = 3.0, big: int = 64 << 20):
    """A keep-alive upstream (threads, upstreams.PyUpstream) whose behaviour follows the path:

    /slow...      answers after `slow` seconds (sets state['slow_received'] first)
    /big...       a `big`-byte Content-Length body, sent as fast as the proxy takes it
    /ws-echo...   101, then every byte received is sent back (a byte-level tunnel peer)
    /ws-flood...  101, then WebSocket frames as fast as they are taken (state['ws_sent'] counts
                  bytes, state['ws_last'] is when the last send completed, state['ws_end'] when a
                  send failed)
    /ws-deaf...   101, then reads nothing until state['ws_drain'] is set, then reads to the end
                  (state['ws_drained'] bytes; state['ws_end'] at EOF or reset)
    anything else a small JSON answer: {"target", "n", "body_bytes"}
    """
    from upstreams import simple_response

    def tunnel(up, conn, mode: str):
        conn.sock.settimeout(30)
        try:
            if mode == "ws-echo":
                if conn.buf:
                    conn.send(conn.buf)
                    conn.buf = b""
                while True:
                    data = conn.sock.recv(65536)
                    if not data:
                        return
                    conn.sock.sendall(data)
            elif mode == "ws-flood":
                frame = b"\x82\x7f" + (65536).to_bytes(8, "big") + b"u" * 65536
                up.state["ws_sent"] = 0
                while not up.stopping.is_set():
                    conn.sock.sendall(frame)
                    up.state["ws_sent"] += len(frame)
                    up.state["ws_last"] = time.monotonic()
            elif mode == "ws-deaf":
                # reads nothing until the test sets state['ws_drain'], then reads to the end
                drain = up.state.setdefault("ws_drain", threading.Event())
                drain.wait(30)
                up.state["ws_drained"] = 0
                while True:
                    data = conn.sock.recv(1 << 20)
                    if not data:
                        break
                    up.state["ws_drained"] += len(data)
        except OSError as exc:
            up.state["ws_error"] = repr(exc)
        finally:
            up.state["ws_end"] = time.monotonic()

    def handler(up, conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            n = up.record(req)
            path = req["target"]
            if path.startswith("/slow"):
                up.state.setdefault("slow_received", threading.Event()).set()
                if not up.sleep(slow):
                    return
                conn.send(simple_response(b"slow"))
            elif path.startswith("/big"):
                conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n".encode())
                block = b"b" * (1 << 20)
                for _ in range(big // len(block)):
                    conn.sock.sendall(block)
            elif path.startswith("/ws-"):
                key = _header(req, "sec-websocket-key") or ""
                conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Accept: {ws_accept(key)}\r\n\r\n").encode())
                return tunnel(up, conn, path[1:].split("/")[0])
            else:
                body = json.dumps({"target": path, "n": n, "body_bytes": req["body_bytes"]}).encode()
                conn.send(simple_response(body, headers=[("Content-Type", "application/json")]))

    return handler


def upgrade_request(path: str, token: str) -> bytes:
    return request_bytes("GET", path, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                       ("Sec-WebSocket-Version", "13"),
                                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")], token=token)


def read_head(sock: socket.socket, timeout: float = 10) -> tuple[bytes, bytes]:
    """Reads up to the end of a response head; returns (head, bytes read after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response head: {data[:200]!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


# -- many responses -----------------------------------------------------------------------------


class ResponseStream:
    """Splits a byte stream into Content-Length-framed responses (what the proxy sends for echo's
    answers and its own pages) without copying the stream per line: fast enough for 10^5 responses.
    feed() returns the complete responses as (status, headers-bytes, body)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes, bytes]]:
        import re
        self.buf += data
        out = []
        pos = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = bytes(self.buf[pos:end])
            match = re.search(rb"\r\ncontent-length: *([0-9]+)", head, re.IGNORECASE)
            assert match, f"response without Content-Length: {head[:300]!r}"
            length = int(match.group(1))
            if len(self.buf) < end + 4 + length:
                break
            status = int(head[9:12])
            out.append((status, head, bytes(self.buf[end + 4:end + 4 + length])))
            pos = end + 4 + length
        del self.buf[:pos]
        return out
