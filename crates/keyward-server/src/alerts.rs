//! Alerts: rules over the audit stream, delivered to a generic JSON webhook,
//! a Slack-compatible webhook or the Telegram Bot API, de-duplicated within a
//! window so that a burst is one alert.
//!
//! Rules (all on by default): first use of a key from a new address; a burst
//! of denials for one key or address (probing); any withdraw, transfer or
//! admin call, allowed or denied; keys expiring within seven days and secrets
//! past their rotation date (checked every minute); seal and unseal; audit
//! write failures. Alerts carry key ids and targets, never secrets.

use keyward_core::audit::AuditEntry;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Alert settings.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Generic JSON webhooks.
    pub webhooks: Vec<String>,
    /// Slack-compatible incoming webhooks.
    pub slack: Vec<String>,
    /// Telegram Bot API `sendMessage` URLs (`https://api.telegram.org/bot<token>/sendMessage`).
    pub telegram: Vec<String>,
    /// Telegram chat id.
    pub telegram_chat: Option<String>,
    /// One alert per rule and subject within this window.
    pub dedupe: Duration,
    /// Denials within `burst_window` that make a burst.
    pub burst_denials: usize,
    /// The burst window.
    pub burst_window: Duration,
    /// How often expiry and rotation dates are checked.
    pub check_every: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            slack: Vec::new(),
            telegram: Vec::new(),
            telegram_chat: None,
            dedupe: Duration::from_secs(300),
            burst_denials: 10,
            burst_window: Duration::from_secs(60),
            check_every: Duration::from_secs(60),
        }
    }
}

/// One alert.
#[derive(Debug, Clone)]
pub struct Alert {
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
pub struct Alerts {
    config: AlertConfig,
    tx: Option<mpsc::Sender<Alert>>,
    seen_ips: Mutex<HashMap<String, HashSet<String>>>,
    denials: Mutex<HashMap<String, VecDeque<i64>>>,
    sent: Mutex<HashMap<(&'static str, String), i64>>,
}

impl Alerts {
    /// Starts delivery (nothing runs without a channel).
    pub fn start(config: AlertConfig, client: reqwest::Client) -> Self {
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
    pub fn raise(&self, alert: Alert, now_ms: i64) {
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
    pub fn observe(&self, entries: &[AuditEntry]) {
        if self.tx.is_none() {
            return;
        }
        for e in entries {
            let details = json!({"seq": e.seq, "request_id": e.request_id, "key_id": e.key_id, "ip": e.ip,
                "action": e.action, "target": e.target, "class": e.class, "decision": e.decision, "code": e.code});
            if matches!(e.class.as_str(), "withdraw" | "transfer" | "admin") && e.decision != "outcome" {
                self.raise(
                    Alert {
                        rule: "sensitive_call",
                        subject: format!("{} {}", e.key_id, e.target),
                        summary: format!(
                            "{} call {} by key {} from {}: {}",
                            e.class, e.target, e.key_id, e.ip, e.decision
                        ),
                        details: details.clone(),
                    },
                    e.time_ms,
                );
            }
            if matches!(e.action.as_str(), "sys.post")
                && (e.target == "seal" || e.target == "unseal")
                && e.decision == "allow"
            {
                self.raise(
                    Alert {
                        rule: "seal_state",
                        subject: format!("{}-{}", e.target, e.seq),
                        summary: format!(
                            "keyward: {} by {}",
                            e.target,
                            if e.key_id.is_empty() { "shares" } else { &e.key_id }
                        ),
                        details: details.clone(),
                    },
                    e.time_ms,
                );
            }
            if e.decision == "allow" && !e.key_id.is_empty() && !e.ip.is_empty() {
                let new = self
                    .seen_ips
                    .lock()
                    .map(|mut m| {
                        let set = m.entry(e.key_id.clone()).or_default();
                        let first_ever = set.is_empty();
                        set.insert(e.ip.clone()) && !first_ever
                    })
                    .unwrap_or(false);
                if new {
                    self.raise(
                        Alert {
                            rule: "new_ip",
                            subject: format!("{} {}", e.key_id, e.ip),
                            summary: format!("key {} used from a new address {}", e.key_id, e.ip),
                            details: details.clone(),
                        },
                        e.time_ms,
                    );
                }
            }
            if e.decision == "deny" {
                for subject in [format!("key {}", e.key_id), format!("ip {}", e.ip)] {
                    if subject == "key " {
                        continue;
                    }
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
                                details: details.clone(),
                            },
                            e.time_ms,
                        );
                    }
                }
            }
        }
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
