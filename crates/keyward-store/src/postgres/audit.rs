//! The audit log in PostgreSQL: one chain for every node, compact as in
//! SQLite (strings by id, see [`crate::audit_strings`]; hashes kept
//! sparsely, see [`crate::audit`]; no previous hash; no time index: a time
//! bound is found by bisecting the sequence).
//!
//! An append takes a transaction-scoped advisory lock, so appends run one
//! at a time, and writes only a batch whose first entry chains onto the
//! stored head; otherwise it answers [`StoreError::Conflict`] with the
//! head's sequence number and writes nothing.

use super::u64_of;
use crate::audit::{StoredHash, keeps_whole, stored_form};
use crate::audit_strings::{FIELDS, IdMap, StrMap, Strings, Table, fields, set_fields};
use crate::{AuditQuery, AuditRow, AuditRows, StoreError, StoreResult};
use keyward_core::audit::{AuditEntry, Checkpoint, genesis};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row};

/// The advisory lock appends hold (`kwaudit1`): per database, so two
/// keyward databases on one server do not wait on each other.
const AUDIT_LOCK: i64 = 0x6b77_6175_6469_7431;

/// Entries per multi-row statement.
const CHUNK: usize = 64;

/// `($1, …, $12), ($13, …)` for `rows` entries.
fn placeholders(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=12).map(|c| format!("${}", r * 12 + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ids of `values`, adding the new ones inside the caller's
/// transaction (one statement for all of them).
async fn ids_of<'a>(
    strings: &Strings,
    c: &mut PgConnection,
    values: impl IntoIterator<Item = &'a str>,
) -> StoreResult<(StrMap<&'a str, i64>, Vec<(String, i64)>)> {
    let (mut out, new) = strings.ids_of(values);
    let pending: std::collections::HashSet<&'a str> = new.iter().copied().collect();
    let mut learnt = Vec::new();
    if !new.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO audit_strings (value) SELECT unnest($1::text[])
             ON CONFLICT (value) DO UPDATE SET value = EXCLUDED.value RETURNING id, value",
        )
        .bind(&new)
        .fetch_all(&mut *c)
        .await?;
        for r in rows {
            let (id, value): (i64, String) = (r.get("id"), r.get("value"));
            if let Some(v) = pending.get(value.as_str()) {
                out.insert(*v, id);
            }
            learnt.push((value, id));
        }
    }
    Ok((out, learnt))
}

pub(super) async fn append(
    pool: &PgPool,
    strings: &Strings,
    entries: &[AuditEntry],
    checkpoint: Option<&Checkpoint>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
    if let Some(first) = entries.first() {
        let (seq, hash) = head(&mut tx).await?.unwrap_or_else(|| (0, genesis()));
        if first.seq != seq.saturating_add(1) || !StoredHash::from_bytes(&hash).matches(&first.prev_hash) {
            return Err(StoreError::Conflict { current: seq });
        }
    }
    let (ids, learnt) = ids_of(strings, &mut tx, entries.iter().flat_map(fields)).await?;
    let last = entries.last().map_or(0, |e| e.seq);
    for chunk in entries.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO audit_entries (seq, time_ms, request_id, {}, detail, hash) VALUES {}",
            FIELDS.join(", "),
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q.bind(e.seq as i64).bind(e.time_ms).bind(&e.request_id);
            for f in fields(e) {
                q = q.bind(ids[f]);
            }
            q = q.bind(&e.detail).bind(stored_form(&e.hash, keeps_whole(e.seq, e.seq == last)));
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
    strings.learn(learnt);
    Ok(())
}

/// The newest entry's sequence number and hash as stored (whole, unless
/// the tail was edited underneath), else the base's.
pub(super) async fn head(c: &mut PgConnection) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let row =
        sqlx::query("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *c).await?;
    if let Some(r) = row {
        return Ok(Some((u64_of(r.get("seq")), r.get("hash"))));
    }
    base(c).await
}

/// The last entry a prune removed.
pub(super) async fn base(c: &mut PgConnection) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_base WHERE id = 1").fetch_optional(c).await?;
    Ok(row.map(|r| (u64_of(r.get("seq")), r.get("hash"))))
}

