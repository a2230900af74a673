//! Exchange accounts and the sign API through the real server. Signatures
//! are checked with Python's hmac/hashlib, an implementation independent
//! of ours.

use crate::harness::*;
use serde_json::{Value, json};
use std::process::Command;

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// Runs a Python expression over `args` (sys.argv[1:]) and returns what it prints.
fn py(code: &str, args: &[&str]) -> String {
    let o = Command::new("python3").arg("-c").arg(code).args(args).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn account(s: &Server, name: &str, kind: &str, fields: Value) -> (u16, Value) {
    s.http(
        "PUT",
        &format!("/v1/secrets/exchanges/{name}"),
        Some(s.admin()),
        Some(&json!({"data": fields, "type": kind})),
    )
}

fn sign(s: &Server, key: &str, acct: &str, body: Value) -> (u16, Value) {
    s.http("POST", &format!("/v1/sign/{acct}"), Some(key), Some(&body))
}

fn bot(s: &Server, scopes: &[&str]) -> String {
    create_key(s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.0/8"]})).1
}

#[test]
fn accounts_are_validated_and_their_secrets_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "K", "api_secret": "S"})).0, 200);
    let cases = [
        ("binance", json!({"api_secret": "S"}), "api_key"),
        ("okx", json!({"api_key": "K", "api_secret": "S"}), "passphrase"),
        ("kraken", json!({"api_key": "K", "api_secret": "not base64!"}), "api_secret"),
        ("kucoin", json!({"api_key": "K", "api_secret": "S", "passphrase": "p", "key_version": "9"}), "key_version"),
        (
            "binance",
            json!({"api_key": "K", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "private_key",
        ),
        ("nasdaq", json!({"api_key": "K", "api_secret": "S"}), "unknown exchange type"),
    ];
    for (kind, fields, named) in cases {
        let got = account(&s, "x", kind, fields);
        assert_error(&got, 400, "account_invalid");
        assert!(got.1["error"]["message"].as_str().unwrap().contains(named), "{}", got.1);
    }
    let got = s.http("PUT", "/v1/secrets/exchanges/untyped", Some(s.admin()), Some(&json!({"data": {"api_key": "K"}})));
    assert_error(&got, 400, "account_invalid");
    // Upstreams: the exchange's own hosts and testnets over https, nothing else.
    for bad in [
        "http://api.binance.com",
        "https://evil.example",
        "https://127.0.0.1",
        "https://api.binance.com/x",
        "https://u:p@api.binance.com",
    ] {
        let got = account(&s, "b2", "binance", json!({"api_key": "K", "api_secret": "S", "base_url": bad}));
        assert_error(&got, 400, "upstream_not_allowed");
    }
    let urls = r#"{"/api": "https://testnet.binance.vision", "/fapi": "https://testnet.binancefuture.com"}"#;
    assert_eq!(account(&s, "b3", "binance", json!({"api_key": "K", "api_secret": "S", "base_urls": urls})).0, 200);
    let got = account(
        &s,
        "b4",
        "binance",
        json!({"api_key": "K", "api_secret": "S", "base_urls": r#"{"/api": "https://evil.example"}"#}),
    );
    assert_error(&got, 400, "upstream_not_allowed");

    // Reading: secret:read shows the account without its secret fields; export shows them.
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:exchanges/*"]}));
    let (st, v) = s.http("GET", "/v1/secrets/exchanges/bin", Some(&reader), None);
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!({"api_key": "K"}));
    assert_eq!(v["metadata"]["withheld_fields"], json!(["api_secret"]));
    assert_error(
        &s.http("GET", "/v1/secrets/exchanges/bin?field=api_secret", Some(&reader), None),
        403,
        "scope_missing",
    );
    let o = s.cli(Some(&reader), &["secret", "get", "exchanges/bin", "--json"], None);
    assert!(!stdout(&o).contains("\"S\""), "{}", stdout(&o));
    let exporter = bot(&s, &["account:bin:export"]);
    assert_eq!(s.http("GET", "/v1/secrets/exchanges/bin", Some(&exporter), None).1["data"]["api_secret"], "S");
    assert_eq!(s.http("GET", "/v1/secrets/exchanges/bin", Some(s.admin()), None).1["data"]["api_secret"], "S");
    assert_error(&s.http("GET", "/v1/secrets/exchanges/b3", Some(&exporter), None), 403, "scope_missing");

    // Changing an account needs account:<name>:admin on top of secret:write.
    let (_, writer) = create_key(&s, json!({"name": "w", "scopes": ["secret:write:exchanges/*"]}));
    let got = s.http(
        "PUT",
        "/v1/secrets/exchanges/bin",
        Some(&writer),
        Some(&json!({"data": {"api_key": "K2", "api_secret": "S2"}})),
    );
    assert_error(&got, 403, "scope_missing");
    assert_error(&s.http("DELETE", "/v1/secrets/exchanges/bin", Some(&writer), None), 403, "scope_missing");
    let (_, acct_admin) = create_key(
        &s,
        json!({"name": "aa", "scopes": ["secret:write:exchanges/*", "account:bin:admin"], "allow_ips": ["127.0.0.1"]}),
    );
    let got = s.http(
        "PUT",
        "/v1/secrets/exchanges/bin",
        Some(&acct_admin),
        Some(&json!({"data": {"api_key": "K2", "api_secret": "S2"}})),
    );
    assert_eq!(got.0, 200, "{}", got.1);
    // The CLI's documented form, secret from stdin.
    let o = s.cli(
        Some(s.admin()),
        &["secret", "put", "exchanges/okx-main", "--type", "okx", "api_key=K", "api_secret=-", "passphrase=p"],
        Some("SECRET"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn sign_api_classes_and_independent_verification() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "kr", "kraken", json!({"api_key": "KRKEY", "api_secret": KRAKEN_SECRET})).0, 200);
    let trader = bot(&s, &["account:kr:trade", "account:kr:read"]);

    let (st, v) = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "body": "ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["url"], "https://api.kraken.com/0/private/AddOrder");
    assert_eq!(v["class"], "trade");
    assert_eq!(v["headers"]["API-Key"], "KRKEY");
    let body = v["body"].as_str().unwrap();
    assert!(
        body.starts_with("nonce=") && body.ends_with("&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25")
    );
    let nonce = body.split('&').next().unwrap().trim_start_matches("nonce=");
    let expected = py(
        "import sys,hmac,hashlib,base64; s,p,n,b=sys.argv[1:]; \
         print(base64.b64encode(hmac.new(base64.b64decode(s), p.encode()+hashlib.sha256((n+b).encode()).digest(), hashlib.sha512).digest()).decode())",
        &[KRAKEN_SECRET, "/0/private/AddOrder", nonce, body],
    );
    assert_eq!(v["headers"]["API-Sign"], expected);

    // Nonces increase.
    let (st, v2) = sign(&s, &trader, "kr", json!({"method": "POST", "path": "/0/private/Balance"}));
    assert_eq!(st, 200, "{v2}");
    let n2: u64 = v2["body"].as_str().unwrap().trim_start_matches("nonce=").parse().unwrap();
    assert!(n2 > nonce.parse::<u64>().unwrap());
    assert_eq!(v2["class"], "read");

    // Public: no credentials at all.
    let (_, p) = sign(&s, &trader, "kr", json!({"method": "GET", "path": "/0/public/Ticker", "query": "pair=XBTUSD"}));
    assert_eq!((p["class"].as_str(), p["headers"].as_object().unwrap().len()), (Some("public"), 0));

    // Classes the key lacks, unknown endpoints, session tokens.
    for (path, code) in [
        ("/0/private/Withdraw", "scope_missing"),
        ("/0/private/WalletTransfer", "scope_missing"),
        ("/0/private/GetWebSocketsToken", "scope_missing"),
        ("/0/private/SomethingNew", "endpoint_unknown"),
    ] {
        let got = sign(&s, &trader, "kr", json!({"method": "POST", "path": path}));
        assert_error(&got, 403, code);
    }
    // Leverage makes an order a loan.
    let got = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "body": "pair=XBTUSD&type=buy&volume=1&leverage=5"}),
    );
    assert_error(&got, 403, "scope_missing");
    // No scope on the account at all: nothing else is revealed.
    let other = bot(&s, &["account:elsewhere:trade"]);
    assert_error(
        &sign(&s, &other, "kr", json!({"method": "POST", "path": "/0/private/Balance"})),
        403,
        "scope_missing",
    );
    assert_error(&sign(&s, &other, "nonexistent", json!({"method": "POST", "path": "/x"})), 403, "scope_missing");
    // Overrides need a test clock.
    let got = sign(&s, &trader, "kr", json!({"method": "POST", "path": "/0/private/Balance", "nonce": 5}));
    assert_error(&got, 400, "invalid_request");
    // The CLI.
    let o = s.cli(Some(&trader), &["sign", "kr", "POST", "/0/private/Balance"], None);
    assert!(o.status.success() && stdout(&o).contains("API-Sign: "), "{}", stderr(&o));
}

#[test]
fn signatures_that_do_not_bind_the_path_need_admin() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "BK", "api_secret": "BSECRET"})).0, 200);
    assert_eq!(account(&s, "by", "bybit", json!({"api_key": "YK", "api_secret": "YSECRET"})).0, 200);
    let trader = bot(&s, &["account:bin:trade", "account:by:trade"]);
    for (acct, path, body) in [
        ("bin", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"),
        (
            "by",
            "/v5/order/create",
            r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01"}"#,
        ),
    ] {
        let got = sign(&s, &trader, acct, json!({"method": "POST", "path": path, "body": body}));
        assert_error(&got, 403, "scope_missing");
        assert!(got.1["error"]["message"].as_str().unwrap().contains("replayed"), "{}", got.1);
    }
    // Public endpoints need no admin.
    assert_eq!(sign(&s, &trader, "bin", json!({"method": "GET", "path": "/api/v3/exchangeInfo"})).0, 200);

    let admin = bot(&s, &["account:bin:admin", "account:bin:trade", "account:by:admin", "account:by:trade"]);
    let (st, v) = sign(
        &s,
        &admin,
        "bin",
        json!({"method": "POST", "path": "/api/v3/order", "query": "signature=forged&timestamp=1", "body": "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["headers"]["X-MBX-APIKEY"], "BK");
    let body = v["body"].as_str().unwrap();
    assert!(
        !body.contains("forged") && body.matches("timestamp=").count() == 1,
        "client auth params are dropped: {body}"
    );
    let (payload, sig) = body.rsplit_once("&signature=").unwrap();
    assert!(payload.contains("recvWindow=5000"));
    let expected = py(
        "import sys,hmac,hashlib; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &["BSECRET", payload],
    );
    assert_eq!(sig, expected);

    let (st, v) = sign(
        &s,
        &admin,
        "by",
        json!({"method": "POST", "path": "/v5/order/create", "body": r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01"}"#}),
    );
    assert_eq!(st, 200, "{v}");
    let hd = &v["headers"];
    let text = format!(
        "{}{}{}{}",
        hd["X-BAPI-TIMESTAMP"].as_str().unwrap(),
        "YK",
        hd["X-BAPI-RECV-WINDOW"].as_str().unwrap(),
        v["body"].as_str().unwrap()
    );
    let expected = py(
        "import sys,hmac,hashlib; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &["YSECRET", &text],
    );
    assert_eq!(hd["X-BAPI-SIGN"], expected);
}

#[test]
fn non_canonical_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "BK", "api_secret": "S"})).0, 200);
    let admin = bot(&s, &["account:bin:*"]);
    let cases = [
        json!({"method": "GET", "path": "/api/v3/account/../../sapi/v1/capital/withdraw/apply"}),
        json!({"method": "GET", "path": "/api/v3/%61ccount"}),
        json!({"method": "GET", "path": "/api/v3//account"}),
        json!({"method": "GET", "path": "/api/v3/account/"}),
        json!({"method": "GET", "path": "/api\\v3\\account"}),
        json!({"method": "get", "path": "/api/v3/account"}),
        json!({"method": "POST", "path": "/api/v3/order", "query": "_method=DELETE"}),
        json!({"method": "POST", "path": "/api/v3/order", "query": "quantity=1", "body": "quantity=100"}),
        json!({"method": "GET", "path": "/api/v3/order", "query": "symbol=A&symbol=B"}),
        json!({"method": "GET", "path": "/api/v3/order", "query": "sym%62ol=A"}),
    ];
    for body in cases {
        let got = sign(&s, &admin, "bin", body.clone());
        assert_error(&got, 400, "request_not_canonical");
    }
}

#[test]
fn test_clock_overrides_reproduce_the_documented_kraken_signature() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    assert_eq!(account(&s, "kr", "kraken", json!({"api_key": "K", "api_secret": KRAKEN_SECRET})).0, 200);
    let trader = bot(&s, &["account:kr:trade"]);
    let (st, v) = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "nonce": 1616492376594u64,
        "body": "ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["headers"]["API-Sign"],
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );

    // OKX with a fixed timestamp, checked by Python.
    assert_eq!(account(&s, "ok", "okx", json!({"api_key": "OK", "api_secret": "OSECRET", "passphrase": "pp"})).0, 200);
    let okb = bot(&s, &["account:ok:read"]);
    let (st, v) = sign(
        &s,
        &okb,
        "ok",
        json!({"method": "GET", "path": "/api/v5/account/balance", "query": "ccy=BTC", "timestamp_ms": 1607418537715i64}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["headers"]["OK-ACCESS-TIMESTAMP"], "2020-12-08T09:08:57.715Z");
    let expected = py(
        "import sys,hmac,hashlib,base64; print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).digest()).decode())",
        &["OSECRET", "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"],
    );
    assert_eq!(v["headers"]["OK-ACCESS-SIGN"], expected);
    assert_eq!(v["headers"]["OK-ACCESS-PASSPHRASE"], "pp");
}
