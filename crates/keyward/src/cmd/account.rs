//! `keyward account`: exchange accounts as a whole: a key pair made inside
//! keyward (`keygen`), what the exchange's key may do (`check`), incident
//! response (`freeze`, `unfreeze`) and withdrawal controls (`allow-address`,
//! `remove-address`, `cap`), the dead-man timer (`dead-man`), and all of it
//! at a glance (`show`).

use crate::client::{Client, Connection};
use crate::cmd::{cell, encode, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

/// Exchange account commands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Make an exchange API key pair inside keyward (its private key never leaves).
    ///
    /// The private key is born here (OS CSPRNG) and stored as the pending version of
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
    /// Ask the exchange what its API key may do, against what keyward's keys need.
    ///
    /// Asks through the exchange's own key-information endpoint and
    /// compares with what keyward's bot keys on the account need. Each
    /// exchange-side setting broader than needed is a
    /// warning naming the setting as the exchange's API page names it
    /// ("Enable Withdrawals", …); so is a key usable from any address, one
    /// whose trusted addresses leave out keyward's, or one about to expire.
    /// The server runs the same check once a day per account
    /// (keyward_account_check_ok, the account_check alert).
    ///
    /// Exit code 1 when a warning is found or the check could not be made.
    /// Needs account:NAME:admin or sys:admin.
    ///
    /// Example:
    ///   keyward account check binance-main
    #[command(verbatim_doc_comment)]
    Check {
        /// The account name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Freeze an account: its bot keys disabled, nothing signed, orders cancelled on request.
    ///
    /// In one step every key with a scope on it (but operators' keys) is
    /// disabled at once and answers key_disabled,
    /// nothing is signed for it (account_frozen), and with --cancel-orders
    /// every open order is cancelled through the exchange's cancel-all
    /// calls. Audited, alerted, and answered with what was done and what
    /// failed. Never waits for approvals; unfreezing does.
    ///
    /// Needs account:NAME:admin or sys:admin.
    ///
    /// Example:
    ///   keyward account freeze binance-main --cancel-orders --reason "bot host breached"
    #[command(verbatim_doc_comment)]
    Freeze {
        /// The account name.
        name: String,
        /// Also cancel every open order on the exchange.
        #[arg(long)]
        cancel_orders: bool,
        /// Why (on the audit log and in the alert).
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unfreeze an account: signing resumes and each key the freeze
    /// disabled is enabled again. Waits for M approvals where approvals are
    /// in force (keyward approvals).
    Unfreeze {
        /// The account name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Allow withdrawals of ASSET to ADDRESS (waits for approvals where in force).
    ///
    /// Withdrawals go only to allowlisted destinations (anything else: withdraw_policy), matched on
    /// asset, address, network (when given here) and memo (a destination
    /// without one takes withdrawals without a memo only). Waits for M
    /// approvals where approvals are in force.
    ///
    /// ASSET and ADDRESS as the exchange's withdrawal request names them
    /// (Kraken: the withdrawal key's name as ADDRESS; OKX: the memo as --memo).
    ///
    /// Example:
    ///   keyward account allow-address binance-main BTC bc1q… --network BTC
    #[command(name = "allow-address", verbatim_doc_comment)]
    AllowAddress {
        /// The account name.
        name: String,
        /// The asset (BTC).
        asset: String,
        /// The destination address.
        address: String,
        /// The network; without it, any network the exchange takes.
        #[arg(long)]
        network: Option<String>,
        /// The memo or tag (XRP, EOS, …).
        #[arg(long)]
        memo: Option<String>,
    },
    /// Remove a withdrawal destination (at once).
    #[command(name = "remove-address")]
    RemoveAddress {
        /// The account name.
        name: String,
        /// The asset.
        asset: String,
        /// The address.
        address: String,
        /// The network it was allowed with.
        #[arg(long)]
        network: Option<String>,
        /// The memo it was allowed with.
        #[arg(long)]
        memo: Option<String>,
    },
    /// Cap what may be withdrawn of ASSET over any 24 hours (`none`: no cap).
    ///
    /// Lowering applies at once; raising or removing waits for M
    /// approvals where approvals are in force.
    ///
    /// Example:
    ///   keyward account cap binance-main BTC 0.5
    #[command(verbatim_doc_comment)]
    Cap {
        /// The account name.
        name: String,
        /// The asset.
        asset: String,
        /// The most per 24 hours, or none.
        amount: String,
    },
    /// Keep the exchange's cancel-on-disconnect timer armed while keyward runs.
    ///
    /// If keyward stops or is sealed, the exchange cancels the
    /// account's open orders by itself once TIMEOUT passes. `off` disarms.
    ///
    /// Timers: OKX cancel-all-after (10-120s), Kraken CancelAllOrdersAfter,
    /// Binance USD-M futures countdownCancelAll (per symbol with open
    /// orders), Gate spot and futures countdown_cancel_all, KuCoin HF
    /// dead-cancel-all. Bybit, Deribit, Bitget, Coinbase: none over REST.
    ///
    /// Example:
    ///   keyward account dead-man okx-main 60s
    #[command(name = "dead-man", verbatim_doc_comment)]
    DeadMan {
        /// The account name.
        name: String,
        /// The timeout (60s, 2m) or off.
        timeout: String,
    },
    /// An account's controls: frozen or not, withdrawal addresses and caps
    /// (with what was spent in the last 24 hours), dead-man timer.
    Show {
        /// The account name.
        name: String,
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
        AccountCommand::Check { name, json } => check(&c, &name, json).await,
        AccountCommand::Freeze { name, cancel_orders, reason, json } => {
            freeze(&c, &name, cancel_orders, reason, json).await
        }
        AccountCommand::Unfreeze { name, json } => unfreeze(&c, &name, json).await,
        AccountCommand::AllowAddress { name, asset, address, network, memo } => {
            let body = json!({"asset": asset, "address": address, "network": network, "memo": memo});
            let out = c.call(Method::POST, &format!("/v1/accounts/{}/addresses", encode(&name)), Some(&body)).await?;
            if !waiting(&out) {
                println!("{asset} withdrawals from {name} may go to {address}");
            }
            Ok(())
        }
        AccountCommand::RemoveAddress { name, asset, address, network, memo } => {
            let body = json!({"asset": asset, "address": address, "network": network, "memo": memo});
            c.call(Method::DELETE, &format!("/v1/accounts/{}/addresses", encode(&name)), Some(&body)).await?;
            println!("{asset} withdrawals from {name} may no longer go to {address}");
            Ok(())
        }
        AccountCommand::Cap { name, asset, amount } => {
            let cap = if amount.eq_ignore_ascii_case("none") { Value::Null } else { json!(amount) };
            let path = format!("/v1/accounts/{}/caps/{}", encode(&name), encode(&asset));
            let out = c.call(Method::PUT, &path, Some(&json!({"cap": cap}))).await?;
            if !waiting(&out) {
                match &out["cap_per_24h"] {
                    Value::Null => println!("{} withdrawals from {name} have no cap", cell(&out["asset"])),
                    cap => println!("{name} may withdraw {} {} per 24 hours", cell(cap), cell(&out["asset"])),
                }
            }
            Ok(())
        }
        AccountCommand::DeadMan { name, timeout } => dead_man(&c, &name, &timeout).await,
        AccountCommand::Show { name, json } => show(&c, &name, json).await,
    }
}

/// Prints a 202's approval request; true when the change waits.
fn waiting(out: &Value) -> bool {
    if out["state"] != "pending_approval" {
        return false;
    }
    println!("waiting for approvals: {} ({})", cell(&out["approval"]["id"]), cell(&out["approval"]["summary"]));
    println!("{}", cell(&out["message"]));
    true
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

fn yes_no(v: &Value) -> &'static str {
    match v {
        Value::Bool(true) => "yes",
        Value::Bool(false) => "no",
        _ => "not said",
    }
}

async fn check(c: &Client, name: &str, json: bool) -> Result<()> {
    let out = c.call(Method::POST, &format!("/v1/accounts/{}/check", encode(name)), None).await?;
    if json {
        print_json(&out)?;
    } else {
        println!("{} ({}), checked {}", name, cell(&out["exchange"]), cell(&out["checked_at"]));
        if let Some(call) = out["call"].as_object() {
            println!("asked: {} (HTTP {})", cell(&call["call"]), cell(&call["status"]));
        }
        if let Some(k) = out["key"].as_object() {
            println!("  withdrawals   {}", yes_no(&k["withdraw"]));
            println!("  transfers     {}", yes_no(&k["transfer"]));
            println!("  margin        {}", yes_no(&k["margin"]));
            println!("  futures       {}", yes_no(&k["futures"]));
            println!("  trading       {}", yes_no(&k["trade"]));
            let ips: Vec<String> = k["ips"].as_array().into_iter().flatten().map(cell).collect();
            println!(
                "  bound to IPs  {}{}",
                yes_no(&k["ip_restricted"]),
                if ips.is_empty() { String::new() } else { format!(" ({})", ips.join(", ")) }
            );
            println!("  expires       {}", cell(&k["expires_at"]));
        }
        let needs: Vec<String> = out["needs"].as_array().into_iter().flatten().map(cell).collect();
        println!(
            "keyward's keys need: {}",
            if needs.is_empty() { "nothing but reading".into() } else { needs.join(", ") }
        );
        let egress: Vec<String> = out["egress"].as_array().into_iter().flatten().map(cell).collect();
        if !egress.is_empty() {
            println!("keyward's egress address: {}", egress.join(", "));
        }
        for f in out["findings"].as_array().into_iter().flatten() {
            println!("{}: {}", cell(&f["severity"]), cell(&f["message"]));
        }
        if let Some(e) = out["error"].as_str() {
            println!("not checked: {e}");
        }
        println!("{}", if out["ok"] == true { "ok" } else { "needs attention" });
    }
    if out["ok"] != true {
        anyhow::bail!("the key of {name} needs attention (see above)");
    }
    Ok(())
}

async fn freeze(c: &Client, name: &str, cancel: bool, reason: Option<String>, json: bool) -> Result<()> {
    let body = json!({"cancel_orders": cancel, "reason": reason});
    let out = c.call(Method::POST, &format!("/v1/accounts/{}/freeze", encode(name)), Some(&body)).await?;
    if json {
        return print_json(&out);
    }
    let since = if out["already_frozen"] == true { "was already frozen, since" } else { "is frozen since" };
    println!("{name} {since} {}: nothing is signed for it", cell(&out["frozen_at"]));
    for k in out["keys_disabled"].as_array().into_iter().flatten() {
        println!("  disabled  {} ({})", cell(&k["id"]), cell(&k["name"]));
    }
    for k in out["keys_kept"].as_array().into_iter().flatten() {
        println!("  kept      {} ({}): {}", cell(&k["id"]), cell(&k["name"]), cell(&k["why"]));
    }
    if out["cancel_orders"] == true {
        for call in out["cancel_calls"].as_array().into_iter().flatten() {
            let status =
                if call["ok"] == true { "ok".to_string() } else { format!("FAILED: {}", cell(&call["error"])) };
            println!("  cancel    {} (HTTP {}) {status}", cell(&call["call"]), cell(&call["status"]));
        }
        let failed = out["cancel_failed"].as_u64().unwrap_or(0);
        if failed > 0 {
            println!("{failed} cancel call(s) failed: check the exchange and cancel what remains there");
        } else {
            println!("every cancel call succeeded");
        }
    }
    println!("unfreeze with: keyward account unfreeze {name}");
    Ok(())
}

async fn unfreeze(c: &Client, name: &str, json: bool) -> Result<()> {
    let out = c.call(Method::POST, &format!("/v1/accounts/{}/unfreeze", encode(name)), None).await?;
    if json {
        return print_json(&out);
    }
    if waiting(&out) {
        return Ok(());
    }
    println!("{name} is unfrozen");
    for k in out["keys_enabled"].as_array().into_iter().flatten() {
        println!("  enabled   {} ({})", cell(&k["id"]), cell(&k["name"]));
    }
    for k in out["keys_still_disabled"].as_array().into_iter().flatten() {
        println!("  disabled  {} ({}): still held by another freeze, or revoked", cell(&k["id"]), cell(&k["name"]));
    }
    Ok(())
}

/// Sets an account's dead-man timer (also `secret put --dead-man`).
pub(crate) async fn dead_man(c: &Client, name: &str, timeout: &str) -> Result<()> {
    let t = if timeout.eq_ignore_ascii_case("off") { Value::Null } else { json!(timeout) };
    let out =
        c.call(Method::PUT, &format!("/v1/accounts/{}/dead-man", encode(name)), Some(&json!({"timeout": t}))).await?;
    match out["timeout_s"].as_u64() {
        Some(s) => println!(
            "{name}: keyward keeps {} armed at {s}s; {}",
            cell(&out["timer"]),
            if out["armed"] == true { "armed now" } else { "arming it FAILED (see below)" }
        ),
        None => println!("{name}: the dead-man timer is off"),
    }
    for call in out["calls"].as_array().into_iter().flatten().filter(|c| c["ok"] != true) {
        println!("  {}: {}", cell(&call["call"]), cell(&call["error"]));
    }
    Ok(())
}

async fn show(c: &Client, name: &str, json: bool) -> Result<()> {
    let out = c.call(Method::GET, &format!("/v1/accounts/{}", encode(name)), None).await?;
    if json {
        return print_json(&out);
    }
    println!("{name} ({})", cell(&out["exchange"]));
    match out["frozen"].as_object() {
        Some(f) => println!("frozen since {} by {} ({})", cell(&f["since"]), cell(&f["by"]), cell(&f["reason"])),
        None => println!("not frozen"),
    }
    println!("withdrawal addresses:");
    let addresses = out["withdrawal_addresses"].as_array().cloned().unwrap_or_default();
    if addresses.is_empty() {
        println!("  none: every withdrawal is refused (keyward account allow-address)");
    }
    for a in &addresses {
        println!(
            "  {:<8} {}  network {}  memo {}",
            cell(&a["asset"]),
            cell(&a["address"]),
            cell(&a["network"]),
            cell(&a["memo"])
        );
    }
    println!("withdrawal caps per 24 hours:");
    for (asset, cap) in out["withdrawal_caps"].as_object().into_iter().flatten() {
        println!(
            "  {asset:<8} {} (spent {}, left {})",
            cell(&cap["per_24h"]),
            cell(&cap["spent_24h"]),
            cell(&cap["left"])
        );
    }
    let dm = &out["dead_man"];
    match dm["timeout_s"].as_u64() {
        Some(s) => println!(
            "dead-man timer: {s}s ({}); armed on this node: {}",
            cell(&dm["timer"]),
            yes_no(&dm["armed_on_this_node"])
        ),
        None => println!("dead-man timer: off"),
    }
    Ok(())
}
