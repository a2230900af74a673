//! `POST /v1/sign/{account}`: what to send to the exchange, signed.
//!
//! Parse (the account name, the JSON body, the request in its canonical
//! form) → identify the caller → the exchange pipeline (see
//! `exchange::pipeline`). keyward alone sets timestamp, nonce and receive
//! window; overrides are accepted only on a server started with a test clock.

use crate::error::Error;
use crate::exchange::{Overrides, Signed, check_account_name};
use crate::http::extract::{bearer, identify, parse_json, read_body, record};
use crate::http::{ApiResult, AppState};
use axum::Json;
use axum::extract::{Path, Request, State};
use keyward_core::decision::DenyReason;
use keyward_exchanges::CanonicalRequest;
use serde::Deserialize;

/// Body of `POST /v1/sign/{account}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignRequest {
    method: String,
    path: String,
    query: Option<String>,
    body: Option<String>,
    timestamp_ms: Option<i64>,
    nonce: Option<u64>,
}

/// Parses what the client asked to sign: the body is JSON when it looks like JSON, a form otherwise.
pub(crate) fn canonical(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<CanonicalRequest, Error> {
    let body = body.unwrap_or("");
    let trimmed = body.trim_start();
    let ctype = if body.is_empty() {
        None
    } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Some("application/json")
    } else {
        Some("application/x-www-form-urlencoded")
    };
    CanonicalRequest::parse(method, path, query, ctype, body.as_bytes())
        .map_err(|e| Error::new(DenyReason::RequestNotCanonical, e.to_string()))
}

/// `POST /v1/sign/{account}`.
pub(crate) async fn sign(
    State(state): State<AppState>,
    Path(account): Path<String>,
    request: Request,
) -> ApiResult<Json<Signed>> {
    let (parts, body) = request.into_parts();
    crate::http::note_route(&parts);
    let req: SignRequest = parse_json(&read_body(&parts.headers, body).await?)?;
    check_account_name(&account)?;
    let overrides = Overrides { timestamp_ms: req.timestamp_ms, nonce: req.nonce };
    let creq = canonical(&req.method, &req.path, req.query.as_deref(), req.body.as_deref())?;
    record(&parts).target(format!("{account} {} {}", creq.method.as_str(), creq.path));
    let caller = identify(&state, &parts, bearer(&parts)).await?;
    Ok(Json(state.exchanges.sign_request(&caller, &account, creq, overrides).await?))
}
