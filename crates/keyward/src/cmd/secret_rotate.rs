//! `keyward secret rotate` and `keyward secret rollback`: staged rotation
//! through `POST /v1/secrets/{path}?action=rotate|rollback|abandon`.

use super::secret::{read_fields, zero_values};
use crate::client::{Client, secret_url};
use crate::cmd::{cell, print_json};
use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

/// How to rotate.
#[derive(Debug, Default)]
pub(super) struct How {
    pub verify: bool,
    pub promote: bool,
    pub abandon: bool,
    pub no_wait: bool,
    pub rotate_every: Option<String>,
    pub json: bool,
}

/// Stages, checks, promotes or abandons.
pub(super) async fn rotate(c: &Client, path: &str, fields: &[String], how: How) -> Result<()> {
    let url = secret_url(path)?;
    if how.abandon {
        let out = c.call(Method::POST, &format!("{url}?action=abandon"), Some(&json!({}))).await?;
        if how.json {
            return print_json(&out);
        }
        println!("abandoned version {} of {path} (destroyed)", cell(&out["abandoned_version"]));
        if out["exists"] == json!(false) {
            println!("{path} had no current version and is gone");
        }
        return Ok(());
    }
    let mut body = json!({ "verify": how.verify, "promote": how.promote, "no_wait": how.no_wait });
    if !fields.is_empty() {
        body["data"] = Value::Object(read_fields(fields)?);
    }
    if let Some(r) = how.rotate_every {
        body["rotation_period"] = json!(r);
    }
    let out = c.call(Method::POST, &format!("{url}?action=rotate"), Some(&body)).await;
    // The body held secret values: clear them before anything else happens.
    zero_values(&mut body);
    let out = out?;
    if how.json {
        return print_json(&out);
    }
    if out["state"] == "pending_approval" {
        println!(
            "{path}: version {} changes the account's upstream and waits for approvals: {} ({})",
            cell(&out["pending_version"]),
            cell(&out["approval"]["id"]),
            cell(&out["message"])
        );
        return Ok(());
    }
    if out["promoted"] != json!(true) {
        println!("staged {path} version {} as pending", cell(&out["pending_version"]));
        println!("{}", cell(&out["next"]));
        return Ok(());
    }
    if let Some(call) = out["check"]["call"].as_str() {
        println!("the exchange accepted the new credentials ({call}: HTTP {})", cell(&out["check"]["status"]));
    }
    println!(
        "{path}: version {} is current; version {} is previous",
        cell(&out["version"]),
        cell(&out["previous_version"])
    );
    print_drain(&out["drain"]);
    Ok(())
}

/// Makes the previous version current again.
pub(super) async fn rollback(c: &Client, path: &str, no_wait: bool, json: bool) -> Result<()> {
    let url = format!("{}?action=rollback", secret_url(path)?);
    let out = c.call(Method::POST, &url, Some(&json!({ "no_wait": no_wait }))).await?;
    if json {
        return print_json(&out);
    }
    println!(
        "{path}: back on version {} (version {} is previous; roll back again to return to it)",
        cell(&out["version"]),
        cell(&out["previous_version"])
    );
    print_drain(&out["drain"]);
    Ok(())
}

fn print_drain(d: &Value) {
    let (before, after) = (d["in_flight"].as_u64().unwrap_or(0), d["still_in_flight"].as_u64().unwrap_or(0));
    match (before, after) {
        (0, _) => println!("no request was using the old version on this node"),
        (n, 0) => {
            println!("{n} request(s) in flight finished with the old version (waited {} ms)", cell(&d["waited_ms"]))
        }
        (n, m) => println!("{n} request(s) were in flight on the old version; {m} still are"),
    }
}
