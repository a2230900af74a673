//! The behaviour every backend shares: each test here runs on SQLite and on
//! PostgreSQL (see `support`).

use crate::support::{Fixture, audit_batch, boot, head, key, pending, seal, step, version};
use keyward_core::audit::verify_chain;
use keyward_store::{
    AuditQuery, LedgerPart, LedgerWrite, NamespaceRecord, OrderUsage, SqliteStore, Store, StoreError, StoredCiphertext,
};

/// The whole suite on one store, in order (each part builds on the data
/// the one before left), then the same data through a second store.
pub async fn whole_suite(f: &Fixture) {
    let store = f.store();
    conformance(store).await;
    conformance_stages(store).await;
    conformance_uses_and_namespaces(store).await;
    conformance_terms(store).await;
    conformance_snapshot(store).await;
    // Opening it again keeps everything (durable, migrations idempotent).
    let again = f.open_another().await;
    assert_eq!(again.seal_record().await.unwrap().unwrap().active_term, 2);
    assert_eq!(again.list_secrets("").await.unwrap().len(), 4);
    assert_eq!(again.ledger_head().await.unwrap(), store.ledger_head().await.unwrap());
}

async fn conformance(store: &dyn Store) {
    // Initialisation happens once.
    assert!(store.seal_record().await.unwrap().is_none());
    assert!(store.ledger_head().await.unwrap().is_none());
    let boot = boot();
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

/// The audit chain: appended in chunks, read back by query, checkpoints
/// replaced by sequence number.
pub async fn audit_chain(f: &Fixture) {
    let store = f.store();
    assert!(store.audit_head().await.unwrap().is_none());
    let first = audit_batch(None, 100, "one");
    let mut cp = keyward_core::audit::Checkpoint { seq: 100, hash: "aa".into(), time_ms: 5, signature: "s1".into() };
    store.append_audit(&first, Some(&cp)).await.unwrap();
    let head = store.audit_head().await.unwrap().unwrap();
    assert_eq!(head, (100, first[99].hash.clone()));
    let all = store.audit_entries(&AuditQuery { limit: 1_000, ..Default::default() }).await.unwrap();
    assert_eq!(all, first, "read back whole, oldest first");
    // Hashes are kept sparsely: whole on every 64th entry and on the last
    // of a batch, a tag elsewhere; a read fills them in (above).
    let rows = store.audit_rows(1, 1_000).await.unwrap();
    assert_eq!(rows.rows.len(), 100);
    for r in &rows.rows {
        assert_eq!(r.hash.whole().is_some(), r.seq == 64 || r.seq == 100, "entry {}", r.seq);
        assert!(r.hash.matches(&first[r.seq as usize - 1].hash), "entry {}", r.seq);
        assert!(!r.hash.matches(&first[r.seq as usize % 100].hash), "entry {}", r.seq);
    }
    assert!(verify_chain(&all, 1, &keyward_core::audit::genesis()).is_ok());

    let second = audit_batch(Some(head), 10, "two");
    store.append_audit(&second, None).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 110);

    let q = |q: AuditQuery| async move { store.audit_entries(&AuditQuery { limit: 1_000, ..q }).await.unwrap() };
    let seqs = |v: Vec<keyward_core::audit::AuditEntry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(q(AuditQuery { from_seq: Some(105), ..Default::default() }).await), [105, 106, 107, 108, 109, 110]);
    let window = q(AuditQuery { since_ms: Some(1_010), until_ms: Some(1_012), ..Default::default() }).await;
    assert_eq!(seqs(window), [11, 12, 13], "time_ms is 1000 + seq - 1");
    let by_key = q(AuditQuery { key_id: Some("key_a".into()), ..Default::default() }).await;
    assert!(by_key.len() == 34 + 4 && by_key.iter().all(|e| e.key_id == "key_a"), "{}", by_key.len());
    // A prefix is a prefix: `_` and `%` are not wildcards.
    let by_target = q(AuditQuery { target_prefix: Some("acct_two".into()), ..Default::default() }).await;
    assert_eq!(seqs(by_target), [101, 103, 105, 107, 109]);
    let by_pct = q(AuditQuery { target_prefix: Some("acct%".into()), ..Default::default() }).await;
    assert_eq!(by_pct.len(), 55);
    let denied = q(AuditQuery { decision: Some("deny".into()), ..Default::default() }).await;
    assert!(denied.len() == 25 + 3 && denied.iter().all(|e| e.decision == "deny"));
    let newest = store.audit_entries(&AuditQuery { limit: 3, newest: true, ..Default::default() }).await.unwrap();
    assert_eq!(seqs(newest), [108, 109, 110], "the newest, still oldest first");
    let window =
        AuditQuery { since_ms: Some(1_010), until_ms: Some(1_020), limit: 3, newest: true, ..Default::default() };
    assert_eq!(seqs(store.audit_entries(&window).await.unwrap()), [19, 20, 21], "the newest of a window");
    let bounded = q(AuditQuery { from_seq: Some(15), until_ms: Some(1_016), ..Default::default() }).await;
    assert_eq!(seqs(bounded), [15, 16, 17], "from a sequence number until a time");
    let newest_from = AuditQuery { from_seq: Some(105), limit: 2, newest: true, ..Default::default() };
    assert_eq!(seqs(store.audit_entries(&newest_from).await.unwrap()), [109, 110]);
    assert!(
        q(AuditQuery { until_ms: Some(500), ..Default::default() }).await.is_empty(),
        "until before the first entry"
    );
    let oldest = store.audit_entries(&AuditQuery { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(seqs(oldest), [1, 2]);

    // A checkpoint alone; one at a stored sequence number replaces it.
    let later = keyward_core::audit::Checkpoint { seq: 110, hash: "bb".into(), time_ms: 6, signature: "s2".into() };
    store.append_audit(&[], Some(&later)).await.unwrap();
    cp.signature = "s1-again".into();
    store.append_audit(&[], Some(&cp)).await.unwrap();
    assert_eq!(store.audit_checkpoints().await.unwrap(), [cp.clone(), later]);

    // Each entry of a filtered read still carries the hash before it.
    let all = q(AuditQuery::default()).await;
    for e in q(AuditQuery { key_id: Some("key_b".into()), ..Default::default() }).await {
        let before = if e.seq == 1 { keyward_core::audit::genesis() } else { all[e.seq as usize - 2].hash.clone() };
        assert_eq!(e.prev_hash, before, "entry {}", e.seq);
    }

    // Pruning: only up to an entry with a checkpoint that matches it.
    assert!(matches!(store.audit_prune(105).await, Err(StoreError::Refused(_))), "no checkpoint at 105");
    assert!(matches!(store.audit_prune(100).await, Err(StoreError::Corrupt(_))), "the checkpoint does not match");
    assert!(matches!(store.audit_prune(500).await, Err(StoreError::Refused(_))), "past the log");
    cp.hash = keyward_core::keyring::hex_encode(&first[99].hash);
    store.append_audit(&[], Some(&cp)).await.unwrap();
    assert!(store.audit_base().await.unwrap().is_none());
    assert_eq!(store.audit_prune(100).await.unwrap(), 100);
    assert_eq!(store.audit_base().await.unwrap(), Some((100, first[99].hash.clone())));
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 110, "the head stays");
    let rest = q(AuditQuery::default()).await;
    assert_eq!(seqs(rest.clone()), (101..=110).collect::<Vec<_>>());
    assert!(verify_chain(&rest, 101, &first[99].hash).is_ok(), "chained onto the base");
    assert_eq!(store.audit_page(101, 4).await.unwrap(), rest[..4], "a page reads as a query does");
    assert_eq!(store.audit_page(108, 100).await.unwrap(), rest[7..]);
    assert!(store.audit_page(111, 10).await.unwrap().is_empty());
    assert_eq!(store.audit_checkpoints().await.unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [100, 110]);
    // Appends go on after the base.
    let third = audit_batch(store.audit_head().await.unwrap(), 3, "three");
    store.append_audit(&third, None).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 113);

    // The meta table: any name but the seal's.
    assert_eq!(store.meta("audit_verified").await.unwrap(), None);
    store.put_meta("audit_verified", "110").await.unwrap();
    store.put_meta("audit_verified", "113").await.unwrap();
    assert_eq!(store.meta("audit_verified").await.unwrap().as_deref(), Some("113"));
    assert!(matches!(store.put_meta("seal", "x").await, Err(StoreError::Refused(_))));
}

