//! The audit log as the store reads it: queries, and whole pages of rows
//! for walking the log fast.
//!
//! Hashes are kept sparsely. Every entry keeps the first [`TAG`] bytes of
//! its hash: enough to name the entry an edit broke, at a quarter of the
//! size. The whole hash is kept on every [`HASH_EVERY`]th entry and on the
//! last entry of each appended batch (so the head's hash is always whole),
//! and in every checkpoint. The chain itself is unchanged: each hash covers
//! the whole previous hash, and a reader recomputes the hashes it was not
//! given from the nearest whole one ([`fill`]). Verification compares each
//! recomputed hash with what is stored, tag or whole, and the signed
//! checkpoints with the recomputed chain: the tags only say where a break
//! is, the checkpoints say that there is none.

use crate::{Store, StoreError, StoreResult, audit_strings};
use keyward_core::audit::{AuditEntry, entry_hash, genesis};

/// Consecutive audit entries as stored, for walking the whole log fast:
/// each names its seven strings by their index in `strings` (see
/// [`AuditRows::fields`]); no string is copied per entry.
#[derive(Debug, Clone, Default)]
pub struct AuditRows {
    /// The entries, in sequence.
    pub rows: Vec<AuditRow>,
    /// The strings they name.
    pub strings: Vec<String>,
}

/// One entry of [`AuditRows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Sequence number.
    pub seq: u64,
    /// Time (ms).
    pub time_ms: i64,
    /// Request id.
    pub request_id: String,
    /// Indices (in [`AuditRows::strings`]) of key id, address, action,
    /// target, class, decision and code.
    pub strings: [u32; 7],
    /// Detail (JSON text).
    pub detail: String,
    /// The stored hash: whole, or its tag.
    pub hash: StoredHash,
}

/// Bytes of an entry's hash every entry keeps.
pub const TAG: usize = 8;
/// Every this many entries (by sequence number) keeps its whole hash.
pub const HASH_EVERY: u64 = 64;

/// What an entry keeps of its hash: `hash` when [`keeps_whole`], else its
/// first [`TAG`] bytes.
pub fn stored_form(hash: &[u8], keeps_whole: bool) -> &[u8] {
    if keeps_whole { hash } else { &hash[..TAG.min(hash.len())] }
}

/// Whether the entry `seq`, last of its batch or not, keeps its whole hash.
pub fn keeps_whole(seq: u64, last_of_batch: bool) -> bool {
    last_of_batch || seq % HASH_EVERY == 0
}

/// An entry's hash as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredHash {
    /// The whole hash.
    Whole([u8; 32]),
    /// Its first [`TAG`] bytes.
    Tag([u8; TAG]),
    /// Neither (the row was damaged): matches no hash.
    Bad,
}

impl StoredHash {
    /// Reads a stored hash column.
    pub fn from_bytes(b: &[u8]) -> Self {
        if let Ok(h) = <[u8; 32]>::try_from(b) {
            StoredHash::Whole(h)
        } else if let Ok(t) = <[u8; TAG]>::try_from(b) {
            StoredHash::Tag(t)
        } else {
            StoredHash::Bad
        }
    }

    /// Whether `hash` (a whole hash) is the one stored.
    pub fn matches(&self, hash: &[u8]) -> bool {
        match self {
            StoredHash::Whole(h) => h.as_slice() == hash,
            StoredHash::Tag(t) => hash.len() == 32 && t.as_slice() == &hash[..TAG],
            StoredHash::Bad => false,
        }
    }

    /// The whole hash, if that is what is stored.
    pub fn whole(&self) -> Option<&[u8; 32]> {
        match self {
            StoredHash::Whole(h) => Some(h),
            _ => None,
        }
    }
}

