"""Fault table, key server (the "Prove it" issue): a key server that fails in every way while the
proxy serves, a key rotation in the middle of traffic, and floods of tokens naming random kids.

Facts of the refresher these tests lean on (IAPAuth/Keys/RefreshPolicy.swift, KeyFetcher.swift):
failures are retried after 1, 2, 4, 8 ... s (±20 % jitter); a token naming an unknown kid asks for
a refetch, coalesced and at most one per 15 s after the previous fetch attempt; a fetch gives up
after 10 s; bodies over 256 KiB are refused. A key server with nothing listening at start is in
test_auth.py (test_keys_unavailable_then_recovered) and test_operate.py
(test_readiness_follows_the_key_set); here it answers 500 or hangs at start.
"""

from __future__ import annotations

import collections
import itertools
import shutil
import threading
import time
import uuid

import pytest

from conftest import ServeFactory
from faults_support import KeepAliveLoad, jwks_union, rss_kib, with_kid
from helpers import Serve, http
from upstreams import KeyServer

UNKNOWN_KID_INTERVAL = 15.0  # RefreshPolicy.unknownKidInterval
FETCH_TIMEOUT = 10.0  # KeyFetcher.Settings.totalTimeoutMilliseconds

FAULTS = ["status500", "garbage", "not-http", "oversized", "oversized-chunked", "reset", "hang"]


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in zip(times, times[1:])]


class Scenario:
    """A timed scenario whose servers and proxies start on the main thread (a child started from
    another thread would get SIGKILL when that thread ends: PR_SET_PDEATHSIG) and whose timeline
    runs in a thread; the test joins it and makes its assertions on the main thread."""

    def __init__(self, factory):
        self.factory = factory
        self.servers: list[KeyServer] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self.error = exc

    def result(self, timeout: float = 60) -> "Scenario":
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{type(self).__name__} still running after {timeout}s"
        if self.error:
            raise self.error
        return self

    def stop(self):
        for server in self.servers:
            server.stop()


class FaultModes(Scenario):
    """One proxy per fault, each holding the last good set (--jwks-cache) while its key server
    fails; requests and /readyz sampled throughout."""

    def __init__(self, factory, env, token, directory):
        super().__init__(factory)
        self.good = env.jwks.read_bytes()
        self.token = token
        self.directory = directory
        self.servers_by_mode, self.proxies = {}, {}
        for mode in FAULTS:
            ks = self.servers_by_mode[mode] = KeyServer(self.good, mode=mode)
            self.servers.append(ks)
            cache = directory / f"cache-{mode}.json"
            shutil.copy(env.jwks, cache)
            self.proxies[mode] = factory(*factory.env.serve_args(jwks_url=ks.url, workers=1,
                                                                 extra=["--jwks-cache", cache]), raw=True)
        self.statuses = collections.Counter()

    def run(self):
        def done() -> bool:
            fast = all(self.servers_by_mode[m].count() >= 4 for m in FAULTS if m != "hang")
            return fast and self.servers_by_mode["hang"].count() >= 2

        deadline = time.monotonic() + 40
        while not done():
            assert time.monotonic() < deadline, {m: _gaps(s.times()) for m, s in self.servers_by_mode.items()}
            for mode, proxy in self.proxies.items():
                self.statuses[(mode, http(proxy.port, "GET", f"/during/{mode}", token=self.token).status)] += 1
                self.statuses[(mode, "readyz", http(proxy.admin_port, "GET", "/readyz").status)] += 1
            time.sleep(0.2)


class Rotation(Scenario):
    """Old key, then the key server publishes old + new while 8 keep-alive clients send requests;
    from publication on, 3 in 4 requests carry a token signed by the new key."""

    def __init__(self, factory, env):
        super().__init__(factory)
        self.env = env
        self.ks = KeyServer(env.jwks.read_bytes())
        self.servers.append(self.ks)
        self.proxy = factory(*env.serve_args(jwks_url=self.ks.url, workers=2), raw=True)  # key wait 1 s
        self.old = env.mint()
        self.new = env.mint(key=env.rogue / "private.pem", kid="rogue-kid", email="new@example.com")
        self.published_at = None
        self.records = []

    def run(self):
        self.proxy.wait_event("keys-fetched", timeout=10)

        def token_for(client, n):
            if self.published_at is not None and (client + n) % 4:
                return "new", self.new
            return "old", self.old

        with KeepAliveLoad(self.proxy.port, 8, token_for, pause=0.005) as load:
            time.sleep(0.5)
            self.ks.set(body=jwks_union(self.env.jwks, self.env.rogue / "jwks.json"))
            self.published_at = time.monotonic()
            self.proxy.wait_for(lambda: [r for r in load.snapshot() if r[3] == "new" and r[4] == 200],
                                UNKNOWN_KID_INTERVAL + 8, "a new-kid request admitted")
            time.sleep(1.0)  # the load goes on a while with the new key
        self.records = load.snapshot()


