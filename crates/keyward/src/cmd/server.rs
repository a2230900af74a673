//! `keyward server`: flags, an optional TOML configuration file, and the
//! server itself. Flags override the file; the file overrides defaults.

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use keyward_core::duration;
use keyward_server::{
    AlertConfig, ConnectionLimits, RuntimeConfig, ServerOptions, SinkConfig, ThrottleConfig, run as serve,
};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Run the server.
///
/// With no flags: keeps its data in ./keyward-data (SQLite), creating it on
/// first start together with an unseal key file beside it
/// (./keyward-data.unseal.key), and prints a bootstrap admin key once.
/// Listens on 127.0.0.1:8300. Without TLS it refuses non-loopback addresses
/// unless --insecure-listen is given.
///
/// Every flag can also be set in a TOML file given with --config, with the
/// flag's name in snake_case (data, listen, trusted_proxies = ["10.0.0.0/8"],
/// token_max_ttl = "15m", [auth_throttle] slow_after = 20, …).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYWARD_CONFIG")]
    config: Option<PathBuf>,
    /// Run in memory, auto-unsealed, for trying things out. Nothing is kept.
    #[arg(long)]
    dev: bool,
    /// Data directory [default: ./keyward-data].
    #[arg(long, env = "KEYWARD_DATA")]
    data: Option<PathBuf>,
    #[command(flatten)]
    database: crate::cmd::database::DatabaseArgs,
    /// Unseal key file [default: the data directory's name + .unseal.key, beside it].
    #[arg(long, env = "KEYWARD_UNSEAL_KEY_FILE")]
    unseal_key_file: Option<PathBuf>,
    /// The PKCS#11 library to load (absolute path), instead of the one
    /// `operator init --pkcs11` recorded; also the only one `operator
    /// migrate-seal --to pkcs11` may name. The token's PIN is read from the
    /// environment variable the seal names (never from argv).
    #[arg(long, env = "KEYWARD_PKCS11_LIB", value_name = "LIB")]
    pkcs11_lib: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8300].
    #[arg(long, env = "KEYWARD_LISTEN")]
    listen: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS (rustls).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow a non-loopback address without TLS (e.g. behind a TLS-terminating proxy).
    #[arg(long)]
    insecure_listen: bool,
    /// A proxy whose X-Forwarded-For / Forwarded headers are believed (CIDR; repeat).
    /// The client is then the rightmost address not in this list.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
    /// An upstream host allowed besides each exchange's own hosts (repeat;
    /// for tests and private gateways; plain http is then allowed to it).
    #[arg(long = "allow-upstream")]
    allow_upstream: Vec<String>,
    /// Longest lifetime of a short-lived token [default: 15m].
    #[arg(long)]
    token_max_ttl: Option<String>,
    /// Maximum age of keyward's own access keys that have none of their own
    /// (key create --max-age), e.g. 90d: older keys are refused with
    /// key_expired; `keyward rotation status` lists them before [default: none].
    #[arg(long)]
    key_max_age: Option<String>,
    /// Also write audit entries and checkpoints to this JSON-lines file.
    #[arg(long)]
    audit_file: Option<PathBuf>,
    /// Rotate the audit file past this many bytes [default: 100 MiB; five old files kept].
    #[arg(long)]
    audit_file_max_bytes: Option<u64>,
    /// Also print audit entries on standard output.
    #[arg(long)]
    audit_stdout: bool,
    /// Also POST audit entries to this URL (repeat; batches, retried, never blocking).
    #[arg(long = "audit-webhook")]
    audit_webhooks: Vec<String>,
    /// Send alerts as JSON to this webhook (repeat).
    #[arg(long = "alert-webhook")]
    alert_webhooks: Vec<String>,
    /// Send alerts to this Slack-compatible incoming webhook (repeat).
    #[arg(long = "alert-slack")]
    alert_slack: Vec<String>,
    /// Send alerts with the Telegram Bot API: the sendMessage URL (repeat).
    #[arg(long = "alert-telegram")]
    alert_telegram: Vec<String>,
    /// The Telegram chat id alerts go to (group ids are negative).
    #[arg(long, allow_hyphen_values = true)]
    alert_telegram_chat: Option<String>,
    /// One alert per rule and subject within this window [default: 5m].
    #[arg(long)]
    alert_dedupe: Option<String>,
    /// Denials for one key or address within a minute that raise an alert [default: 10].
    #[arg(long)]
    alert_burst: Option<usize>,
    /// How often expiry and rotation dates are checked [default: 60s].
    #[arg(long)]
    alert_check_every: Option<String>,
    /// How long an exchange may take to answer the proxy before it answers 504 [default: 30s].
    #[arg(long)]
    upstream_timeout: Option<String>,
    /// Failed authentications per address (per minute window) before answers slow down [default: 20].
    #[arg(long)]
    auth_slow_after: Option<u32>,
    /// Failed authentications per address before it is refused for a while [default: 100].
    #[arg(long)]
    auth_block_after: Option<u32>,
    /// How long a refused address stays refused [default: 5m].
    #[arg(long)]
    auth_block_for: Option<String>,
    /// The counting window of failed authentications [default: 60s].
    #[arg(long)]
    auth_window: Option<String>,
    /// Also serve /metrics without a key on this address (loopback unless --insecure-listen).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Once, after the key ledger failed its check (the log names the keys):
    /// re-seal it over the rows as they are, revoking every key of the parts
    /// that did not hold (a new admin key is printed if an admin key was
    /// among them). Look at what changed first; see docs/threat-model.md.
    #[arg(long)]
    reseal_key_ledger: bool,
    /// Connections open at once, in total; kept below the file-descriptor limit [default: 4096].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Threads serving HTTP: each accepts connections and runs their
    /// requests start to end, so a request never changes threads
    /// [default: one per core]. SQLite only: with PostgreSQL (whose
    /// connections belong to the runtime that opened them) requests are
    /// served from the shared runtime.
    #[arg(long, value_name = "N")]
    http_threads: Option<usize>,
    /// How long, at most, a serving thread polls its connections before
    /// it sleeps, in microseconds; 0 never polls [default: 200]. Polling
    /// only starts while requests come close together and stops once the
    /// thread idles: it trades some CPU under light, steady load for the
    /// wake-up a sleeping (virtual) CPU would cost each request. A thread
    /// that served more than one request since it last woke (many clients
    /// at once) sleeps without polling. Serving threads only (SQLite).
    #[arg(long, value_name = "MICROSECONDS")]
    http_poll_us: Option<u64>,
    /// While the serving threads poll (see --http-poll-us), one more thread
    /// keeps another CPU from halting, yielding to anything runnable there:
    /// a client on the same machine (a bot beside keyward) is woken from a
    /// running CPU instead of a halted one. It moves off a serving thread's
    /// CPU, within the CPUs keyward may use. It spins only while the serving
    /// threads find idle time; `false` saves that CPU time (burstable cloud
    /// instances count it) at the cost of the client's wake-up [default: true].
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, hide_default_value = true)]
    http_keep_awake: bool,
    /// Connections open at once from one client address (IPv6: its /64) [default: 256].
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Time a client has to send a request's head (and finish a TLS handshake) [default: 10s].
    #[arg(long)]
    header_timeout: Option<String>,
    /// A connection with nothing sent either way for this long is closed;
    /// longer than --upstream-timeout [default: 75s].
    #[arg(long)]
    idle_timeout: Option<String>,
    /// Approvals a gated change needs (granting withdraw, transfer, export,
    /// admin or approve; withdrawal addresses and caps; upstreams;
    /// unfreezing), in force once that many keys hold the approve scope;
    /// 0 turns approvals off [default: 2].
    #[arg(long)]
    approvals: Option<u32>,
    /// How long a change waits for its approvals before it expires [default: 24h].
    #[arg(long)]
    approval_ttl: Option<String>,
    /// keyward's egress address as the exchanges see it (repeat; behind NAT,
    /// the public one): `account check` looks for it among an exchange
    /// key's trusted addresses [default: the local address of the route to
    /// the exchange].
    #[arg(long = "egress-ip")]
    egress_ips: Vec<std::net::IpAddr>,
    /// How often each exchange account's key is checked (account check),
    /// with a metric and an alert when it fails [default: 24h].
    #[arg(long)]
    account_check_every: Option<String>,
    /// Keep audit entries in the database this long (90d); older ones are
    /// archived to --audit-archive-dir (gzip JSON lines that verify on
    /// their own, up to the last signed checkpoint) and pruned, each hour.
    #[arg(long, requires = "audit_archive_dir")]
    audit_retain: Option<String>,
    /// Where --audit-retain writes archives (keyward-audit-FIRST-LAST.jsonl.gz).
    #[arg(long, requires = "audit_retain")]
    audit_archive_dir: Option<PathBuf>,
    /// How often the retention schedule looks [default: 1h].
    #[arg(long, hide = true)]
    audit_archive_every: Option<String>,
    /// Tests only: the clock is set through POST /v1/sys/test-clock.
    #[arg(long, hide = true)]
    test_clock: bool,
    /// Log filter (tracing env-filter syntax); logs go to stderr [default: info].
    #[arg(long, env = "KEYWARD_LOG")]
    log: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    unseal_key_file: Option<PathBuf>,
    pkcs11_lib: Option<PathBuf>,
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_listen: Option<bool>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    allow_upstream: Vec<String>,
    token_max_ttl: Option<String>,
    key_max_age: Option<String>,
    upstream_timeout: Option<String>,
    audit_file: Option<PathBuf>,
    audit_file_max_bytes: Option<u64>,
    audit_stdout: Option<bool>,
    #[serde(default)]
    audit_webhooks: Vec<String>,
    log: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    #[serde(default)]
    auth_throttle: ThrottleFile,
    #[serde(default)]
    storage: crate::cmd::database::StorageFile,
    approvals: Option<u32>,
    approval_ttl: Option<String>,
    #[serde(default)]
    egress_ips: Vec<std::net::IpAddr>,
    account_check_every: Option<String>,
    audit_retain: Option<String>,
    audit_archive_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleFile {
    slow_after: Option<u32>,
    block_after: Option<u32>,
    window: Option<String>,
    block_for: Option<String>,
    max_delay: Option<String>,
}

