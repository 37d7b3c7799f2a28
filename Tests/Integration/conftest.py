"""Fixtures of the real-socket integration suite.

Session: one signing key (plus a rogue one whose kid the proxy does not know), an allowlist, one
`iap-proxy echo` upstream and a token minter. Per test (or module): `iap-proxy serve` processes on
port 0, stopped at the end whatever happens; every started process is also killed at session end
and gets SIGKILL if the runner dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import os
import time
import warnings
from pathlib import Path

import pytest

import helpers
from helpers import AUDIENCE, BIN, KID, Echo, Serve, run_bin

atexit.register(helpers.kill_all_leftovers)

ALLOWLIST = """\
# integration-suite allowlist
example.com
@corp.example

bob@gmail.com
Carol.Partner@Partner.ORG
"""


def pytest_sessionstart(session):
    if not os.access(BIN, os.X_OK):
        raise pytest.UsageError(f"iap-proxy binary not found at {BIN}: build it (swift build --product iap-proxy) or set IAP_PROXY_BIN")


class Env:
    def __init__(self, root: Path):
        self.root = root
        self.keys = root / "keys"
        self.rogue = root / "rogue"
        for directory, kid in ((self.keys, KID), (self.rogue, "rogue-kid")):
            result = run_bin(["keygen", "--out", directory, "--kid", kid])
            assert result.returncode == 0, result.stderr
        self.private = self.keys / "private.pem"
        self.jwks = self.keys / "jwks.json"
        self.allowlist = root / "allowlist.txt"
        self.allowlist.write_text(ALLOWLIST)
        self._tokens: dict = {}
        self.echo = Echo()

    def mint(self, email: str = "alice@example.com", hd: str | None = "example.com", audience: str = AUDIENCE,
             key: Path | None = None, kid: str = KID, cache: bool = True, **extra) -> str:
        """A compact ES256 token from `iap-proxy mint` (cached for 2 minutes per argument set)."""
        args = ["mint", "--key", key or self.private, "--kid", kid, "--audience", audience, "--email", email]
        if hd is not None:
            args += ["--hd", hd]
        for name, value in extra.items():
            flag = "--" + name.replace("_", "-")
            for item in value if isinstance(value, list) else [value]:
                args += [flag, str(item)]
        cache_key = tuple(map(str, args))
        hit = self._tokens.get(cache_key)
        if cache and hit and time.monotonic() - hit[1] < 120:
            return hit[0]
        result = run_bin(args)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        self._tokens[cache_key] = (token, time.monotonic())
        return token

    def serve_args(self, upstream: str | None = None, allowlist: Path | None = None, jwks: Path | None = None,
                   jwks_url: str | None = None, admin: bool = True, workers: int = 2, extra: list | None = None) -> list:
        args = ["--listen", "127.0.0.1:0", "--upstream", upstream or self.echo.url, "--audience", AUDIENCE,
                "--allowlist", allowlist or self.allowlist, "--workers", str(workers),
                "--admin-listen", "127.0.0.1:0" if admin else "off", "--key-wait-timeout", "1s"]
        if jwks_url:
            args += ["--jwks-url", jwks_url]
        else:
            args += ["--jwks-file", jwks or self.jwks]
        return args + [str(a) for a in extra or []]


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    environment = Env(tmp_path_factory.mktemp("iap-it"))
    yield environment
    environment.echo.stop()
    helpers.kill_all_leftovers()


@pytest.fixture(autouse=True)
def _echo_alive(env):
    """The session's echo upstream is shared by many proxies. If something outside the suite killed
    it (other work on this machine has been seen to signal iap-proxy processes), start it again on
    the same port so one stray signal does not fail every later test; say so in a warning."""
    if not env.echo.alive():
        code = env.echo.popen.returncode
        port = env.echo.port
        env.echo.kill()
        try:
            env.echo = Echo(port)
        except AssertionError:
            env.echo = Echo()
        warnings.warn(f"echo upstream had exited ({code}); restarted on port {env.echo.port}")
    yield


@pytest.fixture(scope="session")
def token(env):
    return env.mint()


class ServeFactory:
    def __init__(self, environment: Env):
        self.env = environment
        self.started: list[Serve] = []

    def __call__(self, *extra, wait: bool = True, **kw) -> Serve:
        proc = Serve(self.env.serve_args(extra=list(extra), **kw), wait=False)
        self.started.append(proc)
        if wait:
            proc.wait_serving()
        return proc

    def stop_all(self):
        """Kills every proxy of the test (SIGKILL: graceful exits are tested in test_signals, and
        a SIGTERM exit takes ~1 s). A proxy that died on its own during the test is reported."""
        died = []
        for proc in self.started:
            if not proc.alive() and not proc.signalled:
                died.append(f"serve pid {proc.pid} exited with {proc.popen.returncode} during the test\n"
                            f"{proc.output_tail(20)}")
            proc.kill()
        if died:
            pytest.fail("a proxy process exited unexpectedly (crash, or killed from outside the suite):\n"
                        + "\n".join(died), pytrace=False)


@pytest.fixture
def serve(env):
    """Starts `iap-proxy serve` processes for one test; all are stopped afterwards."""
    factory = ServeFactory(env)
    yield factory
    factory.stop_all()


@pytest.fixture
def proxy(env):
    """A proxy in front of echo with the default preset (oauth2-proxy); one process per test
    (starting one takes well under 100 ms)."""
    factory = ServeFactory(env)
    proc = factory("--idle-timeout", "30s")
    yield proc
    factory.stop_all()


@pytest.fixture
def upstream():
    """Starts Python upstreams for one test; all are stopped afterwards."""
    from upstreams import PyUpstream

    started = []

    def start(handler, name="py-upstream"):
        up = PyUpstream(handler, name)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every live process's output to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        marker = item.get_closest_marker("proxy_bug")
        if marker:
            report.sections.append(("SUSPECTED IAP-PROXY BUG", marker.args[0] if marker.args else ""))
        with helpers._live_lock:
            procs = list(helpers._live)
        for proc in procs:
            state = "running" if proc.alive() else f"exited with {proc.popen.returncode}"
            report.sections.append((f"{proc.name} pid {proc.pid} ({state})", proc.output_tail(40)))


def pytest_addoption(parser):
    parser.addoption(
        "--proxy-bugs-xfail", action="store_true", default=False,
        help="run tests marked proxy_bug as non-strict xfail (their assertions are unchanged), so the "
             "rest of the suite can run with -x while known proxy bugs are open")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--proxy-bugs-xfail"):
        return
    for item in items:
        marker = item.get_closest_marker("proxy_bug")
        if marker:
            item.add_marker(pytest.mark.xfail(reason="suspected proxy bug: " + (marker.args[0] if marker.args else ""),
                                              strict=False))
