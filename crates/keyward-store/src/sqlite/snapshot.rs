//! Snapshots of the whole database for `operator backup`, and their
//! restore. A snapshot is taken with `VACUUM INTO` (one read transaction:
//! consistent while others write) into a private temporary file beside the
//! database, read back and removed. A restore attaches the snapshot on one
//! connection and copies the restored tables in one write transaction.

use crate::{RevivedKey, StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqlitePool};
use std::io::Write;
use std::path::Path;

/// States a restore would undo, as an SQL list.
fn ended() -> String {
    let quoted: Vec<String> = crate::tables::ENDED_STATES.iter().map(|s| format!("'{s}'")).collect();
    format!("({})", quoted.join(", "))
}

fn private_temp(dir: &Path) -> StoreResult<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".keyward-snapshot-")
        .tempfile_in(dir)
        .map_err(|e| StoreError::Corrupt(format!("cannot make a temporary file in {}: {e}", dir.display())))
}

fn path_text(file: &tempfile::NamedTempFile) -> StoreResult<String> {
    file.path().to_str().map(str::to_owned).ok_or_else(|| StoreError::Corrupt("temporary path is not UTF-8".into()))
}

pub(super) async fn snapshot(pool: &SqlitePool, dir: &Path) -> StoreResult<Vec<u8>> {
    let file = private_temp(dir)?;
    sqlx::query("VACUUM INTO ?").bind(path_text(&file)?).execute(pool).await?;
    let bytes =
        std::fs::read(file.path()).map_err(|e| StoreError::Corrupt(format!("cannot read the snapshot: {e}")))?;
    if bytes.is_empty() {
        // An in-memory database (`--dev`) vacuums into memory, not the file.
        return Err(StoreError::Corrupt("this database lives in memory (--dev): there is nothing to back up".into()));
    }
    Ok(bytes)
}

/// The snapshot attached as `bk` on one connection (detach it with [`detach`]).
async fn attach(
    pool: &SqlitePool,
    dir: &Path,
    snapshot: &[u8],
) -> StoreResult<(PoolConnection<Sqlite>, tempfile::NamedTempFile)> {
    let mut file = private_temp(dir)?;
    file.write_all(snapshot)
        .and_then(|_| file.flush())
        .map_err(|e| StoreError::Corrupt(format!("cannot write the snapshot to a temporary file: {e}")))?;
    let mut conn = pool.acquire().await?;
    sqlx::query("ATTACH DATABASE ? AS bk").bind(path_text(&file)?).execute(&mut *conn).await?;
    let main = schema(&mut conn, "main").await?;
    let same = schema(&mut conn, "bk").await.is_ok_and(|bk| bk == main);
    if !same {
        detach(&mut conn).await;
        return Err(StoreError::Corrupt(
            "the snapshot is of another schema version: restore it with the keyward version that made it".into(),
        ));
    }
    Ok((conn, file))
}

async fn schema(conn: &mut PoolConnection<Sqlite>, db: &str) -> StoreResult<Vec<i64>> {
    let rows = sqlx::query(&format!("SELECT version FROM {db}._sqlx_migrations ORDER BY version"))
        .fetch_all(&mut **conn)
        .await
        .map_err(|_| StoreError::Corrupt("the snapshot is not a keyward database".into()))?;
    Ok(rows.iter().map(|r| r.get::<i64, _>("version")).collect())
}

async fn detach(conn: &mut PoolConnection<Sqlite>) {
    if sqlx::query("DETACH DATABASE bk").execute(&mut **conn).await.is_err() {
        // A connection that keeps the attachment must not go back to the pool.
        conn.close_on_drop();
    }
}

pub(super) async fn revived(pool: &SqlitePool, dir: &Path, snapshot: &[u8]) -> StoreResult<Vec<RevivedKey>> {
    let (mut conn, _file) = attach(pool, dir, snapshot).await?;
    let ended = ended();
    let rows = sqlx::query(&format!(
        "SELECT m.id, m.name, m.state AS state_now, b.state AS state_then FROM main.access_keys m \
         JOIN bk.access_keys b ON b.id = m.id \
         WHERE m.state IN {ended} AND b.state NOT IN {ended} ORDER BY m.id"
    ))
    .fetch_all(&mut *conn)
    .await;
    detach(&mut conn).await;
    Ok(rows?
        .iter()
        .map(|r| RevivedKey {
            id: r.get("id"),
            name: r.get("name"),
            state_now: r.get("state_now"),
            state_then: r.get("state_then"),
        })
        .collect())
}

pub(super) async fn restore(pool: &SqlitePool, dir: &Path, snapshot: &[u8]) -> StoreResult<()> {
    let (mut conn, _file) = attach(pool, dir, snapshot).await?;
    let out = copy_tables(&mut conn).await;
    detach(&mut conn).await;
    out
}

async fn copy_tables(conn: &mut PoolConnection<Sqlite>) -> StoreResult<()> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await?;
    let work = async {
        sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut **conn).await?;
        // Only the restored tables: the seal record (`meta`) and the audit
        // log stay, so the current seal (shares rekeyed since stay valid)
        // is kept and the chain goes on.
        for t in crate::tables::restored().rev() {
            sqlx::query(&format!("DELETE FROM main.{}", t.name)).execute(&mut **conn).await?;
        }
        for t in crate::tables::restored() {
            sqlx::query(&format!("INSERT INTO main.{0} SELECT * FROM bk.{0}", t.name)).execute(&mut **conn).await?;
        }
        Ok::<_, StoreError>(())
    };
    match work.await {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut **conn).await?;
            Ok(())
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
            Err(e)
        }
    }
}
