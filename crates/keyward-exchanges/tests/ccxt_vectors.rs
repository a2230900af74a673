//! keyward's signers against ccxt's own `sign()` with frozen time and nonce
//! (tests/vectors/ccxt-sign.json, made by tools/ccxt_vectors.py): the same
//! request, time and credentials give the same signature.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::mac::{hex, hmac_sha256};
use keyward_exchanges::{CanonicalRequest, Credentials, SignContext, by_kind};
use serde_json::Value;
use std::collections::HashMap;

fn vectors() -> (i64, Vec<Value>) {
    let all: Value = serde_json::from_str(include_str!("vectors/ccxt-sign.json")).unwrap();
    (all["timestamp_ms"].as_i64().unwrap(), all["vectors"].as_array().unwrap().clone())
}

fn creds(c: &Value) -> Credentials {
    let mut m = HashMap::new();
    m.insert("api_key".to_string(), c["apiKey"].as_str().unwrap().to_string());
    m.insert("api_secret".to_string(), c["secret"].as_str().unwrap().to_string());
    if let Some(p) = c["password"].as_str() {
        m.insert("passphrase".to_string(), p.to_string());
    }
    Credentials::from_fields(|k| m.get(k).cloned()).unwrap()
}

fn split_url(url: &str) -> (String, Option<String>) {
    let rest = url.splitn(4, '/').nth(3).unwrap();
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rest, None),
    };
    (format!("/{path}"), query)
}

#[test]
fn signatures_match_ccxt() {
    let (t, vs) = vectors();
    let mut checked = 0;
    for v in vs {
        let kind = v["exchange"].as_str().unwrap();
        let ex = by_kind(kind).unwrap();
        let c = creds(&v["credentials"]);
        let (path, query) = split_url(v["url"].as_str().unwrap());
        let body = v["body"].as_str().unwrap_or("");
        let hdr = |name: &str| v["headers"][name].as_str().map(str::to_string);
        if kind == "binance" {
            // ccxt orders the parameters its own way (timestamp first); the
            // scheme is HMAC over exactly the string sent, which is checked here.
            let payload = if body.is_empty() { query.unwrap() } else { body.to_string() };
            let (signed, sig) = payload.rsplit_once("&signature=").unwrap();
            assert_eq!(hex(&hmac_sha256(c.secret().unwrap().as_bytes(), signed.as_bytes())), sig);
            checked += 1;
            continue;
        }
        if kind == "coinbase" {
            check_coinbase(&v, &c, t, &path, body);
            checked += 1;
            continue;
        }
        if kind == "htx" {
            check_htx(&v, &c, t, &path, query.as_deref(), body);
            checked += 1;
            continue;
        }
        let ctype = v["headers"]["Content-Type"].as_str();
        let mut req =
            CanonicalRequest::parse(v["method"].as_str().unwrap(), &path, query.as_deref(), ctype, body.as_bytes())
                .unwrap();
        req.remove_params(ex.auth_params());
        let recv = hdr("X-BAPI-RECV-WINDOW").map(|r| r.parse().unwrap()).unwrap_or(5000);
        let out = ex.sign(&req, &c, &SignContext { timestamp_ms: t, nonce: t as u64, recv_window_ms: recv }).unwrap();
        let (sig_header, also) = match kind {
            "okx" => ("OK-ACCESS-SIGN", vec!["OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE", "OK-ACCESS-KEY"]),
            "bybit" => ("X-BAPI-SIGN", vec!["X-BAPI-TIMESTAMP", "X-BAPI-API-KEY"]),
            "kraken" => ("API-Sign", vec!["API-Key"]),
            "kucoin" => ("KC-API-SIGN", vec!["KC-API-PASSPHRASE", "KC-API-TIMESTAMP", "KC-API-KEY-VERSION"]),
            "bitget" => ("ACCESS-SIGN", vec!["ACCESS-TIMESTAMP", "ACCESS-PASSPHRASE", "ACCESS-KEY"]),
            "gate" => ("SIGN", vec!["Timestamp", "KEY"]),
            "deribit" => ("Authorization", vec![]),
            other => panic!("no rule for {other}"),
        };
        assert_eq!(out.header(sig_header).map(str::to_string), hdr(sig_header), "{kind} {}", v["url"]);
        for h in also {
            assert_eq!(out.header(h).map(str::to_string), hdr(h), "{kind} {h}");
        }
        let sent_body = out.body.as_ref().map(|(_, b)| String::from_utf8(b.clone()).unwrap()).unwrap_or_default();
        assert_eq!(sent_body, body, "{kind}: the body keyward sends is the body ccxt signed");
        checked += 1;
    }
    assert_eq!(checked, 26);
}

