//! `/v1/approvals`: the changes waiting for M-of-N approvals, and the gate
//! every gated route passes through (see `approvals`).
//!
//! A gated route authorizes and admits as usual, then asks [`gate`]: while
//! approvals are in force, the change is written down as a request (on the
//! audit log, durably, and alerted) and the route answers 202 with it;
//! otherwise the route applies the change itself. The approval that
//! reaches M applies the change, once, on behalf of the requester (whose
//! key must still be active); a rejection or expiry undoes what the request
//! prepared (a key created for it is revoked, a version staged for it
//! abandoned).

use super::record_change;
use crate::alerts::Alert;
use crate::approvals::{Approval, PendingChange, Voted, Voter, state_name};
use crate::auth::Caller;
use crate::error::{Code, Error, Result};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::keys::Admitted;
use crate::seal::Unsealed;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::policy::KeyState;
use keyward_core::scope::{Need, Scope};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What a gated change became.
#[derive(Debug)]
pub(crate) enum Gate {
    /// Approvals are not in force: apply it now.
    Now,
    /// Waiting for approvals: answer with this (202).
    Waiting(Response),
}

/// The 202 answer of a change that waits for approvals (`extra` adds what
/// the route prepared for it, such as the key created disabled; `state`,
/// `approval` and `message` are the request's).
pub(crate) fn waiting(approval: &Approval, extra: Value) -> Response {
    let base = json!({
        "state": "pending_approval",
        "approval": approval,
        "message": format!(
            "this change needs {} approvals from approver keys other than yours: keyward approvals approve {} (it expires at {})",
            approval.required,
            approval.id,
            keyward_core::clock::rfc3339(approval.expires_ms)
        ),
    });
    let mut body = match extra {
        Value::Object(e) => Value::Object(e),
        _ => json!({}),
    };
    if let (Some(o), Value::Object(b)) = (body.as_object_mut(), base) {
        o.extend(b);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn alert(state: &AppState, a: &Approval, what: &str) {
    let summary = format!("approval {} ({}) {what}", a.id, a.summary);
    state.sinks.alerts.raise(Alert::plain("approval", format!("{} {what}", a.id), summary), state.clock.now_ms());
}

/// Asks for approval of `change` when approvals are in force; `id` names
/// the request when the change was prepared with it (a key created disabled).
pub(crate) async fn request(
    state: &AppState,
    caller: &Caller,
    change: PendingChange,
    summary: String,
    id: Option<String>,
) -> Result<Approval> {
    let approval = state.approvals.request(&caller.unsealed, &caller.key.id, change, summary, id).await?;
    let detail = json!({"change": "approval_requested", "approval": approval.id, "summary": approval.summary});
    caller.record.detail(detail.to_string());
    record_change(state, caller, None, detail.to_string()).await?;
    alert(state, &approval, "requested");
    tracing::info!(approval = %approval.id, by = %caller.key.id, "approval requested");
    Ok(approval)
}

/// The gate of a change that needs approvals where they are in force.
pub(crate) async fn gate(state: &AppState, caller: &Caller, change: PendingChange, summary: String) -> Result<Gate> {
    if !state.approvals.in_force() {
        return Ok(Gate::Now);
    }
    let approval = request(state, caller, change, summary, None).await?;
    Ok(Gate::Waiting(waiting(&approval, json!({}))))
}

/// Applies an approved change on behalf of its requester; what it did.
async fn apply(state: &AppState, admitted: &Admitted, unsealed: &Arc<Unsealed>, a: &Approval) -> Result<String> {
    let now = state.clock.now_ms();
    let requester = state.keys.by_id(&a.requested_by)?;
    if !requester.is_some_and(|k| !k.tampered && k.effective_state(now) == KeyState::Active) {
        return Err(Error::new(
            Code::InvalidState,
            format!("the key that asked for it ({}) is no longer active; nothing was changed", a.requested_by),
        ));
    }
    match &a.change {
        PendingChange::ActivateKey { key_id, .. } => {
            let id = a.id.clone();
            state
                .keys
                .change(admitted, unsealed, key_id, move |rec, policy| {
                    if policy.awaiting_approval.as_deref() != Some(id.as_str())
                        || rec.state != KeyState::Disabled.as_str()
                    {
                        return Err(Error::new(Code::InvalidState, "the key is no longer waiting for this approval"));
                    }
                    policy.awaiting_approval = None;
                    rec.state = KeyState::Active.as_str().to_string();
                    Ok(())
                })
                .await?;
            Ok(format!("key {key_id} is active"))
        }
        PendingChange::AllowAddress { account, address } => {
            state
                .controls
                .update(unsealed, account, |c| {
                    if !c.addresses.iter().any(|x| {
                        x.asset == address.asset
                            && x.address == address.address
                            && x.network == address.network
                            && x.memo == address.memo
                    }) {
                        c.addresses.push(address.clone());
                    }
                    Ok(())
                })
                .await?;
            Ok(format!("{} {} may receive withdrawals from {account}", address.asset, address.address))
        }
        PendingChange::SetCap { account, asset, cap } => {
            state
                .controls
                .update(unsealed, account, |c| {
                    match cap {
                        Some(cap) => c.caps.insert(asset.clone(), cap.clone()),
                        None => c.caps.remove(asset),
                    };
                    Ok(())
                })
                .await?;
            Ok(match cap {
                Some(cap) => format!("{account} may withdraw {cap} {asset} per 24 hours"),
                None => format!("{asset} withdrawals from {account} have no cap"),
            })
        }
        PendingChange::PromoteVersion { path, version } => {
            state.secrets.promote(admitted, path, *version).await?;
            Ok(format!("version {version} of {path} is current"))
        }
        PendingChange::Unfreeze { account } => {
            let done = state.incident.unfreeze(admitted, unsealed, account).await?;
            state.sinks.alerts.raise(
                Alert::plain(
                    "account_unfrozen",
                    account.clone(),
                    format!("exchange account {account} was unfrozen ({})", a.id),
                ),
                now,
            );
            Ok(format!("{account} is unfrozen; {} key(s) enabled again", done.keys_enabled.len()))
        }
    }
}

/// Undoes what a request prepared when it is rejected or expires.
pub(crate) async fn clean_up(state: &AppState, admitted: &Admitted, unsealed: &Arc<Unsealed>, a: &Approval) {
    let result = match &a.change {
        PendingChange::ActivateKey { key_id, .. } => {
            let id = a.id.clone();
            state
                .keys
                .change(admitted, unsealed, key_id, move |rec, policy| {
                    if policy.awaiting_approval.as_deref() == Some(id.as_str())
                        && rec.state == KeyState::Disabled.as_str()
                    {
                        rec.state = KeyState::Revoked.as_str().to_string();
                    }
                    Ok(())
                })
                .await
                .map(|_| ())
        }
        PendingChange::PromoteVersion { path, version } => match state.secrets.meta(path).await {
            Ok(Some(m)) if m.pending_version == Some(*version) => {
                state.secrets.abandon(admitted, path).await.map(|_| ())
            }
            other => other.map(|_| ()),
        },
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(approval = %a.id, error = %e.message, "could not undo what a closed approval request prepared");
    }
}

/// An expired request, found by the server's schedule: undone, audited and alerted.
pub(crate) async fn expired(state: &AppState, admitted: &Admitted, unsealed: &Arc<Unsealed>, a: &Approval) {
    clean_up(state, admitted, unsealed, a).await;
    let entry = keyward_core::audit::AuditEntry {
        action: "approvals.expire".into(),
        target: a.id.clone(),
        decision: "allow".into(),
        detail: json!({"change": "expired", "approval": a.id, "summary": a.summary}).to_string(),
        ..Default::default()
    };
    if let Err(e) = state.auditor.record_durable(entry).await {
        tracing::warn!(approval = %a.id, error = %e.message, "could not record an approval's expiry");
    }
    alert(state, a, "expired");
}

/// Who may see a request: approvers, `sys:admin`, and its requester.
fn may_see(caller: &Caller, a: &Approval) -> bool {
    caller.may(Need::Approve) || caller.may(Need::SysAdmin) || *a.requested_by == *caller.key.id
}

fn view(a: &Approval, state: &AppState) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["expires_at"] = json!(keyward_core::clock::rfc3339(a.expires_ms));
    v["approvers"] = json!(state.approvals.approvers().len());
    v
}

/// `GET /v1/approvals`.
pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.admit().await?;
    let all = state.approvals.list(&caller.unsealed).await?;
    let shown: Vec<Value> = all.iter().filter(|a| may_see(&caller, a)).map(|a| view(a, &state)).collect();
    Ok(Json(json!({
        "approvals": shown,
        "required": state.approvals.required(),
        "approvers": state.approvals.approvers().len(),
        "in_force": state.approvals.in_force(),
    })))
}

