//! Secrets in SQLite: metadata rows, version rows, and the stage columns of
//! a staged rotation (`pending_version`, `previous_version`).
//!
//! Every change of which version is current is one conditional `UPDATE` of
//! the metadata row inside one transaction, so a crash leaves the secret on
//! exactly the version it was on before or after, never between.

use crate::{NewVersion, SecretMeta, Stage, StoreError, StoreResult, VersionRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

const COLS: &str = "path, kind, current_version, latest_version, pending_version, previous_version, created_ms, updated_ms, rotation_period_s";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn meta_of(r: &SqliteRow) -> SecretMeta {
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

fn version_of(r: &SqliteRow, with_ciphertext: bool) -> VersionRecord {
    VersionRecord {
        version: u64_of(r.get("version")),
        created_ms: r.get("created_ms"),
        deleted_ms: r.get("deleted_ms"),
        destroyed: r.get::<i64, _>("destroyed") != 0,
        ciphertext: if with_ciphertext { r.get("ciphertext") } else { None },
    }
}

fn version_list(versions: &[u64]) -> String {
    versions.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn sorted(rows: &[SqliteRow]) -> Vec<u64> {
    let mut out: Vec<u64> = rows.iter().map(|r| u64_of(r.get("version"))).collect();
    out.sort_unstable();
    out
}

pub(super) async fn meta(pool: &SqlitePool, path: &str) -> StoreResult<Option<SecretMeta>> {
    let row =
        sqlx::query(&format!("SELECT {COLS} FROM secrets WHERE path = ?")).bind(path).fetch_optional(pool).await?;
    Ok(row.as_ref().map(meta_of))
}

async fn meta_in(tx: &mut Transaction<'_, Sqlite>, path: &str) -> StoreResult<Option<SecretMeta>> {
    let row =
        sqlx::query(&format!("SELECT {COLS} FROM secrets WHERE path = ?")).bind(path).fetch_optional(&mut **tx).await?;
    Ok(row.as_ref().map(meta_of))
}

pub(super) async fn list(pool: &SqlitePool, prefix: &str) -> StoreResult<Vec<SecretMeta>> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM secrets WHERE substr(path, 1, length(?1)) = ?1 ORDER BY path"))
        .bind(prefix)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(meta_of).collect())
}

pub(super) async fn versions(pool: &SqlitePool, path: &str) -> StoreResult<Vec<VersionRecord>> {
    let rows = sqlx::query(
        "SELECT version, created_ms, deleted_ms, destroyed FROM secret_versions WHERE path = ? ORDER BY version",
    )
    .bind(path)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| version_of(r, false)).collect())
}

/// Stored versions per keyring term, grouped in SQL on the header's term bytes.
pub(super) async fn versions_by_term(pool: &SqlitePool) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
    let rows = sqlx::query(
        "SELECT substr(ciphertext, 5, 4) AS term, COUNT(*) AS n FROM secret_versions \
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
/// endian, so comparing them as blobs compares the terms.
pub(super) async fn versions_below_term(
    pool: &SqlitePool,
    term: u32,
    limit: u32,
) -> StoreResult<Vec<crate::StoredCiphertext>> {
    let rows = sqlx::query(
        "SELECT path, version, ciphertext FROM secret_versions \
         WHERE ciphertext IS NOT NULL AND substr(ciphertext, 5, 4) < ? ORDER BY path, version LIMIT ?",
    )
    .bind(term.to_be_bytes().to_vec())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::StoredCiphertext {
                path: r.try_get("path")?,
                version: r.try_get::<i64, _>("version")? as u64,
                ciphertext: r.try_get("ciphertext")?,
            })
        })
        .collect()
}

pub(super) async fn replace_ciphertexts(
    pool: &SqlitePool,
    batch: &[(crate::StoredCiphertext, Vec<u8>)],
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut replaced = 0;
    for (old, new) in batch {
        replaced +=
            sqlx::query("UPDATE secret_versions SET ciphertext = ? WHERE path = ? AND version = ? AND ciphertext = ?")
                .bind(new)
                .bind(&old.path)
                .bind(old.version as i64)
                .bind(&old.ciphertext)
                .execute(&mut *tx)
                .await?
                .rows_affected();
    }
    tx.commit().await?;
    Ok(replaced)
}

