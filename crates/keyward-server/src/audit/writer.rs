//! The audit writer: requests hand their entry to a queue; one task chains
//! the queued entries (each hash covers the previous one), writes them in
//! one durable transaction (fsync per batch), and adds a signed checkpoint
//! every [`CHECKPOINT_EVERY`] entries or [`CHECKPOINT_SECS`] seconds.
//!
//! A routine request proceeds once its entry is queued; a sensitive one
//! waits until its entry is durable. If the store cannot be written, the
//! writer keeps the batch and retries, and every request is refused with
//! `audit_unavailable` until a write succeeds: nothing is lost, nothing
//! proceeds unrecorded. Should the writer task ever stop (a bug that
//! panicked it), the queue closes and every request is refused the same way.

use super::Sinks;
use crate::alerts::Alert;
use crate::error::{Code, Error, Result};
use crate::metrics::Metrics;
use crate::seal::{Barrier, Unsealed};
use keyward_core::audit::{AuditEntry, Checkpoint, genesis, sign_checkpoint};
use keyward_core::clock::Clock;
use keyward_store::{AuditQuery, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A checkpoint at least every this many entries…
pub(super) const CHECKPOINT_EVERY: u64 = 1000;
/// …or this many seconds.
pub(super) const CHECKPOINT_SECS: i64 = 10;
/// Largest batch written in one transaction.
const MAX_BATCH: usize = 4096;
/// Entries chained between two yields of the CPU, so that a batch's work
/// runs in stretches of about 10 µs: the scheduler lets a running thread
/// finish its slice before a thread it woke, and a request's thread (or
/// the bot's, or the exchange connection's) woken on the writer's CPU
/// would otherwise wait for the whole batch. The store yields the same way.
const YIELD_EVERY: usize = 16;
/// How long a batch gathers before it is written.
const GATHER: Duration = Duration::from_millis(5);
/// The most entries between two checkpoint markers: a checkpoint falls due
/// at `CHECKPOINT_EVERY` entries and is written at the end of the batch.
pub(crate) const MAX_ENTRIES_WITHOUT_CHECKPOINT: u64 = CHECKPOINT_EVERY + MAX_BATCH as u64;
/// The action of a checkpoint's marker entry.
pub(crate) const MARKER_ACTION: &str = "audit.checkpoint";

/// The marker entry of a checkpoint (signed) or of one that fell due while
/// sealed (`{"skipped":"sealed"}`).
pub(super) fn marker(now: i64, signed: bool) -> AuditEntry {
    AuditEntry {
        time_ms: now,
        action: MARKER_ACTION.into(),
        decision: "checkpoint".into(),
        detail: if signed { "{}".into() } else { r#"{"skipped":"sealed"}"#.into() },
        ..Default::default()
    }
}

/// Replaces NUL characters (a request target may carry one) before the
/// entry is chained: PostgreSQL text cannot hold NUL, and an entry no
/// backend can store would hold the writer, and so every request, back.
fn no_nul(e: &mut AuditEntry) {
    let fields =
        [&mut e.request_id, &mut e.key_id, &mut e.ip, &mut e.action, &mut e.target, &mut e.class, &mut e.decision];
    for f in fields.into_iter().chain([&mut e.code, &mut e.detail]) {
        if f.contains('\0') {
            *f = f.replace('\0', "\u{fffd}");
        }
    }
}

/// Failed attempts after which waiting sensitive requests are answered (refused).
const GIVE_UP_WAITERS_AFTER: u32 = 20;

type Waiter = oneshot::Sender<bool>;
/// An entry and who waits for it to be durable; no entry is a flush: its
/// waiter hears once everything queued before it is written.
type Queued = (Option<AuditEntry>, Option<Waiter>);

/// The audit queue and the writer's health.
#[derive(Debug)]
pub(crate) struct Auditor {
    tx: mpsc::UnboundedSender<Queued>,
    store: Arc<dyn Store>,
    healthy: Arc<AtomicBool>,
    /// The last failure was the database itself (not the audit log alone).
    store_down: Arc<AtomicBool>,
    queued: Arc<AtomicU64>,
    /// Test hook (test-clock servers only): make every write fail.
    fail_writes: Arc<AtomicBool>,
}

impl Auditor {
    /// Starts the writer task. Checkpoints are signed with the barrier's
    /// checkpoint key while unsealed.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        barrier: Arc<Barrier>,
        sinks: Arc<Sinks>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let a = Arc::new(Self {
            tx,
            store: store.clone(),
            healthy: Arc::new(AtomicBool::new(true)),
            store_down: Arc::new(AtomicBool::new(false)),
            queued: Arc::new(AtomicU64::new(0)),
            fail_writes: Arc::new(AtomicBool::new(false)),
        });
        let writer = Writer {
            store,
            clock,
            barrier,
            sinks,
            metrics,
            healthy: a.healthy.clone(),
            store_down: a.store_down.clone(),
            queued: a.queued.clone(),
            fail_writes: a.fail_writes.clone(),
            seq: 0,
            hash: genesis(),
            last_checkpoint_seq: 0,
            last_checkpoint_ms: 0,
            last_time_ms: 0,
        };
        let writer = tokio::spawn(writer.run(rx));
        tokio::spawn(async move {
            if let Err(e) = writer.await
                && e.is_panic()
            {
                tracing::error!(
                    "the audit writer stopped (it panicked): keyward refuses every request until restarted"
                );
            }
        });
        a
    }

    /// Refuses while the log cannot be written: `store_unavailable` when the
    /// database cannot be reached, `audit_unavailable` when the log alone fails.
    pub(crate) fn check(&self) -> Result<()> {
        if self.healthy.load(Ordering::Acquire) && !self.tx.is_closed() {
            return Ok(());
        }
        Err(self.refusal())
    }

    fn refusal(&self) -> Error {
        if self.store_down.load(Ordering::Acquire) {
            Error::new(
                Code::StoreUnavailable,
                "the database cannot be reached, so the audit log cannot be written: keyward refuses every request until it can",
            )
            .retry_after(1)
        } else {
            Error::audit_unavailable()
        }
    }

    /// Entries waiting for the writer.
    pub(crate) fn queue_depth(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a routine entry.
    pub(crate) fn record(&self, entry: AuditEntry) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send((Some(entry), None)).is_err() {
            // The writer stopped; `check` refuses every request from now on.
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("an audit entry could not be queued: the audit writer stopped");
        }
    }

    /// Queues an entry and waits until it is durable.
    pub(crate) async fn record_durable(&self, entry: AuditEntry) -> Result<()> {
        self.wait_for(Some(entry)).await
    }

    /// Waits until every entry queued so far is written: what a reader of
    /// the log asks first, so a request answered before it is on record
    /// (routine entries are written a few milliseconds after their answer).
    pub(crate) async fn flush(&self) -> Result<()> {
        // While writes fail, what is queued is not going to be written soon.
        self.check()?;
        self.wait_for(None).await
    }

    /// Queues an entry (or, with none, a flush) and waits for the writer:
    /// it answers once written, or false once it gave up waiting for the store.
    async fn wait_for(&self, entry: Option<AuditEntry>) -> Result<()> {
        let counted = u64::from(entry.is_some());
        self.queued.fetch_add(counted, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if self.tx.send((entry, Some(tx))).is_err() {
            self.queued.fetch_sub(counted, Ordering::Relaxed);
            return Err(Error::audit_unavailable());
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Err(_) if self.store_down.load(Ordering::Acquire) => Err(self.refusal()),
            _ => Err(Error::audit_unavailable()),
        }
    }

    /// Test hook (test-clock servers only): makes every write fail, or not.
    pub(crate) fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Release);
    }

    /// Stored entries matching a query, oldest first, once every entry
    /// queued before the call is written.
    pub(crate) async fn entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.flush().await?;
        Ok(self.store.audit_entries(q).await?)
    }

    /// Checks the chain and the checkpoints (see [`super::verify_log`]).
    pub(crate) async fn verify(
        &self,
        public_key: &[u8],
        anchor: Option<&Checkpoint>,
        since_checkpoint: bool,
    ) -> Result<serde_json::Value> {
        super::verify_log(&self.store, public_key, anchor, since_checkpoint).await
    }
}

