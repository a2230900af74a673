"""Kraken: base64 HMAC-SHA512(base64-decoded secret, path + SHA256(nonce +
body)), with increasing nonces. Refusals are HTTP 200 with an error list."""
import base64
import hashlib
import hmac
import urllib.parse

from shared import KEYINFO, LOCK, add_open, arm, cancel_open, cred, next_order_id, now_ms, open_orders

KEYINFO["kraken"] = {"error": [], "result": {"apiKeyName": "k", "permissions": [
    "query-funds", "withdraw-funds", "query-open-trades", "modify-trades"], "validUntil": "0", "ipAllowlist": []}}
NONCES = {"last": 0}

PAIR = {"altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
        "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5, "pair_decimals": 1,
        "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
        "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]], "fee_volume_currency": "ZUSD",
        "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1",
        "status": "online"}
ASSETS = {"XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5, "status": "enabled"},
          "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2, "status": "enabled"}}


def public(h, path):
    if path == "/0/public/Time":
        return h.reply(200, {"error": [], "result": {"unixtime": now_ms() // 1000, "rfc1123": ""}})
    if path == "/0/public/AssetPairs":
        return h.reply(200, {"error": [], "result": {"XXBTZUSD": PAIR}})
    if path == "/0/public/Assets":
        return h.reply(200, {"error": [], "result": ASSETS})
    if path == "/0/public/Ticker":
        return h.reply(200, {"error": [], "result": {"XXBTZUSD": {"c": ["37500.0", "0.1"]}}})
    return h.reply(200, {"error": [], "result": {}})


def described(o):
    return {"refid": None, "userref": 0, "status": "open", "opentm": now_ms() / 1000.0, "starttm": 0, "expiretm": 0,
            "descr": {"pair": "XBTUSD", "type": o.get("side"), "ordertype": o.get("type"), "price": o.get("price"),
                      "price2": "0", "leverage": "none", "order": "", "close": ""},
            "vol": o.get("amount"), "vol_exec": "0.00000000", "cost": "0", "fee": "0", "price": "0",
            "misc": "", "oflags": "fciq"}


def handle(h, path, query, body):
    if path.startswith("/0/public/"):
        return public(h, path)
    c = cred("kraken", h.headers.get("API-Key"))
    params = dict(urllib.parse.parse_qsl(body))
    nonce = params.get("nonce", "")
    msg = path.encode() + hashlib.sha256((nonce + body).encode()).digest()
    expected = base64.b64encode(hmac.new(base64.b64decode(c.get("secret", "")), msg, hashlib.sha512).digest()).decode()
    if h.headers.get("API-Key") != c.get("key") or not hmac.compare_digest(expected, h.headers.get("API-Sign", "")):
        return h.reply(200, {"error": ["EAPI:Invalid key"]})
    with LOCK:
        if int(nonce or 0) <= NONCES["last"]:
            return h.reply(200, {"error": ["EAPI:Invalid nonce"]})
        NONCES["last"] = int(nonce)
    if path == "/0/private/Balance":
        return h.reply(200, {"error": [], "result": {"XXBT": "1.5", "ZUSD": "10000.0"}})
    if path == "/0/private/BalanceEx":
        return h.reply(200, {"error": [], "result": {"XXBT": {"balance": "1.5", "hold_trade": "0"},
                                                     "ZUSD": {"balance": "10000.0", "hold_trade": "0"}}})
    if path == "/0/private/GetApiKeyInfo":
        return h.reply(200, KEYINFO["kraken"])
    if path == "/0/private/CancelAll":
        gone = cancel_open("kraken")
        return h.reply(200, {"error": [], "result": {"count": len(gone)}})
    if path == "/0/private/CancelOrder":
        gone = cancel_open("kraken", lambda o: o.get("txid") == params.get("txid"))
        return h.reply(200, {"error": [], "result": {"count": len(gone)}})
    if path == "/0/private/OpenOrders":
        return h.reply(200, {"error": [], "result": {"open": {o["txid"]: described(o) for o in open_orders("kraken")}}})
    if path == "/0/private/CancelAllOrdersAfter":
        arm("kraken", "*", int(params.get("timeout", "0")))
        return h.reply(200, {"error": [], "result": {"currentTime": "2026-12-05T10:00:00Z",
                                                     "triggerTime": "2026-12-05T10:01:00Z"}})
    if path == "/0/private/Withdraw":
        return h.reply(200, {"error": [], "result": {"refid": "FTQ%d" % next_order_id()}})
    if path == "/0/private/AddOrder":
        oid = next_order_id()
        txid = "O%06d-AAAAA-BBBBBB" % next_order_id()
        add_open("kraken", params.get("pair"), oid, txid=txid, side=params.get("type"),
                 type=params.get("ordertype"), price=params.get("price", ""), amount=params.get("volume"))
        return h.reply(200, {"error": [], "result": {"descr": {"order": "%s %s %s @ %s %s" % (
            params.get("type"), params.get("volume"), params.get("pair"), params.get("ordertype"),
            params.get("price", ""))}, "txid": [txid]}})
    if path == "/0/private/TradesHistory":
        return h.reply(200, {"error": [], "result": {"trades": {}, "count": 0}})
    h.unhandled()
    return h.reply(200, {"error": [], "result": {}})
