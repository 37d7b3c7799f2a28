#!/usr/bin/env bash
# The release binary, built one way everywhere: `make build`, CI and the Dockerfile all call this.
# Static Swift runtime (the image needs only libssl, libcurl and libstdc++), stripped.
# Usage: scripts/build-release.sh [OUTPUT]   (default .build/iap-proxy)
set -euo pipefail
cd "$(dirname "$0")/.."
output=${1:-.build/iap-proxy}
swift build -c release --static-swift-stdlib --product iap-proxy
mkdir -p "$(dirname "$output")"
strip -o "$output" "$(swift build -c release --static-swift-stdlib --show-bin-path)/iap-proxy"
echo "built $output ($(du -h "$output" | cut -f1))"
