//! Snapshots of a PostgreSQL database, and their restore.
//!
//! A snapshot is the same thing whatever backend made it: a SQLite
//! database file of the current SQLite schema, so a backup taken on one
//! backend restores on the other. Taking one reads every table of
//! [`TABLES`] in one `REPEATABLE READ, READ ONLY` transaction (consistent
//! while other nodes write), copies the rows into a fresh SQLite file in a
//! private temporary directory, and returns that file compacted by
//! `VACUUM INTO`; the directory is removed after. A restore opens the
//! snapshot read-only, checks its schema version, and replaces the
//! restored tables in one transaction that tells every node to resync.

use super::notify;
use crate::sqlite::{SqliteStore, migration_versions};
use crate::tables::{ENDED_STATES, Kind, TABLES, Table, Value, restored};
use crate::{Change, RevivedKey, StoreError, StoreResult};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use std::io::Write;

/// Rows read per query.
const PAGE: usize = 512;
/// Rows written per statement (13 columns at most: within every bind limit).
const CHUNK: usize = 64;

/// Takes the restored tables' locks in the order writers take them
/// (ledger before keys, secrets before versions): writes wait, reads go on.
const LOCK_RESTORED: &str = "LOCK TABLE key_ledger, key_ledger_parts, access_keys, order_usage, namespaces, \
                             secrets, secret_versions IN EXCLUSIVE MODE";

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
type LiteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

fn staging_dir() -> StoreResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".keyward-snapshot-")
        .tempdir()
        .map_err(|e| StoreError::Corrupt(format!("cannot make a temporary directory: {e}")))
}

fn mismatch(t: &Table) -> StoreError {
    StoreError::Corrupt(format!("a value of {} does not have its column's type", t.name))
}

/// `SELECT` of one page of `t`, after the key `after` if given.
fn page_sql(t: &Table, after: bool, placeholder: impl Fn(usize) -> String) -> String {
    let keys = t.key.join(", ");
    let filter = if after {
        let marks: Vec<String> = (1..=t.key.len()).map(&placeholder).collect();
        format!("WHERE ({keys}) > ({})", marks.join(", "))
    } else {
        String::new()
    };
    format!("SELECT {} FROM {} {filter} ORDER BY {keys} LIMIT {PAGE}", t.column_list(), t.name)
}

/// `INSERT` of `rows` rows into `t`.
fn insert_sql(t: &Table, rows: usize, placeholder: impl Fn(usize) -> String) -> String {
    let n = t.columns.len();
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", (1..=n).map(|c| placeholder(r * n + c)).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("INSERT INTO {} ({}) VALUES {}", t.name, t.column_list(), values.join(", "))
}

fn pg_mark(i: usize) -> String {
    format!("${i}")
}

fn lite_mark(_: usize) -> String {
    "?".into()
}

fn pg_value(r: &PgRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Text => r.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::Text),
        Kind::Int => r.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int),
        Kind::Bool => r.try_get::<Option<bool>, _>(i)?.map_or(Value::Null, |b| Value::Int(b.into())),
        Kind::Blob => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Blob),
    })
}

fn lite_value(r: &SqliteRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Text => r.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::Text),
        Kind::Int | Kind::Bool => r.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int),
        Kind::Blob => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Blob),
    })
}

fn bind_pg<'q>(q: PgQuery<'q>, t: &Table, kind: Kind, v: Value) -> StoreResult<PgQuery<'q>> {
    Ok(match (kind, v) {
        (Kind::Text, Value::Text(s)) => q.bind(s),
        (Kind::Text, Value::Null) => q.bind(None::<String>),
        (Kind::Int, Value::Int(i)) => q.bind(i),
        (Kind::Int, Value::Null) => q.bind(None::<i64>),
        (Kind::Bool, Value::Int(i)) => q.bind(i != 0),
        (Kind::Bool, Value::Null) => q.bind(None::<bool>),
        (Kind::Blob, Value::Blob(b)) => q.bind(b),
        (Kind::Blob, Value::Null) => q.bind(None::<Vec<u8>>),
        _ => return Err(mismatch(t)),
    })
}

fn bind_lite<'q>(q: LiteQuery<'q>, t: &Table, kind: Kind, v: Value) -> StoreResult<LiteQuery<'q>> {
    Ok(match (kind, v) {
        (Kind::Text, Value::Text(s)) => q.bind(s),
        (Kind::Int | Kind::Bool, Value::Int(i)) => q.bind(i),
        (Kind::Blob, Value::Blob(b)) => q.bind(b),
        (_, Value::Null) => q.bind(None::<i64>),
        _ => return Err(mismatch(t)),
    })
}

/// The key of the last row of a page, to read the next page after it.
fn last_key(t: &Table, rows: &[Vec<Value>]) -> Option<Vec<(Kind, Value)>> {
    let last = rows.last()?;
    Some(t.key_columns().into_iter().map(|(i, kind)| (kind, last[i].clone())).collect())
}

/// Copies `t` from the PostgreSQL transaction into the SQLite one.
async fn pg_to_lite(pg: &mut PgConnection, lite: &mut SqliteConnection, t: &Table) -> StoreResult<()> {
    let mut after: Option<Vec<(Kind, Value)>> = None;
    loop {
        let sql = page_sql(t, after.is_some(), pg_mark);
        let mut q = sqlx::query(&sql);
        for (kind, v) in after.take().unwrap_or_default() {
            q = bind_pg(q, t, kind, v)?;
        }
        let rows: Vec<Vec<Value>> = q
            .fetch_all(&mut *pg)
            .await?
            .iter()
            .map(|r| t.columns.iter().enumerate().map(|(i, (_, kind))| pg_value(r, i, *kind)).collect())
            .collect::<Result<_, _>>()?;
        for chunk in rows.chunks(CHUNK) {
            let sql = insert_sql(t, chunk.len(), lite_mark);
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for ((_, kind), v) in t.columns.iter().zip(row.iter().cloned()) {
                    q = bind_lite(q, t, *kind, v)?;
                }
            }
            q.execute(&mut *lite).await?;
        }
        if rows.len() < PAGE {
            return Ok(());
        }
        after = last_key(t, &rows);
    }
}

