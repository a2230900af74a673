//! `/v1/keys`: create, list, show and revoke access keys (`key:admin`).
//!
//! The subset rule: a key may create, see or revoke only keys whose scopes
//! its own scopes cover, so `key:admin` is no way to become `sys:admin`.
//! A new key is shown once, in the creation answer; only its keyed hash is
//! stored.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::keys::{KEYWARD_NAMESPACE, KeyEntry, KeyPolicy, KeyState, mac_input};
use crate::request::StrictJson;
use crate::routes::timestamp;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ipnet::IpNet;
use keyward_core::access_key::{self, AccessKeySecret};
use keyward_core::duration;
use keyward_core::scope::{Need, Scope, all_covered};
use keyward_store::KeyRecord;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    scopes: Vec<String>,
    owner: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    ttl: Option<String>,
    expires_at: Option<String>,
}

/// Parses a CIDR or a bare address (taken as a single host).
pub fn parse_net(s: &str) -> ApiResult<IpNet> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ApiError::bad(
                "invalid_cidr",
                format!("{s:?} is not an IP network; use CIDR notation such as 203.0.113.7/32, 10.0.0.0/8 or 2001:db8::/32"),
            )
        })
}

fn check_text(what: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "invalid_request",
            format!("{what} must be 1 to 128 printable characters"),
        ));
    }
    Ok(())
}

/// The JSON view of a key (never its hash or MAC).
pub fn key_json(k: &KeyEntry, now_ms: i64) -> Value {
    let expired = k.policy.expires_ms.is_some_and(|e| now_ms >= e);
    let state = if k.tampered {
        "tampered"
    } else if expired && k.state == KeyState::Active {
        KeyState::Expired.as_str()
    } else {
        k.state.as_str()
    };
    json!({
        "id": k.id,
        "name": k.name,
        "owner": k.owner,
        "namespace": k.namespace,
        "scopes": k.policy.scopes,
        "allow_ips": k.policy.allow_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires_at": k.policy.expires_ms.map(timestamp),
        "state": state,
        "created_at": timestamp(k.created_ms),
    })
}

/// Builds a stored row for a new key, with its MAC.
pub fn new_record(
    ring: &keyward_core::keyring::Keyring,
    secret: &AccessKeySecret,
    name: &str,
    owner: Option<String>,
    policy: &KeyPolicy,
    created_ms: i64,
) -> ApiResult<KeyRecord> {
    let mut rec = KeyRecord {
        id: access_key::new_key_id()?,
        hash: ring.access_key_hash(secret.expose().as_bytes()).to_vec(),
        name: name.to_string(),
        owner,
        namespace: KEYWARD_NAMESPACE.to_string(),
        policy: serde_json::to_string(policy).map_err(|e| ApiError::internal(&e.to_string()))?,
        state: KeyState::Active.as_str().to_string(),
        created_ms,
        mac: Vec::new(),
        uses_remaining: None,
        last_used_ms: None,
        last_used_ip: None,
    };
    rec.mac = ring.row_mac(&mac_input(&rec)).to_vec();
    Ok(rec)
}

