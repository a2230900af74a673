"""Deribit API v2 over HTTP (GET, parameters in the query):
`Authorization: deri-hmac-sha256 id=ClientId,ts=Timestamp,sig=Signature,nonce=Nonce`,
sig = hex HMAC-SHA256(client secret, ts \\n nonce \\n METHOD \\n path?query \\n
body \\n), ts (ms) within 60 s. The spot pair BTC_USDC trades amounts in BTC."""
import hashlib
import hmac
import urllib.parse

from shared import KEYINFO, Refused, add_open, cancel_open, cred, next_order_id, now_ms, open_orders

# private/list_api_keys: every key of the account; the caller's key is
# filled in as `client_id` when the answer goes out.
KEYINFO["deribit"] = {"jsonrpc": "2.0", "result": [{
    "timestamp": 1560236287708, "max_scope": "account:read_write block_trade:read_write trade:read_write "
    "wallet:read_write", "id": 2, "enabled": True, "default": True, "client_secret": "redacted",
    "client_id": None, "name": "", "enabled_features": [], "ip_whitelist": []}]}

INSTRUMENT = {
    "instrument_name": "BTC_USDC", "instrument_id": 210134, "kind": "spot", "base_currency": "BTC",
    "quote_currency": "USDC", "counter_currency": "USDC", "price_index": "btc_usdc", "tick_size": 0.01,
    "tick_size_steps": [], "min_trade_amount": 0.0001, "contract_size": 0.0001, "is_active": True,
    "creation_timestamp": 1682000000000, "expiration_timestamp": 32503708800000, "maker_commission": 0,
    "taker_commission": 0, "block_trade_commission": 0, "block_trade_min_trade_amount": 0.1,
    "block_trade_tick_size": 0.01, "rfq": False}
CURRENCIES = [{"currency": c, "currency_long": name, "fee_precision": 4, "min_confirmations": 1,
               "min_withdrawal_fee": 0.0001, "withdrawal_fee": 0.0001, "withdrawal_priorities": [],
               "coin_type": "BITCOIN" if c == "BTC" else "ETHER"} for c, name in (("BTC", "Bitcoin"),
                                                                                  ("USDC", "USD Coin"))]


def rpc(result):
    t = now_ms() * 1000
    return {"jsonrpc": "2.0", "result": result, "usIn": t, "usOut": t + 50, "usDiff": 50, "testnet": False}


def refuse(status, code, message):
    t = now_ms() * 1000
    raise Refused(status, {"jsonrpc": "2.0", "error": {"message": message, "code": code},
                           "usIn": t, "usOut": t + 50, "usDiff": 50, "testnet": False})


def order_view(o, state="open"):
    t = o.get("at", now_ms())
    return {"order_id": o["id"], "instrument_name": o["symbol"], "direction": o.get("side", "buy"),
            "order_type": o.get("type", "limit"), "order_state": state, "price": float(o.get("price") or 0),
            "amount": float(o.get("amount") or 0), "filled_amount": 0, "average_price": 0, "label": o.get("client", ""),
            "time_in_force": "good_til_cancelled", "post_only": False, "reduce_only": False, "api": True,
            "web": False, "creation_timestamp": t, "last_update_timestamp": t, "is_liquidation": False,
            "replaced": False, "risk_reducing": False, "mmp": False, "contracts": float(o.get("amount") or 0) / 0.0001}


def public(path, params):
    if path == "/api/v2/public/get_time":
        return now_ms()
    if path == "/api/v2/public/test":
        return {"version": "2.1.1"}
    if path == "/api/v2/public/get_currencies":
        return CURRENCIES
    if path == "/api/v2/public/get_instruments":
        wanted = params.get("kind") in (None, "spot", "any") and params.get("currency") in (None, "any", "BTC", "USDC")
        return [INSTRUMENT] if wanted else []
    if path == "/api/v2/public/ticker":
        return {"instrument_name": params.get("instrument_name"), "last_price": 50000.0, "best_bid_price": 49999.0,
                "best_ask_price": 50001.0, "index_price": 50000.0, "mark_price": 50000.0, "timestamp": now_ms(),
                "state": "open", "stats": {"volume": 10.0, "high": 51000.0, "low": 49000.0, "price_change": 0}}
    if path.startswith("/api/v2/public/get_"):
        return []
    return None