/// Copies `t` from the snapshot into the PostgreSQL transaction.
async fn lite_to_pg(lite: &SqlitePool, pg: &mut PgConnection, t: &Table) -> StoreResult<()> {
    let mut after: Option<Vec<(Kind, Value)>> = None;
    loop {
        let sql = page_sql(t, after.is_some(), lite_mark);
        let mut q = sqlx::query(&sql);
        for (kind, v) in after.take().unwrap_or_default() {
            q = bind_lite(q, t, kind, v)?;
        }
        let unreadable = |e: sqlx::Error| StoreError::Corrupt(format!("the snapshot's {} cannot be read: {e}", t.name));
        let rows: Vec<Vec<Value>> = q
            .fetch_all(lite)
            .await
            .map_err(unreadable)?
            .iter()
            .map(|r| t.columns.iter().enumerate().map(|(i, (_, kind))| lite_value(r, i, *kind)).collect())
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        for chunk in rows.chunks(CHUNK) {
            let sql = insert_sql(t, chunk.len(), pg_mark);
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for ((_, kind), v) in t.columns.iter().zip(row.iter().cloned()) {
                    q = bind_pg(q, t, *kind, v)?;
                }
            }
            q.execute(&mut *pg).await?;
        }
        if rows.len() < PAGE {
            return Ok(());
        }
        after = last_key(t, &rows);
    }
}

pub(super) async fn snapshot(pool: &PgPool) -> StoreResult<Vec<u8>> {
    let dir = staging_dir()?;
    let file = SqliteStore::open(&dir.path().join("snapshot.db")).await?;
    let out = async {
        let mut pg = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        let mut lite = file.pool().begin().await?;
        for t in TABLES {
            pg_to_lite(&mut pg, &mut lite, t).await?;
        }
        lite.commit().await?;
        pg.commit().await?;
        // VACUUM INTO a second file beside it: one compact file, no WAL.
        crate::Store::snapshot(&file).await
    }
    .await;
    file.close().await;
    drop(dir);
    out
}

/// The snapshot in a private temporary file, open read-only, after its
/// schema version was checked against the current SQLite schema's.
async fn open_snapshot(bytes: &[u8]) -> StoreResult<(tempfile::TempDir, SqlitePool)> {
    let dir = staging_dir()?;
    let path = dir.path().join("snapshot.db");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.flush()))
        .map_err(|e| StoreError::Corrupt(format!("cannot write the snapshot to a temporary file: {e}")))?;
    // Immutable: a private copy nothing else writes, read without locks or WAL.
    let opts = SqliteConnectOptions::new().filename(&path).read_only(true).immutable(true);
    let not_ours = |_| StoreError::Corrupt("the snapshot is not a keyward database".into());
    let lite = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(not_ours)?;
    let versions: Result<Vec<i64>, _> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(&lite).await;
    let same = match versions {
        Ok(v) => v == migration_versions(),
        Err(e) => {
            lite.close().await;
            return Err(not_ours(e));
        }
    };
    if !same {
        lite.close().await;
        return Err(StoreError::Corrupt(
            "the snapshot is of another schema version: restore it with the keyward version that made it".into(),
        ));
    }
    Ok((dir, lite))
}

/// Keys the current data has ended (revoked, compromised, destroyed) that
/// the snapshot holds in another state.
pub(super) async fn revived(pool: &PgPool, bytes: &[u8]) -> StoreResult<Vec<RevivedKey>> {
    let (_dir, lite) = open_snapshot(bytes).await?;
    let then = sqlx::query("SELECT id, state FROM access_keys").fetch_all(&lite).await;
    lite.close().await;
    let then: HashMap<String, String> = then
        .map_err(|e| StoreError::Corrupt(format!("the snapshot's access keys cannot be read: {e}")))?
        .iter()
        .map(|r| (r.get("id"), r.get("state")))
        .collect();
    let ended: Vec<String> = ENDED_STATES.iter().map(|s| s.to_string()).collect();
    let now = sqlx::query("SELECT id, name, state FROM access_keys WHERE state = ANY($1) ORDER BY id")
        .bind(&ended)
        .fetch_all(pool)
        .await?;
    Ok(now
        .iter()
        .filter_map(|r| {
            let id: String = r.get("id");
            let state_then = then.get(&id).filter(|s| !ENDED_STATES.contains(&s.as_str()))?.clone();
            Some(RevivedKey { name: r.get("name"), state_now: r.get("state"), state_then, id })
        })
        .collect())
}

/// Replaces the restored tables with the snapshot's in one transaction; the
/// seal record, the audit log and the nonces stay.
pub(super) async fn restore(pool: &PgPool, node: &str, bytes: &[u8]) -> StoreResult<()> {
    let (_dir, lite) = open_snapshot(bytes).await?;
    let out = async {
        let mut tx = pool.begin().await?;
        sqlx::query(LOCK_RESTORED).execute(&mut *tx).await?;
        for t in restored().rev() {
            sqlx::query(&format!("DELETE FROM {}", t.name)).execute(&mut *tx).await?;
        }
        for t in restored() {
            lite_to_pg(&lite, &mut tx, t).await?;
        }
        notify(&mut tx, node, &Change::Resync).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    lite.close().await;
    out
}
