//! Verifying the audit log: walk the whole chain (paged, so a large log is
//! never held whole) and check every signed checkpoint, plus an anchor kept
//! elsewhere, which catches a log cut back to an earlier point.
//!
//! Each checkpoint also has a marker entry in the chain: a marker whose
//! signed row is gone, a stretch of entries longer than the checkpoint
//! interval allows without a marker, or an anchor whose checkpoint is not
//! stored means checkpoints were deleted, and the report names which.

use super::writer::{MARKER_ACTION, MAX_ENTRIES_WITHOUT_CHECKPOINT};
use crate::error::Result;
use keyward_core::audit::{Checkpoint, genesis, verify_chain, verify_checkpoint};
use keyward_core::keyring::hex_encode;
use keyward_store::{AuditQuery, Store};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Entries read per page.
const PAGE: u64 = 50_000;

/// Checks the chain and the checkpoints against the checkpoint public key;
/// the report names the first broken entry.
pub(crate) async fn verify_log(store: &dyn Store, public_key: &[u8], anchor: Option<&Checkpoint>) -> Result<Value> {
    let mut problems: Vec<Value> = Vec::new();
    let mut count = 0u64;
    let mut prev = (1u64, genesis());
    let mut hashes = HashMap::new();
    // Signed rows count as checkpoints in the walk too (logs written before
    // markers existed have only those).
    let checkpoints = store.audit_checkpoints().await?;
    let signed_rows: std::collections::HashSet<u64> =
        checkpoints.iter().filter(|c| verify_checkpoint(public_key, c)).map(|c| c.seq).collect();
    let mut markers = Markers::default();
    loop {
        let page =
            store.audit_entries(&AuditQuery { from_seq: Some(prev.0), limit: PAGE, ..Default::default() }).await?;
        let Some(last) = page.last() else { break };
        if let Err(b) = verify_chain(&page, prev.0, &prev.1) {
            problems.push(json!({"seq": b.seq, "reason": b.reason}));
            break;
        }
        for e in &page {
            hashes.insert(e.seq, hex_encode(&e.hash));
            markers.see(e, signed_rows.contains(&e.seq), &mut problems);
        }
        count += page.len() as u64;
        prev = (last.seq + 1, last.hash.clone());
    }
    // The end of the log as stored (a break above may stop the walk early).
    let last_seq = store.audit_head().await?.map(|(s, _)| s).unwrap_or(0);
    let mut check = |c: &Checkpoint, what: &str| {
        if !verify_checkpoint(public_key, c) {
            problems.push(json!({"seq": c.seq, "reason": format!("{what} at {} has a bad signature", c.seq)}));
        } else if c.seq > last_seq {
            problems.push(json!({"seq": last_seq + 1, "reason": format!("{what} covers entry {} but the log ends at {last_seq}: it was cut back", c.seq)}));
        } else if hashes.get(&c.seq).is_some_and(|h| *h != c.hash) {
            problems
                .push(json!({"seq": c.seq, "reason": format!("{what} at {} does not match the entry's hash", c.seq)}));
        }
    };
    for c in &checkpoints {
        check(c, "checkpoint");
    }
    if let Some(a) = anchor {
        check(a, "anchor");
    }
    let stored: std::collections::HashSet<u64> = checkpoints.iter().map(|c| c.seq).collect();
    for seq in &markers.signed {
        if !stored.contains(seq) {
            problems.push(json!({"seq": seq, "reason": format!("the checkpoint at entry {seq} is missing: its marker is in the chain, its signed row was deleted")}));
        }
    }
    if let Some(a) = anchor
        && a.seq <= last_seq
        && verify_checkpoint(public_key, a)
        && !stored.contains(&a.seq)
    {
        problems.push(json!({"seq": a.seq, "reason": format!("the anchor's checkpoint at entry {} is not in the log: it was deleted", a.seq)}));
    }
    problems.sort_by_key(|p| p["seq"].as_u64().unwrap_or(u64::MAX));
    Ok(json!({
        "ok": problems.is_empty(),
        "entries": count,
        "checkpoints": checkpoints.len(),
        "last_checkpoint": checkpoints.last(),
        "first_broken": problems.first().cloned(),
        "problems": problems,
    }))
}

/// What the walk learns from checkpoint markers.
#[derive(Debug, Default)]
struct Markers {
    /// Entries of signed checkpoints, which must have their row.
    signed: Vec<u64>,
    /// Entries since the last checkpoint (marker or signed row).
    since: u64,
    /// The last checkpoint's entry (0: the start of the log).
    last: u64,
}

impl Markers {
    fn see(&mut self, e: &keyward_core::audit::AuditEntry, signed_row: bool, problems: &mut Vec<Value>) {
        let marker = e.action == MARKER_ACTION;
        if marker && !e.detail.contains("skipped") {
            self.signed.push(e.seq);
        }
        if marker || signed_row {
            self.since = 0;
            self.last = e.seq;
            return;
        }
        self.since += 1;
        if self.since == MAX_ENTRIES_WITHOUT_CHECKPOINT + 1 {
            let after = if self.last == 0 {
                "from the start of the log".to_string()
            } else {
                format!("after the checkpoint at entry {}", self.last)
            };
            problems.push(json!({"seq": e.seq, "reason": format!(
                "{} entries {after} without a checkpoint: checkpoints are missing", self.since
            )}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::audit::AuditEntry;

    fn entry(seq: u64, action: &str, detail: &str) -> AuditEntry {
        AuditEntry { seq, action: action.into(), detail: detail.into(), ..Default::default() }
    }

    #[test]
    fn a_stretch_without_checkpoints_is_named_once() {
        let limit = MAX_ENTRIES_WITHOUT_CHECKPOINT;
        let mut m = Markers::default();
        let mut problems = Vec::new();
        for seq in 1..=limit {
            m.see(&entry(seq, "secrets.get", "{}"), false, &mut problems);
        }
        assert!(problems.is_empty(), "up to the limit is allowed");
        m.see(&entry(limit + 1, MARKER_ACTION, "{}"), false, &mut problems);
        for seq in limit + 2..=2 * limit + 1 {
            m.see(&entry(seq, "secrets.get", "{}"), false, &mut problems);
        }
        m.see(&entry(2 * limit + 2, MARKER_ACTION, r#"{"skipped":"sealed"}"#), false, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(m.signed, [limit + 1], "a skipped checkpoint needs no row");
        for seq in 2 * limit + 3..=3 * limit + 5 {
            m.see(&entry(seq, "secrets.get", "{}"), false, &mut problems);
        }
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0]["reason"].as_str().unwrap().contains("without a checkpoint"));
        // A signed row counts as a checkpoint (logs from before markers).
        let mut legacy = Markers::default();
        let mut p = Vec::new();
        for seq in 1..=2 * limit {
            legacy.see(&entry(seq, "secrets.get", "{}"), seq == limit, &mut p);
        }
        assert!(p.is_empty(), "{p:?}");
    }
}
