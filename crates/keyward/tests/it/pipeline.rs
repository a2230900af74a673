//! The request pipeline through the real binary (DESIGN, "The request
//! pipeline"): nothing is written and no limit (uses, rate, daily notional)
//! is spent before the caller is authorized, and a notional reservation is
//! released when the exchange cannot have received the order. Each test runs
//! independent scenarios and reports every one that goes wrong, not only the
//! first. Failure messages name status, code and error message, never a
//! whole body (a wrongly allowed roll or token answer carries a credential).

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";
const T0: i64 = 1_900_000_000_000;

type Check = Result<(), String>;

/// `Ok` when the answer has this status and, for an error, this code (with a message).
fn expect(what: &str, got: &(u16, Value), status: u16, code: Option<&str>) -> Check {
    let err = &got.1["error"];
    let coded = |c: &str| err["code"] == c && err["message"].as_str().is_some_and(|m| !m.is_empty());
    if got.0 == status && code.is_none_or(coded) {
        return Ok(());
    }
    Err(format!("{what}: expected {status} {}, got {} {} {}", code.unwrap_or(""), got.0, err["code"], err["message"]))
}

fn repeat(n: usize, what: &str, mut call: impl FnMut() -> (u16, Value), status: u16, code: Option<&str>) -> Check {
    (1..=n).try_for_each(|i| expect(&format!("{what} #{i}"), &call(), status, code))
}