async fn id_of(pool: &PgPool, strings: &Strings, value: &str) -> StoreResult<Option<i64>> {
    if let Some(id) = strings.id(value) {
        return Ok(Some(id));
    }
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM audit_strings WHERE value = $1").bind(value).fetch_optional(pool).await?;
    if let Some(id) = id {
        strings.learn([(value.to_string(), id)]);
    }
    Ok(id)
}

async fn filter(pool: &PgPool, strings: &Strings, v: &Option<String>) -> StoreResult<Option<Option<i64>>> {
    match v {
        None => Ok(Some(None)),
        Some(v) => Ok(id_of(pool, strings, v).await?.map(Some)),
    }
}

/// See the SQLite backend's `seq_at`.
async fn seq_at(pool: &PgPool, time_ms: i64, after: bool) -> StoreResult<Option<u64>> {
    let bounds = sqlx::query("SELECT min(seq) AS lo, max(seq) AS hi FROM audit_entries").fetch_one(pool).await?;
    let (Some(mut lo), Some(mut hi)) = (bounds.get::<Option<i64>, _>("lo"), bounds.get::<Option<i64>, _>("hi")) else {
        return Ok(None);
    };
    let time_of = |seq: i64| {
        sqlx::query_scalar::<Postgres, i64>("SELECT time_ms FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT 1")
            .bind(seq)
            .fetch_one(pool)
    };
    if after {
        hi += 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if time_of(mid).await? >= time_ms { hi = mid } else { lo = mid + 1 }
        }
    } else {
        lo -= 1;
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if time_of(mid).await? <= time_ms { lo = mid } else { hi = mid - 1 }
        }
    }
    Ok(Some(u64_of(lo)))
}

fn row_ids(r: &PgRow) -> [i64; 7] {
    FIELDS.map(|f| r.get::<i64, _>(f))
}

/// [`entries`]' statement, with only the conditions the query sets
/// (parameters `$1`..`$8` as [`entries`] binds them). Binding every
/// optional condition (`$5 IS NULL OR …`) and an open bound as `seq <=
/// i64::MAX` made a two-sided range of every read, which PostgreSQL, its
/// statistics behind the table's growth, planned as a read of every entry
/// from `from` on and a sort to keep `limit` (66–140 ms a page of 20,000
/// on logs of 365,000 to a million, growing with the log, against 4 ms for
/// the primary key walked in order). A bound the caller set stays an index
/// condition, so a sparse filter stops at it.
fn entries_sql(q: &AuditQuery, from: u64, to: u64, key: bool, decision: bool) -> String {
    let conditions = [
        (from > 0, "seq >= $1"),
        (to < u64::MAX, "seq <= $2"),
        (q.since_ms.is_some(), "time_ms >= $3"),
        (q.until_ms.is_some(), "time_ms <= $4"),
        (key, "key_id = $5"),
        (decision, "decision = $6"),
        (q.target_prefix.is_some(), "target IN (SELECT id FROM audit_strings WHERE starts_with(value, $7))"),
    ];
    let applied: Vec<&str> = conditions.iter().filter(|(on, _)| *on).map(|(_, c)| *c).collect();
    let filter = if applied.is_empty() { String::new() } else { format!("WHERE {}", applied.join(" AND ")) };
    let order = if q.newest { "DESC" } else { "ASC" };
    format!(
        "SELECT seq, time_ms, request_id, {}, detail, hash FROM audit_entries {filter} ORDER BY seq {order} LIMIT $8",
        FIELDS.join(", ")
    )
}