/// `POST /v1/keys`.
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    StrictJson(req): StrictJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Need::KeyAdmin, "creating keys (key:admin)")?;
    check_text("name", &req.name)?;
    if let Some(o) = &req.owner {
        check_text("owner", o)?;
    }
    if req.scopes.is_empty() {
        return Err(ApiError::bad(
            "invalid_scope",
            "a key needs at least one scope, e.g. secret:read:apps/*",
        ));
    }
    let scopes = req
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(s) = scopes
        .iter()
        .find(|s| !all_covered(&who.key.policy.scopes, std::slice::from_ref(*s)))
    {
        return Err(ApiError::scope_missing(format!(
            "a key can only grant scopes it holds itself; {s} is not covered by this key's scopes"
        )));
    }
    let allow_ips = req
        .allow_ips
        .iter()
        .map(|s| parse_net(s))
        .collect::<ApiResult<Vec<_>>>()?;
    if scopes.iter().any(|s| matches!(s, Scope::Account(..))) && allow_ips.is_empty() {
        return Err(ApiError::bad(
            "allowlist_required",
            "a key with an account: scope must be bound to client networks (--allow-ip CIDR); 0.0.0.0/0 and ::/0 are an explicit opt-out",
        ));
    }
    let now = state.clock.now_ms();
    let expires_ms = match (&req.ttl, &req.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "invalid_request",
                "give ttl or expires_at, not both",
            ));
        }
        (Some(ttl), None) => Some(now + duration::parse_secs(ttl)? as i64 * 1000),
        (None, Some(at)) => {
            let t = OffsetDateTime::parse(at, &Rfc3339).map_err(|_| {
                ApiError::bad(
                    "invalid_request",
                    format!("expires_at {at:?} is not RFC 3339, e.g. 2027-01-31T00:00:00Z"),
                )
            })?;
            let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms <= now {
                return Err(ApiError::bad(
                    "invalid_request",
                    "expires_at is in the past",
                ));
            }
            Some(ms)
        }
        (None, None) => None,
    };
    let policy = KeyPolicy {
        scopes,
        allow_ips,
        expires_ms,
    };
    let ring = &who.unsealed.keyring;
    let secret = AccessKeySecret::generate(access_key::DEFAULT_PREFIX)?;
    let rec = new_record(ring, &secret, &req.name, req.owner.clone(), &policy, now)?;
    state.store.insert_key(&rec).await?;
    let entry = KeyEntry::from_record(&rec, ring);
    let mut body = key_json(&entry, now);
    who.unsealed
        .keys
        .write()
        .map_err(|_| ApiError::internal("lock"))?
        .upsert(entry);
    body["key"] = json!(secret.expose());
    tracing::info!(key_id = %rec.id, by = %who.key.id, "access key created");
    Ok((StatusCode::CREATED, Json(body)))
}

fn visible(who: &Principal, k: &KeyEntry) -> bool {
    k.id == who.key.id || all_covered(&who.key.policy.scopes, &k.policy.scopes)
}

/// `GET /v1/keys`.
pub async fn list(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "listing keys (key:admin)")?;
    let now = state.clock.now_ms();
    let keys: Vec<Value> = who
        .unsealed
        .keys
        .read()
        .map_err(|_| ApiError::internal("lock"))?
        .all()
        .iter()
        .filter(|k| visible(&who, k))
        .map(|k| key_json(k, now))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

fn find(who: &Principal, id: &str) -> ApiResult<Arc<KeyEntry>> {
    who.unsealed
        .keys
        .read()
        .map_err(|_| ApiError::internal("lock"))?
        .by_id(id)
        .filter(|k| visible(who, k))
        .ok_or_else(|| ApiError::not_found(format!("no key {id:?}")))
}

/// `GET /v1/keys/{id}`.
pub async fn show(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "reading keys (key:admin)")?;
    let key = find(&who, &id)?;
    Ok(Json(key_json(&key, state.clock.now_ms())))
}

/// `DELETE /v1/keys/{id}` and `POST /v1/keys/{id}/revoke`: immediate, final.
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "revoking keys (key:admin)")?;
    let key = find(&who, &id)?;
    let ring = &who.unsealed.keyring;
    let mut rec = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .find(|r| r.id == key.id)
        .ok_or_else(|| ApiError::not_found(format!("no key {id:?}")))?;
    if !ring.verify_row_mac(&mac_input(&rec), &rec.mac) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_tampered",
            "this key's stored record failed its integrity check",
        ));
    }
    rec.state = KeyState::Revoked.as_str().to_string();
    rec.mac = ring.row_mac(&mac_input(&rec)).to_vec();
    state
        .store
        .update_key_state(&rec.id, &rec.state, &rec.mac)
        .await?;
    let entry = KeyEntry::from_record(&rec, ring);
    let body = key_json(&entry, state.clock.now_ms());
    who.unsealed
        .keys
        .write()
        .map_err(|_| ApiError::internal("lock"))?
        .upsert(entry);
    tracing::info!(key_id = %rec.id, by = %who.key.id, "access key revoked");
    Ok(Json(body))
}
