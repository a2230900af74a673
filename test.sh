#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, conformance and integration
# tests that start the real keyward binary), including ccxt and Freqtrade
# trading through the proxy against the fake exchange. Installs ccxt from
# PyPI into .venv-test and Freqtrade into .venv-freqtrade on first use, and
# SoftHSM2 (Debian's softhsm2, for the HSM seal's tests) and PostgreSQL
# (Debian's postgresql) when they are missing.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv-test
if ! "$venv/bin/python" -c 'import ccxt, prometheus_client, cryptography, jsonschema' 2>/dev/null; then
  echo "== installing ccxt into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
# Freqtrade (its own environment: it pins its own ccxt and pandas).
ft_venv=.venv-freqtrade
if ! "$ft_venv/bin/freqtrade" --version >/dev/null 2>&1; then
  echo "== installing Freqtrade into $ft_venv (first run only, about a minute)"
  python3 -m venv "$ft_venv"
  "$ft_venv/bin/pip" install -q --disable-pip-version-check -r tests/freqtrade/requirements.txt
fi
export KEYWARD_TEST_FREQTRADE="$PWD/$ft_venv"
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ] || ! command -v softhsm2-util >/dev/null; then
  echo "== installing SoftHSM2 (first run only)"
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq softhsm2 >/dev/null
fi
# The official SARIF 2.1.0 schema, which `keyward scan --format sarif` is
# checked against; it ships in Microsoft's @microsoft/jest-sarif package.
sarif_schema="$PWD/$venv/sarif-2.1.0-rtm.5.json"
if [ ! -s "$sarif_schema" ]; then
  echo "== fetching the SARIF 2.1.0 schema (first run only)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null && tar xzf ./*.tgz package/lib/schemas/sarif-2.1.0-rtm.5.json)
  cp "$tmp/package/lib/schemas/sarif-2.1.0-rtm.5.json" "$sarif_schema"
  rm -rf "$tmp"
fi
export KEYWARD_TEST_SARIF_SCHEMA="$sarif_schema"
# PostgreSQL (Debian's postgresql): a throw-away server on a free loopback
# port with one database for this run, stopped and removed when the tests
# end. The conformance suite and the multi-node tests run against it; with
# KEYWARD_TEST_BACKEND=postgres every integration test does.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/pg_ctl" ] || ! command -v psql >/dev/null; then
  echo "== installing PostgreSQL (first run only)"
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
pg_dir=$(mktemp -d /tmp/keyward-test-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop_pg() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U keyward --no-sync >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log"; exit 1; }
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null
pg_db="keyward_test_$$"
psql "postgres://keyward@127.0.0.1:$pg_port/postgres" -qAtc "CREATE DATABASE $pg_db"
export KEYWARD_TEST_DATABASE_URL="postgres://keyward@127.0.0.1:$pg_port/$pg_db"
export KEYWARD_REQUIRE_POSTGRES=1
export KEYWARD_TEST_PG_BIN="$pg_bin"
export KEYWARD_TEST_PYTHON="$PWD/$venv/bin/python"
cargo test --workspace --locked "$@"
echo "== the integration tests again, with the data in PostgreSQL"
KEYWARD_TEST_BACKEND=postgres cargo test -p keyward --test it --locked "$@"
