"""Process and client helpers for the iap-proxy integration suite (stdlib only).

Everything here talks to real processes over real loopback sockets: the `iap-proxy` binary
(`serve`, `echo`, `mint`, `keygen`, `check-config`) is started as a subprocess, its stderr event
lines and stdout access-log lines are collected by reader threads, and every process started is
registered so the session can kill leftovers even when a test fails half-way.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("IAP_PROXY_BIN") or str(REPO / ".build" / "debug" / "iap-proxy")
VECTORS = Path(os.environ.get("IAP_PROXY_VECTORS") or (REPO.parent / "shared" / "vectors"))

AUDIENCE = "/projects/123456789/global/backendServices/987654321"
OTHER_AUDIENCE = "/projects/123456789/global/backendServices/111111111"
KID = "it-key-1"
ASSERTION = "x-goog-iap-jwt-assertion"

# Status codes the proxy's request parser may answer with before closing.
PARSER_STATUSES = {400, 414, 417, 431, 501, 505}

_live: list["Proc"] = []
_live_lock = threading.Lock()

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # The child gets SIGKILL if the test runner dies (processes are only started from the main
    # thread, so "parent thread exits" means the runner exits).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def clean_env(extra: dict | None = None) -> dict:
    """The environment without any IAP_PROXY_* variable (serve reads its flags from there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_PROXY_")}
    if extra:
        env.update(extra)
    return env


class Proc:
    """A subprocess whose stdout and stderr lines are collected as they arrive."""

    def __init__(self, args: list[str], name: str, env: dict | None = None, cwd: str | None = None):
        self.args = [str(a) for a in args]
        self.name = name
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean_env(env), cwd=cwd, preexec_fn=_die_with_parent,
        )
        self.pid = self.popen.pid
        self.signalled = False  # set when a test signals the process itself
        with _live_lock:
            _live.append(self)
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr_lines), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream, lines: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # -- output -----------------------------------------------------------------------------

    @staticmethod
    def _json_lines(lines: list[str]) -> list[dict]:
        out = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out

    def events(self, name: str | None = None) -> list[dict]:
        with self._cond:
            items = self._json_lines(self.stderr_lines)
        return [e for e in items if name is None or e.get("event") == name]

    def access_log(self) -> list[dict]:
        with self._cond:
            return self._json_lines(self.stdout_lines)

    def wait_for(self, predicate, timeout: float, what: str):
        """Polls predicate() until it returns something truthy: re-checked on every new output
        line, and at least every 0.2 s."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what}\n{self.output_tail()}")
            with self._cond:
                self._cond.wait(min(remaining, 0.2))

    def wait_event(self, name: str, timeout: float = 10, predicate=None, after: int = 0) -> dict:
        def find():
            for event in self.events(name)[after:]:
                if predicate is None or predicate(event):
                    return event
            return None
        return self.wait_for(find, timeout, f"event {name!r}")

    def wait_access(self, predicate, timeout: float = 10, what: str = "access log line") -> dict:
        def find():
            for line in self.access_log():
                if predicate(line):
                    return line
            return None
        return self.wait_for(find, timeout, what)

    def access_for(self, request_id: str, timeout: float = 10) -> dict:
        return self.wait_access(lambda l: l.get("request_id") == request_id, timeout, f"access log for {request_id}")

    def output_tail(self, n: int = 30) -> str:
        with self._cond:
            err = self.stderr_lines[-n:]
            out = self.stdout_lines[-n:]
        return f"--- {self.name} stderr (tail) ---\n" + "\n".join(err) + f"\n--- {self.name} stdout (tail) ---\n" + "\n".join(out)

    # -- lifecycle --------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        self.signalled = True
        if self.alive():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL if it did not exit in time. Returns the exit code."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for reader in self._readers:
            reader.join(timeout=2)
        with _live_lock:
            if self in _live:
                _live.remove(self)


def kill_all_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        proc.kill()


def run_bin(args: list[str], timeout: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=clean_env(env))


def _port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


class Echo(Proc):
    def __init__(self, port: int = 0):
        super().__init__([BIN, "echo", "--listen", f"127.0.0.1:{port}"], name="echo")
        event = self.wait_event("echo-serving", timeout=15)
        self.port = _port_of(event["listen"])
        self.url = f"http://127.0.0.1:{self.port}"


class Serve(Proc):
    """`iap-proxy serve` on an ephemeral port; `port` and `admin_port` come from the serving event."""

    def __init__(self, args: list[str], name: str = "serve", wait: bool = True):
        super().__init__([BIN, "serve", *args], name=name)
        self.port = self.admin_port = None
        if wait:
            self.wait_serving()

    def wait_serving(self, timeout: float = 20) -> None:
        def ready():
            if not self.alive():
                raise AssertionError(f"serve exited with {self.popen.returncode}\n{self.output_tail()}")
            found = self.events("serving")
            return found[0] if found else None
        event = self.wait_for(ready, timeout, "serving event")
        self.port = _port_of(event["listen"])
        admin = event.get("admin", "off")
        self.admin_port = None if admin == "off" else _port_of(admin)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- clients ---------------------------------------------------------------------------------


def connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, version: str):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A raw client socket with a read buffer and a strict-enough HTTP/1.1 response reader."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = connect(port, timeout)
        self.buf = b""
        self.eof = False
        self.reset = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionClosed(f"closed mid-line, buffered {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed(f"closed after {len(self.buf)} of {n} body bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self) -> tuple[int, str, list[tuple[str, str]], str]:
        while not self.buf and not self.eof:
            self._fill()
        if not self.buf:
            raise ConnectionClosed("closed before a response")
        line = self._read_line().decode("latin-1")
        version, status, *rest = line.split(" ", 2)
        headers = []
        while True:
            field = self._read_line()
            if not field:
                break
            name, value = field.decode("latin-1").split(":", 1)
            headers.append((name, value.strip(" \t")))
        return int(status), rest[0] if rest else "", headers, version

    def read_response(self, head_request: bool = False, allow_interim: bool = False) -> Response:
        """Reads one response; 1xx interim responses are returned as such only with allow_interim."""
        while True:
            status, reason, headers, version = self.read_head()
            if 100 <= status < 200 and status != 101 and not allow_interim:
                continue
            break
        resp = Response(status, reason, headers, b"", version)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None:
            assert te.lower() == "chunked", f"unexpected response Transfer-Encoding {te!r}"
            assert cl is None, "response with both Content-Length and Transfer-Encoding"
            body = bytearray()
            while True:
                size_line = self._read_line()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n"
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def wait_closed(self, timeout: float) -> bool:
        """True if the peer closed (EOF or reset) within timeout with no further bytes expected."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._fill():
                    return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(10)
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request_bytes(method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                  host: str = "app.test", token: str | None = None, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    if token is not None:
        lines.append(f"{ASSERTION}: {token}")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers or []):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http(port: int, method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None,
         body: bytes = b"", token: str | None = None, host: str = "app.test", timeout: float = 10) -> Response:
    """One request on a fresh connection (Connection: close), the response read to its end."""
    hdrs = list(headers or [])
    if not any(n.lower() == "connection" for n, _ in hdrs):
        hdrs.append(("Connection", "close"))
    with RawConn(port, timeout) as conn:
        conn.send(request_bytes(method, target, hdrs, body, host=host, token=token))
        return conn.read_response(head_request=method == "HEAD")


