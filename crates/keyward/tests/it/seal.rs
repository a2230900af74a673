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
    if crate::pg::sqlite_only() {
        return;
    }
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

#[test]
fn rekey_makes_new_shares_without_downtime_and_the_old_ones_stop_working() {
    let dir = tempfile::tempdir().unwrap();
    let init = operator_init(dir.path(), &["--shares", "3", "--threshold", "2"]);
    let old = shares_of(&init);
    let admin = init["admin_key"].as_str().unwrap().to_string();
    let s = start(dir.path(), &[]);
    for sh in &old[..2] {
        assert_eq!(unseal(&s, sh).0, 200);
    }
    assert_eq!(put(&s, &admin, "apps/a", json!({"k": "v"})).0, 200);
    let body = json!({"name": "r", "scopes": ["secret:read:apps/*"]});
    let reader = s.http("POST", "/v1/keys", Some(&admin), Some(&body)).1["key"].as_str().unwrap().to_string();

    // Refusals: no sys:admin, bad parameters, a wrong nonce, a share of another set.
    let start_rekey = |token: &str, body: Value| s.http("POST", "/v1/sys/rekey", Some(token), Some(&body));
    assert_error(&start_rekey(&reader, json!({"shares": 5, "threshold": 3})), 403, "scope_missing");
    assert_error(&start_rekey(&admin, json!({"shares": 2, "threshold": 3})), 400, "share_malformed");
    assert_error(&start_rekey(&admin, json!({"shares": 3, "threshold": 1})), 400, "share_malformed");
    let (st, started) = start_rekey(&admin, json!({"shares": 5, "threshold": 3}));
    assert_eq!((st, started["old_threshold"].clone()), (200, json!(2)), "{started}");
    let update = |nonce: &str, share: &str| {
        s.http("POST", "/v1/sys/rekey/update", Some(&admin), Some(&json!({"nonce": nonce, "share": share})))
    };
    assert_error(&update("00000000", &old[0]), 409, "invalid_state");
    let foreign = operator_init(tempfile::tempdir().unwrap().path(), &["--shares", "2", "--threshold", "2"]);
    assert_error(&update(started["nonce"].as_str().unwrap(), &shares_of(&foreign)[0]), 400, "share_wrong_set");
    assert_eq!(s.http("DELETE", "/v1/sys/rekey", Some(&admin), None).1["cancelled"], true);

    // Through the CLI, old shares on stdin; the server serves all along.
    let o = s.cli(
        Some(&admin),
        &["operator", "rekey", "--shares", "5", "--threshold", "3", "--json"],
        Some(&format!("{}\n{}\n", old[1], old[2])),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let new: Vec<String> = out["shares"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    assert_eq!((new.len(), out["threshold"].clone()), (5, json!(3)), "{out}");
    assert_eq!(health(&s)["sealed"], false);
    assert_eq!(s.http("GET", "/v1/secrets/apps/a", Some(&reader), None).0, 200);
    // Too few old shares: refused, nothing changed.
    let o = s.cli(
        Some(&admin),
        &["operator", "rekey", "--shares", "3", "--threshold", "2"],
        Some(&format!("{}\n", new[0])),
    );
    assert!(!o.status.success() && stderr(&o).contains("not enough old shares"), "{}", stderr(&o));

    // No share is on the audit log.
    let audit = stdout(&s.cli(Some(&admin), &["audit", "export"], None));
    assert!(audit.contains("rekeyed"), "the rekey is on record");
    for sh in old.iter().chain(&new) {
        assert!(!audit.contains(sh.as_str()), "a share on the audit log");
    }
    // Sealed and restarted: the old shares are refused, three new ones unseal.
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    s.stop();
    let s = start(dir.path(), &[]);
    assert_error(&unseal(&s, &old[0]), 400, "share_wrong_set");
    assert_eq!(health(&s)["threshold"], 3);
    for sh in &new[1..4] {
        assert_eq!(unseal(&s, sh).0, 200);
    }
    assert_eq!(health(&s)["sealed"], false);
    assert_eq!(s.http("GET", "/v1/secrets/apps/a", Some(&reader), None).1["data"]["k"], "v");
}

#[test]
fn a_key_file_server_has_no_shares_to_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let got = s.http("POST", "/v1/sys/rekey", Some(s.admin()), Some(&json!({"shares": 3, "threshold": 2})));
    assert_error(&got, 400, "invalid_request");
}

/// An age identity: its public key and the file that opens what was sealed to it.
fn custodian(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = dir.join(format!("{name}.age-identity"));
    std::fs::write(&file, format!("# {name}\n{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), file)
}

#[test]
fn shares_sealed_to_custodians_are_never_shown_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let people: Vec<_> = ["ann", "bo", "cy"].iter().map(|n| custodian(keys.path(), n)).collect();
    let recipients = people.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>().join(",");
    let init = operator_init(dir.path(), &["--shares", "3", "--threshold", "2", "--share-recipients", &recipients]);
    let sealed = shares_of(&init);
    // A share in the clear is `kws1-…`; armored age text is base64, which
    // may hold `kws1` by chance but never a `-`.
    assert!(sealed.iter().all(|s| s.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") && !s.contains("kws1-")));
    let admin = init["admin_key"].as_str().unwrap().to_string();
    let s = start(dir.path(), &[]);
    let unseal_as = |who: usize, share: &str| {
        let id = people[who].1.to_str().unwrap().to_string();
        s.cli(None, &["operator", "unseal", "--identity", &id], Some(share))
    };
    // Bo cannot open Ann's share; each opens their own.
    assert!(!unseal_as(1, &sealed[0]).status.success());
    assert_eq!(health(&s)["progress"], 0);
    assert!(!unseal_as(0, &sealed[0]).status.success(), "one share is not enough");
    let o = unseal_as(1, &sealed[1]);
    assert!(o.status.success() && stdout(&o).contains("unsealed"), "{}", stderr(&o));

    // Rekey to three new custodians; the new shares are answered only sealed.
    let next: Vec<_> = ["dee", "eve", "fay"].iter().map(|n| custodian(keys.path(), n)).collect();
    let to = next.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>().join(",");
    let both = keys.path().join("ann-and-cy.age-identity");
    let ids = [&people[0].1, &people[2].1].map(|f| std::fs::read_to_string(f).unwrap()).concat();
    std::fs::write(&both, ids).unwrap();
    let args = ["operator", "rekey", "--shares", "3", "--threshold", "2", "--share-recipients", &to, "--identity"];
    let mut args = args.to_vec();
    args.extend([both.to_str().unwrap(), "--json"]);
    let o = s.cli(Some(&admin), &args, Some(&format!("{}\n{}\n", sealed[0], sealed[2])));
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(out["encrypted"], true);
    let fresh = shares_of(&out);
    assert!(fresh.iter().all(|s| s.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") && !s.contains("kws1-")));
    let bad = s.http(
        "POST",
        "/v1/sys/rekey",
        Some(&admin),
        Some(&json!({"shares": 3, "threshold": 2, "share_recipients": [next[0].0.clone()]})),
    );
    assert_error(&bad, 400, "share_malformed");

    // After a seal, the old custodians are refused and two new ones unseal.
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    assert!(!unseal_as(0, &sealed[0]).status.success());
    for (i, share) in fresh.iter().enumerate().take(2) {
        let id = next[i].1.to_str().unwrap().to_string();
        let o = s.cli(None, &["operator", "unseal", "--identity", &id], Some(share));
        assert_eq!(o.status.success(), i == 1, "{}", stderr(&o));
    }
    assert_eq!(health(&s)["sealed"], false);
}