/// Strings the reading store never wrote (another node's, or written
/// before a restart) read back exactly: more than one lookup's worth
/// (5,000) of distinct ones, the empty string, multi-byte text.
pub async fn audit_strings_read_back(f: &Fixture) {
    let store = f.store();
    let mut batch = audit_batch(None, 6_200, "many");
    let (mut seq, mut hash) = (0, keyward_core::audit::genesis());
    for (i, e) in batch.iter_mut().enumerate() {
        e.target = match i % 5 {
            0 => String::new(),
            1 => format!("clé-{i}-ü€𝄞"),
            _ => format!("key_{i:06}"),
        };
        e.ip = format!("10.0.{}.{}", i / 256 % 256, i % 256);
        e.chain_after(seq, &hash);
        (seq, hash) = (e.seq, e.hash.clone());
    }
    store.append_audit(&batch, None).await.unwrap();
    let other = f.open_another().await;
    assert_eq!(other.audit_page(1, 10_000).await.unwrap(), batch, "a page, every string looked up");
    let rows = other.audit_rows(1, 10_000).await.unwrap();
    assert_eq!(rows.rows.len(), batch.len());
    for (r, e) in rows.rows.iter().zip(&batch) {
        let expected =
            [&e.request_id, &e.key_id, &e.ip, &e.action, &e.target, &e.class, &e.decision, &e.code, &e.detail];
        assert_eq!(rows.fields(r), expected.map(String::as_str), "entry {}", e.seq);
        assert_eq!((r.seq, r.time_ms), (e.seq, e.time_ms));
        assert!(r.hash.matches(&e.hash), "entry {}", e.seq);
    }
    let q = AuditQuery { from_seq: Some(6_001), limit: 1_000, ..Default::default() };
    assert_eq!(f.open_another().await.audit_entries(&q).await.unwrap(), batch[6_000..], "a query, strings looked up");
    assert!(verify_chain(&other.audit_page(1, 10_000).await.unwrap(), 1, &keyward_core::audit::genesis()).is_ok());
}

