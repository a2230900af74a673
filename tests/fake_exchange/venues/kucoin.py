"""KuCoin (API key version 2 or 3): KC-API-SIGN = base64 HMAC-SHA256(secret,
timestamp + METHOD + path[?query] + body), KC-API-PASSPHRASE = base64
HMAC-SHA256(secret, passphrase), KC-API-TIMESTAMP within 5 seconds.

The account is a high-frequency (HF) one in classic (not unified) mode, as
new KuCoin accounts are: ccxt asks (GET /api/v1/hf/accounts/opened, GET
/api/ua/v1/account/mode) and then trades /api/v1/hf/orders. The classic
order paths (/api/v1/orders) answer too."""
import base64
import hashlib
import hmac
import urllib.parse

from shared import (KEYINFO, Refused, add_open, arm, cancel_open, cred, disarm, json_body, next_order_id, now_ms,
                    open_orders)

KEYINFO["kucoin"] = {"code": "200000", "data": {
    "remark": "k", "apiKey": "", "apiVersion": 2, "permission": "General,Spot,Margin,Futures,InnerTransfer,Transfer",
    "ipWhitelist": "", "createdAt": 1728443843000, "uid": 165111215, "isMaster": True}}

SYMBOL = {"symbol": "BTC-USDT", "name": "BTC-USDT", "baseCurrency": "BTC", "quoteCurrency": "USDT",
          "feeCurrency": "USDT", "market": "USDS", "baseMinSize": "0.00001", "quoteMinSize": "0.1",
          "baseMaxSize": "10000000000", "quoteMaxSize": "99999999", "baseIncrement": "0.00000001",
          "quoteIncrement": "0.000001", "priceIncrement": "0.1", "priceLimitRate": "0.1", "minFunds": "0.1",
          "isMarginEnabled": False, "enableTrading": True, "feeCategory": 1, "makerFeeCoefficient": "1.00",
          "takerFeeCoefficient": "1.00", "st": False, "callauctionIsEnabled": False}


def ok(data):
    return {"code": "200000", "data": data}


def book():
    return ok({"time": now_ms(), "sequence": "1", "bids": [["49999.9", "1"]], "asks": [["50000.1", "1"]]})


def refuse(code, msg):
    raise Refused(401, {"code": code, "msg": msg})


def order_view(o):
    """An open order as KuCoin lists it (HF and classic alike)."""
    return {"id": o["id"], "symbol": o["symbol"], "opType": "DEAL", "type": o.get("type", "limit"),
            "side": o.get("side", "buy"), "price": o.get("price", "0"), "size": o.get("amount", "0"), "funds": "0",
            "dealSize": "0", "dealFunds": "0", "fee": "0", "feeCurrency": "USDT", "stp": "", "timeInForce": "GTC",
            "postOnly": False, "hidden": False, "iceberg": False, "visibleSize": "0", "cancelAfter": 0,
            "channel": "API", "clientOid": o.get("client", ""), "remark": None, "tags": "", "active": True,
            "isActive": True, "inOrderBook": True, "cancelExist": False, "createdAt": o.get("at", now_ms()),
            "lastUpdatedAt": o.get("at", now_ms()), "tradeType": "TRADE"}


