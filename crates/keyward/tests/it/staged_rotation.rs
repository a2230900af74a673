//! Staged rotation of exchange accounts and secrets through the real binary
//! and the fake exchange (which checks every signature with Python's hmac
//! and accepts only the keys registered on it): wrong credentials refused
//! with nothing switched, right ones promoted and used by the next proxied
//! order, rollback, the switch under concurrent orders, and a crash
//! (SIGKILL) between staging and promotion.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KRAKEN_OLD: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const KRAKEN_NEW: &str = "c2Vjb25kLWtyYWtlbi1zZWNyZXQtZm9yLXJvdGF0aW9uLXRlc3RzLW9ubHktbm90LXJlYWw=";

fn old_creds() -> Value {
    json!({
        "binance": {"key": "BIN-OLD", "secret": "bin-old-secret"},
        "okx": {"key": "OKX-OLD", "secret": "okx-old-secret", "passphrase": "okx-pass"},
        "bybit": {"key": "BY-OLD", "secret": "by-old-secret"},
        "kraken": {"key": "KR-OLD", "secret": KRAKEN_OLD},
    })
}

/// Both keys registered on the exchange: the overlap of a rotation.
fn both_creds() -> Value {
    json!({
        "binance": [{"key": "BIN-OLD", "secret": "bin-old-secret"}, {"key": "BIN-NEW", "secret": "bin-new-secret"}],
        "okx": [{"key": "OKX-OLD", "secret": "okx-old-secret", "passphrase": "okx-pass"},
                {"key": "OKX-NEW", "secret": "okx-new-secret", "passphrase": "okx-pass-2"}],
        "bybit": [{"key": "BY-OLD", "secret": "by-old-secret"}, {"key": "BY-NEW", "secret": "by-new-secret"}],
        "kraken": [{"key": "KR-OLD", "secret": KRAKEN_OLD}, {"key": "KR-NEW", "secret": KRAKEN_NEW}],
    })
}

/// `(account, type, old fields, new fields)`.
fn accounts() -> Vec<(&'static str, &'static str, Value, Value)> {
    vec![
        (
            "bin",
            "binance",
            json!({"api_key": "BIN-OLD", "api_secret": "bin-old-secret"}),
            json!({"api_key": "BIN-NEW", "api_secret": "bin-new-secret"}),
        ),
        (
            "okx",
            "okx",
            json!({"api_key": "OKX-OLD", "api_secret": "okx-old-secret", "passphrase": "okx-pass"}),
            json!({"api_key": "OKX-NEW", "api_secret": "okx-new-secret", "passphrase": "okx-pass-2"}),
        ),
        (
            "by",
            "bybit",
            json!({"api_key": "BY-OLD", "api_secret": "by-old-secret"}),
            json!({"api_key": "BY-NEW", "api_secret": "by-new-secret"}),
        ),
        (
            "kr",
            "kraken",
            json!({"api_key": "KR-OLD", "api_secret": KRAKEN_OLD}),
            json!({"api_key": "KR-NEW", "api_secret": KRAKEN_NEW}),
        ),
    ]
}

