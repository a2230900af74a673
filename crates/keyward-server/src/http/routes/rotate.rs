//! `POST /v1/secrets/{path}?action=rotate|rollback|abandon`: staged rotation.
//!
//! `rotate` stages new fields as a pending version (nothing signs with it),
//! then, with `verify`, asks the exchange with one signed read call and
//! promotes only if it accepts; with `promote`, promotes without asking.
//! A promotion is one step for the sign API and the proxy: each request
//! signs wholly with the version it loaded, and the answer waits (unless
//! `no_wait`) until no request in flight on this node still uses the old
//! one. `rollback` makes the previous version current again; `abandon`
//! destroys the pending version.
//!
//! Authorization is that of a write (and `account:<name>:admin` for an
//! exchange account) and comes before anything is read. Each change is on
//! the audit log with `{"change": …, "version": …}`: `secret history`
//! lists them with the key that made them.

use super::secrets::{meta_json, require_write};
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::exchange::{CheckOutcome, Drain, account_name};
use crate::http::{ApiResult, AppState};
use crate::keys::Admitted;
use crate::secrets::RotateRequest;
use axum::Json;
use axum::response::{IntoResponse, Response};
use keyward_core::secret_path::SecretPath;
use keyward_store::SecretMeta;
use serde_json::{Value, json};
use std::time::Duration;

/// What a change says on the audit log.
fn change(what: &str, version: u64, extra: Value) -> String {
    let mut v = json!({ "change": what, "version": version });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v.to_string()
}

fn answer(path: &SecretPath, meta: Option<&SecretMeta>, extra: Value) -> Response {
    let mut body = meta.map(meta_json).unwrap_or_else(|| json!({}));
    body["path"] = json!(path.as_str());
    if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
        o.extend(e);
    }
    Json(body).into_response()
}

fn drain_limit(state: &AppState, no_wait: bool) -> Duration {
    if no_wait { Duration::ZERO } else { state.config.upstream_timeout + Duration::from_secs(5) }
}

