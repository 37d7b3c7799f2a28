"""Policy through the real proxy (docs/CONFIG.md, "Routes" and "Allowlists and groups"): route
precedence, allow/deny semantics, path-normalization bypass attempts, `auth: none` and `respond`
routes, whoami, and the audience-mismatch hint. Every request goes through `iap-proxy serve
--config` over loopback to `iap-proxy echo` (or a recording Python upstream)."""

from __future__ import annotations

import time

import pytest

from helpers import OTHER_AUDIENCE, RawConn, echoed_headers, free_port, http, request_bytes
from policy_support import call, cserve, upstream_path  # noqa: F401 - cserve is a fixture
from upstreams import recorder

# -- 1. routing and precedence ---------------------------------------------------------------

# Every route admits the universal user U through a group named after the route, so the access
# log's reason (`group-ok:r-NAME`) tells which route decided; each route also admits one user of
# its own, who is refused by the others. Routes are written least specific first: file order must
# not matter when specificity differs.
ROUTING = """\
groups:
  r-catch-all: [ u@example.com, catchall@example.com ]
  r-api: [ u@example.com, api@example.com ]
  r-api-admin: [ u@example.com, apiadmin@example.com ]
  r-status: [ u@example.com, status@example.com ]
  r-api-writes: [ u@example.com, writer@example.com ]
  r-ml: [ u@example.com, ml@example.com ]
  r-ml-api: [ u@example.com, mlapi@example.com ]
  r-dup-first: [ u@example.com, dup1@example.com ]
  r-dup-second: [ u@example.com, dup2@example.com ]
routes:
  - name: catch-all
    match: { path_prefix: / }
    allow: [ "group:r-catch-all" ]
  - name: api
    match: { path_prefix: /api }
    allow: [ "group:r-api" ]
  - name: api-writes
    match: { path_prefix: /api, methods: [ POST, DELETE ] }
    allow: [ "group:r-api-writes" ]
  - name: api-admin
    match: { path_prefix: /api/admin }
    allow: [ "group:r-api-admin" ]
  - name: status
    match: { path: /api/status }
    allow: [ "group:r-status" ]
  - name: ml
    match: { host: ml.example.com }
    allow: [ "group:r-ml" ]
  - name: ml-api
    match: { host: ml.example.com, path_prefix: /api }
    allow: [ "group:r-ml-api" ]
  - name: dup-first
    match: { path_prefix: /dup }
    allow: [ "group:r-dup-first" ]
  - name: dup-second
    match: { path_prefix: /dup }
    allow: [ "group:r-dup-second" ]
"""

# (method, host, path, route that must decide)
ROUTING_CASES = [
    ("GET", "app.test", "/", "catch-all"),
    ("GET", "app.test", "/x/y", "catch-all"),
    ("GET", "app.test", "/apix", "catch-all"),          # prefixes match whole segments
    ("GET", "app.test", "/api", "api"),
    ("GET", "app.test", "/api/", "api"),
    ("GET", "app.test", "/api/models/1", "api"),
    ("PUT", "app.test", "/api/models/1", "api"),         # not one of the route's methods
    ("POST", "app.test", "/api/models", "api-writes"),   # methods before no methods
    ("DELETE", "app.test", "/api/models/1", "api-writes"),
    ("GET", "app.test", "/api/admin", "api-admin"),      # longer prefix before shorter
    ("GET", "app.test", "/api/admin/users", "api-admin"),
    ("POST", "app.test", "/api/admin/users", "api-admin"),  # a longer prefix beats methods
    ("GET", "app.test", "/api/status", "status"),        # exact path before any prefix
    ("POST", "app.test", "/api/status", "status"),
    ("GET", "app.test", "/api/status/x", "api"),         # exact means exact
    ("GET", "ml.example.com", "/", "ml"),                # host before no host
    ("GET", "ML.Example.COM:8443", "/anything", "ml"),   # host: case-insensitive, port ignored
    ("GET", "ml.example.com", "/api/status", "ml-api"),  # host beats exact path
    ("GET", "ml.example.com", "/api/x", "ml-api"),
    ("GET", "other.example.com", "/api/x", "api"),
    ("GET", "app.test", "/dup/x", "dup-first"),          # same specificity: file order
]


