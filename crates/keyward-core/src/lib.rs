//! keyward's pure domain: the keyring and its seal, envelope encryption of
//! secret versions, the access-key format and its keyed hash, scopes, key
//! policy and lifecycle, order guards, and the checks on secret paths.
//!
//! This crate does no I/O: no files, no network, no clock of its own (time is
//! passed in). It never logs, and no type here prints a secret in `Debug`.
//! All primitives come from one library, `ring`; Shamir sharing from `vsss-rs`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access_key;
pub mod audit;
pub mod base62;
pub mod clock;
pub mod custody;
pub mod decision;
pub mod duration;
pub mod envelope;
pub mod error;
pub mod guard;
pub mod keyring;
pub mod order;
pub mod policy;
pub mod random;
pub mod rate;
pub mod scope;
pub mod secret;
pub mod secret_path;
pub mod shamir;

pub use error::CoreError;
