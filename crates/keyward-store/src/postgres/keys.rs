//! The seal record, access keys, order usage, the key ledger and
//! namespaces in PostgreSQL.
//!
//! A ledger write is a compare-and-set on the head row: `UPDATE … WHERE
//! rev = expected` (or `INSERT … ON CONFLICT DO NOTHING` for the first
//! head). A second node's write waits on the row lock, then finds the
//! revision moved and matches nothing: [`StoreError::Conflict`].

use super::{notify, u64_of};
use crate::KeyPages;
use crate::{
    Change, KeyRecord, LedgerHead, LedgerPart, LedgerWrite, NamespaceRecord, OrderUsage, SealRecord, StoreError,
    StoreResult,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

fn key_of(r: &PgRow) -> KeyRecord {
    KeyRecord {
        id: r.get("id"),
        hash: r.get("hash"),
        name: r.get("name"),
        owner: r.get("owner"),
        namespace: r.get("namespace"),
        policy: r.get("policy"),
        state: r.get("state"),
        created_ms: r.get("created_ms"),
        mac: r.get("mac"),
        uses_remaining: r.get("uses_remaining"),
        last_used_ms: r.get("last_used_ms"),
        last_used_ip: r.get("last_used_ip"),
    }
}

fn seal_json(seal: &SealRecord) -> StoreResult<String> {
    serde_json::to_string(seal).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) async fn initialize(
    pool: &PgPool,
    node: &str,
    seal: &SealRecord,
    bootstrap: &LedgerWrite,
) -> StoreResult<()> {
    let json = seal_json(seal)?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query("INSERT INTO meta (name, value) VALUES ('seal', $1) ON CONFLICT (name) DO NOTHING")
        .bind(json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if inserted == 0 {
        return Err(StoreError::AlreadyInitialized);
    }
    write_ledger(&mut tx, bootstrap).await?;
    notify(&mut tx, node, &Change::Keys).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn seal_record(pool: &PgPool) -> StoreResult<Option<SealRecord>> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE name = 'seal'").fetch_optional(pool).await?;
    value.map(|v| serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
}

pub(super) async fn put_seal_record(pool: &PgPool, node: &str, seal: &SealRecord) -> StoreResult<()> {
    let json = seal_json(seal)?;
    let mut tx = pool.begin().await?;
    let n = sqlx::query("UPDATE meta SET value = $1 WHERE name = 'seal'")
        .bind(json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n > 0 {
        notify(&mut tx, node, &Change::Seal).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_keys(pool: &PgPool) -> StoreResult<Vec<KeyRecord>> {
    let rows = sqlx::query("SELECT * FROM access_keys ORDER BY created_ms, id").fetch_all(pool).await?;
    Ok(rows.iter().map(key_of).collect())
}

/// Every key, `page` at a time in id order, in one snapshot (a read-only
/// repeatable-read transaction); each page is decoded on a blocking thread
/// while the next is read.
pub(super) async fn pages(pool: &PgPool, page: u64) -> StoreResult<KeyPages> {
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    let (send, pages) = KeyPages::channel();
    let page = page.clamp(1, i64::MAX as u64);
    tokio::spawn(async move {
        let result = async {
            let mut after = String::new();
            loop {
                let rows = sqlx::query("SELECT * FROM access_keys WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(&after)
                    .bind(page as i64)
                    .fetch_all(&mut *tx)
                    .await?;
                let n = rows.len() as u64;
                if let Some(last) = rows.last() {
                    after = last.try_get("id")?;
                }
                if n > 0 && !send.page(move || Ok(rows.iter().map(key_of).collect())).await {
                    return Ok(());
                }
                if n < page {
                    return Ok(());
                }
            }
        }
        .await;
        send.end(result).await;
    });
    Ok(pages)
}

/// Records a key's last use; not a ledger write, so nobody is told.
pub(super) async fn touch_key(pool: &PgPool, id: &str, at_ms: i64, ip: &str) -> StoreResult<()> {
    sqlx::query("UPDATE access_keys SET last_used_ms = $1, last_used_ip = $2 WHERE id = $3")
        .bind(at_ms)
        .bind(ip)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn key(pool: &PgPool, id: &str) -> StoreResult<Option<KeyRecord>> {
    let row = sqlx::query("SELECT * FROM access_keys WHERE id = $1").bind(id).fetch_optional(pool).await?;
    Ok(row.as_ref().map(key_of))
}

/// The head and its parts, read in one snapshot.
pub(super) async fn ledger_head(pool: &PgPool) -> StoreResult<Option<LedgerHead>> {
    let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    let row = sqlx::query("SELECT rev, count, mac FROM key_ledger WHERE id = 1").fetch_optional(&mut *tx).await?;
    let Some(r) = row else { return Ok(None) };
    let parts = sqlx::query("SELECT part, bytes FROM key_ledger_parts ORDER BY part")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|p| LedgerPart { index: p.get::<i64, _>("part").clamp(0, u32::MAX as i64) as u32, bytes: p.get("bytes") })
        .collect();
    tx.commit().await?;
    Ok(Some(LedgerHead { rev: u64_of(r.get("rev")), count: u64_of(r.get("count")), mac: r.get("mac"), parts }))
}

pub(super) async fn list_order_usage(pool: &PgPool) -> StoreResult<Vec<OrderUsage>> {
    let rows = sqlx::query("SELECT key_id, day, used FROM order_usage ORDER BY key_id, day").fetch_all(pool).await?;
    Ok(rows.iter().map(|r| OrderUsage { key_id: r.get("key_id"), day: r.get("day"), used: r.get("used") }).collect())
}

pub(super) async fn order_usage(pool: &PgPool, key_id: &str, day: i64) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT used FROM order_usage WHERE key_id = $1 AND day = $2")
        .bind(key_id)
        .bind(day)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn commit_ledger(pool: &PgPool, node: &str, write: &LedgerWrite) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    write_ledger(&mut tx, write).await?;
    notify(&mut tx, node, &Change::Keys).await?;
    tx.commit().await?;
    Ok(())
}

/// One ledger write inside a transaction: the head first (compare and
/// set, which locks the head row until commit), then the rows.
async fn write_ledger(tx: &mut PgConnection, w: &LedgerWrite) -> StoreResult<()> {
    let h = &w.head;
    let moved = match w.expected_rev {
        None => {
            sqlx::query(
                "INSERT INTO key_ledger (id, rev, count, mac) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(h.rev as i64)
            .bind(h.count as i64)
            .bind(&h.mac)
            .execute(&mut *tx)
            .await?
        }
        Some(expected) => {
            sqlx::query("UPDATE key_ledger SET rev = $1, count = $2, mac = $3 WHERE id = 1 AND rev = $4")
                .bind(h.rev as i64)
                .bind(h.count as i64)
                .bind(&h.mac)
                .bind(expected as i64)
                .execute(&mut *tx)
                .await?
        }
    }
    .rows_affected();
    if moved == 0 {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT rev FROM key_ledger WHERE id = 1").fetch_optional(&mut *tx).await?;
        return Err(StoreError::Conflict { current: current.map(u64_of).unwrap_or(0) });
    }
    for p in &h.parts {
        sqlx::query(
            "INSERT INTO key_ledger_parts (part, bytes) VALUES ($1, $2)
             ON CONFLICT (part) DO UPDATE SET bytes = EXCLUDED.bytes",
        )
        .bind(i64::from(p.index))
        .bind(&p.bytes)
        .execute(&mut *tx)
        .await?;
    }
    for k in &w.insert_keys {
        insert_key(&mut *tx, k).await?;
    }
    for k in &w.update_keys {
        let n = sqlx::query(
            "UPDATE access_keys SET name = $1, owner = $2, policy = $3, state = $4, mac = $5, uses_remaining = $6
             WHERE id = $7",
        )
        .bind(&k.name)
        .bind(&k.owner)
        .bind(&k.policy)
        .bind(&k.state)
        .bind(&k.mac)
        .bind(k.uses_remaining)
        .bind(&k.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
    }
    for u in &w.usage {
        sqlx::query(
            "INSERT INTO order_usage (key_id, day, used) VALUES ($1, $2, $3)
             ON CONFLICT (key_id, day) DO UPDATE SET used = EXCLUDED.used",
        )
        .bind(&u.key_id)
        .bind(u.day)
        .bind(u.used)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn insert_key(tx: &mut PgConnection, k: &KeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO access_keys (id, hash, name, owner, namespace, policy, state, created_ms, mac, uses_remaining)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&k.id)
    .bind(&k.hash)
    .bind(&k.name)
    .bind(&k.owner)
    .bind(&k.namespace)
    .bind(&k.policy)
    .bind(&k.state)
    .bind(k.created_ms)
    .bind(&k.mac)
    .bind(k.uses_remaining)
    .execute(tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_namespace(pool: &PgPool, node: &str, ns: &NamespaceRecord) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "INSERT INTO namespaces (name, prefix, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&ns.name)
    .bind(&ns.prefix)
    .bind(ns.created_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::Conflict { current: 0 });
    }
    notify(&mut tx, node, &Change::Namespaces).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_namespaces(pool: &PgPool) -> StoreResult<Vec<NamespaceRecord>> {
    let rows = sqlx::query("SELECT name, prefix, created_ms FROM namespaces ORDER BY name").fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| NamespaceRecord { name: r.get("name"), prefix: r.get("prefix"), created_ms: r.get("created_ms") })
        .collect())
}
