//! The shared backend: one PostgreSQL database several keyward nodes use at
//! once.
//!
//! - **Several nodes.** Every check-then-write is one conditional statement
//!   or runs under a row lock (`SELECT … FOR UPDATE`, or the lock an
//!   `UPDATE`/`INSERT … ON CONFLICT` takes), at the default `READ COMMITTED`
//!   isolation: two nodes racing for the same version, ledger revision or
//!   pending stage never both succeed; the loser gets
//!   [`StoreError::Conflict`]. Reads that must be consistent across
//!   statements (the ledger head, snapshots) run `REPEATABLE READ`.
//! - **Change notifications.** Every write sends
//!   `pg_notify('keyward_changes', '<node id>|<change>')` inside its own
//!   transaction, so the others hear of it exactly when it commits (and
//!   never of a write that rolled back). A listener task per store follows
//!   the channel, drops its own node's messages and rebroadcasts the rest on
//!   [`Store::changes`]; after a lost connection it reconnects and sends
//!   [`Change::Resync`].
//! - **One audit chain.** Appends take a transaction-scoped advisory lock
//!   and refuse a batch that does not chain onto the stored head
//!   ([`StoreError::Conflict`] with the head's sequence number): the writer
//!   rechains onto the new head and tries again.
//! - **Nonces.** `exchange_nonces` keeps the last nonce per exchange account;
//!   one upsert hands out the next, strictly increasing across nodes.
//! - **Destroyed ciphertext.** PostgreSQL never updates a row in place
//!   (MVCC): a destroyed version's old row, ciphertext included, stays in
//!   the table file as a dead tuple until `VACUUM` reclaims it. A destroy
//!   therefore runs `VACUUM secret_versions` after it commits (best effort;
//!   it cannot reclaim rows an older transaction still sees, autovacuum
//!   does later). Reclaimed space is reused, not zeroed, and the WAL,
//!   replicas and base backups keep their copies until they are recycled:
//!   ciphertext is only ever readable with the root key.
//! - **Snapshots.** A snapshot is a SQLite database file of the current
//!   SQLite schema, whichever backend made it, so backups move between
//!   backends (see `snapshot`).

use crate::{
    AuditQuery, Change, KeyRecord, LedgerHead, LedgerWrite, NamespaceRecord, NewVersion, OrderUsage, RevivedKey,
    SealRecord, SecretMeta, Store, StoreError, StoreResult, StoredCiphertext, VersionRecord,
};
use async_trait::async_trait;
use keyward_core::audit::{AuditEntry, Checkpoint};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

mod audit;
mod keys;
mod listen;
mod secrets;
mod snapshot;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The notification channel every node listens on.
const CHANNEL: &str = "keyward_changes";