def test_each_request_reaches_the_most_specific_route(cserve, env):
    proxy = cserve(ROUTING)
    u = env.mint(email="u@example.com")
    failures = []
    for method, host, path, route in ROUTING_CASES:
        resp, line = call(proxy, path, token=u, method=method, host=host)
        if resp.status != 200 or line.get("reason") != f"group-ok:r-{route}":
            failures.append(f"{method} {path} Host {host}: expected route {route}, got status {resp.status}, "
                            f"reason {line.get('reason')!r}")
    assert not failures, "\n".join(failures)


def test_each_route_applies_its_own_allow_list(cserve, env):
    proxy = cserve(ROUTING)
    own = {"catch-all": "catchall", "api": "api", "api-admin": "apiadmin", "status": "status",
           "api-writes": "writer", "ml": "ml", "ml-api": "mlapi", "dup-first": "dup1"}
    tokens = {name: env.mint(email=f"{user}@example.com") for name, user in own.items()}
    failures = []
    for method, host, path, route in ROUTING_CASES:
        for name, token in tokens.items():
            resp, line = call(proxy, path, token=token, method=method, host=host)
            expected = 200 if name == route else 403
            if resp.status != expected:
                failures.append(f"{method} {path} Host {host} as {own[name]}@example.com: expected {expected} "
                                f"(route {route}), got {resp.status} ({line.get('reason')})")
    # dup-second is shadowed by dup-first (same specificity, later in the file)
    resp, line = call(proxy, "/dup/x", token=env.mint(email="dup2@example.com"))
    if resp.status != 403:
        failures.append(f"/dup/x as dup2@example.com: expected 403 (dup-first decides), got {resp.status}")
    assert not failures, "\n".join(failures)


NO_CATCH_ALL = """\
routes:
  - name: app
    match: { path_prefix: /app }
    allow: [ example.com ]
  - name: ml
    match: { host: ml.example.com, path_prefix: /ml }
    allow: [ example.com ]
  - name: writes
    match: { path_prefix: /write, methods: [ POST ] }
    allow: [ example.com ]
"""


def test_a_request_matching_no_route_is_denied(cserve, env):
    proxy = cserve(NO_CATCH_ALL)
    token = env.mint()
    assert call(proxy, "/app/x", token=token)[0].status == 200
    for method, host, path in [("GET", "app.test", "/"), ("GET", "app.test", "/other"),
                               ("GET", "app.test", "/application"), ("GET", "app.test", "/ml/x"),
                               ("GET", "ml.example.com", "/app2"), ("GET", "app.test", "/write/x"),
                               ("GET", "app.test", "/app/../other")]:
        for tok in (token, None):
            resp, line = call(proxy, path, token=tok, method=method, host=host)
            assert resp.status == 403, (method, host, path, tok is not None, resp)
            assert line["reason"] == "no-route", line
            assert line["decision"] == "deny", line


# An app behind iap-proxy that routes with Werkzeug (Flask: MLflow, ...) upper-cases the method
# (`post` is served by the POST handler), so a methods rule that a lower-case method walks around
# is a bypass. The same reasoning as for paths: the broader match (or a refusal) is the safe one.
METHODS = """\
routes:
  - name: delete-experiments
    match: { path_prefix: /api/2.0/mlflow/experiments/delete, methods: [ POST ] }
    allow: [ "admin@example.com" ]
  - name: mlflow
    match: { path_prefix: / }
    allow: [ example.com ]
"""


def test_methods_rule_cannot_be_walked_around_with_another_case(cserve, env):
    """`post` must not escape a `methods: [POST]` rule (Werkzeug upper-cases methods and would run
    the POST handler): like nginx, iap-proxy refuses methods with lowercase letters (400)."""
    proxy = cserve(METHODS)
    user = env.mint(email="user@example.com")
    path = "/api/2.0/mlflow/experiments/delete"
    resp, line = call(proxy, path, token=user, method="POST", body=b"{}")
    assert resp.status == 403 and line["reason"] == "not-allowlisted", (resp, line)
    outcomes = {}
    for method in ("post", "Post", "pOST"):
        resp = http(proxy.port, method, path, token=user, body=b"{}")
        outcomes[method] = (resp.status, resp.json().get("method") if resp.status == 200 else None)
    bypassed = {m: o for m, o in outcomes.items() if o[0] not in (400, 403, 405, 501)}
    assert not bypassed, f"a non-admin reached the POST-only route's path with another case: {bypassed}"
    assert {o[0] for o in outcomes.values()} == {400}, outcomes
    proxy.wait_for(lambda: sum(l.get("reason") == "lowercase-method" for l in proxy.access_log()) == 3, 10,
                   "three lowercase-method refusals in the access log")