/// Entries matching a query, their hashes as stored (whole or tag) and no
/// previous hash: the caller fills them in (see [`crate::audit::fill`]).
pub(super) async fn entries(pool: &PgPool, strings: &Strings, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut from = q.from_seq.unwrap_or(0);
    let mut to = u64::MAX;
    if let Some(since) = q.since_ms {
        from = from.max(seq_at(pool, since, true).await?.unwrap_or(0));
    }
    if let Some(until) = q.until_ms {
        to = seq_at(pool, until, false).await?.unwrap_or(0);
    }
    let (Some(key), Some(decision)) =
        (filter(pool, strings, &q.key_id).await?, filter(pool, strings, &q.decision).await?)
    else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(&entries_sql(q, from, to, key.is_some(), decision.is_some()))
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .bind(q.since_ms.unwrap_or(i64::MIN))
        .bind(q.until_ms.unwrap_or(i64::MAX))
        .bind(key)
        .bind(decision)
        .bind(&q.target_prefix)
        .bind(q.limit.min(i64::MAX as u64) as i64)
        // Planned with each call's values, as the statement varies anyway.
        .persistent(false)
        .fetch_all(pool)
        .await?;
    let values = values_of(pool, strings, rows.iter().flat_map(row_ids)).await?;
    let mut out: Vec<AuditEntry> = rows
        .iter()
        .map(|r| {
            let mut e = AuditEntry {
                seq: u64_of(r.get("seq")),
                time_ms: r.get("time_ms"),
                request_id: r.get("request_id"),
                detail: r.get("detail"),
                hash: r.get("hash"),
                ..Default::default()
            };
            set_fields(&mut e, row_ids(r).map(|id| values.get(&id).cloned().unwrap_or_default()));
            e
        })
        .collect();
    if q.newest {
        out.reverse();
    }
    Ok(out)
}

/// Consecutive entries as stored, for a walk through the log: columns read
/// by position, each entry's strings as indices into the page's own table
/// (no string copied per entry, as building [`AuditEntry`]s would).
pub(super) async fn rows(pool: &PgPool, strings: &Strings, from_seq: u64, limit: u64) -> StoreResult<AuditRows> {
    let rows = sqlx::query(&format!(
        "SELECT seq, time_ms, request_id, {}, detail, hash FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2",
        FIELDS.join(", ")
    ))
    .bind(from_seq.min(i64::MAX as u64) as i64)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(pool)
    .await?;
    let ids: Vec<[i64; 7]> = rows.iter().map(|r| [3, 4, 5, 6, 7, 8, 9].map(|i| r.get::<i64, _>(i))).collect();
    let table = Table::new(values_of(pool, strings, ids.iter().flatten().copied()).await?);
    let rows = rows
        .iter()
        .zip(&ids)
        .map(|(r, ids)| AuditRow {
            seq: u64_of(r.get(0)),
            time_ms: r.get(1),
            request_id: r.get(2),
            strings: ids.map(|id| table.at(id)),
            detail: r.get(10),
            hash: StoredHash::from_bytes(r.get::<&[u8], _>(11)),
        })
        .collect();
    Ok(AuditRows { rows, strings: table.strings })
}

async fn values_of(pool: &PgPool, strings: &Strings, ids: impl IntoIterator<Item = i64>) -> StoreResult<IdMap<String>> {
    let (mut out, missing) = strings.values(ids);
    if !missing.is_empty() {
        let rows = sqlx::query("SELECT id, value FROM audit_strings WHERE id = ANY($1)")
            .bind(&missing)
            .fetch_all(pool)
            .await?;
        out.extend(rows.iter().map(|r| (r.get("id"), r.get("value"))));
        strings.learn_looked_up(&out, &missing);
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

/// See [`crate::Store::audit_prune`]; under the append lock.
pub(super) async fn prune(pool: &PgPool, through: u64) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_LOCK).execute(&mut *tx).await?;
    let at = through.min(i64::MAX as u64) as i64;
    let checkpointed: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_checkpoints WHERE seq = $1")
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = $1").bind(at).fetch_optional(&mut *tx).await?;
    // A checkpointed entry keeps its whole hash (it ends its batch).
    let hash = stored.filter(|h| h.len() == 32);
    let (Some(checkpointed), Some(hash)) = (checkpointed, hash) else {
        return Err(StoreError::Refused(format!("entry {through} is not a stored, checkpointed entry")));
    };
    if checkpointed != keyward_core::keyring::hex_encode(&hash) {
        return Err(StoreError::Corrupt(format!("the checkpoint at entry {through} does not match the entry")));
    }
    sqlx::query(
        "INSERT INTO audit_base (id, seq, hash) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
    )
    .bind(at)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM audit_entries WHERE seq <= $1").bind(at).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq < $1").bind(at).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(removed.rows_affected())
}
