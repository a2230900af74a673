//! `POST /v1/sign/{account}`: what to send to the exchange, signed.
//!
//! The request is parsed strictly into its canonical form and classified
//! against the exchange's catalog; the key needs `account:<name>:<class>`.
//! Where the exchange's signature does not bind the path or body (Binance,
//! Bybit), a handed-out signature could be replayed on another endpoint, so
//! those accounts sign here only for keys holding `account:<name>:admin`.
//! keyward alone sets timestamp, nonce and receive window; overrides are
//! accepted only on a server started with a test clock.

use crate::accounts;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::request::StrictJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyward_core::scope::{Class, Need, Scope};
use keyward_exchanges::{CanonicalRequest, SignContext};
use serde::{Deserialize, Serialize};

/// The receive window keyward asks for (exchanges refuse older requests).
pub const RECV_WINDOW_MS: u64 = 5000;

/// Body of `POST /v1/sign/{account}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    method: String,
    path: String,
    query: Option<String>,
    body: Option<String>,
    timestamp_ms: Option<i64>,
    nonce: Option<u64>,
}

fn not_canonical(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad("request_not_canonical", e.to_string())
}

/// Parses what the client asked to sign: the body is JSON when it looks like JSON, a form otherwise.
pub fn canonical(method: &str, path: &str, query: Option<&str>, body: Option<&str>) -> ApiResult<CanonicalRequest> {
    let body = body.unwrap_or("");
    let trimmed = body.trim_start();
    let ctype = if body.is_empty() {
        None
    } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Some("application/json")
    } else {
        Some("application/x-www-form-urlencoded")
    };
    CanonicalRequest::parse(method, path, query, ctype, body.as_bytes()).map_err(not_canonical)
}

/// Refuses unless the key holds some scope on `account`: no other answer
/// (unknown account, unknown endpoint) is given to a key without one.
pub fn require_some_account_scope(who: &Principal, account: &str) -> ApiResult<()> {
    let any = who.scopes().iter().any(|s| match s {
        Scope::Account(glob, _) => keyward_core::scope::glob_match(glob, account),
        _ => false,
    });
    if any { Ok(()) } else { Err(ApiError::scope_missing(format!("this key has no scope on account {account}"))) }
}

/// Drops the client's auth parameters, classifies the request against the
/// exchange's catalog (`endpoint_unknown` if absent), notes class and target
/// for the audit entry, and requires `account:<name>:<class>` (public market
/// data needs only some scope on the account, checked before).
pub fn authorize(
    who: &Principal,
    account: &str,
    exchange: &dyn keyward_exchanges::Exchange,
    creq: &mut CanonicalRequest,
    ext: &axum::http::Extensions,
) -> ApiResult<Class> {
    creq.remove_params(exchange.auth_params());
    let class = exchange.classify(creq).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "endpoint_unknown",
            format!(
                "{} {} is not in keyward's {} catalog; it is refused until reviewed",
                creq.method.as_str(),
                creq.path,
                exchange.kind()
            ),
        )
    })?;
    crate::audit::note(ext, |c| {
        c.class = class.as_str().to_string();
        c.target = Some(format!("{account} {} {}", creq.method.as_str(), creq.path));
        c.sensitive = matches!(class, Class::Withdraw | Class::Transfer | Class::Admin);
    });
    if class != Class::Public {
        who.require(
            Need::Account(account, class),
            &format!("{} on account {account} (account:{account}:{})", class.as_str(), class.as_str()),
        )?;
    }
    Ok(class)
}

/// `POST /v1/sign/{account}`.
pub async fn sign(
    State(state): State<AppState>,
    Path(account): Path<String>,
    ext: axum::http::Extensions,
    who: Principal,
    StrictJson(req): StrictJson<SignRequest>,
) -> ApiResult<Json<Signed<'static>>> {
    keyward_core::secret_path::SecretPath::parse(&format!("{}{account}", accounts::PREFIX))
        .map_err(|_| ApiError::bad("invalid_path", "invalid account name"))?;
    require_some_account_scope(&who, &account)?;
    if (req.timestamp_ms.is_some() || req.nonce.is_some()) && state.test_clock.is_none() {
        return Err(ApiError::bad(
            "invalid_request",
            "keyward sets timestamps and nonces itself; overrides are accepted only on a test-clock server",
        ));
    }
    let mut creq = canonical(&req.method, &req.path, req.query.as_deref(), req.body.as_deref())?;
    // From memory after the first use (the key holds a scope on this account).
    let acct = accounts::cached(&state, &who.unsealed, &account).await?;
    let exchange = acct.exchange;
    let class = authorize(&who, &account, exchange, &mut creq, &ext)?;
    if class != Class::Public && !exchange.signature_binds_request() {
        who.require(
            Need::Account(&account, Class::Admin),
            &format!(
                "signing for {account}: {} signatures do not cover the path, so a signature handed out could be replayed on another endpoint; the sign API needs account:{account}:admin (use the proxy instead)",
                exchange.kind()
            ),
        )?;
    }
    if matches!(class, Class::Trade | Class::Borrow) {
        let orders = crate::guards::check(&state, &who, &account, &acct, &creq).await?;
        let detail = crate::proxy::order_detail(&orders);
        crate::audit::note(&ext, |c| c.detail = detail);
    }
    let base = acct.base_url(&creq.path)?;
    let (method, target, headers, body) = if class == Class::Public {
        let target = keyward_exchanges::canonical::request_target(&creq.path, &creq.query_string());
        (creq.method, target, Vec::new(), creq.body_bytes().map(|(t, b)| (t.to_string(), b)))
    } else {
        let now = req.timestamp_ms.unwrap_or_else(|| state.clocks.exchange_now(&account, state.clock.now_ms()));
        let ctx = SignContext {
            timestamp_ms: now,
            nonce: req.nonce.unwrap_or_else(|| state.next_nonce(now)),
            recv_window_ms: RECV_WINDOW_MS,
        };
        let out = exchange.sign(&creq, &acct.creds, &ctx).map_err(accounts::account_error)?;
        (out.method, out.target(), out.headers, out.body)
    };
    let mut headers = headers;
    if let Some((t, _)) = &body {
        headers.push(("Content-Type".into(), t.clone()));
    }
    Ok(Json(Signed {
        method: method.as_str(),
        url: format!("{base}{target}"),
        headers: HeaderList(headers),
        body: body.map(|(_, b)| String::from_utf8_lossy(&b).into_owned()),
        class: class.as_str(),
    }))
}

/// The answer of `POST /v1/sign/{account}`: what to send, signed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Signed<'a> {
    method: &'a str,
    url: String,
    /// Header name → value, in the order to send them.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    headers: HeaderList,
    body: Option<String>,
    class: &'a str,
}

/// Headers as a JSON object, in the order the signer gave them.
#[derive(Debug)]
struct HeaderList(Vec<(String, String)>);

impl Serialize for HeaderList {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
