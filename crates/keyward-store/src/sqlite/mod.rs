//! The embedded default backend: one SQLite file in WAL mode with
//! `synchronous=FULL` (a write is on disk when the call returns) and
//! `secure_delete` (destroyed ciphertext is overwritten, not just unlinked).

use crate::{
    AuditQuery, KeyRecord, LedgerHead, LedgerPart, LedgerWrite, NamespaceRecord, NewVersion, OrderUsage, SealRecord,
    SecretMeta, Store, StoreError, StoreResult, VersionRecord,
};
use async_trait::async_trait;
use keyward_core::audit::{AuditEntry, Checkpoint};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::Duration;

mod append;
mod audit;
mod keys;
mod secrets;
mod snapshot;
mod walk;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite behind the [`Store`] trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The audit log's strings (see [`crate::audit_strings`]).
    strings: std::sync::Arc<crate::audit_strings::Strings>,
    /// Where snapshots are staged: beside the database (the temp dir in memory).
    dir: std::path::PathBuf,
    /// Reads walks through the audit log (none in memory).
    walker: Option<std::sync::Arc<walk::Walker>>,
    /// Appends to the audit log (none in memory: sqlx appends there).
    appender: Option<std::sync::Arc<append::Appender>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `file` and migrates it.
    pub async fn open(file: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("secure_delete", "ON")
            // A page cache of 4 MiB a connection (2 MiB by default): the
            // pages a write touches stay in memory.
            .pragma("cache_size", "-4096")
            // Checkpoint the WAL every ~16 MiB instead of every 4 MiB: pages
            // written again and again (the key ledger's head) are copied once.
            .pragma("wal_autocheckpoint", "4000");
        // Two connections, not four: the audit log appends and walks on
        // connections of its own, keys load through the walker, the hot
        // paths read memory, and SQLite writes one at a time. Each idle
        // connection kept a worker thread and its pages (about 0.13 MB
        // at idle); key creation at 32 connections lost about 5%.
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?;
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let walker = walk::Walker::new(file.to_path_buf());
        let store = Self::migrated(pool, dir.to_path_buf(), Some(std::sync::Arc::new(walker))).await?;
        Ok(Self { appender: Some(std::sync::Arc::new(append::Appender::new(file.to_path_buf()))), ..store })
    }

    /// An in-memory database (`server --dev`): gone when the process ends.
    pub async fn in_memory() -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new().in_memory(true).foreign_keys(true).pragma("secure_delete", "ON");
        // One connection that never closes: each connection would be its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        Self::migrated(pool, std::env::temp_dir(), None).await
    }

    async fn migrated(
        pool: SqlitePool,
        dir: std::path::PathBuf,
        walker: Option<std::sync::Arc<walk::Walker>>,
    ) -> StoreResult<Self> {
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, dir, strings: Default::default(), walker, appender: None })
    }

    /// The pool, for the PostgreSQL backend's snapshots (rows copied into a
    /// SQLite file of the current schema).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection (a staged snapshot file can then be removed).
    pub(crate) async fn close(&self) {
        if let Some(walker) = &self.walker {
            walker.close();
        }
        if let Some(appender) = &self.appender {
            appender.close();
        }
        self.pool.close().await;
    }

    /// Moves the WAL into the main file and truncates it, so overwritten
    /// pages do not linger in the log (after destroy).
    async fn checkpoint(&self) -> StoreResult<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(())
    }
}

