//! `POST /v1/sys/migrate-seal` (`sys:admin`): keep the root key another
//! way (key file, PKCS#11 token, Shamir shares) while the server serves.
//!
//! `sys:admin` is not enough: the request carries proof that its sender
//! could unseal with the seal in force (the key file's text, the token's
//! PIN, or a threshold of the shares), so a stolen admin key never becomes
//! a root key in a file or in shares.
//!
//! Authorized and admitted first, the proof checked, the decision on the
//! audit log durably; then the new seal is prepared (and, for an HSM,
//! proven to unseal) and the seal record switches in one write. Only after
//! that is the old key file zeroed and removed (kept when the new seal is
//! shares, which exist only in the answer). The server only writes its own key-file
//! path and only loads the PKCS#11 library it was started with
//! (`--pkcs11-lib`): a stolen admin key cannot make it write elsewhere or
//! run other code.

use super::sys::seal_type;
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::hsm::{self, Token};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::seal::{Proof, SealTarget};
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::scope::Need;
use keyward_store::SealKind;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Proof of the seal in force: the field its kind needs.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CurrentSeal {
    /// Key-file seal: the unseal key file's text.
    #[schema(value_type = Option<String>)]
    key: Option<Zeroizing<String>>,
    /// HSM seal: the token's user PIN.
    #[schema(value_type = Option<String>)]
    pin: Option<Zeroizing<String>>,
    /// Shamir seal: a threshold of the current shares.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    shares: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for CurrentSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentSeal([redacted])")
    }
}

/// Body of `POST /v1/sys/migrate-seal`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrateSealRequest {
    /// `keyfile`, `pkcs11` or `shamir`.
    to: String,
    /// Proof that the caller can unseal with the seal in force.
    #[serde(default)]
    current: CurrentSeal,
    /// pkcs11: the library (must be the server's `--pkcs11-lib`).
    lib: Option<String>,
    /// pkcs11: the token's slot id.
    slot: Option<u64>,
    /// pkcs11: the wrapping key's label (made on the token if none has it).
    key_label: Option<String>,
    /// pkcs11: the environment variable the server reads the PIN from.
    pin_env: Option<String>,
    /// shamir: shares to make.
    shares: Option<u8>,
    /// shamir: shares needed to unseal.
    threshold: Option<u8>,
    /// shamir: one age public key per share; shares are answered encrypted.
    #[serde(default)]
    share_recipients: Vec<String>,
}

fn pkcs11_target(state: &AppState, req: &MigrateSealRequest) -> Result<SealTarget, Error> {
    let (Some(lib), Some(slot), Some(key_label), Some(pin_env)) = (&req.lib, req.slot, &req.key_label, &req.pin_env)
    else {
        return Err(Error::invalid("to pkcs11: give lib, slot, key_label and pin_env"));
    };
    let allowed = state.config.pkcs11_lib.as_ref().ok_or_else(|| {
        Error::invalid(
            "this server was started without --pkcs11-lib: it loads no PKCS#11 library it was not told to at its start",
        )
    })?;
    let same = std::fs::canonicalize(lib).ok().zip(std::fs::canonicalize(allowed).ok()).is_some_and(|(a, b)| a == b);
    if !same {
        return Err(Error::invalid(format!(
            "this server loads only the PKCS#11 library it was started with ({}), not {lib}",
            allowed.display()
        )));
    }
    if key_label.is_empty() || key_label.len() > 64 || key_label.chars().any(char::is_control) {
        return Err(Error::invalid("key_label is 1 to 64 printable characters"));
    }
    if !hsm::valid_env_name(pin_env) {
        return Err(Error::invalid("pin_env is the name of an environment variable (A-Z, 0-9, _)"));
    }
    let token = Token { lib: allowed.clone(), slot, key_label: key_label.clone() };
    Ok(SealTarget::Pkcs11 { token, pin_env: pin_env.clone() })
}

fn target(state: &AppState, req: &MigrateSealRequest) -> Result<SealTarget, Error> {
    match req.to.as_str() {
        "keyfile" => state.config.unseal_key_file.clone().map(SealTarget::KeyFile).ok_or_else(|| {
            Error::new(
                Code::InvalidState,
                "a dev server keeps its root key only in memory: there is no seal to migrate",
            )
        }),
        "pkcs11" => pkcs11_target(state, req),
        "shamir" => {
            let (Some(shares), Some(threshold)) = (req.shares, req.threshold) else {
                return Err(Error::invalid("to shamir: give shares and threshold"));
            };
            let recipients = keyward_core::custody::parse_recipients(&req.share_recipients)?;
            if !recipients.is_empty() && recipients.len() != usize::from(shares) {
                return Err(Error::new(
                    Code::ShareMalformed,
                    format!("give one share recipient per share: {} for {shares} shares", recipients.len()),
                ));
            }
            Ok(SealTarget::Shamir { shares, threshold, recipients })
        }
        other => Err(Error::invalid(format!("to is keyfile, pkcs11 or shamir, not {other:?}"))),
    }
}

