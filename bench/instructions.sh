#!/usr/bin/env bash
# make bench-instructions: user-space instructions per proxied request, counted by Valgrind
# (callgrind), for nginx and HAProxy as plain reverse proxies, HAProxy with jwt_verify, and
# iap-proxy verifying a token (a cached one, as a browser's repeated requests are); optionally
# haproxy-jwt-fresh and iap-fresh, a different token on every request (full ECDSA each time).
#
# The count is exact and repeatable: no clock, no other tenants. So it shows a change of a few per
# cent in iap-proxy's own code, which the timed runs of run.sh on a shared 2-core machine cannot
# resolve. It leaves out the kernel (socket reads and writes: over half of a proxy's CPU per small
# request), and an instruction is not a cycle: run.sh stays the measure of speed; this one shows
# where our user-space work goes (callgrind_annotate on the kept output files).
#
# Each server runs under callgrind, gets a warm-up, has its counters zeroed, serves wrk for the
# measured seconds (8 connections), and is dumped; instructions / requests wrk completed.
# Usage: bench/instructions.sh [--seconds S] [--no-build]
#            [--scenarios "nginx haproxy haproxy-jwt iap"]   (also: haproxy-jwt-fresh iap-fresh)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

SECONDS_MEASURED=10
SCENARIOS="nginx haproxy haproxy-jwt iap"
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECONDS_MEASURED=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --no-build) NO_BUILD=1 ;;
        *) die "unknown argument $1 (see the header of $0)" ;;
    esac
    shift
done

bench_init
install_bench_deps
"$REPO_DIR/scripts/install-deps.sh" valgrind || die "could not install valgrind"
build_iap_proxy
stage_iap_proxy
strip --strip-debug "$IAP_PROXY"  # Valgrind cannot read Swift's DWARF; the symbol table suffices
cpu_layout
make_content
make_keys
mint "$BENCH_TMP/token" 1 valid 0
TOKEN=$(head -1 "$BENCH_TMP/token")
# Fresh tokens: under Valgrind a verification takes milliseconds, so a few thousand outlast a run.
if [[ " $SCENARIOS " == *-fresh* ]]; then
    mint "$BENCH_TMP/tok-warm" 2000 valid 1000000
    mint "$BENCH_TMP/tok-pool" 20000 valid 2000000
fi

OUT="$BENCH_DIR/results/$(date -u +%Y%m%d-%H%M%S)-instructions"
mkdir -p "$OUT"
read -r P_ORIGIN P_PROXY < <(free_ports 2)
start_origin "$P_ORIGIN"

# Servers start slowly under Valgrind. nginx runs as one process (no master), so the process
# callgrind counts is the one serving.
WAIT_PORT_SECONDS=60
NGINX_MASTER_PROCESS=off

total_instructions() { # files...: the sum of their `totals:` lines
    awk '/^totals:/ {sum += $2} END {printf "%.0f", sum}' "$@"
}

echo "| scenario | requests | user-space instructions / request | × nginx |" >"$OUT/report.md"
echo "|---|---:|---:|---:|" >>"$OUT/report.md"
nginx_per_request=""
for scenario in $SCENARIOS; do
    SERVER_WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$scenario.%p")
    header=()
    wrk_args=()
    [[ $scenario == *-fresh ]] && wrk_args=(-s "$WRK_LUA")
    case $scenario in
        nginx) start_nginx_proxy "$P_PROXY" "$P_ORIGIN" ;;
        haproxy) start_haproxy haproxy "$P_PROXY" "$P_ORIGIN" 0 ;;
        haproxy-jwt) start_haproxy haproxy-jwt "$P_PROXY" "$P_ORIGIN" 1; header=(-H "x-goog-iap-jwt-assertion: $TOKEN") ;;
        iap) start_iap iap "$P_PROXY" "$P_ORIGIN"; header=(-H "x-goog-iap-jwt-assertion: $TOKEN") ;;
        haproxy-jwt-fresh) start_haproxy "$scenario" "$P_PROXY" "$P_ORIGIN" 1 ;;
        iap-fresh) start_iap "$scenario" "$P_PROXY" "$P_ORIGIN" ;;
        *) die "unknown scenario $scenario" ;;
    esac
    unset SERVER_WRAPPER
    url="http://127.0.0.1:$P_PROXY/small"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-goog-iap-jwt-assertion: $TOKEN" "$url")" = 200 ] \
        || die "$scenario did not answer 200"
    BENCH_WRK_MODE=pool BENCH_WRK_TOKENS=$BENCH_TMP/tok-warm BENCH_WRK_THREADS=1 \
        taskset -c "$CLIENT_CPU" wrk -t1 -c8 -d2s "${wrk_args[@]}" "${header[@]}" "$url" >/dev/null
    callgrind_control -z >/dev/null 2>&1
    BENCH_WRK_MODE=pool BENCH_WRK_TOKENS=$BENCH_TMP/tok-pool BENCH_WRK_THREADS=1 \
        taskset -c "$CLIENT_CPU" wrk -t1 -c8 -d"${SECONDS_MEASURED}s" "${wrk_args[@]}" "${header[@]}" "$url" >"$OUT/wrk.$scenario.txt"
    callgrind_control -d >/dev/null 2>&1
    requests=$(awk '/requests in/ {print $1}' "$OUT/wrk.$scenario.txt")
    grep -q "Non-2xx" "$OUT/wrk.$scenario.txt" && die "$scenario answered non-2xx responses (see $OUT/wrk.$scenario.txt)"
    stop_server "$scenario"
    # The dumps taken by callgrind_control carry a number after the pid; the files written at exit do not.
    instructions=$(total_instructions "$OUT"/callgrind."$scenario".*.[0-9]*)
    per_request=$(( instructions / requests ))
    [ "$scenario" = nginx ] && nginx_per_request=$per_request
    ratio=$([ -n "$nginx_per_request" ] && awk -v a="$per_request" -v b="$nginx_per_request" 'BEGIN {printf "%.2f", a / b}' || echo "-")
    echo "| $scenario | $requests | $per_request | $ratio |" >>"$OUT/report.md"
    log "bench: $scenario: $per_request instructions per request ($requests requests)"
done
cat "$OUT/report.md"
echo "callgrind output kept in $OUT (callgrind_annotate FILE)"
