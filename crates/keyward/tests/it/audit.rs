//! The audit trail through the real server: an entry for every decision,
//! each tamper mode detected (edit, delete, reorder, forged insert, cut back
//! with an anchor), fail-closed when the log cannot be written, and the
//! proxy's decision and outcome entries with order fields and order ids.

use crate::harness::*;
use keyward_core::audit::AuditEntry;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

const T0: i64 = 1_900_000_000_000;

fn entries(s: &Server) -> Vec<Value> {
    let (st, v) = s.http("GET", "/v1/audit?limit=100000", Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

fn verify(s: &Server, anchor: Option<&Value>) -> Value {
    let body = anchor.map(|a| json!({ "anchor": a }));
    let (st, v) = s.http("POST", "/v1/audit/verify", Some(s.admin()), body.as_ref());
    assert_eq!(st, 200, "{v}");
    v
}

/// Entry `seq` as stored (its strings by id in `audit_strings`), with its
/// whole hash and the one before, recomputed from the start of the chain
/// (most entries keep only a tag of their hash).
fn row(db: &std::path::Path, seq: u64) -> AuditEntry {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let q = "SELECT e.seq, e.time_ms, e.request_id, e.detail,
                 (SELECT value FROM audit_strings WHERE id = e.key_id) AS key_id, (SELECT value FROM audit_strings WHERE id = e.ip) AS ip,
                 (SELECT value FROM audit_strings WHERE id = e.action) AS action, (SELECT value FROM audit_strings WHERE id = e.target) AS target,
                 (SELECT value FROM audit_strings WHERE id = e.class) AS class, (SELECT value FROM audit_strings WHERE id = e.decision) AS decision,
                 (SELECT value FROM audit_strings WHERE id = e.code) AS code
                 FROM audit_entries e WHERE e.seq <= ? ORDER BY e.seq";
        let mut prev = keyward_core::audit::genesis();
        let mut last = None;
        for r in sqlx::query(q).bind(seq as i64).fetch_all(&mut c).await.unwrap() {
            let mut e = AuditEntry {
                time_ms: r.get("time_ms"),
                request_id: r.get("request_id"),
                key_id: r.get("key_id"),
                ip: r.get("ip"),
                action: r.get("action"),
                target: r.get("target"),
                class: r.get("class"),
                decision: r.get("decision"),
                code: r.get("code"),
                detail: r.get("detail"),
                ..Default::default()
            };
            e.chain_after(r.get::<i64, _>("seq") as u64 - 1, &prev);
            prev = e.hash.clone();
            last = Some(e);
        }
        let e = last.unwrap();
        assert_eq!(e.seq, seq);
        e
    })
}

/// A server with a few dozen entries and a signed checkpoint.
fn busy(dir: &std::path::Path) -> Server {
    let s = start(dir, &["--test-clock"]);
    s.set_clock(T0);
    let a = s.admin().to_string();
    put(&s, &a, "apps/x", json!({"k": "secret-value-123"}));
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    for _ in 0..10 {
        s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
        s.http("GET", "/v1/secrets/other", Some(&reader), None);
    }
    s.set_clock(T0 + 11_000);
    s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
    std::thread::sleep(std::time::Duration::from_millis(300));
    s
}

