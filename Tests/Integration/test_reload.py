"""7. Live policy reload under every kind of edit, with requests in flight (docs/CONFIG.md, "Live
reload"): in-place writes, editor rename-swaps, Kubernetes ConfigMap `..data` symlink swaps,
delete and re-create, broken, empty and half-written files, config-file edits, SIGHUP.

While a file is edited, a background load sends a request every ~20 ms (on a keep-alive and on
fresh connections, to a proxy with two workers on a fixed port so both serve) for three users:
  A  admitted by one version of the allowlist and not by the other (the user whose status flips);
  B  in example.com but denied by `!b@example.com` in every version (never admitted);
  K  admitted by every version (never refused: a broken, empty, missing or half-read file would
     refuse K, since the last good policy must stay in force).
For every edit: no request is ever admitted or refused that neither the old nor the new policy
would decide so; A flips once (no request sent after a request that saw the new policy sees the
old one) and no earlier than the edit; the new policy is in force within RELOAD_WITHIN seconds;
each successful reload logs `policy-reloaded` with added/removed counts and a new checksum, each
failed one `policy-reload-failed` naming the file (and line).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from helpers import echoed_headers, free_port
from policy_support import RELOAD_FAILED, RELOADED, Traffic, call, cserve  # noqa: F401 - cserve is a fixture

# "reloaded within about a second of an edit": the bound asserted, with room for a noisy machine.
RELOAD_WITHIN = 2.5

A, B, K = "a@gmail.com", "b@example.com", "k@gmail.com"
WITH_A = "# v1\nexample.com\n!b@example.com\nk@gmail.com\na@gmail.com\n"
WITHOUT_A = "# v2\nexample.com\n!b@example.com\nk@gmail.com\nz@gmail.com\n"
BROKEN = "# v3\nexample.com\n!b@example.com\nthis is not an entry\nk@gmail.com\nz@gmail.com\n"  # line 4
CONFIG = """\
routes:
  - name: app
    match: { path_prefix: / }
    allow: [ "file:allowlist.txt" ]
