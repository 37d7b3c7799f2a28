# Shared pieces of bench/run.sh, bench/idle-conns.sh and bench/stream.sh (sourced, not run).
# Every server here is ours: started in the foreground under a temp dir, on 127.0.0.1 and a free
# port, recorded in BENCH_PIDS and stopped by the EXIT trap. No system service is used.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
TOOL="$BENCH_DIR/lib/benchtool.py"
WRK_LUA="$BENCH_DIR/lib/wrk.lua"
IAP_PROXY=${IAP_PROXY:-$REPO_DIR/.build/release/iap-proxy}
AUDIENCE=/projects/123456789/global/backendServices/987654321
KID=bench-1
HD=example.com
SMALL_BYTES=100
LARGE_BYTES=16384

declare -a BENCH_PIDS=()
declare -A PID_OF=()     # server name -> pid of the process we started
declare -A PORT_OF=()    # server name -> its port
BENCH_TMP=""

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: error: $*"; exit 1; }

# Python with `cryptography` for the token minter; plain python3 for everything else.
pick_python() {
    PY=python3
    if ! "$PY" -c 'import cryptography' 2>/dev/null; then
        if /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then
            PY=/usr/bin/python3
        else
            "$REPO_DIR/scripts/install-deps.sh" python3-cryptography
            PY=/usr/bin/python3
            "$PY" -c 'import cryptography' || die "no python3 with the 'cryptography' package"
        fi
    fi
}
tool() { "$PY" "$TOOL" "$@"; }

bench_init() {
    BENCH_TMP=$(mktemp -d /tmp/iap-bench.XXXXXX)
    chmod 755 "$BENCH_TMP"   # nginx workers run as nobody and read the bodies from here
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Hold many sockets (10,000 idle connections; 1,000 wrk connections). The hard limit is the cap.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    pick_python
}

bench_cleanup() {
    local rc=$? pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
        if [ "$rc" -ne 0 ] || [ -n "${KEEP_TMP:-}" ]; then
            log "bench: logs and configs kept in $BENCH_TMP"
        else
            rm -rf "$BENCH_TMP"
        fi
    fi
    exit "$rc"
}

# Install nginx, HAProxy, wrk and curl when missing. If the packages' install scripts started
# their system services, stop them: we run our own instances and leave nothing behind.
install_bench_deps() {
    local pkgs=(nginx-light haproxy wrk curl) fresh=() p
    for p in nginx-light haproxy; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fresh+=("$p")
    done
    "$REPO_DIR/scripts/install-deps.sh" "${pkgs[@]}" || die "could not install ${pkgs[*]}"
    for p in "${fresh[@]}"; do
        local svc=${p%-light}
        if service "$svc" status >/dev/null 2>&1; then
            log "bench: stopping the $svc system service that installing $p started"
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
    for p in nginx haproxy wrk curl taskset; do command -v "$p" >/dev/null || die "$p not found"; done
}

# CPU layout: origin + proxy under test on one core, wrk on another.
cpu_layout() {
    local n
    n=$(nproc)
    SERVER_CPU=0
    if [ "$n" -ge 2 ]; then CLIENT_CPU=1; else CLIENT_CPU=0; log "bench: WARNING: 1 core, wrk shares it with the servers"; fi
}

machine_facts() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm); cores: $(nproc); model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "layout: origin + proxy pinned to CPU $SERVER_CPU, wrk pinned to CPU $CLIENT_CPU; nice ${BENCH_NICE:-0}"
    echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "haproxy: $(haproxy -v | head -1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "openssl: $(openssl version)"
    echo "iap-proxy: ${IAP_PROXY_SOURCE:-$IAP_PROXY} sha256 $(sha256sum "$IAP_PROXY" | cut -c1-12) ($(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO_DIR" && git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ', uncommitted changes in Sources'))"
}

# Build the proxy unless told not to (NO_BUILD=1 or --no-build).
build_iap_proxy() {
    if [ -n "${NO_BUILD:-}" ]; then return 0; fi
    log "bench: swift build -c release --product iap-proxy"
    (cd "$REPO_DIR" && swift build -c release --product iap-proxy >"$BENCH_TMP/build.log" 2>&1) \
        || { tail -30 "$BENCH_TMP/build.log" >&2; die "iap-proxy build failed (use --no-build to bench an existing binary)"; }
}

# Run a private copy, so a rebuild during the benchmark cannot swap the binary under a running
# process or change what is measured halfway.
stage_iap_proxy() {
    [ -x "$IAP_PROXY" ] || die "no iap-proxy binary at $IAP_PROXY"
    IAP_PROXY_SOURCE=$IAP_PROXY
    cp "$IAP_PROXY" "$BENCH_TMP/iap-proxy"
    IAP_PROXY=$BENCH_TMP/iap-proxy
}