#[test]
fn every_decision_is_on_record_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/x", json!({"k": "secret-value-123"}));
    let (kid, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    let r = s.http_from("127.0.0.7", "GET", "/v1/secrets/apps/x", Some(&reader), None, &[]);
    assert_eq!(r.status, 200);
    let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
    s.http_from("127.0.0.7", "GET", "/v1/secrets/db/pw", Some(&reader), None, &[]);
    s.http_from("127.0.0.8", "GET", "/v1/secrets/apps/x", Some("kw_garbage"), None, &[]);
    // No wait: a read of the log first waits for what was queued before it.
    let log = entries(&s);
    let allowed = log.iter().find(|e| e["request_id"] == rid.as_str()).expect("entry for the request");
    assert_eq!(
        (&allowed["decision"], &allowed["key_id"], &allowed["ip"]),
        (&json!("allow"), &json!(kid), &json!("127.0.0.7"))
    );
    assert_eq!((&allowed["action"], &allowed["target"]), (&json!("secrets.get"), &json!("apps/x")));
    let denied = log.iter().find(|e| e["target"] == "db/pw").unwrap();
    assert_eq!(
        (&denied["decision"], &denied["code"], &denied["key_id"]),
        (&json!("deny"), &json!("scope_missing"), &json!(kid))
    );
    let failed = log.iter().find(|e| e["ip"] == "127.0.0.8").unwrap();
    assert_eq!(
        (&failed["decision"], &failed["code"], &failed["key_id"]),
        (&json!("deny"), &json!("key_invalid"), &json!(""))
    );
    // Key creation is on record (sensitive: durable before the answer).
    assert!(log.iter().any(|e| e["action"] == "keys.post" && e["decision"] == "allow"));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("secret-value-123") && !text.contains(&reader) && !text.contains(&a));
    // The CLI.
    let o = s.cli(Some(&a), &["audit", "tail", "--decision", "deny", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).lines().all(|l| l.contains("\"deny\"")) && stdout(&o).contains("scope_missing"));
    let o = s.cli(Some(&a), &["audit", "export", "--format", "csv"], None);
    assert!(stdout(&o).starts_with("seq,time,request_id") && stdout(&o).contains(&rid));
    let o = s.cli(Some(&a), &["audit", "verify"], None);
    assert!(o.status.success() && stdout(&o).contains("intact"), "{}", stdout(&o));
    // audit:read is needed.
    assert_error(&s.http("GET", "/v1/audit", Some(&reader), None), 403, "scope_missing");
}

/// Routine entries are written a few milliseconds after their answer; a
/// reader of the log (a query, a key's history, a forensic report) sees
/// every request answered before it asked, without waiting.
#[test]
fn a_read_of_the_log_sees_every_request_answered_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/x", json!({"k": "v"}));
    let (kid, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    for i in 1..=20 {
        let r = s.http_from("127.0.0.7", "GET", "/v1/secrets/apps/x", Some(&reader), None, &[]);
        assert_eq!(r.status, 200);
        let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
        let (st, v) = s.http("GET", &format!("/v1/audit?key={kid}&limit=1000"), Some(&a), None);
        assert_eq!(st, 200, "{v}");
        let log = v["entries"].as_array().unwrap();
        assert!(log.iter().any(|e| e["request_id"] == rid.as_str()), "request {i} ({rid}) not in the log yet: {v}");
        assert_eq!(log.iter().filter(|e| e["action"] == "secrets.get").count(), i);
    }
}