class FailingWhileServing(Scenario):
    """Keys fetched; then the key server breaks (a different fault per request) while 32 clients
    send tokens with random kids and 4 send valid tokens."""

    def __init__(self, factory, env, token):
        super().__init__(factory)
        self.token = token
        self.ks = KeyServer(env.jwks.read_bytes())
        self.servers.append(self.ks)
        self.proxy = factory(*env.serve_args(jwks_url=self.ks.url, workers=2,
                                             extra=["--key-wait-timeout", "100ms"]), raw=True)
        self.records = []

    def run(self):
        self.proxy.wait_event("keys-fetched", timeout=10)
        self.ks.set(script=["status500", "garbage", "oversized-chunked", "reset", "not-http"])
        started = self.ks.times()[0]

        def token_for(client, n):
            if client < 4:
                return "valid", self.token
            return "random", with_kid(self.token, uuid.uuid4().hex)

        with KeepAliveLoad(self.proxy.port, 36, token_for, path="/flood", pause=0.005) as load:
            # the refetch at +15 s and two retries (at ~+16 s and ~+18 s)
            self.proxy.wait_for(lambda: self.ks.count() >= 4 or time.monotonic() > started + 22, 30, "fetches")
            time.sleep(max(0.0, started + 17 - time.monotonic()))
        self.records = load.snapshot()
        self.ready = http(self.proxy.admin_port, "GET", "/readyz").status


class BrokenAtStart(Scenario):
    """Two proxies whose key server is broken when they start (one answers 500, one accepts and
    never answers) and is fixed 2 s later; requests are sampled every 0.2 s until both recover."""

    def __init__(self, factory, env, token):
        super().__init__(factory)
        self.token = token
        self.servers_by_mode, self.proxies, self.samples = {}, {}, {}
        for mode in ("status500", "hang"):
            ks = self.servers_by_mode[mode] = KeyServer(env.jwks.read_bytes(), mode=mode)
            self.servers.append(ks)
            self.proxies[mode] = factory(*env.serve_args(jwks_url=ks.url, workers=1), raw=True)
            self.samples[mode] = []
        self.started = time.monotonic()

    def run(self):
        fixed = False
        deadline = self.started + 30
        while time.monotonic() < deadline:
            if not fixed and time.monotonic() - self.started > 2:
                for ks in self.servers_by_mode.values():
                    ks.set(mode="ok")
                fixed = time.monotonic()
            for mode, proxy in self.proxies.items():
                if self.samples[mode] and self.samples[mode][-1][2] == 200:
                    continue
                t0 = time.monotonic()
                status = http(proxy.port, "GET", f"/start/{mode}", token=self.token).status
                ready = http(proxy.admin_port, "GET", "/readyz").status
                self.samples[mode].append((t0 - self.started, time.monotonic() - t0, status, ready))
            if all(s and s[-1][2] == 200 for s in self.samples.values()):
                break
            time.sleep(0.2)
        self.fixed_at = fixed - self.started


class _Factory(ServeFactory):
    def __call__(self, *args, raw: bool = False, **kw):
        if not raw:
            return super().__call__(*args, **kw)
        proc = Serve([str(a) for a in args], wait=False)
        self.started.append(proc)
        proc.wait_serving()
        return proc


@pytest.fixture(scope="module")
def scenarios(env, token, tmp_path_factory):
    """The slow scenarios (two wait out the 15 s unknown-kid refetch interval, two the 10 s fetch
    timeout) run at the same time, to keep this module at ~20 s; each test waits for its own and
    checks it."""
    factory = _Factory(env)
    started = []
    try:
        started.append(FaultModes(factory, env, token, tmp_path_factory.mktemp("key-faults")))
        started.append(Rotation(factory, env))
        started.append(FailingWhileServing(factory, env, token))
        started.append(BrokenAtStart(factory, env, token))
        for scenario in started:
            scenario.thread.start()
        yield {type(s).__name__: s for s in started}
    finally:
        for scenario in started:
            scenario.thread.join(timeout=60)
            scenario.stop()
        factory.stop_all()