def echoed_headers(resp: Response) -> list[tuple[str, str]]:
    assert resp.status == 200, resp
    return [tuple(h) for h in resp.json()["headers"]]


def echoed_header_values(resp: Response, name: str) -> list[str]:
    return [v for k, v in echoed_headers(resp) if k.lower() == name.lower()]


def curl(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RSSSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread."""

    def __init__(self, proc: Proc, interval: float = 0.05):
        self.proc = proc
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss = self.proc.rss_kib()
            if rss is not None:
                self.samples.append(rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_kib(self) -> int:
        return max(self.samples) if self.samples else 0


# -- large bodies ---------------------------------------------------------------------------------

GiB = 1 << 30
MiB = 1 << 20
_BASE_BLOCK = None


def pattern_block(index: int, size: int = MiB) -> bytes:
    """Block `index` of a deterministic pseudo-random stream: a fixed random block whose first
    8 bytes are the block index, so dropped, repeated or reordered blocks change the digest."""
    global _BASE_BLOCK
    if _BASE_BLOCK is None or len(_BASE_BLOCK) != size:
        import random
        _BASE_BLOCK = random.Random(20261127).randbytes(size)
    return index.to_bytes(8, "big") + _BASE_BLOCK[8:size]


class PatternBody:
    """An iterable upload body of `total` bytes; hashes and counts what was handed out."""

    def __init__(self, total: int, block: int = MiB):
        import hashlib
        self.total = total
        self.block = block
        self.handed_out = 0
        self.sha = hashlib.sha256()

    def __iter__(self):
        index = 0
        while self.handed_out < self.total:
            data = pattern_block(index, self.block)[: self.total - self.handed_out]
            self.sha.update(data)
            yield data
            self.handed_out += len(data)
            index += 1


# -- error pages ---------------------------------------------------------------------------------

REASON_CODES = [
    "missing-assertion", "duplicate-assertion", "malformed-token", "alg-not-allowed", "unknown-kid", "bad-signature",
    "expired", "issued-in-future", "wrong-audience", "wrong-issuer", "malformed-claims", "not-allowlisted",
    "keys-unavailable", "lifetime-too-long",
]


def assert_generic_error(resp, status: int, reason: str):
    """The page names the status and the request id only; the reason stays in the log."""
    assert resp.status == status, resp
    request_id = resp.header("X-Request-Id")
    assert request_id, f"no X-Request-Id on {resp}"
    text = resp.body.decode("utf-8", "replace")
    assert str(status) in text and f"request id: {request_id}" in text, text
    for code in REASON_CODES:
        assert code not in text, f"reason code {code!r} leaked into the body: {text!r}"
    assert reason not in text
    return request_id
