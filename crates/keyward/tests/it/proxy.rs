//! The signing proxy against a fake exchange that checks the real signature
//! with Python's hmac: forwarding, key in the exchange's own header, client
//! signatures dropped, classes enforced, canonical tricks refused, upstream
//! failures, and what reaches the upstream.

use crate::harness::*;
use serde_json::{Value, json};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

fn creds() -> Value {
    json!({
        "binance": {"key": "BINANCE-REAL-KEY", "secret": "binance-real-secret"},
        "okx": {"key": "OKX-REAL-KEY", "secret": "okx-real-secret", "passphrase": "okx-pass"},
        "bybit": {"key": "BYBIT-REAL-KEY", "secret": "bybit-real-secret"},
        "kraken": {"key": "KRAKEN-REAL-KEY", "secret": KRAKEN_SECRET},
    })
}

fn setup() -> (tempfile::TempDir, Server, FakeExchange) {
    let fake = FakeExchange::start(&creds());
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let a = s.admin().to_string();
    let accounts = [
        ("bin", "binance", json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret"})),
        ("okx", "okx", json!({"api_key": "OKX-REAL-KEY", "api_secret": "okx-real-secret", "passphrase": "okx-pass"})),
        ("by", "bybit", json!({"api_key": "BYBIT-REAL-KEY", "api_secret": "bybit-real-secret"})),
        ("kr", "kraken", json!({"api_key": "KRAKEN-REAL-KEY", "api_secret": KRAKEN_SECRET})),
    ];
    for (name, kind, mut fields) in accounts {
        fields["base_url"] = json!(fake.url);
        let (st, v) = s.http(
            "PUT",
            &format!("/v1/secrets/exchanges/{name}"),
            Some(&a),
            Some(&json!({"data": fields, "type": kind})),
        );
        assert_eq!(st, 200, "{v}");
    }
    (dir, s, fake)
}

fn trader(s: &Server) -> String {
    let scopes: Vec<String> = ["bin", "okx", "by", "kr"]
        .iter()
        .flat_map(|a| [format!("account:{a}:trade"), format!("account:{a}:read")])
        .collect();
    create_key(s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.1/32"]})).1
}

fn call(s: &Server, method: &str, target: &str, headers: &[(&str, &str)], body: Option<(&str, &str)>) -> (u16, Value) {
    let c = reqwest::blocking::Client::new();
    let mut rb = c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{target}", s.addr));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some((ctype, b)) = body {
        rb = rb.header("content-type", ctype).body(b.to_string());
    }
    let r = rb.send().unwrap();
    let st = r.status().as_u16();
    (st, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
}

#[test]
fn binance_through_the_proxy_with_the_key_in_the_exchange_header() {
    let (_d, s, fake) = setup();
    let key = trader(&s);
    let kh = [("X-MBX-APIKEY", key.as_str()), ("Cookie", "session=abc"), ("X-Forwarded-For", "6.6.6.6")];
    // Public market data: forwarded unsigned.
    let (st, info) = call(&s, "GET", "/proxy/bin/api/v3/exchangeInfo", &kh, None);
    assert_eq!((st, info["symbols"][0]["symbol"].as_str()), (200, Some("BTCUSDT")));
    // Private, with the client's own (dummy) signature and timestamp: replaced.
    let (st, acct) =
        call(&s, "GET", "/proxy/bin/api/v3/account?timestamp=1&recvWindow=60000&signature=deadbeef", &kh, None);
    assert_eq!(st, 200, "{acct}");
    assert_eq!(acct["balances"][0]["asset"], "BTC");
    let form =
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000&timestamp=1&signature=deadbeef";
    let (st, order) =
        call(&s, "POST", "/proxy/bin/api/v3/order", &kh, Some(("application/x-www-form-urlencoded", form)));
    assert_eq!((st, order["status"].as_str()), (200, Some("NEW")), "{order}");
    // Bearer works too.
    let bearer = format!("Bearer {key}");
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/openOrders", &[("Authorization", &bearer)], None).0, 200);

    // Refusals: classes, unknown endpoints, canonical tricks, bad keys.
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/bin/sapi/v1/capital/withdraw/apply",
            &kh,
            Some(("application/x-www-form-urlencoded", "coin=BTC&address=x&amount=1")),
        ),
        403,
        "scope_missing",
    );
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/bin/sapi/v1/asset/transfer",
            &kh,
            Some(("application/x-www-form-urlencoded", "type=MAIN_UMFUTURE&asset=USDT&amount=1")),
        ),
        403,
        "scope_missing",
    );
    // A user-data stream key only reads (the account's own events): a read key may make one.
    assert_eq!(call(&s, "POST", "/proxy/bin/api/v3/userDataStream", &kh, None).0, 200);
    assert_error(&call(&s, "GET", "/proxy/bin/api/v3/brandNewEndpoint", &kh, None), 403, "endpoint_unknown");
    assert_error(
        &call(&s, "GET", "/proxy/bin/api/v3/order?symbol=A&symbol=B", &kh, None),
        400,
        "request_not_canonical",
    );
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/bin/api/v3/order",
            &[("X-MBX-APIKEY", &key), ("X-HTTP-Method-Override", "DELETE")],
            Some(("application/x-www-form-urlencoded", "symbol=A")),
        ),
        400,
        "request_not_canonical",
    );
    let raw = s.raw(&format!("GET /proxy/bin/api/v3/account/../../sapi/v1/capital/withdraw/apply HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\nConnection: close\r\n\r\n"), b"");
    assert_error(&raw, 400, "request_not_canonical");
    let raw = s.raw(
        &format!(
            "GET /proxy/bin/api/v3/%61ccount HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_error(&raw, 400, "request_not_canonical");
    assert_error(
        &call(&s, "GET", "/proxy/bin/api/v3/account", &[("X-MBX-APIKEY", "not-a-keyward-key")], None),
        401,
        "key_invalid",
    );
    assert_error(&call(&s, "GET", "/proxy/bin/api/v3/account", &[], None), 401, "key_invalid");
    let other =
        create_key(&s, json!({"name": "o", "scopes": ["account:elsewhere:trade"], "allow_ips": ["127.0.0.1"]})).1;
    assert_error(
        &call(&s, "GET", "/proxy/bin/api/v3/exchangeInfo", &[("X-MBX-APIKEY", &other)], None),
        403,
        "scope_missing",
    );

    // What reached the upstream: never the keyward key, the dummy signature,
    // cookies, forwarding headers or an Authorization header.
    let log = fake.log();
    assert_eq!(log.len(), 5, "exchangeInfo, account, order, openOrders, userDataStream");
    for r in &log {
        let text = r.to_string();
        assert!(!text.contains(&key), "keyward key reached the exchange: {text}");
        assert!(!text.contains("deadbeef"), "client signature reached the exchange: {text}");
        let h = r["headers"].as_object().unwrap();
        for banned in ["authorization", "cookie", "x-forwarded-for"] {
            assert!(!h.contains_key(banned), "{banned} forwarded: {text}");
        }
        if r["path"] == "/api/v3/account" {
            assert_eq!(h["x-mbx-apikey"], "BINANCE-REAL-KEY");
        }
    }
    assert!(
        !log.iter().any(|r| r["path"].as_str().unwrap().contains("withdraw")),
        "a refused request reached the exchange"
    );
}

#[test]
fn okx_bybit_and_kraken_through_the_proxy() {
    let (_d, s, fake) = setup();
    let key = trader(&s);
    let bearer = format!("Bearer {key}");
    // OKX with the key in OK-ACCESS-KEY and a dummy passphrase/signature.
    let okh = [
        ("OK-ACCESS-KEY", key.as_str()),
        ("OK-ACCESS-SIGN", "dummy"),
        ("OK-ACCESS-PASSPHRASE", "dummy"),
        ("OK-ACCESS-TIMESTAMP", "2020-01-01T00:00:00.000Z"),
    ];
    let (st, bal) = call(&s, "GET", "/proxy/okx/api/v5/account/balance", &okh, None);
    assert_eq!((st, bal["code"].as_str()), (200, Some("0")), "{bal}");
    let (st, ord) = call(
        &s,
        "POST",
        "/proxy/okx/api/v5/trade/order",
        &okh,
        Some((
            "application/json",
            r#"{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","sz":"0.01","px":"50000"}"#,
        )),
    );
    assert_eq!((st, ord["data"][0]["sCode"].as_str()), (200, Some("0")), "{ord}");
    // A margin order on a spot pair borrows: refused for a trade key.
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/okx/api/v5/trade/order",
            &okh,
            Some((
                "application/json",
                r#"{"instId":"BTC-USDT","tdMode":"cross","side":"buy","ordType":"market","sz":"1"}"#,
            )),
        ),
        403,
        "scope_missing",
    );
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/okx/api/v5/asset/withdrawal",
            &okh,
            Some(("application/json", r#"{"ccy":"BTC","amt":"1"}"#)),
        ),
        403,
        "scope_missing",
    );
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/okx/api/v5/trade/order",
            &okh,
            Some(("application/json", r#"{"sz":"1","sz":"100"}"#)),
        ),
        400,
        "request_not_canonical",
    );
    // Bybit.
    let byh = [("X-BAPI-API-KEY", key.as_str()), ("X-BAPI-SIGN", "dummy")];
    let (st, w) = call(&s, "GET", "/proxy/by/v5/account/wallet-balance?accountType=UNIFIED", &byh, None);
    assert_eq!((st, w["retCode"].as_i64()), (200, Some(0)), "{w}");
    let (st, o) = call(
        &s,
        "POST",
        "/proxy/by/v5/order/create",
        &byh,
        Some((
            "application/json",
            r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"}"#,
        )),
    );
    assert_eq!((st, o["retCode"].as_i64()), (200, Some(0)), "{o}");
    // Kraken with Bearer.
    let (st, b) = call(&s, "POST", "/proxy/kr/0/private/Balance", &[("Authorization", &bearer)], None);
    assert_eq!((st, &b["error"]), (200, &json!([])), "{b}");
    let (st, o) = call(
        &s,
        "POST",
        "/proxy/kr/0/private/AddOrder",
        &[("API-Key", &key), ("API-Sign", "dummy")],
        Some((
            "application/x-www-form-urlencoded",
            "nonce=1&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=0.01",
        )),
    );
    assert_eq!((st, &o["error"]), (200, &json!([])), "{o}");
    assert_error(
        &call(&s, "POST", "/proxy/kr/0/private/GetWebSocketsToken", &[("Authorization", &bearer)], None),
        403,
        "scope_missing",
    );
    for r in fake.log() {
        let t = r.to_string();
        assert!(!t.contains(&key) && !t.contains("dummy"), "{t}");
    }
}

