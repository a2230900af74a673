//! Splitting the root key into Shamir shares and putting it back together.
//!
//! The arithmetic is `vsss-rs`'s byte-wise GF(256) sharing (constant time, no
//! lookup tables). This module adds what an operator needs around it: a text
//! form of each share that carries the id of its share set and a checksum, so
//! a mistyped share, a share of another server and a repeated share are each
//! named as such, and [`UnsealProgress`], which collects shares up to the
//! threshold and accepts the result only if it matches the stored check value:
//! a wrong share never yields a wrong key.

use crate::CoreError;
use crate::keyring::{RootKey, hex_decode, hex_encode};
use crate::random::{self, OsCsprng};
use ring::digest;
use std::fmt;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

const PREFIX: &str = "kws1";

/// One share of the root key. `Debug` is redacted.
#[derive(Clone)]
pub struct Share {
    set_id: String,
    index: u8,
    value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("set_id", &self.set_id)
            .field("index", &self.index)
            .field("value", &"[redacted]")
            .finish()
    }
}

fn checksum(set_id: &str, index: u8, value_hex: &str) -> String {
    let d = digest::digest(&digest::SHA256, format!("{PREFIX}-{set_id}-{index}-{value_hex}").as_bytes());
    hex_encode(&d.as_ref()[..3])
}

impl Share {
    /// The share's position (1-based), as printed to its holder.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The id of the share set (one per `operator init`).
    pub fn set_id(&self) -> &str {
        &self.set_id
    }

    /// The text form: `kws1-<set>-<index>-<64 hex digits>-<checksum>`.
    pub fn encode(&self) -> Zeroizing<String> {
        let value_hex = Zeroizing::new(hex_encode(&self.value));
        let sum = checksum(&self.set_id, self.index, &value_hex);
        Zeroizing::new(format!("{PREFIX}-{}-{}-{}-{sum}", self.set_id, self.index, *value_hex))
    }

    /// Parses the text form; whitespace around it is ignored.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let malformed = |why: &str| CoreError::ShareMalformed(why.to_string());
        let text = text.trim();
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() != 5 || parts[0] != PREFIX {
            return Err(malformed(
                "expected kws1-<set>-<index>-<hex>-<checksum>, as printed by `keyward operator init`",
            ));
        }
        let (set_id, index_s, value_hex, sum) = (parts[1], parts[2], parts[3], parts[4]);
        if set_id.len() != 8 || hex_decode(set_id).is_none() {
            return Err(malformed("the set id must be 8 hexadecimal digits"));
        }
        let index: u8 =
            index_s.parse().ok().filter(|i| *i > 0).ok_or_else(|| malformed("the share number must be 1 to 255"))?;
        if value_hex.len() != 64 {
            return Err(malformed("the share value must be 64 hexadecimal digits"));
        }
        let value =
            Zeroizing::new(hex_decode(value_hex).ok_or_else(|| malformed("the share value is not hexadecimal"))?);
        if checksum(set_id, index, value_hex) != sum.to_ascii_lowercase() {
            return Err(malformed("checksum mismatch: the share was mistyped or truncated"));
        }
        Ok(Self { set_id: set_id.to_ascii_lowercase(), index, value })
    }
}

/// A new random share-set id (8 hex digits, not secret).
pub fn new_set_id() -> Result<String, CoreError> {
    Ok(hex_encode(&random::bytes::<4>()?))
}

/// Splits `root` into `shares` shares of which any `threshold` recover it.
pub fn split(root: &RootKey, shares: u8, threshold: u8, set_id: &str) -> Result<Vec<Share>, CoreError> {
    if threshold < 2 {
        return Err(CoreError::ShamirParams(
            "the threshold must be at least 2 (for a single key, use an unseal key file)".into(),
        ));
    }
    if shares < threshold {
        return Err(CoreError::ShamirParams(format!(
            "{shares} shares cannot meet a threshold of {threshold}: give at least as many shares as the threshold"
        )));
    }
    // Probe the OS source first: the vsss adapter cannot return an error.
    random::bytes::<1>()?;
    let raw = Gf256::split_bytes(threshold as usize, shares as usize, root.expose_bytes(), OsCsprng)
        .map_err(|e| CoreError::ShamirParams(format!("{e:?}")))?;
    Ok(raw
        .into_iter()
        .map(|bytes| {
            let bytes = Zeroizing::new(bytes);
            Share { set_id: set_id.to_string(), index: bytes[0], value: Zeroizing::new(bytes[1..].to_vec()) }
        })
        .collect())
}

/// Where an unseal stands after a share was accepted.
#[derive(Debug)]
pub enum UnsealStep {
    /// More shares are needed.
    Progress {
        /// Shares accepted so far.
        have: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// The threshold was met and the key matched the check value.
    Complete(RootKey),
}

/// Collects shares until the threshold is met.
#[derive(Debug)]
pub struct UnsealProgress {
    set_id: String,
    threshold: u8,
    shares: Vec<Share>,
}

impl UnsealProgress {
    /// Starts collecting shares for the set `set_id`.
    pub fn new(set_id: &str, threshold: u8) -> Self {
        Self { set_id: set_id.to_string(), threshold, shares: Vec::new() }
    }

    /// Shares accepted so far.
    pub fn have(&self) -> u8 {
        self.shares.len() as u8
    }

