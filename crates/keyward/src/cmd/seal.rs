//! The HSM seal on the command line (`operator init --pkcs11 …`,
//! `operator unseal` of an HSM server) and `operator migrate-seal`.

use crate::client::{Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use keyward_server::hsm::{self, Token};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where an HSM keeps the root key wrapped: `--pkcs11 LIB --slot N --pin-env VAR --key-label L`.
#[derive(Debug, Clone, Args)]
pub struct Pkcs11Args {
    /// Seal the root key with a key on a PKCS#11 token: the library (absolute path,
    /// e.g. /usr/lib/softhsm/libsofthsm2.so). The key is made on the token if
    /// none has the label, sensitive and never extractable.
    #[arg(long, value_name = "LIB")]
    pub pkcs11: Option<PathBuf>,
    /// The token's slot id (`softhsm2-util --show-slots`, `pkcs11-tool -L`).
    #[arg(long, value_name = "N", requires = "pkcs11")]
    pub slot: Option<u64>,
    /// The environment variable holding the token's user PIN: read here and
    /// by the server at every start; the PIN itself is stored nowhere.
    #[arg(long, value_name = "VAR", requires = "pkcs11")]
    pub pin_env: Option<String>,
    /// The label of the wrapping key on the token.
    #[arg(long, value_name = "L", requires = "pkcs11")]
    pub key_label: Option<String>,
}

impl Pkcs11Args {
    /// The token and PIN variable, or `None` without `--pkcs11`.
    pub fn token(&self) -> Result<Option<(Token, String)>> {
        let Some(lib) = &self.pkcs11 else { return Ok(None) };
        let (Some(slot), Some(pin_env), Some(key_label)) = (self.slot, &self.pin_env, &self.key_label) else {
            bail!("--pkcs11 needs --slot N, --pin-env VAR and --key-label L");
        };
        if !hsm::valid_env_name(pin_env) {
            bail!("--pin-env takes the name of an environment variable (A-Z, 0-9, _), not the PIN");
        }
        if key_label.is_empty() || key_label.len() > 64 {
            bail!("--key-label is 1 to 64 characters");
        }
        let lib = std::path::absolute(lib)?;
        Ok(Some((Token { lib, slot, key_label: key_label.clone() }, pin_env.clone())))
    }
}

/// The seal `operator migrate-seal` moves to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SealTo {
    /// The server's unseal key file (its --unseal-key-file, or beside the data).
    Keyfile,
    /// A key on a PKCS#11 token (--pkcs11 LIB --slot N --pin-env VAR --key-label L).
    Pkcs11,
    /// Shamir shares (--shares N --threshold T [--share-recipients age1…,…]).
    Shamir,
}

/// Arguments of `operator migrate-seal`.
#[derive(Debug, Args)]
pub struct MigrateSealArgs {
    /// The seal to move the root key to.
    #[arg(long, value_enum)]
    to: SealTo,
    #[command(flatten)]
    pkcs11: Pkcs11Args,
    /// Shares to make (--to shamir).
    #[arg(long, requires = "threshold")]
    shares: Option<u8>,
    /// Shares needed to unseal (--to shamir).
    #[arg(long, requires = "shares")]
    threshold: Option<u8>,
    /// Encrypt each new share to one custodian's age public key (--to shamir).
    #[arg(long, value_delimiter = ',', requires = "shares")]
    share_recipients: Vec<String>,
    /// Proof of the seal in force by the root key's unseal key file [default
    /// for a key-file seal: the one the server reports, when readable here].
    /// Also accepted for other seals (a key file kept after moving to shares).
    #[arg(long, value_name = "FILE")]
    from_key_file: Option<PathBuf>,
    /// Proof of the HSM seal in force: the variable holding the token's PIN
    /// [default: the seal's own --pin-env].
    #[arg(long, value_name = "VAR")]
    from_pin_env: Option<String>,
    /// Proof of the Shamir seal in force: the current shares on stdin are
    /// age-encrypted; open them with this identity file. Without it they are
    /// asked for (hidden) or read one per line from stdin.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Print JSON (new shares included).
    #[arg(long)]
    json: bool,
}

/// `operator migrate-seal`.
pub async fn migrate_seal(a: MigrateSealArgs, conn: &Connection) -> Result<()> {
    let body = match a.to {
        SealTo::Keyfile => json!({"to": "keyfile"}),
        SealTo::Pkcs11 => {
            let Some((token, pin_env)) = a.pkcs11.token()? else {
                bail!("--to pkcs11 needs --pkcs11 LIB --slot N --pin-env VAR --key-label L");
            };
            json!({"to": "pkcs11", "lib": token.lib, "slot": token.slot, "key_label": token.key_label, "pin_env": pin_env})
        }
        SealTo::Shamir => {
            let (Some(shares), Some(threshold)) = (a.shares, a.threshold) else {
                bail!("--to shamir needs --shares N --threshold T");
            };
            json!({"to": "shamir", "shares": shares, "threshold": threshold, "share_recipients": a.share_recipients})
        }
    };
    let c = Client::new(conn)?;
    let status = c.call(Method::GET, "/v1/sys/status", None).await?;
    let mut body = body;
    body["current"] = current_proof(&a, &status)?;
    let out = c.call(Method::POST, "/v1/sys/migrate-seal", Some(&body)).await?;
    if a.json {
        return print_json(&out);
    }
    print_migrated(&out, &a.share_recipients);
    Ok(())
}

