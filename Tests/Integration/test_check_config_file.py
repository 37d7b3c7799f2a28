"""9. `check-config --config FILE.yaml`: every problem of the file at once (exit 2), each with
`file:line:column` where it has a place in the file (docs/CONFIG.md: "reports every problem at
once (with `file:line:column` for the config file)"); `serve` refuses the same file."""

from __future__ import annotations

import re

import pytest

from helpers import AUDIENCE, run_bin


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def _located(errors: list[str], name: str, needle: str, lines: range) -> str:
    """The one error line naming `needle`; it must carry name:LINE:COLUMN with LINE in `lines`."""
    found = [e for e in errors if needle in e]
    assert found, f"no error mentions {needle!r}: {errors}"
    for error in found:
        match = re.search(re.escape(name) + r":(\d+):(\d+)", error)
        if match and int(match.group(1)) in lines and int(match.group(2)) >= 1:
            return error
    raise AssertionError(f"{needle!r} not reported at {name}:{lines.start}..{lines.stop - 1}:COLUMN: {found}")


def _config(env) -> str:
    return f"""\
upstream: http://127.0.0.1:9
audiences: [ "{AUDIENCE}" ]
keys: {{ file: "{env.jwks}" }}
colour: blue
groups:
  admins: [ alice@example.com ]
routes:
  - name: no-match
    allow: [ example.com ]
  - name: team
    match: {{ path_prefix: /team }}
    allow: [ "group:nonesuch", "group:admins" ]
  - name: templ
    match: {{ path_prefix: /t }}
    allow: [ example.com ]
    headers: {{ X-Who: "{{emial}}" }}
  - name: typo
    match: {{ path_prefix: /k, verbs: [ GET ] }}
    allow: [ example.com ]
    requires_access_levels: [ "accessPolicies/1/accessLevels/corp" ]
  - name: fine
    match: {{ path_prefix: / }}
    allow: [ example.com ]
"""


def test_every_problem_with_its_place(env, tmp_path):
    text = _config(env)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = run_bin(["check-config", "--config", path])
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    errors = _errors(result)
    name = "config.yaml"

    def route(start_needle: str, end_needle: str) -> range:
        return range(_line_of(text, start_needle), _line_of(text, end_needle) + 1)

    _located(errors, name, '"colour"', range(4, 5))
    _located(errors, name, "needs a match", route("name: no-match", "allow: [ example.com ]"))
    _located(errors, name, "nonesuch", route("name: team", "group:nonesuch"))
    _located(errors, name, "{emial}", route("name: templ", "{emial}"))
    _located(errors, name, '"verbs"', range(_line_of(text, "verbs"), _line_of(text, "verbs") + 1))
    _located(errors, name, '"requires_access_levels"', range(_line_of(text, "requires_access_levels"),
                                                             _line_of(text, "requires_access_levels") + 1))
    assert len(errors) >= 6, errors
    # nothing about the good parts
    assert not any("fine" in e or "admins" in e for e in errors), errors

    served = run_bin(["serve", "--config", path, "--listen", "127.0.0.1:0", "--admin-listen", "off"], timeout=20)
    assert served.returncode == 2, served
    assert any("nonesuch" in line for line in served.stderr.splitlines()), served.stderr


def test_problems_outside_routes_are_located_too(env, tmp_path):
    text = f"""\
upstream: http://127.0.0.1:9
audiences: [ "{AUDIENCE}" ]
keys: {{ file: "{env.jwks}" }}
headers: {{ X-User: "{{emial}}" }}
timeouts:
  head: soon
groups:
  admins: [ alice@example.com, "not an entry" ]
routes:
  - match: {{ path_prefix: / }}
    allow: [ "group:admins" ]
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = run_bin(["check-config", "--config", path])
    assert result.returncode == 2, result
    errors = _errors(result)
    problems = []
    for needle, line in [("{emial}", 4), ("soon", 6), ("not an entry", 8)]:
        try:
            _located(errors, "config.yaml", needle, range(line, line + 1))
        except AssertionError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_allowlist_files_named_by_routes_are_checked(env, tmp_path):
    (tmp_path / "team.txt").write_text("# team\nexample.com\nnot an entry\n[group ops]\n!x@example.com\n")
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
upstream: http://127.0.0.1:9
audiences: [ "{AUDIENCE}" ]
keys: {{ file: "{env.jwks}" }}
routes:
  - match: {{ path_prefix: /team }}
    allow: [ "file:team.txt" ]
  - match: {{ path_prefix: / }}
    allow: [ "file:missing.txt" ]
""")
    result = run_bin(["check-config", "--config", path])
    assert result.returncode == 2, result
    errors = _errors(result)
    assert any("team.txt:3" in e for e in errors), errors      # the bad line
    assert any("team.txt:5" in e for e in errors), errors      # `!` inside a group
    assert any("missing.txt" in e for e in errors), errors     # relative to the config file
    assert any(str(tmp_path / "missing.txt") in e for e in errors), errors


def test_a_good_config_file_exits_0(env, tmp_path):
    (tmp_path / "allowlist.txt").write_text("example.com\n[group ops]\nalice@example.com\n")
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
upstream: {env.echo.url}
audiences: [ "{AUDIENCE}" ]
keys: {{ file: "{env.jwks}" }}
whoami_path: off
headers: grafana
routes:
  - name: health
    match: {{ path: /health }}
    auth: none
  - name: lb
    match: {{ path: /lb }}
    respond: ok
  - name: ops
    match: {{ host: ops.example.com, path_prefix: /admin, methods: [ POST ] }}
    allow: [ "group:ops", "!bob@example.com" ]
    headers: {{ kubeflow-userid: "accounts.google.com:{{email}}" }}
    require_access_levels: [ "accessPolicies/1/accessLevels/corp" ]
    report_only: true
    allow_encoded_slashes: true
  - name: app
    match: {{ path_prefix: / }}
    allow: [ "file:allowlist.txt" ]
""")
    result = run_bin(["check-config", "--config", path])
    assert result.returncode == 0, result.stderr
    assert "4 routes" in result.stdout, result.stdout
