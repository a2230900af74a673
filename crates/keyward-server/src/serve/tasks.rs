//! What the server does on its own schedule, each while unsealed: alert on
//! keys and secrets coming due, write last uses, keep dead-man timers
//! armed, check each exchange account's key once a period, expire
//! approval requests nobody approved in time, and archive old audit entries.

use crate::alerts::Alert;
use crate::audit::retention;
use crate::http::AppState;
use crate::keys::Admitted;
use keyward_exchanges::keyinfo::Severity;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Starts every task.
pub(super) fn start(state: &AppState) {
    audit_retention(state);
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.config.alerts.check_every);
        loop {
            tick.tick().await;
            if !s.barrier.is_sealed() {
                s.sinks.alerts.check_dates(&s.keys, &s.secrets, s.clock.now_ms()).await;
                expire_approvals(&s).await;
            }
        }
    });
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            s.keys.flush_last_used().await;
        }
    });
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            dead_men(&s).await;
        }
    });
    let s = state.clone();
    tokio::spawn(async move {
        let every = s.config.account_check_every;
        let mut tick = tokio::time::interval(every.min(Duration::from_secs(60)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first check of each account comes one period after start, not at start.
        let started = Instant::now();
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            tick.tick().await;
            if started.elapsed() >= every {
                check_accounts(&s, every, &mut last).await;
            }
        }
    });
}

/// Archives and prunes audit entries past the retention, each period.
fn audit_retention(state: &AppState) {
    let Some(r) = state.config.audit_retention.clone() else { return };
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(r.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if s.barrier.is_sealed() {
                continue;
            }
            match archive_audit(&s, r.retain, &r.dir).await {
                Ok(Some((path, n))) => {
                    tracing::info!(archive = %path.display(), entries = n, "audit entries archived and pruned")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e.message, "audit archiving failed; nothing was pruned");
                    let summary = format!("archiving the audit log to {} failed: {}", r.dir.display(), e.message);
                    s.sinks.alerts.raise(Alert::plain("audit_archive", "audit".to_string(), summary), s.clock.now_ms());
                }
            }
        }
    });
}

/// Arms each dead-man timer that is due; a timer that fails to arm (or
/// arms again) raises an alert.
async fn dead_men(state: &AppState) {
    let Ok(unsealed) = state.barrier.unsealed() else { return };
    for armed in state.incident.arm_dead_men(&unsealed).await {
        state.metrics.dead_man(&armed.account, Some(armed.ok));
        if armed.was_ok == Some(armed.ok) {
            continue;
        }
        let why: Vec<String> = armed.calls.iter().filter(|c| !c.ok).filter_map(|c| c.error.clone()).collect();
        if armed.ok {
            if armed.was_ok == Some(false) {
                tracing::info!(account = %armed.account, "the dead-man timer is armed again");
            }
        } else {
            tracing::warn!(account = %armed.account, why = %why.join("; "), "could not arm the dead-man timer");
            let summary = format!(
                "the dead-man timer of exchange account {} could not be armed: {}",
                armed.account,
                why.join("; ")
            );
            state.sinks.alerts.raise(Alert::plain("dead_man", armed.account.clone(), summary), state.clock.now_ms());
        }
    }
}

/// Checks each exchange account whose last check is a period old.
async fn check_accounts(state: &AppState, every: Duration, last: &mut HashMap<String, Instant>) {
    let Ok(unsealed) = state.barrier.unsealed() else { return };
    let Ok(accounts) = state.secrets.list(crate::exchange::PREFIX).await else { return };
    for meta in accounts.into_iter().filter(|m| m.kind.is_some() && m.current_version > 0) {
        let Some(name) = crate::exchange::account_name(&meta.path).map(str::to_string) else { continue };
        if last.get(&name).is_some_and(|t| t.elapsed() < every) {
            continue;
        }
        last.insert(name.clone(), Instant::now());
        let report = match state.incident.check(&unsealed, &name).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(account = %name, error = %e.message, "could not check the exchange account's key");
                continue;
            }
        };
        if !report.supported {
            continue;
        }
        let warnings: Vec<&str> =
            report.findings.iter().filter(|f| f.severity == Severity::Warning).map(|f| f.message.as_str()).collect();
        state.metrics.account_check(&name, report.ok, warnings.len());
        if !report.ok {
            let what = report.error.clone().unwrap_or_else(|| warnings.join("; "));
            let summary = format!("the key of exchange account {name} failed its daily check: {what}");
            state.sinks.alerts.raise(Alert::plain("account_check", name.clone(), summary), state.clock.now_ms());
        }
    }
}

/// Marks approval requests past their time expired and undoes what they prepared.
async fn expire_approvals(state: &AppState) {
    let Ok(unsealed) = state.barrier.unsealed() else { return };
    match state.approvals.expire_due(&unsealed).await {
        Ok(expired) => {
            for a in expired {
                crate::http::approval_expired(state, &Admitted::by_keyward(), &unsealed, &a).await;
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "could not expire approval requests"),
    }
}

/// One round of the retention schedule: archive to `dir` what is older than
/// `retain`, put that on the log, then prune it. `Ok(None)` when nothing is due.
async fn archive_audit(
    state: &AppState,
    retain: std::time::Duration,
    dir: &std::path::Path,
) -> crate::error::Result<Option<(std::path::PathBuf, u64)>> {
    let unsealed = state.barrier.unsealed()?;
    let public_key = unsealed.audit_public_key();
    let now = state.clock.now_ms();
    let cutoff = now.saturating_sub(retain.as_millis().min(i64::MAX as u128) as i64);
    let Some(plan) = retention::plan(state.store.as_ref(), &public_key, cutoff, now).await? else { return Ok(None) };
    let (first, last) = (plan.header.first_seq, plan.header.last_seq);
    let (path, sha) = retention::write_file(state.store.clone(), plan, dir, &public_key).await?;
    let detail = serde_json::json!({"change": "audit_prune", "through": last, "first": first,
        "archive": path.display().to_string(), "archive_sha256": sha});
    let entry = keyward_core::audit::AuditEntry {
        request_id: String::new(),
        action: "audit.archive".into(),
        target: format!("audit through {last}"),
        decision: "allow".into(),
        detail: detail.to_string(),
        ..Default::default()
    };
    state.auditor.record_durable(entry).await?;
    retention::prune(state.store.as_ref(), &public_key, last).await?;
    Ok(Some((path, last - first + 1)))
}
