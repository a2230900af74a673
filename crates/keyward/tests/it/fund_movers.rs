//! Every fund-moving endpoint of every catalog (withdraw, transfer, borrow,
//! admin) is refused to a key that may read, trade and cancel, through the
//! sign API and through the proxy alike; nothing reaches the upstream.

use crate::harness::*;
use keyward_exchanges::{Class, registry};
use serde_json::json;

fn fields(kind: &str) -> serde_json::Value {
    match kind {
        "kraken" => json!({"api_key": "K", "api_secret": "c2VjcmV0"}),
        "okx" | "kucoin" | "bitget" => json!({"api_key": "K", "api_secret": "S", "passphrase": "P"}),
        // An Ed25519 seed (32 bytes, base64).
        "coinbase" => json!({"api_key": "K", "api_secret": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}),
        _ => json!({"api_key": "K", "api_secret": "S"}),
    }
}

#[test]
fn a_trade_key_is_refused_every_fund_mover() {
    let fake = FakeExchange::start(&json!({}));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let a = s.admin().to_string();
    let mut scopes = Vec::new();
    for ex in registry() {
        let mut f = fields(ex.kind());
        f["base_url"] = json!(fake.url);
        let (st, v) = s.http(
            "PUT",
            &format!("/v1/secrets/exchanges/{}", ex.kind()),
            Some(&a),
            Some(&json!({"data": f, "type": ex.kind()})),
        );
        assert_eq!(st, 200, "{v}");
        for c in ["read", "trade", "cancel", "public"] {
            scopes.push(format!("account:{}:{c}", ex.kind()));
        }
    }
    let (_, key) = create_key(&s, json!({"name": "trader", "scopes": scopes, "allow_ips": ["127.0.0.1/32"]}));
    let client = reqwest::blocking::Client::new();
    let mut checked = 0;
    for ex in registry() {
        for e in ex.catalog() {
            if !matches!(e.class, Class::Withdraw | Class::Transfer | Class::Borrow | Class::Admin) {
                continue;
            }
            let path = e.path.replace("{}", "x1");
            let method = e.method.as_str();
            let got = s.http(
                "POST",
                &format!("/v1/sign/{}", ex.kind()),
                Some(&key),
                Some(&json!({"method": method, "path": path})),
            );
            assert_error(&got, 403, "scope_missing");
            let r = client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}/proxy/{}{path}", s.addr, ex.kind()),
                )
                .bearer_auth(&key)
                .send()
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().unwrap_or_default();
            assert_error(&(status, body), 403, "scope_missing");
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} fund movers");
    assert!(fake.log().is_empty(), "a refused request reached the exchange: {:?}", fake.log());
}
