//! `POST /v1/scan/match` (`keys:admin`): what `keyward scan --server` found,
//! matched against what this server holds. A keyward key is looked up by
//! its keyed hash, as authentication would (the key itself is neither
//! stored nor logged, and the answer names the key by id); an exchange API
//! key (the public part, never a secret) is compared with the stored
//! accounts' key fields. The audit entry counts what was asked and matched.

use crate::auth::Caller;
use crate::error::Error;
use crate::exchange::{PREFIX, SECRET_FIELDS, account_name};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Request, State};
use keyward_core::scope::Need;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The fields of an account that hold its API key's public id.
const KEY_FIELDS: &[&str] = &["api_key", "key", "key_name", "client_id"];

/// At most this many values per request.
const MAX: usize = 10_000;

/// An exchange API key a scan found.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FoundExchangeKey {
    /// The exchange the scanner attributed it to (`binance`), if any.
    exchange: Option<String>,
    /// The API key (its public id).
    key: String,
}

/// Body of `POST /v1/scan/match`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchRequest {
    /// keyward keys found (`kw_…`, or a platform namespace's).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    keys: Vec<Zeroizing<String>>,
    /// Exchange API keys found.
    #[serde(default)]
    exchange_keys: Vec<FoundExchangeKey>,
}

impl std::fmt::Debug for MatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchRequest")
            .field("keys", &self.keys.len())
            .field("exchange_keys", &self.exchange_keys.len())
            .finish()
    }
}

/// `POST /v1/scan/match`.
pub(crate) async fn match_found(State(state): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.require(Need::KeyAdmin, "matching scan findings (keys:admin)")?;
    let body: MatchRequest = parse_json(&body_bytes(req).await?)?;
    if body.keys.len() + body.exchange_keys.len() > MAX {
        return Err(Error::invalid(format!("at most {MAX} values per request")).into());
    }
    caller.admit().await?;
    let now = state.clock.now_ms();
    let mut keys = Vec::new();
    for (i, k) in body.keys.iter().enumerate() {
        let hash = caller.unsealed.access_key_hash(k.as_bytes());
        if let Some(e) = state.keys.by_hash(&hash)? {
            keys.push(json!({
                "index": i,
                "key_id": e.id,
                "name": e.name,
                "owner": e.owner,
                "namespace": e.namespace,
                "state": e.effective_state(now).as_str(),
            }));
        }
    }
    let mut accounts = Vec::new();
    if !body.exchange_keys.is_empty() {
        for meta in state.secrets.list(PREFIX).await? {
            let Some(name) = account_name(&meta.path) else { continue };
            // Only accounts the caller may read are named back to it.
            if !caller.may(Need::SecretRead(&meta.path)) {
                continue;
            }
            let Ok(v) = state.secrets.read(&caller.unsealed, &meta.path, None).await else { continue };
            for (i, found) in body.exchange_keys.iter().enumerate() {
                // The key fields only (API key, Coinbase key name, Deribit client id).
                let hit = v.data.0.iter().any(|(f, value)| {
                    KEY_FIELDS.contains(&f.as_str())
                        && !SECRET_FIELDS.contains(&f.as_str())
                        && bool::from(value.expose().as_bytes().ct_eq(found.key.as_bytes()))
                });
                if hit {
                    tracing::info!(account = name, "a scan found this account's API key");
                    accounts.push(json!({
                        "index": i,
                        "account": name,
                        "path": meta.path,
                        "type": meta.kind,
                        "exchange": found.exchange,
                        "version": v.version,
                    }));
                }
            }
        }
    }
    caller.record.detail(
        json!({"change": "scan_match", "keys": body.keys.len(), "keys_matched": keys.len(),
               "exchange_keys": body.exchange_keys.len(), "accounts_matched": accounts.len(),
               "accounts": accounts.iter().map(|a| a["account"].clone()).collect::<Vec<_>>()})
        .to_string(),
    );
    Ok(Json(json!({"keys": keys, "accounts": accounts})))
}
