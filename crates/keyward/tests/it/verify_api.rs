//! The verify API for platforms: namespaces, permissions, answers for each
//! case, isolation between namespaces, and platform keys never
//! authenticating to keyward itself.

use crate::harness::*;
use serde_json::{Value, json};

fn verify(s: &Server, caller: &str, body: Value) -> Value {
    let (st, v) = s.http("POST", "/v1/keys/verify", Some(caller), Some(&body));
    assert_eq!(st, 200, "{v}");
    v
}

#[test]
fn verify_answers_each_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    s.set_clock(1_900_000_000_000);
    let a = s.admin().to_string();
    let o = s.cli(Some(&a), &["key", "namespace", "create", "shop-api", "--prefix", "shop"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, verifier) = create_key(&s, json!({"name": "shop-backend", "scopes": ["key:verify:shop-api"]}));
    let o = s.cli(
        Some(&a),
        &[
            "key",
            "create",
            "--name",
            "user-42",
            "--namespace",
            "shop-api",
            "--perm",
            "orders.read",
            "--perm",
            "orders.write",
            "--meta",
            "user=42",
            "--owner",
            "alice",
            "--rate",
            "1/m,burst=2",
            "--uses",
            "3",
            "--ttl",
            "1h",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("shop_"), "the namespace's prefix: {key}");

    let v = verify(&s, &verifier, json!({"key": key, "permission": "orders.read"}));
    assert_eq!(v["valid"], true);
    assert_eq!(v["code"], "valid");
    assert_eq!(v["key_id"], created["id"]);
    assert_eq!((&v["name"], &v["owner"], &v["namespace"]), (&json!("user-42"), &json!("alice"), &json!("shop-api")));
    assert_eq!(v["permissions"], json!(["orders.read", "orders.write"]));
    assert_eq!(v["meta"], json!({"user": "42"}));
    assert!(v["expires_at"].is_string());
    assert_eq!(v["remaining"], 2);
    assert_eq!((&v["ratelimit"]["limit"], &v["ratelimit"]["remaining"]), (&json!(2), &json!(1)));
    assert!(v["ratelimit"]["reset_ms"].as_u64().unwrap() > 0);

    // A permission the key lacks: not valid, and no use or rate consumed.
    let v = verify(&s, &verifier, json!({"key": key, "permission": "admin.delete"}));
    assert_eq!((&v["valid"], &v["code"]), (&json!(false), &json!("scope_missing")));
    assert_eq!(v["remaining"], 2);

    // Second use: the burst is now empty; the third is rate limited.
    assert_eq!(verify(&s, &verifier, json!({"key": key}))["remaining"], 1);
    let v = verify(&s, &verifier, json!({"key": key}));
    assert_eq!((&v["valid"], &v["code"]), (&json!(false), &json!("rate_limited")));
    assert_eq!(v["ratelimit"]["remaining"], 0);
    assert!(v["ratelimit"]["reset_ms"].as_u64().unwrap() >= 1000);

    // Uses run out.
    let (_, once) = create_key(&s, json!({"name": "once", "namespace": "shop-api", "uses": 1}));
    assert_eq!(verify(&s, &verifier, json!({"key": once}))["remaining"], 0);
    let v = verify(&s, &verifier, json!({"key": once}));
    assert_eq!((&v["valid"], &v["code"], &v["remaining"]), (&json!(false), &json!("uses_exhausted"), &json!(0)));

    // Addresses.
    let (_, bound) = create_key(
        &s,
        json!({"name": "b", "namespace": "shop-api", "allow_ips": ["198.51.100.0/24", "2001:db8::/32"]}),
    );
    assert_eq!(verify(&s, &verifier, json!({"key": bound, "ip": "198.51.100.7"}))["valid"], true);
    assert_eq!(verify(&s, &verifier, json!({"key": bound, "ip": "2001:db8::1"}))["valid"], true);
    assert_eq!(verify(&s, &verifier, json!({"key": bound, "ip": "203.0.113.1"}))["code"], "ip_not_allowed");
    assert_eq!(verify(&s, &verifier, json!({"key": bound}))["code"], "ip_not_allowed");
    assert_error(
        &s.http("POST", "/v1/keys/verify", Some(&verifier), Some(&json!({"key": bound, "ip": "nope"}))),
        400,
        "invalid_request",
    );

    // Lifecycle.
    let (pid, p) = create_key(&s, json!({"name": "p", "namespace": "shop-api"}));
    s.http("POST", &format!("/v1/keys/{pid}/disable"), Some(&a), None);
    assert_eq!(verify(&s, &verifier, json!({"key": p}))["code"], "key_disabled");
    s.http("DELETE", &format!("/v1/keys/{pid}"), Some(&a), None);
    assert_eq!(verify(&s, &verifier, json!({"key": p}))["code"], "key_revoked");
    let (_, short) = create_key(&s, json!({"name": "s", "namespace": "shop-api", "ttl": "1m"}));
    s.set_clock(1_900_000_060_000);
    assert_eq!(verify(&s, &verifier, json!({"key": short}))["code"], "key_expired");

    // Unknown and garbled keys.
    let unknown = keyward_core::access_key::AccessKeySecret::generate("shop").unwrap();
    let v = verify(&s, &verifier, json!({"key": unknown.expose()}));
    assert_eq!((&v["valid"], &v["code"], &v["key_id"]), (&json!(false), &json!("key_invalid"), &Value::Null));
    assert_eq!(verify(&s, &verifier, json!({"key": "garbage"}))["code"], "key_invalid");
    assert_error(&s.http("POST", "/v1/keys/verify", Some(&verifier), Some(&json!({"nokey": 1}))), 400, "invalid_json");
}

#[test]
fn namespaces_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let (_, shop_key) = create_key(&s, json!({"name": "u", "namespace": "shop-api", "permissions": ["x"]}));
    let (_, other_key) = create_key(&s, json!({"name": "u", "namespace": "other-api", "permissions": ["x"]}));
    let (_, shop_verifier) = create_key(&s, json!({"name": "v", "scopes": ["key:verify:shop-api"]}));
    let (_, none) = create_key(&s, json!({"name": "n", "scopes": ["secret:read:*"]}));

    // The other namespace's key answers exactly like an unknown key.
    let unknown = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    let as_unknown = verify(&s, &shop_verifier, json!({"key": unknown.expose()}));
    assert_eq!(verify(&s, &shop_verifier, json!({"key": other_key})), as_unknown);
    assert_eq!(verify(&s, &shop_verifier, json!({"key": shop_key}))["valid"], true);
    // keyward's own keys too.
    assert_eq!(verify(&s, &shop_verifier, json!({"key": a})), as_unknown);
    // No key:verify scope at all: refused.
    assert_error(
        &s.http("POST", "/v1/keys/verify", Some(&none), Some(&json!({"key": shop_key}))),
        403,
        "scope_missing",
    );

    // Platform keys never authenticate to keyward itself.
    put(&s, &a, "x", json!({"k": "v"}));
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&shop_key), None), 401, "key_invalid");
    assert_error(&s.http("GET", "/v1/keys", Some(&shop_key), None), 401, "key_invalid");

    // Managing a namespace needs key:admin and key:verify on it.
    let (_, shop_admin) = create_key(&s, json!({"name": "sa", "scopes": ["key:admin", "key:verify:shop-api"]}));
    let (st, v) = s.http(
        "POST",
        "/v1/keys",
        Some(&shop_admin),
        Some(&json!({"name": "u2", "namespace": "shop-api", "permissions": ["y"]})),
    );
    assert_eq!(st, 201, "{v}");
    let got = s.http("POST", "/v1/keys", Some(&shop_admin), Some(&json!({"name": "u3", "namespace": "other-api"})));
    assert_error(&got, 403, "scope_missing");
    let (_, listed) = s.http("GET", "/v1/keys?namespace=other-api", Some(&shop_admin), None);
    assert_eq!(listed["keys"], json!([]));
    let (_, listed) = s.http("GET", "/v1/keys?namespace=shop-api", Some(&shop_admin), None);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);

    // Platform keys take permissions, not scopes; keyward keys the reverse.
    let got = s.http(
        "POST",
        "/v1/keys",
        Some(&a),
        Some(&json!({"name": "bad", "namespace": "shop-api", "scopes": ["secret:read:*"]})),
    );
    assert_error(&got, 400, "invalid_request");
    let got = s.http(
        "POST",
        "/v1/keys",
        Some(&a),
        Some(&json!({"name": "bad", "scopes": ["secret:read:*"], "permissions": ["x"]})),
    );
    assert_error(&got, 400, "invalid_request");
    // Namespace rules.
    assert_error(
        &s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "Bad Name"}))),
        400,
        "invalid_namespace",
    );
    assert_error(
        &s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "keyward"}))),
        400,
        "invalid_namespace",
    );
    assert_error(
        &s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "p", "prefix": "X"}))),
        400,
        "invalid_prefix",
    );
    assert_error(
        &s.http("POST", "/v1/namespaces", Some(&a), Some(&json!({"name": "shop-api"}))),
        409,
        "namespace_exists",
    );
    // The CLI's verify reads the key from stdin.
    let o = s.cli(Some(&shop_verifier), &["key", "verify", "--permission", "x"], Some(&shop_key));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.cli(Some(&shop_verifier), &["key", "verify", "--permission", "nope"], Some(&shop_key));
    assert!(!o.status.success() && stderr(&o).contains("scope_missing"));
}
