//! `POST /v1/auth/token`: trade an access key for a short-lived token,
//! bound to the caller's address and to a subset of the key's scopes.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::request::{body_bytes, parse_json};
use crate::routes::timestamp;
use crate::state::AppState;
use crate::token::{self, TokenClaims};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use keyward_core::base62;
use keyward_core::duration;
use keyward_core::scope::{Scope, all_covered};
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /v1/auth/token` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    scopes: Option<Vec<String>>,
    ttl: Option<String>,
}

/// `POST /v1/auth/token`.
pub async fn mint(State(state): State<AppState>, who: Principal, req: Request) -> ApiResult<(StatusCode, Json<Value>)> {
    if who.token_scopes.is_some() {
        return Err(ApiError::scope_missing("a token cannot mint tokens: use the access key"));
    }
    let bytes = body_bytes(req).await?;
    let body: TokenRequest = if bytes.is_empty() { TokenRequest::default() } else { parse_json(&bytes)? };
    let max = state.config.token_max_ttl;
    let ttl_s = match body.ttl.as_deref() {
        Some(t) => duration::parse_secs(t)?,
        None => max.as_secs(),
    };
    if ttl_s > max.as_secs() {
        return Err(ApiError::bad(
            "invalid_request",
            format!("a token lives at most {}s (ttl {ttl_s}s asked)", max.as_secs()),
        ));
    }
    let scopes = match body.scopes {
        Some(list) => list.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?,
        None => who.key.policy.scopes.clone(),
    };
    if scopes.is_empty() {
        return Err(ApiError::bad("invalid_scope", "a token needs at least one scope"));
    }
    if let Some(s) = scopes.iter().find(|s| !all_covered(&who.key.policy.scopes, std::slice::from_ref(*s))) {
        return Err(ApiError::scope_missing(format!("a token can only carry the key's scopes; {s} is not covered")));
    }
    let now = state.clock.now_ms();
    let mut exp = now + ttl_s as i64 * 1000;
    if let Some(key_exp) = who.key.policy.expires_ms {
        exp = exp.min(key_exp);
    }
    let claims = TokenClaims { key: who.key.id.clone(), scopes, ip: who.ip, exp, nonce: base62::random_string(12)? };
    let t = token::mint(&who.unsealed.keyring, &claims);
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"token": t, "expires_at": timestamp(exp), "scopes": claims.scopes, "ip": claims.ip.to_string(), "key_id": claims.key}),
        ),
    ))
}
