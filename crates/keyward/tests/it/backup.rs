//! `keyward operator backup` and `operator restore` through the real
//! binary: a backup taken under concurrent writes restores to a consistent
//! state, the keys ended since are listed before anything changes, and a
//! tampered, a truncated, a foreign and a non-backup file are each refused
//! with their own code, leaving the data as it was.

use crate::harness::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn read(s: &Server, token: &str, path: &str) -> (u16, Value) {
    s.http("GET", &format!("/v1/secrets/{path}"), Some(token), None)
}

fn backup(s: &Server, file: &Path) {
    let o = s.cli(Some(s.admin()), &["operator", "backup", file.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("backup written to"), "{}", stdout(&o));
}

fn restore_refused(s: &Server, file: &Path, code: &str) {
    let o = s.cli(Some(s.admin()), &["operator", "restore", file.to_str().unwrap(), "--yes"], None);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains(code), "want {code}: {}", stderr(&o));
}

#[test]
fn a_backup_under_concurrent_writes_restores_and_lists_the_keys_it_brings_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(start(dir.path(), &[]));
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-1"})).0, 200);
    let (revoked_id, revoked) = create_key(&s, json!({"name": "to-revoke", "scopes": ["secret:read:apps/*"]}));
    let (compromised_id, _) = create_key(&s, json!({"name": "to-mark", "scopes": ["secret:read:apps/*"]}));

    // A writer goes on while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (s, admin, stop, written) = (s.clone(), admin.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let (st, v) = put(&s, &admin, &format!("load/{}", i % 50), json!({"n": i.to_string()}));
                assert_eq!(st, 200, "{v}");
                i += 1;
                written.store(i, Ordering::SeqCst);
            }
        })
    };
    while written.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let file = dir.path().join("one.kwbackup");
    backup(&s, &file);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(written.load(Ordering::SeqCst) > 20);

    // The file: private, a readable header, no secret value in it.
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let head = String::from_utf8_lossy(&bytes[..200]).to_string();
    assert!(head.starts_with("keyward-backup v1\ncreated: ") && head.contains("\nterm: 1\n"), "{head}");
    assert!(!bytes.windows(3).any(|w| w == b"a-1"), "a secret value is in the backup in the clear");
    // Never over an existing file.
    let o = s.cli(Some(&admin), &["operator", "backup", file.to_str().unwrap()], None);
    assert!(!o.status.success() && stderr(&o).contains("refusing to overwrite"), "{}", stderr(&o));
    // Only sys:admin.
    assert_error(&s.http("POST", "/v1/sys/backup", Some(&revoked), None), 403, "scope_missing");

    // After the backup: a key revoked, one marked compromised, secrets changed.
    assert_eq!(s.cli(Some(&admin), &["key", "revoke", &revoked_id], None).status.code(), Some(0));
    let o = s.cli(Some(&admin), &["key", "compromised", &compromised_id, "--hours", "24"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-2"})).0, 200);
    assert_eq!(put(&s, &admin, "apps/after", json!({"v": "later"})).0, 200);

    // Without --yes and without a terminal: shown, refused, nothing changed.
    let o = s.cli(Some(&admin), &["operator", "restore", file.to_str().unwrap()], Some(""));
    assert!(!o.status.success() && stderr(&o).contains("without confirmation"), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(shown.contains(&revoked_id) && shown.contains(&compromised_id), "{shown}");
    assert_eq!(read(&s, &admin, "apps/after").0, 200);

    let o = s.cli(Some(&admin), &["operator", "restore", file.to_str().unwrap(), "--yes", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let done: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(done["restored"], true);
    let mut revived: Vec<(String, String)> = done["revived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_string(), k["state_now"].as_str().unwrap().to_string()))
        .collect();
    revived.sort();
    let mut want =
        vec![(revoked_id.clone(), "revoked".to_string()), (compromised_id.clone(), "compromised".to_string())];
    want.sort();
    assert_eq!(revived, want);

    // The backup's state: the old value, no later secret, the revoked key back.
    assert_eq!(read(&s, &admin, "apps/a").1["data"]["v"], "a-1");
    assert_error(&read(&s, &admin, "apps/after"), 404, "not_found");
    assert_eq!(read(&s, &revoked, "apps/a").0, 200);
    // Every secret the snapshot holds reads: the copy was consistent.
    let (st, list) = s.http("GET", "/v1/secrets?prefix=load/", Some(&admin), None);
    assert_eq!(st, 200, "{list}");
    for p in list["secrets"].as_array().unwrap_or_else(|| panic!("{list}")) {
        let p = p["path"].as_str().unwrap_or_else(|| p.as_str().unwrap());
        assert_eq!(read(&s, &admin, p).0, 200, "{p}");
    }
    // The chain goes on through the restore, which is on it.
    let o = s.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success() && stdout(&o).contains("intact"), "{}", stdout(&o));
    let audit = stdout(&s.cli(Some(&admin), &["audit", "export"], None));
    assert!(audit.contains("\\\"change\\\":\\\"restore\\\"") || audit.contains("\"change\":\"restore\""), "{audit}");

    // And after a restart the restored state is what loads.
    let s = Arc::into_inner(s).unwrap();
    s.stop();
    let s = start(dir.path(), &[]);
    assert_eq!(read(&s, &admin, "apps/a").1["data"]["v"], "a-1");
    assert_eq!(read(&s, &revoked, "apps/a").0, 200);
}

#[test]
fn tampered_truncated_foreign_and_other_files_are_each_refused_with_their_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-1"})).0, 200);
    let file = dir.path().join("good.kwbackup");
    backup(&s, &file);
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-2"})).0, 200);
    let bytes = std::fs::read(&file).unwrap();

    let tampered = dir.path().join("tampered.kwbackup");
    let mut t = bytes.clone();
    let mid = t.len() / 2;
    t[mid] ^= 0x01;
    std::fs::write(&tampered, &t).unwrap();
    restore_refused(&s, &tampered, "backup_tampered");

    let header = dir.path().join("header.kwbackup");
    let h = String::from_utf8_lossy(&bytes[..200]).replace("term: 1", "term: 7");
    let mut t = bytes.clone();
    t[..200].copy_from_slice(&h.as_bytes()[..200]);
    std::fs::write(&header, &t).unwrap();
    restore_refused(&s, &header, "backup_tampered");

    let truncated = dir.path().join("truncated.kwbackup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    restore_refused(&s, &truncated, "backup_truncated");

    let other = dir.path().join("other.kwbackup");
    std::fs::write(&other, b"SQLite format 3\0not a backup at all").unwrap();
    restore_refused(&s, &other, "backup_malformed");

    let elsewhere = tempfile::tempdir().unwrap();
    let s2 = start(elsewhere.path(), &[]);
    let foreign = dir.path().join("foreign.kwbackup");
    backup(&s2, &foreign);
    restore_refused(&s, &foreign, "backup_foreign");

    // Nothing changed by any of them; the good one still restores.
    assert_eq!(read(&s, &admin, "apps/a").1["data"]["v"], "a-2");
    let o = s.cli(Some(&admin), &["operator", "restore", file.to_str().unwrap(), "--yes"], None);
    assert!(o.status.success(), "{}\n{}", stderr(&o), s.log_text());
    assert!(stdout(&o).contains("no access key revoked"), "{}", stdout(&o));
    assert_eq!(read(&s, &admin, "apps/a").1["data"]["v"], "a-1");

    // Sealed, neither a backup nor a restore: no key to seal or open one with.
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    assert_error(&s.http("POST", "/v1/sys/backup", Some(&admin), None), 503, "sealed");
    restore_refused(&s, &file, "sealed");
}

#[test]
fn with_the_audit_log_down_nothing_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-1"})).0, 200);
    let file = dir.path().join("b.kwbackup");
    backup(&s, &file);
    assert_eq!(put(&s, &admin, "apps/a", json!({"v": "a-2"})).0, 200);
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&admin), Some(&json!({"audit_fail": true}))).0, 200);
    let o = s.cli(Some(&admin), &["operator", "restore", file.to_str().unwrap(), "--yes"], None);
    assert!(!o.status.success() && stderr(&o).contains("audit_unavailable"), "{}", stderr(&o));
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&admin), Some(&json!({"audit_fail": false}))).0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while read(&s, &admin, "apps/a").0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read(&s, &admin, "apps/a").1["data"]["v"], "a-2", "restored without an audit entry");
}
