//! Base62 (`0-9A-Za-z`) for access keys: no characters that need quoting in
//! a shell, a URL or a header, and double-click selects the whole key.

use crate::{CoreError, random};

/// The alphabet, in value order.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` uniformly random base62 characters (rejection sampling: bytes ≥ 248
/// are dropped so that every character has probability exactly 1/62).
pub fn random_string(n: usize) -> Result<String, CoreError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        random::fill(&mut buf)?;
        for &b in &buf {
            if b < 248 && out.len() < n {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Encodes `v` as exactly `width` base62 digits, most significant first.
pub fn encode_fixed(v: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    encode_into(v, &mut digits);
    String::from_utf8(digits).unwrap_or_default()
}

/// Writes the last `out.len()` base62 digits of `v` into `out`, zero-padded.
pub fn encode_into(mut v: u64, out: &mut [u8]) {
    for d in out.iter_mut().rev() {
        *d = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
}

/// Encodes `v` in as few base62 digits as it needs ("0" for 0).
pub fn encode(v: u64) -> String {
    let mut width = 1;
    let mut rest = v / 62;
    while rest > 0 {
        width += 1;
        rest /= 62;
    }
    encode_fixed(v, width)
}

/// True when every byte of `s` is in the alphabet.
pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_encoding() {
        assert_eq!(encode_fixed(0, 3), "000");
        assert_eq!(encode_fixed(61, 2), "0z");
        assert_eq!(encode_fixed(62, 2), "10");
        assert_eq!(encode_fixed(u32::MAX as u64, 6), "4gfFC3");
    }

    #[test]
    fn shortest_encoding() {
        assert_eq!([0, 61, 62, 3843, 3844, u64::MAX].map(|v| encode(v).len()), [1, 1, 2, 2, 3, 11]);
        assert_eq!((encode(0), encode(61), encode(62)), ("0".into(), "z".into(), "10".into()));
        assert_eq!(encode(u32::MAX as u64), "4gfFC3");
    }

    #[test]
    fn random_strings_are_base62_of_the_asked_length() {
        let s = random_string(43).unwrap();
        assert_eq!(s.len(), 43);
        assert!(is_base62(&s));
        assert_ne!(s, random_string(43).unwrap());
    }
}