#[test]
fn each_tamper_mode_names_the_first_broken_entry() {
    if crate::pg::sqlite_only() {
        return;
    }
    type Tamper = fn(&std::path::Path);
    let modes: [(&str, Tamper, u64); 4] = [
        (
            "edit",
            |db| {
                sql(
                    db,
                    &[
                        "INSERT OR IGNORE INTO audit_strings (value) VALUES ('innocent')",
                        "UPDATE audit_entries SET target = (SELECT id FROM audit_strings WHERE value = 'innocent') WHERE seq = 5",
                    ],
                )
            },
            5,
        ),
        ("delete", |db| sql(db, &["DELETE FROM audit_entries WHERE seq = 5"]), 5),
        (
            "reorder",
            |db| {
                sql(
                    db,
                    &[
                        "UPDATE audit_entries SET seq = -5 WHERE seq = 5",
                        "UPDATE audit_entries SET seq = 5 WHERE seq = 6",
                        "UPDATE audit_entries SET seq = 6 WHERE seq = -5",
                    ],
                )
            },
            5,
        ),
        (
            "forged insert",
            |db| {
                let before = row(db, 4);
                let mut forged =
                    AuditEntry { action: "secrets.get".into(), target: "nothing/to/see".into(), ..before.clone() };
                forged.chain_after(4, &before.hash);
                let id = |v: &str| format!("(SELECT id FROM audit_strings WHERE value = '{v}')");
                let mut statements: Vec<String> = [
                    &forged.key_id,
                    &forged.ip,
                    &forged.action,
                    &forged.target,
                    &forged.class,
                    &forged.decision,
                    &forged.code,
                ]
                .iter()
                .map(|v| format!("INSERT OR IGNORE INTO audit_strings (value) VALUES ('{v}')"))
                .collect();
                statements.extend([
                    "UPDATE audit_entries SET seq = seq + 1000000 WHERE seq >= 5".into(),
                    "UPDATE audit_entries SET seq = seq - 999999 WHERE seq >= 1000000".into(),
                    format!(
                        "INSERT INTO audit_entries (seq, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, hash)
                         VALUES (5, {}, '{}', {}, {}, {}, {}, {}, {}, {}, '{}', X'{}')",
                        forged.time_ms, forged.request_id, id(&forged.key_id), id(&forged.ip), id(&forged.action),
                        id(&forged.target), id(&forged.class), id(&forged.decision), id(&forged.code), forged.detail,
                        keyward_core::keyring::hex_encode(&forged.hash)
                    ),
                ]);
                sql(db, &statements);
            },
            6,
        ),
    ];
    for (name, tamper, first) in modes {
        let dir = tempfile::tempdir().unwrap();
        let s = busy(dir.path());
        assert_eq!(verify(&s, None)["ok"], true, "{name}: intact before");
        tamper(&dir.path().join("keyward-data/keyward.db"));
        let v = verify(&s, None);
        assert_eq!(v["ok"], false, "{name}: {v}");
        assert_eq!(v["first_broken"]["seq"], first, "{name}: {v}");
        // A forged insert shifts the stored head under the writer: its next
        // write fails once, is re-chained onto what is stored, and succeeds.
        std::thread::sleep(std::time::Duration::from_millis(400));
        let o = s.cli(Some(s.admin()), &["audit", "verify"], None);
        assert!(
            !o.status.success() && stdout(&o).contains(&format!("entry {first}")),
            "{name}: {} {}",
            stdout(&o),
            stderr(&o)
        );
    }
}

/// Most entries keep only a tag of their hash (the whole hash is kept on
/// every 64th entry and the last of a batch): an edit to one is still
/// named, and so is an edit to one that keeps its whole hash.
#[test]
fn an_edit_is_named_whether_the_entry_keeps_a_tag_or_its_whole_hash() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/x", json!({"k": "secret-value-123"}));
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    // Concurrent reads: batches of several entries each.
    std::thread::scope(|t| {
        for _ in 0..8 {
            t.spawn(|| {
                for _ in 0..25 {
                    s.http("GET", "/v1/secrets/apps/x", Some(&reader), None);
                }
            });
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(verify(&s, None)["ok"], true, "intact");
    let db = dir.path().join("keyward-data/keyward.db");
    let seq_where = |cond: &str| -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
            sqlx::query_scalar(&format!("SELECT min(seq) FROM audit_entries WHERE seq > 10 AND {cond}"))
                .fetch_one(&mut c)
                .await
                .unwrap()
        })
    };
    let (tagged, whole) = (seq_where("length(hash) = 8"), seq_where("length(hash) = 32"));
    assert!(tagged > 0 && whole > 0, "{tagged} {whole}");
    // The later one first: each edit is then the first break.
    for seq in [tagged.max(whole), tagged.min(whole)] {
        sql(&db, &[format!("UPDATE audit_entries SET detail = '{{\"edited\":1}}' WHERE seq = {seq}")]);
        let v = verify(&s, None);
        assert_eq!(v["first_broken"]["seq"], seq, "{v}");
    }
    // The log reads on: entries after the edit carry recomputed hashes.
    let all = entries(&s);
    assert!(all.iter().all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64)));
}

