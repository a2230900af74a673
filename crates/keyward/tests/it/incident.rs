//! Incident response against the fake exchange (it checks every signature
//! with Python's hmac and keeps open orders, key settings and dead-man
//! timers as the exchanges do): `account check` per exchange, `freeze`
//! with and without cancelling orders, `unfreeze`, and the dead-man timer
//! re-armed while keyward runs and running out when it stops.

use crate::harness::*;
use serde_json::{Value, json};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// The account names used here, their exchange and fields.
fn accounts() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("bin", "binance", json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret"})),
        ("okx", "okx", json!({"api_key": "OKX-REAL-KEY", "api_secret": "okx-real-secret", "passphrase": "okx-pass"})),
        ("by", "bybit", json!({"api_key": "BYBIT-REAL-KEY", "api_secret": "bybit-real-secret"})),
        ("kr", "kraken", json!({"api_key": "KRAKEN-REAL-KEY", "api_secret": KRAKEN_SECRET})),
        (
            "bg",
            "bitget",
            json!({"api_key": "BITGET-REAL-KEY", "api_secret": "bitget-real-secret", "passphrase": "bg-pass"}),
        ),
    ]
}

pub(crate) fn fake() -> FakeExchange {
    FakeExchange::start(&json!({
        "binance": {"key": "BINANCE-REAL-KEY", "secret": "binance-real-secret"},
        "okx": {"key": "OKX-REAL-KEY", "secret": "okx-real-secret", "passphrase": "okx-pass"},
        "bybit": {"key": "BYBIT-REAL-KEY", "secret": "bybit-real-secret"},
        "kraken": {"key": "KRAKEN-REAL-KEY", "secret": KRAKEN_SECRET},
        "bitget": {"key": "BITGET-REAL-KEY", "secret": "bitget-real-secret", "passphrase": "bg-pass"},
    }))
}

/// A server with every account on the fake exchange.
pub(crate) fn setup(dir: &std::path::Path, fake: &FakeExchange, extra: &[&str]) -> Server {
    let mut args = vec!["--allow-upstream", "127.0.0.1"];
    args.extend_from_slice(extra);
    let s = start(dir, &args);
    for (name, kind, fields) in accounts() {
        exchange_account(&s, name, kind, fields, &fake.url);
    }
    s
}

/// A bot key that may trade and read `account`.
pub(crate) fn bot(s: &Server, name: &str, account: &str) -> (String, String) {
    let scopes = [format!("account:{account}:trade"), format!("account:{account}:read")];
    create_key(s, json!({"name": name, "scopes": scopes, "allow_ips": ["127.0.0.1/32"]}))
}

/// A request through the proxy with a bearer key.
pub(crate) fn proxy(s: &Server, key: &str, method: &str, target: &str, json_body: Option<&Value>) -> (u16, Value) {
    let c = reqwest::blocking::Client::new();
    let mut rb =
        c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}/proxy/{target}", s.addr));
    rb = rb.bearer_auth(key);
    if let Some(b) = json_body {
        rb = rb.json(b);
    }
    let r = rb.send().unwrap();
    let st = r.status().as_u16();
    (st, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
}

fn state(fake: &FakeExchange) -> Value {
    reqwest::blocking::get(format!("{}/__state", fake.url)).unwrap().json().unwrap()
}

