//! The audit writer's appends through SQLite's own interface (rusqlite), on
//! a blocking thread, over one connection of their own.
//!
//! Through sqlx, an entry appended in batches of 110 cost 5.6–5.8 µs of
//! CPU: each statement, and each row it returns, crossed to sqlx's worker
//! thread and back (about 18 switches a batch), every bound value was
//! copied into an owned argument, and the multi-row insert's text changed
//! with the batch's size, so it was prepared again. Here a batch crosses
//! threads once, each entry is one run of a cached single-row statement,
//! and an entry costs 3.1–3.6 µs (`examples/append_cost.rs`). Every request
//! pays it, on a CPU the bot, the exchange connection or the benchmark
//! shares.
//!
//! The in-memory database keeps the sqlx path ([`super::audit::append`]):
//! no second connection can open it. A test holds the two to one result.

use super::audit::onto_head;
use super::walk::unavailable;
use crate::audit::{keeps_whole, stored_form};
use crate::audit_strings::{Strings, fields};
use crate::{StoreError, StoreResult};
use keyward_core::audit::{AuditEntry, Checkpoint};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INSERT: &str = "INSERT INTO audit_entries
    (seq, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, hash)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
/// A new string's id; an existing one's if another writer added it meanwhile.
const ADD_STRING: &str = "INSERT INTO audit_strings (value) VALUES (?1)
    ON CONFLICT (value) DO UPDATE SET value = excluded.value RETURNING id";
const CHECKPOINT: &str =
    "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, time_ms, signature) VALUES (?1, ?2, ?3, ?4)";
/// Entries inserted between two yields of the CPU. The scheduler lets a
/// running thread finish its slice before one it woke: a request's thread
/// (or the bot's, or the exchange connection's) woken on this CPU would
/// wait out the whole batch, some hundreds of microseconds, which at one
/// connection made most of the proxy's 99th percentile. Yielding every 16
/// entries (about 30 µs), it waits that long at most.
const YIELD_EVERY: usize = 16;
const HEAD: &str = "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1";
const BASE: &str = "SELECT seq, hash FROM audit_base WHERE id = 1";

/// One writable connection to the database file, opened on first use.
#[derive(Debug)]
pub(super) struct Appender {
    file: PathBuf,
    connection: Mutex<Option<Connection>>,
    /// Set by [`Appender::close`]: nothing is written or opened after it.
    closed: AtomicBool,
}

/// An entry as stored: its strings by id, a new string's by `-(index + 1)`
/// into [`Batch::new`] (its id is known once it is inserted).
struct Row {
    seq: i64,
    time_ms: i64,
    request_id: String,
    ids: [i64; 7],
    detail: String,
    hash: Vec<u8>,
}

/// What a batch writes, owned for the blocking thread.
struct Batch {
    /// The first entry's sequence number and the hash it chains onto.
    first: Option<(u64, Vec<u8>)>,
    rows: Vec<Row>,
    /// The strings not in the cache, each once.
    new: Vec<String>,
    checkpoint: Option<Checkpoint>,
}

impl Batch {
    fn of(strings: &Strings, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) -> Self {
        let (mut ids, missing) = strings.ids_of(entries.iter().flat_map(fields));
        ids.extend(missing.iter().enumerate().map(|(i, v)| (*v, -(i as i64) - 1)));
        let last = entries.last().map_or(0, |e| e.seq);
        let rows = entries
            .iter()
            .map(|e| Row {
                seq: e.seq as i64,
                time_ms: e.time_ms,
                request_id: e.request_id.clone(),
                ids: fields(e).map(|f| ids[f]),
                detail: e.detail.clone(),
                hash: stored_form(&e.hash, keeps_whole(e.seq, e.seq == last)).to_vec(),
            })
            .collect();
        Self {
            first: entries.first().map(|e| (e.seq, e.prev_hash.clone())),
            rows,
            new: missing.into_iter().map(str::to_string).collect(),
            checkpoint: checkpoint.cloned(),
        }
    }
}

impl Appender {
    pub(super) fn new(file: PathBuf) -> Self {
        Self { file, connection: Default::default(), closed: Default::default() }
    }

