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
pub mod auth;
pub mod client_ip;
pub mod error;
pub mod guards;
pub mod init;
pub mod keys;
pub mod proxy;
pub mod request;
pub mod routes;
pub mod serve;
pub mod state;
pub mod throttle;
pub mod token;
pub mod upstream;

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
    use routes::{keys, secrets, sign, sys, tokens};
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state)
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
