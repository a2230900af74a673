//! `keyward key`: create, list, show, revoke.

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

/// Access-key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key; it is printed once.
    ///
    /// A key can only grant scopes its creator holds. Scopes:
    /// secret:read:<glob>, secret:write:<glob>, account:<glob>:<class>,
    /// key:admin, key:verify:<namespace>, audit:read, sys:metrics, sys:admin.
    /// In globs `*` matches any run of characters, `/` included. A key with
    /// an account: scope must have --allow-ip.
    ///
    /// Example: keyward key create --name alert-bot --scope 'secret:read:apps/alerts/*'
    Create {
        /// Name (who or what uses it).
        #[arg(long)]
        name: String,
        /// Scope to grant (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Client network allowed, CIDR (repeat; IPv4 or IPv6).
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, conflicts_with = "expires")]
        ttl: Option<String>,
        /// Expiry, RFC 3339 (2027-01-31T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// Owner (team or person).
        #[arg(long)]
        owner: Option<String>,
        /// Print JSON (the key included).
        #[arg(long, conflicts_with = "quiet")]
        json: bool,
        /// Print only the key, for scripts: BOT_KEY=$(keyward key create … -q).
        #[arg(long, short)]
        quiet: bool,
    },
    /// List access keys (only those whose scopes yours cover).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// Key id (key_…).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: the very next request with it is refused.
    Revoke {
        /// Key id (key_…), or a key name if exactly one visible key has it.
        id: String,
    },
}

/// Runs a key command.
pub async fn run(cmd: KeyCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        KeyCommand::Create {
            name,
            scopes,
            allow_ips,
            ttl,
            expires,
            owner,
            json,
            quiet,
        } => {
            let mut body = json!({"name": name, "scopes": scopes});
            if !allow_ips.is_empty() {
                body["allow_ips"] = json!(allow_ips);
            }
            if let Some(t) = ttl {
                body["ttl"] = json!(t);
            }
            if let Some(e) = expires {
                body["expires_at"] = json!(e);
            }
            if let Some(o) = owner {
                body["owner"] = json!(o);
            }
            let out = c.call(Method::POST, "/v1/keys", Some(&body)).await?;
            if json {
                return print_json(&out);
            }
            if quiet {
                println!("{}", cell(&out["key"]));
                return Ok(());
            }
            println!("key id   {}", cell(&out["id"]));
            println!("scopes   {}", list(&out["scopes"]));
            println!("expires  {}", cell(&out["expires_at"]));
            println!(
                "\nAccess key (shown once; store it now):\n\n    {}\n",
                cell(&out["key"])
            );
            Ok(())
        }
        KeyCommand::List { json } => {
            let out = c.call(Method::GET, "/v1/keys", None).await?;
            if json {
                return print_json(&out);
            }
            println!(
                "{:<21} {:<20} {:<10} {:<25} scopes",
                "id", "name", "state", "expires"
            );
            for k in out["keys"].as_array().into_iter().flatten() {
                println!(
                    "{:<21} {:<20} {:<10} {:<25} {}",
                    cell(&k["id"]),
                    cell(&k["name"]),
                    cell(&k["state"]),
                    cell(&k["expires_at"]),
                    list(&k["scopes"])
                );
            }
            Ok(())
        }
        KeyCommand::Show { id, json } => {
            let out = c.call(Method::GET, &format!("/v1/keys/{id}"), None).await?;
            if json {
                return print_json(&out);
            }
            if let Some(o) = out.as_object() {
                for (k, v) in o {
                    let text = if v.is_array() { list(v) } else { cell(v) };
                    println!("{k:<10} {text}");
                }
            }
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            let id = resolve_id(&c, &id).await?;
            c.call(Method::DELETE, &format!("/v1/keys/{id}"), None)
                .await?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

/// Takes a key id as is; otherwise finds the one visible key with that name.
async fn resolve_id(c: &Client, id_or_name: &str) -> Result<String> {
    if id_or_name.starts_with("key_") {
        return Ok(id_or_name.to_string());
    }
    let out = c.call(Method::GET, "/v1/keys", None).await?;
    let matches: Vec<&str> = out["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["name"] == id_or_name && k["state"] != "revoked")
        .filter_map(|k| k["id"].as_str())
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => anyhow::bail!("no key named {id_or_name:?} (give a key id: key_…)"),
        _ => anyhow::bail!(
            "{} keys are named {id_or_name:?}: give the key id (keyward key list)",
            matches.len()
        ),
    }
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| cell(v))
}
