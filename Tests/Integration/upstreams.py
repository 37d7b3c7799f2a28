"""Purpose-built Python upstreams (threads + sockets, stdlib only) for behaviours `iap-proxy echo`
cannot produce: slow heads and bodies, resets, chunked / until-close / SSE responses, a 1 GiB
download, broken response heads, keep-alive connections closed between requests, and a recording
upstream that keeps the raw bytes it received and parses them strictly (smuggling corpora).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time


class RequestError(Exception):
    """The upstream received bytes that are not one unambiguous HTTP/1.1 request."""


class UpConn:
    """One accepted upstream connection with a read buffer."""

    def __init__(self, sock: socket.socket, upstream: "PyUpstream", serial: int):
        self.sock = sock
        self.upstream = upstream
        self.serial = serial
        self.buf = b""
        self.raw = bytearray()  # every byte received on this connection
        self.eof = False

    def fill(self, timeout: float | None = None) -> bool:
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return True
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        self.raw += data
        self.upstream.last_activity = time.monotonic()
        return True

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if b"\n" in self.buf:
                raise RequestError(f"bare LF in {self.buf[:200]!r}")
            if not self.fill():
                raise EOFError
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_request(self, read_body: bool = True, body_sink=None) -> dict | None:
        """Parses one request strictly; None on a clean EOF before any byte of it."""
        while not self.buf:
            if not self.fill():
                return None
        start = len(self.raw) - len(self.buf)
        line = self.read_line()
        match = re.fullmatch(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/1\.([01])", line)
        if not match:
            raise RequestError(f"bad request line {line!r}")
        headers: list[tuple[str, str]] = []
        while True:
            field = self.read_line()
            if not field:
                break
            fm = re.fullmatch(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e\x80-\xff](?:[\x20-\x7e\t\x80-\xff]*[\x21-\x7e\x80-\xff])?)?[ \t]*", field)
            if not fm:
                raise RequestError(f"bad field line {field!r}")
            headers.append((fm.group(1).decode("latin-1"), (fm.group(2) or b"").decode("latin-1")))
        req = {
            "method": match.group(1).decode(), "target": match.group(2).decode("latin-1"),
            "version": "HTTP/1." + match.group(3).decode(), "headers": headers, "body": b"", "body_bytes": 0,
            "conn": self.serial,
        }
        te = [v for k, v in headers if k.lower() == "transfer-encoding"]
        cl = [v for k, v in headers if k.lower() == "content-length"]
        req["te"], req["cl"] = te, cl
        if not read_body:
            return req
        sha = hashlib.sha256()
        body = bytearray()

        def take(data: bytes):
            req["body_bytes"] += len(data)
            sha.update(data)
            if body_sink is not None:
                body_sink(data)
            elif len(body) < (1 << 20):
                body.extend(data)

        if te:
            if len(te) != 1 or te[0] != "chunked" or cl:
                raise RequestError(f"ambiguous framing te={te} cl={cl}")
            while True:
                size_line = self.read_line()
                if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_line):
                    raise RequestError(f"bad chunk size line {size_line!r}")
                size = int(size_line, 16)
                if size == 0:
                    if self.read_line() != b"":
                        raise RequestError("trailers forwarded")
                    break
                remaining = size
                while remaining:
                    while not self.buf:
                        if not self.fill():
                            raise EOFError
                    piece = self.buf[:remaining]
                    self.buf = self.buf[len(piece):]
                    remaining -= len(piece)
                    take(piece)
                if self.read_exact(2) != b"\r\n":
                    raise RequestError("bad chunk end")
        elif cl:
            if len(cl) != 1 or not re.fullmatch(r"[0-9]+", cl[0]):
                raise RequestError(f"bad Content-Length {cl}")
            remaining = int(cl[0])
            while remaining:
                while not self.buf:
                    if not self.fill():
                        raise EOFError
                piece = self.buf[:remaining]
                self.buf = self.buf[len(piece):]
                remaining -= len(piece)
                take(piece)
        req["body"] = bytes(body)
        req["body_sha256"] = sha.hexdigest()
        req["raw"] = bytes(self.raw[start:len(self.raw) - len(self.buf)])
        return req

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        reset(self.sock)


def reset(sock: socket.socket) -> None:
    """Closes with RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def simple_response(body: bytes = b"ok", status: str = "200 OK", headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class PyUpstream:
    """A threaded TCP server on 127.0.0.1 (port 0: any free one) calling handler(upstream, conn)
    per connection."""

    def __init__(self, handler, name: str = "py-upstream", port: int = 0):
        self.handler = handler
        self.name = name
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.conns: list[UpConn] = []
        self.requests: list[dict] = []
        self.errors: list[str] = []
        self.last_activity = time.monotonic()
        self.state: dict = {}
        self.threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def _accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = UpConn(sock, self, len(self.conns))
                self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: UpConn):
        try:
            self.handler(self, conn)
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            if not self.stopping.is_set() and not isinstance(exc, (EOFError, BrokenPipeError, ConnectionResetError)):
                with self.lock:
                    self.errors.append(f"conn {conn.serial}: {exc!r}")
        except RequestError as exc:
            with self.lock:
                self.errors.append(f"conn {conn.serial}: {exc}")
        except Exception as exc:  # noqa: BLE001 - recorded for the test to see
            with self.lock:
                self.errors.append(f"conn {conn.serial}: {exc!r}")
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass

    def record(self, req: dict) -> int:
        with self.lock:
            self.requests.append(req)
            return len(self.requests)

    def sleep(self, seconds: float) -> bool:
        """Sleeps unless the upstream is stopping; False when it is."""
        return not self.stopping.wait(seconds)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accepter.join(timeout=2)
        for thread in self.threads:
            thread.join(timeout=2)


