//! Reading every access key fast: a page is one row of JSON and two blobs
//! (a row each would cost a hand-off between threads per key), pages in
//! rowid order (a walk down the table, no index lookups), all inside one
//! read transaction, so they are one snapshot however long the reading
//! takes; each page is decoded on a blocking thread while SQLite reads the
//! next.

use crate::key_pages::{KeyPages, PageSender};
use crate::{KeyRecord, StoreError, StoreResult};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

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

/// Every key, `page` at a time (see the module doc).
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
