#!/usr/bin/env bash
# make bench-verify: full IAP verifications per second (a fresh token each time, no cache) next
# to OpenSSL's own P-256 verify rate, on one core, in interleaved rounds. Rates are per second of
# CPU time, the divisor `openssl speed` uses by default.
#
# Two references each round:
#   openssl speed   `openssl speed -seconds S ecdsap256`, run after verify-bench (the issue's
#                   reference; separate runs, so other tenants' noise moves the ratio ±10 % here)
#   in-process      verify-bench's own EVP_PKEY_verify loop, as `openssl speed` runs it, alternating
#                   with the token verifications in batches of 1000 (~0.1 s; the precise ratio)
# Usage: bench/verify.sh [rounds] [seconds-per-run]
set -euo pipefail
rounds=${1:-7}
seconds=${2:-3}
cd "$(dirname "$0")/.."
swift build -c release --product verify-bench >/dev/null
bench=.build/release/verify-bench
cpu=$(( $(nproc) > 1 ? 1 : 0 ))
ours=()
theirs=()
paired=()
for round in $(seq "$rounds"); do
    read -r rate reference < <(taskset -c "$cpu" "$bench" "$seconds")
    ours+=("$rate")
    paired+=("$(awk -v a="$rate" -v b="$reference" 'BEGIN {printf "%.3f", a / b}')")
    theirs+=("$(taskset -c "$cpu" openssl speed -seconds "$seconds" ecdsap256 2>/dev/null | awk '/ecdsa \(nistp256\)/ {print int($NF)}')")
    echo "round $round: iap-proxy ${ours[-1]} verify/s, openssl speed ${theirs[-1]} verify/s;" \
        "in-process EVP_PKEY_verify $reference verify/s (ratio ${paired[-1]})"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_ours=$(median "${ours[@]}")
m_theirs=$(median "${theirs[@]}")
echo "median: iap-proxy $m_ours verify/s (full token verification), openssl speed ecdsap256 $m_theirs verify/s"
ratios=()
for i in "${!ours[@]}"; do ratios+=("$(awk -v a="${ours[$i]}" -v b="${theirs[$i]}" 'BEGIN {printf "%.3f", a / b}')"); done
echo "per-round ratios to openssl speed: ${ratios[*]}"
awk -v a="$m_ours" -v b="$m_theirs" -v p="$(median "${ratios[@]}")" -v q="$(median "${paired[@]}")" 'BEGIN {
    printf "openssl speed: ratio of medians %.3f, median of per-round ratios %.3f (target >= 0.9)\n", a / b, p
    printf "in-process, paired batches: median ratio %.3f of OpenSSL'"'"'s own verify rate (target >= 0.9)\n", q }'