"""


def _tokens(env) -> dict:
    return {A: env.mint(email=A, hd=None), B: env.mint(email=B), K: env.mint(email=K, hd=None)}


def _status(text: str, user: str) -> int:
    """What a (valid) allowlist version decides for the user."""
    return 200 if (user == K or (user == A and "a@gmail.com" in text)) else 403


def _policy_events(proxy) -> list:
    return [e for e in proxy.events() if e.get("event") in (RELOADED, RELOAD_FAILED, "policy-loaded")]


class Run:
    """A proxy on CONFIG (or a given config path), its background load and the event log."""

    def __init__(self, cserve, env, initial: str, config: Path | None = None):
        self.initial = initial
        if config is None:
            self.dir = cserve.directory()
            (self.dir / "allowlist.txt").write_text(initial)
            self.allowlist = self.dir / "allowlist.txt"
            self.proxy = cserve(CONFIG, directory=self.dir, listen=f"127.0.0.1:{free_port()}")
        else:
            self.dir = config.parent
            self.allowlist = self.dir / "allowlist.txt"
            self.proxy = cserve(config, listen=f"127.0.0.1:{free_port()}")
        loaded = self.proxy.events("policy-loaded")
        assert loaded, self.proxy.output_tail()
        self.checksum = loaded[0]["checksum"]
        self.load = Traffic(self.proxy.port, _tokens(env))
        self.marks: dict = {}

    def __enter__(self):
        self.load.__enter__()
        start = time.monotonic()
        for user in (A, B, K):
            self.load.wait_requests(user, start, n=3)
        self.events_before = len(_policy_events(self.proxy))
        self.marks["edit"] = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.load.stop()

    def new_events(self) -> list:
        return _policy_events(self.proxy)[self.events_before:]

    def wait_event(self, name: str, after: int = 0, timeout: float = 5.0) -> dict:
        """The `after`-th (0-based) event `name` logged since the edit started."""
        def find():
            found = [e for e in self.new_events() if e.get("event") == name]
            return found[after] if len(found) > after else None
        return self.proxy.wait_for(find, timeout, f"{name} #{after + 1} after the edit")

    def settle(self) -> None:
        """Lets the load run on a while after the new policy was seen."""
        seen = time.monotonic()
        self.marks.setdefault("seen", seen)
        for user in (A, B, K):
            self.load.wait_requests(user, seen, n=4)

    # -- the verdicts ---------------------------------------------------------------------------

    def check_history(self, final: str | None, final_at: float | None) -> None:
        """final: the allowlist text in force at the end (None: the initial one, no successful
        reload); final_at: when the complete new content became visible (before that instant A
        must see the old decision)."""
        records = sorted(self.load.snapshot())
        assert records, "no background requests were recorded"
        errors = [r for r in records if r[3] not in (200, 403)]
        assert not errors, f"requests failed during the edit: {errors[:5]}"
        t0 = self.marks["edit"]

        def at(t):
            return f"{t - t0:+.3f}s"

        admitted_b = [f"{at(r[0])} ({r[4]})" for r in records if r[2] == B and r[3] == 200]
        assert not admitted_b, f"{B} (denied by every version) was admitted at {admitted_b}"
        refused_k = [f"{at(r[0])} ({r[4]})" for r in records if r[2] == K and r[3] != 200]
        assert not refused_k, f"{K} (admitted by every version) was refused at {refused_k}"

        old = _status(self.initial, A)
        new = _status(final, A) if final is not None else old
        history = [r for r in records if r[2] == A]
        # the load really was in flight across the edit
        assert sum(1 for r in history if r[1] < t0) >= 2, history
        assert sum(1 for r in history if r[0] > self.marks["seen"]) >= 3, history
        if final_at is not None:
            early = [f"{at(r[0])}: {r[3]}" for r in history if r[1] < final_at and r[3] != old]
            assert not early, f"{A} saw the new decision before the new content was complete: {early}"
        if new == old:
            wrong = [f"{at(r[0])}: {r[3]}" for r in history if r[3] != old]
            assert not wrong, f"{A}'s decision changed although the policy in force did not: {wrong}"
            return
        first_new_done = min((r[1] for r in history if r[3] == new), default=None)
        assert first_new_done is not None, f"{A} never saw the new decision ({new}): {[r[3] for r in history][-10:]}"
        flapped = [f"{at(r[0])}: {r[3]}" for r in history if r[0] > first_new_done and r[3] == old]
        assert not flapped, (f"{A} saw the old decision again after the new one (first seen {at(first_new_done)}): "
                             f"{flapped}")
        last_old = max((r[0] for r in history if r[3] == old), default=t0)
        assert last_old - final_at < RELOAD_WITHIN, (
            f"the old policy was still in force {last_old - final_at:.2f}s after the edit")

    def check_reloaded(self, added: int, removed: int) -> dict:
        reloads = [e for e in self.new_events() if e.get("event") == RELOADED]
        assert reloads, self.new_events()
        first = reloads[0]
        assert int(first["added"]) == added and int(first["removed"]) == removed, first
        assert first.get("checksum") and first["checksum"] != self.checksum, (self.checksum, first)
        # Only one new policy was ever installed: no intermediate (half-read, empty) version.
        assert {e["checksum"] for e in reloads} == {first["checksum"]}, reloads
        return first

    def check_failed(self, *needles: str) -> dict:
        failures = [e for e in self.new_events() if e.get("event") == RELOAD_FAILED]
        assert failures, self.new_events()
        text = str(failures[0])
        for needle in needles:
            assert needle in text, (needle, failures[0])
        return failures[0]


# -- the edits ---------------------------------------------------------------------------------


def write_in_place(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def rename_swap(path: Path, text: str) -> None:
    temp = path.with_name("." + path.name + ".swp")
    temp.write_text(text)
    os.rename(temp, path)


@pytest.mark.parametrize("kind", ["in-place", "rename-swap"])
@pytest.mark.parametrize("direction", ["revoke", "grant"])
def test_simple_edits_with_requests_in_flight(cserve, env, kind, direction):
    initial, final = (WITH_A, WITHOUT_A) if direction == "revoke" else (WITHOUT_A, WITH_A)
    with Run(cserve, env, initial) as run:
        final_at = time.monotonic()
        (write_in_place if kind == "in-place" else rename_swap)(run.allowlist, final)
        run.wait_event(RELOADED)
        run.settle()
    run.check_history(final, final_at)
    run.check_reloaded(added=1, removed=1)


def _configmap_version(directory: Path, stamp: str, files: dict) -> str:
    version = directory / f"..2026_11_27_10_00_00.{stamp}"
    version.mkdir()
    for name, text in files.items():
        (version / name).write_text(text)
    return version.name


def test_configmap_symlink_swap(cserve, env):
    """The layout kubelet's AtomicWriter builds for a mounted ConfigMap, and its update."""
    directory = cserve.directory()
    files = {"config.yaml": CONFIG, "allowlist.txt": WITH_A}
    first = _configmap_version(directory, "000000001", files)
    os.symlink(first, directory / "..data")
    for name in files:
        os.symlink(f"..data/{name}", directory / name)
    with Run(cserve, env, WITH_A, config=directory / "config.yaml") as run:
        second = _configmap_version(directory, "000000002", {**files, "allowlist.txt": WITHOUT_A})
        os.symlink(second, directory / "..data_tmp")
        final_at = time.monotonic()
        os.rename(directory / "..data_tmp", directory / "..data")
        shutil.rmtree(directory / first)  # kubelet removes the old version
        run.wait_event(RELOADED)
        run.settle()
    assert os.path.islink(directory / "allowlist.txt") and (directory / "allowlist.txt").read_text() == WITHOUT_A
    run.check_history(WITHOUT_A, final_at)
    run.check_reloaded(added=1, removed=1)


