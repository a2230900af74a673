//! One conformance suite for every `Store` backend: what the server relies on.

#![allow(clippy::unwrap_used)]

use keyward_store::{
    KeyRecord, LedgerHead, LedgerPart, LedgerWrite, NamespaceRecord, NewVersion, OrderUsage, SealKind, SealRecord,
    SqliteStore, Stage, Store, StoreError, StoredCiphertext,
};

fn seal() -> SealRecord {
    SealRecord { kind: SealKind::Keyfile, check: "00".repeat(32), created_ms: 1, active_term: 1, retired_terms: vec![] }
}

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        hash: vec![id.len() as u8; 32],
        name: "n".into(),
        owner: None,
        namespace: "keyward".into(),
        policy: "{}".into(),
        state: "active".into(),
        created_ms: 5,
        mac: vec![1; 32],
        uses_remaining: None,
        last_used_ms: None,
        last_used_ip: None,
    }
}

fn head(rev: u64) -> LedgerHead {
    LedgerHead {
        rev,
        count: rev * 10,
        mac: vec![7; 32],
        parts: vec![LedgerPart { index: 0, bytes: vec![rev as u8; 40] }],
    }
}

/// A ledger write from `from` to `from + 1` (the store checks only the revision).
fn step(from: u64) -> LedgerWrite {
    LedgerWrite { expected_rev: Some(from), head: head(from + 1), ..LedgerWrite::default() }
}

fn version(path: &str, v: u64, expected: u64) -> NewVersion {
    NewVersion {
        path: path.into(),
        version: v,
        expected_latest: expected,
        stage: Stage::Current,
        kind: None,
        rotation_period_s: None,
        created_ms: 10 * v as i64,
        ciphertext: vec![v as u8; 8],
    }
}

