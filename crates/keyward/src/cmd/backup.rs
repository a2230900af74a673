//! `keyward operator backup FILE` and `keyward operator restore FILE`.

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Asks the server for a backup and writes it to `file` (0600, never over
/// an existing file; written beside it and renamed, so a failed backup
/// leaves no partial file under the name).
pub async fn backup(conn: &Connection, file: &Path, json_out: bool) -> Result<()> {
    if file.exists() {
        bail!("{} exists: refusing to overwrite a backup; give a new file name", file.display());
    }
    let c = Client::new(conn)?;
    let bytes = c.call_bytes(Method::POST, "/v1/sys/backup", None).await?;
    let partial = file.with_extension("partial");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&partial, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("writing {}", file.display()));
    }
    let header: String =
        String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).split("\n\n").next().unwrap_or_default().to_owned();
    let field = |name: &str| {
        header.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned)).unwrap_or_default()
    };
    if json_out {
        return print_json(&json!({
            "file": file.display().to_string(),
            "bytes": bytes.len(),
            "created": field("created"),
            "term": field("term").parse::<u64>().ok(),
        }));
    }
    println!(
        "backup written to {} ({} bytes, taken {}, keyring term {})",
        file.display(),
        bytes.len(),
        field("created"),
        field("term")
    );
    println!("It opens only with this data's root key. Keep it away from the unseal key file and the shares.");
    Ok(())
}

fn print_preview(out: &Value) {
    println!(
        "backup taken {} (keyring term {}, {} bytes)",
        cell(&out["created"]),
        cell(&out["term"]),
        cell(&out["bytes"])
    );
    let revived = out["revived"].as_array().cloned().unwrap_or_default();
    if revived.is_empty() {
        println!("no access key revoked or marked compromised since then would come back");
        return;
    }
    println!("\nRestoring brings back {} access key(s) ended since then:", revived.len());
    println!("  {:<28} {:<24} {:<12} then", "id", "name", "now");
    for k in &revived {
        println!(
            "  {:<28} {:<24} {:<12} {}",
            cell(&k["id"]),
            cell(&k["name"]),
            cell(&k["state_now"]),
            cell(&k["state_then"])
        );
    }
    println!("Revoke them again after the restore if they must stay ended.");
}

/// Checks `file` with the server, shows what restoring would do, asks,
/// then restores.
pub async fn restore(conn: &Connection, file: &Path, yes: bool, json_out: bool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let c = Client::new(conn)?;
    let preview = c.call_bytes(Method::POST, "/v1/sys/restore", Some(bytes.clone())).await?;
    let preview: Value = serde_json::from_slice(&preview).context("reading the server's answer")?;
    if !json_out {
        print_preview(&preview);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not restoring without confirmation: run it in a terminal, or pass --yes");
        }
        eprint!("\nReplace this server's secrets, keys and ledger with the backup's? Type `restore` to go on: ");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "restore" {
            bail!("nothing restored");
        }
    }
    let done = c.call_bytes(Method::POST, "/v1/sys/restore?confirm=true", Some(bytes)).await?;
    let done: Value = serde_json::from_slice(&done).context("reading the server's answer")?;
    if json_out {
        return print_json(&done);
    }
    println!("restored the backup taken {}; the audit log records the restore", cell(&done["created"]));
    Ok(())
}
