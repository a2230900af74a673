"""Bybit v5: hex HMAC-SHA256 (or a self-generated key's signature) over
timestamp + key + recv window + query/body. Refusals are HTTP 200 with a
retCode, as Bybit answers them."""
from shared import KEYINFO, add_open, cancel_open, cred, json_body, next_order_id, now_ms, open_orders, sig_ok

KEYINFO["bybit"] = {"retCode": 0, "retMsg": "", "result": {"id": "1", "readOnly": 0, "permissions": {
    "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "Wallet": ["AccountTransfer", "Withdraw"],
    "Options": [], "Derivatives": []}, "ips": ["*"], "deadlineDay": 80, "expiredAt": "2099-01-01T00:00:00Z"}}

INSTRUMENT = {
    "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0", "status": "Trading",
    "marginTrading": "none", "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                                               "minOrderQty": "0.000048", "maxOrderQty": "71.73956243",
                                               "minOrderAmt": "1", "maxOrderAmt": "2000000"},
    "priceFilter": {"tickSize": "0.01"}}


def ok(result, **extra):
    return dict({"retCode": 0, "retMsg": "OK", "result": result, "time": now_ms()}, **extra)


def listed(o):
    t = str(now_ms())
    return {"symbol": o["symbol"], "orderId": o["id"], "orderLinkId": o.get("client", ""), "side": o.get("side"),
            "orderType": o.get("type"), "price": o.get("price", ""), "qty": o.get("amount", ""),
            "orderStatus": "New", "timeInForce": "GTC", "cumExecQty": "0", "cumExecValue": "0",
            "avgPrice": "", "createdTime": t, "updatedTime": t}


def handle(h, path, query, body):
    if path.startswith("/v5/market/"):
        if path == "/v5/market/time":
            t = now_ms()
            return h.reply(200, ok({"timeSecond": str(t // 1000), "timeNano": str(t * 1000000)}))
        if path == "/v5/market/instruments-info":
            return h.reply(200, ok({"category": "spot", "list": [INSTRUMENT], "nextPageCursor": ""}))
        if path == "/v5/market/tickers":
            return h.reply(200, ok({"category": "spot", "list": [{"symbol": "BTCUSDT", "lastPrice": "50000"}]}))
        return h.reply(200, ok({"list": []}))
    hd = h.headers
    c = cred("bybit", hd.get("X-BAPI-API-KEY"))
    payload = query if h.command == "GET" else body
    text = hd.get("X-BAPI-TIMESTAMP", "") + c.get("key", "") + hd.get("X-BAPI-RECV-WINDOW", "") + payload
    limit = {"X-Bapi-Limit-Status": "99", "X-Bapi-Limit": "100"}
    if hd.get("X-BAPI-API-KEY") != c.get("key"):
        return h.reply(200, {"retCode": 10003, "retMsg": "API key is invalid.", "result": {}, "time": now_ms()})
    if not sig_ok(c, text, hd.get("X-BAPI-SIGN", "")):
        return h.reply(200, {"retCode": 10004, "retMsg": "error sign!", "result": {}, "time": now_ms()})
    if path == "/v5/order/create":
        order = json_body(body)
        oid = next_order_id()
        add_open("bybit", order.get("symbol"), oid, order.get("category", "spot"), client=order.get("orderLinkId", ""),
                 side=order.get("side"), type=order.get("orderType"), price=order.get("price", ""),
                 amount=order.get("qty", ""))
        return h.reply(200, ok({"orderId": str(oid), "orderLinkId": order.get("orderLinkId", "")}), limit)
    if path == "/v5/user/query-api":
        return h.reply(200, KEYINFO["bybit"], limit)
    if path == "/v5/order/cancel-all":
        req = json_body(body)
        gone = cancel_open("bybit", lambda o: o["market"] == req.get("category"))
        return h.reply(200, ok({"list": [{"orderId": o["id"], "orderLinkId": ""} for o in gone], "success": "1"}),
                       limit)
    if path == "/v5/order/cancel":
        req = json_body(body)
        cancel_open("bybit", lambda o: o["id"] == req.get("orderId"))
        return h.reply(200, ok({"orderId": req.get("orderId"), "orderLinkId": req.get("orderLinkId", "")}), limit)
    if path == "/v5/order/realtime":
        return h.reply(200, ok({"category": "spot", "list": [listed(o) for o in open_orders("bybit")],
                                "nextPageCursor": ""}), limit)
    if path == "/v5/account/wallet-balance":
        return h.reply(200, ok({"list": [{"accountType": "UNIFIED", "totalEquity": "10000", "coin": [
            {"coin": "USDT", "equity": "10000", "walletBalance": "10000", "locked": "0",
             "availableToWithdraw": "10000"}]}]}), limit)
    if path == "/v5/execution/list":
        return h.reply(200, ok({"category": "spot", "list": [], "nextPageCursor": ""}), limit)
    h.unhandled()
    return h.reply(200, ok({"list": []}), limit)
