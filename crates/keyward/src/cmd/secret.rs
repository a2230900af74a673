//! `keyward secret`: put, get, list, history, delete, undelete, destroy,
//! and staged rotation (rotate, rollback: see `secret_rotate`).

use crate::client::{Client, Connection, secret_url};
use crate::cmd::{cell, print_json};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::io::Read;
use zeroize::Zeroizing;

/// Secret commands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Write a new version of a secret.
    ///
    /// Each field is NAME=VALUE (value from the command line: visible to
    /// other local users in the process list), NAME=@FILE (value read from
    /// FILE) or NAME=- (value read from standard input, one trailing newline
    /// removed). Example:
    ///
    ///   printf '%s' "$TOKEN" | keyward secret put apps/alerts/webhook token=-
    Put {
        /// Secret path, e.g. apps/alerts/webhook.
        path: String,
        /// Fields: NAME=VALUE, NAME=@FILE or NAME=-.
        #[arg(required = true, value_name = "FIELD")]
        fields: Vec<String>,
        /// Type of the secret (e.g. an exchange: binance).
        #[arg(long = "type")]
        kind: Option<String>,
        /// Check-and-set: write only if the current version is N (0: only if new).
        #[arg(long)]
        cas: Option<u64>,
        /// Rotation period (e.g. 90d); the rotation due date follows from the last write.
        #[arg(long)]
        rotate_every: Option<String>,
        /// For an exchange account (exchanges/NAME): keep the exchange's
        /// cancel-on-disconnect timer armed at this timeout (e.g. 60s; `off`
        /// disarms), as `keyward account dead-man NAME TIMEOUT` does.
        #[arg(long, value_name = "TIMEOUT")]
        dead_man: Option<String>,
    },
    /// Read a secret (the current version unless --version).
    Get {
        /// Secret path.
        path: String,
        /// Version to read.
        #[arg(long)]
        version: Option<u64>,
        /// Print only this field's value.
        #[arg(long)]
        field: Option<String>,
        /// Print JSON (data and metadata).
        #[arg(long)]
        json: bool,
    },
    /// List secrets this key may see, optionally under a prefix.
    List {
        /// Path prefix, e.g. apps/.
        prefix: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate in stages: new fields as a pending version, checked, then current.
    ///
    /// The new version is built from the fields given laid over the
    /// current one (or over the pending one, e.g. a key from `account
    /// keygen`), and stored as **pending**: nothing reads or signs with it.
    ///
    ///   --verify   for an exchange account: one signed read call (account
    ///              or balance) with the pending credentials through the
    ///              account's upstream; promote only if the exchange accepts
    ///   --promote  promote without asking (plain secrets, or checked by hand)
    ///   (neither)  stage only; finish later with --verify or --promote
    ///   --abandon  destroy the pending version instead
    ///
    /// Promotion is one step: each request signs wholly with the version it
    /// started with. The old version stays as **previous** (readable to
    /// sys:admin only) for `keyward secret rollback`, until destroyed. The
    /// command waits until no request in flight still uses the old version,
    /// so the old key can then be deleted on the exchange (--no-wait: do not).
    ///
    ///   printf '%s' "$NEW_SECRET" | keyward secret rotate exchanges/binance-main \
    ///       api_key=NEWKEY api_secret=- --verify
    Rotate {
        /// Secret path, e.g. exchanges/binance-main.
        path: String,
        /// Fields to change: NAME=VALUE, NAME=@FILE or NAME=- (none: act on the pending version).
        #[arg(value_name = "FIELD")]
        fields: Vec<String>,
        /// Ask the exchange with the pending credentials; promote only if it accepts them.
        #[arg(long, conflicts_with_all = ["promote", "abandon"])]
        verify: bool,
        /// Promote the pending version without asking the exchange.
        #[arg(long, conflicts_with = "abandon")]
        promote: bool,
        /// Destroy the pending version (the current one stays as it is).
        #[arg(long, conflicts_with = "fields")]
        abandon: bool,
        /// Return right after the switch, without waiting for requests in flight on the old version.
        #[arg(long)]
        no_wait: bool,
        /// Rotation period to set (e.g. 30d).
        #[arg(long)]
        rotate_every: Option<String>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the previous version current again, in one step (undoes a rotation).
    Rollback {
        /// Secret path.
        path: String,
        /// Return right after the switch, without waiting for requests in flight on the old version.
        #[arg(long)]
        no_wait: bool,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a secret's versions with their state (pending, current, previous,
    /// destroyed) and every change with its time and the key that made it.
    History {
        /// Secret path.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Soft-delete versions (default: the current one); undelete brings them back.
    Delete {
        /// Secret path.
        path: String,
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
    },
    /// Undo a soft delete (default: the current version).
    Undelete {
        /// Secret path.
        path: String,
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
    },
    /// Destroy versions for good (their ciphertext is overwritten), or --all of the secret.
    Destroy {
        /// Secret path.
        path: String,
        /// Versions, comma-separated.
        #[arg(long, value_delimiter = ',', required_unless_present = "all", conflicts_with = "all")]
        versions: Vec<u64>,
        /// Destroy every version and the metadata.
        #[arg(long)]
        all: bool,
    },
}

/// Runs a secret command.
pub async fn run(cmd: SecretCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        SecretCommand::Put { path, fields, kind, cas, rotate_every, dead_man } => {
            put(&c, &path, &fields, kind, cas, rotate_every).await?;
            match (dead_man, path.strip_prefix("exchanges/")) {
                (None, _) => Ok(()),
                (Some(t), Some(account)) => super::account::dead_man(&c, account, &t).await,
                (Some(_), None) => anyhow::bail!("--dead-man is for exchange accounts (exchanges/NAME)"),
            }
        }
        SecretCommand::Get { path, version, field, json } => get(&c, &path, version, field, json).await,
        SecretCommand::List { prefix, json } => list(&c, prefix, json).await,
        SecretCommand::History { path, json } => history(&c, &path, json).await,
        SecretCommand::Rotate { path, fields, verify, promote, abandon, no_wait, rotate_every, json } => {
            let how = super::secret_rotate::How { verify, promote, abandon, no_wait, rotate_every, json };
            super::secret_rotate::rotate(&c, &path, &fields, how).await
        }
        SecretCommand::Rollback { path, no_wait, json } => {
            super::secret_rotate::rollback(&c, &path, no_wait, json).await
        }
        SecretCommand::Delete { path, versions } => delete(&c, &path, &versions).await,
        SecretCommand::Undelete { path, versions } => undelete(&c, &path, versions).await,
        SecretCommand::Destroy { path, versions, all } => destroy(&c, &path, versions, all).await,
    }
}

async fn put(
    c: &Client,
    path: &str,
    fields: &[String],
    kind: Option<String>,
    cas: Option<u64>,
    rotate_every: Option<String>,
) -> Result<()> {
    let data = read_fields(fields)?;
    let mut body = json!({ "data": Value::Object(data) });
    if let Some(k) = kind {
        body["type"] = json!(k);
    }
    if let Some(n) = cas {
        body["cas"] = json!(n);
    }
    if let Some(r) = rotate_every {
        body["rotation_period"] = json!(r);
    }
    let out = c.call(Method::PUT, &secret_url(path)?, Some(&body)).await;
    // The body held secret values: clear them before anything else happens.
    zero_values(&mut body);
    let out = out?;
    if out["state"] == "pending_approval" {
        println!(
            "{path}: version {} is staged: it changes the account's upstream and waits for approvals: {} ({})",
            cell(&out["pending_version"]),
            cell(&out["approval"]["id"]),
            cell(&out["message"])
        );
        return Ok(());
    }
    println!("wrote {path} version {}", cell(&out["version"]));
    Ok(())
}

async fn get(c: &Client, path: &str, version: Option<u64>, field: Option<String>, json: bool) -> Result<()> {
    let mut url = secret_url(path)?;
    let mut q = Vec::new();
    if let Some(v) = version {
        q.push(format!("version={v}"));
    }
    if let Some(f) = &field {
        q.push(format!("field={f}"));
    }
    if !q.is_empty() {
        url = format!("{url}?{}", q.join("&"));
    }
    let out = c.call(Method::GET, &url, None).await?;
    if json {
        return print_json(&out);
    }
    if let Some(f) = field {
        println!("{}", out["data"][&f].as_str().unwrap_or_default());
        return Ok(());
    }
    println!("path     {}", cell(&out["path"]));
    println!("version  {}", cell(&out["version"]));
    println!("type     {}", cell(&out["metadata"]["type"]));
    println!("updated  {}", cell(&out["metadata"]["updated_at"]));
    println!("rotation due  {}", cell(&out["metadata"]["rotation_due"]));
    println!();
    if let Some(d) = out["data"].as_object() {
        let w = d.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in d {
            println!("{k:<w$}  {}", cell(v));
        }
    }
    Ok(())
}

async fn list(c: &Client, prefix: Option<String>, json: bool) -> Result<()> {
    let url = match &prefix {
        Some(p) => format!("/v1/secrets?prefix={p}"),
        None => "/v1/secrets".to_string(),
    };
    let out = c.call(Method::GET, &url, None).await?;
    if json {
        return print_json(&out);
    }
    for s in out["secrets"].as_array().into_iter().flatten() {
        println!("{}  v{}  {}", cell(&s["path"]), cell(&s["current_version"]), cell(&s["updated_at"]));
    }
    Ok(())
}

async fn history(c: &Client, path: &str, json: bool) -> Result<()> {
    let out = c.call(Method::GET, &format!("{}?history=true", secret_url(path)?), None).await?;
    if json {
        return print_json(&out);
    }
    println!(
        "path {}  type {}  current v{}  rotation due {}",
        cell(&out["path"]),
        cell(&out["type"]),
        cell(&out["current_version"]),
        cell(&out["rotation_due"])
    );
    println!("{:<8} {:<10} {:<26} deleted", "version", "state", "created");
    for v in out["versions"].as_array().into_iter().flatten() {
        println!(
            "{:<8} {:<10} {:<26} {}",
            cell(&v["version"]),
            cell(&v["state"]),
            cell(&v["created_at"]),
            cell(&v["deleted_at"])
        );
    }
    let changes = out["changes"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !changes.is_empty() {
        println!();
        println!("{:<26} {:<14} {:<8} {:<28} from", "time", "change", "version", "by");
        for ch in changes {
            println!(
                "{:<26} {:<14} {:<8} {:<28} {}",
                cell(&ch["time"]),
                cell(&ch["change"]),
                cell(&ch["version"]),
                cell(&ch["by"]),
                cell(&ch["ip"])
            );
        }
    }
    Ok(())
}

async fn delete(c: &Client, path: &str, versions: &[u64]) -> Result<()> {
    let mut url = secret_url(path)?;
    if !versions.is_empty() {
        url = format!("{url}?versions={}", join(versions));
    }
    let out = c.call(Method::DELETE, &url, None).await?;
    println!("deleted versions {} of {path}", cell(&out["deleted"]));
    Ok(())
}

async fn undelete(c: &Client, path: &str, versions: Vec<u64>) -> Result<()> {
    let url = format!("{}?action=undelete", secret_url(path)?);
    let out = c.call(Method::POST, &url, Some(&json!({"versions": versions}))).await?;
    println!("undeleted versions {} of {path}", cell(&out["undeleted"]));
    Ok(())
}

async fn destroy(c: &Client, path: &str, versions: Vec<u64>, all: bool) -> Result<()> {
    let body = if all { json!({"all": true}) } else { json!({"versions": versions}) };
    let out = c.call(Method::POST, &format!("{}?action=destroy", secret_url(path)?), Some(&body)).await?;
    println!("destroyed {} of {path}", cell(&out["destroyed"]));
    Ok(())
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub(super) fn zero_values(body: &mut Value) {
    if let Some(d) = body["data"].as_object_mut() {
        for v in d.values_mut() {
            if let Value::String(s) = v {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
}

/// Parses NAME=VALUE, NAME=@FILE and NAME=- arguments.
pub(super) fn read_fields(args: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut stdin_used = false;
    for arg in args {
        let Some((name, spec)) = arg.split_once('=') else {
            bail!("field {arg:?} must be NAME=VALUE, NAME=@FILE or NAME=-");
        };
        keyward_core::secret::check_field_name(name)?;
        let value = if spec == "-" {
            if stdin_used {
                bail!("only one field can read standard input (NAME=-)");
            }
            stdin_used = true;
            let mut s = Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut s).context("reading the value from standard input (must be UTF-8)")?;
            let trimmed = s.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&s);
            trimmed.to_string()
        } else if let Some(file) = spec.strip_prefix('@') {
            let bytes =
                Zeroizing::new(std::fs::read(file).with_context(|| format!("reading {file} for field {name}"))?);
            String::from_utf8(bytes.to_vec())
                .map_err(|_| anyhow::anyhow!("{file} (field {name}) is not UTF-8 text; store it base64-encoded"))?
        } else {
            spec.to_string()
        };
        if out.insert(name.to_string(), Value::String(value)).is_some() {
            bail!("field {name} is given twice");
        }
    }
    Ok(out)
}
