//! The audit log as the store reads it: queries, and whole pages of rows
//! for walking the log fast.

use crate::audit_strings;

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
    /// The stored hash.
    pub hash: [u8; 32],
}

impl AuditRows {
    /// A row's nine hashed fields (`request_id, key_id, ip, action, target,
    /// class, decision, code, detail`), borrowed.
    pub fn fields<'a>(&'a self, r: &'a AuditRow) -> [&'a str; 9] {
        let s = |i: usize| self.strings.get(r.strings[i] as usize).map_or("", String::as_str);
        [&r.request_id, s(0), s(1), s(2), s(3), s(4), s(5), s(6), &r.detail]
    }

    /// Rows from whole entries (for a backend without a faster path).
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
            let mut hash = [0u8; 32];
            if e.hash.len() == 32 {
                hash.copy_from_slice(&e.hash);
            }
            out.rows.push(AuditRow {
                seq: e.seq,
                time_ms: e.time_ms,
                request_id: e.request_id,
                strings,
                detail: e.detail,
                hash,
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
