//! Where audit entries go besides the database, after they are durable:
//! a JSON-lines file (rotated by size), standard output, and webhooks (HTTP
//! POST of batches; bounded queue, retries with backoff, drops counted,
//! never blocking a request). Checkpoints go to every sink too, so a copy
//! kept elsewhere can serve as an anchor for `keyward audit verify`.

use crate::config::SinkConfig;
use keyward_core::audit::{AuditEntry, Checkpoint};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// The running sinks.
#[derive(Debug)]
pub(crate) struct Sinks {
    config: SinkConfig,
    /// The alert rules, which read the same stream.
    pub alerts: Arc<crate::alerts::Alerts>,
    webhooks: Vec<mpsc::Sender<Value>>,
    /// Entries dropped because a webhook's queue was full or it kept failing.
    pub dropped: Arc<AtomicU64>,
}

/// One line of a sink: an entry or a checkpoint.
pub(super) fn entry_line(e: &AuditEntry) -> Value {
    json!({ "entry": e })
}

impl Sinks {
    /// Starts the sinks (webhook workers).
    pub(crate) fn start(config: SinkConfig, client: reqwest::Client, alerts: Arc<crate::alerts::Alerts>) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let webhooks = config
            .webhooks
            .iter()
            .map(|url| {
                let (tx, rx) = mpsc::channel::<Value>(10_000);
                tokio::spawn(webhook_worker(url.clone(), rx, client.clone(), dropped.clone()));
                tx
            })
            .collect();
        Self { config, alerts, webhooks, dropped }
    }

    /// Hands durable entries (and a checkpoint) to every sink.
    pub(crate) fn publish(&self, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) {
        self.alerts.observe(entries);
        if self.config.file.is_none() && !self.config.stdout && self.webhooks.is_empty() {
            return;
        }
        let mut lines: Vec<Value> = entries.iter().map(entry_line).collect();
        if let Some(c) = checkpoint {
            lines.push(json!({ "checkpoint": c }));
        }
        if let Some(path) = &self.config.file
            && let Err(e) = self.append_file(path, &lines)
        {
            tracing::warn!(error = %e, "audit file sink failed");
        }
        if self.config.stdout {
            let mut out = std::io::stdout().lock();
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
        }
        for tx in &self.webhooks {
            for l in &lines {
                if tx.try_send(l.clone()).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn append_file(&self, path: &PathBuf, lines: &[Value]) -> std::io::Result<()> {
        let max = if self.config.file_max_bytes == 0 { 100 * 1024 * 1024 } else { self.config.file_max_bytes };
        if std::fs::metadata(path).map(|m| m.len() >= max).unwrap_or(false) {
            for i in (1..5).rev() {
                let from = PathBuf::from(format!("{}.{i}", path.display()));
                if from.exists() {
                    std::fs::rename(&from, format!("{}.{}", path.display(), i + 1))?;
                }
            }
            std::fs::rename(path, format!("{}.1", path.display()))?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let mut buf = String::new();
        for l in lines {
            buf.push_str(&l.to_string());
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())
    }
}

async fn webhook_worker(url: String, mut rx: mpsc::Receiver<Value>, client: reqwest::Client, dropped: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(v) => batch.push(v),
                Err(_) => break,
            }
        }
        let body = Value::Array(batch);
        let mut delay = Duration::from_millis(250);
        let mut sent = false;
        for _ in 0..5 {
            match client.post(&url).json(&body).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status().is_success() => {
                    sent = true;
                    break;
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        if !sent {
            let n = body.as_array().map(Vec::len).unwrap_or(0) as u64;
            dropped.fetch_add(n, Ordering::Relaxed);
            // The URL may carry a token: only its host goes to the log.
            let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
            tracing::warn!(host = %host, entries = n, "audit webhook unreachable; entries dropped from this sink");
        }
    }
}
