"""10. check-config: every problem reported at once (exit 2); a good configuration exits 0."""

from __future__ import annotations

import pytest

from helpers import AUDIENCE, run_bin


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_four_problems_reported_together(env):
    result = run_bin(["check-config", "--upstream", "http://127.0.0.1:9", "--audience", "/projects/abc/global/oops",
                      "--jwks-file", env.jwks, "--head-timeout", "5parsecs", "--preset", "nonesuch"])
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    errors = _errors(result)
    assert len(errors) >= 4, result.stderr
    text = "\n".join(errors).lower()
    assert "audience" in text or "/projects/abc/global/oops" in text, text
    assert "allowlist" in text, text
    assert "head-timeout" in text and "5parsecs" in text, text
    assert "preset" in text and "nonesuch" in text, text
    # one problem per line: each of the four is its own error line
    for needle in ("/projects/abc/global/oops", "allowlist", "5parsecs", "nonesuch"):
        assert any(needle in e.lower() for e in errors), (needle, errors)


def test_unreadable_allowlist_and_bad_lines_are_reported(env, tmp_path):
    result = run_bin(["check-config", "--upstream", "http://127.0.0.1:9", "--audience", AUDIENCE,
                      "--jwks-file", env.jwks, "--allowlist", tmp_path / "missing.txt"])
    assert result.returncode == 2
    assert any("missing.txt" in e for e in _errors(result)), result.stderr

    bad = tmp_path / "bad.txt"
    bad.write_text("example.com\n\n# comment\nnot an entry\n@\n")
    result = run_bin(["check-config", "--upstream", "http://127.0.0.1:9", "--audience", AUDIENCE,
                      "--jwks-file", env.jwks, "--allowlist", bad])
    assert result.returncode == 2
    errors = _errors(result)
    assert len(errors) >= 2, result.stderr
    assert any(":4" in e or "line 4" in e for e in errors), errors  # the line number is named


def test_good_configuration_exits_0(env):
    result = run_bin(["check-config", "--upstream", env.echo.url, "--audience", AUDIENCE,
                      "--audience", "/projects/123/apps/my-project", "--jwks-file", env.jwks,
                      "--allowlist", env.allowlist, "--preset", "grafana", "--head-timeout", "500ms",
                      "--drain-timeout", "1h", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
    assert result.returncode == 0, result.stderr
    assert _errors(result) == []


def test_configuration_from_environment(env):
    result = run_bin(["check-config"], env={
        "IAP_PROXY_UPSTREAM": env.echo.url, "IAP_PROXY_AUDIENCE": AUDIENCE, "IAP_PROXY_JWKS_FILE": str(env.jwks),
        "IAP_PROXY_ALLOWLIST": str(env.allowlist), "IAP_PROXY_PRESET": "jupyterhub",
    })
    assert result.returncode == 0, result.stderr
    result = run_bin(["check-config"], env={
        "IAP_PROXY_UPSTREAM": env.echo.url, "IAP_PROXY_AUDIENCE": AUDIENCE, "IAP_PROXY_JWKS_FILE": str(env.jwks),
        "IAP_PROXY_ALLOWLIST": str(env.allowlist), "IAP_PROXY_IDLE_TIMEOUT": "soon",
    })
    assert result.returncode == 2 and "soon" in result.stderr


def test_serve_refuses_a_bad_configuration(env):
    result = run_bin(["serve", "--listen", "127.0.0.1:0", "--upstream", env.echo.url, "--audience", "nope",
                      "--jwks-file", env.jwks, "--allowlist", env.allowlist], timeout=20)
    assert result.returncode == 2, result
    assert "error" in result.stderr.lower()