# -- handlers ---------------------------------------------------------------------------------


def serve_each(respond):
    """Keep-alive loop: reads each request, records it, and sends respond(upstream, conn, req)."""

    def handler(up: PyUpstream, conn: UpConn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            out = respond(up, conn, req)
            if out is None:
                return
            conn.send(out)

    return handler


def slow_head(delay: float):
    """Answers each request after `delay` seconds (signals `received` when a request arrived)."""

    def handler(up: PyUpstream, conn: UpConn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            up.state.setdefault("received", threading.Event()).set()
            if not up.sleep(delay):
                return
            conn.send(simple_response(b"slow-ok"))

    return handler


def slow_body(pieces: int, pause: float, piece: bytes = b"x" * 100):
    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {pieces * len(piece)}\r\n\r\n".encode())
        for _ in range(pieces):
            if not up.sleep(pause):
                return
            conn.send(piece)
        up.sleep(5)

    return handler


def reset_mid_body(declared: int = 1_000_000, sent: int = 10_000):
    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n".encode() + b"r" * sent)
        up.sleep(0.3)
        conn.reset()

    return handler


def chunked_response(pieces: list[bytes], pause: float = 0.01, trailers: bytes = b""):
    def handler(up: PyUpstream, conn: UpConn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
                if pause and not up.sleep(pause):
                    return
            conn.send(b"0\r\n" + trailers + b"\r\n")

    return handler


def until_close(body: bytes):
    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(0, len(body), 1000):
            conn.send(body[i:i + 1000])
        conn.sock.shutdown(socket.SHUT_WR)
        up.sleep(1)

    return handler


def sse(events: list[bytes], timeout: float = 20):
    """Sends events one at a time; each next event only after the test sets state['ack'][i]."""

    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        acks = up.state["acks"]
        for i, event in enumerate(events):
            if i > 0:
                # The client must have received the previous event before this one is sent.
                if not acks[i - 1].wait(timeout):
                    up.state["stalled_at"] = i
                    return
            up.state.setdefault("sent_at", []).append(time.monotonic())
            conn.send(b"%x\r\n" % len(event) + event + b"\r\n")
        conn.send(b"0\r\n\r\n")
        up.sleep(1)

    return handler


def big_download(size: int, block: bytes):
    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n".encode())
        sent = 0
        view = memoryview(block)
        while sent < size:
            n = min(len(block), size - sent)
            conn.sock.sendall(view[:n])
            sent += n
        up.state["sent"] = sent
        up.sleep(2)

    return handler


def raw_reply(data: bytes, then_close: bool = True):
    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        up.record(req)
        conn.send(data)
        if then_close:
            conn.sock.shutdown(socket.SHUT_WR)
        up.sleep(1)

    return handler


def one_per_connection():
    """Answers one request with `Connection: keep-alive`, then closes that connection (as soon as
    the next request arrives on it, or after 0.3 s), the way servers with a short keep-alive do."""

    def handler(up: PyUpstream, conn: UpConn):
        req = conn.read_request()
        if req is None:
            return
        n = up.record(req)
        conn.send(simple_response(f"answer {n} on connection {conn.serial}".encode(), headers=[("Connection", "keep-alive")]))
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline and not conn.buf and not conn.eof:
            conn.fill(timeout=0.05)
        if conn.buf:
            with up.lock:
                up.state["closed_with_request_pending"] = up.state.get("closed_with_request_pending", 0) + 1
        conn.sock.close()

    return handler


def recorder():
    """Parses every request strictly (unambiguous framing only) and answers each with a marker."""

    def handler(up: PyUpstream, conn: UpConn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            n = up.record(req)
            # A one-byte body (a zero-length one would hit the proxy's zero-length-response bug,
            # see test_connections); HEAD answers carry the length but no body and say so.
            if req["method"] == "HEAD":
                conn.send(f"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Recorder: {n}\r\nX-Recorder-Head: 1\r\n\r\n".encode())
            else:
                conn.send(simple_response(b"r", headers=[("X-Recorder", str(n))]))

    return handler


def slow_reader(read_size: int = 256 * 1024, pause: float = 0.002):
    """Reads request bodies in bursts with pauses: the proxy's upload backpressure pauses and
    resumes many times."""

    def handler(up: PyUpstream, conn: UpConn):
        while True:
            total = [0]
            sha = hashlib.sha256()

            def sink(data: bytes):
                total[0] += len(data)
                sha.update(data)

            orig_fill = conn.fill

            def slow_fill(timeout=None):
                up.sleep(pause)
                conn.sock.settimeout(timeout)
                try:
                    data = conn.sock.recv(read_size)
                except socket.timeout:
                    return True
                except OSError:
                    data = b""
                if not data:
                    conn.eof = True
                    return False
                conn.buf += data
                return True

            conn.fill = slow_fill
            try:
                req = conn.read_request(body_sink=sink)
            finally:
                conn.fill = orig_fill
            if req is None:
                return
            up.record(req)
            conn.send(simple_response(f'{{"body_bytes":{total[0]},"body_sha256":"{sha.hexdigest()}"}}'.encode()))

    return handler


# -- a key server -----------------------------------------------------------------------------

OVERSIZED = 300 * 1024  # the fetcher's cap is 256 KiB


class KeyServer:
    """A JWK-set server on 127.0.0.1 (a PyUpstream: port 0 is any free one; one request per
    connection) whose behaviour is switched with `mode`:

    ok            200, the current `body`, Cache-Control: max-age=300
    status500     500 with a small body
    hang          accepts and reads the request, never answers (until stopped)
    garbage       200 with a body that is not JSON
    not-http      bytes that are not an HTTP response, then close
    oversized     200, a valid-looking JSON body of 300 KiB with its Content-Length
    oversized-chunked   the same without a length (chunked), so only the receive cap can stop it
    reset         reads the request and resets the connection

    Every request is recorded as (monotonic time, mode it was served with)."""

    MODES = ("ok", "status500", "hang", "garbage", "not-http", "oversized", "oversized-chunked", "reset")

    def __init__(self, body: bytes, port: int = 0, mode: str = "ok"):
        self.body = body
        self.mode = mode
        self.script: list[str] = []
        self.hits: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.server = PyUpstream(self._serve, name="key-server", port=port)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"

    def set(self, mode: str | None = None, body: bytes | None = None, script: list[str] | None = None) -> None:
        """Switches the behaviour; `script` gives one mode per coming request (the last one then
        stays the mode)."""
        for item in [mode, *(script or [])]:
            assert item is None or item in self.MODES, item
        with self.lock:
            if body is not None:
                self.body = body
            if mode is not None:
                self.mode = mode
            self.script = list(script or [])

    def count(self, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for t, _ in self.hits if t >= since)

    def times(self) -> list[float]:
        with self.lock:
            return [t for t, _ in self.hits]

    def _serve(self, up: PyUpstream, conn: UpConn):
        if conn.read_request() is None:
            return
        with self.lock:
            if self.script:
                self.mode = self.script.pop(0)
            mode, body = self.mode, self.body
            self.hits.append((time.monotonic(), mode))
        self._answer(conn.sock, mode, body)

    def _answer(self, sock: socket.socket, mode: str, body: bytes) -> None:
        def head(status: str, length: int | None, extra: str = "") -> bytes:
            framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
            return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nCache-Control: public, max-age=300\r\n"
                    f"{framing}{extra}Connection: close\r\n\r\n").encode()

        if mode == "ok":
            sock.sendall(head("200 OK", len(body)) + body)
        elif mode == "status500":
            page = b"internal error"
            sock.sendall(head("500 Internal Server Error", len(page)) + page)
        elif mode == "hang":
            self.server.stopping.wait(60)
        elif mode == "garbage":
            page = b"<html><body>Service temporarily unavailable</body></html>"
            sock.sendall(head("200 OK", len(page)) + page)
        elif mode == "not-http":
            sock.sendall(b"\x00\x01garbage that is not HTTP\r\n\r\n")
        elif mode in ("oversized", "oversized-chunked"):
            filler = json.dumps({"keys": [], "padding": "p" * OVERSIZED}).encode()
            if mode == "oversized":
                sock.sendall(head("200 OK", len(filler)))
                for i in range(0, len(filler), 16384):
                    sock.sendall(filler[i:i + 16384])
            else:
                sock.sendall(head("200 OK", None))
                for i in range(0, len(filler), 16384):
                    piece = filler[i:i + 16384]
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
        elif mode == "reset":
            reset(sock)

    def stop(self):
        self.server.stop()
