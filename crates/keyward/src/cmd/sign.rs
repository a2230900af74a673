//! `keyward sign`: ask the server to sign an exchange request.

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::json;

/// Sign an exchange request with an account's credentials.
///
/// The answer is exactly what to send: method, URL, headers and body.
/// keyward sets the timestamp, nonce and receive window. The key needs
/// account:ACCOUNT:<class of the endpoint>; for exchanges whose signature
/// does not cover the path (Binance, Bybit) it needs account:ACCOUNT:admin,
/// since a signature handed out could be replayed elsewhere: use the proxy.
///
/// Example: keyward sign kraken-main POST /0/private/Balance
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Account name (the secret at exchanges/ACCOUNT).
    account: String,
    /// HTTP method (GET, POST, PUT, DELETE).
    method: String,
    /// Exchange path, e.g. /api/v5/account/balance.
    path: String,
    /// Query string (a=1&b=2).
    #[arg(long)]
    query: Option<String>,
    /// Body: JSON, or a form (a=1&b=2).
    #[arg(long)]
    body: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `keyward sign`.
pub async fn run(a: SignArgs, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    let mut body = json!({"method": a.method, "path": a.path});
    if let Some(q) = a.query {
        body["query"] = json!(q);
    }
    if let Some(b) = a.body {
        body["body"] = json!(b);
    }
    let out = c.call(Method::POST, &format!("/v1/sign/{}", a.account), Some(&body)).await?;
    if a.json {
        return print_json(&out);
    }
    println!("{} {}", cell(&out["method"]), cell(&out["url"]));
    for (k, v) in out["headers"].as_object().into_iter().flatten() {
        println!("{k}: {}", cell(v));
    }
    if !out["body"].is_null() {
        println!();
        println!("{}", cell(&out["body"]));
    }
    Ok(())
}