def authenticate(h, path, query, body):
    auth = h.headers.get("Authorization", "")
    scheme, _, rest = auth.partition(" ")
    fields = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
    if scheme != "deri-hmac-sha256" or not {"id", "ts", "sig", "nonce"} <= set(fields):
        refuse(400, 13009, "unauthorized")
    c = cred("deribit", fields["id"])
    if fields["id"] != c.get("key"):
        refuse(400, 13004, "invalid_credentials")
    if not fields["ts"].isdigit() or abs(int(fields["ts"]) - now_ms()) > 60000:
        refuse(400, 13004, "invalid_credentials")
    uri = path + ("?" + query if query else "")
    text = "%s\n%s\n%s\n%s\n%s\n" % (fields["ts"], fields["nonce"], h.command, uri, body)
    expected = hmac.new(c.get("secret", "").encode(), text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["sig"]):
        refuse(400, 13004, "invalid_credentials")
    return c


def handle(h, path, query, body):
    params = dict(urllib.parse.parse_qsl(query))
    answer = public(path, params)
    if answer is not None:
        return h.reply(200, rpc(answer))
    if path in ("/api/v2/public/auth", "/api/v2/public/exchange_token", "/api/v2/public/fork_token"):
        refuse(400, 13004, "invalid_credentials")
    if not path.startswith("/api/v2/private/"):
        refuse(404, 11050, "bad_request")
    c = authenticate(h, path, query, body)
    method = path[len("/api/v2/private/"):]
    if method in ("buy", "sell"):
        oid = "BTC_USDC-%d" % next_order_id()
        add_open("deribit", params.get("instrument_name"), oid, side=method, type=params.get("type", "limit"),
                 price=params.get("price"), amount=params.get("amount"), client=params.get("label", ""), at=now_ms())
        order = open_orders("deribit", lambda o: o["id"] == oid)[0]
        return h.reply(200, rpc({"order": order_view(order), "trades": []}))
    if method == "cancel":
        gone = cancel_open("deribit", lambda o: o["id"] == params.get("order_id"))
        if not gone:
            refuse(400, 11044, "not_open_order")
        return h.reply(200, rpc(order_view(gone[0], "cancelled")))
    if method in ("cancel_all", "cancel_all_by_currency", "cancel_all_by_instrument"):
        gone = cancel_open("deribit", lambda o: params.get("instrument_name") in (None, o["symbol"]))
        return h.reply(200, rpc(len(gone)))
    if method in ("get_open_orders", "get_open_orders_by_instrument", "get_open_orders_by_currency"):
        return h.reply(200, rpc([order_view(o) for o in open_orders("deribit")
                                 if params.get("instrument_name") in (None, o["symbol"])]))
    if method in ("get_account_summary", "get_account_summaries"):
        def summary(cur, bal):
            return {"currency": cur, "balance": bal, "available_funds": bal, "available_withdrawal_funds": bal,
                    "equity": bal, "margin_balance": bal, "initial_margin": 0, "maintenance_margin": 0,
                    "fee_balance": 0, "spot_reserve": 0}
        summaries = [summary("BTC", 1.5), summary("USDC", 10000.0)]
        if method == "get_account_summary":
            cur = params.get("currency", "BTC")
            return h.reply(200, rpc(next((s for s in summaries if s["currency"] == cur), summary(cur, 0.0))))
        return h.reply(200, rpc({"id": 1, "email": "", "system_name": "fake", "username": "fake", "type": "main",
                                 "summaries": summaries}))
    if method.startswith("get_user_trades"):
        return h.reply(200, rpc({"trades": [], "has_more": False}))
    if method == "list_api_keys":
        info = KEYINFO["deribit"]
        if isinstance(info.get("result"), list):
            info = dict(info, result=[dict(k, client_id=k.get("client_id") or c.get("key")) for k in info["result"]])
        return h.reply(200, info)
    if method == "withdraw":
        return h.reply(200, rpc({"address": params.get("address"), "amount": float(params.get("amount") or 0),
                                 "currency": params.get("currency"), "fee": 0.0001, "id": next_order_id(),
                                 "priority": 1, "state": "unconfirmed", "transaction_id": None,
                                 "created_timestamp": now_ms(), "updated_timestamp": now_ms(),
                                 "confirmed_timestamp": None}))
    h.unhandled()
    return h.reply(200, rpc([]))
