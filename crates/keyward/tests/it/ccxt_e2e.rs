//! ccxt (Python, unchanged) trading through keyward's proxy for all ten
//! exchanges (Binance, OKX, Bybit, Kraken, Bitget, KuCoin, Gate, Deribit,
//! Coinbase, HTX), against the fake exchange that checks the real
//! signatures with Python's hmac and `cryptography` (each venue on its own
//! port): markets, an order and balances work; a withdrawal is refused with
//! scope_missing and an order above the key's cap with order_guard. Needs a
//! Python with ccxt: `./test.sh` installs one and sets KEYWARD_TEST_PYTHON.

use crate::harness::*;
use serde_json::{Value, json};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
/// A made-up Coinbase CDP Ed25519 key (base64 of seed and public key).
const COINBASE_SECRET: &str =
    "CygkuJlBFISJLF87Wo5OcOUsw2VOowAu3/MN7+tiCj0QhmJ83wTjjYCF5wnEXr1FBAKdpzhFGQTurXD4sLr2Wg==";
const COINBASE_KEY: &str = "organizations/keyward-e2e/apiKeys/coinbase-real-key";

fn python_with_ccxt() -> String {
    let candidates = [
        std::env::var("KEYWARD_TEST_PYTHON").ok(),
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/python").to_string()),
    ];
    for py in candidates.into_iter().flatten() {
        let ok = std::process::Command::new(&py).args(["-c", "import ccxt"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return py;
        }
    }
    panic!("no Python with ccxt: run the tests with ./test.sh (it installs ccxt into .venv-test)");
}

#[test]
fn ccxt_loads_markets_orders_and_reads_balances_through_the_proxy() {
    let python = python_with_ccxt();
    let fake = FakeExchange::start(&json!({
        "binance": {"key": "BINANCE-REAL-KEY", "secret": "binance-real-secret"},
        "okx": {"key": "OKX-REAL-KEY", "secret": "okx-real-secret", "passphrase": "okx-pass"},
        "bybit": {"key": "BYBIT-REAL-KEY", "secret": "bybit-real-secret"},
        "kraken": {"key": "KRAKEN-REAL-KEY", "secret": KRAKEN_SECRET},
        "bitget": {"key": "BITGET-REAL-KEY", "secret": "bitget-real-secret", "passphrase": "bitget-pass"},
        "kucoin": {"key": "KUCOIN-REAL-KEY", "secret": "kucoin-real-secret", "passphrase": "kucoin-pass"},
        "gate": {"key": "GATE-REAL-KEY", "secret": "gate-real-secret"},
        "deribit": {"key": "DERIBIT-REAL-ID", "secret": "deribit-real-secret"},
        "coinbase": {"key": COINBASE_KEY, "secret": COINBASE_SECRET},
        "htx": {"key": "HTX-REAL-KEY", "secret": "htx-real-secret"},
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let a = s.admin().to_string();
    let accounts = [
        ("bin", "binance", json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret"})),
        ("okx", "okx", json!({"api_key": "OKX-REAL-KEY", "api_secret": "okx-real-secret", "passphrase": "okx-pass"})),
        ("by", "bybit", json!({"api_key": "BYBIT-REAL-KEY", "api_secret": "bybit-real-secret"})),
        ("kr", "kraken", json!({"api_key": "KRAKEN-REAL-KEY", "api_secret": KRAKEN_SECRET})),
        (
            "bg",
            "bitget",
            json!({"api_key": "BITGET-REAL-KEY", "api_secret": "bitget-real-secret", "passphrase": "bitget-pass"}),
        ),
        (
            "kc",
            "kucoin",
            json!({"api_key": "KUCOIN-REAL-KEY", "api_secret": "kucoin-real-secret", "passphrase": "kucoin-pass"}),
        ),
        ("gt", "gate", json!({"api_key": "GATE-REAL-KEY", "api_secret": "gate-real-secret"})),
        ("dr", "deribit", json!({"api_key": "DERIBIT-REAL-ID", "api_secret": "deribit-real-secret"})),
        ("cb", "coinbase", json!({"api_key": COINBASE_KEY, "api_secret": COINBASE_SECRET})),
        ("htx", "htx", json!({"api_key": "HTX-REAL-KEY", "api_secret": "htx-real-secret"})),
    ];
    for (name, kind, mut fields) in accounts.clone() {
        fields["base_url"] = json!(fake.url_for(kind));
        let (st, v) = s.http(
            "PUT",
            &format!("/v1/secrets/exchanges/{name}"),
            Some(&a),
            Some(&json!({"data": fields, "type": kind})),
        );
        assert_eq!(st, 200, "{v}");
    }
    let scopes: Vec<String> =
        accounts.iter().flat_map(|(n, _, _)| [format!("account:{n}:trade"), format!("account:{n}:read")]).collect();
    let (_, key) = create_key(&s, json!({"name": "ccxt-bot", "scopes": scopes, "allow_ips": ["127.0.0.1/32"]}));
    let (_, guarded) =
        create_key(&s, json!({"name": "capped", "scopes": scopes, "allow_ips": ["127.0.0.1/32"], "max_qty": "0.5"}));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/ccxt_e2e.py");
    let o = std::process::Command::new(&python).arg(script).arg(&s.addr).arg(&key).arg(&guarded).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let results: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 10, "{out}");
    for r in &results {
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["markets"], true, "{r}");
        assert!(r["order_id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
        assert!(!r["balance_currencies"].as_array().unwrap().is_empty(), "{r}");
        assert_eq!(r["withdraw"], "scope_missing", "{r}");
        assert_eq!(r["over_cap"], "order_guard", "{r}");
    }
    // The exchange never saw the keyward key, and never a withdrawal.
    let log = fake.log();
    assert!(log.len() >= 30, "{}", log.len());
    for r in &log {
        assert!(!r.to_string().contains(&key), "the keyward key reached the exchange: {r}");
        assert!(!r["path"].as_str().unwrap().to_ascii_lowercase().contains("withdraw"), "{r}");
    }
}

/// The fake exchange's verifiers agree with ccxt's own signing, keyward
/// aside: ccxt signs with the real credentials straight at each venue
/// (every call succeeds), with a wrong secret (refused), and with a signed
/// request altered (refused). tests/fake_exchange/selftest.py.
#[test]
fn the_fake_exchange_checks_signatures_as_ccxt_makes_them() {
    let python = python_with_ccxt();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fake_exchange/selftest.py");
    let o = std::process::Command::new(&python).arg(script).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("0 of 11 failed"), "{out}");
}
