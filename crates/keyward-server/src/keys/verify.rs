//! The verify API for platforms: is this platform key valid, for this
//! permission, from this address? A valid answer counts a use and a rate
//! hit like the platform's own request; an invalid one spends nothing. Keys
//! of namespaces the caller may not verify answer exactly like unknown keys.

use super::{KeyEntry, Keys, RateInfo};
use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use keyward_core::access_key;
use keyward_core::clock::rfc3339;
use keyward_core::decision::DenyReason;
use keyward_core::scope::{Need, Scope, any_grants};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// Body of `POST /v1/keys/verify`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    #[schema(value_type = String)]
    key: zeroize::Zeroizing<String>,
    permission: Option<String>,
    ip: Option<String>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest").field("key", &"[redacted]").field("permission", &self.permission).finish()
    }
}

/// The answer of `POST /v1/keys/verify`. A key that is unknown, malformed or
/// in another namespace answers with every field null but `code`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VerifyAnswer {
    valid: bool,
    code: Option<&'static str>,
    key_id: Option<String>,
    name: Option<String>,
    owner: Option<String>,
    namespace: Option<String>,
    permissions: Option<Vec<String>>,
    meta: Option<BTreeMap<String, String>>,
    expires_at: Option<String>,
    remaining: Option<i64>,
    ratelimit: Option<RateInfo>,
}

impl VerifyAnswer {
    fn unknown() -> Self {
        Self {
            valid: false,
            code: Some(DenyReason::KeyInvalid.as_str()),
            key_id: None,
            name: None,
            owner: None,
            namespace: None,
            permissions: None,
            meta: None,
            expires_at: None,
            remaining: None,
            ratelimit: None,
        }
    }

    fn about(key: &KeyEntry) -> Self {
        let p = &key.policy;
        Self {
            valid: false,
            code: None,
            key_id: Some(key.id.to_string()),
            name: Some(key.name.to_string()),
            owner: key.owner.as_deref().map(str::to_string),
            namespace: Some(key.namespace.to_string()),
            permissions: Some(p.permissions.clone()),
            meta: Some(p.meta.clone()),
            expires_at: p.expires_ms.map(rfc3339),
            remaining: p.uses.map(|_| key.uses_remaining.load(Ordering::Relaxed).max(0)),
            ratelimit: None,
        }
    }
}

/// True when a caller holding `held` may use the verify API at all.
pub(crate) fn may_verify(held: &[Scope]) -> bool {
    held.iter().any(|s| matches!(s, Scope::KeyVerify(_)))
}

impl VerifyRequest {
    /// The end client's address, if given.
    pub(crate) fn ip(&self) -> Result<Option<IpAddr>> {
        self.ip
            .as_deref()
            .map(|s| s.parse::<IpAddr>().map_err(|_| Error::invalid(format!("ip {s:?} is not an IP address"))))
            .transpose()
    }
}

impl Keys {
    /// Verifies a platform key for a caller holding `held` (who checked
    /// [`may_verify`]) calling from `caller_ip`. Refusals are answers
    /// (`valid: false` with the code), not errors; errors are failures.
    pub(crate) async fn verify_platform_key(
        &self,
        unsealed: &Unsealed,
        held: &[Scope],
        caller_ip: IpAddr,
        req: &VerifyRequest,
    ) -> Result<VerifyAnswer> {
        let ip = req.ip()?;
        if access_key::check_format(&req.key).is_none() {
            return Ok(VerifyAnswer::unknown());
        }
        let hash = unsealed.access_key_hash(req.key.as_bytes());
        let Some(key) = self.by_hash(&hash)?.filter(|k| any_grants(held, Need::KeyVerify(&k.namespace))) else {
            return Ok(VerifyAnswer::unknown());
        };
        let mut out = VerifyAnswer::about(&key);
        match self
            .admit_platform_key(unsealed, &key, req.permission.as_deref(), ip.unwrap_or(caller_ip), ip.is_some())
            .await
        {
            Ok(admitted) => {
                out.valid = true;
                out.code = Some("valid");
                if let Some(left) = admitted.remaining() {
                    out.remaining = Some(left);
                }
                out.ratelimit = admitted.ratelimit();
            }
            Err(e) if e.is_denial() => {
                out.code = Some(e.code.as_str());
                if e.code == Code::Deny(DenyReason::RateLimited)
                    && let Some(r) = key.policy.rate
                {
                    out.ratelimit =
                        Some(RateInfo { limit: r.burst, remaining: 0, reset_ms: e.retry_after.unwrap_or(1) * 1000 });
                }
                if e.code == Code::Deny(DenyReason::UsesExhausted) {
                    out.remaining = Some(0);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// Identity, permission and address first; then the key's rate and one use.
    async fn admit_platform_key(
        &self,
        unsealed: &Unsealed,
        key: &KeyEntry,
        permission: Option<&str>,
        ip: IpAddr,
        ip_given: bool,
    ) -> Result<super::Admitted> {
        key.check_identity(self.clock.now_ms())?;
        if let Some(perm) = permission
            && !key.policy.permissions.iter().any(|x| x == perm)
        {
            return Err(Error::scope_missing(format!("the key lacks permission {perm:?}")));
        }
        if !key.policy.allow_ips.is_empty() && !ip_given {
            return Err(Error::new(
                DenyReason::IpNotAllowed,
                "this key is bound to client networks: pass the client's ip",
            ));
        }
        if !key.policy.allows_address(ip) {
            return Err(Error::new(DenyReason::IpNotAllowed, format!("this key may not be used from {ip}")));
        }
        self.admit(unsealed, key, ip).await
    }
}
