"""7. Client faults and timeouts: 408 head timeout, idle keep-alive close, slow bodies, 431, 414,
malformed requests → 400 and close, WebSocket tunnel idle timeout. Timeouts are configured short
(1 s) and asserted with generous upper bounds (the machine is shared and noisy)."""

from __future__ import annotations

import select
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed as WSClosed
from websockets.sync.client import connect as ws_connect

from helpers import ASSERTION, ConnectionClosed, RawConn, assert_generic_error, request_bytes


@pytest.fixture
def strict(env):
    """A proxy with 1 s timeouts and small limits."""
    from conftest import ServeFactory

    factory = ServeFactory(env)
    proc = factory("--head-timeout", "1s", "--idle-timeout", "1s", "--client-timeout", "1s",
                   "--max-header-bytes", "4096", "--max-uri-bytes", "1024", "--tunnel-idle-timeout", "1s")
    yield proc
    factory.stop_all()


def _expect_refusal(conn: RawConn, status: int, within: float = 8):
    resp = conn.read_response()
    assert resp.status == status, resp
    assert resp.header("Connection") == "close", resp.headers
    assert conn.wait_closed(within), "connection left open after a refusal"
    return resp


def test_head_timeout_is_408_and_close(strict):
    with RawConn(strict.port, timeout=15) as conn:
        started = time.monotonic()
        conn.send(b"GET /partial HTTP/1.1\r\nHost: app.test\r\n")
        resp = _expect_refusal(conn, 408)
        elapsed = time.monotonic() - started
    assert_generic_error(resp, 408, "head-timeout")
    assert 0.8 <= elapsed < 8, elapsed


def test_trickled_head_still_times_out(strict):
    """Slowloris: bytes arriving slowly do not extend the head deadline."""
    head = b"GET /trickle HTTP/1.1\r\nHost: app.test\r\nX-Slow: " + b"s" * 60
    with RawConn(strict.port, timeout=15) as conn:
        started = time.monotonic()
        for byte in head:
            # stop trickling once the proxy answered (or after 6 s)
            if select.select([conn.sock], [], [], 0.1)[0] or time.monotonic() - started > 6:
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
        resp = _expect_refusal(conn, 408)
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 8, elapsed
    assert resp.status == 408


