//! Short-lived tokens: at most 15 minutes, bound to the caller's address and
//! to a subset of the key's scopes, refused once the parent key is not.

use crate::harness::*;
use serde_json::json;

const T0: i64 = 1_900_000_000_000;

#[test]
fn tokens_are_bound_narrow_and_follow_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    s.set_clock(T0);
    let a = s.admin().to_string();
    put(&s, &a, "apps/a", json!({"k": "a"}));
    put(&s, &a, "apps/b", json!({"k": "b"}));
    let (id, key) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/*", "secret:write:apps/*"]}));

    let r = s.http_from(
        "127.0.0.1",
        "POST",
        "/v1/auth/token",
        Some(&key),
        Some(&json!({"scopes": ["secret:read:apps/a"], "ttl": "5m"})),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kwt_"));
    assert_eq!(r.body["ip"], "127.0.0.1");
    let get = |from: &str, path: &str| s.http_from(from, "GET", path, Some(&token), None, &[]).pair();
    assert_eq!(get("127.0.0.1", "/v1/secrets/apps/a").1["data"]["k"], "a");
    // Narrower than the key: b and writes are refused.
    assert_error(&get("127.0.0.1", "/v1/secrets/apps/b"), 403, "scope_missing");
    assert_error(
        &s.http("PUT", "/v1/secrets/apps/a", Some(&token), Some(&json!({"data": {"k": "x"}}))),
        403,
        "scope_missing",
    );
    // Bound to the address it was minted from.
    assert_error(&get("127.0.0.2", "/v1/secrets/apps/a"), 403, "ip_not_allowed");
    // A token cannot mint tokens, nor carry scopes the key lacks, nor live past the maximum.
    assert_error(&s.http("POST", "/v1/auth/token", Some(&token), None), 403, "scope_missing");
    assert_error(
        &s.http("POST", "/v1/auth/token", Some(&key), Some(&json!({"scopes": ["secret:read:*"]}))),
        403,
        "scope_missing",
    );
    assert_error(&s.http("POST", "/v1/auth/token", Some(&key), Some(&json!({"ttl": "16m"}))), 400, "invalid_request");
    // A forged token (payload edited) is refused.
    let (payload, mac) = token.trim_start_matches("kwt_").split_once('.').unwrap();
    let mut p = payload.to_string();
    p.replace_range(5..6, if &p[5..6] == "A" { "B" } else { "A" });
    assert_error(&s.http("GET", "/v1/secrets/apps/a", Some(&format!("kwt_{p}.{mac}")), None), 401, "key_invalid");

    // Expiry at its boundary.
    s.set_clock(T0 + 299_999);
    assert_eq!(get("127.0.0.1", "/v1/secrets/apps/a").0, 200);
    s.set_clock(T0 + 300_000);
    assert_error(&get("127.0.0.1", "/v1/secrets/apps/a"), 401, "key_expired");

    // Default lifetime is the maximum; the parent's state decides every use.
    s.set_clock(T0);
    let (st, t2) = s.http("POST", "/v1/auth/token", Some(&key), None);
    assert_eq!(st, 201);
    let t2 = t2["token"].as_str().unwrap().to_string();
    assert_eq!(s.http("GET", "/v1/secrets/apps/b", Some(&t2), None).0, 200);
    s.http("POST", &format!("/v1/keys/{id}/disable"), Some(&a), None);
    assert_error(&s.http("GET", "/v1/secrets/apps/b", Some(&t2), None), 401, "key_disabled");
    s.http("POST", &format!("/v1/keys/{id}/enable"), Some(&a), None);
    assert_eq!(s.http("GET", "/v1/secrets/apps/b", Some(&t2), None).0, 200);
    s.http("DELETE", &format!("/v1/keys/{id}"), Some(&a), None);
    assert_error(&s.http("GET", "/v1/secrets/apps/b", Some(&t2), None), 401, "key_revoked");
    s.set_clock(T0 + 900_000);
    assert_error(&s.http("GET", "/v1/secrets/apps/b", Some(&t2), None), 401, "key_expired");

    // A token never outlives its key.
    s.set_clock(T0);
    let (_, brief) = create_key(&s, json!({"name": "brief", "scopes": ["secret:read:apps/*"], "ttl": "1m"}));
    let (_, t3) = s.http("POST", "/v1/auth/token", Some(&brief), None);
    s.set_clock(T0 + 60_000);
    assert_error(&s.http("GET", "/v1/secrets/apps/a", Some(t3["token"].as_str().unwrap()), None), 401, "key_expired");
    // The CLI prints a token.
    s.set_clock(T0);
    let (_, k4) = create_key(&s, json!({"name": "k4", "scopes": ["secret:read:apps/a"]}));
    let o = s.cli(Some(&k4), &["key", "token", "--ttl", "2m"], None);
    assert!(o.status.success() && stdout(&o).starts_with("kwt_"), "{}", stderr(&o));
}

#[test]
fn test_clock_route_exists_only_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_error(&s.http("POST", "/v1/sys/test-clock", Some(s.admin()), Some(&json!({"now_ms": 1}))), 404, "not_found");
}
