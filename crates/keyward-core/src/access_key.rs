//! The access-key format and its keyed hash.
//!
//! A key reads `kw_` + 43 random base62 characters (256 bits) + 6 base62
//! characters of CRC-32 over everything before them. The fixed prefix and
//! the checksum let a scanner recognise a leaked key with no false positives
//! and let the server refuse a garbled key without a lookup. The server keeps
//! only `HMAC-SHA-256(pepper, key)`: a copy of the database yields no key.

use crate::{CoreError, base62};
use std::fmt;
use zeroize::Zeroizing;

/// The prefix of keyward's own keys (namespace `keyward`).
pub const DEFAULT_PREFIX: &str = "kw";
/// The prefix of a platform namespace that names none (`pk_…`).
pub const PLATFORM_PREFIX: &str = "pk";
/// Prefixes only keyward's own keys (`kw_`) and short-lived tokens (`kwt_`)
/// carry: a platform key with one would look like a keyward credential to
/// a person, a log search or a leak scanner.
pub const RESERVED_PREFIXES: [&str; 2] = ["kw", "kwt"];
/// Random characters in a key: 62^43 > 2^256.
pub const RANDOM_LEN: usize = 43;
/// Checksum characters (CRC-32 in base62).
pub const CHECKSUM_LEN: usize = 6;

/// A plaintext access key: shown once at creation, then only its hash is kept.
pub struct AccessKeySecret(Zeroizing<String>);

impl fmt::Debug for AccessKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKeySecret([redacted])")
    }
}

/// The checksum's digits, without an allocation: every request checks one.
fn checksum_digits(prefixed_body: &str) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    base62::encode_into(crc32fast::hash(prefixed_body.as_bytes()) as u64, &mut digits);
    digits
}

/// True when `prefix` may start keys: 2 to 16 lower-case letters or digits.
pub fn valid_prefix(prefix: &str) -> bool {
    (2..=16).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// True for a prefix a platform namespace may not take ([`RESERVED_PREFIXES`]).
pub fn reserved_prefix(prefix: &str) -> bool {
    RESERVED_PREFIXES.contains(&prefix)
}

impl AccessKeySecret {
    /// A new random key with `prefix` (`kw` for keyward's own namespace).
    pub fn generate(prefix: &str) -> Result<Self, CoreError> {
        let mut s = Zeroizing::new(String::with_capacity(prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN));
        s.push_str(prefix);
        s.push('_');
        s.push_str(&Zeroizing::new(base62::random_string(RANDOM_LEN)?));
        let sum = checksum_digits(&s);
        s.extend(sum.iter().map(|&b| char::from(b)));
        Ok(Self(s))
    }

    /// The key text, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Checks the shape and checksum of a presented key without any lookup.
/// Returns the prefix on success.
pub fn check_format(key: &str) -> Option<&str> {
    let (prefix, rest) = key.split_once('_')?;
    if !valid_prefix(prefix) || rest.len() != RANDOM_LEN + CHECKSUM_LEN || !base62::is_base62(rest) {
        return None;
    }
    let split = key.len() - CHECKSUM_LEN;
    (checksum_digits(&key[..split]) == key.as_bytes()[split..]).then_some(prefix)
}

/// A new key id: `key_` + 16 base62 characters, the first eight the time
/// (ms) and the last eight random. Ids are not secret; ids made later sort
/// later, so a new key's row goes at the end of the store's index instead
/// of a random page of it.
pub fn new_key_id(now_ms: i64) -> Result<String, CoreError> {
    Ok(format!("key_{}{}", base62::encode_fixed(now_ms.max(0) as u64, 8), base62::random_string(8)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_ids_sort_by_time_and_differ() {
        let a = super::new_key_id(1_800_000_000_000).unwrap();
        let b = super::new_key_id(1_800_000_000_001).unwrap();
        assert!(a.len() == 20 && b.len() == 20 && a.starts_with("key_"));
        assert!(a < b, "{a} {b}");
        assert_ne!(super::new_key_id(1).unwrap(), super::new_key_id(1).unwrap());
    }

    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = AccessKeySecret::generate(DEFAULT_PREFIX).unwrap();
        let s = k.expose();
        assert!(s.starts_with("kw_"));
        assert_eq!(s.len(), 3 + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(check_format(s), Some("kw"));
    }

    #[test]
    fn garbled_keys_fail_the_checksum() {
        let k = AccessKeySecret::generate("kw").unwrap();
        let s = k.expose().to_string();
        let mut b = s.clone().into_bytes();
        b[10] = if b[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(check_format(std::str::from_utf8(&b).unwrap()), None);
        assert_eq!(check_format(&s[..s.len() - 1]), None);
        assert_eq!(check_format("kw_"), None);
        assert_eq!(check_format("Bearer"), None);
        assert_eq!(check_format(&s.replace("kw_", "KW_")), None);
    }

    #[test]
    fn custom_prefixes() {
        let k = AccessKeySecret::generate("shop").unwrap();
        assert_eq!(check_format(k.expose()), Some("shop"));
        assert!(!valid_prefix("x"));
        assert!(!valid_prefix("Shop"));
    }

    #[test]
    fn debug_is_redacted() {
        let k = AccessKeySecret::generate("kw").unwrap();
        assert!(!format!("{k:?}").contains(&k.expose()[3..10]));
    }
}
