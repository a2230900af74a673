//! Each signer on a typical order: parse the canonical request, classify it,
//! read its orders (for guards) and sign it.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_exchanges::{CanonicalRequest, Credentials, SignContext, by_kind};
use std::collections::HashMap;
use std::hint::black_box;

fn creds(fields: &[(&str, &str)]) -> Credentials {
    let m: HashMap<String, String> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Credentials::from_fields(|k| m.get(k).cloned()).unwrap()
}

const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";

fn signers(c: &mut Criterion) {
    let ctx = SignContext { timestamp_ms: 1_700_000_000_123, nonce: 1_700_000_000_123_000, recv_window_ms: 5000 };
    let form = Some("application/x-www-form-urlencoded");
    let json = Some("application/json");
    let kraken_secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    // (bench name, exchange, method, path, content type, body, credentials)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, &'a str, Credentials);
    let cases: Vec<Case> = vec![
        (
            "binance_hmac",
            "binance",
            "POST",
            "/api/v3/order",
            form,
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000",
            creds(&[("api_key", "k"), ("api_secret", "s")]),
        ),
        (
            "binance_ed25519",
            "binance",
            "POST",
            "/api/v3/order",
            form,
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000",
            creds(&[("api_key", "k"), ("private_key", ED25519_PEM)]),
        ),
        (
            "okx",
            "okx",
            "POST",
            "/api/v5/trade/order",
            json,
            r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s"), ("passphrase", "p")]),
        ),
        (
            "bybit",
            "bybit",
            "POST",
            "/v5/order/create",
            json,
            r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s")]),
        ),
        (
            "kraken",
            "kraken",
            "POST",
            "/0/private/AddOrder",
            form,
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=1.25",
            creds(&[("api_key", "k"), ("api_secret", kraken_secret)]),
        ),
        (
            "kucoin",
            "kucoin",
            "POST",
            "/api/v1/orders",
            json,
            r#"{"clientOid":"a","side":"buy","symbol":"BTC-USDT","type":"limit","price":"50000","size":"0.01"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s"), ("passphrase", "p")]),
        ),
        (
            "bitget",
            "bitget",
            "POST",
            "/api/v2/spot/trade/place-order",
            json,
            r#"{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc","price":"50000","size":"0.01"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s"), ("passphrase", "p")]),
        ),
        (
            "gate",
            "gate",
            "POST",
            "/api/v4/spot/orders",
            json,
            r#"{"currency_pair":"BTC_USDT","side":"buy","amount":"0.01","price":"50000"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s")]),
        ),
        ("deribit", "deribit", "GET", "/api/v2/private/buy", None, "", creds(&[("api_key", "k"), ("api_secret", "s")])),
        (
            "coinbase_ed25519",
            "coinbase",
            "POST",
            "/api/v3/brokerage/orders",
            json,
            r#"{"client_order_id":"c","product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10"}}}"#,
            creds(&[("api_key", "k"), ("api_secret", "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")]),
        ),
        (
            "htx",
            "htx",
            "POST",
            "/v1/order/orders/place",
            json,
            r#"{"account-id":"100009","symbol":"btcusdt","type":"buy-limit","amount":"0.01","price":"50000"}"#,
            creds(&[("api_key", "k"), ("api_secret", "s")]),
        ),
    ];
    for (name, kind, method, path, ctype, body, cr) in cases {
        let ex = by_kind(kind).unwrap();
        let query = if kind == "deribit" { Some("instrument_name=BTC-PERPETUAL&amount=10&type=market") } else { None };
        c.bench_function(&format!("sign_{name}"), |b| {
            b.iter(|| {
                let req = CanonicalRequest::parse(method, path, query, ctype, body.as_bytes()).unwrap();
                let class = ex.classify(&req);
                let orders = ex.orders(&req).map(|o| o.len()).unwrap_or(0);
                black_box((class, orders, ex.sign(black_box(&req), &cr, &ctx).unwrap()))
            })
        });
    }
}

criterion_group!(benches, signers);
criterion_main!(benches);