/// The writer task's state: the head of the chain as written.
struct Writer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    barrier: Arc<Barrier>,
    sinks: Arc<Sinks>,
    metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
    store_down: Arc<AtomicBool>,
    queued: Arc<AtomicU64>,
    fail_writes: Arc<AtomicBool>,
    seq: u64,
    hash: Vec<u8>,
    last_checkpoint_seq: u64,
    last_checkpoint_ms: i64,
    /// The time of the last batch written: entries never go back in time
    /// along the chain (the store bisects the sequence for a time bound).
    last_time_ms: i64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Queued>) {
        self.read_head().await;
        self.last_checkpoint_seq = self.seq;
        self.last_checkpoint_ms = self.clock.now_ms();
        while let Some(first) = rx.recv().await {
            // Group commit: let a batch gather for a moment, so one
            // transaction and one fsync carry every entry of these
            // milliseconds. A request waiting for its entry to be durable
            // does not wait for the gathering: what queued meanwhile (during
            // the last write) goes with it.
            if first.1.is_none() {
                tokio::time::sleep(GATHER).await;
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.write(batch).await;
        }
    }

    async fn read_head(&mut self) {
        loop {
            match self.store.audit_head().await {
                Ok(h) => {
                    (self.seq, self.hash) = h.unwrap_or((0, genesis()));
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the audit log head; retrying");
                    self.store_down.store(true, Ordering::Release);
                    self.healthy.store(false, Ordering::Release);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Chains `entries` after (`seq`, `hash`); returns the new head.
    fn chain(entries: &mut [AuditEntry], seq: u64, hash: &[u8]) -> (u64, Vec<u8>) {
        let (mut s, mut h) = (seq, hash.to_vec());
        for (i, e) in entries.iter_mut().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                std::thread::yield_now();
            }
            e.chain_after(s, &h);
            s = e.seq;
            h = e.hash.clone();
        }
        (s, h)
    }

    /// Signs a checkpoint over (`seq`, `hash`) with the batch's session.
    fn sign(session: Option<&Unsealed>, seq: u64, hash: &[u8], now: i64) -> Option<Checkpoint> {
        session.map(|u| sign_checkpoint(&u.audit_signing_key(), seq, hash, now))
    }

    async fn write(&mut self, batch: Vec<Queued>) {
        let now = self.clock.now_ms().max(self.last_time_ms);
        self.last_time_ms = now;
        let (entries, mut waiters): (Vec<Option<AuditEntry>>, Vec<Option<Waiter>>) = batch.into_iter().unzip();
        let mut entries: Vec<AuditEntry> = entries.into_iter().flatten().collect();
        let queued = entries.len() as u64;
        if entries.is_empty() {
            // Flushes alone: everything before them is written.
            for w in waiters.into_iter().flatten() {
                let _ = w.send(true);
            }
            return;
        }
        for e in entries.iter_mut() {
            e.time_ms = now;
            if e.detail.is_empty() {
                e.detail = "{}".into();
            }
            no_nul(e);
        }
        let end = self.seq + entries.len() as u64;
        let due = end - self.last_checkpoint_seq >= CHECKPOINT_EVERY
            || now - self.last_checkpoint_ms >= CHECKPOINT_SECS * 1000;
        // A checkpoint is on record twice: its signed row, and a marker entry
        // in the chain that it covers, so deleting checkpoint rows cannot go
        // unnoticed. Sealed, nothing can be signed: the marker says so.
        let session = if due { self.barrier.unsealed().ok() } else { None };
        if due {
            entries.push(marker(now, session.is_some()));
        }
        let (mut s, mut h) = Self::chain(&mut entries, self.seq, &self.hash);
        let mut checkpoint = Self::sign(session.as_deref(), s, &h, now);
        let started = std::time::Instant::now();
        // Keep the batch until it is written: nothing is dropped.
        let mut attempts = 0u32;
        let mut lost_races = 0u32;
        while let Err(e) = self.append(&entries, checkpoint.as_ref()).await {
            // The stored head may have moved (another node's batch, or rows
            // edited underneath): chain the batch onto what is stored.
            if let Ok(Some((hs, hh))) = self.store.audit_head().await
                && (hs, &hh) != (self.seq, &self.hash)
            {
                (s, h) = Self::chain(&mut entries, hs, &hh);
                (self.seq, self.hash) = (hs, hh);
                checkpoint = Self::sign(session.as_deref(), s, &h, now);
            }
            // Another node appended first (a shared database), or rows were
            // edited underneath (verification will name them): not an outage.
            if let StoreError::Conflict { current } = e
                && lost_races < 1000
            {
                if !self.store.shared() {
                    tracing::warn!(current, "the stored audit head is not the one keyward wrote; chaining onto it");
                }
                lost_races += 1;
                continue;
            }
            if attempts == 0 {
                self.raise_failure(&e);
            }
            let hooked = self.fail_writes.load(Ordering::Acquire);
            self.store_down.store(matches!(e, StoreError::Unavailable(_)) && !hooked, Ordering::Release);
            self.healthy.store(false, Ordering::Release);
            attempts += 1;
            // Sensitive requests waiting on this batch get their answer (refused).
            if attempts == GIVE_UP_WAITERS_AFTER {
                for w in waiters.iter_mut().filter_map(Option::take) {
                    let _ = w.send(false);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("audit writes succeed again");
        }
        self.metrics.audit_write_seconds.observe(started.elapsed().as_secs_f64());
        self.sinks.publish(&entries, checkpoint.as_ref());
        (self.seq, self.hash) = (s, h);
        if due {
            self.last_checkpoint_seq = s;
            self.last_checkpoint_ms = now;
        }
        self.queued.fetch_sub(queued, Ordering::Relaxed);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(true);
        }
    }

    async fn append(&self, entries: &[AuditEntry], checkpoint: Option<&Checkpoint>) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("audit writes disabled by the test hook".into()));
        }
        self.store.append_audit(entries, checkpoint).await
    }

    fn raise_failure(&self, e: &StoreError) {
        tracing::error!(error = %e, "audit write failed; refusing requests until it succeeds");
        self.sinks.alerts.raise(
            Alert {
                rule: "audit_failure",
                subject: "audit".into(),
                summary: "the audit log cannot be written: keyward refuses every request".into(),
                details: serde_json::json!({"error": e.to_string()}),
            },
            self.clock.now_ms(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_store::SqliteStore;

    /// The queue's receiving end gone (the writer task stopped): requests
    /// are refused, a durable entry fails, a read of the log fails.
    #[tokio::test]
    async fn a_stopped_writer_refuses_every_request() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let a = Auditor {
            tx,
            store,
            healthy: Arc::new(AtomicBool::new(true)),
            store_down: Arc::new(AtomicBool::new(false)),
            queued: Arc::new(AtomicU64::new(0)),
            fail_writes: Arc::new(AtomicBool::new(false)),
        };
        assert!(a.check().is_ok());
        drop(rx);
        assert_eq!(a.check().unwrap_err().code, Code::AuditUnavailable);
        a.record(AuditEntry::default());
        assert_eq!(a.record_durable(AuditEntry::default()).await.unwrap_err().code, Code::AuditUnavailable);
        assert_eq!(a.entries(&AuditQuery::default()).await.unwrap_err().code, Code::AuditUnavailable);
    }
}