impl AuditRows {
    /// A row's nine hashed fields (`request_id, key_id, ip, action, target,
    /// class, decision, code, detail`), borrowed.
    pub fn fields<'a>(&'a self, r: &'a AuditRow) -> [&'a str; 9] {
        let s = |i: usize| self.strings.get(r.strings[i] as usize).map_or("", String::as_str);
        [&r.request_id, s(0), s(1), s(2), s(3), s(4), s(5), s(6), &r.detail]
    }

    /// Rows from entries read as stored (their `hash` the stored bytes).
    pub fn from_entries(entries: Vec<keyward_core::audit::AuditEntry>) -> Self {
        let mut out = AuditRows::default();
        let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        for e in entries {
            let mut strings = [0u32; 7];
            for (i, v) in audit_strings::fields(&e).into_iter().enumerate() {
                strings[i] = *index.entry(v.to_string()).or_insert_with(|| {
                    out.strings.push(v.to_string());
                    (out.strings.len() - 1) as u32
                });
            }
            out.rows.push(AuditRow {
                seq: e.seq,
                time_ms: e.time_ms,
                request_id: e.request_id,
                strings,
                detail: e.detail,
                hash: StoredHash::from_bytes(&e.hash),
            });
        }
        out
    }
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// From this sequence number on.
    pub from_seq: Option<u64>,
    /// Not before (ms).
    pub since_ms: Option<i64>,
    /// Not after (ms).
    pub until_ms: Option<i64>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only targets starting with this (an account: `binance-main`).
    pub target_prefix: Option<String>,
    /// Only this decision.
    pub decision: Option<String>,
    /// At most this many, oldest first (or newest first with `newest`).
    pub limit: u64,
    /// The newest `limit` entries (still returned oldest first).
    pub newest: bool,
}

/// The hash of entry `seq`, recomputed from the nearest whole hash at or
/// before it (the base's, or the genesis hash, at the start of the log).
/// Entries missing from the stretch are skipped: verification, not this,
/// says that the log is broken.
pub async fn hash_at<S: Store + ?Sized>(store: &S, seq: u64) -> StoreResult<Vec<u8>> {
    let base = store.audit_base().await?.unwrap_or_else(|| (0, genesis()));
    hash_after(store, &base, seq).await
}

/// [`hash_at`] with the base (its sequence number and hash) already read.
async fn hash_after<S: Store + ?Sized>(store: &S, base: &(u64, Vec<u8>), seq: u64) -> StoreResult<Vec<u8>> {
    let (base_seq, base_hash) = (base.0, &base.1);
    if seq <= base_seq {
        return if seq == base_seq { Ok(base_hash.clone()) } else { Err(StoreError::NotFound) };
    }
    // Try the nearest entry that keeps its whole hash; step further back if
    // that one does not (damaged, or gone).
    let mut from = (seq - seq % HASH_EVERY).max(base_seq + 1);
    loop {
        let page = store.audit_rows(from, seq - from + 1).await?;
        let first = page.rows.first();
        let (mut hash, rest) = match first.and_then(|r| r.hash.whole().filter(|_| r.seq == from)) {
            Some(h) => (h.to_vec(), page.rows.get(1..).unwrap_or_default()),
            None if from == base_seq + 1 => (base_hash.clone(), page.rows.as_slice()),
            None => {
                from = from.saturating_sub(HASH_EVERY).max(base_seq + 1);
                continue;
            }
        };
        for r in rest.iter().take_while(|r| r.seq <= seq) {
            hash = entry_hash(&hash, r.seq, r.time_ms, page.fields(r)).to_vec();
        }
        return Ok(hash);
    }
}

/// Fills in the whole hash and the previous hash of entries read as
/// stored (oldest first): consecutive entries chain onto each other,
/// others start from [`hash_at`] the entry before (the base read once).
pub async fn fill<S: Store + ?Sized>(store: &S, entries: &mut [AuditEntry]) -> StoreResult<()> {
    let mut before: Option<(u64, Vec<u8>)> = None;
    let mut base: Option<(u64, Vec<u8>)> = None;
    for e in entries.iter_mut() {
        e.prev_hash = match before.take() {
            Some((seq, hash)) if seq + 1 == e.seq => hash,
            _ if e.seq <= 1 => genesis(),
            _ => {
                let b = match base.take() {
                    Some(b) => b,
                    None => store.audit_base().await?.unwrap_or_else(|| (0, genesis())),
                };
                let hash = hash_after(store, &b, e.seq - 1).await?;
                base = Some(b);
                hash
            }
        };
        if e.hash.len() != 32 {
            e.hash = e.compute_hash();
        }
        before = Some((e.seq, e.hash.clone()));
    }
    Ok(())
}
