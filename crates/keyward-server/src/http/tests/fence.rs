//! The upstream host fence, in process: an account's `base_url` or
//! `base_urls` may name only the exchange's own hosts and testnets, over
//! https, with nothing but a scheme, host and port; other hosts only when
//! the server was started with `--allow-upstream`. A refused account is not
//! written.

use super::{Rig, Table};
use crate::config::RuntimeConfig;
use serde_json::{Value, json};

async fn account(rig: &Rig, name: &str, extra: Value) -> super::Reply {
    let mut data = json!({"api_key": "K", "api_secret": "S"});
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    rig.put(&format!("exchanges/{name}"), json!({"type": "binance", "data": data})).await
}

#[tokio::test]
async fn base_urls_reach_only_the_exchanges_own_hosts() {
    let rig = Rig::new().await;
    let rows: &[(&str, Value, u16, &str)] = &[
        ("its own host", json!({"base_url": "https://api.binance.com"}), 200, ""),
        ("its testnet", json!({"base_url": "https://testnet.binance.vision"}), 200, ""),
        ("its own host, upper case", json!({"base_url": "https://API.BINANCE.COM"}), 200, ""),
        ("its own host, another port", json!({"base_url": "https://api.binance.com:8443"}), 200, ""),
        ("plain http", json!({"base_url": "http://api.binance.com"}), 400, "upstream_not_allowed"),
        ("another host", json!({"base_url": "https://evil.example"}), 400, "upstream_not_allowed"),
        (
            "a host that ends like it",
            json!({"base_url": "https://api.binance.com.evil.example"}),
            400,
            "upstream_not_allowed",
        ),
        ("a trailing dot", json!({"base_url": "https://api.binance.com."}), 400, "upstream_not_allowed"),
        ("credentials in the URL", json!({"base_url": "https://u:p@api.binance.com"}), 400, "upstream_not_allowed"),
        (
            "userinfo hiding another host",
            json!({"base_url": "https://api.binance.com@evil.example"}),
            400,
            "upstream_not_allowed",
        ),
        ("a path", json!({"base_url": "https://api.binance.com/x"}), 400, "upstream_not_allowed"),
        ("a query", json!({"base_url": "https://api.binance.com/?a=1"}), 400, "upstream_not_allowed"),
        ("a fragment", json!({"base_url": "https://api.binance.com/#a"}), 400, "upstream_not_allowed"),
        ("loopback", json!({"base_url": "https://127.0.0.1"}), 400, "upstream_not_allowed"),
        ("an IPv6 literal", json!({"base_url": "https://[::1]:443"}), 400, "upstream_not_allowed"),
        ("the metadata address", json!({"base_url": "http://169.254.169.254"}), 400, "upstream_not_allowed"),
        ("not a URL", json!({"base_url": "api.binance.com"}), 400, "upstream_not_allowed"),
        ("another scheme", json!({"base_url": "file:///etc/passwd"}), 400, "upstream_not_allowed"),
        (
            "a prefix map to another host",
            json!({"base_urls": "{\"/api\": \"https://evil.example\"}"}),
            400,
            "upstream_not_allowed",
        ),
        (
            "a prefix map to its own host",
            json!({"base_urls": "{\"/fapi\": \"https://testnet.binancefuture.com\"}"}),
            200,
            "",
        ),
        (
            "a prefix without a slash",
            json!({"base_urls": "{\"api\": \"https://api.binance.com\"}"}),
            400,
            "account_invalid",
        ),
        ("a prefix map that is no object", json!({"base_urls": "[1]"}), 400, "account_invalid"),
    ];
    let mut t = Table::default();
    for (i, (name, fields, status, code)) in rows.iter().enumerate() {
        let path = format!("b{i}");
        let r = account(&rig, &path, fields.clone()).await;
        t.row(name, &r, *status, code);
        let stored = rig.state.secrets.meta(&format!("exchanges/{path}")).await.unwrap();
        if stored.is_some() != (*status == 200) {
            t.fail(format!("{name}: stored is {}", stored.is_some()));
        }
    }
    t.done();
}

#[tokio::test]
async fn an_allowlisted_host_may_be_named_and_only_that_one() {
    let rig = Rig::with(RuntimeConfig { allow_upstream: vec!["127.0.0.1".into()], ..RuntimeConfig::default() }).await;
    let mut t = Table::default();
    t.row("allowlisted, http", &account(&rig, "a", json!({"base_url": "http://127.0.0.1:9"})).await, 200, "");
    t.row("allowlisted, https", &account(&rig, "b", json!({"base_url": "https://127.0.0.1:9"})).await, 200, "");
    t.row(
        "another loopback address",
        &account(&rig, "c", json!({"base_url": "http://127.0.0.2:9"})).await,
        400,
        "upstream_not_allowed",
    );
    t.row(
        "allowlisted, another scheme",
        &account(&rig, "d", json!({"base_url": "ftp://127.0.0.1"})).await,
        400,
        "upstream_not_allowed",
    );
    t.done();
}
