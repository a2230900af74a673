//! The key ledger through the real binary: an earlier copy of a key row
//! or a counter, written back to the database, brings nothing back; only
//! the keys of the part of the ledger that no longer holds are refused,
//! and `--reseal-key-ledger` recovers with those keys revoked.

use crate::harness::*;
use crate::pipeline::{account, fake, order};
use serde_json::{Value, json};

/// The part of the ledger a key id counts in (FNV-1a, low byte), as
/// documented in docs/threat-model.md.
fn part_of(id: &str) -> u32 {
    id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) & 0xff
}

/// Creates keys from `body` until one lands in a part none of `taken` is in.
fn key_apart(s: &Server, body: Value, taken: &mut Vec<u32>) -> (String, String) {
    loop {
        let (id, key) = create_key(s, body.clone());
        if !taken.contains(&part_of(&id)) {
            taken.push(part_of(&id));
            return (id, key);
        }
        s.http("DELETE", &format!("/v1/keys/{id}"), Some(s.admin()), None);
    }
}

fn state_of(s: &Server, id: &str) -> String {
    let (_, list) = s.http("GET", "/v1/keys", Some(s.admin()), None);
    let keys = list["keys"].as_array().cloned().unwrap_or_default();
    keys.iter().find(|k| k["id"] == id).map(|k| k["state"].as_str().unwrap_or("").to_string()).unwrap_or_default()
}

/// Starts the server on `dir` again, with the admin key of its first start.
fn restart(dir: &std::path::Path, extra: &[&str], admin: &str) -> Server {
    let mut s = start(dir, extra);
    s.admin = Some(admin.to_string());
    s
}

fn read_x(s: &Server, key: &str) -> (u16, Value) {
    s.http("GET", "/v1/secrets/x", Some(key), None)
}

#[test]
fn an_earlier_copy_written_back_brings_nothing_back() {
    if crate::pg::sqlite_only() {
        return;
    }
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let admin_id = s.http("GET", "/v1/keys", Some(s.admin()), None).1["keys"][0]["id"].as_str().unwrap().to_string();
    let mut taken = vec![part_of(&admin_id)];
    assert_eq!(put(&s, s.admin(), "x", json!({"k": "v"})).0, 200);
    account(&s, "bin", Some(&f.url));
    let reader = json!({"name": "r", "scopes": ["secret:read:x"]});
    let (rid, revoked) = key_apart(&s, reader.clone(), &mut taken);
    let (uid, once) = key_apart(&s, json!({"name": "u", "scopes": ["secret:read:x"], "uses": 2}), &mut taken);
    let capped = json!({"name": "c", "scopes": ["account:bin:trade"], "allow_ips": ["127.0.0.1"], "max_notional_per_day": "1000"});
    let (cid, trader) = key_apart(&s, capped, &mut taken);
    let (_, bystander) = key_apart(&s, reader, &mut taken);
    let admin = s.admin().to_string();
    s.stop();
    let db = dir.path().join("keyward-data/keyward.db");
    // The attacker's copy, taken while every key was fresh.
    sql(
        &db,
        &["CREATE TABLE copy AS SELECT * FROM access_keys", "CREATE TABLE usage_copy AS SELECT * FROM order_usage"],
    );

    let s = restart(dir.path(), &["--allow-upstream", "127.0.0.1"], &admin);
    assert_eq!(s.http("DELETE", &format!("/v1/keys/{rid}"), Some(s.admin()), None).0, 200);
    for _ in 0..2 {
        assert_eq!(read_x(&s, &once).0, 200);
    }
    assert_error(&read_x(&s, &once), 403, "uses_exhausted");
    assert_eq!(order(&s, &trader, "bin", "0.012", "o1").0, 200, "600 of 1000");
    assert_error(&order(&s, &trader, "bin", "0.012", "o2"), 403, "order_guard");
    s.stop();
    // Written back: the revoked key's row, the spent key's uses, the day's counter.
    let back = |col: &str, id: &str| {
        format!("UPDATE access_keys SET {col} = (SELECT {col} FROM copy WHERE copy.id = '{id}') WHERE id = '{id}'")
    };
    sql(
        &db,
        &[
            back("state", &rid),
            back("mac", &rid),
            back("uses_remaining", &uid),
            "DELETE FROM order_usage".to_string(),
            "INSERT INTO order_usage SELECT * FROM usage_copy".to_string(),
        ],
    );

    let s = restart(dir.path(), &["--allow-upstream", "127.0.0.1"], &admin);
    assert_error(&read_x(&s, &revoked), 401, "key_tampered");
    assert_error(&read_x(&s, &once), 401, "key_tampered");
    assert_error(&order(&s, &trader, "bin", "0.012", "o3"), 401, "key_tampered");
    assert_eq!(read_x(&s, &bystander).0, 200, "keys elsewhere in the ledger serve on");
    for id in [&rid, &uid, &cid] {
        assert_eq!(state_of(&s, id), "tampered", "{id}");
        let changed = s.http("POST", &format!("/v1/keys/{id}/enable"), Some(s.admin()), None);
        assert_error(&changed, 409, "key_tampered");
    }
    assert!(s.log_text().contains("the key ledger failed its check"), "the log says so");
    assert_eq!(f.log().iter().filter(|l| l["path"] == "/api/v3/order").count(), 1, "one order reached the exchange");
    s.stop();

    // The operator looks, then re-seals: the keys of the broken parts come
    // back revoked (a written-back copy may have un-revoked one), never active.
    let s = restart(dir.path(), &["--allow-upstream", "127.0.0.1", "--reseal-key-ledger"], &admin);
    assert_error(&read_x(&s, &revoked), 401, "key_revoked");
    assert_error(&read_x(&s, &once), 401, "key_revoked");
    assert_error(&order(&s, &trader, "bin", "0.012", "o4"), 401, "key_revoked");
    assert_eq!(read_x(&s, &bystander).0, 200);
    assert!(s.log_text().contains(&rid), "the log names the keys it revoked");
    s.stop();
    let s = restart(dir.path(), &["--allow-upstream", "127.0.0.1"], &admin);
    assert_error(&read_x(&s, &revoked), 401, "key_revoked");
    assert_eq!(read_x(&s, &bystander).0, 200, "the re-sealed ledger holds on the next start");
}

