//! Secrets in PostgreSQL: metadata rows, version rows, and the stage
//! columns of a staged rotation (`pending_version`, `previous_version`).
//!
//! Every change of which version is current is one conditional `UPDATE` of
//! the metadata row (or an `INSERT … ON CONFLICT DO NOTHING` for a new
//! secret) inside one transaction. The statement locks the row; a second
//! node's statement waits for the first to commit, then re-checks its
//! condition against the new row and, finding it moved, matches nothing:
//! [`StoreError::Conflict`]. Destroying takes the same row lock first, so a
//! destroy and a rollback to the version it destroys run one after the
//! other.

use super::{notify, notify_paths, u64_of};
use crate::{Change, NewVersion, SecretMeta, Stage, StoreError, StoreResult, StoredCiphertext, VersionRecord};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

const COLS: &str = "path, kind, current_version, latest_version, pending_version, previous_version, created_ms, updated_ms, rotation_period_s";

fn meta_of(r: &PgRow) -> SecretMeta {
    SecretMeta {
        path: r.get("path"),
        kind: r.get("kind"),
        current_version: u64_of(r.get("current_version")),
        latest_version: u64_of(r.get("latest_version")),
        pending_version: r.get::<Option<i64>, _>("pending_version").map(u64_of),
        previous_version: r.get::<Option<i64>, _>("previous_version").map(u64_of),
        created_ms: r.get("created_ms"),
        updated_ms: r.get("updated_ms"),
        rotation_period_s: r.get("rotation_period_s"),
    }
}

fn version_of(r: &PgRow, with_ciphertext: bool) -> VersionRecord {
    VersionRecord {
        version: u64_of(r.get("version")),
        created_ms: r.get("created_ms"),
        deleted_ms: r.get("deleted_ms"),
        destroyed: r.get::<bool, _>("destroyed"),
        ciphertext: if with_ciphertext { r.get("ciphertext") } else { None },
    }
}

/// Version numbers as the store keeps them, for `= ANY($n)`.
fn version_array(versions: &[u64]) -> Vec<i64> {
    versions.iter().map(|v| *v as i64).collect()
}

fn sorted(rows: &[PgRow]) -> Vec<u64> {
    let mut out: Vec<u64> = rows.iter().map(|r| u64_of(r.get("version"))).collect();
    out.sort_unstable();
    out
}

pub(super) async fn meta<'e, E: sqlx::PgExecutor<'e>>(ex: E, path: &str) -> StoreResult<Option<SecretMeta>> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM secrets WHERE path = $1")).bind(path).fetch_optional(ex).await?;
    Ok(row.as_ref().map(meta_of))
}

/// Paths sort bytewise (the column's collation is "C"), as in SQLite.
pub(super) async fn list(pool: &PgPool, prefix: &str) -> StoreResult<Vec<SecretMeta>> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM secrets WHERE starts_with(path, $1) ORDER BY path"))
        .bind(prefix)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(meta_of).collect())
}

pub(super) async fn versions(pool: &PgPool, path: &str) -> StoreResult<Vec<VersionRecord>> {
    let rows = sqlx::query(
        "SELECT version, created_ms, deleted_ms, destroyed FROM secret_versions WHERE path = $1 ORDER BY version",
    )
    .bind(path)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| version_of(r, false)).collect())
}

pub(super) async fn version(pool: &PgPool, path: &str, version: u64) -> StoreResult<Option<VersionRecord>> {
    let row = sqlx::query(
        "SELECT version, created_ms, deleted_ms, destroyed, ciphertext FROM secret_versions
         WHERE path = $1 AND version = $2",
    )
    .bind(path)
    .bind(version as i64)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(|r| version_of(r, true)))
}

/// Stored versions per keyring term, grouped in SQL on the header's term bytes.
pub(super) async fn versions_by_term(pool: &PgPool) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
    let rows = sqlx::query(
        "SELECT substring(ciphertext FROM 5 FOR 4) AS term, COUNT(*) AS n FROM secret_versions
         WHERE ciphertext IS NOT NULL GROUP BY term",
    )
    .fetch_all(pool)
    .await?;
    let mut out = std::collections::BTreeMap::new();
    for r in &rows {
        let term: Vec<u8> = r.try_get("term")?;
        let n: i64 = r.try_get("n")?;
        if let Ok(b) = <[u8; 4]>::try_from(term.as_slice()) {
            *out.entry(u32::from_be_bytes(b)).or_insert(0) += n.max(0) as u64;
        }
    }
    Ok(out)
}

/// Versions under a term below `term`: the header's term bytes are big
/// endian, so comparing them as byte strings compares the terms.
pub(super) async fn versions_below_term(pool: &PgPool, term: u32, limit: u32) -> StoreResult<Vec<StoredCiphertext>> {
    let rows = sqlx::query(
        "SELECT path, version, ciphertext FROM secret_versions
         WHERE ciphertext IS NOT NULL AND substring(ciphertext FROM 5 FOR 4) < $1 ORDER BY path, version LIMIT $2",
    )
    .bind(term.to_be_bytes().to_vec())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredCiphertext {
                path: r.try_get("path")?,
                version: r.try_get::<i64, _>("version")? as u64,
                ciphertext: r.try_get("ciphertext")?,
            })
        })
        .collect()
}

