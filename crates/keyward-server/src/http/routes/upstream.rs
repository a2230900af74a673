//! Changing an exchange account's upstream (`base_url`, `base_urls`) points
//! its signed requests somewhere else: where approvals are in force, a new
//! version that changes it is staged as pending and becomes current only
//! when the approvals arrive (the approval promotes it). A new account, or
//! a version with the same upstream, is not held.

use super::approvals;
use crate::approvals::PendingChange;
use crate::auth::Caller;
use crate::error::Result;
use crate::http::AppState;
use axum::response::Response;
use keyward_core::secret::SecretData;
use serde_json::json;

/// The fields that choose an account's upstream.
const UPSTREAM_FIELDS: [&str; 2] = ["base_url", "base_urls"];

/// True when `new` sends the account's requests elsewhere than `old`.
pub(crate) fn changes_upstream(old: &SecretData, new: &SecretData) -> bool {
    UPSTREAM_FIELDS.iter().any(|f| old.0.get(*f).map(|v| v.expose()) != new.0.get(*f).map(|v| v.expose()))
}

/// Whether a new version of account `path` must wait for approvals:
/// approvals are in force, the account has a current version, and `new`
/// changes its upstream.
pub(crate) async fn must_wait(state: &AppState, caller: &Caller, path: &str, new: &SecretData) -> Result<bool> {
    if !state.approvals.in_force() {
        return Ok(false);
    }
    Ok(match state.secrets.current_opt(&caller.unsealed, path).await? {
        Some(current) => changes_upstream(&current.data, new),
        None => false,
    })
}

/// Asks for approval of promoting pending `version` of `path`; when that
/// fails and `staged_for_it`, the pending version is dropped (nothing
/// would ever promote it); a rotation's own pending version stays.
pub(crate) async fn request_promotion(
    state: &AppState,
    caller: &Caller,
    admitted: &crate::keys::Admitted,
    path: &str,
    version: u64,
    staged_for_it: bool,
) -> Result<Response> {
    let summary = format!("make version {version} of {path} current: it changes the account's upstream");
    let change = PendingChange::PromoteVersion { path: path.to_string(), version };
    match approvals::request(state, caller, change, summary, None).await {
        Ok(a) => Ok(approvals::waiting(&a, json!({"path": path, "pending_version": version, "promoted": false}))),
        Err(e) => {
            if staged_for_it {
                let _ = state.secrets.abandon(admitted, path).await;
            }
            Err(e)
        }
    }
}
