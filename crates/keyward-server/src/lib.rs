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
pub mod openapi;
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
    let request_id = next_request_id();
    let slot: audit::AuditSlot = Default::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let ctx = slot.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
    let allowed = resp.status().is_success();
    let code = resp.extensions().get::<error::ErrorCode>().map(|c| c.0).unwrap_or("");
    let (action, target) = action_and_target(method.as_str(), &path);
    let decision = if allowed { "allow" } else { "deny" };
    state.metrics.request(&action, decision, code, started.elapsed().as_secs_f64());
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if ctx.recorded {
        return resp;
    }
    let rec = keyward_core::audit::AuditEntry {
        request_id,
        key_id: ctx.key_id,
        ip: if ctx.ip.is_empty() { peer.map(|p| p.to_string()).unwrap_or_default() } else { ctx.ip },
        action,
        target: ctx.target.unwrap_or(target),
        class: ctx.class,
        decision: decision.to_string(),
        code: code.to_string(),
        detail: ctx.detail,
        ..Default::default()
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

/// A request id unique across this process and, with overwhelming
/// likelihood, across restarts: 6 random base62 characters drawn at start
/// and a 10-character counter. Ids name requests; they are no secret, so a
/// counter saves a `getrandom` call per request.
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| keyward_core::base62::random_string(6).unwrap_or_else(|_| "000000".into()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(16);
    id.push_str(prefix);
    id.push_str(&keyward_core::base62::encode_fixed(n, 10));
    id
}

/// The request id shared by a request's audit entries.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// `GET /v1/secrets/apps/x` → (`secrets.get`, `apps/x`); `/proxy/acct/…` → (`proxy.post`, `acct/…`).
///
/// The action comes from a fixed list (unknown routes and methods are
/// `other`), since it is a metrics label: a caller making up paths must not
/// make up label values.
fn action_and_target(method: &str, path: &str) -> (String, String) {
    const RESOURCES: &[&str] = &["sys", "secrets", "keys", "namespaces", "auth", "sign", "proxy", "audit", "metrics"];
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];
    let rest = path.strip_prefix("/v1/").or_else(|| path.strip_prefix('/')).unwrap_or(path);
    let (resource, target) = match rest.split_once('/').unwrap_or((rest, "")) {
        (r, t) if RESOURCES.contains(&r) => (r, t),
        _ => ("other", rest),
    };
    let verb = METHODS.iter().find(|m| m.eq_ignore_ascii_case(method)).copied().unwrap_or("other");
    (format!("{resource}.{verb}"), target.chars().take(512).collect())
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

/// One debug log line per request: method, path, status, time. Never
/// headers, query values or bodies. Debug, because the audit trail already
/// records every request, durably and chained; at the default level this
/// would be a second, unprotected copy on stderr.
async fn log_request(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(
        %method,
        path = %path.chars().take(200).collect::<String>(),
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::action_and_target;

    #[test]
    fn actions_come_from_a_fixed_list() {
        assert_eq!(action_and_target("GET", "/v1/secrets/apps/x"), ("secrets.get".into(), "apps/x".into()));
        assert_eq!(
            action_and_target("POST", "/proxy/acct/api/v3/order"),
            ("proxy.post".into(), "acct/api/v3/order".into())
        );
        assert_eq!(action_and_target("GET", "/metrics"), ("metrics.get".into(), String::new()));
        // Made-up paths and methods cannot mint label values.
        assert_eq!(action_and_target("GET", "/v1/zzz123/q"), ("other.get".into(), "zzz123/q".into()));
        assert_eq!(action_and_target("FOOBAR", "/v1/keys"), ("keys.other".into(), String::new()));
    }
}
