#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, conformance and integration
# tests that start the real keyward binary), including ccxt trading through
# the proxy against the fake exchange. Installs ccxt from PyPI into
# .venv-test on first use, and SoftHSM2 (Debian's softhsm2, for the HSM
# seal's tests) when it is missing. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv-test
if ! "$venv/bin/python" -c 'import ccxt, prometheus_client, cryptography' 2>/dev/null; then
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
export KEYWARD_TEST_PYTHON="$PWD/$venv/bin/python"
cargo test --workspace --locked "$@"
