//! Walks through the audit log (verify, archive) read through SQLite's own
//! interface (rusqlite) on a blocking thread.
//!
//! sqlx's driver hands each row from its worker thread to the caller, which
//! costs a switch between threads per row; a walk reads a million of them.
//! Its way around that, one row per page with the numbers written out as
//! JSON ([`super::audit::rows`], kept for in-memory databases, which no
//! second connection can open), left SQLite most of its time turning
//! integers into text. Here each column is read where it lies: a page of
//! 20,000 entries whose strings are all new costs about a fifth of the CPU.

use super::audit::text;
use crate::audit::StoredHash;
use crate::audit_strings::{IdMap, Strings, Table};
use crate::{AuditRow, AuditRows, StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Connections kept open between reads (a walk reads a few pages ahead,
/// each on its own connection).
const KEPT: usize = 4;
/// Reads at once, each on its own connection (audit queries read a few
/// entries' hashes this way too).
const READS: usize = 8;
/// Each connection's page cache, in KiB: a walk reads each page once, and
/// the operating system caches the file.
const CACHE_KIB: i64 = 512;
/// Missing string ids closer than this to the one before are read in one
/// range scan with it (reading at most this many rows per id wanted).
const GAP: i64 = 4;

/// The entries' columns, the seven strings in [`crate::audit_strings::FIELDS`] order.
const ROWS: &str = "SELECT seq, time_ms, key_id, ip, action, target, class, decision, code, request_id, detail, hash
     FROM audit_entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2";
const STRINGS: &str = "SELECT id, value FROM audit_strings WHERE id BETWEEN ?1 AND ?2";

/// Read-only connections to one database file, opened on first use.
#[derive(Debug)]
pub(super) struct Walker {
    file: PathBuf,
    idle: Mutex<Vec<Connection>>,
    reads: Arc<Semaphore>,
    /// Set by [`Walker::close`]: no connection opens or is kept after it.
    closed: AtomicBool,
}

impl Walker {
    pub(super) fn new(file: PathBuf) -> Self {
        Self {
            file,
            idle: Mutex::new(Vec::new()),
            reads: Arc::new(Semaphore::new(READS)),
            closed: AtomicBool::new(false),
        }
    }

    /// Consecutive entries from `from_seq`, at most `limit`, with their
    /// strings (from `strings`' cache, else the database).
    pub(super) async fn rows(
        self: &Arc<Self>,
        strings: Arc<Strings>,
        from_seq: u64,
        limit: u64,
    ) -> StoreResult<AuditRows> {
        self.reading(true, move |c| read(c, &strings, from_seq, limit)).await
    }

    /// Runs `read` on a blocking thread over one of the connections (at
    /// most [`READS`] at once). The connection is kept for the next read
    /// if `keep` and the read succeeded; a read made once in a while (every
    /// key, at a start) closes it rather than keep the memory SQLite gave it.
    pub(super) async fn reading<T: Send + 'static>(
        self: &Arc<Self>,
        keep: bool,
        read: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let closed = || StoreError::Unavailable("the store is closed".into());
        let permit = self.reads.clone().acquire_owned().await.map_err(|_| closed())?;
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let c = this.connection()?;
            let read = read(&c);
            if keep && read.is_ok() {
                this.give_back(c);
            }
            read
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Closes the idle connections; reads from now on are refused.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reads.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Connections kept open between reads.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    fn connection(&self) -> StoreResult<Connection> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(c);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(&self.file, flags).map_err(unavailable)?;
        c.busy_timeout(Duration::from_secs(10)).map_err(unavailable)?;
        c.pragma_update(None, "cache_size", -CACHE_KIB).map_err(unavailable)?;
        Ok(c)
    }

    fn give_back(&self, c: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEPT
            && !self.closed.load(Ordering::Acquire)
        {
            idle.push(c);
        }
    }
}

/// The page: each row's columns read in place, its strings' ids kept
/// beside it until they are all looked up.
fn read(c: &Connection, strings: &Strings, from_seq: u64, limit: u64) -> StoreResult<AuditRows> {
    let mut statement = c.prepare_cached(ROWS).map_err(unavailable)?;
    let mut query = statement
        .query((from_seq.min(i64::MAX as u64) as i64, limit.min(i64::MAX as u64) as i64))
        .map_err(unavailable)?;
    let mut rows = Vec::new();
    let mut ids: Vec<[i64; 7]> = Vec::new();
    while let Some(r) = query.next().map_err(unavailable)? {
        let bytes = |i| r.get_ref(i).map_err(unavailable)?.as_bytes().map_err(|e| corrupt(&e));
        let number = |i| r.get::<_, i64>(i).map_err(|e| corrupt(&e));
        ids.push([number(2)?, number(3)?, number(4)?, number(5)?, number(6)?, number(7)?, number(8)?]);
        rows.push(AuditRow {
            seq: r.get::<_, u64>(0).map_err(|e| corrupt(&e))?,
            time_ms: number(1)?,
            request_id: text(bytes(9)?),
            strings: [0; 7],
            detail: text(bytes(10)?),
            hash: StoredHash::from_bytes(bytes(11)?),
        });
    }
    let (mut values, mut missing) = strings.values(ids.iter().flatten().copied());
    look_up(c, &mut missing, &mut values)?;
    strings.learn_looked_up(&values, &missing);
    let table = Table::new(values);
    for (row, ids) in rows.iter_mut().zip(&ids) {
        row.strings = ids.map(|id| table.at(id));
    }
    Ok(AuditRows { rows, strings: table.strings })
}

/// Reads the values of `missing` (sorted here) into `out`: each run of ids
/// at most [`GAP`] apart in one range scan. Strings added together (a run
/// of entries each naming a new key) have neighbouring ids, so a page of
/// them costs a handful of scans.
fn look_up(c: &Connection, missing: &mut [i64], out: &mut IdMap<String>) -> StoreResult<()> {
    missing.sort_unstable();
    let mut statement = c.prepare_cached(STRINGS).map_err(unavailable)?;
    for run in missing.chunk_by(|a, b| b.saturating_sub(*a) <= GAP) {
        let mut query = statement.query((run[0], run[run.len() - 1])).map_err(unavailable)?;
        while let Some(r) = query.next().map_err(unavailable)? {
            let id = r.get::<_, i64>(0).map_err(|e| corrupt(&e))?;
            if run.binary_search(&id).is_ok() {
                let value = r.get_ref(1).map_err(unavailable)?.as_bytes().map_err(|e| corrupt(&e))?;
                out.insert(id, text(value));
            }
        }
    }
    Ok(())
}

pub(super) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("an audit entry does not read back: {e}"))
}

