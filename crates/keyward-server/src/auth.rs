//! Authentication of every route but health: `Authorization: Bearer kw_…`.
//!
//! Order of checks, cheapest first and none touching disk: sealed? header
//! present and well-formed? checksum? keyed-hash lookup in the in-memory
//! index? row MAC intact? namespace? lifecycle, expiry, client address?
//! Scopes are checked by each route with [`Principal::require`]. Nothing
//! here logs or echoes the presented key.

use crate::error::{ApiError, ApiResult};
use crate::keys::{KEYWARD_NAMESPACE, KeyEntry, KeyState};
use crate::state::{AppState, Unsealed};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use keyward_core::access_key;
use keyward_core::scope::{Need, any_grants};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's key.
    pub key: Arc<KeyEntry>,
    /// The unsealed state the request runs against.
    pub unsealed: Arc<Unsealed>,
    /// The client address.
    pub ip: IpAddr,
}

impl Principal {
    /// Refuses with `scope_missing` unless one of the key's scopes grants `need`.
    pub fn require(&self, need: Need<'_>, what: &str) -> ApiResult<()> {
        if any_grants(&self.key.policy.scopes, need) {
            Ok(())
        } else {
            Err(ApiError::scope_missing(format!(
                "this key has no scope that allows {what}"
            )))
        }
    }

    /// True when the key holds a scope granting `need`.
    pub fn may(&self, need: Need<'_>) -> bool {
        any_grants(&self.key.policy.scopes, need)
    }
}

fn deny(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Checks the lifecycle, expiry and client address of a found key.
pub fn check_key(key: &KeyEntry, now_ms: i64, ip: IpAddr) -> ApiResult<()> {
    if key.tampered {
        return Err(deny(
            "key_tampered",
            "this key's stored record failed its integrity check; it is refused",
        ));
    }
    match key.state {
        KeyState::Active => {}
        KeyState::Disabled => return Err(deny("key_disabled", "this key is disabled")),
        KeyState::Revoked | KeyState::Compromised | KeyState::Destroyed => {
            return Err(deny("key_revoked", "this key was revoked"));
        }
        KeyState::Expired => return Err(deny("key_expired", "this key has expired")),
        KeyState::Rolled => {
            return Err(deny(
                "key_rolled",
                "this key was rolled and its grace period is over",
            ));
        }
        KeyState::Pending => return Err(deny("key_pending", "this key is not valid yet")),
    }
    if key.policy.expires_ms.is_some_and(|exp| now_ms >= exp) {
        return Err(deny("key_expired", "this key has expired"));
    }
    let ip = canonical_ip(ip);
    if !key.policy.allow_ips.is_empty() && !key.policy.allow_ips.iter().any(|net| net.contains(&ip))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            format!("this key may not be used from {ip}"),
        ));
    }
    Ok(())
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The bearer token of a request, if the header is well-formed.
fn bearer(parts: &Parts) -> ApiResult<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::key_invalid("no access key: send `Authorization: Bearer kw_…`"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::key_invalid("the Authorization header is not ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::key_invalid("expected `Authorization: Bearer kw_…`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::key_invalid(
            "expected `Authorization: Bearer kw_…`",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let unsealed = state.unsealed()?;
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("no peer address on the connection"))?;
        let token = bearer(parts)?;
        if access_key::check_format(token).is_none() {
            return Err(ApiError::key_invalid(
                "malformed access key (wrong format or checksum)",
            ));
        }
        let hash = unsealed.keyring.access_key_hash(token.as_bytes());
        let key = unsealed
            .keys
            .read()
            .map_err(|_| ApiError::internal("key index lock poisoned"))?
            .by_hash(&hash)
            .ok_or_else(|| ApiError::key_invalid("unknown access key"))?;
        if key.namespace != KEYWARD_NAMESPACE && !key.tampered {
            // Platform keys verify through /v1/keys/verify; they are no keyward credential.
            return Err(ApiError::key_invalid("unknown access key"));
        }
        check_key(&key, state.clock.now_ms(), ip)?;
        Ok(Principal { key, unsealed, ip })
    }
}
