//! Verifying the audit log: walk the whole chain (paged, so a large log is
//! never held whole) and check every signed checkpoint, plus an anchor kept
//! elsewhere, which catches a log cut back to an earlier point.

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
        }
        count += page.len() as u64;
        prev = (last.seq + 1, last.hash.clone());
    }
    // The end of the log as stored (a break above may stop the walk early).
    let last_seq = store.audit_head().await?.map(|(s, _)| s).unwrap_or(0);
    let checkpoints = store.audit_checkpoints().await?;
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
