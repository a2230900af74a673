//! The one error type of the services: a stable code from [`Code`] and a
//! message written for the operator. The HTTP edge (`http::error`) gives
//! each code its status and the `{"error":{"code","message"}}` body; no
//! service knows about HTTP. Messages never carry a secret value, a key or a
//! signature.

use keyward_core::CoreError;
use keyward_core::decision::DenyReason;
use keyward_store::StoreError;

/// Every stable code keyward answers with. The strings are API: they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Code {
    /// A refusal decided by policy (`scope_missing`, `key_revoked`, …).
    Deny(DenyReason),
    /// The request is malformed in some other way.
    InvalidRequest,
    /// A query parameter is unknown, repeated or malformed.
    InvalidQuery,
    /// A path is malformed.
    InvalidPath,
    /// A JSON body is malformed or has unknown fields.
    InvalidJson,
    /// A scope does not parse.
    InvalidScope,
    /// A secret field or setting is malformed.
    InvalidField,
    /// A namespace name is malformed.
    InvalidNamespace,
    /// A secret type is malformed.
    InvalidType,
    /// A key prefix is malformed.
    InvalidPrefix,
    /// An IP network is malformed.
    InvalidCidr,
    /// The body is over the size limit.
    BodyTooLarge,
    /// The route does not take that method.
    MethodNotAllowed,
    /// An exchange account's fields are wrong.
    AccountInvalid,
    /// An upstream URL is not one keyward may connect to.
    UpstreamNotAllowed,
    /// A key with an account scope needs an IP allowlist.
    AllowlistRequired,
    /// No such route, secret, key, version or field (or not visible to the caller).
    NotFound,
    /// The secret version is soft-deleted.
    SecretDeleted,
    /// The secret version was destroyed.
    SecretDestroyed,
    /// A check-and-set lost.
    CasMismatch,
    /// The key cannot go to that state from the one it is in.
    InvalidState,
    /// A rotation of the secret is unfinished: finish or abandon it first.
    RotationPending,
    /// Nothing to promote, roll back or abandon.
    NoRotation,
    /// The exchange refused the pending credentials of a rotation (nothing switched).
    CredentialsRefused,
    /// The field is non-exportable (a private key made inside keyward): no
    /// scope reads it back.
    NonExportable,
    /// The namespace exists already.
    NamespaceExists,
    /// The data is already initialised.
    AlreadyInitialized,
    /// The change waits for approvals (a key created for one cannot be
    /// enabled by hand).
    ApprovalRequired,
    /// Fewer approver keys exist than a change needs.
    ApprovalsUnavailable,
    /// The approval request is no longer pending (applied, rejected, failed).
    ApprovalClosed,
    /// The approval request expired.
    ApprovalExpired,
    /// The stored row of the key being changed failed its integrity check
    /// (`key_tampered`, as a conflict on the target, not a refusal of the caller).
    RowTampered,
    /// A Shamir share is malformed.
    ShareMalformed,
    /// A file given as a backup is not one (no keyward backup header).
    BackupMalformed,
    /// A backup is shorter than its header says: cut off.
    BackupTruncated,
    /// A backup fails its MAC: changed since it was written.
    BackupTampered,
    /// A backup was made of other keyward data (another root key).
    BackupForeign,
    /// A share belongs to another initialisation.
    ShareWrongSet,
    /// A share was given twice.
    ShareDuplicate,
    /// The shares do not reconstruct the root key.
    ShareMismatch,
    /// An unseal key file belongs to other data.
    UnsealKeyMismatch,
    /// Sealed: no secret can be read, no key verified.
    Sealed,
    /// The HSM of a PKCS#11 seal could not wrap or unwrap the root key.
    HsmUnavailable,
    /// The audit log cannot be written: everything is refused.
    AuditUnavailable,
    /// The store cannot be reached.
    StoreUnavailable,
    /// The exchange could not be reached.
    UpstreamUnavailable,
    /// The exchange did not answer in time.
    UpstreamTimeout,
    /// A stored ciphertext failed authentication.
    DecryptFailed,
    /// A bug or an unexpected failure; logged.
    Internal,
}