def test_key_server_faults_keep_the_last_good_set(scenarios):
    """One proxy per fault, all at once, each holding the last good key set (from --jwks-cache)
    while its key server answers 500, HTML, non-HTTP bytes, a 300 KiB body (with and without a
    length), resets, or accepts and never answers. Requests keep passing, /readyz stays ready, the
    refresher backs off (1, 2, 4 s ...) instead of hammering the server, no fetch is ever counted
    as a success, and the cache file keeps the good set."""
    run = scenarios["FaultModes"].result()
    report = {}
    for mode, proxy in run.proxies.items():
        hits = run.servers_by_mode[mode].times()
        gaps = _gaps(hits)
        report[mode] = gaps
        assert proxy.alive(), mode
        statuses = {k: v for k, v in run.statuses.items() if k[0] == mode}
        assert set(statuses) == {(mode, 200), (mode, "readyz", 200)} and statuses[(mode, 200)] >= 10, statuses
        assert not proxy.events("keys-fetched"), (mode, proxy.events("keys-fetched"))
        failures = proxy.events("keys-fetch-failed")
        assert len(hits) - 1 <= len(failures) <= len(hits), (mode, len(hits), failures)
        assert proxy.events("keys-cache-loaded"), proxy.output_tail()
        assert (run.directory / f"cache-{mode}.json").read_bytes() == run.good, f"{mode}: cached good set replaced"
        if mode == "hang":
            # one fetch at a time: the hung one is given up after 10 s, then retried after ~1 s
            assert gaps[0] >= FETCH_TIMEOUT - 1, f"hang: fetched again {gaps[0]} s after a fetch that never answered"
            assert "timeout" in failures[0]["reason"].lower(), failures[0]
            continue
        # backoff: 1 s, 2 s, 4 s (±20 %, plus slack for a busy machine, which only lengthens them)
        assert gaps[0] >= 0.7 and gaps[1] >= 1.4 and gaps[2] >= 2.8, f"{mode}: no backoff between fetches: {gaps}"
        assert gaps[2] > gaps[0], f"{mode}: retry delays do not grow: {gaps}"
    print("fetch gaps (s):", report)


def test_rotation_mid_traffic(scenarios):
    """The key server publishes a new kid next to the old one while traffic flows; from that
    moment the load sends tokens signed with the new key (and still some with the old one). The
    proxy fetched its keys just before, so the new kid may be refused until the rate-limited
    refetch: no longer than one refetch interval (15 s) plus one --key-wait-timeout. After the
    first new-kid request is admitted none is refused, old-kid tokens are never refused, and the
    key server saw exactly one extra fetch however many unknown-kid requests there were."""
    run = scenarios["Rotation"].result()
    at = run.published_at
    new_records = [r for r in run.records if r[3] == "new"]
    old_records = [r for r in run.records if r[3] == "old"]
    assert not [r for r in old_records if r[4] != 200], [r for r in old_records if r[4] != 200][:5]
    odd = [r for r in new_records if r[4] not in (200, 401)]
    assert not odd, f"new-kid requests answered other than 200/401: {odd[:5]}"
    first_ok = min(r[1] for r in new_records if r[4] == 200)
    refused_after = [r for r in new_records if r[4] != 200 and r[0] >= first_ok]
    assert not refused_after, f"new-kid requests refused after the first was admitted: {refused_after[:5]}"
    window = first_ok - at
    refused = [r for r in new_records if r[4] != 200]
    print(f"new kid admitted {window:.2f}s after publication; {len(refused)} new-kid requests refused before; "
          f"{len(new_records)} new-kid and {len(old_records)} old-kid requests; key fetches at "
          f"{_gaps(run.ks.times())} s intervals")
    assert window <= UNKNOWN_KID_INTERVAL + 1.0 + 3.0, f"the new kid was refused for {window:.1f}s"
    assert run.ks.count() == 2, f"{run.ks.count()} key fetches for {len(refused)} unknown-kid requests (want 2)"
    fetched = run.proxy.events("keys-fetched")
    assert fetched[-1]["kids"] == "it-key-1,rogue-kid" and fetched[-1]["changed"] == "true", fetched


