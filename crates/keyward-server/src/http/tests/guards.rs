//! Order guards, in process, through the sign API on an OKX account whose
//! upstream is a local ticker (last price 50,000; it can be switched off):
//! symbols, quantity, notional, price band, market orders, strict decimals,
//! batches, amendments, a ticker that does not answer, and the daily cap.

use super::{Rig, Table, with};
use crate::config::RuntimeConfig;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A ticker at 50,000 on a free loopback port; `down` makes it answer 503.
async fn ticker(down: Arc<AtomicBool>) -> String {
    counting_ticker(down, Arc::new(AtomicUsize::new(0))).await
}

/// The same, counting the requests it answers.
async fn counting_ticker(down: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/api/v5/market/ticker",
        get(move || {
            let down = down.clone();
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                if down.load(Ordering::Relaxed) {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
                } else {
                    (axum::http::StatusCode::OK, json!({"code": "0", "data": [{"last": "50000"}]}).to_string())
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

async fn okx_rig(down: Arc<AtomicBool>) -> Rig {
    okx_rig_at(ticker(down).await).await
}

async fn okx_rig_at(url: String) -> Rig {
    let rig = Rig::with(RuntimeConfig { allow_upstream: vec!["127.0.0.1".into()], ..RuntimeConfig::default() }).await;
    let data = json!({"api_key": "K", "api_secret": "S", "passphrase": "P", "base_url": url});
    let r = rig.put("exchanges/okx", json!({"type": "okx", "data": data})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    rig
}

fn order(sz: &str, px: Option<&str>, extra: Value) -> Value {
    let mut o = json!({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": sz});
    match px {
        Some(p) => o["px"] = json!(p),
        None => o["ordType"] = json!("market"),
    }
    with(o, extra)
}

async fn sign(rig: &Rig, key: &str, path: &str, body: &Value) -> super::Reply {
    let req = json!({"method": "POST", "path": path, "body": body.to_string()});
    rig.call("POST", "/v1/sign/okx", Some(key), Some(req)).await
}

#[tokio::test]
async fn every_guard_holds_on_pure_inputs() {
    let down = Arc::new(AtomicBool::new(false));
    let rig = okx_rig(down.clone()).await;
    let (_, key) = rig
        .key(json!({"name": "g", "scopes": ["account:okx:trade"], "allow_ips": ["127.0.0.1"],
            "symbols": ["BTC-USDT"], "max_qty": "0.5", "max_notional": "1000", "price_band": "5%"}))
        .await;
    let order_path = "/api/v5/trade/order";
    let rows: Vec<(&str, &str, Value, u16, &str, &str)> = vec![
        ("within every limit", order_path, order("0.01", Some("50000"), json!({})), 200, "", ""),
        (
            "a symbol not granted",
            order_path,
            order("0.01", Some("3000"), json!({"instId": "ETH-USDT"})),
            403,
            "order_guard",
            "symbols",
        ),
        ("over the quantity", order_path, order("0.6", Some("50000"), json!({})), 403, "order_guard", "quantity"),
        ("over the notional", order_path, order("0.03", Some("50000"), json!({})), 403, "order_guard", "notional"),
        ("outside the band", order_path, order("0.01", Some("40000"), json!({})), 403, "order_guard", "band"),
        (
            "a size that is no plain decimal",
            order_path,
            order("1e-2", Some("50000"), json!({})),
            403,
            "order_guard",
            "plain decimal",
        ),
        (
            "one bad order in a batch",
            "/api/v5/trade/batch-orders",
            json!([order("0.01", Some("50000"), json!({})), order("0.9", Some("50000"), json!({}))]),
            403,
            "order_guard",
            "quantity",
        ),
        (
            "an amendment over the quantity",
            "/api/v5/trade/amend-order",
            json!({"instId": "BTC-USDT", "ordId": "1", "newSz": "0.9"}),
            403,
            "order_guard",
            "quantity",
        ),
        (
            "a trade endpoint whose sizes keyward does not read",
            "/api/v5/trade/order-algo",
            order("0.01", Some("50000"), json!({})),
            403,
            "order_guard",
            "do not read",
        ),
    ];
    let mut t = Table::default();
    for (name, path, body, status, code, why) in rows {
        let r = sign(&rig, &key, path, &body).await;
        t.row(name, &r, status, code);
        if !r.message().contains(why) {
            t.fail(format!("{name}: message {:?} does not say {why:?}", r.message()));
        }
    }
    // The reference price is cached for a few seconds; a new symbol needs the ticker.
    down.store(true, Ordering::Relaxed);
    let (_, eth) = rig
        .key(json!({"name": "e", "scopes": ["account:okx:trade"], "allow_ips": ["127.0.0.1"], "price_band": "5%"}))
        .await;
    let r = sign(&rig, &eth, order_path, &order("1", Some("3000"), json!({"instId": "ETH-USDT"}))).await;
    t.row("no reference price (ticker down)", &r, 403, "order_guard");
    t.done();
}

#[tokio::test]
async fn the_daily_cap_counts_what_passed_and_only_that() {
    let rig = okx_rig(Arc::new(AtomicBool::new(false))).await;
    let (_, key) = rig
        .key(json!({"name": "d", "scopes": ["account:okx:trade"], "allow_ips": ["127.0.0.1"],
            "max_qty": "0.5", "max_notional_per_day": "1000"}))
        .await;
    let path = "/api/v5/trade/order";
    let mut t = Table::default();
    t.row("600 of 1000", &sign(&rig, &key, path, &order("0.012", Some("50000"), json!({}))).await, 200, "");
    t.row("another 600", &sign(&rig, &key, path, &order("0.012", Some("50000"), json!({}))).await, 403, "order_guard");
    // Refused by its quantity: it reserves nothing.
    t.row("over the quantity", &sign(&rig, &key, path, &order("0.9", Some("1"), json!({}))).await, 403, "order_guard");
    t.row("400 more", &sign(&rig, &key, path, &order("0.008", Some("50000"), json!({}))).await, 200, "");
    t.row(
        "the cap is reached",
        &sign(&rig, &key, path, &order("0.0002", Some("50000"), json!({}))).await,
        403,
        "order_guard",
    );
    // A new UTC day starts at zero.
    rig.clock.advance_ms(86_400_000);
    t.row("next day", &sign(&rig, &key, path, &order("0.012", Some("50000"), json!({}))).await, 200, "");
    t.done();
}

#[tokio::test]
async fn a_key_cannot_make_keyward_ask_the_exchange_more_than_it_may_itself() {
    let hits = Arc::new(AtomicUsize::new(0));
    let rig = okx_rig_at(counting_ticker(Arc::new(AtomicBool::new(false)), hits.clone()).await).await;
    let (_, key) = rig
        .key(json!({"name": "g", "scopes": ["account:okx:trade"], "allow_ips": ["127.0.0.1"],
            "price_band": "5%", "rate": "1/h,burst=1"}))
        .await;
    let path = "/api/v5/trade/order";
    assert_eq!(sign(&rig, &key, path, &order("0.01", Some("50000"), json!({}))).await.status, 200);
    let before = hits.load(Ordering::Relaxed);
    for i in 0..10 {
        let r = sign(&rig, &key, path, &order("0.01", Some("50000"), json!({"instId": format!("C{i}-USDT")}))).await;
        assert_eq!(r.code(), "rate_limited");
    }
    assert_eq!(hits.load(Ordering::Relaxed), before, "refused requests reached the exchange's ticker");
    // Refusals a price is not needed for come before the rate is spent.
    let (_, capped) = rig
        .key(json!({"name": "c", "scopes": ["account:okx:trade"], "allow_ips": ["127.0.0.1"],
            "max_qty": "0.5", "rate": "1/h,burst=1"}))
        .await;
    for _ in 0..3 {
        assert_eq!(sign(&rig, &capped, path, &order("0.9", Some("50000"), json!({}))).await.code(), "order_guard");
    }
    assert_eq!(sign(&rig, &capped, path, &order("0.1", Some("50000"), json!({}))).await.status, 200);
}
