#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, conformance and integration
# tests that start the real keyward binary), including ccxt trading through
# the proxy against the fake exchange. Installs ccxt from PyPI into
# .venv-test on first use, and SoftHSM2 (Debian's softhsm2, for the HSM
# seal's tests) when it is missing. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv-test
if ! "$venv/bin/python" -c 'import ccxt, prometheus_client, cryptography, jsonschema' 2>/dev/null; then
  echo "== installing ccxt into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
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
export KEYWARD_TEST_PYTHON="$PWD/$venv/bin/python"
cargo test --workspace --locked "$@"
