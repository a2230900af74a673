//! `/v1/keys`, `/v1/namespaces`: create, list, show, disable, enable, revoke
//! and roll access keys, and the verify API for platforms.
//!
//! The subset rule: a key may create, see or change only keys whose scopes
//! its own scopes cover, so `key:admin` is no way to become `sys:admin`.
//! Platform keys (any namespace but `keyward`) carry free-form permissions
//! instead of scopes, are managed with `key:admin` plus `key:verify:<ns>`,
//! and never authenticate to keyward's own API. Every check runs before
//! admission, admission before any change.

use super::approvals::{self, gated_scopes};
use crate::alerts::Alert;
use crate::approvals::PendingChange;
use crate::audit::forensic;
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::http::extract::{StrictJson, body_bytes, parse_json, parse_query};
use crate::http::{ApiResult, AppState};
use crate::keys::{
    CreateKey, CreateNamespace, KEYWARD_NAMESPACE, KeyEntry, VerifyAnswer, VerifyRequest, may_manage, may_verify,
    state_change,
};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::clock::rfc3339;
use keyward_core::duration;
use keyward_core::policy::KeyState;
use keyward_core::scope::{Need, Scope};
use keyward_store::{AuditQuery, NamespaceRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The JSON view of a key (never its hash or MAC).
pub(crate) fn key_json(k: &KeyEntry, now_ms: i64) -> Value {
    let last_used = k.last_used_ms();
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
        "expires_at": p.expires_ms.map(rfc3339),
        "not_before": p.not_before_ms.map(rfc3339),
        "rate": p.rate.map(|r| r.to_string()),
        "uses": p.uses,
        "uses_remaining": p.uses.map(|_| uses_left.max(0)),
        "grace_until": p.grace_until_ms.map(rfc3339),
        "guard": p.guard,
        "rolled_to": p.rolled_to,
        "max_age": k.max_age_s().map(|s| duration::format_secs(s.max(0) as u64)),
        "max_age_at": k.aged_ms().map(rfc3339),
        "state": k.shown_state(now_ms),
        "created_at": rfc3339(k.created_ms),
        "last_used_at": (last_used > 0).then(|| rfc3339(last_used)),
        "last_used_ip": k.last_used_ip().map(|ip| ip.to_string()),
    })
}

/// A caller sees its own key and the keys it may manage.
fn visible(caller: &Caller, k: &KeyEntry) -> bool {
    k.id == caller.key.id || manageable(caller, k)
}

/// A caller changes only keys its scopes cover: for a token, the token's
/// scopes, so a token carrying `key:admin` cannot roll or revoke its parent.
pub(super) fn manageable(caller: &Caller, k: &KeyEntry) -> bool {
    may_manage(caller.scopes(), &k.namespace, &k.policy.scopes)
}

/// `key:admin`, then the key itself, if the caller may see it.
fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Arc<KeyEntry>, Error> {
    caller.require(Need::KeyAdmin, "reading keys (key:admin)")?;
    state.keys.by_id(id)?.filter(|k| visible(caller, k)).ok_or_else(|| Error::not_found(format!("no key {id:?}")))
}

/// `key:admin`, then the key itself, if the caller may change it.
fn find_to_change(state: &AppState, caller: &Caller, id: &str, what: &str) -> Result<Arc<KeyEntry>, Error> {
    caller.require(Need::KeyAdmin, &format!("{what} keys (key:admin)"))?;
    state.keys.by_id(id)?.filter(|k| manageable(caller, k)).ok_or_else(|| Error::not_found(format!("no key {id:?}")))
}

/// A short-lived token never mints a key: a key made from it would outlive
/// the token and leave its address binding behind.
pub(super) fn refuse_token(caller: &Caller) -> Result<(), Error> {
    if caller.token_scopes.is_some() {
        return Err(Error::scope_missing("a token cannot create or roll keys: use the access key"));
    }
    Ok(())
}

