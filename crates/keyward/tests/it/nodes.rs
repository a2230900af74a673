//! Several keyward nodes on one PostgreSQL database: what one node changes
//! is in force on the others within a second, uses stay exact, Kraken
//! nonces increase across nodes, the audit trail stays one chain, and a
//! node killed or a database restarted loses nothing acknowledged.

use crate::harness::*;
use crate::pg;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// Two nodes on `url`: A initialises the database (key-file seal), B
/// unseals with A's key file. Returns them with A's admin key.
fn two_nodes(dir: &Path, url: &str, extra: &[&str]) -> (Server, Server, String) {
    let (da, db) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let env = [("KEYWARD_DATABASE_URL", Some(url))];
    let a = start_env(&da, extra, &env);
    let admin = a.admin().to_string();
    let key_file = da.join("keyward-data.unseal.key").display().to_string();
    let mut b_args = vec!["--unseal-key-file", key_file.as_str()];
    b_args.extend_from_slice(extra);
    let b = start_env(&db, &b_args, &env);
    assert!(b.admin.is_none(), "the second node must not initialise again");
    (a, b, admin)
}

/// Polls `f` until it is true or `within` passed; how long it took.
fn within(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn read(s: &Server, key: &str, path: &str) -> (u16, Value) {
    s.http("GET", &format!("/v1/secrets/{path}"), Some(key), None)
}

#[test]
fn a_change_on_one_node_is_in_force_on_the_other_within_a_second() {
    let Some(url) = pg::fresh_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin) = two_nodes(dir.path(), &url, &[]);
    put(&a, &admin, "app/db", json!({"password": "one"}));
    let (_, bot) = create_key(&a, json!({"name": "bot", "scopes": ["secret:read:app/*"]}));
    let second = Duration::from_secs(1);

    let (st, status) = b.http("GET", "/v1/sys/status", Some(&admin), None);
    assert_eq!(
        (st, &status["storage"]["backend"], &status["storage"]["shared"]),
        (200, &json!("postgres"), &json!(true))
    );

    // A key made on A works on B; B reads what A wrote.
    assert!(within(second, || read(&b, &bot, "app/db").0 == 200).is_some(), "a key created on A never worked on B");
    assert_eq!(read(&b, &bot, "app/db").1["data"]["password"], "one");

    // A secret updated on A: B reads the new value (its cache was dropped).
    put(&a, &admin, "app/db", json!({"password": "two"}));
    let seen = within(second, || read(&b, &bot, "app/db").1["data"]["password"] == "two");
    assert!(seen.is_some(), "B kept serving the old value of app/db");

    // A policy change on A (the key loses app/*): refused on B.
    let id = bot_id(&a, &admin, "bot");
    let (st, v) = a.http("POST", &format!("/v1/keys/{id}/disable"), Some(&admin), None);
    assert_eq!(st, 200, "{v}");
    assert!(within(second, || read(&b, &bot, "app/db").0 == 401).is_some(), "a key disabled on A still worked on B");
    assert_error(&read(&b, &bot, "app/db"), 401, "key_disabled");
    let (st, _) = a.http("POST", &format!("/v1/keys/{id}/enable"), Some(&admin), None);
    assert_eq!(st, 200);
    assert!(within(second, || read(&b, &bot, "app/db").0 == 200).is_some(), "enable on A never reached B");

    // Revoked on A: refused on B within a second.
    let (st, v) = a.http("POST", &format!("/v1/keys/{id}/revoke"), Some(&admin), None);
    assert_eq!(st, 200, "{v}");
    let took = within(second, || read(&b, &bot, "app/db").0 == 401);
    assert!(took.is_some(), "a key revoked on A still worked on B a second later");
    assert_error(&read(&b, &bot, "app/db"), 401, "key_revoked");

    // Changed on B: in force on A too (either way round).
    let (st, v) =
        b.http("POST", "/v1/keys", Some(&admin), Some(&json!({"name": "other", "scopes": ["secret:read:app/*"]})));
    assert_eq!(st, 201, "{v}");
    let other = v["key"].as_str().unwrap().to_string();
    assert!(within(second, || read(&a, &other, "app/db").0 == 200).is_some());
    let oid = bot_id(&b, &admin, "other");
    assert_eq!(b.http("POST", &format!("/v1/keys/{oid}/revoke"), Some(&admin), None).0, 200);
    assert!(within(second, || read(&a, &other, "app/db").0 == 401).is_some(), "revoked on B, still working on A");
}

