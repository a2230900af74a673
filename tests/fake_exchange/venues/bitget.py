"""Bitget v2 (a classic account): base64 HMAC-SHA256 (or RSA) over timestamp +
method + path?query + body, with the plain passphrase. The unified-account
API (/api/v3/) refuses a classic account (code 40084), which is how ccxt
tells the two apart."""
import urllib.parse

from shared import KEYINFO, add_open, cancel_open, cred, json_body, next_order_id, now_ms, open_orders, sig_ok

KEYINFO["bitget"] = {"code": "00000", "msg": "success", "data": {"userId": "1", "ips": "",
                                                                 "authorities": ["stor", "stow", "wtow", "wwow"]}}

SYMBOL = {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "minTradeAmount": "0",
          "maxTradeAmount": "10000000000", "takerFeeRate": "0.002", "makerFeeRate": "0.002", "pricePrecision": "2",
          "quantityPrecision": "6", "quotePrecision": "8", "status": "online", "minTradeUSDT": "1",
          "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05", "areaSymbol": "no", "orderQuantity": "200",
          "openTime": "1532454360000", "offTime": ""}


def ok(data):
    return {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": data}


def ticker(symbol):
    return {"symbol": symbol, "high24h": "51000", "open": "49000", "low24h": "48000", "lastPr": "50000",
            "quoteVolume": "5000000", "baseVolume": "100", "usdtVolume": "5000000", "bidPr": "49999.99",
            "askPr": "50000.01", "bidSz": "1", "askSz": "1", "openUtc": "49000", "ts": str(now_ms()),
            "changeUtc24h": "0", "change24h": "0"}


def order_view(o, status="live"):
    t = str(o.get("at", now_ms()))
    return {"userId": "1", "symbol": o["symbol"], "orderId": o["id"], "clientOid": o.get("client", ""),
            "priceAvg": o.get("price", "0"), "price": o.get("price", "0"), "size": o.get("amount", "0"),
            "orderType": o.get("type", "limit"), "side": o.get("side", "buy"), "status": status, "basePrice": "0",
            "baseVolume": "0", "quoteVolume": "0", "enterPointSource": "API", "orderSource": "normal",
            "force": "gtc", "cTime": t, "uTime": t}


def public(path, params):
    if path == "/api/v2/public/time":
        return ok({"serverTime": str(now_ms())})
    if path == "/api/v2/spot/public/symbols":
        return ok([SYMBOL] if params.get("symbol") in (None, "BTCUSDT") else [])
    if path == "/api/v2/spot/market/tickers":
        return ok([ticker(params.get("symbol", "BTCUSDT"))])
    if path.startswith(("/api/v2/public/", "/api/v2/spot/public/", "/api/v2/spot/market/", "/api/v2/mix/market/",
                        "/api/v2/margin/currencies", "/api/v3/market/")):
        return ok([])
    return None


def handle(h, path, query, body):
    params = dict(urllib.parse.parse_qsl(query))
    answer = public(path, params)
    if answer is not None:
        return h.reply(200, answer)
    hd = h.headers
    c = cred("bitget", hd.get("ACCESS-KEY"))
    target = path + ("?" + query if query else "")
    prehash = hd.get("ACCESS-TIMESTAMP", "") + h.command + target + body
    if hd.get("ACCESS-KEY") != c.get("key") or hd.get("ACCESS-PASSPHRASE") != c.get("passphrase"):
        return h.reply(400, {"code": "40006", "msg": "Invalid ACCESS_KEY", "requestTime": now_ms(), "data": None})
    if not sig_ok(c, prehash, hd.get("ACCESS-SIGN", ""), hex_hmac=False):
        return h.reply(400, {"code": "40009", "msg": "sign signature error", "requestTime": now_ms(), "data": None})
    req = json_body(body)
    if path.startswith("/api/v3/"):
        return h.reply(400, {"code": "40084", "msg": "You are in Classic Account mode, please use the classic "
                             "account API", "requestTime": now_ms(), "data": None})
    if path == "/api/v2/spot/trade/place-order":
        oid = str(next_order_id())
        add_open("bitget", req.get("symbol"), oid, client=req.get("clientOid", ""), side=req.get("side"),
                 type=req.get("orderType"), price=req.get("price", "0"), amount=req.get("size"), at=now_ms())
        return h.reply(200, ok({"orderId": oid, "clientOid": req.get("clientOid", "")}))
    if path == "/api/v2/spot/trade/cancel-order":
        gone = cancel_open("bitget", lambda o: o["id"] == str(req.get("orderId")) and o["symbol"] == req.get("symbol"))
        if not gone:
            return h.reply(400, {"code": "43001", "msg": "The order does not exist", "requestTime": now_ms(),
                                 "data": None})
        return h.reply(200, ok({"orderId": gone[0]["id"], "clientOid": gone[0].get("client", "")}))
    if path == "/api/v2/spot/account/info":
        return h.reply(200, dict(KEYINFO["bitget"], requestTime=now_ms()))
    if path == "/api/v2/spot/trade/unfilled-orders":
        return h.reply(200, ok([order_view(o) for o in open_orders("bitget")
                                if params.get("symbol") in (None, o["symbol"])]))
    if path == "/api/v2/spot/trade/orderInfo":
        found = open_orders("bitget", lambda o: o["id"] == params.get("orderId"))
        return h.reply(200, ok([order_view(o) for o in found]))
    if path == "/api/v2/spot/trade/cancel-symbol-order":
        symbol = req.get("symbol")
        cancel_open("bitget", lambda o: o["symbol"] == symbol)
        return h.reply(200, ok({"symbol": symbol}))
    if path == "/api/v2/mix/order/cancel-all-orders":
        return h.reply(200, ok({"successList": [], "failureList": []}))
    if path == "/api/v2/spot/account/assets":
        return h.reply(200, ok([{"coin": "USDT", "available": "10000", "frozen": "0", "locked": "0",
                                 "limitAvailable": "0", "uTime": str(now_ms())},
                                {"coin": "BTC", "available": "1.5", "frozen": "0", "locked": "0",
                                 "limitAvailable": "0", "uTime": str(now_ms())}]))
    if path == "/api/v2/spot/wallet/withdrawal":
        return h.reply(200, ok({"orderId": str(next_order_id()), "clientOid": req.get("clientOid", "")}))
    if path in ("/api/v2/spot/trade/fills", "/api/v2/spot/trade/history-orders"):
        return h.reply(200, ok([]))
    h.unhandled()
    return h.reply(200, ok([]))