/// `POST /v1/keys`. A key that may move funds out of an account, change
/// it or read its secrets (`withdraw`, `transfer`, `admin`, `export`, `*`),
/// or approve changes, is created disabled while approvals are in force,
/// and enabled by the approval that completes its request (202).
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(req): StrictJson<CreateKey>,
) -> ApiResult<Response> {
    caller.require(Need::KeyAdmin, "creating keys (key:admin)")?;
    refuse_token(&caller)?;
    let mut new = req.plan(state.clock.now_ms())?;
    let mut gated = Vec::new();
    if new.namespace == KEYWARD_NAMESPACE {
        // `approve` is covered by no scope: sys:admin enrols approvers.
        let (approve, rest): (Vec<Scope>, Vec<Scope>) =
            new.policy.scopes.iter().cloned().partition(|s| *s == Scope::Approve);
        caller.require_covers(&rest, "a key")?;
        if !approve.is_empty() {
            caller.require(Need::SysAdmin, "granting approve (sys:admin: approvers are enrolled by an operator)")?;
        }
        gated = gated_scopes(&new.policy.scopes);
    } else {
        let ns = &new.namespace;
        caller.require(Need::KeyVerify(ns), &format!("managing keys of namespace {ns} (key:verify:{ns})"))?;
    }
    let waits = !gated.is_empty() && state.approvals.in_force();
    let approval_id = if waits {
        state.approvals.check_available(&caller.key.id)?;
        let id = state.approvals.new_id()?;
        new.policy.awaiting_approval = Some(id.clone());
        new.disabled = true;
        Some(id)
    } else {
        None
    };
    caller.record.detail(change("created"));
    let admitted = caller.admit().await?;
    let opt_out = new.policy.allows_any_address();
    let enrols = new.policy.scopes.contains(&Scope::Approve);
    let (entry, secret) = state.keys.create(&admitted, &caller.unsealed, new).await?;
    caller.record.target(entry.id.clone());
    if opt_out {
        tracing::warn!(key_id = %entry.id, by = %caller.key.id, "access key created with an allow-any-address opt-out");
    }
    tracing::info!(key_id = %entry.id, by = %caller.key.id, namespace = %entry.namespace, "access key created");
    let mut body = key_json(&entry, state.clock.now_ms());
    body["key"] = json!(secret.expose());
    if let Some(id) = approval_id {
        let summary = format!("enable key {} ({}) with {}", entry.id, entry.name, gated.join(", "));
        let pending =
            PendingChange::ActivateKey { key_id: entry.id.to_string(), name: entry.name.to_string(), scopes: gated };
        let approval = match approvals::request(&state, &caller, pending, summary, Some(id)).await {
            Ok(a) => a,
            Err(e) => {
                // The key must not outlive the request it waits for.
                let _ = state
                    .keys
                    .set_state(&admitted, &caller.unsealed, &entry.id, KeyState::Revoked, &[KeyState::Disabled])
                    .await;
                return Err(e.into());
            }
        };
        return Ok(approvals::waiting(&approval, body));
    }
    if enrols {
        let summary =
            format!("key {} ({}) may now approve changes; enrolled by {}", entry.id, entry.name, caller.key.id);
        state
            .sinks
            .alerts
            .raise(Alert::plain("approver_enrolled", entry.id.to_string(), summary), state.clock.now_ms());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/keys[?owner=O][&state=S][&namespace=NS]`.
pub(crate) async fn list(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::KeyAdmin, "listing keys (key:admin)")?;
    let q = parse_query(req.uri().query(), &["owner", "state", "namespace"])?;
    if let Some(s) = q.get("state")
        && KeyState::parse(s).is_none()
        && s != "tampered"
    {
        return Err(Error::new(
            Code::InvalidQuery,
            "state is one of pending, active, disabled, expired, rolled, revoked, compromised, destroyed, tampered",
        )
        .into());
    }
    caller.admit().await?;
    let now = state.clock.now_ms();
    let keys: Vec<Value> = state
        .keys
        .all_sorted()?
        .iter()
        .filter(|k| visible(&caller, k))
        .filter(|k| q.get("owner").is_none_or(|o| k.owner.as_deref() == Some(o.as_str())))
        .filter(|k| q.get("state").is_none_or(|s| k.shown_state(now) == s))
        .filter(|k| q.get("namespace").is_none_or(|n| *k.namespace == **n))
        .map(|k| key_json(k, now))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `GET /v1/keys/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = find(&state, &caller, &id)?;
    caller.admit().await?;
    let mut body = key_json(&key, state.clock.now_ms());
    body["history"] = json!(history(&state, &key.id).await?);
    Ok(Json(body))
}

/// What a key-management entry says changed (`{"change": "revoked"}`).
fn change(what: &str) -> String {
    json!({ "change": what }).to_string()
}

/// A key's changes from the audit log, oldest first: time, what changed,
/// the key that made the change and its address.
async fn history(state: &AppState, id: &str) -> Result<Vec<Value>, Error> {
    let query = AuditQuery { target_prefix: Some(id.to_string()), limit: 1000, newest: false, ..AuditQuery::default() };
    let entries = state.auditor.entries(&query).await?;
    Ok(entries
        .iter()
        .filter(|e| e.target == id && e.decision == "allow")
        .filter(|e| e.action.starts_with("keys.") || e.action.starts_with("rotation."))
        .filter_map(|e| {
            let change = serde_json::from_str::<Value>(&e.detail).ok()?.get("change")?.as_str()?.to_string();
            Some(json!({ "time": rfc3339(e.time_ms), "change": change, "by": e.key_id, "ip": e.ip }))
        })
        .collect())
}

/// A state change of the key `id`: checked on the key as loaded before
/// admission, and again on its stored row.
async fn set_state(
    state: &AppState,
    caller: &Caller,
    id: &str,
    to: KeyState,
    allowed_from: &'static [KeyState],
) -> ApiResult<Json<Value>> {
    caller.record.target(id.to_string());
    let key = find_to_change(state, caller, id, "changing")?;
    if key.tampered {
        return Err(Error::new(Code::RowTampered, "this key's stored record failed its integrity check").into());
    }
    state_change(key.state, to, allowed_from)?;
    caller.record.detail(change(to.as_str()));
    let admitted = caller.admit().await?;
    let k = state.keys.set_state(&admitted, &caller.unsealed, &key.id, to, allowed_from).await?;
    tracing::info!(key_id = %k.id, by = %caller.key.id, state = to.as_str(), "access key state changed");
    Ok(Json(key_json(&k, state.clock.now_ms())))
}

/// `DELETE /v1/keys/{id}` and `POST /v1/keys/{id}/revoke`: immediate, final.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    const ANY: &[KeyState] =
        &[KeyState::Active, KeyState::Disabled, KeyState::Pending, KeyState::Expired, KeyState::Rolled];
    set_state(&state, &caller, &id, KeyState::Revoked, ANY).await
}

