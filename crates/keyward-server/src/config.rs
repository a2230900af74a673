//! Settings the running server consults, gathered in one place so every
//! service reads the same values: trusted proxies, the failed-auth
//! throttle, token lifetime, upstream rules, audit sinks and alert channels.

use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where this server's unseal key file is (or would be, after a
    /// migration to the key-file seal); none for `--dev`.
    pub unseal_key_file: Option<PathBuf>,
    /// The PKCS#11 library this server loads (`--pkcs11-lib`): used instead
    /// of the one the seal record names, and the only one a seal migration
    /// may name (loading a library runs its code in keyward).
    pub pkcs11_lib: Option<PathBuf>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Failed-authentication throttle.
    pub throttle: ThrottleConfig,
    /// Longest lifetime of a short-lived token.
    pub token_max_ttl: Duration,
    /// Upstream hosts allowed besides each exchange's own (tests, private gateways).
    pub allow_upstream: Vec<String>,
    /// How long an exchange may take to answer before the proxy gives up (504).
    pub upstream_timeout: Duration,
    /// Audit sinks besides the database.
    pub sinks: SinkConfig,
    /// Alert rules and channels.
    pub alerts: AlertConfig,
    /// At unseal, re-seal a key ledger that fails its check over the rows
    /// as they are, instead of refusing every key (after an operator has
    /// looked at what changed; see the threat model).
    pub reseal_key_ledger: bool,
    /// Maximum age of keyward's own keys that have none of their own.
    pub key_max_age: Option<Duration>,
    /// M-of-N approvals.
    pub approvals: ApprovalConfig,
    /// keyward's egress addresses as exchanges see them (`account check`
    /// compares them with a key's trusted addresses); empty: the local
    /// address of the route to the exchange.
    pub egress_ips: Vec<std::net::IpAddr>,
    /// How often each exchange account's key is checked (`account check`).
    pub account_check_every: Duration,
    /// Audit retention: entries older than `retain` are archived to `dir`
    /// and pruned from the database, every `every`.
    pub audit_retention: Option<AuditRetention>,
}

/// `--audit-retain`, `--audit-archive-dir`.
#[derive(Debug, Clone)]
pub struct AuditRetention {
    /// How long entries stay in the database.
    pub retain: Duration,
    /// Where archives go.
    pub dir: std::path::PathBuf,
    /// How often the schedule looks.
    pub every: Duration,
}

/// How approvals run.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalConfig {
    /// M: the approvals a gated change needs (0: changes never wait).
    pub required: u32,
    /// How long a request waits for them.
    pub ttl: Duration,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self { required: 2, ttl: Duration::from_secs(24 * 3600) }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            unseal_key_file: None,
            pkcs11_lib: None,
            trusted_proxies: Vec::new(),
            throttle: ThrottleConfig::default(),
            token_max_ttl: Duration::from_secs(15 * 60),
            allow_upstream: Vec::new(),
            upstream_timeout: Duration::from_secs(30),
            sinks: SinkConfig::default(),
            alerts: AlertConfig::default(),
            reseal_key_ledger: false,
            key_max_age: None,
            approvals: ApprovalConfig::default(),
            egress_ips: Vec::new(),
            account_check_every: Duration::from_secs(24 * 3600),
            audit_retention: None,
        }
    }
}

/// Throttle of failed authentications per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` after which answers are delayed.
    pub slow_after: u32,
    /// Failures within `window` after which the address is refused.
    pub block_after: u32,
    /// Counting window.
    pub window: Duration,
    /// How long a refused address stays refused.
    pub block_for: Duration,
    /// Longest delay added to a failed answer.
    pub max_delay: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            slow_after: 20,
            block_after: 100,
            window: Duration::from_secs(60),
            block_for: Duration::from_secs(300),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// Where audit entries go besides the database.
#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// JSON-lines file.
    pub file: Option<PathBuf>,
    /// Rotate the file past this many bytes (keeps 5 old files); 0 means 100 MiB.
    pub file_max_bytes: u64,
    /// Also print entries on standard output.
    pub stdout: bool,
    /// Webhook URLs.
    pub webhooks: Vec<String>,
}

/// Alert rules and channels.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Generic JSON webhooks.
    pub webhooks: Vec<String>,
    /// Slack-compatible incoming webhooks.
    pub slack: Vec<String>,
    /// Telegram Bot API `sendMessage` URLs (`https://api.telegram.org/bot<token>/sendMessage`).
    pub telegram: Vec<String>,
    /// Telegram chat id.
    pub telegram_chat: Option<String>,
    /// One alert per rule and subject within this window.
    pub dedupe: Duration,
    /// Denials within `burst_window` that make a burst.
    pub burst_denials: usize,
    /// The burst window.
    pub burst_window: Duration,
    /// How often expiry and rotation dates are checked.
    pub check_every: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            slack: Vec::new(),
            telegram: Vec::new(),
            telegram_chat: None,
            dedupe: Duration::from_secs(300),
            burst_denials: 10,
            burst_window: Duration::from_secs(60),
            check_every: Duration::from_secs(60),
        }
    }
}
