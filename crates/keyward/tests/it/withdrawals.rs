//! Withdrawal controls through the proxy against the fake exchange: only
//! to allowlisted destinations (asset, address, network, memo), within a
//! cap over any 24 hours (a test clock moves the window), read strictly;
//! a refusal never reaches the exchange.

use crate::harness::*;
use crate::incident::{fake, proxy, setup};
use serde_json::{Value, json};

fn withdrawals_seen(fake: &FakeExchange, path: &str) -> Vec<Value> {
    fake.log().into_iter().filter(|r| r["path"] == path).collect()
}

fn withdraw_key(s: &Server, account: &str) -> String {
    let scopes = [format!("account:{account}:withdraw"), format!("account:{account}:read")];
    create_key(s, json!({"name": format!("{account}-treasury"), "scopes": scopes, "allow_ips": ["127.0.0.1/32"]})).1
}

fn binance(s: &Server, key: &str, query: &str) -> (u16, Value) {
    proxy(s, key, "POST", &format!("bin/sapi/v1/capital/withdraw/apply?{query}"), None)
}

#[test]
fn binance_withdrawals_go_only_to_allowed_destinations_within_the_cap() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &["--test-clock"]);
    // The test clock moves the window; the fake exchange's clock follows it
    // (Binance refuses a timestamp outside its receive window).
    let t0 = crate::approvals::now_ms();
    let at = |offset_ms: i64| {
        s.set_clock(t0 + offset_ms);
        fake.control(&format!("skew_ms={offset_ms}"));
    };
    at(0);
    let key = withdraw_key(&s, "bin");
    let admin = s.admin().to_string();
    // No allowlist: nothing leaves.
    assert_error(&binance(&s, &key, "coin=BTC&address=bc1qcold&amount=0.1&network=BTC"), 403, "withdraw_policy");
    let o = s.cli(Some(&admin), &["account", "allow-address", "bin", "BTC", "bc1qcold", "--network", "BTC"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(binance(&s, &key, "coin=BTC&address=bc1qcold&amount=0.1&network=BTC").0, 200);
    assert_eq!(withdrawals_seen(&fake, "/sapi/v1/capital/withdraw/apply").len(), 1);
    // Anything else is refused before the exchange: another address, another
    // network, no network, a memo, a parameter keyward does not read, a
    // malformed amount, another asset.
    for q in [
        "coin=BTC&address=bc1qthief&amount=0.1&network=BTC",
        "coin=BTC&address=bc1qcold&amount=0.1&network=LIGHTNING",
        "coin=BTC&address=bc1qcold&amount=0.1",
        "coin=BTC&address=bc1qcold&amount=0.1&network=BTC&addressTag=99",
        "coin=BTC&address=bc1qcold&amount=0.1&network=BTC&name=mine",
        "coin=BTC&address=bc1qcold&amount=1e-1&network=BTC",
        "coin=ETH&address=bc1qcold&amount=0.1&network=BTC",
    ] {
        assert_error(&binance(&s, &key, q), 403, "withdraw_policy");
    }
    assert_eq!(withdrawals_seen(&fake, "/sapi/v1/capital/withdraw/apply").len(), 1, "a refusal reached the exchange");
    // A cap over any 24 hours.
    let o = s.cli(Some(&admin), &["account", "cap", "bin", "BTC", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let ok = "coin=BTC&address=bc1qcold&amount=0.6&network=BTC";
    assert_eq!(binance(&s, &key, ok).0, 200);
    at(3_600_000);
    let over = binance(&s, &key, ok);
    assert_error(&over, 403, "withdraw_policy");
    assert!(over.1["error"]["message"].as_str().unwrap().contains("cap of 1"), "{}", over.1);
    // The first withdrawal (before the cap, uncounted) and 0.6 are in the window; 0.6 leaves room for 0.4.
    assert_eq!(binance(&s, &key, "coin=BTC&address=bc1qcold&amount=0.4&network=BTC").0, 200);
    assert_error(&binance(&s, &key, "coin=BTC&address=bc1qcold&amount=0.01&network=BTC"), 403, "withdraw_policy");
    at(24 * 3_600_000 + 1);
    assert_eq!(binance(&s, &key, ok).0, 200, "the first 0.6 left the window");
    assert_eq!(withdrawals_seen(&fake, "/sapi/v1/capital/withdraw/apply").len(), 4);
    let (_, show) = s.http("GET", "/v1/accounts/bin", Some(&admin), None);
    assert_eq!(show["withdrawal_caps"]["BTC"]["spent_24h"], "1.0", "{show}");
    // A single amount over the cap, and a key without withdraw.
    assert_error(&binance(&s, &key, "coin=BTC&address=bc1qcold&amount=2&network=BTC"), 403, "withdraw_policy");
    let (_, trader) = crate::incident::bot(&s, "trader", "bin");
    assert_error(&binance(&s, &trader, ok), 403, "scope_missing");
    // Withdrawal history moves nothing: no destination needed.
    assert_eq!(proxy(&s, &key, "GET", "bin/sapi/v1/capital/withdraw/history", None).0, 200);
}

#[test]
fn okx_memos_and_kraken_withdrawal_keys_are_destinations_too() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &[]);
    let admin = s.admin().to_string();
    let okx = withdraw_key(&s, "okx");
    let body = |to: &str| json!({"ccy": "XRP", "amt": "5", "dest": "4", "toAddr": to, "chain": "XRP-Ripple"});
    let (st, v) = s.http(
        "POST",
        "/v1/accounts/okx/addresses",
        Some(&admin),
        Some(&json!({"asset": "xrp", "address": "rExchange", "memo": "4242"})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(proxy(&s, &okx, "POST", "okx/api/v5/asset/withdrawal", Some(&body("rExchange:4242"))).0, 200);
    assert_error(
        &proxy(&s, &okx, "POST", "okx/api/v5/asset/withdrawal", Some(&body("rExchange:1111"))),
        403,
        "withdraw_policy",
    );
    assert_error(
        &proxy(&s, &okx, "POST", "okx/api/v5/asset/withdrawal", Some(&body("rExchange"))),
        403,
        "withdraw_policy",
    );
    assert_eq!(withdrawals_seen(&fake, "/api/v5/asset/withdrawal").len(), 1);

    let kraken = withdraw_key(&s, "kr");
    let form = |key: &str| format!("asset=XBT&key={key}&amount=0.25");
    let c = reqwest::blocking::Client::new();
    let send = |f: String| {
        let r = c
            .post(format!("{}/proxy/kr/0/private/Withdraw", s.addr))
            .bearer_auth(&kraken)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(f)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null))
    };
    assert_error(&send(form("cold-wallet")), 403, "withdraw_policy");
    let o = s.cli(Some(&admin), &["account", "allow-address", "kr", "XBT", "cold-wallet"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(send(form("cold-wallet")).0, 200);
    assert_error(&send(form("someone-else")), 403, "withdraw_policy");
    // Removing a destination takes effect at once.
    let o = s.cli(Some(&admin), &["account", "remove-address", "kr", "XBT", "cold-wallet"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(&send(form("cold-wallet")), 403, "withdraw_policy");
    assert_eq!(withdrawals_seen(&fake, "/0/private/Withdraw").len(), 1);
}
