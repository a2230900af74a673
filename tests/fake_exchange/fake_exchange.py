#!/usr/bin/env python3
"""A local fake of Binance, OKX, Bybit, Bitget and Kraken for keyward's tests.

It checks every private request's signature with Python's own hmac and
hashlib (an implementation independent of keyward's), or, for a credential
set registered with a "public_key" (PEM, as an exchange's key page takes a
self-generated key), with the `cryptography` package: Ed25519, or RSA
PKCS#1 v1.5 SHA-256 (imported only then). It refuses bad ones the
way the exchange would, answers the calls ccxt makes for load_markets,
create_order and fetch_balance, and records every request it saw so a test
can show what reached the "exchange" (GET /__log, POST /__reset).

It also keeps what incident response needs: the open orders placed through
it (cancelled by the exchanges' cancel-all calls), each exchange's
key-information answer (POST /__keyinfo sets it: a broad key by default),
and the dead-man timers (OKX cancel-all-after, Kraken CancelAllOrdersAfter,
Binance futures countdownCancelAll): a timer that runs out cancels that
exchange's open orders by itself, as the exchange would (GET /__state shows
open orders, timers and what fired). /__control?fail=/a/path makes that
path answer an error (a partial failure).

Each exchange's credentials may be one set or a list of sets: a real
exchange accepts every key registered on the account, old and new alike,
while a rotation overlaps them. POST /__creds with a JSON object replaces
the sets of the exchanges it names (a key registered or deleted on the
exchange's key page).

Usage: fake_exchange.py CREDENTIALS_JSON   (prints "listening on PORT")
CREDENTIALS_JSON: {"binance": {"key":..,"secret":..}, "okx": {"key","secret","passphrase"},
                   "bybit": {"key","secret"}, "bitget": {"key","secret","passphrase"},
                   "kraken": {"key","secret"}}
A set may give "public_key" (PEM) instead of "secret" (binance, bybit, bitget).
Stdlib only, but for `cryptography` when a set has a public key.
"""
import base64
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
LOG = []
LOCK = threading.Lock()
KRAKEN_NONCES = {"last": 0}
ORDERS = {"n": 0}
# Test controls: the weight Binance reports, and how far this "exchange's" clock is off.
CONTROL = {"weight": 10, "skew_ms": 0, "delay_ms": 0}
FAIL = set()
# Open orders per exchange: {"binance": [{"symbol": .., "id": .., "market": "spot"|"futures"}], ...}
OPEN = {}
# Dead-man timers: {(exchange, scope): deadline_seconds}; FIRED: what ran out.
TIMERS = {}
FIRED = []
# Key information per exchange (the exchange's own answer body); a broad key by default.
KEYINFO = {
    "binance": {"ipRestrict": False, "createTime": 1698645219000, "enableReading": True,
                "enableWithdrawals": True, "enableInternalTransfer": True, "enableMargin": False,
                "enableFutures": False, "permitsUniversalTransfer": True, "enableVanillaOptions": False,
                "enableSpotAndMarginTrading": True, "enablePortfolioMarginTrading": False},
    "bybit": {"retCode": 0, "retMsg": "", "result": {"id": "1", "readOnly": 0, "permissions": {
        "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "Wallet": ["AccountTransfer", "Withdraw"],
        "Options": [], "Derivatives": []}, "ips": ["*"], "deadlineDay": 80, "expiredAt": "2099-01-01T00:00:00Z"}},
    "okx": {"code": "0", "msg": "", "data": [{"perm": "read_only,withdraw,trade", "ip": "", "label": "k"}]},
    "kraken": {"error": [], "result": {"apiKeyName": "k", "permissions": ["query-funds", "withdraw-funds",
               "query-open-trades", "modify-trades"], "validUntil": "0", "ipAllowlist": []}},
    "bitget": {"code": "00000", "msg": "success", "data": {"userId": "1", "ips": "",
               "authorities": ["stor", "stow", "wtow", "wwow"]}},
}


def add_open(exchange, symbol, oid, market="spot"):
    with LOCK:
        OPEN.setdefault(exchange, []).append({"symbol": symbol, "id": str(oid), "market": market})


def cancel_open(exchange, pred=lambda o: True):
    """Cancels the open orders of `exchange` matching `pred`; returns them."""
    with LOCK:
        orders = OPEN.get(exchange, [])
        gone = [o for o in orders if pred(o)]
        OPEN[exchange] = [o for o in orders if not pred(o)]
        return gone


