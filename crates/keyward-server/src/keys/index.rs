//! Access keys as verification sees them, and the in-memory index it reads:
//! no disk on the hot path. An entry is built from its stored row once, with
//! the row's MAC checked then; live state (rate limiter, last use) lives on
//! the entry.
//!
//! A million keys fit in a few hundred megabytes: keys with the same policy
//! share one decoded policy, a rate limiter is made at a key's first use,
//! and the two lookups (by keyed hash, by id) are sets of the entries
//! themselves, so no hash or id is kept twice. Loading checks the rows'
//! MACs on every core.

use super::lookup::{ByHash, ByHashKey, ByIdKey, FastHash};
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
    pub id: Box<str>,
    /// Name.
    pub name: Box<str>,
    /// Owner.
    pub owner: Option<Box<str>>,
    /// Namespace (one copy for every key of it).
    pub namespace: Arc<str>,
    /// Policy (shared by the keys stored with the same one).
    pub policy: Arc<KeyPolicy>,
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
    /// The rate limiter, made at first use if the key has a rate (shared
    /// with the entry it replaces while the rate stays the same, so a change
    /// does not refill it). See [`KeyEntry::limiter`].
    limiter: std::sync::OnceLock<Option<Arc<Limiter>>>,
    /// The last use, once there is one (see [`LastUse`]).
    last_use: std::sync::OnceLock<Box<LastUse>>,
    /// When the key reaches its maximum age (its own, or the server's
    /// default for keyward's keys); [`NEVER`] if it has none. See [`KeyEntry::aged_ms`].
    aged_ms: i64,
}

/// No maximum age.
const NEVER: i64 = i64::MAX;

/// A key's last use, kept apart from the entry once the key has one: most
/// keys of a platform with a million sit idle, and need no room for it
/// (an entry then fits a smaller allocation).
#[derive(Debug, Default)]
struct LastUse {
    /// When (ms).
    ms: AtomicI64,
    /// From where.
    ip: Mutex<Option<IpAddr>>,
    /// Not yet written to the store.
    dirty: AtomicBool,
}

impl LastUse {
    fn new(ms: i64, ip: Option<IpAddr>, dirty: bool) -> Box<Self> {
        Box::new(Self { ms: AtomicI64::new(ms), ip: Mutex::new(ip), dirty: AtomicBool::new(dirty) })
    }

    fn copy(&self) -> Box<Self> {
        Self::new(
            self.ms.load(Ordering::Relaxed),
            self.ip.lock().ok().and_then(|g| *g),
            self.dirty.load(Ordering::Relaxed),
        )
    }
}

/// A limiter for `spec`.
pub(super) fn limiter(spec: &RateSpec) -> Option<Limiter> {
    let burst = NonZeroU32::new(spec.burst)?;
    let quota = Quota::with_period(Duration::from_nanos(spec.interval_ns().max(1)))?.allow_burst(burst);
    Some(RateLimiter::direct_with_clock(quota, clock().clone()).with_middleware::<StateInformationMiddleware>())
}

/// The clock of every limiter. One, made once: making a clock asks the CPU
/// about its time-stamp counter (CPUID), which a virtual machine traps;
/// measured at about 15 µs, it was most of the cost of a key's first use
/// (16 µs against 0.7 µs a verification at a million keys).
pub(super) fn clock() -> &'static DefaultClock {
    static CLOCK: std::sync::OnceLock<DefaultClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(DefaultClock::default)
}

/// Decoded policies by their stored text, and namespaces: keys created
/// alike share one of each.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    policies: HashMap<String, Arc<KeyPolicy>, FastHash>,
    namespaces: HashMap<String, Arc<str>, FastHash>,
}

impl Policies {
    /// The policy stored as `text`, decoded once (`None`: it does not decode).
    fn get(&mut self, text: &str) -> Option<Arc<KeyPolicy>> {
        if let Some(p) = self.policies.get(text) {
            return Some(p.clone());
        }
        let p = Arc::new(serde_json::from_str::<KeyPolicy>(text).ok()?);
        self.policies.insert(text.to_string(), p.clone());
        Some(p)
    }