fn bot_id(s: &Server, admin: &str, name: &str) -> String {
    let (st, v) = s.http("GET", "/v1/keys", Some(admin), None);
    assert_eq!(st, 200, "{v}");
    let keys = v["keys"].as_array().or(v.as_array()).cloned().unwrap_or_default();
    let k = keys.iter().find(|k| k["name"] == name).unwrap_or_else(|| panic!("no key {name} in {v}"));
    k["id"].as_str().unwrap().to_string()
}

#[test]
fn uses_stay_exact_across_two_nodes_and_the_audit_is_one_chain() {
    let Some(url) = pg::fresh_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin) = two_nodes(dir.path(), &url, &[]);
    put(&a, &admin, "x", json!({"k": "v"}));
    let (_, k) = create_key(&a, json!({"name": "r", "scopes": ["secret:read:x"], "uses": 15}));
    assert!(within(Duration::from_secs(1), || b.http("GET", "/v1/keys", Some(&admin), None).0 == 200).is_some());
    let (ok, exhausted) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for i in 0..40 {
            let node = if i % 2 == 0 { &a } else { &b };
            let (ok, exhausted, k) = (&ok, &exhausted, &k);
            sc.spawn(move || match read(node, k, "x") {
                (200, _) => ok.fetch_add(1, Ordering::SeqCst),
                (403, v) if v["error"]["code"] == "uses_exhausted" => exhausted.fetch_add(1, Ordering::SeqCst),
                other => panic!("{other:?}"),
            });
        }
    });
    assert_eq!((ok.load(Ordering::SeqCst), exhausted.load(Ordering::SeqCst)), (15, 25), "uses were not exact");

    // Both nodes wrote the audit log at once: one chain, checked from either node.
    for node in [&a, &b] {
        let o = node.cli(Some(&admin), &["audit", "verify"], None);
        assert!(o.status.success(), "audit verify: {}{}", stdout(&o), stderr(&o));
    }
    let (st, v) = b.http("GET", "/v1/audit?limit=1000", Some(&admin), None);
    assert_eq!(st, 200);
    let granted = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secrets.get" && e["decision"] == "allow")
        .count();
    assert!(granted >= 15, "the audit log holds {granted} granted reads, not the 15 granted: {v}");
}

fn kraken_account(s: &Server, admin: &str, fake: &FakeExchange) {
    let fields = json!({"api_key": "KRAKEN-REAL-KEY", "api_secret": KRAKEN_SECRET, "base_url": fake.url});
    let (st, v) =
        s.http("PUT", "/v1/secrets/exchanges/kr", Some(admin), Some(&json!({"data": fields, "type": "kraken"})));
    assert_eq!(st, 200, "{v}");
}

