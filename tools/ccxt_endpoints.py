#!/usr/bin/env python3
"""Snapshot of the REST endpoints ccxt knows for Binance, OKX, Bybit and
Kraken, with full paths, for keyward's catalog coverage test.

Run with a Python that has ccxt (./test.sh makes .venv-test):
    .venv-test/bin/python tools/ccxt_endpoints.py > crates/keyward-exchanges/tests/vectors/ccxt-endpoints.json
"""
import json
import urllib.parse

import ccxt


def walk(api, path=()):
    """Yields (sections, method, endpoint) from ccxt's nested api description."""
    for key, value in api.items():
        if key.lower() in ("get", "post", "put", "delete", "patch"):
            endpoints = value if isinstance(value, dict) else {e: 1 for e in value}
            for endpoint in endpoints:
                yield path, key.upper(), endpoint
        elif isinstance(value, dict):
            yield from walk(value, path + (key,))


def full_path(ex_id, ex, sections, endpoint):
    if ex_id == "binance":
        base = ex.urls["api"].get(sections[0])
        if not isinstance(base, str):
            return None
        prefix = urllib.parse.urlsplit(base.replace("{hostname}", "x")).path
        return prefix.rstrip("/") + "/" + endpoint
    if ex_id == "okx":
        return "/api/v5/" + endpoint
    if ex_id == "bybit":
        return "/" + endpoint
    if ex_id == "kraken":
        return "/0/%s/%s" % (sections[0], endpoint)
    return None


def main():
    out = {"about": "ccxt %s REST endpoints (tools/ccxt_endpoints.py)" % ccxt.__version__, "endpoints": []}
    for ex_id in ("binance", "okx", "bybit", "kraken"):
        ex = getattr(ccxt, ex_id)()
        for sections, method, endpoint in walk(ex.api):
            path = full_path(ex_id, ex, sections, endpoint)
            if path is None:
                continue
            private = any("private" in s.lower() or s.lower().startswith(("sapi", "papi")) for s in sections)
            out["endpoints"].append({"exchange": ex_id, "section": "/".join(sections), "method": method,
                                     "path": path, "private": private})
    print(json.dumps(out, indent=0))


if __name__ == "__main__":
    main()
