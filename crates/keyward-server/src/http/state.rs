//! Server state: the store, the clock, and the seal state with everything
//! that exists only while unsealed (keyring, key index).
//!
//! Sealing drops the unsealed state: the keyring's raw key bytes are zeroed
//! on drop, the key index goes with them.

use crate::error::{ApiError, ApiResult};
use crate::keys::KeyIndex;
use crate::throttle::{AuthThrottle, ThrottleConfig};
use ipnet::IpNet;
use keyward_core::clock::{Clock, ManualClock};
use keyward_core::keyring::{Keyring, RootKey};
use keyward_core::shamir::UnsealProgress;
use keyward_store::{SealRecord, Store};
use std::sync::{Arc, RwLock};

/// Everything that exists only while unsealed.
#[derive(Debug)]
pub struct Unsealed {
    /// Keys derived from the root key.
    pub keyring: Keyring,
    /// The access-key index.
    pub keys: RwLock<KeyIndex>,
    /// Decrypted exchange accounts, by name; dropped on any change to the
    /// account's secret and on seal.
    pub accounts: RwLock<std::collections::HashMap<String, Arc<crate::accounts::Account>>>,
    /// Decrypted current versions of secrets, by path; dropped on any change and on seal.
    pub secrets: RwLock<std::collections::HashMap<String, Arc<CachedSecret>>>,
    /// Counts secret changes, so a read that raced a write does not cache
    /// the version it read before the write (see `cache_secret`).
    pub secrets_changed: std::sync::atomic::AtomicU64,
}

/// A secret's current version, decrypted.
#[derive(Debug)]
pub struct CachedSecret {
    /// Its metadata when read.
    pub meta: keyward_store::SecretMeta,
    /// The version.
    pub version: u64,
    /// When that version was written (ms).
    pub version_created_ms: i64,
    /// Its fields.
    pub data: keyward_core::secret::SecretData,
}

impl Unsealed {
    /// A new unsealed state.
    pub fn new(keyring: Keyring, keys: KeyIndex) -> Self {
        Self {
            keyring,
            keys: RwLock::new(keys),
            accounts: RwLock::new(std::collections::HashMap::new()),
            secrets: RwLock::new(std::collections::HashMap::new()),
            secrets_changed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The change count to hand to [`Unsealed::cache_secret`]: read it before
    /// reading the store.
    pub fn secrets_generation(&self) -> u64 {
        self.secrets_changed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches a secret's current version read at change count `generation`,
    /// unless a change happened since (the read may predate it).
    pub fn cache_secret(&self, path: &str, generation: u64, secret: Arc<CachedSecret>) {
        if let Ok(mut c) = self.secrets.write()
            && self.secrets_changed.load(std::sync::atomic::Ordering::Acquire) == generation
        {
            c.insert(path.to_string(), secret);
        }
    }

    /// Drops a secret's cached version after a change.
    pub fn forget_secret(&self, path: &str) {
        if let Ok(mut c) = self.secrets.write() {
            self.secrets_changed.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            c.remove(path);
        }
    }

    /// Forgets a cached account (after its secret changed).
    pub fn forget_account(&self, name: &str) {
        if let Ok(mut m) = self.accounts.write() {
            m.remove(name);
        }
    }
}

/// Sealed (collecting shares) or unsealed.
#[derive(Debug)]
pub enum SealState {
    /// No key material in memory.
    Sealed {
        /// Shares collected so far (Shamir only).
        progress: Option<UnsealProgress>,
    },
    /// Keys in memory; requests served.
    Unsealed(Arc<Unsealed>),
}

/// Settings the running server consults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Unseal key file (keyfile seal), to tell the operator where it is.
    pub unseal_key_file: Option<std::path::PathBuf>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Failed-authentication throttle.
    pub throttle: ThrottleConfig,
    /// Longest lifetime of a short-lived token.
    pub token_max_ttl: std::time::Duration,
    /// Upstream hosts allowed besides each exchange's own (tests, private gateways).
    pub allow_upstream: Vec<String>,
    /// How long an exchange may take to answer before the proxy gives up (504).
    pub upstream_timeout: std::time::Duration,
    /// Audit sinks besides the database.
    pub sinks: crate::sinks::SinkConfig,
    /// Alert rules and channels.
    pub alerts: crate::alerts::AlertConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            unseal_key_file: None,
            trusted_proxies: Vec::new(),
            throttle: ThrottleConfig::default(),
            token_max_ttl: std::time::Duration::from_secs(15 * 60),
            allow_upstream: Vec::new(),
            upstream_timeout: std::time::Duration::from_secs(30),
            sinks: crate::sinks::SinkConfig::default(),
            alerts: crate::alerts::AlertConfig::default(),
        }
    }
}

/// Shared state of the HTTP server.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

