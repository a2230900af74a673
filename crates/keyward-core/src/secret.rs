//! The fields of a secret version: names in the clear (inside the envelope),
//! values in zeroizing strings whose `Debug` is redacted.
//!
//! The plaintext that goes into the envelope is a small length-prefixed
//! encoding rather than JSON, so no intermediate copy outlives the zeroizing
//! buffers.

use crate::CoreError;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// One secret value. Never printed by `Debug`; no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretValue {
    /// Wraps a value.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The value, for the few places that must hand it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The fields of one secret version, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretData(pub BTreeMap<String, SecretValue>);

/// Field names starting with this are keyward's own; callers cannot set them.
pub const RESERVED_PREFIX: &str = "keyward.";

/// The field that lists, comma-separated, the fields of this version that
/// no read ever hands out (a private key made by `account keygen`). It is
/// stored inside the envelope with the values, so whoever can write the
/// database cannot strip it without breaking the ciphertext.
pub const NON_EXPORTABLE: &str = "keyward.non_exportable";

/// Checks a field name a caller gave: 1 to 128 of letters, digits, `_`, `.`
/// and `-`, not starting with `keyward.`.
pub fn check_field_name(name: &str) -> Result<(), CoreError> {
    let ok = (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(CoreError::InvalidField(format!(
            "field name {name:?}: use 1 to 128 letters, digits, '_', '.' or '-'"
        )));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(CoreError::InvalidField(format!(
            "field name {name:?}: names starting with {RESERVED_PREFIX:?} are keyward's own"
        )));
    }
    Ok(())
}

impl SecretData {
    /// The fields no read may hand out, as [`NON_EXPORTABLE`] lists them.
    pub fn non_exportable(&self) -> Vec<&str> {
        self.0
            .get(NON_EXPORTABLE)
            .map(|v| v.expose().split(',').map(str::trim).filter(|f| !f.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Marks `fields` non-exportable, keeping any already marked.
    pub fn mark_non_exportable(&mut self, fields: &[&str]) {
        let mut all: Vec<String> = self.non_exportable().into_iter().map(str::to_string).collect();
        for f in fields {
            if !all.iter().any(|a| a == f) {
                all.push((*f).to_string());
            }
        }
        all.sort();
        self.0.insert(NON_EXPORTABLE.to_string(), SecretValue::new(all.join(",")));
    }

    /// Drops `fields` from the non-exportable list (they were replaced by
    /// values a caller gave); the marker goes when nothing is left.
    pub fn unmark_non_exportable(&mut self, fields: &[&str]) {
        let left: Vec<String> =
            self.non_exportable().into_iter().filter(|f| !fields.contains(f)).map(str::to_string).collect();
        if left.is_empty() {
            self.0.remove(NON_EXPORTABLE);
        } else {
            self.0.insert(NON_EXPORTABLE.to_string(), SecretValue::new(left.join(",")));
        }
    }

    /// The envelope plaintext: `u32 count` then `u32 len | name | u32 len | value` per field.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let size: usize = self.0.iter().map(|(k, v)| 8 + k.len() + v.0.len()).sum();
        let mut out = Zeroizing::new(Vec::with_capacity(4 + size));
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (k, v) in &self.0 {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.0.len() as u32).to_be_bytes());
            out.extend_from_slice(v.0.as_bytes());
        }
        out
    }

    /// Parses what [`SecretData::encode`] produced.
    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        let bad = || CoreError::Envelope("malformed secret plaintext");
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], CoreError> {
            let s = bytes.get(at..at.checked_add(n).ok_or_else(bad)?).ok_or_else(bad)?;
            at += n;
            Ok(s)
        };
        let read_len = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let count = read_len(take(4)?);
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let kl = read_len(take(4)?);
            let k = std::str::from_utf8(take(kl)?).map_err(|_| bad())?.to_string();
            let vl = read_len(take(4)?);
            let v = std::str::from_utf8(take(vl)?).map_err(|_| bad())?.to_string();
            map.insert(k, SecretValue::new(v));
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut d = SecretData::default();
        d.0.insert("token".into(), SecretValue::new("xoxb-1".into()));
        d.0.insert("empty".into(), SecretValue::new(String::new()));
        assert_eq!(SecretData::decode(&d.encode()).unwrap(), d);
        assert!(SecretData::decode(&d.encode()[..5]).is_err());
        assert!(!format!("{d:?}").contains("xoxb"));
    }

    #[test]
    fn field_names() {
        assert!(check_field_name("api_secret").is_ok());
        assert!(check_field_name("").is_err());
        assert!(check_field_name("a b").is_err());
        assert!(check_field_name(&"x".repeat(129)).is_err());
        assert!(check_field_name("keyward.non_exportable").is_err());
        assert!(check_field_name("keyward_x").is_ok());
    }

    #[test]
    fn the_non_exportable_marker_lists_fields_and_goes_when_empty() {
        let mut d = SecretData::default();
        assert!(d.non_exportable().is_empty());
        d.mark_non_exportable(&["private_key"]);
        d.mark_non_exportable(&["private_key", "seed"]);
        assert_eq!(d.non_exportable(), ["private_key", "seed"]);
        let back = SecretData::decode(&d.encode()).unwrap();
        assert_eq!(back.non_exportable(), ["private_key", "seed"]);
        d.unmark_non_exportable(&["seed"]);
        assert_eq!(d.non_exportable(), ["private_key"]);
        d.unmark_non_exportable(&["private_key"]);
        assert!(!d.0.contains_key(NON_EXPORTABLE));
    }
}
