"""1. Allow/deny matrix: every rejection answers a generic page (status + request id, never the
reason code), and the access log line carries the decision and reason."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import pytest

from helpers import ASSERTION, OTHER_AUDIENCE, RawConn, assert_generic_error, free_port, http, request_bytes
from upstreams import KeyServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def assert_logged(proxy, request_id: str, status: int, decision: str, reason: str, email=None):
    line = proxy.access_for(request_id)
    assert line["status"] == status, line
    assert line["decision"] == decision, line
    assert line["reason"] == reason, line
    if email is not None:
        assert line["email"] == email, line
    for key in ("time", "client", "method", "path", "bytes", "duration_ms", "upstream_ms"):
        assert key in line, f"access log line lacks {key}: {line}"
    return line


def test_valid_token_is_admitted_and_logged(proxy, token):
    resp = http(proxy.port, "GET", "/hello?x=1", token=token)
    assert resp.status == 200
    echoed = resp.json()
    assert echoed["target"] == "/hello?x=1"
    line = proxy.wait_access(lambda l: l.get("path") == "/hello?x=1" and l.get("status") == 200)
    assert line["decision"] == "allow" and line["email"] == "alice@example.com" and line["method"] == "GET"
    assert isinstance(line["upstream_ms"], (int, float)) and line["upstream_ms"] >= 0  # ms, µs precision


def test_missing_assertion_is_401(proxy):
    resp = http(proxy.port, "GET", "/private")
    request_id = assert_generic_error(resp, 401, "missing-assertion")
    assert_logged(proxy, request_id, 401, "deny", "missing-assertion")


def _tampered_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    # Flip one character in the middle of the signature (never the last one, whose low bits are
    # unused padding: that would be a non-canonical encoding, i.e. malformed-token).
    i = len(signature) // 2
    flipped = "A" if signature[i] != "A" else "B"
    return ".".join([header, payload, signature[:i] + flipped + signature[i + 1:]])


def _with_header(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(b64url_decode(header))
    decoded.update(changes)
    return ".".join([b64url(json.dumps(decoded, separators=(",", ":")).encode()), payload, signature])


REJECTIONS = {
    "garbage": (lambda env: "this-is-not-a-jwt", "malformed-token"),
    "two-segments": (lambda env: ".".join(env.mint().split(".")[:2]), "malformed-token"),
    "tampered-signature": (lambda env: _tampered_signature(env.mint()), "bad-signature"),
    "tampered-payload": (
        lambda env: ".".join([env.mint().split(".")[0], env.mint(email="bob@example.com").split(".")[1], env.mint().split(".")[2]]),
        "bad-signature"),
    "alg-none": (lambda env: _with_header(env.mint(), alg="none"), "alg-not-allowed"),
    "alg-hs256": (lambda env: _with_header(env.mint(), alg="HS256"), "alg-not-allowed"),
    "expired": (lambda env: env.mint(iat=int(time.time()) - 1200, exp=int(time.time()) - 900, cache=False), "expired"),
    "issued-in-future": (lambda env: env.mint(iat=int(time.time()) + 900, exp=int(time.time()) + 1200, cache=False),
                         "issued-in-future"),
    "wrong-audience": (lambda env: env.mint(audience=OTHER_AUDIENCE), "wrong-audience"),
    "wrong-issuer": (lambda env: env.mint(issuer="https://accounts.google.com"), "wrong-issuer"),
    "unknown-kid": (lambda env: env.mint(key=env.rogue / "private.pem", kid="rogue-kid"), "unknown-kid"),
    "right-kid-wrong-key": (lambda env: env.mint(key=env.rogue / "private.pem"), "bad-signature"),
    "email-not-a-string": (lambda env: env.mint(claim="email=5"), "malformed-claims"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejected_tokens_are_401(proxy, env, case):
    make, reason = REJECTIONS[case]
    bad = make(env)
    resp = http(proxy.port, "GET", f"/reject/{case}", token=bad)
    request_id = assert_generic_error(resp, 401, reason)
    assert_logged(proxy, request_id, 401, "deny", reason)


@pytest.mark.parametrize("second_name", [ASSERTION, "X-Goog-IAP-JWT-Assertion"])
def test_two_assertion_headers_are_401(proxy, token, env, second_name):
    other = env.mint(email="bob@gmail.com", hd=None)
    resp = http(proxy.port, "GET", "/dup", token=token, headers=[(second_name, other)])
    request_id = assert_generic_error(resp, 401, "duplicate-assertion")
    assert_logged(proxy, request_id, 401, "deny", "duplicate-assertion")


def test_assertion_header_name_is_case_insensitive(proxy, token):
    resp = http(proxy.port, "GET", "/case", headers=[("X-GOOG-IAP-JWT-ASSERTION", token)])
    assert resp.status == 200, resp


@pytest.mark.parametrize("email,hd,status,reason", [
    ("alice@example.com", "example.com", 200, None),
    ("dev@corp.example", "corp.example", 200, None),          # "@corp.example" entry
    ("mallory@evil.example", "evil.example", 403, "not-allowlisted"),  # wrong hd
    # A consumer account (no hd) whose email merely ends in an allowlisted domain: domain
    # entries match the hd claim, not the email suffix.
    ("dave@example.com", None, 403, "not-allowlisted"),
    # Workspace account of another domain whose email looks allowlisted: still hd that counts.
    ("bob@gmail.com", None, 200, None),                        # exact email entry
    ("bobby@gmail.com", None, 403, "not-allowlisted"),
    ("carol.partner@partner.org", None, 200, None),           # entry "Carol.Partner@Partner.ORG"
    ("CAROL.Partner@PARTNER.org", None, 200, None),           # matched case-insensitively
])
def test_allowlist_decisions(proxy, env, email, hd, status, reason):
    resp = http(proxy.port, "GET", "/who", token=env.mint(email=email, hd=hd))
    if status == 200:
        assert resp.status == 200, resp
        assert resp.json()["target"] == "/who"
        return
    request_id = assert_generic_error(resp, status, reason)
    assert_logged(proxy, request_id, status, "deny", reason)


def test_websocket_upgrade_without_token_is_401(proxy):
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/ws", [
            ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]))
        resp = conn.read_response()
        request_id = assert_generic_error(resp, 401, "missing-assertion")
        assert resp.header("Upgrade") is None
    assert_logged(proxy, request_id, 401, "deny", "missing-assertion")


def _get(url: str, timeout: float = 5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_admin_healthz(proxy):
    status, body = _get(f"http://127.0.0.1:{proxy.admin_port}/healthz")
    assert status == 200 and body.strip() == "ok", (status, body)
    status, body = _get(f"http://127.0.0.1:{proxy.admin_port}/readyz")
    assert status == 200 and body.strip() == "ready", (status, body)


def test_keys_unavailable_then_recovered(serve, env, token):
    """--jwks-url on a loopback port where nothing listens: 503 and not ready; once a key server
    appears on that port the refresher (backoff from ~1 s) picks the keys up: 200 and ready."""
    port = free_port()
    proxy = serve(jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    admin = f"http://127.0.0.1:{proxy.admin_port}"

    resp = http(proxy.port, "GET", "/nokeys", token=token)
    request_id = assert_generic_error(resp, 503, "keys-unavailable")
    assert_logged(proxy, request_id, 503, "deny", "keys-unavailable")
    status, body = _get(admin + "/readyz")
    assert status == 503, (status, body)
    assert "key" in body.lower(), f"/readyz should say what is missing: {body!r}"
    assert _get(admin + "/healthz")[0] == 200  # alive, just not ready
    proxy.wait_event("keys-fetch-failed", timeout=15)

    keys = KeyServer(env.jwks.read_bytes(), port=port)
    try:
        deadline = time.monotonic() + 40  # backoff 1, 2, 4, 8, 16 s (±20 %) — generous margin
        while True:
            resp = http(proxy.port, "GET", "/keys-back", token=token)
            if resp.status == 200:
                break
            assert resp.status == 503, resp
            assert time.monotonic() < deadline, "keys never recovered\n" + proxy.output_tail()
            time.sleep(0.5)
        proxy.wait_event("keys-fetched", timeout=5)
        status, body = _get(admin + "/readyz")
        assert status == 200 and body.strip() == "ready", (status, body)
    finally:
        keys.stop()