def test_idle_keep_alive_connection_is_closed(strict, token):
    with RawConn(strict.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/idle", token=token))
        assert conn.read_response().status == 200
        started = time.monotonic()
        assert conn.wait_closed(8), "idle keep-alive connection not closed"
        elapsed = time.monotonic() - started
        assert conn.buf == b"", f"unexpected bytes on idle close: {conn.buf!r}"
    assert 0.5 <= elapsed < 8, elapsed




def _stalled_body(port: int, token: str):
    """Sends a head announcing 100 body bytes and only 10; returns (response or None, seconds)."""
    with RawConn(port, timeout=8) as conn:
        conn.send(request_bytes("POST", "/slow-body", [("Content-Length", "100")], token=token) + b"only ten b")
        started = time.monotonic()
        try:
            resp = conn.read_response()
        except (ConnectionClosed, OSError):
            resp = None  # closed (or reset) without a response: acceptable
        if resp is not None:
            assert conn.wait_closed(8), "connection left open after the 408"
        elapsed = time.monotonic() - started
    return resp, elapsed


def test_slow_request_body_is_408_or_closed(strict, token):
    """--client-timeout 1s (and the default --upstream-timeout): a stalled body ends within seconds."""
    resp, elapsed = _stalled_body(strict.port, token)
    assert resp is None or resp.status == 408, resp
    assert 0.5 <= elapsed < 7.5, f"stalled request body not timed out after {elapsed:.1f}s with --client-timeout 1s"


def test_slow_request_body_with_short_upstream_timeout_is_408(serve, token):
    proxy = serve("--client-timeout", "1s", "--upstream-timeout", "1s")
    resp, elapsed = _stalled_body(proxy.port, token)
    assert resp is not None and resp.status == 408, resp
    assert 0.5 <= elapsed < 7.5, elapsed


def _never_read(serve, upstream, token, *flags):
    from upstreams import big_download

    app = upstream(big_download(256 << 20, b"d" * (1 << 20)))
    proxy = serve(*flags, upstream=app.url)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        conn.send(request_bytes("GET", "/never-read", token=token))
        started = time.monotonic()
        line = proxy.wait_access(lambda l: l.get("path") == "/never-read", timeout=10,
                                 what="the proxy giving up on a client that stopped reading")
        elapsed = time.monotonic() - started
    assert line["status"] in (200, 499), line
    assert elapsed < 7.5, elapsed


def test_client_not_reading_response_is_dropped(serve, upstream, token):
    """A client that stops reading a large response is cut off after --client-timeout (1 s here;
    --upstream-timeout stays at its default)."""
    _never_read(serve, upstream, token, "--client-timeout", "1s")


def test_client_not_reading_response_with_short_upstream_timeout_is_dropped(serve, upstream, token):
    _never_read(serve, upstream, token, "--client-timeout", "1s", "--upstream-timeout", "1s")


def test_oversized_head_is_431(strict, token):
    with RawConn(strict.port) as conn:
        conn.send(request_bytes("GET", "/big-head", [("X-Big", "b" * 8000)], token=token))
        resp = _expect_refusal(conn, 431)
    assert_generic_error(resp, 431, "head-too-large")


def test_many_fields_over_the_limit_is_431(strict, token):
    with RawConn(strict.port) as conn:
        conn.send(request_bytes("GET", "/many", [(f"X-F{i}", "v" * 40) for i in range(200)], token=token))
        _expect_refusal(conn, 431)


def test_long_uri_is_414(strict, token):
    with RawConn(strict.port) as conn:
        conn.send(request_bytes("GET", "/" + "u" * 2000, token=token))
        resp = _expect_refusal(conn, 414)
    assert_generic_error(resp, 414, "uri-too-long")


BAD_REQUESTS = {
    "obs-fold": b"GET /fold HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n b\r\nTOKEN\r\n\r\n",
    "cl-and-te": (b"POST /clte HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad-chunk-size": (b"POST /chunk HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": (b"POST /chunk2 HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"fffffffffffffffff\r\nx\r\n0\r\n\r\n"),
    "two-content-lengths": b"POST /cl2 HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "te-not-chunked": b"POST /te HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "space-before-colon": b"GET /sp HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\nContent-Length : 0\r\n\r\n",
    "missing-host": b"GET /nohost HTTP/1.1\r\nTOKEN\r\n\r\n",
    "two-hosts": b"GET /hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nTOKEN\r\n\r\n",
    "absolute-form": b"GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\nTOKEN\r\n\r\n",
    "bare-lf": b"GET /lf HTTP/1.1\nHost: app.test\nTOKEN\n\n",
    "nul-in-value": b"GET /nul HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\nTOKEN\r\n\r\n",
    "bad-request-line": b"GET  /two-spaces HTTP/1.1\r\nHost: app.test\r\nTOKEN\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_400_and_closed(strict, token, case):
    raw = BAD_REQUESTS[case].replace(b"TOKEN", f"{ASSERTION}: {token}".encode())
    with RawConn(strict.port) as conn:
        conn.send(raw)
        resp = _expect_refusal(conn, 400)
    assert_generic_error(resp, 400, case)


def test_websocket_tunnel_idle_timeout_closes(strict, token):
    with ws_connect(f"ws://127.0.0.1:{strict.port}/ws-idle", additional_headers={ASSERTION: token},
                    ping_interval=None, open_timeout=10, close_timeout=2) as ws:
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
        started = time.monotonic()
        with pytest.raises(WSClosed):
            ws.recv(timeout=10)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 9, elapsed
