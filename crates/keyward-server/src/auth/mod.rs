//! Who is calling: identification of an access key (`kw_…`) or a
//! short-lived token (`kwt_…`), and the [`Caller`] the pipeline authorizes
//! and admits.
//!
//! Identification is in memory, cheapest check first: format and checksum,
//! keyed-hash lookup, row MAC, namespace, lifecycle (state, not-before,
//! expiry, roll grace), then the client address. Failed identifications
//! feed the per-address throttle, which never acts on a valid key. Nothing
//! here spends a limit: rate and uses are admission, after authorization.
//! Nothing here logs or echoes the presented credential.

pub(crate) mod throttle;
pub(crate) mod token;

use crate::audit::Record;
use crate::config::ThrottleConfig;
use crate::error::{Error, Result};
use crate::keys::{Admitted, KEYWARD_NAMESPACE, KeyEntry, Keys, RateInfo};
use crate::seal::{Barrier, Unsealed};
use keyward_core::access_key;
use keyward_core::clock::Clock;
use keyward_core::decision::DenyReason;
use keyward_core::policy::canonical_ip;
use keyward_core::scope::{Need, Scope, all_covered, any_grants, glob_match};
use std::net::IpAddr;
use std::sync::Arc;
use throttle::{AuthThrottle, Verdict};

/// An identified caller: its key (for a token, the parent key), the
/// unsealed session the request runs against, its address, and the
/// request's audit record, which hears every decision.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The caller's key (for a token: its parent key).
    pub key: Arc<KeyEntry>,
    /// The unsealed session the request runs against.
    pub unsealed: Arc<Unsealed>,
    /// The client address.
    pub ip: IpAddr,
    /// Set when the caller used a short-lived token: its scopes.
    pub token_scopes: Option<Vec<Scope>>,
    /// The request's audit record.
    pub record: Record,
    keys: Arc<Keys>,
}

impl Caller {
    /// The scopes in force: the token's, or the key's.
    pub(crate) fn scopes(&self) -> &[Scope] {
        self.token_scopes.as_deref().unwrap_or(&self.key.policy.scopes)
    }

    /// True when a scope in force grants `need`.
    pub(crate) fn may(&self, need: Need<'_>) -> bool {
        any_grants(self.scopes(), need)
    }

    /// Refuses with `scope_missing` unless a scope grants `need`.
    pub(crate) fn require(&self, need: Need<'_>, what: &str) -> Result<()> {
        if self.may(need) {
            Ok(())
        } else {
            Err(Error::scope_missing(format!("this key has no scope that allows {what}")))
        }
    }

    /// The rule for minting keys and tokens: refuses with `scope_missing`
    /// unless the caller's scopes cover every one of `wanted`.
    pub(crate) fn require_covers(&self, wanted: &[Scope], what: &str) -> Result<()> {
        match wanted.iter().find(|s| !all_covered(self.scopes(), std::slice::from_ref(*s))) {
            Some(s) => Err(Error::scope_missing(format!(
                "{what} can only carry scopes the caller holds itself; {s} is not covered by this key's scopes"
            ))),
            None => Ok(()),
        }
    }

    /// True when some scope names `account` (any class).
    pub(crate) fn has_scope_on_account(&self, account: &str) -> bool {
        self.scopes().iter().any(|s| matches!(s, Scope::Account(glob, _) if glob_match(glob, account)))
    }

    /// Spends one request of the key's rate (the first step of admission).
    pub(crate) fn spend_rate(&self) -> Result<Option<RateInfo>> {
        self.keys.spend_rate(&self.key)
    }

    /// Takes a use (the last step of admission) and tells the audit record
    /// the request is allowed.
    pub(crate) async fn take_use(&self, ratelimit: Option<RateInfo>) -> Result<Admitted> {
        let admitted = self.keys.take_use(&self.unsealed, &self.key, self.ip, ratelimit).await?;
        self.record.allow();
        Ok(admitted)
    }

    /// Admits an authorized request: its rate, then a use. Call it after
    /// every authorization check and before anything changes.
    pub(crate) async fn admit(&self) -> Result<Admitted> {
        let rate = self.spend_rate()?;
        self.take_use(rate).await
    }
}

