//! Scheduled rolling of access keys from their maximum age
//! (`keyward rotation roll`), through the real binary and the test clock:
//! exactly the keys `rotation status` lists as due or overdue are rolled,
//! each new key goes into its secret (never printed) or is printed once,
//! the old key works through its grace and is refused after, a key already
//! past its maximum age is replaced, and nothing changes without every
//! permission the run needs.

use crate::harness::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    use keyward_core::clock::Clock;
    keyward_core::clock::SystemClock.now_ms() / 1000 * 1000 + 123
}

fn roll(s: &Server, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["rotation", "roll"];
    all.extend_from_slice(args);
    s.cli(Some(token), &all, None)
}

fn read(s: &Server, token: &str, path: &str) -> (u16, Value) {
    s.http("GET", &format!("/v1/secrets/{path}"), Some(token), None)
}

fn key_state(s: &Server, id: &str) -> Value {
    let (st, v) = s.http("GET", &format!("/v1/keys/{id}"), Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    v
}

#[test]
fn due_keys_roll_on_schedule_into_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let t0 = now_ms();
    s.set_clock(t0);
    let grid_scopes = json!(["secret:read:bots/grid-bot", "secret:read:apps/grid/*"]);
    let (grid, grid_key) = create_key(&s, json!({"name": "grid-bot", "scopes": grid_scopes, "max_age": "30d"}));
    let (alerts, _) = create_key(&s, json!({"name": "alerts", "scopes": ["secret:read:apps/a/*"], "max_age": "90d"}));
    let (old, old_key) =
        create_key(&s, json!({"name": "old-bot", "scopes": ["secret:read:bots/old-bot"], "max_age": "10d"}));
    let (forever, _) = create_key(&s, json!({"name": "forever", "scopes": ["secret:read:apps/f/*"]}));
    put(&s, s.admin(), "apps/grid/db", json!({"password": "pw"}));

    // Day 25: grid-bot is due within the week, old-bot is past its maximum age.
    s.set_clock(t0 + 25 * DAY);
    assert_error(&read(&s, &old_key, "bots/old-bot"), 401, "key_expired");
    let o = roll(&s, s.admin(), &["--dry-run", "--store-under", "bots/", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut would: Vec<&str> =
        plan["would_roll"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    would.sort();
    let mut expected = vec![grid.as_str(), old.as_str()];
    expected.sort();
    assert_eq!(would, expected, "{plan}");
    assert!(key_state(&s, &grid)["rolled_to"].is_null(), "a dry run changes nothing");

    let o = roll(&s, s.admin(), &["--store-under", "bots/", "--grace", "24h"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(printed.contains("new key stored at bots/grid-bot") && printed.contains("bots/old-bot"), "{printed}");
    assert!(!printed.contains("kw_"), "a stored key is not printed: {printed}");
    let new_grid = key_state(&s, &grid)["rolled_to"].as_str().unwrap().to_string();
    for untouched in [&alerts, &forever] {
        assert!(key_state(&s, untouched)["rolled_to"].is_null(), "{untouched} was not due");
    }

    // The bot picks its new key up with its old one, during the grace period.
    let (st, v) = read(&s, &grid_key, "bots/grid-bot");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["key_id"], new_grid);
    assert_eq!(v["data"]["rolled_from"], grid);
    let new_key = v["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(read(&s, &new_key, "apps/grid/db").0, 200, "the new key has the old one's scopes");
    assert_eq!(read(&s, &grid_key, "apps/grid/db").0, 200, "the old key works through its grace");
    // An aged-out key was replaced; the old one stays refused.
    let (st, v) = read(&s, s.admin(), "bots/old-bot");
    assert_eq!(st, 200, "{v}");
    let new_old = v["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(read(&s, &new_old, "bots/old-bot").0, 200);
    assert_error(&read(&s, &old_key, "bots/old-bot"), 401, "key_expired");

    // Each change is on record where `key show` and `secret history` look.
    let shown = key_state(&s, &grid);
    let changes: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert!(changes.contains(&"rolled"), "{shown}");
    let o = s.cli(Some(s.admin()), &["secret", "history", "bots/grid-bot"], None);
    assert!(stdout(&o).contains("written"), "{}", stdout(&o));
    let audit = stdout(&s.cli(Some(s.admin()), &["audit", "export"], None));
    assert!(!audit.contains(&new_key) && !audit.contains(&new_old), "a new key on the audit log");
    assert!(!s.log_text().contains(&new_key), "a new key in the server log");

    // After the grace the old key is refused; the next run finds nothing due.
    s.set_clock(t0 + 26 * DAY + 1);
    assert_error(&read(&s, &grid_key, "apps/grid/db"), 401, "key_rolled");
    let o = roll(&s, s.admin(), &["--store-under", "bots/"]);
    assert!(o.status.success() && stdout(&o).contains("no key is due to roll"), "{}", stdout(&o));

    // Without --store-under the new key is printed, once.
    s.set_clock(t0 + 85 * DAY);
    let o = roll(&s, s.admin(), &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rolled = out["rolled"].as_array().unwrap();
    let alerts_new = rolled.iter().find(|i| i["id"] == alerts.as_str()).unwrap_or_else(|| panic!("{out}"));
    let k = alerts_new["key"].as_str().unwrap();
    assert_eq!(s.http("GET", "/v1/secrets/apps/a/x", Some(k), None).0, 404, "the printed key authenticates");
}

#[test]
fn a_scheduled_roll_changes_nothing_without_every_permission() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let t0 = now_ms();
    s.set_clock(t0);
    let (due, _) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/*"], "max_age": "3d"}));
    let roller = create_key(&s, json!({"name": "roller", "scopes": ["key:admin", "secret:read:apps/*"]})).1;
    let reader = create_key(&s, json!({"name": "r", "scopes": ["secret:read:apps/*"]})).1;
    s.set_clock(t0 + 2 * DAY);
    let post = |token: &str, body: Value| s.http("POST", "/v1/rotation/roll", Some(token), Some(&body));

    // key:admin without secret:write where the new key would go: refused, nothing rolled.
    assert_error(&post(&roller, json!({"store_under": "bots/"})), 403, "scope_missing");
    assert_error(&post(&reader, json!({})), 403, "scope_missing");
    assert!(key_state(&s, &due)["rolled_to"].is_null());
    for bad in ["bots", "exchanges/", "../x/", ""] {
        assert_error(&post(s.admin(), json!({"store_under": bad})), 400, "invalid_path");
    }
    assert_error(&post(s.admin(), json!({"grace": "soon"})), 400, "invalid_request");
    assert_error(&post(s.admin(), json!({"due_within": "x"})), 400, "invalid_request");
    assert_error(&post(s.admin(), json!({"unknown": 1})), 400, "invalid_json");
    assert!(key_state(&s, &due)["rolled_to"].is_null());

    // A token never rolls keys (a key made from it would outlive it).
    let (st, tok) = s.http("POST", "/v1/auth/token", Some(&roller), Some(&json!({"ttl": "5m"})));
    assert_eq!(st, 201, "{tok}");
    assert_error(&post(tok["token"].as_str().unwrap(), json!({})), 403, "scope_missing");

    // With the permissions it needs, the roller rolls the key it may manage.
    let (st, v) = post(&roller, json!({}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["rolled"][0]["id"], due.as_str(), "{v}");
}