fn setup(dir: &std::path::Path) -> (Server, FakeExchange, String) {
    let fake = FakeExchange::start(&old_creds());
    let s = start(dir, &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, fields, _) in accounts() {
        exchange_account(&s, name, kind, fields, &fake.url);
    }
    let scopes: Vec<String> = ["bin", "okx", "by", "kr"]
        .iter()
        .flat_map(|a| [format!("account:{a}:trade"), format!("account:{a}:read")])
        .collect();
    let bot = create_key(&s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.1/32"]})).1;
    (s, fake, bot)
}

/// A rotation through the CLI, the new fields as `k=v` and the secret on stdin.
fn rotate(s: &Server, path: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["secret", "rotate", path];
    all.extend_from_slice(args);
    s.cli(Some(s.admin()), &all, stdin)
}

fn meta(s: &Server, path: &str) -> Value {
    let (st, v) = s.http("GET", &format!("/v1/secrets/{path}?history=true"), Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    v
}

/// A Binance order through the proxy; its client order id names it in the fake's log.
fn order(s: &Server, bot: &str, id: &str) -> u16 {
    order_at(&s.addr, bot, id)
}

fn order_at(addr: &str, bot: &str, id: &str) -> u16 {
    let form =
        format!("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=50000&newClientOrderId={id}");
    reqwest::blocking::Client::new()
        .post(format!("{addr}/proxy/bin/api/v3/order"))
        .header("X-MBX-APIKEY", bot)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// The exchange key each logged order (by client order id) was sent with.
fn order_keys(fake: &FakeExchange) -> std::collections::HashMap<String, String> {
    fake.log()
        .iter()
        .filter(|e| e["path"] == "/api/v3/order")
        .filter_map(|e| {
            let body = e["body"].as_str()?;
            let id = body.split('&').find_map(|p| p.strip_prefix("newClientOrderId="))?.to_string();
            Some((id, e["headers"]["x-mbx-apikey"].as_str()?.to_string()))
        })
        .collect()
}

#[test]
fn wrong_credentials_are_refused_with_nothing_switched_and_right_ones_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fake, bot) = setup(dir.path());
    for (name, _, _, new) in accounts() {
        let path = format!("exchanges/{name}");
        let secret = new["api_secret"].as_str().unwrap();
        let mut args: Vec<String> =
            vec![format!("api_key={}", new["api_key"].as_str().unwrap()), "api_secret=-".into()];
        if let Some(p) = new["passphrase"].as_str() {
            args.push(format!("passphrase={p}"));
        }
        args.push("--verify".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // The new key is not registered on the exchange yet: refused, nothing switched.
        let o = rotate(&s, &path, &args, Some(secret));
        assert!(!o.status.success(), "{name}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains("credentials_refused") && err.contains("nothing switched"), "{name}: {err}");
        let m = meta(&s, &path);
        assert_eq!((m["current_version"].as_u64(), m["pending_version"].as_u64()), (Some(1), Some(2)), "{name}: {m}");
        assert!(!err.contains(secret), "the new secret is never echoed");
    }
    // The exchange said why, in its own words (Binance by status, Bybit in a 200, Kraken in a list).
    let o = rotate(&s, "exchanges/by", &["--verify"], None);
    assert!(stderr(&o).contains("10003") || stderr(&o).contains("API key is invalid"), "{}", stderr(&o));
    let o = rotate(&s, "exchanges/kr", &["--verify"], None);
    assert!(stderr(&o).contains("EAPI:Invalid key"), "{}", stderr(&o));
    // Orders still go out with the old key.
    assert_eq!(order(&s, &bot, "before"), 200);
    assert_eq!(order_keys(&fake)["before"], "BIN-OLD");
    // rotation status names the unfinished rotations with both ways out.
    let st = s.http("GET", "/v1/rotation", Some(s.admin()), None).1;
    let item = st["items"].as_array().unwrap().iter().find(|i| i["id"] == "exchanges/bin").unwrap().clone();
    assert_eq!((item["status"].as_str(), item["state"].as_str()), (Some("unfinished"), Some("pending v2")), "{item}");
    assert_eq!(item["run"], "keyward secret rotate exchanges/bin --verify");
    assert_eq!(item["abandon"], "keyward secret rotate exchanges/bin --abandon");
    assert_eq!(st["unfinished"], 4);

    // Registered on the exchange: the same pending versions are promoted.
    fake.set_creds(&both_creds());
    for (name, _, _, _) in accounts() {
        let o = rotate(&s, &format!("exchanges/{name}"), &["--verify", "--json"], None);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let out: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!((out["promoted"].as_bool(), out["version"].as_u64()), (Some(true), Some(2)), "{out}");
        assert_eq!(out["check"]["accepted"], true);
    }
    // The next proxied order signs with the new key (the fake checks the signature with the new secret).
    assert_eq!(order(&s, &bot, "after"), 200);
    assert_eq!(order_keys(&fake)["after"], "BIN-NEW");
    // A key that can only read the secret cannot read the previous version; sys:admin can, in full.
    let (_, reader) = create_key(
        &s,
        json!({"name": "r", "scopes": ["secret:read:exchanges/*", "account:bin:export"], "allow_ips": ["127.0.0.1/32"]}),
    );
    assert_error(&s.http("GET", "/v1/secrets/exchanges/bin?version=1", Some(&reader), None), 403, "scope_missing");
    let (st, prev) = s.http("GET", "/v1/secrets/exchanges/bin?version=1", Some(s.admin()), None);
    assert_eq!(
        (st, prev["data"]["api_key"].as_str(), prev["data"]["api_secret"].as_str()),
        (200, Some("BIN-OLD"), Some("bin-old-secret"))
    );
    assert_eq!(s.http("GET", "/v1/secrets/exchanges/bin", Some(&reader), None).1["data"]["api_key"], "BIN-NEW");

    // Rollback: one step back to the old key, and forward again.
    let o = s.cli(Some(s.admin()), &["secret", "rollback", "exchanges/bin"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("back on version 1"), "{}", stdout(&o));
    assert_eq!(order(&s, &bot, "rolled-back"), 200);
    assert_eq!(order_keys(&fake)["rolled-back"], "BIN-OLD");
    assert!(s.cli(Some(s.admin()), &["secret", "rollback", "exchanges/bin"], None).status.success());
    assert_eq!(order(&s, &bot, "forward"), 200);
    assert_eq!(order_keys(&fake)["forward"], "BIN-NEW");

    // History: each version's state and each change with who made it.
    let h = meta(&s, "exchanges/bin");
    let states: Vec<(u64, &str)> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(1, "previous"), (2, "current")]);
    let changes: Vec<&str> = h["changes"].as_array().unwrap().iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["staged", "check_refused", "promoted", "rolled_back", "rolled_back"], "{h}");
    let keys = s.http("GET", "/v1/keys", Some(s.admin()), None).1;
    let admin_id = keys["keys"][0]["id"].clone();
    assert!(admin_id.as_str().is_some_and(|i| i.starts_with("key_")), "{keys}");
    assert!(h["changes"].as_array().unwrap().iter().all(|c| c["by"] == admin_id && c["time"].is_string()), "{h}");
    let o = s.cli(Some(s.admin()), &["secret", "history", "exchanges/bin"], None);
    assert!(stdout(&o).contains("promoted") && stdout(&o).contains("previous"), "{}", stdout(&o));
    // Destroying the previous version ends rollback.
    s.http("POST", "/v1/secrets/exchanges/bin?action=destroy", Some(s.admin()), Some(&json!({"versions": [1]})));
    assert_error(
        &s.http("POST", "/v1/secrets/exchanges/bin?action=rollback", Some(s.admin()), None),
        409,
        "no_rotation",
    );
    let log = s.log_text();
    for secret in ["bin-new-secret", "by-new-secret", "okx-new-secret", KRAKEN_NEW] {
        assert!(!log.contains(secret), "no secret in the server log");
    }
}

#[test]
fn the_switch_under_concurrent_orders_never_mixes_versions_and_waits_for_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fake, bot) = setup(dir.path());
    fake.set_creds(&both_creds());
    fake.control("delay_ms=300");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (addr, bot, stop) = (s.addr.clone(), bot.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("w{w}n{n}");
                    let started = t0.elapsed();
                    let status = order_at(&addr, &bot, &id);
                    done.push((id, started, t0.elapsed(), status));
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let begun = t0.elapsed();
    let o = rotate(
        &s,
        "exchanges/bin",
        &["api_key=BIN-NEW", "api_secret=-", "--promote", "--json"],
        Some("bin-new-secret"),
    );
    let returned = t0.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    std::thread::sleep(Duration::from_millis(900));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: Vec<_> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let keys = order_keys(&fake);
    assert!(done.iter().all(|(_, _, _, st)| *st == 200), "every order was signed wholly with one version: {done:?}");
    assert!(out["drain"]["in_flight"].as_u64().unwrap() > 0, "orders were in flight at the switch: {out}");
    assert_eq!(out["drain"]["still_in_flight"], 0, "{out}");
    for (id, started, ended, _) in &done {
        match keys[id].as_str() {
            // An order signed with the old key finished before the answer said so.
            "BIN-OLD" => assert!(*ended <= returned && *started <= returned, "{id} {started:?} {ended:?} {returned:?}"),
            "BIN-NEW" => assert!(*ended >= begun, "{id}"),
            other => panic!("{id} went out with {other}"),
        }
        if *started > returned {
            assert_eq!(keys[id], "BIN-NEW", "{id} started after the switch");
        }
    }
    assert!(keys.values().any(|k| k == "BIN-OLD") && keys.values().any(|k| k == "BIN-NEW"));
}

