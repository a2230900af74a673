//! Verifying the audit log: walk the chain (paged, in constant memory: only
//! the checkpoints, one in a thousand entries, are held) and check every
//! signed checkpoint, plus an anchor kept elsewhere, which catches a log
//! cut back to an earlier point. The walk starts after the base a prune
//! left (the archives hold what came before, and verify on their own), or,
//! asked to, at the checkpoint the last verification reached.
//!
//! Each checkpoint also has a marker entry in the chain: a marker whose
//! signed row is gone, a stretch of entries longer than the checkpoint
//! interval allows without a marker, or an anchor whose checkpoint is not
//! stored means checkpoints were deleted, and the report names which.

use super::writer::{MARKER_ACTION, MAX_ENTRIES_WITHOUT_CHECKPOINT};
use crate::error::Result;
use keyward_core::audit::{Break, Checkpoint, entry_hash, genesis, verify_checkpoint};
use keyward_core::keyring::{hex_decode, hex_encode};
use keyward_store::{AuditRows, Store};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Entries read per page.
const PAGE: u64 = 20_000;

/// Where the last complete verification got to (`meta` row).
pub(crate) const VERIFIED: &str = "audit_verified";

/// Where a walk starts: after `seq`, whose hash is `hash`.
struct Start {
    seq: u64,
    hash: Vec<u8>,
    /// Why there (`genesis`, `base`, `checkpoint`).
    from: &'static str,
}

/// The walk's start: the base (or genesis), or with `since_checkpoint` the
/// signed checkpoint the last verification reached, if it still checks out.
async fn start(
    store: &dyn Store,
    public_key: &[u8],
    since_checkpoint: bool,
    checkpoints: &[Checkpoint],
) -> Result<Start> {
    let base = match store.audit_base().await? {
        Some((seq, hash)) => Start { seq, hash, from: "base" },
        None => Start { seq: 0, hash: genesis(), from: "genesis" },
    };
    if !since_checkpoint {
        return Ok(base);
    }
    let reached: Option<u64> = store.meta(VERIFIED).await?.and_then(|v| v.parse().ok());
    let Some(c) = reached.and_then(|seq| checkpoints.iter().find(|c| c.seq == seq)) else { return Ok(base) };
    let Some(hash) = hex_decode(&c.hash) else { return Ok(base) };
    if c.seq <= base.seq || !verify_checkpoint(public_key, c) {
        return Ok(base);
    }
    Ok(Start { seq: c.seq, hash, from: "checkpoint" })
}

