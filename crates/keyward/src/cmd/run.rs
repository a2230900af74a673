//! `keyward run`: start a command with secrets in its environment only.
//!
//! The values come from the server over the API, live in zeroizing buffers
//! here, and reach the child only through `execve`'s environment: nothing is
//! written to disk, put in argv or logged. keyward stays the child's parent:
//! it forwards INT, TERM, HUP and QUIT, exits with the child's code (or 128 +
//! the signal that ended it), and with `--watch` restarts the child
//! gracefully (TERM, then KILL after `--grace`) when a secret it was given
//! gets a new version. keyward's own `KEYWARD_*` variables are removed from
//! the child's environment unless kept with `--keep-env`; `--token-ttl`
//! gives the child a short-lived token of its own instead.

use crate::client::{ApiFailure, Client, Connection};
use anyhow::{Context, Result, bail};
use clap::Args;
use keyward_core::duration;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use zeroize::Zeroizing;

/// Arguments of `keyward run`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  keyward run --env DB_PASSWORD=apps/db#password -- ./server
  keyward run --env-from apps/bot --prefix BOT_ --watch -- python bot.py
  keyward run --env API_TOKEN=apps/webhook#token --token-ttl 15m -- ./deploy.sh

An exchange account's secret fields are not handed out this way: a bot signs
through keyward's proxy and never holds them (see the README, \"Trading bots:
the signing proxy\").

Exit code: the command's, 128 + the signal that ended it, or 125 when keyward
itself could not start it.")]
pub struct RunArgs {
    /// Put one field of a secret in the command's environment: VAR=PATH#FIELD (repeat).
    #[arg(long = "env", value_name = "VAR=PATH#FIELD")]
    env: Vec<String>,
    /// Put every field of the secret PATH in the environment, each as
    /// PREFIX + the field's name in upper case (repeat).
    #[arg(long = "env-from", value_name = "PATH")]
    env_from: Vec<String>,
    /// The prefix of the variables --env-from makes.
    #[arg(long, default_value = "", requires = "env_from")]
    prefix: String,
    /// Restart the command gracefully when a secret it was given gets a new
    /// version (a rotation, say); checks every --watch-interval.
    #[arg(long)]
    watch: bool,
    /// How often --watch checks (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    watch_interval: String,
    /// How long the command has after SIGTERM, on a --watch restart, before SIGKILL.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    grace: String,
    /// Give the command a short-lived token in KEYWARD_TOKEN (and KEYWARD_ADDR),
    /// minted from your key, instead of no key at all (e.g. 15m).
    #[arg(long, value_name = "DURATION")]
    token_ttl: Option<String>,
    /// Keep this KEYWARD_* variable of keyward's environment for the command (repeat).
    #[arg(long = "keep-env", value_name = "VAR")]
    keep_env: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone)]
enum Source {
    Field { var: String, path: String, field: String },
    All { path: String },
}

fn millis(s: &str) -> Result<u64> {
    match s.strip_suffix("ms") {
        Some(n) => n.parse().with_context(|| format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)")),
        None => Ok(duration::parse_secs(s)? * 1000),
    }
}

