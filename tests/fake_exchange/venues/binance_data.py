"""Binance public market data (for ccxt and Freqtrade): exchangeInfo, klines,
24 h tickers, book tickers, prices, depth, average price, trades, and the
wallet's coin list. Prices move gently and deterministically around 50000."""
import json
import math

from shared import now_ms

BINANCE_INFO = {
    "timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
        "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5.0", "maxNotional": "9000000.0"},
        ],
    }],
}
INTERVAL_MS = {"1s": 1000, "1m": 60000, "3m": 180000, "5m": 300000, "15m": 900000, "30m": 1800000,
               "1h": 3600000, "2h": 7200000, "4h": 14400000, "6h": 21600000, "8h": 28800000,
               "12h": 43200000, "1d": 86400000, "3d": 259200000, "1w": 604800000}
PRICE = 50000.0


def price_at(t_ms):
    """A deterministic, gently moving BTCUSDT price around 50000."""
    return round(PRICE * (1 + 0.01 * math.sin(t_ms / 3600000.0)), 2)


def klines(params):
    step = INTERVAL_MS.get(params.get("interval", ""), 0)
    if not step:
        return None
    limit = max(1, min(int(params.get("limit", 500)), 1000))
    now = now_ms()
    end = min(int(params.get("endTime", now)), now)
    if "startTime" in params:
        first = -(-int(params["startTime"]) // step) * step
        opens = [first + i * step for i in range(limit) if first + i * step <= end]
    else:
        last = end // step * step
        opens = [last - (limit - 1 - i) * step for i in range(limit)]
    out = []
    for t in opens:
        o, c = price_at(t), price_at(t + step)
        hi, lo = max(o, c) + 5, min(o, c) - 5
        out.append([t, "%.2f" % o, "%.2f" % hi, "%.2f" % lo, "%.2f" % c, "12.50000000", t + step - 1,
                    "%.8f" % (12.5 * c), 100, "6.25000000", "%.8f" % (6.25 * c), "0"])
    return out


def ticker24(symbol="BTCUSDT"):
    now = now_ms()
    last, open_ = price_at(now), price_at(now - 86400000)
    return {"symbol": symbol, "priceChange": "%.2f" % (last - open_),
            "priceChangePercent": "%.3f" % ((last - open_) / open_ * 100), "weightedAvgPrice": "%.2f" % last,
            "prevClosePrice": "%.2f" % open_, "lastPrice": "%.2f" % last, "lastQty": "0.01000000",
            "bidPrice": "%.2f" % (last - 0.01), "bidQty": "1.00000000", "askPrice": "%.2f" % (last + 0.01),
            "askQty": "1.00000000", "openPrice": "%.2f" % open_, "highPrice": "%.2f" % (max(last, open_) + 100),
            "lowPrice": "%.2f" % (min(last, open_) - 100), "volume": "1000.00000000",
            "quoteVolume": "%.8f" % (1000 * last), "openTime": now - 86400000, "closeTime": now,
            "firstId": 1, "lastId": 1000, "count": 1000}


def book_ticker(symbol="BTCUSDT"):
    last = price_at(now_ms())
    return {"symbol": symbol, "bidPrice": "%.2f" % (last - 0.01), "bidQty": "1.00000000",
            "askPrice": "%.2f" % (last + 0.01), "askQty": "1.00000000"}


def symbols_of(params):
    """The symbols a market-data call asks for: one, a JSON list, or all (None)."""
    if "symbol" in params:
        return [params["symbol"]], True
    if "symbols" in params:
        return json.loads(params["symbols"]), False
    return [s["symbol"] for s in BINANCE_INFO["symbols"]], False


def market_data(path, params):
    """(status, body) for a public market-data path; None when `path` is not one."""
    known = {s["symbol"] for s in BINANCE_INFO["symbols"]}
    if path == "/api/v3/klines" or path == "/api/v3/uiKlines":
        if params.get("symbol") not in known:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        k = klines(params)
        return (200, k) if k is not None else (400, {"code": -1120, "msg": "Invalid interval."})
    for p, make in (("/api/v3/ticker/24hr", ticker24), ("/api/v3/ticker/bookTicker", book_ticker),
                    # The last price stays at 50000 (keyward's guards take it as their reference).
                    ("/api/v3/ticker/price", lambda s: {"symbol": s, "price": "50000.00"})):
        if path == p:
            syms, single = symbols_of(params)
            if any(s not in known for s in syms):
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            out = [make(s) for s in syms]
            return 200, (out[0] if single else out)
    if path == "/api/v3/depth":
        last = price_at(now_ms())
        n = min(int(params.get("limit", 100)), 100)
        return 200, {"lastUpdateId": now_ms(),
                     "bids": [["%.2f" % (last - 0.01 - i), "1.00000000"] for i in range(n)],
                     "asks": [["%.2f" % (last + 0.01 + i), "1.00000000"] for i in range(n)]}
    if path in ("/api/v3/aggTrades", "/api/v3/trades", "/api/v3/historicalTrades"):
        if params.get("symbol") not in known:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        t = now_ms()
        n = min(int(params.get("limit", 5)), 1000)
        if path == "/api/v3/aggTrades":
            return 200, [{"a": 1000 + i, "p": "%.2f" % price_at(t - (n - i) * 1000), "q": "0.01000000", "f": 1000 + i,
                          "l": 1000 + i, "T": t - (n - i) * 1000, "m": i % 2 == 0, "M": True} for i in range(n)]
        return 200, [{"id": 1000 + i, "price": "%.2f" % price_at(t - (n - i) * 1000), "qty": "0.01000000",
                      "quoteQty": "%.8f" % (0.01 * price_at(t)), "time": t - (n - i) * 1000,
                      "isBuyerMaker": i % 2 == 0, "isBestMatch": True} for i in range(n)]
    if path == "/api/v3/avgPrice":
        return 200, {"mins": 5, "price": "%.2f" % price_at(now_ms()), "closeTime": now_ms()}
    if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
        return 200, {"timezone": "UTC", "serverTime": now_ms(), "rateLimits": [], "exchangeFilters": [],
                     "assets": [], "symbols": []}
    return None


def coin_config(coin, name, free, fee, minimum):
    return {"coin": coin, "depositAllEnable": True, "withdrawAllEnable": True, "name": name, "free": free,
            "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0",
            "isLegalMoney": False, "trading": True,
            "networkList": [{"network": coin, "coin": coin, "withdrawIntegerMultiple": "0.00000001",
                             "isDefault": True, "depositEnable": True, "withdrawEnable": True, "depositDesc": "",
                             "withdrawDesc": "", "specialTips": "", "name": name, "resetAddressStatus": False,
                             "addressRegex": "^.*$", "memoRegex": "", "withdrawFee": fee, "withdrawMin": minimum,
                             "withdrawMax": "9999999999", "minConfirm": 1, "unLockConfirm": 2,
                             "sameAddress": False, "estimatedArrivalTime": 25, "busy": False}]}
