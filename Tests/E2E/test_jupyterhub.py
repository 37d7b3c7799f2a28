"""JupyterHub 6 behind iap-proxy (preset jupyterhub: `Remote-User: <email>`), through its real
configurable-http-proxy to a single-user server and a kernel."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

import e2e_support as e2e
from conftest import ALICE, BOB, MALLORY


def login(jhub, keys, email):
    s = e2e.session_for(keys.token(email))
    r = s.get(jhub.proxy.url + "/hub/login?next=/hub/home", timeout=30)
    assert r.status_code == 200 and r.url.endswith("/hub/home"), (r.status_code, r.url, r.history)
    assert {"jupyterhub-hub-login", "jupyterhub-session-id", "_xsrf"} <= set(s.cookies.keys()), s.cookies
    return s


@pytest.fixture(scope="module")
def alice(jhub, keys):
    return login(jhub, keys, ALICE)


@pytest.fixture(scope="module")
def alice_server(jhub, keys, alice):
    """alice's single-user server, started through the Hub's REST API and stopped at the end."""
    base = jhub.proxy.url
    xsrf = alice.cookies.get("_xsrf", path="/hub/")
    r = alice.post(f"{base}/hub/api/users/{ALICE}/server", json={}, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert r.status_code in (201, 202), (r.status_code, r.text)
    ready = e2e.wait_until(lambda: alice.get(f"{base}/hub/api/user", timeout=10).json()["servers"].get("", {}).get("ready"),
                           90, "alice's server ready", (jhub.hub, jhub.proxy))
    assert ready is True
    yield alice
    r = alice.delete(f"{base}/hub/api/users/{ALICE}/server", headers={"X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code in (202, 204), (r.status_code, r.text)


def test_minted_user_logs_in_and_hub_api_names_them(jhub, keys, alice):
    r = alice.get(jhub.proxy.url + "/hub/api/user", timeout=10)
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["name"], me["kind"], me["admin"]) == (ALICE, "user", False)
    # What the hub was handed: one Remote-User from iap-proxy and, with forward_assertion: false,
    # no assertion its single-user servers could replay.
    seen = [e for e in e2e.read_jsonl(jhub.auth_log) if e["where"] == "authenticate"]
    assert seen and all(e["remote_user"] == [ALICE] and e["assertion"] is None for e in seen), seen
    logged = jhub.proxy.access_lines(lambda l: l.get("path") == "/hub/api/user" and l.get("email") == ALICE)
    assert logged and logged[-1]["status"] == 200 and logged[-1]["decision"] == "allow", logged


def test_notebook_server_starts_and_kernel_executes_over_websocket(jhub, keys, alice_server):
    s, base, user = alice_server, jhub.proxy.url, quote(ALICE, safe="@")
    r = s.get(f"{base}/user/{user}/lab", timeout=60)  # the Hub's OAuth hops set the server's own cookies
    assert r.status_code == 200 and r.url.startswith(f"{base}/user/{user}/lab"), (r.status_code, r.url)
    me = s.get(f"{base}/user/{user}/api/me", timeout=10).json()
    assert me["identity"]["username"] == ALICE, me
    xsrf = s.cookies.get("_xsrf", path=f"/user/{user}/")
    assert xsrf, s.cookies
    r = s.post(f"{base}/user/{user}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text)
    kernel = r.json()["id"]
    path = f"/user/{user}/api/kernels/{kernel}/channels"
    cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies if path.startswith(c.path))  # as a browser would
    url = f"ws://127.0.0.1:{jhub.proxy.port}{path}"
    started = time.monotonic()
    with connect(url, origin=base, additional_headers={e2e.ASSERTION: keys.token(ALICE), "Cookie": cookies},
                 open_timeout=30, max_size=None) as ws:
        out = e2e.execute(ws, "import os\nprint(os.environ['JUPYTERHUB_USER'], 6*7)\n1+1")
    assert out == {"status": "ok", "stdout": f"{ALICE} 42\n", "result": "2"}, out
    upgrade = jhub.proxy.access_lines(lambda l: l.get("path", "").endswith(f"/api/kernels/{kernel}/channels"))
    assert upgrade and upgrade[-1]["status"] == 101 and upgrade[-1]["email"] == ALICE, upgrade
    print(f"kernel round trip through iap-proxy, CHP and the single-user server: {time.monotonic() - started:.2f} s")


def test_user_not_on_allowlist_gets_403_from_proxy(jhub, keys):
    marker = e2e.probe()
    r = e2e.session_for(keys.token(MALLORY)).get(f"{jhub.proxy.url}/hub/login?{marker}", timeout=10,
                                                   allow_redirects=False)
    assert r.status_code == 403, (r.status_code, r.text)
    line = jhub.proxy.access_lines(lambda l: marker in l.get("path", "") or l.get("email") == MALLORY)
    assert line and line[-1]["decision"] != "allow" and line[-1]["status"] == 403, line
    assert marker not in jhub.hub.text(), "the hub logged a request iap-proxy refused"


def test_forged_remote_user_without_token_is_401_and_never_reaches_hub(jhub, keys):
    forged, control = e2e.probe(), e2e.probe()
    r = e2e.session_for(None).get(f"{jhub.proxy.url}/hub/header-login?{forged}", headers={"Remote-User": ALICE},
                                  timeout=10, allow_redirects=False)
    assert r.status_code == 401, (r.status_code, r.text)
    line = jhub.proxy.access_lines(lambda l: forged in l.get("path", ""))
    assert [(l["status"], l["reason"], l["upstream_ms"]) for l in line] == [(401, "missing-assertion", None)], line
    # Control: the same request with bob's token reaches the hub (so the log checks below can see a
    # request when there is one) and the hub is handed bob, not the client's Remote-User.
    r = e2e.session_for(keys.token(BOB)).get(f"{jhub.proxy.url}/hub/header-login?{control}",
                                             headers={"Remote-User": ALICE}, timeout=10, allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text)
    seen = e2e.read_jsonl(jhub.auth_log)
    assert [e["remote_user"] for e in seen if control in e["uri"]] == [[BOB]], seen
    assert not [e for e in seen if forged in e["uri"]], "a request without a token reached the authenticator"
    e2e.wait_until(lambda: control in jhub.hub.text(), 5, "the hub's log line for the control request")
    assert forged not in jhub.hub.text(), "the hub logged the forged request"