# -- 2. allow / deny semantics ---------------------------------------------------------------

SEMANTICS = """\
groups:
  admins: [ root@example.com, Ext-Admin@Partner.ORG ]
routes:
  - name: domain
    match: { path_prefix: /domain }
    allow: [ "example.com", "!bob@example.com", "!group:banned" ]
  - name: consumer
    match: { path_prefix: /consumer }
    allow: [ "@example.com", "carol@gmail.com" ]
  - name: sa
    match: { path_prefix: /sa }
    allow: [ "*@proj.iam.gserviceaccount.com" ]
  - name: groups
    match: { path_prefix: /groups }
    allow: [ "group:admins", "group:analysts", "file:team.txt" ]
  - name: levels
    match: { path_prefix: /levels }
    allow: [ "example.com" ]
    require_access_levels: [ "accessPolicies/1/accessLevels/corp", "accessPolicies/1/accessLevels/mfa" ]
  - name: trial
    match: { path_prefix: /trial }
    allow: [ "root@example.com", "!bob@example.com" ]
    report_only: true
"""

TEAM = """\
# a file with deny entries and [group] sections
!intern@example.com
lead@partner.org

[group analysts]
ana@example.com
intern@example.com

[group banned]
mallory@example.com
"""

CORP = "accessPolicies/1/accessLevels/corp"
MFA = "accessPolicies/1/accessLevels/mfa"


def _levels(*levels) -> str:
    return "google.access_levels=[" + ",".join(f'"{level}"' for level in levels) + "]"


# (path, email, hd, extra mint args, status, access-log reason or None for "any deny")
SEMANTIC_CASES = [
    # hd, not the email's suffix; deny entries win over the domain entry
    ("/domain", "alice@example.com", "example.com", {}, 200, "domain-ok"),
    ("/domain", "Alice@Example.COM", "example.com", {}, 200, "domain-ok"),
    ("/domain", "eve@example.com", None, {}, 403, "not-allowlisted"),        # @example.com without hd
    ("/domain", "bob@example.com", "example.com", {}, 403, "denied-by-email"),
    ("/domain", "BOB@example.com", "example.com", {}, 403, "denied-by-email"),
    ("/domain", "mallory@example.com", "example.com", {}, 403, None),        # denied through a group of a file
    ("/domain", "alice@sub.example.com", "sub.example.com", {}, 403, "not-allowlisted"),
    # consumer accounts need an explicit entry; `@example.com` is the domain entry
    ("/consumer", "carol@gmail.com", None, {}, 200, "email-ok"),
    ("/consumer", "Carol@GMail.com", None, {}, 200, "email-ok"),
    ("/consumer", "dave@gmail.com", None, {}, 403, "not-allowlisted"),
    ("/consumer", "eve@example.com", None, {}, 403, "not-allowlisted"),
    ("/consumer", "alice@example.com", "example.com", {}, 200, "domain-ok"),
    # *@domain: exactly that domain, by the email
    ("/sa", "builder@proj.iam.gserviceaccount.com", None, {}, 200, None),
    ("/sa", "x@evil.proj.iam.gserviceaccount.com", None, {}, 403, "not-allowlisted"),
    ("/sa", "x@other.iam.gserviceaccount.com", None, {}, 403, "not-allowlisted"),
    ("/sa", "alice@example.com", "example.com", {}, 403, "not-allowlisted"),
    # groups from `groups:` and from `[group]` sections; a file's deny entry beats a group allow
    ("/groups", "root@example.com", "example.com", {}, 200, "group-ok:admins"),
    ("/groups", "ext-admin@partner.org", None, {}, 200, "group-ok:admins"),
    ("/groups", "ana@example.com", "example.com", {}, 200, "group-ok:analysts"),
    ("/groups", "lead@partner.org", None, {}, 200, "email-ok"),
    ("/groups", "intern@example.com", "example.com", {}, 403, "denied-by-email"),
    ("/groups", "alice@example.com", "example.com", {}, 403, "not-allowlisted"),
    # all required access levels
    ("/levels", "alice@example.com", "example.com", {"claim": _levels(CORP, MFA)}, 200, "domain-ok"),
    ("/levels", "alice@example.com", "example.com",
     {"claim": _levels(MFA, CORP, "accessPolicies/1/accessLevels/x")}, 200, "domain-ok"),
    ("/levels", "alice@example.com", "example.com", {"claim": _levels(CORP)}, 403, "access-level-missing"),
    ("/levels", "alice@example.com", "example.com", {"claim": _levels()}, 403, "access-level-missing"),
    ("/levels", "alice@example.com", "example.com", {}, 403, "access-level-missing"),
    ("/levels", "eve@gmail.com", None, {"claim": _levels(CORP, MFA)}, 403, "not-allowlisted"),
    # report_only lets through what it would deny, and says so
    ("/trial", "root@example.com", "example.com", {}, 200, "email-ok"),
    ("/trial", "alice@example.com", "example.com", {}, 200, "report-only:not-allowlisted"),
    ("/trial", "bob@example.com", "example.com", {}, 200, "report-only:denied-by-email"),
]