#[test]
fn kraken_nonces_increase_across_nodes_even_when_their_clocks_differ() {
    let Some(url) = pg::fresh_database() else { return };
    let fake = FakeExchange::start(&json!({"kraken": {"key": "KRAKEN-REAL-KEY", "secret": KRAKEN_SECRET}}));
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin) = two_nodes(dir.path(), &url, &["--allow-upstream", "127.0.0.1", "--test-clock"]);
    kraken_account(&a, &admin, &fake);
    // B's clock runs 30 s behind A's: its own microsecond nonces would be
    // below A's, and Kraken would refuse them.
    let now = keyward_core::clock::Clock::now_ms(&keyward_core::clock::SystemClock);
    for (node, t) in [(&a, now), (&b, now - 30_000)] {
        let (st, v) = node.http("POST", "/v1/sys/test-clock", Some(&admin), Some(&json!({"now_ms": t})));
        assert_eq!(st, 200, "{v}");
    }
    let (_, bot) = create_key(
        &a,
        json!({"name": "kb", "scopes": ["account:kr:read", "account:kr:trade"], "allow_ips": ["127.0.0.1/32"]}),
    );
    let bearer = format!("Bearer {bot}");
    assert!(within(Duration::from_secs(1), || b.http("GET", "/v1/keys", Some(&admin), None).0 == 200).is_some());

    // Through the proxy, alternating nodes: the fake exchange (Python's
    // hmac) refuses any nonce not above the last one it saw.
    let c = reqwest::blocking::Client::new();
    for i in 0..12 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = c
            .post(format!("{}/proxy/kr/0/private/Balance", node.addr))
            .header("Authorization", &bearer)
            .send()
            .unwrap();
        let st = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert_eq!(
            (st, &v["error"]),
            (200, &json!([])),
            "request {i} via node {}: {v}",
            if i % 2 == 0 { 'A' } else { 'B' }
        );
    }

    // Concurrent signing on both nodes: every nonce distinct, and each
    // caller's nonces increase.
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let node = if t % 2 == 0 { &a } else { &b };
                let bot = &bot;
                sc.spawn(move || {
                    (0..15)
                        .map(|_| {
                            let (st, v) = node.http(
                                "POST",
                                "/v1/sign/kr",
                                Some(bot),
                                Some(&json!({"method": "POST", "path": "/0/private/Balance"})),
                            );
                            assert_eq!(st, 200, "{v}");
                            v["body"].as_str().unwrap().trim_start_matches("nonce=").parse::<u64>().unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for seq in &per_thread {
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "a caller's nonces did not increase: {seq:?}");
    }
    let mut all: Vec<u64> = per_thread.concat();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "two signatures got the same nonce");
}

#[test]
fn a_node_killed_with_sigkill_loses_nothing_it_acknowledged() {
    let Some(url) = pg::fresh_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin) = two_nodes(dir.path(), &url, &[]);
    let acked = std::sync::Mutex::new(Vec::<(String, u64)>::new());
    let addr = a.addr.clone();
    std::thread::scope(|sc| {
        for t in 0..4 {
            let (acked, addr, admin) = (&acked, &addr, &admin);
            sc.spawn(move || {
                let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                for i in 0.. {
                    let path = format!("load/t{t}/s{i}");
                    let r = c
                        .put(format!("{addr}/v1/secrets/{path}"))
                        .bearer_auth(admin)
                        .json(&json!({"data": {"v": format!("{t}-{i}")}}))
                        .send();
                    match r {
                        Ok(r) if r.status().as_u16() == 200 => {
                            let v: Value = r.json().unwrap_or(Value::Null);
                            acked.lock().unwrap().push((path, v["version"].as_u64().unwrap_or(1)));
                        }
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        a.kill();
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 10, "too few writes before the kill: {}", acked.len());
    for (path, _) in &acked {
        let (st, v) = read(&b, &admin, path);
        assert_eq!(st, 200, "{path} was acknowledged by the killed node but is gone: {v}");
    }
    let o = b.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success(), "audit verify after the kill: {}{}", stdout(&o), stderr(&o));
}

#[test]
fn a_postgres_restart_under_load_fails_closed_and_recovers() {
    if pg::admin_url().is_none() {
        return;
    }
    let server = pg::PgServer::start();
    let url = server.database();
    let dir = tempfile::tempdir().unwrap();
    let s = start_env(dir.path(), &[], &[("KEYWARD_DATABASE_URL", Some(url.as_str()))]);
    let admin = s.admin().to_string();
    put(&s, &admin, "x", json!({"k": "v"}));
    let acked = std::sync::Mutex::new(Vec::<String>::new());
    let statuses = std::sync::Mutex::new(Vec::<(u16, String)>::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        // The writers stop however this ends: a failed assertion below must
        // fail the test, not leave the scope waiting on them forever.
        let _stop = StopOnDrop(&stop);
        for t in 0..3 {
            let (acked, statuses, stop, s, admin) = (&acked, &statuses, &stop, &s, &admin);
            sc.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let path = format!("w/t{t}/s{i}");
                    let (st, v) = s.http(
                        "PUT",
                        &format!("/v1/secrets/{path}"),
                        Some(admin),
                        Some(&json!({"data": {"i": i.to_string()}})),
                    );
                    let code = v["error"]["code"].as_str().unwrap_or("").to_string();
                    if st == 200 {
                        acked.lock().unwrap().push(path);
                    }
                    statuses.lock().unwrap().push((st, code));
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        server.down();
        std::thread::sleep(Duration::from_secs(4));
        // Down: writes refused with 503, never acknowledged.
        let (st, v) = s.http("PUT", "/v1/secrets/during", Some(&admin), Some(&json!({"data": {"k": "v"}})));
        assert_eq!(st, 503, "a write while PostgreSQL is down: {v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        // Reads fail closed too: the node has not heard from the database.
        let (st, v) = read(&s, &admin, "x");
        assert_eq!(
            (st, &v["error"]["code"]),
            (503, &json!("store_unavailable")),
            "a read while PostgreSQL is down: {v}"
        );
        server.up();
        // Back by itself: reads, then writes with their audit entries.
        let write = || s.http("PUT", "/v1/secrets/after", Some(&admin), Some(&json!({"data": {"k": "v"}})));
        let back = within(Duration::from_secs(30), || read(&s, &admin, "x").0 == 200 && write().0 == 200);
        assert!(back.is_some(), "the node did not recover after PostgreSQL came back: {:?}", write());
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
    });
    let statuses = statuses.into_inner().unwrap();
    for (st, code) in &statuses {
        assert!(
            *st == 200 || (*st == 503 && code == "store_unavailable"),
            "an answer other than 200 or a 503 refusal during the restart: {st} {code}"
        );
    }
    assert!(statuses.iter().any(|(st, _)| *st == 503), "no request was refused while PostgreSQL was down");
    // A call begun while the database was down may still time out (5 s)
    // after it is back, and refuse for a moment: a 503 is not a loss, a
    // 404 would be.
    let settled = |path: &str| {
        let mut last = (0, Value::Null);
        within(Duration::from_secs(15), || {
            last = read(&s, &admin, path);
            last.0 != 503
        });
        last
    };
    let acked = acked.into_inner().unwrap();
    for path in &acked {
        let (st, v) = settled(path);
        assert_eq!(st, 200, "{path} was acknowledged but is gone after the restart: {v}\n{}", tail(&s.log_text()));
    }
    let (st, _) = s.http("PUT", "/v1/secrets/after", Some(&admin), Some(&json!({"data": {"k": "v"}})));
    assert_eq!(st, 200, "writes work again");
    let o = s.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success(), "audit verify after the restart: {}{}", stdout(&o), stderr(&o));
}

#[test]
fn the_daily_notional_cap_holds_across_nodes() {
    let Some(url) = pg::fresh_database() else { return };
    let fake = FakeExchange::start(&json!({"binance": {"key": "BK", "secret": "bs"}}));
    let dir = tempfile::tempdir().unwrap();
    let (a, b, admin) = two_nodes(dir.path(), &url, &["--allow-upstream", "127.0.0.1"]);
    let fields = json!({"api_key": "BK", "api_secret": "bs", "base_url": fake.url});
    let body = json!({"data": fields, "type": "binance"});
    assert_eq!(a.http("PUT", "/v1/secrets/exchanges/bin", Some(&admin), Some(&body)).0, 200);
    let (_, k) = create_key(
        &a,
        json!({"name": "g", "scopes": ["account:bin:trade"], "allow_ips": ["127.0.0.1"], "max_notional_per_day": "5000"}),
    );
    assert!(within(Duration::from_secs(1), || b.http("GET", "/v1/keys", Some(&admin), None).0 == 200).is_some());
    // 20 orders of 500 each, half through each node, at once: 10 fit in 5000.
    let (ok, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for i in 0..20 {
            let node = if i % 2 == 0 { &a } else { &b };
            let (ok, refused, k) = (&ok, &refused, &k);
            sc.spawn(move || {
                let r = reqwest::blocking::Client::new()
                    .post(format!("{}/proxy/bin/api/v3/order", node.addr))
                    .bearer_auth(k)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000")
                    .send()
                    .unwrap();
                let st = r.status().as_u16();
                let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null);
                match (st, v["error"]["code"].as_str()) {
                    (200, _) => ok.fetch_add(1, Ordering::SeqCst),
                    (403, Some("order_guard")) => refused.fetch_add(1, Ordering::SeqCst),
                    other => panic!("{other:?} {v}"),
                };
            });
        }
    });
    assert_eq!((ok.load(Ordering::SeqCst), refused.load(Ordering::SeqCst)), (10, 10), "the daily cap did not hold");
    let placed = fake.log().iter().filter(|l| l["path"] == "/api/v3/order").count();
    assert_eq!(placed, 10, "refused orders reached the exchange");
}

#[test]
fn the_database_url_comes_from_a_file_or_the_configuration_and_its_password_is_never_shown() {
    let Some(url) = pg::fresh_database() else { return };
    // Trust authentication ignores the password: it is there to be hidden.
    let with_password = url.replacen("postgres://keyward@", "postgres://keyward:hunter2-not-shown@", 1);
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("db.url");
    std::fs::write(&url_file, format!("# the shared database\n{with_password}\n")).unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let a = start_env(&da, &["--database-url-file", url_file.to_str().unwrap()], &[("KEYWARD_DATABASE_URL", None)]);
    let admin = a.admin().to_string();
    assert!(a.banner.contains("postgres://keyward:***@"), "{}", a.banner);
    put(&a, &admin, "cfg/x", json!({"k": "from-a"}));
    // Node B from a configuration file's [storage].
    let key_file = da.join("keyward-data.unseal.key");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "unseal_key_file = {:?}\n[storage]\nbackend = \"postgres\"\ndatabase_url_file = {:?}\n",
            key_file.to_str().unwrap(),
            url_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let b = start_env(&db, &["--config", config.to_str().unwrap()], &[("KEYWARD_DATABASE_URL", None)]);
    assert_eq!(read(&b, &admin, "cfg/x").1["data"]["k"], "from-a");
    for s in [&a, &b] {
        let seen = format!("{}{}", s.banner, s.log_text());
        assert!(!seen.contains("hunter2"), "the database password was shown");
    }
    // A URL that is not PostgreSQL's is refused without being echoed.
    std::fs::write(&url_file, "mysql://root:hunter2-not-shown@db/x\n").unwrap();
    let o = std::process::Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--database-url-file", url_file.to_str().unwrap()])
        .env_remove("KEYWARD_DATABASE_URL")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("postgres://") && !err.contains("hunter2"), "{err}");
}

#[test]
fn a_node_unsealed_long_after_it_started_serves_at_once() {
    let Some(url) = pg::fresh_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("keyward-data");
    let env = [("KEYWARD_DATABASE_URL", url.as_str())];
    let o = cli_env(
        "http://127.0.0.1:1",
        None,
        &["operator", "init", "--data", data.to_str().unwrap(), "--shares", "3", "--threshold", "2", "--json"],
        None,
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let init: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(init["data"], url.as_str(), "init names the database, not a directory");
    let admin = init["admin_key"].as_str().unwrap().to_string();
    let s = start_env(dir.path(), &[], &[("KEYWARD_DATABASE_URL", Some(url.as_str()))]);
    // Sealed for longer than the stale bound: the unseal itself is news from the database.
    std::thread::sleep(Duration::from_millis(2500));
    let shares = init["shares"].as_array().unwrap();
    let o = s.cli(
        None,
        &["operator", "unseal"],
        Some(&format!("{}\n{}\n", shares[0].as_str().unwrap(), shares[2].as_str().unwrap())),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (st, v) = s.http("GET", "/v1/keys", Some(&admin), None);
    assert_eq!(st, 200, "right after the unseal: {v}");
}

/// Sets the flag when dropped, unwinding included.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
