//! `/v1/sys/*`: health (no key), unseal (the shares are the credential),
//! seal and status (`sys:admin`).

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::request::StrictJson;
use crate::state::{AppState, SealState};
use axum::Json;
use axum::extract::State;
use keyward_core::keyring::RootKey;
use keyward_core::scope::Need;
use keyward_core::shamir::{Share, UnsealProgress, UnsealStep};
use keyward_store::SealKind;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

fn seal_type(kind: &SealKind) -> &'static str {
    match kind {
        SealKind::Shamir { .. } => "shamir",
        SealKind::Keyfile => "keyfile",
    }
}

/// What health and unseal report about the seal.
async fn seal_status(state: &AppState) -> ApiResult<Value> {
    let record = state.seal_record().await?;
    let (have, threshold) = match (&*state.seal.read().map_err(|_| ApiError::internal("lock"))?, &record.kind) {
        (SealState::Sealed { progress: Some(p) }, _) => (p.have(), p.threshold()),
        (_, SealKind::Shamir { threshold, .. }) => (0, *threshold),
        _ => (0, 0),
    };
    Ok(json!({
        "initialized": true,
        "sealed": state.is_sealed(),
        "seal_type": seal_type(&record.kind),
        "progress": have,
        "threshold": threshold,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /v1/sys/health`: always 200 while the process answers; says whether sealed.
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(seal_status(&state).await?))
}

/// Body of `POST /v1/sys/unseal`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// One Shamir share (`kws1-…`).
    #[schema(value_type = Option<String>)]
    share: Option<Zeroizing<String>>,
    /// The unseal key file's text.
    #[schema(value_type = Option<String>)]
    key: Option<Zeroizing<String>>,
    /// Forget the shares given so far.
    #[serde(default)]
    reset: bool,
}

impl std::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("share", &self.share.as_ref().map(|_| "[redacted]"))
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("reset", &self.reset)
            .finish()
    }
}

/// `POST /v1/sys/unseal`: one Shamir share (`share`), or the unseal key file's
/// text (`key`) for a key-file server that was sealed; `reset` drops progress.
pub async fn unseal(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<UnsealRequest>,
) -> ApiResult<Json<Value>> {
    let _guard = state.transition.lock().await;
    let record = state.seal_record().await?;
    if !state.is_sealed() {
        return seal_status(&state).await.map(Json);
    }
    let check =
        keyward_core::keyring::hex_decode(&record.check).ok_or_else(|| ApiError::internal("bad check value"))?;
    if req.reset {
        if let SealState::Sealed { progress } = &mut *state.seal.write().map_err(|_| ApiError::internal("lock"))? {
            *progress = None;
        }
        return seal_status(&state).await.map(Json);
    }
    let root = match (&record.kind, req.share, req.key) {
        (SealKind::Shamir { set_id, threshold, .. }, Some(text), None) => {
            let share = Share::parse(&text)?;
            let step = {
                let mut guard = state.seal.write().map_err(|_| ApiError::internal("lock"))?;
                let SealState::Sealed { progress } = &mut *guard else {
                    return Err(ApiError::internal("seal state changed"));
                };
                let p = progress.get_or_insert_with(|| UnsealProgress::new(set_id, *threshold));
                p.add(share, &check)?
            };
            match step {
                UnsealStep::Progress { .. } => return seal_status(&state).await.map(Json),
                UnsealStep::Complete(root) => root,
            }
        }
        (SealKind::Keyfile, None, Some(text)) => {
            let root = RootKey::from_unseal_file(&text)?;
            if !root.matches_check(&check) {
                return Err(ApiError::bad(
                    "unseal_key_mismatch",
                    "this unseal key does not belong to this keyward data",
                ));
            }
            root
        }
        (SealKind::Shamir { .. }, _, _) => {
            return Err(ApiError::bad(
                "invalid_request",
                "this server unseals with Shamir shares: send {\"share\": \"kws1-…\"}",
            ));
        }
        (SealKind::Keyfile, _, _) => {
            return Err(ApiError::bad(
                "invalid_request",
                "this server unseals with its unseal key file: send {\"key\": \"<file contents>\"} or restart it",
            ));
        }
    };
    state.install_root(root, &record).await?;
    seal_status(&state).await.map(Json)
}

/// `POST /v1/sys/seal` (`sys:admin`): drops every key from memory.
pub async fn seal(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Need::SysAdmin, "sealing the server (sys:admin)")?;
    drop(who);
    let _guard = state.transition.lock().await;
    state.seal_now()?;
    seal_status(&state).await.map(Json)
}

/// `GET /v1/sys/status` (`sys:admin`).
pub async fn status(State(state): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Need::SysAdmin, "reading server status (sys:admin)")?;
    let mut s = seal_status(&state).await?;
    let keys = who.unsealed.keys.read().map_err(|_| ApiError::internal("lock"))?.all().len();
    s["active_term"] = json!(who.unsealed.keyring.active_term());
    s["access_keys"] = json!(keys);
    if let Some(f) = &state.config.unseal_key_file {
        s["unseal_key_file"] = json!(f.display().to_string());
    }
    Ok(Json(s))
}

/// Body of `POST /v1/sys/test-clock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestClockRequest {
    now_ms: Option<i64>,
    advance_ms: Option<i64>,
}

/// `POST /v1/sys/test-clock` (`sys:admin`): sets the time; exists only on a
/// server started with `--test-clock`.
pub async fn test_clock(
    State(state): State<AppState>,
    who: Principal,
    StrictJson(req): StrictJson<TestClockRequest>,
) -> ApiResult<Json<Value>> {
    let Some(clock) = &state.test_clock else {
        return Err(ApiError::not_found("no such route; see docs/http-api.md"));
    };
    who.require(Need::SysAdmin, "setting the test clock (sys:admin)")?;
    if let Some(ms) = req.now_ms {
        clock.set_ms(ms);
    }
    if let Some(d) = req.advance_ms {
        clock.advance_ms(d);
    }
    use keyward_core::clock::Clock;
    Ok(Json(json!({ "now_ms": clock.now_ms() })))
}

/// Body of `POST /v1/sys/test-fault`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFaultRequest {
    audit_fail: bool,
}

/// `POST /v1/sys/test-fault` (`sys:admin`, test-clock servers only): makes
/// audit writes fail, to test that keyward fails closed.
pub async fn test_fault(
    State(state): State<AppState>,
    who: Principal,
    StrictJson(req): StrictJson<TestFaultRequest>,
) -> ApiResult<Json<Value>> {
    if state.test_clock.is_none() {
        return Err(ApiError::not_found("no such route; see docs/http-api.md"));
    }
    who.require(Need::SysAdmin, "injecting faults (sys:admin)")?;
    state.auditor.fail_writes.store(req.audit_fail, std::sync::atomic::Ordering::Release);
    Ok(Json(json!({ "audit_fail": req.audit_fail })))
}