/// The schema versions a database of the current SQLite schema records in
/// `_sqlx_migrations`, in order.
pub(crate) fn migration_versions() -> Vec<i64> {
    MIGRATOR.iter().filter(|m| !m.migration_type.is_down_migration()).map(|m| m.version).collect()
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn key_of(r: &SqliteRow) -> KeyRecord {
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

#[async_trait]
impl Store for SqliteStore {
    async fn initialize(&self, seal: &SealRecord, bootstrap: &LedgerWrite) -> StoreResult<()> {
        let json = serde_json::to_string(seal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query("INSERT INTO meta (name, value) VALUES ('seal', ?) ON CONFLICT(name) DO NOTHING")
            .bind(json)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyInitialized);
        }
        write_ledger(&mut tx, bootstrap).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn seal_record(&self) -> StoreResult<Option<SealRecord>> {
        let row = sqlx::query("SELECT value FROM meta WHERE name = 'seal'").fetch_optional(&self.pool).await?;
        row.map(|r| serde_json::from_str(&r.get::<String, _>("value")).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn put_seal_record(&self, seal: &SealRecord) -> StoreResult<()> {
        let json = serde_json::to_string(seal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE meta SET value = ? WHERE name = 'seal'").bind(json).execute(&self.pool).await?;
        Ok(())
    }

    async fn secret_meta(&self, path: &str) -> StoreResult<Option<SecretMeta>> {
        secrets::meta(&self.pool, path).await
    }

    async fn list_secrets(&self, prefix: &str) -> StoreResult<Vec<SecretMeta>> {
        secrets::list(&self.pool, prefix).await
    }

    async fn snapshot(&self) -> StoreResult<Vec<u8>> {
        snapshot::snapshot(&self.pool, &self.dir).await
    }

    async fn snapshot_revived(&self, bytes: &[u8]) -> StoreResult<Vec<crate::RevivedKey>> {
        snapshot::revived(&self.pool, &self.dir, bytes).await
    }

    async fn restore_snapshot(&self, bytes: &[u8]) -> StoreResult<()> {
        snapshot::restore(&self.pool, &self.dir, bytes).await?;
        self.checkpoint().await
    }

    async fn versions_by_term(&self) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
        secrets::versions_by_term(&self.pool).await
    }

    async fn versions_below_term(&self, term: u32, limit: u32) -> StoreResult<Vec<crate::StoredCiphertext>> {
        secrets::versions_below_term(&self.pool, term, limit).await
    }

    async fn replace_ciphertexts(&self, batch: &[(crate::StoredCiphertext, Vec<u8>)]) -> StoreResult<u64> {
        secrets::replace_ciphertexts(&self.pool, batch).await
    }

    async fn versions(&self, path: &str) -> StoreResult<Vec<VersionRecord>> {
        secrets::versions(&self.pool, path).await
    }

    async fn version(&self, path: &str, version: u64) -> StoreResult<Option<VersionRecord>> {
        secrets::version(&self.pool, path, version).await
    }

    async fn insert_version(&self, v: &NewVersion) -> StoreResult<SecretMeta> {
        secrets::insert(&self.pool, std::slice::from_ref(v)).await?.pop().unwrap_or(Err(StoreError::NotFound))
    }

    async fn insert_versions(&self, vs: &[NewVersion]) -> StoreResult<Vec<StoreResult<SecretMeta>>> {
        secrets::insert(&self.pool, vs).await
    }

    async fn set_deleted(&self, path: &str, versions: &[u64], deleted_ms: Option<i64>) -> StoreResult<Vec<u64>> {
        secrets::set_deleted(&self.pool, path, versions, deleted_ms).await
    }

    async fn destroy_versions(&self, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
        let out = secrets::destroy_versions(&self.pool, path, versions).await?;
        self.checkpoint().await?;
        Ok(out)
    }

    async fn destroy_secret(&self, path: &str) -> StoreResult<bool> {
        let gone = secrets::destroy_secret(&self.pool, path).await?;
        self.checkpoint().await?;
        Ok(gone)
    }

    async fn promote_version(&self, path: &str, pending: u64, at_ms: i64) -> StoreResult<SecretMeta> {
        secrets::promote(&self.pool, path, pending, at_ms).await
    }

    async fn rollback_version(&self, path: &str, current: u64, at_ms: i64) -> StoreResult<SecretMeta> {
        secrets::rollback(&self.pool, path, current, at_ms).await
    }

    async fn abandon_pending(&self, path: &str, pending: u64) -> StoreResult<Option<SecretMeta>> {
        let meta = secrets::abandon(&self.pool, path, pending).await?;
        self.checkpoint().await?;
        Ok(meta)
    }

    /// Every key, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let mut pages = self.key_pages(keys::PAGE).await?;
        let mut out: Vec<KeyRecord> = Vec::new();
        while let Some(page) = pages.next().await? {
            out.extend(page);
        }
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn key_pages(&self, page: u64) -> StoreResult<crate::KeyPages> {
        match &self.walker {
            Some(walker) => Ok(keys::walk(walker, page)),
            None => keys::pages(&self.pool, page).await,
        }
    }

    async fn touch_key(&self, id: &str, at_ms: i64, ip: &str) -> StoreResult<()> {
        sqlx::query("UPDATE access_keys SET last_used_ms = ?, last_used_ip = ? WHERE id = ?")
            .bind(at_ms)
            .bind(ip)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(key_of))
    }

    async fn ledger_head(&self) -> StoreResult<Option<LedgerHead>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT rev, count, mac FROM key_ledger WHERE id = 1").fetch_optional(&mut *tx).await?;
        let Some(r) = row else { return Ok(None) };
        let parts = sqlx::query("SELECT part, bytes FROM key_ledger_parts ORDER BY part")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|p| LedgerPart {
                index: p.get::<i64, _>("part").clamp(0, u32::MAX as i64) as u32,
                bytes: p.get("bytes"),
            })
            .collect();
        tx.commit().await?;
        Ok(Some(LedgerHead { rev: u64_of(r.get("rev")), count: u64_of(r.get("count")), mac: r.get("mac"), parts }))
    }

    async fn list_order_usage(&self) -> StoreResult<Vec<OrderUsage>> {
        let rows =
            sqlx::query("SELECT key_id, day, used FROM order_usage ORDER BY key_id, day").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| OrderUsage { key_id: r.get("key_id"), day: r.get("day"), used: r.get("used") })
            .collect())
    }

    async fn order_usage(&self, key_id: &str, day: i64) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT used FROM order_usage WHERE key_id = ? AND day = ?")
            .bind(key_id)
            .bind(day)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        write_ledger(&mut tx, write).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_audit(&self, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) -> StoreResult<()> {
        match &self.appender {
            Some(appender) => appender.append(&self.strings, entries, checkpoint).await,
            None => audit::append(self, entries, checkpoint).await,
        }
    }

    async fn audit_head(&self) -> StoreResult<Option<(u64, Vec<u8>)>> {
        audit::head(self).await
    }

    async fn audit_base(&self) -> StoreResult<Option<(u64, Vec<u8>)>> {
        audit::base(&mut *self.pool.acquire().await?).await
    }

    async fn audit_prune(&self, through: u64) -> StoreResult<u64> {
        audit::prune(self, through).await
    }

    async fn audit_entries(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        audit::entries(self, q).await
    }

    async fn audit_page(&self, from_seq: u64, limit: u64) -> StoreResult<Vec<AuditEntry>> {
        audit::page(self, from_seq, limit).await
    }

    async fn audit_rows(&self, from_seq: u64, limit: u64) -> StoreResult<crate::AuditRows> {
        audit::rows(self, from_seq, limit).await
    }

    async fn audit_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        audit::checkpoints(self).await
    }

    async fn meta(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = ?").bind(name).fetch_optional(&self.pool).await?)
    }

    async fn put_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        if name == "seal" {
            return Err(StoreError::Refused("the seal record is written by initialize".into()));
        }
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_namespace(&self, ns: &NamespaceRecord) -> StoreResult<()> {
        let n = sqlx::query(
            "INSERT INTO namespaces (name, prefix, created_ms) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&ns.name)
        .bind(&ns.prefix)
        .bind(ns.created_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 { Err(StoreError::Conflict { current: 0 }) } else { Ok(()) }
    }

    async fn list_namespaces(&self) -> StoreResult<Vec<NamespaceRecord>> {
        let rows =
            sqlx::query("SELECT name, prefix, created_ms FROM namespaces ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| NamespaceRecord { name: r.get("name"), prefix: r.get("prefix"), created_ms: r.get("created_ms") })
            .collect())
    }
}

/// One ledger write inside `tx`: the head first (compare and set), then the rows.
async fn write_ledger(tx: &mut sqlx::SqliteConnection, w: &LedgerWrite) -> StoreResult<()> {
    let h = &w.head;
    let moved = match w.expected_rev {
        None => {
            sqlx::query("INSERT INTO key_ledger (id, rev, count, mac) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO NOTHING")
                .bind(h.rev as i64)
                .bind(h.count as i64)
                .bind(&h.mac)
                .execute(&mut *tx)
                .await?
        }
        Some(expected) => {
            sqlx::query("UPDATE key_ledger SET rev = ?, count = ?, mac = ? WHERE id = 1 AND rev = ?")
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
    // Multi-row statements: one round through SQLite per 64 rows.
    for chunk in h.parts.chunks(64) {
        let sql = format!(
            "INSERT INTO key_ledger_parts (part, bytes) VALUES {} ON CONFLICT(part) DO UPDATE SET bytes = excluded.bytes",
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q.bind(i64::from(p.index)).bind(&p.bytes);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in w.insert_keys.chunks(64) {
        let sql = format!(
            "INSERT INTO access_keys (id, hash, name, owner, namespace, policy, state, created_ms, mac, uses_remaining)
             VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for k in chunk {
            q = q
                .bind(&k.id)
                .bind(&k.hash)
                .bind(&k.name)
                .bind(&k.owner)
                .bind(&k.namespace)
                .bind(&k.policy)
                .bind(&k.state)
                .bind(k.created_ms)
                .bind(&k.mac)
                .bind(k.uses_remaining);
        }
        q.execute(&mut *tx).await?;
    }
    for k in &w.update_keys {
        let n = sqlx::query(
            "UPDATE access_keys SET name = ?, owner = ?, policy = ?, state = ?, mac = ?, uses_remaining = ? WHERE id = ?",
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
            "INSERT INTO order_usage (key_id, day, used) VALUES (?1, ?2, ?3)
             ON CONFLICT(key_id, day) DO UPDATE SET used = ?3",
        )
        .bind(&u.key_id)
        .bind(u.day)
        .bind(u.used)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
