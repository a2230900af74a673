//! Access keys as verification sees them, and the in-memory index it reads:
//! no disk on the hot path. An entry is built from its stored row once, with
//! the row's MAC checked then; live state (rate limiter, last use) lives on
//! the entry.

use crate::error::{Error, Result};
use crate::seal::Unsealed;
use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use keyward_core::decision::DenyReason;
use keyward_core::policy::{KeyPolicy, KeyState};
use keyward_core::rate::RateSpec;
use keyward_store::KeyRecord;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The per-key GCRA limiter.
pub(super) type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The bytes a key row's MAC covers: every field that decides what the key
/// may do. Length-prefixed, so no two rows share an encoding. Rows written
/// since the key ledger (see [`super::ledger`]) carry the `v2` label, so a
/// row of either kind tells whether a ledger head must exist.
pub(crate) fn mac_input(r: &KeyRecord) -> Vec<u8> {
    mac_input_labelled(r, b"keyward/v2/access-key-row")
}

/// [`mac_input`] of a row written before the key ledger existed.
pub(crate) fn mac_input_v1(r: &KeyRecord) -> Vec<u8> {
    mac_input_labelled(r, b"keyward/v1/access-key-row")
}

fn mac_input_labelled(r: &KeyRecord, label: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + r.policy.len());
    let mut put = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    put(label);
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
pub(crate) struct KeyEntry {
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
    /// Stored lifecycle state.
    pub state: KeyState,
    /// Created (ms).
    pub created_ms: i64,
    /// The row's MAC or content did not check out: refuse with `key_tampered`.
    pub tampered: bool,
    /// Keyed hash of the key (index key).
    pub hash: [u8; 32],
    /// Uses left when loaded or last spent (display only: the store is the authority).
    pub uses_remaining: AtomicI64,
    /// The rate limiter, if the key has a rate (shared with the entry it
    /// replaces while the rate stays the same, so a change does not refill it).
    pub limiter: Option<Arc<Limiter>>,
    /// Last use (ms), 0 if never.
    pub last_used_ms: AtomicI64,
    /// Last client address.
    pub last_used_ip: Mutex<Option<IpAddr>>,
    /// Last use not yet written to the store.
    pub dirty: AtomicBool,
    /// When the key reaches its maximum age (its own, or the server's
    /// default for keyward's keys), if it has one.
    pub aged_ms: Option<i64>,
}

