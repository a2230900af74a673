//! The root key and the keys derived from it.
//!
//! The 256-bit root key is never stored in the clear: it is split into Shamir
//! shares or kept in an unseal key file. Every working key is derived from it
//! with HKDF-SHA-256 under its own label, so one purpose's key never serves
//! another: the data-key wrapping keys (one per keyring term), the pepper of
//! access-key hashes, the MAC key of key and policy rows, and the check value
//! that tells whether a reconstructed root key is the right one.
//!
//! Nothing here prints key bytes: every `Debug` is redacted.

use crate::{CoreError, random};
use ring::{aead, hkdf, hmac};
use std::collections::BTreeMap;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of the root key in bytes.
pub const ROOT_KEY_LEN: usize = 32;

const LABEL_CHECK: &str = "keyward/v1/root-check";
const LABEL_PEPPER: &str = "keyward/v1/access-key-pepper";
const LABEL_ROW_MAC: &str = "keyward/v1/row-mac";
const LABEL_WRAP: &str = "keyward/v1/wrap/term";
const UNSEAL_FILE_PREFIX: &str = "keyward-unseal-key-v1:";

/// The root key. Zeroed when dropped; never `Debug`-printed.
pub struct RootKey(Zeroizing<[u8; ROOT_KEY_LEN]>);

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([redacted])")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl RootKey {
    /// A fresh root key from the OS CSPRNG.
    pub fn generate() -> Result<Self, CoreError> {
        let mut k = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        random::fill(k.as_mut())?;
        Ok(Self(k))
    }

    /// Takes a root key from raw bytes (Shamir reconstruction).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CoreError> {
        let arr: [u8; ROOT_KEY_LEN] =
            bytes.try_into().map_err(|_| CoreError::UnsealKeyMalformed("the root key must be 32 bytes"))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The raw bytes, for splitting into shares or writing a key file.
    pub fn expose_bytes(&self) -> &[u8; ROOT_KEY_LEN] {
        &self.0
    }

    /// Derives the 32-byte key for `label` (HKDF-SHA-256, empty salt).
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keyward").extract(self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        let info = [label.as_bytes()];
        // expand/fill only fail for lengths beyond 255 * 32 bytes.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(out.as_mut());
        }
        out
    }

    /// The check value stored beside the data: proves a reconstructed key is
    /// the right one without revealing anything about it.
    pub fn check_value(&self) -> [u8; 32] {
        let k = self.derive(LABEL_CHECK);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()), b"keyward root key check");
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Constant-time comparison of this key's check value with `stored`.
    pub fn matches_check(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.check_value().ct_eq(stored))
    }

    /// The text of an unseal key file (one line).
    pub fn to_unseal_file(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from(UNSEAL_FILE_PREFIX));
        s.push_str(&hex_encode(self.0.as_ref()));
        s.push('\n');
        s
    }

    /// Parses the text of an unseal key file.
    pub fn from_unseal_file(text: &str) -> Result<Self, CoreError> {
        let body = text
            .trim()
            .strip_prefix(UNSEAL_FILE_PREFIX)
            .ok_or(CoreError::UnsealKeyMalformed("the file does not start with keyward-unseal-key-v1:"))?;
        let bytes =
            Zeroizing::new(hex_decode(body).ok_or(CoreError::UnsealKeyMalformed("the key is not hexadecimal"))?);
        Self::from_slice(&bytes)
    }
}

/// The unsealed keyring: everything derived from the root key that the server
/// needs while it runs. Dropping it (sealing) zeroes the raw key bytes; the
/// expanded `ring` key schedules are freed with it.
pub struct Keyring {
    root: RootKey,
    wrap: BTreeMap<u32, aead::LessSafeKey>,
    active_term: u32,
    pepper: hmac::Key,
    row_mac: hmac::Key,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active_term", &self.active_term).field("keys", &"[redacted]").finish()
    }
}

