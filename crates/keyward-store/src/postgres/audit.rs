//! The audit log in PostgreSQL: one chain for every node.
//!
//! An append takes a transaction-scoped advisory lock, so appends run one
//! at a time, and writes only a batch whose first entry chains onto the
//! stored head; otherwise it answers [`StoreError::Conflict`] with the
//! head's sequence number and writes nothing.

use super::u64_of;
use crate::{AuditQuery, StoreError, StoreResult};
use keyward_core::audit::{AuditEntry, Checkpoint, genesis};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// The advisory lock appends hold (`kwaudit1`): per database, so two
/// keyward databases on one server do not wait on each other.
const AUDIT_LOCK: i64 = 0x6b77_6175_6469_7431;

/// Entries per multi-row statement.
const CHUNK: usize = 64;

fn entry_of(r: &PgRow) -> AuditEntry {
    AuditEntry {
        seq: u64_of(r.get("seq")),
        time_ms: r.get("time_ms"),
        request_id: r.get("request_id"),
        key_id: r.get("key_id"),
        ip: r.get("ip"),
        action: r.get("action"),
        target: r.get("target"),
        class: r.get("class"),
        decision: r.get("decision"),
        code: r.get("code"),
        detail: r.get("detail"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
    }
}

/// `($1, …, $13), ($14, …)` for `rows` entries.
fn placeholders(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=13).map(|c| format!("${}", r * 13 + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn append(pool: &PgPool, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
    if let Some(first) = entries.first() {
        let (seq, hash) = head(&mut *tx).await?.unwrap_or_else(|| (0, genesis()));
        if first.seq != seq.saturating_add(1) || first.prev_hash != hash {
            return Err(StoreError::Conflict { current: seq });
        }
    }
    for chunk in entries.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO audit_log (seq, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, prev_hash, hash) VALUES {}",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.seq as i64)
                .bind(e.time_ms)
                .bind(&e.request_id)
                .bind(&e.key_id)
                .bind(&e.ip)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.class)
                .bind(&e.decision)
                .bind(&e.code)
                .bind(&e.detail)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        q.execute(&mut *tx).await?;
    }
    if let Some(c) = checkpoint {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, time_ms, signature) VALUES ($1, $2, $3, $4)
             ON CONFLICT (seq) DO UPDATE SET hash = EXCLUDED.hash, time_ms = EXCLUDED.time_ms,
             signature = EXCLUDED.signature",
        )
        .bind(c.seq as i64)
        .bind(&c.hash)
        .bind(c.time_ms)
        .bind(&c.signature)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn head<'e, E: sqlx::PgExecutor<'e>>(ex: E) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(ex).await?;
    Ok(row.map(|r| (u64_of(r.get("seq")), r.get("hash"))))
}

pub(super) async fn entries(pool: &PgPool, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let order = if q.newest { "DESC" } else { "ASC" };
    let rows = sqlx::query(&format!(
        "SELECT * FROM audit_log WHERE seq >= $1 AND time_ms >= $2 AND time_ms <= $3
         AND ($4::text IS NULL OR key_id = $4) AND ($5::text IS NULL OR starts_with(target, $5))
         AND ($6::text IS NULL OR decision = $6) ORDER BY seq {order} LIMIT $7"
    ))
    .bind(q.from_seq.unwrap_or(0).min(i64::MAX as u64) as i64)
    .bind(q.since_ms.unwrap_or(i64::MIN))
    .bind(q.until_ms.unwrap_or(i64::MAX))
    .bind(&q.key_id)
    .bind(&q.target_prefix)
    .bind(&q.decision)
    .bind(q.limit.min(i64::MAX as u64) as i64)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<AuditEntry> = rows.iter().map(entry_of).collect();
    if q.newest {
        out.reverse();
    }
    Ok(out)
}

pub(super) async fn checkpoints(pool: &PgPool) -> StoreResult<Vec<Checkpoint>> {
    let rows =
        sqlx::query("SELECT seq, hash, time_ms, signature FROM audit_checkpoints ORDER BY seq").fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            seq: u64_of(r.get("seq")),
            hash: r.get("hash"),
            time_ms: r.get("time_ms"),
            signature: r.get("signature"),
        })
        .collect())
}