def test_allow_and_deny_semantics(cserve, env):
    proxy = cserve(SEMANTICS, files={"team.txt": TEAM})
    failures = []
    for path, email, hd, extra, status, reason in SEMANTIC_CASES:
        token = env.mint(email=email, hd=hd, **extra)
        resp, line = call(proxy, path + "/x", token=token)
        ok = resp.status == status
        if reason is not None:
            ok = ok and line.get("reason") == reason
        elif status == 403:
            ok = ok and line.get("decision") == "deny"
        if status == 200 and resp.status == 200:
            # the app got the verified, lowercased email
            forwarded = [v for k, v in echoed_headers(resp) if k.lower() == "x-forwarded-email"]
            ok = ok and forwarded == [email.lower()]
        if not ok:
            failures.append(f"{path} as {email} (hd {hd}, {extra}): expected {status} {reason}, "
                            f"got {resp.status} {line.get('reason')!r}")
    assert not failures, "\n".join(failures)


def test_report_only_still_needs_a_valid_assertion(cserve, env):
    proxy = cserve(SEMANTICS, files={"team.txt": TEAM})
    resp, line = call(proxy, "/trial/x")
    assert resp.status == 401 and line["reason"] == "missing-assertion", (resp, line)
    resp, line = call(proxy, "/trial/x", token=env.mint(audience=OTHER_AUDIENCE))
    assert resp.status == 401 and line["reason"] == "wrong-audience", (resp, line)
    rogue = env.mint(key=env.rogue / "private.pem")  # the suite's kid, another key
    resp, line = call(proxy, "/trial/x", token=rogue)
    assert resp.status == 401, (resp, line)


# -- 3. path-normalization bypass attempts -----------------------------------------------------

BYPASS = """\
routes:
  - name: admin
    match: { path_prefix: /admin }
    allow: [ "admin@example.com" ]
  - name: site
    match: { path_prefix: / }
    allow: [ example.com ]
  - name: files
    match: { path_prefix: /files }
    allow: [ example.com ]
    allow_encoded_slashes: true
"""

