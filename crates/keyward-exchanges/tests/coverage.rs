//! Catalog coverage over committed snapshots of ccxt (made by
//! tools/ccxt_endpoints.py and tools/ccxt_unified.py), for every exchange:
//!
//! - every endpoint whose name says it moves funds, manages keys or
//!   sub-accounts, borrows or mints a token is classed as such: never
//!   `public`, `read`, `trade`, `cancel`, nor unknown (a user-data stream
//!   key that only reads, Binance's listen key, is the one `read`);
//! - every endpoint a ccxt unified method calls (loading markets, balances,
//!   orders, positions, leverage, withdrawals, transfers, …) is classified;
//! - the catalogs name real endpoints: most appear in ccxt's list.
//!
//! Only the hosts keyward sends each exchange's requests to count (KuCoin's
//! and HTX's futures hosts serve the same paths as their spot hosts).

#![allow(clippy::unwrap_used)]

use keyward_exchanges::{CanonicalRequest, Class, by_kind, registry};
use serde_json::Value;
use std::collections::HashSet;

/// The exchanges' hosts keyward forwards to (their base URLs).
fn routed(exchange: &str, host: &str) -> bool {
    let hosts: &[&str] = match exchange {
        "binance" => &["api.binance.com", "fapi.binance.com"],
        "okx" => &["www.okx.com"],
        "bybit" => &["api.bybit.com"],
        "kraken" => &["api.kraken.com"],
        "kucoin" => &["api.kucoin.com"],
        "bitget" => &["api.bitget.com"],
        "gate" => &["api.gateio.ws"],
        "deribit" => &["www.deribit.com"],
        "coinbase" => &["api.coinbase.com"],
        "htx" => &["api.huobi.pro"],
        _ => &[],
    };
    hosts.contains(&host)
}

const FUND_MOVER_WORDS: &[&str] = &[
    "withdraw",
    "transfer",
    "apikey",
    "api-key",
    "api_key",
    "subaccount",
    "sub-account",
    "sub_account",
    "subuser",
    "sub-user",
    "gift",
    "convert",
    "loan",
    "borrow",
    "repay",
    "lending",
    "pledge",
    "block",
    "rfq",
    "pay",
    "p2p",
    "token",
    "listenkey",
    "userdatastream",
    "bullet",
];

/// A user-data stream key lets its holder read the account's events, not
/// trade or move funds: `read` (the issue names Binance's listen key).
fn read_only_stream(exchange: &str, path: &str) -> bool {
    exchange == "binance"
        && (path.ends_with("/userDataStream")
            || path.ends_with("/userDataStream/isolated")
            || path == "/fapi/v1/listenKey")
}

/// A request for `method path` (ccxt's `{placeholders}` filled in as ccxt
/// fills them for spot and USDT-settled markets).
fn request(method: &str, path: &str) -> Option<CanonicalRequest> {
    let mut filled = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        filled.push_str(match &rest[open + 1..close] {
            "settle" => "usdt",
            "accountMode" => "unified",
            _ => "x1",
        });
        rest = &rest[close + 1..];
    }
    filled.push_str(rest);
    CanonicalRequest::parse(method, &filled, None, None, b"").ok()
}

fn endpoints() -> Vec<Value> {
    let snapshot: Value = serde_json::from_str(include_str!("vectors/ccxt-endpoints.json")).unwrap();
    snapshot["endpoints"].as_array().unwrap().clone()
}

#[test]
fn no_fund_mover_is_public_read_trade_cancel_or_unknown() {
    let mut offenders = Vec::new();
    let mut movers = 0;
    for e in endpoints() {
        let (kind, host) = (e["exchange"].as_str().unwrap(), e["host"].as_str().unwrap_or(""));
        let Some(ex) = by_kind(kind) else { continue };
        let (method, path) = (e["method"].as_str().unwrap(), e["path"].as_str().unwrap());
        let name = path.to_ascii_lowercase();
        if !routed(kind, host) || !FUND_MOVER_WORDS.iter().any(|w| name.contains(w)) {
            continue;
        }
        // ccxt lists a few with methods keyward never accepts (PATCH): refused outright.
        let Some(req) = request(method, path) else { continue };
        movers += 1;
        let class = ex.classify(&req);
        let ok = match class {
            Some(Class::Read) => read_only_stream(kind, path),
            Some(c) => !matches!(c, Class::Public | Class::Trade | Class::Cancel),
            None => false,
        };
        if !ok {
            offenders.push(format!("{kind} {method} {path} → {class:?}"));
        }
    }
    assert!(offenders.is_empty(), "{} fund movers misclassified:\n{}", offenders.len(), offenders.join("\n"));
    assert!(movers > 800, "only {movers} fund movers checked");
}

#[test]
fn every_endpoint_a_ccxt_unified_method_calls_is_classified() {
    let unified: Value = serde_json::from_str(include_str!("vectors/ccxt-unified.json")).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for ex in registry() {
        let calls =
            unified["exchanges"][ex.kind()].as_array().unwrap_or_else(|| panic!("{} not in the snapshot", ex.kind()));
        for c in calls {
            let (method, path, host) =
                (c["method"].as_str().unwrap(), c["path"].as_str().unwrap(), c["host"].as_str().unwrap());
            if !routed(ex.kind(), host) {
                continue;
            }
            // Gate's spot amend is a PATCH, a method keyward refuses
            // (request_not_canonical): amend there by cancel and place.
            let Some(req) = request(method, path) else {
                assert_eq!((ex.kind(), method), ("gate", "PATCH"), "{path}");
                continue;
            };
            checked += 1;
            if ex.classify(&req).is_none() {
                missing.push(format!("{} {method} {path} ({})", ex.kind(), c["unified"]));
            }
        }
    }
    assert!(missing.is_empty(), "{} unclassified:\n{}", missing.len(), missing.join("\n"));
    assert!(checked > 300, "only {checked} checked");
}

#[test]
fn every_catalogued_endpoint_is_one_ccxt_knows_or_documented() {
    let known: HashSet<(String, String, String)> = endpoints()
        .iter()
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            // ccxt's `{placeholders}` are the catalogs' `{}`.
            let mut p = String::new();
            let mut inside = false;
            for ch in path.chars() {
                match ch {
                    '{' => {
                        inside = true;
                        p.push_str("{}");
                    }
                    '}' => inside = false,
                    c if !inside => p.push(c),
                    _ => {}
                }
            }
            (e["exchange"].as_str().unwrap().to_string(), e["method"].as_str().unwrap().to_string(), p)
        })
        .collect();
    for ex in registry() {
        let kind = ex.kind();
        let total = ex.catalog().len();
        let found = ex
            .catalog()
            .iter()
            .filter(|e| known.contains(&(kind.to_string(), e.method.as_str().to_string(), e.path.to_string())))
            .count();
        assert!(found * 10 >= total * 7, "{kind}: only {found} of {total} catalogued endpoints are in ccxt's list");
    }
}