impl Keyring {
    /// Builds the keyring for terms `1..=active_term`.
    pub fn new(root: RootKey, active_term: u32) -> Self {
        let active_term = active_term.max(1);
        let pepper = hmac::Key::new(hmac::HMAC_SHA256, root.derive(LABEL_PEPPER).as_ref());
        let row_mac = hmac::Key::new(hmac::HMAC_SHA256, root.derive(LABEL_ROW_MAC).as_ref());
        let mut ring = Self { root, wrap: BTreeMap::new(), active_term: 0, pepper, row_mac };
        for term in 1..=active_term {
            ring.add_term_key(term);
        }
        ring.active_term = active_term;
        ring
    }

    fn add_term_key(&mut self, term: u32) {
        let k = self.root.derive(&format!("{LABEL_WRAP}/{term}"));
        // AES-256 keys are 32 bytes, so construction cannot fail.
        if let Ok(unbound) = aead::UnboundKey::new(&aead::AES_256_GCM, k.as_ref()) {
            self.wrap.insert(term, aead::LessSafeKey::new(unbound));
        }
    }

    /// Adds the next term and makes it the active one (root-key rotation).
    pub fn rotate(&mut self) -> u32 {
        let next = self.active_term + 1;
        self.add_term_key(next);
        self.active_term = next;
        next
    }

    /// Drops a term's wrapping key (a retired term): what it encrypted can
    /// no longer be opened. The active term is never retired.
    pub fn retire(&mut self, term: u32) {
        if term != self.active_term {
            self.wrap.remove(&term);
        }
    }

    /// The term new data is written under.
    pub fn active_term(&self) -> u32 {
        self.active_term
    }

    /// The wrapping key of `term`.
    pub(crate) fn wrap_key(&self, term: u32) -> Result<&aead::LessSafeKey, CoreError> {
        self.wrap.get(&term).ok_or(CoreError::UnknownTerm(term))
    }

    /// The keyed hash of an access key (HMAC-SHA-256 with the root-derived pepper).
    pub fn access_key_hash(&self, key: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.pepper, key);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// MAC of a stored row (access keys, policies): a database writer without
    /// the root key cannot produce it.
    pub fn row_mac(&self, row: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.row_mac, row);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks a row MAC in constant time.
    pub fn verify_row_mac(&self, row: &[u8], mac: &[u8]) -> bool {
        hmac::verify(&self.row_mac, row, mac).is_ok()
    }

    /// The root key (to derive further purpose keys, e.g. audit signing).
    pub fn root(&self) -> &RootKey {
        &self.root
    }
}

/// Lower-case hexadecimal.
pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses hexadecimal (either case); `None` on odd length or a non-hex digit.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(s.len() / 2);
    for p in s.chunks_exact(2) {
        out.push(nib(p[0])? << 4 | nib(p[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_are_stable() {
        let root = RootKey::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(*root.derive("a"), *root.derive("a"));
        assert_ne!(*root.derive("a"), *root.derive("b"));
    }

    #[test]
    fn check_value_tells_keys_apart() {
        let a = RootKey::from_slice(&[1u8; 32]).unwrap();
        let b = RootKey::from_slice(&[2u8; 32]).unwrap();
        assert!(a.matches_check(&a.check_value()));
        assert!(!b.matches_check(&a.check_value()));
        assert!(!a.matches_check(&a.check_value()[..31]));
    }

    #[test]
    fn unseal_file_round_trip_and_rejects() {
        let a = RootKey::generate().unwrap();
        let text = a.to_unseal_file();
        let b = RootKey::from_unseal_file(&text).unwrap();
        assert_eq!(a.expose_bytes(), b.expose_bytes());
        assert!(RootKey::from_unseal_file("nonsense").is_err());
        assert!(RootKey::from_unseal_file("keyward-unseal-key-v1:abcd").is_err());
        assert!(RootKey::from_unseal_file("keyward-unseal-key-v1:zz").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let a = RootKey::from_slice(&[0xAB; 32]).unwrap();
        assert!(!format!("{a:?}").contains("ab"));
        let ring = Keyring::new(a, 1);
        assert!(!format!("{ring:?}").to_lowercase().contains("abab"));
    }
}
