"""3. Forwarding: hop-by-hop fields removed both ways, X-Forwarded-* set, Host passed through,
Via only when asked for."""

from __future__ import annotations

from helpers import RawConn, echoed_header_values, echoed_headers, http, request_bytes
from upstreams import serve_each, simple_response


def _names(resp):
    return [n.lower() for n, _ in echoed_headers(resp)]


def test_connection_listed_fields_are_removed(proxy, token):
    resp = http(proxy.port, "GET", "/hop", token=token, headers=[
        ("Connection", "close, X-Custom"), ("X-Custom", "secret"), ("X-Kept", "kept"),
    ])
    names = _names(resp)
    assert "x-custom" not in names
    assert "connection" not in names or echoed_header_values(resp, "Connection") in (["keep-alive"], ["close"])
    assert echoed_header_values(resp, "X-Kept") == ["kept"]


def test_connection_keep_alive_with_listed_field(proxy, token):
    resp = http(proxy.port, "GET", "/hop2", token=token, headers=[
        ("Connection", "keep-alive"), ("Connection", "x-other , X-Third"), ("X-Other", "1"), ("x-third", "3"),
    ])
    names = _names(resp)
    assert "x-other" not in names and "x-third" not in names


def test_standard_hop_by_hop_fields_are_removed(proxy, token):
    resp = http(proxy.port, "GET", "/hop3", token=token, headers=[
        ("Keep-Alive", "timeout=5, max=100"), ("TE", "trailers"), ("Trailer", "X-Checksum"),
        ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"), ("X-Kept", "yes"),
    ])
    names = _names(resp)
    for name in ("keep-alive", "te", "trailer", "proxy-connection", "upgrade"):
        assert name not in names, f"{name} reached the app: {echoed_headers(resp)}"
    assert echoed_header_values(resp, "X-Kept") == ["yes"]


def test_x_forwarded_for_is_appended(proxy, token):
    resp = http(proxy.port, "GET", "/xff", token=token, headers=[("X-Forwarded-For", "203.0.113.7")])
    assert echoed_header_values(resp, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    resp = http(proxy.port, "GET", "/xff2", token=token,
                headers=[("X-Forwarded-For", "203.0.113.7, 198.51.100.1"), ("x-forwarded-for", "192.0.2.9")])
    assert echoed_header_values(resp, "X-Forwarded-For") == ["203.0.113.7, 198.51.100.1, 192.0.2.9, 127.0.0.1"]
    resp = http(proxy.port, "GET", "/xff3", token=token)
    assert echoed_header_values(resp, "X-Forwarded-For") == ["127.0.0.1"]


def test_x_forwarded_proto_and_host(proxy, token):
    resp = http(proxy.port, "GET", "/xfp", token=token, host="app.example.com:8443",
                headers=[("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https")])
    assert echoed_header_values(resp, "Host") == ["app.example.com:8443"]
    assert echoed_header_values(resp, "X-Forwarded-Host") == ["app.example.com:8443"]
    # auto (the default) keeps the load balancer's value
    assert echoed_header_values(resp, "X-Forwarded-Proto") == ["https"]
    resp = http(proxy.port, "GET", "/xfp2", token=token, headers=[("X-Forwarded-Proto", "gopher")])
    assert echoed_header_values(resp, "X-Forwarded-Proto") == ["http"]
    resp = http(proxy.port, "GET", "/xfp3", token=token)
    assert echoed_header_values(resp, "X-Forwarded-Proto") == ["http"]


def test_forwarded_fields_follow_each_request_on_one_connection(proxy, token):
    """A connection reuses the X-Forwarded-For and X-Forwarded-Host it made for its last request
    while they still apply: every request on it must still get its own values, in any order."""
    sequence = [("a.example", None), ("a.example", "203.0.113.7"), ("b.example:8443", None),
                ("a.example", None), ("a.example", "192.0.2.1"), ("b.example:8443", None)]
    with RawConn(proxy.port) as conn:
        for host, forwarded in sequence:
            headers = [("X-Forwarded-For", forwarded)] if forwarded else []
            conn.send(request_bytes("GET", "/seq", headers, host=host, token=token))
            resp = conn.read_response()
            assert resp.status == 200
            assert echoed_header_values(resp, "X-Forwarded-Host") == [host]
            expected = f"{forwarded}, 127.0.0.1" if forwarded else "127.0.0.1"
            assert echoed_header_values(resp, "X-Forwarded-For") == [expected]


def test_forwarded_proto_forced(serve, token):
    proxy = serve("--forwarded-proto", "https")
    resp = http(proxy.port, "GET", "/p", token=token, headers=[("X-Forwarded-Proto", "http")])
    assert echoed_header_values(resp, "X-Forwarded-Proto") == ["https"]
    proxy2 = serve("--forwarded-proto", "http")
    resp = http(proxy2.port, "GET", "/p", token=token, headers=[("X-Forwarded-Proto", "https")])
    assert echoed_header_values(resp, "X-Forwarded-Proto") == ["http"]


def test_host_passes_through(proxy, token):
    resp = http(proxy.port, "GET", "/host", token=token, host="Notebook.Example.COM")
    assert echoed_header_values(resp, "Host") == ["Notebook.Example.COM"]
    assert resp.json()["target"] == "/host"


def test_via_only_when_enabled(proxy, serve, token):
    resp = http(proxy.port, "GET", "/novia", token=token)
    assert echoed_header_values(resp, "Via") == []
    assert resp.header("Via") is None
    via = serve("--via", "true")
    resp = http(via.port, "GET", "/via", token=token)
    assert echoed_header_values(resp, "Via") == ["1.1 iap-proxy"]
    assert resp.header("Via") == "1.1 iap-proxy"


def test_response_hop_by_hop_fields_are_removed(serve, upstream, token):
    app = upstream(serve_each(lambda up, conn, req: simple_response(b"hi", headers=[
        ("Connection", "X-Secret"), ("X-Secret", "internal"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"), ("X-Public", "ok"),
    ])))
    proxy = serve(upstream=app.url)
    resp = http(proxy.port, "GET", "/resp-hop", token=token)
    assert resp.status == 200 and resp.body == b"hi"
    names = [n.lower() for n, _ in resp.headers]
    for name in ("x-secret", "keep-alive", "proxy-connection"):
        assert name not in names, resp.headers
    assert resp.header("X-Public") == "ok"


def test_upstream_interim_responses_are_not_passed_on(serve, upstream, token):
    """1xx (other than 101) from the app belong to the hop: the client sees only the final answer."""
    app = upstream(serve_each(lambda up, conn, req: b"HTTP/1.1 100 Continue\r\n\r\n"
                              b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                              + simple_response(b"final")))
    proxy = serve(upstream=app.url)
    from helpers import RawConn, request_bytes
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/interim", token=token))
        first = conn.read_response(allow_interim=True)
        assert first.status == 200 and first.body == b"final", first
        conn.send(request_bytes("GET", "/interim2", token=token))
        assert conn.read_response(allow_interim=True).body == b"final"
