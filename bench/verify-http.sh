#!/usr/bin/env bash
# Load test of POST /v1/keys/verify over loopback with wrk: one keyward
# (release build, embedded SQLite default in a temporary directory) and one
# platform key, verified by a backend key with key:verify:bench.
#
#   bench/verify-http.sh [connections] [duration]     (defaults: 32 10s)
#   USES=1000000000 bench/verify-http.sh              (a use-limited key: each
#                                                      verify spends a use durably)
#
# Prints wrk's report (requests/s, latency percentiles). Installs wrk from
# Debian if missing. Bench only: it is not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-32}
dur=${2:-10s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p keyward -q
bin=$PWD/target/release/keyward
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
"$bin" server --data "$work/data" --listen 127.0.0.1:0 --log warn >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^keyward listening on //p' "$work/out")
export KEYWARD_ADDR=$addr
export KEYWARD_TOKEN=$(sed -n 's/^ *export KEYWARD_TOKEN=//p' "$work/out")
verifier=$("$bin" key create --name bench-backend --scope key:verify:bench -q)
uses_flag=()
if [ -n "${USES:-}" ]; then uses_flag=(--uses "$USES"); fi
platform_key=$("$bin" key create --name bench-user --namespace bench --perm orders.read "${uses_flag[@]}" -q)
cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $verifier"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$platform_key","permission":"orders.read"}'
LUA
# Sanity: the request the load repeats is a valid verification.
curl -fsS -X POST "$addr/v1/keys/verify" -H "Authorization: Bearer $verifier" \
  -d "{\"key\":\"$platform_key\",\"permission\":\"orders.read\"}" | grep -q '"valid":true'
threads=$(( conns < 2 ? conns : 2 ))
echo "keyward $("$bin" --version | cut -d' ' -f2), $(nproc) cores, wrk -t$threads -c$conns -d$dur, POST $addr/v1/keys/verify"
wrk -t"$threads" -c"$conns" -d"$dur" --latency -s "$work/verify.lua" "$addr/v1/keys/verify"