/// A snapshot whose schema is not the current one is refused by both
/// restore and preview, and changes nothing.
pub async fn snapshot_of_another_schema(f: &Fixture) {
    let store = f.store();
    store.initialize(&seal(), &boot()).await.unwrap();
    store.insert_version(&version("kept", 1, 0)).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    let future = with_extra_migration(&snap).await;
    for refused in
        [store.restore_snapshot(&future).await.unwrap_err(), store.snapshot_revived(&future).await.unwrap_err()]
    {
        assert!(matches!(&refused, StoreError::Corrupt(m) if m.contains("another schema version")), "{refused:?}");
    }
    let err = store.snapshot_revived(b"not a database either").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_) | StoreError::Unavailable(_)), "{err:?}");
    if f.is_postgres() {
        let err = store.restore_snapshot(b"not a database either").await.unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("not a keyward database")), "{err:?}");
    }
    assert!(store.secret_meta("kept").await.unwrap().is_some());
    // The untouched snapshot still restores.
    store.insert_version(&version("later", 1, 0)).await.unwrap();
    store.restore_snapshot(&snap).await.unwrap();
    assert!(store.secret_meta("later").await.unwrap().is_none());
}

/// `snap` as a database that records one migration more than this build knows.
pub async fn with_extra_migration(snap: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    std::fs::write(&path, snap).unwrap();
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999999999999, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    std::fs::read(&path).unwrap()
}

/// Restoring a snapshot that holds a key since revoked names it first.
pub async fn restore_revives(f: &Fixture) {
    let store = f.store();
    store.initialize(&seal(), &boot()).await.unwrap();
    store.commit_ledger(&LedgerWrite { insert_keys: vec![key("key_x"), key("key_gone")], ..step(1) }).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    let mut revoked = key("key_x");
    revoked.state = "revoked".into();
    store.commit_ledger(&LedgerWrite { update_keys: vec![revoked], ..step(2) }).await.unwrap();
    let revived = store.snapshot_revived(&snap).await.unwrap();
    assert_eq!(revived.len(), 1, "{revived:?}");
    assert_eq!(
        (revived[0].id.as_str(), revived[0].state_now.as_str(), revived[0].state_then.as_str()),
        ("key_x", "revoked", "active")
    );
    store.restore_snapshot(&snap).await.unwrap();
    assert_eq!(store.key("key_x").await.unwrap().unwrap().state, "active");
    assert_eq!(store.ledger_head().await.unwrap(), Some(head(2)), "the ledger comes back with the keys");
    assert_eq!(store.ledger_rev().await.unwrap(), Some(2));
}