fn keyinfo(fake: &FakeExchange, v: Value) {
    let r =
        reqwest::blocking::Client::new().post(format!("{}/__keyinfo", fake.url)).body(v.to_string()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

fn check(s: &Server, account: &str) -> Value {
    let (st, v) = s.http("POST", &format!("/v1/accounts/{account}/check"), Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    v
}

fn warnings(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "warning")
        .map(|f| f["setting"].as_str().unwrap().to_string())
        .collect()
}

/// The exchanges' own settings as a tight key has them: no withdrawal,
/// no transfer, bound to keyward's address (127.0.0.1 here).
fn tight() -> Value {
    json!({
        "binance": {"ipRestrict": true, "enableReading": true, "enableWithdrawals": false, "enableInternalTransfer": false,
                    "permitsUniversalTransfer": false, "enableMargin": false, "enableFutures": false,
                    "enableSpotAndMarginTrading": true},
        "bybit": {"retCode": 0, "retMsg": "", "result": {"readOnly": 0, "permissions": {"Spot": ["SpotTrade"], "Wallet": []},
                  "ips": ["127.0.0.1"], "expiredAt": "1970-01-01T00:00:00Z"}},
        "okx": {"code": "0", "msg": "", "data": [{"perm": "read_only,trade", "ip": "127.0.0.1"}]},
        "kraken": {"error": [], "result": {"permissions": ["query-funds", "modify-trades"], "validUntil": "0",
                   "ipAllowlist": ["127.0.0.1"]}},
        "bitget": {"code": "00000", "msg": "success", "data": {"ips": "127.0.0.1", "authorities": ["stor", "stow"]}},
    })
}

#[test]
fn account_check_warns_on_a_broad_exchange_key_and_passes_a_tight_one() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &[]);
    for (name, _, _) in accounts() {
        bot(&s, &format!("{name}-bot"), name);
    }
    // Broad keys (the fake's default): withdrawals on, any address.
    let expect = [
        ("bin", vec!["Enable Withdrawals", "Permits Universal Transfer", "Restrict access to trusted IPs only"]),
        ("by", vec!["Withdrawal", "Account Transfer"]),
        ("okx", vec!["Withdraw"]),
        ("kr", vec!["Withdraw Funds"]),
        ("bg", vec!["Wallet: Withdraw", "Wallet: Transfer"]),
    ];
    for (name, settings) in &expect {
        let report = check(&s, name);
        assert_eq!(report["ok"], false, "{report}");
        let found = warnings(&report);
        for want in settings {
            assert!(found.iter().any(|f| f == want), "{name}: no warning naming {want:?}: {report}");
        }
        let message = report["findings"][0]["message"].as_str().unwrap();
        assert!(message.contains("switch off") || message.contains("set"), "{message}");
    }
    // Tight keys pass, on every exchange.
    keyinfo(&fake, tight());
    for (name, _) in &expect {
        let report = check(&s, name);
        assert_eq!((report["ok"].clone(), warnings(&report)), (json!(true), Vec::<String>::new()), "{name}: {report}");
        assert_eq!(report["egress"], json!(["127.0.0.1"]), "{report}");
    }
    // A key bound to addresses that leave keyward out.
    keyinfo(&fake, json!({"okx": {"code": "0", "data": [{"perm": "read_only,trade", "ip": "203.0.113.9"}]}}));
    let report = check(&s, "okx");
    assert!(report["findings"][0]["message"].as_str().unwrap().contains("not among"), "{report}");
    // The CLI: exit 1 when something needs changing, the setting by name.
    let o = s.cli(Some(s.admin()), &["account", "check", "bin"], None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    keyinfo(&fake, json!({"binance": {"ipRestrict": false, "enableWithdrawals": true}}));
    let o = s.cli(Some(s.admin()), &["account", "check", "bin"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("\"Enable Withdrawals\""), "{}", stdout(&o));
    // Exchanges with no key-information endpoint say so (none of the nine today); a
    // key without a scope on the account is refused before anything is asked.
    let (_, other) = bot(&s, "other", "okx");
    let got = s.http("POST", "/v1/accounts/bin/check", Some(&other), None);
    assert_error(&got, 403, "scope_missing");
}

#[test]
fn the_daily_check_sets_its_metric_and_alerts() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = crate::audit::receiver();
    let s = setup(dir.path(), &fake, &["--account-check-every", "1s", "--alert-webhook", &hook]);
    bot(&s, "bin-bot", "bin");
    let alerts = crate::audit::wait_for(&got, |v| v["rule"] == "account_check" && v["subject"] == "bin");
    assert!(!alerts.is_empty(), "no account_check alert");
    assert!(alerts[0]["summary"].as_str().unwrap().contains("Enable Withdrawals"), "{}", alerts[0]);
    let text = metrics_text(&s, s.admin());
    assert!(text.contains("keyward_account_check_ok{account=\"bin\"} 0"), "{text}");
    keyinfo(&fake, tight());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !metrics_text(&s, s.admin()).contains("keyward_account_check_ok{account=\"bin\"} 1") {
        assert!(std::time::Instant::now() < deadline, "the metric never recovered");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Places a Binance spot order through the proxy.
pub(crate) fn binance_order(s: &Server, key: &str, symbol: &str, futures: bool) -> u16 {
    let prefix = if futures { "fapi/v1" } else { "api/v3" };
    let target =
        format!("bin/{prefix}/order?symbol={symbol}&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000");
    proxy(s, key, "POST", &target, None).0
}

#[test]
fn a_freeze_disables_the_bots_refuses_signing_and_keeps_orders_unless_asked() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &[]);
    let (bot_id, bot_key) = bot(&s, "grid", "bin");
    let (other_id, other_key) = bot(&s, "other", "okx");
    let (idle_id, _) = bot(&s, "idle", "bin");
    assert_eq!(s.http("POST", &format!("/v1/keys/{idle_id}/disable"), Some(s.admin()), None).0, 200);
    assert_eq!(binance_order(&s, &bot_key, "BTCUSDT", false), 200);
    let o = s.cli(Some(s.admin()), &["account", "freeze", "bin", "--reason", "host breached"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("disabled  {bot_id}")), "{}", stdout(&o));
    // The bot is refused at once, and so is any signing for the account.
    assert_error(&proxy(&s, &bot_key, "GET", "bin/api/v3/account", None), 401, "key_disabled");
    assert_error(&proxy(&s, s.admin(), "GET", "bin/api/v3/account", None), 403, "account_frozen");
    let signed =
        s.http("POST", "/v1/sign/bin", Some(s.admin()), Some(&json!({"method": "GET", "path": "/api/v3/account"})));
    assert_error(&signed, 403, "account_frozen");
    // Another account's bot is untouched; nothing was cancelled.
    assert_eq!(proxy(&s, &other_key, "GET", "okx/api/v5/account/balance", None).0, 200);
    assert_eq!(state(&fake)["open"]["binance"].as_array().unwrap().len(), 1);
    // A key a freeze disabled is enabled by unfreezing only.
    let enable = s.http("POST", &format!("/v1/keys/{bot_id}/enable"), Some(s.admin()), None);
    assert_error(&enable, 403, "account_frozen");
    let (st, show) = s.http("GET", "/v1/accounts/bin", Some(s.admin()), None);
    assert_eq!((st, show["frozen"]["reason"].as_str()), (200, Some("host breached")), "{show}");
    // Unfreezing (no approvers: at once) restores each key as it was.
    let (st, un) = s.http("POST", "/v1/accounts/bin/unfreeze", Some(s.admin()), None);
    assert_eq!(st, 200, "{un}");
    assert_eq!(un["keys_enabled"][0]["id"], bot_id.as_str(), "{un}");
    assert_eq!(proxy(&s, &bot_key, "GET", "bin/api/v3/account", None).0, 200);
    let (_, idle) = s.http("GET", &format!("/v1/keys/{idle_id}"), Some(s.admin()), None);
    assert_eq!(idle["state"], "disabled", "a key disabled before the freeze stays disabled");
    let _ = other_id;
    // The audit log has the decision, durably, and what was done.
    let (_, log) = s.http("GET", "/v1/audit?account=bin&limit=50", Some(s.admin()), None);
    let changes: Vec<String> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["change"].as_str().map(str::to_string))
        .collect();
    for want in ["freeze", "frozen", "unfreeze", "unfrozen"] {
        assert!(changes.iter().any(|c| c == want), "{want} missing: {changes:?} {log}");
    }
}