/// A duration flag; the error names the flag (`--auth-window: duration "0": …`).
fn secs(flag: &str, s: &str) -> Result<Duration> {
    match duration::parse_secs(s) {
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(keyward_core::CoreError::InvalidField(why)) => bail!("{flag}: {why}"),
        Err(e) => bail!("{flag}: {e}"),
    }
}

fn nets(list: &[String]) -> Result<Vec<IpNet>> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| format!("trusted proxy {s:?}: use CIDR notation, e.g. 10.0.0.0/8 or 2001:db8::/32"))
        })
        .collect()
}

/// Connection bounds from flags, then the file, then defaults.
fn connection_limits(a: &ServerArgs, file: &FileConfig) -> Result<ConnectionLimits> {
    let d = ConnectionLimits::default();
    let time = |flag: &Option<String>, file: &Option<String>, what: &str, default: Duration| -> Result<Duration> {
        match flag.as_ref().or(file.as_ref()) {
            Some(s) => secs(what, s),
            None => Ok(default),
        }
    };
    let limits = ConnectionLimits {
        header_read: time(&a.header_timeout, &file.header_timeout, "--header-timeout", d.header_read)?,
        idle: time(&a.idle_timeout, &file.idle_timeout, "--idle-timeout", d.idle)?,
        max_total: a.max_connections.or(file.max_connections).unwrap_or(d.max_total),
        max_per_address: a.max_connections_per_ip.or(file.max_connections_per_ip).unwrap_or(d.max_per_address),
    };
    if limits.max_total == 0 {
        bail!("--max-connections must be at least 1");
    }
    if limits.max_per_address == 0 {
        bail!("--max-connections-per-ip must be at least 1");
    }
    Ok(limits)
}