#[test]
fn a_log_cut_back_is_caught_by_an_anchor() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = busy(dir.path());
    let admin = s.admin().to_string();
    let o = s.cli(Some(&admin), &["audit", "anchor"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let anchor: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let cut_from = anchor["seq"].as_u64().unwrap() - 3;
    s.stop();
    // Cut the tail (and every checkpoint that would tell) while keyward is down.
    let db = dir.path().join("keyward-data/keyward.db");
    sql(
        &db,
        &[
            format!("DELETE FROM audit_entries WHERE seq >= {cut_from}"),
            format!("DELETE FROM audit_checkpoints WHERE seq >= {cut_from}"),
        ],
    );
    s = start(dir.path(), &["--test-clock"]);
    s.admin = Some(admin.clone());
    assert_eq!(verify(&s, None)["ok"], true, "the cut log is consistent on its own");
    let file = dir.path().join("anchor.json");
    std::fs::write(&file, anchor.to_string()).unwrap();
    let o = s.cli(Some(&admin), &["audit", "verify", "--anchor", file.to_str().unwrap()], None);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("cut back"), "{}", stdout(&o));
    // A forged anchor is refused as such.
    let mut forged = anchor.clone();
    forged["seq"] = json!(1);
    let v = verify(&s, Some(&forged));
    assert!(v["problems"].to_string().contains("bad signature"), "{v}");
}

#[test]
fn keyward_fails_closed_when_the_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let a = s.admin().to_string();
    let written = s.http_from("127.0.0.1", "PUT", "/v1/secrets/x", Some(&a), Some(&json!({"data": {"k": "v"}})), &[]);
    assert_eq!(written.status, 200);
    let written_id = written.headers["x-request-id"].to_str().unwrap().to_string();
    // Once that write's entry is on record (and the entries of the reads
    // that looked for it: give the writer a moment), the audit store fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !entries(&s).iter().any(|e| e["request_id"] == written_id.as_str()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&a), Some(&json!({"audit_fail": true}))).0, 200);
    // Reads are answered while their entries wait in the writer's batch (a
    // routine entry only needs to be queued), until the first failed write
    // makes keyward refuse everything.
    let mut in_flight = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = s.http_from("127.0.0.1", "GET", "/v1/secrets/x", Some(&a), None, &[]);
        if r.status == 503 || std::time::Instant::now() > deadline {
            assert_error(&r.pair(), 503, "audit_unavailable");
            break;
        }
        assert_eq!(r.status, 200);
        in_flight.push(r.headers["x-request-id"].to_str().unwrap().to_string());
    }
    assert!(!in_flight.is_empty(), "a read was answered after the fault");
    // From then on every request is refused, and none of them is served.
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&a), None), 503, "audit_unavailable");
    assert_error(&put(&s, &a, "y", json!({"k": "v"})), 503, "audit_unavailable");
    assert_error(&s.http("GET", "/v1/keys", Some(&a), None), 503, "audit_unavailable");
    // Nothing was lost: once the store can be written again, the entries of
    // the requests answered while the writes failed are on record, after
    // everything before them, and requests proceed.
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&a), Some(&json!({"audit_fail": false}))).0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.http("GET", "/v1/secrets/x", Some(&a), None).0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A routine entry is answered once queued: the retried batch may still
    // be committing when the first request after recovery is answered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut log = entries(&s);
    while !in_flight.iter().all(|id| log.iter().any(|e| e["request_id"] == id.as_str()))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        log = entries(&s);
    }
    let put_x = log.iter().find(|e| e["request_id"] == written_id.as_str()).expect("the write before");
    for id in &in_flight {
        let kept = log.iter().find(|e| e["request_id"] == id.as_str()).expect("an in-flight entry was kept");
        let what = (&kept["decision"], &kept["action"], &kept["target"]);
        assert_eq!(what, (&json!("allow"), &json!("secrets.get"), &json!("x")));
        assert!(kept["seq"].as_u64() > put_x["seq"].as_u64(), "chained after what came before");
    }
    assert!(!log.iter().any(|e| e["action"] == "secrets.put" && e["target"] == "y"), "the refused write never ran");
    assert!(s.http("GET", "/v1/secrets/y", Some(&a), None).0 == 404, "and wrote nothing");
    assert_eq!(verify(&s, None)["ok"], true);
}