/// The identification service.
#[derive(Debug)]
pub(crate) struct Auth {
    keys: Arc<Keys>,
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    throttle: AuthThrottle,
}

impl Auth {
    /// A service over the key index and the barrier.
    pub(crate) fn new(keys: Arc<Keys>, barrier: Arc<Barrier>, clock: Arc<dyn Clock>, throttle: ThrottleConfig) -> Self {
        Self { keys, barrier, clock, throttle: AuthThrottle::new(throttle) }
    }

    /// Identifies the caller presenting `credential` (or the reason there is
    /// none) from client address `ip`. A failure feeds the throttle; then the
    /// key's address allowlist is checked (not a failed authentication: the
    /// key is valid, only not from here).
    pub(crate) async fn identify(&self, credential: Result<&str>, ip: IpAddr, record: Record) -> Result<Caller> {
        record.client(ip);
        let unsealed = self.barrier.unsealed()?;
        let now = self.clock.now_ms();
        let found = credential.and_then(|c| find_key(&self.keys, &unsealed, c, ip, now, &record));
        let (key, token_scopes) = match found {
            Ok(k) => k,
            Err(e) => return Err(self.throttled(e, ip, now).await),
        };
        if !key.policy.allows_address(ip) {
            return Err(Error::new(
                DenyReason::IpNotAllowed,
                format!("this key may not be used from {}", canonical_ip(ip)),
            ));
        }
        Ok(Caller { key, unsealed, ip, token_scopes, record, keys: self.keys.clone() })
    }

    async fn throttled(&self, e: Error, ip: IpAddr, now: i64) -> Error {
        match self.throttle.fail(ip, now) {
            Verdict::Answer => e,
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                e
            }
            Verdict::Blocked(d) => Error::new(
                DenyReason::AuthThrottled,
                "too many failed authentications from this address; valid keys still work",
            )
            .retry_after(d.as_secs().max(1)),
        }
    }
}

/// Finds the key (or token's parent key) a credential names and checks its
/// identity, in memory only; `record` learns the key as soon as it is
/// found. Every error here counts as a failed authentication.
pub(crate) fn find_key(
    keys: &Keys,
    unsealed: &Unsealed,
    credential: &str,
    ip: IpAddr,
    now_ms: i64,
    record: &Record,
) -> Result<(Arc<KeyEntry>, Option<Vec<Scope>>)> {
    let (key, token_scopes) = if credential.starts_with(token::PREFIX) {
        let claims =
            token::open(unsealed, credential).ok_or_else(|| Error::key_invalid("malformed or forged token"))?;
        record.key(&claims.key);
        if now_ms >= claims.exp {
            return Err(Error::new(DenyReason::KeyExpired, "this token has expired"));
        }
        if canonical_ip(ip) != canonical_ip(claims.ip) {
            return Err(Error::new(DenyReason::IpNotAllowed, "this token is bound to another address"));
        }
        let parent = keys.by_id(&claims.key)?.ok_or_else(|| Error::key_invalid("unknown access key"))?;
        // Only what the parent still holds.
        let scopes =
            claims.scopes.into_iter().filter(|s| all_covered(&parent.policy.scopes, std::slice::from_ref(s))).collect();
        (parent, Some(scopes))
    } else {
        if access_key::check_format(credential).is_none() {
            return Err(Error::key_invalid("malformed access key (wrong format or checksum)"));
        }
        let hash = unsealed.access_key_hash(credential.as_bytes());
        (keys.by_hash(&hash)?.ok_or_else(|| Error::key_invalid("unknown access key"))?, None)
    };
    if &*key.namespace != KEYWARD_NAMESPACE && !key.tampered {
        // Platform keys verify through /v1/keys/verify; they are no keyward
        // credential, and they are answered exactly like unknown keys.
        return Err(Error::key_invalid("unknown access key"));
    }
    record.key(&key.id);
    key.check_identity(now_ms)?;
    Ok((key, token_scopes))
}
