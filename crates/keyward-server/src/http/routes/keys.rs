//! `/v1/keys`, `/v1/namespaces`: create, list, show, disable, enable, revoke
//! and roll access keys, and the verify API for platforms.
//!
//! The subset rule: a key may create, see or change only keys whose scopes
//! its own scopes cover, so `key:admin` is no way to become `sys:admin`.
//! Platform keys (any namespace but `keyward`) carry free-form permissions
//! instead of scopes, are managed with `key:admin` plus `key:verify:<ns>`,
//! and never authenticate to keyward's own API. A new key is shown once, in
//! the creation answer; only its keyed hash is stored.

use crate::auth::{Principal, RateInfo, admit, check_identity};
use crate::error::{ApiError, ApiResult};
use crate::keys::{KEYWARD_NAMESPACE, KeyEntry, KeyPolicy, KeyState, mac_input};
use crate::request::{StrictJson, parse_query};
use crate::routes::timestamp;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use ipnet::IpNet;
use keyward_core::access_key::{self, AccessKeySecret};
use keyward_core::duration;
use keyward_core::keyring::Keyring;
use keyward_core::rate::RateSpec;
use keyward_core::scope::{Need, Scope, all_covered};
use keyward_store::{KeyRecord, NamespaceRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    namespace: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    owner: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    ttl: Option<String>,
    expires_at: Option<String>,
    not_before: Option<String>,
    rate: Option<String>,
    uses: Option<u64>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    symbols: Vec<String>,
    max_qty: Option<String>,
    max_notional: Option<String>,
    max_notional_per_day: Option<String>,
    price_band: Option<String>,
}

/// Parses a CIDR or a bare address (taken as a single host).
pub fn parse_net(s: &str) -> ApiResult<IpNet> {
    s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
        ApiError::bad(
            "invalid_cidr",
            format!(
                "{s:?} is not an IP network; use CIDR notation such as 203.0.113.7/32, 10.0.0.0/8 or 2001:db8::/32"
            ),
        )
    })
}

fn check_text(what: &str, s: &str) -> ApiResult<()> {
    if s.trim().is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(ApiError::bad("invalid_request", format!("{what} must be 1 to 128 printable characters")));
    }
    Ok(())
}

fn parse_time(what: &str, s: &str) -> ApiResult<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        ApiError::bad("invalid_request", format!("{what} {s:?} is not RFC 3339, e.g. 2027-01-31T00:00:00Z"))
    })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Checks a namespace name: 1 to 64 of `a-z 0-9 -`, starting with a letter or digit.
pub fn check_namespace(ns: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&ns.len())
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "invalid_namespace",
            format!("namespace {ns:?}: use 1 to 64 of a-z, 0-9 and '-', e.g. shop-api"),
        ))
    }
}

/// The JSON view of a key (never its hash or MAC).
pub fn key_json(k: &KeyEntry, now_ms: i64) -> Value {
    let state = if k.tampered { "tampered" } else { k.effective_state(now_ms).as_str() };
    let last_used = k.last_used_ms.load(Ordering::Relaxed);
    let uses_left = k.uses_remaining.load(Ordering::Relaxed);
    let p = &k.policy;
    json!({
        "id": k.id,
        "name": k.name,
        "owner": k.owner,
        "namespace": k.namespace,
        "scopes": p.scopes,
        "permissions": p.permissions,
        "meta": p.meta,
        "allow_ips": p.allow_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires_at": p.expires_ms.map(timestamp),
        "not_before": p.not_before_ms.map(timestamp),
        "rate": p.rate.map(|r| r.to_string()),
        "uses": p.uses,
        "uses_remaining": p.uses.map(|_| uses_left.max(0)),
        "grace_until": p.grace_until_ms.map(timestamp),
        "guard": p.guard,
        "rolled_to": p.rolled_to,
        "state": state,
        "created_at": timestamp(k.created_ms),
        "last_used_at": (last_used > 0).then(|| timestamp(last_used)),
        "last_used_ip": k.last_used_ip.lock().ok().and_then(|g| *g).map(|ip| ip.to_string()),
    })
}

/// Builds a stored row for a new key, with its MAC.
#[allow(clippy::too_many_arguments)]
pub fn new_record(
    ring: &Keyring,
    secret: &AccessKeySecret,
    name: &str,
    owner: Option<String>,
    namespace: &str,
    policy: &KeyPolicy,
    uses_remaining: Option<i64>,
    created_ms: i64,
) -> ApiResult<KeyRecord> {
    let mut rec = KeyRecord {
        id: access_key::new_key_id()?,
        hash: ring.access_key_hash(secret.expose().as_bytes()).to_vec(),
        name: name.to_string(),
        owner,
        namespace: namespace.to_string(),
        policy: serde_json::to_string(policy).map_err(|e| ApiError::internal(&e.to_string()))?,
        state: KeyState::Active.as_str().to_string(),
        created_ms,
        mac: Vec::new(),
        uses_remaining,
        last_used_ms: None,
        last_used_ip: None,
    };
    rec.mac = ring.row_mac(&mac_input(&rec)).to_vec();
    Ok(rec)
}

