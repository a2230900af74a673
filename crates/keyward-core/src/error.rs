//! The one error type of the core crate. Messages never carry secret bytes.

/// Everything the pure domain can refuse or fail at.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// The operating system's random source failed; nothing was generated.
    #[error("the system random number generator failed")]
    Random,
    /// Authenticated decryption failed: wrong key, wrong path or version
    /// (a row moved elsewhere), or edited bytes.
    #[error("decryption failed: the ciphertext was altered, moved to another path or version, or the key is wrong")]
    Decrypt,
    /// A stored ciphertext does not have keyward's envelope layout.
    #[error("malformed ciphertext envelope: {0}")]
    Envelope(&'static str),
    /// The ciphertext was written under a keyring term this keyring does not hold.
    #[error("ciphertext uses keyring term {0}, which this keyring does not hold")]
    UnknownTerm(u32),
    /// A Shamir share could not be parsed.
    #[error("malformed share: {0}")]
    ShareMalformed(String),
    /// The share belongs to another initialisation of keyward.
    #[error("this share belongs to another keyward initialisation (set {found}, expected {expected})")]
    ShareWrongSet {
        /// Set id carried by the share.
        found: String,
        /// Set id of this server.
        expected: String,
    },
    /// The same share (same index) was given twice.
    #[error("share {0} was already given")]
    ShareDuplicate(u8),
    /// Shares combined into a key that does not match the stored check value.
    #[error("the shares do not reconstruct the root key: at least one share is wrong")]
    ShareMismatch,
    /// Shamir parameters out of range.
    #[error("invalid Shamir parameters: {0}")]
    ShamirParams(String),
    /// An unseal key file does not hold a keyward root key.
    #[error("malformed unseal key: {0}")]
    UnsealKeyMalformed(&'static str),
    /// The root key does not match this data (wrong key file).
    #[error("the unseal key does not match this keyward data")]
    RootKeyMismatch,
    /// A secret path breaks the path rules.
    #[error("invalid secret path: {0}")]
    InvalidPath(&'static str),
    /// A scope string does not parse.
    #[error(
        "invalid scope {scope:?}: {reason}; accepted forms: secret:read:<glob>, secret:write:<glob>, account:<glob>:<class>, key:admin, key:verify:<namespace>, audit:read, sys:metrics, sys:admin, approve"
    )]
    InvalidScope {
        /// The scope as given.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A secret field name or value is not acceptable.
    #[error("invalid secret field: {0}")]
    InvalidField(String),
}