async fn conformance(store: &dyn Store) {
    // Initialisation happens once.
    assert!(store.seal_record().await.unwrap().is_none());
    assert!(store.ledger_head().await.unwrap().is_none());
    let boot =
        LedgerWrite { expected_rev: None, head: head(1), insert_keys: vec![key("key_boot")], ..Default::default() };
    store.initialize(&seal(), &boot).await.unwrap();
    assert_eq!(store.seal_record().await.unwrap(), Some(seal()));
    assert_eq!(store.ledger_head().await.unwrap(), Some(head(1)), "the first head is written with the seal");
    let other = LedgerWrite { insert_keys: vec![key("key_other")], ..boot.clone() };
    assert!(matches!(store.initialize(&seal(), &other).await, Err(StoreError::AlreadyInitialized)));
    assert_eq!(store.list_keys().await.unwrap().len(), 1, "a refused init writes nothing");
    let mut rotated = seal();
    rotated.active_term = 2;
    store.put_seal_record(&rotated).await.unwrap();
    assert_eq!(store.seal_record().await.unwrap().unwrap().active_term, 2);

    // Versions: compare-and-insert.
    let mut first = version("a/b", 1, 0);
    first.kind = Some("binance".into());
    first.rotation_period_s = Some(60);
    let m = store.insert_version(&first).await.unwrap();
    assert_eq!((m.current_version, m.kind.as_deref(), m.rotation_period_s), (1, Some("binance"), Some(60)));
    assert!(matches!(store.insert_version(&version("a/b", 1, 0)).await, Err(StoreError::Conflict { current: 1 })));
    assert!(matches!(store.insert_version(&version("a/b", 3, 2)).await, Err(StoreError::Conflict { current: 1 })));
    let m = store.insert_version(&version("a/b", 2, 1)).await.unwrap();
    assert_eq!((m.current_version, m.kind.as_deref(), m.updated_ms, m.created_ms), (2, Some("binance"), 20, 10));
    assert_eq!(store.version("a/b", 2).await.unwrap().unwrap().ciphertext, Some(vec![2; 8]));
    assert!(store.version("a/b", 9).await.unwrap().is_none());
    assert!(
        store.versions("a/b").await.unwrap().iter().all(|v| v.ciphertext.is_none()),
        "listings carry no ciphertext"
    );

    // A batch is one transaction, in order: a failed check (here the second
    // write of version 3) is refused alone and the rest is written.
    let batch = [version("a/b", 3, 2), version("a/b", 3, 2), version("a/b", 4, 3), version("c", 1, 0)];
    let out = store.insert_versions(&batch).await.unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].as_ref().unwrap().current_version, 3);
    assert!(matches!(out[1], Err(StoreError::Conflict { current: 3 })));
    assert_eq!(out[2].as_ref().unwrap().current_version, 4);
    assert_eq!(out[3].as_ref().unwrap().current_version, 1);
    assert_eq!(store.secret_meta("a/b").await.unwrap().unwrap().current_version, 4);
    assert_eq!(store.versions("a/b").await.unwrap().len(), 4);
    assert!(store.destroy_secret("c").await.unwrap());

    // Listing by prefix, in path order; LIKE wildcards are not special.
    store.insert_version(&version("a/a", 1, 0)).await.unwrap();
    store.insert_version(&version("a_x", 1, 0)).await.unwrap();
    store.insert_version(&version("b", 1, 0)).await.unwrap();
    let paths = |v: Vec<keyward_store::SecretMeta>| v.into_iter().map(|m| m.path).collect::<Vec<_>>();
    assert_eq!(paths(store.list_secrets("a/").await.unwrap()), ["a/a", "a/b"]);
    assert_eq!(paths(store.list_secrets("a_").await.unwrap()), ["a_x"]);
    assert_eq!(store.list_secrets("").await.unwrap().len(), 4);

    // Delete, undelete, destroy.
    assert_eq!(store.set_deleted("a/b", &[1, 2, 7], Some(99)).await.unwrap(), [1, 2]);
    assert_eq!(store.set_deleted("a/b", &[1], Some(100)).await.unwrap(), Vec::<u64>::new());
    assert_eq!(store.set_deleted("a/b", &[2], None).await.unwrap(), [2]);
    assert_eq!(store.destroy_versions("a/b", &[1]).await.unwrap(), [1]);
    let v1 = store.version("a/b", 1).await.unwrap().unwrap();
    assert!(v1.destroyed && v1.ciphertext.is_none());
    assert_eq!(store.set_deleted("a/b", &[1], None).await.unwrap(), Vec::<u64>::new(), "destroyed stays destroyed");
    assert!(store.destroy_secret("a/b").await.unwrap());
    assert!(store.secret_meta("a/b").await.unwrap().is_none());
    assert!(store.versions("a/b").await.unwrap().is_empty(), "versions go with the secret");
    assert!(!store.destroy_secret("a/b").await.unwrap());

    // Keys, through ledger writes: each moves the head by compare and set.
    store.commit_ledger(&LedgerWrite { insert_keys: vec![key("key_second")], ..step(1) }).await.unwrap();
    let dup = LedgerWrite { insert_keys: vec![key("key_second")], ..step(2) };
    assert!(store.commit_ledger(&dup).await.is_err(), "ids are unique");
    assert_eq!(store.ledger_head().await.unwrap(), Some(head(2)), "a failed write moves nothing");
    let mut revoked = key("key_second");
    (revoked.state, revoked.mac) = ("revoked".into(), vec![2; 32]);
    store.commit_ledger(&LedgerWrite { update_keys: vec![revoked], ..step(2) }).await.unwrap();
    store.touch_key("key_second", 77, "127.0.0.1").await.unwrap();
    let k = store.list_keys().await.unwrap().into_iter().find(|k| k.id == "key_second").unwrap();
    assert_eq!(
        (k.state.as_str(), k.mac, k.last_used_ms, k.last_used_ip.as_deref()),
        ("revoked", vec![2; 32], Some(77), Some("127.0.0.1"))
    );
    // A write against an older head writes nothing and names the stored revision.
    let stale = LedgerWrite { insert_keys: vec![key("key_stale")], ..step(1) };
    assert!(matches!(store.commit_ledger(&stale).await, Err(StoreError::Conflict { current: 3 })));
    let first_again = LedgerWrite { expected_rev: None, ..step(0) };
    assert!(matches!(store.commit_ledger(&first_again).await, Err(StoreError::Conflict { current: 3 })));
    assert!(store.key("key_stale").await.unwrap().is_none());
    // An update of a missing row fails the whole write.
    let missing = LedgerWrite { update_keys: vec![key("key_none")], ..step(3) };
    assert!(matches!(store.commit_ledger(&missing).await, Err(StoreError::NotFound)));
    assert_eq!(store.ledger_head().await.unwrap(), Some(head(3)));
    // A write replaces only the parts it carries.
    let mut h4 = head(4);
    h4.parts = vec![LedgerPart { index: 3, bytes: vec![9; 40] }];
    store.commit_ledger(&LedgerWrite { expected_rev: Some(3), head: h4, ..LedgerWrite::default() }).await.unwrap();
    let parts = store.ledger_head().await.unwrap().unwrap().parts;
    assert_eq!(parts, [head(3).parts[0].clone(), LedgerPart { index: 3, bytes: vec![9; 40] }]);
}

fn pending(path: &str, v: u64, expected: u64, replaces: Option<u64>) -> NewVersion {
    NewVersion { stage: Stage::Pending { replaces }, ..version(path, v, expected) }
}

