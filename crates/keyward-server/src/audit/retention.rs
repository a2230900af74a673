//! Moving old audit entries out of the database: the archive of everything
//! up to a signed checkpoint (streamed to a client, or written to a
//! directory on a schedule), then the prune that removes those entries.
//! Nothing is removed that no signed checkpoint covers, nothing before its
//! archive was written and read back whole, and the prune itself is on the
//! log, durably, before it happens.

use super::archive::{ArchiveWriter, FORMAT, Header};
use crate::error::{Code, Error, Result};
use bytes::Bytes;
use keyward_core::audit::{AuditEntry, Checkpoint, genesis, verify_checkpoint};
use keyward_core::keyring::hex_encode;
use keyward_store::Store;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Entries read per page while archiving.
const PAGE: u64 = 10_000;
/// Compressed bytes gathered before a chunk is handed on.
const CHUNK: usize = 256 * 1024;

/// What an archive will hold: entries `first..=through.seq`, chained from `prev_hash`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The header the archive starts with.
    pub header: Header,
    /// The signed checkpoints inside it (the last on its last entry).
    pub checkpoints: Vec<Checkpoint>,
}

/// The archive of every entry after the base up to the newest signed
/// checkpoint made at or before `cutoff_ms`; `None` when there is none.
pub(crate) async fn plan(store: &dyn Store, public_key: &[u8], cutoff_ms: i64, now_ms: i64) -> Result<Option<Plan>> {
    let (base_seq, base_hash) = store.audit_base().await?.unwrap_or_else(|| (0, genesis()));
    let checkpoints: Vec<Checkpoint> = store
        .audit_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.seq > base_seq && verify_checkpoint(public_key, c))
        .collect();
    let Some(through) = checkpoints.iter().rfind(|c| c.time_ms <= cutoff_ms).cloned() else { return Ok(None) };
    let inside: Vec<Checkpoint> = checkpoints.into_iter().filter(|c| c.seq <= through.seq).collect();
    let header = Header {
        keyward_audit_archive: FORMAT,
        first_seq: base_seq + 1,
        last_seq: through.seq,
        prev_hash: hex_encode(&base_hash),
        entries: through.seq - base_seq,
        created_ms: now_ms,
    };
    Ok(Some(Plan { header, checkpoints: inside }))
}

/// Produces the archive of `plan` in compressed chunks on a channel; an
/// error (an entry missing, the store down) ends the stream with it.
pub(crate) fn stream(store: Arc<dyn Store>, plan: Plan) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = produce(store.as_ref(), &plan, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn produce(store: &dyn Store, plan: &Plan, tx: &mpsc::Sender<std::io::Result<Bytes>>) -> std::io::Result<()> {
    let mut w = ArchiveWriter::new(&plan.header, &plan.checkpoints)?;
    let mut next = plan.header.first_seq;
    let mut pending = Vec::new();
    while next <= plan.header.last_seq {
        let limit = PAGE.min(plan.header.last_seq - next + 1);
        let page: Vec<AuditEntry> = store.audit_page(next, limit).await.map_err(std::io::Error::other)?;
        if page.is_empty() {
            return Err(std::io::Error::other(format!("entry {next} is missing from the database")));
        }
        for e in &page {
            w.entry(e)?;
        }
        next = page.last().map_or(next, |e| e.seq + 1);
        pending.extend(w.take());
        if pending.len() >= CHUNK && tx.send(Ok(Bytes::from(std::mem::take(&mut pending)))).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    pending.extend(w.finish()?);
    let _ = tx.send(Ok(Bytes::from(pending))).await;
    Ok(())
}

/// Removes the entries an archive holds: `through` must be a signed
/// checkpoint on a stored entry after the base.
pub(crate) async fn prune(store: &dyn Store, public_key: &[u8], through: u64) -> Result<u64> {
    let checkpoints = store.audit_checkpoints().await?;
    let signed = checkpoints.iter().any(|c| c.seq == through && verify_checkpoint(public_key, c));
    if !signed {
        return Err(Error::new(
            Code::InvalidState,
            format!("entry {through} has no signed checkpoint: only what a checkpoint covers is pruned"),
        ));
    }
    Ok(store.audit_prune(through).await?)
}

/// An archive's file name in a directory: its first and last entry.
pub(crate) fn file_name(h: &Header) -> String {
    format!("keyward-audit-{:012}-{:012}.jsonl.gz", h.first_seq, h.last_seq)
}

/// Writes the archive of `plan` to `dir` (through a temporary file, synced,
/// then renamed, the directory synced) and reads it back whole; the path
/// and the file's SHA-256.
pub(crate) async fn write_file(
    store: Arc<dyn Store>,
    plan: Plan,
    dir: &std::path::Path,
    public_key: &[u8],
) -> Result<(std::path::PathBuf, String)> {
    use tokio::io::AsyncWriteExt;
    let io = |what: &str, e: std::io::Error| Error::internal(&format!("{what}: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(|e| io("creating the archive directory", e))?;
    let path = dir.join(file_name(&plan.header));
    let tmp = path.with_extension("partial");
    let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| io("creating the archive", e))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut rx = stream(store, plan);
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.map_err(|e| io("reading the entries", e))?;
        digest.update(&chunk);
        f.write_all(&chunk).await.map_err(|e| io("writing the archive", e))?;
    }
    f.sync_all().await.map_err(|e| io("syncing the archive", e))?;
    drop(f);
    let (check, key) = (tmp.clone(), public_key.to_vec());
    tokio::task::spawn_blocking(move || super::archive::verify_file(&check, &key))
        .await
        .map_err(|e| Error::internal(&format!("verifying the archive: {e}")))?
        .map_err(|b| {
            Error::internal(&format!("the archive written does not verify (entry {}): {}", b.seq, b.reason))
        })?;
    tokio::fs::rename(&tmp, &path).await.map_err(|e| io("renaming the archive", e))?;
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    Ok((path, hex_encode(digest.finish().as_ref())))
}
