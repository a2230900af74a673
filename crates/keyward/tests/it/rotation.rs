//! Rotation policies through the real binary: secrets with a rotation
//! period, access keys with a maximum age (their own or the server's
//! default), `keyward rotation status` at its boundaries with the test
//! clock, `key_expired` at the maximum age, and the overdue gauge.

use crate::harness::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// Now, at a millisecond with no trailing zero (RFC 3339 texts compare as
/// strings: keyward drops trailing zeros of the fraction, the harness keeps them).
fn now_ms() -> i64 {
    use keyward_core::clock::Clock;
    keyward_core::clock::SystemClock.now_ms() / 1000 * 1000 + 123
}

fn rotation(s: &Server, query: &str) -> Value {
    let (st, v) = s.http("GET", &format!("/v1/rotation{query}"), Some(s.admin()), None);
    assert_eq!(st, 200, "{v}");
    v
}

/// `(id, status)` of every item listed.
fn listed(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i["status"].as_str().unwrap().to_string()))
        .collect()
}

fn status_of(v: &Value, id: &str) -> Option<String> {
    listed(v).into_iter().find(|(i, _)| i == id).map(|(_, s)| s)
}

#[test]
fn rotation_status_follows_periods_and_maximum_ages_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock", "--key-max-age", "90d"]);
    let t0 = now_ms();
    s.set_clock(t0);
    let a = s.admin().to_string();
    let secret = |path: &str, body: Value| assert_eq!(s.http("PUT", path, Some(&a), Some(&body)).0, 200);
    secret("/v1/secrets/apps/db", json!({"data": {"pw": "p"}, "rotation_period": "30d"}));
    secret(
        "/v1/secrets/exchanges/bin",
        json!({"type": "binance", "data": {"api_key": "K", "api_secret": "S"}, "rotation_period": "60d"}),
    );
    secret("/v1/secrets/apps/static", json!({"data": {"v": "1"}}));
    let (bot, bot_key) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:apps/*"], "max_age": "10d"}));
    let (plain, _) = create_key(&s, json!({"name": "plain", "scopes": ["secret:read:apps/*"]}));
    let (shop, _) = create_key(&s, json!({"name": "p", "namespace": "shop", "permissions": ["x"]}));

    let all = rotation(&s, "");
    let ids: Vec<String> = listed(&all).into_iter().map(|(i, _)| i).collect();
    assert_eq!(&ids[..3], [bot.as_str(), "apps/db", "exchanges/bin"], "soonest first: {all}");
    assert!(ids.contains(&plain), "the server's --key-max-age applies to a key without its own");
    assert!(!ids.contains(&shop), "platform keys age only by their own max_age");
    assert!(!ids.iter().any(|i| i == "apps/static"), "a secret without a period does not rotate");
    let item = |v: &Value, id: &str| v["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    let b = item(&all, &bot);
    assert_eq!(
        (b["kind"].clone(), b["every"].clone(), b["state"].clone()),
        (json!("access_key"), json!("10d"), json!("active"))
    );
    assert_eq!(b["run"], format!("keyward key roll {bot} --grace 24h"));
    assert_eq!(item(&all, "exchanges/bin")["kind"], "exchange_account");
    assert_eq!(item(&all, "apps/db")["due_at"], rfc3339(t0 + 30 * DAY));
    assert_eq!(rotation(&s, "?due_within=7d")["items"], json!([]), "nothing is due within a week yet");

    // 7 days before the maximum age: due (and listed within 7d); a millisecond earlier: not.
    s.set_clock(t0 + 3 * DAY - 1);
    assert_eq!(status_of(&rotation(&s, ""), &bot).as_deref(), Some("ok"));
    s.set_clock(t0 + 3 * DAY);
    let week = rotation(&s, "?due_within=7d");
    assert_eq!(listed(&week), [(bot.clone(), "due".to_string())], "{week}");
    assert_eq!((week["due"].clone(), week["overdue"].clone()), (json!(1), json!(0)));
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&bot_key), None).0, 200, "a due key still works");

    // At the maximum age: overdue, refused with key_expired, counted by the gauge.
    s.set_clock(t0 + 10 * DAY);
    assert_eq!(status_of(&rotation(&s, "?due_within=1h"), &bot).as_deref(), Some("overdue"));
    let refused = s.http("GET", "/v1/secrets/apps/db", Some(&bot_key), None);
    assert_error(&refused, 401, "key_expired");
    assert!(refused.1["error"]["message"].as_str().unwrap().contains("maximum age"), "{}", refused.1);
    let metrics = metrics_text(&s, &a);
    assert!(metrics.contains("keyward_rotation_overdue 1"), "{metrics}");
    let (_, shown) = s.http("GET", &format!("/v1/keys/{bot}"), Some(&a), None);
    assert_eq!((shown["max_age"].clone(), shown["max_age_at"].clone()), (json!("10d"), json!(rfc3339(t0 + 10 * DAY))));

    // The CLI table names what to run.
    let o = s.cli(Some(&a), &["rotation", "status", "--due-within", "7d"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains(&bot) && table.contains("overdue") && table.contains("keyward key roll"), "{table}");
    let o = s.cli(Some(&a), &["rotation", "status", "--json"], None);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["overdue"], 1);

    // Secrets at their period; a new version resets the clock.
    s.set_clock(t0 + 30 * DAY);
    assert_eq!(status_of(&rotation(&s, ""), "apps/db").as_deref(), Some("overdue"));
    secret("/v1/secrets/apps/db", json!({"data": {"pw": "q"}, "rotation_period": "30d"}));
    assert_eq!(status_of(&rotation(&s, ""), "apps/db").as_deref(), Some("ok"));
    assert_error(&s.http("GET", "/v1/rotation?due_within=soon", Some(&a), None), 400, "invalid_query");
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:*"]}));
    assert_error(&s.http("GET", "/v1/rotation", Some(&reader), None), 403, "scope_missing");
}

#[test]
fn a_rolled_key_starts_a_new_age() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let t0 = now_ms();
    s.set_clock(t0);
    let (id, _) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:x"], "max_age": "30d"}));
    s.set_clock(t0 + 29 * DAY);
    let (st, rolled) = s.http("POST", &format!("/v1/keys/{id}/roll"), Some(s.admin()), Some(&json!({"grace": "1h"})));
    assert_eq!(st, 201, "{rolled}");
    let new_id = rolled["id"].as_str().unwrap().to_string();
    let v = rotation(&s, "");
    assert_eq!(listed(&v), [(new_id, "ok".to_string())], "the old key is rolled and no longer listed: {v}");
    assert_eq!(v["items"][0]["due_at"], rfc3339(t0 + 59 * DAY));
    // Zero or nonsense is refused with the flag named.
    for bad in ["0", "soon"] {
        let err = start_in(dir.path(), &["--key-max-age", bad]).err().expect("refused");
        assert!(err.contains("--key-max-age"), "{err}");
    }
    let (st, v) = s.http(
        "POST",
        "/v1/keys",
        Some(s.admin()),
        Some(&json!({"name": "z", "scopes": ["secret:read:x"], "max_age": "0s"})),
    );
    assert_eq!((st, v["error"]["code"].clone()), (400, json!("invalid_field")), "{v}");
}

#[test]
fn a_key_reported_compromised_is_refused_with_its_forensic_report() {
    let f = crate::pipeline::fake();
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = crate::audit::receiver();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1", "--alert-webhook", &hook]);
    crate::pipeline::account(&s, "bin", Some(&f.url));
    let body =
        json!({"name": "grid", "scopes": ["account:bin:trade", "account:bin:read"], "allow_ips": ["127.0.0.0/8"]});
    let (id, key) = create_key(&s, body);
    let (_, bystander) =
        create_key(&s, json!({"name": "other", "scopes": ["account:bin:read"], "allow_ips": ["127.0.0.1"]}));
    assert_eq!(crate::pipeline::order(&s, &key, "bin", "0.01", "grid-1").0, 200);
    let mbx = [("X-MBX-APIKEY", key.as_str())];
    let from_elsewhere = s.http_from("127.0.0.7", "GET", "/proxy/bin/api/v3/account", None, None, &mbx);
    assert_eq!(from_elsewhere.status, 200);
    let withdraw = s.http_from("127.0.0.7", "POST", "/proxy/bin/sapi/v1/capital/withdraw/apply", None, None, &mbx);
    assert_eq!(withdraw.status, 403);
    let other = [("X-MBX-APIKEY", bystander.as_str())];
    assert_eq!(s.http_from("127.0.0.1", "GET", "/proxy/bin/api/v3/account", None, None, &other).status, 200);

    let o = s.cli(Some(s.admin()), &["key", "compromised", &id, "--hours", "24", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(out["key"]["state"], "compromised");
    let r = &out["report"];
    assert_eq!((r["allowed"].clone(), r["denied"].clone()), (json!(2), json!(1)), "{r}");
    let ips: Vec<&str> = r["addresses"].as_array().unwrap().iter().map(|a| a["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.7"], "by first use");
    assert_eq!(r["addresses"][1]["denied"], 1);
    assert_eq!(r["denials"][0]["code"], "scope_missing");
    assert_eq!(r["denials"][0]["class"], "withdraw");
    let orders = r["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{r}");
    assert_eq!(orders[0]["order"]["orders"][0]["client_order_id"], "grid-1");
    assert!(!orders[0]["exchange_order_ids"].as_array().unwrap().is_empty(), "the exchange's order id: {r}");
    assert!(r["actions"].as_array().unwrap().iter().all(|a| a["ip"] != "" && a["time"].is_string()));
    assert!(!r.to_string().contains(&key), "the report holds key ids, never keys");

    // Refused at once, for good; the bystander works on.
    let refused = s.http_from("127.0.0.1", "GET", "/proxy/bin/api/v3/account", None, None, &mbx);
    assert_eq!((refused.status, refused.body["error"]["code"].clone()), (401, json!("key_compromised")));
    assert_eq!(s.http_from("127.0.0.1", "GET", "/proxy/bin/api/v3/account", None, None, &other).status, 200);
    let enable = s.http("POST", &format!("/v1/keys/{id}/enable"), Some(s.admin()), None);
    assert_eq!(enable.0, 409, "a compromised key cannot be enabled: {}", enable.1);
    let alerts = crate::audit::wait_for(&got, |v| v["rule"] == "key_compromised");
    assert!(alerts.iter().any(|v| v["subject"] == format!("key {id}")), "{alerts:?}");
    // The table form names the same things; bad windows are refused.
    let (tid, _) = create_key(&s, json!({"name": "t", "scopes": ["secret:read:x"]}));
    let o = s.cli(Some(s.admin()), &["key", "compromised", &tid], None);
    let table = stdout(&o);
    assert!(o.status.success() && table.contains("compromised") && table.contains("Addresses"), "{table}");
    let bad = s.http("POST", &format!("/v1/keys/{tid}/compromised"), Some(s.admin()), Some(&json!({"hours": 0})));
    assert_error(&bad, 400, "invalid_request");
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:*"]}));
    assert_error(&s.http("POST", &format!("/v1/keys/{tid}/compromised"), Some(&reader), None), 403, "scope_missing");
}

#[test]
fn key_show_lists_each_change_with_its_time_and_who_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let a = s.admin().to_string();
    let admin_id = s.http("GET", "/v1/keys", Some(&a), None).1["keys"][0]["id"].as_str().unwrap().to_string();
    let (manager_id, manager) =
        create_key(&s, json!({"name": "m", "scopes": ["key:admin", "secret:read:*"], "allow_ips": ["127.0.0.1"]}));
    let (id, bot) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:x"], "meta": {"customer": "c-1"}}));
    // Only a revoked (or compromised) key can be destroyed.
    assert_error(&s.http("POST", &format!("/v1/keys/{id}/destroy"), Some(&a), None), 409, "invalid_state");
    for (who, action) in [(&a, "disable"), (&manager, "enable"), (&a, "revoke"), (&manager, "destroy")] {
        assert_eq!(s.http("POST", &format!("/v1/keys/{id}/{action}"), Some(who), None).0, 200);
    }
    // A refused change is not history.
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:x"]}));
    assert_eq!(s.http("POST", &format!("/v1/keys/{id}/enable"), Some(&reader), None).0, 403);
    let (_, shown) = s.http("GET", &format!("/v1/keys/{id}"), Some(&a), None);
    let history: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["change"].as_str().unwrap().to_string(), h["by"].as_str().unwrap().to_string()))
        .collect();
    let expect = [
        ("created", &admin_id),
        ("disabled", &admin_id),
        ("active", &manager_id),
        ("revoked", &admin_id),
        ("destroyed", &manager_id),
    ];
    let expect: Vec<(String, String)> = expect.iter().map(|(c, b)| (c.to_string(), b.to_string())).collect();
    assert_eq!(history, expect, "{shown}");
    assert!(shown["history"][0]["time"].is_string());
    // Destroyed: its details wiped, the tombstone kept, a use still refused as revoked.
    assert_eq!((shown["state"].clone(), shown["meta"].clone()), (json!("destroyed"), json!({})), "{shown}");
    assert_error(&s.http("GET", "/v1/secrets/x", Some(&bot), None), 401, "key_revoked");
    assert_error(&s.http("POST", &format!("/v1/keys/{id}/enable"), Some(&a), None), 409, "invalid_state");
    let o = s.cli(Some(&a), &["key", "show", &id], None);
    let text = stdout(&o);
    assert!(o.status.success() && text.contains("history") && text.contains(&manager_id), "{text}");
}
