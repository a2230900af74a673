//! `keyward operator`: init (local, on the data directory), unseal, seal, status.

use crate::client::{ApiFailure, Client, Connection};
use crate::cmd::{cell, print_json};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keyward_core::clock::{Clock, SystemClock};
use keyward_core::custody;
use keyward_server::init::{self, SealChoice};
use reqwest::Method;
use serde_json::json;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Initialise a data directory with a new root key (local only, never over the network).
    ///
    /// With --shares/--threshold the root key is split into Shamir shares,
    /// printed once; the server then starts sealed and needs `operator
    /// unseal`. With --unseal-key-file it is written to that file (mode 0600).
    /// With --pkcs11 LIB --slot N --pin-env VAR --key-label L it is wrapped
    /// by a key that never leaves the token, and the server unseals itself
    /// through the HSM at every start (the PIN from $VAR). Either way a
    /// bootstrap admin key is printed once.
    Init(InitArgs),
    /// Unseal a running server with Shamir shares (prompted, or one per line on stdin).
    Unseal(UnsealArgs),
    /// Seal a running server: every key is wiped from its memory (needs sys:admin).
    Seal,
    /// Add a keyring term: new secret versions are encrypted under it, every
    /// older term still decrypts (needs sys:admin). `operator status` shows
    /// each term and how many secret versions it still encrypts.
    ///
    /// Example:
    ///   keyward operator rotate
    #[command(verbatim_doc_comment)]
    Rotate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every secret version written under an older keyring term
    /// with the active one, while the server keeps serving (needs
    /// sys:admin). Works in batches, each durable: stopped at any point, run
    /// it again and it goes on from where it was. With --retire-term N it
    /// then retires term N, refused while anything still depends on it; a
    /// retired term is no longer derived, so nothing can be read with it.
    ///
    /// Examples:
    ///   keyward operator rotate && keyward operator rewrap
    ///   keyward operator rewrap --retire-term 1
    #[command(verbatim_doc_comment)]
    Rewrap {
        /// Versions per request.
        #[arg(long, default_value_t = 200)]
        batch: u32,
        /// Retire this term once nothing is encrypted under it.
        #[arg(long, value_name = "N")]
        retire_term: Option<u32>,
        /// Print JSON (the last answer) instead of a progress bar.
        #[arg(long)]
        json: bool,
    },
    /// Make new unseal shares from a threshold of the old ones, while the
    /// server stays unsealed and serving (needs sys:admin). The old shares
    /// are asked for (hidden), or read one per line from stdin; at their
    /// threshold the new shares are printed once, and the old ones no
    /// longer unseal. Hand each new share to its custodian.
    ///
    /// Example:
    ///   keyward operator rekey --shares 5 --threshold 3
    #[command(verbatim_doc_comment)]
    Rekey {
        /// How many new shares to make.
        #[arg(long)]
        shares: u8,
        /// How many of them unseal.
        #[arg(long)]
        threshold: u8,
        /// Encrypt each new share to one custodian's age public key (age1…,
        /// one per share, comma-separated); the server answers only those.
        #[arg(long, value_delimiter = ',')]
        share_recipients: Vec<String>,
        /// The old shares on stdin are age-encrypted: open them with this identity file.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Print JSON (the new shares included).
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent backup of the data to FILE while the server keeps
    /// serving (needs sys:admin). The file is encrypted and integrity-checked
    /// under a key derived from the root key; its header (readable with
    /// `head -7 FILE`) gives the date and the keyring term. Secrets stay the
    /// ciphertext they are stored as, non-exportable fields included. FILE
    /// is created with mode 0600 and never overwritten.
    ///
    /// Example:
    ///   keyward operator backup /backups/keyward-$(date +%F).kwbackup
    #[command(verbatim_doc_comment)]
    Backup {
        /// Where to write the backup (must not exist).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup made by `operator backup` of this same data (needs
    /// sys:admin). The file is checked first: a foreign, truncated or
    /// tampered file is refused and nothing changes. Then its date is shown
    /// with every access key that has been revoked or marked compromised
    /// since: restoring would bring those back. Confirm, or pass --yes.
    /// Secrets, access keys, namespaces, order usage and the key ledger
    /// become the backup's; the seal (shares, key file) and the audit log
    /// stay as they are, and the restore is recorded on the log.
    ///
    /// Example:
    ///   keyward operator restore /backups/keyward-2026-12-01.kwbackup
    #[command(verbatim_doc_comment)]
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Restore without asking (scripts).
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep the root key another way while the server keeps serving (needs
    /// sys:admin): in the server's unseal key file, wrapped by a key on a
    /// PKCS#11 token, or split into Shamir shares. The root key itself does
    /// not change, so nothing is re-encrypted. The new seal is made and (for
    /// an HSM) opened once on the token before the switch; a failure leaves
    /// the old one in force. Moving away from a key file zeroes and removes
    /// it. The server only loads the PKCS#11 library it was started with
    /// (--pkcs11-lib) and reads the PIN from its own environment, as it
    /// will at every start.
    ///
    /// An admin key is not enough: you prove you can unseal with the seal in
    /// force. Key file: its text (the file the server reports, or
    /// --from-key-file). HSM: the token's PIN (from the seal's PIN variable,
    /// or --from-pin-env). Shares: a threshold of them, asked for or on stdin.
    ///
    /// Examples:
    ///   keyward operator migrate-seal --to pkcs11 --pkcs11 /usr/lib/softhsm/libsofthsm2.so \
    ///       --slot 1234 --pin-env KEYWARD_HSM_PIN --key-label keyward-root
    ///   keyward operator migrate-seal --to keyfile
    ///   keyward operator migrate-seal --to shamir --shares 5 --threshold 3
    #[command(verbatim_doc_comment)]
    MigrateSeal(crate::cmd::seal::MigrateSealArgs),
    /// Show whether the server is sealed, and more with a sys:admin key
    /// (the keyring terms and what each still encrypts).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `operator init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory to initialise.
    #[arg(long, env = "KEYWARD_DATA", default_value = "./keyward-data")]
    data: PathBuf,
    /// Initialise a PostgreSQL database instead (then start each node with the same URL).
    #[command(flatten)]
    database: crate::cmd::database::DatabaseArgs,
    /// Number of Shamir shares to print.
    #[arg(long, requires = "threshold", conflicts_with = "unseal_key_file")]
    shares: Option<u8>,
    /// Shares needed to unseal (at least 2).
    #[arg(long, requires = "shares")]
    threshold: Option<u8>,
    /// Keep the root key in this file instead (mode 0600; keep it off the data's backups).
    #[arg(long)]
    unseal_key_file: Option<PathBuf>,
    /// Encrypt each share to one custodian's age public key (age1…, one per
    /// share, comma-separated): the shares are printed only encrypted.
    #[arg(long, value_delimiter = ',', requires = "shares")]
    share_recipients: Vec<String>,
    #[command(flatten)]
    hsm: crate::cmd::seal::Pkcs11Args,
    /// Print JSON (shares and key included) instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `operator unseal`.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Unseal a key-file server that was sealed, with its unseal key file.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Forget the shares given so far.
    #[arg(long)]
    reset: bool,
    /// The shares on stdin are age-encrypted (from --share-recipients): open
    /// them with this age identity file first.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// HSM seal: send the token's PIN from this environment variable (needed
    /// after an operator sealed the server); without it the server retries
    /// the HSM with the PIN in its own environment.
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
}

/// Runs an operator command.
pub async fn run(cmd: OperatorCommand, conn: &Connection) -> Result<()> {
    match cmd {
        OperatorCommand::Init(a) => init_local(a).await,
        OperatorCommand::Unseal(a) => unseal(a, conn).await,
        OperatorCommand::Seal => {
            let c = Client::new(conn)?;
            c.call(Method::POST, "/v1/sys/seal", None).await?;
            println!("sealed: every key was wiped from the server's memory");
            Ok(())
        }
        OperatorCommand::Status { json } => status(conn, json).await,
        OperatorCommand::MigrateSeal(a) => crate::cmd::seal::migrate_seal(a, conn).await,
        OperatorCommand::Backup { file, json } => crate::cmd::backup::backup(conn, &file, json).await,
        OperatorCommand::Restore { file, yes, json } => crate::cmd::backup::restore(conn, &file, yes, json).await,
        OperatorCommand::Rekey { shares, threshold, share_recipients, identity, json } => {
            rekey(conn, (shares, threshold), &share_recipients, identity.as_deref(), json).await
        }
        OperatorCommand::Rewrap { batch, retire_term, json } => rewrap(conn, batch, retire_term, json).await,
        OperatorCommand::Rotate { json } => {
            let c = Client::new(conn)?;
            let out = c.call(Method::POST, "/v1/sys/rotate", None).await?;
            if json {
                return print_json(&out);
            }
            println!(
                "keyring term {} is active: new writes use it; term {} and older still decrypt",
                cell(&out["active_term"]),
                cell(&out["previous_term"])
            );
            print_terms(&out["terms"]);
            Ok(())
        }
    }
}

async fn init_local(a: InitArgs) -> Result<()> {
    let hsm = a.hsm.token()?;
    let choice = match (a.shares, a.threshold, &a.unseal_key_file, hsm) {
        (Some(shares), Some(threshold), None, None) => SealChoice::Shamir { shares, threshold },
        (None, None, Some(f), None) => SealChoice::KeyFile(f.clone()),
        (None, None, None, Some((token, pin_env))) => {
            let pin = keyward_server::hsm::pin_from_env(&pin_env)?;
            SealChoice::Pkcs11 { token, pin_env, pin }
        }
        (None, None, None, None) => SealChoice::KeyFile(init::default_key_file(&a.data)),
        _ => bail!("give one of --shares N --threshold T, --unseal-key-file FILE, or --pkcs11 LIB …"),
    };
    if let SealChoice::Shamir { shares, threshold } = &choice {
        if *threshold < 2 || shares < threshold {
            bail!(
                "need 2 <= threshold <= shares (got --shares {shares} --threshold {threshold}); for a single key use --unseal-key-file"
            );
        }
    }
    let url = a.database.url(&Default::default())?;
    let store = keyward_server::open_store(url.as_ref(), &a.data).await?;
    let data = url.as_ref().map_or_else(|| a.data.display().to_string(), |u| u.redacted());
    let recipients = custody::parse_recipients(&a.share_recipients)?;
    if !recipients.is_empty() && Some(recipients.len()) != a.shares.map(usize::from) {
        bail!(
            "give one --share-recipients key per share ({} for --shares {})",
            recipients.len(),
            a.shares.unwrap_or(0)
        );
    }
    let out = init::initialize(store.as_ref(), &choice, SystemClock.now_ms()).await?;
    let mut shares: Vec<Zeroizing<String>> = out.shares.iter().map(|s| s.encode()).collect();
    if !recipients.is_empty() {
        shares = shares
            .iter()
            .zip(&recipients)
            .map(|(s, r)| custody::seal_share(s, r).map(Zeroizing::new))
            .collect::<Result<_, _>>()?;
    }
    if a.json {
        let v = json!({
            "data": data,
            "seal_type": match &choice { SealChoice::Shamir { .. } => "shamir", SealChoice::Pkcs11 { .. } => "pkcs11", _ => "keyfile" },
            "shares": shares.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "threshold": a.threshold,
            "unseal_key_file": a.unseal_key_file.as_ref().map(|f| f.display().to_string()),
            "admin_key_id": out.admin_key_id,
            "admin_key": out.admin_key.expose(),
        });
        return print_json(&v);
    }
    println!("keyward initialised {data}");
    match &choice {
        SealChoice::Shamir { shares: n, threshold } => {
            println!(
                "\nUnseal shares ({threshold} of {n} needed). They are shown only now: give each to a different person.\n"
            );
            for (i, s) in shares.iter().enumerate() {
                match a.share_recipients.get(i) {
                    Some(r) => println!("  Share {} (for {r}):\n{}", i + 1, s.as_str()),
                    None => println!("  Share {}: {}", i + 1, s.as_str()),
                }
            }
            let how = if a.share_recipients.is_empty() { "" } else { " (each custodian adds --identity FILE)" };
            println!("\nThe server starts sealed: `keyward operator unseal` with {threshold} shares{how}.");
        }
        SealChoice::KeyFile(f) => println!("Unseal key file: {} (mode 0600)", f.display()),
        SealChoice::Pkcs11 { token, pin_env, .. } => println!(
            "The root key is wrapped by the key {:?} on the token in slot {}, which never leaves it.\n\
             The server unseals itself through {} at every start, with the PIN from ${pin_env}.",
            token.key_label,
            token.slot,
            token.lib.display()
        ),
        SealChoice::Memory => {}
    }
    println!(
        "\nBootstrap admin key (shown once; it holds every scope):\n\n    export KEYWARD_TOKEN={}\n",
        out.admin_key.expose()
    );
    Ok(())
}

async fn unseal(a: UnsealArgs, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    if a.reset {
        c.call_anonymous(Method::POST, "/v1/sys/unseal", Some(&json!({"reset": true}))).await?;
        println!("unseal progress reset");
        return Ok(());
    }
    if let Some(f) = a.key_file {
        let text = Zeroizing::new(std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?);
        c.call_anonymous(Method::POST, "/v1/sys/unseal", Some(&json!({"key": text.trim()}))).await?;
        println!("unsealed");
        return Ok(());
    }
    let health = c.call_anonymous(Method::GET, "/v1/sys/health", None).await?;
    if health["sealed"] == json!(false) {
        println!("already unsealed");
        return Ok(());
    }
    if health["seal_type"] == json!("pkcs11") {
        return crate::cmd::seal::unseal_hsm(&c, a.pin_env.as_deref()).await;
    }
    if let Some(id) = &a.identity {
        for share in open_shares(id)? {
            let st = c.call_anonymous(Method::POST, "/v1/sys/unseal", Some(&json!({"share": share.as_str()}))).await?;
            if st["sealed"] == json!(false) {
                println!("unsealed");
                return Ok(());
            }
            eprintln!("share accepted: {} of {} given", st["progress"], st["threshold"]);
        }
        bail!("still sealed: more shares are needed");
    }
    let interactive = std::io::stdin().is_terminal();
    let mut lines = std::io::stdin().lock().lines();
    let mut failed = false;
    loop {
        let share = if interactive {
            let st = c.call_anonymous(Method::GET, "/v1/sys/health", None).await?;
            Zeroizing::new(rpassword::prompt_password(format!(
                "Share ({} of {} given so far; input hidden): ",
                st["progress"], st["threshold"]
            ))?)
        } else {
            match lines.next() {
                Some(l) => Zeroizing::new(l?),
                None => break,
            }
        };
        if share.trim().is_empty() {
            continue;
        }
        match c.call_anonymous(Method::POST, "/v1/sys/unseal", Some(&json!({"share": share.trim()}))).await {
            Ok(st) if st["sealed"] == json!(false) => {
                println!("unsealed");
                return Ok(());
            }
            Ok(st) => eprintln!("share accepted: {} of {} given", st["progress"], st["threshold"]),
            Err(e) if e.downcast_ref::<ApiFailure>().is_some() => {
                eprintln!("share refused: {e}");
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    if failed {
        bail!("still sealed: some shares were refused (see above)");
    }
    bail!("still sealed: not enough shares were given")
}

async fn status(conn: &Connection, as_json: bool) -> Result<()> {
    let c = Client::new(conn)?;
    let mut st = c.call_anonymous(Method::GET, "/v1/sys/health", None).await?;
    if st["sealed"] == json!(false)
        && let Ok(full) = c.call(Method::GET, "/v1/sys/status", None).await
    {
        st = full;
    }
    if as_json {
        return print_json(&st);
    }
    if let Some(o) = st.as_object() {
        for (k, v) in o.iter().filter(|(k, _)| *k != "terms") {
            println!("{k:<16} {}", cell(v));
        }
    }
    print_terms(&st["terms"]);
    Ok(())
}

/// The keyring terms, a line each: what each still encrypts.
fn print_terms(terms: &serde_json::Value) {
    let Some(terms) = terms.as_array() else { return };
    println!("{:<6} {:<8} secret versions", "term", "state");
    for t in terms {
        let state = match (t["active"] == json!(true), t["retired"] == json!(true)) {
            (true, _) => "active",
            (_, true) => "retired",
            _ => "older",
        };
        println!("{:<6} {:<8} {}", cell(&t["term"]), state, cell(&t["secret_versions"]));
    }
}

async fn rewrap(conn: &Connection, batch: u32, retire_term: Option<u32>, as_json: bool) -> Result<()> {
    if batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let c = Client::new(conn)?;
    let mut out = c.call(Method::POST, "/v1/sys/rewrap", Some(&json!({ "batch": 0 }))).await?;
    let total = out["remaining"].as_u64().unwrap_or(0);
    let bar = if as_json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} secret versions rewrapped ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut done = 0u64;
    while out["remaining"].as_u64().unwrap_or(0) > 0 {
        out = c.call(Method::POST, "/v1/sys/rewrap", Some(&json!({ "batch": batch }))).await?;
        let step = out["rewrapped"].as_u64().unwrap_or(0);
        done += step;
        bar.set_length(done + out["remaining"].as_u64().unwrap_or(0));
        bar.set_position(done);
        if step == 0 && out["changed_meanwhile"].as_u64().unwrap_or(0) == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    if let Some(term) = retire_term {
        out = c.call(Method::POST, "/v1/sys/rewrap", Some(&json!({ "batch": 0, "retire_term": term }))).await?;
    }
    if as_json {
        return print_json(&out);
    }
    println!(
        "{done} secret version(s) rewrapped under term {}; {} left under older terms",
        cell(&out["active_term"]),
        cell(&out["remaining"])
    );
    if let Some(term) = retire_term {
        println!("term {term} is retired: it is no longer derived");
    }
    print_terms(&out["terms"]);
    Ok(())
}

/// Every age-encrypted share on stdin, opened with the identity file.
/// Opens the age-encrypted shares on stdin with an identity file.
pub(crate) fn open_shares(identity: &std::path::Path) -> Result<Vec<Zeroizing<String>>> {
    let id = Zeroizing::new(
        std::fs::read_to_string(identity)
            .with_context(|| format!("reading the identity file {}", identity.display()))?,
    );
    let mut input = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).context("reading the shares from stdin")?;
    let blocks: Vec<&str> =
        input.split_inclusive("-----END AGE ENCRYPTED FILE-----").filter(|b| custody::is_sealed(b)).collect();
    if blocks.is_empty() {
        bail!("no age-encrypted share on stdin (-----BEGIN AGE ENCRYPTED FILE-----)");
    }
    Ok(blocks.iter().map(|b| custody::open_share(b, &id)).collect::<Result<_, _>>()?)
}

/// Reads `threshold` shares: asked for (hidden) on a terminal, else one per line on stdin.
pub(crate) fn read_shares(threshold: u64) -> Result<Vec<Zeroizing<String>>> {
    let mut shares = Vec::new();
    if std::io::stdin().is_terminal() {
        for i in 1..=threshold {
            shares.push(Zeroizing::new(rpassword::prompt_password(format!(
                "Current share {i} of {threshold} (input hidden): "
            ))?));
        }
    } else {
        for line in std::io::stdin().lock().lines() {
            let line = Zeroizing::new(line?);
            if !line.trim().is_empty() {
                shares.push(line);
            }
        }
    }
    Ok(shares)
}

async fn rekey(
    conn: &Connection,
    (shares, threshold): (u8, u8),
    recipients: &[String],
    identity: Option<&std::path::Path>,
    as_json: bool,
) -> Result<()> {
    let c = Client::new(conn)?;
    // Encrypted shares are opened before anything starts on the server.
    let mut opened = identity.map(open_shares).transpose()?.map(Vec::into_iter);
    let body = json!({"shares": shares, "threshold": threshold, "share_recipients": recipients});
    let started = c.call(Method::POST, "/v1/sys/rekey", Some(&body)).await?;
    let nonce = started["nonce"].as_str().unwrap_or_default().to_string();
    let old = started["old_threshold"].as_u64().unwrap_or(0);
    let interactive = std::io::stdin().is_terminal();
    let mut lines = std::io::stdin().lock().lines();
    let mut have = 0u64;
    loop {
        let next = if let Some(o) = opened.as_mut() {
            o.next()
        } else if interactive {
            Some(Zeroizing::new(rpassword::prompt_password(format!(
                "Old share ({have} of {old} given so far; input hidden): "
            ))?))
        } else {
            lines.next().transpose()?.map(Zeroizing::new)
        };
        let Some(share) = next else {
            let _ = c.call(Method::DELETE, "/v1/sys/rekey", None).await;
            anyhow::bail!("not enough old shares: {have} of {old} given; nothing changed");
        };
        if share.trim().is_empty() {
            continue;
        }
        let body = json!({"nonce": nonce, "share": share.trim()});
        let out = c.call(Method::POST, "/v1/sys/rekey/update", Some(&body)).await?;
        if out["complete"] != json!(true) {
            have = out["progress"].as_u64().unwrap_or(have + 1);
            eprintln!("old share accepted: {have} of {old} given");
            continue;
        }
        if as_json {
            return print_json(&out);
        }
        println!(
            "rekeyed: the old shares no longer unseal. New shares (any {} unseal), shown once:",
            cell(&out["threshold"])
        );
        for (i, s) in out["shares"].as_array().into_iter().flatten().enumerate() {
            match recipients.get(i) {
                Some(r) => println!("  Share {} (for {r}):\n{}", i + 1, cell(s)),
                None => println!("  {}", cell(s)),
            }
        }
        return Ok(());
    }
}