/// `GET /v1/approvals/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.record.target(id.clone());
    let a = state.approvals.get(&caller.unsealed, &id).await?;
    if !may_see(&caller, &a) {
        return Err(Error::not_found(format!("no approval {id:?}")).into());
    }
    caller.admit().await?;
    Ok(Json(view(&a, &state)))
}

/// Body of `POST /v1/approvals/{id}/reject` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectRequest {
    /// Why.
    reason: Option<String>,
}

/// `POST /v1/approvals/{id}/approve`: needs `approve`; the requester's own
/// key and a key that approved already are refused (`approval_refused`).
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.record.target(id.clone());
    caller.require(Need::Approve, "approving changes (approve)")?;
    vote(&state, &caller, &id, true, None).await
}

/// `POST /v1/approvals/{id}/reject`: an approver's veto, or the requester
/// withdrawing its own request.
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    caller.record.target(id.clone());
    let bytes = body_bytes(req).await?;
    let body: RejectRequest = if bytes.is_empty() { RejectRequest::default() } else { parse_json(&bytes)? };
    if !caller.may(Need::Approve) {
        let a = state.approvals.get(&caller.unsealed, &id).await?;
        if *a.requested_by != *caller.key.id {
            return Err(Error::scope_missing("rejecting another key's request needs approve").into());
        }
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > 500 || r.chars().any(char::is_control)) {
        return Err(Error::invalid("reason is at most 500 printable characters").into());
    }
    vote(&state, &caller, &id, false, body.reason).await
}

