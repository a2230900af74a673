//! Order guards through the proxy against the fake exchange: symbols,
//! quantity, notional per order and per day, price band around the
//! exchange's last price, quote-sized and market orders, batch and amend
//! endpoints, and endpoints whose sizes keyward cannot read.

use crate::harness::*;
use serde_json::{Value, json};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

struct Rig {
    _dir: tempfile::TempDir,
    s: Server,
    fake: FakeExchange,
}

fn rig() -> Rig {
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
    Rig { _dir: dir, s, fake }
}

fn guarded(s: &Server, extra: Value) -> String {
    let scopes: Vec<String> = ["bin", "okx", "by", "kr"].iter().map(|a| format!("account:{a}:trade")).collect();
    let mut body = json!({"name": "guarded", "scopes": scopes, "allow_ips": ["127.0.0.1"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    create_key(s, body).1
}

fn post(s: &Server, key: &str, target: &str, ctype: &str, body: &str) -> (u16, Value) {
    send(s, key, reqwest::Method::POST, target, ctype, body)
}

fn send(s: &Server, key: &str, method: reqwest::Method, target: &str, ctype: &str, body: &str) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .request(method, format!("{}{target}", s.addr))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .unwrap();
    let st = r.status().as_u16();
    (st, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[test]
fn binance_orders_are_guarded() {
    let r = rig();
    let s = &r.s;
    let k = guarded(
        s,
        json!({"symbols": ["BTCUSDT"], "max_qty": "0.5", "max_notional": "1000", "max_notional_per_day": "2000", "price_band": "5%"}),
    );
    let order = |q: &str| post(s, &k, "/proxy/bin/api/v3/order", FORM, q);
    assert_eq!(order("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000").0, 200);
    for (q, why) in [
        ("symbol=ETHUSDT&side=BUY&type=LIMIT&quantity=0.01&price=3000", "symbols"),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.6&price=50000", "quantity"),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.03&price=50000", "notional"),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=40000", "band"),
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01", "market order without a price"),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1e-2&price=50000", "not a plain decimal"),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=-1&price=50000", "not a plain decimal"),
        ("symbol=BTCUSDT&type=LIMIT&quantity=0.01&price=50000", "no side"),
    ] {
        let got = order(q);
        assert_error(&got, 403, "order_guard");
        assert!(got.1["error"]["message"].as_str().unwrap().contains(why), "{why}: {}", got.1);
    }
    // Quote-sized market buy: its notional is the quote amount; quantity via the reference price.
    let quoted = order("symbol=BTCUSDT&side=BUY&type=MARKET&quoteOrderQty=100");
    assert_eq!(quoted.0, 200, "{}", quoted.1);
    // A sell's notional uses the larger of its price and the reference (50000).
    assert_eq!(order("symbol=BTCUSDT&side=SELL&type=LIMIT&quantity=0.01&price=49000").0, 200);
    assert_error(&order("symbol=BTCUSDT&side=SELL&type=LIMIT&quantity=0.0201&price=48000"), 403, "order_guard");
    // Per day: 500 + 100 + 500 so far; 950 more would pass 2000.
    assert_error(&order("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.019&price=50000"), 403, "order_guard");
    assert_eq!(order("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.018&price=50000").0, 200);
    // Futures batch: every order is checked; one bad order refuses the batch.
    let batch = |a: &str, b: &str| {
        let list = format!(
            r#"[{{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"{a}","price":"50000"}},{{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":"{b}","price":"50000"}}]"#
        );
        format!("batchOrders={}", keyward_exchanges::canonical::encode_component(&list))
    };
    let k2 = guarded(s, json!({"max_qty": "0.5"}));
    assert_eq!(post(s, &k2, "/proxy/bin/fapi/v1/batchOrders", FORM, &batch("0.1", "0.2")).0, 200);
    assert_error(&post(s, &k2, "/proxy/bin/fapi/v1/batchOrders", FORM, &batch("0.1", "0.9")), 403, "order_guard");
    // Amend (futures modify) is an order too.
    let amend = "symbol=BTCUSDT&side=BUY&quantity=0.9&price=50000&orderId=1";
    assert_error(&send(s, &k2, reqwest::Method::PUT, "/proxy/bin/fapi/v1/order", FORM, amend), 403, "order_guard");
    // Order lists are not read: refused to a guarded key, allowed to an unguarded one.
    let oco = "symbol=BTCUSDT&side=SELL&quantity=0.01&aboveType=LIMIT_MAKER&belowType=STOP_LOSS&abovePrice=60000&belowStopPrice=40000";
    assert_error(&post(s, &k2, "/proxy/bin/api/v3/orderList/oco", FORM, oco), 403, "order_guard");
    let free = guarded(s, json!({}));
    assert_eq!(post(s, &free, "/proxy/bin/api/v3/orderList/oco", FORM, oco).0, 200);
    // Refused orders never reached the exchange.
    let placed = r.fake.log().iter().filter(|l| l["path"] == "/api/v3/order").count();
    assert_eq!(placed, 4);
}

#[test]
fn okx_bybit_and_kraken_orders_are_guarded() {
    let r = rig();
    let s = &r.s;
    let k = guarded(s, json!({"max_qty": "0.5", "max_notional": "1000", "price_band": "5%"}));
    // OKX: single, batch and amend; spot market buys are sized in the quote currency.
    let okx = |path: &str, body: &str| post(s, &k, &format!("/proxy/okx/api/v5/trade/{path}"), JSON, body);
    assert_eq!(
        okx(
            "order",
            r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"}"#
        )
        .0,
        200
    );
    assert_eq!(
        okx("order", r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"market","sz":"900"}"#).0,
        200
    );
    assert_error(
        &okx("order", r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"market","sz":"1500"}"#),
        403,
        "order_guard",
    );
    assert_error(
        &okx(
            "batch-orders",
            r#"[{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"},{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.9","px":"50000"}]"#,
        ),
        403,
        "order_guard",
    );
    assert_error(&okx("amend-order", r#"{"instId":"BTC-USDT","ordId":"1","newSz":"0.9"}"#), 403, "order_guard");
    assert_error(
        &okx(
            "order",
            r#"{"instId":"BTC-USDT-SWAP","tdMode":"cross","side":"buy","ordType":"limit","sz":"1","px":"50000"}"#,
        ),
        403,
        "order_guard",
    );
    // Bybit: spot market buys in the quote currency by default; batch.
    let by = |path: &str, body: &str| post(s, &k, &format!("/proxy/by/v5/order/{path}"), JSON, body);
    assert_eq!(
        by("create", r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"500"}"#).0,
        200
    );
    assert_error(
        &by("create", r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"5000"}"#),
        403,
        "order_guard",
    );
    assert_error(
        &by(
            "create",
            r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"60000"}"#,
        ),
        403,
        "order_guard",
    );
    assert_error(
        &by(
            "create-batch",
            r#"{"category":"linear","request":[{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"},{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.6","price":"50000"}]}"#,
        ),
        403,
        "order_guard",
    );
    assert_error(
        &by("amend", r#"{"category":"linear","symbol":"BTCUSDT","orderId":"1","qty":"0.6"}"#),
        403,
        "order_guard",
    );
    // Kraken: volume, viqc (quote volume) and the band around its last price (37500).
    let kr = |body: &str| post(s, &k, "/proxy/kr/0/private/AddOrder", FORM, body);
    assert_eq!(kr("pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.01").0, 200);
    assert_error(&kr("pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.6"), 403, "order_guard");
    assert_error(&kr("pair=XBTUSD&type=buy&ordertype=limit&price=30000&volume=0.01"), 403, "order_guard");
    assert_error(&kr("pair=XBTUSD&type=buy&ordertype=market&volume=2000&oflags=viqc"), 403, "order_guard");
    assert_error(&kr("pair=XBTUSD&type=buy&ordertype=stop-loss&price=30000&volume=0.01"), 403, "order_guard");
}

#[test]
fn guard_flags_through_the_cli() {
    let r = rig();
    let s = &r.s;
    let o = s.cli(
        Some(s.admin()),
        &[
            "key",
            "create",
            "--name",
            "g",
            "--scope",
            "account:bin:trade",
            "--allow-ip",
            "127.0.0.1/32",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--max-qty",
            "0.5",
            "--max-notional",
            "1000",
            "--max-notional-per-day",
            "20000",
            "--price-band",
            "5%",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["guard"],
        json!({"symbols": ["BTCUSDT", "ETHUSDT"], "max_qty": "0.5", "max_notional": "1000", "max_notional_per_day": "20000", "price_band_pct": "5"})
    );
    for bad in [json!({"max_qty": "1e3"}), json!({"price_band": "150%"}), json!({"max_notional": "-5"})] {
        let mut body = json!({"name": "b", "scopes": ["account:bin:trade"], "allow_ips": ["127.0.0.1"]});
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_error(&s.http("POST", "/v1/keys", Some(s.admin()), Some(&body)), 400, "invalid_request");
    }
}
