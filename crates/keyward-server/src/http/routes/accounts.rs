//! `POST /v1/accounts/{name}/keygen`: an exchange key pair made inside
//! keyward. The private key is staged as the pending version of
//! `exchanges/<name>`, marked non-exportable inside the envelope, so no
//! scope (`export` and `sys:admin` included) ever reads it back; the answer
//! carries only the public key, in the form the exchange's key page takes.
//! The operator registers it on the exchange, then promotes it with
//! `keyward secret rotate exchanges/<name> api_key=<key id> --verify`.
//!
//! Authorization is that of a rotation (`secret:write` on the path and
//! `account:<name>:admin`), checked before anything is made; the change is
//! on the audit log with the algorithm and version, never a key.

use super::secrets::{meta_json, require_write};
use crate::auth::Caller;
use crate::error::{Code, Error};
use crate::exchange::{PREFIX, SECRET_FIELDS, check_account_name};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use crate::secrets::RotatePlan;
use axum::Json;
use axum::extract::{Path, Request, State};
use keyward_core::secret::{SecretData, SecretValue};
use keyward_core::secret_path::SecretPath;
use keyward_exchanges::{KeyAlg, KeyPair};
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /v1/accounts/{name}/keygen`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeygenRequest {
    /// The exchange (`binance`, `bybit`, `bitget`); must match the
    /// account's type when it exists. Needed for a new account.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `ed25519` or `rsa`.
    alg: String,
    /// RSA size: 2048 (default) or 4096.
    bits: Option<usize>,
}

/// The field the private key goes in.
const PRIVATE_KEY: &str = "private_key";

fn algorithm(body: &KeygenRequest, kind: &str) -> Result<KeyAlg, Error> {
    let ex = keyward_exchanges::by_kind(kind).ok_or_else(|| {
        let kinds: Vec<_> = keyward_exchanges::registry().iter().map(|e| e.kind()).collect();
        Error::new(Code::AccountInvalid, format!("unknown exchange type {kind:?}; known: {}", kinds.join(", ")))
    })?;
    let accepted = ex.self_generated_keys();
    if accepted.is_empty() {
        let makers: Vec<_> = keyward_exchanges::registry()
            .iter()
            .filter(|e| !e.self_generated_keys().is_empty())
            .map(|e| e.kind())
            .collect();
        return Err(Error::new(
            Code::AccountInvalid,
            format!(
                "{kind} makes its API keys itself and takes no public key; keygen works for {}. Store the key {kind} gives you with `keyward secret rotate`",
                makers.join(", ")
            ),
        ));
    }
    let names: Vec<_> = accepted.iter().map(|f| f.as_str()).collect();
    let alg = match (KeyAlg::parse(&body.alg), body.bits) {
        (Some(KeyAlg::Rsa(_)), Some(bits)) if bits == 2048 || bits == 4096 => KeyAlg::Rsa(bits),
        (Some(KeyAlg::Rsa(_)), Some(bits)) => {
            return Err(Error::invalid(format!("RSA keys here have 2048 or 4096 bits, not {bits}")));
        }
        (Some(KeyAlg::Ed25519), Some(_)) => return Err(Error::invalid("--bits is for RSA keys only")),
        (Some(alg), _) => alg,
        (None, _) => {
            return Err(Error::invalid(format!(
                "unknown key algorithm {:?}; {kind} takes: {}",
                body.alg,
                names.join(", ")
            )));
        }
    };
    if !accepted.contains(&alg.family()) {
        return Err(Error::new(
            Code::AccountInvalid,
            format!("{kind} does not take {} keys; it takes: {}", alg.family().as_str(), names.join(", ")),
        ));
    }
    Ok(alg)
}

/// `POST /v1/accounts/{name}/keygen`.
pub(crate) async fn keygen(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    check_account_name(&name)?;
    let path = SecretPath::parse(&format!("{PREFIX}{name}"))?;
    caller.record.target(path.as_str());
    require_write(&caller, &path, "making a key for")?;
    let body: KeygenRequest = parse_json(&body_bytes(req).await?)?;
    let stored = state.secrets.meta(path.as_str()).await?.and_then(|m| m.kind);
    let kind = match (&body.kind, &stored) {
        (Some(asked), Some(have)) if asked != have => {
            return Err(Error::new(
                Code::AccountInvalid,
                format!("exchange account {name} is a {have} account, not {asked}"),
            )
            .into());
        }
        (_, Some(have)) => have.clone(),
        (Some(asked), None) => asked.clone(),
        (None, None) => {
            return Err(Error::new(
                Code::AccountInvalid,
                format!("{name} is a new account: say which exchange with --type (binance, bybit, bitget)"),
            )
            .into());
        }
    };
    let alg = algorithm(&body, &kind)?;
    // The key is made on a blocking thread (RSA 4096 takes seconds), from the OS CSPRNG.
    let pair = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
        .await
        .map_err(|_| Error::internal("key generation stopped"))?
        .map_err(|_| Error::internal("key generation failed"))?;
    let mut fields = SecretData::default();
    fields.0.insert(PRIVATE_KEY.to_string(), SecretValue::new(pair.private_pem.to_string()));
    let mut staging = state.secrets.staging(&caller.unsealed, path.as_str(), fields, true).await?;
    // The new key replaces every credential of the version it starts from:
    // the exchange gives the key id (and Bitget the passphrase) at registration.
    for f in SECRET_FIELDS.iter().chain(&["api_key"]) {
        if *f != PRIVATE_KEY {
            staging.data.0.remove(*f);
        }
    }
    staging.data.mark_non_exportable(&[PRIVATE_KEY]);
    let plan = RotatePlan { changes: None, kind: Some(kind.clone()), rotation_period_s: None };
    let admitted = caller.admit().await?;
    let (meta, pending) = state.secrets.stage(&admitted, &caller.unsealed, path.as_str(), staging, &plan).await?;
    caller.record.detail(
        json!({"change": "keygen", "version": pending, "alg": alg.to_string(), "non_exportable": [PRIVATE_KEY]})
            .to_string(),
    );
    tracing::info!(account = %name, version = pending, alg = %alg, by = %caller.key.id, "exchange key pair made");
    let mut answer = meta_json(&meta);
    answer["path"] = json!(path.as_str());
    answer["account"] = json!(name);
    answer["pending_version"] = json!(pending);
    answer["alg"] = json!(alg.to_string());
    answer["public_key_pem"] = json!(pair.public_pem());
    answer["public_key"] = json!(pair.public_base64());
    answer["non_exportable"] = json!([PRIVATE_KEY]);
    answer["next"] = json!(format!(
        "register the public key on {kind}'s API key page, then: keyward secret rotate {path} api_key=<the key id {kind} shows> --verify"
    ));
    Ok(Json(answer))
}
