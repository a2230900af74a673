//! In-process tests of the router: the real services over an in-memory
//! SQLite store, requests sent with `oneshot` from `MockConnectInfo`'s
//! address (or a chosen peer), and a settable clock. What crosses a process
//! (restarts, SIGKILL, ccxt, the CLI) is tested with the real binary in
//! `crates/keyward/tests`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amend_lookup;
mod auth;
mod fence;
mod guards;

use super::{AppState, app, init_request_ids};
use crate::config::RuntimeConfig;
use crate::init::{SealChoice, initialize};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::MockConnectInfo;
use keyward_core::audit::AuditEntry;
use keyward_core::clock::ManualClock;
use keyward_store::{AuditQuery, SqliteStore, Store};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};

/// The test clock's start: 2030-03-17T17:46:40Z.
pub(super) const T0: i64 = 1_900_000_000_000;

/// A server in process.
pub(super) struct Rig {
    pub(super) app: super::App,
    pub(super) state: AppState,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) admin: String,
}

/// An answer: status, JSON body, request id.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) request_id: String,
}

impl Reply {
    /// The error code, or `""`.
    pub(super) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message, or `""`.
    pub(super) fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl Rig {
    pub(super) async fn new() -> Self {
        Self::with(RuntimeConfig::default()).await
    }

    /// Initialised (bootstrap admin key), unsealed, clock at [`T0`].
    pub(super) async fn with(config: RuntimeConfig) -> Self {
        init_request_ids().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let out = initialize(store.as_ref(), &SealChoice::Memory, T0).await.unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let state = AppState::build(store.clone(), clock.clone(), Some(clock.clone()), config).unwrap();
        state.unseal(out.root.unwrap(), &out.record).await.unwrap();
        let app =
            super::App::new(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))).layer(app(state.clone())));
        Self { app, state, store, clock, admin: out.admin_key.expose().to_string() }
    }

    /// A request from `MockConnectInfo`'s 127.0.0.1.
    pub(super) async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        self.send(None, method, path, key.map(|k| format!("Bearer {k}")).as_deref(), body).await
    }

    /// A request from `from`, with a raw Authorization header.
    pub(super) async fn send(
        &self,
        from: Option<&str>,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        if let Some(ip) = from {
            let addr = SocketAddr::new(ip.parse().unwrap(), 40_001);
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let request_id =
            resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), request_id }
    }

    /// Creates a key with the admin key; returns (id, key).
    pub(super) async fn key(&self, body: Value) -> (String, String) {
        let r = self.call("POST", "/v1/keys", Some(&self.admin), Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        (r.body["id"].as_str().unwrap().to_string(), r.body["key"].as_str().unwrap().to_string())
    }

    /// Writes a secret with the admin key.
    pub(super) async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", &format!("/v1/secrets/{path}"), Some(&self.admin), Some(body)).await
    }

    /// The audit entry of a request, once the writer has it on record.
    pub(super) async fn entry(&self, request_id: &str) -> AuditEntry {
        for _ in 0..200 {
            let all = self.store.audit_entries(&AuditQuery { limit: 100_000, ..Default::default() }).await.unwrap();
            if let Some(e) = all.into_iter().find(|e| e.request_id == request_id) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit entry for request {request_id}");
    }
}

/// Collects every failed row of a table, so one run shows them all.
#[derive(Debug, Default)]
pub(super) struct Table(Vec<String>);

impl Table {
    /// Checks `reply` against the expected status and code (`""`: no error).
    pub(super) fn row(&mut self, name: &str, reply: &Reply, status: u16, code: &str) {
        if reply.status != status || reply.code() != code {
            self.0.push(format!(
                "{name}: expected {status} {code:?}, got {} {:?} {:?}",
                reply.status,
                reply.code(),
                reply.message()
            ));
        }
    }

    /// Notes a failure of anything else.
    pub(super) fn fail(&mut self, what: String) {
        self.0.push(what);
    }

    #[track_caller]
    pub(super) fn done(self) {
        assert!(self.0.is_empty(), "\n{}", self.0.join("\n"));
    }
}

