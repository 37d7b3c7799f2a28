#!/usr/bin/env bash
# make bench: iap-proxy beside nginx and HAProxy on one machine, loopback only.
#
# wrk drives each scenario in interleaved rounds (A B C D ... A B C D ...) for every connection
# count and body; the report gives per-scenario medians and per-round paired ratios.
#
# Scenarios (all in front of the same nginx origin serving /small (100 B) and /16k (16 KiB)):
#   direct             wrk -> origin
#   nginx              nginx reverse proxy, upstream keep-alive
#   haproxy            HAProxy, http-reuse always
#   haproxy-jwt        HAProxy with jwt_verify + claim checks, the same token on every request
#   haproxy-jwt-fresh  HAProxy with jwt_verify, a different token on every request
#   iap                iap-proxy serve, the same token on every request (its cache applies)
#   iap-fresh          iap-proxy serve, a different token on every request (restarted before each
#                      run, and the pool is larger than the requests of a run: no cache hits)
#   iap-policy         iap like the above with a large policy: 50 routes and a 10,000-entry
#                      allowlist, the request matching the last route and entry (compare with iap)
#
# Usage: bench/run.sh [--quick] [--rounds N] [--duration S] [--warmup S] [--conns "64 1000"]
#                     [--bodies "small 16k"] [--scenarios "direct nginx ..."] [--retries N] [--no-build]
# --quick is --rounds 2 --duration 2 --warmup 1 --bodies small --retries 0 (about 2 minutes).
# Defaults: 5 rounds, 10 s measured after a 2 s warm-up, 64 and 1000 connections, both bodies.
# The same settings can come from the environment: ROUNDS DURATION WARMUP CONNS BODIES SCENARIOS
# NO_BUILD WRK_THREADS FRESH_POOL (tokens per measured run) IAP_PROXY (binary) KEEP_TMP
# NGINX_UPSTREAM_KEEPALIVE IAP_ACCESS_LOG (file for iap-proxy's access log; default /dev/null)
# BENCH_NICE (e.g. -10: servers and wrk get the CPU before other tenants' jobs; default 0).
#
# Noise: a run during which other processes, or other machines as steal time, used more than
# NOISE_MAX % (default 10) of the servers' core (or starved wrk on its core) is measured again, up
# to RETRIES (default 2) times; every attempt is kept in attempts.csv, and a run still noisy after
# that is flagged in the report.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

ALL_SCENARIOS="direct nginx haproxy haproxy-jwt iap iap-policy haproxy-jwt-fresh iap-fresh"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64 1000}
BODIES=${BODIES:-small 16k}
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
WRK_THREADS=${WRK_THREADS:-1}
NOISE_MAX=${NOISE_MAX:-10}   # % of a core used by others during a run before it counts as noisy
RETRIES=${RETRIES:-2}        # extra attempts for a noisy run
while [ $# -gt 0 ]; do
    case $1 in
        --quick) ROUNDS=2 DURATION=2 WARMUP=1 BODIES=small RETRIES=${RETRIES_SET:-0} ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --bodies) BODIES=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --retries) RETRIES=$2 RETRIES_SET=$2; shift ;;
        --no-build) NO_BUILD=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
