//! What a stolen database holds: no secret value, no access key; rows moved
//! between secrets fail to decrypt instead of returning the wrong secret; an
//! edited key row is refused.

use crate::harness::*;
use serde_json::json;

fn files_bytes(data: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn database_and_wal_hold_no_secret_and_no_key() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let value = "webhook-token-7c1f4e2a9b";
    let o = s.cli(Some(&a), &["secret", "put", "apps/alerts/webhook", "token=-"], Some(value));
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, key) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/*"]}));
    assert_eq!(s.http("GET", "/v1/secrets/apps/alerts/webhook", Some(&key), None).1["data"]["token"], value);

    // While running (WAL not yet checkpointed) and after a clean stop.
    for when in ["running", "stopped"] {
        let files = files_bytes(&s.data);
        assert!(files.iter().any(|(n, _)| n.ends_with("-wal")) || when == "stopped");
        for (name, bytes) in &files {
            assert!(!contains(bytes, value.as_bytes()), "{when}: secret value found in {name}");
            assert!(!contains(bytes, key.as_bytes()), "{when}: access key found in {name}");
            assert!(!contains(bytes, a.as_bytes()), "{when}: admin key found in {name}");
            assert!(!contains(bytes, &key.as_bytes()[3..30]), "{when}: part of a key found in {name}");
        }
        if when == "running" {
            // Nor in the server's log.
            let log = s.log_text();
            assert!(!log.contains(value) && !log.contains(&key) && !log.contains(&a));
        }
    }
    s.stop();
    for (name, bytes) in files_bytes(&dir.path().join("keyward-data")) {
        assert!(!contains(&bytes, value.as_bytes()), "after stop: secret value found in {name}");
        assert!(!contains(&bytes, key.as_bytes()), "after stop: key found in {name}");
    }
}

#[test]
fn swapped_ciphertext_rows_fail_to_decrypt() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "one", json!({"v": "first-secret"}));
    put(&s, &a, "two", json!({"v": "second-secret"}));
    put(&s, &a, "two", json!({"v": "second-secret-v2"}));
    s.stop();
    let db = dir.path().join("keyward-data/keyward.db");
    sql(
        &db,
        &[
            "CREATE TEMP TABLE t AS SELECT path, version, ciphertext FROM secret_versions",
            "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM t WHERE t.path = 'two' AND t.version = 1) WHERE path = 'one'",
            "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM t WHERE t.path = 'two' AND t.version = 2) WHERE path = 'two' AND version = 1",
        ],
    );
    let s = start(dir.path(), &[]);
    for target in ["/v1/secrets/one", "/v1/secrets/two?version=1"] {
        let got = s.http("GET", target, Some(&a), None);
        assert_error(&got, 500, "decrypt_failed");
        assert!(!got.1.to_string().contains("second-secret"));
    }
    assert_eq!(s.http("GET", "/v1/secrets/two", Some(&a), None).1["data"]["v"], "second-secret-v2");
}

#[test]
fn an_edited_key_row_is_refused_as_tampered() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/db", json!({"pw": "p"}));
    let (id, key) = create_key(&s, json!({"name": "narrow", "scopes": ["secret:read:apps/alerts/*"]}));
    let (rid, revoked) = create_key(&s, json!({"name": "gone", "scopes": ["secret:read:*"]}));
    assert_eq!(s.http("DELETE", &format!("/v1/keys/{rid}"), Some(&a), None).0, 200);
    s.stop();
    let db = dir.path().join("keyward-data/keyward.db");
    // Widen a key's scopes, and un-revoke a revoked key, directly in the database.
    sql(
        &db,
        &[
            &format!("UPDATE access_keys SET policy = replace(policy, 'apps/alerts/*', '*') WHERE id = '{id}'"),
            &format!("UPDATE access_keys SET state = 'active' WHERE id = '{rid}'"),
        ],
    );
    let s = start(dir.path(), &[]);
    assert_error(&s.http("GET", "/v1/secrets/apps/db", Some(&key), None), 401, "key_tampered");
    assert_error(&s.http("GET", "/v1/secrets/apps/db", Some(&revoked), None), 401, "key_tampered");
    let (_, list) = s.http("GET", "/v1/keys", Some(&a), None);
    let states: Vec<_> =
        list["keys"].as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap().to_string()).collect();
    assert_eq!(states.iter().filter(|s| *s == "tampered").count(), 2);
}
