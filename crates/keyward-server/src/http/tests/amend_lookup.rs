//! Amendments that name no symbol (Deribit's `private/edit`, Coinbase's
//! `orders/edit`, Gate's futures amendment): for a key with order guards,
//! keyward looks the order up with a signed read call, at admission, and
//! holds the amendment to the guards with the order's instrument, side and
//! units. Through the sign API on a Deribit account whose upstream is local:
//! orders on BTC-PERPETUAL (inverse: amounts in US dollars) and
//! ETH-PERPETUAL, a ticker at 50,000.

use super::{Rig, Table};
use crate::config::RuntimeConfig;
use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The upstream: `get_order_state` (counted) and the ticker.
async fn upstream(lookups: Arc<AtomicUsize>) -> String {
    let app = Router::new()
        .route(
            "/api/v2/private/get_order_state",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let lookups = lookups.clone();
                async move {
                    lookups.fetch_add(1, Ordering::Relaxed);
                    let instrument = match q.get("order_id").map(String::as_str) {
                        Some("btc-1") => "BTC-PERPETUAL",
                        Some("eth-1") => "ETH-PERPETUAL",
                        _ => {
                            let e = json!({"jsonrpc": "2.0", "error": {"code": 10004, "message": "order_not_found"}});
                            return (axum::http::StatusCode::BAD_REQUEST, e.to_string());
                        }
                    };
                    let order = json!({"jsonrpc": "2.0", "result": {"order_id": q["order_id"],
                        "instrument_name": instrument, "direction": "buy", "amount": 100.0, "price": 49000.0}});
                    (axum::http::StatusCode::OK, order.to_string())
                }
            }),
        )
        .route(
            "/api/v2/public/ticker",
            get(|| async { json!({"jsonrpc": "2.0", "result": {"last_price": 50000.0}}).to_string() }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

async fn sign(rig: &Rig, key: &str, query: &str) -> super::Reply {
    let req = json!({"method": "GET", "path": "/api/v2/private/edit", "query": query});
    rig.call("POST", "/v1/sign/dr", Some(key), Some(req)).await
}

#[tokio::test]
async fn an_edit_is_held_to_the_guards_as_the_order_it_amends() {
    let lookups = Arc::new(AtomicUsize::new(0));
    let url = upstream(lookups.clone()).await;
    let rig = Rig::with(RuntimeConfig { allow_upstream: vec!["127.0.0.1".into()], ..RuntimeConfig::default() }).await;
    let data = json!({"api_key": "id", "api_secret": "s", "base_url": url});
    assert_eq!(rig.put("exchanges/dr", json!({"type": "deribit", "data": data})).await.status, 200);
    let (_, guarded) = rig
        .key(json!({"name": "g", "scopes": ["account:dr:trade"], "allow_ips": ["127.0.0.1"],
            "symbols": ["BTC-PERPETUAL"], "max_qty": "0.5", "price_band": "5%"}))
        .await;
    let rows: Vec<(&str, &str, u16, &str, &str)> = vec![
        // 10,000 USD at 50,000 is 0.2 BTC.
        ("within the guards", "order_id=btc-1&amount=10000&price=50000", 200, "", ""),
        ("above max_qty in the order's unit", "order_id=btc-1&amount=50000&price=50000", 403, "order_guard", "above"),
        ("outside the band", "order_id=btc-1&amount=100&price=40000", 403, "order_guard", "band"),
        ("an order on another instrument", "order_id=eth-1&amount=100&price=3000", 403, "order_guard", "ETH-PERPETUAL"),
        ("an order the exchange does not know", "order_id=nope&amount=100&price=50000", 403, "order_guard", "look up"),
        (
            "a trigger price read too",
            "order_id=btc-1&amount=100&price=50000&trigger_price=30000",
            403,
            "order_guard",
            "band",
        ),
    ];
    let mut t = Table::default();
    for (case, query, status, code, says) in rows {
        let r = sign(&rig, &guarded, query).await;
        t.row(case, &r, status, code);
        if r.status != 200 && !r.message().contains(says) {
            t.fail(format!("{case}: the refusal does not say {says:?}: {}", r.message()));
        }
    }
    t.done();
    assert_eq!(lookups.load(Ordering::Relaxed), 6, "one lookup each");

    // A key without guards is not slowed by a lookup.
    let (_, free) = rig.key(json!({"name": "f", "scopes": ["account:dr:trade"], "allow_ips": ["127.0.0.1"]})).await;
    assert_eq!(sign(&rig, &free, "order_id=eth-1&amount=100&price=3000").await.status, 200);
    assert_eq!(lookups.load(Ordering::Relaxed), 6);

    // A key past its rate makes no lookup: the exchange is not called for it.
    let (_, slow) = rig
        .key(json!({"name": "s", "scopes": ["account:dr:trade"], "allow_ips": ["127.0.0.1"],
            "symbols": ["BTC-PERPETUAL"], "rate": "1/m,burst=1"}))
        .await;
    assert_eq!(sign(&rig, &slow, "order_id=btc-1&amount=100&price=50000").await.status, 200);
    let r = sign(&rig, &slow, "order_id=btc-1&amount=100&price=50000").await;
    assert_eq!(r.code(), "rate_limited", "{}", r.body);
    assert_eq!(lookups.load(Ordering::Relaxed), 7);
}
