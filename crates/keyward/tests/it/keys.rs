//! Access keys as far as the foundation goes: create, list, show, revoke,
//! the subset rule, expiry and IP allowlists.

use crate::harness::*;
use serde_json::{Value, json};

#[test]
fn create_list_show_revoke_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/alerts/webhook", json!({"token": "t"}));
    let o = s.cli(
        Some(&a),
        &["key", "create", "--name", "alert-bot", "--scope", "secret:read:apps/alerts/*", "--owner", "ops", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let k: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (id, key) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    assert!(key.starts_with("kw_") && key.len() == 52, "{key}");
    assert_eq!(k["scopes"], json!(["secret:read:apps/alerts/*"]));
    assert_eq!(k["owner"], "ops");

    // Text output shows the key once, with a warning.
    let o = s.cli(Some(&a), &["key", "create", "--name", "t", "--scope", "secret:read:x"], None);
    assert!(stdout(&o).contains("shown once") && stdout(&o).contains("kw_"));

    let o = s.cli(Some(&a), &["key", "list"], None);
    assert!(stdout(&o).contains(id) && stdout(&o).contains("alert-bot"));
    assert!(!stdout(&o).contains(key), "list must never show a key");
    let o = s.cli(Some(&a), &["key", "show", id, "--json"], None);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["state"], "active");
    assert!(shown.get("key").is_none() && shown.get("hash").is_none());

    assert_eq!(s.cli(Some(key), &["secret", "get", "apps/alerts/webhook", "--field", "token"], None).stdout, b"t\n");
    // Revoke by name works when the name is unique; an unknown name is refused.
    let o = s.cli(Some(&a), &["key", "revoke", "no-such-bot"], None);
    assert!(!o.status.success() && stderr(&o).contains("no key named"), "{}", stderr(&o));
    let o = s.cli(Some(&a), &["key", "revoke", "alert-bot"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(id));
    // Immediate: the very next request is refused.
    assert_error(&s.http("GET", "/v1/secrets/apps/alerts/webhook", Some(key), None), 401, "key_revoked");
    assert_eq!(s.http("GET", &format!("/v1/keys/{id}"), Some(&a), None).1["state"], "revoked");
    assert_error(&s.http("GET", "/v1/keys/key_doesnotexist", Some(&a), None), 404, "not_found");
}

#[test]
fn a_key_can_only_grant_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_, kadmin) = create_key(&s, json!({"name": "ka", "scopes": ["key:admin", "secret:read:apps/*"]}));
    // Within its own scopes: allowed.
    let (st, v) =
        s.http("POST", "/v1/keys", Some(&kadmin), Some(&json!({"name": "n", "scopes": ["secret:read:apps/alerts/*"]})));
    assert_eq!(st, 201, "{v}");
    // Beyond: refused, including the escalation key:admin → sys:admin.
    for scope in ["sys:admin", "secret:read:*", "secret:write:apps/*", "secret:read:ap*", "audit:read", "key:verify:*"]
    {
        let got = s.http("POST", "/v1/keys", Some(&kadmin), Some(&json!({"name": "n", "scopes": [scope]})));
        assert_error(&got, 403, "scope_missing");
    }
    // A key without key:admin cannot create keys at all.
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:*"]}));
    assert_error(
        &s.http("POST", "/v1/keys", Some(&reader), Some(&json!({"name": "n", "scopes": ["secret:read:x"]}))),
        403,
        "scope_missing",
    );
    assert_error(&s.http("GET", "/v1/keys", Some(&reader), None), 403, "scope_missing");
    // It sees and revokes only keys its scopes cover: not the admin's.
    let (_, list) = s.http("GET", "/v1/keys", Some(&kadmin), None);
    let names: Vec<_> =
        list["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"n".to_string()) && !names.contains(&"bootstrap-admin".to_string()), "{names:?}");
    let (_, all) = s.http("GET", "/v1/keys", Some(s.admin()), None);
    let admin_id = all["keys"].as_array().unwrap().iter().find(|k| k["name"] == "bootstrap-admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(&s.http("DELETE", &format!("/v1/keys/{admin_id}"), Some(&kadmin), None), 404, "not_found");
    assert_eq!(s.http("GET", "/v1/keys", Some(s.admin()), None).0, 200);
}

#[test]
fn expiry_and_ip_allowlists() {
    const T0: i64 = 1_900_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    s.set_clock(T0);
    let a = s.admin().to_string();
    put(&s, &a, "x", json!({"k": "v"}));
    let read = |allow: Value| create_key(&s, json!({"name": "ip", "scopes": ["secret:read:x"], "allow_ips": allow})).1;
    assert_eq!(s.http("GET", "/v1/secrets/x", Some(&read(json!(["127.0.0.0/8"]))), None).0, 200);
    assert_eq!(s.http("GET", "/v1/secrets/x", Some(&read(json!(["10.0.0.0/8", "127.0.0.1"]))), None).0, 200);
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&read(json!(["10.0.0.0/8"]))), None), 403, "ip_not_allowed");
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&read(json!(["::1/128"]))), None), 403, "ip_not_allowed");
    // An account scope needs an allowlist; 0.0.0.0/0 is the explicit opt-out.
    let (st, _) = s.http(
        "POST",
        "/v1/keys",
        Some(&a),
        Some(&json!({"name": "t", "scopes": ["account:b:trade"], "allow_ips": ["0.0.0.0/0"]})),
    );
    assert_eq!(st, 201);

    let (_, short) = create_key(&s, json!({"name": "short", "scopes": ["secret:read:x"], "ttl": "1s"}));
    s.set_clock(T0 + 999);
    assert_eq!(s.http("GET", "/v1/secrets/x", Some(&short), None).0, 200);
    s.set_clock(T0 + 1000);
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&short), None), 401, "key_expired");
}
