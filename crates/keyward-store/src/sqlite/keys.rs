//! Reading every access key fast, in rowid order (a walk down the table,
//! no index lookups), as one snapshot however long the reading takes.
//!
//! A database file is read through SQLite's own interface (rusqlite) on a
//! blocking thread, one statement over the whole table, each column read
//! where it lies ([`walk`]). sqlx would hand each row between threads, so
//! the in-memory database (which no second connection can open) reads a
//! page as one row of JSON and two blobs inside one read transaction, each
//! page decoded on a blocking thread while SQLite builds the next
//! ([`pages`]). Building and parsing that JSON was a third of a start's CPU
//! at a million keys.

use super::audit::text;
use super::walk::{Walker, unavailable};
use crate::key_pages::{KeyPages, PageSender};
use crate::{KeyRecord, StoreError, StoreResult};
use rusqlite::Connection;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::sync::Arc;

/// Keys a page when every key is read at once.
pub(super) const PAGE: u64 = 50_000;

/// The columns but the two hashes, whose lengths come instead: the hashes
/// come as two blobs, each row's at its length.
type Packed = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    usize,
    usize,
);

/// One page as SQLite gives it: the JSON rows, the hashes, the MACs, the
/// last rowid (`None`: no rows).
struct RawPage {
    rows: String,
    hashes: Vec<u8>,
    macs: Vec<u8>,
    last: Option<i64>,
    count: u64,
}

/// The columns of [`KeyRecord`] in the order [`record`] reads them.
const ALL: &str = "SELECT id, hash, name, owner, namespace, policy, state, created_ms, mac, uses_remaining,
     last_used_ms, last_used_ip FROM access_keys ORDER BY rowid";

/// Every key of a database file, `page` at a time (see the module doc).
pub(super) fn walk(walker: &Arc<Walker>, page: u64) -> KeyPages {
    let (send, pages) = KeyPages::channel();
    let (walker, page) = (walker.clone(), page.clamp(1, 1 << 24) as usize);
    tokio::spawn(async move {
        let sender = send.clone();
        let result = walker.reading(false, move |c| read_walking(c, page, &sender)).await;
        send.end(result).await;
    });
    pages
}

/// Sends every row to `send`, `page` at a time. One statement stepped to
/// its end reads one snapshot: SQLite keeps its read transaction open
/// until the statement is reset.
fn read_walking(c: &Connection, page: usize, send: &PageSender) -> StoreResult<()> {
    let mut statement = c.prepare(ALL).map_err(unavailable)?;
    let mut rows = statement.query(()).map_err(unavailable)?;
    // Room for a few keys first, not the whole page (a page of 10,000 is
    // 2.5 MB, and most stores hold a handful of keys).
    let room = page.min(256);
    let mut keys = Vec::with_capacity(room);
    while let Some(r) = rows.next().map_err(unavailable)? {
        keys.push(record(r)?);
        if keys.len() == page && !send.blocking_page(std::mem::replace(&mut keys, Vec::with_capacity(room))) {
            return Ok(());
        }
    }
    if !keys.is_empty() {
        send.blocking_page(keys);
    }
    Ok(())
}

/// A row as it lies. Text that is not UTF-8 (only a write around keyward
/// makes it) reads lossily: its MAC then fails and that key alone is
/// refused, where an error would refuse every key.
fn record(r: &rusqlite::Row<'_>) -> StoreResult<KeyRecord> {
    let bytes = |i| r.get_ref(i).map_err(unavailable)?.as_bytes().map_err(|e| corrupt(&e));
    let maybe = |i| r.get_ref(i).map_err(unavailable)?.as_bytes_or_null().map_err(|e| corrupt(&e));
    let number = |i| r.get::<_, Option<i64>>(i).map_err(|e| corrupt(&e));
    Ok(KeyRecord {
        id: text(bytes(0)?),
        hash: bytes(1)?.to_vec(),
        name: text(bytes(2)?),
        owner: maybe(3)?.map(text),
        namespace: text(bytes(4)?),
        policy: text(bytes(5)?),
        state: text(bytes(6)?),
        created_ms: number(7)?.ok_or_else(|| corrupt(&"no creation time"))?,
        mac: bytes(8)?.to_vec(),
        uses_remaining: number(9)?,
        last_used_ms: number(10)?,
        last_used_ip: maybe(11)?.map(text),
    })
}

fn corrupt(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("an access key does not read back: {e}"))
}

/// Every key of the in-memory database, `page` at a time (see the module doc).
pub(super) async fn pages(pool: &SqlitePool, page: u64) -> StoreResult<KeyPages> {
    let tx = pool.begin().await?;
    let (send, pages) = KeyPages::channel();
    tokio::spawn(async move {
        let result = read_all(tx, page.clamp(1, i64::MAX as u64), &send).await;
        send.end(result).await;
    });
    Ok(pages)
}

async fn read_all(mut tx: Transaction<'static, Sqlite>, page: u64, send: &PageSender) -> StoreResult<()> {
    let mut after = 0i64;
    loop {
        let raw = read_page(&mut tx, after, page).await?;
        let (count, last) = (raw.count, raw.last);
        if count > 0 && !send.page(move || decode(raw)).await {
            return Ok(());
        }
        match last {
            Some(last) if count == page => after = last,
            _ => return Ok(()),
        }
    }
}

