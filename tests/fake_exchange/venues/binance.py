"""Binance: hex HMAC-SHA256 (or a self-generated key's signature) over the
parameters, key in X-MBX-APIKEY. Spot orders of record (POST /api/v3/order
keeps the order NEW; GET and DELETE /api/v3/order, openOrders, allOrders,
myTrades), futures orders, the wallet reads Freqtrade makes, cancel-all and
the futures dead-man switch."""
import urllib.parse

from shared import (CONTROL, KEYINFO, LOCK, OPEN, add_open, arm, cancel_open, cred, next_order_id, now_ms,
                    sig_ok)

from .binance_data import BINANCE_INFO, coin_config, market_data

KEYINFO["binance"] = {
    "ipRestrict": False, "createTime": 1698645219000, "enableReading": True,
    "enableWithdrawals": True, "enableInternalTransfer": True, "enableMargin": False,
    "enableFutures": False, "permitsUniversalTransfer": True, "enableVanillaOptions": False,
    "enableSpotAndMarginTrading": True, "enablePortfolioMarginTrading": False}

# Spot orders of record: {orderId: order as GET /api/v3/order answers it}.
SPOT_ORDERS = {}
BAD_KEY = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


def handle(h, path, query, body):
    weight = {"X-MBX-USED-WEIGHT-1M": str(CONTROL["weight"])}
    public = {"/api/v3/ping": {}, "/api/v3/time": {"serverTime": now_ms()},
              "/api/v3/exchangeInfo": dict(BINANCE_INFO, serverTime=now_ms()),
              "/api/v3/ticker/price": {"symbol": "BTCUSDT", "price": "50000.00"}}
    # A bare ticker/price keeps the original single answer; with symbol(s) it is answered below.
    if path in public and not (path == "/api/v3/ticker/price" and query):
        return h.reply(200, public[path], weight)
    md = market_data(path, dict(urllib.parse.parse_qsl(query)))
    if md is not None:
        return h.reply(md[0], md[1], weight)
    c = cred("binance", h.headers.get("X-MBX-APIKEY"))
    payload = query or body
    # MARKET_DATA calls: the API key only, no signature (ccxt's fetchMargins).
    if path in ("/sapi/v1/margin/allPairs", "/sapi/v1/margin/isolated/allPairs") and "&signature=" not in payload:
        if h.headers.get("X-MBX-APIKEY") != c.get("key"):
            return h.reply(401, BAD_KEY)
        return h.reply(200, [], weight)
    if h.headers.get("X-MBX-APIKEY") != c.get("key"):
        return h.reply(401, BAD_KEY)
    if "&signature=" not in payload:
        return h.reply(400, {"code": -1102, "msg": "Mandatory parameter 'signature' was not sent."})
    signed, sig = payload.rsplit("&signature=", 1)
    if not sig_ok(c, signed, urllib.parse.unquote(sig)):
        return h.reply(400, {"code": -1022, "msg": "Signature for this request is not valid."})
    params = dict(urllib.parse.parse_qsl(signed))
    if abs(int(params.get("timestamp", 0)) - now_ms()) > int(params.get("recvWindow", 5000)):
        return h.reply(400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
    if path == "/api/v3/account":
        return h.reply(200, {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": True,
                             "canDeposit": True, "updateTime": now_ms(), "accountType": "SPOT",
                             "balances": [{"asset": "BTC", "free": "1.5", "locked": "0.0"},
                                          {"asset": "USDT", "free": "10000.0", "locked": "0.0"}],
                             "permissions": ["SPOT"]}, weight)
    if path == "/sapi/v1/account/apiRestrictions":
        return h.reply(200, KEYINFO["binance"], weight)
    if path == "/fapi/v1/openOrders" and h.command == "GET":
        with LOCK:
            listed = [{"symbol": o["symbol"], "orderId": int(o["id"]), "status": "NEW"}
                      for o in OPEN.get("binance", []) if o["market"] == "futures"]
        return h.reply(200, listed, weight)
    if path == "/fapi/v1/allOpenOrders" and h.command == "DELETE":
        cancel_open("binance", lambda o: o["market"] == "futures" and o["symbol"] == params.get("symbol"))
        return h.reply(200, {"code": 200, "msg": "The operation of cancel all open order is done."}, weight)
    if path == "/fapi/v1/countdownCancelAll":
        arm("binance", params.get("symbol"), int(params.get("countdownTime", "0")) / 1000.0)
        return h.reply(200, {"symbol": params.get("symbol"), "countdownTime": params.get("countdownTime")}, weight)
    if path == "/sapi/v1/capital/withdraw/apply":
        return h.reply(200, {"id": "w%d" % next_order_id()}, weight)
    if path == "/fapi/v1/order" and h.command == "POST":
        oid = next_order_id()
        add_open("binance", params.get("symbol"), oid, "futures")
        return h.reply(200, {"symbol": params.get("symbol"), "orderId": oid, "status": "NEW",
                             "clientOrderId": "c%d" % oid, "price": params.get("price", "0"),
                             "origQty": params.get("quantity", "0"), "executedQty": "0",
                             "type": params.get("type"), "side": params.get("side"),
                             "updateTime": now_ms()}, weight)
    answer = spot(h.command, path, params)
    if answer is not None:
        return h.reply(answer[0], answer[1], weight)
    h.unhandled()
    return h.reply(200, {"ok": True, "path": path}, weight)


def place(params):
    oid = next_order_id()
    t = now_ms()
    order = {"symbol": params.get("symbol"), "orderId": oid, "orderListId": -1,
             "clientOrderId": params.get("newClientOrderId", "c%d" % oid),
             "price": params.get("price", "0.00"), "origQty": params.get("quantity", "0"),
             "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "status": "NEW",
             "timeInForce": params.get("timeInForce", "GTC"), "type": params.get("type"),
             "side": params.get("side"), "stopPrice": params.get("stopPrice", "0.00"),
             "icebergQty": "0.00000000", "time": t, "updateTime": t, "isWorking": True,
             "workingTime": t, "origQuoteOrderQty": "0.00000000",
             "selfTradePreventionMode": "EXPIRE_MAKER"}
    with LOCK:
        SPOT_ORDERS[oid] = order
    add_open("binance", params.get("symbol"), oid, "spot")
    ack = {k: order[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty",
                                 "executedQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
                                 "side", "workingTime", "selfTradePreventionMode")}
    return 200, dict(ack, transactTime=t, origQuoteOrderQty="0.00000000", fills=[])


def one_order(cmd, params):
    """GET or DELETE /api/v3/order: by orderId or origClientOrderId."""
    with LOCK:
        o = SPOT_ORDERS.get(int(params.get("orderId") or 0))
        if o is None and params.get("origClientOrderId"):
            o = next((v for v in SPOT_ORDERS.values() if v["clientOrderId"] == params["origClientOrderId"]), None)
        o = dict(o) if o else None
    if o is None or o["symbol"] != params.get("symbol"):
        return 400, ({"code": -2013, "msg": "Order does not exist."} if cmd == "GET"
                     else {"code": -2011, "msg": "Unknown order sent."})
    if cmd == "GET":
        return 200, o
    if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
        return 400, {"code": -2011, "msg": "Unknown order sent."}
    cancel_open("binance", lambda x: x["market"] == "spot" and x["id"] == str(o["orderId"]))
    with LOCK:
        SPOT_ORDERS[o["orderId"]].update(status="CANCELED", updateTime=now_ms(), isWorking=False)
        o = dict(SPOT_ORDERS[o["orderId"]])
    return 200, {"symbol": o["symbol"], "origClientOrderId": o["clientOrderId"],
                 "orderId": o["orderId"], "orderListId": -1,
                 "clientOrderId": params.get("newClientOrderId", "x%d" % o["orderId"]),
                 "transactTime": now_ms(), "price": o["price"], "origQty": o["origQty"],
                 "executedQty": o["executedQty"], "cummulativeQuoteQty": o["cummulativeQuoteQty"],
                 "status": "CANCELED", "timeInForce": o["timeInForce"], "type": o["type"],
                 "side": o["side"], "selfTradePreventionMode": o["selfTradePreventionMode"]}


def spot(cmd, path, params):
    """Signed spot and wallet calls: (status, body), or None when `path` is not one."""
    if path == "/api/v3/order" and cmd == "POST":
        return place(params)
    if path == "/api/v3/order" and cmd in ("GET", "DELETE"):
        return one_order(cmd, params)
    if path == "/api/v3/openOrders" and cmd == "GET":
        with LOCK:
            listed = [dict(SPOT_ORDERS[int(x["id"])]) if int(x["id"]) in SPOT_ORDERS else
                      {"symbol": x["symbol"], "orderId": int(x["id"]), "status": "NEW"}
                      for x in OPEN.get("binance", []) if x["market"] == "spot"
                      and (not params.get("symbol") or x["symbol"] == params["symbol"])]
        return 200, listed
    if path == "/api/v3/openOrders" and cmd == "DELETE":
        gone = cancel_open("binance", lambda x: x["market"] == "spot" and x["symbol"] == params.get("symbol"))
        with LOCK:
            for x in gone:
                if int(x["id"]) in SPOT_ORDERS:
                    SPOT_ORDERS[int(x["id"])].update(status="CANCELED", updateTime=now_ms(), isWorking=False)
        return 200, [{"symbol": x["symbol"], "orderId": int(x["id"]), "status": "CANCELED"} for x in gone]
    if path == "/api/v3/allOrders":
        with LOCK:
            listed = [dict(v) for k, v in sorted(SPOT_ORDERS.items()) if v["symbol"] == params.get("symbol")]
        return 200, listed[-int(params.get("limit", 500)):]
    if path == "/api/v3/myTrades":
        return 200, []  # nothing ever fills here
    if path == "/api/v3/account/commission":
        rates = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
        return 200, {"symbol": params.get("symbol"), "standardCommission": rates,
                     "specialCommission": dict(rates, maker="0", taker="0"),
                     "taxCommission": dict(rates, maker="0", taker="0"),
                     "discount": {"enabledForAccount": True, "enabledForSymbol": True,
                                  "discountAsset": "BNB", "discount": "0.75000000"}}
    if path == "/sapi/v1/capital/config/getall":
        return 200, [coin_config("BTC", "Bitcoin", "1.5", "0.0002", "0.001"),
                     coin_config("USDT", "TetherUS", "10000.0", "1", "10")]
    if path == "/sapi/v1/asset/tradeFee":
        syms = [params["symbol"]] if params.get("symbol") else [x["symbol"] for x in BINANCE_INFO["symbols"]]
        return 200, [{"symbol": x, "makerCommission": "0.001", "takerCommission": "0.001"} for x in syms]
    if path in ("/sapi/v1/spot/delist-schedule", "/sapi/v1/margin/allPairs", "/sapi/v1/margin/isolated/allPairs"):
        return 200, []
    return None
