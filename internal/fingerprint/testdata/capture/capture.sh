#!/usr/bin/env bash
# Re-records the real-client test data in ../ (see main.go). Needs curl,
# node, python3 and, optionally, chromium. Run from this directory.
set -euo pipefail
out=$(cd .. && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/capture" main.go

run() { # name, then the client command (PORT and CA are exported)
  local name=$1; shift
  rm -f "$tmp/port"
  "$tmp/capture" -name "$name" -out "$out" -port-file "$tmp/port" -ca "$tmp/ca.pem" &
  local pid=$!
  for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  PORT=$(cat "$tmp/port") CA="$tmp/ca.pem" timeout 30 bash -c "$*" >/dev/null 2>&1 || true
  wait "$pid" || true
}

run curl 'curl -s --http1.1 --cacert "$CA" https://localhost:$PORT/'
run curl_http2 'curl -s --http2 --cacert "$CA" https://localhost:$PORT/'
run python_urllib 'SSL_CERT_FILE="$CA" python3 -c "import urllib.request,os; urllib.request.urlopen(\"https://localhost:%s/\" % os.environ[\"PORT\"]).read()"'
run node_https 'NODE_EXTRA_CA_CERTS="$CA" node -e "require(\"https\").get(\"https://localhost:\"+process.env.PORT+\"/\", r => r.resume())"'
# Go's own client: capture connects to itself.
rm -f "$tmp/port"; "$tmp/capture" -name go_client -out "$out" -port-file "$tmp/port" -go-client
if command -v chromium >/dev/null; then
  run chromium 'chromium --headless=new --no-sandbox --disable-gpu --ignore-certificate-errors --no-first-run --user-data-dir="$(mktemp -d)" --dump-dom "https://localhost:$PORT/"'
fi
if command -v firefox-esr >/dev/null; then
  # Firefox rejects the self-signed certificate after its hello: only
  # firefox.hello is saved.
  run firefox 'HOME="$(mktemp -d)" firefox-esr --headless --no-remote --profile "$(mktemp -d)" --screenshot "$(mktemp -d)/s.png" "https://localhost:$PORT/"'
fi
