#!/usr/bin/env bash
# RSS per idle keep-alive connection: hold N connections (default 10,000) open to a proxy, each
# after one complete request with a valid token, and compare the proxy's VmRSS before and after.
# iap-proxy (target: <= 2 KiB per connection) beside nginx as a reverse proxy.
#
# Usage: bench/idle-conns.sh [--conns N] [--targets "iap nginx"] [--no-build]
# Kernel socket buffers are not in RSS; the report prints the kernel's TCP memory change alongside.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

N=${IDLE_CONNS:-10000}
TARGETS=${TARGETS:-iap nginx}
while [ $# -gt 0 ]; do
    case $1 in
        --conns) N=$2; shift ;;
        --targets) TARGETS=$2; shift ;;
        --no-build) NO_BUILD=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

bench_init
install_bench_deps
cpu_layout
build_iap_proxy
stage_iap_proxy
# Each held connection is one descriptor in the client and one in the proxy.
[ "$(ulimit -n)" -gt $((N + 500)) ] || die "open-file limit $(ulimit -n) is too low for $N connections (hard limit $(ulimit -Hn))"

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$BENCH_DIR/results/$STAMP-idle"
mkdir -p "$OUT"
machine_facts | tee "$OUT/environment.txt"

make_content
make_keys
mint "$BENCH_TMP/tok-valid" 1

read -r P_ORIGIN P_NGINX P_IAP <<<"$(free_ports 3)"
start_origin "$P_ORIGIN"
results=()
for t in $TARGETS; do
    case $t in
        nginx) NGINX_UPSTREAM_KEEPALIVE=64 start_nginx_proxy "$P_NGINX" "$P_ORIGIN" ;;
        iap)
            if ! iap_serve_available; then
                log "bench: SKIPPING iap: iap-proxy serve not available"
                results+=("| iap | skipped: iap-proxy serve not available | | | | | |")
                continue
            fi
            start_iap iap "$P_IAP" "$P_ORIGIN" ;;
        *) die "unknown target $t (iap, nginx)" ;;
    esac
    http_check "$t" /small "$BENCH_TMP/tok-valid" 200 "$SMALL_BYTES" || die "$t does not serve /small"
    pids=$(server_pids "$t" | tr ' ' ',')
    log "bench: holding $N idle keep-alive connections to $t (pids $pids)"
    out=$(tool hold --name "$t" --port "${PORT_OF[$t]}" --pids "$pids" --count "$N" \
        --token-file "$BENCH_TMP/tok-valid" --path /small) || die "holding connections to $t failed"
    echo "$out" | grep -v '^RESULT' | tee -a "$OUT/idle.txt"
    read -r _ name held before after later per alive non200 <<<"$(grep '^RESULT' <<<"$out")"
    verdict=""
    [ "$t" = iap ] && verdict=$(awk -v x="$per" 'BEGIN {print (x <= 2 ? "met (≤ 2 KiB)" : "NOT met (≤ 2 KiB)")}')
    results+=("| $name | $held | $((before / 1024)) | $((after / 1024)) | $((later / 1024)) | $per | $alive still open, $non200 non-200 $verdict |")
    stop_server "$t"
done

{
    echo "# Idle keep-alive connections: RSS per connection ($STAMP)"
    echo
    echo '```'
    cat "$OUT/environment.txt"
    echo '```'
    echo
    echo "| proxy | connections held | RSS before MiB | RSS held MiB | RSS held +2 s MiB | KiB per connection | notes |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${results[@]}"
    echo
    echo "Each connection completed one GET /small (100 B) with a valid token before being held idle;"
    echo "RSS is VmRSS summed over the proxy's processes (nginx: master + worker), measured after a"
    echo "warm-up batch, so per-connection = (held − before) / connections."
} >"$OUT/report.md"
echo
cat "$OUT/report.md"
echo
echo "bench: wrote $OUT/report.md"
