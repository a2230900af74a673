//! `/v1/accounts/{name}/{freeze,unfreeze,check}`: incident response on an
//! exchange account (see `incident`).
//!
//! Freezing needs `account:<name>:admin` or `sys:admin`, and is never held
//! for approvals: when minutes matter it is one step. Its decision is on
//! the audit log, durably, before anything changes; the summary of what was
//! done follows as the request's own entry, and an alert goes out.
//! Unfreezing waits for approvals where they are in force.

use super::approvals::{Gate, gate};
use super::record_change;
use crate::alerts::Alert;
use crate::approvals::PendingChange;
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::exchange::check_account_name;
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::incident::CheckReport;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use keyward_core::scope::{Class, Need};
use serde::Deserialize;
use serde_json::json;

/// `account:<name>:admin` or `sys:admin`.
pub(super) fn require_account_admin(caller: &Caller, name: &str, what: &str) -> Result<(), Error> {
    if caller.may(Need::Account(name, Class::Admin)) || caller.may(Need::SysAdmin) {
        Ok(())
    } else {
        Err(Error::scope_missing(format!("{what} exchange account {name} needs account:{name}:admin or sys:admin")))
    }
}

/// Body of `POST /v1/accounts/{name}/freeze` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreezeRequest {
    /// Also cancel every open order through the exchange's cancel-all calls.
    #[serde(default)]
    cancel_orders: bool,
    /// Why (on the audit log and in the alert).
    reason: Option<String>,
}

/// `POST /v1/accounts/{name}/freeze`.
pub(crate) async fn freeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} freeze"));
    require_account_admin(&caller, &name, "freezing")?;
    let bytes = body_bytes(req).await?;
    let body: FreezeRequest = if bytes.is_empty() { FreezeRequest::default() } else { parse_json(&bytes)? };
    if body.reason.as_ref().is_some_and(|r| r.len() > 500 || r.chars().any(char::is_control)) {
        return Err(Error::invalid("reason is at most 500 printable characters").into());
    }
    state.exchanges.account(&caller.unsealed, &name).await?;
    let admitted = caller.admit().await?;
    let decision = json!({"change": "freeze", "cancel_orders": body.cancel_orders, "reason": body.reason});
    record_change(&state, &caller, None, decision.to_string()).await?;
    let summary = state
        .incident
        .freeze(&admitted, &caller.unsealed, &name, &caller.key.id, body.reason.clone(), body.cancel_orders)
        .await?;
    caller.record.detail(
        json!({"change": "frozen", "keys_disabled": summary.keys_disabled.iter().map(|k| &k.id).collect::<Vec<_>>(),
               "cancel_orders": summary.cancel_orders, "cancel_calls": summary.cancel_calls.len(),
               "cancel_failed": summary.cancel_failed})
        .to_string(),
    );
    let text = format!(
        "exchange account {name} was frozen by {}{}: {} key(s) disabled{}",
        caller.key.id,
        body.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        summary.keys_disabled.len(),
        if summary.cancel_orders {
            format!(", {} cancel call(s), {} failed", summary.cancel_calls.len(), summary.cancel_failed)
        } else {
            String::new()
        }
    );
    state.sinks.alerts.raise(Alert::plain("account_frozen", name.clone(), text), state.clock.now_ms());
    tracing::warn!(account = %name, by = %caller.key.id, "exchange account frozen");
    Ok(Json(summary).into_response())
}

/// `POST /v1/accounts/{name}/unfreeze`: at once, or a request for approvals (202).
pub(crate) async fn unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} unfreeze"));
    require_account_admin(&caller, &name, "unfreezing")?;
    state.exchanges.account(&caller.unsealed, &name).await?;
    if state.controls.get(&caller.unsealed, &name).await?.frozen.is_none() {
        return Err(Error::new(Code::InvalidState, format!("exchange account {name} is not frozen")).into());
    }
    let admitted = caller.admit().await?;
    let change = PendingChange::Unfreeze { account: name.clone() };
    if let Gate::Waiting(answer) = gate(&state, &caller, change, format!("unfreeze exchange account {name}")).await? {
        return Ok(answer);
    }
    record_change(&state, &caller, None, json!({"change": "unfreeze"}).to_string()).await?;
    let summary = state.incident.unfreeze(&admitted, &caller.unsealed, &name).await?;
    caller.record.detail(json!({"change": "unfrozen", "keys_enabled": summary.keys_enabled.len()}).to_string());
    let text = format!("exchange account {name} was unfrozen by {}", caller.key.id);
    state.sinks.alerts.raise(Alert::plain("account_unfrozen", name.clone(), text), state.clock.now_ms());
    Ok(Json(summary).into_response())
}

/// `POST /v1/accounts/{name}/check` (and `GET`): what the exchange says its
/// key may do, against what keyward's keys on the account need.
pub(crate) async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<CheckReport>> {
    check_account_name(&name)?;
    caller.record.target(format!("{name} check"));
    require_account_admin(&caller, &name, "checking")?;
    state.exchanges.account(&caller.unsealed, &name).await?;
    caller.admit().await?;
    let report = state.incident.check(&caller.unsealed, &name).await?;
    let warnings =
        report.findings.iter().filter(|f| f.severity == keyward_exchanges::keyinfo::Severity::Warning).count();
    state.metrics.account_check(&name, report.ok, warnings);
    caller.record.detail(json!({"check": {"ok": report.ok, "warnings": warnings, "error": report.error}}).to_string());
    Ok(Json(report))
}
