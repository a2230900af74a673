"""Coinbase Advanced Trade with CDP keys: `Authorization: Bearer <JWT>`,
checked with the `cryptography` package against the registered key: EdDSA
(Ed25519: a set's "secret", base64 of seed||public or of the seed) or ES256
(EC P-256: "private_key" or "public_key" PEM, or a PEM "secret" as ccxt takes
it). The header's kid and the claims' sub name the key, nbf <= now + 60 s,
exp > now, and the URI claim (`uri`, or `uris[0]`) is "METHOD
api.coinbase.com/path" (no query; both when both are given). A refusal: 401
{"error": "unauthorized", "message": ...}."""
import base64
import datetime
import json
import urllib.parse

from shared import KEYINFO, Refused, add_open, cancel_open, cred_sets, json_body, next_order_id, now_ms, open_orders

KEYINFO["coinbase"] = {"can_view": True, "can_trade": True, "can_transfer": True,
                       "portfolio_uuid": "8bfc20d7-f7c6-4422-bf07-8243ca4169fe", "portfolio_type": "DEFAULT"}
HOST = "api.coinbase.com"
SKEW_S = 60

PRODUCT = {
    "product_id": "BTC-USDT", "price": "50000", "price_percentage_change_24h": "0", "volume_24h": "100",
    "volume_percentage_change_24h": "0", "base_increment": "0.00000001", "quote_increment": "0.01",
    "quote_min_size": "1", "quote_max_size": "10000000", "base_min_size": "0.00000001", "base_max_size": "3400",
    "base_name": "Bitcoin", "quote_name": "Tether", "watched": False, "is_disabled": False, "new": False,
    "status": "online", "cancel_only": False, "limit_only": False, "post_only": False, "trading_disabled": False,
    "auction_mode": False, "product_type": "SPOT", "quote_currency_id": "USDT", "base_currency_id": "BTC",
    "fcm_trading_session_details": None, "mid_market_price": "", "alias": "", "alias_to": [],
    "base_display_symbol": "BTC", "quote_display_symbol": "USDT", "view_only": False, "price_increment": "0.01",
    "display_name": "BTC-USDT", "product_venue": "CBE"}
WALLETS = [("USDT", "10000"), ("BTC", "1.5")]