#[cfg(test)]
pub(super) mod tests {
    use crate::{AuditRows, SqliteStore, Store, StoreError};
    use keyward_core::audit::{AuditEntry, genesis};

    /// `n` entries after `after`, whose targets are new strings (neighbouring
    /// ids), old ones a few ids apart, empty or multi-byte.
    pub(in crate::sqlite) fn entries(after: Option<&AuditEntry>, n: usize) -> Vec<AuditEntry> {
        let (mut seq, mut hash) = after.map_or((0, genesis()), |e| (e.seq, e.hash.clone()));
        (0..n)
            .map(|i| {
                let at = seq as usize;
                let mut e = AuditEntry {
                    time_ms: 1_000 + at as i64,
                    request_id: format!("req-{at}"),
                    key_id: format!("key_{}", at % 3),
                    ip: if at % 4 == 0 { format!("10.0.0.{}", at % 256) } else { "127.0.0.1".into() },
                    action: "key.create".into(),
                    target: match i % 9 {
                        0 => String::new(),
                        1 => format!("clé-{at}-ü€𝄞"),
                        2 | 3 if at > 7 * 9 => format!("key_{:06}", at - 7 * (i % 9)),
                        _ => format!("key_{at:06}"),
                    },
                    class: "admin".into(),
                    decision: "allow".into(),
                    code: "ok".into(),
                    detail: format!("{{\"n\":{at}}}"),
                    ..Default::default()
                };
                e.chain_after(seq, &hash);
                (seq, hash) = (e.seq, e.hash.clone());
                e
            })
            .collect()
    }

