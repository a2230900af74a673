//! `/v1/sys/*`: health (no key), unseal (the shares are the credential),
//! seal and status (`sys:admin`), and the test hooks of `--test-clock`
//! servers.

use crate::auth::Caller;
use crate::error::Error;
use crate::http::extract::{StrictJson, body_bytes, parse_json, read_body, record};
use crate::http::{ApiResult, AppState};
use crate::seal::Submitted;
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::clock::Clock;
use keyward_core::scope::Need;
use keyward_store::SealKind;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

pub(crate) fn seal_type(kind: &SealKind) -> &'static str {
    match kind {
        SealKind::Shamir { .. } => "shamir",
        SealKind::Keyfile => "keyfile",
        SealKind::Pkcs11 { .. } => "pkcs11",
    }
}

/// What health and unseal report about the seal.
async fn seal_status(state: &AppState) -> ApiResult<Value> {
    let record = state.barrier.record().await?;
    let progress = state.barrier.progress(&record)?;
    let mut s = json!({
        "initialized": true,
        "sealed": state.barrier.is_sealed(),
        "seal_type": seal_type(&record.kind),
        "progress": progress.have,
        "threshold": progress.threshold,
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(why) = state.barrier.hsm_failure() {
        s["seal_error"] = json!(why);
    }
    Ok(s)
}

/// `GET /v1/sys/health`: always 200 while the process answers; says whether sealed.
pub(crate) async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(seal_status(&state).await?))
}

/// Body of `POST /v1/sys/unseal`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsealRequest {
    /// One Shamir share (`kws1-…`).
    #[schema(value_type = Option<String>)]
    share: Option<Zeroizing<String>>,
    /// The unseal key file's text.
    #[schema(value_type = Option<String>)]
    key: Option<Zeroizing<String>>,
    /// Forget the shares given so far.
    #[serde(default)]
    reset: bool,
    /// HSM seal: ask the HSM again (after it failed), with the PIN in the
    /// server's environment.
    #[serde(default)]
    hsm: bool,
    /// HSM seal: the token's user PIN (needed after an operator sealed the server).
    #[schema(value_type = Option<String>)]
    pin: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("share", &self.share.as_ref().map(|_| "[redacted]"))
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("reset", &self.reset)
            .field("hsm", &self.hsm)
            .field("pin", &self.pin.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `POST /v1/sys/unseal`: one Shamir share (`share`), or the unseal key file's
/// text (`key`) for a key-file server that was sealed; `reset` drops progress.
/// The share is the credential: an accepted one is the allowed decision.
pub(crate) async fn unseal(State(state): State<AppState>, request: Request) -> ApiResult<Json<Value>> {
    let (parts, body) = request.into_parts();
    crate::http::note_route(&parts);
    let req: UnsealRequest = parse_json(&read_body(&parts.headers, body).await?)?;
    let _transition = state.barrier.transition().await;
    let seal = state.barrier.record().await?;
    if let SealKind::Pkcs11 { .. } = &seal.kind {
        if state.barrier.is_sealed() && !req.reset {
            if !req.hsm && req.pin.is_none() {
                return Err(Error::invalid("this server unseals through its HSM: send {\"hsm\": true}").into());
            }
            let root = state.barrier.hsm_root(&seal, state.config.pkcs11_lib.as_deref(), req.pin).await?;
            state.unseal(root, &seal).await?;
        }
    } else if req.reset && state.barrier.is_sealed() {
        state.barrier.reset_progress()?;
    } else if !req.reset
        && let Submitted::Root(root) = state.barrier.submit(
            &seal,
            req.share.as_deref().map(|s| s.as_str()),
            req.key.as_deref().map(|s| s.as_str()),
        )?
    {
        state.unseal(root, &seal).await?;
    }
    record(&parts).allow();
    seal_status(&state).await.map(Json)
}

/// `POST /v1/sys/seal` (`sys:admin`): drops every key from memory.
pub(crate) async fn seal(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "sealing the server (sys:admin)")?;
    caller.admit().await?;
    // The request's own hold on the keyring goes first.
    drop(caller);
    let _transition = state.barrier.transition().await;
    state.seal()?;
    state.barrier.note_operator_seal();
    seal_status(&state).await.map(Json)
}

/// `POST /v1/sys/rotate` (`sys:admin`): a new keyring term for new writes;
/// older terms still decrypt.
pub(crate) async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "rotating the keyring term (sys:admin)")?;
    let previous = caller.unsealed.active_term();
    caller.admit().await?;
    let _transition = state.barrier.transition().await;
    let term = state.barrier.rotate_term().await?;
    caller.record.detail(json!({"change": "term_rotated", "term": term, "previous": previous}).to_string());
    let mut s = seal_status(&state).await?;
    s["active_term"] = json!(term);
    s["previous_term"] = json!(previous);
    s["terms"] = terms(&state, term).await?.0;
    Ok(Json(s))
}

/// Body of `POST /v1/sys/rewrap`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RewrapRequest {
    /// Versions to re-encrypt in this call, 0 to 10000 (default 200).
    batch: Option<u32>,
    /// After the batch, retire this term: refused while anything still
    /// depends on it.
    retire_term: Option<u32>,
}