/// Checks the chain and the checkpoints against the checkpoint public key;
/// the report names the first broken entry. A complete, intact walk
/// records the last checkpoint it checked (for `since_checkpoint`).
pub(crate) async fn verify_log(
    store: &Arc<dyn Store>,
    public_key: &[u8],
    anchor: Option<&Checkpoint>,
    since_checkpoint: bool,
) -> Result<Value> {
    let started = std::time::Instant::now();
    let mut problems: Vec<Value> = Vec::new();
    // The walk ends where the log ended before the checkpoints were read: a
    // marker and its signed row are committed together, so every marker up
    // to here has its row in the list. Entries written while the walk runs
    // (a checkpoint among them) are left to the next verification.
    let end = store.audit_head().await?.map_or(0, |(seq, _)| seq);
    // Signed rows count as checkpoints in the walk too (logs written before
    // markers existed have only those).
    let checkpoints = store.audit_checkpoints().await?;
    let by_seq: HashMap<u64, &Checkpoint> = checkpoints.iter().map(|c| (c.seq, c)).collect();
    // Each signature checked once.
    let signed: HashMap<u64, bool> = checkpoints.iter().map(|c| (c.seq, verify_checkpoint(public_key, c))).collect();
    let start = start(store.as_ref(), public_key, since_checkpoint, &checkpoints).await?;
    let walked = walk(store, &start, end, &by_seq, &signed).await?;
    let (count, matched, markers) = (walked.count, walked.matched, walked.markers);
    problems.extend(walked.problems);
    // The end of the log as stored now: a checkpoint past it means the log
    // was cut back.
    let last_seq = store.audit_head().await?.map(|(s, _)| s).unwrap_or(0);
    let mut check = |c: &Checkpoint, what: &str| {
        let good = match signed.get(&c.seq) {
            Some(true) if by_seq.get(&c.seq).is_some_and(|s| s.signature == c.signature) => true,
            _ => verify_checkpoint(public_key, c),
        };
        if !good {
            problems.push(json!({"seq": c.seq, "reason": format!("{what} at {} has a bad signature", c.seq)}));
        } else if c.seq > last_seq {
            problems.push(json!({"seq": last_seq + 1, "reason": format!("{what} covers entry {} but the log ends at {last_seq}: it was cut back", c.seq)}));
        } else if matched.get(&c.seq) == Some(&false)
            || (what == "anchor" && by_seq.get(&c.seq).is_some_and(|s| s.hash != c.hash))
        {
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
    for seq in &markers.signed {
        if !by_seq.contains_key(seq) {
            problems.push(json!({"seq": seq, "reason": format!("the checkpoint at entry {seq} is missing: its marker is in the chain, its signed row was deleted")}));
        }
    }
    if let Some(a) = anchor
        && a.seq <= last_seq
        && a.seq > start.seq
        && !by_seq.contains_key(&a.seq)
        && verify_checkpoint(public_key, a)
    {
        problems.push(json!({"seq": a.seq, "reason": format!("the anchor's checkpoint at entry {} is not in the log: it was deleted", a.seq)}));
    }
    problems.sort_by_key(|p| p["seq"].as_u64().unwrap_or(u64::MAX));
    // The last checkpoint the walk reached and found matching (not one
    // written since it began).
    let reached = checkpoints
        .iter()
        .rfind(|c| c.seq > start.seq && matched.get(&c.seq) == Some(&true) && signed.get(&c.seq) == Some(&true));
    if problems.is_empty()
        && let Some(c) = reached
    {
        store.put_meta(VERIFIED, &c.seq.to_string()).await?;
    }
    let base = store.audit_base().await?;
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "ok": problems.is_empty(),
        "entries": count,
        "from_seq": start.seq + 1,
        "from": start.from,
        "base": base.map(|(seq, hash)| json!({"seq": seq, "hash": hex_encode(&hash)})),
        "checkpoints": checkpoints.len(),
        "last_checkpoint": checkpoints.last(),
        "public_key": hex_encode(public_key),
        "entries_per_second": if secs > 0.0 { (count as f64 / secs).round() } else { 0.0 },
        "first_broken": problems.first().cloned(),
        "problems": problems,
    }))
}

/// What the walk through the stored entries found.
struct Walked {
    count: u64,
    /// Per checkpointed entry: whether the checkpoint matches its hash.
    matched: HashMap<u64, bool>,
    markers: Markers,
    problems: Vec<Value>,
}

/// Page reads in flight while a page is hashed.
const READ_AHEAD: usize = 3;