/// The inside of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Seal state; read on every request, written on seal and unseal.
    pub seal: RwLock<SealState>,
    /// Serialises seal and unseal transitions.
    pub transition: tokio::sync::Mutex<()>,
    /// Settings.
    pub config: RuntimeConfig,
    /// Failed-authentication counts per address.
    pub throttle: AuthThrottle,
    /// The settable clock, when the server runs with `--test-clock`.
    pub test_clock: Option<Arc<ManualClock>>,
    /// Last nonce handed to a signer (strictly increasing).
    pub nonce: std::sync::atomic::AtomicU64,
    /// Pooled HTTP client for upstream exchanges: rustls, no redirects.
    pub upstream: reqwest::Client,
    /// Reference prices for order guards.
    pub references: crate::guards::ReferencePrices,
    /// Exchange request budgets per account.
    pub budgets: crate::upstream::Budgets,
    /// Exchange clock offsets per account.
    pub clocks: crate::upstream::Clocks,
    /// The audit queue and writer.
    pub auditor: Arc<crate::audit::Auditor>,
    /// Audit sinks (their drop counter feeds the metrics).
    pub sinks: Arc<crate::sinks::Sinks>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The node's secret writer (group commit).
    pub writer: crate::writes::SecretWriter,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State for a server that starts sealed.
    pub fn sealed(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: RuntimeConfig) -> Self {
        Self::build(store, clock, None, config)
    }

    /// State with a settable clock (`--test-clock`).
    pub fn with_test_clock(store: Arc<dyn Store>, clock: Arc<ManualClock>, config: RuntimeConfig) -> Self {
        Self::build(store, clock.clone(), Some(clock), config)
    }

    fn build(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        test_clock: Option<Arc<ManualClock>>,
        config: RuntimeConfig,
    ) -> Self {
        let upstream_timeout = config.upstream_timeout;
        let upstream = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(upstream_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        let alerts = Arc::new(crate::alerts::Alerts::start(config.alerts.clone(), upstream.clone()));
        let sinks = Arc::new(crate::sinks::Sinks::start(config.sinks.clone(), upstream.clone(), alerts));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let auditor = crate::audit::Auditor::start(store.clone(), clock.clone(), sinks.clone(), metrics.clone());
        let writer = crate::writes::SecretWriter::start(store.clone(), clock.clone());
        Self(Arc::new(Inner {
            store,
            clock,
            seal: RwLock::new(SealState::Sealed { progress: None }),
            transition: tokio::sync::Mutex::new(()),
            throttle: AuthThrottle::new(config.throttle),
            test_clock,
            config,
            nonce: std::sync::atomic::AtomicU64::new(0),
            upstream,
            sinks,
            metrics,
            references: crate::guards::ReferencePrices::default(),
            budgets: crate::upstream::Budgets::default(),
            clocks: crate::upstream::Clocks::default(),
            auditor,
            writer,
        }))
    }

    /// A nonce above every earlier one: microseconds since the epoch, or one
    /// more than the last when calls come faster.
    pub fn next_nonce(&self, now_ms: i64) -> u64 {
        let floor = (now_ms.max(0) as u64).saturating_mul(1000);
        let mut last = self.nonce.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self.nonce.compare_exchange_weak(
                last,
                next,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Raises an alert (expiry and rotation checks).
    pub fn auditor_alert(&self, rule: &'static str, subject: String, summary: String, now_ms: i64) {
        self.sinks
            .alerts
            .raise(crate::alerts::Alert { rule, subject, summary, details: serde_json::Value::Null }, now_ms);
    }

    /// Writes the last use of every key used since the last flush.
    pub async fn flush_last_used(&self) {
        let Ok(u) = self.unsealed() else { return };
        let dirty: Vec<_> = match u.keys.read() {
            Ok(idx) => {
                idx.all().into_iter().filter(|k| k.dirty.swap(false, std::sync::atomic::Ordering::Relaxed)).collect()
            }
            Err(_) => return,
        };
        for k in dirty {
            let ms = k.last_used_ms.load(std::sync::atomic::Ordering::Relaxed);
            let ip = k.last_used_ip.lock().ok().and_then(|g| *g).map(|i| i.to_string()).unwrap_or_default();
            if let Err(e) = self.store.touch_key(&k.id, ms, &ip).await {
                tracing::warn!(error = %e, "could not record last use");
                k.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The unsealed state, or 503 `sealed`.
    pub fn unsealed(&self) -> ApiResult<Arc<Unsealed>> {
        match &*self.seal.read().map_err(|_| ApiError::internal("seal lock poisoned"))? {
            SealState::Unsealed(u) => Ok(u.clone()),
            SealState::Sealed { .. } => Err(ApiError::sealed()),
        }
    }

    /// True while sealed.
    pub fn is_sealed(&self) -> bool {
        self.unsealed().is_err()
    }

    /// Unseals with a verified root key: builds the keyring and loads the key
    /// index. The caller has checked `root` against the seal record.
    pub async fn install_root(&self, root: RootKey, record: &SealRecord) -> ApiResult<()> {
        if let Ok(mut signer) = self.auditor.signer.write() {
            *signer = Some(keyward_core::audit::signing_key(&root));
        }
        let keyring = Keyring::new(root, record.active_term);
        let records = self.store.list_keys().await?;
        let keys = KeyIndex::load(&records, &keyring);
        let unsealed = Arc::new(Unsealed::new(keyring, keys));
        *self.seal.write().map_err(|_| ApiError::internal("seal lock poisoned"))? = SealState::Unsealed(unsealed);
        tracing::info!("unsealed");
        Ok(())
    }

    /// Seals: drops every key from memory.
    pub fn seal_now(&self) -> ApiResult<()> {
        if let Ok(mut signer) = self.auditor.signer.write() {
            *signer = None;
        }
        *self.seal.write().map_err(|_| ApiError::internal("seal lock poisoned"))? =
            SealState::Sealed { progress: None };
        tracing::info!("sealed");
        Ok(())
    }

    /// The seal record, which must exist once the server runs.
    pub async fn seal_record(&self) -> ApiResult<SealRecord> {
        self.store.seal_record().await?.ok_or_else(|| ApiError::internal("the data has no seal record"))
    }
}
