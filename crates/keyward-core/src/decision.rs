//! Why policy refuses a request: one stable code per reason. The server's
//! error codes include these unchanged; the audit trail records them.

/// A refusal decided by policy (lifecycle, address, scopes, limits, guards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// Malformed, unknown or forged key or token.
    KeyInvalid,
    /// The key is disabled.
    KeyDisabled,
    /// The key was revoked (also: destroyed).
    KeyRevoked,
    /// The key was reported compromised.
    KeyCompromised,
    /// The key (or token) is past its expiry.
    KeyExpired,
    /// The key was rolled and its grace period is over.
    KeyRolled,
    /// The key is not valid yet.
    KeyPending,
    /// The key's stored row failed its integrity check.
    KeyTampered,
    /// The client address is outside the key's allowlist.
    IpNotAllowed,
    /// The key's rate limit is reached.
    RateLimited,
    /// The key has no uses left.
    UsesExhausted,
    /// No scope of the key grants what was asked.
    ScopeMissing,
    /// The exchange endpoint is not in keyward's catalog.
    EndpointUnknown,
    /// The request is ambiguous (see DESIGN's canonical requests).
    RequestNotCanonical,
    /// An order is beyond the key's guards.
    OrderGuard,
    /// The account's shared exchange budget is nearly spent.
    ExchangeBudget,
    /// Too many failed authentications from the address.
    AuthThrottled,
    /// The exchange account is frozen (`keyward account freeze`): nothing
    /// is signed for it until it is unfrozen.
    AccountFrozen,
    /// A withdrawal to an address not on the account's allowlist, beyond
    /// its cap, or one keyward cannot read strictly.
    WithdrawPolicy,
    /// The change needs approvals, and this one may not be given (the
    /// requester's own, or a key that approved already).
    ApprovalRefused,
}

impl DenyReason {
    /// The stable code (`scope_missing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::KeyInvalid => "key_invalid",
            DenyReason::KeyDisabled => "key_disabled",
            DenyReason::KeyRevoked => "key_revoked",
            DenyReason::KeyCompromised => "key_compromised",
            DenyReason::KeyExpired => "key_expired",
            DenyReason::KeyRolled => "key_rolled",
            DenyReason::KeyPending => "key_pending",
            DenyReason::KeyTampered => "key_tampered",
            DenyReason::IpNotAllowed => "ip_not_allowed",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::UsesExhausted => "uses_exhausted",
            DenyReason::ScopeMissing => "scope_missing",
            DenyReason::EndpointUnknown => "endpoint_unknown",
            DenyReason::RequestNotCanonical => "request_not_canonical",
            DenyReason::OrderGuard => "order_guard",
            DenyReason::ExchangeBudget => "exchange_budget",
            DenyReason::AuthThrottled => "auth_throttled",
            DenyReason::AccountFrozen => "account_frozen",
            DenyReason::WithdrawPolicy => "withdraw_policy",
            DenyReason::ApprovalRefused => "approval_refused",
        }
    }
}