    /// Shares needed.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Forgets every share given so far.
    pub fn reset(&mut self) {
        self.shares.clear();
    }

    /// Adds one share. On reaching the threshold, reconstructs the root key
    /// and checks it against `check`; a mismatch clears the progress (the
    /// operator starts over) and is an error: a wrong key is never returned.
    pub fn add(&mut self, share: Share, check: &[u8]) -> Result<UnsealStep, CoreError> {
        if share.set_id != self.set_id {
            return Err(CoreError::ShareWrongSet { found: share.set_id.clone(), expected: self.set_id.clone() });
        }
        if self.shares.iter().any(|s| s.index == share.index) {
            return Err(CoreError::ShareDuplicate(share.index));
        }
        self.shares.push(share);
        if self.have() < self.threshold {
            return Ok(UnsealStep::Progress { have: self.have(), threshold: self.threshold });
        }
        let raw: Vec<Vec<u8>> = self
            .shares
            .iter()
            .map(|s| {
                let mut v = Vec::with_capacity(33);
                v.push(s.index);
                v.extend_from_slice(&s.value);
                v
            })
            .collect();
        let raw = Zeroizing::new(raw);
        self.shares.clear();
        let bytes = Zeroizing::new(Gf256::combine_bytes(&*raw).map_err(|_| CoreError::ShareMismatch)?);
        let root = RootKey::from_slice(&bytes).map_err(|_| CoreError::ShareMismatch)?;
        if !root.matches_check(check) {
            return Err(CoreError::ShareMismatch);
        }
        Ok(UnsealStep::Complete(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (RootKey, Vec<Share>, [u8; 32]) {
        let root = RootKey::generate().unwrap();
        let shares = split(&root, 5, 3, "0a0b0c0d").unwrap();
        let check = root.check_value();
        (root, shares, check)
    }

    fn unseal(shares: &[&Share], check: &[u8]) -> Result<UnsealStep, CoreError> {
        let mut p = UnsealProgress::new("0a0b0c0d", 3);
        let mut last = Err(CoreError::ShareMismatch);
        for s in shares {
            last = p.add(Share::parse(&s.encode()).unwrap(), check);
            last.as_ref().map_err(Clone::clone)?;
        }
        last
    }

    #[test]
    fn any_threshold_subset_recovers_the_key() {
        let (root, shares, check) = setup();
        for combo in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let pick: Vec<&Share> = combo.iter().map(|i| &shares[*i]).collect();
            match unseal(&pick, &check).unwrap() {
                UnsealStep::Complete(k) => assert_eq!(k.expose_bytes(), root.expose_bytes()),
                other => panic!("not complete: {other:?}"),
            }
        }
    }

    #[test]
    fn too_few_shares_only_progress() {
        let (_, shares, check) = setup();
        match unseal(&[&shares[0], &shares[1]], &check).unwrap() {
            UnsealStep::Progress { have: 2, threshold: 3 } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_share_is_named() {
        let (_, shares, check) = setup();
        let mut p = UnsealProgress::new("0a0b0c0d", 3);
        p.add(shares[0].clone(), &check).unwrap();
        assert_eq!(p.add(shares[0].clone(), &check).unwrap_err(), CoreError::ShareDuplicate(shares[0].index));
    }

    #[test]
    fn share_of_another_init_is_refused_and_never_gives_a_wrong_key() {
        let (_, shares, check) = setup();
        let other_root = RootKey::generate().unwrap();
        let foreign_same_set = split(&other_root, 5, 3, "0a0b0c0d").unwrap();
        let err = unseal(&[&shares[0], &shares[1], &foreign_same_set[2]], &check).unwrap_err();
        assert_eq!(err, CoreError::ShareMismatch);
        let foreign_set = split(&other_root, 5, 3, "11223344").unwrap();
        let mut p = UnsealProgress::new("0a0b0c0d", 3);
        assert!(matches!(p.add(foreign_set[0].clone(), &check), Err(CoreError::ShareWrongSet { .. })));
    }

    #[test]
    fn malformed_shares_are_named() {
        let (_, shares, _) = setup();
        let good = shares[0].encode().to_string();
        for bad in ["", "hello", &good[..good.len() - 1], &good.replace("kws1", "kws2"), &format!("{good}0")] {
            assert!(matches!(Share::parse(bad), Err(CoreError::ShareMalformed(_))), "{bad}");
        }
        // One flipped digit in the value is caught by the checksum.
        let mut chars: Vec<char> = good.chars().collect();
        let pos = good.len() - 10;
        chars[pos] = if chars[pos] == '0' { '1' } else { '0' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(Share::parse(&typo), Err(CoreError::ShareMalformed(_))));
        assert!(Share::parse(&format!("  {good}\n")).is_ok());
    }

    #[test]
    fn parameters_are_checked() {
        let root = RootKey::generate().unwrap();
        assert!(split(&root, 5, 1, "00000000").is_err());
        assert!(split(&root, 2, 3, "00000000").is_err());
        assert_eq!(split(&root, 2, 2, "00000000").unwrap().len(), 2);
    }

    #[test]
    fn share_debug_is_redacted() {
        let (_, shares, _) = setup();
        let text = shares[0].encode();
        let value = text.split('-').nth(3).unwrap().to_string();
        assert!(!format!("{:?}", shares[0]).contains(&value));
    }
}