/// Fails with every scenario that went wrong.
#[track_caller]
fn report(results: Vec<(&str, Check)>) {
    let failed: Vec<String> = results.into_iter().filter_map(|(n, r)| r.err().map(|e| format!("[{n}] {e}"))).collect();
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

pub(crate) fn fake() -> FakeExchange {
    FakeExchange::start(&json!({"binance": {"key": "BK", "secret": "bs"}}))
}

fn control(f: &FakeExchange, q: &str) {
    reqwest::blocking::get(format!("{}/__control?{q}", f.url)).unwrap();
}

fn orders_seen(f: &FakeExchange) -> Vec<Value> {
    f.log().into_iter().filter(|l| l["path"] == "/api/v3/order").collect()
}

/// Writes (or re-points) the binance account `exchanges/<name>` with the admin key.
pub(crate) fn account(s: &Server, name: &str, base_url: Option<&str>) {
    let mut data = json!({"api_key": "BK", "api_secret": "bs"});
    if let Some(u) = base_url {
        data["base_url"] = json!(u);
    }
    let body = json!({"data": data, "type": "binance"});
    let (st, v) = s.http("PUT", &format!("/v1/secrets/exchanges/{name}"), Some(s.admin()), Some(&body));
    assert_eq!(st, 200, "{v}");
}

/// A proxied request with the keyward key in Binance's own key header.
fn proxy(s: &Server, key: &str, method: &str, target: &str, form: Option<&str>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = reqwest::blocking::Client::new().request(m, format!("{}{target}", s.addr)).header("X-MBX-APIKEY", key);
    if let Some(b) = form {
        rb = rb.header("content-type", FORM).body(b.to_string());
    }
    let r = rb.send().unwrap();
    let st = r.status().as_u16();
    (st, serde_json::from_str(&r.text().unwrap_or_default()).unwrap_or(Value::Null))
}

/// A limit buy at 50,000: quantity 0.012 is a notional of 600, 0.006 of 300.
fn buy(qty: &str) -> String {
    format!("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity={qty}&price=50000")
}

fn read(s: &Server, key: &str, path: &str) -> (u16, Value) {
    s.http("GET", &format!("/v1/secrets/{path}"), Some(key), None)
}

fn uses_on_secrets(s: &Server) -> Check {
    let (id, k) = create_key(s, json!({"name": "uses", "scopes": ["secret:read:x"], "uses": 3}));
    repeat(5, "GET y (out of scope)", || read(s, &k, "y"), 403, Some("scope_missing"))?;
    let left = s.http("GET", &format!("/v1/keys/{id}"), Some(s.admin()), None).1["uses_remaining"].clone();
    if left != 3 {
        return Err(format!("uses_remaining after five refusals is {left}, expected 3"));
    }
    repeat(3, "GET x", || read(s, &k, "x"), 200, None)?;
    expect("4th GET x", &read(s, &k, "x"), 403, Some("uses_exhausted"))
}

fn rate_on_secrets(s: &Server) -> Check {
    let (_, k) = create_key(s, json!({"name": "rated", "scopes": ["secret:read:x"], "rate": "1/m,burst=2"}));
    repeat(5, "GET y (out of scope)", || read(s, &k, "y"), 403, Some("scope_missing"))?;
    repeat(2, "GET x", || read(s, &k, "x"), 200, None)?;
    expect("3rd GET x", &read(s, &k, "x"), 429, Some("rate_limited"))
}

fn uses_through_proxy_and_sign(s: &Server, f: &FakeExchange) -> Check {
    reqwest::blocking::get(format!("{}/__reset", f.url)).unwrap();
    let scopes = json!({"name": "reader", "scopes": ["account:bin:read"], "allow_ips": ["127.0.0.1"], "uses": 3});
    let (_, k) = create_key(s, scopes);
    for (method, path, body, status, code) in [
        ("POST", "/api/v3/order", Some(buy("0.001")), 403, "scope_missing"),
        ("GET", "/api/v3/brandNewEndpoint", None, 403, "endpoint_unknown"),
        ("GET", "/api/v3/openOrders?a=1&a=2", None, 400, "request_not_canonical"),
    ] {
        let got = proxy(s, &k, method, &format!("/proxy/bin{path}"), body.as_deref());
        expect(&format!("proxy {method} {path}"), &got, status, Some(code))?;
    }
    for (req, status, code) in [
        (json!({"method": "POST", "path": "/api/v3/order", "body": buy("0.001")}), 403, "scope_missing"),
        (json!({"method": "GET", "path": "/api/v3/brandNewEndpoint"}), 403, "endpoint_unknown"),
        (json!({"method": "GET", "path": "/api/v3/openOrders", "query": "a=1&a=2"}), 400, "request_not_canonical"),
        // Binance signatures do not bind the path: the sign API needs account:bin:admin.
        (json!({"method": "GET", "path": "/api/v3/account"}), 403, "scope_missing"),
    ] {
        expect(&format!("sign {req}"), &s.http("POST", "/v1/sign/bin", Some(&k), Some(&req)), status, Some(code))?;
    }
    let account = || proxy(s, &k, "GET", "/proxy/bin/api/v3/account", None);
    repeat(3, "proxy GET /api/v3/account", account, 200, None)?;
    expect("4th proxy GET /api/v3/account", &account(), 403, Some("uses_exhausted"))?;
    let seen: Vec<String> = f.log().iter().map(|l| format!("{} {}", l["method"], l["path"])).collect();
    if seen.len() != 3 || seen.iter().any(|l| l != r#""GET" "/api/v3/account""#) {
        return Err(format!("the exchange saw {seen:?}, expected three GET /api/v3/account"));
    }
    Ok(())
}

fn uses_of_a_guarded_trader(s: &Server, f: &FakeExchange) -> Check {
    reqwest::blocking::get(format!("{}/__reset", f.url)).unwrap();
    let mut body = json!({"name": "guarded", "scopes": ["account:bin:trade"], "allow_ips": ["127.0.0.1"]});
    (body["max_qty"], body["uses"]) = (json!("0.5"), json!(2));
    let (_, k) = create_key(s, body);
    let order = |qty: &str| proxy(s, &k, "POST", "/proxy/bin/api/v3/order", Some(&buy(qty)));
    expect("order of 0.6 (over max_qty)", &order("0.6"), 403, Some("order_guard"))?;
    repeat(2, "order of 0.1", || order("0.1"), 200, None)?;
    expect("3rd order of 0.1", &order("0.1"), 403, Some("uses_exhausted"))?;
    match orders_seen(f).len() {
        2 => Ok(()),
        n => Err(format!("the exchange saw {n} orders, expected 2")),
    }
}

#[test]
fn refused_requests_spend_no_uses_and_no_rate() {
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for p in ["x", "y"] {
        assert_eq!(put(&s, s.admin(), p, json!({"k": "v"})).0, 200);
    }
    account(&s, "bin", Some(&f.url));
    report(vec![
        ("uses, secrets", uses_on_secrets(&s)),
        ("rate, secrets", rate_on_secrets(&s)),
        ("uses, proxy and sign API", uses_through_proxy_and_sign(&s, &f)),
        ("uses, guarded trade key", uses_of_a_guarded_trader(&s, &f)),
    ]);
}

pub(crate) fn capped(s: &Server, account: &str) -> String {
    let scope = format!("account:{account}:trade");
    create_key(
        s,
        json!({"name": "capped", "scopes": [scope], "allow_ips": ["127.0.0.1"], "max_notional_per_day": "1000"}),
    )
    .1
}

/// A limit buy through the proxy, tagged with a client order id so the fake's log tells orders apart.
pub(crate) fn order(s: &Server, key: &str, account: &str, qty: &str, tag: &str) -> (u16, Value) {
    let body = format!("{}&newClientOrderId={tag}", buy(qty));
    proxy(s, key, "POST", &format!("/proxy/{account}/api/v3/order"), Some(&body))
}

fn refused_connection(s: &Server, f: &FakeExchange) -> Check {
    account(s, "gone", Some(&format!("http://127.0.0.1:{}", free_port())));
    let k = capped(s, "gone");
    let first = order(s, &k, "gone", "0.012", "a1");
    expect("600 to a port nothing listens on", &first, 502, Some("upstream_unavailable"))?;
    account(s, "gone", Some(&f.url));
    expect("the same 600 once the exchange is back", &order(s, &k, "gone", "0.012", "a2"), 200, None)?;
    expect("another 600 (the cap still holds)", &order(s, &k, "gone", "0.012", "a3"), 403, Some("order_guard"))
}

fn timeout_keeps_the_reservation(s: &Server, f: &FakeExchange) -> Check {
    account(s, "slow", Some(&f.url));
    let k = capped(s, "slow");
    control(f, "delay_ms=3000");
    let first = order(s, &k, "slow", "0.012", "b1");
    control(f, "delay_ms=0");
    expect("600 to an exchange slower than --upstream-timeout", &first, 504, Some("upstream_timeout"))?;
    let second = order(s, &k, "slow", "0.012", "b2");
    expect("another 600 (the first may have been placed)", &second, 403, Some("order_guard"))?;
    expect("300", &order(s, &k, "slow", "0.006", "b3"), 200, None)
}

fn exchange_budget_releases(s: &Server, f: &FakeExchange) -> Check {
    account(s, "busy", Some(&f.url));
    let k = capped(s, "busy");
    let ping = || proxy(s, &k, "GET", "/proxy/busy/api/v3/ping", None);
    control(f, "weight=5500");
    expect("ping answered with weight 5500", &ping(), 200, None)?;
    let held = order(s, &k, "busy", "0.012", "held-c1");
    control(f, "weight=10");
    expect("600 while the exchange budget is spent", &held, 429, Some("exchange_budget"))?;
    if orders_seen(f).iter().any(|o| o.to_string().contains("held-c1")) {
        return Err("the held order reached the exchange".into());
    }
    s.set_clock(T0 + 61_000);
    // keyward keeps the exchange's clock as an offset from its own (test)
    // clock: after the jump, one answer re-teaches it before a signed call.
    expect("ping after the budget window", &ping(), 200, None)?;
    expect("600 after the budget window", &order(s, &k, "busy", "0.012", "c2"), 200, None)?;
    expect("another 600 (the cap still holds)", &order(s, &k, "busy", "0.012", "c3"), 403, Some("order_guard"))
}

#[test]
fn a_daily_notional_reservation_is_released_when_the_exchange_cannot_have_received_the_order() {
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1", "--upstream-timeout", "1s"]);
    let dir2 = tempfile::tempdir().unwrap();
    let clocked = start(dir2.path(), &["--allow-upstream", "127.0.0.1", "--test-clock"]);
    clocked.set_clock(T0);
    report(vec![
        ("connection refused", refused_connection(&s, &f)),
        ("timeout", timeout_keeps_the_reservation(&s, &f)),
        ("exchange budget", exchange_budget_releases(&clocked, &f)),
    ]);
}

/// The fields of `GET /v1/keys` that only a change to a key moves (not last use).
const KEY_FIELDS: &[&str] = &[
    "id",
    "name",
    "owner",
    "namespace",
    "state",
    "scopes",
    "permissions",
    "allow_ips",
    "expires_at",
    "rolled_to",
    "grace_until",
    "uses",
    "uses_remaining",
    "guard",
];

fn keys_view(s: &Server) -> Value {
    let (st, v) = s.http("GET", "/v1/keys", Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    let mut keys: Vec<Value> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Value::Object(KEY_FIELDS.iter().map(|f| (f.to_string(), k[*f].clone())).collect()))
        .collect();
    keys.sort_by_key(|k| k["id"].to_string());
    Value::Array(keys)
}

fn diff(before: &Value, after: &Value) -> String {
    match (before.as_array(), after.as_array()) {
        (Some(b), Some(a)) => {
            let only = |x: &[Value], y: &[Value]| x.iter().filter(|e| !y.contains(e)).map(Value::to_string).collect();
            let (gone, new): (Vec<String>, Vec<String>) = (only(b, a), only(a, b));
            format!("{} -> {} entries; gone {gone:?}; new {new:?}", b.len(), a.len())
        }
        _ => format!("{before} -> {after}"),
    }
}

#[test]
fn a_denied_roll_creates_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(put(&s, s.admin(), "x", json!({"k": "v"})).0, 200);
    let (id, k) = create_key(&s, json!({"name": "reader", "scopes": ["secret:read:x"]}));
    let before = keys_view(&s);
    let answers: Check = (1..=5).try_for_each(|i| {
        let got = s.http("POST", &format!("/v1/keys/{id}/roll"), Some(&k), None);
        expect(&format!("roll #{i} of its own key by a key without key:admin"), &got, 403, Some("scope_missing"))
    });
    let after = keys_view(&s);
    let list = if after == before { Ok(()) } else { Err(format!("GET /v1/keys changed: {}", diff(&before, &after))) };
    report(vec![("answers", answers), ("key list", list)]);
}