def public(path):
    """The answer body of a public path, or None."""
    if path == "/api/v1/timestamp":
        return ok(now_ms())
    if path == "/api/v1/status":
        return ok({"status": "open", "msg": ""})
    if path in ("/api/v2/symbols", "/api/v1/symbols"):
        return ok([SYMBOL])
    if path == "/api/v1/market/orderbook/level1":
        return ok({"time": now_ms(), "sequence": "1", "price": "50000", "size": "0.01",
                   "bestBid": "49999.9", "bestBidSize": "1", "bestAsk": "50000.1", "bestAskSize": "1"})
    if path == "/api/v1/market/allTickers":
        return ok({"time": now_ms(), "ticker": [{"symbol": "BTC-USDT", "last": "50000", "buy": "49999.9",
                                                 "sell": "50000.1", "vol": "100", "volValue": "5000000"}]})
    if path == "/api/v1/market/stats":
        return ok({"time": now_ms(), "symbol": "BTC-USDT", "buy": "49999.9", "sell": "50000.1", "changeRate": "0",
                   "changePrice": "0", "high": "51000", "low": "49000", "vol": "100", "volValue": "5000000",
                   "last": "50000", "averagePrice": "50000", "takerFeeRate": "0.001", "makerFeeRate": "0.001"})
    if path.startswith("/api/v1/market/orderbook/level2"):
        return book()
    if path == "/api/v3/margin/symbols":
        return ok({"timestamp": now_ms(), "items": []})
    if path in ("/api/v3/currencies", "/api/v1/currencies", "/api/v1/isolated/symbols"):
        return ok([])
    return None