/// Whether the backend is shared, and what only a shared one does.
pub async fn sharing(f: &Fixture) {
    let store = f.store();
    assert_eq!(store.shared(), f.is_postgres());
    assert_eq!(store.changes().is_some(), f.is_postgres());
    assert_eq!(store.ledger_rev().await.unwrap(), None);
    store.initialize(&seal(), &boot()).await.unwrap();
    assert_eq!(store.ledger_rev().await.unwrap(), Some(1));
    let nonce = store.next_nonce("binance-main", 7).await;
    if f.is_postgres() {
        assert_eq!(nonce.unwrap(), 7);
        assert_eq!(store.next_nonce("binance-main", 0).await.unwrap(), 8);
        assert_eq!(store.next_nonce("binance-main", 100).await.unwrap(), 100, "the floor wins when higher");
        assert_eq!(store.next_nonce("other", 0).await.unwrap(), 0, "scopes count apart");
        assert!(store.next_nonce("binance-main", u64::MAX).await.is_err(), "beyond what the store keeps");
    } else {
        assert!(matches!(nonce, Err(StoreError::Unavailable(_))));
    }
}

/// Two stores writing version 1 of the same new secret at once: one wins.
pub async fn first_version_race(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    for i in 0..10 {
        let path = format!("race/{i}");
        let v = version(&path, 1, 0);
        let (x, y) = tokio::join!(a.insert_version(&v), b.insert_version(&v));
        let won = [&x, &y].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{x:?} {y:?}");
        let lost = if x.is_ok() { y } else { x };
        assert!(matches!(lost, Err(StoreError::Conflict { current: 1 })), "{lost:?}");
        assert_eq!(a.versions(&path).await.unwrap().len(), 1);
    }
}

/// Two stores moving the ledger from the same revision: one wins, the other
/// hears the revision it lost to.
pub async fn ledger_race(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    let first = LedgerWrite { expected_rev: None, head: head(1), ..Default::default() };
    let (x, y) = tokio::join!(a.commit_ledger(&first), b.commit_ledger(&first));
    assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    assert!(matches!(x.or(y), Ok(())));
    for rev in 1..=10u64 {
        let wa = LedgerWrite { insert_keys: vec![key(&format!("key_a{rev}"))], ..step(rev) };
        let wb = LedgerWrite { insert_keys: vec![key(&format!("key_b{rev}"))], ..step(rev) };
        let (x, y) = tokio::join!(a.commit_ledger(&wa), b.commit_ledger(&wb));
        assert_eq!([&x, &y].iter().filter(|r| r.is_ok()).count(), 1, "{x:?} {y:?}");
        let lost = if x.is_ok() { y } else { x };
        assert!(matches!(lost, Err(StoreError::Conflict { current }) if current == rev + 1), "{lost:?}");
    }
    assert_eq!(a.ledger_rev().await.unwrap(), Some(11));
    assert_eq!(b.list_keys().await.unwrap().len(), 10, "only the winners' keys");
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

/// Loading keys a page at a time: every key exactly once, no page larger
/// than asked, pages that say where they end (and stay ended), and the
/// same keys as the whole listing.
pub async fn key_pages(f: &Fixture) {
    let store = f.shared();
    store.commit_ledger(&LedgerWrite { expected_rev: None, head: head(1), ..Default::default() }).await.unwrap();
    let ids: Vec<String> = (0..23).map(|i| format!("key_page{i:02}")).collect();
    let (first, rest) = ids.split_at(11);
    for (rev, part) in [(1, first), (2, rest)] {
        let insert_keys = part.iter().map(|id| key(id)).collect();
        store.commit_ledger(&LedgerWrite { insert_keys, ..step(rev) }).await.unwrap();
    }
    for size in [1, 5, 23, 100] {
        let mut pages = store.key_pages(size).await.unwrap();
        let mut seen = Vec::new();
        while let Some(page) = pages.next().await.unwrap() {
            assert!(!page.is_empty() && page.len() as u64 <= size, "page of {} for {size}", page.len());
            seen.extend(page.into_iter().map(|k| k.id));
        }
        assert!(pages.next().await.unwrap().is_none(), "the end stays the end");
        seen.sort();
        assert_eq!(seen, ids, "every key once, pages of {size}");
    }
    let mut listed: Vec<String> = store.list_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    listed.sort();
    assert_eq!(listed, ids);
    let mut other = f.open_another().await.key_pages(10).await.unwrap();
    assert_eq!(other.next().await.unwrap().map(|p| p.len()), Some(10), "a second store reads the same keys");
    let mut none = SqliteStore::in_memory().await.unwrap().key_pages(10).await.unwrap();
    assert!(none.next().await.unwrap().is_none(), "no keys: no pages");
}
