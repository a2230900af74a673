//! What an outside attack review found, through the real binary: fields
//! that make an order borrow are read strictly on every exchange.

use crate::harness::*;
use serde_json::{Value, json};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

fn fields(kind: &str) -> Value {
    match kind {
        "kraken" => json!({"api_key": "K", "api_secret": KRAKEN_SECRET}),
        "okx" | "kucoin" | "bitget" => json!({"api_key": "K", "api_secret": "S", "passphrase": "P"}),
        _ => json!({"api_key": "K", "api_secret": "S"}),
    }
}

/// A server with one account per exchange named after it, and a key that
/// may sign anything on all of them (the sign API then says each class).
fn rig(dir: &std::path::Path) -> (Server, String) {
    let s = start(dir, &[]);
    for kind in ["binance", "bybit", "okx", "gate", "kraken", "kucoin"] {
        let (st, v) = s.http(
            "PUT",
            &format!("/v1/secrets/exchanges/{kind}"),
            Some(s.admin()),
            Some(&json!({"type": kind, "data": fields(kind)})),
        );
        assert_eq!(st, 200, "{v}");
    }
    let scopes: Vec<String> =
        ["binance", "bybit", "okx", "gate", "kraken", "kucoin"].iter().map(|a| format!("account:{a}:*")).collect();
    let key = create_key(&s, json!({"name": "all", "scopes": scopes, "allow_ips": ["127.0.0.1"]})).1;
    (s, key)
}

fn class(s: &Server, key: &str, account: &str, method: &str, path: &str, body: &str) -> String {
    let (st, v) = s.http(
        "POST",
        &format!("/v1/sign/{account}"),
        Some(key),
        Some(&json!({"method": method, "path": path, "body": body})),
    );
    if st != 200 {
        return format!("{st} {}", v["error"]["code"]);
    }
    v["class"].as_str().unwrap_or("?").to_string()
}

