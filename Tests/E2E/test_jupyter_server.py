"""A standalone Jupyter Server (JupyterLab 4) behind iap-proxy (preset oauth2-proxy), with a header
IdentityProvider reading X-Forwarded-Email on every request and WebSocket upgrade."""

from __future__ import annotations

import hashlib

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import e2e_support as e2e
from conftest import ALICE, BOB


@pytest.fixture(scope="module")
def kernel(jserver, keys):
    """alice's session (with the server's _xsrf cookie from a page view) and a started kernel."""
    s, base = e2e.session_for(keys.token(ALICE)), jserver.proxy.url
    r = s.get(f"{base}/lab", timeout=30)
    assert r.status_code == 200 and s.cookies.get("_xsrf"), (r.status_code, s.cookies)
    r = s.post(f"{base}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": s.cookies["_xsrf"]}, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text)
    yield s, r.json()["id"]
    s.delete(f"{base}/api/kernels/{r.json()['id']}", headers={"X-XSRFToken": s.cookies["_xsrf"]}, timeout=30)


def channels(jserver, kernel_id):
    return f"ws://127.0.0.1:{jserver.proxy.port}/api/kernels/{kernel_id}/channels"


def test_identity_provider_sees_the_verified_user(jserver, keys):
    base = jserver.proxy.url
    me = e2e.session_for(keys.token(ALICE)).get(f"{base}/api/me", timeout=10)
    assert me.status_code == 200 and me.json()["identity"]["username"] == ALICE, me.text
    # bob is verified and allowlisted at iap-proxy, but this server is alice's: refused by the server.
    r = e2e.session_for(keys.token(BOB)).get(f"{base}/api/me", headers={"X-Forwarded-Email": ALICE}, timeout=10)
    assert r.status_code == 403, r.text
    line = jserver.proxy.access_lines(lambda l: l.get("email") == BOB and l.get("path") == "/api/me")
    assert line and (line[-1]["decision"], line[-1]["status"]) == ("allow", 403), line
    seen = [e for e in e2e.read_jsonl(jserver.seen_log) if e["uri"] == "/api/me"]
    assert [e["email"] for e in seen] == [[ALICE], [BOB]], seen  # the client's own X-Forwarded-Email was dropped


def test_kernel_websocket_through_proxy(jserver, keys, kernel):
    s, kernel_id = kernel
    origin = jserver.proxy.url  # the page's origin, as a browser at the proxy's address sends it
    with connect(channels(jserver, kernel_id), origin=origin, open_timeout=30, max_size=None,
                 additional_headers={e2e.ASSERTION: keys.token(ALICE),
                                     "Cookie": f"_xsrf={s.cookies['_xsrf']}"}) as ws:
        out = e2e.execute(ws, "print('ws', 6*7)\n1+1")
        # A few MB of output in WebSocket frames (iap-proxy's write high-water mark is 256 KiB).
        big = e2e.execute(ws, "import hashlib\ntext = ''.join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(50000))\n"
                              "print(text)\nhashlib.sha256(text.encode()).hexdigest()")
    assert out == {"status": "ok", "stdout": "ws 42\n", "result": "2"}, out
    text = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(50000))
    assert big["status"] == "ok" and big["stdout"] == text + "\n", (big["status"], len(big["stdout"]))
    assert big["result"] == repr(hashlib.sha256(text.encode()).hexdigest()), big["result"]
    # The server checked Origin against the Host it was handed: iap-proxy's, unchanged.
    upgrades = [e for e in e2e.read_jsonl(jserver.seen_log) if e["upgrade"] and kernel_id in e["uri"]]
    assert upgrades and upgrades[-1]["host"] == f"127.0.0.1:{jserver.proxy.port}", upgrades
    assert upgrades[-1]["email"] == [ALICE], upgrades
    line = jserver.proxy.access_lines(lambda l: l.get("path", "").endswith(f"{kernel_id}/channels"))
    assert line and line[-1]["status"] == 101, line


def test_foreign_origin_websocket_refused_by_server(jserver, keys, kernel):
    s, kernel_id = kernel
    with pytest.raises(InvalidStatus) as refused:
        with connect(channels(jserver, kernel_id), origin="http://evil.example", open_timeout=30,
                     additional_headers={e2e.ASSERTION: keys.token(ALICE)}):
            pass
    assert refused.value.response.status_code == 403
    # Refused by Jupyter Server (iap-proxy admitted alice and passed the upgrade on), not by iap-proxy.
    line = jserver.proxy.access_lines(lambda l: l.get("path", "").endswith(f"{kernel_id}/channels")
                                      and l.get("status") == 403)
    assert line and line[-1]["decision"] == "allow" and line[-1]["upstream_ms"] is not None, line
    e2e.wait_until(lambda: "Blocking Cross Origin WebSocket Attempt.  Origin: http://evil.example, Host: "
                   f"127.0.0.1:{jserver.proxy.port}" in jserver.server.text(), 5, "the server's cross-origin warning")
