//! Access keys as the server holds them: the stored row, its policy, its MAC,
//! and the in-memory index that verification reads (no disk on the hot path).

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use keyward_core::keyring::Keyring;
use keyward_core::rate::RateSpec;
use keyward_core::scope::Scope;
use keyward_store::KeyRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The per-key GCRA limiter.
pub type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

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
    /// Not valid before (ms); `key_pending` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<i64>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    /// Uses granted at creation (the live count is `uses_remaining`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u64>,
    /// Free-form permissions of a platform key: stored and returned, never interpreted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Set by a roll: the key works until then, and is `rolled` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until_ms: Option<i64>,
    /// Set by a roll: the id of the key that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_to: Option<String>,
    /// Order guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::guards::OrderGuard>,
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

/// A key as verification sees it, with its live state (limiter, last use).
#[derive(Debug)]
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
    /// Uses left when loaded (display only: `consume_use` is the authority).
    pub uses_remaining: AtomicI64,
    /// The rate limiter, if the key has a rate.
    pub limiter: Option<Limiter>,
    /// Last use (ms), 0 if never.
    pub last_used_ms: AtomicI64,
    /// Last client address.
    pub last_used_ip: Mutex<Option<IpAddr>>,
    /// Last use not yet written to the store.
    pub dirty: AtomicBool,
}

/// A limiter for `spec`.
pub fn limiter(spec: &RateSpec) -> Option<Limiter> {
    let burst = NonZeroU32::new(spec.burst)?;
    let quota = Quota::with_period(Duration::from_nanos(spec.interval_ns().max(1)))?.allow_burst(burst);
    Some(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
}

/// What the lifecycle says about a key at `now_ms`.
impl KeyEntry {
    /// The state to show and enforce: stored state, then expiry, not-before and roll grace.
    pub fn effective_state(&self, now_ms: i64) -> KeyState {
        if self.state != KeyState::Active {
            return self.state;
        }
        if self.policy.grace_until_ms.is_some_and(|g| now_ms >= g) {
            return KeyState::Rolled;
        }
        if self.policy.expires_ms.is_some_and(|e| now_ms >= e) {
            return KeyState::Expired;
        }
        if self.policy.not_before_ms.is_some_and(|nb| now_ms < nb) {
            return KeyState::Pending;
        }
        KeyState::Active
    }

    /// Notes a use (in memory; a background task writes it to the store).
    pub fn note_use(&self, now_ms: i64, ip: IpAddr) {
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
        if let Ok(mut g) = self.last_used_ip.lock() {
            *g = Some(ip);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn take_runtime_from(&mut self, old: &KeyEntry) {
        self.last_used_ms.store(old.last_used_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        if let (Ok(mut mine), Ok(theirs)) = (self.last_used_ip.lock(), old.last_used_ip.lock()) {
            *mine = *theirs;
        }
        self.dirty.store(old.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    }
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
        let policy = policy.unwrap_or_default();
        let limiter = policy.rate.as_ref().and_then(limiter);
        let last_ip = r.last_used_ip.as_deref().and_then(|s| s.parse().ok());
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            namespace: r.namespace.clone(),
            policy,
            state: state.unwrap_or(KeyState::Revoked),
            created_ms: r.created_ms,
            tampered,
            hash,
            uses_remaining: AtomicI64::new(r.uses_remaining.unwrap_or(-1)),
            limiter,
            last_used_ms: AtomicI64::new(r.last_used_ms.unwrap_or(0)),
            last_used_ip: Mutex::new(last_ip),
            dirty: AtomicBool::new(false),
        }
    }
}

/// Hashes a map key that is already a uniformly random HMAC output by
/// taking its first eight bytes: no SipHash on the hot path. Callers cannot
/// steer these values (they are HMACs under the secret pepper), so there is
/// no hash-flooding to defend against.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // [u8; 32] hashes as its bytes (after no length prefix for arrays).
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
}

type ByHash = HashMap<[u8; 32], Arc<KeyEntry>, std::hash::BuildHasherDefault<PrehashedKey>>;

/// The in-memory index: by keyed hash (verification) and by id (management).
#[derive(Debug, Default)]
pub struct KeyIndex {
    by_hash: ByHash,
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

    /// Adds or replaces an entry. A replaced entry hands over its last use.
    pub fn upsert(&mut self, mut e: KeyEntry) {
        if let Some(old) = self.by_id.get(&e.id) {
            e.take_runtime_from(old);
        }
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
