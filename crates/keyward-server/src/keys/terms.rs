//! The key ledger's memory of each key row: the first half of the term
//! keyward last wrote for it, by key id, in 32 bytes a key.
//!
//! A change recomputes the full term from the row it replaces and
//! compares its first 16 bytes with the one kept here; the terms are a
//! keyed PRF a database writer cannot compute, so matching 16 bytes of
//! one by chance is a 2^-128 event. Ids of keyward's shape (`key_` and
//! sixteen base62 characters) are kept as the number they spell, in id
//! order in one sorted vector: keys load in id order and new ids sort
//! after the old (their first characters are the time), so both append.
//! Any other id (none is made today) goes to a map beside it.

use std::collections::HashMap;

/// What is kept of a term.
pub(crate) type Fingerprint = [u8; 16];

/// The first half of `term`.
pub(crate) fn fingerprint(term: &[u8; 32]) -> Fingerprint {
    let mut f = [0u8; 16];
    f.copy_from_slice(&term[..16]);
    f
}

/// Each key row's [`Fingerprint`], by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyTerms {
    /// Ids of keyward's shape as numbers, sorted.
    packed: Vec<(u128, Fingerprint)>,
    /// Any other id.
    other: HashMap<String, Fingerprint>,
}

/// The number an id of keyward's shape spells (base62 in ASCII order, so
/// numbers sort as the ids do), or `None` for any other id.
fn code(id: &str) -> Option<u128> {
    let digits = id.strip_prefix("key_").filter(|d| d.len() == 16)?;
    digits.bytes().try_fold(0u128, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        Some(acc * 62 + u128::from(d))
    })
}

impl KeyTerms {
    /// Room for `n` more keys.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.packed.reserve_exact(n);
    }

    /// How many keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.packed.len() + self.other.len()
    }

    /// The fingerprint kept for `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Fingerprint> {
        match code(id) {
            Some(c) => self.packed.binary_search_by_key(&c, |e| e.0).ok().map(|i| self.packed[i].1),
            None => self.other.get(id).copied(),
        }
    }

    /// True when `id` has a fingerprint.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Sets `id`'s fingerprint (appended when `id` sorts after every other).
    pub(crate) fn set(&mut self, id: &str, f: Fingerprint) {
        let Some(c) = code(id) else {
            self.other.insert(id.to_string(), f);
            return;
        };
        if self.packed.last().is_none_or(|last| last.0 < c) {
            self.packed.push((c, f));
            return;
        }
        match self.packed.binary_search_by_key(&c, |e| e.0) {
            Ok(i) => self.packed[i].1 = f,
            Err(i) => self.packed.insert(i, (c, f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_as_the_ids_do_and_only_keywards_shape_has_one() {
        let ids = ["key_0000000000000000", "key_000000000000000z", "key_00000000000000A0", "key_zzzzzzzzzzzzzzzz"];
        let mut sorted = ids;
        sorted.sort();
        let codes: Vec<u128> = sorted.iter().map(|i| code(i).unwrap()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        for odd in ["key_000000000000000", "key_0000000000000000a", "kex_0000000000000000", "key_000000000000000-"] {
            assert_eq!(code(odd), None, "{odd}");
        }
    }

    #[test]
    fn set_and_get_in_any_order_and_for_any_id() {
        let mut t = KeyTerms::default();
        let ids = [
            "key_0Vcx6iuqj7vD7VNs",
            "key_0Vcx6iuq54ZEb3jl",
            "key_0Vcx6iuqzzzzzzzz",
            "legacy-id",
            "key_0000000000000001",
        ];
        for (n, id) in ids.iter().enumerate() {
            t.set(id, [n as u8; 16]);
        }
        assert_eq!(t.len(), ids.len());
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(t.get(id), Some([n as u8; 16]), "{id}");
        }
        t.set(ids[1], [9; 16]);
        assert_eq!((t.get(ids[1]), t.len()), (Some([9; 16]), ids.len()));
        assert!(!t.contains("key_0Vcx6iuqj7vD7VNt") && !t.contains("other"));
        assert!(t.packed.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
