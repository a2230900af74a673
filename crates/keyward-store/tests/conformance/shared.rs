//! What only a shared backend does (PostgreSQL): several stores on one
//! database, as several nodes are.

use crate::support::{Fixture, audit_batch, boot, key, seal, step, version};
use keyward_store::{Change, LedgerWrite, NamespaceRecord, PgStore, SqliteStore, Store, StoreError, VersionRecord};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{Receiver, error::TryRecvError};

/// The next change, within `within`.
async fn heard(rx: &mut Receiver<Change>, within: Duration) -> Change {
    tokio::time::timeout(within, rx.recv()).await.expect("a change is heard in time").expect("the channel is open")
}

async fn next(rx: &mut Receiver<Change>) -> Change {
    heard(rx, Duration::from_secs(1)).await
}

/// A change committed through one store is heard on the other, as the
/// right change, within a second; no store hears its own, nor a write that
/// rolled back.
pub async fn changes_reach_other_nodes(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    let (mut rx_a, mut rx_b) = (a.changes().unwrap(), b.changes().unwrap());
    a.initialize(&seal(), &boot()).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Keys);
    a.put_seal_record(&seal()).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Seal);
    let ns = NamespaceRecord { name: "shop".into(), prefix: "shop".into(), created_ms: 1 };
    a.insert_namespace(&ns).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Namespaces);
    // Refused writes roll back, and their notification with them.
    assert!(a.insert_namespace(&ns).await.is_err());
    assert!(a.commit_ledger(&step(7)).await.is_err());
    a.touch_key("key_boot", 5, "10.0.0.1").await.unwrap();
    a.commit_ledger(&LedgerWrite { insert_keys: vec![key("key_two")], ..step(1) }).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Keys, "nothing between: refusals and touches are silent");

    a.insert_version(&version("s/one", 1, 0)).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Secret("s/one".into()));
    let batch = [version("s/one", 2, 1), version("s/one", 3, 2), version("s/two", 1, 0), version("s/two", 1, 0)];
    a.insert_versions(&batch).await.unwrap();
    let mut got = [next(&mut rx_b).await.encode(), next(&mut rx_b).await.encode()];
    got.sort();
    assert_eq!(got, ["secret:s/one", "secret:s/two"], "once per path");
    for (i, write) in secret_writes(&*a).await.into_iter().enumerate() {
        assert_eq!(next(&mut rx_b).await, Change::Secret(write.into()), "secret write {i}");
    }
    let snap = a.snapshot().await.unwrap();
    a.restore_snapshot(&snap).await.unwrap();
    assert_eq!(next(&mut rx_b).await, Change::Resync);

    // And the other way: what A hears first is B's, so it heard none of its own.
    b.destroy_secret("s/one").await.unwrap();
    assert_eq!(next(&mut rx_a).await, Change::Secret("s/one".into()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(rx_a.try_recv(), Err(TryRecvError::Empty)));
    assert!(matches!(rx_b.try_recv(), Err(TryRecvError::Empty)), "B does not hear its own destroy");
}

/// One write of each other kind on a secret; returns the paths, in order.
async fn secret_writes(a: &dyn Store) -> Vec<&'static str> {
    use crate::support::pending;
    a.set_deleted("s/one", &[1], Some(9)).await.unwrap();
    a.destroy_versions("s/one", &[1]).await.unwrap();
    a.insert_version(&pending("s/two", 2, 1, None)).await.unwrap();
    a.promote_version("s/two", 2, 20).await.unwrap();
    a.rollback_version("s/two", 2, 21).await.unwrap();
    a.insert_version(&pending("s/two", 3, 2, None)).await.unwrap();
    a.abandon_pending("s/two", 3).await.unwrap();
    let stored = a.versions_below_term(u32::MAX, 1).await.unwrap();
    let stale = a.replace_ciphertexts(&[(stored[0].clone(), vec![1; 9])]).await.unwrap();
    assert_eq!(stale, 1);
    let path: &'static str = if stored[0].path == "s/one" { "s/one" } else { "s/two" };
    vec!["s/one", "s/one", "s/two", "s/two", "s/two", "s/two", "s/two", path]
}

/// A listener whose connection is cut reconnects, says Resync, and hears
/// changes again.
pub async fn listener_reconnects(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    let mut rx_b = b.changes().unwrap();
    assert!(f.cut_listeners().await >= 2, "both stores listen");
    assert_eq!(heard(&mut rx_b, Duration::from_secs(5)).await, Change::Resync);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Until B is back on the channel, A's writes may go unheard: write until one is.
    for n in 0.. {
        let ns = NamespaceRecord { name: format!("n{n}"), prefix: "p".into(), created_ms: 1 };
        a.insert_namespace(&ns).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), rx_b.recv()).await {
            Ok(Ok(Change::Namespaces)) => break,
            Ok(Ok(Change::Resync)) => continue,
            other => assert!(Instant::now() < deadline, "nothing heard after {n} writes: {other:?}"),
        }
    }
}