/// `POST /v1/keys/{id}/destroy`: the last step of a revoked or compromised
/// key. Its platform details (`meta`, `permissions`) are wiped; the row
/// stays as a tombstone, so its audit trail still names it and a use of it
/// is still refused as revoked, never mistaken for an unknown key.
pub(crate) async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.record.target(id.clone());
    let key = find_to_change(&state, &caller, &id, "destroying")?;
    const FROM: &[KeyState] = &[KeyState::Revoked, KeyState::Compromised];
    state_change(key.state, KeyState::Destroyed, FROM).map_err(|_| {
        Error::new(
            Code::InvalidState,
            format!("a {} key cannot be destroyed: revoke it first (keyward key revoke {id})", key.state.as_str()),
        )
    })?;
    caller.record.detail(change(KeyState::Destroyed.as_str()));
    let admitted = caller.admit().await?;
    let k = state
        .keys
        .change(&admitted, &caller.unsealed, &key.id, |rec, policy| {
            let from = KeyState::parse(&rec.state).unwrap_or(KeyState::Revoked);
            state_change(from, KeyState::Destroyed, FROM)?;
            rec.state = KeyState::Destroyed.as_str().to_string();
            policy.meta = Default::default();
            policy.permissions = Default::default();
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %k.id, by = %caller.key.id, "access key destroyed");
    Ok(Json(key_json(&k, state.clock.now_ms())))
}

