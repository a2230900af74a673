//! keyward's persistence: one [`Store`] trait and its backends.
//!
//! A backend stores what the server hands it and nothing else: secret
//! versions as envelope ciphertext, access keys as keyed hashes with a row
//! MAC. It never sees a key, a plaintext secret or an access key, and so it
//! can never log one. SQLite (WAL, synchronous writes) is the embedded
//! default; PostgreSQL ([`PgStore`]) is the backend several nodes share.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod postgres;
mod sqlite;
mod tables;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;

pub mod audit;
mod audit_strings;
mod key_pages;

pub use key_pages::KeyPages;

pub use audit::{AuditQuery, AuditRow, AuditRows, StoredHash};
use serde::{Deserialize, Serialize};

/// Everything a backend can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or written.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A conditional write lost: the secret's current version moved on.
    #[error("the secret is at version {current}")]
    Conflict {
        /// The version the secret is at now.
        current: u64,
    },
    /// `initialize` on data that is already initialised.
    #[error("this data is already initialised")]
    AlreadyInitialized,
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A stored value could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The change asked for is not one the store makes (pruning the audit
    /// log past its last checkpoint).
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migration failed: {e}"))
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// How the root key is unsealed, and the value that recognises it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealRecord {
    /// `shamir`, `keyfile` or `pkcs11`.
    pub kind: SealKind,
    /// Hex of the root key's check value.
    pub check: String,
    /// When `operator init` ran (ms since the epoch).
    pub created_ms: i64,
    /// The active keyring term (1 after init; rotation adds terms).
    pub active_term: u32,
    /// Terms retired after a rewrap: no longer derived, so nothing they
    /// encrypted can be read (none is left when a term is retired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_terms: Vec<u32>,
}

/// The unseal mechanism chosen at init.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SealKind {
    /// Shamir shares.
    Shamir {
        /// Shares printed at init.
        shares: u8,
        /// Shares needed to unseal.
        threshold: u8,
        /// Id of the share set.
        set_id: String,
    },
    /// An unseal key file.
    Keyfile,
    /// The root key wrapped (AES-256-GCM, on the token) by an AES key that
    /// never leaves a PKCS#11 token. The PIN is never stored: only the name
    /// of the environment variable the server reads it from.
    Pkcs11 {
        /// The PKCS#11 library (`keyward server --pkcs11-lib` may give another path).
        lib: String,
        /// The slot id of the token.
        slot: u64,
        /// The label of the wrapping key on the token.
        key_label: String,
        /// The environment variable holding the token's user PIN.
        pin_env: String,
        /// Hex of IV ‖ ciphertext ‖ tag of the root key.
        wrapped: String,
    },
}

/// A secret's metadata row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// The path.
    pub path: String,
    /// The type (`binance`, …) if one was given.
    pub kind: Option<String>,
    /// The version reads get (0: none yet, only a pending one).
    pub current_version: u64,
    /// Highest version written; the next one is this plus one.
    pub latest_version: u64,
    /// A staged version nothing reads until it is promoted.
    pub pending_version: Option<u64>,
    /// The version that was current before the last change of current: the
    /// target of a rollback.
    pub previous_version: Option<u64>,
    /// First write (ms).
    pub created_ms: i64,
    /// Last write (ms).
    pub updated_ms: i64,
    /// Rotation period in seconds, if set.
    pub rotation_period_s: Option<i64>,
}

/// One version row of a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Version number, from 1.
    pub version: u64,
    /// Written at (ms).
    pub created_ms: i64,
    /// Soft-deleted at (ms), if deleted.
    pub deleted_ms: Option<i64>,
    /// Destroyed: the ciphertext is gone for good.
    pub destroyed: bool,
    /// The envelope ciphertext (absent once destroyed, and in listings).
    pub ciphertext: Option<Vec<u8>>,
}

/// An access key a restore would bring back from revoked or compromised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevivedKey {
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
    /// Its state now (`revoked`, `compromised`, `destroyed`).
    pub state_now: String,
    /// Its state in the snapshot.
    pub state_then: String,
}

