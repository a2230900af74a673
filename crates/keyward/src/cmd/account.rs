//! `keyward account`: exchange accounts as a whole (`keygen`).

use crate::client::{Client, Connection};
use crate::cmd::{cell, encode, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

/// Exchange account commands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Make an exchange API key pair inside keyward. The private key is born
    /// here (OS CSPRNG) and stored as the pending version of
    /// exchanges/NAME, marked non-exportable: no scope, export and sys:admin
    /// included, ever reads it back. Only the public key is printed, as the
    /// exchange's key page takes it.
    ///
    /// Then register the public key on the exchange ("self-generated" or
    /// "RSA/Ed25519" key), and promote it with the key id the exchange shows:
    ///   keyward secret rotate exchanges/NAME api_key=<key id> --verify
    /// Until then the account keeps signing with its current version.
    ///
    /// Exchanges that take self-generated keys: binance (ed25519, rsa),
    /// bybit (rsa), bitget (rsa; give the passphrase you set there when you
    /// promote: passphrase=-). Deribit takes self-generated keys too, but
    /// authenticates them through a login flow keyward does not sign yet;
    /// the other exchanges make their keys themselves.
    ///
    /// Needs secret:write on exchanges/NAME and account:NAME:admin.
    ///
    /// Examples:
    ///   keyward account keygen binance-main --type binance --alg ed25519
    ///   keyward account keygen bybit-main --type bybit --alg rsa --bits 4096
    #[command(verbatim_doc_comment)]
    Keygen {
        /// The account name (the secret exchanges/NAME).
        name: String,
        /// The exchange: binance, bybit or bitget. Needed for a new account;
        /// must match an existing one.
        #[arg(long = "type")]
        kind: Option<String>,
        /// ed25519 or rsa.
        #[arg(long)]
        alg: String,
        /// RSA key size: 2048 (default) or 4096.
        #[arg(long)]
        bits: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an account command.
pub async fn run(cmd: AccountCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        AccountCommand::Keygen { name, kind, alg, bits, json } => keygen(&c, &name, kind, alg, bits, json).await,
    }
}

async fn keygen(
    c: &Client,
    name: &str,
    kind: Option<String>,
    alg: String,
    bits: Option<usize>,
    json: bool,
) -> Result<()> {
    let body = json!({ "type": kind, "alg": alg, "bits": bits });
    let out = c.call(Method::POST, &format!("/v1/accounts/{}/keygen", encode(name)), Some(&body)).await?;
    if json {
        return print_json(&out);
    }
    println!(
        "{} key pair made for {name}: staged as pending version {} of {}; its private key is non-exportable",
        cell(&out["alg"]),
        cell(&out["pending_version"]),
        cell(&out["path"])
    );
    println!("\npublic key (PEM):\n{}", cell(&out["public_key_pem"]).trim_end());
    println!("\npublic key (one line, for forms that take the base64 body only):\n{}", cell(&out["public_key"]));
    println!("\nnext: {}", cell(&out["next"]));
    Ok(())
}