for s in $SCENARIOS; do [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario $s"; done
# nginx's idle upstream pool defaults to the largest connection count: with `keepalive 64` and
# 1000 clients nginx opens and closes origin connections all the time (about 30% slower here),
# which would flatter every ratio against it. NGINX_UPSTREAM_KEEPALIVE=64 restores that setup.
max_conns=$(printf '%s\n' $CONNS 64 | sort -n | tail -1)
export NGINX_UPSTREAM_KEEPALIVE=${NGINX_UPSTREAM_KEEPALIVE:-$max_conns}
for b in $BODIES; do [[ $b == small || $b == 16k ]] || die "unknown body $b (small, 16k)"; done
[[ $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] \
    || die "rounds, duration and warm-up are whole numbers >= 1 (wrk takes whole seconds)"

bench_init
install_bench_deps
cpu_layout
build_iap_proxy
stage_iap_proxy

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$BENCH_DIR/results/$STAMP"
mkdir -p "$OUT"
machine_facts | tee "$OUT/environment.txt"

# ---------------------------------------------------------------- which scenarios can run
IAP_NOTE=""
if ! iap_serve_available; then
    IAP_NOTE="iap-proxy serve not available"
    kept=""
    for s in $SCENARIOS; do
        if [[ $s == iap* ]]; then log "bench: SKIPPING $s: $IAP_NOTE ('$IAP_PROXY serve --help' does not describe serve)"
        else kept+="$s "; fi
    done
    SCENARIOS=$kept
fi
read -r -a SCEN <<<"$SCENARIOS"
[ ${#SCEN[@]} -gt 0 ] || die "no scenario left to run"
echo "scenarios: ${SCEN[*]}; connections: $CONNS; bodies: $BODIES; rounds: $ROUNDS; ${DURATION}s measured after ${WARMUP}s warm-up; wrk -t$WRK_THREADS; nginx upstream keepalive $NGINX_UPSTREAM_KEEPALIVE" \
    | tee -a "$OUT/environment.txt"
has() { [[ " ${SCEN[*]} " == *" $1 "* ]]; }
needs_fresh() { has iap-fresh || has haproxy-jwt-fresh; }

# ---------------------------------------------------------------- setup
make_content
make_keys
mint_check_tokens

read -r P_ORIGIN P_NGINX P_HAPROXY P_HJWT P_IAP P_IAPF P_IAPP <<<"$(free_ports 7)"
start_origin "$P_ORIGIN"
PORT_OF[direct]=$P_ORIGIN
PID_OF[direct]=${PID_OF[origin]}
has nginx && start_nginx_proxy "$P_NGINX" "$P_ORIGIN"
has haproxy && start_haproxy haproxy "$P_HAPROXY" "$P_ORIGIN" 0
if has haproxy-jwt || has haproxy-jwt-fresh; then
    start_haproxy haproxy-jwt "$P_HJWT" "$P_ORIGIN" 1
    PORT_OF[haproxy-jwt-fresh]=$P_HJWT
fi
has iap && start_iap iap "$P_IAP" "$P_ORIGIN"
has iap-fresh && start_iap iap-fresh "$P_IAPF" "$P_ORIGIN"
has iap-policy && start_iap iap-policy "$P_IAPP" "$P_ORIGIN" "$(large_policy)"

# Every backend serves both bodies intact; the verifying ones refuse every bad token.
for s in origin nginx haproxy haproxy-jwt iap iap-fresh iap-policy; do
    [ -n "${PID_OF[$s]:-}" ] || continue
    http_check "$s" /small "$BENCH_TMP/tok-valid" 200 "$SMALL_BYTES" || die "$s does not serve /small"
    http_check "$s" /16k "$BENCH_TMP/tok-valid" 200 "$LARGE_BYTES" || die "$s does not serve /16k"
done
if [ -n "${PID_OF[haproxy-jwt]:-}" ]; then
    printf 'haproxy-jwt rejects: ' >&2; check_auth haproxy-jwt 403
fi
for s in iap iap-fresh iap-policy; do
    [ -n "${PID_OF[$s]:-}" ] || continue
    printf '%s rejects: ' "$s" >&2; check_auth "$s" '401|403'
done

# ---------------------------------------------------------------- tokens
# Tokens live 600 s (IAP's lifetime, enforced by both verifiers), so they are re-minted before a
# run that could outlive them. The fresh pool is sized from this core's raw P-256 verify rate:
# a one-core proxy cannot verify faster than OpenSSL itself, so the pool outlasts a run.
TOKEN_MAX_AGE=$((600 - WARMUP - DURATION - 60))
[ "$TOKEN_MAX_AGE" -gt 30 ] || die "runs too long for 600 s tokens"
STATIC_AT=0
POOL_AT=0
if needs_fresh; then
    if [ -z "${FRESH_POOL:-}" ]; then
        # The best of two 1 s measurements, so a noisy second does not shrink the pool.
        vrate=$(for _ in 1 2; do taskset -c "$SERVER_CPU" openssl speed -seconds 1 ecdsap256 2>/dev/null \
            | awk '/ecdsa \(nistp256\)/ {print int($NF)}'; done | sort -n | tail -1)
        [ -n "$vrate" ] || vrate=30000
        FRESH_POOL=$(( vrate * DURATION * 3 / 2 + 1000 ))
        WARM_POOL=$(( vrate * WARMUP * 3 / 2 + 1000 ))
        echo "openssl verify rate on CPU $SERVER_CPU: $vrate/s -> fresh pool $FRESH_POOL tokens per measured run, $WARM_POOL for warm-up" \
            | tee -a "$OUT/environment.txt"
    fi
    WARM_POOL=${WARM_POOL:-$FRESH_POOL}
fi
POOL_GEN=0
refresh_tokens() { # static|pool
    local now
    now=$(date +%s)
    if [ "$1" = static ] && [ $((now - STATIC_AT)) -gt "$TOKEN_MAX_AGE" ]; then
        mint "$BENCH_TMP/tok-static" 1 valid 0
        STATIC_AT=$now
    elif [ "$1" = pool ] && [ $((now - POOL_AT)) -gt "$TOKEN_MAX_AGE" ]; then
        log "bench: minting $((WARM_POOL + FRESH_POOL)) fresh tokens"
        # A new user-number range each time, so no pool repeats a payload of an earlier one.
        POOL_GEN=$((POOL_GEN + 1))
        mint "$BENCH_TMP/tok-warm" "$WARM_POOL" valid $((POOL_GEN * 10000000))
        mint "$BENCH_TMP/tok-pool" "$FRESH_POOL" valid $((POOL_GEN * 10000000 + 5000000))
        POOL_AT=$(date +%s)
    fi
}

# ---------------------------------------------------------------- one run
CSV="$OUT/runs.csv"
echo "conns,body,round,attempt,scenario,rps,requests,duration_us,p50_us,p90_us,p99_us,max_us,bytes_per_req,cpu_us_per_req,origin_cpu_us_per_req,cpu0_busy_pct,cpu0_other_pct,cpu0_steal_pct,cpu1_busy_pct,wrk_cpu_pct,cpu1_other_pct,err_connect,err_read,err_write,err_status,err_timeout,tokens_sent,token_pool,token_reuse,origin_conns,flag" | tee "$OUT/attempts.csv" >"$CSV"

# utime+stime of this shell's reaped children (fields 16, 17): wrk's CPU time once it has exited.
child_ticks() {
    local s f
    s=$(cat /proc/$$/stat)
    s=${s##*) }
    read -r -a f <<<"$s"
    echo $((f[13] + f[14]))
}

cpu_line() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8, $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

wrk_run() { # mode token-file conns seconds url
    BENCH_WRK_MODE=$1 BENCH_WRK_TOKENS=$2 BENCH_WRK_THREADS=$WRK_THREADS \
        nice -n "${BENCH_NICE:-0}" taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$3" -d"$4s" --timeout 10s -s "$WRK_LUA" "$5"
}

measure_once() { # scenario conns body round attempt -> ROW (a CSV line) and NOISY (0/1)
    local s=$1 c=$2 body=$3 rd=$4 attempt=$5 mode tokens warm_tokens server url out
    server=${s%-fresh}
    case $s in
        direct|nginx|haproxy|haproxy-jwt|iap|iap-policy) mode=static; tokens=$BENCH_TMP/tok-static; warm_tokens=$tokens ;;
        *-fresh) mode=pool; tokens=$BENCH_TMP/tok-pool; warm_tokens=$BENCH_TMP/tok-warm ;;
    esac
    refresh_tokens "$mode"
    if [ "$s" = iap-fresh ]; then
        # A cold verified-token cache for every run: the pool is reused across rounds.
        stop_server iap-fresh
        start_iap iap-fresh "${PORT_OF[iap-fresh]}" "$P_ORIGIN"
        server=iap-fresh
    fi
    url="http://127.0.0.1:${PORT_OF[$server]}/$body"

    check_alive origin "$server"
    wrk_run "$mode" "$warm_tokens" "$c" "$WARMUP" "$url" >"$BENCH_TMP/warmup.out" 2>&1 \
        || { cat "$BENCH_TMP/warmup.out" >&2; die "wrk warm-up failed for $s"; }

    local pids opids t0 t1 o0 o1 c0a c1a c0b c1b w0 w1 k0 k1 a0 a1
    read -r -a pids <<<"$(server_pids "$server")"
    read -r -a opids <<<"$(server_pids origin)"
    a0=$(origin_accepts)
    c0a=$(cpu_line "$SERVER_CPU"); c1a=$(cpu_line "$CLIENT_CPU")
    t0=$(cpu_ticks "${pids[@]}"); o0=$(cpu_ticks "${opids[@]}"); k0=$(child_ticks); w0=$(date +%s%N)
    out=$(wrk_run "$mode" "$tokens" "$c" "$DURATION" "$url" 2>&1) || { echo "$out" >&2; die "wrk failed for $s"; }
    w1=$(date +%s%N); k1=$(child_ticks); t1=$(cpu_ticks "${pids[@]}"); o1=$(cpu_ticks "${opids[@]}")
    c0b=$(cpu_line "$SERVER_CPU"); c1b=$(cpu_line "$CLIENT_CPU")
    a1=$(origin_accepts)
    local oc=-1   # origin connections opened during the run (-1: stub_status unreadable)
    [[ $a0 =~ ^[0-9]+$ && $a1 =~ ^[0-9]+$ ]] && oc=$((a1 - a0 - 1))
    check_alive origin "$server"
    echo "=== $s c=$c body=$body round=$rd" >>"$OUT/wrk-output.txt"
    echo "$out" >>"$OUT/wrk-output.txt"

    local line
    line=$(grep '^WRKRESULT ' <<<"$out") || { echo "$out" >&2; die "no result line from wrk for $s"; }
    declare -A r=()
    local kv
    for kv in ${line#WRKRESULT }; do r[${kv%%=*}]=${kv#*=}; done
    local hz
    hz=$(getconf CLK_TCK)
    # shellcheck disable=SC2086
    set -- $c0a $c0b $c1a $c1b
    local row
    row=$(awk -v s="$s" -v c="$c" -v body="$body" -v rd="$rd" -v req="${r[requests]}" -v dur="${r[duration_us]}" \
        -v bytes="${r[bytes]}" -v p50="${r[p50_us]}" -v p90="${r[p90_us]}" -v p99="${r[p99_us]}" -v mx="${r[max_us]}" \
        -v oc="$oc" -v pt=$((t1 - t0)) -v ot=$((o1 - o0)) -v kt=$((k1 - k0)) -v hz="$hz" -v wall=$(( (w1 - w0) / 1000 )) \
        -v b0a="$1" -v s0a="$2" -v a0a="$3" -v b0b="$4" -v s0b="$5" -v a0b="$6" \
        -v b1a="$7" -v a1a="$9" -v b1b="${10}" -v a1b="${12}" \
        -v ec="${r[err_connect]}" -v er="${r[err_read]}" -v ew="${r[err_write]}" -v es="${r[err_status]}" \
        -v et="${r[err_timeout]}" -v ts="${r[tokens_sent]}" -v tp="${r[token_pool]}" -v tr="${r[token_reuse]}" \
        -v small="$SMALL_BYTES" -v large="$LARGE_BYTES" -v att="$attempt" -v noise="$NOISE_MAX" '
        BEGIN {
            us_tick = 1e6 / hz
            rps = req / (dur / 1e6)
            cpu = req ? pt * us_tick / req : 0
            ocpu = req ? ot * us_tick / req : 0
            busy0 = 100 * (b0b - b0a) / (a0b - a0a); steal0 = 100 * (s0b - s0a) / (a0b - a0a)
            busy1 = 100 * (b1b - b1a) / (a1b - a1a)
            ours = (s == "direct" ? ot : pt + ot) * us_tick
            other0 = busy0 - 100 * ours / wall; if (other0 < 0) other0 = 0
            wrkpct = 100 * kt * us_tick / wall
            other1 = busy1 - wrkpct; if (other1 < 0) other1 = 0
            bpr = req ? bytes / req : 0
            flag = ""
            if (ec + er + ew + es + et > 0) flag = sprintf("errors connect=%d read=%d write=%d status=%d timeout=%d", ec, er, ew, es, et)
            if (bpr < (body == "small" ? small : large)) flag = flag (flag ? " " : "") "short-responses"
            if (tr > 0) flag = flag (flag ? " " : "") "token-reuse"
            if (wrkpct > 90) flag = flag (flag ? " " : "") "client-bound"
            # Another tenant took the servers core (in this VM, or as steal time: the hypervisor ran
            # another machine on it, which also leaves our caches cold), or starved wrk on its core.
            noisy = (other0 + steal0 > noise || (other1 > noise && wrkpct + other1 > 90))
            if (noisy) flag = flag (flag ? " " : "") sprintf("noisy(other: core0 %.0f%% steal %.0f%% core1 %.0f%%)", other0, steal0, other1)
            printf "%d %s,%s,%s,%s,%s,%.1f,%d,%d,%d,%d,%d,%d,%.0f,%.2f,%.2f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%s\n",
                noisy, c, body, rd, att, s, rps, req, dur, p50, p90, p99, mx, bpr, (s == "direct" ? ocpu : cpu), ocpu,
                busy0, other0, steal0, busy1, wrkpct, other1, ec, er, ew, es, et, ts, tp, tr, oc, flag
        }')
    NOISY=${row%% *}
    ROW=${row#* }
}

# One scenario in one round: re-measured (up to RETRIES more times) while another tenant's load
# spoils it; every attempt is kept in attempts.csv, the last one goes into runs.csv.
run_one() { # scenario conns body round
    local attempt f
    for attempt in $(seq $((RETRIES + 1))); do
        measure_once "$@" "$attempt"
        echo "$ROW" >>"$OUT/attempts.csv"
        IFS=, read -r -a f <<<"$ROW"
        [ "$NOISY" = 1 ] && [ "$attempt" -le "$RETRIES" ] && { log "  $1: ${f[30]}: measuring again"; continue; }
        break
    done
    echo "$ROW" >>"$CSV"
    printf '  %-18s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %6.1f µs CPU/req  core0 %3.0f%% (other %2.0f%%)  wrk %3.0f%% (other %2.0f%%)  origin conns %s%s\n' \
        "${f[4]}" "${f[5]}" "$(awk -v x="${f[8]}" 'BEGIN{print x/1000}')" "$(awk -v x="${f[10]}" 'BEGIN{print x/1000}')" \
        "${f[13]}" "${f[15]}" "${f[16]}" "${f[19]}" "${f[20]}" "${f[29]}" "${f[30]:+  !! ${f[30]}}"
}

# ---------------------------------------------------------------- rounds
started=$(date +%s)
for c in $CONNS; do
    for body in $BODIES; do
        for rd in $(seq "$ROUNDS"); do
            echo "[$c connections, /$body, round $rd/$ROUNDS]"
            for s in "${SCEN[@]}"; do
                run_one "$s" "$c" "$body" "$rd"
            done
        done
    done
done
echo "elapsed: $(( $(date +%s) - started )) s"

# ---------------------------------------------------------------- report
{
    echo "# iap-proxy benchmark $STAMP"
    echo
    echo '```'
    cat "$OUT/environment.txt"
    echo '```'
    echo
    echo "Medians over rounds; ratios are computed within each round (same minute, same noise) and then"
    echo "median'ed. CPU µs/req is utime+stime of the process under test over the measured interval divided by"
    echo "the requests wrk completed (for direct, the origin's). core-0 'other' is busy time on the servers' core"
    echo "not charged to the proxy or the origin (interrupts, softirq, other tenants); core-1 'other' likewise"
    echo "beside wrk. A run with more than ${NOISE_MAX}% 'other' plus steal time on core 0, or 'other' on core 1"
    echo "while wrk was short of CPU, was"
    echo "measured again up to $RETRIES times (attempts.csv keeps all); runs still noisy are flagged below."
    echo "'origin conns opened' counts the connections the origin accepted during the measured run (from its"
    echo "stub_status): about 0 when a proxy's upstream keep-alive pool holds; for direct it is wrk's connections + 1."
    echo "iap-proxy writes its access log (always on) to ${IAP_ACCESS_LOG:-/dev/null}; nginx and HAProxy log nothing."
    [ -n "$IAP_NOTE" ] && echo && echo "**iap and iap-fresh skipped: $IAP_NOTE.**"
    echo
} >"$OUT/report.md"
tool report "$CSV" "$OUT/report.body.md" --skipped-note "$IAP_NOTE" >/dev/null
cat "$OUT/report.body.md" >>"$OUT/report.md"
rm -f "$OUT/report.body.md"
echo
cat "$OUT/report.md"
ln -sfn "$STAMP" "$BENCH_DIR/results/latest"
echo
echo "bench: wrote $OUT/report.md, runs.csv, wrk-output.txt, environment.txt"
flagged=$(awk -F, 'NR > 1 && $NF != "" {n++} END {print n + 0}' "$CSV")
[ "$flagged" -eq 0 ] || echo "bench: WARNING: $flagged runs were flagged (errors, short responses, token reuse, noise or a saturated wrk); see runs.csv"
