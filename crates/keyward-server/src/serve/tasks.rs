//! What the server does on its own schedule, each while unsealed: alert on
//! keys and secrets coming due, write last uses, keep dead-man timers
//! armed, check each exchange account's key once a period, and expire
//! approval requests nobody approved in time.

use crate::alerts::Alert;
use crate::http::AppState;
use crate::keys::Admitted;
use keyward_exchanges::keyinfo::Severity;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Starts every task.
pub(super) fn start(state: &AppState) {
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