async fn vote(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> ApiResult<Response> {
    let voter =
        Voter { key_id: caller.key.id.to_string(), name: caller.key.name.to_string(), ip: caller.ip.to_string() };
    // What can be refused is refused before anything is spent (the write
    // checks again: another approval may land meanwhile).
    let a = state.approvals.get(&caller.unsealed, id).await?;
    if approve && a.state == crate::approvals::ApprovalState::Pending {
        a.may_approve(&voter.key_id)?;
    }
    // A token acts for its parent key: its approval is the parent's.
    let admitted = caller.admit().await?;
    let voted = state.approvals.vote(&caller.unsealed, id, &voter, approve, reason).await;
    let voted = match voted {
        Err(e) if e.code == Code::ApprovalExpired => {
            if let Ok(a) = state.approvals.get(&caller.unsealed, id).await {
                expired(state, &admitted, &caller.unsealed, &a).await;
            }
            return Err(e.into());
        }
        other => other?,
    };
    let (a, applied) = match voted {
        Voted::Counted(a) => {
            caller.record.detail(
                json!({"change": "approved", "approval": a.id, "approvals": a.approvals.len(), "required": a.required})
                    .to_string(),
            );
            alert(state, &a, &format!("approved by {} ({} of {})", caller.key.id, a.approvals.len(), a.required));
            (a, None)
        }
        Voted::Rejected(a) => {
            caller.record.detail(json!({"change": "rejected", "approval": a.id}).to_string());
            clean_up(state, &admitted, &caller.unsealed, &a).await;
            alert(state, &a, &format!("rejected by {}", caller.key.id));
            (a, None)
        }
        Voted::Apply(a) => {
            record_change(
                state,
                caller,
                None,
                json!({"change": "approved", "approval": a.id, "approvals": a.approvals.len(), "required": a.required})
                    .to_string(),
            )
            .await?;
            let result = apply(state, &admitted, &caller.unsealed, &a).await;
            let done = state.approvals.finish(&caller.unsealed, &a.id, &result).await?;
            let outcome = match &result {
                Ok(what) => json!({"change": "applied", "approval": a.id, "result": what}),
                Err(e) => json!({"change": "apply_failed", "approval": a.id, "code": e.code.as_str()}),
            };
            caller.record.detail(outcome.to_string());
            alert(state, &done, if result.is_ok() { "applied" } else { "failed to apply" });
            tracing::info!(approval = %a.id, ok = result.is_ok(), "approved change applied");
            (done, Some(result))
        }
    };
    let mut body = view(&a, state);
    body["state"] = json!(state_name(a.state));
    if let Some(Err(e)) = &applied {
        body["error"] = json!({"code": e.code.as_str(), "message": e.message});
    }
    Ok(Json(body).into_response())
}

/// The scopes of a new key that need approvals where they are in force.
pub(crate) fn gated_scopes(scopes: &[Scope]) -> Vec<String> {
    scopes.iter().filter(|s| s.is_sensitive_grant()).map(ToString::to_string).collect()
}
