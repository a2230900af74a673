#!/usr/bin/env python3
"""ccxt, unchanged, trading through keyward's proxy.

For each exchange, a ccxt client gets the keyward access key as its apiKey, a
dummy secret (and passphrase) of valid format, and its API URLs pointed at
keyward's proxy. It loads markets, places an order and fetches balances; a
withdrawal through the same trade key must be refused with scope_missing.
The fake exchange behind keyward checks the real signatures itself.

A second key, limited to 0.5 per order, is refused an order of 1 with order_guard.

Usage: ccxt_e2e.py KEYWARD_URL KEY GUARDED_KEY [EXCHANGE ...]   (prints one JSON line per exchange)
"""
import json
import sys

import ccxt

BASE, KEY, GUARDED = sys.argv[1], sys.argv[2], sys.argv[3]
WANTED = sys.argv[4:] or ["binance", "okx", "bybit", "kraken"]

# ccxt id -> (keyward account, hosts to rewrite, constructor options, order)
SETUP = {
    "binance": ("bin", ["https://api.binance.com", "https://fapi.binance.com"],
                {"options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}},
                ("BTC/USDT", "limit", "buy", 0.01, 50000)),
    "okx": ("okx", ["https://www.okx.com"],
            {"password": "dummy-passphrase", "options": {"fetchMarkets": {"types": ["spot"]}}},
            ("BTC/USDT", "limit", "buy", 0.01, 50000)),
    "bybit": ("by", ["https://api.bybit.com"],
              {"options": {"fetchMarkets": {"types": ["spot"]}, "enableUnifiedAccount": True,
                           "enableUnifiedMargin": False}},
              ("BTC/USDT", "limit", "buy", 0.01, 50000)),
    "kraken": ("kr", ["https://api.kraken.com"], {}, ("BTC/USD", "limit", "buy", 0.01, 37500)),
}


def rewrite(urls, hosts, proxy):
    """Points every API URL at the proxy, keeping its path."""
    if isinstance(urls, dict):
        return {k: rewrite(v, hosts, proxy) for k, v in urls.items()}
    if isinstance(urls, str):
        if "{hostname}" in urls:
            return proxy + urls.split("{hostname}", 1)[1]
        for h in hosts:
            if urls.startswith(h):
                return proxy + urls[len(h):]
    return urls


def client(ex_id, key):
    account, hosts, extra, _ = SETUP[ex_id]
    # The keyward key as the exchange API key, a dummy secret of valid format,
    # and the key as a bearer token too, so that ccxt's public calls (which
    # carry no API key) are authenticated as well.
    cfg = {"apiKey": key, "secret": "ZHVtbXktc2VjcmV0", "enableRateLimit": False, "timeout": 10000,
           "headers": {"Authorization": "Bearer " + key}}
    cfg.update(extra)
    ex = getattr(ccxt, ex_id)(cfg)
    ex.has["fetchCurrencies"] = False
    ex.urls["api"] = rewrite(ex.urls["api"], hosts, "%s/proxy/%s" % (BASE, account))
    return ex


def refusal(ex, e):
    # ccxt maps the refusal to one of its errors; where the exchange's own
    # error field clashes with keyward's (Kraken), read the raw answer.
    seen = str(e) + str(ex.last_http_response or "")
    for code in ("scope_missing", "order_guard"):
        if code in seen:
            return code
    return "other: %s" % seen[:200]


def run(ex_id):
    symbol, otype, side, amount, price = SETUP[ex_id][3]
    ex = client(ex_id, KEY)
    out = {"exchange": ex_id}
    markets = ex.load_markets()
    out["markets"] = symbol in markets
    order = ex.create_order(symbol, otype, side, amount, price)
    out["order_id"] = order.get("id")
    balance = ex.fetch_balance()
    out["balance_currencies"] = sorted(k for k, v in balance.get("total", {}).items() if v)
    try:
        ex.withdraw("BTC", 0.1, "bc1qexampleaddressxxxxxxxxxxxxxxxxxxxxxx", params={"network": "BTC"} if ex_id != "kraken" else {"key": "mywallet"})
        out["withdraw"] = "allowed"
    except Exception as e:
        out["withdraw"] = refusal(ex, e)
    guarded = client(ex_id, GUARDED)
    guarded.load_markets()
    try:
        guarded.create_order(symbol, otype, side, 1, price)
        out["over_cap"] = "allowed"
    except Exception as e:
        out["over_cap"] = refusal(guarded, e)
    return out


for ex_id in WANTED:
    try:
        print(json.dumps(run(ex_id)), flush=True)
    except Exception as e:
        print(json.dumps({"exchange": ex_id, "error": "%s: %s" % (type(e).__name__, str(e)[:500])}), flush=True)
