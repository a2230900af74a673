#!/usr/bin/env bash
# What the signing proxy adds: wrk at one connection against the fake
# exchange directly, then the same request through keyward's proxy, then a
# signed private call through the proxy (which the fake verifies). Medians of
# three alternating runs. Bench only: not part of the test suite.
#
#   bench/proxy-overhead.sh [duration]      (default 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p keyward -q
bin=$PWD/target/release/keyward
work=$(mktemp -d)
trap 'kill $kpid $fpid 2>/dev/null || true; rm -rf "$work"' EXIT
python3 tests/fake_exchange/fake_exchange.py '{"binance": {"key": "BK", "secret": "bs"}}' >"$work/fake" &
fpid=$!
"$bin" server --data "$work/data" --listen 127.0.0.1:0 --allow-upstream 127.0.0.1 --log warn >"$work/out" 2>"$work/err" &
kpid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && grep -q listening "$work/fake" && break; sleep 0.1; done
fake="http://127.0.0.1:$(sed -n '1s/listening on //p' "$work/fake")"
addr=$(sed -n 's/^keyward listening on //p' "$work/out")
export KEYWARD_ADDR=$addr
export KEYWARD_TOKEN=$(sed -n 's/^ *export KEYWARD_TOKEN=//p' "$work/out")
"$bin" secret put exchanges/bin --type binance api_key=BK api_secret=bs "base_url=$fake" >/dev/null
key=$("$bin" key create --name bench --scope account:bin:read --allow-ip 127.0.0.1/32 -q)

p50() { wrk -t1 -c1 -d"$dur" --latency -H "X-MBX-APIKEY: $key" "$1" | awk '/^ +50%/ {print $2}'; }
to_us() { awk '{v=$1; if (v ~ /ms$/) {sub("ms","",v); v*=1000} else if (v ~ /us$/) {sub("us","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000000}; print v}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in 1 2 3; do
  p50 "$fake/api/v3/ticker/price?symbol=BTCUSDT" | to_us >>"$work/direct"
  p50 "$addr/proxy/bin/api/v3/ticker/price?symbol=BTCUSDT" | to_us >>"$work/proxied"
  p50 "$addr/proxy/bin/api/v3/account" | to_us >>"$work/signed"
done
d=$(median <"$work/direct"); p=$(median <"$work/proxied"); s=$(median <"$work/signed")
echo "p50 latency, wrk -t1 -c1 -d$dur, median of 3 alternating runs ($(nproc) cores)"
echo "  fake exchange directly (public ticker):   ${d} us"
echo "  through keyward's proxy (public ticker):  ${p} us  (+$(awk -v a="$p" -v b="$d" 'BEGIN{print a-b}') us)"
echo "  through keyward's proxy (signed account): ${s} us  (+$(awk -v a="$s" -v b="$d" 'BEGIN{print a-b}') us)"
