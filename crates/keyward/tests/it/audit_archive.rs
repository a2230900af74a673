//! A year of audit: `keyward audit archive` moves old entries into a file
//! that verifies on its own and prunes them; `keyward audit verify
//! --archive` checks archives and the database as one chain; nothing is
//! pruned that no signed checkpoint covers; an altered archive is named;
//! `--audit-retain` does it on a schedule.

use crate::harness::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;

const T0: i64 = 1_900_000_000_000;

/// `n` secret reads at `at` (ms), each an entry; then, one checkpoint
/// period later, one more read, whose batch carries a signed checkpoint.
fn traffic(s: &Server, reader: &str, at: i64, n: usize) {
    s.set_clock(at);
    for _ in 0..n {
        assert_eq!(s.http("GET", "/v1/secrets/apps/x", Some(reader), None).0, 200);
    }
    s.set_clock(at + 11_000);
    assert_eq!(s.http("GET", "/v1/secrets/apps/x", Some(reader), None).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn server(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--test-clock"];
    args.extend_from_slice(extra);
    let s = start(dir, &args);
    s.set_clock(T0);
    let a = s.admin().to_string();
    put(&s, &a, "apps/x", json!({"k": "v"}));
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    (s, reader)
}

fn verify(s: &Server, archives: &[&Path]) -> std::process::Output {
    let mut args = vec!["audit", "verify"];
    for a in archives {
        args.extend(["--archive", a.to_str().unwrap()]);
    }
    s.cli(Some(s.admin()), &args, None)
}

/// Rewrites an archive's text and compresses it again.
fn alter(from: &Path, to: &Path, f: impl Fn(&str) -> String) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap()).read_to_string(&mut text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(to).unwrap(), flate2::Compression::default());
    gz.write_all(f(&text).as_bytes()).unwrap();
    gz.finish().unwrap();
}

#[test]
fn archives_and_the_database_verify_as_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (s, reader) = server(dir.path(), &[]);
    let a = s.admin().to_string();
    traffic(&s, &reader, T0 + 1_000, 30);
    s.set_clock(T0 + 30_000);
    for _ in 0..5 {
        s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
    }
    let first = dir.path().join("first.jsonl.gz");
    let o = s.cli(Some(&a), &["audit", "archive", "--before", "10s", "--to", first.to_str().unwrap()], None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("archived entries 1.."), "{}", stdout(&o));
    assert!(stdout(&o).contains("removed"), "{}", stdout(&o));
    let (_, v) = s.http("POST", "/v1/audit/verify", Some(&a), None);
    assert_eq!(v["ok"], true, "{v}");
    let base = v["base"]["seq"].as_u64().unwrap();
    assert_eq!(v["from_seq"], base + 1, "{v}");
    let (_, listed) = s.http("GET", "/v1/audit?after=0&limit=5", Some(&a), None);
    assert_eq!(listed["entries"][0]["seq"], base + 1, "the database starts after the archive");
    let o = verify(&s, &[&first]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("in 1 archive"), "{}", stdout(&o));

    // A second archive; both verify with the database as one chain, in any order.
    traffic(&s, &reader, T0 + 40_000, 20);
    s.set_clock(T0 + 90_000);
    let second = dir.path().join("second.jsonl.gz");
    let o = s.cli(Some(&a), &["audit", "archive", "--before", "30s", "--to", second.to_str().unwrap()], None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = verify(&s, &[&second, &first]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("in 2 archive"), "{}", stdout(&o));
    // The first one alone leaves a gap before the database.
    let o = verify(&s, &[&first]);
    assert!(!o.status.success() && stderr(&o).contains("missing"), "{}{}", stdout(&o), stderr(&o));

    // An altered archive is named, entry and all.
    let edited = dir.path().join("edited.jsonl.gz");
    alter(&first, &edited, |t| t.replacen("\"target\":\"apps/x\"", "\"target\":\"apps/y\"", 1));
    let o = verify(&s, &[&edited, &second]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("edited.jsonl.gz: entry") && stderr(&o).contains("edited"), "{}", stderr(&o));
    let cut = dir.path().join("cut.jsonl.gz");
    alter(&second, &cut, |t| t.lines().take(t.lines().count() - 3).collect::<Vec<_>>().join("\n"));
    let o = verify(&s, &[&first, &cut]);
    assert!(!o.status.success() && stderr(&o).contains("cut"), "{}", stderr(&o));

    // The prunes are on the log: the first one now in the second archive.
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&second).unwrap()).read_to_string(&mut text).unwrap();
    assert!(text.contains("audit_prune"), "the first prune is archived with what followed it");
    let (_, listed) = s.http("GET", "/v1/audit?limit=1000", Some(&a), None);
    let prunes: Vec<&Value> =
        listed["entries"].as_array().unwrap().iter().filter(|e| e["detail"]["change"] == "audit_prune").collect();
    assert_eq!(prunes.len(), 1, "{listed}");
    assert!(prunes[0]["detail"]["archive_sha256"].as_str().is_some_and(|h| h.len() == 64));
}

