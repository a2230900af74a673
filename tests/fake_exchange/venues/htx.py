"""HTX (Huobi) spot, signature version 2: the query carries AccessKeyId,
SignatureMethod=HmacSHA256, SignatureVersion=2, Timestamp (UTC
YYYY-MM-DDThh:mm:ss, within 5 minutes) and Signature = base64
HMAC-SHA256(secret, METHOD \\n host \\n path \\n query), where host is the
Host header lower-cased without its port and query the other pairs
re-encoded (percent-encoding, upper-case hex) and sorted by name. A POST's
JSON body is not signed. Refusals are HTTP 200 with status "error" (v1) or
another code (v2), as HTX answers them."""
import base64
import datetime
import hashlib
import hmac
import urllib.parse

from shared import KEYINFO, LOCK, OPEN, add_open, arm, cancel_open, cred, json_body, next_order_id, now_ms, open_orders

KEYINFO["htx"] = {"code": 200, "message": "success", "ok": True, "data": [{
    "accessKey": None, "status": "normal", "note": "k", "permission": "readOnly,trade,withdraw", "ipAddresses": "",
    "validDays": -1, "createTime": 1591348751000, "updateTime": 1591348751000}]}
UID = 63628520
ACCOUNT = 100009
AUTH = ("AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp")

SYMBOL = {"base-currency": "btc", "quote-currency": "usdt", "price-precision": 2, "amount-precision": 6,
          "symbol-partition": "main", "symbol": "btcusdt", "state": "online", "value-precision": 8,
          "min-order-amt": 0.0001, "max-order-amt": 1000, "min-order-value": 5, "limit-order-min-order-amt": 0.0001,
          "limit-order-max-order-amt": 1000, "sell-market-min-order-amt": 0.0001, "sell-market-max-order-amt": 100,
          "buy-market-max-order-value": 1000000, "leverage-ratio": 5, "api-trading": "enabled", "tags": ""}