/// `POST /v1/keys/{id}/disable`.
pub(crate) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_state(&state, &caller, &id, KeyState::Disabled, &[KeyState::Active]).await
}

/// `POST /v1/keys/{id}/enable`. A key waiting for approvals is enabled
/// only by them, and one a freeze disabled only by unfreezing its account.
pub(crate) async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(k) = state.keys.by_id(&id)?.filter(|k| manageable(&caller, k)) {
        if let Some(a) = &k.policy.awaiting_approval {
            caller.record.target(id.clone());
            return Err(Error::new(
                Code::ApprovalRequired,
                format!(
                    "key {id} waits for approval {a}: it is enabled when that is approved (keyward approvals show {a})"
                ),
            )
            .into());
        }
        if !k.policy.frozen_by.is_empty() {
            caller.record.target(id.clone());
            return Err(Error::new(
                keyward_core::decision::DenyReason::AccountFrozen,
                format!(
                    "key {id} was disabled by the freeze of {}: unfreezing enables it again",
                    k.policy.frozen_by.join(", ")
                ),
            )
            .into());
        }
    }
    set_state(&state, &caller, &id, KeyState::Active, &[KeyState::Disabled]).await
}

/// Body of `POST /v1/keys/{id}/compromised`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportCompromised {
    /// Hours of the key's audit to report, back from now (default 72, at most 8760).
    hours: Option<u64>,
}

/// Entries a forensic report reads at most.
const REPORT_ENTRIES: usize = 100_000;

/// `POST /v1/keys/{id}/compromised`: the key is refused at once and for
/// good (`key_compromised`), an alert goes out, and the answer is the
/// forensic report of its last `hours` from the audit log.
pub(crate) async fn compromised(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<forensic::CompromisedAnswer>> {
    const FROM: &[KeyState] = &[
        KeyState::Active,
        KeyState::Disabled,
        KeyState::Pending,
        KeyState::Expired,
        KeyState::Rolled,
        KeyState::Revoked,
    ];
    let bytes = body_bytes(req).await?;
    let body: ReportCompromised = if bytes.is_empty() { ReportCompromised::default() } else { parse_json(&bytes)? };
    let hours = body.hours.unwrap_or(72);
    if !(1..=8760).contains(&hours) {
        return Err(Error::invalid("hours is 1 to 8760 (a year)").into());
    }
    let Json(changed) = set_state(&state, &caller, &id, KeyState::Compromised, FROM).await?;
    // Every request of the key already answered is on record before the
    // report's window closes (entries take the time they are written at);
    // one still in flight as the key changed state may be written after it.
    state.auditor.flush().await?;
    let now = state.clock.now_ms();
    let subject = format!("key {id}");
    let name = changed["name"].as_str().unwrap_or("");
    let summary = format!("key {id} ({name}) was reported compromised by {}; it is refused", caller.key.id);
    state.sinks.alerts.raise(Alert::plain("key_compromised", subject, summary), now);
    let from = now - hours as i64 * 3_600_000;
    let query = AuditQuery {
        key_id: Some(id.clone()),
        since_ms: Some(from),
        until_ms: Some(now),
        limit: REPORT_ENTRIES as u64 + 1,
        newest: false,
        ..AuditQuery::default()
    };
    let mut entries = state.auditor.entries(&query).await?;
    let truncated = entries.len() > REPORT_ENTRIES;
    entries.truncate(REPORT_ENTRIES);
    let report = forensic::report(&id, &entries, from, now, truncated);
    Ok(Json(forensic::CompromisedAnswer { key: changed, report }))
}

/// Body of `POST /v1/keys/{id}/roll`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollKey {
    grace: Option<String>,
}