impl Code {
    /// The stable code on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::Deny(r) => r.as_str(),
            Code::InvalidRequest => "invalid_request",
            Code::InvalidQuery => "invalid_query",
            Code::InvalidPath => "invalid_path",
            Code::InvalidJson => "invalid_json",
            Code::InvalidScope => "invalid_scope",
            Code::InvalidField => "invalid_field",
            Code::InvalidNamespace => "invalid_namespace",
            Code::InvalidType => "invalid_type",
            Code::InvalidPrefix => "invalid_prefix",
            Code::InvalidCidr => "invalid_cidr",
            Code::BodyTooLarge => "body_too_large",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::AccountInvalid => "account_invalid",
            Code::UpstreamNotAllowed => "upstream_not_allowed",
            Code::AllowlistRequired => "allowlist_required",
            Code::NotFound => "not_found",
            Code::SecretDeleted => "secret_deleted",
            Code::SecretDestroyed => "secret_destroyed",
            Code::CasMismatch => "cas_mismatch",
            Code::InvalidState => "invalid_state",
            Code::RotationPending => "rotation_pending",
            Code::NoRotation => "no_rotation",
            Code::CredentialsRefused => "credentials_refused",
            Code::NonExportable => "non_exportable",
            Code::NamespaceExists => "namespace_exists",
            Code::AlreadyInitialized => "already_initialized",
            Code::RowTampered => "key_tampered",
            Code::ApprovalRequired => "approval_required",
            Code::ApprovalsUnavailable => "approvals_unavailable",
            Code::ApprovalClosed => "approval_closed",
            Code::ApprovalExpired => "approval_expired",
            Code::ShareMalformed => "share_malformed",
            Code::BackupMalformed => "backup_malformed",
            Code::BackupTruncated => "backup_truncated",
            Code::BackupTampered => "backup_tampered",
            Code::BackupForeign => "backup_foreign",
            Code::ShareWrongSet => "share_wrong_set",
            Code::ShareDuplicate => "share_duplicate",
            Code::ShareMismatch => "share_mismatch",
            Code::UnsealKeyMismatch => "unseal_key_mismatch",
            Code::Sealed => "sealed",
            Code::HsmUnavailable => "hsm_unavailable",
            Code::AuditUnavailable => "audit_unavailable",
            Code::StoreUnavailable => "store_unavailable",
            Code::UpstreamUnavailable => "upstream_unavailable",
            Code::UpstreamTimeout => "upstream_timeout",
            Code::DecryptFailed => "decrypt_failed",
            Code::Internal => "internal",
        }
    }
}

impl From<DenyReason> for Code {
    fn from(r: DenyReason) -> Self {
        Code::Deny(r)
    }
}

/// A refusal or failure: its code, a message for the operator, and when to retry.
#[derive(Debug, Clone)]
pub(crate) struct Error {
    /// Stable code.
    pub code: Code,
    /// For the operator; never a secret value, key or signature.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// Result of a service call.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this code and message.
    pub(crate) fn new(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retry_after: None }
    }

    /// Adds a retry hint.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// `invalid_request`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    /// `key_invalid`.
    pub(crate) fn key_invalid(message: impl Into<String>) -> Self {
        Self::new(DenyReason::KeyInvalid, message)
    }

    /// `scope_missing`.
    pub(crate) fn scope_missing(message: impl Into<String>) -> Self {
        Self::new(DenyReason::ScopeMissing, message)
    }

    /// `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// `sealed`.
    pub(crate) fn sealed() -> Self {
        Self::new(
            Code::Sealed,
            "keyward is sealed: no secret can be read and no key verified until `keyward operator unseal`",
        )
    }

    /// `audit_unavailable`.
    pub(crate) fn audit_unavailable() -> Self {
        Self::new(Code::AuditUnavailable, "the audit log cannot be written; keyward refuses every request until it can")
    }

    /// `internal`, logged with what went wrong (never a secret).
    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(error = what, "internal error");
        Self::new(Code::Internal, "internal error; see the server log")
    }

    /// True for refusals policy decided (as opposed to bad input or failures).
    pub(crate) fn is_denial(&self) -> bool {
        matches!(self.code, Code::Deny(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { current } => {
                Self::new(Code::CasMismatch, format!("check-and-set failed: the secret is at version {current}"))
            }
            StoreError::NotFound => Self::not_found("no such item"),
            StoreError::AlreadyInitialized => Self::new(Code::AlreadyInitialized, "keyward is already initialised"),
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "store unavailable");
                Self::new(Code::StoreUnavailable, "the store is unavailable; try again")
            }
            StoreError::Corrupt(why) => Self::internal(&format!("corrupt stored data: {why}")),
            StoreError::Refused(why) => Self::new(Code::InvalidState, why),
            other => Self::internal(&other.to_string()),
        }
    }
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::InvalidPath(_) => Self::new(Code::InvalidPath, msg),
            CoreError::InvalidScope { .. } => Self::new(Code::InvalidScope, msg),
            CoreError::InvalidField(_) => Self::new(Code::InvalidField, msg),
            CoreError::ShareMalformed(_) => Self::new(Code::ShareMalformed, msg),
            CoreError::ShareWrongSet { .. } => Self::new(Code::ShareWrongSet, msg),
            CoreError::ShareDuplicate(_) => Self::new(Code::ShareDuplicate, msg),
            CoreError::ShareMismatch => {
                Self::new(Code::ShareMismatch, format!("{msg}; progress was reset, start over"))
            }
            CoreError::Decrypt | CoreError::Envelope(_) | CoreError::UnknownTerm(_) => {
                tracing::error!(error = %msg, "a stored ciphertext failed to decrypt");
                Self::new(
                    Code::DecryptFailed,
                    "the stored ciphertext failed authentication (altered or moved row); nothing was returned",
                )
            }
            _ => Self::internal(&msg),
        }
    }
}
