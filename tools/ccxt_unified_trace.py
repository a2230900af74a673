#!/usr/bin/env python3
"""Dynamic trace of the REST requests ccxt's unified methods make in the
default configuration, for spot and linear-swap markets.

Each exchange gets a small synthetic market table (a spot and, where the
exchange has them, a linear perpetual) and currency table; `request()` (the
entry point of every implicit API method) is replaced by a recorder that
returns an empty answer, so nothing touches the network. Every unified call
is made with default options and no extra params; the recorded (section,
method, endpoint) tuples are resolved to the full path through the
exchange's own sign() (ccxt_endpoints.signed_request).

A call usually fails after its first request (the empty answer does not
parse); requests ccxt would make after that are found by the static scan
(ccxt_unified_scan.py) and added by hand in ccxt_unified_build.py.
"""
import json
import os
import sys
import urllib.parse

import ccxt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ccxt_endpoints import make, signed_request  # noqa: E402

EXCHANGES = ("binance", "okx", "bybit", "kraken", "kucoin", "bitget", "gate", "deribit", "coinbase", "htx")


def market(symbol, id, kind, base, quote, settle=None, info=None, **extra):
    swap = kind == "swap"
    m = {
        "id": id, "symbol": symbol, "base": base, "quote": quote, "settle": settle,
        "baseId": extra.pop("baseId", base), "quoteId": extra.pop("quoteId", quote),
        "settleId": extra.pop("settleId", settle), "type": kind, "spot": kind == "spot", "margin": kind == "spot",
        "swap": swap, "future": False, "option": False, "contract": swap, "linear": True if swap else None,
        "inverse": False if swap else None, "contractSize": extra.pop("contractSize", 1 if swap else None),
        "expiry": None, "expiryDatetime": None, "strike": None, "optionType": None, "active": True,
        "precision": {"amount": 0.0001, "price": 0.01}, "lowercaseId": id.lower(),
        "limits": {"amount": {"min": 0.0001, "max": None}, "price": {"min": 0.01, "max": None},
                   "cost": {"min": 1, "max": None}, "leverage": {"min": 1, "max": 100}},
        "taker": 0.001, "maker": 0.001, "info": info or {}, "created": None,
    }
    m.update(extra)
    return m


def currency(code, id=None, networks=None):
    return {"id": id or code, "code": code, "numericId": None, "precision": 1e-8, "active": True,
            "deposit": True, "withdraw": True, "fee": None, "limits": {}, "info": {},
            "networks": networks or {}}


# (spot, linear swap or None, settle currency code)
MARKETS = {
    "binance": (market("BTC/USDT", "BTCUSDT", "spot", "BTC", "USDT",
                       info={"symbol": "BTCUSDT", "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"]}),
                market("BTC/USDT:USDT", "BTCUSDT", "swap", "BTC", "USDT", "USDT",
                       info={"symbol": "BTCUSDT", "orderTypes": ["LIMIT", "MARKET"]})),
    "okx": (market("BTC/USDT", "BTC-USDT", "spot", "BTC", "USDT", info={"instType": "SPOT"}),
            market("BTC/USDT:USDT", "BTC-USDT-SWAP", "swap", "BTC", "USDT", "USDT", contractSize=0.01,
                   info={"instType": "SWAP"})),
    "bybit": (market("BTC/USDT", "BTCUSDT", "spot", "BTC", "USDT"),
              market("BTC/USDT:USDT", "BTCUSDT", "swap", "BTC", "USDT", "USDT")),
    "kraken": (market("BTC/USD", "XXBTZUSD", "spot", "BTC", "USD", baseId="XXBT", quoteId="ZUSD",
                      altname="XBTUSD", wsId="XBT/USD", info={"altname": "XBTUSD", "wsname": "XBT/USD"}),
               None),
    "kucoin": (market("BTC/USDT", "BTC-USDT", "spot", "BTC", "USDT"),
               market("BTC/USDT:USDT", "XBTUSDTM", "swap", "BTC", "USDT", "USDT", contractSize=0.001,
                      baseId="XBT")),
    "bitget": (market("BTC/USDT", "BTCUSDT", "spot", "BTC", "USDT"),
               market("BTC/USDT:USDT", "BTCUSDT", "swap", "BTC", "USDT", "USDT")),
    "gate": (market("BTC/USDT", "BTC_USDT", "spot", "BTC", "USDT"),
             market("BTC/USDT:USDT", "BTC_USDT", "swap", "BTC", "USDT", "USDT", settleId="usdt",
                    contractSize=0.0001)),
    "deribit": (market("BTC/USDC", "BTC_USDC", "spot", "BTC", "USDC"),
                market("BTC/USDC:USDC", "BTC_USDC-PERPETUAL", "swap", "BTC", "USDC", "USDC", contractSize=0.001,
                       info={"kind": "future", "settlement_period": "perpetual"})),
    "coinbase": (market("BTC/USD", "BTC-USD", "spot", "BTC", "USD"),
                 market("BTC/USDC:USDC", "BTC-PERP-INTX", "swap", "BTC", "USDC", "USDC", contractSize=0.0001)),
    "htx": (market("BTC/USDT", "btcusdt", "spot", "BTC", "USDT", baseId="btc", quoteId="usdt"),
            market("BTC/USDT:USDT", "BTC-USDT", "swap", "BTC", "USDT", "USDT", contractSize=0.001)),
}
CODE = {"kraken": "USD", "coinbase": "USDC", "deribit": "USDC"}

