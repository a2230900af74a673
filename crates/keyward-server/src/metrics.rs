//! Prometheus metrics at `/metrics` (`sys:metrics`): requests by action,
//! decision and code; latency; upstream latency per exchange account; seal
//! state; audit queue depth, write latency and sink drops; keys expiring
//! within seven days. No label ever carries a key, a path value or a secret.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, SealState};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keyward_core::scope::Need;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

type Labels = Vec<(String, String)>;

/// Labels of a finished request. Fields borrow static strings where they
/// can: this is counted on every request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: String,
    decision: &'static str,
    code: &'static str,
}

/// Label of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

fn latency() -> Histogram {
    // 50 µs to ~26 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

/// Every metric keyward exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<ActionLabel, Histogram, fn() -> Histogram>,
    upstream_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Audit batch write time.
    pub audit_write_seconds: Histogram,
    sealed: Gauge,
    audit_queue: Gauge,
    audit_dropped: Gauge,
    keys_expiring: Gauge,
    access_keys: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<ActionLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let upstream_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let audit_write_seconds = latency();
        let (sealed, audit_queue, audit_dropped, keys_expiring, access_keys) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("requests", "Requests by action, decision and code", requests.clone());
        registry.register("request_duration_seconds", "Request latency by action", request_seconds.clone());
        registry.register("upstream_duration_seconds", "Exchange latency by account", upstream_seconds.clone());
        registry.register("audit_write_duration_seconds", "Audit batch write latency", audit_write_seconds.clone());
        registry.register("sealed", "1 while sealed", sealed.clone());
        registry.register("audit_queue_depth", "Audit entries waiting for the writer", audit_queue.clone());
        registry.register("audit_sink_dropped", "Audit entries a sink dropped", audit_dropped.clone());
        registry.register("access_keys_expiring_7d", "Active keys expiring within seven days", keys_expiring.clone());
        registry.register("access_keys", "Access keys known", access_keys.clone());
        Self {
            registry,
            requests,
            request_seconds,
            upstream_seconds,
            audit_write_seconds,
            sealed,
            audit_queue,
            audit_dropped,
            keys_expiring,
            access_keys,
        }
    }
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, action: &str, decision: &'static str, code: &'static str, seconds: f64) {
        let action = action.to_string();
        self.request_seconds.get_or_create(&ActionLabel { action: action.clone() }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { action, decision, code }).inc();
    }

    /// Times an exchange call.
    pub fn upstream(&self, account: &str, seconds: f64) {
        self.upstream_seconds.get_or_create(&vec![("account".to_string(), account.to_string())]).observe(seconds);
    }
}

/// `GET /metrics` (`sys:metrics`).
pub async fn scrape(State(state): State<AppState>, who: Principal) -> ApiResult<Response> {
    who.require(Need::SysMetrics, "scraping metrics (sys:metrics)")?;
    render(&state)
}

/// `GET /metrics` on the open metrics listener (`--metrics-listen`), no key.
pub async fn open_scrape(State(state): State<AppState>) -> ApiResult<Response> {
    render(&state)
}

fn render(state: &AppState) -> ApiResult<Response> {
    let m = &state.metrics;
    let sealed = matches!(&*state.seal.read().map_err(|_| ApiError::internal("lock"))?, SealState::Sealed { .. });
    m.sealed.set(i64::from(sealed));
    m.audit_queue.set(state.auditor.queue_depth() as i64);
    m.audit_dropped.set(state.sinks.dropped.load(Ordering::Relaxed) as i64);
    if let Ok(u) = state.unsealed() {
        let now = state.clock.now_ms();
        let keys = u.keys.read().map_err(|_| ApiError::internal("lock"))?.all();
        let soon = keys
            .iter()
            .filter(|k| k.effective_state(now) == crate::keys::KeyState::Active)
            .filter(|k| k.policy.expires_ms.is_some_and(|e| e - now <= 7 * 86_400_000))
            .count();
        m.keys_expiring.set(soon as i64);
        m.access_keys.set(keys.len() as i64);
    }
    let mut text = String::new();
    encode(&mut text, &m.registry).map_err(|_| ApiError::internal("metrics encoding"))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
