//! Catalog coverage over a committed snapshot of ccxt's endpoint list
//! (tests/vectors/ccxt-endpoints.json, made by tools/ccxt_endpoints.py):
//! every private endpoint is either classified or deliberately
//! `endpoint_unknown`, and none whose name says it moves funds or mints
//! credentials is `public`, `read`, `trade` or `cancel`.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::{CanonicalRequest, Class, by_kind};
use serde_json::Value;

const FUND_MOVER_WORDS: &[&str] = &[
    "withdraw",
    "transfer",
    "apikey",
    "api-key",
    "subaccount",
    "sub-account",
    "gift",
    "convert",
    "loan",
    "borrow",
    "block",
    "rfq",
    "pay",
    "p2p",
    "token",
];

#[test]
fn no_fund_mover_is_public_read_trade_or_cancel() {
    let snapshot: Value = serde_json::from_str(include_str!("vectors/ccxt-endpoints.json")).unwrap();
    let mut classified = 0;
    let mut unknown = 0;
    let mut offenders = Vec::new();
    for e in snapshot["endpoints"].as_array().unwrap() {
        let kind = match e["exchange"].as_str().unwrap() {
            "binance" => "binance",
            "okx" => "okx",
            "bybit" => "bybit",
            "kraken" => "kraken",
            _ => continue,
        };
        let ex = by_kind(kind).unwrap();
        let (method, path) = (e["method"].as_str().unwrap(), e["path"].as_str().unwrap());
        // ccxt lists a few paths with placeholders or methods keyward never accepts.
        let Ok(req) = CanonicalRequest::parse(method, path, None, None, b"") else {
            unknown += 1;
            continue;
        };
        let class = ex.classify(&req);
        match class {
            Some(_) => classified += 1,
            None => unknown += 1,
        }
        let name = path.to_ascii_lowercase();
        let moves_funds = FUND_MOVER_WORDS.iter().any(|w| name.contains(w));
        if moves_funds && matches!(class, Some(Class::Public | Class::Read | Class::Trade | Class::Cancel)) {
            offenders.push(format!("{kind} {method} {path} → {:?}", class));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
    assert!(classified > 150, "only {classified} classified");
    eprintln!("{classified} endpoints classified, {unknown} deliberately endpoint_unknown");
}

#[test]
fn every_catalogued_endpoint_is_one_ccxt_knows_or_documented() {
    // The catalogs name real endpoints: most appear in ccxt's lists.
    let snapshot: Value = serde_json::from_str(include_str!("vectors/ccxt-endpoints.json")).unwrap();
    let known: std::collections::HashSet<(String, String, String)> = snapshot["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["exchange"].as_str().unwrap().to_string(),
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for kind in ["binance", "okx", "bybit", "kraken"] {
        let ex = by_kind(kind).unwrap();
        let total = ex.catalog().len();
        let found = ex
            .catalog()
            .iter()
            .filter(|e| known.contains(&(kind.to_string(), e.method.as_str().to_string(), e.path.to_string())))
            .count();
        assert!(found * 10 >= total * 8, "{kind}: only {found} of {total} catalogued endpoints are in ccxt's list");
    }
}
