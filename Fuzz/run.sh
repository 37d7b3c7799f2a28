#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS (default 30) with seeds from the
# published vectors. `make fuzz` runs longer; `make test` runs the short version.
# Crashes are written to .build-fuzz/artifacts and fail the run.
set -euo pipefail
seconds=${1:-30}
cd "$(dirname "$0")/.."
vectors=${IAP_PROXY_VECTORS:-$(cd .. && pwd)/shared/vectors}
out=.build-fuzz
mkdir -p "$out/artifacts"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g)
swiftc "${flags[@]}" -module-name HTTP1 Sources/HTTP1/*.swift Fuzz/HTTP1Fuzz.swift -o "$out/http1-fuzz" 2> "$out/http1-build.log" \
    || { cat "$out/http1-build.log"; exit 1; }
swiftc "${flags[@]}" -module-name IAPAuth -I Sources/COpenSSL -I Sources/CCurl \
    $(find Sources/IAPAuth -name '*.swift') Fuzz/AuthFuzz.swift -lcrypto -lcurl -o "$out/auth-fuzz" 2> "$out/auth-build.log" \
    || { cat "$out/auth-build.log"; exit 1; }
rm -rf "$out/corpus-http1" "$out/corpus-auth"
python3 Fuzz/seeds.py "$vectors" "$out/corpus-http1" "$out/corpus-auth"
for target in http1 auth; do
    echo "fuzzing $target for ${seconds}s"
    "$out/$target-fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$target-" "$out/corpus-$target" > "$out/$target.log" 2>&1 \
        || { tail -40 "$out/$target.log"; echo "fuzz target $target failed"; exit 1; }
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$target.log" | sed "s/^/  $target /"
done
