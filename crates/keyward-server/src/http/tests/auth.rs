//! Authentication, in process: every refusal of identification and
//! admission has its code and status, a token follows its parent, the
//! failed-auth throttle never stops a valid key, and a sealed server
//! refuses everything with `sealed`.

use super::{Rig, T0, Table, with};
use crate::config::{RuntimeConfig, ThrottleConfig};
use keyward_core::clock::rfc3339;
use serde_json::json;
use std::time::Duration;

fn reader(extra: serde_json::Value) -> serde_json::Value {
    with(json!({"name": "r", "scopes": ["secret:read:x"]}), extra)
}

#[tokio::test]
async fn every_refusal_of_a_credential_has_its_code() {
    let rig = Rig::new().await;
    rig.put("x", json!({"data": {"k": "v"}})).await;
    let a = rig.admin.clone();
    let (_, good) = rig.key(reader(json!({}))).await;
    let (dis, disabled) = rig.key(reader(json!({}))).await;
    rig.call("POST", &format!("/v1/keys/{dis}/disable"), Some(&a), None).await;
    let (rev, revoked) = rig.key(reader(json!({}))).await;
    rig.call("DELETE", &format!("/v1/keys/{rev}"), Some(&a), None).await;
    let (_, expiring) = rig.key(reader(json!({"expires_at": rfc3339(T0 + 1000)}))).await;
    let (_, pending) = rig.key(reader(json!({"not_before": rfc3339(T0 + 60_000)}))).await;
    let (old, rolled) = rig.key(reader(json!({}))).await;
    rig.call("POST", &format!("/v1/keys/{old}/roll"), Some(&a), Some(json!({"grace": "0s"}))).await;
    let (_, bound) = rig.key(reader(json!({"allow_ips": ["10.0.0.0/8"]}))).await;
    let (_, limited) = rig.key(reader(json!({"rate": "1/m,burst=1"}))).await;
    let (_, once) = rig.key(reader(json!({"uses": 1}))).await;
    let (_, platform) = rig.key(json!({"name": "p", "namespace": "shop", "permissions": ["orders.read"]})).await;
    let (tid, tampered) = rig.key(reader(json!({}))).await;
    // A database writer widens a key's scopes without the root-derived MAC key.
    // (The ledger is re-sealed over the edit here, as only the root key
    // could: this row shows the row MAC alone refusing it.)
    let mut row = rig.store.key(&tid).await.unwrap().unwrap();
    row.policy = row.policy.replace("secret:read:x", "secret:read:*");
    let u = rig.state.barrier.unsealed().unwrap();
    let mut rows = rig.store.list_keys().await.unwrap();
    rows.iter_mut().filter(|r| r.id == tid).for_each(|r| *r = row.clone());
    let usage = rig.store.list_order_usage().await.unwrap();
    let stored = rig.store.ledger_head().await.unwrap().map(|h| h.rev);
    let (_, write) = crate::keys::Ledger::reseal(&u, &rows, &usage, stored, vec![row]);
    rig.store.commit_ledger(&write).await.unwrap();
    rig.state.keys.load(&u).await.unwrap();
    for k in [&limited, &once] {
        assert_eq!(rig.call("GET", "/v1/secrets/x", Some(k), None).await.status, 200);
    }
    rig.clock.advance_ms(1000);
    let unknown = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    let mut bad_checksum = good.clone();
    bad_checksum.replace_range(10..11, if &good[10..11] == "A" { "B" } else { "A" });

    let mut t = Table::default();
    let get = |auth: Option<String>, from: Option<&'static str>| {
        let rig = &rig;
        async move { rig.send(from, "GET", "/v1/secrets/x", auth.as_deref(), None).await }
    };
    let bearer = |k: &str| Some(format!("Bearer {k}"));
    t.row("valid key", &get(bearer(&good), None).await, 200, "");
    t.row("no Authorization header", &get(None, None).await, 401, "key_invalid");
    t.row("another scheme", &get(Some(format!("Basic {good}")), None).await, 401, "key_invalid");
    t.row("garbage", &get(bearer("kw_garbage"), None).await, 401, "key_invalid");
    t.row("bad checksum", &get(bearer(&bad_checksum), None).await, 401, "key_invalid");
    t.row("unknown key", &get(bearer(unknown.expose()), None).await, 401, "key_invalid");
    t.row("platform key on keyward's API", &get(bearer(&platform), None).await, 401, "key_invalid");
    t.row("disabled", &get(bearer(&disabled), None).await, 401, "key_disabled");
    t.row("revoked", &get(bearer(&revoked), None).await, 401, "key_revoked");
    t.row("expired", &get(bearer(&expiring), None).await, 401, "key_expired");
    t.row("not valid yet", &get(bearer(&pending), None).await, 401, "key_pending");
    t.row("rolled, grace over", &get(bearer(&rolled), None).await, 401, "key_rolled");
    t.row("tampered row", &get(bearer(&tampered), None).await, 401, "key_tampered");
    t.row("outside its networks", &get(bearer(&bound), None).await, 403, "ip_not_allowed");
    t.row("inside its networks", &get(bearer(&bound), Some("10.1.2.3")).await, 200, "");
    t.row("rate spent", &get(bearer(&limited), None).await, 429, "rate_limited");
    t.row("uses spent", &get(bearer(&once), None).await, 403, "uses_exhausted");
    t.row("scope missing", &rig.call("GET", "/v1/secrets/y", Some(&good), None).await, 403, "scope_missing");
    t.done();
}