#[test]
fn nothing_is_pruned_past_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (s, reader) = server(dir.path(), &[]);
    let a = s.admin().to_string();
    traffic(&s, &reader, T0 + 1_000, 10);
    let (_, v) = s.http("POST", "/v1/audit/verify", Some(&a), None);
    let checkpoint = v["last_checkpoint"]["seq"].as_u64().unwrap();
    s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let head = checkpoint + 1;
    // An entry without a signed checkpoint, or one past the log.
    for through in [head, checkpoint - 1, head + 1000] {
        let got = s.http("POST", "/v1/audit/prune", Some(&a), Some(&json!({ "through": through })));
        assert_error(&got, 409, "invalid_state");
    }
    // Nothing that old.
    let f = dir.path().join("old.jsonl.gz");
    let o = s.cli(Some(&a), &["audit", "archive", "--before", "1000d", "--to", f.to_str().unwrap()], None);
    assert!(!o.status.success() && stderr(&o).contains("nothing to archive"), "{}", stderr(&o));
    assert!(!f.exists());
    // Pruning needs sys:admin.
    let (_, auditor) = create_key(&s, json!({"name": "aud", "scopes": ["audit:read"]}));
    let got = s.http("POST", "/v1/audit/prune", Some(&auditor), Some(&json!({ "through": checkpoint })));
    assert_error(&got, 403, "scope_missing");
    // --keep archives without pruning; an archive is never overwritten.
    s.set_clock(T0 + 60_000);
    let o = s.cli(Some(&a), &["audit", "archive", "--before", "10s", "--to", f.to_str().unwrap(), "--keep"], None);
    assert!(o.status.success() && stdout(&o).contains("kept"), "{}{}", stdout(&o), stderr(&o));
    let (_, v) = s.http("POST", "/v1/audit/verify", Some(&a), None);
    assert_eq!((v["ok"].clone(), v["base"].clone()), (json!(true), Value::Null), "{v}");
    let o = s.cli(Some(&a), &["audit", "archive", "--before", "10s", "--to", f.to_str().unwrap()], None);
    assert!(!o.status.success() && stderr(&o).contains("exists"), "{}", stderr(&o));
}

#[test]
fn the_retention_schedule_archives_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("archives");
    let (s, reader) = server(
        dir.path(),
        &["--audit-retain", "20s", "--audit-archive-dir", archives.to_str().unwrap(), "--audit-archive-every", "1s"],
    );
    traffic(&s, &reader, T0 + 1_000, 15);
    s.set_clock(T0 + 60_000);
    s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
    let mut files = Vec::new();
    for _ in 0..100 {
        files = std::fs::read_dir(&archives).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        if files.iter().any(|f: &std::path::PathBuf| f.extension().is_some_and(|e| e == "gz")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let file = files.iter().find(|f| f.extension().is_some_and(|e| e == "gz")).expect("an archive").clone();
    assert!(file.file_name().unwrap().to_str().unwrap().starts_with("keyward-audit-000000000001-"));
    let o = verify(&s, &[&file]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let (_, listed) = s.http("GET", "/v1/audit?limit=1000", Some(s.admin()), None);
    assert!(listed["entries"].as_array().unwrap().iter().any(|e| e["action"] == "audit.archive"), "{listed}");
}