/// Logs go to stderr, filtered by `--log` (tracing env-filter syntax).
fn init_logging(log: Option<String>) -> Result<()> {
    let log = log.unwrap_or_else(|| "info".into());
    // PostgreSQL's notices ("relation … already exists, skipping" on every
    // start) are not keyward's news, unless asked for.
    let directives = if log.contains("sqlx") { log.clone() } else { format!("{log},sqlx::postgres::notice=warn") };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("--log {log:?} is not a log filter (e.g. info, or info,keyward_server=debug)"))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    Ok(())
}

/// Approvals, egress addresses and the account-check period, from flags, then the file, then defaults.
fn incident_settings(
    a: &ServerArgs,
    file: &FileConfig,
) -> Result<(keyward_server::ApprovalConfig, Vec<std::net::IpAddr>, Duration)> {
    let day = Duration::from_secs(24 * 3600);
    let time = |flag: &Option<String>, file: &Option<String>, what: &str| -> Result<Duration> {
        flag.as_ref().or(file.as_ref()).map(|s| secs(what, s)).transpose().map(|d| d.unwrap_or(day))
    };
    let approvals = keyward_server::ApprovalConfig {
        required: a.approvals.or(file.approvals).unwrap_or(2),
        ttl: time(&a.approval_ttl, &file.approval_ttl, "--approval-ttl")?,
    };
    let egress = if a.egress_ips.is_empty() { file.egress_ips.clone() } else { a.egress_ips.clone() };
    let check_every = time(&a.account_check_every, &file.account_check_every, "--account-check-every")?;
    Ok((approvals, egress, check_every))
}