/// A JSON object with `extra`'s fields over `base`'s.
pub(super) fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test]
async fn an_authorized_read_of_a_missing_secret_is_allowed_not_denied() {
    let rig = Rig::new().await;
    let (_, reader) = rig.key(json!({"name": "r", "scopes": ["secret:read:apps/*"]})).await;
    rig.put("apps/gone", json!({"data": {"k": "v"}})).await;
    rig.call("DELETE", "/v1/secrets/apps/gone", Some(&rig.admin), None).await;
    let mut t = Table::default();
    let missing = rig.call("GET", "/v1/secrets/apps/nope", Some(&reader), None).await;
    t.row("missing secret", &missing, 404, "not_found");
    let deleted = rig.call("GET", "/v1/secrets/apps/gone", Some(&reader), None).await;
    t.row("deleted secret", &deleted, 404, "secret_deleted");
    let denied = rig.call("GET", "/v1/secrets/db/nope", Some(&reader), None).await;
    t.row("out of scope", &denied, 403, "scope_missing");
    for (r, decision, code) in
        [(&missing, "allow", "not_found"), (&deleted, "allow", "secret_deleted"), (&denied, "deny", "scope_missing")]
    {
        let e = rig.entry(&r.request_id).await;
        if (e.decision.as_str(), e.code.as_str(), e.action.as_str()) != (decision, code, "secrets.get") {
            t.fail(format!("{}: entry says {} {} {}", e.target, e.decision, e.code, e.action));
        }
    }
    t.done();
}

#[tokio::test]
async fn a_withheld_field_is_refused_before_admission() {
    let rig = Rig::new().await;
    let r = rig.put("exchanges/bin", json!({"type": "binance", "data": {"api_key": "K", "api_secret": "S"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (id, key) = rig.key(json!({"name": "r", "scopes": ["secret:read:exchanges/*"], "uses": 3})).await;
    let r = rig.call("GET", "/v1/secrets/exchanges/bin?field=api_secret", Some(&key), None).await;
    assert_eq!((r.status, r.code()), (403, "scope_missing"));
    let e = rig.entry(&r.request_id).await;
    assert_eq!((e.decision.as_str(), e.code.as_str()), ("deny", "scope_missing"));
    let shown = rig.call("GET", &format!("/v1/keys/{id}"), Some(&rig.admin), None).await;
    assert_eq!(shown.body["uses_remaining"], 3, "a refusal spends no use");
    let ok = rig.call("GET", "/v1/secrets/exchanges/bin?field=api_key", Some(&key), None).await;
    assert_eq!(ok.body["data"]["api_key"], "K");
}

#[tokio::test]
async fn the_audit_names_what_was_asked_for_and_account_changes_as_admin() {
    let rig = Rig::new().await;
    let (_, reader) = rig.key(json!({"name": "r", "scopes": ["secret:read:apps/*"]})).await;
    // An escaped path is on record as the path it names, refused or not.
    let hidden = rig.call("GET", "/v1/secrets/d%62/x", Some(&reader), None).await;
    let failed = rig.call("GET", "/v1/secrets/d%62/y", Some("kw_nope"), None).await;
    let write = rig.put("exchanges/bin", json!({"type": "binance", "data": {"api_key": "K", "api_secret": "S"}})).await;
    let mut t = Table::default();
    for (r, target, class) in [(&hidden, "db/x", ""), (&failed, "db/y", ""), (&write, "exchanges/bin", "admin")] {
        let e = rig.entry(&r.request_id).await;
        if (e.target.as_str(), e.class.as_str()) != (target, class) {
            t.fail(format!("entry of {target}: target {:?}, class {:?}", e.target, e.class));
        }
    }
    t.done();
}

#[test]
fn request_ids_are_the_prefix_and_a_counter_as_short_as_it_can_be() {
    init_request_ids().unwrap();
    let (a, b) = (super::next_request_id(), super::next_request_id());
    assert_ne!(a, b);
    assert_eq!(a[..6], b[..6], "one prefix a process");
    assert!(a.len() >= 7 && a.len() <= 17 && keyward_core::base62::is_base62(&a), "{a}");
    // Counters as wide as they need, never padded (see base62::encode).
    assert!(a.len() <= 6 + 4, "{a}");
}

#[test]
fn an_action_is_the_route_s_resource_and_the_method() {
    use axum::http::Method;
    let action = super::action;
    assert_eq!(action(&Method::POST, Some("/v1/keys/verify")), "keys.post");
    assert_eq!(action(&Method::GET, Some("/v1/secrets/{*path}")), "secrets.get");
    assert_eq!(action(&Method::DELETE, Some("/proxy/{account}/{*rest}")), "proxy.delete");
    assert_eq!(action(&Method::POST, Some("/v1/sign/{account}")), "sign.post");
    assert_eq!(action(&Method::GET, Some("/metrics")), "metrics.get");
    assert_eq!(action(&Method::OPTIONS, Some("/v1/sys")), "sys.options");
    // Unknown resources, methods and unmatched requests are `other`.
    assert_eq!(action(&Method::PUT, Some("/v1/nothing/here")), "other.put");
    assert_eq!(action(&Method::from_bytes(b"PROPFIND").unwrap(), Some("/v1/keys")), "keys.other");
    assert_eq!(action(&Method::GET, None), "other.get");
    assert_eq!(action(&Method::GET, Some("/v1/")), "other.get");
}