/// Nodes starting at once on an empty database migrate one after the other.
pub async fn concurrent_first_start(f: &Fixture) {
    let db = f.empty_database().await;
    let (x, y, z) = tokio::join!(PgStore::connect(&db.url), PgStore::connect(&db.url), PgStore::connect(&db.url));
    let (x, y, z) = (x.unwrap(), y.unwrap(), z.unwrap());
    x.insert_version(&version("started", 1, 0)).await.unwrap();
    assert!(y.secret_meta("started").await.unwrap().is_some() && z.secret_meta("started").await.unwrap().is_some());
    assert!(x.node_id() != y.node_id() && x.node_id().len() == 16, "{} {}", x.node_id(), y.node_id());
}

/// The listener goes when the last clone of its store does.
pub async fn dropping_the_store_ends_the_listener(f: &Fixture) {
    let before = f.listeners().await;
    let connections = f.connections().await;
    let b = f.open_another().await;
    let clone = b.clone();
    assert_eq!(f.listeners().await, before + 1);
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.listeners().await, before + 1, "a clone keeps it");
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(3);
    while f.listeners().await > before || f.connections().await > connections {
        assert!(Instant::now() < deadline, "the listener (and its pool) outlived its store");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A destroy vacuums the versions table, so the dead rows that held the
/// ciphertext are reclaimed (not merely unlinked).
pub async fn destroy_vacuums(f: &Fixture) {
    let store = f.store();
    store.insert_version(&version("v/x", 1, 0)).await.unwrap();
    store.insert_version(&version("v/x", 2, 1)).await.unwrap();
    let vacuums = "SELECT COALESCE(vacuum_count, 0) FROM pg_stat_user_tables WHERE relname = 'secret_versions'";
    let before = f.ask(vacuums).await;
    store.destroy_versions("v/x", &[1]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while f.ask(vacuums).await <= before {
        assert!(Instant::now() < deadline, "no VACUUM ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'secret_versions'";
    assert_eq!(f.ask(dead).await, 0, "no dead row left holding ciphertext");
    assert!(store.version("v/x", 1).await.unwrap().unwrap().ciphertext.is_none());
}

/// The two schemas have the same tables with the same columns in the same
/// order (snapshots copy rows between them by column name); PostgreSQL
/// alone keeps the nonces.
pub async fn schemas_match(f: &Fixture) {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let lite = sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path)).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&lite)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    for t in &tables {
        let rows = sqlx::query(&format!("PRAGMA table_info({t})")).fetch_all(&lite).await.unwrap();
        let lite_cols: Vec<String> = rows.iter().map(|r| r.get("name")).collect();
        let pg_cols = f
            .ask_all(&format!(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' \
                 AND table_name = '{t}' ORDER BY ordinal_position"
            ))
            .await;
        assert_eq!(pg_cols, lite_cols, "{t}");
    }
    let pg_tables = f
        .ask_all(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name NOT IN ('_sqlx_migrations', 'exchange_nonces') ORDER BY table_name",
        )
        .await;
    assert_eq!(pg_tables, tables);
    lite.close().await;
}

/// Nonces from two stores at once: all distinct, increasing within each
/// caller, never below the floor.
pub async fn nonces_across_nodes(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    const FLOOR: u64 = 1_700_000_000_000;
    let mut tasks = tokio::task::JoinSet::new();
    for store in [a.clone(), b.clone(), a, b] {
        tasks.spawn(async move {
            let mut got = Vec::with_capacity(50);
            for _ in 0..50 {
                got.push(store.next_nonce("kraken-main", FLOOR).await.unwrap());
            }
            got
        });
    }
    let mut all = BTreeSet::new();
    for got in tasks.join_all().await {
        assert!(got.windows(2).all(|w| w[0] < w[1]), "increasing in call order: {got:?}");
        assert!(got.iter().all(|n| *n >= FLOOR));
        all.extend(got);
    }
    assert_eq!(all.len(), 200, "all distinct");
    assert_eq!(*all.first().unwrap(), FLOOR);
    assert_eq!(*all.last().unwrap(), FLOOR + 199, "no nonce skipped");
}

/// An append chained onto a head another store has since moved is refused
/// with the stored head and writes nothing.
pub async fn audit_head_moved(f: &Fixture) {
    let (a, b) = (f.shared(), f.open_another().await);
    // The first entry must start the chain.
    let mut wrong = audit_batch(None, 1, "x");
    wrong[0].prev_hash = vec![1; 32];
    assert!(matches!(a.append_audit(&wrong, None).await, Err(StoreError::Conflict { current: 0 })));
    let skipped = audit_batch(Some((1, vec![0; 32])), 1, "x");
    assert!(matches!(a.append_audit(&skipped, None).await, Err(StoreError::Conflict { current: 0 })));
    a.append_audit(&audit_batch(None, 10, "a"), None).await.unwrap();

    let seen_by_b = b.audit_head().await.unwrap();
    let moved = audit_batch(a.audit_head().await.unwrap(), 5, "a2");
    a.append_audit(&moved, None).await.unwrap();
    let stale = audit_batch(seen_by_b, 3, "b");
    let cp = keyward_core::audit::Checkpoint { seq: 13, hash: "cc".into(), time_ms: 1, signature: "s".into() };
    assert!(matches!(b.append_audit(&stale, Some(&cp)).await, Err(StoreError::Conflict { current: 15 })));
    assert_eq!(b.audit_head().await.unwrap().unwrap(), (15, moved[4].hash.clone()), "nothing written");
    assert!(b.audit_checkpoints().await.unwrap().is_empty(), "not even the checkpoint");
    // Rechained onto the new head, it goes in: one chain.
    let rechained = audit_batch(b.audit_head().await.unwrap(), 3, "b");
    b.append_audit(&rechained, Some(&cp)).await.unwrap();
    let all = a.audit_entries(&keyward_store::AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 18);
    assert!(keyward_core::audit::verify_chain(&all, 1, &keyward_core::audit::genesis()).is_ok());
}

/// Every row a snapshot carries, for comparing two stores.
async fn dump(s: &dyn Store) -> impl PartialEq + std::fmt::Debug {
    let secrets = s.list_secrets("").await.unwrap();
    let mut versions: Vec<Vec<Option<VersionRecord>>> = Vec::new();
    for m in &secrets {
        let mut of = Vec::new();
        for v in s.versions(&m.path).await.unwrap() {
            of.push(s.version(&m.path, v.version).await.unwrap());
        }
        versions.push(of);
    }
    let usage = s.list_order_usage().await.unwrap();
    (
        secrets,
        versions,
        s.list_keys().await.unwrap(),
        s.ledger_head().await.unwrap(),
        s.list_namespaces().await.unwrap(),
        usage,
    )
}

/// Backups move between backends: a snapshot of PostgreSQL restores into
/// SQLite and one of SQLite into PostgreSQL, row for row.
pub async fn snapshots_move_between_backends(f: &Fixture) {
    let pg = f.store();
    pg.initialize(&seal(), &boot()).await.unwrap();
    pg.commit_ledger(&LedgerWrite { insert_keys: vec![key("key_two")], ..step(1) }).await.unwrap();
    pg.insert_version(&version("p/a", 1, 0)).await.unwrap();
    pg.insert_version(&version("p/a", 2, 1)).await.unwrap();
    pg.destroy_versions("p/a", &[1]).await.unwrap();
    pg.set_deleted("p/a", &[2], Some(77)).await.unwrap();
    pg.insert_namespace(&NamespaceRecord { name: "ns".into(), prefix: "ns".into(), created_ms: 2 }).await.unwrap();
    pg.append_audit(&audit_batch(None, 3, "pg"), None).await.unwrap();
    // Enough rows to take several pages.
    let many: Vec<_> = (0..1_100).map(|i| version(&format!("bulk/{i:05}"), 1, 0)).collect();
    assert!(pg.insert_versions(&many).await.unwrap().iter().all(Result::is_ok));

    let dir = tempfile::tempdir().unwrap();
    let lite = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
    lite.initialize(&seal(), &boot()).await.unwrap();
    let snap = pg.snapshot().await.unwrap();
    lite.restore_snapshot(&snap).await.unwrap();
    assert_eq!(dump(&lite).await, dump(pg).await);
    let v1 = lite.version("p/a", 1).await.unwrap().unwrap();
    assert!(v1.destroyed && v1.ciphertext.is_none(), "destroyed stays destroyed");
    assert!(lite.audit_head().await.unwrap().is_none(), "the audit log is not restored");

    // Changed on SQLite, then back into PostgreSQL.
    lite.insert_version(&version("l/b", 1, 0)).await.unwrap();
    lite.destroy_secret("bulk/00007").await.unwrap();
    let snap = lite.snapshot().await.unwrap();
    pg.restore_snapshot(&snap).await.unwrap();
    assert_eq!(dump(pg).await, dump(&lite).await);
    assert_eq!(pg.audit_head().await.unwrap().unwrap().0, 3, "the audit chain goes on");
    assert!(pg.seal_record().await.unwrap().is_some(), "the seal record stays");
}

/// A database that cannot be reached answers within seconds, and no error
/// repeats the password.
#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let started = Instant::now();
    let err = PgStore::connect("postgres://keyward:hunter2@127.0.0.1:1/keyward").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{err}");
    let err = PgStore::connect("postgres://keyward:hunter2@127.0.0.1:1/keyward?sslmode=bogus").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
