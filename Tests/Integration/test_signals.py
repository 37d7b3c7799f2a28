"""8. SIGTERM drain and 9. SIGHUP allowlist reload."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

from conftest import ALLOWLIST
from helpers import RawConn, http, request_bytes
from upstreams import slow_head


def _refused_within(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_drains_in_flight_request(serve, upstream, token):
    app = upstream(slow_head(2))
    app.state["received"] = threading.Event()
    proxy = serve("--drain-timeout", "15s", upstream=app.url)

    # An idle keep-alive connection (closed at once by the drain) ...
    idle = RawConn(proxy.port)
    idle.send(request_bytes("GET", "/health-ish", token=token))
    # (served by the same slow upstream: wait for it before the drain starts)
    # ... and a request in flight when SIGTERM arrives.
    busy = RawConn(proxy.port, timeout=20)
    try:
        assert idle.read_response().status == 200
        app.state["received"].clear()
        busy.send(request_bytes("GET", "/in-flight", token=token))
        assert app.state["received"].wait(10), "the request never reached the upstream"
        sent_at = time.monotonic()
        proxy.signal(signal.SIGTERM)
        proxy.wait_event("draining", timeout=5)

        assert idle.wait_closed(5), "idle keep-alive connection not closed by the drain"
        assert _refused_within(proxy.port, 5), "new connections still accepted while draining"

        resp = busy.read_response()
        assert resp.status == 200 and resp.body == b"slow-ok"
        assert (resp.header("Connection") or "").lower() == "close"
        code = proxy.wait_exit(timeout=15)
        elapsed = time.monotonic() - sent_at
    finally:
        idle.close()
        busy.close()
    assert code == 0, proxy.output_tail()
    assert elapsed < 12, f"exit {elapsed:.1f}s after SIGTERM with a 2 s request"
    drained = proxy.wait_event("drained", timeout=2)
    assert drained.get("connections_left") in ("0", 0), drained
    line = proxy.wait_access(lambda l: l.get("path") == "/in-flight")
    assert line["status"] == 200


def test_drain_timeout_bounds_the_exit(serve, upstream, token):
    app = upstream(slow_head(10))
    app.state["received"] = threading.Event()
    proxy = serve("--drain-timeout", "1s", upstream=app.url)
    with RawConn(proxy.port, timeout=20) as busy:
        busy.send(request_bytes("GET", "/ten-seconds", token=token))
        assert app.state["received"].wait(10)
        sent_at = time.monotonic()
        proxy.signal(signal.SIGTERM)
        code = proxy.wait_exit(timeout=15)
        elapsed = time.monotonic() - sent_at
        assert code == 0, proxy.output_tail()
        assert 0.8 <= elapsed < 6, f"exit {elapsed:.1f}s after SIGTERM with --drain-timeout 1s"
        # the unfinished request was not answered as if it had succeeded
        try:
            resp = busy.read_response()
        except Exception:  # noqa: BLE001 - closed or reset is the expected outcome
            resp = None
        assert resp is None or resp.status != 200, resp
    drained = proxy.events("drained")
    assert drained, proxy.output_tail()


def test_sigint_also_drains(serve, token):
    proxy = serve()
    assert http(proxy.port, "GET", "/before", token=token).status == 200
    proxy.signal(signal.SIGINT)
    assert proxy.wait_exit(timeout=10) == 0


# The first brief named the events allowlist-reloaded / allowlist-reload-failed; docs/CONFIG.md
# (commit 3429843, live policy reload) names them policy-reloaded / policy-reload-failed. Either
# name is accepted: what the test pins is the behaviour (the 200/403 decisions). Edits are also
# picked up without a signal (file watcher, ~1 s), so every wait counts events from before the
# edit and accepts the watcher's reload or the SIGHUP's, whichever logs first.
RELOADED = ("allowlist-reloaded", "policy-reloaded")
RELOAD_FAILED = ("allowlist-reload-failed", "policy-reload-failed")


def _count(proxy, names) -> int:
    return sum(len(proxy.events(name)) for name in names)


def _wait(proxy, names, after: int) -> dict:
    def find():
        found = [e for e in proxy.events() if e.get("event") in names]
        return found[after] if len(found) > after else None
    return proxy.wait_for(find, 10, f"event {names}")


def test_sighup_reloads_allowlist(serve, env, tmp_path):
    path = tmp_path / "allowlist.txt"
    path.write_text(ALLOWLIST)
    proxy = serve(allowlist=path)
    corp = env.mint(email="dev@corp.example", hd="corp.example")
    alice = env.mint()
    assert http(proxy.port, "GET", "/corp", token=corp).status == 200

    reloads = _count(proxy, RELOADED)
    path.write_text(ALLOWLIST.replace("@corp.example\n", ""))
    proxy.signal(signal.SIGHUP)
    _wait(proxy, RELOADED, reloads)
    resp = http(proxy.port, "GET", "/corp", token=corp)
    assert resp.status == 403, resp
    assert http(proxy.port, "GET", "/alice", token=alice).status == 200

    # A broken file keeps the policy that was loaded.
    failures = _count(proxy, RELOAD_FAILED)
    path.write_text("example.com\nthis line is not an entry\n@\n")
    proxy.signal(signal.SIGHUP)
    event = _wait(proxy, RELOAD_FAILED, failures)
    assert path.name in json.dumps(event), event
    assert http(proxy.port, "GET", "/alice", token=alice).status == 200
    assert http(proxy.port, "GET", "/corp", token=corp).status == 403
    assert proxy.alive()

    # A missing file too.
    failures = _count(proxy, RELOAD_FAILED)
    path.unlink()
    proxy.signal(signal.SIGHUP)
    _wait(proxy, RELOAD_FAILED, failures)
    assert http(proxy.port, "GET", "/alice", token=alice).status == 200
    assert proxy.alive()

    # An empty file as well (docs/CONFIG.md: "a broken, missing or empty file keeps the last good
    # policy").
    failures = _count(proxy, RELOAD_FAILED)
    path.write_text("")
    proxy.signal(signal.SIGHUP)
    _wait(proxy, RELOAD_FAILED, failures)
    assert http(proxy.port, "GET", "/alice", token=alice).status == 200

    # And a good file again is picked up.
    reloads = _count(proxy, RELOADED)
    path.write_text("@corp.example\n")
    proxy.signal(signal.SIGHUP)
    _wait(proxy, RELOADED, reloads)
    assert http(proxy.port, "GET", "/corp", token=corp).status == 200
    assert http(proxy.port, "GET", "/alice", token=alice).status == 403