/// `POST /v1/keys/{id}/roll`: a new key with the same settings; the old one
/// works until the grace period ends (default 24h), then answers `key_rolled`.
pub(crate) async fn roll(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bytes = body_bytes(req).await?;
    let body: RollKey = if bytes.is_empty() { RollKey::default() } else { parse_json(&bytes)? };
    let grace_s = match body.grace.as_deref() {
        None => 24 * 3600,
        Some("0") | Some("0s") => 0,
        Some(g) => duration::parse_secs(g)?,
    };
    caller.record.target(id.clone());
    let old = find_to_change(&state, &caller, &id, "rolling")?;
    refuse_token(&caller)?;
    if !old.rollable(state.clock.now_ms()) {
        return Err(Error::new(Code::InvalidState, crate::keys::ROLL_REFUSED).into());
    }
    caller.record.detail(change("rolled"));
    let admitted = caller.admit().await?;
    let rolled = state.keys.roll(&admitted, &caller.unsealed, &old, grace_s as i64 * 1000).await?;
    tracing::info!(key_id = %rolled.new.id, old = %rolled.old.id, by = %caller.key.id, "access key rolled");
    let mut body = key_json(&rolled.new, state.clock.now_ms());
    body["key"] = json!(rolled.secret.expose());
    body["rolled_from"] = json!(rolled.old.id);
    body["old_key_grace_until"] = json!(rfc3339(rolled.grace_until_ms));
    Ok((StatusCode::CREATED, Json(body)))
}

/// `POST /v1/keys/verify`: is this platform key valid (for this permission,
/// from this address)? Counts a use and a rate-limit hit like the platform's
/// own request. Keys of namespaces the caller may not verify answer exactly
/// like unknown keys.
pub(crate) async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(req): StrictJson<VerifyRequest>,
) -> ApiResult<Json<VerifyAnswer>> {
    if !may_verify(caller.scopes()) {
        return Err(Error::scope_missing("verifying keys needs key:verify:<namespace>").into());
    }
    req.ip()?;
    caller.admit().await?;
    Ok(Json(state.keys.verify_platform_key(&caller.unsealed, caller.scopes(), caller.ip, &req).await?))
}

fn namespace_json(n: &NamespaceRecord) -> Value {
    json!({"name": n.name, "prefix": n.prefix, "created_at": rfc3339(n.created_ms)})
}

/// `POST /v1/namespaces` (`key:admin` and `key:verify:<name>`).
pub(crate) async fn create_namespace(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(req): StrictJson<CreateNamespace>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Need::KeyAdmin, "creating namespaces (key:admin)")?;
    let rec = req.plan(state.clock.now_ms())?;
    let ns = &rec.name;
    caller.require(Need::KeyVerify(ns), &format!("managing namespace {ns} (key:verify:{ns})"))?;
    let admitted = caller.admit().await?;
    let rec = state.keys.create_namespace(&admitted, rec).await?;
    Ok((StatusCode::CREATED, Json(namespace_json(&rec))))
}

/// `GET /v1/namespaces`: the namespaces the caller may verify.
pub(crate) async fn list_namespaces(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::KeyAdmin, "listing namespaces (key:admin)")?;
    caller.admit().await?;
    let list: Vec<Value> = state
        .keys
        .namespaces()
        .await?
        .iter()
        .filter(|n| caller.may(Need::KeyVerify(&n.name)))
        .map(namespace_json)
        .collect();
    Ok(Json(json!({ "namespaces": list })))
}
