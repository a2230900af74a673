//! The audit writer: one entry for every decision (allowed or denied, failed
//! authentications included), chained and group-committed.
//!
//! Requests hand their entry to a queue; one writer task chains the queued
//! entries (each hash covers the previous one), writes them in one durable
//! transaction (fsync per batch), and adds a signed checkpoint every
//! `CHECKPOINT_EVERY` entries or `CHECKPOINT_SECS` seconds. A routine request
//! proceeds once its entry is queued; a sensitive one (withdraw, transfer,
//! admin, export, key and policy changes, seal and unseal) waits until its
//! entry is durable. If the store cannot be written, the writer keeps the
//! batch and retries, and every request is refused with `audit_unavailable`
//! until a write succeeds: nothing is lost, nothing proceeds unrecorded.
//!
//! Entries hold key ids, never keys; no secret value, signature or key is
//! ever written here.

use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use keyward_core::audit::{AuditEntry, Checkpoint, genesis, sign_checkpoint};
use keyward_core::clock::Clock;
use keyward_store::Store;
use ring::signature::Ed25519KeyPair;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A checkpoint at least every this many entries…
pub const CHECKPOINT_EVERY: u64 = 1000;
/// …or this many seconds.
pub const CHECKPOINT_SECS: i64 = 10;
/// Largest batch written in one transaction.
const MAX_BATCH: usize = 4096;
/// How long a batch gathers before it is written.
const GATHER: Duration = Duration::from_millis(2);

type Waiter = oneshot::Sender<bool>;

/// The audit queue and the writer's health.
#[derive(Debug)]
pub struct Auditor {
    tx: mpsc::UnboundedSender<(AuditEntry, Option<Waiter>)>,
    healthy: Arc<AtomicBool>,
    queued: Arc<AtomicU64>,
    /// Test hook (test-clock servers only): make every write fail.
    pub fail_writes: Arc<AtomicBool>,
    /// The checkpoint signing key while unsealed.
    pub signer: Arc<RwLock<Option<Ed25519KeyPair>>>,
}