#[test]
fn group_commit_keeps_every_entry_of_a_load_of_50000_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--log", "warn"]);
    let a = s.admin().to_string();
    put(&s, &a, "x", json!({"k": "v"}));
    let (kid, reader) = create_key(&s, json!({"name": "load", "scopes": ["secret:read:x"]}));
    const THREADS: usize = 16;
    const EACH: usize = 50_000 / THREADS + 1;
    let total = THREADS * EACH;
    std::thread::scope(|sc| {
        for _ in 0..THREADS {
            let (s, reader) = (&s, &reader);
            sc.spawn(move || {
                let c = reqwest::blocking::Client::new();
                for _ in 0..EACH {
                    let r = c.get(format!("{}/v1/secrets/x", s.addr)).bearer_auth(reader).send().unwrap();
                    let status = r.status().as_u16();
                    assert_eq!(status, 200, "{}", r.text().unwrap_or_default());
                }
            });
        }
    });
    // Every decision entry, exactly once.
    let count = || {
        let (_, v) = s.http("GET", &format!("/v1/audit?key={kid}&limit=100000"), Some(&a), None);
        v["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "secrets.get").count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count() < total && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(count(), total);
    assert_eq!(verify(&s, None)["ok"], true);
}

#[test]
fn sigkill_never_loses_a_sensitive_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_key(&s, json!({"name": format!("k{i}"), "scopes": ["secret:read:x"]})).0);
    }
    // Routine traffic in flight, then SIGKILL right after the last sensitive answer.
    for _ in 0..50 {
        s.http("GET", "/v1/keys", Some(&a), None);
    }
    let last = create_key(&s, json!({"name": "last", "scopes": ["secret:read:x"]})).0;
    ids.push(last);
    let pid = s.pid();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    drop(s);
    let mut s = start(dir.path(), &[]);
    s.admin = Some(a.clone());
    let log = entries(&s);
    let created: Vec<&Value> = log.iter().filter(|e| e["action"] == "keys.post" && e["decision"] == "allow").collect();
    assert_eq!(created.len(), ids.len(), "every key creation answered before the kill is on record");
    assert_eq!(verify(&s, None)["ok"], true);
}

/// A local webhook receiver: collects the JSON bodies POSTed to it.
pub(crate) fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(v);
                }
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
            }
        }
    });
    (url, got)
}

#[test]
fn sinks_get_every_entry_and_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (hook, got) = receiver();
    let s = start(
        dir.path(),
        &[
            "--test-clock",
            "--audit-file",
            file.to_str().unwrap(),
            "--audit-file-max-bytes",
            "4000",
            "--audit-webhook",
            &hook,
        ],
    );
    s.set_clock(T0);
    let a = s.admin().to_string();
    for i in 0..20 {
        put(&s, &a, &format!("s{i}"), json!({"k": "secret-sink-value"}));
    }
    s.set_clock(T0 + 11_000);
    s.http("GET", "/v1/secrets/s1", Some(&a), None);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let mut lines = Vec::new();
    for f in [format!("{}.2", file.display()), format!("{}.1", file.display()), file.display().to_string()] {
        if let Ok(t) = std::fs::read_to_string(&f) {
            lines.extend(t.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
        }
    }
    assert!(std::path::Path::new(&format!("{}.1", file.display())).exists(), "rotated by size");
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["entry"]["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "every entry, in order");
    assert!(lines.iter().any(|l| l.get("checkpoint").is_some()));
    assert!(!lines.iter().any(|l| l.to_string().contains("secret-sink-value")));
    let hooked: usize = got.lock().unwrap().iter().map(|b| b.as_array().unwrap().len()).sum();
    assert_eq!(hooked, lines.len(), "the webhook got the same lines");
    // The sink's last checkpoint serves as an anchor (from whichever file holds it).
    let holder = [file.display().to_string(), format!("{}.1", file.display()), format!("{}.2", file.display())]
        .into_iter()
        .find(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("\"checkpoint\"")))
        .unwrap();
    let o = s.cli(Some(&a), &["audit", "verify", "--anchor", &holder], None);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "x", json!({"k": "v"}));
    create_key(&s, json!({"name": "soon", "scopes": ["secret:read:x"], "ttl": "2d"}));
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:x"]}));
    s.http("GET", "/v1/secrets/nope", Some(&reader), None);
    assert_error(&s.http("GET", "/metrics", Some(&reader), None), 403, "scope_missing");
    let text = metrics_text(&s, &a);
    let py = std::env::var("KEYWARD_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/python").to_string());
    let parse = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(sys.stdin.read())}
