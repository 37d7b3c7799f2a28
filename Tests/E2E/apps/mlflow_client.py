"""Drives the real `mlflow` client against MLFLOW_TRACKING_URI (iap-proxy), with the IAP assertion
added by the mlflow-iap-e2e-header plugin from $IAP_E2E_ASSERTION. Run with the MLflow venv's python:

    mlflow_client.py '[["alice@...", "log", EXPERIMENT, ARTIFACT_FILE, DOWNLOAD_DIR],
                       ["bob@...", "log-metric", RUN_ID], ["bob@...", "get-run", RUN_ID]]'

Each step runs as its user (IAP_E2E_ASSERTION set from the JSON map in $IAP_E2E_TOKENS, one
process for all steps, as importing mlflow takes seconds); prints a JSON list of step results.
"""

import hashlib
import json
import os
import sys

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.request_header.registry import resolve_request_headers


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log(experiment, artifact, download_dir):
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"optimizer": "adam", "lr": "0.01"})
        for step, value in enumerate([0.9, 0.5, 0.25]):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_artifact(artifact, artifact_path="data")
    client = MlflowClient()
    fetched = client.get_run(run.info.run_id)
    downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="data/" + artifact.rsplit("/", 1)[1],
                                                     dst_path=download_dir)
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "artifact_uri": fetched.info.artifact_uri,
        "params": fetched.data.params,
        "loss_history": [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")],
        "artifacts": [(f.path, f.file_size) for f in client.list_artifacts(run.info.run_id, "data")],
        "downloaded_sha256": sha256(downloaded),
        "plugin_headers": sorted(resolve_request_headers()),
    }


def log_metric(run_id):
    try:
        MlflowClient().log_metric(run_id, "intruder", 1.0)
        return {"ok": True}
    except MlflowException as e:
        return {"ok": False, "error_code": e.error_code, "status": e.get_http_status_code(), "message": str(e)[:300]}


def get_run(run_id):
    run = MlflowClient().get_run(run_id)
    return {"params": run.data.params, "status": run.info.status}


if __name__ == "__main__":
    tokens = json.loads(os.environ.pop("IAP_E2E_TOKENS"))
    results = []
    for email, action, *args in json.loads(sys.argv[1]):
        os.environ["IAP_E2E_ASSERTION"] = tokens[email]
        results.append({"log": log, "log-metric": log_metric, "get-run": get_run}[action](*args))
    print(json.dumps(results))
