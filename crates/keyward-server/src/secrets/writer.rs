//! Secret writes, group-committed.
//!
//! Every acknowledged write is durable (one fsync), and one fsync per write
//! would cap a node at what the disk syncs per second. So writers queue
//! their new version here and one task writes what has queued in one
//! transaction: while a batch is syncing the next one gathers, and 32
//! concurrent writers share a sync instead of waiting in line for 32.
//!
//! The task is also the node's only secret writer, so it assigns version
//! numbers (latest + 1, per path, in queue order) and encrypts each version
//! for its number (the number is in the envelope's authenticated data). The
//! store's compare-and-insert still guards against other nodes: a version
//! that lost comes back as `cas_mismatch` for its request to retry.

use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use keyward_core::clock::Clock;
use keyward_store::{NewVersion, SecretMeta, Stage, Store, StoreError};
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
    /// Current at once, or pending (replacing the pending version the new
    /// fields were built on, if any).
    pub stage: Stage,
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

/// Where a path stands as a batch goes: its latest and pending versions.
#[derive(Debug, Clone, Copy, Default)]
struct At {
    latest: u64,
    pending: Option<u64>,
}

/// Why a job cannot be written on top of where its path stands.
fn refusal(job: &WriteJob, at: At) -> Option<Error> {
    match (job.stage, at.pending) {
        (Stage::Current, Some(p)) => Some(Error::new(
            Code::RotationPending,
            format!(
                "version {p} of {} is pending (an unfinished rotation): finish it with `keyward secret rotate {} --promote` (or --verify) or drop it with --abandon first",
                job.path, job.path
            ),
        )),
        (Stage::Pending { replaces }, pending) if replaces != pending => {
            Some(StoreError::Conflict { current: at.latest }.into())
        }
        _ => job.cas.filter(|cas| *cas != at.latest).map(|_| StoreError::Conflict { current: at.latest }.into()),
    }
}

async fn write_batch(batch: Vec<(WriteJob, Reply)>, store: &dyn Store, clock: &dyn Clock) {
    let mut paths: HashMap<String, At> = HashMap::new();
    let mut versions = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let now = clock.now_ms();
    for (job, reply) in batch {
        let at = match paths.get(&job.path) {
            Some(at) => *at,
            None => match store.secret_meta(&job.path).await {
                Ok(meta) => {
                    meta.map(|m| At { latest: m.latest_version, pending: m.pending_version }).unwrap_or_default()
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    continue;
                }
            },
        };
        paths.insert(job.path.clone(), at);
        if let Some(e) = refusal(&job, at) {
            let _ = reply.send(Err(e));
            continue;
        }
        let version = at.latest + 1;
        let ciphertext = match job.unsealed.encrypt(&job.path, version, &job.plain) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(e));
                continue;
            }
        };
        let pending = matches!(job.stage, Stage::Pending { .. }).then_some(version);
        paths.insert(job.path.clone(), At { latest: version, pending });
        versions.push(NewVersion {
            path: job.path,
            version,
            expected_latest: at.latest,
            stage: job.stage,
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