/// Staged rotation: pending versions, promotion, rollback, abandon.
async fn conformance_stages(store: &dyn Store) {
    let meta =
        |m: keyward_store::SecretMeta| (m.current_version, m.latest_version, m.pending_version, m.previous_version);
    store.insert_version(&version("s", 1, 0)).await.unwrap();
    let m = store.insert_version(&pending("s", 2, 1, None)).await.unwrap();
    assert_eq!(meta(m), (1, 2, Some(2), None), "a pending version is not current");
    assert!(
        matches!(store.insert_version(&version("s", 3, 2)).await, Err(StoreError::Conflict { current: 2 })),
        "no plain write while a version is pending"
    );
    assert!(
        matches!(store.insert_version(&pending("s", 3, 2, None)).await, Err(StoreError::Conflict { .. })),
        "a second pending version must name the one it replaces"
    );
    let m = store.insert_version(&pending("s", 3, 2, Some(2))).await.unwrap();
    assert_eq!(meta(m), (1, 3, Some(3), None));
    assert!(store.version("s", 2).await.unwrap().unwrap().destroyed, "a replaced pending version is destroyed");
    assert!(matches!(store.promote_version("s", 2, 50).await, Err(StoreError::Conflict { current: 1 })));
    let m = store.promote_version("s", 3, 50).await.unwrap();
    assert_eq!((meta(m.clone()), m.updated_ms), ((3, 3, None, Some(1)), 50), "promotion keeps the old one as previous");
    assert!(matches!(store.promote_version("s", 3, 51).await, Err(StoreError::Conflict { current: 3 })));
    // Rollback swaps current and previous, once per current version.
    assert_eq!(meta(store.rollback_version("s", 3, 60).await.unwrap()), (1, 3, None, Some(3)));
    assert!(matches!(store.rollback_version("s", 3, 61).await, Err(StoreError::Conflict { current: 1 })));
    assert_eq!(meta(store.rollback_version("s", 1, 62).await.unwrap()), (3, 3, None, Some(1)));
    // No rollback to a deleted or destroyed version, nor while one is pending.
    store.set_deleted("s", &[1], Some(63)).await.unwrap();
    assert!(matches!(store.rollback_version("s", 3, 64).await, Err(StoreError::Conflict { current: 3 })));
    store.set_deleted("s", &[1], None).await.unwrap();
    store.insert_version(&pending("s", 4, 3, None)).await.unwrap();
    assert!(matches!(store.rollback_version("s", 3, 65).await, Err(StoreError::Conflict { .. })));
    let m = store.abandon_pending("s", 4).await.unwrap().unwrap();
    assert_eq!(meta(m), (3, 4, None, Some(1)), "an abandoned version is gone and its number not reused");
    assert!(store.version("s", 4).await.unwrap().unwrap().destroyed);
    assert!(matches!(store.abandon_pending("s", 4).await, Err(StoreError::Conflict { .. })));
    store.destroy_versions("s", &[1]).await.unwrap();
    assert_eq!(store.secret_meta("s").await.unwrap().unwrap().previous_version, None, "destroyed: no rollback target");
    // A secret born pending has no current version; abandoning it removes it.
    let m = store.insert_version(&pending("born", 1, 0, None)).await.unwrap();
    assert_eq!(meta(m), (0, 1, Some(1), None));
    assert!(store.abandon_pending("born", 1).await.unwrap().is_none());
    assert!(store.secret_meta("born").await.unwrap().is_none());
    store.insert_version(&pending("born", 1, 0, None)).await.unwrap();
    assert_eq!(meta(store.promote_version("born", 1, 70).await.unwrap()), (1, 1, None, None));
    assert!(store.destroy_secret("born").await.unwrap() && store.destroy_secret("s").await.unwrap());
}