# target -> the normalized path the app must receive when the admin asks (None: refused, 400)
BYPASS_TARGETS = {
    "/public/../admin": "/admin",
    "/%61dmin": "/admin",
    "/%61%64%6D%69%6E": "/admin",
    "//admin": "/admin",
    "///admin//users": "/admin/users",
    "/admin%2f": None,
    "/admin%2F..%2F": None,
    "/public/..%2Fadmin": None,
    "/admin;x": "/admin;x",
    "/ADMIN": "/ADMIN",
    "/%41DMIN": "/ADMIN",
    "/Admin/users": "/Admin/users",
    "/public/%2e%2e/admin": "/admin",
    "/public/.%2E/admin": "/admin",
    "/public/..;/admin": "/admin",
    "/public/..;x=1/admin": "/admin",
    "/;x/admin": "/admin",
    "/.;/admin": "/admin",
    "/admin%5c": None,
    "/admin%5Cusers": None,
    "/admin\\users": None,
    "/admin%00": None,
    "/admin%00.html": None,
    "/admin%0a": None,
    "/%2e%2e/admin": None,
    "/../admin": None,
    "/public/../../admin": None,
    "/admin%": None,
    "/admin%zz": None,
    "/admin/.": "/admin",
    "/./admin": "/admin",
    "/admin/./users/../users": "/admin/users",
}


def test_no_spelling_of_admin_escapes_the_admin_rule(cserve, env):
    proxy = cserve(BYPASS)
    user = env.mint(email="user@example.com")
    admin = env.mint(email="admin@example.com")
    # the baseline: the rule holds for the plain spelling, and the site is open to the domain
    assert call(proxy, "/admin", token=user)[0].status == 403
    assert call(proxy, "/public/page", token=user)[0].status == 200
    assert call(proxy, "/administrator", token=user)[0].status == 200  # whole segments
    failures = []
    for target, normalized in BYPASS_TARGETS.items():
        resp, line = call(proxy, target, token=user)
        if resp.status == 403:
            if line.get("reason") != "not-allowlisted":
                failures.append(f"{target!r} as user: 403 but reason {line.get('reason')!r}")
        elif resp.status != 400:
            got = resp.json().get("target") if resp.status == 200 else None
            failures.append(f"{target!r} as user: {resp.status} (upstream target {got!r}): BYPASS")
        if normalized is None and resp.status != 400:
            failures.append(f"{target!r} as user: expected 400 (refused), got {resp.status}")

        resp, line = call(proxy, target, token=admin)
        if normalized is None:
            if resp.status != 400:
                failures.append(f"{target!r} as admin: expected 400, got {resp.status}")
        elif resp.status != 200:
            failures.append(f"{target!r} as admin: expected 200, got {resp.status} ({line.get('reason')})")
        else:
            received = upstream_path(resp)
            if received != normalized:
                failures.append(f"{target!r} as admin: upstream received {received!r}, expected {normalized!r}")
            if line.get("reason") != "email-ok":
                failures.append(f"{target!r} as admin: reason {line.get('reason')!r}, expected email-ok (admin rule)")
    assert not failures, "\n".join(failures)


def test_encoded_slashes_only_where_allowed_and_kept_encoded(cserve, env):
    proxy = cserve(BYPASS)
    user = env.mint(email="user@example.com")
    for target, expected in [("/files/a%2Fb", "/files/a%2Fb"), ("/files/a%2fb", "/files/a%2Fb"),
                             ("/files/dir/x%2F%2Fy", "/files/dir/x%2F%2Fy")]:
        resp, line = call(proxy, target, token=user)
        assert resp.status == 200, (target, resp, line)
        received = upstream_path(resp)
        assert received == expected, (target, received)
    for target in ("/public/a%2Fb", "/admin%2Fx", "/a%2fb"):
        resp, line = call(proxy, target, token=user)
        assert resp.status == 400 and line["reason"] == "path-encoded-slash", (target, resp, line)
    # the route is chosen before the slash is decoded: no segment boundary appears from %2F
    resp, line = call(proxy, "/files%2F..%2Fadmin", token=user)
    assert resp.status == 400, (resp, line)


# -- 4. auth: none and respond ----------------------------------------------------------------

LOCAL = """\
routes:
  - name: health
    match: { path: /health }
    auth: none
  - name: lb
    match: { path: /lb-health }
    respond: "ok from iap-proxy"
  - name: app
    match: { path_prefix: / }
    allow: [ example.com ]
"""