/// One stored version's ciphertext, for rewrapping.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCiphertext {
    /// The secret's path.
    pub path: String,
    /// The version.
    pub version: u64,
    /// The envelope ciphertext.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for StoredCiphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCiphertext").field("path", &self.path).field("version", &self.version).finish()
    }
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("version", &self.version)
            .field("created_ms", &self.created_ms)
            .field("deleted_ms", &self.deleted_ms)
            .field("destroyed", &self.destroyed)
            .field("ciphertext_len", &self.ciphertext.as_ref().map(Vec::len))
            .finish()
    }
}

/// A new version to write.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The path.
    pub path: String,
    /// The version number the caller encrypted for: `expected_latest + 1`.
    pub version: u64,
    /// The latest version the caller saw (0 for a new secret).
    pub expected_latest: u64,
    /// Whether it becomes current or waits as pending.
    pub stage: Stage,
    /// Type to set; `None` keeps the stored one.
    pub kind: Option<String>,
    /// Rotation period to set; `None` keeps the stored one.
    pub rotation_period_s: Option<i64>,
    /// Write time (ms).
    pub created_ms: i64,
    /// Envelope ciphertext.
    pub ciphertext: Vec<u8>,
}

/// What a new version becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Current at once (the current one becomes previous); refused while a
    /// version is pending.
    Current,
    /// Pending: stored, read by nothing until promoted.
    Pending {
        /// The pending version it replaces (destroyed in the same
        /// transaction), or `None` when nothing is pending.
        replaces: Option<u64>,
    },
}

/// An access-key row. The key itself is never stored: only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id (`key_…`), not secret.
    pub id: String,
    /// HMAC-SHA-256 of the key under the root-derived pepper.
    pub hash: Vec<u8>,
    /// Human name.
    pub name: String,
    /// Owner, free text.
    pub owner: Option<String>,
    /// Namespace (`keyward` for keyward's own keys).
    pub namespace: String,
    /// Policy as JSON (scopes, allowlists, limits), covered by `mac`.
    pub policy: String,
    /// Lifecycle state.
    pub state: String,
    /// Created at (ms).
    pub created_ms: i64,
    /// Row MAC under a root-derived key.
    pub mac: Vec<u8>,
    /// Remaining uses, if limited.
    pub uses_remaining: Option<i64>,
    /// Last use (ms).
    pub last_used_ms: Option<i64>,
    /// Last client IP.
    pub last_used_ip: Option<String>,
}

/// The head of the key ledger: one MAC'd, database-wide revision over
/// every access-key row and order-usage counter. The server computes it;
/// the store only keeps it and refuses a write made against an older head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerHead {
    /// Moves forward by one with every ledger write.
    pub rev: u64,
    /// How many rows the ledger covers.
    pub count: u64,
    /// MAC over revision, count and every part.
    pub mac: Vec<u8>,
    /// The parts of the ledger's digest: read, every stored part; written,
    /// the parts that changed (each replaces the part of its index).
    pub parts: Vec<LedgerPart>,
}

/// One part of the key ledger's digest (what it holds is the server's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerPart {
    /// Which part.
    pub index: u32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A key's cumulative order notional on one UTC day (micro-units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderUsage {
    /// Key id.
    pub key_id: String,
    /// Days since the epoch (UTC).
    pub day: i64,
    /// Notional reserved so far.
    pub used: i64,
}

/// One ledger write (see [`Store::commit_ledger`]).
#[derive(Debug, Clone, Default)]
pub struct LedgerWrite {
    /// The head this write was computed from; `None` for the first.
    pub expected_rev: Option<u64>,
    /// The head after it.
    pub head: LedgerHead,
    /// New key rows.
    pub insert_keys: Vec<KeyRecord>,
    /// Key rows replaced whole (name, owner, policy, state, MAC, uses left).
    pub update_keys: Vec<KeyRecord>,
    /// Counters set (inserted or replaced).
    pub usage: Vec<OrderUsage>,
}

/// A namespace of platform keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// Name (`shop-api`).
    pub name: String,
    /// Key prefix (`shop` gives `shop_…` keys).
    pub prefix: String,
    /// Created at (ms).
    pub created_ms: i64,
}

