//! The index's two lookups: sets of the entries themselves, by keyed hash
//! and by id, with hashers that suit what they hash (no SipHash where no
//! caller chooses the input).

use super::index::KeyEntry;
use std::sync::Arc;

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

/// An entry in the set by keyed hash (the set holds the entry; the hash is its own).
#[derive(Debug, Clone)]
pub(super) struct ByHashKey(pub(super) Arc<KeyEntry>);

impl std::borrow::Borrow<[u8; 32]> for ByHashKey {
    fn borrow(&self) -> &[u8; 32] {
        &self.0.hash
    }
}
impl std::borrow::Borrow<[u8]> for ByHashKey {
    fn borrow(&self) -> &[u8] {
        &self.0.hash
    }
}
impl std::hash::Hash for ByHashKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash.hash(state);
    }
}
impl PartialEq for ByHashKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.hash == other.0.hash
    }
}
impl Eq for ByHashKey {}

/// A fast hasher for key ids and stored policy texts: keyward makes both
/// (an id is the time and random characters), so no caller steers them
/// into collisions; SipHash over a million of them slowed loading down.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(K);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
        }
        for b in chunks.remainder() {
            h = (h ^ u64::from(*b)).wrapping_mul(K);
        }
        self.0 = h ^ (h >> 29);
    }
}

/// Hash-map state for [`IdHasher`].
pub(crate) type FastHash = std::hash::BuildHasherDefault<IdHasher>;

/// An entry in the set by id.
#[derive(Debug, Clone)]
pub(super) struct ByIdKey(pub(super) Arc<KeyEntry>);

impl std::borrow::Borrow<str> for ByIdKey {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}
impl std::hash::Hash for ByIdKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self.0.id).hash(state);
    }
}
impl PartialEq for ByIdKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for ByIdKey {}

pub(super) type ByHash = std::collections::HashSet<ByHashKey, std::hash::BuildHasherDefault<PrehashedKey>>;

#[cfg(test)]
mod tests {
    use super::KeyEntry;

    /// A million entries: an entry and its two reference counts fit the
    /// allocator's 192-byte size class (one more word and every key costs
    /// 32 bytes more: 32 MB a million).
    #[test]
    fn an_entry_fits_192_bytes() {
        assert!(std::mem::size_of::<KeyEntry>() + 2 * std::mem::size_of::<usize>() <= 192);
    }
}
