//! `POST /v1/auth/token`: trade an access key for a short-lived token,
//! bound to the caller's address and to a subset of the key's scopes.

use crate::auth::Caller;
use crate::auth::token::{self, TokenClaims};
use crate::error::{Code, Error};
use crate::http::extract::{body_bytes, parse_json};
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use keyward_core::base62;
use keyward_core::clock::rfc3339;
use keyward_core::duration;
use keyward_core::scope::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /v1/auth/token` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    scopes: Option<Vec<String>>,
    ttl: Option<String>,
}

/// `POST /v1/auth/token`.
pub(crate) async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if caller.token_scopes.is_some() {
        return Err(Error::scope_missing("a token cannot mint tokens: use the access key").into());
    }
    let bytes = body_bytes(req).await?;
    let body: TokenRequest = if bytes.is_empty() { TokenRequest::default() } else { parse_json(&bytes)? };
    let max = state.config.token_max_ttl;
    let ttl_s = match body.ttl.as_deref() {
        Some(t) => duration::parse_secs(t)?,
        None => max.as_secs(),
    };
    if ttl_s > max.as_secs() {
        return Err(Error::invalid(format!("a token lives at most {}s (ttl {ttl_s}s asked)", max.as_secs())).into());
    }
    let scopes = match body.scopes {
        Some(list) => list.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?,
        None => caller.key.policy.scopes.clone(),
    };
    if scopes.is_empty() {
        return Err(Error::new(Code::InvalidScope, "a token needs at least one scope").into());
    }
    caller.require_covers(&scopes, "a token")?;
    caller.admit().await?;
    let now = state.clock.now_ms();
    let mut exp = now + ttl_s as i64 * 1000;
    if let Some(key_exp) = caller.key.policy.expires_ms {
        exp = exp.min(key_exp);
    }
    let claims =
        TokenClaims { key: caller.key.id.to_string(), scopes, ip: caller.ip, exp, nonce: base62::random_string(12)? };
    let t = token::mint(&caller.unsealed, &claims)?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": t, "expires_at": rfc3339(exp), "scopes": claims.scopes, "ip": claims.ip.to_string(), "key_id": claims.key}),
        ),
    ))
}
