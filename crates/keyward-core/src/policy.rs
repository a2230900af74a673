//! Access-key policy and lifecycle: what a key may do, from where, until
//! when, and which state it is in at a given time. Pure: the server stores
//! the policy (under the row MAC), keeps the live counters and asks here.

use crate::decision::DenyReason;
use crate::guard::OrderGuard;
use crate::rate::RateSpec;
use crate::scope::Scope;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a key may do and from where; stored as JSON and covered by the row MAC.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Scopes (default deny).
    pub scopes: Vec<Scope>,
    /// Client networks allowed; empty means any address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<IpNet>,
    /// Expiry (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    /// Not valid before (ms); `key_pending` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<i64>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    /// Uses granted at creation (the live count is kept by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u64>,
    /// Free-form permissions of a platform key: stored and returned, never interpreted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Set by a roll: the key works until then, and is `rolled` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until_ms: Option<i64>,
    /// Set by a roll: the id of the key that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_to: Option<String>,
    /// Order guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<OrderGuard>,
    /// Maximum age (seconds from creation): `expired` after it, to be
    /// rolled before. Without one, the server's `--key-max-age` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
    /// Set on a key created `disabled` because its scopes need approvals:
    /// the approval that enables it. Nothing else may enable it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_approval: Option<String>,
    /// The frozen accounts whose freeze disabled this key; unfreezing the
    /// last of them enables it again. Nothing else may enable it meanwhile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen_by: Vec<String>,
}

impl KeyPolicy {
    /// The state to show and enforce at `now_ms` for a key stored in
    /// `stored`: a stored state other than active wins; then the end of a
    /// roll's grace, the expiry (or the end of its maximum age, `aged_ms`)
    /// and the not-before time.
    pub fn state_at(&self, stored: KeyState, now_ms: i64, aged_ms: Option<i64>) -> KeyState {
        if stored != KeyState::Active {
            return stored;
        }
        if self.grace_until_ms.is_some_and(|g| now_ms >= g) {
            return KeyState::Rolled;
        }
        if self.expires_ms.is_some_and(|e| now_ms >= e) || aged_ms.is_some_and(|a| now_ms >= a) {
            return KeyState::Expired;
        }
        if self.not_before_ms.is_some_and(|nb| now_ms < nb) {
            return KeyState::Pending;
        }
        KeyState::Active
    }