    /// Appends `entries` (and `checkpoint`) as [`crate::Store::append_audit`]
    /// says, then caches the strings the batch added.
    pub(super) async fn append(
        self: &Arc<Self>,
        strings: &Arc<Strings>,
        entries: &[AuditEntry],
        checkpoint: Option<&Checkpoint>,
    ) -> StoreResult<()> {
        let batch = Batch::of(strings, entries, checkpoint);
        let (this, strings) = (self.clone(), strings.clone());
        tokio::task::spawn_blocking(move || {
            let mut held =
                this.connection.lock().map_err(|_| StoreError::Unavailable("the audit appender failed".into()))?;
            if this.closed.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable("the store is closed".into()));
            }
            let c = match held.as_mut() {
                Some(c) => c,
                None => held.insert(open(&this.file)?),
            };
            match write(c, &batch) {
                Ok(learnt) => {
                    strings.learn(learnt);
                    Ok(())
                }
                Err(e) => {
                    // A connection that failed is not trusted again.
                    if matches!(e, StoreError::Unavailable(_)) {
                        *held = None;
                    }
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Closes the connection; appends from now on are refused.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut held) = self.connection.lock() {
            *held = None;
        }
    }
}

/// The connection, set as the pool's are (see [`super::SqliteStore::open`]).
fn open(file: &std::path::Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(file, flags).map_err(unavailable)?;
    c.busy_timeout(Duration::from_secs(10)).map_err(unavailable)?;
    // Some of these answer with a row (the value now set): read and drop it.
    for (pragma, value) in
        [("synchronous", "FULL"), ("foreign_keys", "ON"), ("secure_delete", "ON"), ("wal_autocheckpoint", "4000")]
    {
        let mut set = c.prepare(&format!("PRAGMA {pragma} = {value}")).map_err(unavailable)?;
        set.query([]).and_then(|mut rows| rows.next().map(|_| ())).map_err(unavailable)?;
    }
    Ok(c)
}

/// One transaction: the head check, the new strings, the entries and the
/// checkpoint. Returns the strings added, for the cache once committed.
fn write(c: &mut Connection, b: &Batch) -> StoreResult<Vec<(String, i64)>> {
    // IMMEDIATE: the write lock from the start, so the head read below
    // cannot go stale before the insert.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
    if let Some((seq, prev_hash)) = &b.first {
        let head = |sql| {
            tx.prepare_cached(sql)?.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))).optional()
        };
        let stored = match head(HEAD).map_err(unavailable)? {
            Some(h) => Some(h),
            None => head(BASE).map_err(unavailable)?,
        };
        let stored = stored.map(|(s, h)| (s.max(0) as u64, h));
        if let Err(current) = onto_head(stored, *seq, prev_hash) {
            return Err(StoreError::Conflict { current });
        }
    }
    let mut learnt = Vec::with_capacity(b.new.len());
    if !b.new.is_empty() {
        let mut add = tx.prepare_cached(ADD_STRING).map_err(unavailable)?;
        for v in &b.new {
            learnt.push((v.clone(), add.query_row([v], |r| r.get::<_, i64>(0)).map_err(unavailable)?));
        }
    }
    {
        let mut insert = tx.prepare_cached(INSERT).map_err(unavailable)?;
        for (i, r) in b.rows.iter().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                std::thread::yield_now();
            }
            let id = |i: i64| if i < 0 { learnt[(-i - 1) as usize].1 } else { i };
            // In the columns' order: seq, time, request id, the seven
            // strings' ids, detail, hash.
            let ids = r.ids.map(id);
            let head: [&dyn ToSql; 3] = [&r.seq, &r.time_ms, &r.request_id];
            let tail: [&dyn ToSql; 2] = [&r.detail, &r.hash];
            let values = head.into_iter().chain(ids.iter().map(|i| i as &dyn ToSql)).chain(tail);
            insert.execute(params_from_iter(values)).map_err(unavailable)?;
        }
    }
    if let Some(cp) = &b.checkpoint {
        tx.prepare_cached(CHECKPOINT)
            .and_then(|mut s| s.execute(params![cp.seq as i64, cp.hash, cp.time_ms, cp.signature]))
            .map_err(unavailable)?;
    }
    // The commit (the log's pages written, then synced) runs in one
    // stretch: it starts at the start of one.
    std::thread::yield_now();
    tx.commit().map_err(unavailable)?;
    Ok(learnt)
}

