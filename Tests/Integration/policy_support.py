"""Helpers for the policy tests (routes, allow lists, path normalization, presets, live reload):
`iap-proxy serve --config FILE.yaml` processes, requests whose access-log line is found again,
and a background load that records every (time, user, status) while a policy file is edited.

Import the fixtures into a test module with `from policy_support import cserve  # noqa: F401`.
"""

from __future__ import annotations

import itertools
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import ServeFactory
from helpers import AUDIENCE, RawConn, Serve, http, request_bytes

RELOADED = "policy-reloaded"
RELOAD_FAILED = "policy-reload-failed"


class ConfigServeFactory(ServeFactory):
    """Starts `iap-proxy serve --config` processes, each with its config (and allowlist files)
    written to a directory of its own. Flags give what the config file does not (listen on port
    0, the echo upstream, the suite's audience and key file); the policy comes from the file."""

    def __init__(self, environment, root: Path):
        super().__init__(environment)
        self.root = root
        self._serial = itertools.count(1)

    def directory(self) -> Path:
        path = self.root / f"proxy{next(self._serial)}"
        path.mkdir()
        return path

    def __call__(self, config: str | Path, *extra, files: dict | None = None, upstream: str | None = None,
                 workers: int = 2, directory: Path | None = None, wait: bool = True,
                 listen: str = "127.0.0.1:0") -> Serve:
        """With `listen` on port 0 every worker binds a port of its own and only the first is
        reported (so only worker 0 gets traffic): give a fixed port to spread connections."""
        if isinstance(config, Path):
            path = config
        else:
            directory = directory or self.directory()
            for name, text in (files or {}).items():
                (directory / name).write_text(textwrap.dedent(text))
            path = directory / "config.yaml"
            path.write_text(textwrap.dedent(config))
        args = ["--config", path, "--listen", listen, "--upstream", upstream or self.env.echo.url,
                "--audience", AUDIENCE, "--jwks-file", self.env.jwks, "--workers", str(workers),
                "--admin-listen", "off", "--key-wait-timeout", "1s", *extra]
        proc = Serve([str(a) for a in args], wait=False)
        proc.config_path = path
        self.started.append(proc)
        if wait:
            proc.wait_serving()
        return proc


@pytest.fixture
def cserve(env, tmp_path):
    """`cserve(CONFIG_YAML, files={"allowlist.txt": ...})` starts a proxy on that config."""
    factory = ConfigServeFactory(env, tmp_path)
    yield factory
    factory.stop_all()


_serial = itertools.count(1)


def call(proxy, target: str, token: str | None = None, method: str = "GET", host: str = "app.test",
         headers: list | None = None, body: bytes = b"", log: bool = True):
    """One request on a fresh connection; returns (response, its access-log line). A marker query
    parameter (`_rid=N`) finds the log line again; the path part of the target is sent as given."""
    marker = f"_rid={next(_serial)}"
    full = target + ("&" if "?" in target else "?") + marker
    resp = http(proxy.port, method, full, headers=headers, body=body, token=token, host=host)
    line = None
    if log:
        line = proxy.wait_access(lambda l: marker in str(l.get("path", "")), timeout=10,
                                 what=f"access log line of {method} {target}")
    return resp, line


def upstream_path(resp) -> str:
    """The path (without the query) the echo upstream received."""
    assert resp.status == 200, resp
    return resp.json()["target"].split("?", 1)[0]


# -- live reload --------------------------------------------------------------------------------


class Traffic:
    """Background load: every ~20 ms one request, cycling through `tokens` (user -> token), on a
    keep-alive connection (thread "keepalive") and on fresh connections (thread "fresh"). Every
    request is recorded as (sent, done, user, status, thread); status is an int or "error: ...".
    """

    def __init__(self, port: int, tokens: dict, interval: float = 0.02, path: str = "/load"):
        self.port = port
        self.tokens = tokens
        self.interval = interval
        self.path = path
        self.records: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(mode,), daemon=True) for mode in ("keepalive", "fresh")]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, mode: str):
        users = list(self.tokens)
        conn = None
        for n in itertools.count():
            if self._stop.is_set():
                break
            user = users[n % len(users)]
            sent = time.monotonic()
            try:
                if mode == "keepalive":
                    if conn is None:
                        conn = RawConn(self.port, timeout=10)
                    conn.send(request_bytes("GET", f"{self.path}?{mode}={n}", token=self.tokens[user]))
                    resp = conn.read_response()
                    if (resp.header("Connection") or "").lower() == "close":
                        conn.close()
                        conn = None
                else:
                    resp = http(self.port, "GET", f"{self.path}?{mode}={n}", token=self.tokens[user])
                status = resp.status
            except Exception as exc:  # noqa: BLE001 - recorded, the test fails on it
                status = f"error: {exc!r}"
                if conn is not None:
                    conn.close()
                    conn = None
            with self._lock:
                self.records.append((sent, time.monotonic(), user, status, mode))
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def snapshot(self) -> list[tuple]:
        with self._lock:
            return list(self.records)

    def count(self, user: str, after: float = 0.0) -> int:
        return sum(1 for r in self.snapshot() if r[2] == user and r[0] >= after)

    def wait_requests(self, user: str, after: float, n: int = 5, timeout: float = 10) -> None:
        """Waits until `n` requests of `user` were sent after `after` and answered."""
        deadline = time.monotonic() + timeout
        while self.count(user, after) < n:
            assert time.monotonic() < deadline, f"background load stalled: {self.snapshot()[-5:]}"
            time.sleep(0.02)