/// A limiter for `spec`.
pub(super) fn limiter(spec: &RateSpec) -> Option<Limiter> {
    let burst = NonZeroU32::new(spec.burst)?;
    let quota = Quota::with_period(Duration::from_nanos(spec.interval_ns().max(1)))?.allow_burst(burst);
    Some(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
}

impl KeyEntry {
    /// Builds an entry from a stored row, checking its MAC.
    pub(crate) fn from_record(r: &KeyRecord, unsealed: &Unsealed) -> Self {
        Self::from_checked(r, unsealed, true)
    }

    /// [`KeyEntry::from_record`]; `ledger_ok` false marks it tampered
    /// whatever its MAC says (the ledger does not hold).
    fn from_checked(r: &KeyRecord, unsealed: &Unsealed, ledger_ok: bool) -> Self {
        let mac_ok = ledger_ok && unsealed.verify_row_mac(&mac_input(r), &r.mac);
        let policy: Option<KeyPolicy> = serde_json::from_str(&r.policy).ok();
        let state = KeyState::parse(&r.state);
        let mut hash = [0u8; 32];
        if r.hash.len() == 32 {
            hash.copy_from_slice(&r.hash);
        }
        let tampered = !mac_ok || policy.is_none() || state.is_none() || r.hash.len() != 32;
        let policy = policy.unwrap_or_default();
        let limiter = policy.rate.as_ref().and_then(limiter).map(Arc::new);
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
            aged_ms: None,
        }
    }

    /// Sets when the key reaches its maximum age: its own, else
    /// `default_s` for keyward's own keys (platform keys age only by their own).
    pub(crate) fn with_max_age(mut self, default_s: Option<u64>) -> Self {
        let own = self.policy.max_age_s;
        let max = own.or(default_s.filter(|_| self.namespace == super::KEYWARD_NAMESPACE));
        self.aged_ms = max.map(|s| self.created_ms.saturating_add((s.min(i64::MAX as u64 / 1000) as i64) * 1000));
        self
    }

    /// The maximum age that applies (seconds), if any.
    pub(crate) fn max_age_s(&self) -> Option<i64> {
        self.aged_ms.map(|a| (a - self.created_ms) / 1000)
    }

    /// The state to show and enforce at `now_ms`.
    pub(crate) fn effective_state(&self, now_ms: i64) -> KeyState {
        self.policy.state_at(self.state, now_ms, self.aged_ms)
    }

    /// Integrity and lifecycle: refuses a row that failed its MAC and a key
    /// in any state but active (`key_tampered`, `key_revoked`, …).
    pub(crate) fn check_identity(&self, now_ms: i64) -> Result<()> {
        if self.tampered {
            return Err(Error::new(
                DenyReason::KeyTampered,
                "this key's stored record failed its integrity check; it is refused",
            ));
        }
        match self.effective_state(now_ms).denial() {
            Some((reason, _)) if self.past_max_age(now_ms) => Err(Error::new(
                reason,
                format!("this key is past its maximum age; roll it (keyward key roll {}) before it is due", self.id),
            )),
            Some((reason, _)) if self.state == KeyState::Disabled && self.policy.awaiting_approval.is_some() => {
                Err(Error::new(
                    reason,
                    format!(
                        "this key is disabled until approval {} is given (keyward approvals show {})",
                        self.policy.awaiting_approval.as_deref().unwrap_or_default(),
                        self.policy.awaiting_approval.as_deref().unwrap_or_default()
                    ),
                ))
            }
            Some((reason, _)) if self.state == KeyState::Disabled && !self.policy.frozen_by.is_empty() => {
                Err(Error::new(
                    reason,
                    format!("this key is disabled: exchange account {} is frozen", self.policy.frozen_by.join(", ")),
                ))
            }
            Some((reason, why)) => Err(Error::new(reason, why)),
            None => Ok(()),
        }
    }

    /// True when the key may be rolled: active, or expired by its maximum
    /// age only (rolling is how such a key is replaced; the old one stays
    /// refused), never tampered with or rolled already.
    pub(crate) fn rollable(&self, now_ms: i64) -> bool {
        let state = self.effective_state(now_ms);
        !self.tampered
            && self.policy.rolled_to.is_none()
            && (state == KeyState::Active || (state == KeyState::Expired && self.past_max_age(now_ms)))
    }

    /// True when the key is expired by its maximum age, not its expiry.
    fn past_max_age(&self, now_ms: i64) -> bool {
        self.aged_ms.is_some_and(|a| now_ms >= a) && self.policy.expires_ms.is_none_or(|e| now_ms < e)
    }

    /// The state as shown: `tampered` for a row that failed its MAC.
    pub(crate) fn shown_state(&self, now_ms: i64) -> &'static str {
        if self.tampered { "tampered" } else { self.effective_state(now_ms).as_str() }
    }

    /// Notes a use (in memory; a background task writes it to the store).
    pub(crate) fn note_use(&self, now_ms: i64, ip: IpAddr) {
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
        if let Ok(mut g) = self.last_used_ip.lock() {
            *g = Some(ip);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn take_runtime_from(&mut self, old: &KeyEntry) {
        if self.policy.rate == old.policy.rate {
            self.limiter = old.limiter.clone();
        }
        self.last_used_ms.store(old.last_used_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        if let (Ok(mut mine), Ok(theirs)) = (self.last_used_ip.lock(), old.last_used_ip.lock()) {
            *mine = *theirs;
        }
        self.dirty.store(old.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Hashes a map key that is already a uniformly random HMAC output by
/// taking its first eight bytes: no SipHash on the hot path. Callers cannot
/// steer these values (they are HMACs under the secret pepper), so there is
/// no hash-flooding to defend against.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PrehashedKey(u64);

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
pub(crate) struct KeyIndex {
    by_hash: ByHash,
    by_id: HashMap<String, Arc<KeyEntry>>,
    /// The server's `--key-max-age` (seconds) for keys without their own.
    default_max_age_s: Option<u64>,
}

impl KeyIndex {
    /// Builds the index from stored rows; a key whose part of the key
    /// ledger did not hold (`holds` false) is refused as tampered.
    pub(crate) fn load(
        records: &[KeyRecord],
        unsealed: &Unsealed,
        holds: impl Fn(&str) -> bool,
        default_max_age_s: Option<u64>,
    ) -> Self {
        let mut idx = Self { default_max_age_s, ..Self::default() };
        for r in records {
            idx.upsert(KeyEntry::from_checked(r, unsealed, holds(&r.id)));
        }
        idx
    }

    /// The index over `records` as reread from the store, each entry
    /// taking over the live state (limiter, last use) of its entry here.
    pub(crate) fn reloaded(&self, records: &[KeyRecord], unsealed: &Unsealed, holds: impl Fn(&str) -> bool) -> Self {
        let mut idx = Self { default_max_age_s: self.default_max_age_s, ..Self::default() };
        for r in records {
            let mut e = KeyEntry::from_checked(r, unsealed, holds(&r.id)).with_max_age(self.default_max_age_s);
            if let Some(old) = self.by_id.get(&e.id) {
                e.take_runtime_from(old);
            }
            let e = Arc::new(e);
            idx.by_hash.insert(e.hash, e.clone());
            idx.by_id.insert(e.id.clone(), e);
        }
        idx
    }

    /// Adds or replaces an entry. A replaced entry hands over its last use.
    pub(crate) fn upsert(&mut self, e: KeyEntry) -> Arc<KeyEntry> {
        let mut e = e.with_max_age(self.default_max_age_s);
        if let Some(old) = self.by_id.get(&e.id) {
            e.take_runtime_from(old);
        }
        let e = Arc::new(e);
        self.by_hash.insert(e.hash, e.clone());
        self.by_id.insert(e.id.clone(), e.clone());
        e
    }

    /// Looks a key up by its keyed hash.
    pub(crate) fn by_hash(&self, h: &[u8; 32]) -> Option<Arc<KeyEntry>> {
        self.by_hash.get(h).cloned()
    }

    /// Looks a key up by id.
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.by_id.get(id).cloned()
    }

    /// Every entry, oldest first.
    pub(crate) fn all(&self) -> Vec<Arc<KeyEntry>> {
        let mut v: Vec<_> = self.by_id.values().cloned().collect();
        v.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        v
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}