def arm(exchange, scope, seconds):
    with LOCK:
        if seconds <= 0:
            TIMERS.pop((exchange, scope), None)
        else:
            TIMERS[(exchange, scope)] = time.time() + seconds


def watch_timers():
    """Runs out the dead-man timers: the exchange cancels by itself."""
    while True:
        time.sleep(0.1)
        now = time.time()
        with LOCK:
            due = [k for k, t in TIMERS.items() if t <= now]
            for k in due:
                del TIMERS[k]
        for exchange, scope in due:
            gone = cancel_open(exchange, lambda o: scope == "*" or o["symbol"] == scope)
            with LOCK:
                FIRED.append({"exchange": exchange, "scope": scope, "at": now, "cancelled": len(gone)})


def cred(exchange, key):
    """The credential set of `exchange` whose key is `key` (else the first)."""
    sets = CREDS.get(exchange, {})
    sets = sets if isinstance(sets, list) else [sets]
    for c in sets:
        if c.get("key") == key:
            return c
    return sets[0] if sets else {}


def asym_ok(c, text, sig_b64):
    """Checks a base64 signature of `text` against the set's PEM public key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    try:
        key = serialization.load_pem_public_key(c["public_key"].encode())
        sig = base64.b64decode(sig_b64, validate=True)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, text.encode())
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, text.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except Exception:
        return False


def sig_ok(c, text, given, hex_hmac=True):
    """A signature check: the set's public key if it has one, else its HMAC secret."""
    if "public_key" in c:
        return asym_ok(c, text, given)
    mac = hmac.new(c.get("secret", "").encode(), text.encode(), hashlib.sha256)
    expected = mac.hexdigest() if hex_hmac else base64.b64encode(mac.digest()).decode()
    return hmac.compare_digest(expected, given)


def now_ms():
    return int(time.time() * 1000) + CONTROL["skew_ms"]


def next_order_id():
    with LOCK:
        ORDERS["n"] += 1
        return ORDERS["n"]


