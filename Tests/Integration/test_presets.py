"""6. Identity headers per route, as the apps read them: each preset (docs/CONFIG.md table) and a
custom template map with literal text, set per route in a config file; every client-sent copy
(any case, `_` for `-`) is gone, and each header appears exactly once with the verified value."""

from __future__ import annotations

import pytest

from helpers import echoed_headers
from policy_support import call, cserve  # noqa: F401 - cserve is a fixture

PRESETS_CONFIG = """\
headers: grafana              # the default for routes without their own
routes:
  - name: oauth2
    match: { path_prefix: /oauth2 }
    allow: &who [ example.com, "carol@gmail.com", "*@proj.iam.gserviceaccount.com" ]
    headers: oauth2-proxy
  - name: jupyter
    match: { path_prefix: /hub }
    allow: *who
    headers: jupyterhub
  - name: grafana
    match: { path_prefix: /grafana }
    allow: *who
    headers: grafana
  - name: kubeflow
    match: { path_prefix: /kubeflow }
    allow: *who
    headers: kubeflow
  - name: custom
    match: { path_prefix: /custom }
    allow: *who
    headers:
      kubeflow-userid: "accounts.google.com:{email}"
      X-Tenant: "{hd}"
      X-Subject: "{sub}"
      X-User-Name: "{user}"
      X-Identity: "user={user};domain={hd};id={sub}"
      X-Team: "ml-platform"
  - name: default
    match: { path_prefix: /default }
    allow: *who
"""

# route -> (path, {header name exactly as sent: template})
ROUTES = {
    "oauth2-proxy": ("/oauth2/x", {"X-Forwarded-Email": "{email}", "X-Forwarded-User": "{email}",
                                   "X-Auth-Request-Email": "{email}"}),
    "jupyterhub": ("/hub/api/user", {"Remote-User": "{email}"}),
    "grafana": ("/grafana/api/user", {"X-WEBAUTH-USER": "{email}", "X-WEBAUTH-EMAIL": "{email}",
                                      "X-WEBAUTH-NAME": "{user}"}),
    "kubeflow": ("/kubeflow/api/workgroup/env-info", {"kubeflow-userid": "{email}"}),
    "custom": ("/custom/x", {"kubeflow-userid": "accounts.google.com:{email}", "X-Tenant": "{hd}",
                             "X-Subject": "{sub}", "X-User-Name": "{user}",
                             "X-Identity": "user={user};domain={hd};id={sub}", "X-Team": "ml-platform"}),
    "default (grafana from the top level)": ("/default/x", {"X-WEBAUTH-USER": "{email}",
                                                            "X-WEBAUTH-EMAIL": "{email}", "X-WEBAUTH-NAME": "{user}"}),
}

EVIL = "mallory@evil.example"
# Client-sent copies of the always-stripped names, in odd spellings (case, `_` for `-`), some
# twice; every route's names (custom ones of other routes too: an app may read X-Tenant on any
# path) are added in every spelling by _spoofed().
ALWAYS_SPOOFED = [
    "X-Forwarded-Email", "x_forwarded_email", "X-Forwarded-User", "X_FORWARDED_USER", "X-Auth-Request-Email",
    "x-auth-request-user", "X_Auth_Request_Groups", "Remote-User", "remote_user", "REMOTE-USER", "X-WEBAUTH-USER",
    "x_webauth_user", "X-WEBAUTH-EMAIL", "X_WEBAUTH_NAME", "X-Webauth-Role", "kubeflow-userid", "KUBEFLOW_USERID",
    "Kubeflow_Userid", "X-Goog-Authenticated-User-Email", "x_goog_authenticated_user_id", "X-Forwarded-Groups",
    "X_Forwarded_Preferred_Username",
]


def _spoofed(own_names) -> list:
    names = list(ALWAYS_SPOOFED)
    for name in own_names:
        names += [name, name.lower(), name.upper(), name.replace("-", "_"), name.lower().replace("-", "_")]
    return names


ALWAYS_STRIPPED = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
                   "x-auth-request-", "x-webauth-", "remote-user", "kubeflow-userid", "x-goog-authenticated-user-")

USERS = [
    # (email as IAP sends it, hd, sub)
    ("Alice.Smith@Example.com", "example.com", "accounts.google.com:1001"),
    ("carol@gmail.com", None, "accounts.google.com:1002"),
    ("builder@proj.iam.gserviceaccount.com", None, "accounts.google.com:1003"),
]


def _render(template: str, email: str, hd: str | None, sub: str) -> str:
    email = email.lower()
    return (template.replace("{email}", email).replace("{user}", email.split("@")[0])
            .replace("{hd}", hd or "").replace("{sub}", sub))


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.mark.parametrize("route", list(ROUTES))
def test_route_headers_as_the_app_reads_them(cserve, env, route):
    proxy = cserve(PRESETS_CONFIG)
    path, templates = ROUTES[route]
    spoofed = _spoofed({name for _, names in ROUTES.values() for name in names})
    spoofed_norm = {_norm(n) for n in spoofed}
    managed = {_norm(n) for n in templates}
    failures = []
    for email, hd, sub in USERS:
        token = env.mint(email=email, hd=hd, sub=sub)
        resp, line = call(proxy, path, token=token, headers=[(n, EVIL) for n in spoofed])
        assert resp.status == 200, (route, email, resp, line)
        headers = echoed_headers(resp)
        who = f"{route} as {email}"
        for name, value in headers:
            if EVIL in value:
                failures.append(f"{who}: the client's {name}: {value} reached the app")
        for name, template in templates.items():
            got = [(n, v) for n, v in headers if _norm(n) == _norm(name)]
            expected = [(name, _render(template, email, hd, sub))]
            if got != expected:
                failures.append(f"{who}: expected {expected}, the app got {got}")
        # No other identity-like header at all: the route's names and the always-stripped ones.
        for name, value in headers:
            norm = _norm(name)
            if norm in managed:
                continue
            if norm in spoofed_norm or norm.startswith(ALWAYS_STRIPPED):
                failures.append(f"{who}: unexpected identity-like header {name}: {value}")
    assert not failures, "\n".join(failures)


def test_assertion_passes_to_the_app_beside_the_route_headers(cserve, env):
    proxy = cserve(PRESETS_CONFIG)
    token = env.mint()
    for path, _ in ROUTES.values():
        resp, _ = call(proxy, path, token=token)
        values = [v for n, v in echoed_headers(resp) if n.lower() == "x-goog-iap-jwt-assertion"]
        assert values == [token], (path, values)
