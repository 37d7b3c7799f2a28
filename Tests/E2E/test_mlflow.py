"""An MLflow tracking server (basic-auth app, authorization_function reading iap-proxy's
X-Forwarded-Email/User) behind iap-proxy, driven by the real `mlflow` client (its venv's python),
which sends the assertion through a `mlflow.request_header_provider` plugin."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

import e2e_support as e2e
from conftest import ALICE, BOB
from e2e_support import MLFLOW_VENV

ARTIFACT_BYTES = 5 * 1024 * 1024 + 12345


def client(mlflow_app, keys, *steps, bearer=None, timeout=180):
    """Runs steps (EMAIL, ACTION, ARGS...) with apps/mlflow_client.py in the MLflow venv; their results."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "IAP_PROXY_", "IAP_E2E_"))}
    env.update(MLFLOW_TRACKING_URI=mlflow_app.proxy.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", HOME=str(mlflow_app.dir),
               IAP_E2E_TOKENS=json.dumps({step[0]: keys.token(step[0]) for step in steps}))
    if bearer:
        env["MLFLOW_TRACKING_TOKEN"] = bearer  # the client's own `Authorization: Bearer ...`
    steps_json = json.dumps([[str(part) for part in step] for step in steps])
    result = subprocess.run([MLFLOW_VENV / "bin" / "python", e2e.HERE / "apps" / "mlflow_client.py", steps_json],
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"mlflow client failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def alice_run(mlflow_app, keys, tmp_path_factory):
    """alice logs a run with params, metrics and a few-MB artifact, and downloads it again."""
    work = tmp_path_factory.mktemp("mlflow-client")
    artifact = work / "weights.bin"
    artifact.write_bytes(os.urandom(ARTIFACT_BYTES))
    bearer = "e2e-client-bearer-" + e2e.probe()
    (work / "download").mkdir()
    before = len(e2e.read_jsonl(mlflow_app.auth_log))
    [result] = client(mlflow_app, keys, (ALICE, "log", "e2e-experiment", artifact, work / "download"), bearer=bearer)
    result["app_saw"] = e2e.read_jsonl(mlflow_app.auth_log)[before:]  # what MLflow was handed for these calls
    result["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
    result["bearer"] = bearer
    return result


def test_client_logs_run_params_metrics_and_artifact_through_proxy(mlflow_app, alice_run):
    run = alice_run
    assert "x-goog-iap-jwt-assertion" in run["plugin_headers"], run  # the header plugin is registered
    assert run["params"] == {"optimizer": "adam", "lr": "0.01"}, run
    assert run["loss_history"] == [[0, 0.9], [1, 0.5], [2, 0.25]], run
    assert run["artifact_uri"].startswith("mlflow-artifacts:/"), run  # served by the tracking server itself
    assert run["artifacts"] == [["data/weights.bin", ARTIFACT_BYTES]], run
    assert run["downloaded_sha256"] == run["sha256"]
    on_disk = list((mlflow_app.dir / "artifacts").rglob("weights.bin"))
    assert len(on_disk) == 1 and hashlib.sha256(on_disk[0].read_bytes()).hexdigest() == run["sha256"]
    # Upload and download both went through iap-proxy as alice, bodies and all.
    transfers = mlflow_app.proxy.access_lines(lambda l: l.get("path", "").endswith("/data/weights.bin"))
    assert {(l["method"], l["status"], l["email"]) for l in transfers} == {("PUT", 200, ALICE), ("GET", 200, ALICE)}, \
        transfers
    assert max(l["bytes"] for l in transfers if l["method"] == "GET") >= ARTIFACT_BYTES, transfers


def test_users_current_names_the_minted_user(mlflow_app, keys):
    s = e2e.session_for(keys.token(ALICE))
    r = s.get(mlflow_app.proxy.url + "/api/2.0/mlflow/users/current",
              headers={"X-Forwarded-Email": "admin", "X-Forwarded-User": "admin"}, timeout=30)  # forged: dropped
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["username"] == ALICE and body["user"]["is_admin"] is False, body
    assert body["is_basic_auth"] is False, body
    seen = [e for e in e2e.read_jsonl(mlflow_app.auth_log) if e["path"] == "/api/2.0/mlflow/users/current"]
    assert seen and seen[-1]["email"] == [ALICE] and seen[-1]["user"] == [ALICE], seen


def test_other_user_cannot_write_to_the_run(mlflow_app, keys, alice_run):
    run_id = alice_run["run_id"]
    read, denied, owner = client(mlflow_app, keys, (BOB, "get-run", run_id), (BOB, "log-metric", run_id),
                                 (ALICE, "log-metric", run_id))
    assert read["params"] == {"optimizer": "adam", "lr": "0.01"}, read  # bob may read (default_permission READ)
    assert denied["ok"] is False and denied["error_code"] == "PERMISSION_DENIED" and denied["status"] == 403, denied
    assert "Permission denied" in denied["message"], denied  # the auth app's own 403 body
    assert owner == {"ok": True}  # the owner still can
    # MLflow said no, not iap-proxy: the proxy admitted bob and passed the request on.
    line = mlflow_app.proxy.access_lines(lambda l: l.get("email") == BOB and l.get("path") == "/api/2.0/mlflow/runs/log-metric")
    assert [(l["decision"], l["status"]) for l in line] == [("allow", 403)], line
    assert line[0]["upstream_ms"] is not None


def test_client_authorization_header_passes_untouched(mlflow_app, alice_run):
    seen = alice_run["app_saw"]
    paths = {e["path"] for e in seen}
    assert {"/api/2.0/mlflow/runs/create", "/api/2.0/mlflow/runs/log-batch"} <= paths or len(seen) >= 8, paths
    assert any(p.startswith("/api/2.0/mlflow-artifacts/artifacts/") for p in paths), paths
    for entry in seen:
        assert entry["authorization"] == [f"Bearer {alice_run['bearer']}"], entry
        assert (entry["email"], entry["user"]) == ([ALICE], [ALICE]), entry
        assert entry["assertion"], "forward_assertion defaults to true"


def test_forged_identity_without_token_is_401_and_never_reaches_mlflow(mlflow_app):
    marker = e2e.probe()
    r = e2e.session_for(None).get(f"{mlflow_app.proxy.url}/api/2.0/mlflow/users/current?{marker}",
                                  headers={"X-Forwarded-Email": ALICE, "X-Forwarded-User": ALICE}, timeout=10)
    assert r.status_code == 401, r.text
    assert not [e for e in e2e.read_jsonl(mlflow_app.auth_log) if marker in e["query"]]
    line = mlflow_app.proxy.access_lines(lambda l: marker in l.get("path", ""))
    assert [(l["status"], l["upstream_ms"]) for l in line] == [(401, None)], line
