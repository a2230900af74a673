//! A restart keeps every secret, version, key and revocation.

use crate::harness::*;
use serde_json::json;

#[test]
fn restart_keeps_all_data_readable() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/a", json!({"k": "v1"}));
    put(&s, &a, "apps/a", json!({"k": "v2", "other": "o"}));
    s.http(
        "PUT",
        "/v1/secrets/typed",
        Some(&a),
        Some(&json!({"data": {"k": "t"}, "type": "webhook", "rotation_period": "30d"})),
    );
    s.http("DELETE", "/v1/secrets/apps/a?versions=1", Some(&a), None);
    let (_, key) = create_key(
        &s,
        json!({"name": "bot", "scopes": ["secret:read:apps/*"], "allow_ips": ["127.0.0.1/32"], "owner": "desk"}),
    );
    let (rid, revoked) = create_key(&s, json!({"name": "old", "scopes": ["secret:read:*"]}));
    s.http("DELETE", &format!("/v1/keys/{rid}"), Some(&a), None);
    assert_eq!(s.http("GET", "/v1/secrets/apps/a", Some(&key), None).0, 200);
    let before = s.http("GET", "/v1/keys", Some(&a), None).1;
    s.stop();

    let s = start(dir.path(), &[]);
    assert!(s.admin.is_none(), "a restart prints no new bootstrap key");
    let after = s.http("GET", "/v1/keys", Some(&a), None).1;
    assert_eq!(s.http("GET", "/v1/secrets/apps/a", Some(&key), None).1["data"], json!({"k": "v2", "other": "o"}));
    assert_error(&s.http("GET", "/v1/secrets/apps/a?version=1", Some(&a), None), 404, "secret_deleted");
    let t = s.http("GET", "/v1/secrets/typed", Some(&a), None).1;
    assert_eq!((&t["metadata"]["type"], &t["metadata"]["rotation_period_s"]), (&json!("webhook"), &json!(30 * 86400)));
    assert_error(&s.http("GET", "/v1/secrets/apps/a", Some(&revoked), None), 401, "key_revoked");
    let bot =
        |v: &serde_json::Value| v["keys"].as_array().unwrap().iter().find(|k| k["name"] == "bot").unwrap().clone();
    // The last use before the stop was written on the way down.
    assert_eq!(bot(&after)["last_used_at"], bot(&before)["last_used_at"]);
    assert_eq!(bot(&after)["last_used_ip"], "127.0.0.1");
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for k in v["keys"].as_array_mut().unwrap() {
            k["last_used_at"] = serde_json::Value::Null;
            k["last_used_ip"] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(strip(&after), strip(&before));
}