/// What the audit log and the answer say about a seal, without secrets.
fn describe(kind: &SealKind) -> Value {
    match kind {
        SealKind::Keyfile => json!({"type": "keyfile"}),
        SealKind::Shamir { shares, threshold, set_id } => {
            json!({"type": "shamir", "shares": shares, "threshold": threshold, "set_id": set_id})
        }
        SealKind::Pkcs11 { lib, slot, key_label, pin_env, .. } => {
            json!({"type": "pkcs11", "lib": lib, "slot": slot, "key_label": key_label, "pin_env": pin_env})
        }
    }
}

/// What the audit log says about the seal asked for.
fn describe_target(target: &SealTarget) -> Value {
    match target {
        SealTarget::KeyFile(_) => json!({"type": "keyfile"}),
        SealTarget::Pkcs11 { token, pin_env } => json!({
            "type": "pkcs11",
            "lib": token.lib.display().to_string(),
            "slot": token.slot,
            "key_label": token.key_label,
            "pin_env": pin_env,
        }),
        SealTarget::Shamir { shares, threshold, recipients } => {
            json!({"type": "shamir", "shares": shares, "threshold": threshold, "encrypted": !recipients.is_empty()})
        }
    }
}

/// `POST /v1/sys/migrate-seal`.
pub(crate) async fn migrate_seal(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Json<Value>> {
    caller.require(Need::SysAdmin, "changing how the root key is sealed (sys:admin)")?;
    let mut body: MigrateSealRequest = parse_json(&body_bytes(req).await?)?;
    let target = target(&state, &body)?;
    caller.admit().await?;
    let current = std::mem::take(&mut body.current);
    let proof = Proof { key: current.key, pin: current.pin, shares: current.shares };
    // On its own task, so a client that goes away cannot stop it half-way
    // (a key file written and not taken back, or a switch not answered).
    tokio::spawn(migrate(state, caller, target, proof))
        .await
        .map_err(|_| Error::internal("the seal migration task failed"))?
}

async fn migrate(state: AppState, caller: Caller, target: SealTarget, proof: Proof) -> ApiResult<Json<Value>> {
    let _transition = state.barrier.transition().await;
    let record = state.barrier.record().await?;
    state.barrier.prove_current(&record, proof, state.config.pkcs11_lib.as_deref()).await?;
    let from = record.kind;
    let to_shares = matches!(target, SealTarget::Shamir { .. });
    // The decision is on the log before anything is made: no key file or
    // token key exists that the log does not explain.
    let mut detail = json!({"change": "seal_migrated", "from": describe(&from), "to": describe_target(&target)});
    super::record_change(&state, &caller, None, detail.to_string()).await?;
    let prepared = state.barrier.prepare_migration(target).await?;
    if let Err(e) = state.barrier.commit_migration(&prepared).await {
        prepared.abandon();
        return Err(e.into());
    }
    let mut out = json!({
        "from": seal_type(&from),
        "seal_type": seal_type(&prepared.kind),
        "seal": describe(&prepared.kind),
    });
    if let (SealKind::Keyfile, Some(old)) = (&from, &state.config.unseal_key_file) {
        if to_shares {
            // The shares exist only in this answer: the old file stays until
            // they are safe, so an answer lost on the way locks nobody out.
            out["kept_key_file"] = json!(old.display().to_string());
        } else {
            dispose_key_file(old, &mut out);
        }
    }
    if let Some(f) = &prepared.key_file {
        out["unseal_key_file"] = json!(f.display().to_string());
    }
    if let SealKind::Shamir { threshold, set_id, .. } = &prepared.kind {
        out["shares"] = json!(prepared.shares.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        out["threshold"] = json!(threshold);
        out["set_id"] = json!(set_id);
        out["encrypted"] = json!(prepared.encrypted);
    }
    detail["to"] = describe(&prepared.kind);
    detail["removed_key_file"] = out.get("removed_key_file").cloned().unwrap_or(Value::Null);
    caller.record.detail(detail.to_string());
    Ok(Json(out))
}

/// The old key file still opens this data: it goes once the new seal is in force.
fn dispose_key_file(old: &std::path::Path, out: &mut Value) {
    match crate::seal::remove_key_file(old) {
        Ok(()) => out["removed_key_file"] = json!(old.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(file = %old.display(), error = %e, "the old unseal key file could not be removed");
            out["warning"] = json!(format!(
                "the old unseal key file {} could not be removed ({e}): it still opens this data, remove it by hand",
                old.display()
            ));
        }
    }
}