    /// The namespace `name`, one copy for all.
    fn namespace(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.namespaces.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.namespaces.insert(name.to_string(), n.clone());
        n
    }
}

impl KeyEntry {
    /// Builds an entry from a stored row, checking its MAC.
    pub(crate) fn from_record(r: &KeyRecord, unsealed: &Unsealed) -> Self {
        let mac_ok = unsealed.verify_row_mac(&mac_input(r), &r.mac);
        Self::from_checked(r, mac_ok, &mut Policies::default())
    }

    /// [`KeyEntry::from_record`] with the MAC (and the key ledger's part)
    /// checked already: `checked` false marks it tampered.
    fn from_checked(r: &KeyRecord, checked: bool, policies: &mut Policies) -> Self {
        let mac_ok = checked;
        let policy = policies.get(&r.policy);
        let state = KeyState::parse(&r.state);
        let mut hash = [0u8; 32];
        if r.hash.len() == 32 {
            hash.copy_from_slice(&r.hash);
        }
        let tampered = !mac_ok || policy.is_none() || state.is_none() || r.hash.len() != 32;
        let policy = policy.unwrap_or_default();
        let last_ip = r.last_used_ip.as_deref().and_then(|s| s.parse().ok());
        Self {
            id: r.id.as_str().into(),
            name: r.name.as_str().into(),
            owner: r.owner.as_deref().map(Into::into),
            namespace: policies.namespace(&r.namespace),
            policy,
            state: state.unwrap_or(KeyState::Revoked),
            created_ms: r.created_ms,
            tampered,
            hash,
            uses_remaining: AtomicI64::new(r.uses_remaining.unwrap_or(-1)),
            limiter: std::sync::OnceLock::new(),
            last_use: match (r.last_used_ms, last_ip) {
                (None, None) => std::sync::OnceLock::new(),
                (ms, ip) => std::sync::OnceLock::from(LastUse::new(ms.unwrap_or(0), ip, false)),
            },
            aged_ms: NEVER,
        }
    }

    /// This entry refused as tampered (its part of the key ledger did not hold).
    fn as_tampered(&self) -> KeyEntry {
        KeyEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            owner: self.owner.clone(),
            namespace: self.namespace.clone(),
            policy: self.policy.clone(),
            state: self.state,
            created_ms: self.created_ms,
            tampered: true,
            hash: self.hash,
            uses_remaining: AtomicI64::new(self.uses_remaining.load(Ordering::Relaxed)),
            limiter: std::sync::OnceLock::new(),
            last_use: self.last_use.get().map(|u| std::sync::OnceLock::from(u.copy())).unwrap_or_default(),
            aged_ms: self.aged_ms,
        }
    }

    /// The key's rate limiter, if it has a rate (made at its first use).
    pub(crate) fn limiter(&self) -> Option<&Arc<Limiter>> {
        self.limiter.get_or_init(|| self.policy.rate.as_ref().and_then(limiter).map(Arc::new)).as_ref()
    }

    /// Sets when the key reaches its maximum age: its own, else
    /// `default_s` for keyward's own keys (platform keys age only by their own).
    pub(crate) fn with_max_age(mut self, default_s: Option<u64>) -> Self {
        let own = self.policy.max_age_s;
        let max = own.or(default_s.filter(|_| &*self.namespace == super::KEYWARD_NAMESPACE));
        self.aged_ms = max
            .map(|s| self.created_ms.saturating_add((s.min(i64::MAX as u64 / 1000) as i64) * 1000).min(NEVER - 1))
            .unwrap_or(NEVER);
        self
    }

    /// When the key reaches its maximum age, if it has one.
    pub(crate) fn aged_ms(&self) -> Option<i64> {
        (self.aged_ms != NEVER).then_some(self.aged_ms)
    }

    /// The maximum age that applies (seconds), if any.
    pub(crate) fn max_age_s(&self) -> Option<i64> {
        self.aged_ms().map(|a| (a - self.created_ms) / 1000)
    }

    /// The last use (ms), 0 if never.
    pub(crate) fn last_used_ms(&self) -> i64 {
        self.last_use.get().map_or(0, |u| u.ms.load(Ordering::Relaxed))
    }

    /// The address of the last use.
    pub(crate) fn last_used_ip(&self) -> Option<IpAddr> {
        self.last_use.get().and_then(|u| u.ip.lock().ok().and_then(|g| *g))
    }

    /// True (once) when a use was noted since the last call: it is to be written.
    pub(crate) fn take_dirty(&self) -> bool {
        self.last_use.get().is_some_and(|u| u.dirty.swap(false, Ordering::Relaxed))
    }

    /// The last use is still to be written (writing it failed).
    pub(crate) fn still_dirty(&self) {
        if let Some(u) = self.last_use.get() {
            u.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The state to show and enforce at `now_ms`.
    pub(crate) fn effective_state(&self, now_ms: i64) -> KeyState {
        self.policy.state_at(self.state, now_ms, self.aged_ms())
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
        now_ms >= self.aged_ms && self.policy.expires_ms.is_none_or(|e| now_ms < e)
    }

    /// The state as shown: `tampered` for a row that failed its MAC.
    pub(crate) fn shown_state(&self, now_ms: i64) -> &'static str {
        if self.tampered { "tampered" } else { self.effective_state(now_ms).as_str() }
    }

    /// Notes a use (in memory; a background task writes it to the store).
    pub(crate) fn note_use(&self, now_ms: i64, ip: IpAddr) {
        let u = self.last_use.get_or_init(Box::default);
        u.ms.store(now_ms, Ordering::Relaxed);
        if let Ok(mut g) = u.ip.lock() {
            *g = Some(ip);
        }
        u.dirty.store(true, Ordering::Relaxed);
    }

    fn take_runtime_from(&mut self, old: &KeyEntry) {
        if self.policy.rate == old.policy.rate
            && let Some(l) = old.limiter.get()
        {
            let _ = self.limiter.set(l.clone());
        }
        if let Some(u) = old.last_use.get() {
            self.last_use = std::sync::OnceLock::from(u.copy());
        }
    }
}