# Account-mode switches ccxt reads from options (None = ccxt detects it with
# a request; the recorder's empty answer then picks the mode noted).
# Each mode: (name, options, canned answers for the detection requests).
MODES = {
    "kucoin": [("default", {}, {}), ("hf", {"hf": True, "uta": False}, {}), ("uta", {"uta": True}, {})],
    "bitget": [("default", {}, {}), ("classic", {"uta": False}, {}), ("uta", {"uta": True}, {})],
    "gate": [("default", {}, {}), ("unified", {"unifiedAccount": True}, {})],
    # ccxt asks /v5/user/query-api and /v5/account/info; an empty answer reads as classic.
    "bybit": [("uta", {}, {"v5/user/query-api": {"result": {"uta": 1, "unified": 0}},
                           "v5/account/info": {"result": {"unifiedMarginStatus": 6}}}),
              ("classic", {}, {})],
}
WITHDRAW_PARAMS = {"kraken": {"key": "my-withdraw-key"}, "bitget": {"network": "TRC20"}}

# Canned answers for the look-ups some calls make before the real request.
CANNED = {
    ("htx", "v1/account/accounts"): {"status": "ok", "data": [
        {"id": 1, "type": "spot", "subtype": "", "state": "working"}]},
    ("coinbase", "brokerage/accounts"): {"accounts": [
        {"uuid": "acc-usdc", "name": "USDC Wallet", "currency": "USDC", "type": "ACCOUNT_TYPE_CRYPTO",
         "active": True, "available_balance": {"value": "1", "currency": "USDC"}}], "has_next": False},
    ("coinbase", "accounts"): {"data": [
        {"id": "acc-usdc", "name": "USDC Wallet", "type": "wallet", "currency": {"code": "USDC"},
         "balance": {"amount": "1", "currency": "USDC"}}]},
}


def calls(spot, swap, code, wparams):
    s, w = spot["symbol"], swap["symbol"] if swap else None
    out = [
        ("fetch_markets", "", lambda x: x.fetch_markets()),
        ("fetch_currencies", "", lambda x: x.fetch_currencies()),
        ("fetch_time", "", lambda x: x.fetch_time()),
        ("fetch_status", "", lambda x: x.fetch_status()),
        ("fetch_tickers", "default", lambda x: x.fetch_tickers()),
    ]
    for label, sym in (("spot", s), ("swap", w)):
        if sym is None:
            continue
        out += [
            ("fetch_ticker", label, lambda x, sym=sym: x.fetch_ticker(sym)),
            ("fetch_tickers", label, lambda x, sym=sym: x.fetch_tickers([sym])),
            ("fetch_order_book", label, lambda x, sym=sym: x.fetch_order_book(sym)),
            ("fetch_ohlcv", label, lambda x, sym=sym: x.fetch_ohlcv(sym, "1h")),
            ("fetch_trades", label, lambda x, sym=sym: x.fetch_trades(sym)),
            ("create_order", label + " limit buy", lambda x, sym=sym: x.create_order(sym, "limit", "buy", 1, 100)),
            ("create_order", label + " limit sell", lambda x, sym=sym: x.create_order(sym, "limit", "sell", 1, 100)),
            ("create_order", label + " market buy", lambda x, sym=sym: x.create_order(sym, "market", "buy", 1, 100)),
            ("create_order", label + " market sell", lambda x, sym=sym: x.create_order(sym, "market", "sell", 1)),
            ("cancel_order", label, lambda x, sym=sym: x.cancel_order("123", sym)),
            ("cancel_all_orders", label, lambda x, sym=sym: x.cancel_all_orders(sym)),
            ("edit_order", label, lambda x, sym=sym: x.edit_order("123", sym, "limit", "buy", 1, 101)),
            ("fetch_order", label, lambda x, sym=sym: x.fetch_order("123", sym)),
            ("fetch_orders", label, lambda x, sym=sym: x.fetch_orders(sym)),
            ("fetch_open_orders", label, lambda x, sym=sym: x.fetch_open_orders(sym)),
            ("fetch_closed_orders", label, lambda x, sym=sym: x.fetch_closed_orders(sym)),
            ("fetch_my_trades", label, lambda x, sym=sym: x.fetch_my_trades(sym)),
            ("fetch_trading_fee", label, lambda x, sym=sym: x.fetch_trading_fee(sym)),
            ("fetch_order", label + ", acknowledged",
             lambda x, sym=sym: x.fetch_order("123", sym, {"acknowledged": True})),
        ]
    out += [
        ("fetch_open_orders", "no symbol", lambda x: x.fetch_open_orders()),
        ("cancel_all_orders", "no symbol", lambda x: x.cancel_all_orders()),
        ("fetch_balance", "default", lambda x: x.fetch_balance()),
        ("fetch_balance", "spot", lambda x: x.fetch_balance({"type": "spot"})),
        ("fetch_trading_fees", "default", lambda x: x.fetch_trading_fees()),
        ("fetch_deposit_address", "", lambda x: x.fetch_deposit_address(code)),
        ("fetch_deposits", "", lambda x: x.fetch_deposits(code)),
        ("fetch_withdrawals", "", lambda x: x.fetch_withdrawals(code)),
        ("withdraw", "", lambda x: x.withdraw(code, 10, "addr0123456789", params=dict(wparams))),
        ("transfer", "spot->swap", lambda x: x.transfer(code, 10, "spot", "swap")),
        ("fetch_ledger", "", lambda x: x.fetch_ledger(code)),
        ("fetch_ledger", "swap", lambda x: x.fetch_ledger(code, None, None, {"type": "swap"})),
        ("fetch_open_orders", "no symbol, no warning",
         lambda x: (x.options.update({"warnOnFetchOpenOrdersWithoutSymbol": False}), x.fetch_open_orders())),
        ("transfer", "swap->spot", lambda x: x.transfer(code, 10, "swap", "spot")),
        ("transfer", "spot->funding", lambda x: x.transfer(code, 10, "spot", "funding")),
    ]
    if w:
        out += [
            ("fetch_balance", "swap", lambda x: x.fetch_balance({"type": "swap"})),
            ("fetch_positions", "default", lambda x: x.fetch_positions()),
            ("fetch_positions", "swap", lambda x: x.fetch_positions([w])),
            ("set_leverage", "swap", lambda x: x.set_leverage(10, w)),
            ("set_margin_mode", "swap isolated", lambda x: x.set_margin_mode("isolated", w)),
            ("set_margin_mode", "swap cross", lambda x: x.set_margin_mode("cross", w)),
            ("set_margin_mode", "swap isolated, leverage 10",
             lambda x: x.set_margin_mode("isolated", w, {"leverage": 10, "lever": 10})),
        ]
    else:
        out += [("fetch_positions", "default", lambda x: x.fetch_positions())]
    return out