/// `action=rotate`.
pub(crate) async fn rotate(
    state: &AppState,
    caller: &Caller,
    path: &SecretPath,
    mut body: RotateRequest,
) -> ApiResult<Response> {
    require_write(caller, path, "rotating")?;
    let mut plan = body.plan()?;
    let account = account_name(path.as_str());
    if body.verify && account.is_none() {
        return Err(Error::invalid(format!(
            "--verify asks an exchange, and {path} is not an exchange account; promote with --promote"
        ))
        .into());
    }
    if body.verify && body.promote {
        return Err(
            Error::invalid("give --verify (ask the exchange, then promote) or --promote (no check), not both").into()
        );
    }
    let unsealed = caller.unsealed.clone();
    // Fields and checks first: nothing is written for a rotation that would be refused.
    let staged_now = plan.changes.is_some();
    let staging = match plan.changes.take() {
        Some(changes) => {
            let staging = state.secrets.staging(&unsealed, path.as_str(), changes, false).await?;
            if account.is_some() {
                let kind = plan.kind.clone().or_else(|| staging.meta.as_ref().and_then(|m| m.kind.clone()));
                let kind = kind.ok_or_else(|| Error::new(Code::AccountInvalid, "an exchange account needs a type"))?;
                state.exchanges.validate(&kind, &staging.data)?;
            }
            Some(staging)
        }
        None => {
            state.secrets.pending_version(path.as_str()).await?;
            None
        }
    };
    let admitted = caller.admit().await?;
    let (mut meta, pending) = match staging {
        Some(staging) => state.secrets.stage(&admitted, &unsealed, path.as_str(), staging, &plan).await?,
        None => state.secrets.pending_version(path.as_str()).await?,
    };
    let staged = change("staged", pending, json!({}));
    if !(body.verify || body.promote) {
        caller.record.detail(staged);
        let next = format!(
            "nothing uses version {pending} yet; finish with `keyward secret rotate {path} --verify` (asks the exchange) or `--promote`, or drop it with `--abandon`"
        );
        return Ok(answer(path, Some(&meta), json!({ "pending_version": pending, "promoted": false, "next": next })));
    }
    if staged_now {
        super::record_change(state, caller, None, staged).await?;
    }
    let mut check: Option<CheckOutcome> = None;
    if let (true, Some(name)) = (body.verify, account) {
        let version = state.secrets.read(&unsealed, path.as_str(), Some(pending)).await?;
        let outcome = state.exchanges.check_credentials(name, &version).await?;
        if !outcome.accepted {
            let said = outcome.exchange_said.clone().unwrap_or_default();
            let current =
                if meta.current_version > 0 { format!("version {}", meta.current_version) } else { "nothing".into() };
            caller.record.detail(change("check_refused", pending, json!({ "call": outcome.call })));
            return Err(Error::new(
                Code::CredentialsRefused,
                format!(
                    "the exchange refused the pending credentials ({}: {said}); nothing switched: {name} still signs with {current}, and version {pending} stays pending. Fix it and run `keyward secret rotate {path} --verify` again, or drop it with `--abandon`",
                    outcome.call
                ),
            )
            .into());
        }
        check = Some(outcome);
    }
    if account.is_some() {
        let version = state.secrets.read(&unsealed, path.as_str(), Some(pending)).await?;
        if super::upstream::must_wait(state, caller, path.as_str(), &version.data).await? {
            return Ok(
                super::upstream::request_promotion(state, caller, &admitted, path.as_str(), pending, false).await?
            );
        }
    }
    let old = meta.current_version;
    let in_use = account.map(|n| state.exchanges.in_use(n)).unwrap_or_default();
    meta = state.secrets.promote(&admitted, path.as_str(), pending).await?;
    let drain = match account {
        Some(name) => state.exchanges.drain(name, in_use, drain_limit(state, body.no_wait)).await,
        None => Drain { in_flight: 0, still_in_flight: 0, waited_ms: 0 },
    };
    let checked = check.as_ref().map(|c| c.call.clone());
    caller.record.detail(change("promoted", pending, json!({ "previous": old, "checked": checked })));
    Ok(answer(
        path,
        Some(&meta),
        json!({ "promoted": true, "version": pending, "previous_version": old, "check": check, "drain": drain }),
    ))
}

/// `action=rollback`: the previous version is current again.
pub(crate) async fn rollback(
    state: &AppState,
    caller: &Caller,
    path: &SecretPath,
    no_wait: bool,
) -> ApiResult<Response> {
    require_write(caller, path, "rolling back")?;
    let admitted: Admitted = caller.admit().await?;
    let account = account_name(path.as_str());
    let in_use = account.map(|n| state.exchanges.in_use(n)).unwrap_or_default();
    let meta = state.secrets.rollback(&admitted, path.as_str()).await?;
    let drain = match account {
        Some(name) => state.exchanges.drain(name, in_use, drain_limit(state, no_wait)).await,
        None => Drain { in_flight: 0, still_in_flight: 0, waited_ms: 0 },
    };
    let back_from = meta.previous_version.unwrap_or_default();
    caller.record.detail(change("rolled_back", meta.current_version, json!({ "from": back_from })));
    Ok(answer(
        path,
        Some(&meta),
        json!({ "version": meta.current_version, "previous_version": back_from, "drain": drain }),
    ))
}

/// `action=abandon`: the pending version is destroyed.
pub(crate) async fn abandon(state: &AppState, caller: &Caller, path: &SecretPath) -> ApiResult<Response> {
    require_write(caller, path, "abandoning a rotation of")?;
    let admitted = caller.admit().await?;
    let (pending, meta) = state.secrets.abandon(&admitted, path.as_str()).await?;
    caller.record.detail(change("abandoned", pending, json!({})));
    Ok(answer(path, meta.as_ref(), json!({ "abandoned_version": pending, "exists": meta.is_some() })))
}