#[cfg(test)]
mod tests {
    use super::super::walk::tests::entries;
    use crate::{SqliteStore, Store, StoreError};
    use keyward_core::audit::{AuditEntry, Checkpoint};

    fn checkpoint(e: &AuditEntry) -> Checkpoint {
        Checkpoint {
            seq: e.seq,
            hash: keyward_core::keyring::hex_encode(&e.hash),
            time_ms: e.time_ms,
            signature: "s".into(),
        }
    }

    #[tokio::test]
    async fn the_appender_stores_what_sqlx_stores_and_caches_only_committed_strings() {
        let dir = tempfile::tempdir().unwrap();
        let file = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        assert!(file.appender.is_some());
        let memory = SqliteStore::in_memory().await.unwrap();
        assert!(memory.appender.is_none(), "in memory, sqlx appends");
        // Batches of new strings, strings stored before, multi-byte and
        // empty ones; a checkpoint with some, alone with none.
        let mut all: Vec<AuditEntry> = Vec::new();
        for (n, with_checkpoint) in [(1, false), (300, true), (64, false), (0, true), (1_000, false)] {
            let batch = entries(all.last(), n);
            let cp = with_checkpoint.then(|| checkpoint(batch.last().or(all.last()).unwrap()));
            for store in [&file, &memory] {
                store.append_audit(&batch, cp.as_ref()).await.unwrap();
            }
            all.extend(batch);
        }
        for store in [&file, &memory] {
            assert_eq!(store.audit_head().await.unwrap(), Some((1_365, all[1_364].hash.clone())));
        }
        let cold = |s: &SqliteStore| SqliteStore { strings: Default::default(), ..s.clone() };
        assert_eq!(cold(&file).audit_page(1, 10_000).await.unwrap(), all, "whole entries, strings and hashes");
        assert_eq!(cold(&memory).audit_page(1, 10_000).await.unwrap(), all);
        assert_eq!(file.audit_checkpoints().await.unwrap(), memory.audit_checkpoints().await.unwrap());
        assert_eq!(file.audit_checkpoints().await.unwrap().len(), 2);

        // A batch that does not chain onto the head: nothing stored, and its
        // new string neither stored nor cached.
        let mut stale = entries(Some(&all[9]), 1);
        stale[0].target = "never-committed".into();
        stale[0].chain_after(10, &all[9].hash);
        let err = file.append_audit(&stale, None).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { current: 1_365 }), "{err:?}");
        assert_eq!(file.strings.id("never-committed"), None);
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_strings WHERE value = 'never-committed'")
            .fetch_one(&file.pool)
            .await
            .unwrap();
        assert_eq!(stored, 0);
        // The new strings of a batch that went in are cached.
        let next = entries(all.last(), 1);
        file.append_audit(&next, None).await.unwrap();
        assert!(file.strings.id(&next[0].target).is_some());

        file.close().await;
        let err = file.append_audit(&entries(next.last(), 1), None).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("closed")), "{err:?}");
        assert!(file.appender.as_ref().unwrap().connection.lock().unwrap().is_none(), "nothing kept open");
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_written_is_unavailable_and_the_connection_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        let first = entries(None, 5);
        store.append_audit(&first, None).await.unwrap();
        // The schema changed underneath: the insert fails inside SQLite.
        sqlx::query("ALTER TABLE audit_entries RENAME TO audit_gone").execute(&store.pool).await.unwrap();
        let err = store.append_audit(&entries(first.last(), 5), None).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("audit_entries")), "{err:?}");
        assert!(
            store.appender.as_ref().unwrap().connection.lock().unwrap().is_none(),
            "a failed connection is dropped"
        );
        sqlx::query("ALTER TABLE audit_gone RENAME TO audit_entries").execute(&store.pool).await.unwrap();
        store.append_audit(&entries(first.last(), 5), None).await.unwrap();
        assert_eq!(store.audit_head().await.unwrap().unwrap().0, 10, "a new connection writes again");
    }
}