# `serve` exists when its help mentions --upstream (an unknown subcommand's --help prints the
# top-level help and still exits 0, so the exit code alone proves nothing).
iap_serve_available() {
    # grep without -q reads to the end: an early exit would SIGPIPE the help text (pipefail).
    [ -x "$IAP_PROXY" ] && "$IAP_PROXY" serve --help 2>&1 | grep -- '--upstream' >/dev/null
}

free_ports() { tool freeport "$1"; }

wait_port() { # name port
    tool waitport "$2" "${WAIT_PORT_SECONDS:-10}" 2>/dev/null && kill -0 "${PID_OF[$1]}" 2>/dev/null && return 0
    log "bench: $1 did not start listening on 127.0.0.1:$2; its log:"
    tail -20 "$BENCH_TMP/$1.log" >&2 || true
    die "$1 failed to start"
}

# start_server NAME PORT CPU COMMAND... : run in the background, pinned, logged; wait for the port.
# SERVER_WRAPPER (an array, e.g. a valgrind command line) goes in front of COMMAND when set.
start_server() {
    local name=$1 port=$2 cpu=$3
    shift 3
    nice -n "${BENCH_NICE:-0}" taskset -c "$cpu" ${SERVER_WRAPPER[@]+"${SERVER_WRAPPER[@]}"} "$@" \
        >"${SERVER_STDOUT:-$BENCH_TMP/$name.log}" 2>>"$BENCH_TMP/$name.log" &
    PID_OF[$name]=$!
    PORT_OF[$name]=$port
    echo "$name pid $! port $port" >>"$BENCH_TMP/pids.txt"
    BENCH_PIDS+=("$!")
    wait_port "$name" "$port"
}