/// Walks the stored entries from `start` through `end`, page by page. Pages
/// cover ranges of sequence numbers, `[from, from + PAGE)`, so they can be
/// read ahead: [`READ_AHEAD`] reads run at once (on their own connections)
/// while a page is hashed on a blocking thread. A gap inside a page is
/// named by the page's check; a page with nothing stored in its range ends
/// the walk, naming the gap unless the walk already reached `end`.
async fn walk(
    store: &Arc<dyn Store>,
    start: &Start,
    end: u64,
    by_seq: &HashMap<u64, &Checkpoint>,
    signed: &HashMap<u64, bool>,
) -> Result<Walked> {
    let mut w = Walked {
        count: 0,
        matched: HashMap::new(),
        markers: Markers { last: start.seq, ..Markers::default() },
        problems: Vec::new(),
    };
    // The next entry expected, and the hash before it.
    let mut prev = (start.seq + 1, start.hash.clone());
    let checkpointed: Arc<HashSet<u64>> = Arc::new(by_seq.keys().copied().collect());
    let mut next_from = prev.0;
    let mut pending = VecDeque::new();
    loop {
        while pending.len() < READ_AHEAD && next_from <= end {
            pending.push_back((next_from, tokio::spawn(fetch(store.clone(), next_from))));
            next_from += PAGE;
        }
        let Some((from, task)) = pending.pop_front() else { break };
        let mut page = task.await.map_err(|e| crate::error::Error::internal(&e.to_string()))??;
        // A read runs past its range where entries are missing, and past
        // the end where entries came since.
        let next_stored = page.rows.first().map(|r| r.seq);
        page.rows.retain(|r| r.seq < from + PAGE && r.seq <= end);
        let Some(last) = page.rows.last().map(|r| r.seq) else {
            // Nothing stored in this page's range though the log went on
            // past it when the walk began: named here, at once, rather than
            // walking empty ranges up to the next stored entry (which a
            // forged sequence number can put 2^63 away).
            if prev.0 <= end {
                let reason = match next_stored {
                    Some(next) if next <= end => format!("entry {} is missing (next is {next})", prev.0),
                    _ => format!("entries {} to {end} are missing: the log ends at {}", prev.0, prev.0 - 1),
                };
                w.problems.push(json!({"seq": prev.0, "reason": reason}));
            }
            break;
        };
        let (first, hash, at) = (prev.0, prev.1.clone(), checkpointed.clone());
        let (page, checked) = tokio::task::spawn_blocking(move || {
            let checked = check_rows(&page, first, &hash, &at);
            (page, checked)
        })
        .await
        .map_err(|e| crate::error::Error::internal(&e.to_string()))?;
        let checked = match checked {
            Ok(c) => c,
            Err(b) => {
                w.problems.push(json!({"seq": b.seq, "reason": b.reason}));
                break;
            }
        };
        for (seq, hash) in checked.at_checkpoints {
            if let Some(c) = by_seq.get(&seq) {
                w.matched.insert(seq, c.hash == hex_encode(&hash));
            }
        }
        for r in &page.rows {
            let f = page.fields(r);
            w.markers.see(r.seq, f[3], f[8], signed.get(&r.seq) == Some(&true), &mut w.problems);
        }
        w.count += page.rows.len() as u64;
        prev = (last + 1, checked.last);
    }
    for (_, task) in pending {
        task.abort();
    }
    Ok(w)
}

async fn fetch(store: Arc<dyn Store>, from_seq: u64) -> Result<AuditRows> {
    Ok(store.audit_rows(from_seq, PAGE).await?)
}

/// What [`check_rows`] computed: the last entry's hash, and the hash of
/// each checkpointed entry.
struct Checked {
    last: Vec<u8>,
    at_checkpoints: Vec<(u64, [u8; 32])>,
}