/// A change another node made to the shared database, heard through the
/// backend (PostgreSQL `LISTEN/NOTIFY`, sent in the same transaction as the
/// change). A node never hears its own changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Access keys, order-usage counters or the key ledger moved.
    Keys,
    /// A secret at this path changed (written, deleted, destroyed,
    /// promoted, rolled back or rewrapped).
    Secret(String),
    /// The seal record changed (term rotation, rekey, seal migration).
    Seal,
    /// A namespace was added.
    Namespaces,
    /// Changes may have been missed (the listener reconnected, or data was
    /// restored from a snapshot): reread everything.
    Resync,
}

impl Change {
    /// The notification payload (without the sender's node id).
    pub fn encode(&self) -> String {
        match self {
            Change::Keys => "keys".into(),
            Change::Secret(path) => format!("secret:{path}"),
            Change::Seal => "seal".into(),
            Change::Namespaces => "ns".into(),
            Change::Resync => "resync".into(),
        }
    }

    /// Reads a payload written by [`Change::encode`]; anything else is a
    /// [`Change::Resync`] (reread everything rather than miss a change).
    pub fn decode(payload: &str) -> Self {
        match payload {
            "keys" => Change::Keys,
            "seal" => Change::Seal,
            "ns" => Change::Namespaces,
            _ => match payload.strip_prefix("secret:") {
                Some(path) => Change::Secret(path.to_string()),
                None => Change::Resync,
            },
        }
    }
}

