//! Authentication of every route but health and unseal:
//! `Authorization: Bearer kw_…` (an access key) or `Bearer kwt_…` (a
//! short-lived token minted from one).
//!
//! Order of checks, cheapest first, none touching disk except the durable
//! decrement of a use-limited key: sealed? header well-formed? checksum?
//! keyed-hash lookup in the in-memory index? row MAC intact? namespace?
//! lifecycle (state, not-before, expiry, roll grace)? client address? rate?
//! uses? Scopes are checked by each route with [`Principal::require`].
//! Failed authentications feed the per-address throttle, which never acts on
//! a valid key. Nothing here logs or echoes the presented key.

use crate::client_ip::client_ip;
use crate::error::{ApiError, ApiResult};
use crate::keys::{KEYWARD_NAMESPACE, KeyEntry, KeyState};
use crate::state::{AppState, Unsealed};
use crate::throttle::Verdict;
use crate::token;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use governor::clock::{Clock as _, DefaultClock};
use keyward_core::access_key;
use keyward_core::scope::{Need, Scope, all_covered, any_grants};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's key (for a token: its parent key).
    pub key: Arc<KeyEntry>,
    /// The unsealed state the request runs against.
    pub unsealed: Arc<Unsealed>,
    /// The client address.
    pub ip: IpAddr,
    /// Set when the caller used a short-lived token: its scopes.
    pub token_scopes: Option<Vec<Scope>>,
}

impl Principal {
    /// The scopes in force: the token's, or the key's.
    pub fn scopes(&self) -> &[Scope] {
        self.token_scopes.as_deref().unwrap_or(&self.key.policy.scopes)
    }

    /// Refuses with `scope_missing` unless one of the scopes grants `need`.
    pub fn require(&self, need: Need<'_>, what: &str) -> ApiResult<()> {
        if self.may(need) {
            Ok(())
        } else {
            Err(ApiError::scope_missing(format!("this key has no scope that allows {what}")))
        }
    }

    /// True when a scope in force grants `need`.
    pub fn may(&self, need: Need<'_>) -> bool {
        any_grants(self.scopes(), need)
    }
}

/// Rate-limit state after a request, for the verify API.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct RateInfo {
    /// Burst size.
    pub limit: u32,
    /// Requests left in the current burst.
    pub remaining: u32,
    /// Milliseconds until the burst is full again.
    pub reset_ms: u64,
}

/// A key that passed every check, with what the check consumed.
#[derive(Debug)]
pub struct Admitted {
    /// Uses left after this request (use-limited keys).
    pub remaining: Option<i64>,
    /// Rate-limit state (rate-limited keys).
    pub ratelimit: Option<RateInfo>,
}

fn deny(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// A lifecycle refusal for a state other than active.
pub fn state_denial(state: KeyState) -> Option<ApiError> {
    Some(match state {
        KeyState::Active => return None,
        KeyState::Disabled => deny("key_disabled", "this key is disabled"),
        KeyState::Revoked | KeyState::Compromised | KeyState::Destroyed => deny("key_revoked", "this key was revoked"),
        KeyState::Expired => deny("key_expired", "this key has expired"),
        KeyState::Rolled => deny("key_rolled", "this key was rolled and its grace period is over"),
        KeyState::Pending => deny("key_pending", "this key is not valid yet"),
    })
}

/// Integrity and lifecycle: the checks whose failure counts as a failed authentication.
pub fn check_identity(key: &KeyEntry, now_ms: i64) -> ApiResult<()> {
    if key.tampered {
        return Err(deny("key_tampered", "this key's stored record failed its integrity check; it is refused"));
    }
    match state_denial(key.effective_state(now_ms)) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Address, rate and uses: the checks after identity. A use is taken only
/// when everything else passed, and durably before the request proceeds.
pub async fn admit(state: &AppState, key: &KeyEntry, ip: IpAddr, now_ms: i64) -> ApiResult<Admitted> {
    let ip = canonical_ip(ip);
    if !key.policy.allow_ips.is_empty() && !key.policy.allow_ips.iter().any(|net| net.contains(&ip)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            format!("this key may not be used from {ip}"),
        ));
    }
    let mut ratelimit = None;
    if let Some(lim) = &key.limiter {
        match lim.check() {
            Ok(snap) => {
                let q = snap.quota();
                let used = q.burst_size().get().saturating_sub(snap.remaining_burst_capacity());
                ratelimit = Some(RateInfo {
                    limit: q.burst_size().get(),
                    remaining: snap.remaining_burst_capacity(),
                    reset_ms: (q.replenish_interval() * used).as_millis() as u64,
                });
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("this key's rate limit is reached; retry in {} ms", wait.as_millis()),
                );
                e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
                return Err(e);
            }
        }
    }
    let mut remaining = None;
    if key.policy.uses.is_some() {
        match state.store.consume_use(&key.id).await? {
            Some(left) => {
                key.uses_remaining.store(left, std::sync::atomic::Ordering::Relaxed);
                remaining = Some(left);
            }
            None => {
                key.uses_remaining.store(0, std::sync::atomic::Ordering::Relaxed);
                return Err(ApiError::new(StatusCode::FORBIDDEN, "uses_exhausted", "this key has no uses left"));
            }
        }
    }
    key.note_use(now_ms, ip);
    Ok(Admitted { remaining, ratelimit })
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The bearer token of a request, if the header is well-formed.
pub fn bearer(parts: &Parts) -> ApiResult<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::key_invalid("no access key: send `Authorization: Bearer kw_…`"))?;
    let value = value.to_str().map_err(|_| ApiError::key_invalid("the Authorization header is not ASCII"))?;
    let (scheme, token) =
        value.split_once(' ').ok_or_else(|| ApiError::key_invalid("expected `Authorization: Bearer kw_…`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::key_invalid("expected `Authorization: Bearer kw_…`"));
    }
    Ok(token.trim())
}

