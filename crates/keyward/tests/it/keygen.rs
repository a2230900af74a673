//! Exchange keys born inside keyward (`keyward account keygen`), end to end
//! through the real binary: the public key printed is registered on the
//! fake exchange, which checks every signature against it with Python's
//! `cryptography` (an implementation independent of keyward's ring);
//! `secret rotate … api_key=<id> --verify` promotes the key, and the next
//! proxied order is signed with it. The private key is never read back by
//! any scope, and appears in no answer, log line, audit entry or export.

use crate::harness::*;
use serde_json::{Value, json};

/// Markers of a private key in any form keyward could leak it: the PEM
/// label, the base64 of an Ed25519 PKCS#8 prefix, and of the RSA PKCS#8
/// algorithm identifier followed by its private-key OCTET STRING (a public
/// key's SPKI has a BIT STRING there: `…AAOC`, not `…AASC`).
const MARKERS: &[&str] = &["PRIVATE KEY", "MC4CAQAwBQYDK2Vw", "BgkqhkiG9w0BAQEFAASC"];

#[track_caller]
fn assert_no_private_key(what: &str, text: &str) {
    for m in MARKERS {
        assert!(!text.contains(m), "{what} shows a private key ({m}):\n{text}");
    }
}

/// `keyward account keygen NAME ARGS --json` as the admin: the answer.
fn keygen(s: &Server, name: &str, args: &[&str]) -> Value {
    let mut all = vec!["account", "keygen", name, "--json"];
    all.extend_from_slice(args);
    let o = s.cli(Some(s.admin()), &all, None);
    assert!(o.status.success(), "keygen {name} {args:?}: {}", stderr(&o));
    assert_no_private_key("keygen's output", &(stdout(&o) + &stderr(&o)));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn rotate(s: &Server, path: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["secret", "rotate", path];
    all.extend_from_slice(args);
    s.cli(Some(s.admin()), &all, stdin)
}

fn proxied(s: &Server, bot: &str, path: &str, header: &str, ctype: &str, body: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/proxy/{path}", s.addr))
        .header(header, bot)
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn binance_order(s: &Server, bot: &str, id: &str) -> (u16, String) {
    let form =
        format!("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000&newClientOrderId={id}");
    proxied(s, bot, "bin/api/v3/order", "X-MBX-APIKEY", "application/x-www-form-urlencoded", &form)
}

/// The exchange key the fake saw on the last request to `path`.
fn last_key(fake: &FakeExchange, path: &str, header: &str) -> String {
    let log = fake.log();
    let e = log.iter().rev().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{path} never reached the exchange"));
    e["headers"][header].as_str().unwrap_or_default().to_string()
}

fn bot(s: &Server, accounts: &[&str]) -> String {
    let scopes: Vec<String> =
        accounts.iter().flat_map(|a| [format!("account:{a}:trade"), format!("account:{a}:read")]).collect();
    create_key(s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.1/32"]})).1
}

#[test]
fn binance_keys_made_inside_keyward_sign_orders_the_exchange_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let old = json!({"key": "BIN-OLD", "secret": "bin-old-secret"});
    let fake = FakeExchange::start(&json!({ "binance": old }));
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    exchange_account(&s, "bin", "binance", json!({"api_key": "BIN-OLD", "api_secret": "bin-old-secret"}), &fake.url);
    let bot = bot(&s, &["bin"]);

    // Ed25519: the pair is made, the private key staged; nothing signs with it yet.
    let made = keygen(&s, "bin", &["--alg", "ed25519"]);
    let pem = made["public_key_pem"].as_str().unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"), "{made}");
    assert_eq!(made["alg"], "ed25519");
    assert_eq!(made["pending_version"], 2);
    assert!(made["next"].as_str().unwrap().contains("api_key="), "{made}");
    assert_eq!(binance_order(&s, &bot, "before").0, 200);
    assert_eq!(last_key(&fake, "/api/v3/order", "x-mbx-apikey"), "BIN-OLD");

    // Not registered on the exchange yet: the check fails and nothing switches.
    let o = rotate(&s, "exchanges/bin", &["api_key=BIN-ED", "--verify"], None);
    assert!(!o.status.success() && stderr(&o).contains("refused"), "{}", stderr(&o));
    assert_eq!(binance_order(&s, &bot, "still-old").0, 200);
    assert_eq!(last_key(&fake, "/api/v3/order", "x-mbx-apikey"), "BIN-OLD");

    // Registered with another public key (Binance's documented sample): the
    // fake's `cryptography` check refuses the signature, nothing switches.
    let other = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAgmDRTtj2FA+wzJUIlAL9ly1eovjLBu7uXUFR+jFULmg=\n-----END PUBLIC KEY-----\n";
    fake.set_creds(&json!({"binance": [old, {"key": "BIN-ED", "public_key": other}]}));
    let o = rotate(&s, "exchanges/bin", &["--verify"], None);
    assert!(!o.status.success() && stderr(&o).contains("Signature for this request is not valid"), "{}", stderr(&o));

    // Registered (the printed public key, as the key page takes it): promoted,
    // and the next order is signed with the new key, checked by `cryptography`.
    fake.set_creds(&json!({"binance": [old, {"key": "BIN-ED", "public_key": pem}]}));
    let o = rotate(&s, "exchanges/bin", &["--verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (st, body) = binance_order(&s, &bot, "ed25519");
    assert_eq!(st, 200, "{body}");
    assert_eq!(last_key(&fake, "/api/v3/order", "x-mbx-apikey"), "BIN-ED");

    // RSA: made, registered alone (the old keys deleted on the exchange), promoted in one call.
    let made = keygen(&s, "bin", &["--alg", "rsa"]);
    let pem = made["public_key_pem"].as_str().unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"), "{made}");
    assert_eq!(made["alg"], "rsa2048");
    assert_eq!(made["public_key"], pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>());
    fake.set_creds(&json!({"binance": {"key": "BIN-RSA", "public_key": pem}}));
    let o = rotate(&s, "exchanges/bin", &["api_key=BIN-RSA", "--verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (st, body) = binance_order(&s, &bot, "rsa");
    assert_eq!(st, 200, "{body}");
    assert_eq!(last_key(&fake, "/api/v3/order", "x-mbx-apikey"), "BIN-RSA");

    // Rolled back to the Ed25519 key, which was deleted on the exchange
    // meanwhile: refused as the exchange refuses it.
    let (st, v) = s.http("POST", "/v1/secrets/exchanges/bin?action=rollback", Some(s.admin()), Some(&json!({})));
    assert_eq!(st, 200, "{v}");
    let (st, body) = binance_order(&s, &bot, "gone");
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("-2015"), "{body}");
    assert_no_private_key("the server log", &s.log_text());
}

#[test]
fn bybit_and_bitget_rsa_keys_made_inside_keyward() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeExchange::start(&json!({
        "bitget": {"key": "BG-OLD", "secret": "bg-old-secret", "passphrase": "bg-pass"},
    }));
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let bot = bot(&s, &["by", "bg"]);

    // Bybit: a new account, born with its key; its upstream and key id come at promotion.
    let made = keygen(&s, "by", &["--type", "bybit", "--alg", "rsa"]);
    assert_eq!(made["pending_version"], 1);
    let pem = made["public_key_pem"].as_str().unwrap().to_string();
    fake.set_creds(&json!({"bybit": {"key": "BY-RSA", "public_key": pem}}));
    let base = format!("base_url={}", fake.url);
    let o = rotate(&s, "exchanges/by", &["api_key=BY-RSA", &base, "--verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let order =
        r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"}"#;
    let (st, body) = proxied(&s, &bot, "by/v5/order/create", "X-BAPI-API-KEY", "application/json", order);
    assert_eq!(st, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["retCode"], 0, "the fake refused the RSA signature: {body}");
    assert_eq!(last_key(&fake, "/v5/order/create", "x-bapi-api-key"), "BY-RSA");

    // Bitget: an HMAC account moves to an RSA key; the passphrase set on the
    // exchange with the new key comes on standard input at promotion.
    exchange_account(
        &s,
        "bg",
        "bitget",
        json!({"api_key": "BG-OLD", "api_secret": "bg-old-secret", "passphrase": "bg-pass"}),
        &fake.url,
    );
    let order = r#"{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc","size":"0.01","price":"50000"}"#;
    let (st, body) = proxied(&s, &bot, "bg/api/v2/spot/trade/place-order", "ACCESS-KEY", "application/json", order);
    assert!(st == 200 && body.contains("00000"), "{st} {body}");
    let made = keygen(&s, "bg", &["--alg", "rsa"]);
    let pem = made["public_key_pem"].as_str().unwrap().to_string();
    fake.set_creds(&json!({"bitget": {"key": "BG-RSA", "public_key": pem, "passphrase": "bg-pass-2"}}));
    // Without the passphrase the pending version is incomplete: refused before anything is asked.
    let o = rotate(&s, "exchanges/bg", &["api_key=BG-RSA", "--verify"], None);
    assert!(!o.status.success() && stderr(&o).contains("passphrase"), "{}", stderr(&o));
    let o = rotate(&s, "exchanges/bg", &["api_key=BG-RSA", "passphrase=-", "--verify"], Some("bg-pass-2\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let (st, body) = proxied(&s, &bot, "bg/api/v2/spot/trade/place-order", "ACCESS-KEY", "application/json", order);
    assert!(st == 200 && body.contains("00000"), "the fake refused the RSA signature: {st} {body}");
    assert_eq!(last_key(&fake, "/api/v2/spot/trade/place-order", "access-key"), "BG-RSA");
}

#[test]
fn a_key_made_inside_keyward_is_never_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeExchange::start(&json!({"binance": {"key": "BIN-OLD", "secret": "bin-old-secret"}}));
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    exchange_account(&s, "bin", "binance", json!({"api_key": "BIN-OLD", "api_secret": "bin-old-secret"}), &fake.url);
    let made = keygen(&s, "bin", &["--alg", "ed25519"]);
    let pem = made["public_key_pem"].as_str().unwrap().to_string();
    let mut seen = made.to_string();
    let export = create_key(
        &s,
        json!({"name": "exporter", "scopes": ["account:bin:export", "secret:read:exchanges/*"], "allow_ips": ["127.0.0.1/32"]}),
    )
    .1;

    // The pending version, read by the root key (sys:admin) and by export: no private key.
    let admin = s.admin().to_string();
    for token in [&admin, &export] {
        for q in ["?version=2", ""] {
            let (st, v) = s.http("GET", &format!("/v1/secrets/exchanges/bin{q}"), Some(token), None);
            seen += &v.to_string();
            if q.is_empty() {
                assert_eq!(st, 200, "{v}");
                continue;
            }
            if st == 200 {
                assert!(v["data"].get("private_key").is_none(), "{v}");
                assert!(v["data"].get("keyward.non_exportable").is_none(), "{v}");
                assert_eq!(v["metadata"]["non_exportable_fields"], json!(["private_key"]), "{v}");
            } else {
                assert_error(&(st, v), 403, "scope_missing");
            }
        }
        for f in ["private_key", "keyward.non_exportable"] {
            let got = s.http("GET", &format!("/v1/secrets/exchanges/bin?version=2&field={f}"), Some(token), None);
            seen += &got.1.to_string();
            if token == &admin {
                assert_error(&got, 403, "non_exportable");
            }
        }
    }
    // Promoted: the current version is still non-exportable to export and the CLI.
    fake.set_creds(&json!({"binance": {"key": "BIN-ED", "public_key": pem}}));
    let o = rotate(&s, "exchanges/bin", &["api_key=BIN-ED", "--verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    seen += &stdout(&o);
    let got = s.http("GET", "/v1/secrets/exchanges/bin?field=private_key", Some(&export), None);
    seen += &got.1.to_string();
    assert_error(&got, 403, "non_exportable");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("non-exportable"), "{}", got.1);
    let (st, v) = s.http("GET", "/v1/secrets/exchanges/bin", Some(&export), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["api_key"], "BIN-ED");
    assert!(v["data"].get("private_key").is_none() && v["data"].get("api_secret").is_none(), "{v}");
    seen += &v.to_string();
    let o = s.cli(Some(&export), &["secret", "get", "exchanges/bin"], None);
    seen += &(stdout(&o) + &stderr(&o));
    let o = s.cli(Some(s.admin()), &["secret", "history", "exchanges/bin"], None);
    assert!(stdout(&o).contains("keygen"), "{}", stdout(&o));
    seen += &stdout(&o);

    // The marker is keyward's: no caller sets or clears it.
    let got = s.http(
        "POST",
        "/v1/secrets/exchanges/bin?action=rotate",
        Some(s.admin()),
        Some(&json!({"data": {"keyward.non_exportable": ""}})),
    );
    assert_error(&got, 400, "invalid_field");
    assert_error(&put(&s, s.admin(), "apps/x", json!({"keyward.non_exportable": "a"})), 400, "invalid_field");
    // A later rotation that does not touch the key keeps it non-exportable.
    let o = rotate(&s, "exchanges/bin", &["label=desk-a", "--promote"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(
        &s.http("GET", "/v1/secrets/exchanges/bin?field=private_key", Some(&export), None),
        403,
        "non_exportable",
    );

    // Nowhere: answers, the server's log, the audit log and its export, the database file.
    let audit = s.cli(Some(s.admin()), &["audit", "export"], None);
    assert!(audit.status.success(), "{}", stderr(&audit));
    assert!(stdout(&audit).contains("\"keygen\"") || stdout(&audit).contains("keygen"), "keygen not on record");
    assert_no_private_key("API answers", &seen);
    assert_no_private_key("the audit export", &stdout(&audit));
    assert_no_private_key("the server log", &s.log_text());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert_no_private_key(&p.display().to_string(), &String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn keygen_refuses_what_the_exchange_or_the_caller_cannot_have() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let kraken = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    exchange_account(&s, "kr", "kraken", json!({"api_key": "K", "api_secret": kraken}), "http://127.0.0.1:9");
    let post =
        |name: &str, body: Value| s.http("POST", &format!("/v1/accounts/{name}/keygen"), Some(s.admin()), Some(&body));

    let got = post("kr", json!({"alg": "ed25519"}));
    assert_error(&got, 400, "account_invalid");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("binance, bitget, bybit"), "{}", got.1);
    for kind in ["okx", "kucoin", "gate", "coinbase", "deribit"] {
        assert_error(&post(&format!("new-{kind}"), json!({"type": kind, "alg": "ed25519"})), 400, "account_invalid");
    }
    let got = post("by", json!({"type": "bybit", "alg": "ed25519"}));
    assert_error(&got, 400, "account_invalid");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("rsa"), "{}", got.1);
    assert_error(&post("b", json!({"type": "binance", "alg": "dsa"})), 400, "invalid_request");
    assert_error(&post("b", json!({"type": "binance", "alg": "rsa", "bits": 1024})), 400, "invalid_request");
    assert_error(&post("b", json!({"type": "binance", "alg": "ed25519", "bits": 4096})), 400, "invalid_request");
    assert_error(&post("b", json!({"alg": "ed25519"})), 400, "account_invalid");
    assert_error(&post("kr", json!({"type": "binance", "alg": "ed25519"})), 400, "account_invalid");
    assert_error(&post("b", json!({"type": "binance", "alg": "ed25519", "extra": 1})), 400, "invalid_json");
    assert_error(&post("a%2Fb", json!({"type": "binance", "alg": "ed25519"})), 400, "invalid_path");
    // Nothing was made by any of these.
    for name in ["by", "b", "new-okx"] {
        assert_error(&s.http("GET", &format!("/v1/secrets/exchanges/{name}"), Some(s.admin()), None), 404, "not_found");
    }

    // The caller needs secret:write on the account and account:<name>:admin, checked first.
    let writer = create_key(&s, json!({"name": "w", "scopes": ["secret:write:exchanges/*"]})).1;
    let trader = create_key(&s, json!({"name": "t", "scopes": ["account:b:trade"], "allow_ips": ["127.0.0.1/32"]})).1;
    for token in [&writer, &trader] {
        let got =
            s.http("POST", "/v1/accounts/b/keygen", Some(token), Some(&json!({"type": "binance", "alg": "ed25519"})));
        assert_error(&got, 403, "scope_missing");
    }
    assert_error(&s.http("GET", "/v1/secrets/exchanges/b", Some(s.admin()), None), 404, "not_found");
    // The CLI says the same.
    let o = s.cli(Some(s.admin()), &["account", "keygen", "kr", "--alg", "ed25519"], None);
    assert!(!o.status.success() && stderr(&o).contains("makes its API keys itself"), "{}", stderr(&o));
}