#[test]
fn a_freeze_with_cancel_orders_reaches_every_cancel_all_and_reports_failures() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = crate::audit::receiver();
    let s = setup(dir.path(), &fake, &["--alert-webhook", &hook]);
    let (_, bin) = bot(&s, "bin-bot", "bin");
    for (symbol, futures) in [("BTCUSDT", false), ("ETHUSDT", false), ("BTCUSDT", true)] {
        assert_eq!(binance_order(&s, &bin, symbol, futures), 200);
    }
    let (_, okx) = bot(&s, "okx-bot", "okx");
    for i in 0..25 {
        let order = json!({"instId": if i % 2 == 0 { "BTC-USDT" } else { "ETH-USDT" }, "tdMode": "cash", "side": "buy",
                           "ordType": "limit", "sz": "0.01", "px": "50000"});
        assert_eq!(proxy(&s, &okx, "POST", "okx/api/v5/trade/order", Some(&order)).0, 200);
    }
    let (st, v) = s.http(
        "POST",
        "/v1/accounts/bin/freeze",
        Some(s.admin()),
        Some(&json!({"cancel_orders": true, "reason": "drill"})),
    );
    assert_eq!((st, v["cancel_failed"].clone()), (200, json!(0)), "{v}");
    let open = state(&fake)["open"].clone();
    assert!(open["binance"].as_array().unwrap().is_empty(), "binance orders left: {open}");
    let deletes: Vec<String> = fake
        .log()
        .iter()
        .filter(|r| r["method"] == "DELETE")
        .map(|r| format!("{} {}", r["path"].as_str().unwrap(), r["query"].as_str().unwrap().split('&').next().unwrap()))
        .collect();
    for want in [
        "/api/v3/openOrders symbol=BTCUSDT",
        "/api/v3/openOrders symbol=ETHUSDT",
        "/fapi/v1/allOpenOrders symbol=BTCUSDT",
    ] {
        assert!(deletes.iter().any(|d| d == want), "{want} never reached the exchange: {deletes:?}");
    }
    assert!(!crate::audit::wait_for(&got, |a| a["rule"] == "account_frozen" && a["subject"] == "bin").is_empty());
    // OKX lists and cancels in batches of 20; a listing that fails is reported.
    fake.control("fail=/api/v5/trade/orders-algo-pending");
    let (st, v) = s.http("POST", "/v1/accounts/okx/freeze", Some(s.admin()), Some(&json!({"cancel_orders": true})));
    assert_eq!(st, 200, "{v}");
    assert!(state(&fake)["open"]["okx"].as_array().unwrap().is_empty(), "{}", state(&fake));
    let batches = fake.log().iter().filter(|r| r["path"] == "/api/v5/trade/cancel-batch-orders").count();
    assert_eq!(batches, 2, "25 orders, 20 a batch");
    assert!(v["cancel_failed"].as_u64().unwrap() >= 1, "{v}");
    let failed = v["cancel_calls"].as_array().unwrap().iter().find(|c| c["ok"] == false).unwrap();
    assert_eq!(failed["status"], 503, "{failed}");
    // Kraken and Bybit: one cancel-all call each.
    let (_, kr) = s.http("POST", "/v1/accounts/kr/freeze", Some(s.admin()), Some(&json!({"cancel_orders": true})));
    assert_eq!(kr["cancel_calls"][0]["call"].as_str().unwrap().split(' ').nth(1), Some("/0/private/CancelAll"), "{kr}");
    assert_eq!(kr["cancel_failed"], 0, "{kr}");
}

