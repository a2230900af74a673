//! The HTTP edge: the router, the extractors, the error type, the client
//! address, the OpenAPI document and the routes. A route parses its input,
//! identifies the caller, authorizes, admits, then calls a service; the
//! services never see a request.
//!
//! Every request but health gets one audit entry from [`audit_request`],
//! built from what the pipeline noted (typed) and the typed code of the
//! answer; the action comes from the route table, not from the URL. No
//! handler logs a request body, a header value or a secret.

mod client_ip;
mod error;
mod extract;
mod finish;
pub(crate) mod openapi;
mod routes;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use error::{ApiError, ApiResult};
pub(crate) use routes::approvals::expired as approval_expired;
pub(crate) use state::AppState;

use crate::audit::{Record, Verdict};
use crate::error::{Code, Error};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use keyward_core::decision::DenyReason;
use std::convert::Infallible;
use std::time::Instant;
use tower::util::BoxCloneSyncService;

/// The HTTP application as the server calls it: a request in, a response out.
pub(crate) type App = BoxCloneSyncService<Request, Response, Infallible>;

/// Every route behind the edge each request passes: a panic caught, the
/// debug log line, the audit entry, raw fragments refused (see [`edge`]).
///
/// The edge wraps the router once, not each route (`Router::layer`): a
/// layer on every route clones its stack of boxed services on every
/// request, a third of the allocations of a signed request.
pub(crate) fn app(state: AppState) -> App {
    let routes = routes(state.clone());
    BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
            .layer(middleware::from_fn_with_state(state, edge))
            .service(routes),
    )
}

/// The router with every route, the error mapping at the edge.
fn routes(state: AppState) -> Router {
    use routes::{
        accounts, approvals, audit, backup, controls, incident, keys, metrics, migrate_seal, proxy, rekey, roll,
        rotation, scan, secrets, sign, sys, tokens,
    };
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .route("/v1/sys/status", get(sys::status))
        .route("/v1/sys/unseal", post(sys::unseal))
        .route("/v1/sys/seal", post(sys::seal))
        .route("/v1/sys/rotate", post(sys::rotate))
        .route("/v1/sys/rewrap", post(sys::rewrap))
        .route("/v1/sys/rekey", post(rekey::start).delete(rekey::cancel))
        .route("/v1/sys/rekey/update", post(rekey::update))
        .route("/v1/sys/backup", post(backup::backup))
        .route("/v1/sys/restore", post(backup::restore))
        .route("/v1/sys/migrate-seal", post(migrate_seal::migrate_seal))
        .route("/v1/sys/test-clock", post(sys::test_clock))
        .route("/v1/sys/test-fault", post(sys::test_fault))
        .route("/v1/secrets", get(secrets::list))
        .route("/v1/secrets/", get(secrets::list))
        .route("/v1/secrets/{*path}", any(secrets::secret))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/v1/keys/verify", post(keys::verify))
        .route("/v1/scan/match", post(scan::match_found))
        .route("/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/keys/{id}/destroy", post(keys::destroy))
        .route("/v1/keys/{id}/disable", post(keys::disable))
        .route("/v1/keys/{id}/enable", post(keys::enable))
        .route("/v1/keys/{id}/roll", post(keys::roll))
        .route("/v1/keys/{id}/compromised", post(keys::compromised))
        .route("/v1/namespaces", get(keys::list_namespaces).post(keys::create_namespace))
        .route("/v1/auth/token", post(tokens::mint))
        .route("/v1/sign/{account}", post(sign::sign))
        .route("/v1/accounts/{name}/keygen", post(accounts::keygen))
        .route("/v1/accounts/{name}", get(controls::show))
        .route("/v1/accounts/{name}/check", get(incident::check).post(incident::check))
        .route("/v1/accounts/{name}/freeze", post(incident::freeze))
        .route("/v1/accounts/{name}/unfreeze", post(incident::unfreeze))
        .route("/v1/accounts/{name}/addresses", post(controls::add_address).delete(controls::remove_address))
        .route("/v1/accounts/{name}/caps/{asset}", put(controls::set_cap))
        .route("/v1/accounts/{name}/dead-man", put(controls::dead_man))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route("/proxy/{account}/{*path}", any(proxy::proxy))
        .route("/v1/rotation", get(rotation::status))
        .route("/v1/rotation/roll", post(roll::roll_due))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify).post(audit::verify))
        .route("/v1/audit/archive", get(audit::archive))
        .route("/v1/audit/prune", post(audit::prune))
        .route("/metrics", get(metrics::scrape))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The router of the open metrics listener (`--metrics-listen`): `/metrics` only, no key.
pub(crate) fn metrics_app(state: AppState) -> App {
    App::new(Router::new().route("/metrics", get(routes::metrics::open_scrape)).with_state(state))
}

