#!/usr/bin/env bash
# Runs the real-apps end-to-end suite: JupyterHub (with Debian's configurable-http-proxy), a
# standalone Jupyter Server and an MLflow tracking server, each behind `iap-proxy serve`.
#
#   Tests/E2E/run.sh                    # whole suite
#   Tests/E2E/run.sh -k mlflow -x       # extra pytest arguments are passed through
#
# Installs what is missing and says so: Debian's node-configurable-http-proxy (scripts/install-deps.sh),
# two venvs at the repo root, kept between runs and reinstalled only when the pinned requirements
# change (a stamp of them inside each venv): .venv-e2e-jhub (JupyterHub, JupyterLab, Jupyter
# Server, pytest: runs the suite) and .venv-e2e-mlflow (MLflow and the client header plugin), both
# from PyPI, in parallel. Builds .build/debug/iap-proxy only if it is missing.
#
# Environment: IAP_PROXY_BIN (binary under test, default <repo>/.build/debug/iap-proxy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
started=$SECONDS

"$repo/scripts/install-deps.sh" python3-venv node-configurable-http-proxy

python=""
for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[[ -n "$python" ]] || { echo "e2e: no python3 (apt-get install python3)" >&2; exit 2; }

# setup_venv NAME FILE... : .venv-e2e-NAME with requirements-NAME.txt under constraints-NAME.txt;
# the stamp is the hash of every FILE given (requirements, constraints, plugin sources).
setup_venv() {
    local name="$1"; shift
    local venv="$repo/.venv-e2e-$name" stamp want
    stamp="$venv/.e2e-requirements-stamp"
    want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "e2e: installing .venv-e2e-$name from PyPI (pinned; first run only)"
    [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements-$name.txt" -c "$here/constraints-$name.txt"
    if [[ "$name" == mlflow ]]; then
        # Built from a temporary copy so no build/ or *.egg-info lands in the source tree.
        local copy
        copy="$(mktemp -d)"
        cp -r "$here/mlflow_iap_plugin/." "$copy/"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$copy"
        rm -rf "$copy"
    fi
    echo "$want" > "$stamp"
}

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
setup_venv jhub "$here/requirements-jhub.txt" "$here/constraints-jhub.txt" >"$logs/jhub" 2>&1 &
jhub_pid=$!
setup_venv mlflow "$here/requirements-mlflow.txt" "$here/constraints-mlflow.txt" \
    "$here/mlflow_iap_plugin/pyproject.toml" "$here/mlflow_iap_plugin/mlflow_iap_e2e_header.py" >"$logs/mlflow" 2>&1 &
mlflow_pid=$!
failed=0
wait "$jhub_pid" || failed=1
cat "$logs/jhub"
wait "$mlflow_pid" || failed=1
cat "$logs/mlflow"
[[ $failed == 0 ]] || { echo "e2e: installing the Python environments failed (output above)" >&2; exit 2; }

bin="${IAP_PROXY_BIN:-$repo/.build/debug/iap-proxy}"
if [[ ! -x "$bin" ]]; then
    if [[ -n "${IAP_PROXY_BIN:-}" ]]; then
        echo "e2e: IAP_PROXY_BIN=$bin is not an executable" >&2
        exit 2
    fi
    echo "e2e: building iap-proxy (debug) ..." >&2
    (cd "$repo" && swift build --product iap-proxy)   # waits by itself if another build holds the lock
fi
echo "e2e: environments ready after $((SECONDS - started)) s"

export IAP_PROXY_BIN="$bin" E2E_JHUB_VENV="$repo/.venv-e2e-jhub" E2E_MLFLOW_VENV="$repo/.venv-e2e-mlflow"
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec "$repo/.venv-e2e-jhub/bin/python" -m pytest "$@"
