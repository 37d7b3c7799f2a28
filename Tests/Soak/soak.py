#!/usr/bin/env python3
"""Soak test: a release-built iap-proxy in front of `iap-proxy echo`, under sustained mixed load,
watched for leaks.

    Tests/Soak/soak.py [--duration 600] [--connections 240] [--websockets 8] [--new-per-second 5]
                       [--unknown-kids-per-second 0] [--jwks-file] [--no-wrk] [--bin PATH] [--logs DIR]

The proxy gets its keys from a local key server (--jwks-url on loopback, Cache-Control max-age=300,
so the refresher refetches every 4 min), or from the file with --jwks-file.

Load, for --duration seconds (in segments of at most 300 s, each with freshly minted tokens, so the
default 600 s token lifetime never runs out):
  - bulk: --connections keep-alive connections cycling 14 GET (200), 3 POST of 5-15 KiB (200),
    2 GET without a token (401), 1 GET with an outsider's token (403) per 20 requests; with wrk
    (Tests/Soak/soak.lua) when installed, else an asyncio generator in this process;
  - --websockets WebSockets echoing a message every 0.25 s, each reconnecting every ~30 s;
  - --new-per-second fresh connections per second, one request each (200/401/403 mix);
  - --unknown-kids-per-second fresh connections per second with a token naming a random kid (401
    after --key-wait-timeout; the key server must not see a fetch per request).

Every 10 s the proxy's RSS, descriptor count and CPU, and its request counters (/metrics) are
printed. It fails (exit 1) on: any status other than the expected one for its request, any
transport error (wrk socket errors, WebSocket failures, refused connections), RSS at the end of
the load above 120 % + 8 MiB of the RSS after warm-up, more descriptors at rest after the load
than at rest before it (or > 125 % + 64 during the load), the proxy dying, or SIGTERM not
draining to exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "Integration"))

from faults_support import cpu_seconds, fd_count, rss_kib, with_kid  # noqa: E402 - the path above
from helpers import free_port  # noqa: E402
from upstreams import KeyServer  # noqa: E402

AUDIENCE = "/projects/123456789/global/backendServices/987654321"
KID = "soak-1"
HEADER = "x-goog-iap-jwt-assertion"
SEGMENT = 300.0
SAMPLE_EVERY = 10.0


class Tokens:
    """The admitted user's and an outsider's token, re-minted per segment."""

    def __init__(self, binary: str, key: Path):
        self.binary = binary
        self.key = key
        self.lock = threading.Lock()
        self.valid = self.outsider = ""

    def mint(self) -> None:
        def one(email: str, hd: str) -> str:
            out = subprocess.run([self.binary, "mint", "--key", str(self.key), "--kid", KID, "--audience", AUDIENCE,
                                  "--email", email, "--hd", hd, "--ttl", "600"],
                                 capture_output=True, text=True, check=True)
            return out.stdout.strip()

        valid, outsider = one("alice@example.com", "example.com"), one("eve@evil.example", "evil.example")
        with self.lock:
            self.valid, self.outsider = valid, outsider

    def get(self) -> tuple[str, str]:
        with self.lock:
            return self.valid, self.outsider


class Tally:
    """Thread-safe counters and a bounded list of error descriptions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict = {}
        self.errors: list[str] = []
        self.error_count = 0

    def add(self, key, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def error(self, text: str) -> None:
        with self.lock:
            self.error_count += 1
            if len(self.errors) < 20:
                self.errors.append(text)


# -- a minimal asyncio HTTP/1.1 client --------------------------------------------------------

KINDS = ["ok"] * 14 + ["post"] * 3 + ["deny"] * 2 + ["outsider"]
EXPECTED = {"ok": 200, "post": 200, "deny": 401, "outsider": 403, "unknown-kid": 401}


def build_request(kind: str, tokens: Tokens, serial: int, close: bool = False) -> bytes:
    valid, outsider = tokens.get()
    path = f"/soak/{kind}/{serial}"
    headers = ["Host: app.test"]
    body = b""
    if kind in ("ok", "post"):
        headers.append(f"{HEADER}: {valid}")
    elif kind == "outsider":
        headers.append(f"{HEADER}: {outsider}")
    elif kind == "unknown-kid":
        headers.append(f"{HEADER}: {with_kid(valid, os.urandom(8).hex())}")
    if kind == "post":
        body = b"p" * (5120 * (1 + serial % 3))
        headers.append(f"Content-Length: {len(body)}")
    if close:
        headers.append("Connection: close")
    method = "POST" if kind == "post" else "GET"
    return (f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.read()
    return status, headers, body


def check(kind: str, serial: int, status: int, body: bytes, tally: Tally, where: str) -> None:
    tally.add((where, status))
    if status != EXPECTED[kind]:
        tally.error(f"{where}: {kind} request {serial} answered {status}: {body[:120]!r}")
    elif status == 200 and f'"target":"/soak/{kind}/{serial}"'.encode() not in body:
        tally.error(f"{where}: {kind} request {serial}: 200 with another body: {body[:120]!r}")


async def bulk_connection(port: int, tokens: Tokens, tally: Tally, stop: asyncio.Event, index: int):
    serial = index * 1_000_000
    reader = writer = None
    while not stop.is_set():
        kind = KINDS[serial % len(KINDS)]
        serial += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(build_request(kind, tokens, serial))
            status, headers, body = await asyncio.wait_for(read_response(reader), 30)
            check(kind, serial, status, body, tally, "bulk")
            if headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except Exception as exc:  # noqa: BLE001 - counted as a transport error
            tally.error(f"bulk: {kind} request {serial}: {exc!r}")
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.1)
    if writer is not None:
        writer.close()


async def new_connections(port: int, tokens: Tokens, tally: Tally, stop: asyncio.Event, per_second: float,
                          kinds=("ok", "post", "deny", "outsider", "ok"), first_serial: int = 9_000_000_000):
    serial = 0
    pending = set()

    async def one(kind: str, n: int):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(build_request(kind, tokens, n, close=True))
            status, _, body = await asyncio.wait_for(read_response(reader), 30)
            check(kind, n, status, body, tally, "fresh" if kind != "unknown-kid" else "unknown-kid")
            writer.close()
        except Exception as exc:  # noqa: BLE001
            tally.error(f"fresh: {kind} request {n}: {exc!r}")

    while not stop.is_set() and per_second > 0:
        kind = kinds[serial % len(kinds)]
        task = asyncio.create_task(one(kind, first_serial + serial))
        pending.add(task)
        task.add_done_callback(pending.discard)
        serial += 1
        try:
            await asyncio.wait_for(stop.wait(), 1.0 / per_second)
        except asyncio.TimeoutError:
            pass
    if pending:
        await asyncio.wait(pending, timeout=30)


async def websocket_client(port: int, tokens: Tokens, tally: Tally, stop: asyncio.Event, index: int):
    from websockets.asyncio.client import connect

    rng = random.Random(index)
    n = 0
    while not stop.is_set():
        valid, _ = tokens.get()
        lifetime = rng.uniform(20, 40)
        try:
            async with connect(f"ws://127.0.0.1:{port}/soak/ws/{index}", additional_headers={HEADER: valid},
                               open_timeout=10, close_timeout=5, ping_interval=None) as ws:
                tally.add(("ws", "opened"))
                opened = time.monotonic()
                while not stop.is_set() and time.monotonic() - opened < lifetime:
                    message = f"soak {index} {n} " + "w" * rng.randrange(0, 2000)
                    n += 1
                    await ws.send(message)
                    echoed = await asyncio.wait_for(ws.recv(), 10)
                    if echoed != message:
                        tally.error(f"ws {index}: message {n} echoed as {echoed[:60]!r}")
                    tally.add(("ws", "messages"))
                    try:
                        await asyncio.wait_for(stop.wait(), 0.25)
                    except asyncio.TimeoutError:
                        pass
        except Exception as exc:  # noqa: BLE001
            tally.error(f"ws {index}: {exc!r}")
            await asyncio.sleep(1)


class SideLoad:
    """WebSockets, fresh connections and (without wrk) the bulk load, in an asyncio loop of its own."""

    def __init__(self, port: int, tokens: Tokens, tally: Tally, args, bulk: bool):
        self.port, self.tokens, self.tally, self.args, self.bulk = port, tokens, tally, args, bulk
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        self.stop_event = asyncio.Event()
        self.started.set()
        tasks = [asyncio.create_task(websocket_client(self.port, self.tokens, self.tally, self.stop_event, i))
                 for i in range(self.args.websockets)]
        tasks.append(asyncio.create_task(new_connections(self.port, self.tokens, self.tally, self.stop_event,
                                                         self.args.new_per_second)))
        if self.args.unknown_kids_per_second > 0:
            tasks.append(asyncio.create_task(new_connections(
                self.port, self.tokens, self.tally, self.stop_event, self.args.unknown_kids_per_second,
                kinds=("unknown-kid",), first_serial=8_000_000_000)))
        if self.bulk:
            tasks += [asyncio.create_task(bulk_connection(self.port, self.tokens, self.tally, self.stop_event, i))
                      for i in range(self.args.connections)]
        await asyncio.gather(*tasks)

    def start(self):
        self.thread.start()
        self.started.wait(10)

    def stop(self):
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=60)


