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

/// Secret versions per term, from the status API.
fn counts(s: &Server, admin: &str) -> std::collections::BTreeMap<u64, u64> {
    let (st, v) = s.http("GET", "/v1/sys/status", Some(admin), None);
    assert_eq!(st, 200, "{v}");
    v["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["term"].as_u64().unwrap(), t["secret_versions"].as_u64().unwrap()))
        .collect()
}

#[test]
fn rewrap_killed_midway_resumes_and_then_retires_the_old_term() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    const N: usize = 120;
    for i in 0..N {
        assert_eq!(put(&s, &admin, &format!("apps/s{i}"), json!({"v": format!("value-{i}")})).0, 200);
    }
    // A second version, a soft-deleted one and a pending one: all are rewrapped.
    assert_eq!(put(&s, &admin, "apps/s0", json!({"v": "value-0b"})).0, 200);
    assert_eq!(s.http("DELETE", "/v1/secrets/apps/s1", Some(&admin), None).0, 200);
    let staged = json!({"data": {"v": "value-2-next"}});
    assert_eq!(s.http("POST", "/v1/secrets/apps/s2?action=rotate", Some(&admin), Some(&staged)).0, 200);
    let total = (N + 2) as u64;
    let (_, bot) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/*"]}));
    assert_eq!(s.cli(Some(&admin), &["operator", "rotate"], None).status.code(), Some(0));
    assert_eq!(counts(&s, &admin), [(1, total), (2, 0)].into());

    // Term 1 cannot retire while it encrypts anything; the active term never.
    let retire = |s: &Server, t: u64| {
        s.http("POST", "/v1/sys/rewrap", Some(&admin), Some(&json!({"batch": 0, "retire_term": t})))
    };
    assert_error(&retire(&s, 1), 409, "invalid_state");
    assert_error(&retire(&s, 2), 409, "invalid_state");
    assert_error(&retire(&s, 9), 400, "invalid_request");

    // The rewrap runs one version per request; the server is killed (SIGKILL) midway.
    let mut rewrap = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["operator", "rewrap", "--batch", "1"])
        .env("KEYWARD_ADDR", &s.addr)
        .env("KEYWARD_TOKEN", &admin)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while counts(&s, &admin)[&2] < 10 {
        assert!(std::time::Instant::now() < deadline, "the rewrap made no progress");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    s.kill();
    assert!(!rewrap.wait().unwrap().success(), "the rewrap lost its server");

    let s = start(dir.path(), &[]);
    let mid = counts(&s, &admin);
    assert!(mid[&1] > 0 && mid[&2] >= 10 && mid[&1] + mid[&2] == total, "stopped midway, nothing lost: {mid:?}");
    // Run again: it resumes, then retires term 1.
    let o = s.cli(Some(&admin), &["operator", "rewrap", "--retire-term", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("term 1 is retired"), "{}", stdout(&o));
    assert_eq!(counts(&s, &admin), [(1, 0), (2, total)].into());
    let o = s.cli(Some(&admin), &["operator", "status", "--json"], None);
    let st: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["terms"][0]["retired"], true, "{st}");

    // Everything decrypts, keys still verify, the audit chain still verifies; also after a restart.
    let s = {
        s.stop();
        start(dir.path(), &[])
    };
    for i in 3..N {
        assert_eq!(value(&s, &bot, &format!("apps/s{i}")), format!("value-{i}"));
    }
    assert_eq!(value(&s, &bot, "apps/s0"), "value-0b");
    assert_eq!(value(&s, &admin, "apps/s0?version=1"), "value-0");
    assert_eq!(value(&s, &admin, "apps/s2?version=2"), "value-2-next");
    assert_eq!(s.http("POST", "/v1/secrets/apps/s1?action=undelete", Some(&admin), Some(&json!({}))).0, 200);
    assert_eq!(value(&s, &bot, "apps/s1"), "value-1");
    let o = s.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success() && stdout(&o).contains("intact"), "{}", stdout(&o));
}