#[test]
fn a_crash_between_stage_and_promote_leaves_the_account_on_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fake, bot) = setup(dir.path());
    let admin = s.admin().to_string();
    let o = rotate(&s, "exchanges/bin", &["api_key=BIN-NEW", "api_secret=-"], Some("bin-new-secret"));
    assert!(o.status.success() && stdout(&o).contains("as pending"), "{}", stdout(&o));
    s.kill();
    let mut s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    s.admin = Some(admin);
    let m = meta(&s, "exchanges/bin");
    assert_eq!((m["current_version"].as_u64(), m["pending_version"].as_u64()), (Some(1), Some(2)), "{m}");
    assert_eq!(order(&s, &bot, "after-crash"), 200);
    assert_eq!(order_keys(&fake)["after-crash"], "BIN-OLD", "nothing signs with a pending version");
    let o = s.cli(Some(s.admin()), &["rotation", "status"], None);
    let text = stdout(&o);
    assert!(text.contains("unfinished") && text.contains("--verify") && text.contains("--abandon"), "{text}");
    // Abandon: the pending version is destroyed, the account untouched.
    let o = rotate(&s, "exchanges/bin", &["--abandon"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = meta(&s, "exchanges/bin");
    let states: Vec<&str> = m["versions"].as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!((m["pending_version"].clone(), states), (Value::Null, vec!["current", "destroyed"]));
    assert_error(
        &s.http("POST", "/v1/secrets/exchanges/bin?action=abandon", Some(s.admin()), None),
        409,
        "no_rotation",
    );
    let st = s.http("GET", "/v1/rotation", Some(s.admin()), None).1;
    assert_eq!(st["unfinished"], 0, "{st}");
}

#[test]
fn plain_secrets_rotate_by_promotion_and_a_pending_version_blocks_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    assert_eq!(put(&s, &a, "apps/db", json!({"user": "u", "pw": "one"})).0, 200);
    assert_error(
        &s.http("POST", "/v1/secrets/apps/db?action=rotate", Some(&a), Some(&json!({"verify": true}))),
        400,
        "invalid_request",
    );
    assert_error(
        &s.http("POST", "/v1/secrets/apps/db?action=rotate", Some(&a), Some(&json!({"promote": true}))),
        409,
        "no_rotation",
    );
    assert_error(
        &s.http("POST", "/v1/secrets/apps/nothing?action=rotate", Some(&a), Some(&json!({"data": {"pw": "x"}}))),
        404,
        "not_found",
    );
    let (st, v) = s.http("POST", "/v1/secrets/apps/db?action=rotate", Some(&a), Some(&json!({"data": {"pw": "two"}})));
    assert_eq!((st, v["pending_version"].as_u64()), (200, Some(2)), "{v}");
    // The pending version is not read, and blocks a plain write, a delete or a destroy of it.
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&a), None).1["data"]["pw"], "one");
    assert_error(&put(&s, &a, "apps/db", json!({"pw": "three"})), 409, "rotation_pending");
    assert_error(&s.http("DELETE", "/v1/secrets/apps/db?versions=2", Some(&a), None), 409, "rotation_pending");
    assert_error(
        &s.http("POST", "/v1/secrets/apps/db?action=destroy", Some(&a), Some(&json!({"versions": [2]}))),
        409,
        "rotation_pending",
    );
    assert_error(&s.http("POST", "/v1/secrets/apps/db?action=rollback", Some(&a), None), 409, "rotation_pending");
    let o = s.cli(Some(&a), &["secret", "rotate", "apps/db", "--promote"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let now = s.http("GET", "/v1/secrets/apps/db", Some(&a), None).1;
    assert_eq!(now["data"], json!({"user": "u", "pw": "two"}), "the fields given laid over the current ones");
    assert!(s.cli(Some(&a), &["secret", "rollback", "apps/db"], None).status.success());
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&a), None).1["data"]["pw"], "one");
    // A key that may only read cannot rotate or roll back.
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]}));
    let o = s.cli(Some(&reader), &["secret", "rollback", "apps/db"], None);
    assert!(!o.status.success() && stderr(&o).contains("scope_missing"), "{}", stderr(&o));
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&a), None).1["data"]["pw"], "one");
}
