"""2. Identity headers: every client-sent identity-like header (with `_` and `-` alike, any case)
is gone upstream; the preset's headers carry the verified identity; Authorization and
Proxy-Authorization pass through untouched."""

from __future__ import annotations

import pytest

from helpers import echoed_header_values, echoed_headers, http

SPOOFED = [
    "X-Forwarded-Email", "X_Forwarded_Email", "x-forwarded-user", "X-Auth-Request-Email", "X-WEBAUTH-USER",
    "x_webauth_user", "Remote-User", "Remote_User", "kubeflow-userid", "X-Goog-Authenticated-User-Email",
    "X-Goog-Authenticated-User-ID",
    # a few more spellings of the same names
    "X-Forwarded-Groups", "X-Forwarded-Preferred-Username", "x_auth_request_user", "X-WEBAUTH-EMAIL",
    "KUBEFLOW_USERID", "x-goog-authenticated-user-email",
]

EVIL = "mallory@evil.example"

# The presets as docs/CONFIG.md defines them (commit 8e3a7ad "presets send the full email where
# apps key users by the header"; the first brief had X-Forwarded-User: {user} and no
# X-Auth-Request-Email / X-WEBAUTH-NAME).
PRESETS = {
    "oauth2-proxy": {"X-Forwarded-Email": "{email}", "X-Forwarded-User": "{email}", "X-Auth-Request-Email": "{email}"},
    "jupyterhub": {"Remote-User": "{email}"},
    "grafana": {"X-WEBAUTH-USER": "{email}", "X-WEBAUTH-EMAIL": "{email}", "X-WEBAUTH-NAME": "{user}"},
    "kubeflow": {"kubeflow-userid": "{email}"},
}

ALL_IDENTITY_NAMES = {n.lower() for preset in PRESETS.values() for n in preset}


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def _spoofed_headers():
    return [(name, f"{EVIL}") for name in SPOOFED]


def _check(resp, preset: str, email: str):
    headers = echoed_headers(resp)
    expected = {k.lower(): v.replace("{email}", email).replace("{user}", email.split("@")[0])
                for k, v in PRESETS[preset].items()}
    # No spoofed value anywhere in the forwarded head.
    for name, value in headers:
        assert EVIL not in value, f"spoofed identity reached the app: {name}: {value}"
    # Every identity-like name appears only as the preset wrote it, exactly once.
    for name, value in headers:
        norm = _normalized(name)
        if norm in {_normalized(s) for s in SPOOFED} | ALL_IDENTITY_NAMES:
            assert norm in expected, f"{name} should not reach the app under preset {preset}"
            assert name.lower() == norm, f"underscore spelling {name!r} reached the app"
    for name, value in expected.items():
        values = echoed_header_values(resp, name)
        assert values == [value], f"{name}: expected [{value!r}], got {values!r}"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_headers_and_stripping(serve, env, preset):
    proxy = serve("--preset", preset)
    email = "alice@example.com"
    resp = http(proxy.port, "GET", "/id", token=env.mint(email=email), headers=_spoofed_headers())
    _check(resp, preset, email)


def test_default_preset_is_oauth2_proxy(proxy, env):
    resp = http(proxy.port, "GET", "/id", token=env.mint(email="Carol.Partner@Partner.ORG", hd=None),
                headers=_spoofed_headers())
    _check(resp, "oauth2-proxy", "carol.partner@partner.org")  # the verified email, lowercased


def test_spoofed_headers_stripped_even_when_identity_is_repeated(proxy, token):
    # Duplicates and odd cases of the managed names in one request.
    spoof = [("X-Forwarded-Email", EVIL), ("x-forwarded-email", EVIL), ("X-FORWARDED-EMAIL", EVIL),
             ("X_FORWARDED_USER", "mallory"), ("x-Forwarded_User", "mallory")]
    resp = http(proxy.port, "GET", "/dups", token=token, headers=spoof)
    assert echoed_header_values(resp, "X-Forwarded-Email") == ["alice@example.com"]
    assert echoed_header_values(resp, "X-Forwarded-User") == ["alice@example.com"]
    assert not any("mallory" in v for _, v in echoed_headers(resp))


def test_authorization_headers_pass_untouched(proxy, token):
    auth = "Bearer abc.DEF_ghi-123"
    proxy_auth = "Basic dXNlcjpwYXNz"
    resp = http(proxy.port, "GET", "/auth", token=token,
                headers=[("Authorization", auth), ("Proxy-Authorization", proxy_auth)])
    assert echoed_header_values(resp, "Authorization") == [auth]
    assert echoed_header_values(resp, "Proxy-Authorization") == [proxy_auth]


def test_assertion_is_passed_through(proxy, token):
    resp = http(proxy.port, "GET", "/assertion", token=token)
    assert echoed_header_values(resp, "x-goog-iap-jwt-assertion") == [token]


@pytest.mark.parametrize("spelling", ["x-goog-iap-jwt-assertion", "X-Goog-IAP-JWT-Assertion"])
def test_assertion_withheld_with_forward_assertion_false(serve, token, spelling):
    """forward_assertion false (JupyterHub: CHP forwards to users' own servers): the request is
    still verified and admitted, but no spelling of the assertion reaches the app."""
    proxy = serve("--forward-assertion", "false")
    resp = http(proxy.port, "GET", "/withheld", headers=[(spelling, token)])
    assert resp.status == 200
    assert echoed_header_values(resp, "X-Forwarded-Email") == ["alice@example.com"]
    assert not any(_normalized(name) == "x-goog-iap-jwt-assertion" for name, _ in echoed_headers(resp))
