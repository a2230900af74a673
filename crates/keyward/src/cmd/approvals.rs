//! `keyward approvals`: changes waiting for M-of-N approvals.

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

/// Approval commands.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Requests, newest first (pending ones unless --all).
    List {
        /// Also closed ones (applied, rejected, expired, failed).
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One request: what it changes, who asked, who approved.
    Show {
        /// The request id (apr_…).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (needs the approve scope; not the requester's key).
    Approve {
        /// The request id (apr_…).
        id: String,
    },
    /// Reject a request (an approver), or withdraw one's own.
    Reject {
        /// The request id (apr_…).
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs an approvals command.
pub async fn run(cmd: ApprovalsCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        ApprovalsCommand::List { all, json } => {
            let out = c.call(Method::GET, "/v1/approvals", None).await?;
            if json {
                return print_json(&out);
            }
            let in_force = if out["in_force"] == true { "in force" } else { "not in force" };
            println!(
                "approvals {in_force}: {} needed, {} approver key(s)",
                cell(&out["required"]),
                cell(&out["approvers"])
            );
            for a in out["approvals"].as_array().into_iter().flatten().filter(|a| all || a["state"] == "pending") {
                println!(
                    "{}  {:<8} {}/{}  {}  (by {}, expires {})",
                    cell(&a["id"]),
                    cell(&a["state"]),
                    a["approvals"].as_array().map(Vec::len).unwrap_or(0),
                    cell(&a["required"]),
                    cell(&a["summary"]),
                    cell(&a["requested_by"]),
                    cell(&a["expires_at"])
                );
            }
            Ok(())
        }
        ApprovalsCommand::Show { id, json } => {
            let out = c.call(Method::GET, &format!("/v1/approvals/{}", crate::cmd::encode(&id)), None).await?;
            if json {
                return print_json(&out);
            }
            describe(&out);
            Ok(())
        }
        ApprovalsCommand::Approve { id } => {
            let out = c.call(Method::POST, &format!("/v1/approvals/{}/approve", crate::cmd::encode(&id)), None).await?;
            describe(&out);
            Ok(())
        }
        ApprovalsCommand::Reject { id, reason } => {
            let body = json!({"reason": reason});
            let path = format!("/v1/approvals/{}/reject", crate::cmd::encode(&id));
            let out = c.call(Method::POST, &path, Some(&body)).await?;
            describe(&out);
            Ok(())
        }
    }
}

fn describe(a: &Value) {
    println!("{}  {}", cell(&a["id"]), cell(&a["summary"]));
    println!("  state        {}", cell(&a["state"]));
    println!("  requested by {} at {}", cell(&a["requested_by"]), cell(&a["requested_at"]));
    println!("  expires      {}", cell(&a["expires_at"]));
    let given = a["approvals"].as_array().cloned().unwrap_or_default();
    println!("  approvals    {} of {}", given.len(), cell(&a["required"]));
    for v in &given {
        println!("    {} ({}) at {} from {}", cell(&v["key_id"]), cell(&v["name"]), cell(&v["at"]), cell(&v["ip"]));
    }
    if let Some(r) = a["rejection"].as_object() {
        println!("  rejected by  {} at {}: {}", cell(&r["key_id"]), cell(&r["at"]), cell(&r["reason"]));
    }
    if !a["result"].is_null() {
        println!("  result       {}", cell(&a["result"]));
    }
    if let Some(e) = a["error"].as_object() {
        println!("  error        {}: {}", cell(&e["code"]), cell(&e["message"]));
    }
}
