//! `GET /metrics` (`sys:metrics`), and the same on the open metrics
//! listener without a key (`--metrics-listen`, loopback unless told otherwise).

use crate::auth::Caller;
use crate::http::{ApiResult, AppState};
use crate::metrics::Gauges;
use crate::rotation::{DUE_WITHIN_MS, due_list};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keyward_core::policy::KeyState;
use keyward_core::scope::Need;
use std::sync::atomic::Ordering;

/// `GET /metrics` (`sys:metrics`).
pub(crate) async fn scrape(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Need::SysMetrics, "scraping metrics (sys:metrics)")?;
    caller.admit().await?;
    render(&state).await
}

/// `GET /metrics` on the open metrics listener, no key.
pub(crate) async fn open_scrape(State(state): State<AppState>) -> ApiResult<Response> {
    render(&state).await
}

async fn render(state: &AppState) -> ApiResult<Response> {
    let sealed = state.barrier.is_sealed();
    let mut g = Gauges {
        sealed,
        audit_queue: state.auditor.queue_depth(),
        audit_dropped: state.sinks.dropped.load(Ordering::Relaxed),
        ..Gauges::default()
    };
    if !sealed {
        let now = state.clock.now_ms();
        let keys = state.keys.all()?;
        let soon = keys
            .iter()
            .filter(|k| k.effective_state(now) == KeyState::Active)
            .filter(|k| k.policy.expires_ms.is_some_and(|e| e - now <= 7 * 86_400_000))
            .count();
        g.keys_expiring = Some(soon as u64);
        g.access_keys = Some(keys.len() as u64);
        // A store that cannot answer leaves the gauge as it was: metrics
        // must keep answering when the store does not.
        if let Ok(due) = due_list(&state.keys, &state.secrets, now, DUE_WITHIN_MS).await {
            g.rotation_overdue = Some(due.iter().filter(|i| i.status == "overdue").count() as u64);
        }
    }
    let text = state.metrics.render(g)?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