/// The in-memory index: by keyed hash (verification) and by id (management).
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    by_hash: ByHash,
    by_id: std::collections::HashSet<ByIdKey, FastHash>,
    /// The server's `--key-max-age` (seconds) for keys without their own.
    default_max_age_s: Option<u64>,
}

/// The entries of `records`, each row's MAC checked on every core; a key
/// whose part of the key ledger did not hold (`holds` false) is tampered.
/// Two rows with one keyed hash (one secret for two keys: only a write to
/// the database makes that) are both refused.
fn entries(records: &[KeyRecord], unsealed: &Unsealed, holds: &(dyn Fn(&str) -> bool + Sync)) -> Vec<KeyEntry> {
    let checked = parallel(records, |r| holds(&r.id) && unsealed.verify_row_mac(&mac_input(r), &r.mac));
    let mut seen: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::with_capacity(records.len());
    let mut shared = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(first) = seen.insert(&r.hash, i) {
            shared.extend([first, i]);
        }
    }
    if !shared.is_empty() {
        let ids: Vec<&str> = shared.iter().map(|i| records[*i].id.as_str()).collect();
        tracing::error!(keys = ?ids, "access keys share one keyed hash (the database was written to): they are refused");
    }
    let mut policies = Policies::default();
    records
        .iter()
        .zip(checked)
        .enumerate()
        .map(|(i, (r, ok))| KeyEntry::from_checked(r, ok && !shared.contains(&i), &mut policies))
        .collect()
}

/// `f` over `items` on every core, in order.
pub(crate) fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if items.len() < 4096 || threads < 2 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

impl KeyIndex {
    /// An empty index for keys loaded a page at a time ([`KeyIndex::add`]).
    pub(crate) fn new(default_max_age_s: Option<u64>, expected: usize) -> Self {
        let mut idx = Self { default_max_age_s, ..Self::default() };
        idx.by_hash.reserve(expected);
        idx.by_id.reserve(expected);
        idx
    }

