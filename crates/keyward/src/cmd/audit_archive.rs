//! `keyward audit archive` and the archive half of `keyward audit verify`:
//! old entries moved into a file that verifies on its own, and the log
//! verified as one chain across archives and the database.

use crate::client::Client;
use crate::cmd::cell;
use anyhow::{Context, Result, anyhow, bail};
use keyward_server::audit_archive::{Summary, verify_file};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Writes the archive of entries older than `before` to `to` (through a
/// temporary file, synced, read back whole), then, unless `keep`, prunes
/// them from the database.
pub async fn archive(c: &Client, before: &str, to: &Path, keep: bool) -> Result<()> {
    if to.exists() {
        bail!("{} exists: archives are never overwritten", to.display());
    }
    let tmp = to.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let q = before.replace('&', "%26").replace('+', "%2B");
    let downloaded = c.download(&format!("/v1/audit/archive?before={q}"), &mut f).await;
    let (headers, bytes, sha) = match downloaded {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    f.sync_all().context("syncing the archive")?;
    drop(f);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let key = header("x-keyward-audit-public-key")
        .and_then(|k| hex(&k))
        .ok_or_else(|| anyhow!("the server sent no audit public key"))?;
    let summary = match verify_file(&tmp, &key) {
        Ok(s) => s,
        Err(b) => {
            bail!(
                "the archive received does not verify (entry {}): {}; kept at {} and nothing was pruned",
                b.seq,
                b.reason,
                tmp.display()
            )
        }
    };
    std::fs::rename(&tmp, to).with_context(|| format!("renaming to {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let h = &summary.header;
    println!(
        "archived entries {}..{} ({} entries, {} signed checkpoints) to {}: {} bytes, {:.1} bytes an entry",
        h.first_seq,
        h.last_seq,
        h.entries,
        summary.checkpoints,
        to.display(),
        bytes,
        bytes as f64 / h.entries.max(1) as f64
    );
    if keep {
        println!("kept in the database (--keep)");
        return Ok(());
    }
    let out =
        c.call(Method::POST, "/v1/audit/prune", Some(&json!({"through": h.last_seq, "archive_sha256": sha}))).await?;
    println!("removed {} entries from the database; it now starts after entry {}", cell(&out["removed"]), h.last_seq);
    Ok(())
}

fn hex(s: &str) -> Option<Vec<u8>> {
    keyward_core::keyring::hex_decode(s)
}

/// Verifies archives in order and that they chain into the database's log
/// (`report`, the server's verification): each archive on its own, each
/// after the one before, the last ending where the database starts.
pub fn across(archives: &[PathBuf], report: &Value) -> Result<Vec<Summary>> {
    let key =
        report["public_key"].as_str().and_then(hex).ok_or_else(|| anyhow!("the server sent no audit public key"))?;
    let mut summaries: Vec<(PathBuf, Summary)> = Vec::new();
    for f in archives {
        let s = verify_file(f, &key).map_err(|b| anyhow!("{}: entry {}: {}", f.display(), b.seq, b.reason))?;
        summaries.push((f.clone(), s));
    }
    summaries.sort_by_key(|(_, s)| s.header.first_seq);
    for pair in summaries.windows(2) {
        let ((fa, a), (fb, b)) = (&pair[0], &pair[1]);
        if b.header.first_seq != a.header.last_seq + 1 || b.header.prev_hash != a.last_hash {
            bail!(
                "{} (entries {}..{}) does not follow {} (entries {}..{}): an archive is missing or was altered",
                fb.display(),
                b.header.first_seq,
                b.header.last_seq,
                fa.display(),
                a.header.first_seq,
                a.header.last_seq
            );
        }
    }
    if let Some((f, last)) = summaries.last() {
        let base_seq = report["base"]["seq"].as_u64();
        let base_hash = report["base"]["hash"].as_str();
        match (base_seq, base_hash) {
            (Some(seq), Some(hash)) if seq == last.header.last_seq && hash == last.last_hash => {}
            (Some(seq), _) if seq == last.header.last_seq => {
                bail!(
                    "{} ends at entry {seq} with another hash than the database's base: one of them was altered",
                    f.display()
                )
            }
            (Some(seq), _) => bail!(
                "the database starts after entry {seq}, {} ends at entry {}: the archives in between are missing",
                f.display(),
                last.header.last_seq
            ),
            _ => bail!(
                "the database was never pruned, so no archive precedes it ({} ends at entry {})",
                f.display(),
                last.header.last_seq
            ),
        }
    }
    Ok(summaries.into_iter().map(|(_, s)| s).collect())
}
