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
}

/// Runs a rotation command.
pub async fn run(cmd: RotationCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        RotationCommand::Status { due_within, json } => status(&c, due_within, json).await,
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
