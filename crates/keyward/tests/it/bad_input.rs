//! Bad input gets a clear 4xx with a stable code, never a panic or a 500.

use crate::harness::*;
use serde_json::json;

fn raw_get(s: &Server, token: &str, target: &str) -> (u16, serde_json::Value) {
    s.raw(
        &format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
        b"",
    )
}

fn raw_put(s: &Server, token: &str, target: &str, body: &[u8]) -> (u16, serde_json::Value) {
    s.raw(
        &format!(
            "PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        body,
    )
}

#[test]
fn hostile_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let long = format!("/v1/secrets/{}", "a".repeat(513));
    for target in [
        "/v1/secrets/a/../b",
        "/v1/secrets/../v1/keys",
        "/v1/secrets/a/%2e%2e/b",
        "/v1/secrets/a//b",
        "/v1/secrets/a/",
        "/v1/secrets/a/./b",
        "/v1/secrets/a%00b",
        "/v1/secrets/a%01b",
        "/v1/secrets/a%0Ab",
        "/v1/secrets/a%7Fb",
        "/v1/secrets/a%FFb",
        "/v1/secrets/a%C3%28",
        "/v1/secrets/a%zz",
        "/v1/secrets/a%20b",
        "/v1/secrets/a*",
        "/v1/secrets/a%5Cb",
        long.as_str(),
    ] {
        assert_error(&raw_get(&s, &a, target), 400, "invalid_path");
        assert_error(&raw_put(&s, &a, target, br#"{"data":{"k":"v"}}"#), 400, "invalid_path");
    }
    // 512 bytes is still fine.
    let ok = "a".repeat(512);
    assert_eq!(put(&s, &a, &ok, json!({"k": "v"})).0, 200);
    assert_error(&s.http("GET", "/v1/secrets?prefix=a//", Some(&a), None), 400, "invalid_path");
    // The CLI refuses them before sending.
    let o = s.cli(Some(&a), &["secret", "get", "a/../b"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid_path"), "{}", stderr(&o));
}

#[test]
fn bad_bodies_and_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"[]", "invalid_json"),
        (br#"{"data":{"k":"v"},"extra":1}"#, "invalid_json"),
        (br#"{"data":{"k":5}}"#, "invalid_json"),
        (br#"{"data":{"k":"a","k":"b"}}"#, "invalid_json"),
        (br#"{"data":"str"}"#, "invalid_json"),
        (b"{\"data\":{\"k\":\"\xff\xfe\"}}", "invalid_json"),
        (br#"{"nodata":{}}"#, "invalid_json"),
        (br#"{"data":{}}"#, "invalid_field"),
        (br#"{"data":{"bad name":"v"}}"#, "invalid_field"),
        (br#"{"data":{"k":"v"},"type":"Not A Type"}"#, "invalid_type"),
        (br#"{"data":{"k":"v"},"rotation_period":"soon"}"#, "invalid_field"),
        (br#"{"data":{"k":"v"},"cas":-1}"#, "invalid_json"),
    ];
    for (body, code) in cases {
        let got = raw_put(&s, &a, "/v1/secrets/x", body);
        assert_error(&got, 400, code);
    }
    // A wrong-typed value is never echoed back.
    let got = raw_put(&s, &a, "/v1/secrets/x", br#"{"data":{"k":"v"},"cas":"hunter2-secret"}"#);
    assert!(!got.1.to_string().contains("hunter2"), "{}", got.1);

    // Over 1 MiB: 413 body_too_large, with and without a declared length.
    let big = format!(r#"{{"data":{{"k":"{}"}}}}"#, "x".repeat(1024 * 1024 + 10));
    // Declared too large: refused from the headers alone, before any body byte.
    let head = format!(
        "PUT /v1/secrets/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    assert_error(&s.raw(&head, b""), 413, "body_too_large");
    let chunked = s.raw(
        &format!("PUT /v1/secrets/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {a}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n", big.len()),
        format!("{big}\r\n0\r\n\r\n").as_bytes(),
    );
    assert_error(&chunked, 413, "body_too_large");
    // Just under the cap is accepted.
    let fits = format!(r#"{{"data":{{"k":"{}"}}}}"#, "x".repeat(1024 * 1024 - 100));
    assert_eq!(raw_put(&s, &a, "/v1/secrets/x", fits.as_bytes()).0, 200);

    // Queries: unknown and duplicate parameters.
    assert_error(&s.http("GET", "/v1/secrets/x?bogus=1", Some(&a), None), 400, "invalid_query");
    assert_error(&s.http("GET", "/v1/secrets/x?version=1&version=1", Some(&a), None), 400, "invalid_query");
    assert_error(&s.http("GET", "/v1/secrets/x?version=abc", Some(&a), None), 400, "invalid_query");
    assert_error(&s.http("POST", "/v1/secrets/x?action=explode", Some(&a), Some(&json!({}))), 400, "invalid_query");

    // Unknown routes and methods.
    assert_error(&s.http("GET", "/v1/nothing", Some(&a), None), 404, "not_found");
    assert_error(&s.http("PATCH", "/v1/secrets/x", Some(&a), None), 405, "method_not_allowed");
    assert_error(&s.http("PUT", "/v1/keys", Some(&a), None), 405, "method_not_allowed");

    // Still healthy after all of it, and no panic in the log.
    assert_eq!(s.http("GET", "/v1/sys/health", None, None).0, 200);
    assert!(!s.log_text().contains("panicked"));
}

#[test]
fn missing_garbled_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    // Health needs no key; everything else does.
    assert_eq!(s.http("GET", "/v1/sys/health", None, None).0, 200);
    for path in ["/v1/secrets/x", "/v1/secrets", "/v1/keys", "/v1/sys/status"] {
        assert_error(&s.http("GET", path, None, None), 401, "key_invalid");
    }
    let mut flipped = a.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let unknown = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    for header in [
        format!("Basic {a}"),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer kw_short".to_string(),
        format!("Bearer {flipped}"),
        format!("Bearer {}", unknown.expose()),
        format!("Bearer {}x", a),
    ] {
        let got = s.raw(
            &format!("GET /v1/secrets/x HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\nConnection: close\r\n\r\n"),
            b"",
        );
        assert_error(&got, 401, "key_invalid");
        assert!(!got.1.to_string().contains(&a[3..20]), "the key is echoed: {}", got.1);
    }
    let got = s.raw(
        "GET /v1/secrets/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
        b"\xff\xfe\r\nConnection: close\r\n\r\n",
    );
    assert!(got.0 == 400 || got.1["error"]["code"] == "key_invalid", "{got:?}");
    // The CLI explains a missing token.
    let o = s.cli(None, &["secret", "get", "x"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("KEYWARD_TOKEN"), "{}", stderr(&o));
}

#[test]
fn bad_key_requests_are_refused_with_the_accepted_form() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let cases = [
        (json!({"name": "x", "scopes": ["secret:peek:*"]}), "invalid_scope"),
        (json!({"name": "x", "scopes": []}), "invalid_scope"),
        (json!({"name": "x", "scopes": ["account:binance-main:fly"]}), "invalid_scope"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "allow_ips": ["10.0.0.0/33"]}), "invalid_cidr"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "allow_ips": ["nonsense"]}), "invalid_cidr"),
        (json!({"name": "x", "scopes": ["account:binance-main:trade"]}), "allowlist_required"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "ttl": "forever"}), "invalid_field"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "expires_at": "tomorrow"}), "invalid_request"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "expires_at": "2001-01-01T00:00:00Z"}), "invalid_request"),
        (json!({"name": "", "scopes": ["secret:read:*"]}), "invalid_request"),
        (json!({"name": "x", "scopes": ["secret:read:*"], "colour": "red"}), "invalid_json"),
    ];
    for (body, code) in cases {
        let got = s.http("POST", "/v1/keys", Some(&a), Some(&body));
        assert_error(&got, 400, code);
    }
    let got = s.http("POST", "/v1/keys", Some(&a), Some(&json!({"name": "x", "scopes": ["secret:peek:*"]})));
    assert!(got.1["error"]["message"].as_str().unwrap().contains("secret:read:<glob>"));
    let got = s.http(
        "POST",
        "/v1/keys",
        Some(&a),
        Some(&json!({"name": "x", "scopes": ["secret:read:*"], "allow_ips": ["x"]})),
    );
    assert!(got.1["error"]["message"].as_str().unwrap().contains("CIDR"));
}
