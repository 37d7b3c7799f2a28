"""6. Upstream faults: down → 502, slow → 504, broken mid-body → the client sees a failed (never a
complete-looking) response, garbage heads → 502, keep-alive connections closed by the upstream
between requests → requests still succeed."""

from __future__ import annotations

import time

import pytest

from helpers import ConnectionClosed, RawConn, free_port, http, request_bytes
from helpers import assert_generic_error
from upstreams import one_per_connection, raw_reply, reset_mid_body, slow_body, slow_head


def test_upstream_down_is_502(serve, token):
    proxy = serve(upstream=f"http://127.0.0.1:{free_port()}")
    resp = http(proxy.port, "GET", "/down", token=token)
    request_id = assert_generic_error(resp, 502, "upstream-connect-failed")
    line = proxy.access_for(request_id)
    assert line["status"] == 502 and line["email"] == "alice@example.com"


def test_upstream_connect_timeout_is_502(serve, token):
    """A listener whose accept queue is full drops new SYNs, so the proxy's connect hangs until
    --upstream-connect-timeout."""
    import socket

    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(blackhole.getsockname())
            fillers.append(filler)
        time.sleep(0.2)
        proxy = serve("--upstream-connect-timeout", "1s", upstream=f"http://127.0.0.1:{blackhole.getsockname()[1]}")
        started = time.monotonic()
        resp = http(proxy.port, "GET", "/blackhole", token=token, timeout=15)
        elapsed = time.monotonic() - started
        request_id = assert_generic_error(resp, 502, "upstream-connect-timeout")
        assert 0.8 <= elapsed < 8, f"502 after {elapsed:.2f}s with --upstream-connect-timeout 1s"
        assert proxy.access_for(request_id)["status"] == 502
    finally:
        for filler in fillers:
            filler.close()
        blackhole.close()


def test_slow_upstream_head_is_504(serve, upstream, token):
    app = upstream(slow_head(6))
    proxy = serve("--upstream-timeout", "1s", upstream=app.url)
    started = time.monotonic()
    resp = http(proxy.port, "GET", "/slow", token=token, timeout=15)
    elapsed = time.monotonic() - started
    request_id = assert_generic_error(resp, 504, "upstream-timeout")
    assert 0.8 <= elapsed < 5.5, f"504 after {elapsed:.2f}s with --upstream-timeout 1s"
    assert proxy.access_for(request_id)["status"] == 504


def test_upstream_within_timeout_is_fine(serve, upstream, token):
    app = upstream(slow_head(0.3))
    proxy = serve("--upstream-timeout", "5s", upstream=app.url)
    resp = http(proxy.port, "GET", "/slow-ok", token=token)
    assert resp.status == 200 and resp.body == b"slow-ok"


def test_slow_body_with_pauses_within_timeout_completes(serve, upstream, token):
    app = upstream(slow_body(pieces=5, pause=0.2))
    proxy = serve("--upstream-timeout", "3s", upstream=app.url)
    resp = http(proxy.port, "GET", "/slow-body", token=token)
    assert resp.status == 200 and resp.body == b"x" * 500


def test_upstream_stalling_mid_body_aborts_the_response(serve, upstream, token):
    app = upstream(slow_body(pieces=3, pause=4))  # first piece only after 4 s > 1 s timeout
    proxy = serve("--upstream-timeout", "1s", upstream=app.url)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/stall-body", token=token))
        status, _, headers, _ = conn.read_head()
        assert status == 200
        declared = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        with pytest.raises(ConnectionClosed):
            conn._read_exact(declared)


def test_upstream_reset_mid_body_truncates(serve, upstream, token):
    app = upstream(reset_mid_body(declared=1_000_000, sent=10_000))
    proxy = serve(upstream=app.url)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/reset", token=token))
        status, _, headers, _ = conn.read_head()
        assert status == 200
        assert dict((k.lower(), v) for k, v in headers)["content-length"] == "1000000"
        with pytest.raises(ConnectionClosed) as info:
            conn._read_exact(1_000_000)
        assert "of 1000000" in str(info.value)
    proxy.wait_access(lambda l: l.get("path") == "/reset")


def test_upstream_reset_mid_chunked_body_is_not_completed(serve, upstream, token):
    """A chunked response cut by the upstream must not get a terminating 0-chunk from the proxy."""
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"

    def handler(up, conn):
        conn.read_request()
        conn.send(data)
        up.sleep(0.3)
        conn.reset()

    app = upstream(handler)
    proxy = serve(upstream=app.url)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/reset-chunked", token=token))
        with pytest.raises(ConnectionClosed):
            conn.read_response()


GARBAGE = {
    "not-http": b"garbage garbage\r\n\r\n",
    "bad-status": b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
    "bad-field": b"HTTP/1.1 200 OK\r\nThis is not a header\r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "double-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "nul-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "oversized": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(200))
                 + b"Content-Length: 2\r\n\r\nok",
    "closed-before-head": b"",
    "truncated-head": b"HTTP/1.1 200 OK\r\nContent-Len",
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_garbage_response_head_is_502(serve, upstream, token, case):
    app = upstream(raw_reply(GARBAGE[case]))
    proxy = serve("--upstream-timeout", "3s", upstream=app.url)
    resp = http(proxy.port, "GET", f"/garbage/{case}", token=token, timeout=15)
    request_id = assert_generic_error(resp, 502, "upstream")
    assert proxy.access_for(request_id)["status"] == 502


def test_upstream_closing_keep_alive_connections_between_requests(serve, upstream, token):
    """The app answers each request with `Connection: keep-alive` and then closes the connection;
    the proxy must notice (or retry the idempotent request on a fresh connection), so every
    request succeeds."""
    app = upstream(one_per_connection())
    proxy = serve(upstream=app.url, workers=1)
    with RawConn(proxy.port) as conn:
        for i in range(12):
            conn.send(request_bytes("GET" if i % 3 else "HEAD", f"/one/{i}", token=token))
            resp = conn.read_response(head_request=i % 3 == 0)
            assert resp.status == 200, f"request {i}: {resp}"
            if i % 3:
                assert resp.body.startswith(b"answer ")
            if i % 4 == 3:
                time.sleep(0.5)  # also let the upstream close an idle pooled connection
    # also from separate client connections
    for i in range(5):
        assert http(proxy.port, "GET", f"/one/sep/{i}", token=token).status == 200
    assert len(app.requests) == 17
    print("upstream closed a connection with a request pending:", app.state.get("closed_with_request_pending", 0))