/// The persistence interface. Every backend passes the same conformance suite.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// True for a backend several keyward nodes may share at once
    /// (PostgreSQL): each node must then follow [`Store::changes`], take
    /// nonces from [`Store::next_nonce`] and expect
    /// [`StoreError::Conflict`] from [`Store::append_audit`].
    fn shared(&self) -> bool {
        false
    }
    /// The changes other nodes make, for a shared backend (`None` for one
    /// node alone). A lagging receiver, or a listener that lost its
    /// connection, is followed by a [`Change::Resync`].
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
    /// The next nonce for `scope` (an exchange account): above every nonce
    /// any node took for it and at least `floor`. Only shared backends
    /// keep nonces; one node alone counts them in memory.
    async fn next_nonce(&self, scope: &str, floor: u64) -> StoreResult<u64> {
        let _ = (scope, floor);
        Err(StoreError::Unavailable("this backend does not keep nonces".into()))
    }
    /// The key ledger's revision alone (cheap: the periodic resync reads it).
    async fn ledger_rev(&self) -> StoreResult<Option<u64>> {
        Ok(self.ledger_head().await?.map(|h| h.rev))
    }

    /// Writes the seal record and the bootstrap key with the first ledger head at once; fails with
    /// [`StoreError::AlreadyInitialized`] if a seal record exists.
    async fn initialize(&self, seal: &SealRecord, bootstrap: &LedgerWrite) -> StoreResult<()>;
    /// The seal record, if initialised.
    async fn seal_record(&self) -> StoreResult<Option<SealRecord>>;
    /// Replaces the seal record (term rotation).
    async fn put_seal_record(&self, seal: &SealRecord) -> StoreResult<()>;

    /// A secret's metadata.
    async fn secret_meta(&self, path: &str) -> StoreResult<Option<SecretMeta>>;
    /// Secrets whose path starts with `prefix`, in path order.
    async fn list_secrets(&self, prefix: &str) -> StoreResult<Vec<SecretMeta>>;
    /// All versions of a secret, without ciphertext, oldest first.
    async fn versions(&self, path: &str) -> StoreResult<Vec<VersionRecord>>;
    /// One version, with its ciphertext.
    async fn version(&self, path: &str, version: u64) -> StoreResult<Option<VersionRecord>>;
    /// How many stored (not destroyed) versions each keyring term encrypts,
    /// read from the envelope header (`"KWE1" | term u32 BE | …`).
    async fn versions_by_term(&self) -> StoreResult<std::collections::BTreeMap<u32, u64>>;
    /// A consistent copy of the whole database, taken while others write
    /// (SQLite: `VACUUM INTO`, one read transaction; PostgreSQL: its rows
    /// copied in one repeatable-read transaction into a SQLite file of the
    /// same schema, so a snapshot restores on either backend). Ciphertext
    /// stays ciphertext: the copy holds nothing the database does not.
    async fn snapshot(&self) -> StoreResult<Vec<u8>>;
    /// What restoring `snapshot` would change for access keys: each key the
    /// current data has revoked, marked compromised or destroyed that the
    /// snapshot still holds in another state (restoring brings it back).
    async fn snapshot_revived(&self, snapshot: &[u8]) -> StoreResult<Vec<RevivedKey>>;
    /// Replaces secrets, access keys, namespaces, order usage and the key
    /// ledger with the snapshot's, in one transaction. The seal record and
    /// the audit log are kept: the chain goes on and records the restore.
    /// Refused (`Corrupt`) for a snapshot of another schema version.
    async fn restore_snapshot(&self, snapshot: &[u8]) -> StoreResult<()>;
    /// Up to `limit` stored versions encrypted under a term below `term`,
    /// with their ciphertext (for rewrapping), in path and version order.
    async fn versions_below_term(&self, term: u32, limit: u32) -> StoreResult<Vec<StoredCiphertext>>;
    /// Replaces each version's ciphertext with `new` if it is still the one
    /// read (a rewrap that raced a destroy changes nothing), in one
    /// transaction; returns how many were replaced.
    async fn replace_ciphertexts(&self, batch: &[(StoredCiphertext, Vec<u8>)]) -> StoreResult<u64>;
    /// Writes a new version if the latest version is still `expected_latest`
    /// (and, for [`Stage::Current`], nothing is pending; for
    /// [`Stage::Pending`], the pending version is still the one it
    /// replaces); otherwise [`StoreError::Conflict`] with the latest
    /// version. Durable when it returns.
    async fn insert_version(&self, v: &NewVersion) -> StoreResult<SecretMeta>;
    /// Writes several new versions in one durable transaction (group
    /// commit), in order, each checked like [`Store::insert_version`]: a
    /// version whose check fails gets its own [`StoreError::Conflict`] and
    /// leaves the others alone. The outer error means nothing was written.
    ///
    /// The default writes them one by one; a backend overrides it to pay one
    /// commit (one fsync) for the lot.
    async fn insert_versions(&self, vs: &[NewVersion]) -> StoreResult<Vec<StoreResult<SecretMeta>>> {
        let mut out = Vec::with_capacity(vs.len());
        for v in vs {
            out.push(self.insert_version(v).await);
        }
        Ok(out)
    }
    /// Sets (`Some`) or clears (`None`) the deleted mark of versions; returns
    /// the versions changed (destroyed ones are left alone).
    async fn set_deleted(&self, path: &str, versions: &[u64], deleted_ms: Option<i64>) -> StoreResult<Vec<u64>>;
    /// Destroys versions: their ciphertext is overwritten and removed.
    async fn destroy_versions(&self, path: &str, versions: &[u64]) -> StoreResult<Vec<u64>>;
    /// Destroys a secret entirely: every version and its metadata.
    async fn destroy_secret(&self, path: &str) -> StoreResult<bool>;
    /// Makes the pending version `pending` current and the current one
    /// previous, in one step; [`StoreError::Conflict`] (with the current
    /// version) if `pending` is no longer pending.
    async fn promote_version(&self, path: &str, pending: u64, at_ms: i64) -> StoreResult<SecretMeta>;
    /// Swaps current and previous, if `current` is still current, nothing is
    /// pending and the previous version is neither deleted nor destroyed;
    /// otherwise [`StoreError::Conflict`] with the current version.
    async fn rollback_version(&self, path: &str, current: u64, at_ms: i64) -> StoreResult<SecretMeta>;
    /// Destroys the pending version `pending`; a secret that has no current
    /// version goes with it (`None`). [`StoreError::Conflict`] if `pending`
    /// is no longer pending.
    async fn abandon_pending(&self, path: &str, pending: u64) -> StoreResult<Option<SecretMeta>>;

    /// Every access key, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;
    /// Every access key, up to `page` at a time, in the store's own order
    /// and all from one snapshot (loading a million keys without holding
    /// every row at once; the next page is read while the caller works).
    async fn key_pages(&self, page: u64) -> StoreResult<KeyPages> {
        let all = self.list_keys().await?;
        let page = page.clamp(1, usize::MAX as u64) as usize;
        Ok(KeyPages::ready(all.chunks(page).map(<[KeyRecord]>::to_vec).collect()))
    }
    /// Records a key's last use (not part of the ledger: it decides nothing).
    async fn touch_key(&self, id: &str, at_ms: i64, ip: &str) -> StoreResult<()>;
    /// One key by id.
    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>>;

    /// The key ledger's head, if one was written.
    async fn ledger_head(&self) -> StoreResult<Option<LedgerHead>>;
    /// Every daily order-notional counter.
    async fn list_order_usage(&self) -> StoreResult<Vec<OrderUsage>>;
    /// A key's order notional on `day`, if it has one.
    async fn order_usage(&self, key_id: &str, day: i64) -> StoreResult<Option<i64>>;
    /// Writes key rows, order-usage counters and the ledger head in one
    /// transaction, only if the stored head is still at
    /// `expected_rev` (`None`: no head yet). Otherwise nothing is written
    /// and the answer is [`StoreError::Conflict`] with the stored revision.
    async fn commit_ledger(&self, write: &LedgerWrite) -> StoreResult<()>;

    /// Appends chained audit entries (and a checkpoint) in one durable
    /// transaction, only onto the stored head the first entry chains from:
    /// otherwise [`StoreError::Conflict`] (with the stored head's sequence
    /// number), nothing written. The head moves under a writer when another
    /// node appended (a shared backend) or rows were edited underneath; the
    /// writer chains the batch onto the new head and tries again, so the
    /// nodes write one chain.
    async fn append_audit(
        &self,
        entries: &[keyward_core::audit::AuditEntry],
        checkpoint: Option<&keyward_core::audit::Checkpoint>,
    ) -> StoreResult<()>;
    /// The last entry's sequence number and whole hash (after a prune that
    /// removed every entry, the base's).
    async fn audit_head(&self) -> StoreResult<Option<(u64, Vec<u8>)>>;
    /// The last entry a prune removed: the stored log starts after it.
    async fn audit_base(&self) -> StoreResult<Option<(u64, Vec<u8>)>>;
    /// Removes every entry up to `through`, which must be a stored entry
    /// with a checkpoint, and the checkpoints before it, in one
    /// transaction; that entry becomes the base. Returns the entries removed.
    /// [`StoreError::Refused`] if `through` is not a checkpointed entry.
    async fn audit_prune(&self, through: u64) -> StoreResult<u64>;
    /// Audit entries matching a query, oldest first, each with its whole
    /// hash and the previous one (see [`audit::fill`]).
    async fn audit_entries(&self, q: &AuditQuery) -> StoreResult<Vec<keyward_core::audit::AuditEntry>>;
    /// Up to `limit` consecutive entries from `from_seq` on, hashes filled
    /// in as by [`Store::audit_entries`], for a walk through the whole log
    /// (archiving): a backend may read them faster.
    async fn audit_page(&self, from_seq: u64, limit: u64) -> StoreResult<Vec<keyward_core::audit::AuditEntry>> {
        self.audit_entries(&AuditQuery { from_seq: Some(from_seq), limit, ..Default::default() }).await
    }
    /// The same entries as stored, strings by id and hashes as kept
    /// (whole or tag: see [`audit`]), for verification.
    async fn audit_rows(&self, from_seq: u64, limit: u64) -> StoreResult<AuditRows>;
    /// Every checkpoint, oldest first.
    async fn audit_checkpoints(&self) -> StoreResult<Vec<keyward_core::audit::Checkpoint>>;
    /// A value of the `meta` table (`audit_verified`: the checkpoint the
    /// last verification reached).
    async fn meta(&self, name: &str) -> StoreResult<Option<String>>;
    /// Sets a value of the `meta` table (not the seal record's).
    async fn put_meta(&self, name: &str, value: &str) -> StoreResult<()>;

    /// Adds a namespace; [`StoreError::Conflict`] if it exists.
    async fn insert_namespace(&self, ns: &NamespaceRecord) -> StoreResult<()>;
    /// Every namespace.
    async fn list_namespaces(&self) -> StoreResult<Vec<NamespaceRecord>>;
}