pub(super) async fn version(pool: &SqlitePool, path: &str, version: u64) -> StoreResult<Option<VersionRecord>> {
    let row = sqlx::query(
        "SELECT version, created_ms, deleted_ms, destroyed, ciphertext FROM secret_versions WHERE path = ? AND version = ?",
    )
    .bind(path)
    .bind(version as i64)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(|r| version_of(r, true)))
}

/// Several versions in one transaction (see `Store::insert_versions`).
pub(super) async fn insert(pool: &SqlitePool, vs: &[NewVersion]) -> StoreResult<Vec<StoreResult<SecretMeta>>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(vs.len());
    for v in vs {
        // A conflict changed nothing (its statement matched no row), so
        // the rest of the batch goes on; any other error aborts it all.
        out.push(insert_one(&mut tx, v).await?);
    }
    tx.commit().await?;
    Ok(out)
}

/// One version inside a transaction: `Ok(Err(Conflict))` when the version
/// check fails (nothing was changed), `Err` when the transaction must abort.
async fn insert_one(tx: &mut Transaction<'_, Sqlite>, v: &NewVersion) -> StoreResult<StoreResult<SecretMeta>> {
    let version = v.version as i64;
    // The first statement writes, so the transaction holds the write lock
    // from its start and the version check cannot race.
    let changed = match (&v.stage, v.expected_latest) {
        (stage, 0) => {
            let (current, pending) = match stage {
                Stage::Current => (version, None),
                Stage::Pending { .. } => (0, Some(version)),
            };
            sqlx::query(
                "INSERT INTO secrets (path, kind, current_version, latest_version, pending_version, created_ms,
                 updated_ms, rotation_period_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO NOTHING",
            )
            .bind(&v.path)
            .bind(&v.kind)
            .bind(current)
            .bind(version)
            .bind(pending)
            .bind(v.created_ms)
            .bind(v.created_ms)
            .bind(v.rotation_period_s)
            .execute(&mut **tx)
            .await?
            .rows_affected()
        }
        (Stage::Current, expected) => sqlx::query(
            "UPDATE secrets SET previous_version = NULLIF(current_version, 0), current_version = ?1,
             latest_version = ?1, updated_ms = ?2, kind = COALESCE(?3, kind),
             rotation_period_s = COALESCE(?4, rotation_period_s)
             WHERE path = ?5 AND latest_version = ?6 AND pending_version IS NULL",
        )
        .bind(version)
        .bind(v.created_ms)
        .bind(&v.kind)
        .bind(v.rotation_period_s)
        .bind(&v.path)
        .bind(expected as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        (Stage::Pending { replaces }, expected) => sqlx::query(
            "UPDATE secrets SET pending_version = ?1, latest_version = ?1, kind = COALESCE(?2, kind),
             rotation_period_s = COALESCE(?3, rotation_period_s)
             WHERE path = ?4 AND latest_version = ?5 AND pending_version IS ?6",
        )
        .bind(version)
        .bind(&v.kind)
        .bind(v.rotation_period_s)
        .bind(&v.path)
        .bind(expected as i64)
        .bind(replaces.map(|r| r as i64))
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    if changed == 0 {
        let latest = meta_in(tx, &v.path).await?.map(|m| m.latest_version).unwrap_or(0);
        return Ok(Err(StoreError::Conflict { current: latest }));
    }
    if let Stage::Pending { replaces: Some(old) } = v.stage {
        // The pending version this one replaces was never used: it goes for good.
        destroy_in(tx, &v.path, &[old]).await?;
    }
    sqlx::query("INSERT INTO secret_versions (path, version, created_ms, ciphertext) VALUES (?, ?, ?, ?)")
        .bind(&v.path)
        .bind(version)
        .bind(v.created_ms)
        .bind(&v.ciphertext)
        .execute(&mut **tx)
        .await?;
    Ok(meta_in(tx, &v.path).await?.ok_or(StoreError::NotFound))
}

async fn destroy_in(tx: &mut Transaction<'_, Sqlite>, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
    let list = version_list(versions);
    let rows = sqlx::query(&format!(
        "UPDATE secret_versions SET destroyed = 1, ciphertext = NULL WHERE path = ? AND destroyed = 0
         AND version IN ({list}) RETURNING version"
    ))
    .bind(path)
    .fetch_all(&mut **tx)
    .await?;
    // A destroyed version is no rollback target.
    sqlx::query(&format!("UPDATE secrets SET previous_version = NULL WHERE path = ? AND previous_version IN ({list})"))
        .bind(path)
        .execute(&mut **tx)
        .await?;
    Ok(sorted(&rows))
}

pub(super) async fn set_deleted(
    pool: &SqlitePool,
    path: &str,
    versions: &[u64],
    deleted_ms: Option<i64>,
) -> StoreResult<Vec<u64>> {
    let list = version_list(versions);
    let cond = if deleted_ms.is_some() { "deleted_ms IS NULL" } else { "deleted_ms IS NOT NULL" };
    let rows = sqlx::query(&format!(
        "UPDATE secret_versions SET deleted_ms = ? WHERE path = ? AND destroyed = 0 AND {cond}
         AND version IN ({list}) RETURNING version"
    ))
    .bind(deleted_ms)
    .bind(path)
    .fetch_all(pool)
    .await?;
    Ok(sorted(&rows))
}

pub(super) async fn destroy_versions(pool: &SqlitePool, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
    let mut tx = pool.begin().await?;
    let out = destroy_in(&mut tx, path, versions).await?;
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn destroy_secret(pool: &SqlitePool, path: &str) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM secrets WHERE path = ?").bind(path).execute(pool).await?.rows_affected() > 0)
}

/// The pending version `pending` becomes current; the current one previous.
pub(super) async fn promote(pool: &SqlitePool, path: &str, pending: u64, at_ms: i64) -> StoreResult<SecretMeta> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE secrets SET previous_version = NULLIF(current_version, 0), current_version = pending_version,
         pending_version = NULL, updated_ms = ? WHERE path = ? AND pending_version = ?",
    )
    .bind(at_ms)
    .bind(path)
    .bind(pending as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, path, changed).await
}