impl Auditor {
    /// Starts the writer task.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sinks: Arc<crate::sinks::Sinks>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let a = Arc::new(Self {
            tx,
            healthy: Arc::new(AtomicBool::new(true)),
            queued: Arc::new(AtomicU64::new(0)),
            fail_writes: Arc::new(AtomicBool::new(false)),
            signer: Arc::new(RwLock::new(None)),
        });
        tokio::spawn(writer(
            rx,
            store,
            clock,
            a.healthy.clone(),
            a.queued.clone(),
            a.fail_writes.clone(),
            a.signer.clone(),
            sinks,
            metrics,
        ));
        a
    }

    /// Refuses with 503 `audit_unavailable` while the log cannot be written.
    pub fn check(&self) -> ApiResult<()> {
        if self.healthy.load(Ordering::Acquire) { Ok(()) } else { Err(unavailable()) }
    }

    /// Entries waiting for the writer.
    pub fn queue_depth(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a routine entry.
    pub fn record(&self, rec: AuditEntry) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send((rec, None));
    }

    /// Queues an entry and waits until it is durable.
    pub async fn record_durable(&self, rec: AuditEntry) -> ApiResult<()> {
        let (tx, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send((rec, Some(tx))).map_err(|_| unavailable())?;
        // The writer answers once written, or false if it gave up waiting for the store.
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(true)) => Ok(()),
            _ => Err(unavailable()),
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the audit log cannot be written; keyward refuses every request until it can",
    )
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    mut rx: mpsc::UnboundedReceiver<(AuditEntry, Option<Waiter>)>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    healthy: Arc<AtomicBool>,
    queued: Arc<AtomicU64>,
    fail_writes: Arc<AtomicBool>,
    signer: Arc<RwLock<Option<Ed25519KeyPair>>>,
    sinks: Arc<crate::sinks::Sinks>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let (mut seq, mut hash) = loop {
        match store.audit_head().await {
            Ok(h) => break h.unwrap_or((0, genesis())),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit log head; retrying");
                healthy.store(false, Ordering::Release);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut last_checkpoint_seq = seq;
    let mut last_checkpoint_ms = clock.now_ms();
    while let Some(first) = rx.recv().await {
        // Group commit: let a batch gather for a moment, so one transaction
        // and one fsync carry every entry of these milliseconds.
        tokio::time::sleep(GATHER).await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let now = clock.now_ms();
        let (mut entries, mut waiters): (Vec<AuditEntry>, Vec<Option<Waiter>>) = batch.into_iter().unzip();
        let (mut s, mut h) = (seq, hash.clone());
        for e in entries.iter_mut() {
            e.time_ms = now;
            if e.detail.is_empty() {
                e.detail = "{}".into();
            }
            e.chain_after(s, &h);
            s = e.seq;
            h = e.hash.clone();
        }
        let due = s - last_checkpoint_seq >= CHECKPOINT_EVERY || now - last_checkpoint_ms >= CHECKPOINT_SECS * 1000;
        let checkpoint: Option<Checkpoint> = if due {
            signer.read().ok().and_then(|k| k.as_ref().map(|k| sign_checkpoint(k, s, &h, now)))
        } else {
            None
        };
        let write_started = std::time::Instant::now();
        // Keep the batch until it is written: nothing is dropped.
        let mut attempts = 0u32;
        let mut checkpoint = checkpoint;
        loop {
            let result = if fail_writes.load(Ordering::Acquire) {
                Err(keyward_store::StoreError::Unavailable("audit writes disabled by the test hook".into()))
            } else {
                store.append_audit(&entries, checkpoint.as_ref()).await
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    // The stored head may have moved (another writer, or rows
                    // edited underneath): chain the batch onto what is stored.
                    if let Ok(Some((hs, hh))) = store.audit_head().await
                        && (hs, &hh) != (seq, &hash)
                    {
                        let (mut cs, mut ch) = (hs, hh);
                        for e in entries.iter_mut() {
                            e.chain_after(cs, &ch);
                            cs = e.seq;
                            ch = e.hash.clone();
                        }
                        seq = hs;
                        hash = entries.first().map(|e| e.prev_hash.clone()).unwrap_or(hash);
                        s = cs;
                        h = ch;
                        checkpoint = if due {
                            signer.read().ok().and_then(|k| k.as_ref().map(|k| sign_checkpoint(k, s, &h, now)))
                        } else {
                            None
                        };
                    }
                    if attempts == 0 {
                        tracing::error!(error = %e, "audit write failed; refusing requests until it succeeds");
                        sinks.alerts.raise(
                            crate::alerts::Alert {
                                rule: "audit_failure",
                                subject: "audit".into(),
                                summary: "the audit log cannot be written: keyward refuses every request".into(),
                                details: serde_json::json!({"error": e.to_string()}),
                            },
                            clock.now_ms(),
                        );
                    }
                    healthy.store(false, Ordering::Release);
                    attempts += 1;
                    // Sensitive requests waiting on this batch get their answer (refused).
                    if attempts == 20 {
                        for w in waiters.iter_mut() {
                            if let Some(w) = w.take() {
                                let _ = w.send(false);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if !healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("audit writes succeed again");
        }
        metrics.audit_write_seconds.observe(write_started.elapsed().as_secs_f64());
        sinks.publish(&entries, checkpoint.as_ref());
        seq = s;
        hash = h;
        if checkpoint.is_some() {
            last_checkpoint_seq = s;
            last_checkpoint_ms = now;
        }
        queued.fetch_sub(waiters.len() as u64, Ordering::Relaxed);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(true);
        }
    }
}

/// What handlers tell the audit entry of their request.
#[derive(Debug, Clone, Default)]
pub struct AuditCtx {
    /// Key id, once authenticated.
    pub key_id: String,
    /// Client address as authentication saw it.
    pub ip: String,
    /// Permission class (sign, proxy, accounts).
    pub class: String,
    /// A more precise target than the path.
    pub target: Option<String>,
    /// Waits for durability before answering.
    pub sensitive: bool,
    /// JSON extras.
    pub detail: String,
    /// The handler already wrote its own entries (the proxy's decision and outcome).
    pub recorded: bool,
}

/// The shared slot handlers fill.
pub type AuditSlot = Arc<std::sync::Mutex<AuditCtx>>;

/// Fills the request's audit slot, if any.
pub fn note(ext: &axum::http::Extensions, f: impl FnOnce(&mut AuditCtx)) {
    if let Some(slot) = ext.get::<AuditSlot>()
        && let Ok(mut c) = slot.lock()
    {
        f(&mut c);
    }
}