#[tokio::test]
async fn a_token_is_bound_to_its_address_and_follows_its_parent() {
    let rig = Rig::new().await;
    rig.put("x", json!({"data": {"k": "v"}})).await;
    let (id, key) = rig.key(reader(json!({}))).await;
    let minted = rig.call("POST", "/v1/auth/token", Some(&key), Some(json!({"ttl": "5m"}))).await;
    assert_eq!(minted.status, 201, "{}", minted.body);
    let token = minted.body["token"].as_str().unwrap().to_string();
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let mut t = Table::default();
    let get = |tok: &str, from: Option<&'static str>| {
        let rig = &rig;
        let auth = format!("Bearer {tok}");
        async move { rig.send(from, "GET", "/v1/secrets/x", Some(&auth), None).await }
    };
    t.row("token", &get(&token, None).await, 200, "");
    t.row("token from another address", &get(&token, Some("127.0.0.2")).await, 403, "ip_not_allowed");
    t.row("forged token", &get(&forged, None).await, 401, "key_invalid");
    let widen = rig.call("POST", "/v1/auth/token", Some(&key), Some(json!({"scopes": ["secret:read:*"]}))).await;
    t.row("token wider than its key", &widen, 403, "scope_missing");
    t.row("token minting a token", &rig.call("POST", "/v1/auth/token", Some(&token), None).await, 403, "scope_missing");
    rig.clock.advance_ms(5 * 60_000);
    t.row("token past its ttl", &get(&token, None).await, 401, "key_expired");
    rig.clock.advance_ms(-5 * 60_000);
    rig.call("DELETE", &format!("/v1/keys/{id}"), Some(&rig.admin), None).await;
    t.row("token of a revoked key", &get(&token, None).await, 401, "key_revoked");
    t.done();
}

#[tokio::test]
async fn the_throttle_slows_and_blocks_bad_keys_never_a_valid_one() {
    let throttle = ThrottleConfig {
        slow_after: 1,
        block_after: 3,
        window: Duration::from_secs(60),
        block_for: Duration::from_secs(60),
        max_delay: Duration::from_millis(20),
    };
    let rig = Rig::with(RuntimeConfig { throttle, ..RuntimeConfig::default() }).await;
    rig.put("x", json!({"data": {"k": "v"}})).await;
    let (_, good) = rig.key(reader(json!({}))).await;
    let bad = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    let auth = format!("Bearer {}", bad.expose());
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(rig.send(Some("192.0.2.7"), "GET", "/v1/secrets/x", Some(&auth), None).await.code().to_string());
    }
    assert_eq!(codes, ["key_invalid", "key_invalid", "key_invalid", "auth_throttled", "auth_throttled"]);
    let valid = rig.send(Some("192.0.2.7"), "GET", "/v1/secrets/x", Some(&format!("Bearer {good}")), None).await;
    assert_eq!(valid.status, 200, "a valid key from a throttled address still works");
    let other = rig.send(Some("192.0.2.8"), "GET", "/v1/secrets/x", Some(&auth), None).await;
    assert_eq!(other.code(), "key_invalid", "another address is not throttled");
}