#[test]
fn a_field_that_can_borrow_is_read_strictly_on_every_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = rig(dir.path());
    let gate =
        |extra: &str| format!(r#"{{"currency_pair":"BTC_USDT","side":"buy","amount":"0.01","price":"50000"{extra}}}"#);
    let bybit = |extra: &str| {
        format!(
            r#"{{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"{extra}}}"#
        )
    };
    let okx = |mode: &str, inst: &str| {
        format!(r#"{{"instId":"{inst}","tdMode":{mode},"side":"buy","ordType":"limit","sz":"0.01","px":"50000"}}"#)
    };
    let kucoin = |extra: &str| {
        format!(
            r#"{{"clientOid":"a","side":"buy","symbol":"BTC-USDT","type":"limit","size":"0.01","price":"50000"{extra}}}"#
        )
    };
    let rows: Vec<(&str, &str, &str, String, &str)> = vec![
        // Gate: auto_borrow on any account type, single and batch.
        ("gate", "POST", "/api/v4/spot/orders", gate(""), "trade"),
        ("gate", "POST", "/api/v4/spot/orders", gate(r#","account":"margin","auto_borrow":false"#), "trade"),
        ("gate", "POST", "/api/v4/spot/orders", gate(r#","account":"margin","auto_borrow":true"#), "borrow"),
        ("gate", "POST", "/api/v4/spot/orders", gate(r#","account":"cross_margin","auto_borrow":"true""#), "borrow"),
        ("gate", "POST", "/api/v4/spot/orders", gate(r#","account":"unified","auto_borrow":1"#), "borrow"),
        (
            "gate",
            "POST",
            "/api/v4/spot/batch_orders",
            format!("[{},{}]", gate(""), gate(r#","account":"margin","auto_borrow":true"#)),
            "borrow",
        ),
        // Bybit: isLeverage other than 0.
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":0"#), "trade"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":"0""#), "trade"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":true"#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":"true""#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":1.0"#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":"01""#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":2"#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","isLeverage":1e0"#), "borrow"),
        ("bybit", "POST", "/v5/order/create", bybit(r#","IsLeverage":1"#), "borrow"),
        (
            "bybit",
            "POST",
            "/v5/order/create-batch",
            format!(r#"{{"category":"spot","request":[{}]}}"#, bybit(r#","isLeverage":"1""#)),
            "borrow",
        ),
        // OKX: a spot pair trades only in cash.
        ("okx", "POST", "/api/v5/trade/order", okx(r#""cash""#, "BTC-USDT"), "trade"),
        ("okx", "POST", "/api/v5/trade/order", okx(r#""cross""#, "BTC-USDT-SWAP"), "trade"),
        ("okx", "POST", "/api/v5/trade/order", okx(r#""CROSS""#, "BTC-USDT"), "borrow"),
        ("okx", "POST", "/api/v5/trade/order", okx(r#""Isolated""#, "BTC-USDT"), "borrow"),
        ("okx", "POST", "/api/v5/trade/order", okx(r#""spot_isolated""#, "BTC-USDT"), "borrow"),
        ("okx", "POST", "/api/v5/trade/order", okx(r#""CASH""#, "BTC-USDT"), "borrow"),
        (
            "okx",
            "POST",
            "/api/v5/trade/batch-orders",
            format!("[{},{}]", okx(r#""cash""#, "BTC-USDT"), okx(r#""cross""#, "ETH-USDT")),
            "borrow",
        ),
        // Kraken: leverage other than none (a batch's nested form names are refused as not canonical).
        (
            "kraken",
            "POST",
            "/0/private/AddOrder",
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01".into(),
            "trade",
        ),
        (
            "kraken",
            "POST",
            "/0/private/AddOrder",
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01&leverage=none".into(),
            "trade",
        ),
        (
            "kraken",
            "POST",
            "/0/private/AddOrder",
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01&leverage=".into(),
            "borrow",
        ),
        (
            "kraken",
            "POST",
            "/0/private/AddOrder",
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01&leverage=None".into(),
            "borrow",
        ),
        (
            "kraken",
            "POST",
            "/0/private/AddOrder",
            "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01&leverage=2:1".into(),
            "borrow",
        ),
        // KuCoin: a margin order borrows unless autoBorrow is false.
        ("kucoin", "POST", "/api/v3/hf/margin/order", kucoin(r#","isIsolated":false,"autoBorrow":false"#), "trade"),
        ("kucoin", "POST", "/api/v3/hf/margin/order", kucoin(r#","autoBorrow":"true""#), "borrow"),
        ("kucoin", "POST", "/api/v1/margin/order", kucoin(r#","autoBorrow":"True""#), "borrow"),
        // Binance: a side effect other than none or repaying.
        (
            "binance",
            "POST",
            "/sapi/v1/margin/order",
            "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=50000&sideEffectType=NO_SIDE_EFFECT".into(),
            "trade",
        ),
        (
            "binance",
            "POST",
            "/sapi/v1/margin/order",
            "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=50000&sideEffectType=no_side_effect".into(),
            "borrow",
        ),
        (
            "binance",
            "POST",
            "/sapi/v1/margin/order",
            "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=50000&sideEffectType=AUTO_BORROW_REPAY".into(),
            "borrow",
        ),
    ];
    let mut failures = Vec::new();
    for (account, method, path, body, want) in rows {
        let got = class(&s, &key, account, method, path, &body);
        if got != want {
            failures.push(format!("{account} {path} {body}: {got}, expected {want}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_borrowing_order_never_reaches_the_exchange_for_a_trade_key() {
    let fake = FakeExchange::start(
        &json!({"bybit": {"key": "YK", "secret": "ys"}, "okx": {"key": "OK", "secret": "os", "passphrase": "op"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, f) in [
        ("by", "bybit", json!({"api_key": "YK", "api_secret": "ys"})),
        ("okx", "okx", json!({"api_key": "OK", "api_secret": "os", "passphrase": "op"})),
    ] {
        exchange_account(&s, name, kind, f, &fake.url);
    }
    let key = create_key(
        &s,
        json!({"name": "t", "scopes": ["account:by:trade", "account:okx:trade"], "allow_ips": ["127.0.0.1"]}),
    )
    .1;
    let post = |target: &str, body: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}{target}", s.addr))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let st = r.status().as_u16();
        (st, serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null))
    };
    let spot = r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"#;
    assert_eq!(post("/proxy/by/v5/order/create", &format!("{spot}\"}}")).0, 200, "a cash order goes out");
    for extra in [r#","isLeverage":true}"#, r#","isLeverage":"true"}"#, r#","isLeverage":2}"#] {
        assert_error(&post("/proxy/by/v5/order/create", &format!("{spot}\"{extra}")), 403, "scope_missing");
    }
    let okx = r#"{"instId":"BTC-USDT","tdMode":"Cross","side":"buy","ordType":"market","sz":"1"}"#;
    assert_error(&post("/proxy/okx/api/v5/trade/order", okx), 403, "scope_missing");
    let orders = fake.log().iter().filter(|l| l["method"] == "POST").count();
    assert_eq!(orders, 1, "only the cash order reached the exchange");
}

#[test]
fn a_platform_namespace_cannot_take_keywards_own_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    for prefix in ["kw", "kwt"] {
        let got = s.http(
            "POST",
            "/v1/namespaces",
            Some(&a),
            Some(&json!({"name": format!("ns-{prefix}"), "prefix": prefix})),
        );
        assert_error(&got, 400, "invalid_prefix");
        let o = s.cli(Some(&a), &["key", "namespace", "create", &format!("cli-{prefix}"), "--prefix", prefix], None);
        assert!(!o.status.success() && stderr(&o).contains("invalid_prefix"), "{}", stderr(&o));
    }
    let (st, v) = s.http("GET", "/v1/namespaces", Some(&a), None);
    assert_eq!((st, v["namespaces"].as_array().map(Vec::len)), (200, Some(0)), "nothing was created: {v}");
    // Namespaces that name no prefix, made explicitly or on first use, get pk_.
    assert_eq!(s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "shop"}))).1["prefix"], "pk");
    let (_, key) = create_key(&s, json!({"name": "u", "namespace": "implicit", "permissions": ["x"]}));
    assert!(key.starts_with("pk_"), "{}", &key[..3]);
    assert!(s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "kwx", "prefix": "kwx"}))).0 == 201);
    // Keys made at once (one group commit) in several namespaces each get
    // their own namespace's prefix.
    let made: Vec<(&str, String)> = std::thread::scope(|t| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let ns = ["kwx", "shop", "implicit", "fresh"][i % 4];
                let s = &s;
                t.spawn(move || {
                    (ns, create_key(s, json!({"name": format!("k{i}"), "namespace": ns, "permissions": ["x"]})).1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (ns, key) in made {
        let want = if ns == "kwx" { "kwx_" } else { "pk_" };
        assert!(key.starts_with(want), "{ns}: {}", &key[..4]);
    }
}

#[test]
fn deleted_checkpoints_are_named() {
    if crate::pg::sqlite_only() {
        return;
    }
    const T0: i64 = 1_900_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    s.set_clock(T0);
    let a = s.admin().to_string();
    put(&s, &a, "x", json!({"k": "v"}));
    // Two checkpoints (each falls due after ten seconds).
    for step in 1..=2 {
        s.set_clock(T0 + step * 11_000);
        s.http("GET", "/v1/secrets/x", Some(&a), None);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = s.cli(Some(&a), &["audit", "anchor"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let anchor_file = dir.path().join("anchor.json");
    std::fs::write(&anchor_file, stdout(&o)).unwrap();
    let o = s.cli(Some(&a), &["audit", "verify"], None);
    assert!(o.status.success(), "intact before: {}", stdout(&o));
    // Every checkpoint row deleted: the markers in the chain still tell.
    sql(&dir.path().join("keyward-data/keyward.db"), &["DELETE FROM audit_checkpoints"]);
    let o = s.cli(Some(&a), &["audit", "verify"], None);
    assert!(!o.status.success() && stdout(&o).contains("is missing"), "{}", stdout(&o));
    let o = s.cli(Some(&a), &["audit", "verify", "--anchor", anchor_file.to_str().unwrap()], None);
    assert!(!o.status.success() && stdout(&o).contains("anchor's checkpoint"), "{}", stdout(&o));
}

#[test]
fn a_guarded_key_is_refused_near_duplicate_order_fields() {
    let fake = FakeExchange::start(&json!({
        "binance": {"key": "BK", "secret": "bs"},
        "okx": {"key": "OK", "secret": "os", "passphrase": "op"},
        "bybit": {"key": "YK", "secret": "ys"},
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, f) in [
        ("bin", "binance", json!({"api_key": "BK", "api_secret": "bs"})),
        ("okx", "okx", json!({"api_key": "OK", "api_secret": "os", "passphrase": "op"})),
        ("by", "bybit", json!({"api_key": "YK", "api_secret": "ys"})),
    ] {
        exchange_account(&s, name, kind, f, &fake.url);
    }
    let scopes = ["account:bin:trade", "account:okx:trade", "account:by:trade"];
    let key = create_key(&s, json!({"name": "g", "scopes": scopes, "allow_ips": ["127.0.0.1"], "max_qty": "0.5"})).1;
    let post = |target: &str, ctype: &str, body: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}{target}", s.addr))
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .unwrap();
        let st = r.status().as_u16();
        (st, serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null))
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    let okx = |extra: &str| {
        format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"{extra}}}"#
        )
    };
    let by = |extra: &str| {
        format!(
            r#"{{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"{extra}}}"#
        )
    };
    let bin = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000";
    assert_eq!(post("/proxy/okx/api/v5/trade/order", JSON, &okx("")).0, 200);
    assert_eq!(post("/proxy/bin/api/v3/order", FORM, bin).0, 200);
    let before = fake.log().len();
    for (target, ctype, body) in [
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","SZ":"100""#)),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","sz\u0000":"100""#)),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","instId ":"ETH-USDT""#)),
        ("/proxy/okx/api/v5/trade/batch-orders", JSON, format!("[{}]", okx(r#","Sz":"9""#))),
        ("/proxy/by/v5/order/create", JSON, by(r#","qty ":"100""#)),
        ("/proxy/by/v5/order/create", JSON, by(r#","QTY":"100""#)),
        ("/proxy/bin/api/v3/order", FORM, format!("{bin}&Quantity=100")),
        ("/proxy/bin/api/v3/order", FORM, format!("{bin}&SYMBOL=ETHUSDT")),
    ] {
        let got = post(target, ctype, &body);
        assert_error(&got, 403, "order_guard");
        assert!(got.1["error"]["message"].as_str().unwrap().contains("only by case"), "{}", got.1);
    }
    assert_eq!(fake.log().len(), before, "none reached the exchange");
}

#[test]
fn a_key_limited_to_symbols_is_held_to_them_on_every_trade_endpoint() {
    let fake = FakeExchange::start(&json!({
        "binance": {"key": "BK", "secret": "bs"},
        "okx": {"key": "OK", "secret": "os", "passphrase": "op"},
        "bybit": {"key": "YK", "secret": "ys"},
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, f) in [
        ("bin", "binance", json!({"api_key": "BK", "api_secret": "bs"})),
        ("okx", "okx", json!({"api_key": "OK", "api_secret": "os", "passphrase": "op"})),
        ("by", "bybit", json!({"api_key": "YK", "api_secret": "ys"})),
    ] {
        exchange_account(&s, name, kind, f, &fake.url);
    }
    let scopes = ["account:bin:trade", "account:okx:trade", "account:by:trade"];
    let key = create_key(
        &s,
        json!({"name": "g", "scopes": scopes, "allow_ips": ["127.0.0.1"], "symbols": ["BTCUSDT", "BTC-USDT"]}),
    )
    .1;
    let send = |method: reqwest::Method, target: &str, ctype: &str, body: &str| {
        let r = reqwest::blocking::Client::new()
            .request(method, format!("{}{target}", s.addr))
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .unwrap();
        let st = r.status().as_u16();
        (st, serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null))
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    use reqwest::Method as M;
    let before = fake.log().len();
    for (method, target, ctype, body) in [
        (M::PUT, "/proxy/bin/api/v3/order/amend/keepPriority", FORM, "symbol=ETHUSDT&orderId=1&newQty=0.1"),
        (M::POST, "/proxy/bin/fapi/v1/leverage", FORM, "symbol=ETHUSDT&leverage=20"),
        (M::POST, "/proxy/bin/fapi/v1/positionMargin", FORM, "symbol=ETHUSDT&amount=100&type=1"),
        (M::POST, "/proxy/bin/fapi/v1/positionSide/dual", FORM, "dualSidePosition=true"),
        (M::POST, "/proxy/okx/api/v5/trade/close-position", JSON, r#"{"instId":"ETH-USDT-SWAP","mgnMode":"cross"}"#),
        (
            M::POST,
            "/proxy/okx/api/v5/account/set-leverage",
            JSON,
            r#"{"instId":"ETH-USDT-SWAP","lever":"20","mgnMode":"cross"}"#,
        ),
        (M::POST, "/proxy/okx/api/v5/account/set-leverage", JSON, r#"{"ccy":"ETH","lever":"20","mgnMode":"cross"}"#),
        (
            M::POST,
            "/proxy/by/v5/position/trading-stop",
            JSON,
            r#"{"category":"linear","symbol":"ETHUSDT","positionIdx":0}"#,
        ),
        (
            M::POST,
            "/proxy/by/v5/position/trading-stop",
            JSON,
            r#"{"category":"linear","symbol":"BTCUSDT","takeProfit":"99999","positionIdx":0}"#,
        ),
        (
            M::POST,
            "/proxy/by/v5/position/set-leverage",
            JSON,
            r#"{"category":"linear","symbol":"ETHUSDT","buyLeverage":"20","sellLeverage":"20"}"#,
        ),
    ] {
        assert_error(&send(method.clone(), target, ctype, body), 403, "order_guard");
    }
    assert_eq!(fake.log().len(), before, "none reached the exchange");
    // Within the list they go out (the fake answers what it knows; keyward let them through).
    let (st, v) = send(M::POST, "/proxy/bin/fapi/v1/leverage", FORM, "symbol=BTCUSDT&leverage=5");
    assert_ne!(v["error"]["code"], "order_guard", "{st} {v}");
    assert_eq!(fake.log().len(), before + 1);
}

#[test]
fn every_price_and_size_in_a_request_is_held_to_the_guards() {
    let fake = FakeExchange::start(&json!({
        "binance": {"key": "BK", "secret": "bs"},
        "okx": {"key": "OK", "secret": "os", "passphrase": "op"},
        "bybit": {"key": "YK", "secret": "ys"},
        "kraken": {"key": "KK", "secret": KRAKEN_SECRET},
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, f) in [
        ("bin", "binance", json!({"api_key": "BK", "api_secret": "bs"})),
        ("okx", "okx", json!({"api_key": "OK", "api_secret": "os", "passphrase": "op"})),
        ("by", "bybit", json!({"api_key": "YK", "api_secret": "ys"})),
        ("kr", "kraken", json!({"api_key": "KK", "api_secret": KRAKEN_SECRET})),
    ] {
        exchange_account(&s, name, kind, f, &fake.url);
    }
    let scopes = ["account:bin:trade", "account:okx:trade", "account:by:trade", "account:kr:trade"];
    let key = create_key(
        &s,
        json!({"name": "g", "scopes": scopes, "allow_ips": ["127.0.0.1"], "max_qty": "0.5", "price_band": "5%"}),
    )
    .1;
    let post = |target: &str, ctype: &str, body: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}{target}", s.addr))
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .unwrap();
        let st = r.status().as_u16();
        (st, serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null))
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    let by = |extra: &str| {
        format!(
            r#"{{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"{extra}}}"#
        )
    };
    let okx = |extra: &str| {
        format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"{extra}}}"#
        )
    };
    let kr = "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01";
    let bin = "symbol=BTCUSDT&side=BUY&type=STOP_LOSS_LIMIT&timeInForce=GTC&quantity=0.01&price=50000";
    // Within the band everywhere: they go out.
    for (target, ctype, body) in [
        ("/proxy/by/v5/order/create", JSON, by(r#","takeProfit":"51000","stopLoss":"49000""#)),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","attachAlgoOrds":[{"tpTriggerPx":"51000","tpOrdPx":"-1"}]"#)),
        ("/proxy/kr/0/private/AddOrder", FORM, format!("{kr}&close[ordertype]=limit&close[price]=38000")),
        ("/proxy/bin/api/v3/order", FORM, format!("{bin}&stopPrice=49500")),
    ] {
        let got = post(target, ctype, &body);
        assert_ne!(got.1["error"]["code"], "order_guard", "{target} {body}: {}", got.1);
    }
    let before = fake.log().len();
    for (target, ctype, body) in [
        ("/proxy/by/v5/order/create", JSON, by(r#","takeProfit":"90000""#)),
        ("/proxy/by/v5/order/create", JSON, by(r#","stopLoss":"10000""#)),
        (
            "/proxy/by/v5/order/create",
            JSON,
            by(r#","tpslMode":"Partial","tpOrderType":"Limit","takeProfit":"51000","tpLimitPrice":"90000""#),
        ),
        ("/proxy/by/v5/order/create", JSON, by(r#","slLimitPrice":"1""#)),
        ("/proxy/by/v5/order/create", JSON, by(r#","triggerPrice":"80000""#)),
        (
            "/proxy/by/v5/order/amend",
            JSON,
            r#"{"category":"linear","symbol":"BTCUSDT","orderId":"1","takeProfit":"90000"}"#.into(),
        ),
        (
            "/proxy/by/v5/order/create-batch",
            JSON,
            format!(r#"{{"category":"linear","request":[{}]}}"#, by(r#","stopLoss":"10000""#)),
        ),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","attachAlgoOrds":[{"tpTriggerPx":"90000","tpOrdPx":"-1"}]"#)),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","attachAlgoOrds":[{"slTriggerPx":"49000","slOrdPx":"1000"}]"#)),
        (
            "/proxy/okx/api/v5/trade/order",
            JSON,
            okx(r#","attachAlgoOrds":[{"tpTriggerPx":"51000","tpOrdPx":"-1","sz":"0.9"}]"#),
        ),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","tpTriggerPx":"51000","tpOrdPx":"90000""#)),
        ("/proxy/okx/api/v5/trade/order", JSON, okx(r#","slOrdPx":"1000""#)),
        (
            "/proxy/okx/api/v5/trade/amend-order",
            JSON,
            r#"{"instId":"BTC-USDT","ordId":"1","newSz":"0.01","attachAlgoOrds":[{"newTpTriggerPx":"90000"}]}"#.into(),
        ),
        ("/proxy/kr/0/private/AddOrder", FORM, format!("{kr}&close[ordertype]=limit&close[price]=90000")),
        (
            "/proxy/kr/0/private/AddOrder",
            FORM,
            format!("{kr}&close[ordertype]=stop-loss-limit&close[price]=37000&close[price2]=1000"),
        ),
        ("/proxy/kr/0/private/AddOrder", FORM, format!("{kr}&price2=90000")),
        ("/proxy/kr/0/private/AddOrder", FORM, format!("{kr}&close[volume]=5")),
        ("/proxy/bin/api/v3/order", FORM, format!("{bin}&stopPrice=10000")),
    ] {
        let got = post(target, ctype, &body);
        assert_error(&got, 403, "order_guard");
    }
    let orders_after = fake.log().iter().skip(before).filter(|l| l["method"] == "POST").count();
    assert_eq!(orders_after, 0, "no refused order reached the exchange");
}