def authenticate(h, path, query, body):
    """The credential set (or Refused)."""
    hd = h.headers
    key = hd.get("KC-API-KEY")
    c = cred("kucoin", key)
    if key is None or key != c.get("key"):
        refuse("400003", "KC-API-KEY not exists")
    secret = c.get("secret", "").encode()
    ts = hd.get("KC-API-TIMESTAMP", "")
    if not ts.isdigit() or abs(int(ts) - now_ms()) > 5000:
        refuse("400002", "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds")
    text = ts + h.command + path + ("?" + query if query else "") + body
    expected = base64.b64encode(hmac.new(secret, text.encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, hd.get("KC-API-SIGN", "")):
        refuse("400005", "Invalid KC-API-SIGN")
    version = hd.get("KC-API-KEY-VERSION", "1")
    passphrase = c.get("passphrase", "")
    if version in ("2", "3"):
        passphrase = base64.b64encode(hmac.new(secret, passphrase.encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(passphrase, hd.get("KC-API-PASSPHRASE", "")):
        refuse("400004", "Invalid KC-API-PASSPHRASE")
    return c


def place(req, hf):
    oid = "%024x" % next_order_id()
    add_open("kucoin", req.get("symbol"), oid, client=req.get("clientOid", ""), side=req.get("side"),
             type=req.get("type", "limit"), price=req.get("price", "0"), amount=req.get("size", "0"), at=now_ms(),
             hf=hf)
    return ok({"orderId": oid, "clientOid": req.get("clientOid", "")})


def handle(h, path, query, body):
    params = dict(urllib.parse.parse_qsl(query))
    answer = public(path)
    if answer is not None:
        return h.reply(200, answer)
    if not path.startswith("/api/"):
        return h.reply(404, {"code": "404000", "msg": "Url Not Found"})
    c = authenticate(h, path, query, body)
    cmd, req = h.command, json_body(body)
    segments = path.split("/")
    if path == "/api/v1/hf/accounts/opened":
        return h.reply(200, ok(True))
    if path == "/api/ua/v1/account/mode":
        return h.reply(200, ok({"selfAccountMode": "CLASSIC", "subAccountMode": []}))
    if path == "/api/v1/accounts" and cmd == "GET":
        return h.reply(200, ok([
            {"id": "a1", "currency": "USDT", "type": params.get("type", "trade"), "balance": "10000",
             "available": "10000", "holds": "0"},
            {"id": "a2", "currency": "BTC", "type": params.get("type", "trade"), "balance": "1.5",
             "available": "1.5", "holds": "0"}]))
    if path == "/api/v1/user/api-key":
        info = KEYINFO["kucoin"]
        if isinstance(info.get("data"), dict) and not info["data"].get("apiKey"):
            info = dict(info, data=dict(info["data"], apiKey=c.get("key")))
        return h.reply(200, info)
    if path in ("/api/v1/hf/orders", "/api/v1/hf/orders/sync", "/api/v1/orders") and cmd == "POST":
        return h.reply(200, place(req, path.startswith("/api/v1/hf/")))
    if path == "/api/v1/hf/orders/active" and cmd == "GET":
        return h.reply(200, ok([order_view(o) for o in open_orders("kucoin", lambda o: o.get("hf"))
                                if o["symbol"] == params.get("symbol")]))
    if path == "/api/v1/hf/orders/active/symbols":
        symbols = {o["symbol"] for o in open_orders("kucoin", lambda o: o.get("hf"))}
        return h.reply(200, ok({"symbols": sorted(symbols)}))
    if path == "/api/v1/orders" and cmd == "GET":
        items = [order_view(o) for o in open_orders("kucoin", lambda o: not o.get("hf"))
                 if params.get("status", "active") == "active" and params.get("symbol") in (None, o["symbol"])]
        return h.reply(200, ok({"currentPage": 1, "pageSize": 50, "totalNum": len(items), "totalPage": 1,
                                "items": items}))
    if len(segments) == 6 and segments[:5] == ["", "api", "v1", "hf", "orders"] and cmd == "DELETE":
        if segments[5] == "cancelAll":
            gone = cancel_open("kucoin", lambda o: o.get("hf"))
            return h.reply(200, ok({"succeedSymbols": sorted({o["symbol"] for o in gone}), "failedSymbols": []}))
        gone = cancel_open("kucoin", lambda o: o["id"] == segments[5])
        if not gone:
            return h.reply(400, {"code": "400100", "msg": "order not exist."})
        return h.reply(200, ok({"orderId": segments[5]}))
    if path == "/api/v1/hf/orders" and cmd == "DELETE":
        cancel_open("kucoin", lambda o: o.get("hf") and o["symbol"] == params.get("symbol"))
        return h.reply(200, ok("success"))
    if len(segments) == 5 and segments[:4] == ["", "api", "v1", "orders"] and cmd == "DELETE":
        gone = cancel_open("kucoin", lambda o: o["id"] == segments[4])
        if not gone:
            return h.reply(400, {"code": "400100", "msg": "order not exist."})
        return h.reply(200, ok({"cancelledOrderIds": [segments[4]]}))
    if path == "/api/v1/orders" and cmd == "DELETE":
        gone = cancel_open("kucoin", lambda o: not o.get("hf") and params.get("symbol") in (None, o["symbol"]))
        return h.reply(200, ok({"cancelledOrderIds": [o["id"] for o in gone]}))
    if path == "/api/v1/hf/orders/dead-cancel-all":
        timeout = int(req.get("timeout", -1))
        if timeout != -1 and not 5 <= timeout <= 86400:
            return h.reply(400, {"code": "400100", "msg": "timeout must be -1 or between 5 and 86400"})
        # Each call replaces the last setting: every symbol named, or all of them.
        disarm("kucoin")
        for s in (req.get("symbols") or "*").split(","):
            arm("kucoin", s.strip(), timeout)
        now = now_ms() // 1000
        return h.reply(200, ok({"currentTime": now, "triggerTime": now + timeout} if timeout > 0 else None))
    if path in ("/api/v1/hf/fills", "/api/v1/fills"):
        return h.reply(200, ok({"items": [], "lastId": 0, "currentPage": 1, "pageSize": 50, "totalNum": 0,
                                "totalPage": 0}))
    if path in ("/api/v3/withdrawals", "/api/v1/withdrawals") and cmd == "POST":
        return h.reply(200, ok({"withdrawalId": "%024x" % next_order_id()}))
    if path == "/api/v3/market/orderbook/level2":
        return h.reply(200, book())
    if path == "/api/v1/base-fee":
        return h.reply(200, ok({"takerFeeRate": "0.001", "makerFeeRate": "0.001"}))
    if path == "/api/v1/trade-fees":
        return h.reply(200, ok([{"symbol": "BTC-USDT", "takerFeeRate": "0.001", "makerFeeRate": "0.001"}]))
    h.unhandled()
    return h.reply(200, ok([]))
