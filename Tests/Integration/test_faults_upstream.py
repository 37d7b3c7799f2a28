"""Fault table, upstream (the "Prove it" issue): what test_upstream_faults.py does not cover yet.
There: refused (502), connect timeout (502), slow head (504), stalls and resets mid-body, garbage
and oversized (200 KiB) response heads (502), keep-alive connections closed between requests
(GET/HEAD retried). Here: a pooled connection the app closes right after reading a request (an
idempotent request without a body is replayed once on a fresh connection, anything else is a 502,
never a hang, never a second copy of a POST), the same race with the app's keep-alive timer, and
the response-head size limit on both sides of it.
"""

from __future__ import annotations

import collections
import random
import time

import pytest

from helpers import RawConn, assert_generic_error, http, request_bytes
from upstreams import reset, simple_response


def _second_request_dropped(how: str):
    """Answers the first request on each connection (keep-alive); reads the second one completely
    and then closes (FIN) or resets the connection without answering it."""

    def handler(up, conn):
        first = True
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            if first:
                conn.send(simple_response(f"first on {conn.serial}".encode(), headers=[("Connection", "keep-alive")]))
                first = False
                continue
            if how == "reset":
                conn.reset()
            else:
                conn.sock.close()
            return

    return handler


CASES = {
    # method, body, expected status
    "GET": ("GET", b"", 200),
    "HEAD": ("HEAD", b"", 200),
    "DELETE": ("DELETE", b"", 200),
    "POST": ("POST", b"form=1&amount=100", 502),
    "POST-empty": ("POST", b"", 502),
    "PUT-with-body": ("PUT", b'{"v":1}', 502),
}


@pytest.mark.parametrize("how", ["fin", "reset"])
@pytest.mark.parametrize("case", list(CASES))
def test_pooled_connection_closed_after_the_request_was_sent(serve, upstream, token, case, how):
    """The proxy reuses a pooled connection; the app reads the request and closes (or resets) the
    connection without answering. An idempotent request without a body is replayed once on a new
    connection (200; the app saw it twice); a POST, or any request with a body, is answered 502 at
    once (the app may have acted on it: it saw it exactly once); nothing waits for a timeout."""
    method, body, expected = CASES[case]
    app = upstream(_second_request_dropped(how))
    proxy = serve("--upstream-timeout", "10s", upstream=app.url, workers=1)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/warm", token=token))
        assert conn.read_response().body == b"first on 0"
        started = time.monotonic()
        headers = [("Content-Length", "0")] if method == "POST" and not body else []
        conn.send(request_bytes(method, f"/dropped/{case}", headers, token=token, body=body))
        resp = conn.read_response(head_request=method == "HEAD")
        elapsed = time.monotonic() - started
    copies = [r for r in app.requests if r["target"] == f"/dropped/{case}"]
    assert resp.status == expected, (resp, [(r["method"], r["conn"]) for r in copies])
    assert elapsed < 3, f"answered after {elapsed:.1f}s"
    if expected == 200:
        assert [r["conn"] for r in copies] == [0, 1], copies  # the dropped one, then the replay
        if method != "HEAD":
            assert resp.body == b"first on 1"
    else:
        assert_generic_error(resp, 502, "upstream")
        assert len(copies) == 1, f"a {method} with body {body!r} reached the app {len(copies)} times"
        assert copies[0]["body"] == body


def _closes_after(delay: float):
    """Answers every request with keep-alive, then closes the connection if no next request
    arrives within `delay` (a short keep-alive timeout, as many app servers have)."""

    def handler(up, conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            conn.send(simple_response(req["body"] or b"-", headers=[("Connection", "keep-alive")]))
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not conn.buf and not conn.eof:
                conn.fill(timeout=0.005)
            if not conn.buf:
                if random.random() < 0.5:
                    reset(conn.sock)
                else:
                    conn.sock.close()
                return

    return handler


def test_app_keep_alive_timeout_races_never_replay_a_post(serve, upstream, token):
    """The app closes each connection ~30 ms after its last answer while a client sends POSTs at
    intervals around that time: some POSTs meet a connection the app is just closing. Each is
    answered 200 or 502 (never a hang), no POST ever reaches the app twice, and most get through."""
    app = upstream(_closes_after(0.03))
    proxy = serve("--upstream-timeout", "10s", upstream=app.url, workers=1)
    rng = random.Random(7)
    statuses = collections.Counter()
    with RawConn(proxy.port, timeout=15) as conn:
        for i in range(60):
            body = f"post-{i}".encode()
            started = time.monotonic()
            conn.send(request_bytes("POST", f"/race/{i}", token=token, body=body))
            resp = conn.read_response()
            assert time.monotonic() - started < 3, f"POST {i} answered after {time.monotonic() - started:.1f}s"
            assert resp.status in (200, 502), resp
            if resp.status == 200:
                assert resp.body == body
            statuses[resp.status] += 1
            time.sleep(rng.uniform(0.0, 0.06))
    bodies = collections.Counter(r["body"] for r in app.requests if r["target"].startswith("/race/"))
    replayed = {b: n for b, n in bodies.items() if n > 1}
    print(f"statuses {dict(statuses)}; app connections {len(app.conns)}")
    assert not replayed, f"POSTs that reached the app more than once: {replayed}"
    assert statuses[200] >= 30, statuses


@pytest.mark.parametrize("size,expected", [(24 * 1024, 200), (40 * 1024, 502)])
def test_upstream_response_head_size_limit(serve, upstream, token, size, expected):
    """A response head under the 32 KiB head limit (big Set-Cookie and CSP headers) passes
    intact; one over it is a 502, on a connection the proxy then drops (the next request works)."""
    fields = [(f"X-Large-{i}", "v" * 1000) for i in range(size // 1024)]

    def handler(up, conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            up.record(req)
            conn.send(simple_response(b"head-test", headers=fields if req["target"] == "/large" else []))

    app = upstream(handler)
    proxy = serve(upstream=app.url, workers=1)
    resp = http(proxy.port, "GET", "/large", token=token)
    if expected == 200:
        assert resp.status == 200 and resp.body == b"head-test"
        got = [(k, v) for k, v in resp.headers if k.startswith("X-Large-")]
        assert got == fields, f"{len(got)} of {len(fields)} large fields passed"
    else:
        assert_generic_error(resp, 502, "upstream")
    assert http(proxy.port, "GET", "/small", token=token).body == b"head-test"
