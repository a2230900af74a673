//! Every secret operation through the CLI and the API: versions, fields,
//! check-and-set, delete, undelete, destroy, listing and scopes.

use crate::harness::*;
use serde_json::{Value, json};

fn get(s: &Server, token: &str, path: &str) -> (u16, Value) {
    s.http("GET", &format!("/v1/secrets/{path}"), Some(token), None)
}

#[test]
fn put_and_get_through_the_cli_with_stdin_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    let file = dir.path().join("pem");
    std::fs::write(&file, "-----BEGIN KEY-----\nabc\n-----END KEY-----\n").unwrap();
    let o = s.cli(
        Some(&admin),
        &[
            "secret",
            "put",
            "apps/alerts/webhook",
            "token=-",
            &format!("pem=@{}", file.display()),
            "plain=v",
            "--type",
            "webhook",
            "--rotate-every",
            "90d",
        ],
        Some("xoxb-123\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("version 1"));

    let o = s.cli(Some(&admin), &["secret", "get", "apps/alerts/webhook", "--field", "token"], None);
    assert_eq!(stdout(&o), "xoxb-123\n", "one trailing newline of stdin is removed");
    let o = s.cli(Some(&admin), &["secret", "get", "apps/alerts/webhook", "--json"], None);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"]["pem"], "-----BEGIN KEY-----\nabc\n-----END KEY-----\n");
    assert_eq!(v["data"]["plain"], "v");
    assert_eq!(v["metadata"]["type"], "webhook");
    assert_eq!(v["metadata"]["rotation_period_s"], 90 * 86400);
    assert!(v["metadata"]["rotation_due"].is_string());
    assert!(v["metadata"]["created_at"].is_string());

    // Two fields cannot both read stdin; a missing file is a clear error.
    let o = s.cli(Some(&admin), &["secret", "put", "p", "a=-", "b=-"], Some("x"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("only one field"));
    let o = s.cli(Some(&admin), &["secret", "put", "p", "a=@/nonexistent/file"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/file"));
    let o = s.cli(Some(&admin), &["secret", "put", "p", "novalue"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NAME=VALUE"));
}

#[test]
fn versions_history_delete_undelete_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    for i in 1..=3 {
        let (st, v) = put(&s, &a, "db/pw", json!({ "pw": format!("v{i}") }));
        assert_eq!((st, v["version"].as_u64()), (200, Some(i)));
    }
    assert_eq!(get(&s, &a, "db/pw").1["data"]["pw"], "v3");
    assert_eq!(s.http("GET", "/v1/secrets/db/pw?version=1", Some(&a), None).1["data"]["pw"], "v1");
    assert_eq!(s.http("GET", "/v1/secrets/db/pw?field=pw&version=2", Some(&a), None).1["data"], json!({"pw": "v2"}));
    assert_error(&s.http("GET", "/v1/secrets/db/pw?field=nope", Some(&a), None), 404, "not_found");
    assert_error(&s.http("GET", "/v1/secrets/db/pw?version=9", Some(&a), None), 404, "not_found");
    assert_error(&s.http("GET", "/v1/secrets/db/pw?version=0", Some(&a), None), 400, "invalid_query");
    assert_error(&get(&s, &a, "db/none"), 404, "not_found");

    // Soft delete of the current version, then undelete.
    let o = s.cli(Some(&a), &["secret", "delete", "db/pw"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(&get(&s, &a, "db/pw"), 404, "secret_deleted");
    assert_eq!(s.http("GET", "/v1/secrets/db/pw?version=2", Some(&a), None).0, 200);
    let o = s.cli(Some(&a), &["secret", "undelete", "db/pw", "--versions", "3"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(get(&s, &a, "db/pw").1["data"]["pw"], "v3");

    // Destroy one version: gone for good, others stay; undelete cannot bring it back.
    let o = s.cli(Some(&a), &["secret", "destroy", "db/pw", "--versions", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(&s.http("GET", "/v1/secrets/db/pw?version=1", Some(&a), None), 410, "secret_destroyed");
    let (_, v) = s.http("POST", "/v1/secrets/db/pw?action=undelete", Some(&a), Some(&json!({"versions": [1]})));
    assert_eq!(v["undeleted"], json!([]));
    assert_error(&s.http("GET", "/v1/secrets/db/pw?version=1", Some(&a), None), 410, "secret_destroyed");

    // History shows every version's state.
    let o = s.cli(Some(&a), &["secret", "history", "db/pw", "--json"], None);
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h["current_version"], 3);
    let vs = h["versions"].as_array().unwrap();
    assert_eq!(vs.len(), 3);
    assert_eq!(vs[0]["destroyed"], true);
    assert_eq!(vs[2]["deleted_at"], Value::Null);

    // Destroy needs an explicit choice; --all removes the secret entirely.
    assert_error(
        &s.http("POST", "/v1/secrets/db/pw?action=destroy", Some(&a), Some(&json!({}))),
        400,
        "invalid_request",
    );
    let o = s.cli(Some(&a), &["secret", "destroy", "db/pw"], None);
    assert!(!o.status.success(), "destroy without --versions or --all must refuse");
    let o = s.cli(Some(&a), &["secret", "destroy", "db/pw", "--all"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_error(&get(&s, &a, "db/pw"), 404, "not_found");
    assert_eq!(put(&s, &a, "db/pw", json!({"pw": "again"})).1["version"], 1);
}

#[test]
fn check_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let cas = |n: u64| json!({"data": {"k": format!("at{n}")}, "cas": n});
    assert_eq!(s.http("PUT", "/v1/secrets/c", Some(&a), Some(&cas(0))).0, 200);
    assert_error(&s.http("PUT", "/v1/secrets/c", Some(&a), Some(&cas(0))), 409, "cas_mismatch");
    assert_eq!(s.http("PUT", "/v1/secrets/c", Some(&a), Some(&cas(1))).0, 200);
    assert_error(&s.http("PUT", "/v1/secrets/c", Some(&a), Some(&cas(1))), 409, "cas_mismatch");
    assert_error(&s.http("PUT", "/v1/secrets/c", Some(&a), Some(&cas(5))), 409, "cas_mismatch");
    assert_eq!(get(&s, &a, "c").1["data"]["k"], "at1");
    let o = s.cli(Some(&a), &["secret", "put", "c", "k=x", "--cas", "1"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cas_mismatch"), "{}", stderr(&o));

    // Concurrent writers without cas each get their own version, none lost.
    std::thread::scope(|sc| {
        for i in 0..32 {
            let (s, a) = (&s, &a);
            sc.spawn(move || assert_eq!(put(s, a, "race", json!({"i": i.to_string()})).0, 200));
        }
    });
    let (_, h) = s.http("GET", "/v1/secrets/race?history=true", Some(&a), None);
    assert_eq!(h["current_version"], 32);
    assert_eq!(h["versions"].as_array().unwrap().len(), 32);
}

#[test]
fn scopes_limit_reads_writes_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    put(&s, &a, "apps/alerts/webhook", json!({"token": "t1"}));
    put(&s, &a, "apps/db/password", json!({"pw": "p1"}));
    let (_, reader) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/alerts/*"]}));

    assert_eq!(get(&s, &reader, "apps/alerts/webhook").1["data"]["token"], "t1");
    assert_error(&get(&s, &reader, "apps/db/password"), 403, "scope_missing");
    // No existence oracle: a missing path outside the scope is also scope_missing.
    assert_error(&get(&s, &reader, "apps/db/nothing-here"), 403, "scope_missing");
    assert_error(&put(&s, &reader, "apps/alerts/webhook", json!({"token": "x"})), 403, "scope_missing");
    assert_error(&s.http("DELETE", "/v1/secrets/apps/alerts/webhook", Some(&reader), None), 403, "scope_missing");

    let (st, l) = s.http("GET", "/v1/secrets?prefix=apps/", Some(&reader), None);
    assert_eq!(st, 200);
    let paths: Vec<&str> = l["secrets"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["apps/alerts/webhook"]);
    let (_, l) = s.http("GET", "/v1/secrets", Some(&a), None);
    assert_eq!(l["secrets"].as_array().unwrap().len(), 2);
    let o = s.cli(Some(&a), &["secret", "list", "apps/db"], None);
    assert!(stdout(&o).contains("apps/db/password") && !stdout(&o).contains("webhook"));

    let (_, nokeys) = create_key(&s, json!({"name": "m", "scopes": ["audit:read"]}));
    assert_error(&s.http("GET", "/v1/secrets", Some(&nokeys), None), 403, "scope_missing");
}

#[test]
fn group_committed_writes_survive_sigkill_each_with_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    // Concurrent writers on three paths: the node's writer batches them into
    // shared commits; every answered write must be durable and hold exactly
    // its own fields at the version it was answered with.
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..12 {
            let (s, a, acked) = (&s, &a, &acked);
            sc.spawn(move || {
                for i in 0..8 {
                    let path = format!("gc/p{}", (t + i) % 3);
                    let value = format!("t{t}-i{i}");
                    let (status, v) = put(s, a, &path, json!({"v": value}));
                    assert_eq!(status, 200, "{v}");
                    acked.lock().unwrap().push((path, v["version"].as_u64().unwrap(), value));
                }
            });
        }
    });
    // Check-and-set under the same batching: of 16 writers expecting the
    // same version, exactly one wins.
    let (_, m) = s.http("GET", "/v1/secrets/gc/p0?history=true", Some(&a), None);
    let at = m["current_version"].as_u64().unwrap();
    let won = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for i in 0..16 {
            let (s, a, won) = (&s, &a, &won);
            sc.spawn(move || {
                let body = json!({"data": {"v": format!("cas{i}")}, "cas": at});
                match s.http("PUT", "/v1/secrets/gc/p0", Some(a), Some(&body)) {
                    (200, _) => {
                        won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    other => assert_error(&other, 409, "cas_mismatch"),
                }
            });
        }
    });
    assert_eq!(won.load(std::sync::atomic::Ordering::Relaxed), 1);
    std::process::Command::new("kill").args(["-KILL", &s.pid().to_string()]).status().unwrap();
    drop(s);

    let mut s = start(dir.path(), &[]);
    s.admin = Some(a.clone());
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), 96);
    let mut seen = std::collections::HashSet::new();
    for (path, version, value) in &acked {
        assert!(seen.insert((path.clone(), *version)), "{path} version {version} answered twice");
        let (status, v) = s.http("GET", &format!("/v1/secrets/{path}?version={version}"), Some(&a), None);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["v"], value.as_str(), "{path} version {version}");
    }
    let (_, p0) = get(&s, &a, "gc/p0");
    assert!(p0["data"]["v"].as_str().unwrap().starts_with("cas"), "the check-and-set winner is current: {p0}");
}