def test_key_server_failing_while_serving_under_random_kid_flood(scenarios):
    """The proxy fetched its keys; then the key server breaks (500, HTML, a 300 KiB body, a reset,
    non-HTTP bytes, one per request) while thousands of tokens with random kids arrive together
    with normal traffic. Random kids are all 401, normal requests all 200 on the last good set;
    the key server sees no fetch for 15 s after the last one, then one refetch and the backoff
    retries (1 s, 2 s ...), never one per unknown kid."""
    run = scenarios["FailingWhileServing"].result()
    hits = run.ks.times()
    gaps = _gaps(hits)
    outcome = collections.Counter((r[3], r[4]) for r in run.records)
    print(f"{outcome}; key fetches {len(hits)}, gaps {gaps} s")
    random_total = sum(v for (label, _), v in outcome.items() if label == "random")
    assert outcome[("random", 401)] == random_total >= 2000, outcome
    valid_total = sum(v for (label, _), v in outcome.items() if label == "valid")
    assert outcome[("valid", 200)] == valid_total >= 100, outcome
    assert run.ready == 200
    assert 2 <= len(hits) <= 5, f"{len(hits)} key fetches in {hits[-1] - hits[0]:.1f}s: {gaps}"
    assert UNKNOWN_KID_INTERVAL - 1 <= gaps[0] <= UNKNOWN_KID_INTERVAL + 3, f"first refetch after {gaps[0]}s"
    assert all(g >= 0.7 for g in gaps[1:]), f"retries closer than the backoff allows: {gaps}"
    assert len(run.proxy.events("keys-fetched")) == 1, run.proxy.events("keys-fetched")
    assert len(run.proxy.events("keys-fetch-failed")) >= len(hits) - 2


def test_key_server_broken_at_start_then_fixed(scenarios):
    """No key set yet because the key server answers 500, or accepts and never answers: requests
    are refused at once with 503 (never held until a fetch gives up) and /readyz says 503; once
    the server is fixed the refresher's next retry (backoff from 1 s; after the 10 s fetch timeout
    for the hung one) loads the keys: 200 and ready, with no restart."""
    run = scenarios["BrokenAtStart"].result()
    for mode, samples in run.samples.items():
        statuses = [s[2] for s in samples]
        assert statuses[-1] == 200 and samples[-1][3] == 200, (mode, samples[-3:])
        first_ok = statuses.index(200)
        assert first_ok >= 1 and set(statuses[:first_ok]) == {503}, (mode, statuses)
        # /readyz is asked right after the request: at the boundary the keys may have arrived between the two
        readies = [s[3] for s in samples[:first_ok]]
        assert readies[0] == 503 and set(readies[:-1]) <= {503}, (mode, samples[:first_ok])
        slow = [s for s in samples[:first_ok] if s[1] > 2.0]
        assert not slow, f"{mode}: a 503 took {slow[0][1]:.1f}s (held until a fetch gave up?)"
        recovered = samples[first_ok][0] - run.fixed_at
        limit = (FETCH_TIMEOUT + 1.2 + 3) if mode == "hang" else 8 + 3  # the pending retry, plus slack
        print(f"{mode}: 503 x {first_ok}, recovered {recovered:.1f}s after the key server was fixed")
        assert recovered <= limit, f"{mode}: recovered {recovered:.1f}s after the key server was fixed"
        assert run.servers_by_mode[mode].count() <= 6, run.servers_by_mode[mode].times()


def test_random_kid_flood_memory_is_bounded(serve, env, token):
    """Thousands of random-kid tokens, each on a fresh connection: all 401, and the proxy's memory
    afterwards is what it was give or take a few MiB (the same flood with malformed tokens grows
    it by ~0.3 MiB). Each request waits for the refetch, times out and is closed: a connection
    that leaves the key wait must leave the worker's waiting list too (it grew by ~5 KiB per
    request until the key set changed)."""
    FLOOD = 3000
    ks = KeyServer(env.jwks.read_bytes())
    try:
        proxy = serve("--key-wait-timeout", "20ms", "--access-log", "off", jwks_url=ks.url, workers=2)
        proxy.wait_event("keys-fetched", timeout=10)
        for _ in range(20):
            assert http(proxy.port, "GET", "/warm", token=token).status == 200
        baseline = rss_kib(proxy.pid)
        counter = itertools.count()
        statuses = collections.Counter()
        lock = threading.Lock()

        def flood():
            while next(counter) < FLOOD:
                try:
                    status = http(proxy.port, "GET", "/kid-flood", token=with_kid(token, uuid.uuid4().hex)).status
                except OSError as exc:
                    status = repr(exc)
                with lock:
                    statuses[status] += 1

        threads = [threading.Thread(target=flood) for _ in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        time.sleep(0.5)
        growth = rss_kib(proxy.pid) - baseline
    finally:
        ks.stop()
    assert statuses == {401: FLOOD}, statuses
    assert ks.count() == 1
    print(f"RSS growth after {FLOOD} random-kid requests: {growth} KiB")
    assert growth < 6 * 1024, f"RSS grew by {growth / 1024:.1f} MiB over {FLOOD} random-kid requests"