/// The previous version becomes current again and the current one previous,
/// if `current` is still current, nothing is pending and the previous
/// version is still there to read.
pub(super) async fn rollback(pool: &SqlitePool, path: &str, current: u64, at_ms: i64) -> StoreResult<SecretMeta> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE secrets SET current_version = previous_version, previous_version = current_version, updated_ms = ?1
         WHERE path = ?2 AND current_version = ?3 AND pending_version IS NULL AND previous_version IS NOT NULL
         AND EXISTS (SELECT 1 FROM secret_versions v WHERE v.path = ?2 AND v.version = secrets.previous_version
                     AND v.destroyed = 0 AND v.deleted_ms IS NULL)",
    )
    .bind(at_ms)
    .bind(path)
    .bind(current as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    finish(tx, path, changed).await
}

/// Drops the pending version `pending` for good. A secret that never had a
/// current version goes with it (`None`).
pub(super) async fn abandon(pool: &SqlitePool, path: &str, pending: u64) -> StoreResult<Option<SecretMeta>> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query("UPDATE secrets SET pending_version = NULL WHERE path = ? AND pending_version = ?")
        .bind(path)
        .bind(pending as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        let latest = meta_in(&mut tx, path).await?.map(|m| m.latest_version).unwrap_or(0);
        return Err(StoreError::Conflict { current: latest });
    }
    destroy_in(&mut tx, path, &[pending]).await?;
    sqlx::query("DELETE FROM secrets WHERE path = ? AND current_version = 0").bind(path).execute(&mut *tx).await?;
    let meta = meta_in(&mut tx, path).await?;
    tx.commit().await?;
    Ok(meta)
}

async fn finish(mut tx: Transaction<'_, Sqlite>, path: &str, changed: u64) -> StoreResult<SecretMeta> {
    let meta = meta_in(&mut tx, path).await?;
    if changed == 0 {
        return Err(StoreError::Conflict { current: meta.map(|m| m.current_version).unwrap_or(0) });
    }
    tx.commit().await?;
    meta.ok_or(StoreError::NotFound)
}