/// What the admin key sees of everything a write could change.
fn snapshot(s: &Server) -> BTreeMap<String, Value> {
    let get = |p: &str| {
        let (st, v) = s.http("GET", p, Some(s.admin()), None);
        assert_eq!(st, 200, "GET {p}: {v}");
        v
    };
    let mut out = BTreeMap::from([("keys".to_string(), keys_view(s))]);
    for m in get("/v1/secrets")["secrets"].as_array().unwrap() {
        let path = m["path"].as_str().unwrap();
        let h = get(&format!("/v1/secrets/{path}?history=true"));
        let versions: Vec<Value> = h["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| json!({"version": v["version"], "deleted_at": v["deleted_at"], "destroyed": v["destroyed"]}))
            .collect();
        out.insert(format!("secret {path}"), json!([m["type"], m["current_version"], versions]));
    }
    let names = get("/v1/namespaces")["namespaces"].as_array().unwrap().iter().map(|n| n["name"].clone()).collect();
    out.insert("namespaces".into(), Value::Array(names));
    out.insert("sealed".into(), get("/v1/sys/health")["sealed"].clone());
    out
}

#[test]
fn no_write_route_changes_anything_for_a_denied_caller() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    for v in ["one", "two"] {
        assert_eq!(put(&s, &a, "apps/p", json!({"k": v})).0, 200);
    }
    assert_eq!(s.http("DELETE", "/v1/secrets/apps/p?versions=1", Some(&a), None).0, 200);
    account(&s, "bin", None);
    assert_eq!(s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "shop"}))).0, 201);
    let (reader_id, reader) = create_key(&s, json!({"name": "reader", "scopes": ["secret:read:*"]}));
    let (_, writer) = create_key(&s, json!({"name": "writer", "scopes": ["secret:read:*", "secret:write:*"]}));
    let (_, keyadmin) = create_key(&s, json!({"name": "keyadmin", "scopes": ["key:admin", "secret:read:*"]}));
    let (victim, _) = create_key(&s, json!({"name": "victim", "scopes": ["secret:read:apps/*"]}));
    let (parked, _) = create_key(&s, json!({"name": "parked", "scopes": ["secret:read:apps/*"]}));
    assert_eq!(s.http("POST", &format!("/v1/keys/{parked}/disable"), Some(&a), None).0, 200);
    let before = snapshot(&s);

    let plain = json!({"data": {"k": "evil"}});
    let acct = json!({"data": {"api_key": "EVIL", "api_secret": "evil"}, "type": "binance"});
    let mut calls: Vec<(&str, &str, &str, String, Option<Value>)> = Vec::new();
    // Secrets: reader lacks secret:write; writer lacks account:<name>:admin.
    for (who, key, path, body) in [
        ("reader", &reader, "apps/p", &plain),
        ("reader", &reader, "apps/new", &plain),
        ("writer", &writer, "exchanges/bin", &acct),
        ("writer", &writer, "exchanges/new", &acct),
    ] {
        let p = format!("/v1/secrets/{path}");
        calls.push((who, key, "PUT", p.clone(), Some(body.clone())));
        calls.push((who, key, "POST", p.clone(), Some(body.clone())));
        calls.push((who, key, "POST", format!("{p}?action=undelete"), Some(json!({"versions": [1]}))));
        calls.push((who, key, "POST", format!("{p}?action=destroy"), Some(json!({"all": true}))));
        calls.push((who, key, "DELETE", p, None));
    }
    calls.push(("reader", &reader, "POST", "/v1/keys".into(), Some(json!({"name": "e", "scopes": ["secret:read:*"]}))));
    // key:admin grants only scopes its holder has; a namespace needs key:verify:<ns>.
    calls.push(("keyadmin", &keyadmin, "POST", "/v1/keys".into(), Some(json!({"name": "e", "scopes": ["sys:admin"]}))));
    calls.push(("reader", &reader, "POST", "/v1/namespaces".into(), Some(json!({"name": "evil"}))));
    calls.push(("keyadmin", &keyadmin, "POST", "/v1/namespaces".into(), Some(json!({"name": "evil"}))));
    calls.push(("reader", &reader, "POST", "/v1/auth/token".into(), Some(json!({"scopes": ["sys:admin"]}))));
    // Another key, a disabled one, then the caller's own; seal last, since a
    // wrongly allowed one would spoil what follows.
    for id in [&victim, &parked, &reader_id] {
        for action in ["enable", "roll", "disable", "revoke"] {
            calls.push(("reader", &reader, "POST", format!("/v1/keys/{id}/{action}"), None));
        }
        calls.push(("reader", &reader, "DELETE", format!("/v1/keys/{id}"), None));
    }
    calls.push(("reader", &reader, "POST", "/v1/sys/seal".into(), None));

    let mut wrong = Vec::new();
    let mut requests = Vec::new();
    for (who, key, method, path, body) in &calls {
        let r = s.http_from("127.0.0.1", method, path, Some(key), body.as_ref(), &[]);
        let what = format!("{method} {path} by {who}");
        wrong.extend(expect(&what, &r.pair(), 403, Some("scope_missing")).err());
        let id = r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        requests.push((what, id));
    }

    let after = snapshot(&s);
    for part in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let (b, a) = (before.get(part).unwrap_or(&Value::Null), after.get(part).unwrap_or(&Value::Null));
        if b != a {
            wrong.push(format!("{part} changed: {}", diff(b, a)));
        }
    }

    // Routine entries are queued, not awaited: poll until every request is on record.
    let deadline = Instant::now() + Duration::from_secs(5);
    let entries = loop {
        let (_, v) = s.http("GET", "/v1/audit?limit=1000", Some(&a), None);
        let by_id: BTreeMap<String, Value> = v["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["request_id"].as_str().unwrap_or("").to_string(), e.clone()))
            .collect();
        if requests.iter().all(|(_, id)| by_id.contains_key(id)) || Instant::now() > deadline {
            break by_id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (what, id) in &requests {
        match entries.get(id) {
            Some(e) if e["decision"] == "deny" && e["code"] == "scope_missing" => {}
            Some(e) => wrong.push(format!("audit of {what}: decision {} code {}", e["decision"], e["code"])),
            None => wrong.push(format!("audit of {what}: no entry for request {id:?}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