#[test]
fn a_deleted_ledger_head_refuses_every_key_until_resealed() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(put(&s, s.admin(), "x", json!({"k": "v"})).0, 200);
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:x"]}));
    let admin = s.admin().to_string();
    s.stop();
    let db = dir.path().join("keyward-data/keyward.db");
    sql(&db, &["DELETE FROM key_ledger"]);
    let s = start(dir.path(), &[]);
    assert_error(&read_x(&s, &reader), 401, "key_tampered");
    assert_error(&read_x(&s, &admin), 401, "key_tampered");
    s.stop();
    // Every key was in a broken part: every key is revoked, and a recovery admin key printed.
    let s = start(dir.path(), &["--reseal-key-ledger"]);
    assert_error(&read_x(&s, &admin), 401, "key_revoked");
    assert_error(&read_x(&s, &reader), 401, "key_revoked");
    let recovery = s.admin().to_string();
    assert_ne!(recovery, admin);
    assert_eq!(read_x(&s, &recovery).0, 200);
    let (_, fresh) = create_key(&s, json!({"name": "r2", "scopes": ["secret:read:x"]}));
    assert_eq!(read_x(&s, &fresh).0, 200, "the operator makes new keys for the bots");
}

#[test]
fn a_row_swapped_while_the_server_runs_is_refused_at_its_next_change() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(put(&s, s.admin(), "x", json!({"k": "v"})).0, 200);
    let (uid, once) = create_key(&s, json!({"name": "u", "scopes": ["secret:read:x"], "uses": 2}));
    assert_eq!(read_x(&s, &once).0, 200);
    // Uses raised under the running server: the next use does not start from them.
    let db = dir.path().join("keyward-data/keyward.db");
    sql(&db, &[format!("UPDATE access_keys SET uses_remaining = 50 WHERE id = '{uid}'")]);
    assert_error(&read_x(&s, &once), 409, "key_tampered");
    assert!(s.log_text().contains("not the one keyward last wrote"), "the log says so");
    let (_, shown) = s.http("GET", &format!("/v1/keys/{uid}"), Some(s.admin()), None);
    assert_eq!(shown["uses_remaining"], 1, "keyward still holds the count it wrote");
}

#[test]
fn concurrent_uses_are_exact_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(put(&s, s.admin(), "x", json!({"k": "v"})).0, 200);
    let admin = s.admin().to_string();
    let (uid, once) = create_key(&s, json!({"name": "u", "scopes": ["secret:read:x"], "uses": 20}));
    // 48 requests at once on 8 threads: the uses are group-committed, never over-granted.
    let granted: usize = std::thread::scope(|t| {
        let workers: Vec<_> =
            (0..8).map(|_| t.spawn(|| (0..6).filter(|_| read_x(&s, &once).0 == 200).count())).collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(granted, 20);
    assert_error(&read_x(&s, &once), 403, "uses_exhausted");
    s.stop();
    let s = restart(dir.path(), &[], &admin);
    let (_, shown) = s.http("GET", &format!("/v1/keys/{uid}"), Some(s.admin()), None);
    assert_eq!(
        (shown["uses_remaining"].clone(), shown["state"].clone()),
        (json!(0), json!("active")),
        "the ledger holds"
    );
    assert_error(&read_x(&s, &once), 403, "uses_exhausted");
}
