//! `keyward audit`: tail, export and verify the audit log (`audit:read`).

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the latest entries; with -f keep following.
    Tail(TailArgs),
    /// Write entries as JSON lines or CSV to standard output.
    Export {
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// From (1h, 7d, or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339, or a duration ago).
        #[arg(long)]
        until: Option<String>,
    },
    /// Check the hash chain and every signed checkpoint; name the first broken entry.
    ///
    /// The database's log is walked from its start (after the entries
    /// archived), in constant memory. With --archive FILE (repeat, any
    /// order) each archive is verified on its own and the archives and the
    /// database as one chain. With --anchor FILE (a checkpoint kept
    /// elsewhere, from `keyward audit anchor` or a JSON-lines sink) it also
    /// catches a log cut back to an earlier point. With --since-checkpoint
    /// the walk starts at the checkpoint the last verification reached.
    Verify {
        /// A checkpoint kept outside keyward.
        #[arg(long)]
        anchor: Option<std::path::PathBuf>,
        /// An archive written by `keyward audit archive` or --audit-retain (repeat).
        #[arg(long = "archive")]
        archives: Vec<std::path::PathBuf>,
        /// Start at the checkpoint the last verification reached.
        #[arg(long)]
        since_checkpoint: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move old entries into an archive file, then prune them from the database.
    ///
    /// The archive (gzip, JSON lines) holds every entry after the last
    /// archive up to the newest signed checkpoint made before --before, with
    /// the checkpoints that vouch for them: it verifies on its own (`audit
    /// verify --archive FILE`). It is written, synced and read back whole
    /// before anything is pruned; the prune is on the log. Needs audit:read
    /// to read, sys:admin to prune.
    Archive {
        /// Entries older than this (30d, 12h, or RFC 3339).
        #[arg(long)]
        before: String,
        /// The archive file to write (never overwritten).
        #[arg(long)]
        to: std::path::PathBuf,
        /// Write the archive but keep the entries in the database.
        #[arg(long)]
        keep: bool,
    },
    /// Print the latest signed checkpoint (keep it elsewhere as an anchor).
    Anchor,
}

/// Arguments of `audit tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Keep printing new entries.
    #[arg(short, long)]
    follow: bool,
    /// Only this key id.
    #[arg(long)]
    key: Option<String>,
    /// Only this exchange account.
    #[arg(long)]
    account: Option<String>,
    /// Only this decision (allow, deny, outcome).
    #[arg(long)]
    decision: Option<String>,
    /// Only entries newer than this (1h, 30m, or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// How many entries to show first.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.replace('&', "%26").replace('+', "%2B"))))
        .collect();
    if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
}

fn line(e: &Value) -> String {
    format!(
        "{} #{} {:<6} {:<22} {:<8} {:<16} {} {} {}",
        cell(&e["time"]),
        cell(&e["seq"]),
        cell(&e["decision"]),
        cell(&e["key_id"]),
        cell(&e["class"]),
        cell(&e["code"]),
        cell(&e["ip"]),
        cell(&e["action"]),
        cell(&e["target"])
    )
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        AuditCommand::Tail(a) => tail(&c, a).await,
        AuditCommand::Export { format, since, until } => export(&c, &format, since, until).await,
        AuditCommand::Verify { anchor, archives, since_checkpoint, json } => {
            verify(&c, anchor, &archives, since_checkpoint, json).await
        }
        AuditCommand::Archive { before, to, keep } => crate::cmd::audit_archive::archive(&c, &before, &to, keep).await,
        AuditCommand::Anchor => anchor(&c).await,
    }
}

async fn tail(c: &Client, a: TailArgs) -> Result<()> {
    let filters = [("key", a.key), ("account", a.account), ("decision", a.decision)];
    let mut q: Vec<(&str, Option<String>)> = filters.to_vec();
    q.push(("since", a.since));
    q.push(("limit", Some(a.lines.to_string())));
    let out = c.call(Method::GET, &format!("/v1/audit{}", query(&q)), None).await?;
    let mut last = 0u64;
    let show = |e: &Value| if a.json { println!("{e}") } else { println!("{}", line(e)) };
    for e in out["entries"].as_array().into_iter().flatten() {
        show(e);
        last = e["seq"].as_u64().unwrap_or(last);
    }
    if !a.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let mut q: Vec<(&str, Option<String>)> = filters.to_vec();
        q.push(("after", Some(last.to_string())));
        let out = c.call(Method::GET, &format!("/v1/audit{}", query(&q)), None).await?;
        for e in out["entries"].as_array().into_iter().flatten() {
            show(e);
            last = e["seq"].as_u64().unwrap_or(last);
        }
    }
}

