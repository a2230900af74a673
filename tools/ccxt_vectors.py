#!/usr/bin/env python3
"""Signing vectors from ccxt's own sign(), with frozen time and nonce, for
keyward's signer tests (crates/keyward-exchanges/tests/ccxt_vectors.rs).

Run with a Python that has ccxt (./test.sh makes .venv-test):
    .venv-test/bin/python tools/ccxt_vectors.py > crates/keyward-exchanges/tests/vectors/ccxt-sign.json

The credentials are made up for the vectors; none is a real key.
"""
import json

import ccxt

T = 1700000000123  # frozen milliseconds
HTX = {"apiKey": "htx-access-key-0123", "secret": "htx-secret-0123456789"}
# Coinbase CDP keys as Coinbase hands them out: an Ed25519 key (base64 of
# seed and public key) and an EC P-256 key (SEC1 PEM, ccxt's `secret`).
COINBASE_ED = {"apiKey": "3f7a4c1e-5b2d-4e8f-9a61-0c2b7d9e1f35",
               "secret": "fVNgpStRGAC9pkjBjqr1lvpisnk5ce5rtaZ+1QCuWNfPJPiq8mr8VcyAu+qnYtYLDSSAe9oPKATMTrX/Mc5C2A=="}
COINBASE_EC = {"apiKey": "organizations/5c1f0e2a-7d3b-4b8e-a0c9-2e6f4d8b1a73/apiKeys/9b2e6d4f-1c8a-4f3e-b7d0-5a9c2e8f6b14",
               "secret": "-----BEGIN EC PRIVATE KEY-----\n"
                         "MHcCAQEEIDtZnT4r656LQOMYNUI6j5IFCxvS0dvX4AjER83Qxtm+oAoGCCqGSM49\n"
                         "AwEHoUQDQgAEIyhexokQ2yCZr8TVJgTMjbHiVpm8LasWAp4FHRWeTZGm3M1JyNoX\n"
                         "miYEcgzC6EYNXRcKySCZRuR7bVOavvvjnA==\n"
                         "-----END EC PRIVATE KEY-----\n"}
