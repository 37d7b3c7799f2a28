#!/usr/bin/env bash
# make demo: builds iap-proxy, mints a local key, starts the `echo` upstream and `serve` in front of
# it, shows a 200, a 401 and a 403, and keeps running (printing curl lines to try) until Ctrl-C.
# Ports: DEMO_PORT (proxy, default 8080), DEMO_UPSTREAM_PORT (8081), DEMO_ADMIN_PORT (9090).
set -euo pipefail
cd "$(dirname "$0")/.."
proxy_port=${DEMO_PORT:-8080}
upstream_port=${DEMO_UPSTREAM_PORT:-8081}
admin_port=${DEMO_ADMIN_PORT:-9090}
audience=/projects/123456789/global/backendServices/987654321
dir=demo-keys

echo "building iap-proxy (release)..."
swift build -c release --product iap-proxy >/dev/null
bin=.build/release/iap-proxy
rm -rf "$dir"
$bin keygen --out "$dir" --kid demo-1 >/dev/null
printf '# who may pass (see README): a Workspace domain and one extra user\nexample.com\ncarol@gmail.com\n' > "$dir/allowlist.txt"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$bin echo --listen "127.0.0.1:$upstream_port" 2>"$dir/echo.log" &
pids+=($!)
$bin serve --listen "127.0.0.1:$proxy_port" --upstream "http://127.0.0.1:$upstream_port" --audience "$audience" \
    --jwks-file "$dir/jwks.json" --allowlist "$dir/allowlist.txt" --admin-listen "127.0.0.1:$admin_port" \
    >"$dir/access.log" 2>"$dir/serve.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null || { cat "$dir/serve.log"; echo "serve did not become ready"; exit 1; }

alice=$($bin mint --key "$dir/private.pem" --kid demo-1 --audience "$audience" --email alice@example.com --hd example.com)
mallory=$($bin mint --key "$dir/private.pem" --kid demo-1 --audience "$audience" --email mallory@evil.example --hd evil.example)
echo "$alice" > "$dir/alice.token"
echo "$mallory" > "$dir/mallory.token"

show() {
    printf '\n\033[1m$ %s\033[0m\n' "$1"
    eval "$1" || true
}
echo
echo "iap-proxy on :$proxy_port in front of the echo upstream on :$upstream_port (admin :$admin_port)."
echo "Tokens were minted with a local key ($dir/private.pem) and live 10 minutes, as IAP's do; serve trusts only $dir/jwks.json."
show "curl -s -H \"x-goog-iap-jwt-assertion: \$(cat $dir/alice.token)\" -H 'X-Forwarded-Email: spoofed@evil.example' http://127.0.0.1:$proxy_port/hello | python3 -m json.tool"
show "curl -s -i http://127.0.0.1:$proxy_port/hello"
show "curl -s -i -H \"x-goog-iap-jwt-assertion: \$(cat $dir/mallory.token)\" http://127.0.0.1:$proxy_port/hello"
show "tail -n 3 $dir/access.log"
cat <<TXT

The upstream saw alice's verified identity (X-Forwarded-Email/User), not the spoofed header;
no token gave 401, a verified but unlisted user 403. Try more (Ctrl-C stops the demo):
  curl -H "x-goog-iap-jwt-assertion: \$(cat $dir/alice.token)" http://127.0.0.1:$proxy_port/anything
  $bin mint --key $dir/private.pem --kid demo-1 --audience $audience --email you@example.com --hd example.com
  curl http://127.0.0.1:$admin_port/readyz
  edit $dir/allowlist.txt, then: kill -HUP ${pids[1]}
TXT
wait