    /// What a row says, its strings by value: seq, time, request id, the
    /// seven strings, detail, and the hash if whole.
    type Said = (u64, i64, String, [String; 7], String, Option<[u8; 32]>);

    fn said(rows: &AuditRows) -> Vec<Said> {
        rows.rows
            .iter()
            .map(|r| {
                let [_, key_id, ip, action, target, class, decision, code, _] = rows.fields(r).map(str::to_string);
                let whole = r.hash.whole().copied();
                (
                    r.seq,
                    r.time_ms,
                    r.request_id.clone(),
                    [key_id, ip, action, target, class, decision, code],
                    r.detail.clone(),
                    whole,
                )
            })
            .collect()
    }

    async fn filled(store: &SqliteStore) -> Vec<AuditEntry> {
        let mut all = entries(None, 2_500);
        store.append_audit(&all, None).await.unwrap();
        let more = entries(all.last(), 1_700);
        store.append_audit(&more, None).await.unwrap();
        all.extend(more);
        all
    }

    #[tokio::test]
    async fn the_walker_reads_what_sqlx_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        let all = filled(&store).await;
        // Stores sharing the file with nothing cached: every string is read.
        let cold = |walker| SqliteStore { strings: Default::default(), walker, ..store.clone() };
        for (from, limit) in [(1, 10_000), (777, 1_500), (4_150, 100), (5_000, 10)] {
            let walked = cold(store.walker.clone()).audit_rows(from, limit).await.unwrap();
            let read = cold(None).audit_rows(from, limit).await.unwrap();
            assert_eq!(said(&walked), said(&read), "from {from}, {limit}");
            let expected = all.len().saturating_sub(from as usize - 1).min(limit as usize);
            assert_eq!(walked.rows.len(), expected, "from {from}, {limit}");
        }
        let page = cold(store.walker.clone()).audit_page(1, 10_000).await.unwrap();
        assert_eq!(page, all, "whole entries, strings and hashes");
        // The same through the in-memory store's reads.
        let memory = SqliteStore::in_memory().await.unwrap();
        assert_eq!(filled(&memory).await, all);
        let memory = SqliteStore { strings: Default::default(), ..memory };
        assert_eq!(memory.audit_page(1, 10_000).await.unwrap(), all);
    }

    #[tokio::test]
    async fn damaged_text_reads_lossily_and_a_missing_file_or_a_closed_store_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.db");
        let store = SqliteStore::open(&file).await.unwrap();
        filled(&store).await;
        let damage = "UPDATE audit_entries SET detail = CAST(x'ff41' AS TEXT) WHERE seq = 5";
        sqlx::query(damage).execute(&store.pool).await.unwrap();
        for walker in [store.walker.clone(), None] {
            let walks = walker.is_some();
            let rows = SqliteStore { walker, ..store.clone() }.audit_rows(1, 10).await.unwrap();
            assert_eq!(rows.rows[4].detail, "\u{fffd}A", "walker {walks}");
        }
        let gone = Some(std::sync::Arc::new(super::Walker::new(dir.path().join("gone.db"))));
        let err = SqliteStore { walker: gone, ..store.clone() }.audit_rows(1, 10).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("unable to open")), "{err:?}");
        store.close().await;
        let err = store.audit_rows(1, 10).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("closed")), "{err:?}");
        assert!(store.walker.as_ref().unwrap().idle.lock().unwrap().is_empty(), "nothing kept open");
    }
}
