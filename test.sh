#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, conformance and integration
# tests that start the real keyward binary), including ccxt trading through
# the proxy against the fake exchange. Installs ccxt from PyPI into
# .venv-test on first use. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv-test
if ! "$venv/bin/python" -c 'import ccxt, prometheus_client, cryptography' 2>/dev/null; then
  echo "== installing ccxt into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt
fi
export KEYWARD_TEST_PYTHON="$PWD/$venv/bin/python"
cargo test --workspace --locked "$@"
