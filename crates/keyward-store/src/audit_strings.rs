//! The audit log's strings, each stored once: an entry names its key id,
//! address, action, target, class, decision and code by the id of a row of
//! `audit_strings`. Those seven repeat from entry to entry (a bot reads the
//! same secret from the same address), so an entry is about 80 bytes on
//! disk instead of 180. The request id and the detail stay in the entry.
//!
//! Both backends keep a bounded cache of the ids they wrote or read; the
//! database stays the authority. An id learnt inside a transaction is
//! cached only once the transaction committed, so a rolled-back string is
//! never named by a later entry.

use keyward_core::audit::AuditEntry;
use std::collections::HashMap;
use std::sync::Mutex;

/// Cached strings, each way, before the cache starts over.
const CAP: usize = 65_536;
/// The most strings one read by id adds to the cache ([`Strings::learn_looked_up`]).
const LOOKUP_KEPT: usize = 1_024;

/// The string fields of an entry, in column order.
pub(crate) const FIELDS: [&str; 7] = ["key_id", "ip", "action", "target", "class", "decision", "code"];

/// The seven dictionary fields of an entry, in [`FIELDS`] order.
pub(crate) fn fields(e: &AuditEntry) -> [&str; 7] {
    [&e.key_id, &e.ip, &e.action, &e.target, &e.class, &e.decision, &e.code]
}

/// Sets the seven dictionary fields of an entry, in [`FIELDS`] order.
pub(crate) fn set_fields(e: &mut AuditEntry, values: [String; 7]) {
    let [key_id, ip, action, target, class, decision, code] = values;
    (e.key_id, e.ip, e.action, e.target, e.class, e.decision, e.code) =
        (key_id, ip, action, target, class, decision, code);
}

/// A map keyed by an entry's strings. Requests choose some of them (a
/// target, an address), so the hash is seeded at random per map, as
/// hashbrown's own default is; SipHash, std's, took a tenth of the audit
/// writer's time at seven lookups a field.
pub(crate) type StrMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// The cache, both ways.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    ids: Mutex<StrMap<String, i64>>,
    values: Mutex<IdMap<String>>,
}

impl Strings {
    /// The id of `value`, if cached.
    pub(crate) fn id(&self, value: &str) -> Option<i64> {
        self.ids.lock().ok()?.get(value).copied()
    }

    /// The ids of the distinct `values` of a batch, with one lock: those
    /// cached, and the values that are not (each once).
    pub(crate) fn ids_of<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> (StrMap<&'a str, i64>, Vec<&'a str>) {
        let mut found = StrMap::default();
        let mut missing = Vec::new();
        let Ok(ids) = self.ids.lock() else { return (found, values.into_iter().collect()) };
        for v in values {
            if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(v) {
                match ids.get(v) {
                    Some(id) => {
                        slot.insert(*id);
                    }
                    None => {
                        slot.insert(0);
                        missing.push(v);
                    }
                }
            }
        }
        found.retain(|_, id| *id != 0);
        (found, missing)
    }

    /// The values of `ids` that are cached (one lock for all), and the ids that are not.
    pub(crate) fn values(&self, ids: impl IntoIterator<Item = i64>) -> (IdMap<String>, Vec<i64>) {
        let mut found: IdMap<String> = IdMap::default();
        let mut missing = std::collections::HashSet::new();
        let Ok(values) = self.values.lock() else { return (found, ids.into_iter().collect()) };
        for id in ids {
            if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(id) {
                match values.get(&id) {
                    Some(v) => {
                        slot.insert(v.clone());
                    }
                    None => {
                        missing.insert(id);
                    }
                }
            }
        }
        (found, missing.into_iter().collect())
    }

    /// Caches the `missing` ids' values as read back into `read`, unless
    /// more than [`LOOKUP_KEPT`] were missing: a read that missed that many
    /// strings is a walk through history (verifying, archiving), whose
    /// strings would only push the writer's working set out of the cache
    /// (and are not copied for it).
    pub(crate) fn learn_looked_up(&self, read: &IdMap<String>, missing: &[i64]) {
        if missing.len() <= LOOKUP_KEPT {
            self.learn(missing.iter().filter_map(|id| read.get(id).map(|v| (v.clone(), *id))));
        }
    }

    /// Caches committed pairs.
    pub(crate) fn learn(&self, pairs: impl IntoIterator<Item = (String, i64)>) {
        let (Ok(mut ids), Ok(mut values)) = (self.ids.lock(), self.values.lock()) else { return };
        for (value, id) in pairs {
            if ids.len() >= CAP {
                ids.clear();
            }
            if values.len() >= CAP {
                values.clear();
            }
            values.insert(id, value.clone());
            ids.insert(value, id);
        }
    }
}

/// A page's own string table: the ids it names become indices into
/// `strings`, and an id with no value names the empty string at its end.
pub(crate) struct Table {
    pub(crate) strings: Vec<String>,
    index: IdMap<u32>,
}

impl Table {
    pub(crate) fn new(values: IdMap<String>) -> Self {
        let mut strings: Vec<String> = Vec::with_capacity(values.len() + 1);
        let mut index: IdMap<u32> = IdMap::default();
        for (id, v) in values {
            index.insert(id, strings.len() as u32);
            strings.push(v);
        }
        strings.push(String::new());
        Self { strings, index }
    }

    pub(crate) fn at(&self, id: i64) -> u32 {
        self.index.get(&id).copied().unwrap_or(self.strings.len() as u32 - 1)
    }
}

/// A hasher for the dictionary's own integer ids (no attacker picks them):
/// the id itself, spread by a multiply.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i64(&mut self, i: i64) {
        self.0 = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by dictionary ids.
pub(crate) type IdMap<V> = HashMap<i64, V, std::hash::BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` strings `{tag}-{i}`, their ids from `first`.
    fn pairs(n: usize, tag: &str, first: i64) -> Vec<(String, i64)> {
        (0..n).map(|i| (format!("{tag}-{i}"), first + i as i64)).collect()
    }

    /// [`Strings::learn_looked_up`] of `pairs` as a read by id returns them.
    fn looked_up(s: &Strings, pairs: Vec<(String, i64)>) {
        let ids: Vec<i64> = pairs.iter().map(|p| p.1).collect();
        s.learn_looked_up(&pairs.into_iter().map(|(v, id)| (id, v)).collect(), &ids);
    }

    #[test]
    fn a_long_walk_does_not_displace_the_working_set() {
        let s = Strings::default();
        s.learn(pairs(10, "hot", 1));
        looked_up(&s, pairs(LOOKUP_KEPT + 1, "history", 100));
        assert_eq!(s.id("history-0"), None, "a walk through history is not cached");
        assert_eq!(s.id("hot-3"), Some(4), "the working set stays");
        assert_eq!(s.values([150]).1, vec![150]);
        looked_up(&s, pairs(LOOKUP_KEPT, "few", 10_000));
        assert_eq!(s.id("few-7"), Some(10_007), "a read that missed a few strings caches them");
        let (found, missing) = s.values([10_007, 5_000]);
        assert_eq!((found.get(&10_007).map(String::as_str), missing), (Some("few-7"), vec![5_000]));
    }
}
