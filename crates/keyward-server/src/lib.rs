//! keyward's server: the HTTP API in front of the store.
//!
//! `bot ── HTTP ──▶ router ──▶ authenticate ──▶ authorize ──▶ act ──▶ respond`
//!
//! [`app`] builds the router from a state (tested in process);
//! [`serve::run`] opens the data, unseals what it can and listens. No handler
//! logs a request body, a header value or a secret.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod client_ip;
pub mod error;
pub mod guards;
pub mod init;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod request;
pub mod routes;
pub mod serve;
pub mod sinks;
pub mod state;
pub mod throttle;
pub mod token;
pub mod upstream;
pub mod writes;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use state::AppState;
use std::time::Instant;

/// The router with every route and the error mapping at the edge.
pub fn app(state: AppState) -> Router {
    use routes::{audit as audit_routes, keys, secrets, sign, sys, tokens};
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .route("/v1/sys/status", get(sys::status))
        .route("/v1/sys/unseal", post(sys::unseal))
        .route("/v1/sys/seal", post(sys::seal))
        .route("/v1/secrets", get(secrets::list))
        .route("/v1/secrets/", get(secrets::list))
        .route("/v1/secrets/{*path}", axum::routing::any(secrets::secret))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/v1/keys/verify", post(keys::verify))
        .route("/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/keys/{id}/disable", post(keys::disable))
        .route("/v1/keys/{id}/enable", post(keys::enable))
        .route("/v1/keys/{id}/roll", post(keys::roll))
        .route("/v1/namespaces", get(keys::list_namespaces).post(keys::create_namespace))
        .route("/v1/auth/token", post(tokens::mint))
        .route("/v1/sign/{account}", post(sign::sign))
        .route("/proxy/{account}/{*path}", axum::routing::any(proxy::proxy))
        .route("/v1/sys/test-clock", post(sys::test_clock))
        .route("/v1/sys/test-fault", post(sys::test_fault))
        .route("/v1/audit", get(audit_routes::list))
        .route("/metrics", get(metrics::scrape))
        .route("/v1/audit/verify", get(audit_routes::verify).post(audit_routes::verify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), audit_request))
        .layer(middleware::from_fn(log_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Writes the audit entry of every request but health (allowed or denied,
/// failed authentications included), and refuses everything while the
/// audit log cannot be written. Sensitive actions wait until their entry is
/// durable.
async fn audit_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    // Health is no decision; the fault hook (test-clock servers only) must
    // reach a server that refuses everything else.
    if path == "/v1/sys/health" || (path == "/v1/sys/test-fault" && state.test_clock.is_some()) {
        return next.run(req).await;
    }
    if let Err(e) = state.auditor.check() {
        return e.into_response();
    }
    let method = req.method().clone();
    let request_id = keyward_core::base62::random_string(16).unwrap_or_default();
    let slot: audit::AuditSlot = Default::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let ctx = slot.lock().map(|c| c.clone()).unwrap_or_default();
    {
        let (action, _) = action_and_target(method.as_str(), &path);
        let code = resp.extensions().get::<error::ErrorCode>().map(|c| c.0).unwrap_or("");
        let decision = if resp.status().is_success() { "allow" } else { "deny" };
        state.metrics.request(&action, decision, code, started.elapsed().as_secs_f64());
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if ctx.recorded {
        return resp;
    }
    let allowed = resp.status().is_success();
    let (action, target) = action_and_target(method.as_str(), &path);
    let rec = audit::AuditRecord {
        request_id,
        key_id: ctx.key_id,
        ip: if ctx.ip.is_empty() { peer } else { ctx.ip },
        action,
        target: ctx.target.unwrap_or(target),
        class: ctx.class,
        decision: if allowed { "allow" } else { "deny" }.to_string(),
        code: resp.extensions().get::<error::ErrorCode>().map(|c| c.0.to_string()).unwrap_or_default(),
        detail: ctx.detail,
    };
    // Key and policy changes, seal and unseal wait for durability; verifying
    // a key is routine.
    let sensitive = ctx.sensitive
        || (method != axum::http::Method::GET
            && path != "/v1/keys/verify"
            && (path.starts_with("/v1/keys") || path.starts_with("/v1/namespaces") || path.starts_with("/v1/sys/")));
    if sensitive && allowed {
        if let Err(e) = state.auditor.record_durable(rec).await {
            return e.into_response();
        }
    } else {
        state.auditor.record(rec);
    }
    resp
}

/// The request id shared by a request's audit entries.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// `GET /v1/secrets/apps/x` → (`secrets.get`, `apps/x`); `/proxy/acct/…` → (`proxy.post`, `acct/…`).
fn action_and_target(method: &str, path: &str) -> (String, String) {
    let rest = path.strip_prefix("/v1/").or_else(|| path.strip_prefix('/')).unwrap_or(path);
    let (resource, target) = rest.split_once('/').unwrap_or((rest, ""));
    (format!("{resource}.{}", method.to_ascii_lowercase()), target.chars().take(512).collect())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see docs/http-api.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// One log line per request: method, path, status, time. Never headers,
/// query values or bodies.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        %method,
        path = %path.chars().take(200).collect::<String>(),
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}
