//! Secret writes, group-committed.
//!
//! Every acknowledged write is durable (one fsync), and one fsync per write
//! would cap a node at what the disk syncs per second. So writers queue
//! their new version here and one task writes what has queued in one
//! transaction: while a batch is syncing the next one gathers, and 32
//! concurrent writers share a sync instead of waiting in line for 32.
//!
//! The task is also the node's only secret writer, so it assigns version
//! numbers (current + 1, per path, in queue order) and encrypts each version
//! for its number (the number is in the envelope's authenticated data). The
//! store's compare-and-insert still guards against other nodes: a version
//! that lost comes back as `cas_mismatch` for its request to retry.

use crate::error::{Error, Result};
use crate::seal::Unsealed;
use keyward_core::clock::Clock;
use keyward_store::{NewVersion, SecretMeta, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 256;

/// One write: the plaintext of the new version and what to set with it.
#[derive(Debug)]
pub(super) struct WriteJob {
    /// Secret path.
    pub path: String,
    /// Encoded fields (zeroized when dropped).
    pub plain: Zeroizing<Vec<u8>>,
    /// Check-and-set: the version the writer expects to be current.
    pub cas: Option<u64>,
    /// Type to set.
    pub kind: Option<String>,
    /// Rotation period to set.
    pub rotation_period_s: Option<i64>,
    /// The unsealed state the request was authorized against (its keyring encrypts).
    pub unsealed: Arc<Unsealed>,
}

type Reply = oneshot::Sender<Result<(SecretMeta, u64)>>;

/// The queue in front of the writer task.
#[derive(Debug, Clone)]
pub(super) struct SecretWriter {
    tx: mpsc::UnboundedSender<(WriteJob, Reply)>,
}

impl SecretWriter {
    /// Starts the writer task.
    pub(super) fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(rx, store, clock));
        Self { tx }
    }

    /// Queues a write and waits until it is durable: the stored metadata and
    /// the version written, or why not.
    pub(super) async fn write(&self, job: WriteJob) -> Result<(SecretMeta, u64)> {
        let (tx, rx) = oneshot::channel();
        let stopped = || Error::from(StoreError::Unavailable("the secret writer stopped".into()));
        self.tx.send((job, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn writer(mut rx: mpsc::UnboundedReceiver<(WriteJob, Reply)>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
    while let Some(first) = rx.recv().await {
        // No gathering delay: what queued while the last batch synced is the
        // next batch, so a lone writer pays one sync and no more.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        write_batch(batch, store.as_ref(), clock.as_ref()).await;
    }
}

async fn write_batch(batch: Vec<(WriteJob, Reply)>, store: &dyn Store, clock: &dyn Clock) {
    // The version each path is at, as this batch goes.
    let mut current: HashMap<String, u64> = HashMap::new();
    let mut versions = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let now = clock.now_ms();
    for (job, reply) in batch {
        let at = match current.get(&job.path) {
            Some(v) => *v,
            None => match store.secret_meta(&job.path).await {
                Ok(meta) => meta.map(|m| m.current_version).unwrap_or(0),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    continue;
                }
            },
        };
        if let Some(cas) = job.cas
            && cas != at
        {
            current.insert(job.path, at);
            let _ = reply.send(Err(StoreError::Conflict { current: at }.into()));
            continue;
        }
        let version = at + 1;
        let ciphertext = match job.unsealed.encrypt(&job.path, version, &job.plain) {
            Ok(c) => c,
            Err(e) => {
                current.insert(job.path, at);
                let _ = reply.send(Err(e));
                continue;
            }
        };
        current.insert(job.path.clone(), version);
        versions.push(NewVersion {
            path: job.path,
            version,
            expected_current: at,
            kind: job.kind,
            rotation_period_s: job.rotation_period_s,
            created_ms: now,
            ciphertext,
        });
        replies.push(reply);
    }
    if versions.is_empty() {
        return;
    }
    match store.insert_versions(&versions).await {
        Ok(results) => {
            for ((result, v), reply) in results.into_iter().zip(&versions).zip(replies) {
                let _ = reply.send(result.map(|meta| (meta, v.version)).map_err(Error::from));
            }
        }
        Err(e) => {
            let e = Error::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