/// True when `who` may manage keys of `namespace` with these scopes.
fn may_manage(who: &Principal, namespace: &str, scopes: &[Scope]) -> bool {
    if namespace == KEYWARD_NAMESPACE { all_covered(who.scopes(), scopes) } else { who.may(Need::KeyVerify(namespace)) }
}

fn visible(who: &Principal, k: &KeyEntry) -> bool {
    k.id == who.key.id || may_manage(who, &k.namespace, &k.policy.scopes)
}

/// The key prefix of a namespace, creating the namespace (prefix `kw`) on first use.
async fn namespace_prefix(state: &AppState, ns: &str, now: i64) -> ApiResult<String> {
    if ns == KEYWARD_NAMESPACE {
        return Ok(access_key::DEFAULT_PREFIX.to_string());
    }
    if let Some(found) = state.store.list_namespaces().await?.into_iter().find(|n| n.name == ns) {
        return Ok(found.prefix);
    }
    let rec = NamespaceRecord { name: ns.to_string(), prefix: access_key::DEFAULT_PREFIX.to_string(), created_ms: now };
    match state.store.insert_namespace(&rec).await {
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Box::pin(namespace_prefix(state, ns, now)).await
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
    let namespace = req.namespace.clone().unwrap_or_else(|| KEYWARD_NAMESPACE.to_string());
    check_namespace(&namespace)?;
    let scopes = req.scopes.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?;
    if namespace == KEYWARD_NAMESPACE {
        if scopes.is_empty() {
            return Err(ApiError::bad("invalid_scope", "a key needs at least one scope, e.g. secret:read:apps/*"));
        }
        if !req.permissions.is_empty() {
            return Err(ApiError::bad(
                "invalid_request",
                "permissions belong to platform keys: give --namespace NS (keyward's own keys take scopes)",
            ));
        }
        if let Some(s) = scopes.iter().find(|s| !all_covered(who.scopes(), std::slice::from_ref(*s))) {
            return Err(ApiError::scope_missing(format!(
                "a key can only grant scopes it holds itself; {s} is not covered by this key's scopes"
            )));
        }
    } else {
        if !scopes.is_empty() {
            return Err(ApiError::bad(
                "invalid_request",
                "a platform key carries permissions (--perm), not keyward scopes: it can never authenticate to keyward",
            ));
        }
        who.require(
            Need::KeyVerify(&namespace),
            &format!("managing keys of namespace {namespace} (key:verify:{namespace})"),
        )?;
    }
    for p in &req.permissions {
        check_text("a permission", p)?;
    }
    for (k, v) in &req.meta {
        check_text("a meta key", k)?;
        if v.len() > 1024 {
            return Err(ApiError::bad("invalid_request", "meta values are at most 1024 bytes"));
        }
    }
    let allow_ips = req.allow_ips.iter().map(|s| parse_net(s)).collect::<ApiResult<Vec<_>>>()?;
    if scopes.iter().any(|s| matches!(s, Scope::Account(..))) && allow_ips.is_empty() {
        return Err(ApiError::bad(
            "allowlist_required",
            "a key with an account: scope must be bound to client networks (--allow-ip CIDR); 0.0.0.0/0 and ::/0 are an explicit opt-out",
        ));
    }
    let now = state.clock.now_ms();
    let expires_ms = match (&req.ttl, &req.expires_at) {
        (Some(_), Some(_)) => return Err(ApiError::bad("invalid_request", "give ttl or expires_at, not both")),
        (Some(ttl), None) => Some(now + duration::parse_secs(ttl)? as i64 * 1000),
        (None, Some(at)) => {
            let ms = parse_time("expires_at", at)?;
            if ms <= now {
                return Err(ApiError::bad("invalid_request", "expires_at is in the past"));
            }
            Some(ms)
        }
        (None, None) => None,
    };
    let not_before_ms = req.not_before.as_deref().map(|t| parse_time("not_before", t)).transpose()?;
    let rate = req.rate.as_deref().map(str::parse::<RateSpec>).transpose()?;
    if req.uses == Some(0) {
        return Err(ApiError::bad("invalid_request", "uses must be at least 1"));
    }
    let guard = crate::guards::OrderGuard {
        symbols: req.symbols.clone(),
        max_qty: req.max_qty.clone(),
        max_notional: req.max_notional.clone(),
        max_notional_per_day: req.max_notional_per_day.clone(),
        price_band_pct: req.price_band.as_deref().map(|b| b.trim_end_matches('%').to_string()),
    };
    guard.validate()?;
    if guard.is_set() && !scopes.iter().any(|s| matches!(s, Scope::Account(..))) {
        return Err(ApiError::bad("invalid_request", "order guards apply to keys with account: scopes"));
    }
    let policy = KeyPolicy {
        guard: guard.is_set().then_some(guard),
        scopes,
        allow_ips,
        expires_ms,
        not_before_ms,
        rate,
        uses: req.uses,
        permissions: req.permissions.clone(),
        meta: req.meta.clone(),
        ..KeyPolicy::default()
    };
    let opt_out = policy.allow_ips.iter().any(|n| n.prefix_len() == 0);
    let prefix = namespace_prefix(&state, &namespace, now).await?;
    let ring = &who.unsealed.keyring;
    let secret = AccessKeySecret::generate(&prefix)?;
    let uses = req.uses.map(|u| u.min(i64::MAX as u64) as i64);
    let rec = new_record(ring, &secret, &req.name, req.owner.clone(), &namespace, &policy, uses, now)?;
    state.store.insert_key(&rec).await?;
    let entry = KeyEntry::from_record(&rec, ring);
    let mut body = key_json(&entry, now);
    who.unsealed.keys.write().map_err(|_| ApiError::internal("lock"))?.upsert(entry);
    body["key"] = json!(secret.expose());
    if opt_out {
        tracing::warn!(key_id = %rec.id, by = %who.key.id, "access key created with an allow-any-address opt-out");
    }
    tracing::info!(key_id = %rec.id, by = %who.key.id, namespace = %namespace, "access key created");
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/keys[?owner=O][&state=S][&namespace=NS]`.
pub async fn list(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "listing keys (key:admin)")?;
    let q = parse_query(req.uri().query(), &["owner", "state", "namespace"])?;
    if let Some(s) = q.get("state")
        && KeyState::parse(s).is_none()
        && s != "tampered"
    {
        return Err(ApiError::bad(
            "invalid_query",
            "state is one of pending, active, disabled, expired, rolled, revoked, compromised, destroyed, tampered",
        ));
    }
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
        .filter(|v| q.get("owner").is_none_or(|o| v["owner"] == json!(o)))
        .filter(|v| q.get("state").is_none_or(|s| v["state"] == json!(s)))
        .filter(|v| q.get("namespace").is_none_or(|n| v["namespace"] == json!(n)))
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
pub async fn show(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "reading keys (key:admin)")?;
    let key = find(&who, &id)?;
    Ok(Json(key_json(&key, state.clock.now_ms())))
}

/// Loads a key's row, checks its MAC, applies `change`, re-MACs, stores it
/// and updates the index before answering.
async fn change_key(
    state: &AppState,
    who: &Principal,
    id: &str,
    change: impl FnOnce(&mut KeyRecord, &mut KeyPolicy) -> ApiResult<()>,
) -> ApiResult<Arc<KeyEntry>> {
    who.require(Need::KeyAdmin, "changing keys (key:admin)")?;
    let key = find(who, id)?;
    let ring = &who.unsealed.keyring;
    let mut rec = state.store.key(&key.id).await?.ok_or_else(|| ApiError::not_found(format!("no key {id:?}")))?;
    if !ring.verify_row_mac(&mac_input(&rec), &rec.mac) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_tampered",
            "this key's stored record failed its integrity check",
        ));
    }
    let mut policy: KeyPolicy = serde_json::from_str(&rec.policy).map_err(|e| ApiError::internal(&e.to_string()))?;
    change(&mut rec, &mut policy)?;
    rec.policy = serde_json::to_string(&policy).map_err(|e| ApiError::internal(&e.to_string()))?;
    rec.mac = ring.row_mac(&mac_input(&rec)).to_vec();
    state.store.update_key(&rec).await?;
    let entry = KeyEntry::from_record(&rec, ring);
    let mut idx = who.unsealed.keys.write().map_err(|_| ApiError::internal("lock"))?;
    idx.upsert(entry);
    idx.by_id(&rec.id).ok_or_else(|| ApiError::internal("key vanished from the index"))
}

fn set_state(
    to: KeyState,
    allowed_from: &'static [KeyState],
) -> impl FnOnce(&mut KeyRecord, &mut KeyPolicy) -> ApiResult<()> {
    move |rec, _| {
        let from = KeyState::parse(&rec.state).unwrap_or(KeyState::Revoked);
        if from == to {
            return Ok(());
        }
        if !allowed_from.contains(&from) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("a {} key cannot become {}", from.as_str(), to.as_str()),
            ));
        }
        rec.state = to.as_str().to_string();
        Ok(())
    }
}

/// `DELETE /v1/keys/{id}` and `POST /v1/keys/{id}/revoke`: immediate, final.
pub async fn revoke(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let any = &[KeyState::Active, KeyState::Disabled, KeyState::Pending, KeyState::Expired, KeyState::Rolled];
    let k = change_key(&state, &who, &id, set_state(KeyState::Revoked, any)).await?;
    tracing::info!(key_id = %k.id, by = %who.key.id, "access key revoked");
    Ok(Json(key_json(&k, state.clock.now_ms())))
}

/// `POST /v1/keys/{id}/disable`.
pub async fn disable(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let k = change_key(&state, &who, &id, set_state(KeyState::Disabled, &[KeyState::Active])).await?;
    tracing::info!(key_id = %k.id, by = %who.key.id, "access key disabled");
    Ok(Json(key_json(&k, state.clock.now_ms())))
}

/// `POST /v1/keys/{id}/enable`.
pub async fn enable(State(state): State<AppState>, who: Principal, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let k = change_key(&state, &who, &id, set_state(KeyState::Active, &[KeyState::Disabled])).await?;
    tracing::info!(key_id = %k.id, by = %who.key.id, "access key enabled");
    Ok(Json(key_json(&k, state.clock.now_ms())))
}

/// Body of `POST /v1/keys/{id}/roll`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollKey {
    grace: Option<String>,
}

/// `POST /v1/keys/{id}/roll`: a new key with the same settings; the old one
/// works until the grace period ends (default 24h), then answers `key_rolled`.
pub async fn roll(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bytes = crate::request::body_bytes(req).await?;
    let body: RollKey = if bytes.is_empty() { RollKey::default() } else { crate::request::parse_json(&bytes)? };
    let grace_s = match body.grace.as_deref() {
        None => 24 * 3600,
        Some("0") | Some("0s") => 0,
        Some(g) => duration::parse_secs(g)?,
    };
    let now = state.clock.now_ms();
    let old = find(&who, &id)?;
    if old.effective_state(now) != KeyState::Active || old.tampered {
        return Err(ApiError::new(StatusCode::CONFLICT, "invalid_state", "only an active key can be rolled"));
    }
    let ring = &who.unsealed.keyring;
    let mut policy = old.policy.clone();
    policy.grace_until_ms = None;
    policy.rolled_to = None;
    let prefix = namespace_prefix(&state, &old.namespace, now).await?;
    let secret = AccessKeySecret::generate(&prefix)?;
    let uses_left = policy.uses.map(|_| old.uses_remaining.load(Ordering::Relaxed).max(0));
    let rec = new_record(ring, &secret, &old.name, old.owner.clone(), &old.namespace, &policy, uses_left, now)?;
    state.store.insert_key(&rec).await?;
    who.unsealed.keys.write().map_err(|_| ApiError::internal("lock"))?.upsert(KeyEntry::from_record(&rec, ring));
    let new_id = rec.id.clone();
    let grace_until = now + grace_s as i64 * 1000;
    let old = change_key(&state, &who, &id, move |_, p| {
        p.grace_until_ms = Some(grace_until);
        p.rolled_to = Some(new_id);
        Ok(())
    })
    .await?;
    let new_entry = find(&who, &rec.id)?;
    let mut body = key_json(&new_entry, now);
    body["key"] = json!(secret.expose());
    body["rolled_from"] = json!(old.id);
    body["old_key_grace_until"] = json!(timestamp(grace_until));
    tracing::info!(key_id = %rec.id, old = %old.id, by = %who.key.id, "access key rolled");
    Ok((StatusCode::CREATED, Json(body)))
}

/// Body of `POST /v1/keys/verify`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
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

/// `POST /v1/keys/verify`: is this platform key valid (for this permission,
/// from this address)? Counts a use and a rate-limit hit like the platform's
/// own request. Keys of namespaces the caller may not verify answer exactly
/// like unknown keys.
pub async fn verify(
    State(state): State<AppState>,
    who: Principal,
    StrictJson(req): StrictJson<VerifyRequest>,
) -> ApiResult<Json<VerifyAnswer>> {
    if !who.scopes().iter().any(|s| matches!(s, Scope::KeyVerify(_))) {
        return Err(ApiError::scope_missing("verifying keys needs key:verify:<namespace>"));
    }
    let ip = match req.ip.as_deref() {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| ApiError::bad("invalid_request", format!("ip {s:?} is not an IP address")))?,
        ),
        None => None,
    };
    let now = state.clock.now_ms();
    if access_key::check_format(&req.key).is_none() {
        return Ok(Json(VerifyAnswer::unknown()));
    }
    let hash = who.unsealed.keyring.access_key_hash(req.key.as_bytes());
    let found = who.unsealed.keys.read().map_err(|_| ApiError::internal("lock"))?.by_hash(&hash);
    let Some(key) = found.filter(|k| who.may(Need::KeyVerify(&k.namespace))) else {
        return Ok(Json(VerifyAnswer::unknown()));
    };
    let p = &key.policy;
    let result = async {
        check_identity(&key, now)?;
        if let Some(perm) = &req.permission
            && !p.permissions.iter().any(|x| x == perm)
        {
            return Err(ApiError::scope_missing(format!("the key lacks permission {perm:?}")));
        }
        match ip {
            Some(ip) => admit(&state, &key, ip, now).await,
            None if !p.allow_ips.is_empty() => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "this key is bound to client networks: pass the client's ip",
            )),
            // No address to check and no allowlist: admit from an address no allowlist applies to.
            None => admit(&state, &key, who.ip, now).await,
        }
    }
    .await;
    let mut out = VerifyAnswer {
        valid: false,
        code: None,
        key_id: Some(key.id.clone()),
        name: Some(key.name.clone()),
        owner: key.owner.clone(),
        namespace: Some(key.namespace.clone()),
        permissions: Some(p.permissions.clone()),
        meta: Some(p.meta.clone()),
        expires_at: p.expires_ms.map(timestamp),
        remaining: p.uses.map(|_| key.uses_remaining.load(Ordering::Relaxed).max(0)),
        ratelimit: None,
    };
    match result {
        Ok(a) => {
            out.valid = true;
            out.code = Some("valid");
            if a.remaining.is_some() {
                out.remaining = a.remaining;
            }
            out.ratelimit = a.ratelimit;
        }
        Err(e) if e.status.is_client_error() => {
            out.code = Some(e.code);
            if e.code == "rate_limited"
                && let Some(r) = p.rate
            {
                out.ratelimit =
                    Some(RateInfo { limit: r.burst, remaining: 0, reset_ms: e.retry_after.unwrap_or(1) * 1000 });
            }
            if e.code == "uses_exhausted" {
                out.remaining = Some(0);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(Json(out))
}

/// The answer of `POST /v1/keys/verify`. A key that is unknown, malformed or
/// in another namespace answers with every field null but `code`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyAnswer {
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
            code: Some("key_invalid"),
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
}

/// Body of `POST /v1/namespaces`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    name: String,
    prefix: Option<String>,
}

fn namespace_json(n: &NamespaceRecord) -> Value {
    json!({"name": n.name, "prefix": n.prefix, "created_at": timestamp(n.created_ms)})
}

/// `POST /v1/namespaces` (`key:admin` and `key:verify:<name>`).
pub async fn create_namespace(
    State(state): State<AppState>,
    who: Principal,
    StrictJson(req): StrictJson<CreateNamespace>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Need::KeyAdmin, "creating namespaces (key:admin)")?;
    check_namespace(&req.name)?;
    if req.name == KEYWARD_NAMESPACE {
        return Err(ApiError::bad("invalid_namespace", "the keyward namespace is keyward's own"));
    }
    who.require(Need::KeyVerify(&req.name), &format!("managing namespace {} (key:verify:{})", req.name, req.name))?;
    let prefix = req.prefix.unwrap_or_else(|| access_key::DEFAULT_PREFIX.to_string());
    if !access_key::valid_prefix(&prefix) {
        return Err(ApiError::bad("invalid_prefix", "a key prefix is 2 to 16 lower-case letters or digits, e.g. shop"));
    }
    let rec = NamespaceRecord { name: req.name.clone(), prefix, created_ms: state.clock.now_ms() };
    match state.store.insert_namespace(&rec).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(namespace_json(&rec)))),
        Err(StoreError::Conflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "namespace_exists",
            format!("namespace {} already exists", req.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/namespaces`: the namespaces the caller may verify.
pub async fn list_namespaces(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Need::KeyAdmin, "listing namespaces (key:admin)")?;
    let list: Vec<Value> = state
        .store
        .list_namespaces()
        .await?
        .iter()
        .filter(|n| who.may(Need::KeyVerify(&n.name)))
        .map(namespace_json)
        .collect();
    Ok(Json(json!({ "namespaces": list })))
}