/// `--audit-retain` and `--audit-archive-dir`, from the flags or the file (both or neither).
fn audit_retention(a: &ServerArgs, file: &FileConfig) -> Result<Option<keyward_server::AuditRetention>> {
    let retain = a.audit_retain.as_ref().or(file.audit_retain.as_ref());
    let dir = a.audit_archive_dir.as_ref().or(file.audit_archive_dir.as_ref());
    match (retain, dir) {
        (None, None) => Ok(None),
        (Some(r), Some(d)) => Ok(Some(keyward_server::AuditRetention {
            retain: secs("--audit-retain", r)?,
            dir: d.clone(),
            every: a
                .audit_archive_every
                .as_ref()
                .map(|e| secs("--audit-archive-every", e))
                .transpose()?
                .unwrap_or(Duration::from_secs(3600)),
        })),
        _ => bail!("--audit-retain and --audit-archive-dir go together"),
    }
}

/// Runs the server until SIGINT or SIGTERM.
/// The authentication throttle: flags over the config file over defaults.
fn throttle_config(a: &ServerArgs, file: &FileConfig) -> Result<ThrottleConfig> {
    let defaults = ThrottleConfig::default();
    let t = &file.auth_throttle;
    let pick = |flag: &Option<String>, file: &Option<String>, what: &str, default: Duration| -> Result<Duration> {
        match flag.as_ref().or(file.as_ref()) {
            Some(s) => secs(what, s),
            None => Ok(default),
        }
    };
    let throttle = ThrottleConfig {
        slow_after: a.auth_slow_after.or(t.slow_after).unwrap_or(defaults.slow_after),
        block_after: a.auth_block_after.or(t.block_after).unwrap_or(defaults.block_after),
        window: pick(&a.auth_window, &t.window, "--auth-window", defaults.window)?,
        block_for: pick(&a.auth_block_for, &t.block_for, "--auth-block-for", defaults.block_for)?,
        max_delay: match &t.max_delay {
            Some(s) => secs("[auth_throttle] max_delay", s)?,
            None => defaults.max_delay,
        },
    };
    if throttle.block_after < throttle.slow_after {
        bail!("auth block_after ({}) must be at least slow_after ({})", throttle.block_after, throttle.slow_after);
    }
    Ok(throttle)
}

