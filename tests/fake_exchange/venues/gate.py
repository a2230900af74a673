"""Gate API v4: KEY, Timestamp (seconds, within 60 of the fake's clock),
SIGN = hex HMAC-SHA512(secret, METHOD \\n /api/v4/path \\n query \\n
hex(SHA512(body)) \\n timestamp). A classic (not unified) spot account."""
import hashlib
import hmac
import urllib.parse

from shared import KEYINFO, Refused, add_open, arm, cancel_open, cred, json_body, next_order_id, now_ms, open_orders

# GET /api/v4/account/detail: what keyward's key check reads (no permissions there).
KEYINFO["gate"] = {"user_id": 10406147, "ip_whitelist": [], "currency_pairs": [], "key": {"mode": 1}, "tier": 0,
                   "tier_expire_time": "0001-01-01T00:00:00Z", "copy_trading_role": 0}

PAIR = {"id": "BTC_USDT", "base": "BTC", "base_name": "Bitcoin", "quote": "USDT", "quote_name": "Tether",
        "fee": "0.2", "min_base_amount": "0.00001", "min_quote_amount": "3", "max_base_amount": "10000",
        "max_quote_amount": "5000000", "amount_precision": 6, "precision": 1, "trade_status": "tradable",
        "sell_start": 1516378650, "buy_start": 1516378650, "delisting_time": 0, "type": "normal",
        "trade_url": "https://www.gate.io/trade/BTC_USDT", "st_tag": False}


def refuse(status, label, message):
    raise Refused(status, {"label": label, "message": message})