fn valid_var(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The variable --env-from makes of a field: PREFIX + FIELD, upper case,
/// anything but letters and digits as `_`.
fn var_of(prefix: &str, field: &str) -> String {
    let mut v: String = prefix.to_string();
    v.extend(field.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        v.insert(0, '_');
    }
    v
}

fn sources(a: &RunArgs) -> Result<Vec<Source>> {
    // --env-from first: an explicit --env of the same variable is applied after it, and wins.
    let mut out: Vec<Source> = a.env_from.iter().map(|p| Source::All { path: p.trim_matches('/').into() }).collect();
    for spec in &a.env {
        let Some((var, rest)) = spec.split_once('=') else { bail!("--env {spec:?}: write VAR=PATH#FIELD") };
        let Some((path, field)) = rest.rsplit_once('#') else {
            bail!("--env {var}=…: name the field after a '#' (VAR=PATH#FIELD)")
        };
        if !valid_var(var) {
            bail!("--env {var}=…: {var:?} is not a variable name (letters, digits, _)");
        }
        if path.is_empty() || field.is_empty() {
            bail!("--env {var}=…: both a path and a field are needed (VAR=PATH#FIELD)");
        }
        out.push(Source::Field { var: var.into(), path: path.trim_matches('/').into(), field: field.into() });
    }
    if out.is_empty() {
        bail!("nothing to put in the environment: give --env VAR=PATH#FIELD or --env-from PATH");
    }
    Ok(out)
}

/// The values, and the version of each secret they came from.
struct Loaded {
    vars: Vec<(String, Zeroizing<String>)>,
    versions: BTreeMap<String, u64>,
}

fn refused_account(path: &str, fields: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "{path} is an exchange account: its secret fields ({}) are not handed to processes. A bot signs through \
         keyward's proxy instead and never holds them: point its exchange URL at $KEYWARD_ADDR/proxy/<account> with a \
         keyward key of its own (see the README, \"Trading bots: the signing proxy\"). If a tool truly needs the raw key, \
         `keyward secret get {path}` with account:<name>:export is the audited way",
        fields.join(", ")
    )
}

async fn load(c: &Client, sources: &[Source], prefix: &str) -> Result<Loaded> {
    let mut read: BTreeMap<String, Value> = BTreeMap::new();
    for path in sources.iter().map(|s| match s {
        Source::Field { path, .. } | Source::All { path } => path,
    }) {
        if !read.contains_key(path) {
            let v = c.call(Method::GET, &format!("/v1/secrets/{path}"), None).await.map_err(|e| {
                match e.downcast_ref::<ApiFailure>() {
                    Some(f) if f.code == "not_found" => anyhow::anyhow!("no secret at {path}"),
                    _ => e.context(format!("reading {path}")),
                }
            })?;
            read.insert(path.clone(), v);
        }
    }
    let mut vars: Vec<(String, Zeroizing<String>)> = Vec::new();
    let field_of = |path: &str, field: &str| -> Result<Zeroizing<String>> {
        let v = &read[path];
        if let Some(s) = v["data"][field].as_str() {
            return Ok(Zeroizing::new(s.to_string()));
        }
        let listed = |k: &str| v["metadata"][k].as_array().is_some_and(|a| a.iter().any(|f| f == field));
        if listed("withheld_fields") {
            return Err(refused_account(path, &[field.to_string()]));
        }
        if listed("non_exportable_fields") {
            bail!("{field} of {path} was made inside keyward and never leaves it")
        }
        bail!("{path} has no field {field:?}")
    };
    for s in sources {
        match s {
            Source::Field { var, path, field } => vars.push((var.clone(), field_of(path, field)?)),
            Source::All { path } => {
                let v = &read[path];
                let withheld: Vec<String> = v["metadata"]["withheld_fields"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                if !withheld.is_empty() {
                    return Err(refused_account(path, &withheld));
                }
                for field in v["data"].as_object().into_iter().flat_map(|m| m.keys()) {
                    vars.push((var_of(prefix, field), field_of(path, field)?));
                }
            }
        }
    }
    let versions = read.iter().map(|(p, v)| (p.clone(), v["version"].as_u64().unwrap_or(0))).collect();
    Ok(Loaded { vars, versions })
}

/// The secrets whose current version is no longer the one loaded.
async fn changed(c: &Client, versions: &BTreeMap<String, u64>) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (path, had) in versions {
        let h = c.call(Method::GET, &format!("/v1/secrets/{path}?history=true"), None).await?;
        let now = h["current_version"].as_u64().unwrap_or(*had);
        if now != *had {
            out.push((path.clone(), now));
        }
    }
    Ok(out)
}

fn spawn(a: &RunArgs, loaded: &Loaded, token: Option<&(Zeroizing<String>, String)>) -> Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KEYWARD_") && !a.keep_env.iter().any(|keep| *keep == k.to_string_lossy()) {
            cmd.env_remove(&k);
        }
    }
    if let Some((t, addr)) = token {
        cmd.env("KEYWARD_TOKEN", t.as_str()).env("KEYWARD_ADDR", addr);
    }
    for (k, v) in &loaded.vars {
        cmd.env(k, v.as_str());
    }
    // Its own process group: a signal reaches the whole tree (`sh -c`,
    // npm), and a terminal's Ctrl-C reaches keyward only, which passes it on once.
    cmd.process_group(0);
    cmd.kill_on_drop(false);
    cmd.spawn().with_context(|| format!("cannot start {}", a.command[0].to_string_lossy()))
}