def actual_path(ex_id, api, method, path, params):
    """The path with ccxt's own parameters filled in, as the server sees it."""
    ex = make(ex_id)
    try:
        signed = ex.sign(path, list(api), method, json.loads(json.dumps(params, default=str)))
    except Exception:  # noqa: BLE001
        return None
    return urllib.parse.unquote(urllib.parse.urlsplit(signed["url"]).path)


def trace(ex_id, options, canned):
    spot, swap = MARKETS[ex_id]
    code = CODE.get(ex_id, "USDT")
    results = []
    for name, label, fn in calls(spot, swap, code, WITHDRAW_PARAMS.get(ex_id, {})):
        ex = make(ex_id)
        ex.options.update(options)
        ms = [spot] + ([swap] if swap else [])
        curs = {c: currency(c) for c in ("BTC", "USDT", "USD", "USDC")}
        if ex_id == "kraken":
            curs["BTC"] = currency("BTC", "XXBT")
            curs["USD"] = currency("USD", "ZUSD")
        ex.set_markets(ms, curs)
        seen = []

        def request(path, api="public", method="GET", params={}, headers=None, body=None, config={}, _seen=seen):
            api = api if isinstance(api, list) else [api]
            # The path as this instance (with its current options) signs it:
            # with ccxt's parameters filled in, and with placeholders kept.
            actual = template = None
            try:
                signed = ex.sign(path, list(api), method, json.loads(json.dumps(params, default=str)))
                actual = urllib.parse.unquote(urllib.parse.urlsplit(signed["url"]).path)
                rest = ex.omit(params, ex.extract_params(path)) if isinstance(params, dict) else {}
                signed = ex.sign(path, list(api), method, json.loads(json.dumps(rest, default=str)))
                template = urllib.parse.unquote(urllib.parse.urlsplit(signed["url"]).path)
            except Exception:  # noqa: BLE001
                pass
            _seen.append((list(api), method, path, dict(params) if isinstance(params, dict) else params,
                          actual, template))
            answer = canned.get(path, CANNED.get((ex_id, path), {}))
            return json.loads(json.dumps(answer))

        ex.request = request
        err = None
        try:
            fn(ex)
        except Exception as e:  # noqa: BLE001
            err = "%s: %s" % (type(e).__name__, str(e)[:200])
        reqs = []
        for api, method, path, params, actual, template in seen:
            res, e = signed_request(make(ex_id), api, method, path)
            reqs.append({"section": "/".join(api), "method": method, "endpoint": path,
                         "host": res[0] if res else None, "path": template or (res[1] if res else None),
                         "actual": actual,
                         "private": res[2] if res else None,
                         "params": sorted(params) if isinstance(params, dict) else ["<list>"]})
        results.append({"unified": name, "case": label, "requests": reqs, "error": err})
    return results


def main():
    out = {ex_id: {mode: trace(ex_id, options, canned)
                   for mode, options, canned in MODES.get(ex_id, [("default", {}, {})])}
           for ex_id in (sys.argv[1:] or EXCHANGES)}
    json.dump(out, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