/// The proof that the operator can unseal with the seal in force.
fn current_proof(a: &MigrateSealArgs, status: &Value) -> Result<Value> {
    let kind = if a.from_key_file.is_some() { Some("keyfile") } else { status["seal_type"].as_str() };
    match kind {
        Some("keyfile") => {
            let Some(file) = a.from_key_file.clone().or_else(|| status["unseal_key_file"].as_str().map(PathBuf::from))
            else {
                bail!("give the current unseal key file with --from-key-file FILE");
            };
            let text = Zeroizing::new(std::fs::read_to_string(&file).with_context(|| {
                format!("reading the current unseal key file {} (or give it with --from-key-file FILE)", file.display())
            })?);
            Ok(json!({"key": text.trim()}))
        }
        Some("pkcs11") => {
            let var = a.from_pin_env.clone().or_else(|| status["hsm"]["pin_env"].as_str().map(String::from));
            let Some(var) = var else { bail!("give the variable holding the token's PIN with --from-pin-env VAR") };
            Ok(json!({"pin": hsm::pin_from_env(&var)?.as_str()}))
        }
        _ => {
            let threshold = status["threshold"].as_u64().unwrap_or(0);
            let shares = match &a.identity {
                Some(id) => crate::cmd::operator::open_shares(id)?,
                None => crate::cmd::operator::read_shares(threshold)?,
            };
            Ok(json!({"shares": shares.iter().map(|s| s.trim()).collect::<Vec<_>>()}))
        }
    }
}

fn print_migrated(out: &Value, recipients: &[String]) {
    let seal = &out["seal"];
    match out["seal_type"].as_str() {
        Some("pkcs11") => println!(
            "the root key is now sealed by the HSM: key {:?} on the token in slot {}; the server unseals itself through it at every start (PIN from ${})",
            cell(&seal["key_label"]),
            cell(&seal["slot"]),
            cell(&seal["pin_env"])
        ),
        Some("keyfile") => {
            println!("the root key is now in the unseal key file {} (mode 0600)", cell(&out["unseal_key_file"]));
        }
        _ => {
            println!(
                "the root key is now sealed by {} Shamir shares, {} needed. They are shown only now: give each to a different person.\n",
                cell(&seal["shares"]),
                cell(&seal["threshold"])
            );
            for (i, s) in out["shares"].as_array().into_iter().flatten().enumerate() {
                match recipients.get(i) {
                    Some(r) => println!("  Share {} (for {r}):\n{}", i + 1, cell(s)),
                    None => println!("  Share {}: {}", i + 1, cell(s)),
                }
            }
            println!();
        }
    }
    if let Some(f) = out["kept_key_file"].as_str() {
        println!(
            "the old unseal key file {f} is kept, so these shares are not the only way in until they are safe: destroy it (shred -u) once every custodian has theirs"
        );
    }
    if let Some(f) = out["removed_key_file"].as_str() {
        println!(
            "removed the old unseal key file {f} (zeroed first); any copy of it still opens this data: destroy it"
        );
    }
    if out["from"] == json!("pkcs11") {
        println!("the token's old wrapping key is no longer needed by this data; delete it once nothing else uses it");
    }
    if out["from"] == json!("shamir") {
        println!("the old shares no longer unseal this server, but they still rebuild the root key: destroy them");
    }
    if let Some(w) = out["warning"].as_str() {
        eprintln!("warning: {w}");
    }
}

/// `operator unseal` of a server sealed by an HSM: asks it to try the HSM
/// again, with the PIN from `pin_env` here when given (needed after an
/// operator sealed it), else with the PIN in the server's environment.
pub async fn unseal_hsm(c: &Client, pin_env: Option<&str>) -> Result<()> {
    let body = match pin_env {
        Some(var) => json!({"pin": hsm::pin_from_env(var)?.as_str()}),
        None => json!({"hsm": true}),
    };
    let st = c.call_anonymous(Method::POST, "/v1/sys/unseal", Some(&body)).await?;
    if st["sealed"] == json!(false) {
        println!("unsealed through the HSM");
        return Ok(());
    }
    bail!("still sealed: {}", cell(&st["seal_error"]))
}