SPOOFED = [
    ("X-Forwarded-Email", "mallory@evil.example"), ("X_Forwarded_User", "mallory"),
    ("X-Auth-Request-Email", "mallory@evil.example"), ("x_webauth_user", "mallory"), ("Remote-User", "mallory"),
    ("kubeflow_userid", "mallory@evil.example"), ("X-Goog-Authenticated-User-Email", "accounts.google.com:m@evil.example"),
    ("X-Forwarded-Groups", "admins"), ("X-Forwarded-Preferred-Username", "mallory"),
]
IDENTITY_PREFIXES = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
                     "x-auth-request-", "x-webauth-", "remote-user", "kubeflow-userid", "x-goog-authenticated-user-",
                     "x-goog-iap-jwt-assertion")


def _identity_like(headers) -> list:
    return [(k, v) for k, v in headers if k.lower().replace("_", "-").startswith(IDENTITY_PREFIXES)]


def test_auth_none_route_needs_no_token_and_never_carries_identity(cserve, env, upstream):
    app = upstream(recorder())
    proxy = cserve(LOCAL, upstream=app.url)
    token = env.mint()
    for tok in (None, token, "not.a.token"):
        for target in ("/health", "/HEALTH", "/health;v=1"):
            resp, line = call(proxy, target, token=tok, headers=SPOOFED)
            assert resp.status == 200, (target, tok, resp, line)
            assert line["reason"] == "no-auth", line
            received = app.requests[-1]
            assert received["target"].split("?")[0] == target, received["target"]
            leaked = _identity_like(received["headers"])
            assert not leaked, f"identity-like headers reached the app on an auth: none route: {leaked}"
    # other spellings that resolve elsewhere are not the auth: none route
    for target in ("/health/x", "/health/../admin", "/health/..;/admin", "/x/../health/../admin"):
        resp, line = call(proxy, target)
        assert resp.status == 401 and line["reason"] == "missing-assertion", (target, resp, line)
    # ... and the authenticated route still forwards the assertion and the verified identity
    before = len(app.requests)
    resp, line = call(proxy, "/app", token=token, headers=SPOOFED)
    assert resp.status == 200
    received = app.requests[before]
    names = {k.lower(): v for k, v in received["headers"]}
    assert names.get("x-goog-iap-jwt-assertion") == token
    assert names.get("x-forwarded-email") == "alice@example.com"
    assert not any("mallory" in v or "evil" in v for _, v in received["headers"]), received["headers"]


def test_respond_route_answers_locally(cserve, env, upstream):
    app = upstream(recorder())
    proxy = cserve(LOCAL, upstream=app.url)
    for tok in (None, env.mint(), "garbage"):
        for method in ("GET", "HEAD"):
            resp, line = call(proxy, "/lb-health", token=tok, method=method)
            assert resp.status == 200, (tok, method, resp)
            if method == "GET":
                assert resp.body == b"ok from iap-proxy", resp
            assert line["reason"] == "local-response", line
    # a body sent to it (here one that looks like a second request) is never taken for a request
    smuggled = b"GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n"
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("POST", "/lb-health", body=smuggled))
        first = conn.read_response()
        assert first.status == 200 and first.body == b"ok from iap-proxy", first
        if (first.header("Connection") or "").lower() == "close":
            assert conn.wait_closed(5), "Connection: close, but the connection stayed open"
        else:
            conn.send(request_bytes("GET", "/lb-health"))
            second = conn.read_response()
            assert second.status == 200 and second.body == b"ok from iap-proxy", second
    time.sleep(0.2)
    assert app.requests == [], f"the app was called for a respond: route: {[r['target'] for r in app.requests]}"
    assert app.errors == []


# -- 5. whoami ----------------------------------------------------------------------------------

WHOAMI = """\
routes:
  - name: app
    match: { path_prefix: / }
    allow: [ example.com, "carol@gmail.com" ]
  - name: trial
    match: { path_prefix: /trial }
    allow: [ "root@example.com" ]
    report_only: true
"""