def test_delete_then_recreate(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        run.allowlist.unlink()
        run.wait_event(RELOAD_FAILED)
        time.sleep(max(0.0, 1.5 - (time.monotonic() - run.marks["edit"])))
        final_at = time.monotonic()
        write_in_place(run.allowlist, WITHOUT_A)
        run.wait_event(RELOADED)
        run.settle()
    run.check_failed("allowlist.txt")
    run.check_history(WITHOUT_A, final_at)
    run.check_reloaded(added=1, removed=1)


def test_broken_edit_keeps_the_policy_then_a_fix_applies(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        write_in_place(run.allowlist, BROKEN)
        failed = run.wait_event(RELOAD_FAILED)
        time.sleep(1.0)  # the broken file stays a while: the old policy must hold all along
        final_at = time.monotonic()
        write_in_place(run.allowlist, WITHOUT_A)
        run.wait_event(RELOADED)
        run.settle()
    assert "allowlist.txt:4" in str(failed), failed
    run.check_history(WITHOUT_A, final_at)
    run.check_reloaded(added=1, removed=1)


def test_broken_edit_alone_changes_nothing(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        write_in_place(run.allowlist, BROKEN)
        run.wait_event(RELOAD_FAILED)
        time.sleep(1.5)
        run.settle()
    run.check_history(None, None)
    assert not [e for e in run.new_events() if e.get("event") == RELOADED], run.new_events()


@pytest.mark.parametrize("empty_for", [0.3, 1.5])
def test_briefly_empty_file(cserve, env, empty_for):
    with Run(cserve, env, WITH_A) as run:
        write_in_place(run.allowlist, "")  # truncate
        time.sleep(empty_for)
        final_at = time.monotonic()
        write_in_place(run.allowlist, WITHOUT_A)
        run.wait_event(RELOADED)
        run.settle()
    run.check_history(WITHOUT_A, final_at)
    run.check_reloaded(added=1, removed=1)
    if empty_for >= 1.5:  # long enough to be seen: refused and logged, the old policy kept
        run.check_failed("allowlist.txt", "empty")


@pytest.mark.parametrize("direction", ["revoke", "grant"])
def test_half_written_file_is_never_read(cserve, env, direction):
    """One in-place write in two write() calls 0.5 s apart, closed after the second: read in
    between, the first part ("example.com" alone) would admit B and refuse K."""
    initial, final = (WITH_A, WITHOUT_A) if direction == "revoke" else (WITHOUT_A, WITH_A)
    head, tail = final.split("!b@example.com\n", 1)
    assert head.endswith("example.com\n")
    with Run(cserve, env, initial) as run:
        fd = os.open(run.allowlist, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, head.encode())
            time.sleep(0.5)
            os.write(fd, ("!b@example.com\n" + tail).encode())
            time.sleep(0.3)  # complete but still open: not to be read yet either
            final_at = time.monotonic()
        finally:
            os.close(fd)
        run.wait_event(RELOADED)
        run.settle()
    run.check_history(final, final_at)
    run.check_reloaded(added=1, removed=1)


# -- the config file itself, and SIGHUP --------------------------------------------------------

CONFIG_V2 = """\
routes:
  - name: app
    match: { path_prefix: / }
    allow: [ "file:allowlist.txt" ]
  - name: reports
    match: { path_prefix: /reports }
    allow: [ "file:reports/readers.txt" ]
"""


def test_config_edit_names_a_new_file_that_is_then_watched(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        reports = run.dir / "reports"
        reports.mkdir()
        (reports / "readers.txt").write_text("k@gmail.com\n")
        rename_swap(run.proxy.config_path, CONFIG_V2)
        run.wait_event(RELOADED)
        k, a = env.mint(email=K, hd=None), env.mint(email=A, hd=None)
        assert call(run.proxy, "/reports/q1", token=k)[0].status == 200
        assert call(run.proxy, "/reports/q1", token=a)[0].status == 403
        # the new file, in a directory that was not watched before, is watched now
        write_in_place(reports / "readers.txt", "k@gmail.com\na@gmail.com\n")
        run.wait_event(RELOADED, after=1)
        assert call(run.proxy, "/reports/q1", token=a)[0].status == 200
        # a broken config keeps everything as it was
        write_in_place(run.proxy.config_path, CONFIG_V2 + "  - name: [ unclosed\n")
        failed = run.wait_event(RELOAD_FAILED)
        assert "config.yaml" in str(failed), failed
        assert call(run.proxy, "/reports/q1", token=a)[0].status == 200
        run.settle()
    run.check_history(None, None)  # the "/" route never changed


def _sighup_and_wait(run, after: int) -> dict:
    """SIGHUP, then the reload it triggers and the key file re-read that ends its handling (a
    second signal while the first is being handled is another test's matter)."""
    keys = len(run.proxy.events("keys-reloaded"))
    run.proxy.signal(signal.SIGHUP)
    event = run.wait_event(RELOADED, after=after)
    run.proxy.wait_event("keys-reloaded", timeout=5, after=keys)
    time.sleep(0.2)
    return event


def test_sighup_reloads(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        event = _sighup_and_wait(run, 0)
        assert event.get("trigger") == "sighup", event
        assert int(event["added"]) == 0 and int(event["removed"]) == 0, event
        assert event["checksum"] == run.checksum, (run.checksum, event)
        # an edit followed at once by SIGHUP: whichever reload comes first, the new policy holds
        final_at = time.monotonic()
        rename_swap(run.allowlist, WITHOUT_A)
        _sighup_and_wait(run, 1)
        run.settle()
        assert run.proxy.alive()
    run.check_history(WITHOUT_A, final_at)
    second = [e for e in run.new_events() if e.get("event") == RELOADED][1]
    assert int(second["added"]) == 1 and int(second["removed"]) == 1, second


# Every thread blocks SIGHUP/SIGTERM (the mask is set before any thread starts): a signal that
# arrives while the main thread is not in sigwait must wait for it, not kill the process.
def test_a_burst_of_sighups_never_kills_the_proxy(cserve, env):
    with Run(cserve, env, WITH_A) as run:
        for burst in range(25):
            for _ in range(3):
                os.kill(run.proxy.pid, signal.SIGHUP)
            run.proxy.signalled = True
            assert run.proxy.wait_for(lambda: not run.proxy.alive() or len(
                [e for e in run.new_events() if e.get("event") == RELOADED]) > burst, 10, "a reload per burst")
            assert run.proxy.alive(), f"iap-proxy died (exit {run.proxy.popen.returncode}) on SIGHUP burst {burst + 1}"
        run.settle()
    run.check_history(None, None)


def test_sigterm_during_a_reload_still_drains(cserve, env):
    codes = []
    for attempt in range(3):
        proxy = cserve(CONFIG, files={"allowlist.txt": WITH_A})
        time.sleep(0.3)  # settled in sigwait
        os.kill(proxy.pid, signal.SIGHUP)
        os.kill(proxy.pid, signal.SIGTERM)
        proxy.signalled = True
        codes.append(proxy.wait_exit(timeout=10))
    assert codes == [0] * len(codes), f"exit codes after SIGHUP+SIGTERM (0 = drained): {codes}"


def test_sighup_during_a_half_written_file(cserve, env):
    head, tail = WITHOUT_A.split("!b@example.com\n", 1)
    with Run(cserve, env, WITH_A) as run:
        fd = os.open(run.allowlist, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, head.encode())
            keys = len(run.proxy.events("keys-reloaded"))
            run.proxy.signal(signal.SIGHUP)
            run.proxy.wait_event("keys-reloaded", timeout=5, after=keys)  # the SIGHUP was handled
            time.sleep(0.3)
            os.write(fd, ("!b@example.com\n" + tail).encode())
            final_at = time.monotonic()
        finally:
            os.close(fd)
        reloads = len([e for e in run.new_events() if e.get("event") == RELOADED])
        run.wait_event(RELOADED, after=reloads)  # the watcher, once the file is closed
        run.settle()
    run.check_history(WITHOUT_A, final_at)


HEADERS_V1 = """\
routes:
  - name: app
    match: { path_prefix: / }
    allow: [ "file:allowlist.txt" ]
    headers: oauth2-proxy
"""
HEADERS_V2 = """\
routes:
  - name: app
    match: { path_prefix: / }
    allow: [ "file:allowlist.txt" ]
    headers: { Remote-User: "{email}", X-Tenant: "{hd}" }
    require_access_levels: [ "accessPolicies/1/accessLevels/corp" ]
"""


def test_config_edit_applies_to_tokens_already_seen(cserve, env):
    """Verified tokens are cached; a reload that changes a route's headers and requirements must
    still apply to the next request with the same token."""
    proxy = cserve(HEADERS_V1, files={"allowlist.txt": "example.com\n"})
    plain = env.mint(email="k2@example.com")
    corp = env.mint(email="k3@example.com", claim='google.access_levels=["accessPolicies/1/accessLevels/corp"]')
    for token in (plain, corp):
        resp, _ = call(proxy, "/x", token=token)
        names = {n.lower() for n, _ in echoed_headers(resp)}
        assert "x-forwarded-email" in names and "remote-user" not in names, names
    before = len(proxy.events(RELOADED))
    rename_swap(proxy.config_path, HEADERS_V2)
    proxy.wait_event(RELOADED, after=before)
    resp, line = call(proxy, "/x", token=plain)
    assert resp.status == 403 and line["reason"] == "access-level-missing", (resp, line)
    resp, _ = call(proxy, "/x", token=corp)
    headers = echoed_headers(resp)
    identity = sorted((n, v) for n, v in headers if n.lower() in (
        "remote-user", "x-tenant", "x-forwarded-email", "x-forwarded-user", "x-auth-request-email"))
    assert identity == [("Remote-User", "k3@example.com"), ("X-Tenant", "example.com")], identity