#[test]
fn a_slow_upstream_answers_504() {
    let fake = FakeExchange::start(&creds());
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1", "--upstream-timeout", "1s"]);
    let f = json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret", "base_url": fake.url});
    s.http("PUT", "/v1/secrets/exchanges/bin", Some(s.admin()), Some(&json!({"data": f, "type": "binance"})));
    let key = trader(&s);
    control(&fake, "delay_ms=3000");
    let t = std::time::Instant::now();
    assert_error(&call(&s, "GET", "/proxy/bin/api/v3/ping", &[("X-MBX-APIKEY", &key)], None), 504, "upstream_timeout");
    assert!(t.elapsed() < std::time::Duration::from_millis(2500));
}

#[test]
fn upstream_failures_answer_502() {
    let (_d, s, fake) = setup();
    let key = trader(&s);
    drop(fake);
    let (st, v) = call(&s, "GET", "/proxy/bin/api/v3/account", &[("X-MBX-APIKEY", &key)], None);
    assert_error(&(st, v), 502, "upstream_unavailable");
}

fn control(fake: &FakeExchange, q: &str) {
    reqwest::blocking::get(format!("{}/__control?{q}", fake.url)).unwrap();
}

#[test]
fn a_shared_budget_holds_requests_before_the_exchange_would_ban() {
    let (_d, s, fake) = setup();
    let bot1 = trader(&s);
    let bot2 = trader(&s);
    let h1 = [("X-MBX-APIKEY", bot1.as_str())];
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/ping", &h1, None).0, 200);
    // The exchange reports 5,500 of 6,000 used: the next call from any bot on
    // this account, public or private, is held.
    control(&fake, "weight=5500");
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/ping", &h1, None).0, 200);
    let before = fake.log().len();
    for h in [[("X-MBX-APIKEY", bot1.as_str())], [("X-MBX-APIKEY", bot2.as_str())]] {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/proxy/bin/api/v3/account", s.addr))
            .header(h[0].0, h[0].1)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert!(r.headers().contains_key("retry-after"));
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "exchange_budget");
    }
    assert_error(&call(&s, "GET", "/proxy/bin/api/v3/exchangeInfo", &h1, None), 429, "exchange_budget");
    assert_eq!(fake.log().len(), before, "held requests never reach the exchange");
    // Another account, and Binance futures, have their own budgets.
    assert_eq!(
        call(&s, "GET", "/proxy/okx/api/v5/account/balance", &[("Authorization", &format!("Bearer {bot1}"))], None).0,
        200
    );
}

