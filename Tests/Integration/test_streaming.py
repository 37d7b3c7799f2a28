"""4. Streaming: 1 GiB uploads (Content-Length and chunked) and a 1 GiB download pass with bounded
proxy memory; chunked and until-close responses; Expect: 100-continue; SSE events arrive as they
are sent.

The debug build moves 1 GiB through the proxy in ~5 s on this machine, so the transfers are full
size (1 GiB) with the debug binary.
"""

from __future__ import annotations

import hashlib
import json
import http.client as httpclient
import socket
import threading
import time

import pytest

from helpers import (ASSERTION, GiB, MiB, PatternBody, RawConn, RSSSampler, curl,
                     http, pattern_block, request_bytes)
from upstreams import big_download, chunked_response, slow_reader, sse, until_close

RSS_BOUND_KIB = 64 * 1024  # max(VmRSS) - baseline during a 1 GiB transfer

def _baseline_rss(proxy, token) -> int:
    for _ in range(3):
        assert http(proxy.port, "GET", "/warm-up", token=token).status == 200
    time.sleep(0.2)
    return proxy.rss_kib()


def _upload(port: int, token: str, total: int, chunked: bool):
    body = PatternBody(total)
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {ASSERTION: token, "Content-Type": "application/octet-stream"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(total)
    try:
        conn.request("PUT", "/upload", body=iter(body), headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
    except OSError as exc:
        raise AssertionError(f"upload failed after {body.handed_out} of {total} bytes: {exc!r}") from exc
    finally:
        conn.close()
    assert resp.status == 200, (f"upload answered {resp.status} after {body.handed_out} of {total} bytes: "
                                f"{data[:200]!r}")
    return body, json.loads(data)


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_1gib_reaches_echo_with_bounded_rss(serve, token, framing):
    proxy = serve("--client-timeout", "5s", "--upstream-timeout", "5s")
    baseline = _baseline_rss(proxy, token)
    with RSSSampler(proxy) as rss:
        started = time.monotonic()
        body, echoed = _upload(proxy.port, token, GiB, chunked=framing == "chunked")
        elapsed = time.monotonic() - started
    assert echoed["body_bytes"] == GiB
    assert echoed["body_sha256"] == body.sha.hexdigest()
    assert echoed["method"] == "PUT"
    # The app sees the framing the proxy chose; a chunked upload stays chunked (no buffering to
    # learn the length) and never carries both framings.
    framing_headers = {k.lower(): v for k, v in echoed["headers"] if k.lower() in ("content-length", "transfer-encoding")}
    if framing == "chunked":
        assert framing_headers == {"transfer-encoding": "chunked"}
    else:
        assert framing_headers == {"content-length": str(GiB)}
    growth = rss.peak_kib - baseline
    assert growth < RSS_BOUND_KIB, f"proxy RSS grew by {growth} KiB (baseline {baseline} KiB) in {elapsed:.1f}s"


def test_upload_backpressure_never_stalls(serve, upstream, token):
    """An upstream that reads in 256 KiB bursts with 1 ms pauses makes the proxy pause and resume
    reading the client thousands of times per upload; every upload must complete.

    Regression test: before commit 1ff159d the proxy decided to pause reading the client before
    the flush that emptied the upstream queue, so neither socket was watched any more and the
    upload stalled until a timeout (408) in about half of these uploads (and in 1 GiB uploads to
    echo)."""
    app = upstream(slow_reader(256 * 1024, 0.001))
    proxy = serve("--client-timeout", "3s", "--upstream-timeout", "3s", upstream=app.url, workers=1)
    total = 32 * MiB
    for attempt in range(8):
        sent = 0
        expected = hashlib.sha256()
        with RawConn(proxy.port, timeout=15) as conn:
            conn.send(request_bytes("PUT", f"/bp/{attempt}", [("Content-Length", str(total))], token=token))
            try:
                for index in range(total // MiB):
                    block = pattern_block(index)
                    expected.update(block)
                    conn.send(block)
                    sent += len(block)
                resp = conn.read_response()
            except OSError as exc:
                raise AssertionError(
                    f"upload {attempt} stalled: the proxy stopped reading after {sent} of {total} bytes "
                    f"and gave up ({exc!r})") from exc
            assert resp.status == 200, f"upload {attempt}: {resp} after {sent} bytes"
            got = resp.json()
            assert got == {"body_bytes": total, "body_sha256": expected.hexdigest()}


@pytest.mark.slow
def test_download_1gib_with_bounded_rss(serve, upstream, token):
    size = GiB
    block = b"".join(pattern_block(i, 64 * 1024) for i in range(16))  # 1 MiB, 16 distinct pieces
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)
    app = upstream(big_download(size, block))
    proxy = serve("--client-timeout", "10s", "--upstream-timeout", "10s", upstream=app.url)
    # (no warm-up request: the download upstream answers one request; RSS right after start)
    time.sleep(0.2)
    baseline = proxy.rss_kib()
    received = 0
    sha = hashlib.sha256()
    with RSSSampler(proxy) as rss, RawConn(proxy.port, timeout=30) as conn:
        conn.send(request_bytes("GET", "/big", [("Connection", "close")], token=token))
        status, _, headers, _ = conn.read_head()
        assert status == 200
        assert dict((k.lower(), v) for k, v in headers).get("content-length") == str(size)
        if conn.buf:
            sha.update(conn.buf)
            received += len(conn.buf)
            conn.buf = b""
        buffer = bytearray(MiB)
        view = memoryview(buffer)
        while received < size:
            n = conn.sock.recv_into(buffer)
            if n == 0:
                break
            sha.update(view[:n])
            received += n
    assert received == size, f"download truncated at {received} of {size}"
    assert sha.hexdigest() == expected.hexdigest()
    growth = rss.peak_kib - baseline
    assert growth < RSS_BOUND_KIB, f"proxy RSS grew by {growth} KiB during the download"


def test_chunked_response_is_streamed_and_reassembled(serve, upstream, token):
    pieces = [b"a", b"bc" * 5000, pattern_block(1), b"", b"tail"]
    pieces = [p for p in pieces if p]  # an empty chunk would end the body
    app = upstream(chunked_response(pieces, pause=0.005, trailers=b"X-Checksum: 1\r\n"))
    proxy = serve(upstream=app.url)
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/chunks", token=token))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.header("Transfer-Encoding") == "chunked"
        assert resp.body == b"".join(pieces)
        # keep-alive survives a chunked response
        conn.send(request_bytes("GET", "/chunks2", token=token))
        assert conn.read_response().body == b"".join(pieces)
    # curl as a second real client
    result = curl(["-H", f"{ASSERTION}: {token}", f"http://127.0.0.1:{proxy.port}/chunks3"])
    assert result.returncode == 0 and result.stdout == b"".join(pieces), result.stderr


def test_chunked_upload_small_pieces(proxy, token):
    pieces = [b"x" * n for n in (1, 2, 3, 1000, 70000, 5)]
    body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("POST", "/chunked-up", [("Transfer-Encoding", "chunked")], token=token))
        for i in range(0, len(body), 777):  # arbitrary split points
            conn.send(body[i:i + 777])
        resp = conn.read_response()
    echoed = resp.json()
    assert echoed["body_bytes"] == sum(map(len, pieces))
    assert echoed["body_sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_until_close_response(serve, upstream, token, version):
    body = pattern_block(3, 200_000)
    app = upstream(until_close(body))
    proxy = serve(upstream=app.url)
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/until-close", token=token, version=version))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.body == body
        if version == "HTTP/1.1":
            # re-framed as chunked so the client connection can stay open
            assert resp.header("Transfer-Encoding") == "chunked"
        else:
            assert resp.header("Transfer-Encoding") is None
            assert conn.wait_closed(5)


def test_expect_100_continue(proxy, token):
    payload = b"hello, world"
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("POST", "/expect", [("Expect", "100-continue"), ("Content-Length", str(len(payload)))],
                                token=token))
        interim = conn.read_response(allow_interim=True)
        assert interim.status == 100, f"expected 100 Continue before sending the body, got {interim}"
        conn.send(payload)
        resp = conn.read_response()
    assert resp.status == 200
    echoed = resp.json()
    assert echoed["body_bytes"] == len(payload)
    assert echoed["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert not [v for k, v in echoed["headers"] if k.lower() == "expect"], "Expect reached the app"


def test_expect_100_continue_denied_gets_no_100(proxy):
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("POST", "/expect-denied", [("Expect", "100-continue"), ("Content-Length", "1000")]))
        resp = conn.read_response(allow_interim=True)
        assert resp.status == 401, f"a denied request must not be invited to send its body: {resp}"
        assert conn.wait_closed(5)


def test_sse_events_arrive_as_sent(serve, upstream, token):
    events = [f"id: {i}\ndata: event {i}\n\n".encode() for i in range(4)]
    app = upstream(sse(events))
    app.state["acks"] = [threading.Event() for _ in events]
    proxy = serve(upstream=app.url)
    with RawConn(proxy.port, timeout=15) as conn:
        conn.send(request_bytes("GET", "/events", [("Accept", "text/event-stream")], token=token))
        status, _, headers, _ = conn.read_head()
        assert status == 200
        assert dict((k.lower(), v) for k, v in headers)["transfer-encoding"] == "chunked"
        received = b""
        for i, event in enumerate(events):
            # Read until the whole event i is here. The upstream sends event i+1 only after
            # this ack, so a proxy that buffers would leave us waiting here (socket timeout).
            while event not in received:
                try:
                    size = int(conn._read_line().split(b";")[0], 16)
                except socket.timeout:
                    raise AssertionError(f"event {i} never arrived (buffered by the proxy?); got {received!r}")
                assert size > 0, "stream ended early"
                received += conn._read_exact(size)
                assert conn._read_exact(2) == b"\r\n"
            app.state["acks"][i].set()
        assert conn._read_line() == b"0"
    assert received == b"".join(events)
    assert "stalled_at" not in app.state