#[test]
fn the_dead_man_timer_is_rearmed_while_keyward_runs_and_runs_out_when_it_stops() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path(), &fake, &[]);
    let (_, okx) = bot(&s, "okx-bot", "okx");
    let order =
        json!({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "50000"});
    assert_eq!(proxy(&s, &okx, "POST", "okx/api/v5/trade/order", Some(&order)).0, 200);
    // Out of the exchange's range, and an exchange without a REST timer.
    let (st, v) = s.http("PUT", "/v1/accounts/okx/dead-man", Some(s.admin()), Some(&json!({"timeout": "5s"})));
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("invalid_field")), "{v}");
    let (st, v) = s.http("PUT", "/v1/accounts/by/dead-man", Some(s.admin()), Some(&json!({"timeout": "60s"})));
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("account_invalid")), "{v}");
    let o = s.cli(Some(s.admin()), &["account", "dead-man", "okx", "10s"], None);
    assert!(o.status.success() && stdout(&o).contains("armed now"), "{}{}", stdout(&o), stderr(&o));
    std::thread::sleep(std::time::Duration::from_secs(9));
    let arms = fake.log().iter().filter(|r| r["path"] == "/api/v5/trade/cancel-all-after").count();
    assert!(arms >= 3, "armed {arms} times in 9 s (every third of 10 s)");
    assert!(state(&fake)["fired"].as_array().unwrap().is_empty(), "the timer ran out while keyward ran");
    assert!(metrics_text(&s, s.admin()).contains("keyward_dead_man_armed{account=\"okx\"} 1"));
    // Set with the account's own write too, and disarmed with `off`.
    let fields = ["api_key=KRAKEN-REAL-KEY", "api_secret=-", &format!("base_url={}", fake.url)];
    let mut args = vec!["secret", "put", "exchanges/kr", "--type", "kraken", "--dead-man", "30s"];
    args.extend_from_slice(&fields);
    let o = s.cli(Some(s.admin()), &args, Some(KRAKEN_SECRET));
    assert!(o.status.success() && stdout(&o).contains("armed now"), "{}{}", stdout(&o), stderr(&o));
    assert!(state(&fake)["timers"].as_object().unwrap().contains_key("kraken *"), "{}", state(&fake));
    let o = s.cli(Some(s.admin()), &["account", "dead-man", "kr", "off"], None);
    assert!(stdout(&o).contains("is off"), "{}", stdout(&o));
    assert!(!state(&fake)["timers"].as_object().unwrap().contains_key("kraken *"), "{}", state(&fake));
    s.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let st = state(&fake);
        if st["fired"].as_array().unwrap().iter().any(|f| f["exchange"] == "okx") {
            assert!(st["open"]["okx"].as_array().unwrap().is_empty(), "{st}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the timer never ran out: {st}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
