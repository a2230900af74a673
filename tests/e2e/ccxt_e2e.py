#!/usr/bin/env python3
"""ccxt, unchanged, trading through keyward's proxy.

For each exchange (Binance, OKX, Bybit, Kraken, Bitget, KuCoin, Gate,
Deribit, Coinbase, HTX), a ccxt client gets the keyward access key as its
apiKey (HTX's ccxt puts it in the AccessKeyId query parameter), a dummy
secret (and passphrase) of valid format, the key as a bearer token too
(Coinbase's ccxt then sends that Authorization header as it is, Deribit's
replaces its own with it), and every one of its API URLs pointed at keyward's
proxy: the script stops if any still points elsewhere, since that request
would carry the bearer key to the real exchange. It loads markets, places a
limit buy (amount in base units) and fetches balances; a withdrawal through
the same trade key must be refused with scope_missing. The fake exchange
behind keyward (each venue on its own port) checks the real signatures
itself.

A second key, limited to 0.5 per order, is refused an order of 1 with order_guard.

Usage: ccxt_e2e.py KEYWARD_URL KEY GUARDED_KEY [EXCHANGE ...]   (prints one JSON line per exchange;
       default: all ten, whose keyward accounts are named as in SETUP)
"""
import json
import sys

import ccxt

BASE, KEY, GUARDED = sys.argv[1], sys.argv[2], sys.argv[3]

SPOT = {"fetchMarkets": {"types": ["spot"]}}
# ccxt id -> (keyward account, hosts to rewrite, constructor options, order (amount in base units), withdraw params)
SETUP = {
    "binance": ("bin", ["https://api.binance.com", "https://fapi.binance.com", "https://dapi.binance.com",
                        "https://eapi.binance.com", "https://papi.binance.com"],
                {"options": dict(SPOT, fetchCurrencies=False, fetchMargins=False)},
                ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    "okx": ("okx", ["https://{hostname}"], {"password": "dummy-passphrase", "options": SPOT},
            ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    "bybit": ("by", ["https://api.{hostname}"],
              {"options": dict(SPOT, enableUnifiedAccount=True, enableUnifiedMargin=False)},
              ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    "kraken": ("kr", ["https://api.kraken.com", "https://kraken.zendesk.com"], {},
               ("BTC/USD", "limit", "buy", 0.01, 37500), {"key": "mywallet"}),
    # A classic account: ccxt asks /api/v3/account/settings first (the fake refuses it, 40084).
    "bitget": ("bg", ["https://api.{hostname}"], {"password": "dummy-passphrase", "options": SPOT},
               ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    # ccxt asks whether the account is high-frequency and unified first (it is HF, not unified).
    "kucoin": ("kc", ["https://api.kucoin.com", "https://api-futures.kucoin.com", "https://api-broker.kucoin.com",
                      "https://kucoin.com"], {"password": "dummy-passphrase", "options": SPOT},
               ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    "gate": ("gt", ["https://api.gateio.ws"], {"options": SPOT},
             ("BTC/USDT", "limit", "buy", 0.01, 50000), {"network": "BTC"}),
    # Spot BTC_USDC: the amount is in BTC.
    "deribit": ("dr", ["https://www.deribit.com"], {}, ("BTC/USDC", "limit", "buy", 0.01, 50000), {}),
    # The Authorization header set below is used as is: ccxt makes no JWT.
    "coinbase": ("cb", ["https://api.coinbase.com"], {}, ("BTC/USDT", "limit", "buy", 0.01, 50000),
                 {"network": "bitcoin"}),
    # ccxt puts the key in the AccessKeyId query parameter (keyward reads a keyward key there).
    # Its network lookup needs the currencies (not loaded here): HTX's chain id is given as is.
    "htx": ("htx", ["https://{hostname}"],
            {"options": {"fetchMarkets": {"types": {"spot": True, "linear": False, "inverse": False}}}},
            ("BTC/USDT", "limit", "buy", 0.01, 50000), {"chain": "btc"}),
}
WANTED = sys.argv[4:] or list(SETUP)


def rewrite(urls, hosts, proxy):
    """Points every API URL at the proxy, keeping its path."""
    if isinstance(urls, dict):
        return {k: rewrite(v, hosts, proxy) for k, v in urls.items()}
    if isinstance(urls, str):
        for h in hosts:
            if urls.startswith(h):
                return proxy + urls[len(h):]
    return urls


def every_url(urls):
    if isinstance(urls, dict):
        return [u for v in urls.values() for u in every_url(v)]
    return [urls] if isinstance(urls, str) else []


def leftover(ex, hosts, proxy):
    """The API URLs not pointed at the proxy, or naming a real host (each would take the bearer key there)."""
    real = [h.split("://", 1)[1].replace("{hostname}", getattr(ex, "hostname", None) or "") for h in hosts]
    return [u for u in every_url(ex.urls["api"])
            if not (u == proxy or u.startswith(proxy + "/")) or any(r in u for r in real)]


def client(ex_id, key):
    account, hosts, extra, _, _ = SETUP[ex_id]
    # The keyward key as the exchange API key, a dummy secret of valid format,
    # and the key as a bearer token too, so that ccxt's public calls (which
    # carry no API key) are authenticated as well.
    cfg = {"apiKey": key, "secret": "ZHVtbXktc2VjcmV0", "enableRateLimit": False, "timeout": 10000,
           "headers": {"Authorization": "Bearer " + key}}
    cfg.update(extra)
    ex = getattr(ccxt, ex_id)(cfg)
    ex.has["fetchCurrencies"] = False
    proxy = "%s/proxy/%s" % (BASE, account)
    ex.urls["api"] = rewrite(ex.urls["api"], hosts, proxy)
    left = leftover(ex, hosts, proxy)
    assert not left, "%s: URLs still pointing elsewhere: %s" % (ex_id, left)
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
        ex.withdraw("BTC", 0.1, "bc1qexampleaddressxxxxxxxxxxxxxxxxxxxxxx", params=dict(SETUP[ex_id][4]))
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
