//! Alerts: rules over the audit stream, delivered to a generic JSON webhook,
//! a Slack-compatible webhook or the Telegram Bot API, de-duplicated within a
//! window so that a burst is one alert.
//!
//! Rules (all on by default): first use of a key from a new address; a burst
//! of denials for one key or address (probing); any call of a sensitive
//! class (withdraw, transfer, admin, export), allowed or denied; keys expiring within seven days and secrets
//! past their rotation date (checked every minute); seal and unseal; audit
//! write failures. Alerts carry key ids and targets, never secrets.

use crate::config::AlertConfig;
use crate::keys::Keys;
use crate::secrets::Secrets;
use keyward_core::audit::AuditEntry;
use keyward_core::clock::rfc3339;
use keyward_core::policy::KeyState;
use keyward_core::scope::Class;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// One alert.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    /// Rule name.
    pub rule: &'static str,
    /// What it is about (key id, address, account…): the de-duplication subject.
    pub subject: String,
    /// One line for people.
    pub summary: String,
    /// Structured details.
    pub details: Value,
}

/// Rule state and delivery queue.
#[derive(Debug)]
pub(crate) struct Alerts {
    config: AlertConfig,
    tx: Option<mpsc::Sender<Alert>>,
    seen_ips: Mutex<HashMap<String, HashSet<String>>>,
    denials: Mutex<HashMap<String, VecDeque<i64>>>,
    sent: Mutex<HashMap<(&'static str, String), i64>>,
}

impl Alerts {
    /// Starts delivery (nothing runs without a channel).
    pub(crate) fn start(config: AlertConfig, client: reqwest::Client) -> Self {
        let any = !(config.webhooks.is_empty() && config.slack.is_empty() && config.telegram.is_empty());
        let tx = any.then(|| {
            let (tx, rx) = mpsc::channel(1000);
            tokio::spawn(deliver(config.clone(), rx, client));
            tx
        });
        Self {
            config,
            tx,
            seen_ips: Mutex::new(HashMap::new()),
            denials: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Raises an alert unless the same rule and subject fired within the window.
    pub(crate) fn raise(&self, alert: Alert, now_ms: i64) {
        let Some(tx) = &self.tx else { return };
        if let Ok(mut sent) = self.sent.lock() {
            let key = (alert.rule, alert.subject.clone());
            if sent.get(&key).is_some_and(|t| now_ms - t < self.config.dedupe.as_millis() as i64) {
                return;
            }
            sent.insert(key, now_ms);
        }
        let _ = tx.try_send(alert);
    }

    /// Runs the rules over durable audit entries.
    pub(crate) fn observe(&self, entries: &[AuditEntry]) {
        if self.tx.is_none() {
            return;
        }
        for e in entries {
            self.sensitive_call(e);
            self.seal_state(e);
            self.new_address(e);
            self.denial_burst(e);
        }
    }

    /// Any call of a sensitive class, allowed or denied.
    fn sensitive_call(&self, e: &AuditEntry) {
        if Class::from_name(&e.class).is_some_and(Class::is_sensitive) && e.decision != "outcome" {
            self.raise(
                Alert {
                    rule: "sensitive_call",
                    subject: format!("{} {}", e.key_id, e.target),
                    summary: format!("{} call {} by key {} from {}: {}", e.class, e.target, e.key_id, e.ip, e.decision),
                    details: details(e),
                },
                e.time_ms,
            );
        }
    }

    /// Seal and unseal.
    fn seal_state(&self, e: &AuditEntry) {
        if e.action == "sys.post" && (e.target == "seal" || e.target == "unseal") && e.decision == "allow" {
            let by = if e.key_id.is_empty() { "shares" } else { &e.key_id };
            self.raise(
                Alert {
                    rule: "seal_state",
                    subject: format!("{}-{}", e.target, e.seq),
                    summary: format!("keyward: {} by {by}", e.target),
                    details: details(e),
                },
                e.time_ms,
            );
        }
    }

    /// A key used from an address it was not used from before (not its first use).
    fn new_address(&self, e: &AuditEntry) {
        if e.decision != "allow" || e.key_id.is_empty() || e.ip.is_empty() {
            return;
        }
        // Nothing is copied for an address already seen (every entry but a few).
        let new = self
            .seen_ips
            .lock()
            .map(|mut m| match m.get_mut(e.key_id.as_str()) {
                Some(set) if set.contains(e.ip.as_str()) => false,
                Some(set) => {
                    let first_ever = set.is_empty();
                    set.insert(e.ip.clone()) && !first_ever
                }
                None => {
                    m.insert(e.key_id.clone(), HashSet::from([e.ip.clone()]));
                    false
                }
            })
            .unwrap_or(false);
        if new {
            self.raise(
                Alert {
                    rule: "new_ip",
                    subject: format!("{} {}", e.key_id, e.ip),
                    summary: format!("key {} used from a new address {}", e.key_id, e.ip),
                    details: details(e),
                },
                e.time_ms,
            );
        }
    }

    /// Many denials for one key or one address within the window (probing).
    fn denial_burst(&self, e: &AuditEntry) {
        if e.decision != "deny" {
            return;
        }
        let subjects = [(!e.key_id.is_empty()).then(|| format!("key {}", e.key_id)), Some(format!("ip {}", e.ip))];
        for subject in subjects.into_iter().flatten() {
            let burst = self
                .denials
                .lock()
                .map(|mut m| {
                    let q = m.entry(subject.clone()).or_default();
                    q.push_back(e.time_ms);
                    let cutoff = e.time_ms - self.config.burst_window.as_millis() as i64;
                    while q.front().is_some_and(|t| *t < cutoff) {
                        q.pop_front();
                    }
                    q.len() >= self.config.burst_denials
                })
                .unwrap_or(false);
            if burst {
                self.raise(
                    Alert {
                        rule: "denial_burst",
                        subject: subject.clone(),
                        summary: format!("burst of denials for {subject} (last: {} on {})", e.code, e.target),
                        details: details(e),
                    },
                    e.time_ms,
                );
            }
        }
    }

    /// Keys expiring within seven days and secrets due for rotation.
    pub(crate) async fn check_dates(&self, keys: &Keys, secrets: &Secrets, now: i64) {
        const WEEK_MS: i64 = 7 * 86_400_000;
        for k in keys.all().unwrap_or_default() {
            if let Some(exp) = k.policy.expires_ms
                && k.effective_state(now) == KeyState::Active
                && exp - now <= WEEK_MS
            {
                let summary = format!("key {} ({}) expires at {}", k.id, k.name, rfc3339(exp));
                self.raise(Alert::plain("expiry", format!("key {}", k.id), summary), now);
            }
        }
        for item in crate::rotation::due_list(keys, secrets, now, WEEK_MS).await.unwrap_or_default() {
            if item.status == "ok" {
                continue;
            }
            let when = if item.status == "overdue" { "was due" } else { "is due" };
            let subject = match item.kind {
                "access_key" => format!("key {}", item.id),
                _ => format!("secret {}", item.id),
            };
            let what =
                if item.kind == "exchange_account" { format!("exchange account {}", item.id) } else { subject.clone() };
            let summary = match &item.abandon {
                Some(abandon) => format!(
                    "{what} has an unfinished rotation ({} since {}): finish it with {} or drop it with {abandon}",
                    item.state, item.since, item.run
                ),
                None => format!("{what} {when} for rotation at {}: {}", item.due_at, item.run),
            };
            self.raise(Alert::plain("rotation", subject, summary), now);
        }
    }
}

/// An entry's fields for an alert's structured details (made only for an
/// alert raised: the rules look at every entry).
fn details(e: &AuditEntry) -> Value {
    json!({"seq": e.seq, "request_id": e.request_id, "key_id": e.key_id, "ip": e.ip,
        "action": e.action, "target": e.target, "class": e.class, "decision": e.decision, "code": e.code})
}

impl Alert {
    /// An alert without structured details.
    pub(crate) fn plain(rule: &'static str, subject: String, summary: String) -> Self {
        Self { rule, subject, summary, details: Value::Null }
    }
}

fn text(a: &Alert) -> String {
    format!("[keyward] {}: {}", a.rule, a.summary)
}

async fn deliver(config: AlertConfig, mut rx: mpsc::Receiver<Alert>, client: reqwest::Client) {
    while let Some(a) = rx.recv().await {
        let generic = json!({"source": "keyward", "rule": a.rule, "subject": a.subject, "summary": a.summary, "details": a.details});
        let mut posts: Vec<(String, Value)> = Vec::new();
        posts.extend(config.webhooks.iter().map(|u| (u.clone(), generic.clone())));
        posts.extend(config.slack.iter().map(|u| (u.clone(), json!({"text": text(&a)}))));
        posts.extend(config.telegram.iter().map(|u| {
            (u.clone(), json!({"chat_id": config.telegram_chat.clone().unwrap_or_default(), "text": text(&a)}))
        }));
        for (url, body) in posts {
            let mut delay = Duration::from_millis(200);
            for _ in 0..4 {
                match client.post(&url).json(&body).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => break,
                    _ => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }
}