print(json.dumps(fams))
"#;
    let mut child = std::process::Command::new(py)
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not valid exposition text:\n{text}");
    let fams: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in [
        "keyward_requests",
        "keyward_request_duration_seconds",
        "keyward_sealed",
        "keyward_audit_queue_depth",
        "keyward_audit_write_duration_seconds",
        "keyward_access_keys_expiring_7d",
        "keyward_audit_sink_dropped",
    ] {
        assert!(fams.get(f).is_some(), "{f} missing: {fams}");
    }
    let denied = fams["keyward_requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s[1]["code"] == "scope_missing" && s[1]["decision"] == "deny");
    assert!(denied, "{}", fams["keyward_requests"]);
    assert_eq!(fams["keyward_access_keys_expiring_7d"][0][2], 1.0);
    assert_eq!(fams["keyward_sealed"][0][2], 0.0);
}

#[test]
fn an_open_metrics_listener_serves_only_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = start(dir.path(), &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    assert!(s.banner.contains("keyward metrics on"), "{}", s.banner);
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("keyward_sealed 0"));
    assert_eq!(reqwest::blocking::get(format!("http://127.0.0.1:{port}/v1/secrets/x")).unwrap().status(), 404);
}

pub(crate) fn wait_for(
    got: &std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let hits: Vec<Value> = got.lock().unwrap().iter().filter(|v| pred(v)).cloned().collect();
        if !hits.is_empty() || std::time::Instant::now() > deadline {
            return hits;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn every_alert_rule_reaches_its_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver();
    let (slack, slack_got) = receiver();
    let (tg, tg_got) = receiver();
    let s = start(
        dir.path(),
        &[
            "--test-clock",
            "--alert-webhook",
            &hook,
            "--alert-slack",
            &slack,
            "--alert-telegram",
            &tg,
            "--alert-telegram-chat",
            "-1001",
            "--alert-burst",
            "5",
            "--alert-check-every",
            "1s",
        ],
    );
    s.set_clock(T0);
    let a = s.admin().to_string();
    let rule = |r: &'static str| move |v: &Value| v["rule"] == r;
    // A key near its expiry; a secret due for rotation.
    let (exp_id, reader) = create_key(&s, json!({"name": "soon", "scopes": ["secret:read:x"], "ttl": "2d"}));
    s.http("PUT", "/v1/secrets/x", Some(&a), Some(&json!({"data": {"k": "v"}, "rotation_period": "1d"})));
    let e = wait_for(&got, rule("expiry"));
    assert!(e.iter().any(|v| v["subject"] == format!("key {exp_id}")), "{e:?}");
    assert!(!wait_for(&got, rule("rotation")).is_empty());
    // First use from a new address.
    s.http_from("127.0.0.1", "GET", "/v1/secrets/x", Some(&reader), None, &[]);
    s.http_from("127.0.0.9", "GET", "/v1/secrets/x", Some(&reader), None, &[]);
    let e = wait_for(&got, rule("new_ip"));
    assert!(e.iter().any(|v| v["details"]["ip"] == "127.0.0.9"), "{e:?}");
    // A burst of denials (probing), one alert for the burst.
    for _ in 0..12 {
        s.http_from("127.0.0.10", "GET", "/v1/secrets/other", Some(&reader), None, &[]);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let bursts = wait_for(&got, |v| v["rule"] == "denial_burst" && v["subject"] == format!("key {exp_id}"));
    assert_eq!(bursts.len(), 1, "de-duplicated: {bursts:?}");
    // Withdraw / transfer / admin class calls, allowed or denied.
    s.http(
        "PUT",
        "/v1/secrets/exchanges/bin",
        Some(&a),
        Some(&json!({"data": {"api_key": "K", "api_secret": "S"}, "type": "binance"})),
    );
    let (_, trader) = create_key(&s, json!({"name": "t", "scopes": ["account:bin:trade"], "allow_ips": ["127.0.0.1"]}));
    s.http(
        "POST",
        "/v1/sign/bin",
        Some(&trader),
        Some(&json!({"method": "POST", "path": "/sapi/v1/capital/withdraw/apply"})),
    );
    let e = wait_for(&got, |v| v["rule"] == "sensitive_call" && v["details"]["class"] == "withdraw");
    assert!(e.iter().any(|v| v["details"]["class"] == "withdraw" && v["details"]["decision"] == "deny"), "{e:?}");
    // Seal and unseal.
    s.http("POST", "/v1/sys/seal", Some(&a), None);
    let key_text = std::fs::read_to_string(dir.path().join("keyward-data.unseal.key")).unwrap();
    s.http("POST", "/v1/sys/unseal", None, Some(&json!({"key": key_text.trim()})));
    let e = wait_for(&got, rule("seal_state"));
    assert!(e.iter().any(|v| v["summary"].as_str().unwrap().contains("seal")), "{e:?}");
    // Audit failures.
    s.http("POST", "/v1/sys/test-fault", Some(&a), Some(&json!({"audit_fail": true})));
    s.http("GET", "/v1/secrets/x", Some(&a), None);
    assert!(!wait_for(&got, rule("audit_failure")).is_empty());
    s.http("POST", "/v1/sys/test-fault", Some(&a), Some(&json!({"audit_fail": false})));
    // The same alerts in Slack's and Telegram's shapes; no secret anywhere.
    let sl = wait_for(&slack_got, |v| v["text"].as_str().is_some_and(|t| t.starts_with("[keyward] ")));
    assert!(!sl.is_empty());
    let t = wait_for(&tg_got, |v| v["chat_id"] == "-1001" && v["text"].is_string());
    assert!(!t.is_empty());
    let all = format!("{:?}{:?}{:?}", got.lock().unwrap(), slack_got.lock().unwrap(), tg_got.lock().unwrap());
    assert!(!all.contains(&reader) && !all.contains(&a) && !all.contains("\"S\""));
}

#[test]
fn signed_requests_leave_order_fields_but_no_signature_on_record() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    s.http(
        "PUT",
        "/v1/secrets/exchanges/kr",
        Some(&a),
        Some(&json!({"type": "kraken", "data": {"api_key": "K", "api_secret": "c2VjcmV0LXNpZ25pbmcta2V5"}})),
    );
    let (_, k) = create_key(&s, json!({"name": "t", "scopes": ["account:kr:trade"], "allow_ips": ["127.0.0.1"]}));
    let (st, v) = s.http("POST", "/v1/sign/kr", Some(&k), Some(&json!({"method": "POST", "path": "/0/private/AddOrder", "body": "pair=XBTUSD&type=buy&ordertype=limit&price=37500&volume=0.5"})));
    assert_eq!(st, 200, "{v}");
    let sig = v["headers"]["API-Sign"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = entries(&s).into_iter().find(|e| e["action"] == "sign.post").unwrap();
    assert_eq!(e["detail"]["orders"][0]["qty"], "0.5");
    assert_eq!(e["class"], "trade");
    s.stop();
    for f in std::fs::read_dir(dir.path().join("keyward-data")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        for needle in [sig.as_bytes(), k.as_bytes(), b"c2VjcmV0LXNpZ25pbmcta2V5".as_slice()] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "found in the stored bytes");
        }
    }
}
