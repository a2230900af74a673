//! The exchanges' own worked signing examples (tests/vectors/exchange-docs.json,
//! each with its source), run through the signers themselves.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::mac::{hex, hmac_sha256};
use keyward_exchanges::{CanonicalRequest, Credentials, Exchange, SignContext, binance, kraken, kucoin};
use serde_json::Value;

fn vectors(exchange: &str) -> Vec<Value> {
    let text = include_str!("vectors/exchange-docs.json");
    let all: Value = serde_json::from_str(text).unwrap();
    all["vectors"].as_array().unwrap().iter().filter(|v| v["exchange"] == exchange).cloned().collect()
}

fn creds(fields: &[(&str, &str)]) -> Credentials {
    let map: std::collections::HashMap<String, String> =
        fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Credentials::from_fields(|k| map.get(k).cloned()).unwrap()
}

fn param(payload: &str, name: &str) -> String {
    payload.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap().to_string()
}

#[test]
fn binance_rest_examples_through_the_signer() {
    let rest: Vec<Value> =
        vectors("binance").into_iter().filter(|v| !v["scheme"].as_str().unwrap().contains("WebSocket")).collect();
    assert_eq!(rest.len(), 2);
    for v in rest {
        let payload = v["payload"].as_str().unwrap();
        // The client's own parameters: everything before recvWindow.
        let own = payload.split("&recvWindow=").next().unwrap();
        let req = CanonicalRequest::parse("GET", "/api/v3/order", Some(own), None, b"").unwrap();
        let ctx = SignContext {
            timestamp_ms: param(payload, "timestamp").parse().unwrap(),
            nonce: 0,
            recv_window_ms: param(payload, "recvWindow").parse().unwrap(),
        };
        let c = creds(&[("api_key", "k"), ("api_secret", v["secret"].as_str().unwrap())]);
        let out = binance::Binance.sign(&req, &c, &ctx).unwrap();
        assert_eq!(out.query, format!("{payload}&signature={}", v["signature"].as_str().unwrap()), "{}", v["scheme"]);
        assert_eq!(out.header("X-MBX-APIKEY"), Some("k"));
    }
}

#[test]
fn binance_websocket_example_hmac() {
    let v = &vectors("binance").into_iter().find(|v| v["scheme"].as_str().unwrap().contains("WebSocket")).unwrap();
    let sig = hex(&hmac_sha256(v["secret"].as_str().unwrap().as_bytes(), v["payload"].as_str().unwrap().as_bytes()));
    assert_eq!(sig, v["signature"].as_str().unwrap());
}

#[test]
fn kraken_example_through_the_signer() {
    for v in vectors("kraken") {
        let post = v["postdata"].as_str().unwrap();
        let own = post.split_once('&').unwrap().1;
        let req = CanonicalRequest::parse(
            "POST",
            v["uri_path"].as_str().unwrap(),
            None,
            Some("application/x-www-form-urlencoded"),
            own.as_bytes(),
        )
        .unwrap();
        let ctx =
            SignContext { timestamp_ms: 0, nonce: v["nonce"].as_str().unwrap().parse().unwrap(), recv_window_ms: 0 };
        let c = creds(&[("api_key", "k"), ("api_secret", v["secret"].as_str().unwrap())]);
        let out = kraken::Kraken.sign(&req, &c, &ctx).unwrap();
        assert_eq!(out.body.as_ref().unwrap().1, post.as_bytes());
        assert_eq!(out.header("API-Sign"), v["signature"].as_str());
    }
}

#[test]
fn kucoin_example_through_the_signer() {
    for v in vectors("kucoin") {
        let s = v["string_to_sign"].as_str().unwrap();
        let (ts, rest) = s.split_at(13);
        let rest = rest.strip_prefix("POST").unwrap();
        let (path, body) = rest.split_at(rest.find('{').unwrap());
        let req = CanonicalRequest::parse("POST", path, None, Some("application/json"), body.as_bytes()).unwrap();
        let ctx = SignContext { timestamp_ms: ts.parse().unwrap(), nonce: 0, recv_window_ms: 0 };
        let c = creds(&[("api_key", "k"), ("api_secret", v["secret"].as_str().unwrap()), ("passphrase", "p")]);
        let out = kucoin::Kucoin.sign(&req, &c, &ctx).unwrap();
        assert_eq!(out.header("KC-API-SIGN"), v["signature"].as_str());
        assert_eq!(out.header("KC-API-KEY-VERSION"), Some("2"));
    }
}
