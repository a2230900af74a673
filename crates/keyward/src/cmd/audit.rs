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
    /// With --anchor FILE (a checkpoint kept elsewhere, from `keyward audit
    /// anchor` or a JSON-lines sink) it also catches a log cut back to an
    /// earlier point.
    Verify {
        /// A checkpoint kept outside keyward.
        #[arg(long)]
        anchor: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
        AuditCommand::Verify { anchor, json } => verify(&c, anchor, json).await,
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
    let mut after = 0u64;
    loop {
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
        for e in &entries {
            if format == "jsonl" {
                println!("{e}");
            } else {
                println!("{}", csv_row(e));
            }
            after = e["seq"].as_u64().unwrap_or(after);
        }
    }
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

async fn verify(c: &Client, anchor: Option<std::path::PathBuf>, json: bool) -> Result<()> {
    let body = anchor.map(|f| read_anchor(&f)).transpose()?.map(|a| json!({ "anchor": a }));
    let out = c.call(Method::POST, "/v1/audit/verify", body.as_ref()).await?;
    if json {
        print_json(&out)?;
    } else if out["ok"] == json!(true) {
        println!(
            "audit log intact: {} entries, {} signed checkpoints",
            cell(&out["entries"]),
            cell(&out["checkpoints"])
        );
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