const EXPORT_COLUMNS: [&str; 12] =
    ["seq", "time", "request_id", "key_id", "ip", "action", "target", "class", "decision", "code", "detail", "hash"];

fn csv_row(e: &Value) -> String {
    let row: Vec<String> = EXPORT_COLUMNS
        .iter()
        .map(|k| {
            let v = if *k == "detail" { e[*k].to_string() } else { cell(&e[*k]) };
            format!("\"{}\"", v.replace('"', "\"\""))
        })
        .collect();
    row.join(",")
}

/// Pages through the log oldest first, 10,000 entries a request.
async fn export(c: &Client, format: &str, since: Option<String>, until: Option<String>) -> Result<()> {
    if format != "jsonl" && format != "csv" {
        bail!("--format is jsonl or csv");
    }
    if format == "csv" {
        println!("{}", EXPORT_COLUMNS.join(","));
    }
    // The log as it stands now: every page request is on record itself,
    // and on a busy server bots keep adding entries, so paging "until
    // nothing is left" would never end. The newest entry bounds the export.
    let newest = c.call(Method::GET, "/v1/audit?limit=1", None).await?;
    let Some(head) = newest["entries"].get(0).and_then(|e| e["seq"].as_u64()) else { return Ok(()) };
    let mut after = 0u64;
    while after < head {
        let q = [
            ("since", since.clone()),
            ("until", until.clone()),
            ("after", Some(after.to_string())),
            ("limit", Some("10000".into())),
        ];
        let out = c.call(Method::GET, &format!("/v1/audit{}", query(&q)), None).await?;
        let entries = out["entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            return Ok(());
        }
        for e in entries.iter().take_while(|e| e["seq"].as_u64().is_some_and(|s| s <= head)) {
            if format == "jsonl" {
                println!("{e}");
            } else {
                println!("{}", csv_row(e));
            }
            after = e["seq"].as_u64().unwrap_or(after);
        }
        if entries.last().and_then(|e| e["seq"].as_u64()).is_none_or(|s| s >= head) {
            return Ok(());
        }
    }
    Ok(())
}

/// A checkpoint (from `keyward audit anchor`), or a JSON-lines sink file
/// whose last checkpoint line is taken.
fn read_anchor(f: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find_map(|v| match v.get("checkpoint") {
            Some(c) => Some(c.clone()),
            None if v.get("signature").is_some() => Some(v),
            None => None,
        })
        .context("no checkpoint in the anchor file")
}

async fn verify(
    c: &Client,
    anchor: Option<std::path::PathBuf>,
    archives: &[std::path::PathBuf],
    since_checkpoint: bool,
    json: bool,
) -> Result<()> {
    let anchor = anchor.map(|f| read_anchor(&f)).transpose()?;
    let body = json!({ "anchor": anchor, "since_checkpoint": since_checkpoint });
    let mut out = c.call(Method::POST, "/v1/audit/verify", Some(&body)).await?;
    let mut archived = 0u64;
    if !archives.is_empty() && out["ok"] == json!(true) {
        let summaries = crate::cmd::audit_archive::across(archives, &out)?;
        archived = summaries.iter().map(|s| s.header.entries).sum();
        out["archives"] = serde_json::to_value(&summaries)?;
        if let Some(first) = summaries.first().filter(|s| s.header.first_seq > 1) {
            out["note"] = json!(format!(
                "the archives start at entry {}: the ones before were not given",
                first.header.first_seq
            ));
        }
    }
    if json {
        print_json(&out)?;
    } else if out["ok"] == json!(true) {
        let from = out["from_seq"].as_u64().unwrap_or(1);
        let start = if archived > 0 || from <= 1 { String::new() } else { format!(" from entry {from}") };
        println!(
            "audit log intact{start}: {} entries in the database{}, {} signed checkpoints ({}/s)",
            cell(&out["entries"]),
            if archived > 0 { format!(" and {archived} in {} archive(s)", archives.len()) } else { String::new() },
            cell(&out["checkpoints"]),
            cell(&out["entries_per_second"])
        );
        if let Some(n) = out["note"].as_str() {
            println!("note: {n}");
        }
    } else {
        for p in out["problems"].as_array().into_iter().flatten() {
            println!("entry {}: {}", cell(&p["seq"]), cell(&p["reason"]));
        }
    }
    if out["ok"] != json!(true) {
        bail!("the audit log is broken; first broken entry: {}", cell(&out["first_broken"]["seq"]));
    }
    Ok(())
}

async fn anchor(c: &Client) -> Result<()> {
    let out = c.call(Method::GET, "/v1/audit/verify", None).await?;
    if out["last_checkpoint"].is_null() {
        bail!("no checkpoint yet (one is signed every 1,000 entries or 10 seconds)");
    }
    println!("{}", out["last_checkpoint"]);
    Ok(())
}