pub(super) async fn replace_ciphertexts(
    pool: &PgPool,
    node: &str,
    batch: &[(StoredCiphertext, Vec<u8>)],
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut replaced = 0;
    let mut paths = Vec::new();
    for (old, new) in batch {
        let n = sqlx::query(
            "UPDATE secret_versions SET ciphertext = $1 WHERE path = $2 AND version = $3 AND ciphertext = $4",
        )
        .bind(new)
        .bind(&old.path)
        .bind(old.version as i64)
        .bind(&old.ciphertext)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            paths.push(old.path.as_str());
        }
        replaced += n;
    }
    notify_paths(&mut tx, node, paths).await?;
    tx.commit().await?;
    Ok(replaced)
}

/// Several versions in one transaction (see `Store::insert_versions`).
pub(super) async fn insert(pool: &PgPool, node: &str, vs: &[NewVersion]) -> StoreResult<Vec<StoreResult<SecretMeta>>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(vs.len());
    for v in vs {
        // A conflict changed nothing (its statement matched no row), so
        // the rest of the batch goes on; any other error aborts it all.
        out.push(insert_one(&mut tx, v).await?);
    }
    let written = vs.iter().zip(&out).filter(|(_, r)| r.is_ok()).map(|(v, _)| v.path.as_str());
    notify_paths(&mut tx, node, written).await?;
    tx.commit().await?;
    Ok(out)
}

/// One version inside a transaction: `Ok(Err(Conflict))` when the version
/// check fails (nothing was changed), `Err` when the transaction must abort.
///
/// One statement, one round trip: the metadata change (which locks the
/// row, or for a new secret makes a concurrent insert of the same path wait
/// and then do nothing) and the version row go together, and the metadata
/// comes back as changed. Nothing matched: the version check failed.
async fn insert_one(tx: &mut PgConnection, v: &NewVersion) -> StoreResult<StoreResult<SecretMeta>> {
    let version = v.version as i64;
    let (change, replaces) = match (&v.stage, v.expected_latest) {
        (_, 0) => (
            "INSERT INTO secrets (path, kind, current_version, latest_version, pending_version, created_ms,
             updated_ms, rotation_period_s)
             VALUES ($1, $3, CASE WHEN $6 THEN 0 ELSE $2 END, $2, CASE WHEN $6 THEN $2 END, $4, $4, $5)
             ON CONFLICT (path) DO NOTHING",
            None,
        ),
        (Stage::Current, _) => (
            "UPDATE secrets SET previous_version = NULLIF(current_version, 0), current_version = $2,
             latest_version = $2, updated_ms = $4, kind = COALESCE($3, kind),
             rotation_period_s = COALESCE($5, rotation_period_s)
             WHERE path = $1 AND latest_version = $7 AND pending_version IS NULL AND NOT $6",
            None,
        ),
        (Stage::Pending { replaces }, _) => (
            "UPDATE secrets SET pending_version = $2, latest_version = $2, kind = COALESCE($3, kind),
             rotation_period_s = COALESCE($5, rotation_period_s)
             WHERE path = $1 AND latest_version = $7 AND pending_version IS NOT DISTINCT FROM $8 AND $6",
            *replaces,
        ),
    };
    let sql = format!(
        "WITH m AS ({change} RETURNING {COLS}),
         v AS (INSERT INTO secret_versions (path, version, created_ms, ciphertext) SELECT path, $2, $4, $9 FROM m)
         SELECT {COLS} FROM m"
    );
    let row = sqlx::query(&sql)
        .bind(&v.path)
        .bind(version)
        .bind(&v.kind)
        .bind(v.created_ms)
        .bind(v.rotation_period_s)
        .bind(matches!(v.stage, Stage::Pending { .. }))
        .bind(v.expected_latest as i64)
        .bind(replaces.map(|r| r as i64))
        .bind(&v.ciphertext)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        let latest = meta(&mut *tx, &v.path).await?.map(|m| m.latest_version).unwrap_or(0);
        return Ok(Err(StoreError::Conflict { current: latest }));
    };
    if let Some(old) = replaces {
        // The pending version this one replaces was never used: it goes for good.
        destroy_in(tx, &v.path, &[old]).await?;
    }
    Ok(Ok(meta_of(&row)))
}

