"""Operations: Prometheus metrics (parsed with prometheus_client's own parser, exact values after a
known mix of requests), log lines (JSON and text, hashed emails), readiness flipping with the key
set, and the load balancer's health answer."""

import hashlib
from prometheus_client.parser import text_string_to_metric_families

from helpers import BIN, Proc, free_port, http, run_bin
from upstreams import KeyServer, serve_each, simple_response


def scrape(proxy) -> dict:
    """{(sample name, frozenset(labels)): value} from /metrics, via the reference parser."""
    resp = http(proxy.admin_port, "GET", "/metrics")
    assert resp.status == 200
    assert resp.header("content-type").startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(resp.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_a_known_mix_exactly(serve, env):
    proxy = serve(workers=1)  # one loop, one token cache: cache counts are exact
    alice = env.mint()
    outsider = env.mint(email="eve@evil.example", hd="evil.example")
    for _ in range(3):
        assert http(proxy.port, "GET", "/ok", token=alice).status == 200
    assert http(proxy.port, "GET", "/no-token").status == 401
    assert http(proxy.port, "GET", "/garbage", token="not.a.token").status == 401
    assert http(proxy.port, "GET", "/outsider", token=outsider).status == 403
    assert http(proxy.port, "GET", "/outsider", token=outsider).status == 403
    # Every request is logged before its metrics are scraped: wait for the last line.
    proxy.wait_access(lambda l: sum(1 for x in proxy.access_log() if x.get("path") == "/outsider") == 2)
    samples = scrape(proxy)
    requests = "iap_proxy_requests_total"
    assert value(samples, requests, decision="allow", reason="domain-ok", status_class="2xx", route="allowlist") == 3
    assert value(samples, requests, decision="deny", reason="missing-assertion", status_class="4xx", route="allowlist") == 1
    assert value(samples, requests, decision="deny", reason="malformed-token", status_class="4xx", route="allowlist") == 1
    assert value(samples, requests, decision="deny", reason="not-allowlisted", status_class="4xx", route="allowlist") == 2
    total = sum(v for (name, _), v in samples.items() if name == requests)
    assert total == 7
    # alice's token verified once, then came from the cache twice; the garbage one missed; the
    # outsider's verified once and hit once.
    assert value(samples, "iap_proxy_token_cache_total", result="miss") == 3
    assert value(samples, "iap_proxy_token_cache_total", result="hit") == 3
    assert value(samples, "iap_proxy_request_duration_seconds_count") == 7
    assert value(samples, "iap_proxy_upstream_duration_seconds_count") == 3
    assert value(samples, "iap_proxy_ready") == 1
    assert value(samples, "iap_proxy_keys") == 1
    assert value(samples, "iap_proxy_key_info", kid="it-key-1") == 1
    assert value(samples, "iap_proxy_policy_routes") == 1
    assert value(samples, "iap_proxy_policy_reloads_total", result="success") == 0
    assert value(samples, "iap_proxy_upstream_connect_errors_total") == 0
    assert value(samples, "iap_proxy_key_set_age_seconds") >= 0


def test_policy_reload_metrics(serve, env, tmp_path):
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("example.com\n")
    proxy = serve(allowlist=allowlist)
    allowlist.write_text("example.com\nalice@partner.example\n")
    proxy.wait_event("policy-reloaded", timeout=10)
    allowlist.write_text("example.com\nnot an entry\n")
    proxy.wait_event("policy-reload-failed", timeout=10)
    samples = scrape(proxy)
    assert value(samples, "iap_proxy_policy_reloads_total", result="success") == 1
    assert value(samples, "iap_proxy_policy_reloads_total", result="failure") >= 1
    assert value(samples, "iap_proxy_policy_entries") == 2
    assert value(samples, "iap_proxy_policy_last_success_timestamp_seconds") > 1.7e9


def test_upstream_connect_errors_are_counted(serve, env):
    proxy = serve(upstream=f"http://127.0.0.1:{free_port()}")
    assert http(proxy.port, "GET", "/", token=env.mint()).status == 502
    proxy.wait_access(lambda l: l.get("status") == 502)
    samples = scrape(proxy)
    assert value(samples, "iap_proxy_upstream_connect_errors_total") == 1
    assert value(samples, "iap_proxy_requests_total", decision="allow", reason="upstream-connect-failed",
                 status_class="5xx", route="allowlist") == 1


def test_readiness_follows_the_key_set(serve, env):
    port = free_port()
    proxy = serve(jwks_url=f"http://127.0.0.1:{port}/keys")
    assert http(proxy.admin_port, "GET", "/readyz").status == 503
    samples = scrape(proxy)
    assert value(samples, "iap_proxy_ready") == 0 and value(samples, "iap_proxy_key_set_age_seconds") == -1
    assert value(samples, "iap_proxy_key_fetches_total", result="success") == 0
    keys = KeyServer(env.jwks.read_bytes(), port=port)
    try:
        proxy.wait_for(lambda: http(proxy.admin_port, "GET", "/readyz").status == 200, 20, "ready")
        # The fetch is counted just after its keys are published: /readyz can answer in between.
        proxy.wait_for(lambda: value(scrape(proxy), "iap_proxy_key_fetches_total", result="success") > 0, 5,
                       "the fetch counted")
        samples = scrape(proxy)
        assert value(samples, "iap_proxy_ready") == 1
        assert value(samples, "iap_proxy_key_fetches_total", result="success") == 1
        assert value(samples, "iap_proxy_key_fetches_total", result="failure") >= 1
    finally:
        keys.stop()


def test_json_log_lines_have_their_fields(proxy, token, env):
    assert http(proxy.port, "GET", "/fields", token=token).status == 200
    line = proxy.wait_access(lambda l: l.get("path") == "/fields")
    for field in ("time", "request_id", "client", "method", "path", "status", "bytes", "duration_ms", "upstream_ms",
                  "decision", "reason", "email"):
        assert field in line, field
    serving = proxy.events("serving")[0]
    assert serving["level"] == "info" and "listen" in serving and "upstream" in serving
    # A denied request's line always says why.
    assert http(proxy.port, "GET", "/denied").status == 401
    denied = proxy.wait_access(lambda l: l.get("path") == "/denied")
    assert denied["decision"] == "deny" and denied["reason"] == "missing-assertion"
    # and who it was, when the token verified.
    outsider = env.mint(email="eve@evil.example", hd="evil.example")
    assert http(proxy.port, "GET", "/outsider", token=outsider).status == 403
    line = proxy.wait_access(lambda l: l.get("path") == "/outsider")
    assert line["reason"] == "not-allowlisted" and line["email"] == "eve@evil.example"


def test_credentials_in_query_strings_are_not_logged(proxy, token):
    # JupyterHub API tokens and OAuth codes travel in query strings; the app still gets them.
    target = "/hub/api/user?token=s3cr3t-api-token&a=1&CODE=oauth-code&tokens=kept&empty"
    resp = http(proxy.port, "GET", target, token=token)
    assert resp.json()["target"] == target
    line = proxy.wait_access(lambda l: l.get("path", "").startswith("/hub/api/user"))
    assert line["path"] == "/hub/api/user?token=REDACTED&a=1&CODE=REDACTED&tokens=kept&empty", line
    assert "s3cr3t" not in proxy.output_tail(200) and "oauth-code" not in proxy.output_tail(200)


def test_text_logs_and_hashed_emails(serve, env):
    proxy = Proc([BIN, "serve", *env.serve_args(extra=["--log-format", "text", "--log-emails", "hash"])], name="serve")
    try:
        listen = proxy.wait_for(lambda: next((l for l in proxy.stderr_lines if " serving " in l), None), 20, "serving")
        assert " info serving " in listen
        port = int(listen.split("listen=")[1].split()[0].rsplit(":", 1)[1])
        assert http(port, "GET", "/text", token=env.mint()).status == 200
        line = proxy.wait_for(lambda: next((l for l in proxy.stdout_lines if "path=/text" in l), None), 10, "access")
        digest = "sha256:" + hashlib.sha256(b"alice@example.com").hexdigest()[:16]
        assert f"email={digest}" in line and "alice@example.com" not in line
        assert "status=200" in line and "decision=allow" in line and "reason=domain-ok" in line
    finally:
        proxy.kill()


def test_health_path_answers_the_load_balancer_without_the_app(serve, env, upstream):
    app = upstream(serve_each(lambda up, conn, req: simple_response()))
    proxy = serve("--health-path", "/lb-health", upstream=app.url)
    resp = http(proxy.port, "GET", "/lb-health", headers=[("User-Agent", "GoogleHC/1.0")])
    assert resp.status == 200 and resp.body == b"ok\n"
    assert http(proxy.port, "GET", "/lb-health/more").status == 401
    assert app.requests == []


def test_probe_command_reports_health(serve):
    proxy = serve()
    assert run_bin(["probe", "--address", f"127.0.0.1:{proxy.admin_port}"]).returncode == 0
    assert run_bin(["probe", "--address", f"127.0.0.1:{proxy.admin_port}", "--path", "/readyz"]).returncode == 0
    assert run_bin(["probe", "--address", f"127.0.0.1:{free_port()}"]).returncode == 1