/// `POST /v1/sys/rewrap` (`sys:admin`): one batch of re-encryption under
/// the active term, while the server serves; call again until `remaining`
/// is 0 (`keyward operator rewrap` does, with a progress bar).
pub(crate) async fn rewrap(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "rewrapping secrets (sys:admin)")?;
    let bytes = body_bytes(req).await?;
    let body: RewrapRequest = if bytes.is_empty() { RewrapRequest::default() } else { parse_json(&bytes)? };
    let batch = body.batch.unwrap_or(200);
    if batch > 10_000 {
        return Err(Error::invalid("batch is at most 10000 versions per call").into());
    }
    caller.admit().await?;
    let done = state.barrier.rewrap_batch(batch).await?;
    let mut detail = json!({"change": "rewrapped", "versions": done.rewrapped, "term": done.term});
    if let Some(t) = body.retire_term {
        let _transition = state.barrier.transition().await;
        let retired = state.barrier.retire_term(t).await;
        detail["retire_term"] = json!(t);
        detail["retired"] = json!(retired.is_ok());
        caller.record.detail(detail.to_string());
        retired?;
    } else {
        caller.record.detail(detail.to_string());
    }
    let (terms, remaining) = terms(&state, done.term).await?;
    Ok(Json(json!({
        "rewrapped": done.rewrapped,
        "changed_meanwhile": done.changed_meanwhile,
        "active_term": done.term,
        "remaining": remaining,
        "retired_term": body.retire_term,
        "terms": terms,
    })))
}

/// Every term from 1 to the active one, with the secret versions each
/// still encrypts, and how many are under a term older than the active one
/// (what a rewrap still has to move). One count of the store.
async fn terms(state: &AppState, active: u32) -> Result<(Value, u64), Error> {
    let counts = state.barrier.versions_by_term().await?;
    let retired = state.barrier.record().await?.retired_terms;
    let last = counts.keys().next_back().copied().unwrap_or(0).max(active);
    let term = |t: u32| {
        json!({
            "term": t,
            "active": t == active,
            "retired": retired.contains(&t),
            "secret_versions": counts.get(&t).copied().unwrap_or(0),
        })
    };
    let older = counts.range(..active).map(|(_, n)| n).sum();
    Ok((json!((1..=last).map(term).collect::<Vec<_>>()), older))
}

/// `GET /v1/sys/status` (`sys:admin`).
pub(crate) async fn status(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "reading server status (sys:admin)")?;
    caller.admit().await?;
    let mut s = seal_status(&state).await?;
    let active = state.barrier.unsealed().map(|u| u.active_term()).unwrap_or_else(|_| caller.unsealed.active_term());
    s["active_term"] = json!(active);
    s["terms"] = terms(&state, active).await?.0;
    s["access_keys"] = json!(state.keys.count());
    s["storage"] = json!({
        "backend": if state.store.shared() { "postgres" } else { "sqlite" },
        "shared": state.store.shared(),
        "key_ledger_rev": state.keys.rev().await,
    });
    match &state.barrier.record().await?.kind {
        SealKind::Keyfile => {
            if let Some(f) = &state.config.unseal_key_file {
                s["unseal_key_file"] = json!(f.display().to_string());
            }
        }
        SealKind::Pkcs11 { lib, slot, key_label, pin_env, .. } => {
            let lib = state.config.pkcs11_lib.as_ref().map(|l| l.display().to_string()).unwrap_or_else(|| lib.clone());
            s["hsm"] = json!({"lib": lib, "slot": slot, "key_label": key_label, "pin_env": pin_env});
        }
        SealKind::Shamir { .. } => {}
    }
    Ok(Json(s))
}

/// Body of `POST /v1/sys/test-clock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestClockRequest {
    now_ms: Option<i64>,
    advance_ms: Option<i64>,
}

fn no_route() -> Error {
    Error::not_found("no such route; see docs/http-api.md")
}

/// `POST /v1/sys/test-clock` (`sys:admin`): sets the time; exists only on a
/// server started with `--test-clock`.
pub(crate) async fn test_clock(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(req): StrictJson<TestClockRequest>,
) -> ApiResult<Json<Value>> {
    let clock = state.test_clock.as_ref().ok_or_else(no_route)?;
    caller.require(Need::SysAdmin, "setting the test clock (sys:admin)")?;
    caller.admit().await?;
    if let Some(ms) = req.now_ms {
        clock.set_ms(ms);
    }
    if let Some(d) = req.advance_ms {
        clock.advance_ms(d);
    }
    Ok(Json(json!({ "now_ms": clock.now_ms() })))
}

/// Body of `POST /v1/sys/test-fault`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFaultRequest {
    audit_fail: bool,
}

/// `POST /v1/sys/test-fault` (`sys:admin`, test-clock servers only): makes
/// audit writes fail, to test that keyward fails closed.
pub(crate) async fn test_fault(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(req): StrictJson<TestFaultRequest>,
) -> ApiResult<Json<Value>> {
    state.test_clock.as_ref().ok_or_else(no_route)?;
    caller.require(Need::SysAdmin, "injecting faults (sys:admin)")?;
    caller.admit().await?;
    state.auditor.set_fail_writes(req.audit_fail);
    Ok(Json(json!({ "audit_fail": req.audit_fail })))
}
