//! Access keys as the server holds them: the stored row, its policy, its MAC,
//! and the in-memory index that verification reads (no disk on the hot path).

use ipnet::IpNet;
use keyward_core::keyring::Keyring;
use keyward_core::scope::Scope;
use keyward_store::KeyRecord;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The namespace of keyward's own keys; keys of any other namespace never
/// authenticate to keyward's API.
pub const KEYWARD_NAMESPACE: &str = "keyward";

/// What a key may do and from where; stored as JSON and covered by the row MAC.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Scopes (default deny).
    pub scopes: Vec<Scope>,
    /// Client networks allowed; empty means any address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<IpNet>,
    /// Expiry (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// Lifecycle states, one vocabulary everywhere (CLI, API, audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Not valid yet.
    Pending,
    /// In use.
    Active,
    /// Switched off; may be enabled again.
    Disabled,
    /// Past its expiry.
    Expired,
    /// Replaced by a roll and past its grace period.
    Rolled,
    /// Revoked for good.
    Revoked,
    /// Reported compromised.
    Compromised,
    /// Removed.
    Destroyed,
}

impl KeyState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Rolled => "rolled",
            KeyState::Revoked => "revoked",
            KeyState::Compromised => "compromised",
            KeyState::Destroyed => "destroyed",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// The bytes a key row's MAC covers: every field that decides what the key
/// may do. Length-prefixed, so no two rows share an encoding.
pub fn mac_input(r: &KeyRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + r.policy.len());
    let mut put = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    put(b"keyward/v1/access-key-row");
    put(r.id.as_bytes());
    put(&r.hash);
    put(r.name.as_bytes());
    put(r.owner.as_deref().unwrap_or("\u{0}none").as_bytes());
    put(r.namespace.as_bytes());
    put(r.policy.as_bytes());
    put(r.state.as_bytes());
    put(&r.created_ms.to_be_bytes());
    out
}

/// A key as verification sees it.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Policy.
    pub policy: KeyPolicy,
    /// Lifecycle state.
    pub state: KeyState,
    /// Created (ms).
    pub created_ms: i64,
    /// The row's MAC or content did not check out: refuse with `key_tampered`.
    pub tampered: bool,
    /// Keyed hash of the key (index key).
    pub hash: [u8; 32],
}

impl KeyEntry {
    /// Builds an entry from a stored row, checking its MAC.
    pub fn from_record(r: &KeyRecord, ring: &Keyring) -> Self {
        let mac_ok = ring.verify_row_mac(&mac_input(r), &r.mac);
        let policy: Option<KeyPolicy> = serde_json::from_str(&r.policy).ok();
        let state = KeyState::parse(&r.state);
        let mut hash = [0u8; 32];
        if r.hash.len() == 32 {
            hash.copy_from_slice(&r.hash);
        }
        let tampered = !mac_ok || policy.is_none() || state.is_none() || r.hash.len() != 32;
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            namespace: r.namespace.clone(),
            policy: policy.unwrap_or_default(),
            state: state.unwrap_or(KeyState::Revoked),
            created_ms: r.created_ms,
            tampered,
            hash,
        }
    }
}

/// The in-memory index: by keyed hash (verification) and by id (management).
#[derive(Debug, Default)]
pub struct KeyIndex {
    by_hash: HashMap<[u8; 32], Arc<KeyEntry>>,
    by_id: HashMap<String, Arc<KeyEntry>>,
}

impl KeyIndex {
    /// Builds the index from stored rows.
    pub fn load(records: &[KeyRecord], ring: &Keyring) -> Self {
        let mut idx = Self::default();
        for r in records {
            idx.upsert(KeyEntry::from_record(r, ring));
        }
        idx
    }

    /// Adds or replaces an entry.
    pub fn upsert(&mut self, e: KeyEntry) {
        let e = Arc::new(e);
        self.by_hash.insert(e.hash, e.clone());
        self.by_id.insert(e.id.clone(), e);
    }

    /// Looks a key up by its keyed hash.
    pub fn by_hash(&self, h: &[u8; 32]) -> Option<Arc<KeyEntry>> {
        self.by_hash.get(h).cloned()
    }

    /// Looks a key up by id.
    pub fn by_id(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.by_id.get(id).cloned()
    }

    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<Arc<KeyEntry>> {
        let mut v: Vec<_> = self.by_id.values().cloned().collect();
        v.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        v
    }
}
