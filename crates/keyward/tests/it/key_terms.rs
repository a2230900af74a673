//! Keyring terms (`keyward operator rotate`) through the real binary: new
//! writes use the new term, everything older still decrypts, `operator
//! status` counts what each term encrypts, and the term survives a seal,
//! a restart and an unseal.

use crate::harness::*;
use serde_json::{Value, json};

fn shares(init: &Value) -> Vec<String> {
    init["shares"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn unseal(s: &Server, shares: &[String]) {
    for sh in &shares[..2] {
        let (st, v) = s.http("POST", "/v1/sys/unseal", None, Some(&json!({ "share": sh })));
        assert_eq!(st, 200, "{v}");
    }
}

/// `(term, active, secret_versions)` from `operator status --json`.
fn terms(s: &Server, admin: &str) -> Vec<(u64, bool, u64)> {
    let o = s.cli(Some(admin), &["operator", "status", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["terms"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| (t["term"].as_u64().unwrap(), t["active"].as_bool().unwrap(), t["secret_versions"].as_u64().unwrap()))
        .collect()
}

fn value(s: &Server, token: &str, path: &str) -> Value {
    let (st, v) = s.http("GET", &format!("/v1/secrets/{path}"), Some(token), None);
    assert_eq!(st, 200, "{path}: {v}");
    v["data"]["v"].clone()
}

#[test]
fn a_new_term_encrypts_new_writes_and_every_older_one_still_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let init = operator_init(dir.path(), &["--shares", "3", "--threshold", "2"]);
    let (shares, admin) = (shares(&init), init["admin_key"].as_str().unwrap().to_string());
    let s = start(dir.path(), &[]);
    unseal(&s, &shares);
    for p in ["apps/a", "apps/b"] {
        assert_eq!(put(&s, &admin, p, json!({"v": format!("{p}-1")})).0, 200);
    }
    let body = json!({"name": "reader", "scopes": ["secret:read:apps/*"]});
    let (st, made) = s.http("POST", "/v1/keys", Some(&admin), Some(&body));
    assert_eq!(st, 201, "{made}");
    let reader = made["key"].as_str().unwrap().to_string();
    assert_eq!(terms(&s, &admin), [(1, true, 2)]);

    // Only sys:admin rotates.
    assert_error(&s.http("POST", "/v1/sys/rotate", Some(&reader), None), 403, "scope_missing");
    let o = s.cli(Some(&admin), &["operator", "rotate"], None);
    assert!(o.status.success() && stdout(&o).contains("keyring term 2 is active"), "{}", stdout(&o));
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "apps/a-2"})).0, 200);
    assert_eq!(terms(&s, &admin), [(1, false, 2), (2, true, 1)]);
    // Old and new versions read, and keys made before still verify.
    assert_eq!(value(&s, &reader, "apps/a"), "apps/a-2");
    assert_eq!(value(&s, &reader, "apps/a?version=1"), "apps/a-1");
    assert_eq!(value(&s, &reader, "apps/b"), "apps/b-1");

    // A third term; the record keeps it across a seal, a restart and an unseal.
    let (st, v) = s.http("POST", "/v1/sys/rotate", Some(&admin), None);
    assert_eq!((st, v["active_term"].clone(), v["previous_term"].clone()), (200, json!(3), json!(2)), "{v}");
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    assert_error(&s.http("POST", "/v1/sys/rotate", Some(&admin), None), 503, "sealed");
    s.stop();
    let s = start(dir.path(), &[]);
    unseal(&s, &shares);
    assert_eq!(put(&s, &admin, "apps/c", json!({"v": "apps/c-1"})).0, 200);
    assert_eq!(terms(&s, &admin), [(1, false, 2), (2, false, 1), (3, true, 1)]);
    for (p, want) in
        [("apps/a", "apps/a-2"), ("apps/a?version=1", "apps/a-1"), ("apps/b", "apps/b-1"), ("apps/c", "apps/c-1")]
    {
        assert_eq!(value(&s, &reader, p), want);
    }
    // The audit chain, checkpoints included, still verifies; the rotations are on it.
    let o = s.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success() && stdout(&o).contains("intact"), "{}", stdout(&o));
    let audit = stdout(&s.cli(Some(&admin), &["audit", "export"], None));
    assert_eq!(audit.matches("term_rotated").count(), 2, "{audit}");
}
