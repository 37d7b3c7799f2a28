#!/usr/bin/env bash
# make demo: builds iap-proxy, mints a local key and a token, and verifies it end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product iap-proxy >/dev/null
bin=.build/release/iap-proxy
keys=demo-keys
audience=/projects/123456789/global/backendServices/987654321
rm -rf "$keys"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "$bin keygen --out $keys --kid demo-1"
$bin keygen --out "$keys" --kid demo-1

step "$bin mint --key $keys/private.pem --kid demo-1 --audience $audience --email alice@example.com --hd example.com"
token=$($bin mint --key "$keys/private.pem" --kid demo-1 --audience "$audience" --email alice@example.com --hd example.com)
echo "$token"

step "$bin verify --audience $audience --jwks-file $keys/jwks.json \$TOKEN"
$bin verify --audience "$audience" --jwks-file "$keys/jwks.json" "$token"

step "$bin verify --audience /projects/123456789/global/backendServices/111 --jwks-file $keys/jwks.json \$TOKEN"
$bin verify --audience /projects/123456789/global/backendServices/111 --jwks-file "$keys/jwks.json" "$token" || echo "(exit $?)"

expired=$($bin mint --key "$keys/private.pem" --kid demo-1 --audience "$audience" --email alice@example.com --iat 1700000000)
step "$bin verify --audience $audience --jwks-file $keys/jwks.json \$EXPIRED_TOKEN"
$bin verify --audience "$audience" --jwks-file "$keys/jwks.json" "$expired" || echo "(exit $?)"

cat <<TXT

Try it yourself:
  TOKEN=\$($bin mint --key $keys/private.pem --kid demo-1 --audience $audience --email you@example.com)
  $bin verify --audience $audience --jwks-file $keys/jwks.json "\$TOKEN"
TXT
