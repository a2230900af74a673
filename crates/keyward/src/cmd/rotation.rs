//! `keyward rotation`: what is due for rotation (`sys:admin`).

use crate::client::{Client, Connection};
use crate::cmd::{cell, encode, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;

/// Rotation commands.
#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// One table of secrets with a rotation period (`secret put --rotate-every`),
    /// exchange accounts and access keys with a maximum age (`key create
    /// --max-age`, or the server's --key-max-age): age, due date, state and
    /// the command that rotates each. Soonest first; `overdue` items also
    /// raise the rotation alert and count in the keyward_rotation_overdue gauge.
    /// A rotation staged and never finished (`secret rotate` without
    /// --verify/--promote, a refused check, a crash) is listed `unfinished`
    /// with the command that finishes it and the one that abandons it.
    ///
    /// Examples:
    ///   keyward rotation status
    ///   keyward rotation status --due-within 7d --json
    Status {
        /// Only items due within this long (overdue included), e.g. 7d, 36h.
        #[arg(long)]
        due_within: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll every access key due by its maximum age (the ones `rotation
    /// status` lists as due within the window, or overdue), as `key roll
    /// --grace` does one at a time. Run it on a schedule, e.g. daily from
    /// cron or a systemd timer, so keys roll before they expire.
    ///
    /// Each new key is shown once. With --store-under, each goes into the
    /// secret PREFIX<key name> (fields key, key_id, rolled_from) and is not
    /// printed: the bot's deployment picks it up there (a bot may read it
    /// with secret:read on that path). Without it, the new keys are printed.
    /// Needs key:admin, and secret:write on the paths keys are stored at.
    ///
    /// Examples:
    ///   keyward rotation roll --dry-run
    ///   keyward rotation roll --due-within 7d --grace 24h --store-under bots/
    #[command(verbatim_doc_comment)]
    Roll {
        /// Roll keys due within this long (overdue ones too), e.g. 7d.
        #[arg(long, default_value = "7d")]
        due_within: String,
        /// How long each old key keeps working after the roll.
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Store each new key in the secret PREFIX<key name> (PREFIX ends in /).
        #[arg(long, value_name = "PREFIX")]
        store_under: Option<String>,
        /// Only list what would be rolled.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a rotation command.
pub async fn run(cmd: RotationCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        RotationCommand::Status { due_within, json } => status(&c, due_within, json).await,
        RotationCommand::Roll { due_within, grace, store_under, dry_run, json } => {
            let body = serde_json::json!({
                "due_within": due_within, "grace": grace, "store_under": store_under, "dry_run": dry_run,
            });
            roll(&c, &body, json).await
        }
    }
}

async fn status(c: &Client, due_within: Option<String>, json: bool) -> Result<()> {
    let url = match &due_within {
        Some(d) => format!("/v1/rotation?due_within={}", encode(d)),
        None => "/v1/rotation".to_string(),
    };
    let out = c.call(Method::GET, &url, None).await?;
    if json {
        return print_json(&out);
    }
    let items = out["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("nothing rotates on a schedule{}", if due_within.is_some() { " within that time" } else { "" });
        return Ok(());
    }
    println!(
        "{:<10} {:<16} {:<36} {:<6} {:<6} {:<24} {:<10} run",
        "status", "kind", "id", "age", "every", "due", "state"
    );
    for i in &items {
        let id = match i["name"].as_str() {
            Some(n) => format!("{} ({n})", cell(&i["id"])),
            None => cell(&i["id"]),
        };
        println!(
            "{:<10} {:<16} {:<36} {:<6} {:<6} {:<24} {:<10} {}",
            cell(&i["status"]),
            cell(&i["kind"]),
            id,
            cell(&i["age"]),
            cell(&i["every"]),
            cell(&i["due_at"]),
            cell(&i["state"]),
            cell(&i["run"])
        );
        if let Some(abandon) = i["abandon"].as_str() {
            println!("{:<10} or abandon it: {abandon}", "");
        }
    }
    println!(
        "\n{} overdue, {} due, {} unfinished",
        cell(&out["overdue"]),
        cell(&out["due"]),
        out["unfinished"].as_u64().unwrap_or(0)
    );
    Ok(())
}

async fn roll(c: &Client, body: &serde_json::Value, json: bool) -> Result<()> {
    let out = c.call(Method::POST, "/v1/rotation/roll", Some(body)).await?;
    if json {
        return print_json(&out);
    }
    if out["dry_run"] == serde_json::json!(true) {
        let items = out["would_roll"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("no key is due to roll");
        }
        for i in &items {
            let at = i["store_at"].as_str().map(|p| format!(", new key to {p}")).unwrap_or_default();
            println!("would roll {} ({}){at}", cell(&i["id"]), cell(&i["name"]));
        }
        return Ok(());
    }
    let rolled = out["rolled"].as_array().cloned().unwrap_or_default();
    let failed = out["failed"].as_array().cloned().unwrap_or_default();
    if rolled.is_empty() && failed.is_empty() {
        println!("no key is due to roll");
    }
    for i in &rolled {
        println!(
            "rolled {} ({}) to {}; the old key works until {}",
            cell(&i["id"]),
            cell(&i["name"]),
            cell(&i["new_id"]),
            cell(&i["grace_until"])
        );
        if let Some(p) = i["stored_at"].as_str() {
            println!("  new key stored at {p} (version {})", cell(&i["version"]));
        }
        if let Some(e) = i["store_error"].as_object() {
            println!("  could not store it ({}): here it is, shown once", cell(&e["message"].clone()));
        }
        if let Some(k) = i["key"].as_str() {
            println!("  new key (shown once): {k}");
        }
    }
    for i in &failed {
        println!("not rolled {} ({}): {}", cell(&i["id"]), cell(&i["name"]), cell(&i["error"]["message"]));
    }
    if !failed.is_empty() {
        anyhow::bail!("{} key(s) could not be rolled", failed.len());
    }
    Ok(())
}