NONCE = "6b6579776172642d6e6f6e63652d3031"  # ccxt's random_bytes(16), frozen
CASES = [
    # exchange, credentials, api section (or ccxt's [section, sub] list), ccxt path, method, params
    ("binance", {"apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
                 "secret": "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"},
     "private", "order", "POST",
     {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "50000"}),
    ("binance", {"apiKey": "k", "secret": "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"},
     "private", "account", "GET", {"omitZeroBalances": "true"}),
    ("okx", {"apiKey": "okx-key", "secret": "okx-secret-0123456789", "password": "okx-pass"},
     "private", "trade/order", "POST",
     {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "50000"}),
    ("okx", {"apiKey": "okx-key", "secret": "okx-secret-0123456789", "password": "okx-pass"},
     "private", "account/balance", "GET", {"ccy": "BTC"}),
    ("bybit", {"apiKey": "bybit-key", "secret": "bybit-secret-0123456789"},
     "private", "v5/order/create", "POST",
     {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01", "price": "50000"}),
    ("bybit", {"apiKey": "bybit-key", "secret": "bybit-secret-0123456789"},
     "private", "v5/account/wallet-balance", "GET", {"accountType": "UNIFIED"}),
    ("kraken", {"apiKey": "kraken-key",
                "secret": "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="},
     "private", "AddOrder", "POST",
     {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "37500", "volume": "1.25"}),
    ("kraken", {"apiKey": "kraken-key",
                "secret": "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="},
     "private", "Balance", "POST", {}),
    ("kucoin", {"apiKey": "kucoin-key", "secret": "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3", "password": "kucoin-pass"},
     "private", "orders", "POST",
     {"clientOid": "abc", "side": "buy", "symbol": "BTC-USDT", "type": "limit", "price": "50000", "size": "0.01"}),
    ("kucoin", {"apiKey": "kucoin-key", "secret": "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3", "password": "kucoin-pass"},
     "private", "accounts", "GET", {"currency": "USDT"}),
    ("bitget", {"apiKey": "bitget-key", "secret": "bitget-secret-0123456789", "password": "bitget-pass"},
     ["private", "spot"], "v2/spot/trade/place-order", "POST",
     {"symbol": "BTCUSDT", "side": "buy", "orderType": "limit", "force": "gtc", "price": "50000", "size": "0.01"}),
    ("bitget", {"apiKey": "bitget-key", "secret": "bitget-secret-0123456789", "password": "bitget-pass"},
     ["private", "spot"], "v2/spot/account/assets", "GET", {"coin": "USDT"}),
    ("gate", {"apiKey": "gate-key", "secret": "gate-secret-0123456789"},
     ["private", "spot"], "orders", "POST",
     {"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "50000"}),
    ("gate", {"apiKey": "gate-key", "secret": "gate-secret-0123456789"},
     ["private", "spot"], "accounts", "GET", {"currency": "USDT"}),
    ("deribit", {"apiKey": "deribit-id", "secret": "deribit-secret-0123456789"},
     "private", "get_account_summary", "GET", {"currency": "BTC"}),
    # Coinbase: a JWT per request (EdDSA is deterministic: the whole token must match).
    ("coinbase", COINBASE_ED, ["v3", "private"], "brokerage/orders", "POST",
     {"client_order_id": "kw-1", "product_id": "BTC-USD", "side": "BUY",
      "order_configuration": {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "50000", "post_only": False}}}),
    ("coinbase", COINBASE_ED, ["v3", "private"], "brokerage/accounts", "GET", {"limit": 250}),
    ("coinbase", COINBASE_EC, ["v3", "private"], "brokerage/orders", "POST",
     {"client_order_id": "kw-2", "product_id": "BTC-USD", "side": "SELL",
      "order_configuration": {"market_market_ioc": {"base_size": "0.01"}}}),
    ("coinbase", COINBASE_EC, ["v3", "private"], "brokerage/accounts", "GET", {"limit": 250}),
    # HTX: the key, time and signature travel in the query; the host is signed.
    ("htx", HTX, ["spot", "private"], "v1/order/orders/place", "POST",
     {"account-id": "100009", "symbol": "btcusdt", "type": "buy-limit", "amount": "0.01", "price": "50000",
      "client-order-id": "kw-1"}),
    ("htx", HTX, ["spot", "private"], "v1/account/accounts", "GET", {}),
    ("htx", HTX, ["spot", "private"], "v1/order/openOrders", "GET",
     {"account-id": "100009", "symbol": "btcusdt", "side": "buy"}),
    # A value that needs escaping (',' is %2C) and a camel-case name.
    ("htx", HTX, ["spot", "private"], "v2/account/ledger", "GET",
     {"accountId": "100009", "currency": "usdt", "transactTypes": "transfer,trade"}),
    ("htx", HTX, ["spot", "private"], "v2/user/api-key", "GET", {"uid": "63628520", "accessKey": HTX["apiKey"]}),
    ("htx", HTX, ["spot", "private"], "v2/algo-orders/cancel-all-after", "POST", {"timeout": 60}),
    # The old-style section ccxt's createOrders uses: a JSON array body.
    ("htx", HTX, ["private"], "order/batch-orders", "POST",
     [{"account-id": "100009", "symbol": "btcusdt", "type": "sell-limit", "amount": "0.001", "price": "60000",
       "client-order-id": "c1"},
      {"account-id": "100009", "symbol": "btcusdt", "type": "buy-market", "amount": "25", "client-order-id": "c2"}]),
]


def freeze(ex):
    ex.milliseconds = lambda: T
    ex.seconds = lambda: T // 1000
    ex.nonce = lambda: T
    ex.incrementing_nonce = lambda: T
    ex.random_bytes = lambda n: NONCE
    return ex


def main():
    out = {"about": "ccxt %s sign() output with frozen time %d (tools/ccxt_vectors.py)" % (ccxt.__version__, T),
           "timestamp_ms": T, "vectors": []}
    for ex_id, creds, api, path, method, params in CASES:
        ex = freeze(getattr(ccxt, ex_id)(dict(creds)))
        signed = ex.sign(path, api if isinstance(api, list) else [api], method,
                         list(params) if isinstance(params, list) else dict(params))
        out["vectors"].append({
            "exchange": ex_id, "credentials": creds, "method": method,
            "url": signed["url"], "headers": signed.get("headers") or {}, "body": signed.get("body"),
        })
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