#[tokio::test]
async fn sealed_refuses_every_key_and_the_audit_says_who_was_refused() {
    let rig = Rig::new().await;
    let (kid, key) = rig.key(reader(json!({}))).await;
    let denied = rig.call("GET", "/v1/secrets/y", Some(&key), None).await;
    let failed = rig.call("GET", "/v1/secrets/x", Some("kw_nope"), None).await;
    let e = rig.entry(&denied.request_id).await;
    assert_eq!((e.decision.as_str(), e.code.as_str(), e.key_id.as_str()), ("deny", "scope_missing", kid.as_str()));
    let e = rig.entry(&failed.request_id).await;
    assert_eq!((e.decision.as_str(), e.code.as_str(), e.key_id.as_str()), ("deny", "key_invalid", ""));
    let sealed = rig.call("POST", "/v1/sys/seal", Some(&rig.admin), None).await;
    assert_eq!(sealed.status, 200, "{}", sealed.body);
    let mut t = Table::default();
    for k in [&rig.admin, &key] {
        t.row("sealed", &rig.call("GET", "/v1/secrets/x", Some(k), None).await, 503, "sealed");
    }
    t.row("health answers", &rig.call("GET", "/v1/sys/health", None, None).await, 200, "");
    t.done();
    assert!(rig.state.keys.all().unwrap().is_empty(), "the key index left memory");
}

#[tokio::test]
async fn a_token_never_mints_a_key_nor_changes_its_parent() {
    let rig = Rig::new().await;
    rig.put("apps/db", json!({"data": {"password": "p"}})).await;
    let (pid, parent) = rig.key(json!({"name": "p", "scopes": ["key:admin", "secret:read:*"]})).await;
    let (cid, _) = rig.key(json!({"name": "c", "scopes": ["key:admin"]})).await;
    let t = rig.call("POST", "/v1/auth/token", Some(&parent), Some(json!({"scopes": ["key:admin"]}))).await;
    let token = t.body["token"].as_str().unwrap().to_string();
    let mut t = Table::default();
    for action in ["roll", "revoke", "disable"] {
        let r = rig.call("POST", &format!("/v1/keys/{pid}/{action}"), Some(&token), None).await;
        t.row(&format!("token {action}s its parent"), &r, 404, "not_found");
    }
    let create = rig.call("POST", "/v1/keys", Some(&token), Some(json!({"name": "n", "scopes": ["key:admin"]}))).await;
    t.row("token creates a key", &create, 403, "scope_missing");
    let roll = rig.call("POST", &format!("/v1/keys/{cid}/roll"), Some(&token), None).await;
    t.row("token rolls a key it covers", &roll, 403, "scope_missing");
    t.done();
    let shown = rig.call("GET", &format!("/v1/keys/{pid}"), Some(&rig.admin), None).await;
    assert_eq!((shown.body["state"].as_str(), &shown.body["rolled_to"]), (Some("active"), &json!(null)));
    assert_eq!(rig.state.keys.count(), 3, "no key was made");
}

#[tokio::test]
async fn a_refused_key_is_named_in_its_entry() {
    let rig = Rig::new().await;
    let (id, key) = rig.key(reader(json!({}))).await;
    rig.call("POST", &format!("/v1/keys/{id}/revoke"), Some(&rig.admin), None).await;
    let r = rig.call("GET", "/v1/secrets/x", Some(&key), None).await;
    assert_eq!(r.code(), "key_revoked");
    let e = rig.entry(&r.request_id).await;
    assert_eq!((e.decision.as_str(), e.code.as_str(), e.key_id.as_str()), ("deny", "key_revoked", id.as_str()));
}

#[tokio::test]
async fn disabling_and_enabling_does_not_refill_the_rate() {
    let rig = Rig::new().await;
    rig.put("x", json!({"data": {"k": "v"}})).await;
    let (id, key) = rig.key(reader(json!({"rate": "1/h,burst=1"}))).await;
    assert_eq!(rig.call("GET", "/v1/secrets/x", Some(&key), None).await.status, 200);
    for action in ["disable", "enable"] {
        assert_eq!(rig.call("POST", &format!("/v1/keys/{id}/{action}"), Some(&rig.admin), None).await.status, 200);
    }
    assert_eq!(rig.call("GET", "/v1/secrets/x", Some(&key), None).await.code(), "rate_limited");
}

#[tokio::test]
async fn a_read_racing_a_seal_leaves_nothing_decrypted_behind() {
    use crate::seal::Unsealed;
    use keyward_core::keyring::{Keyring, RootKey};
    let rig = Rig::new().await;
    rig.put("apps/db", json!({"data": {"password": "p"}})).await;
    // A request identified before the seal goes on to read after it.
    let in_flight = rig.state.barrier.unsealed().unwrap();
    rig.state.seal().unwrap();
    rig.state.secrets.current(&in_flight, "apps/db").await.unwrap();
    drop(in_flight);
    // Nothing was kept: a session with another root key cannot get it back.
    let other = Unsealed::new(Keyring::new(RootKey::from_slice(&[9; 32]).unwrap(), 1));
    assert!(rig.state.secrets.current(&other, "apps/db").await.is_err(), "plaintext stayed cached after seal");
}