def refuse(message):
    raise Refused(401, {"error": "unauthorized", "message": message})


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key(c):
    """The set's public key (Ed25519 or EC), or None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    try:
        if "public_key" in c:
            return serialization.load_pem_public_key(c["public_key"].encode())
        pem = c.get("private_key") or (c.get("secret") if c.get("secret", "").startswith("-----BEGIN") else None)
        if pem:
            return serialization.load_pem_private_key(pem.encode(), password=None).public_key()
        raw = base64.b64decode(c.get("secret", ""), validate=True)
        if len(raw) not in (32, 64):
            return None
        key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]).public_key()
        if len(raw) == 64 and key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) != raw[32:]:
            return None
        return key
    except Exception:
        return None


def verify(key, alg, signing_input, sig):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
    try:
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, signing_input)
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(sig) == 64:
            der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            return False
        return True
    except Exception:
        return False


def authenticate(h, path):
    auth = h.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        refuse("no bearer token")
    try:
        head, claims_text, sig = auth[len("Bearer "):].split(".")
        header, claims = json.loads(b64url(head)), json.loads(b64url(claims_text))
        sig = b64url(sig)
    except Exception:
        refuse("malformed JWT")
    kid = header.get("kid")
    c = next((s for s in cred_sets("coinbase") if kid is not None and s.get("key") == kid), None)
    key = public_key(c) if c else None
    if key is None:
        refuse("unknown API key")
    if not verify(key, header.get("alg"), ("%s.%s" % (head, claims_text)).encode(), sig):
        refuse("invalid signature")
    now = now_ms() / 1000.0
    uris = ([claims["uri"]] if "uri" in claims else []) + (claims.get("uris") or [])[:1]
    if claims.get("sub") != kid:
        refuse("sub is not the key")
    if not isinstance(claims.get("nbf"), (int, float)) or claims["nbf"] > now + SKEW_S:
        refuse("JWT not yet valid")
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        refuse("JWT expired")
    if not uris or any(u != "%s %s%s" % (h.command, HOST, path) for u in uris):
        refuse("the JWT's uri is not this request")
    return c


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def order_view(o, status="OPEN"):
    return {"order_id": o["id"], "product_id": o["symbol"], "user_id": "u1", "side": o.get("side", "BUY"),
            "order_configuration": o.get("config", {}), "client_order_id": o.get("client", ""), "status": status,
            "time_in_force": "GOOD_UNTIL_CANCELLED", "created_time": iso(o.get("at", now_ms())),
            "completion_percentage": "0", "filled_size": "0", "average_filled_price": "0", "number_of_fills": "0",
            "filled_value": "0", "pending_cancel": False, "size_in_quote": False, "total_fees": "0",
            "size_inclusive_of_fees": False, "total_value_after_fees": "0", "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": "LIMIT", "reject_reason": "", "settled": False, "product_type": "SPOT",
            "reject_message": "", "cancel_message": "", "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0", "is_liquidation": False, "last_fill_time": None, "edit_history": [],
            "leverage": "", "margin_type": "UNKNOWN_MARGIN_TYPE", "retail_portfolio_id": ""}


def public(path):
    if path in ("/api/v3/brokerage/market/products", "/api/v3/brokerage/products"):
        return {"products": [PRODUCT], "num_products": 1}
    if path.startswith(("/api/v3/brokerage/market/products/", "/api/v3/brokerage/products/")):
        if path.endswith("/ticker"):
            return {"trades": [{"trade_id": "1", "product_id": "BTC-USDT", "price": "50000", "size": "0.01",
                                "time": iso(now_ms()), "side": "BUY", "bid": "", "ask": ""}],
                    "best_bid": "49999.99", "best_ask": "50000.01"}
        return PRODUCT
    if path in ("/api/v3/brokerage/market/product_book", "/api/v3/brokerage/product_book"):
        return {"pricebook": {"product_id": "BTC-USDT", "bids": [{"price": "49999.99", "size": "1"}],
                              "asks": [{"price": "50000.01", "size": "1"}], "time": iso(now_ms())}}
    if path in ("/api/v3/brokerage/time", "/api/v3/brokerage/market/time"):
        t = now_ms()
        return {"iso": iso(t), "epochSeconds": str(t // 1000), "epochMillis": str(t)}
    if path == "/v2/time":
        return {"data": {"iso": iso(now_ms()), "epoch": now_ms() // 1000}}
    if path in ("/v2/currencies", "/v2/currencies/crypto"):
        return {"data": []}
    if path == "/v2/exchange-rates":
        return {"data": {"currency": "USD", "rates": {}}}
    return None


def handle(h, path, query, body):
    params = urllib.parse.parse_qs(query)
    answer = public(path)
    # Coinbase's /api/v3/brokerage/products and product_book are the signed twins of the market ones.
    if answer is not None and not path.startswith(("/api/v3/brokerage/products", "/api/v3/brokerage/product_book")):
        return h.reply(200, answer)
    authenticate(h, path)
    cmd, req = h.command, json_body(body)
    if answer is not None:
        return h.reply(200, answer)
    if path == "/api/v3/brokerage/key_permissions":
        return h.reply(200, KEYINFO["coinbase"])
    if path == "/api/v3/brokerage/transaction_summary":
        return h.reply(200, {"total_volume": 0, "total_fees": 0, "fee_tier": {
            "pricing_tier": "", "usd_from": "0", "usd_to": "10000", "taker_fee_rate": "0.006",
            "maker_fee_rate": "0.004"}, "advanced_trade_only_volume": 0, "advanced_trade_only_fees": 0})
    if path == "/api/v3/brokerage/orders" and cmd == "POST":
        oid = "%08x-0000-4000-8000-%012x" % (next_order_id(), now_ms())
        config = req.get("order_configuration") or {}
        add_open("coinbase", req.get("product_id"), oid, side=req.get("side"), client=req.get("client_order_id", ""),
                 config=config, at=now_ms())
        return h.reply(200, {"success": True, "success_response": {
            "order_id": oid, "product_id": req.get("product_id"), "side": req.get("side"),
            "client_order_id": req.get("client_order_id", "")}, "order_configuration": config})
    if path == "/api/v3/brokerage/orders/batch_cancel":
        ids = [str(i) for i in req.get("order_ids") or []]
        gone = {o["id"] for o in cancel_open("coinbase", lambda o: o["id"] in ids)}
        return h.reply(200, {"results": [{"success": i in gone, "order_id": i, "failure_reason":
                                          "UNKNOWN_CANCEL_FAILURE_REASON" if i in gone else "UNKNOWN_CANCEL_ORDER"}
                                         for i in ids]})
    if path == "/api/v3/brokerage/orders/historical/batch":
        statuses = params.get("order_status", [])
        products = params.get("product_ids", [])
        orders = [order_view(o) for o in open_orders("coinbase") if not products or o["symbol"] in products]
        return h.reply(200, {"orders": orders if not statuses or "OPEN" in statuses else [], "sequence": "0",
                             "has_next": False, "cursor": ""})
    if path.startswith("/api/v3/brokerage/orders/historical/") and path.count("/") == 6 and cmd == "GET":
        oid = path.rsplit("/", 1)[1]
        if oid == "fills":
            return h.reply(200, {"fills": [], "cursor": ""})
        found = open_orders("coinbase", lambda o: o["id"] == oid)
        if not found:
            return h.reply(404, {"error": "NOT_FOUND", "message": "order not found"})
        return h.reply(200, {"order": order_view(found[0])})
    if path == "/api/v3/brokerage/accounts":
        return h.reply(200, {"accounts": [{
            "uuid": "acc-%s" % cur.lower(), "name": "%s Wallet" % cur, "currency": cur,
            "available_balance": {"value": amount, "currency": cur}, "default": True, "active": True,
            "created_at": iso(0), "updated_at": iso(now_ms()), "deleted_at": None, "type": "ACCOUNT_TYPE_CRYPTO",
            "ready": True, "hold": {"value": "0", "currency": cur}} for cur, amount in WALLETS],
            "has_next": False, "cursor": "", "size": len(WALLETS)})
    if path == "/v2/accounts":
        return h.reply(200, {"pagination": {"ending_before": None, "starting_after": None, "limit": 100,
                                            "order": "desc", "previous_uri": None, "next_uri": None},
                             "data": [{"id": "acc-%s" % cur.lower(), "name": "%s Wallet" % cur, "primary": True,
                                       "type": "wallet", "currency": {"code": cur, "name": cur, "type": "crypto"},
                                       "balance": {"amount": amount, "currency": cur}, "created_at": iso(0),
                                       "updated_at": iso(now_ms()), "resource": "account",
                                       "resource_path": "/v2/accounts/acc-%s" % cur.lower()}
                                      for cur, amount in WALLETS]})
    if path.startswith("/v2/accounts/") and path.endswith(("/transactions", "/withdrawals")) and cmd == "POST":
        return h.reply(201, {"data": {"id": "tx-%d" % next_order_id(), "type": req.get("type", "send"),
                                      "status": "pending", "amount": {"amount": req.get("amount"),
                                                                      "currency": req.get("currency")},
                                      "created_at": iso(now_ms()), "to": {"address": req.get("to")}}})
    h.unhandled()
    return h.reply(200, {})