    /// Adds a page of stored rows (their MACs checked on every core).
    pub(crate) fn add(&mut self, records: &[KeyRecord], unsealed: &Unsealed, policies: &mut Policies) {
        let checked = parallel(records, |r| unsealed.verify_row_mac(&mac_input(r), &r.mac));
        for (r, ok) in records.iter().zip(checked) {
            // Two rows with one keyed hash (one secret for two keys: only a
            // write to the database makes that) are both refused.
            let dup = self.by_hash.get(r.hash.as_slice()).filter(|o| *o.0.id != *r.id).map(|o| o.0.clone());
            if let Some(other) = &dup {
                tracing::error!(key_id = %r.id, other = %other.id, "two access keys share a keyed hash (the database was written to): both are refused");
                self.upsert(other.as_tampered());
            }
            self.upsert(KeyEntry::from_checked(r, ok && dup.is_none(), policies));
        }
    }

    /// Refuses every key `broken` names (its part of the key ledger did not hold).
    pub(crate) fn mark_tampered(&mut self, broken: impl Fn(&str) -> bool) -> Vec<String> {
        let hit: Vec<Arc<KeyEntry>> = self.by_id.iter().filter(|k| broken(&k.0.id)).map(|k| k.0.clone()).collect();
        hit.iter().map(|e| self.upsert(e.as_tampered()).id.to_string()).collect()
    }

    /// Builds the index from stored rows; a key whose part of the key
    /// ledger did not hold (`holds` false) is refused as tampered.
    pub(crate) fn load(
        records: &[KeyRecord],
        unsealed: &Unsealed,
        holds: impl Fn(&str) -> bool + Sync,
        default_max_age_s: Option<u64>,
    ) -> Self {
        let mut idx = Self { default_max_age_s, ..Self::default() };
        idx.by_hash.reserve(records.len());
        idx.by_id.reserve(records.len());
        for e in entries(records, unsealed, &holds) {
            idx.upsert(e);
        }
        idx
    }

    /// The index over `records` as reread from the store, each entry
    /// taking over the live state (limiter, last use) of its entry here.
    pub(crate) fn reloaded(
        &self,
        records: &[KeyRecord],
        unsealed: &Unsealed,
        holds: impl Fn(&str) -> bool + Sync,
    ) -> Self {
        let mut idx = Self { default_max_age_s: self.default_max_age_s, ..Self::default() };
        for e in entries(records, unsealed, &holds) {
            let mut e = e.with_max_age(self.default_max_age_s);
            if let Some(old) = self.by_id.get(&*e.id) {
                e.take_runtime_from(&old.0);
            }
            let e = Arc::new(e);
            idx.by_hash.replace(ByHashKey(e.clone()));
            idx.by_id.replace(ByIdKey(e));
        }
        idx
    }

    /// Adds or replaces an entry. A replaced entry hands over its last use.
    pub(crate) fn upsert(&mut self, e: KeyEntry) -> Arc<KeyEntry> {
        let mut e = e.with_max_age(self.default_max_age_s);
        if let Some(old) = self.by_id.get(&*e.id) {
            e.take_runtime_from(&old.0);
        }
        let e = Arc::new(e);
        // A row whose hash changed (never: the hash is the key's) would leave its old entry behind.
        if let Some(old) = self.by_id.replace(ByIdKey(e.clone()))
            && old.0.hash != e.hash
        {
            self.by_hash.remove(&old.0.hash);
        }
        self.by_hash.replace(ByHashKey(e.clone()));
        e
    }

    /// Looks a key up by its keyed hash.
    pub(crate) fn by_hash(&self, h: &[u8; 32]) -> Option<Arc<KeyEntry>> {
        self.by_hash.get(h).map(|k| k.0.clone())
    }

    /// Looks a key up by id.
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.by_id.get(id).map(|k| k.0.clone())
    }

    /// Every entry `keep` keeps, in no order.
    pub(crate) fn filtered(&self, keep: impl Fn(&KeyEntry) -> bool) -> Vec<Arc<KeyEntry>> {
        self.by_id.iter().filter(|k| keep(&k.0)).map(|k| k.0.clone()).collect()
    }

    /// Every entry, in no order.
    pub(crate) fn all(&self) -> Vec<Arc<KeyEntry>> {
        self.by_id.iter().map(|k| k.0.clone()).collect()
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}