def test_whoami_shows_an_admitted_caller_their_claims(cserve, env, upstream):
    app = upstream(recorder())
    proxy = cserve(WHOAMI, upstream=app.url)
    token = env.mint(email="Alice@Example.com", sub="accounts.google.com:4242",
                     claim=_levels(CORP))
    resp, line = call(proxy, "/.iap-proxy/whoami", token=token, headers=[("X-Forwarded-Email", "mallory@evil.example")])
    assert resp.status == 200, resp
    assert (resp.header("Content-Type") or "").startswith("application/json"), resp
    who = resp.json()
    assert who["email"] == "alice@example.com"
    assert who["sub"] == "accounts.google.com:4242"
    assert who["hd"] == "example.com"
    assert who["access_levels"] == [CORP]
    assert who["route"] == "app"
    assert who["decision"] == "allow"
    assert who["reason"] == "domain-ok"
    assert who["report_only"] is False
    claims = who["claims"]
    assert claims["aud"] and claims["iss"] == "https://cloud.google.com/iap", claims
    assert claims["sub"] == "accounts.google.com:4242" and claims["hd"] == "example.com", claims
    assert claims["google"]["access_levels"] == [CORP], claims

    consumer = call(proxy, "/.iap-proxy/whoami", token=env.mint(email="carol@gmail.com", hd=None))[0].json()
    assert consumer["hd"] is None and consumer["reason"] == "email-ok" and consumer["email"] == "carol@gmail.com"
    assert app.requests == [], "whoami was forwarded to the app"


def test_whoami_on_a_report_only_route(cserve, env):
    proxy = cserve("whoami_path: /trial/me\n" + WHOAMI)
    resp, _ = call(proxy, "/trial/me", token=env.mint(email="alice@example.com"))
    assert resp.status == 200, resp
    who = resp.json()
    assert who["route"] == "trial" and who["report_only"] is True, who
    assert "not-allowlisted" in who["reason"], who
    resp, _ = call(proxy, "/trial/me", token=env.mint(email="root@example.com"))
    who = resp.json()
    assert who["route"] == "trial" and who["decision"] == "allow" and who["reason"] == "email-ok", who


def test_whoami_refuses_callers_the_route_does_not_admit(cserve, env, upstream):
    app = upstream(recorder())
    proxy = cserve(WHOAMI, upstream=app.url)
    resp, line = call(proxy, "/.iap-proxy/whoami", token=env.mint(email="dave@gmail.com", hd=None))
    assert resp.status == 403 and line["reason"] == "not-allowlisted", (resp, line)
    assert b"dave" not in resp.body and b"claims" not in resp.body
    resp, line = call(proxy, "/.iap-proxy/whoami")
    assert resp.status == 401, resp
    assert app.requests == []


def test_whoami_path_is_configurable_and_can_be_turned_off(cserve, env):
    token = env.mint()
    custom = cserve("whoami_path: /_me\n" + WHOAMI)
    resp, _ = call(custom, "/_me", token=token)
    assert resp.status == 200 and resp.json()["email"] == "alice@example.com", resp
    resp, _ = call(custom, "/.iap-proxy/whoami", token=token)
    assert resp.status == 200 and upstream_path(resp) == "/.iap-proxy/whoami"  # the app's path now

    off = cserve("whoami_path: off\n" + WHOAMI)
    resp, line = call(off, "/.iap-proxy/whoami", token=token)
    assert resp.status == 200, resp
    echoed = resp.json()
    assert "method" in echoed and upstream_path(resp) == "/.iap-proxy/whoami", echoed
    assert line["reason"] == "domain-ok", line
    # turned off, it is an ordinary path of the app: still behind the allow list
    resp, _ = call(off, "/.iap-proxy/whoami", token=env.mint(email="dave@gmail.com", hd=None))
    assert resp.status == 403


# -- 8. audience learning -------------------------------------------------------------------------

AUDIENCE_CONFIG = """\
routes:
  - match: { path_prefix: / }
    allow: [ example.com ]
"""

THIRD_AUDIENCE = "/projects/123456789/apps/another-project"


def _mismatches(proxy, audience=None) -> list:
    return [e for e in proxy.events("audience-mismatch") if audience is None or e.get("token_aud") == audience]