/// The action of a request (`secrets.get`): the route's resource and the
/// method, both from fixed lists, since the action is a metrics label: a
/// caller making up paths or methods must not make up label values.
fn action(method: &Method, route: Option<&str>) -> &'static str {
    // A route pattern starts with one `/v1/` or one `/` (`/proxy/…`).
    let resource = route
        .map(|r| r.strip_prefix("/v1/").or_else(|| r.strip_prefix('/')).unwrap_or(r))
        .map(|r| r.split_once('/').map_or(r, |(first, _)| first))
        .and_then(|r| RESOURCES.iter().position(|x| *x == r))
        .unwrap_or(RESOURCES.len());
    let verb = match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => OTHER_VERB,
    };
    ACTIONS[resource][verb]
}

const RESOURCES: [&str; 12] = [
    "sys",
    "secrets",
    "keys",
    "namespaces",
    "auth",
    "sign",
    "proxy",
    "audit",
    "metrics",
    "rotation",
    "accounts",
    "approvals",
];
/// The column of a method outside get, post, put, delete, patch, head, options.
const OTHER_VERB: usize = 7;
/// Every action, by resource and verb (the last row and column: `other`).
#[rustfmt::skip]
const ACTIONS: [[&str; 8]; 13] = [
    ["sys.get", "sys.post", "sys.put", "sys.delete", "sys.patch", "sys.head", "sys.options", "sys.other"],
    ["secrets.get", "secrets.post", "secrets.put", "secrets.delete", "secrets.patch", "secrets.head", "secrets.options", "secrets.other"],
    ["keys.get", "keys.post", "keys.put", "keys.delete", "keys.patch", "keys.head", "keys.options", "keys.other"],
    ["namespaces.get", "namespaces.post", "namespaces.put", "namespaces.delete", "namespaces.patch", "namespaces.head", "namespaces.options", "namespaces.other"],
    ["auth.get", "auth.post", "auth.put", "auth.delete", "auth.patch", "auth.head", "auth.options", "auth.other"],
    ["sign.get", "sign.post", "sign.put", "sign.delete", "sign.patch", "sign.head", "sign.options", "sign.other"],
    ["proxy.get", "proxy.post", "proxy.put", "proxy.delete", "proxy.patch", "proxy.head", "proxy.options", "proxy.other"],
    ["audit.get", "audit.post", "audit.put", "audit.delete", "audit.patch", "audit.head", "audit.options", "audit.other"],
    ["metrics.get", "metrics.post", "metrics.put", "metrics.delete", "metrics.patch", "metrics.head", "metrics.options", "metrics.other"],
    ["rotation.get", "rotation.post", "rotation.put", "rotation.delete", "rotation.patch", "rotation.head", "rotation.options", "rotation.other"],
    ["accounts.get", "accounts.post", "accounts.put", "accounts.delete", "accounts.patch", "accounts.head", "accounts.options", "accounts.other"],
    ["approvals.get", "approvals.post", "approvals.put", "approvals.delete", "approvals.patch", "approvals.head", "approvals.options", "approvals.other"],
    ["other.get", "other.post", "other.put", "other.delete", "other.patch", "other.head", "other.options", "other.other"],
];

/// The requested path after its resource, percent-decoded
/// (`/v1/secrets/app%73/x` → `apps/x`): what the entry names as target when
/// the request was refused before its route named a precise one, so an
/// escaped path cannot hide from a search of the log.
fn requested_target(path: &str) -> String {
    let rest = path.strip_prefix("/v1/").or_else(|| path.strip_prefix('/')).unwrap_or(path);
    let tail = rest.split_once('/').map(|(_, t)| t).unwrap_or("");
    percent_encoding::percent_decode_str(tail).decode_utf8_lossy().chars().take(512).collect()
}

/// Once the router matched a route (its path is on the request), the
/// record learns the route's action and whether its entry must be durable
/// before the answer. Called by identification, which every route but
/// health runs (unseal calls it itself).
pub(crate) fn note_route(parts: &axum::http::request::Parts) {
    if let (Some(record), Some(matched)) = (parts.extensions.get::<Record>(), parts.extensions.get::<MatchedPath>()) {
        record.action(action(&parts.method, Some(matched.as_str())));
        if openapi::is_sensitive(&parts.method, matched.as_str()) {
            record.sensitive();
        }
    }
}

/// Writes the audit entry of every request but health (allowed or denied,
/// failed authentications included), and refuses everything while the
/// audit log cannot be written. Sensitive allowed requests wait until their
/// entry is durable.
///
/// A client that goes away cannot cancel the request between acting and
/// auditing (a key change committed but not in the index or not on
/// record, an order forwarded without its outcome): see [`finish`].
async fn audit_request(state: AppState, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Health is no decision; the fault hook (test-clock servers only) must
    // reach a server that refuses everything else.
    if path == "/v1/sys/health" || (path == "/v1/sys/test-fault" && state.test_clock.is_some()) {
        return refuse_fragments(req, next).await;
    }
    if let Err(e) = state.auditor.check() {
        return ApiError(e).into_response();
    }
    finish::Finish::new(audited(state, req, next)).await
}