# -- metrics ------------------------------------------------------------------------------------

METRIC = re.compile(r'^iap_proxy_requests_total\{([^}]*)\} ([0-9.e+]+)$')


def scrape(admin_port: int) -> dict:
    """{(decision, reason, status_class): count} from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        match = METRIC.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            key = (labels.get("decision"), labels.get("reason"), labels.get("status_class"))
            out[key] = out.get(key, 0) + float(match.group(2))
    return out


# Reasons the mix produces; anything else is unexpected. A wrk run ends by closing its connections
# with requests in flight, so a few client aborts per connection and segment are expected too.
EXPECTED_REASONS = {("allow", "domain-ok"), ("deny", "missing-assertion"), ("deny", "not-allowlisted"),
                    ("deny", "unknown-kid")}
CLIENT_ABORTS = {"client-reset", "client-closed-mid-body", "client-timeout"}


# -- the run ------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args):
        self.args = args
        self.binary = args.bin
        self.dir = Path(tempfile.mkdtemp(prefix="iap-soak-"))
        self.logs = Path(args.logs) if args.logs else self.dir
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.samples: list[dict] = []
        self.tally = Tally()
        self.wrk_results: list[dict] = []
        self.failures: list[str] = []

    # processes

    def start(self):
        subprocess.run([self.binary, "keygen", "--out", str(self.dir / "keys"), "--kid", KID], check=True,
                       capture_output=True)
        (self.dir / "allowlist.txt").write_text("example.com\n")
        echo_port = free_port()
        self.echo = subprocess.Popen([self.binary, "echo", "--listen", f"127.0.0.1:{echo_port}"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.logs / "echo.log", "w"))
        self.procs.append(self.echo)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", echo_port), timeout=1).close()
                break
            except OSError:
                if self.echo.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"iap-proxy echo did not start: {(self.logs / 'echo.log').read_text()[-2000:]}")
                time.sleep(0.05)
        self.port, self.admin_port = free_port(), free_port()
        access = open(self.logs / "access.log", "w") if self.args.logs else subprocess.DEVNULL
        self.serve_log = self.logs / "serve.log"
        self.proxy = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}",
             "--upstream", f"http://127.0.0.1:{echo_port}", "--audience", AUDIENCE,
             *self.key_source(), "--allowlist", str(self.dir / "allowlist.txt"),
             "--upstream-idle-timeout", "3s", "--drain-timeout", "10s", "--max-connections", "20000"],
            stdout=access, stderr=open(self.serve_log, "w"))
        self.procs.append(self.proxy)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proxy.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"iap-proxy did not become ready:\n{self.serve_log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.tokens = Tokens(self.binary, self.dir / "keys" / "private.pem")
        self.tokens.mint()

    def key_source(self) -> list[str]:
        jwks = self.dir / "keys" / "jwks.json"
        if self.args.jwks_file:
            self.key_server = None
            return ["--jwks-file", str(jwks)]
        self.key_server = KeyServer(jwks.read_bytes())
        return ["--jwks-url", self.key_server.url]

    def stop_all(self):
        if getattr(self, "key_server", None):
            self.key_server.stop()
            self.key_server = None
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    # sampling

    def sample(self, started: float, phase: str) -> dict:
        pid = self.proxy.pid
        now = time.monotonic()
        cpu = cpu_seconds(pid)
        previous = self.samples[-1] if self.samples else None
        row = {"t": now - started, "phase": phase, "rss_kib": rss_kib(pid), "fds": fd_count(pid), "cpu_s": cpu,
               "cpu_pct": 100 * (cpu - previous["cpu_s"]) / (now - previous["mono"]) if previous else 0.0,
               "mono": now}
        try:
            metrics = scrape(self.admin_port)
        except OSError as exc:
            metrics = {}
            self.failures.append(f"/metrics unreachable at {row['t']:.0f}s: {exc!r}")
        row["requests"] = int(sum(metrics.values()))
        row["by_class"] = {}
        for (_, _, status_class), value in metrics.items():
            row["by_class"][status_class] = row["by_class"].get(status_class, 0) + int(value)
        row["metrics"] = metrics
        self.samples.append(row)
        by = row["by_class"]
        print(f"{row['t']:6.0f}  {phase:<8} {row['rss_kib'] / 1024:8.1f} {row['fds']:6d} {row['cpu_pct']:6.0f} "
              f"{row['requests']:11d} {by.get('2xx', 0):10d} {by.get('4xx', 0):9d} {by.get('5xx', 0):6d} "
              f"{self.tally.error_count:7d}", flush=True)
        return row

    def sampler(self, started: float, stop: threading.Event, warmup: float):
        while not stop.wait(SAMPLE_EVERY - ((time.monotonic() - started) % SAMPLE_EVERY)):
            if self.proxy.poll() is not None:
                self.failures.append(f"iap-proxy exited with {self.proxy.returncode} during the load")
                return
            self.sample(started, "warm-up" if time.monotonic() - started < warmup else "load")

    # the load

    def run_wrk(self, seconds: float) -> None:
        token_file = self.dir / "tokens.txt"
        valid, outsider = self.tokens.get()
        token_file.write_text(f"{valid}\n{outsider}\n")
        env = dict(os.environ, SOAK_TOKENS=str(token_file))
        cmd = ["wrk", "-t", str(self.args.wrk_threads), "-c", str(self.args.connections), "-d", f"{seconds:.0f}s",
               "--timeout", "10s", "-s", str(Path(__file__).with_name("soak.lua")), f"http://127.0.0.1:{self.port}/"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
        line = next((l for l in out.stdout.splitlines() if l.startswith("SOAK-WRK ")), None)
        if out.returncode != 0 or line is None:
            self.failures.append(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
            return
        self.wrk_results.append(json.loads(line.split(" ", 1)[1]))

    def run(self) -> int:
        args = self.args
        use_wrk = not args.no_wrk and shutil.which("wrk") is not None
        self.start()
        time.sleep(0.5)
        rest_fds_before = fd_count(self.proxy.pid)
        warmup = min(30.0, max(10.0, args.duration / 10))
        load = (f"wrk {args.wrk_threads} threads x {args.connections} connections" if use_wrk
                else f"asyncio x {args.connections} connections")
        print(f"iap-proxy {self.binary} (pid {self.proxy.pid}); {args.duration:.0f} s of load: {load}, "
              f"{args.websockets} WebSockets, {args.new_per_second:g} new connections/s, "
              f"{args.unknown_kids_per_second:g} unknown-kid requests/s; warm-up {warmup:.0f} s; logs in {self.logs}")
        print(f"{'t(s)':>6}  {'phase':<8} {'RSS(MiB)':>8} {'fds':>6} {'cpu%':>6} {'requests':>11} {'2xx':>10} "
              f"{'4xx':>9} {'5xx':>6} {'errors':>7}")
        started = time.monotonic()
        self.sample(started, "start")
        side = SideLoad(self.port, self.tokens, self.tally, args, bulk=not use_wrk)
        side.start()
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=self.sampler, args=(started, stop_sampling, warmup), daemon=True)
        sampler.start()
        try:
            remaining = args.duration
            while remaining > 0.5 and self.proxy.poll() is None:
                segment = min(SEGMENT, remaining)
                if use_wrk:
                    self.run_wrk(segment)
                else:
                    time.sleep(segment)
                remaining = args.duration - (time.monotonic() - started)
                if remaining > 0.5:
                    self.tokens.mint()
        finally:
            side.stop()
            stop_sampling.set()
            sampler.join(timeout=15)
        load_end = self.sample(started, "end") if self.proxy.poll() is None else None

        # at rest again: every client gone, pooled upstream connections expired
        rest_fds_after = None
        deadline = time.monotonic() + 20
        while self.proxy.poll() is None and time.monotonic() < deadline:
            rest_fds_after = fd_count(self.proxy.pid)
            if rest_fds_after <= rest_fds_before:
                break
            time.sleep(0.5)
        exit_code, drain_s = None, None
        if self.proxy.poll() is None:
            t0 = time.monotonic()
            self.proxy.send_signal(signal.SIGTERM)
            try:
                exit_code = self.proxy.wait(timeout=20)
                drain_s = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                pass
        if getattr(self, "key_server", None):
            self.fetches_seen = self.key_server.count()
        self.stop_all()
        return self.report(use_wrk, warmup, load_end, rest_fds_before, rest_fds_after, exit_code, drain_s)

    # the verdict

    def report(self, use_wrk, warmup, load_end, rest_fds_before, rest_fds_after, exit_code, drain_s) -> int:
        args = self.args
        print()
        failures = list(self.failures)
        if self.proxy.returncode not in (0, None) and exit_code is None:
            failures.append(f"iap-proxy died (exit {self.proxy.returncode})")

        # requests and statuses
        counts = self.tally.counts
        wrk_requests = sum(r["requests"] for r in self.wrk_results)
        wrk_statuses: dict = {}
        wrk_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
        wrk_wrong = 0
        for result in self.wrk_results:
            for status, count in result["statuses"].items():
                wrk_statuses[int(status)] = wrk_statuses.get(int(status), 0) + count
            for kind in wrk_errors:
                wrk_errors[kind] += result["errors"][kind]
            wrk_wrong += result["wrong"]
        py_statuses: dict = {}
        for (where, status), count in counts.items():
            if where in ("bulk", "fresh", "unknown-kid"):
                py_statuses[status] = py_statuses.get(status, 0) + count
        statuses = dict(wrk_statuses)
        for status, count in py_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
        total = sum(statuses.values())
        unexpected_status = {s: c for s, c in statuses.items() if s not in (200, 401, 403)}
        if unexpected_status:
            failures.append(f"unexpected statuses {unexpected_status}")
        if wrk_wrong:
            failures.append(f"{wrk_wrong} wrk responses were 200 for a request that must be refused, or not echo's")
        if any(wrk_errors.values()):
            failures.append(f"wrk transport errors {wrk_errors}")
        if self.tally.error_count:
            failures.append(f"{self.tally.error_count} errors in the Python load: {self.tally.errors[:5]}")
        if use_wrk:
            expected_mix = {200: 17 / 20, 401: 2 / 20, 403: 1 / 20}
            for status, share in expected_mix.items():
                got = wrk_statuses.get(status, 0) / max(1, wrk_requests)
                if abs(got - share) > 0.02:
                    failures.append(f"wrk: {got:.1%} of responses were {status}, the mix sends {share:.0%}")

        # the proxy's own account (/metrics): only the reasons the mix produces, no 5xx
        metrics = load_end["metrics"] if load_end else {}
        aborts = 0
        for (decision, reason, status_class), value in metrics.items():
            if (decision, reason) in EXPECTED_REASONS and status_class in ("2xx", "4xx", "1xx"):
                continue
            if reason in CLIENT_ABORTS:
                aborts += int(value)
                continue
            failures.append(f"/metrics: {int(value)} requests {decision}/{reason} ({status_class})")
        segments = max(1, len(self.wrk_results))
        if aborts > args.connections * segments + 4 * args.websockets:
            failures.append(f"/metrics: {aborts} client aborts, more than the load generator's segment ends explain")

        # memory and descriptors
        warm = next((s for s in self.samples if s["phase"] == "load"), None) or (self.samples[1] if len(self.samples) > 1 else None)
        rss_limit = None
        if warm and load_end:
            rss_limit = warm["rss_kib"] * 1.2 + 8 * 1024
            if load_end["rss_kib"] > rss_limit:
                failures.append(f"RSS grew from {warm['rss_kib'] / 1024:.1f} MiB after warm-up to "
                                f"{load_end['rss_kib'] / 1024:.1f} MiB (limit {rss_limit / 1024:.1f} MiB)")
            if load_end["fds"] > warm["fds"] * 1.25 + 64:
                failures.append(f"descriptors grew during the load: {warm['fds']} after warm-up, {load_end['fds']} at the end")
        if rest_fds_after is None or rest_fds_after > rest_fds_before:
            failures.append(f"descriptors at rest: {rest_fds_before} before the load, {rest_fds_after} after")
        if exit_code != 0:
            failures.append(f"SIGTERM: exit code {exit_code} (drain {drain_s})")

        fetches = None
        if getattr(self, "key_server", None) is not None:
            fetches = self.key_server.count()
        elif hasattr(self, "fetches_seen"):
            fetches = self.fetches_seen
        elapsed = load_end["t"] if load_end else 0
        if fetches is not None:
            # one at start, one per 240 s (80 % of max-age 300), one per 15 s at most for unknown kids
            allowed = 1 + elapsed / 240 + (elapsed / 15 + 1 if args.unknown_kids_per_second > 0 else 0) + 1
            if fetches > allowed:
                failures.append(f"the key server was asked {fetches} times in {elapsed:.0f} s (at most {allowed:.0f} expected)")
        peak = max(s["rss_kib"] for s in self.samples) if self.samples else 0
        print("summary")
        print(f"  load                 {elapsed:.0f} s; " + (f"wrk {args.wrk_threads} threads x {args.connections} "
              "connections" if use_wrk else f"asyncio x {args.connections} connections")
              + f"; {args.websockets} WebSockets; {args.new_per_second:g} new connections/s")
        print(f"  requests             {total} ({total / max(1, elapsed):.0f}/s): "
              + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))
        if use_wrk and self.wrk_results:
            last = self.wrk_results[-1]
            print(f"  wrk latency          p50 {last['p50_ms']:.2f} ms, p99 {last['p99_ms']:.2f} ms, "
                  f"max {last['max_ms']:.0f} ms (last segment); socket errors {wrk_errors}")
        print(f"  WebSockets           {counts.get(('ws', 'opened'), 0)} opened, {counts.get(('ws', 'messages'), 0)} "
              f"messages echoed")
        if args.unknown_kids_per_second > 0:
            print(f"  unknown kids         {counts.get(('unknown-kid', 401), 0)} requests, all 401 unless listed below")
        print("  keys                 " + ("--jwks-file" if fetches is None else f"--jwks-url on loopback: {fetches} fetches"))
        print(f"  errors               {self.tally.error_count + sum(wrk_errors.values()) + wrk_wrong + sum(unexpected_status.values())}"
              f" (client aborts at wrk segment ends: {aborts})")
        if warm and load_end:
            print(f"  RSS                  {warm['rss_kib'] / 1024:.1f} MiB after warm-up ({warm['t']:.0f} s), "
                  f"{load_end['rss_kib'] / 1024:.1f} MiB at the end, peak {peak / 1024:.1f} MiB "
                  f"(limit {rss_limit / 1024:.1f} MiB)")
            print(f"  descriptors          {rest_fds_before} at rest before, {warm['fds']} after warm-up, "
                  f"{load_end['fds']} at the end of the load, {rest_fds_after} at rest after")
        print(f"  SIGTERM              exit {exit_code}" + (f" after {drain_s:.2f} s" if drain_s is not None else ""))
        if failures:
            print("FAIL")
            for failure in failures:
                print(f"  - {failure}")
            print(f"(proxy log: {self.serve_log})")
            return 1
        print("PASS")
        if not self.args.logs:
            shutil.rmtree(self.dir, ignore_errors=True)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--connections", type=int, default=240, help="bulk keep-alive connections (default 240)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--websockets", type=int, default=8)
    parser.add_argument("--new-per-second", type=float, default=5)
    parser.add_argument("--unknown-kids-per-second", type=float, default=0,
                        help="fresh connections per second with a token naming a random kid (default 0)")
    parser.add_argument("--jwks-file", action="store_true", help="keys from the file instead of a loopback key server")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio load generator even if wrk is installed")
    parser.add_argument("--bin", default=os.environ.get("IAP_PROXY_BIN") or str(REPO / ".build" / "iap-proxy"))
    parser.add_argument("--logs", help="keep the proxy's logs (and its access log) in this directory")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        print(f"no iap-proxy binary at {args.bin} (scripts/build-release.sh, or set IAP_PROXY_BIN)", file=sys.stderr)
        return 2
    soak = Soak(args)
    try:
        return soak.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        soak.stop_all()


if __name__ == "__main__":
    sys.exit(main())