/// Destroys versions under the metadata row's lock: the ciphertext goes
/// (the old row version stays a dead tuple until VACUUM), and a destroyed
/// version is no rollback target.
async fn destroy_in(tx: &mut PgConnection, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
    sqlx::query("SELECT 1 FROM secrets WHERE path = $1 FOR UPDATE").bind(path).fetch_optional(&mut *tx).await?;
    let list = version_array(versions);
    let rows = sqlx::query(
        "UPDATE secret_versions SET destroyed = TRUE, ciphertext = NULL
         WHERE path = $1 AND NOT destroyed AND version = ANY($2) RETURNING version",
    )
    .bind(path)
    .bind(&list)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("UPDATE secrets SET previous_version = NULL WHERE path = $1 AND previous_version = ANY($2)")
        .bind(path)
        .bind(&list)
        .execute(&mut *tx)
        .await?;
    Ok(sorted(&rows))
}

pub(super) async fn set_deleted(
    pool: &PgPool,
    node: &str,
    path: &str,
    versions: &[u64],
    deleted_ms: Option<i64>,
) -> StoreResult<Vec<u64>> {
    let cond = if deleted_ms.is_some() { "deleted_ms IS NULL" } else { "deleted_ms IS NOT NULL" };
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(&format!(
        "UPDATE secret_versions SET deleted_ms = $1 WHERE path = $2 AND NOT destroyed AND {cond}
         AND version = ANY($3) RETURNING version"
    ))
    .bind(deleted_ms)
    .bind(path)
    .bind(version_array(versions))
    .fetch_all(&mut *tx)
    .await?;
    let out = sorted(&rows);
    if !out.is_empty() {
        notify(&mut tx, node, &Change::Secret(path.to_string())).await?;
    }
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn destroy_versions(pool: &PgPool, node: &str, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
    let mut tx = pool.begin().await?;
    let out = destroy_in(&mut tx, path, versions).await?;
    if !out.is_empty() {
        notify(&mut tx, node, &Change::Secret(path.to_string())).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Deletes the metadata row; its versions go with it (`ON DELETE CASCADE`).
pub(super) async fn destroy_secret(pool: &PgPool, node: &str, path: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let gone =
        sqlx::query("DELETE FROM secrets WHERE path = $1").bind(path).execute(&mut *tx).await?.rows_affected() > 0;
    if gone {
        notify(&mut tx, node, &Change::Secret(path.to_string())).await?;
    }
    tx.commit().await?;
    Ok(gone)
}

/// The pending version `pending` becomes current; the current one previous.
pub(super) async fn promote(
    pool: &PgPool,
    node: &str,
    path: &str,
    pending: u64,
    at_ms: i64,
) -> StoreResult<SecretMeta> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE secrets SET previous_version = NULLIF(current_version, 0), current_version = pending_version,
         pending_version = NULL, updated_ms = $1 WHERE path = $2 AND pending_version = $3",
    )
    .bind(at_ms)
    .bind(path)
    .bind(pending as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, node, path, changed).await
}

/// The previous version becomes current again and the current one previous,
/// if `current` is still current, nothing is pending and the previous
/// version is still there to read.
pub(super) async fn rollback(
    pool: &PgPool,
    node: &str,
    path: &str,
    current: u64,
    at_ms: i64,
) -> StoreResult<SecretMeta> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE secrets SET current_version = previous_version, previous_version = current_version, updated_ms = $1
         WHERE path = $2 AND current_version = $3 AND pending_version IS NULL AND previous_version IS NOT NULL
         AND EXISTS (SELECT 1 FROM secret_versions v WHERE v.path = $2 AND v.version = secrets.previous_version
                     AND NOT v.destroyed AND v.deleted_ms IS NULL)",
    )
    .bind(at_ms)
    .bind(path)
    .bind(current as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, node, path, changed).await
}

/// Drops the pending version `pending` for good. A secret that never had a
/// current version goes with it (`None`).
pub(super) async fn abandon(pool: &PgPool, node: &str, path: &str, pending: u64) -> StoreResult<Option<SecretMeta>> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query("UPDATE secrets SET pending_version = NULL WHERE path = $1 AND pending_version = $2")
        .bind(path)
        .bind(pending as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        let latest = meta(&mut *tx, path).await?.map(|m| m.latest_version).unwrap_or(0);
        return Err(StoreError::Conflict { current: latest });
    }
    destroy_in(&mut tx, path, &[pending]).await?;
    sqlx::query("DELETE FROM secrets WHERE path = $1 AND current_version = 0").bind(path).execute(&mut *tx).await?;
    let meta = meta(&mut *tx, path).await?;
    notify(&mut tx, node, &Change::Secret(path.to_string())).await?;
    tx.commit().await?;
    Ok(meta)
}

async fn finish(mut tx: Transaction<'_, Postgres>, node: &str, path: &str, changed: u64) -> StoreResult<SecretMeta> {
    let meta = meta(&mut *tx, path).await?;
    if changed == 0 {
        return Err(StoreError::Conflict { current: meta.map(|m| m.current_version).unwrap_or(0) });
    }
    notify(&mut tx, node, &Change::Secret(path.to_string())).await?;
    tx.commit().await?;
    meta.ok_or(StoreError::NotFound)
}