    /// True when the key may be used from `ip` (an empty allowlist allows any).
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|net| net.contains(&ip))
    }

    /// True when the allowlist is the explicit allow-any opt-out (`0.0.0.0/0`, `::/0`).
    pub fn allows_any_address(&self) -> bool {
        self.allow_ips.iter().any(|n| n.prefix_len() == 0)
    }

    /// The order guard, when one is set.
    pub fn order_guard(&self) -> Option<&OrderGuard> {
        self.guard.as_ref().filter(|g| g.is_set())
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Lifecycle states, one vocabulary everywhere (CLI, API, audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Not valid yet.
    Pending,
    /// In use.
    Active,
    /// Switched off; may be enabled again.
    Disabled,
    /// Past its expiry.
    Expired,
    /// Replaced by a roll and past its grace period.
    Rolled,
    /// Revoked for good.
    Revoked,
    /// Reported compromised.
    Compromised,
    /// Removed.
    Destroyed,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 8] = [
        KeyState::Pending,
        KeyState::Active,
        KeyState::Disabled,
        KeyState::Expired,
        KeyState::Rolled,
        KeyState::Revoked,
        KeyState::Compromised,
        KeyState::Destroyed,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Rolled => "rolled",
            KeyState::Revoked => "revoked",
            KeyState::Compromised => "compromised",
            KeyState::Destroyed => "destroyed",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Why a key in this state is refused; `None` while active.
    pub fn denial(self) -> Option<(DenyReason, &'static str)> {
        Some(match self {
            KeyState::Active => return None,
            KeyState::Disabled => (DenyReason::KeyDisabled, "this key is disabled"),
            KeyState::Revoked => (DenyReason::KeyRevoked, "this key was revoked"),
            KeyState::Destroyed => (DenyReason::KeyRevoked, "this key was revoked and destroyed"),
            KeyState::Compromised => {
                (DenyReason::KeyCompromised, "this key was reported compromised; it is refused for good")
            }
            KeyState::Expired => (DenyReason::KeyExpired, "this key has expired"),
            KeyState::Rolled => (DenyReason::KeyRolled, "this key was rolled and its grace period is over"),
            KeyState::Pending => (DenyReason::KeyPending, "this key is not valid yet"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_state_wins_then_grace_expiry_and_not_before() {
        let p = KeyPolicy {
            expires_ms: Some(100),
            not_before_ms: Some(10),
            grace_until_ms: Some(50),
            ..Default::default()
        };
        assert_eq!(p.state_at(KeyState::Active, 9, None), KeyState::Pending);
        assert_eq!(p.state_at(KeyState::Active, 10, None), KeyState::Active);
        assert_eq!(p.state_at(KeyState::Active, 49, None), KeyState::Active);
        assert_eq!(p.state_at(KeyState::Active, 50, None), KeyState::Rolled);
        let q = KeyPolicy { expires_ms: Some(100), ..Default::default() };
        assert_eq!(q.state_at(KeyState::Active, 99, None), KeyState::Active);
        assert_eq!(q.state_at(KeyState::Active, 100, None), KeyState::Expired);
        assert_eq!(q.state_at(KeyState::Disabled, 0, None), KeyState::Disabled);
        assert_eq!(q.state_at(KeyState::Revoked, 1000, None), KeyState::Revoked);
        // The end of a maximum age expires a key like an expiry does.
        let r = KeyPolicy::default();
        assert_eq!(r.state_at(KeyState::Active, 69, Some(70)), KeyState::Active);
        assert_eq!(r.state_at(KeyState::Active, 70, Some(70)), KeyState::Expired);
        assert_eq!(r.state_at(KeyState::Revoked, 70, Some(70)), KeyState::Revoked);
    }

    #[test]
    fn each_state_but_active_has_its_denial() {
        assert_eq!(KeyState::Active.denial(), None);
        let codes: Vec<_> =
            KeyState::ALL.iter().filter_map(|s| s.denial()).map(|(r, _)| r.as_str()).collect::<Vec<_>>();
        assert_eq!(
            codes,
            [
                "key_pending",
                "key_disabled",
                "key_expired",
                "key_rolled",
                "key_revoked",
                "key_compromised",
                "key_revoked"
            ]
        );
        for s in KeyState::ALL {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyState::parse("tampered"), None);
    }

    #[test]
    fn addresses_v4_v6_and_mapped() {
        let p = KeyPolicy {
            allow_ips: vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
            ..Default::default()
        };
        assert!(p.allows_address("10.1.2.3".parse().unwrap()));
        assert!(p.allows_address("::ffff:10.1.2.3".parse().unwrap()), "IPv4-mapped compares as IPv4");
        assert!(p.allows_address("2001:db8::1".parse().unwrap()));
        assert!(!p.allows_address("11.0.0.1".parse().unwrap()));
        assert!(!p.allows_any_address());
        assert!(KeyPolicy::default().allows_address("192.0.2.1".parse().unwrap()), "no allowlist: any");
        let any = KeyPolicy { allow_ips: vec!["0.0.0.0/0".parse().unwrap()], ..Default::default() };
        assert!(any.allows_any_address());
    }

    #[test]
    fn a_policy_round_trips_as_stored() {
        let p = KeyPolicy {
            scopes: vec!["account:bin:trade".parse().unwrap()],
            allow_ips: vec!["127.0.0.1/32".parse().unwrap()],
            guard: Some(OrderGuard { max_qty: Some("0.5".into()), ..Default::default() }),
            ..Default::default()
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"scopes":["account:bin:trade"],"allow_ips":["127.0.0.1/32"],"guard":{"max_qty":"0.5"}}"#);
        assert_eq!(serde_json::from_str::<KeyPolicy>(&text).unwrap(), p);
        assert!(p.order_guard().is_some());
    }
}