/// pg_notify refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// PostgreSQL behind the [`Store`] trait, shared by several nodes.
///
/// Clones share the pool and the listener; the listener task ends when the
/// last clone is dropped (or [`PgStore::close`] is called).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This node's id, the prefix of its notifications.
    node: Arc<str>,
    /// Where the listener rebroadcasts other nodes' changes.
    changes: broadcast::Sender<Change>,
    /// Dropped with the last clone: the listener task then ends.
    _alive: Arc<oneshot::Sender<()>>,
    /// The audit log's strings (see [`crate::audit_strings`]).
    strings: Arc<crate::audit_strings::Strings>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("node", &self.node).field("pool", &self.pool).finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`),
    /// migrates it (an advisory lock makes nodes starting at once migrate
    /// one after the other), and starts following other nodes' changes.
    ///
    /// A database that cannot be reached answers [`StoreError::Unavailable`]
    /// within about five seconds. No error repeats the URL or its password.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}")))?
            .application_name("keyward")
            // A statement or a transaction left open (a node stalled mid-write)
            // never holds rows or the audit lock for long.
            .options([("statement_timeout", "60s"), ("idle_in_transaction_session_timeout", "60s")]);
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5)).connect_with(opts).await?;
        MIGRATOR.run(&pool).await?;
        let id = keyward_core::random::bytes::<8>()
            .map_err(|e| StoreError::Unavailable(format!("no randomness for the node id: {e}")))?;
        let node: Arc<str> = keyward_core::keyring::hex_encode(&id).into();
        let (changes, _) = broadcast::channel(1024);
        let (alive, stop) = oneshot::channel();
        let listener = listen::subscribe(&pool).await?;
        tokio::spawn(listen::run(pool.clone(), listener, node.clone(), changes.clone(), stop));
        Ok(Self { pool, node, changes, _alive: Arc::new(alive), strings: Default::default() })
    }

    /// This node's id (16 hex characters, new at every connect): the
    /// sender of its change notifications.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Closes the pool: the listener stops, and every later call of this
    /// store (and its clones) fails with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Best effort: reclaims the dead rows a destroy left (see the module doc).
    async fn vacuum(&self) {
        // Outside any transaction (VACUUM refuses one); a failure only
        // leaves the dead rows to autovacuum, so it is not an error.
        let _ = sqlx::raw_sql("VACUUM secret_versions").execute(&self.pool).await;
    }
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Sends `change` to the other nodes when the transaction on `conn` commits.
async fn notify(conn: &mut PgConnection, node: &str, change: &Change) -> StoreResult<()> {
    let mut payload = format!("{node}|{}", change.encode());
    if payload.len() > MAX_PAYLOAD {
        // A path too long for a notification: the others reread everything.
        payload = format!("{node}|{}", Change::Resync.encode());
    }
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(conn).await?;
    Ok(())
}

/// Sends [`Change::Secret`] once for each distinct path.
async fn notify_paths<'a>(
    conn: &mut PgConnection,
    node: &str,
    paths: impl IntoIterator<Item = &'a str>,
) -> StoreResult<()> {
    let distinct: std::collections::BTreeSet<&str> = paths.into_iter().collect();
    for path in distinct {
        notify(conn, node, &Change::Secret(path.to_string())).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn next_nonce(&self, scope: &str, floor: u64) -> StoreResult<u64> {
        let floor = i64::try_from(floor)
            .map_err(|_| StoreError::Corrupt(format!("nonce floor {floor} is above what the store keeps")))?;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO exchange_nonces (scope, last) VALUES ($1, $2) ON CONFLICT (scope)
             DO UPDATE SET last = GREATEST(exchange_nonces.last + 1, EXCLUDED.last) RETURNING last",
        )
        .bind(scope)
        .bind(floor)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64_of(last))
    }

    async fn ledger_rev(&self) -> StoreResult<Option<u64>> {
        let rev: Option<i64> =
            sqlx::query_scalar("SELECT rev FROM key_ledger WHERE id = 1").fetch_optional(&self.pool).await?;
        Ok(rev.map(u64_of))
    }

    async fn initialize(&self, seal: &SealRecord, bootstrap: &LedgerWrite) -> StoreResult<()> {
        keys::initialize(&self.pool, &self.node, seal, bootstrap).await
    }

    async fn seal_record(&self) -> StoreResult<Option<SealRecord>> {
        keys::seal_record(&self.pool).await
    }

    async fn put_seal_record(&self, seal: &SealRecord) -> StoreResult<()> {
        keys::put_seal_record(&self.pool, &self.node, seal).await
    }

    async fn secret_meta(&self, path: &str) -> StoreResult<Option<SecretMeta>> {
        secrets::meta(&self.pool, path).await
    }

    async fn list_secrets(&self, prefix: &str) -> StoreResult<Vec<SecretMeta>> {
        secrets::list(&self.pool, prefix).await
    }

    async fn versions(&self, path: &str) -> StoreResult<Vec<VersionRecord>> {
        secrets::versions(&self.pool, path).await
    }

    async fn version(&self, path: &str, version: u64) -> StoreResult<Option<VersionRecord>> {
        secrets::version(&self.pool, path, version).await
    }

    async fn versions_by_term(&self) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
        secrets::versions_by_term(&self.pool).await
    }

    async fn snapshot(&self) -> StoreResult<Vec<u8>> {
        snapshot::snapshot(&self.pool).await
    }

    async fn snapshot_revived(&self, bytes: &[u8]) -> StoreResult<Vec<RevivedKey>> {
        snapshot::revived(&self.pool, bytes).await
    }

    async fn restore_snapshot(&self, bytes: &[u8]) -> StoreResult<()> {
        snapshot::restore(&self.pool, &self.node, bytes).await?;
        self.vacuum().await;
        Ok(())
    }

    async fn versions_below_term(&self, term: u32, limit: u32) -> StoreResult<Vec<StoredCiphertext>> {
        secrets::versions_below_term(&self.pool, term, limit).await
    }

    async fn replace_ciphertexts(&self, batch: &[(StoredCiphertext, Vec<u8>)]) -> StoreResult<u64> {
        secrets::replace_ciphertexts(&self.pool, &self.node, batch).await
    }

    async fn insert_version(&self, v: &NewVersion) -> StoreResult<SecretMeta> {
        secrets::insert(&self.pool, &self.node, std::slice::from_ref(v))
            .await?
            .pop()
            .unwrap_or(Err(StoreError::NotFound))
    }

    async fn insert_versions(&self, vs: &[NewVersion]) -> StoreResult<Vec<StoreResult<SecretMeta>>> {
        secrets::insert(&self.pool, &self.node, vs).await
    }

    async fn set_deleted(&self, path: &str, versions: &[u64], deleted_ms: Option<i64>) -> StoreResult<Vec<u64>> {
        secrets::set_deleted(&self.pool, &self.node, path, versions, deleted_ms).await
    }

    /// Destroys versions, then runs `VACUUM secret_versions` (best effort):
    /// until it has run, the old rows stay in the table file as dead tuples
    /// (see the module doc for what VACUUM does and does not reclaim).
    async fn destroy_versions(&self, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>> {
        let out = secrets::destroy_versions(&self.pool, &self.node, path, versions).await?;
        self.vacuum().await;
        Ok(out)
    }

    /// Destroys a secret, then runs `VACUUM secret_versions` (best effort,
    /// as for [`Store::destroy_versions`]).
    async fn destroy_secret(&self, path: &str) -> StoreResult<bool> {
        let gone = secrets::destroy_secret(&self.pool, &self.node, path).await?;
        self.vacuum().await;
        Ok(gone)
    }

    async fn promote_version(&self, path: &str, pending: u64, at_ms: i64) -> StoreResult<SecretMeta> {
        secrets::promote(&self.pool, &self.node, path, pending, at_ms).await
    }

    async fn rollback_version(&self, path: &str, current: u64, at_ms: i64) -> StoreResult<SecretMeta> {
        secrets::rollback(&self.pool, &self.node, path, current, at_ms).await
    }

    async fn abandon_pending(&self, path: &str, pending: u64) -> StoreResult<Option<SecretMeta>> {
        let meta = secrets::abandon(&self.pool, &self.node, path, pending).await?;
        self.vacuum().await;
        Ok(meta)
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        keys::list_keys(&self.pool).await
    }

    async fn key_pages(&self, page: u64) -> StoreResult<crate::KeyPages> {
        keys::pages(&self.pool, page).await
    }

    async fn touch_key(&self, id: &str, at_ms: i64, ip: &str) -> StoreResult<()> {
        keys::touch_key(&self.pool, id, at_ms, ip).await
    }

    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        keys::key(&self.pool, id).await
    }

    async fn ledger_head(&self) -> StoreResult<Option<LedgerHead>> {
        keys::ledger_head(&self.pool).await
    }

    async fn list_order_usage(&self) -> StoreResult<Vec<OrderUsage>> {
        keys::list_order_usage(&self.pool).await
    }

    async fn order_usage(&self, key_id: &str, day: i64) -> StoreResult<Option<i64>> {
        keys::order_usage(&self.pool, key_id, day).await
    }

    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<()> {
        keys::commit_ledger(&self.pool, &self.node, write).await
    }

    async fn append_audit(&self, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) -> StoreResult<()> {
        audit::append(&self.pool, &self.strings, entries, checkpoint).await
    }

    async fn audit_head(&self) -> StoreResult<Option<(u64, Vec<u8>)>> {
        match audit::head(&mut *self.pool.acquire().await?).await? {
            Some((seq, hash)) if hash.len() != 32 => Ok(Some((seq, crate::audit::hash_at(self, seq).await?))),
            other => Ok(other),
        }
    }

    async fn audit_base(&self) -> StoreResult<Option<(u64, Vec<u8>)>> {
        audit::base(&mut *self.pool.acquire().await?).await
    }

    async fn audit_prune(&self, through: u64) -> StoreResult<u64> {
        audit::prune(&self.pool, through).await
    }

    async fn audit_entries(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut out = audit::entries(&self.pool, &self.strings, q).await?;
        crate::audit::fill(self, &mut out).await?;
        Ok(out)
    }

    async fn audit_rows(&self, from_seq: u64, limit: u64) -> StoreResult<crate::AuditRows> {
        audit::rows(&self.pool, &self.strings, from_seq, limit).await
    }

    async fn audit_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        audit::checkpoints(&self.pool).await
    }

    async fn meta(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = $1").bind(name).fetch_optional(&self.pool).await?)
    }

    async fn put_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        if name == "seal" {
            return Err(StoreError::Refused("the seal record is written by initialize".into()));
        }
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_namespace(&self, ns: &NamespaceRecord) -> StoreResult<()> {
        keys::insert_namespace(&self.pool, &self.node, ns).await
    }

    async fn list_namespaces(&self) -> StoreResult<Vec<NamespaceRecord>> {
        keys::list_namespaces(&self.pool).await
    }
}