async fn mint(c: &Client, ttl: &str, addr: &str) -> Result<(Zeroizing<String>, String)> {
    let out = c.call(Method::POST, "/v1/auth/token", Some(&json!({"ttl": ttl}))).await.context("minting a token")?;
    let t = out["token"].as_str().context("the server answered no token")?;
    Ok((Zeroizing::new(t.to_string()), addr.to_string()))
}

fn send(child: &tokio::process::Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // The child leads its own group: signal every process in it.
        let _ = kill(Pid::from_raw(-pid), sig);
    }
}

fn code_of(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(255),
        _ => 1,
    }
}

/// Stops a child for a restart: SIGTERM, then SIGKILL after `grace`.
async fn stop(child: &mut tokio::process::Child, grace: Duration) {
    send(child, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        send(child, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Runs `keyward run`; answers the exit code.
pub async fn run(a: RunArgs, conn: &Connection) -> Result<u8> {
    let sources = sources(&a)?;
    let interval = Duration::from_millis(millis(&a.watch_interval)?.max(100));
    let grace = Duration::from_millis(millis(&a.grace)?);
    let c = Client::new(conn)?;
    let mut loaded = load(&c, &sources, &a.prefix).await?;
    let mut token = match &a.token_ttl {
        Some(ttl) => Some(mint(&c, ttl, &conn.addr).await?),
        None => None,
    };
    let kinds = [
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
    ];
    // Listening before the child starts: a signal sent once it runs is
    // never the default action's (keyward dying, the child left behind).
    let mut streams = Vec::new();
    for (k, s) in kinds {
        streams.push((signal(k).context("cannot listen for signals")?, s));
    }
    let mut child = spawn(&a, &loaded, token.as_ref())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (mut stream, sig) in streams {
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut warned = false;
    loop {
        tokio::select! {
            status = child.wait() => return Ok(code_of(status.context("waiting for the command")?)),
            Some(sig) = rx.recv() => {
                send(&child, sig);
            }
            _ = tick.tick(), if a.watch => {
                // Bounded, so a hung server cannot hold back a signal for long.
                let polled = tokio::time::timeout(Duration::from_secs(10), changed(&c, &loaded.versions))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the server did not answer within 10 s")));
                let news = match polled {
                    Ok(n) => { warned = false; n }
                    Err(e) => {
                        // keyward being away for a moment is no reason to stop a bot.
                        if !warned { eprintln!("keyward run: cannot check for new versions ({e:#}); the command keeps running"); }
                        warned = true;
                        continue;
                    }
                };
                if news.is_empty() { continue; }
                let fresh = match load(&c, &sources, &a.prefix).await {
                    Ok(l) => l,
                    Err(e) => { eprintln!("keyward run: a new version could not be read ({e:#}); the command keeps the old one"); continue; }
                };
                for (path, v) in &news {
                    eprintln!("keyward run: {path} is at version {v}: restarting the command");
                }
                if let Some(ttl) = &a.token_ttl {
                    match mint(&c, ttl, &conn.addr).await {
                        Ok(t) => token = Some(t),
                        Err(e) => { eprintln!("keyward run: no new token ({e:#}); the command keeps the old values"); continue; }
                    }
                }
                stop(&mut child, grace).await;
                loaded = fresh;
                child = spawn(&a, &loaded, token.as_ref())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_from_fields() {
        assert_eq!(var_of("BOT_", "api-key"), "BOT_API_KEY");
        assert_eq!(var_of("", "2fa"), "_2FA");
        assert!(valid_var("DB_PASS") && valid_var("_x1") && !valid_var("1A") && !valid_var("A-B") && !valid_var(""));
    }

    #[test]
    fn durations() {
        assert_eq!(millis("250ms").unwrap(), 250);
        assert_eq!(millis("2s").unwrap(), 2000);
        assert!(millis("soon").is_err());
    }
}
