//! Init, unseal and seal with Shamir shares, and every bad-share case.

use crate::harness::*;
use keyward_core::keyring::RootKey;
use keyward_core::shamir;
use serde_json::{Value, json};

fn shares_of(init: &Value) -> Vec<String> {
    init["shares"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn unseal(s: &Server, share: &str) -> (u16, Value) {
    s.http("POST", "/v1/sys/unseal", None, Some(&json!({ "share": share })))
}

fn health(s: &Server) -> Value {
    s.http("GET", "/v1/sys/health", None, None).1
}

#[test]
fn shamir_init_starts_sealed_and_unseals_with_threshold_shares() {
    let dir = tempfile::tempdir().unwrap();
    let init = operator_init(dir.path(), &["--shares", "5", "--threshold", "3"]);
    let shares = shares_of(&init);
    assert_eq!(shares.len(), 5);
    let admin = init["admin_key"].as_str().unwrap().to_string();
    let s = start(dir.path(), &[]);
    assert!(s.admin.is_none(), "a Shamir server prints no new key");
    assert_eq!(health(&s)["sealed"], true);
    assert_eq!(health(&s)["threshold"], 3);

    // Sealed: every secret and key route answers 503 sealed.
    assert_error(&s.http("GET", "/v1/secrets/a", Some(&admin), None), 503, "sealed");
    assert_error(&put(&s, &admin, "a", json!({"k": "v"})), 503, "sealed");
    assert_error(&s.http("GET", "/v1/keys", Some(&admin), None), 503, "sealed");

    // Too few shares: progress, still sealed.
    let o = s.cli(None, &["operator", "unseal"], Some(&format!("{}\n{}\n", shares[0], shares[3])));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not enough shares"), "{}", stderr(&o));
    assert_eq!(health(&s)["sealed"], true);
    assert_eq!(health(&s)["progress"], 2);

    // The third share through the CLI unseals.
    let o = s.cli(None, &["operator", "unseal"], Some(&format!("{}\n", shares[4])));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(health(&s)["sealed"], false);
    assert_eq!(put(&s, &admin, "apps/x", json!({"k": "v1"})).0, 200);

    // Seal wipes the keys: the admin key is no longer recognised, routes answer 503.
    let o = s.cli(Some(&admin), &["operator", "seal"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(health(&s)["sealed"], true);
    assert_error(&s.http("GET", "/v1/secrets/apps/x", Some(&admin), None), 503, "sealed");

    // Any other three shares unseal again and the data reads back.
    for sh in [&shares[1], &shares[2], &shares[0]] {
        assert_eq!(unseal(&s, sh).0, 200);
    }
    let (st, v) = s.http("GET", "/v1/secrets/apps/x", Some(&admin), None);
    assert_eq!((st, &v["data"]["k"]), (200, &json!("v1")));
}

#[test]
fn bad_shares_are_named_and_never_yield_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let init = operator_init(dir.path(), &["--shares", "3", "--threshold", "2"]);
    let shares = shares_of(&init);
    let admin = init["admin_key"].as_str().unwrap().to_string();
    let other = tempfile::tempdir().unwrap();
    let foreign = shares_of(&operator_init(other.path(), &["--shares", "3", "--threshold", "2"]));
    let s = start(dir.path(), &[]);

    // Malformed: garbage, truncated, a flipped digit.
    assert_error(&unseal(&s, "not-a-share"), 400, "share_malformed");
    assert_error(&unseal(&s, &shares[0][..shares[0].len() - 2]), 400, "share_malformed");
    let mut typo: Vec<char> = shares[0].chars().collect();
    let i = typo.len() - 12;
    typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
    assert_error(&unseal(&s, &typo.into_iter().collect::<String>()), 400, "share_malformed");
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({}))), 400, "invalid_request");
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"share": 5}))), 400, "invalid_json");

    // A share of another initialisation.
    assert_error(&unseal(&s, &foreign[0]), 400, "share_wrong_set");

    // Duplicate.
    assert_eq!(unseal(&s, &shares[0]).0, 200);
    assert_error(&unseal(&s, &shares[0]), 400, "share_duplicate");
    assert_eq!(health(&s)["progress"], 1);

    // A well-formed share of this set with a wrong value: combination is
    // checked against the stored check value, refused, progress reset.
    let set_id = shares[0].split('-').nth(1).unwrap();
    let forged = shamir::split(&RootKey::generate().unwrap(), 3, 2, set_id).unwrap();
    let forged1 = forged.iter().find(|f| f.index() == 2).unwrap().encode().to_string();
    assert_error(&unseal(&s, &forged1), 400, "share_mismatch");
    assert_eq!(health(&s)["sealed"], true);
    assert_eq!(health(&s)["progress"], 0);

    // A key file is no way into a Shamir server.
    let key_text = RootKey::generate().unwrap().to_unseal_file().to_string();
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"key": key_text}))), 400, "invalid_request");

    // Reset works; then the right shares unseal and the admin key works.
    assert_eq!(unseal(&s, &shares[2]).0, 200);
    let o = s.cli(None, &["operator", "unseal", "--reset"], None);
    assert!(o.status.success());
    assert_eq!(health(&s)["progress"], 0);
    assert_eq!(unseal(&s, &shares[1]).0, 200);
    let (st, v) = unseal(&s, &shares[2]);
    assert_eq!((st, &v["sealed"]), (200, &json!(false)));
    assert_eq!(s.http("GET", "/v1/keys", Some(&admin), None).0, 200);
}

#[test]
fn init_refuses_bad_parameters_and_a_second_init() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("keyward-data");
    let d = data.to_str().unwrap();
    for args in [
        vec!["operator", "init", "--data", d, "--shares", "5", "--threshold", "1"],
        vec!["operator", "init", "--data", d, "--shares", "2", "--threshold", "3"],
    ] {
        let o = cli("http://127.0.0.1:1", None, &args, None);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("threshold"), "{}", stderr(&o));
    }
    operator_init(dir.path(), &["--shares", "2", "--threshold", "2"]);
    let o =
        cli("http://127.0.0.1:1", None, &["operator", "init", "--data", d, "--shares", "2", "--threshold", "2"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already initialised"), "{}", stderr(&o));
}

#[test]
fn key_file_server_sealed_then_unsealed_with_its_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    let key_file = dir.path().join("keyward-data.unseal.key");
    assert_eq!(s.http("POST", "/v1/sys/seal", Some(&admin), None).0, 200);
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&admin), None), 503, "sealed");
    // A wrong key file is refused.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, RootKey::generate().unwrap().to_unseal_file().as_bytes()).unwrap();
    let o = s.cli(None, &["operator", "unseal", "--key-file", wrong.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unseal_key_mismatch"), "{}", stderr(&o));
    let o = s.cli(None, &["operator", "unseal", "--key-file", key_file.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.http("GET", "/v1/keys", Some(&admin), None).0, 200);
}

#[test]
fn seal_needs_sys_admin() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:*"]}));
    assert_error(&s.http("POST", "/v1/sys/seal", Some(&reader), None), 403, "scope_missing");
    assert_eq!(health(&s)["sealed"], false);
}