def check(method, host_header, path, query, now):
    """None if the request is signed right, else (err-code, err-msg) as HTX says them."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return ("api-signature-not-valid", "Signature not valid: malformed query")
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        return ("api-signature-not-valid", "Signature not valid: duplicate parameter")
    params = dict(pairs)
    given, key = params.pop("Signature", None), params.get("AccessKeyId")
    if not given or not key:
        return ("login-required", "Signature or AccessKeyId is missing")
    c = cred("htx", key)
    if c.get("key") != key:
        return ("api-signature-not-valid", "Signature not valid: Incorrect Access key [Access key错误]")
    if params.get("SignatureMethod") != "HmacSHA256" or params.get("SignatureVersion") != "2":
        return ("api-signature-not-valid", "Signature not valid: Verification failure [校验失败]")
    try:
        ts = datetime.datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return ("api-signature-not-valid", "Signature not valid: Incorrect timestamp")
    if abs(ts.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 - now) > 5 * 60 * 1000:
        return ("api-signature-not-valid", "Signature not valid: Timestamp expired")
    if method == "POST" and set(params) - set(AUTH):
        return ("invalid-parameter", "a POST's parameters belong in its JSON body")
    host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    query_text = "&".join("%s=%s" % (urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe=""))
                          for k, v in sorted(params.items()))
    text = "\n".join([method, host.lower(), path, query_text])
    expected = base64.b64encode(hmac.new(c["secret"].encode(), text.encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, given):
        return ("api-signature-not-valid", "Signature not valid: Verification failure [校验失败]")
    return None


def order_view(o, state="submitted"):
    return {"id": int(o["id"]), "symbol": o["symbol"], "account-id": ACCOUNT, "client-order-id": o.get("client", ""),
            "amount": o.get("amount", "0"), "price": o.get("price", "0"), "created-at": o.get("at", now_ms()),
            "type": o.get("type", "buy-limit"), "filled-amount": "0.0", "filled-cash-amount": "0.0",
            "filled-fees": "0.0", "source": "spot-api", "state": state, "stop-price": "", "operator": ""}


def public(path):
    if path == "/v1/common/timestamp":
        return {"status": "ok", "data": now_ms()}
    if path in ("/v1/common/symbols", "/v1/settings/common/market-symbols"):
        return {"status": "ok", "data": [SYMBOL]}
    if path == "/market/detail/merged":
        return {"status": "ok", "ch": "market.btcusdt.detail.merged", "ts": now_ms(),
                "tick": {"id": 1, "close": 50000.0, "open": 49000.0, "high": 51000.0, "low": 48000.0, "amount": 10.0,
                         "vol": 500000.0, "count": 100, "bid": [49999.0, 1.0], "ask": [50001.0, 1.0]}}
    if path == "/market/depth":
        return {"status": "ok", "ch": "market.btcusdt.depth.step0", "ts": now_ms(),
                "tick": {"ts": now_ms(), "version": 1, "bids": [[49999.0, 1.0]], "asks": [[50001.0, 1.0]]}}
    if path == "/market/tickers":
        return {"status": "ok", "ts": now_ms(), "data": [{"symbol": "btcusdt", "close": 50000.0, "bid": 49999.0,
                                                          "ask": 50001.0, "open": 49000.0, "high": 51000.0,
                                                          "low": 48000.0, "amount": 10.0, "vol": 500000.0}]}
    if path in ("/v2/reference/currencies", "/v2/settings/common/currencies"):
        return {"code": 200, "data": []}
    if path == "/v2/market-status":
        return {"code": 200, "message": "success", "data": {"marketStatus": 1}}
    if path.startswith("/market/") or path.startswith(("/v1/common/", "/v1/settings/")):
        return {"status": "ok", "data": []}
    return None


def handle(h, path, query, body):
    answer = public(path)
    if answer is not None:
        return h.reply(200, answer)
    v2 = path.startswith("/v2/")

    def ok(data):
        return h.reply(200, {"code": 200, "message": "success", "data": data, "ok": True} if v2
                       else {"status": "ok", "data": data})

    def err(code, msg):
        return h.reply(200, {"code": 1003 if code.startswith("api-signature") else 2002, "message": msg,
                             "ok": False} if v2 else {"status": "error", "err-code": code, "err-msg": msg,
                                                      "data": None})

    bad = check(h.command, h.headers.get("Host", ""), path, query, now_ms())
    if bad:
        return err(*bad)
    if h.command == "POST" and h.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
        return err("gateway-internal-error", "Content-Type must be application/json")
    params = dict(urllib.parse.parse_qsl(query))
    c = cred("htx", params.get("AccessKeyId"))
    req = json_body(body)
    segments = path.split("/")
    if path == "/v1/account/accounts":
        return ok([{"id": ACCOUNT, "type": "spot", "subtype": "", "state": "working"}])
    if path.startswith("/v1/account/accounts/") and path.endswith("/balance"):
        return ok({"id": ACCOUNT, "type": "spot", "state": "working", "list": [
            {"currency": "usdt", "type": "trade", "balance": "10000"},
            {"currency": "usdt", "type": "frozen", "balance": "0"},
            {"currency": "btc", "type": "trade", "balance": "1.5"},
            {"currency": "btc", "type": "frozen", "balance": "0"}]})
    if path == "/v1/order/orders/place":
        oid = next_order_id()
        add_open("htx", req.get("symbol"), oid, client=req.get("client-order-id", ""), type=req.get("type"),
                 price=req.get("price", "0"), amount=req.get("amount"), at=now_ms())
        return ok(str(oid))
    if len(segments) == 6 and segments[:4] == ["", "v1", "order", "orders"] and segments[5] == "submitcancel":
        gone = cancel_open("htx", lambda o: o["id"] == segments[4])
        if not gone:
            return err("order-orderstate-error", "Incorrect order state")
        return ok(segments[4])
    if path == "/v1/order/openOrders":
        return ok([order_view(o) for o in open_orders("htx") if params.get("symbol") in (None, o["symbol"])])
    if path == "/v1/order/orders/batchCancelOpenOrders":
        size = int(req.get("size", 100))
        symbols = set(req["symbol"].split(",")) if req.get("symbol") else None
        with LOCK:
            first = [o["id"] for o in OPEN.get("htx", []) if symbols is None or o["symbol"] in symbols][:size]
        gone = cancel_open("htx", lambda o: o["id"] in first)
        left = open_orders("htx", lambda o: symbols is None or o["symbol"] in symbols)
        return ok({"success-count": len(gone), "failed-count": 0, "next-id": int(left[0]["id"]) if left else -1})
    if path == "/v2/algo-orders/cancel-all-after":
        timeout = int(req.get("timeout", 0))
        if timeout != 0 and timeout < 5:
            return h.reply(200, {"code": 2002, "message": "invalid field value in `timeout`"})
        arm("htx", "*", timeout)
        return ok({"currentTime": now_ms(), "triggerTime": now_ms() + timeout * 1000 if timeout else 0})
    if path == "/v2/algo-orders/opening":
        return ok([])
    if path == "/v2/algo-orders/cancellation":
        return ok({"accepted": [], "rejected": req.get("clientOrderIds", [])})
    if path == "/v2/user/uid":
        return ok(UID)
    if path == "/v2/user/api-key":
        if params.get("uid") != str(UID):
            return h.reply(200, {"code": 2002, "message": "invalid field value in `uid`"})
        info = KEYINFO["htx"]
        if isinstance(info.get("data"), list):
            info = dict(info, data=[dict(k, accessKey=k.get("accessKey") or c.get("key")) for k in info["data"]])
        return h.reply(200, info)
    if path == "/v1/dw/withdraw/api/create":
        return ok(next_order_id())
    if path in ("/v1/order/matchresults", "/v1/order/history", "/v1/order/orders"):
        return ok([])
    if path == "/v2/reference/transact-fee-rate":
        return ok([{"symbol": params.get("symbols", "btcusdt"), "makerFeeRate": "0.002", "takerFeeRate": "0.002",
                    "actualMakerRate": "0.002", "actualTakerRate": "0.002"}])
    h.unhandled()
    return ok([])