/// Finds the key (or token's parent key) a credential names and checks its
/// identity, in memory only. Every error here counts as a failed
/// authentication.
pub fn identify(
    unsealed: &Unsealed,
    credential: &str,
    ip: IpAddr,
    now_ms: i64,
) -> ApiResult<(Arc<KeyEntry>, Option<Vec<Scope>>)> {
    let index = || unsealed.keys.read().map_err(|_| ApiError::internal("key index lock poisoned"));
    let (key, token_scopes) = if credential.starts_with(token::PREFIX) {
        let claims = token::open(&unsealed.keyring, credential)
            .ok_or_else(|| ApiError::key_invalid("malformed or forged token"))?;
        if now_ms >= claims.exp {
            return Err(deny("key_expired", "this token has expired"));
        }
        if canonical_ip(ip) != canonical_ip(claims.ip) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "this token is bound to another address",
            ));
        }
        let parent = index()?.by_id(&claims.key).ok_or_else(|| ApiError::key_invalid("unknown access key"))?;
        // Only what the parent still holds.
        let scopes =
            claims.scopes.into_iter().filter(|s| all_covered(&parent.policy.scopes, std::slice::from_ref(s))).collect();
        (parent, Some(scopes))
    } else {
        if access_key::check_format(credential).is_none() {
            return Err(ApiError::key_invalid("malformed access key (wrong format or checksum)"));
        }
        let hash = unsealed.keyring.access_key_hash(credential.as_bytes());
        (index()?.by_hash(&hash).ok_or_else(|| ApiError::key_invalid("unknown access key"))?, None)
    };
    if key.namespace != KEYWARD_NAMESPACE && !key.tampered {
        // Platform keys verify through /v1/keys/verify; they are no keyward credential.
        return Err(ApiError::key_invalid("unknown access key"));
    }
    check_identity(&key, now_ms)?;
    Ok((key, token_scopes))
}

/// Authenticates a credential (or the reason there is none) from `peer`:
/// identity, the failed-auth throttle, then address, rate and uses.
pub async fn authenticate(
    state: &AppState,
    unsealed: Arc<Unsealed>,
    headers: &axum::http::HeaderMap,
    peer: IpAddr,
    credential: ApiResult<&str>,
) -> ApiResult<Principal> {
    let ip = client_ip(peer, headers, &state.config.trusted_proxies);
    let now = state.clock.now_ms();
    let found = credential.and_then(|cred| identify(&unsealed, cred, ip, now));
    let (key, token_scopes) = match found {
        Ok(k) => k,
        Err(e) => {
            return Err(match state.throttle.fail(ip, now) {
                Verdict::Answer => e,
                Verdict::Delay(d) => {
                    tokio::time::sleep(d).await;
                    e
                }
                Verdict::Blocked(d) => {
                    let mut t = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "auth_throttled",
                        "too many failed authentications from this address; valid keys still work",
                    );
                    t.retry_after = Some(d.as_secs().max(1));
                    t
                }
            });
        }
    };
    admit(state, &key, ip, now).await?;
    Ok(Principal { key, unsealed, ip, token_scopes })
}

/// The TCP peer of a request.
pub fn peer(parts: &Parts) -> ApiResult<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .ok_or_else(|| ApiError::internal("no peer address on the connection"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let unsealed = state.unsealed()?;
        let peer = peer(parts)?;
        let who = authenticate(state, unsealed, &parts.headers, peer, bearer(parts)).await?;
        crate::audit::note(&parts.extensions, |c| {
            c.key_id = who.key.id.clone();
            c.ip = who.ip.to_string();
        });
        Ok(who)
    }
}