/// HTX: the key, time and signature travel in the query, whose pairs both
/// sort by name, and the host is signed: keyward's request target is
/// ccxt's, byte for byte, and so is the JSON body (which is not signed).
fn check_htx(v: &Value, c: &Credentials, t: i64, path: &str, query: Option<&str>, body: &str) {
    let ex = by_kind("htx").unwrap();
    let method = v["method"].as_str().unwrap();
    let mut req = if body.is_empty() {
        CanonicalRequest::parse(method, path, query, None, b"").unwrap()
    } else {
        CanonicalRequest::parse(method, path, None, Some("application/json"), body.as_bytes()).unwrap()
    };
    req.remove_params(ex.auth_params());
    let ctx = SignContext { timestamp_ms: t, nonce: t as u64, recv_window_ms: 5000 };
    let out = ex.sign_for("api.huobi.pro", &req, c, &ctx).unwrap();
    assert_eq!(format!("{path}?{}", query.unwrap()), out.target(), "htx {}", v["url"]);
    let sent = out.body.as_ref().map(|(_, b)| String::from_utf8(b.clone()).unwrap()).unwrap_or_default();
    let json = |s: &str| serde_json::from_str::<Value>(s).ok();
    assert_eq!(json(&sent), json(body), "htx: the body keyward sends is the body ccxt sends");
}

/// Coinbase: the JWT's header and claims are ccxt's, byte for byte (its
/// nonce taken from ccxt's header); an EdDSA signature is deterministic, so
/// the whole token is; an ES256 one is not, so both verify with the key.
fn check_coinbase(v: &Value, c: &Credentials, t: i64, path: &str, body: &str) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let theirs = v["headers"]["Authorization"].as_str().unwrap().strip_prefix("Bearer ").unwrap();
    let parts: Vec<&str> = theirs.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let method = v["method"].as_str().unwrap();
    let ours =
        keyward_exchanges::coinbase::jwt::token(c, method, path, t / 1000, header["nonce"].as_str().unwrap()).unwrap();
    let mine: Vec<&str> = ours.split('.').collect();
    assert_eq!(mine[..2], parts[..2], "coinbase {method} {path}: header and claims");
    if header["alg"] == "EdDSA" {
        assert_eq!(ours, theirs, "EdDSA is deterministic");
    } else {
        let pem = c.secret().unwrap().to_string();
        let public = keyward_exchanges::PrivateKey::from_pem(&pem).unwrap().public_key();
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public);
        for token in [theirs, ours.as_str()] {
            let (input, sig) = token.rsplit_once('.').unwrap();
            key.verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
                .expect("an ES256 signature that verifies");
        }
    }
    // Through `sign`, with a fresh nonce: the same claims, and ccxt's body.
    let ex = by_kind("coinbase").unwrap();
    let req = if body.is_empty() {
        CanonicalRequest::parse(method, path, None, None, b"").unwrap()
    } else {
        CanonicalRequest::parse(method, path, None, Some("application/json"), body.as_bytes()).unwrap()
    };
    let out = ex.sign(&req, c, &SignContext { timestamp_ms: t, nonce: 1, recv_window_ms: 5000 }).unwrap();
    let signed = out.header("Authorization").unwrap().strip_prefix("Bearer ").unwrap().to_string();
    assert_eq!(signed.split('.').nth(1), Some(parts[1]));
    let sent = out.body.as_ref().map(|(_, b)| String::from_utf8(b.clone()).unwrap()).unwrap_or_default();
    assert_eq!(sent, body);
}