BINANCE_INFO = {
    "timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
        "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5.0", "maxNotional": "9000000.0"},
        ],
    }],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and
        # delayed ACKs add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp=None):
        return super().date_time_string(now_ms() / 1000.0)

    def reply(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, parsed.query
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if path == "/__log":
            with LOCK:
                return self.reply(200, LOG)
        if path == "/__reset":
            with LOCK:
                LOG.clear()
            return self.reply(200, {})
        if path == "/__creds":
            with LOCK:
                CREDS.update(json.loads(body or "{}"))
            return self.reply(200, {})
        if path == "/__control":
            for k, v in urllib.parse.parse_qsl(query):
                if k == "fail":
                    FAIL.add(v)
                elif k == "unfail":
                    FAIL.discard(v)
                else:
                    CONTROL[k] = int(v)
            return self.reply(200, dict(CONTROL, fail=sorted(FAIL)))
        if path == "/__keyinfo":
            with LOCK:
                KEYINFO.update(json.loads(body or "{}"))
            return self.reply(200, {})
        if path == "/__state":
            with LOCK:
                return self.reply(200, {"open": OPEN, "timers": {"%s %s" % k: t - time.time() for k, t in TIMERS.items()},
                                        "fired": FIRED})
        if CONTROL["delay_ms"]:
            time.sleep(CONTROL["delay_ms"] / 1000.0)
        with LOCK:
            LOG.append({"method": self.command, "path": path, "query": query, "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
        if path in FAIL:
            return self.reply(503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
        if path.startswith(("/api/v3/", "/sapi/", "/fapi/")):
            return self.binance(path, query, body)
        if path.startswith("/api/v5/"):
            return self.okx(path, query, body)
        if path.startswith("/api/v2/"):
            return self.bitget(path, query, body)
        if path.startswith("/v5/"):
            return self.bybit(path, query, body)
        if path.startswith("/0/"):
            return self.kraken(path, query, body)
        return self.reply(404, {"error": "unknown path"})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    # Binance: hex HMAC-SHA256 over the parameters, key in X-MBX-APIKEY.
    def binance(self, path, query, body):
        public = {"/api/v3/ping": {}, "/api/v3/time": {"serverTime": now_ms()},
                  "/api/v3/exchangeInfo": dict(BINANCE_INFO, serverTime=now_ms()),
                  "/api/v3/ticker/price": {"symbol": "BTCUSDT", "price": "50000.00"}}
        weight = {"X-MBX-USED-WEIGHT-1M": str(CONTROL["weight"])}
        if path in public:
            return self.reply(200, public[path], weight)
        c = cred("binance", self.headers.get("X-MBX-APIKEY"))
        payload = query or body
        if self.headers.get("X-MBX-APIKEY") != c.get("key"):
            return self.reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
        if "&signature=" not in payload:
            return self.reply(400, {"code": -1102, "msg": "Mandatory parameter 'signature' was not sent."})
        signed, sig = payload.rsplit("&signature=", 1)
        if not sig_ok(c, signed, urllib.parse.unquote(sig)):
            return self.reply(400, {"code": -1022, "msg": "Signature for this request is not valid."})
        params = dict(urllib.parse.parse_qsl(signed))
        if abs(int(params.get("timestamp", 0)) - now_ms()) > int(params.get("recvWindow", 5000)):
            return self.reply(400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
        if path == "/api/v3/account":
            return self.reply(200, {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": True,
                                    "canDeposit": True, "updateTime": now_ms(), "accountType": "SPOT",
                                    "balances": [{"asset": "BTC", "free": "1.5", "locked": "0.0"},
                                                 {"asset": "USDT", "free": "10000.0", "locked": "0.0"}],
                                    "permissions": ["SPOT"]}, weight)
        if path == "/sapi/v1/account/apiRestrictions":
            return self.reply(200, KEYINFO["binance"], weight)
        if path in ("/api/v3/openOrders", "/fapi/v1/openOrders") and self.command == "GET":
            market = "spot" if path.startswith("/api/") else "futures"
            with LOCK:
                listed = [{"symbol": o["symbol"], "orderId": int(o["id"]), "status": "NEW"}
                          for o in OPEN.get("binance", []) if o["market"] == market]
            return self.reply(200, listed, weight)
        if path in ("/api/v3/openOrders", "/fapi/v1/allOpenOrders") and self.command == "DELETE":
            market = "spot" if path.startswith("/api/") else "futures"
            gone = cancel_open("binance", lambda o: o["market"] == market and o["symbol"] == params.get("symbol"))
            if path.startswith("/fapi/"):
                return self.reply(200, {"code": 200, "msg": "The operation of cancel all open order is done."}, weight)
            return self.reply(200, [{"symbol": o["symbol"], "orderId": int(o["id"]), "status": "CANCELED"} for o in gone], weight)
        if path == "/fapi/v1/countdownCancelAll":
            arm("binance", params.get("symbol"), int(params.get("countdownTime", "0")) / 1000.0)
            return self.reply(200, {"symbol": params.get("symbol"), "countdownTime": params.get("countdownTime")}, weight)
        if path == "/sapi/v1/capital/withdraw/apply":
            return self.reply(200, {"id": "w%d" % next_order_id()}, weight)
        if path == "/fapi/v1/order" and self.command == "POST":
            oid = next_order_id()
            add_open("binance", params.get("symbol"), oid, "futures")
            return self.reply(200, {"symbol": params.get("symbol"), "orderId": oid, "status": "NEW",
                                    "clientOrderId": "c%d" % oid, "price": params.get("price", "0"),
                                    "origQty": params.get("quantity", "0"), "executedQty": "0",
                                    "type": params.get("type"), "side": params.get("side"),
                                    "updateTime": now_ms()}, weight)
        if path == "/api/v3/order" and self.command == "POST":
            oid = next_order_id()
            add_open("binance", params.get("symbol"), oid, "spot")
            return self.reply(200, {"symbol": params.get("symbol"), "orderId": oid, "orderListId": -1,
                                    "clientOrderId": params.get("newClientOrderId", "c%d" % oid),
                                    "transactTime": now_ms(), "price": params.get("price", "0.00"),
                                    "origQty": params.get("quantity", "0"), "executedQty": "0.0",
                                    "cummulativeQuoteQty": "0.0", "status": "NEW",
                                    "timeInForce": params.get("timeInForce", "GTC"), "type": params.get("type"),
                                    "side": params.get("side"), "fills": []}, weight)
        return self.reply(200, {"ok": True, "path": path}, weight)

    # OKX: base64 HMAC-SHA256 over timestamp + method + path?query + body, with passphrase.
    def okx(self, path, query, body):
        if path.startswith(("/api/v5/public/", "/api/v5/market/")):
            if path == "/api/v5/public/time":
                return self.reply(200, {"code": "0", "msg": "", "data": [{"ts": str(now_ms())}]})
            if path == "/api/v5/public/instruments":
                return self.reply(200, {"code": "0", "msg": "", "data": [{
                    "instType": "SPOT", "instId": "BTC-USDT", "uly": "", "instFamily": "", "baseCcy": "BTC",
                    "quoteCcy": "USDT", "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
                    "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "10", "tickSz": "0.1",
                    "lotSz": "0.00000001", "minSz": "0.00001", "ctType": "", "alias": "", "state": "live",
                    "maxLmtSz": "9999999999", "maxMktSz": "1000000", "ruleType": "normal"}]})
            if path == "/api/v5/market/ticker":
                return self.reply(200, {"code": "0", "msg": "", "data": [{"instId": "BTC-USDT", "last": "50000"}]})
            return self.reply(200, {"code": "0", "msg": "", "data": []})
        h = self.headers
        c = cred("okx", h.get("OK-ACCESS-KEY"))
        target = path + ("?" + query if query else "")
        prehash = (h.get("OK-ACCESS-TIMESTAMP", "") + self.command + target + body).encode()
        expected = base64.b64encode(hmac.new(c.get("secret", "").encode(), prehash, hashlib.sha256).digest()).decode()
        if h.get("OK-ACCESS-KEY") != c.get("key") or h.get("OK-ACCESS-PASSPHRASE") != c.get("passphrase"):
            return self.reply(401, {"code": "50111", "msg": "Invalid OK-ACCESS-KEY"})
        if not hmac.compare_digest(expected, h.get("OK-ACCESS-SIGN", "")):
            return self.reply(401, {"code": "50113", "msg": "Invalid Sign"})
        if path == "/api/v5/account/balance":
            return self.reply(200, {"code": "0", "msg": "", "data": [{"uTime": str(now_ms()), "totalEq": "10000",
                              "details": [{"ccy": "USDT", "availBal": "10000", "cashBal": "10000", "eq": "10000",
                                           "frozenBal": "0", "uTime": str(now_ms())}]}]})
        if path in ("/api/v5/trade/order", "/api/v5/trade/batch-orders") and self.command == "POST":
            orders = json.loads(body or "{}")
            orders = orders if isinstance(orders, list) else [orders]
            data = []
            for o in orders:
                oid = next_order_id()
                add_open("okx", o.get("instId"), oid)
                data.append({"ordId": str(oid), "clOrdId": o.get("clOrdId", ""), "tag": "", "sCode": "0", "sMsg": ""})
            return self.reply(200, {"code": "0", "msg": "", "data": data})
        if path == "/api/v5/account/config":
            return self.reply(200, KEYINFO["okx"])
        if path == "/api/v5/trade/orders-pending":
            with LOCK:
                listed = [{"instId": o["symbol"], "ordId": o["id"], "instType": "SPOT", "state": "live"}
                          for o in OPEN.get("okx", [])][:100]
            return self.reply(200, {"code": "0", "msg": "", "data": listed})
        if path == "/api/v5/trade/cancel-batch-orders":
            items = json.loads(body or "[]")
            ids = {str(i.get("ordId")) for i in items}
            cancel_open("okx", lambda o: o["id"] in ids)
            return self.reply(200, {"code": "0", "msg": "", "data": [{"ordId": i.get("ordId"), "clOrdId": "",
                                    "sCode": "0", "sMsg": ""} for i in items]})
        if path == "/api/v5/trade/cancel-all-after":
            arm("okx", "*", int(json.loads(body or "{}").get("timeOut", "0")))
            return self.reply(200, {"code": "0", "msg": "", "data": [{"triggerTime": str(now_ms() // 1000),
                                    "tag": "", "ts": str(now_ms() // 1000)}]})
        if path == "/api/v5/asset/withdrawal":
            w = json.loads(body or "{}")
            return self.reply(200, {"code": "0", "msg": "", "data": [{"amt": w.get("amt"), "wdId": str(next_order_id()),
                                    "ccy": w.get("ccy"), "clientId": "", "chain": w.get("chain", "")}]})
        return self.reply(200, {"code": "0", "msg": "", "data": []})

    # Bybit v5: hex HMAC-SHA256 over timestamp + key + recv window + query/body.
    def bybit(self, path, query, body):
        if path.startswith("/v5/market/"):
            if path == "/v5/market/time":
                t = now_ms()
                return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(t // 1000), "timeNano": str(t * 1000000)}, "time": t})
            if path == "/v5/market/instruments-info":
                return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [{
                    "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0", "status": "Trading",
                    "marginTrading": "none", "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                    "minOrderQty": "0.000048", "maxOrderQty": "71.73956243", "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                    "priceFilter": {"tickSize": "0.01"}}], "nextPageCursor": ""}, "time": now_ms()})
            if path == "/v5/market/tickers":
                return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [
                    {"symbol": "BTCUSDT", "lastPrice": "50000"}]}, "time": now_ms()})
            return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"list": []}, "time": now_ms()})
        h = self.headers
        c = cred("bybit", h.get("X-BAPI-API-KEY"))
        payload = query if self.command == "GET" else body
        text = h.get("X-BAPI-TIMESTAMP", "") + c.get("key", "") + h.get("X-BAPI-RECV-WINDOW", "") + payload
        limit = {"X-Bapi-Limit-Status": "99", "X-Bapi-Limit": "100"}
        if h.get("X-BAPI-API-KEY") != c.get("key"):
            return self.reply(200, {"retCode": 10003, "retMsg": "API key is invalid.", "result": {}, "time": now_ms()})
        if not sig_ok(c, text, h.get("X-BAPI-SIGN", "")):
            return self.reply(200, {"retCode": 10004, "retMsg": "error sign!", "result": {}, "time": now_ms()})
        if path == "/v5/order/create":
            order = json.loads(body or "{}")
            oid = next_order_id()
            add_open("bybit", order.get("symbol"), oid, order.get("category", "spot"))
            return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"orderId": str(oid),
                              "orderLinkId": order.get("orderLinkId", "")}, "time": now_ms()}, limit)
        if path == "/v5/user/query-api":
            return self.reply(200, KEYINFO["bybit"], limit)
        if path == "/v5/order/cancel-all":
            req = json.loads(body or "{}")
            gone = cancel_open("bybit", lambda o: o["market"] == req.get("category"))
            return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"list": [
                {"orderId": o["id"], "orderLinkId": ""} for o in gone], "success": "1"}, "time": now_ms()}, limit)
        if path == "/v5/account/wallet-balance":
            return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"list": [{"accountType": "UNIFIED",
                              "totalEquity": "10000", "coin": [{"coin": "USDT", "equity": "10000", "walletBalance": "10000",
                              "locked": "0", "availableToWithdraw": "10000"}]}]}, "time": now_ms()}, limit)
        return self.reply(200, {"retCode": 0, "retMsg": "OK", "result": {"list": []}, "time": now_ms()}, limit)

    # Bitget v2: base64 HMAC-SHA256 (or RSA) over timestamp + method + path?query + body, with passphrase.
    def bitget(self, path, query, body):
        if path.startswith(("/api/v2/public/", "/api/v2/spot/public/", "/api/v2/spot/market/")):
            return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": []})
        h = self.headers
        c = cred("bitget", h.get("ACCESS-KEY"))
        target = path + ("?" + query if query else "")
        prehash = h.get("ACCESS-TIMESTAMP", "") + self.command + target + body
        if h.get("ACCESS-KEY") != c.get("key") or h.get("ACCESS-PASSPHRASE") != c.get("passphrase"):
            return self.reply(400, {"code": "40006", "msg": "Invalid ACCESS_KEY", "requestTime": now_ms(), "data": None})
        if not sig_ok(c, prehash, h.get("ACCESS-SIGN", ""), hex_hmac=False):
            return self.reply(400, {"code": "40009", "msg": "sign signature error", "requestTime": now_ms(), "data": None})
        if path == "/api/v2/spot/trade/place-order":
            order = json.loads(body or "{}")
            oid = next_order_id()
            add_open("bitget", order.get("symbol"), oid)
            return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": {
                "orderId": str(oid), "clientOid": order.get("clientOid", "")}})
        if path == "/api/v2/spot/account/info":
            return self.reply(200, dict(KEYINFO["bitget"], requestTime=now_ms()))
        if path == "/api/v2/spot/trade/unfilled-orders":
            with LOCK:
                listed = [{"symbol": o["symbol"], "orderId": o["id"]} for o in OPEN.get("bitget", [])]
            return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": listed})
        if path == "/api/v2/spot/trade/cancel-symbol-order":
            symbol = json.loads(body or "{}").get("symbol")
            cancel_open("bitget", lambda o: o["symbol"] == symbol)
            return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": {"symbol": symbol}})
        if path == "/api/v2/spot/account/assets":
            return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": [
                {"coin": "USDT", "available": "10000", "frozen": "0", "locked": "0", "uTime": str(now_ms())}]})
        return self.reply(200, {"code": "00000", "msg": "success", "requestTime": now_ms(), "data": []})

    # Kraken: base64 HMAC-SHA512(base64-decoded secret, path + SHA256(nonce + body)).
    def kraken(self, path, query, body):
        if path.startswith("/0/public/"):
            if path == "/0/public/Time":
                return self.reply(200, {"error": [], "result": {"unixtime": now_ms() // 1000, "rfc1123": ""}})
            if path == "/0/public/AssetPairs":
                return self.reply(200, {"error": [], "result": {"XXBTZUSD": {
                    "altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
                    "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5, "pair_decimals": 1,
                    "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
                    "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]], "fee_volume_currency": "ZUSD",
                    "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1",
                    "status": "online"}}})
            if path == "/0/public/Assets":
                return self.reply(200, {"error": [], "result": {
                    "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5, "status": "enabled"},
                    "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2, "status": "enabled"}}})
            if path == "/0/public/Ticker":
                return self.reply(200, {"error": [], "result": {"XXBTZUSD": {"c": ["37500.0", "0.1"]}}})
            return self.reply(200, {"error": [], "result": {}})
        c = cred("kraken", self.headers.get("API-Key"))
        params = dict(urllib.parse.parse_qsl(body))
        nonce = params.get("nonce", "")
        msg = path.encode() + hashlib.sha256((nonce + body).encode()).digest()
        expected = base64.b64encode(hmac.new(base64.b64decode(c.get("secret", "")), msg, hashlib.sha512).digest()).decode()
        if self.headers.get("API-Key") != c.get("key") or not hmac.compare_digest(expected, self.headers.get("API-Sign", "")):
            return self.reply(200, {"error": ["EAPI:Invalid key"]})
        with LOCK:
            if int(nonce or 0) <= KRAKEN_NONCES["last"]:
                return self.reply(200, {"error": ["EAPI:Invalid nonce"]})
            KRAKEN_NONCES["last"] = int(nonce)
        if path == "/0/private/Balance":
            return self.reply(200, {"error": [], "result": {"XXBT": "1.5", "ZUSD": "10000.0"}})
        if path == "/0/private/BalanceEx":
            return self.reply(200, {"error": [], "result": {"XXBT": {"balance": "1.5", "hold_trade": "0"},
                                                            "ZUSD": {"balance": "10000.0", "hold_trade": "0"}}})
        if path == "/0/private/GetApiKeyInfo":
            return self.reply(200, KEYINFO["kraken"])
        if path == "/0/private/CancelAll":
            gone = cancel_open("kraken")
            return self.reply(200, {"error": [], "result": {"count": len(gone)}})
        if path == "/0/private/CancelAllOrdersAfter":
            arm("kraken", "*", int(params.get("timeout", "0")))
            return self.reply(200, {"error": [], "result": {"currentTime": "2026-12-05T10:00:00Z",
                                    "triggerTime": "2026-12-05T10:01:00Z"}})
        if path == "/0/private/Withdraw":
            return self.reply(200, {"error": [], "result": {"refid": "FTQ%d" % next_order_id()}})
        if path == "/0/private/AddOrder":
            add_open("kraken", params.get("pair"), next_order_id())
            return self.reply(200, {"error": [], "result": {"descr": {"order": "%s %s %s @ %s %s" % (
                                params.get("type"), params.get("volume"), params.get("pair"),
                                params.get("ordertype"), params.get("price", ""))},
                                                            "txid": ["O%06d-AAAAA-BBBBBB" % next_order_id()]}})
        return self.reply(200, {"error": [], "result": {}})


def main():
    threading.Thread(target=watch_timers, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