/// Checks rows read after (`first_seq` - 1, `prev`): sequence numbers
/// without gaps, each entry's hash recomputed from its fields and the hash
/// before, and compared with what the entry keeps of it (whole or tag: an
/// edited entry breaks its own; a deleted, inserted or reordered one breaks
/// the sequence or the next entry's).
fn check_rows(
    page: &AuditRows,
    first_seq: u64,
    prev: &[u8],
    checkpointed: &HashSet<u64>,
) -> std::result::Result<Checked, Break> {
    let mut prev: Vec<u8> = prev.to_vec();
    let mut at_checkpoints = Vec::new();
    for (expect, r) in (first_seq..).zip(&page.rows) {
        if r.seq != expect {
            let reason = if r.seq > expect {
                format!("entry {expect} is missing (next is {})", r.seq)
            } else {
                format!("entry {} appears out of order (expected {expect})", r.seq)
            };
            return Err(Break { seq: expect, reason });
        }
        let hash = entry_hash(&prev, r.seq, r.time_ms, page.fields(r));
        if !r.hash.matches(&hash) {
            return Err(Break {
                seq: r.seq,
                reason: "its fields do not match its hash, or it does not link to the entry before it (edited, inserted or reordered)".into(),
            });
        }
        if checkpointed.contains(&r.seq) {
            at_checkpoints.push((r.seq, hash));
        }
        prev.clear();
        prev.extend_from_slice(&hash);
    }
    Ok(Checked { last: prev, at_checkpoints })
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
    fn see(&mut self, seq: u64, action: &str, detail: &str, signed_row: bool, problems: &mut Vec<Value>) {
        let marker = action == MARKER_ACTION;
        if marker && !detail.contains("skipped") {
            self.signed.push(seq);
        }
        if marker || signed_row {
            self.since = 0;
            self.last = seq;
            return;
        }
        self.since += 1;
        if self.since == MAX_ENTRIES_WITHOUT_CHECKPOINT + 1 {
            let after = if self.last == 0 {
                "from the start of the log".to_string()
            } else {
                format!("after the checkpoint at entry {}", self.last)
            };
            problems.push(json!({"seq": seq, "reason": format!(
                "{} entries {after} without a checkpoint: checkpoints are missing", self.since
            )}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::audit::AuditEntry;

    /// Feeds one entry to the markers.
    fn see(m: &mut Markers, seq: u64, action: &str, detail: &str, signed: bool, p: &mut Vec<Value>) {
        m.see(seq, action, detail, signed, p);
    }

    /// Rows of a chain of `n` entries as a store keeps them: a tag of each
    /// hash, the whole hash on every 64th and the last.
    fn stored_chain(n: u64) -> (AuditRows, Vec<Vec<u8>>) {
        let mut entries = Vec::new();
        let mut prev = genesis();
        for seq in 1..=n {
            let mut e = keyward_core::audit::AuditEntry {
                time_ms: 1_000 + seq as i64,
                request_id: format!("r{seq}"),
                action: "secrets.get".into(),
                target: format!("t/{}", seq % 5),
                decision: "allow".into(),
                detail: "{}".into(),
                ..Default::default()
            };
            e.chain_after(seq - 1, &prev);
            prev = e.hash.clone();
            entries.push(e);
        }
        let hashes = entries.iter().map(|e| e.hash.clone()).collect();
        for e in &mut entries {
            let whole = keyward_store::audit::keeps_whole(e.seq, e.seq == n);
            e.hash = keyward_store::audit::stored_form(&e.hash, whole).to_vec();
        }
        (AuditRows::from_entries(entries), hashes)
    }

    #[test]
    fn an_edit_to_an_entry_that_keeps_only_a_tag_is_named() {
        let (rows, hashes) = stored_chain(150);
        assert!(matches!(rows.rows[4].hash, keyward_store::StoredHash::Tag(_)));
        let at: HashSet<u64> = [64, 150].into();
        let checked = check_rows(&rows, 1, &genesis(), &at).unwrap_or_else(|b| panic!("{b:?}"));
        assert_eq!(checked.last, hashes[149], "the chain recomputed to its end");
        assert_eq!(
            checked.at_checkpoints,
            [(64, hashes[63].clone().try_into().unwrap()), (150, hashes[149].clone().try_into().unwrap())]
        );
        // An edited field, in an entry keeping a tag or its whole hash.
        for seq in [5u64, 64, 150] {
            let mut edited = rows.clone();
            edited.rows[seq as usize - 1].detail = r#"{"edited":true}"#.into();
            let b = check_rows(&edited, 1, &genesis(), &at).err().expect("broken");
            assert_eq!(b.seq, seq);
        }
        // A damaged stored hash matches nothing.
        let mut damaged = rows.clone();
        damaged.rows[9].hash = keyward_store::StoredHash::Bad;
        assert_eq!(check_rows(&damaged, 1, &genesis(), &at).err().expect("broken").seq, 10);
    }

    #[test]
    fn a_stretch_without_checkpoints_is_named_once() {
        let limit = MAX_ENTRIES_WITHOUT_CHECKPOINT;
        let mut m = Markers::default();
        let mut problems = Vec::new();
        for seq in 1..=limit {
            see(&mut m, seq, "secrets.get", "{}", false, &mut problems);
        }
        assert!(problems.is_empty(), "up to the limit is allowed");
        see(&mut m, limit + 1, MARKER_ACTION, "{}", false, &mut problems);
        for seq in limit + 2..=2 * limit + 1 {
            see(&mut m, seq, "secrets.get", "{}", false, &mut problems);
        }
        see(&mut m, 2 * limit + 2, MARKER_ACTION, r#"{"skipped":"sealed"}"#, false, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(m.signed, [limit + 1], "a skipped checkpoint needs no row");
        for seq in 2 * limit + 3..=3 * limit + 5 {
            see(&mut m, seq, "secrets.get", "{}", false, &mut problems);
        }
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0]["reason"].as_str().unwrap().contains("without a checkpoint"));
        // A signed row counts as a checkpoint (logs from before markers).
        let mut legacy = Markers::default();
        let mut p = Vec::new();
        for seq in 1..=2 * limit {
            see(&mut legacy, seq, "secrets.get", "{}", seq == limit, &mut p);
        }
        assert!(p.is_empty(), "{p:?}");
    }

    /// `n` routine entries after `after` (its seq and hash), then a signed
    /// checkpoint's marker, and the checkpoint: a batch as the writer
    /// commits it.
    fn checkpointed(
        after: &(u64, Vec<u8>),
        n: u64,
        key: &ring::signature::Ed25519KeyPair,
    ) -> (Vec<AuditEntry>, Checkpoint) {
        let (mut seq, mut prev) = after.clone();
        let mut batch = Vec::new();
        for i in 0..=n {
            let mut e = if i == n {
                super::super::writer::marker(1_000 + seq as i64, true)
            } else {
                AuditEntry {
                    time_ms: 1_000 + seq as i64,
                    action: "keys.verify".into(),
                    target: format!("pk_{seq}"),
                    ..Default::default()
                }
            };
            e.chain_after(seq, &prev);
            (seq, prev) = (e.seq, e.hash.clone());
            batch.push(e);
        }
        (batch, keyward_core::audit::sign_checkpoint(key, seq, &prev, 1_000 + seq as i64))
    }

    /// A checkpoint committed while a verification walks the log is left to
    /// the next one: its marker is not reported as a checkpoint whose row
    /// was deleted (the walk ends where the log ended when it began).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_written_during_a_walk_are_left_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(keyward_store::SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let public = keyward_core::audit::public_key(&key);
        let mut head = (0, genesis());
        for _ in 0..60 {
            let (batch, checkpoint) = checkpointed(&head, 999, &key);
            store.append_audit(&batch, Some(&checkpoint)).await.unwrap();
            head = batch.last().map(|e| (e.seq, e.hash.clone())).unwrap();
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = tokio::spawn({
            let (store, stop, key) = (
                store.clone(),
                stop.clone(),
                ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap(),
            );
            async move {
                let mut batches = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (batch, checkpoint) = checkpointed(&head, 9, &key);
                    store.append_audit(&batch, Some(&checkpoint)).await.unwrap();
                    head = batch.last().map(|e| (e.seq, e.hash.clone())).unwrap();
                    batches += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                batches
            }
        });
        for _ in 0..4 {
            let before = store.audit_head().await.unwrap().unwrap().0;
            let report = verify_log(&store, &public, None, false).await.unwrap();
            assert_eq!(report["ok"], true, "{report}");
            let walked = report["entries"].as_u64().unwrap();
            assert!(walked >= before, "{report}");
            // What `--since-checkpoint` starts from next time was walked.
            let reached: u64 = store.meta(VERIFIED).await.unwrap().unwrap().parse().unwrap();
            assert!(reached <= walked, "recorded {reached}, walked {walked}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let batches = writer.await.unwrap();
        let after = verify_log(&store, &public, None, false).await.unwrap();
        assert_eq!(after["ok"], true, "{after}");
        assert_eq!(after["entries"], 60_000 + 10 * batches, "everything, once the writer stopped");
    }

    /// A row forged 2^63 away ends the walk at once, naming the first
    /// entry missing before it (the walk does not step through the empty
    /// ranges between).
    #[tokio::test]
    async fn a_forged_far_sequence_number_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.db");
        let store: Arc<dyn Store> = Arc::new(keyward_store::SqliteStore::open(&file).await.unwrap());
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let (batch, checkpoint) = checkpointed(&(0, genesis()), 99, &key);
        store.append_audit(&batch, Some(&checkpoint)).await.unwrap();
        let db =
            sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&file)).await.unwrap();
        let far = i64::MAX - 5;
        sqlx::query(
            "INSERT INTO audit_entries SELECT ?, time_ms, request_id, key_id, ip, action, target, class, decision, code, detail, hash
             FROM audit_entries WHERE seq = 100",
        )
        .bind(far)
        .execute(&db)
        .await
        .unwrap();
        let public = keyward_core::audit::public_key(&key);
        let report = tokio::time::timeout(std::time::Duration::from_secs(30), verify_log(&store, &public, None, false))
            .await
            .expect("a verification that ends")
            .unwrap();
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["first_broken"]["seq"], 101, "{report}");
        assert_eq!(report["first_broken"]["reason"], format!("entry 101 is missing (next is {far})"), "{report}");
        assert_eq!(store.meta(VERIFIED).await.unwrap(), None, "nothing recorded for --since-checkpoint");
    }
}