pub async fn run(a: ServerArgs) -> Result<()> {
    let file: FileConfig = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let connections = connection_limits(&a, &file)?;
    let (approvals, egress_ips, account_check_every) = incident_settings(&a, &file)?;
    let audit_retention = audit_retention(&a, &file)?;
    let throttle = throttle_config(&a, &file)?;
    init_logging(a.log.or(file.log))?;

    let pick = |flag: &Option<String>, file: &Option<String>, what: &str, default: Duration| -> Result<Duration> {
        match flag.as_ref().or(file.as_ref()) {
            Some(s) => secs(what, s),
            None => Ok(default),
        }
    };
    if !a.alert_telegram.is_empty() && a.alert_telegram_chat.is_none() {
        bail!("--alert-telegram needs --alert-telegram-chat: the Bot API sends to one chat id");
    }
    let proxies = if a.trusted_proxies.is_empty() { file.trusted_proxies } else { a.trusted_proxies };
    let runtime = RuntimeConfig {
        trusted_proxies: nets(&proxies)?,
        throttle,
        token_max_ttl: pick(&a.token_max_ttl, &file.token_max_ttl, "--token-max-ttl", Duration::from_secs(900))?,
        allow_upstream: if a.allow_upstream.is_empty() { file.allow_upstream } else { a.allow_upstream },
        upstream_timeout: pick(
            &a.upstream_timeout,
            &file.upstream_timeout,
            "--upstream-timeout",
            Duration::from_secs(30),
        )?,
        alerts: AlertConfig {
            webhooks: a.alert_webhooks,
            slack: a.alert_slack,
            telegram: a.alert_telegram,
            telegram_chat: a.alert_telegram_chat,
            dedupe: pick(&a.alert_dedupe, &None, "--alert-dedupe", Duration::from_secs(300))?,
            burst_denials: a.alert_burst.unwrap_or(10),
            burst_window: Duration::from_secs(60),
            check_every: pick(&a.alert_check_every, &None, "--alert-check-every", Duration::from_secs(60))?,
        },
        sinks: SinkConfig {
            file: a.audit_file.or(file.audit_file),
            file_max_bytes: a.audit_file_max_bytes.or(file.audit_file_max_bytes).unwrap_or(0),
            stdout: a.audit_stdout || file.audit_stdout.unwrap_or(false),
            webhooks: if a.audit_webhooks.is_empty() { file.audit_webhooks } else { a.audit_webhooks },
        },
        reseal_key_ledger: a.reseal_key_ledger,
        pkcs11_lib: a.pkcs11_lib.or(file.pkcs11_lib),
        key_max_age: a
            .key_max_age
            .as_ref()
            .or(file.key_max_age.as_ref())
            .map(|s| secs("--key-max-age", s))
            .transpose()?,
        approvals,
        egress_ips,
        account_check_every,
        audit_retention,
        ..RuntimeConfig::default()
    };
    if connections.idle <= runtime.upstream_timeout {
        // A proxied request waiting on the exchange reads and writes nothing.
        bail!("--idle-timeout must be longer than --upstream-timeout");
    }
    let opts = ServerOptions {
        dev: a.dev,
        data_dir: a.data.or(file.data).unwrap_or_else(|| PathBuf::from("./keyward-data")),
        database_url: a.database.url(&file.storage)?,
        unseal_key_file: a.unseal_key_file.or(file.unseal_key_file),
        listen: a.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8300".into()),
        tls_cert: a.tls_cert.or(file.tls_cert),
        tls_key: a.tls_key.or(file.tls_key),
        insecure_listen: a.insecure_listen || file.insecure_listen.unwrap_or(false),
        runtime,
        test_clock: a.test_clock,
        connections,
        metrics_listen: a.metrics_listen,
        http_threads: a.http_threads.unwrap_or(0),
        http_poll: Duration::from_micros(a.http_poll_us.unwrap_or(200)),
        http_keep_awake: a.http_keep_awake,
    };
    serve(opts).await?;
    Ok(())
}
