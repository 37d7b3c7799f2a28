#!/usr/bin/env bash
# RSS while streaming 1 GiB through the proxy: an upload with Content-Length, a chunked upload,
# and a download. VmRSS of the proxy is sampled every 0.2 s; flat means max − min < 16 MiB.
#
#   curl --(1 GiB)--> proxy --> nginx origin --(unbuffered)--> discard sink (counts the bytes)
#   curl <--(1 GiB)-- proxy <-- nginx origin (a 1 GiB sparse file)
#
# Usage: bench/stream.sh [--targets "iap"] [--size BYTES] [--no-build]
# Exits 1 when a transfer fails (wrong status or not every byte delivered).
# Targets: iap (default), nginx, haproxy (the latter two for comparison, or to test this script).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

TARGETS=${TARGETS:-iap}
SIZE=${STREAM_BYTES:-1073741824}
FLAT_KIB=$((16 * 1024))
while [ $# -gt 0 ]; do
    case $1 in
        --targets) TARGETS=$2; shift ;;
        --size) SIZE=$2; shift ;;
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

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$BENCH_DIR/results/$STAMP-stream"
mkdir -p "$OUT"
machine_facts | tee "$OUT/environment.txt"

make_content
truncate -s "$SIZE" "$BENCH_TMP/www/big"   # sparse: no disk, reads as zeros
chmod 644 "$BENCH_TMP/www/big"
make_keys
mint "$BENCH_TMP/tok-valid" 1
TOKEN=$(head -1 "$BENCH_TMP/tok-valid")

read -r P_SINK P_ORIGIN P_PROXY <<<"$(free_ports 3)"
start_server sink "$P_SINK" "$SERVER_CPU" "$PY" "$TOOL" sink "$P_SINK"
start_origin "$P_ORIGIN" "$P_SINK"

# sample_rss FILE PIDS... : VmRSS (KiB) every 0.2 s until the sampler is killed.
sample_rss() {
    local file=$1
    shift
    while :; do rss_kib "$@" >>"$file"; sleep 0.2; done
}

# transfer NAME PHASE CURL-ARGS... : run one transfer while sampling; append a result row.
rows=()
FAILED=0
transfer() {
    local name=$1 phase=$2 samples="$BENCH_TMP/$1-$2.rss" pids sampler got t0 t1
    shift 2
    read -r -a pids <<<"$(server_pids "$name")"
    local before
    before=$(rss_kib "${pids[@]}")
    : >"$samples"
    sample_rss "$samples" "${pids[@]}" &
    sampler=$!
    BENCH_PIDS+=("$sampler")
    t0=$(date +%s%N)
    got=$(taskset -c "$CLIENT_CPU" curl -sS --max-time 600 -H "x-goog-iap-jwt-assertion: $TOKEN" -H 'Expect:' \
        -w '\nRESULT %{http_code} %{size_download}' "$@") || got="curl failed"
    t1=$(date +%s%N)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    forget_pid "$sampler"
    local after
    after=$(rss_kib "${pids[@]}")
    check_alive "$name"
    # upload: the response body is the sink's byte count; download: curl's size_download.
    local body status down
    body=$(head -1 <<<"$got")
    read -r _ status down <<<"$(grep '^RESULT ' <<<"$got" || echo "RESULT 000 0")"
    local ok=yes moved
    case $phase in
        download) moved=$down; [ "$status" = 200 ] && [ "$down" = "$SIZE" ] || ok=no ;;
        *) [[ $body =~ ^[0-9]+$ ]] && moved=$body || moved=0
           [ "$status" = 200 ] && [ "$moved" = "$SIZE" ] || ok=no ;;
    esac
    echo "$after" >>"$samples"
    local stats
    stats=$(sort -n "$samples" | awk -v b="$before" -v f="$after" -v flat="$FLAT_KIB" -v ms=$(( (t1 - t0) / 1000000 )) \
        -v bytes="${moved:-0}" '
        NR == 1 {min = $1} {max = $1; n++}
        END {
            if (b < min) min = b
            printf "%d|%d|%d|%d|%d|%.0f|%s", b / 1024, min / 1024, max / 1024, f / 1024, n,
                bytes / 1048576 / (ms / 1000), (max - min < flat ? "flat" : "NOT flat")
        }')
    IFS='|' read -r b_mib min_mib max_mib f_mib n rate verdict <<<"$stats"
    [ "$ok" = yes ] || { verdict="FAILED (status ${status:-?}; $moved of $SIZE bytes delivered)"; FAILED=1; }
    rows+=("| $name | $phase | $b_mib | $min_mib | $max_mib | $f_mib | $((max_mib - min_mib)) | $rate | $n | $verdict |")
    printf '  %-8s %-22s RSS before %4s MiB, min %4s, max %4s, after %4s MiB; %5s MiB/s; %s\n' \
        "$name" "$phase" "$b_mib" "$min_mib" "$max_mib" "$f_mib" "$rate" "$verdict"
}

for t in $TARGETS; do
    case $t in
        iap)
            if ! iap_serve_available; then
                log "bench: SKIPPING iap: iap-proxy serve not available"
                rows+=("| iap | – | | | | | | | | skipped: iap-proxy serve not available |")
                continue
            fi
            start_iap iap "$P_PROXY" "$P_ORIGIN" ;;
        nginx) start_nginx_proxy "$P_PROXY" "$P_ORIGIN" ;;
        haproxy) start_haproxy haproxy "$P_PROXY" "$P_ORIGIN" 0 ;;
        *) die "unknown target $t (iap, nginx, haproxy)" ;;
    esac
    http_check "$t" /small "$BENCH_TMP/tok-valid" 200 "$SMALL_BYTES" || die "$t does not serve /small"
    url="http://127.0.0.1:${PORT_OF[$t]}"
    echo "[$t]"
    transfer "$t" "upload content-length" -T "$BENCH_TMP/www/big" "$url/upload"
    # From a pipe curl cannot know the length, so it sends Transfer-Encoding: chunked.
    transfer "$t" "upload chunked" -T - "$url/upload" <"$BENCH_TMP/www/big"
    transfer "$t" "download" -o /dev/null "$url/big"
    stop_server "$t"
    P_PROXY=$(free_ports 1)
done

{
    echo "# Streaming $((SIZE / 1048576)) MiB through the proxy: RSS ($STAMP)"
    echo
    echo '```'
    cat "$OUT/environment.txt"
    echo '```'
    echo
    echo "| proxy | transfer | RSS before MiB | min MiB | max MiB | after MiB | max − min MiB | MiB/s | samples | verdict (flat: max − min < 16 MiB) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Uploads go through the nginx origin unbuffered to a sink that counts the body bytes; an upload"
    echo "passes only if all $SIZE bytes arrived. VmRSS is sampled every 0.2 s (nginx: master + worker)."
} >"$OUT/report.md"
echo
cat "$OUT/report.md"
echo
echo "bench: wrote $OUT/report.md"
[ "$FAILED" = 0 ] || { log "bench: some transfers failed (see the verdicts): the RSS numbers of those do not count"; exit 1; }
