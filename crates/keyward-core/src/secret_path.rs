//! Secret paths: the rules that keep one path meaning one thing.
//!
//! A path is 1 to 512 bytes of segments separated by `/`. Segments are
//! non-empty, never `.` or `..`, and use letters, digits and `. _ - @ + = , : ~`.
//! No control characters, no whitespace, no `*` (that is a glob), no `\`.

use crate::CoreError;
use std::fmt;

/// Longest accepted path, in bytes.
pub const MAX_LEN: usize = 512;

/// A validated secret path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretPath(String);

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+' | '=' | ',' | ':' | '~')
}

/// Checks the characters and segments shared by paths and path prefixes.
fn check_segments(s: &str, allow_trailing_slash: bool) -> Result<(), CoreError> {
    if s.len() > MAX_LEN {
        return Err(CoreError::InvalidPath("longer than 512 bytes"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(CoreError::InvalidPath("control characters (including NUL) are not allowed"));
    }
    let body = if allow_trailing_slash { s.strip_suffix('/').unwrap_or(s) } else { s };
    for seg in body.split('/') {
        if seg.is_empty() {
            return Err(CoreError::InvalidPath("empty segment (leading, trailing or doubled '/')"));
        }
        if seg == "." || seg == ".." {
            return Err(CoreError::InvalidPath("'.' and '..' segments are not allowed"));
        }
        if !seg.chars().all(allowed) {
            return Err(CoreError::InvalidPath("segments may use only letters, digits and . _ - @ + = , : ~"));
        }
    }
    Ok(())
}

impl SecretPath {
    /// Validates `s` as a secret path.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.is_empty() {
            return Err(CoreError::InvalidPath("empty path"));
        }
        check_segments(s, false)?;
        Ok(Self(s.to_string()))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a listing prefix: empty, or a path optionally ending in `/`.
pub fn check_prefix(s: &str) -> Result<(), CoreError> {
    if s.is_empty() { Ok(()) } else { check_segments(s, true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["a", "apps/alerts/webhook", "exchanges/binance-main", "x/y_z.1@host:8080"] {
            assert_eq!(SecretPath::parse(p).unwrap().as_str(), p);
        }
        assert!(SecretPath::parse(&"a".repeat(512)).is_ok());
    }

    #[test]
    fn refuses_ambiguous_or_hostile_paths() {
        for p in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "./a",
            "a/.",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            "a b",
            "a*",
            "a\\b",
            "caf\u{e9}",
            "a?b",
            "a%2fb",
        ] {
            assert!(SecretPath::parse(p).is_err(), "{p:?} accepted");
        }
        assert!(SecretPath::parse(&"a".repeat(513)).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("apps/").is_ok());
        assert!(check_prefix("apps").is_ok());
        assert!(check_prefix("apps//").is_err());
        assert!(check_prefix("../").is_err());
    }
}