async fn read_page(tx: &mut Transaction<'static, Sqlite>, after: i64, limit: u64) -> StoreResult<RawPage> {
    let row = sqlx::query(
        "SELECT json_group_array(json_array(id, name, owner, namespace, policy, state, created_ms,
         uses_remaining, last_used_ms, last_used_ip, length(hash), length(mac))) AS rows,
         CAST(group_concat(hash, '') AS BLOB) AS hashes, CAST(group_concat(mac, '') AS BLOB) AS macs,
         max(rid) AS last, count(*) AS n
         FROM (SELECT rowid AS rid, * FROM access_keys WHERE rowid > ? ORDER BY rowid LIMIT ?)",
    )
    .bind(after)
    .bind(limit as i64)
    .fetch_one(&mut **tx)
    .await?;
    let count: i64 = row.get("n");
    Ok(RawPage {
        rows: row.get::<Option<String>, _>("rows").unwrap_or_default(),
        hashes: row.get::<Option<Vec<u8>>, _>("hashes").unwrap_or_default(),
        macs: row.get::<Option<Vec<u8>>, _>("macs").unwrap_or_default(),
        last: row.get("last"),
        count: count.max(0) as u64,
    })
}

/// The keys of a page, each hash and MAC cut from the blobs at its length.
fn decode(raw: RawPage) -> StoreResult<Vec<KeyRecord>> {
    let packed: Vec<Packed> = serde_json::from_str(&raw.rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if packed.len() as u64 != raw.count {
        return Err(StoreError::Corrupt("a page of access keys lost rows".into()));
    }
    let (mut h, mut m) = (0usize, 0usize);
    let take = |from: &[u8], at: &mut usize, n: usize| -> StoreResult<Vec<u8>> {
        let bytes = from.get(*at..*at + n).ok_or_else(|| StoreError::Corrupt("a key's hash is cut".into()))?;
        *at += n;
        Ok(bytes.to_vec())
    };
    let keys = packed
        .into_iter()
        .map(|p| {
            Ok(KeyRecord {
                id: p.0,
                name: p.1,
                owner: p.2,
                namespace: p.3,
                policy: p.4,
                state: p.5,
                created_ms: p.6,
                uses_remaining: p.7,
                last_used_ms: p.8,
                last_used_ip: p.9,
                hash: take(&raw.hashes, &mut h, p.10)?,
                mac: take(&raw.macs, &mut m, p.11)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    if h != raw.hashes.len() || m != raw.macs.len() {
        return Err(StoreError::Corrupt("a page of access keys has more hash bytes than its rows".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use crate::{KeyPages, KeyRecord, SqliteStore, StoreError};

    /// Rows `from..from + n` of every shape (owner, limits and last use set
    /// or not, multi-byte text, hashes and MACs of their own lengths),
    /// written as they are: the store checks no MAC.
    async fn insert(store: &SqliteStore, from: usize, n: usize) {
        let mut tx = store.pool.begin().await.unwrap();
        for i in from..from + n {
            let some = |v: i64| (i % 3 != 0).then_some(v);
            sqlx::query(
                "INSERT INTO access_keys (id, hash, name, owner, namespace, policy, state, created_ms, mac,
                 uses_remaining, last_used_ms, last_used_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(format!("key_{i:06}"))
            .bind(vec![(i % 251) as u8; 16 + i % 17])
            .bind(if i % 5 == 0 { format!("bot-é€𝄞-{i}") } else { format!("bot-{i}") })
            .bind((i % 2 == 0).then(|| format!("desk {i}")))
            .bind(if i % 7 == 0 { "keyward" } else { "bench" })
            .bind(format!("{{\"scopes\":[\"account:a{}:read\"]}}", i % 11))
            .bind(["active", "disabled", "revoked"][i % 3])
            .bind(1_000 + i as i64)
            .bind(vec![(i % 13) as u8; 32 + i % 3])
            .bind(some(i as i64))
            .bind(some(2_000 + i as i64))
            .bind((i % 4 == 0).then(|| format!("10.0.{}.{}", i % 256, i % 7)))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn all(mut pages: KeyPages, size: usize) -> Vec<KeyRecord> {
        let mut out = Vec::new();
        while let Some(page) = pages.next().await.unwrap() {
            assert!(!page.is_empty() && page.len() <= size, "a page of {}", page.len());
            out.extend(page);
        }
        out
    }

    #[tokio::test]
    async fn the_walk_reads_what_sqlx_reads_as_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        let walker = store.walker.clone().unwrap();
        insert(&store, 0, 2_500).await;
        for size in [1, 999, 2_500, 10_000] {
            let walked = all(super::walk(&walker, size), size as usize).await;
            let read = all(super::pages(&store.pool, size).await.unwrap(), size as usize).await;
            assert_eq!(walked.len(), 2_500, "pages of {size}");
            assert_eq!(walked, read, "pages of {size}");
        }
        assert_eq!(walker.idle(), 0, "a start's walk keeps no connection open");

        // Rows written once the walk has begun are not in it.
        let mut pages = super::walk(&walker, 100);
        let mut seen = pages.next().await.unwrap().unwrap().len();
        insert(&store, 2_500, 10).await;
        while let Some(page) = pages.next().await.unwrap() {
            seen += page.len();
        }
        assert_eq!(seen, 2_500, "one snapshot");

        // Damaged text reads lossily (that key's MAC fails, not the load).
        let damage = "UPDATE access_keys SET name = CAST(x'ff41' AS TEXT) WHERE id = 'key_000004'";
        sqlx::query(damage).execute(&store.pool).await.unwrap();
        let walked = all(super::walk(&walker, 1_000), 1_000).await;
        assert_eq!(walked.len(), 2_510);
        assert_eq!(walked[4].name, "\u{fffd}A");

        // A closed store reads nothing: an error, never fewer keys.
        store.close().await;
        let err = super::walk(&walker, 100).next().await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("closed")), "{err:?}");
    }
}
