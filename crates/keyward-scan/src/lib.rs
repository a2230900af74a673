//! keyward's leak scanner, usable without a server: keyward keys (prefix
//! and checksum, so no false positives) and tokens, exchange credentials
//! with their key, secret and passphrase paired, PEM private keys, and
//! random-looking values assigned to credential names, in source and
//! configuration files. Placeholders, environment lookups, lock files,
//! hashes and data URIs are left out.
//!
//! Rules are data ([`rules::SHIPPED`], extended with a file of one's own).
//! A walk ([`scan_paths`]) honours `.gitignore`, runs files in parallel and
//! skips (and counts) binary and huge files; [`git`] reads every commit's
//! additions, or the staged ones. Nothing here prints or logs a
//! secret: a [`Finding`] shows its first 4 characters; the value stays in
//! memory, zeroed on drop, for matching against a server.

#![forbid(unsafe_code)]

pub mod detect;
pub mod git;
pub mod report;
pub mod rules;
mod walk;

pub use detect::{Detector, Finding, entropy, redact};
pub use rules::{Part, RuleError, Rules};
pub use walk::{ScanOptions, ScanReport, scan_paths};
