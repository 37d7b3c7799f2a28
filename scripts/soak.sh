#!/usr/bin/env bash
# Soak test: a release-built iap-proxy in front of `iap-proxy echo` under sustained mixed load
# (wrk when installed, else Python asyncio; plus WebSockets and fresh connections), watched for RSS
# and descriptor growth; exit 1 on any unexpected status, transport error or leak.
#
#   scripts/soak.sh                   # 600 s (make soak)
#   scripts/soak.sh --duration 60     # the CI length
#   scripts/soak.sh --build ...       # rebuild .build/iap-proxy first (scripts/build-release.sh)
#   IAP_PROXY_BIN=path scripts/soak.sh --duration 60 --logs /tmp/soak-logs
#
# Other options: --connections N (240), --websockets N (8), --new-per-second R (5), --no-wrk.
# Details: Tests/Soak/soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."

build=0
args=()
for arg in "$@"; do
    if [[ "$arg" == "--build" ]]; then build=1; else args+=("$arg"); fi
done

bin="${IAP_PROXY_BIN:-.build/iap-proxy}"
if [[ -z "${IAP_PROXY_BIN:-}" && ( $build == 1 || ! -x "$bin" ) ]]; then
    scripts/build-release.sh "$bin"
fi
if [[ ! -x "$bin" ]]; then
    echo "no iap-proxy binary at $bin" >&2
    exit 2
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r Tests/Integration/requirements.txt
command -v wrk >/dev/null || echo "wrk not installed (apt-get install wrk): using the Python load generator" >&2

exec .venv/bin/python Tests/Soak/soak.py --bin "$bin" "${args[@]}"