async fn audited(state: AppState, mut req: Request, next: Next) -> Response {
    // A copy of the target shares the request's bytes (no allocation).
    let uri = req.uri().clone();
    let request_id = next_request_id();
    let record = Record::new(request_id.clone(), action(req.method(), None));
    req.extensions_mut().insert(record.clone());
    let peer = extract::peer_of(req.extensions());
    let started = Instant::now();
    let mut resp = refuse_fragments(req, next).await;
    let note = record.take();
    let code = resp.extensions().get::<Code>().map(|c| c.as_str()).unwrap_or("");
    let verdict = if note.allowed { Verdict::Allow } else { Verdict::Deny };
    if !note.allowed && resp.status().is_success() {
        tracing::error!(action = %note.action, "a request was answered without being admitted");
        debug_assert!(false, "{} answered {} without admission", note.action, resp.status());
    }
    state.metrics.request(note.action, verdict.as_str(), code, started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if note.recorded {
        return resp;
    }
    let durable = note.sensitive && note.allowed;
    let mut entry = note.into_entry(verdict, code, || requested_target(uri.path()));
    if entry.ip.is_empty()
        && let Some(ip) = peer
    {
        entry.ip = ip.to_string();
    }
    if durable {
        if let Err(e) = state.auditor.record_durable(entry).await {
            return ApiError(e).into_response();
        }
    } else {
        state.auditor.record(entry);
    }
    resp
}

/// A request id unique across this process and, with overwhelming
/// likelihood, across restarts: 6 random base62 characters drawn at start
/// (see [`init_request_ids`]) and a counter in as few base62 digits as it
/// needs (the prefix's fixed width keeps ids apart). Ids name requests;
/// they are no secret, so a counter saves a `getrandom` call per request,
/// and a short one saves bytes in every audit entry.
fn next_request_id() -> String {
    use std::sync::atomic::Ordering;
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(17);
    id.push_str(REQUEST_PREFIX.get().map(String::as_str).unwrap_or("000000"));
    id.push_str(&keyward_core::base62::encode(n));
    id
}

static REQUEST_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static REQUEST_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Draws the request-id prefix; part of starting, so a failing random
/// source stops the server instead of giving every process the same ids.
pub(crate) fn init_request_ids() -> Result<(), Error> {
    if REQUEST_PREFIX.get().is_none() {
        let prefix = keyward_core::base62::random_string(6)?;
        let _ = REQUEST_PREFIX.set(prefix);
    }
    Ok(())
}

/// A request whose request line held a raw `#` (see `serve::frames`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawFragment;

/// The HTTP stack drops a raw `#` and all after it from the target, so the
/// request read is not the request sent: refused, like every ambiguous form.
async fn refuse_fragments(req: Request, next: Next) -> Response {
    if req.extensions().get::<RawFragment>().is_some() {
        let e = Error::new(DenyReason::RequestNotCanonical, "a raw '#' in the request line: percent-encode it as %23");
        return ApiError(e).into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError(Error::not_found("no such route; see docs/http-api.md"))
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(Code::MethodNotAllowed, "this route does not take that method"))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError(Error::internal("a handler panicked")).into_response()
}

/// The edge, in the order a request passes it: one debug log line
/// (method, path, status, time; never headers, query values or bodies;
/// debug, because the audit trail already records every request, durably
/// and chained, and at the default level this would be a second,
/// unprotected copy on stderr), then [`audit_request`], then
/// [`refuse_fragments`], then the router.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return audit_request(state, req, next).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = audit_request(state, req, next).await;
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
mod names {
    use super::{action, requested_target};
    use axum::http::Method;

    #[test]
    fn actions_come_from_the_route_and_a_fixed_list() {
        assert_eq!(action(&Method::GET, Some("/v1/secrets/{*path}")), "secrets.get");
        assert_eq!(action(&Method::POST, Some("/proxy/{account}/{*path}")), "proxy.post");
        assert_eq!(action(&Method::GET, Some("/metrics")), "metrics.get");
        // No route, or a made-up method: no made-up label values.
        assert_eq!(action(&Method::GET, None), "other.get");
        assert_eq!(action(&Method::from_bytes(b"FOOBAR").unwrap(), Some("/v1/keys")), "keys.other");
    }

    #[test]
    fn targets_are_the_path_after_the_resource() {
        assert_eq!(requested_target("/v1/secrets/apps/x"), "apps/x");
        assert_eq!(requested_target("/proxy/acct/api/v3/order"), "acct/api/v3/order");
        assert_eq!(requested_target("/v1/sys/seal"), "seal");
        assert_eq!(requested_target("/v1/secrets/app%73/d%62"), "apps/db");
        assert_eq!(requested_target("/metrics"), "");
    }
}
