#!/usr/bin/env python3
"""Snapshot of the REST endpoints ccxt knows for the exchanges keyward
signs for (Binance, OKX, Bybit, Kraken, KuCoin, Bitget, Gate, Deribit,
Coinbase) plus HTX, with the full request path each exchange's server sees,
for keyward's catalog coverage test.

The path comes from ccxt itself: every endpoint of the exchange's implicit
API is passed through that exchange's own `sign()` with dummy credentials
and no parameters, and the path component of the resulting URL is kept
(placeholders such as `{orderId}` are left as ccxt writes them), with the
URL's host (spot and futures hosts of KuCoin and HTX share paths). An
endpoint is `private` when ccxt's `sign()` attaches the API key to it
(header, query or body), i.e. keyward would have to sign it. A request
ccxt lists under two sections on the same host appears once, with both
section names joined by '|'.

Run with a Python that has ccxt (./test.sh makes .venv-test):
    .venv-test/bin/python tools/ccxt_endpoints.py > crates/keyward-exchanges/tests/vectors/ccxt-endpoints.json
"""
import json
import sys
import urllib.parse

import ccxt

EXCHANGES = ("binance", "okx", "bybit", "kraken", "kucoin", "bitget", "gate", "deribit", "coinbase", "htx")

# Dummy credentials: the key is a marker to spot in the signed request; the
# secret is valid base64 without padding (Kraken decodes it; Coinbase treats
# a secret ending in '=' or of length 88 as a cloud key and signs a JWT).
API_KEY = "KEYWARDDUMMYKEY0"
SECRET = "c2VjcmV0c2VjcmV0"
PASSWORD = "passphrase"

METHODS = ("get", "post", "put", "delete", "patch")


def walk(api, path=()):
    """Yields (sections, method, endpoint) from ccxt's nested api description."""
    for key, value in api.items():
        if key.lower() in METHODS:
            endpoints = value if isinstance(value, dict) else {e: 1 for e in value}
            for endpoint in endpoints:
                yield path, key.upper(), endpoint
        elif isinstance(value, dict):
            yield from walk(value, path + (key,))


def make(ex_id):
    ex = getattr(ccxt, ex_id)({"apiKey": API_KEY, "secret": SECRET, "password": PASSWORD, "uid": "1"})
    # Let nothing reach the network (sign() never should; this makes sure).
    ex.fetch = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no network"))
    return ex


def carries_key(signed):
    blob = json.dumps([signed.get("url"), signed.get("headers"), signed.get("body")], default=str)
    return API_KEY in blob


def signed_request(ex, sections, method, endpoint):
    """(path, private) as ccxt's sign() builds them, or None."""
    try:
        signed = ex.sign(endpoint, list(sections), method, {})
    except Exception as e:  # noqa: BLE001 - report and fall back below
        return None, repr(e)
    # The path part of the URL; the placeholders' braces survive urlsplit.
    url = urllib.parse.urlsplit(signed["url"])
    return (url.netloc, urllib.parse.unquote(url.path), carries_key(signed)), None


def fallback(ex_id, ex, sections, method, endpoint):
    """For the few endpoints whose sign() needs real parameters."""
    if ex_id == "gate":
        # sign() special-cases '{settle}/batch_cancel_orders' (body is a list).
        kind = sections[1]
        # ccxt has no URL for some sections (unified, flash_swap, loan public):
        # it cannot call them, but the path is still the v4 one.
        base = "/api/v4" if kind in ("subAccounts", "withdrawals") else "/api/v4/" + kind
        return "api.gateio.ws", base + "/" + endpoint, sections[0] == "private"
    return None


def main():
    out = {"about": "ccxt %s REST endpoints, paths from each exchange's sign() (tools/ccxt_endpoints.py)"
                    % ccxt.__version__, "endpoints": []}
    problems = []
    seen = {}
    for ex_id in EXCHANGES:
        ex = make(ex_id)
        for sections, method, endpoint in walk(ex.api):
            result, err = signed_request(ex, sections, method, endpoint)
            if result is None:
                result = fallback(ex_id, ex, sections, method, endpoint)
                problems.append("%s %s %s %s: %s -> %s" % (ex_id, "/".join(sections), method, endpoint, err, result))
            if result is None:
                continue
            host, path, private = result
            section = "/".join(sections)
            key = (ex_id, host, method, path)
            if key in seen:
                # The same request listed under two sections (ccxt lists a few
                # both public and private): one entry, private if any signs it.
                entry = seen[key]
                if section not in entry["section"].split("|"):
                    entry["section"] += "|" + section
                entry["private"] = entry["private"] or private
                continue
            entry = {"exchange": ex_id, "section": section, "method": method, "path": path,
                     "private": private, "host": host}
            seen[key] = entry
            out["endpoints"].append(entry)
    for p in problems:
        print(p, file=sys.stderr)
    print(json.dumps(out, indent=0))


if __name__ == "__main__":
    main()
