"""OKX v5: base64 HMAC-SHA256 over timestamp + method + path?query + body,
with the passphrase in OK-ACCESS-PASSPHRASE."""
import base64
import hashlib
import hmac

from shared import KEYINFO, add_open, arm, cancel_open, cred, json_body, next_order_id, now_ms, open_orders

KEYINFO["okx"] = {"code": "0", "msg": "", "data": [{"perm": "read_only,withdraw,trade", "ip": "", "label": "k"}]}

INSTRUMENT = {
    "instType": "SPOT", "instId": "BTC-USDT", "uly": "", "instFamily": "", "baseCcy": "BTC",
    "quoteCcy": "USDT", "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
    "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "10", "tickSz": "0.1",
    "lotSz": "0.00000001", "minSz": "0.00001", "ctType": "", "alias": "", "state": "live",
    "maxLmtSz": "9999999999", "maxMktSz": "1000000", "ruleType": "normal"}


def ok(data):
    return {"code": "0", "msg": "", "data": data}


def pending(o):
    """An open order as orders-pending lists it."""
    t = str(now_ms())
    return {"instType": "SPOT", "instId": o["symbol"], "ordId": o["id"], "clOrdId": o.get("client", ""),
            "state": "live", "ordType": o.get("type", "limit"), "side": o.get("side", "buy"),
            "px": o.get("price", ""), "sz": o.get("amount", ""), "accFillSz": "0", "avgPx": "", "fee": "0",
            "feeCcy": "", "tdMode": "cash", "cTime": t, "uTime": t}


def handle(h, path, query, body):
    if path.startswith(("/api/v5/public/", "/api/v5/market/")):
        if path == "/api/v5/public/time":
            return h.reply(200, ok([{"ts": str(now_ms())}]))
        if path == "/api/v5/public/instruments":
            return h.reply(200, ok([INSTRUMENT]))
        if path == "/api/v5/market/ticker":
            return h.reply(200, ok([{"instId": "BTC-USDT", "last": "50000"}]))
        return h.reply(200, ok([]))
    hd = h.headers
    c = cred("okx", hd.get("OK-ACCESS-KEY"))
    target = path + ("?" + query if query else "")
    prehash = (hd.get("OK-ACCESS-TIMESTAMP", "") + h.command + target + body).encode()
    expected = base64.b64encode(hmac.new(c.get("secret", "").encode(), prehash, hashlib.sha256).digest()).decode()
    if hd.get("OK-ACCESS-KEY") != c.get("key") or hd.get("OK-ACCESS-PASSPHRASE") != c.get("passphrase"):
        return h.reply(401, {"code": "50111", "msg": "Invalid OK-ACCESS-KEY"})
    if not hmac.compare_digest(expected, hd.get("OK-ACCESS-SIGN", "")):
        return h.reply(401, {"code": "50113", "msg": "Invalid Sign"})
    if path == "/api/v5/account/balance":
        return h.reply(200, ok([{"uTime": str(now_ms()), "totalEq": "10000",
                                 "details": [{"ccy": "USDT", "availBal": "10000", "cashBal": "10000", "eq": "10000",
                                              "frozenBal": "0", "uTime": str(now_ms())}]}]))
    if path in ("/api/v5/trade/order", "/api/v5/trade/batch-orders") and h.command == "POST":
        orders = json_body(body)
        orders = orders if isinstance(orders, list) else [orders]
        data = []
        for o in orders:
            oid = next_order_id()
            add_open("okx", o.get("instId"), oid, client=o.get("clOrdId", ""), type=o.get("ordType"),
                     side=o.get("side"), price=o.get("px", ""), amount=o.get("sz", ""))
            data.append({"ordId": str(oid), "clOrdId": o.get("clOrdId", ""), "tag": "", "sCode": "0", "sMsg": ""})
        return h.reply(200, ok(data))
    if path == "/api/v5/account/config":
        return h.reply(200, KEYINFO["okx"])
    if path == "/api/v5/trade/orders-pending":
        return h.reply(200, ok([pending(o) for o in open_orders("okx")][:100]))
    if path in ("/api/v5/trade/cancel-order", "/api/v5/trade/cancel-batch-orders"):
        items = json_body(body, [])
        items = items if isinstance(items, list) else [items]
        ids = {str(i.get("ordId")) for i in items}
        cancel_open("okx", lambda o: o["id"] in ids)
        return h.reply(200, ok([{"ordId": i.get("ordId"), "clOrdId": i.get("clOrdId", ""), "sCode": "0", "sMsg": ""}
                                for i in items]))
    if path == "/api/v5/trade/cancel-all-after":
        arm("okx", "*", int(json_body(body).get("timeOut", "0")))
        return h.reply(200, ok([{"triggerTime": str(now_ms() // 1000), "tag": "", "ts": str(now_ms() // 1000)}]))
    if path == "/api/v5/asset/withdrawal":
        w = json_body(body)
        return h.reply(200, ok([{"amt": w.get("amt"), "wdId": str(next_order_id()), "ccy": w.get("ccy"),
                                 "clientId": "", "chain": w.get("chain", "")}]))
    if path in ("/api/v5/trade/fills", "/api/v5/trade/fills-history", "/api/v5/trade/orders-algo-pending"):
        return h.reply(200, ok([]))
    h.unhandled()
    return h.reply(200, ok([]))