def test_audience_mismatch_names_the_token_audience_once(cserve, env):
    proxy = cserve(AUDIENCE_CONFIG)
    other = env.mint(audience=OTHER_AUDIENCE)
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/first", token=other))
        assert conn.read_response().status == 401
        event = proxy.wait_event("audience-mismatch", timeout=5)
        assert event["token_aud"] == OTHER_AUDIENCE, event
        # a second request within the minute (same connection) adds no second line
        conn.send(request_bytes("GET", "/second", token=other))
        assert conn.read_response().status == 401
        proxy.wait_access(lambda l: l.get("path") == "/second")
        # another audience gets its own line
        conn.send(request_bytes("GET", "/third", token=env.mint(audience=THIRD_AUDIENCE)))
        assert conn.read_response().status == 401
    proxy.wait_event("audience-mismatch", timeout=5, predicate=lambda e: e.get("token_aud") == THIRD_AUDIENCE)
    time.sleep(0.3)
    assert len(_mismatches(proxy, OTHER_AUDIENCE)) == 1, proxy.events("audience-mismatch")
    assert len(_mismatches(proxy, THIRD_AUDIENCE)) == 1, proxy.events("audience-mismatch")


def test_audience_mismatch_is_logged_once_a_minute_whatever_the_worker(cserve, env):
    # a fixed port: with port 0 each worker would bind a port of its own (see policy_support)
    proxy = cserve(AUDIENCE_CONFIG, workers=2, listen=f"127.0.0.1:{free_port()}")
    other = env.mint(audience=OTHER_AUDIENCE)
    # fresh connections: SO_REUSEPORT spreads them over both workers' listeners
    for n in range(16):
        resp = http(proxy.port, "GET", f"/again-{n}", token=other)
        assert resp.status == 401, resp
    proxy.wait_access(lambda l: l.get("path") == "/again-15")
    time.sleep(0.3)
    events = _mismatches(proxy, OTHER_AUDIENCE)
    assert len(events) == 1, f"{len(events)} audience-mismatch lines for one audience within a minute: {events}"


def test_no_audience_hint_for_tokens_that_do_not_verify(cserve, env):
    proxy = cserve(AUDIENCE_CONFIG)
    forged = env.mint(audience=OTHER_AUDIENCE, key=env.rogue / "private.pem")  # right kid, wrong key
    resp, line = call(proxy, "/forged", token=forged)
    assert resp.status == 401 and line["reason"] == "bad-signature", (resp, line)
    unknown = env.mint(audience=THIRD_AUDIENCE, key=env.rogue / "private.pem", kid="rogue-kid")
    resp, line = call(proxy, "/unknown-kid", token=unknown)
    assert resp.status == 401, (resp, line)
    time.sleep(0.3)
    assert _mismatches(proxy) == [], "an unverified token's aud was logged as a hint"


# -- local answers to HEAD ----------------------------------------------------------------------

HEAD_CONFIG = """\
whoami_path: /app/me
routes:
  - name: lb
    match: { path: /lb-health }
    respond: "ok"
  - name: app
    match: { path_prefix: /app }
    allow: [ example.com ]
"""


def _bytes_after_head(port: int, first: bytes, follow: bytes, timeout: float = 3) -> bytes:
    """Sends `first` and `follow` pipelined on one connection; returns what followed the first
    response head once the answer to `follow` ("ok") is in (or the time is up)."""
    with RawConn(port) as conn:
        conn.send(first + follow)
        conn.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not conn.buf.endswith(b"\r\n\r\nok"):
            try:
                if not conn._fill():
                    break
            except OSError:
                pass
        head_end = conn.buf.find(b"\r\n\r\n")
        assert head_end > 0, conn.buf
        return conn.buf[head_end + 4:]


def test_local_answers_to_head_have_no_body(cserve, env):
    proxy = cserve(HEAD_CONFIG)
    token = env.mint()
    follow = request_bytes("GET", "/lb-health")
    failures = {}
    for what, first in [("respond", request_bytes("HEAD", "/lb-health")),
                        ("whoami", request_bytes("HEAD", "/app/me", token=token)),
                        ("401", request_bytes("HEAD", "/app/x")),
                        ("403 no-route", request_bytes("HEAD", "/elsewhere", token=token)),
                        ("forwarded (control)", request_bytes("HEAD", "/app/x", token=token))]:
        rest = _bytes_after_head(proxy.port, first, follow)
        if not rest.startswith(b"HTTP/1.1 200 OK\r\n"):
            failures[what] = rest[:80]
    assert not failures, f"bytes between a HEAD response head and the next response: {failures}"