#[test]
fn timestamps_follow_the_exchange_clock() {
    let (_d, s, fake) = setup();
    let key = trader(&s);
    let h = [("X-MBX-APIKEY", key.as_str())];
    // The exchange's clock runs 30 s ahead: the first signed call is outside
    // its receive window; its answer's Date header teaches keyward the offset.
    control(&fake, "skew_ms=30000");
    let (st, first) = call(&s, "GET", "/proxy/bin/api/v3/account", &h, None);
    assert_eq!((st, first["code"].as_i64()), (400, Some(-1021)), "{first}");
    let (st, second) = call(&s, "GET", "/proxy/bin/api/v3/account", &h, None);
    assert_eq!(st, 200, "{second}");
}

#[test]
fn a_proxied_order_has_a_decision_and_an_outcome_on_record() {
    let (_d, s, _fake) = setup();
    let key = trader(&s);
    let form = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000&newClientOrderId=bot-42";
    let (st, order) = call(
        &s,
        "POST",
        "/proxy/bin/api/v3/order",
        &[("X-MBX-APIKEY", &key)],
        Some(("application/x-www-form-urlencoded", form)),
    );
    assert_eq!(st, 200, "{order}");
    assert_error(
        &call(
            &s,
            "POST",
            "/proxy/bin/sapi/v1/capital/withdraw/apply",
            &[("X-MBX-APIKEY", &key)],
            Some(("application/x-www-form-urlencoded", "coin=BTC&amount=1&address=x")),
        ),
        403,
        "scope_missing",
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, v) = s.http("GET", "/v1/audit?account=bin&limit=1000", Some(s.admin()), None);
    let log = v["entries"].as_array().unwrap();
    let decision =
        log.iter().find(|e| e["decision"] == "allow" && e["target"] == "bin POST /api/v3/order").expect("decision");
    let outcome =
        log.iter().find(|e| e["decision"] == "outcome" && e["request_id"] == decision["request_id"]).expect("outcome");
    assert_eq!(decision["class"], "trade");
    assert_eq!(
        decision["detail"]["orders"][0],
        json!({"symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "price": "50000", "client_order_id": "bot-42"})
    );
    assert_eq!(outcome["code"], "200");
    assert_eq!(outcome["detail"]["exchange_order_ids"], json!([order["orderId"].to_string()]));
    let refused = log.iter().find(|e| e["target"] == "bin POST /sapi/v1/capital/withdraw/apply").expect("the refusal");
    assert_eq!(
        (&refused["decision"], &refused["code"], &refused["class"]),
        (&json!("deny"), &json!("scope_missing"), &json!("withdraw"))
    );
    assert!(!v.to_string().contains(&key));
}

/// A bot that hangs up while its order is at the exchange does not cancel
/// keyward's side of it: the order is still forwarded once, and its outcome
/// still goes on record when the exchange answers.
#[test]
fn an_order_whose_client_hangs_up_still_has_its_outcome_on_record() {
    use std::io::Write;
    let (_d, s, fake) = setup();
    let key = trader(&s);
    control(&fake, "delay_ms=1500");
    let form = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000&newClientOrderId=gone-7";
    let addr = s.addr.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /proxy/bin/api/v3/order HTTP/1.1\r\nHost: {addr}\r\nX-MBX-APIKEY: {key}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    // The order reaches the exchange, which sits on it; the client leaves.
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    control(&fake, "delay_ms=0");
    let (decision, outcome) = (std::time::Instant::now(), "outcome");
    loop {
        let (_, v) = s.http("GET", "/v1/audit?account=bin&limit=1000", Some(s.admin()), None);
        let log = v["entries"].as_array().unwrap().clone();
        let allowed = log.iter().find(|e| e["decision"] == "allow" && e["detail"].to_string().contains("gone-7"));
        if let Some(allowed) = allowed
            && let Some(done) =
                log.iter().find(|e| e["decision"] == outcome && e["request_id"] == allowed["request_id"])
        {
            assert_eq!(done["code"], "200", "{done}");
            break;
        }
        assert!(decision.elapsed() < std::time::Duration::from_secs(10), "no outcome on record: {log:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let forwarded = fake.log().iter().filter(|r| r.to_string().contains("gone-7")).count();
    assert_eq!(forwarded, 1, "forwarded once");
}

/// A bot may send a public-only key as its bearer (ccxt sends no API key on
/// public calls, and bots log their client settings) and its trading key as
/// the exchange API key: the first well-formed key is the one used, in the
/// order exchange header, query parameter, Authorization.
#[test]
fn the_exchange_key_header_is_preferred_to_a_public_only_bearer() {
    let (_d, s, _fake) = setup();
    let bot = trader(&s);
    let public =
        create_key(&s, json!({"name": "pub", "scopes": ["account:bin:public"], "allow_ips": ["127.0.0.1/32"]})).1;
    let bearer = format!("Bearer {public}");
    let both = [("X-MBX-APIKEY", bot.as_str()), ("Authorization", bearer.as_str())];
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/account", &both, None).0, 200, "the trading key is used");
    let (st, v) = call(&s, "GET", "/proxy/bin/api/v3/account", &[("Authorization", bearer.as_str())], None);
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("scope_missing")), "{v}");
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/time", &[("Authorization", bearer.as_str())], None).0, 200);
    // A header that is no keyward key (a leftover dummy) gives way to a well-formed bearer.
    let bot_bearer = format!("Bearer {bot}");
    let dummy = [("X-MBX-APIKEY", "dummy"), ("Authorization", bot_bearer.as_str())];
    assert_eq!(call(&s, "GET", "/proxy/bin/api/v3/account", &dummy, None).0, 200);
    // No well-formed key at all: the first one sent is refused as invalid.
    let (st, v) = call(&s, "GET", "/proxy/bin/api/v3/account", &[("X-MBX-APIKEY", "kw_notakey")], None);
    assert_eq!((st, v["error"]["code"].as_str()), (401, Some("key_invalid")), "{v}");
}
