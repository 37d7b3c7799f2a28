#!/usr/bin/env bash
# Runs the real-socket integration suite of iap-proxy.
#
#   Tests/Integration/run.sh                 # whole suite (-x -q)
#   Tests/Integration/run.sh -k corpora      # extra pytest arguments are passed through
#   Tests/Integration/run.sh --proxy-bugs-xfail   # known proxy bugs as xfail, so -x runs past them
#   Tests/Integration/run.sh --maxfail=1000       # do not stop at the first failure (overrides -x)
#
# Environment: IAP_PROXY_BIN (binary under test, default <repo>/.build/debug/iap-proxy, built here
# if missing), IAP_PROXY_VECTORS (default <repo>/../shared/vectors), IAP_PROXY_CORPUS_SAMPLE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

bin="${IAP_PROXY_BIN:-$repo/.build/debug/iap-proxy}"
if [[ ! -x "$bin" ]]; then
    if [[ -n "${IAP_PROXY_BIN:-}" ]]; then
        echo "IAP_PROXY_BIN=$bin is not an executable" >&2
        exit 2
    fi
    echo "building iap-proxy (debug) ..." >&2
    (cd "$repo" && swift build --product iap-proxy)
fi
export IAP_PROXY_BIN="$bin"
export PYTHONDONTWRITEBYTECODE=1

cd "$here"
exec "$venv/bin/python" -m pytest -x -q "$@"
