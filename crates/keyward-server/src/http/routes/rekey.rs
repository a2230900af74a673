//! `/v1/sys/rekey`: new unseal shares from a threshold of the old ones,
//! while the server stays unsealed and serving. `POST /v1/sys/rekey`
//! starts (new share count and threshold) and answers a nonce; each old
//! share then comes to `POST /v1/sys/rekey/update` with it; at the old
//! threshold the new shares are answered, once, and the old ones stop
//! working. `DELETE /v1/sys/rekey` drops a rekey in progress.
//!
//! Every step needs `sys:admin` and is on the audit log (durably, before
//! the answer) without any share.

use crate::auth::Caller;
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::seal::RekeyStep;
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::scope::Need;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Body of `POST /v1/sys/rekey`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RekeyStart {
    /// How many new shares to make.
    shares: u8,
    /// How many of them unseal.
    threshold: u8,
    /// One age X25519 public key (`age1…`) per new share: each share is
    /// answered only encrypted to its custodian.
    #[serde(default)]
    share_recipients: Vec<String>,
}

/// Body of `POST /v1/sys/rekey/update`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RekeyUpdate {
    /// The nonce `POST /v1/sys/rekey` answered.
    nonce: String,
    /// One old share (`kws1-…`).
    #[schema(value_type = String)]
    share: Zeroizing<String>,
}

impl std::fmt::Debug for RekeyUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyUpdate").field("nonce", &self.nonce).field("share", &"[redacted]").finish()
    }
}

/// `POST /v1/sys/rekey`.
pub(crate) async fn start(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "rekeying the unseal shares (sys:admin)")?;
    let body: RekeyStart = parse_json(&body_bytes(req).await?)?;
    caller
        .record
        .detail(json!({"change": "rekey_started", "shares": body.shares, "threshold": body.threshold}).to_string());
    caller.admit().await?;
    let recipients = keyward_core::custody::parse_recipients(&body.share_recipients)?;
    if !recipients.is_empty() && recipients.len() != usize::from(body.shares) {
        return Err(crate::error::Error::new(
            crate::error::Code::ShareMalformed,
            format!("give one share recipient per share: {} for {} shares", recipients.len(), body.shares),
        )
        .into());
    }
    let (nonce, old_threshold) = state.barrier.rekey_start(body.shares, body.threshold, recipients).await?;
    Ok(Json(
        json!({"nonce": nonce, "progress": 0, "old_threshold": old_threshold, "shares": body.shares, "threshold": body.threshold}),
    ))
}

/// `POST /v1/sys/rekey/update`.
pub(crate) async fn update(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "rekeying the unseal shares (sys:admin)")?;
    let body: RekeyUpdate = parse_json(&body_bytes(req).await?)?;
    caller.admit().await?;
    // Serialised with seal migrations: both rewrite the seal record.
    let _transition = state.barrier.transition().await;
    match state.barrier.rekey_submit(&body.nonce, &body.share).await? {
        RekeyStep::NeedMore { have, threshold } => {
            caller.record.detail(json!({"change": "rekey_share", "progress": have}).to_string());
            Ok(Json(json!({"complete": false, "progress": have, "old_threshold": threshold})))
        }
        RekeyStep::Done { set_id, shares, threshold, encrypted } => {
            caller.record.detail(
                json!({"change": "rekeyed", "set_id": set_id, "shares": shares.len(), "threshold": threshold})
                    .to_string(),
            );
            let shares: Vec<&str> = shares.iter().map(|s| s.as_str()).collect();
            Ok(Json(
                json!({"complete": true, "set_id": set_id, "threshold": threshold, "shares": shares, "encrypted": encrypted}),
            ))
        }
    }
}

/// `DELETE /v1/sys/rekey`.
pub(crate) async fn cancel(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "rekeying the unseal shares (sys:admin)")?;
    caller.record.detail(json!({"change": "rekey_cancelled"}).to_string());
    caller.admit().await?;
    Ok(Json(json!({"cancelled": state.barrier.rekey_cancel()?})))
}