async fn conformance_uses_and_namespaces(store: &dyn Store) {
    // A whole row, uses left included, with counters, in one write.
    let mut k = store.key("key_second").await.unwrap().unwrap();
    k.name = "renamed".into();
    k.policy = r#"{"scopes":[]}"#.into();
    k.uses_remaining = Some(4);
    let usage = |key_id: &str, day, used| OrderUsage { key_id: key_id.into(), day, used };
    let w = LedgerWrite { update_keys: vec![k.clone()], usage: vec![usage("k", 1, 600), usage("k", 2, 5)], ..step(4) };
    store.commit_ledger(&w).await.unwrap();
    assert_eq!(store.key("key_second").await.unwrap().unwrap(), k);
    assert!(store.key("key_none").await.unwrap().is_none());
    store.commit_ledger(&LedgerWrite { usage: vec![usage("k", 1, 400)], ..step(5) }).await.unwrap();
    assert_eq!(store.order_usage("k", 1).await.unwrap(), Some(400), "a counter is set, not added to");
    assert_eq!(store.order_usage("k", 3).await.unwrap(), None);
    assert_eq!(store.list_order_usage().await.unwrap(), [usage("k", 1, 400), usage("k", 2, 5)]);

    // Namespaces.
    let ns = NamespaceRecord { name: "shop-api".into(), prefix: "shop".into(), created_ms: 3 };
    store.insert_namespace(&ns).await.unwrap();
    assert!(matches!(store.insert_namespace(&ns).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.list_namespaces().await.unwrap(), [ns]);
}

/// Versions are counted by the keyring term in their envelope header.
async fn conformance_terms(store: &dyn Store) {
    let before = store.versions_by_term().await.unwrap();
    for (v, term) in [(1u64, 1u32), (2, 2), (3, 2)] {
        let mut new = version("terms/x", v, v - 1);
        new.ciphertext = [b"KWE1".as_slice(), &term.to_be_bytes(), &[0u8; 40]].concat();
        store.insert_version(&new).await.unwrap();
    }
    let after = store.versions_by_term().await.unwrap();
    let grew = |t: u32| after.get(&t).copied().unwrap_or(0) - before.get(&t).copied().unwrap_or(0);
    assert_eq!((grew(1), grew(2)), (1, 2), "{after:?}");
    // Below term 2: only version 1; replaced only while it is still what was read.
    let below = store.versions_below_term(2, 10).await.unwrap();
    let ours: Vec<_> = below.iter().filter(|c| c.path == "terms/x").collect();
    assert_eq!(ours.iter().map(|c| c.version).collect::<Vec<_>>(), [1]);
    let new = [b"KWE1".as_slice(), &2u32.to_be_bytes(), &[1u8; 40]].concat();
    let stale = StoredCiphertext { ciphertext: new.clone(), ..ours[0].clone() };
    assert_eq!(store.replace_ciphertexts(&[(stale, new.clone())]).await.unwrap(), 0, "not what was read");
    assert_eq!(store.replace_ciphertexts(&[(ours[0].clone(), new.clone())]).await.unwrap(), 1);
    assert_eq!(store.version("terms/x", 1).await.unwrap().unwrap().ciphertext, Some(new));
    assert!(store.versions_below_term(2, 10).await.unwrap().iter().all(|c| c.path != "terms/x"));
    let after = store.versions_by_term().await.unwrap();
    store.destroy_versions("terms/x", &[2]).await.unwrap();
    let destroyed = store.versions_by_term().await.unwrap();
    assert_eq!(destroyed.get(&2).copied().unwrap_or(0), after[&2] - 1, "a destroyed version covers nothing");
    assert!(store.versions_below_term(3, 10).await.unwrap().iter().all(|c| c.version != 2 || c.path != "terms/x"));
}

/// A snapshot restores secrets (and what was added after it goes), keeps
/// the seal record, and is refused when it is not a database of ours.
async fn conformance_snapshot(store: &dyn Store) {
    let snap = store.snapshot().await.unwrap();
    let seal_before = store.seal_record().await.unwrap();
    let secrets_before = store.list_secrets("").await.unwrap().len();
    store.insert_version(&version("snap/after", 1, 0)).await.unwrap();
    assert!(store.snapshot_revived(&snap).await.unwrap().is_empty());
    store.restore_snapshot(&snap).await.unwrap();
    assert!(store.secret_meta("snap/after").await.unwrap().is_none(), "written after the snapshot");
    assert_eq!(store.list_secrets("").await.unwrap().len(), secrets_before);
    assert_eq!(store.seal_record().await.unwrap(), seal_before, "the seal record stays");
    let err = store.restore_snapshot(b"not a database").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_) | StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(store.list_secrets("").await.unwrap().len(), secrets_before, "a refused restore changes nothing");
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    conformance(&store).await;
    conformance_stages(&store).await;
    conformance_uses_and_namespaces(&store).await;
    conformance_terms(&store).await;
    conformance_snapshot(&store).await;
    // Reopening keeps everything (durable, migrations idempotent).
    drop(store);
    let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    assert_eq!(store.seal_record().await.unwrap().unwrap().active_term, 2);
    assert_eq!(store.list_secrets("").await.unwrap().len(), 4);
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = SqliteStore::in_memory().await.unwrap();
    conformance(&store).await;
    conformance_stages(&store).await;
    conformance_uses_and_namespaces(&store).await;
    conformance_terms(&store).await;
    let err = store.snapshot().await.unwrap_err();
    assert!(err.to_string().contains("in memory"), "{err}");
}