stop_server() {
    local name=$1 pid=${PID_OF[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PID_OF[$name]"
    forget_pid "$pid"
}

# Drop a pid that has been reaped, so the exit trap never signals a recycled pid.
forget_pid() {
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# Fail loudly if a server we started has exited (crashed) since.
check_alive() {
    local name
    for name in "$@"; do
        [ -n "${PID_OF[$name]:-}" ] || continue
        kill -0 "${PID_OF[$name]}" 2>/dev/null && continue
        log "bench: $name (pid ${PID_OF[$name]}) has exited; the end of its log:"
        tail -20 "$BENCH_TMP/$name.log" >&2 || true
        die "$name died during the benchmark"
    done
}

# All pids of a server: the process we started and its children (nginx workers).
server_pids() {
    local pid=${PID_OF[$1]}
    echo "$pid" $(pgrep -P "$pid" 2>/dev/null || true)
}

# Sum of utime+stime, in clock ticks, over the given pids (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
    local total=0 pid s f
    for pid in "$@"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        s=${s##*) }           # the command name may contain spaces; the fields after it do not
        read -r -a f <<<"$s"  # f[0] is field 3 (state), so utime is f[11] and stime f[12]
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

rss_kib() {
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# --------------------------------------------------------------------------- content and keys

make_content() {
    mkdir -p "$BENCH_TMP/www" "$BENCH_TMP/nginx-temp"
    chmod 755 "$BENCH_TMP/www"
    head -c "$SMALL_BYTES" /dev/zero | tr '\0' 'a' >"$BENCH_TMP/www/small"
    head -c "$LARGE_BYTES" /dev/urandom >"$BENCH_TMP/www/16k"
    chmod 644 "$BENCH_TMP/www/"*
}

make_keys() {
    "$IAP_PROXY" keygen --out "$BENCH_TMP/keys" --kid "$KID" >/dev/null || die "iap-proxy keygen failed"
    openssl pkey -in "$BENCH_TMP/keys/private.pem" -pubout -out "$BENCH_TMP/keys/public.pem" 2>/dev/null \
        || die "openssl could not derive the public key"
    chmod 644 "$BENCH_TMP/keys/public.pem" "$BENCH_TMP/keys/jwks.json"
    echo "$HD" >"$BENCH_TMP/allowlist"
}

# mint FILE COUNT [VARIANT] [OFFSET]
mint() {
    tool mint --key "$BENCH_TMP/keys/private.pem" --kid "$KID" --audience "$AUDIENCE" --hd "$HD" \
        --count "$2" --variant "${3:-valid}" --offset "${4:-0}" --out "$1" || die "minting tokens failed"
}

# --------------------------------------------------------------------------- servers

nginx_common() { # name
    cat <<EOF
worker_processes 1;
daemon off;
master_process ${NGINX_MASTER_PROCESS:-on};
pid $BENCH_TMP/$1.pid;
error_log $BENCH_TMP/$1-error.log warn;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $(( $(ulimit -n) - 100 )); }
EOF
}

nginx_http_common() { # name
    cat <<EOF
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $BENCH_TMP/nginx-temp/$1-body;
    proxy_temp_path $BENCH_TMP/nginx-temp/$1-proxy;
    fastcgi_temp_path $BENCH_TMP/nginx-temp/$1-fastcgi;
    uwsgi_temp_path $BENCH_TMP/nginx-temp/$1-uwsgi;
    scgi_temp_path $BENCH_TMP/nginx-temp/$1-scgi;
EOF
}

start_nginx() { # name conf-file
    nginx -t -q -p "$BENCH_TMP" -e "$BENCH_TMP/$1-error.log" -c "$2" 2>"$BENCH_TMP/$1.log" \
        || { cat "$BENCH_TMP/$1.log" >&2; die "bad nginx config for $1"; }
    start_server "$1" "${PORT_OF[$1]}" "$SERVER_CPU" nginx -p "$BENCH_TMP" -e "$BENCH_TMP/$1-error.log" -c "$2"
}

# The origin: static files /small, /16k (and whatever else is in www), one worker. With a sink
# port, /upload is streamed (unbuffered) to that body-discarding server.
start_origin() { # port [sink-port]
    PORT_OF[origin]=$1
    {
        nginx_common origin
        echo "http {"
        nginx_http_common origin
        cat <<EOF
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        root $BENCH_TMP/www;
        client_max_body_size 0;
        location = /nginx_status { stub_status; }
EOF
        [ -n "${2:-}" ] && cat <<EOF
        location = /upload {
            proxy_pass http://127.0.0.1:$2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }
EOF
        cat <<EOF
    }
}
EOF
    } >"$BENCH_TMP/origin.conf"
    start_nginx origin "$BENCH_TMP/origin.conf"
}

# nginx as a plain reverse proxy with upstream keep-alive.
start_nginx_proxy() { # port origin-port
    PORT_OF[nginx]=$1
    {
        nginx_common nginx
        echo "http {"
        nginx_http_common nginx
        cat <<EOF
    upstream origin {
        server 127.0.0.1:$2;
        keepalive ${NGINX_UPSTREAM_KEEPALIVE:-64};
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        client_max_body_size 0;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }
    }
}
EOF
    } >"$BENCH_TMP/nginx.conf"
    start_nginx nginx "$BENCH_TMP/nginx.conf"
}

# HAProxy plain (no JWT rules) or with jwt_verify and the claim checks IAP needs.
haproxy_config() { # name port origin-port jwt(0|1)
    cat <<EOF
global
    nbthread 1
    maxconn ${HAPROXY_MAXCONN:-5000}
    hard-stop-after 3s

defaults
    mode http
    maxconn ${HAPROXY_MAXCONN:-5000}
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 30s
    timeout http-keep-alive 300s
    http-reuse always

frontend fe
    bind 127.0.0.1:$2
EOF
    if [ "$4" = 1 ]; then
        cat <<EOF
    # Same rules as iap-proxy: alg pinned to ES256, known kid, signature, iss, aud, exp/iat with
    # 30 s leeway, lifetime <= 600 s, and the hd claim on the allowlist. Every deny is a 403.
    http-request set-var(txn.jwt) req.hdr(x-goog-iap-jwt-assertion)
    http-request deny unless { var(txn.jwt) -m found }
    http-request deny unless { var(txn.jwt),jwt_header_query('\$.alg') -m str ES256 }
    http-request deny unless { var(txn.jwt),jwt_header_query('\$.kid') -m str $KID }
    http-request deny unless { var(txn.jwt),jwt_verify("ES256","$BENCH_TMP/keys/public.pem") -m int 1 }
    http-request deny unless { var(txn.jwt),jwt_payload_query('\$.iss') -m str https://cloud.google.com/iap }
    http-request deny unless { var(txn.jwt),jwt_payload_query('\$.aud') -m str $AUDIENCE }
    http-request set-var(txn.now) date()
    http-request set-var(txn.exp) var(txn.jwt),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.iat) var(txn.jwt),jwt_payload_query('\$.iat','int')
    http-request deny unless { var(txn.exp),add(30),sub(txn.now) gt 0 }
    http-request deny unless { var(txn.iat),sub(txn.now) le 30 }
    http-request deny unless { var(txn.exp),sub(txn.iat) le 600 }
    http-request deny unless { var(txn.jwt),jwt_payload_query('\$.hd') -m str $HD }
EOF
    fi
    cat <<EOF
    default_backend be

backend be
    server origin 127.0.0.1:$3
EOF
}

start_haproxy() { # name port origin-port jwt(0|1)
    PORT_OF[$1]=$2
    haproxy_config "$@" >"$BENCH_TMP/$1.cfg"
    haproxy -c -q -f "$BENCH_TMP/$1.cfg" >"$BENCH_TMP/$1.log" 2>&1 \
        || { cat "$BENCH_TMP/$1.log" >&2; die "bad HAProxy config for $1"; }
    start_server "$1" "$2" "$SERVER_CPU" haproxy -db -f "$BENCH_TMP/$1.cfg"
}

start_iap() { # name port origin-port [config-file]
    local admin policy=(--allowlist "$BENCH_TMP/allowlist")
    admin=$(free_ports 1)
    PORT_OF[$1]=$2
    [ -n "${4:-}" ] && policy=(--config "$4")
    # stdout is the access log (one JSON line per request, always on): /dev/null unless
    # IAP_ACCESS_LOG names a file. nginx and HAProxy run with logging off.
    SERVER_STDOUT=${IAP_ACCESS_LOG:-/dev/null} start_server "$1" "$2" "$SERVER_CPU" "$IAP_PROXY" serve --listen "127.0.0.1:$2" \
        --upstream "http://127.0.0.1:$3" --audience "$AUDIENCE" --jwks-file "$BENCH_TMP/keys/jwks.json" \
        "${policy[@]}" --admin-listen "127.0.0.1:$admin" --workers 1
}

# A config with 49 routes more specific than the catch-all (none matching /small or /16k) and a
# 10,000-entry allowlist (emails, domains, groups) whose last entry is the bench tokens' hd.
large_policy() {
    local dir=$BENCH_TMP/policy i
    mkdir -p "$dir"
    {
        for i in $(seq 1 8999); do echo "user$i@corp$((i % 97)).example"; done
        for i in $(seq 1 500); do echo "team$i.example"; done
        echo "$HD"
        echo "[group ops]"  # a section runs to the end of the file
        for i in $(seq 1 500); do echo "ops$i@ops.example"; done
    } >"$dir/allowlist.txt"
    {
        echo "routes:"
        for i in $(seq 1 49); do
            echo "  - { name: r$i, match: { path_prefix: /app$i/api }, allow: [ \"group:ops\", \"file:allowlist.txt\" ] }"
        done
        echo "  - { name: all, match: { path_prefix: / }, allow: [ \"file:allowlist.txt\" ] }"
    } >"$dir/config.yaml"
    echo "$dir/config.yaml"
}

# Connections the origin has accepted so far (its stub_status; this request is one of them).
origin_accepts() {
    curl -s --max-time 5 "http://127.0.0.1:${PORT_OF[origin]}/nginx_status" | awk 'NR == 3 {print $1}'
}

# --------------------------------------------------------------------------- checks

# http_check NAME PATH TOKEN-FILE|- EXPECTED-STATUS [EXPECTED-BYTES]
http_check() {
    local name=$1 path=$2 tokfile=$3 want=$4 bytes=${5:-} hdr=() got
    [ "$tokfile" != - ] && hdr=(-H "x-goog-iap-jwt-assertion: $(head -1 "$tokfile")")
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "${hdr[@]}" \
        "http://127.0.0.1:${PORT_OF[$name]}$path") || got="000 0"
    if [ "${got%% *}" != "$want" ] || { [ -n "$bytes" ] && [ "${got##* }" != "$bytes" ]; }; then
        log "bench: check failed: $name GET $path token=$(basename "$tokfile") -> status/bytes '$got', want $want ${bytes}"
        return 1
    fi
}

# Every bad variant must be refused, and a valid token must pass: run before any benchmark.
check_auth() { # name deny-status-regex
    local name=$1 deny=$2 v got
    http_check "$name" /small "$BENCH_TMP/tok-valid" 200 "$SMALL_BYTES" || die "$name refuses a valid token"
    for v in tampered otherkey expired wrongaud wrongiss wronghd badalg missing; do
        local hdr=()
        [ "$v" != missing ] && hdr=(-H "x-goog-iap-jwt-assertion: $(head -1 "$BENCH_TMP/tok-$v")")
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${hdr[@]}" "http://127.0.0.1:${PORT_OF[$name]}/small")
        [[ "$got" =~ ^($deny)$ ]] || die "$name answered $got to a $v token (want $deny)"
        printf '%s ' "$v→$got" >&2
    done
    log ""
}

mint_check_tokens() {
    local v
    for v in valid tampered otherkey expired wrongaud wrongiss wronghd badalg; do
        mint "$BENCH_TMP/tok-$v" 1 "$v" 900000000
    done
}