def order_view(o, status="open"):
    t = o.get("at", now_ms())
    return {"id": o["id"], "text": o.get("client", "apiv4"), "amend_text": "-", "create_time": str(t // 1000),
            "update_time": str(t // 1000), "create_time_ms": t, "update_time_ms": t, "status": status,
            "currency_pair": o["symbol"], "type": o.get("type", "limit"), "account": "spot",
            "side": o.get("side", "buy"), "amount": o.get("amount", "0"), "price": o.get("price", "0"),
            "time_in_force": "gtc", "iceberg": "0", "left": o.get("amount", "0"), "filled_amount": "0",
            "fill_price": "0", "filled_total": "0", "fee": "0", "fee_currency": "BTC", "point_fee": "0",
            "gt_fee": "0", "gt_maker_fee": "0", "gt_taker_fee": "0", "gt_discount": False, "rebated_fee": "0",
            "rebated_fee_currency": "USDT", "finish_as": "open" if status == "open" else "cancelled"}


def public(path, params):
    if path == "/api/v4/spot/time":
        return {"server_time": now_ms()}
    if path == "/api/v4/spot/currency_pairs":
        return [PAIR]
    if path == "/api/v4/spot/currency_pairs/BTC_USDT":
        return PAIR
    if path == "/api/v4/spot/tickers":
        return [{"currency_pair": "BTC_USDT", "last": "50000", "lowest_ask": "50000.1", "highest_bid": "49999.9",
                 "change_percentage": "0", "base_volume": "100", "quote_volume": "5000000", "high_24h": "51000",
                 "low_24h": "49000"}]
    if path == "/api/v4/spot/order_book":
        return {"id": now_ms(), "current": now_ms(), "update": now_ms(), "asks": [["50000.1", "1"]],
                "bids": [["49999.9", "1"]]}
    if path in ("/api/v4/spot/trades", "/api/v4/spot/candlesticks"):
        return []
    if path in ("/api/v4/margin/currency_pairs", "/api/v4/spot/currencies") or path.startswith(
            ("/api/v4/futures/", "/api/v4/delivery/", "/api/v4/options/")) and "/contracts" in path:
        return []
    return None


def authenticate(h, path, query, body):
    hd = h.headers
    key = hd.get("KEY")
    c = cred("gate", key)
    if key is None or key != c.get("key"):
        refuse(401, "INVALID_KEY", "Invalid key provided")
    ts = hd.get("Timestamp", "")
    try:
        late = abs(float(ts) * 1000 - now_ms()) > 60000
    except ValueError:
        late = True
    if late:
        refuse(401, "REQUEST_EXPIRED", "gap between request Timestamp and server time exceeds 60")
    text = "\n".join([h.command, path, query, hashlib.sha512(body.encode()).hexdigest(), ts])
    expected = hmac.new(c.get("secret", "").encode(), text.encode(), hashlib.sha512).hexdigest()
    if not hmac.compare_digest(expected, hd.get("SIGN", "")):
        refuse(401, "INVALID_SIGNATURE", "Signature mismatch")
    return c


def handle(h, path, query, body):
    params = dict(urllib.parse.parse_qsl(query))
    answer = public(path, params)
    if answer is not None:
        return h.reply(200, answer)
    authenticate(h, path, query, body)
    cmd, req = h.command, json_body(body)
    segments = path.split("/")
    if path == "/api/v4/account/detail":
        return h.reply(200, KEYINFO["gate"])
    if path == "/api/v4/spot/accounts":
        return h.reply(200, [{"currency": "USDT", "available": "10000", "locked": "0", "update_id": 1},
                             {"currency": "BTC", "available": "1.5", "locked": "0", "update_id": 1}])
    if path == "/api/v4/spot/orders" and cmd == "POST":
        oid = str(next_order_id())
        add_open("gate", req.get("currency_pair"), oid, client=req.get("text", "apiv4"), side=req.get("side"),
                 type=req.get("type", "limit"), price=req.get("price", "0"), amount=req.get("amount", "0"),
                 at=now_ms())
        return h.reply(201, order_view(open_orders("gate", lambda o: o["id"] == oid)[0]))
    if path == "/api/v4/spot/orders" and cmd == "GET":
        if params.get("status") != "open":
            return h.reply(200, [])
        return h.reply(200, [order_view(o) for o in open_orders("gate")
                             if o["symbol"] == params.get("currency_pair")])
    if path == "/api/v4/spot/open_orders":
        pairs = sorted({o["symbol"] for o in open_orders("gate")})
        return h.reply(200, [{"currency_pair": p, "total": len(open_orders("gate", lambda o: o["symbol"] == p)),
                              "orders": [order_view(o) for o in open_orders("gate", lambda o: o["symbol"] == p)]}
                             for p in pairs])
    if len(segments) == 6 and segments[:5] == ["", "api", "v4", "spot", "orders"] and cmd == "DELETE":
        gone = cancel_open("gate", lambda o: o["id"] == segments[5])
        if not gone:
            refuse(404, "ORDER_NOT_FOUND", "Order not found")
        return h.reply(200, order_view(gone[0], "cancelled"))
    if path == "/api/v4/spot/orders" and cmd == "DELETE":
        gone = cancel_open("gate", lambda o: params.get("currency_pair") in (None, o["symbol"])
                           and params.get("side") in (None, o.get("side")))
        return h.reply(200, [dict(order_view(o, "cancelled"), succeeded=True) for o in gone])
    if path == "/api/v4/spot/cancel_batch_orders":
        ids = {str(i.get("id")) for i in json_body(body, [])}
        gone = cancel_open("gate", lambda o: o["id"] in ids)
        return h.reply(200, [{"currency_pair": o["symbol"], "id": o["id"], "succeeded": True, "label": "",
                              "message": ""} for o in gone])
    if len(segments) == 6 and segments[3] == "futures" and segments[5] == "orders" and cmd in ("GET", "DELETE"):
        return h.reply(200, [])
    if path == "/api/v4/spot/countdown_cancel_all" or (
            len(segments) == 6 and segments[3] == "futures" and segments[5] == "countdown_cancel_all"):
        timeout = int(req.get("timeout", 0))
        if timeout and timeout < 5:
            refuse(400, "INVALID_PARAM_VALUE", "timeout must be 0 or at least 5")
        if segments[3] == "spot":
            arm("gate", req.get("currency_pair") or "*", timeout)
        return h.reply(200, {"triggerTime": now_ms() + timeout * 1000 if timeout else 0})
    if path in ("/api/v4/spot/my_trades", "/api/v4/wallet/withdrawals", "/api/v4/wallet/deposits"):
        return h.reply(200, [])
    if path == "/api/v4/wallet/fee":
        return h.reply(200, {"user_id": 10406147, "taker_fee": "0.002", "maker_fee": "0.002", "gt_discount": False,
                             "gt_taker_fee": "0", "gt_maker_fee": "0", "loan_fee": "0.18", "point_type": "1"})
    if path in ("/api/v4/withdrawals", "/api/v4/withdrawals/push") and cmd == "POST":
        return h.reply(200, {"id": "w%d" % next_order_id(), "currency": req.get("currency"),
                             "amount": req.get("amount"), "address": req.get("address"), "memo": req.get("memo"),
                             "chain": req.get("chain"), "status": "REQUEST", "timestamp": str(now_ms() // 1000)})
    h.unhandled()
    return h.reply(200, [])
