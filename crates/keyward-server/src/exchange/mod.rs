//! Exchange accounts used through keyward: the one pipeline the sign API
//! and the proxy share (see `pipeline`), the accounts it signs for, what it
//! learns from the exchanges (budgets, clocks), reference prices for order
//! guards, and the forwarding itself.
//!
//! The bot never sees the exchange secret; no signature leaves keyward
//! except towards the exchange (the proxy) or, for accounts whose signature
//! binds the request, to a key allowed to sign that class (the sign API).

pub(crate) mod accounts;
mod check;
mod client;
mod direct;
mod forward;
mod guard_plan;
mod pipeline;
mod references;
mod upstream;

pub(crate) use accounts::{Account, PREFIX, SECRET_FIELDS, account_name};
pub(crate) use check::{CheckOutcome, Drain};
pub(crate) use client::ExchangeClient;
pub(crate) use direct::CallResult;
pub(crate) use forward::{AnswerBody, client, forwardable};
pub(crate) use pipeline::{Overrides, Signed, check_account_name};

use crate::audit::Auditor;
use crate::controls::Controls;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::seal::{Barrier, Unsealed};
use crate::secrets::{Secrets, Version};
use keyward_core::clock::Clock;
use keyward_store::Store;
use references::References;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use upstream::{Budgets, Clocks};

/// An account and the secret version it was built from.
type Built = (Arc<Version>, Arc<Account>);

/// Settings of the exchange service.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeConfig {
    /// Upstream hosts allowed besides each exchange's own.
    pub allow_upstream: Vec<String>,
    /// Client-given timestamps and nonces are accepted (test-clock servers only).
    pub allow_overrides: bool,
}

/// What the exchange service works with.
#[derive(Debug)]
pub(crate) struct Handles {
    /// Accounts are secrets at `exchanges/<name>`.
    pub(crate) secrets: Arc<Secrets>,
    /// Caches hold only what the session in force decrypted.
    pub(crate) barrier: Arc<Barrier>,
    /// Daily-notional reservations (through the key ledger).
    pub(crate) keys: Arc<Keys>,
    /// Time (signatures, budgets, days).
    pub(crate) clock: Arc<dyn Clock>,
    /// Decision and outcome entries of proxied requests.
    pub(crate) auditor: Arc<Auditor>,
    /// Upstream latency.
    pub(crate) metrics: Arc<Metrics>,
    /// Nonces shared by several nodes (see [`Store::next_nonce`]).
    pub(crate) store: Arc<dyn Store>,
    /// Frozen accounts, withdrawal allowlists and caps.
    pub(crate) controls: Arc<Controls>,
}

/// The exchange service.
#[derive(Debug)]
pub(crate) struct Exchanges {
    config: ExchangeConfig,
    secrets: Arc<Secrets>,
    barrier: Arc<Barrier>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    controls: Arc<Controls>,
    client: ExchangeClient,
    /// Accounts by name, with the secret version each was built from.
    accounts: RwLock<HashMap<String, Built>>,
    references: References,
    /// Symbols of the orders sent per account (a freeze cancels on them).
    traded: direct::Traded,
    budgets: Budgets,
    clocks: Clocks,
    nonce: AtomicU64,
}

impl Exchanges {
    /// The service; `client` is the exchange client (see [`ExchangeClient`]).
    pub(crate) fn new(config: ExchangeConfig, handles: Handles, client: ExchangeClient) -> Self {
        let Handles { secrets, barrier, keys, clock, auditor, metrics, store, controls } = handles;
        Self {
            config,
            secrets,
            barrier,
            keys,
            clock,
            auditor,
            metrics,
            store,
            controls,
            client,
            accounts: RwLock::new(HashMap::new()),
            references: References::default(),
            traded: direct::Traded::default(),
            budgets: Budgets::default(),
            clocks: Clocks::default(),
            nonce: AtomicU64::new(0),
        }
    }

    /// Checks an account's fields when it is written (exchange type, fields, upstreams).
    pub(crate) fn validate(&self, kind: &str, data: &keyward_core::secret::SecretData) -> Result<()> {
        accounts::validate(kind, data, &self.config.allow_upstream).map(|_| ())
    }

    /// The account named `name`, built once per version of its secret: a
    /// change to `exchanges/<name>` is seen by the very next request.
    pub(crate) async fn account(&self, unsealed: &Unsealed, name: &str) -> Result<Arc<Account>> {
        let path = format!("{PREFIX}{name}");
        let version = self.secrets.current(unsealed, &path).await.map_err(|e| match e.code {
            crate::error::Code::NotFound | crate::error::Code::SecretDeleted | crate::error::Code::SecretDestroyed => {
                Error::not_found(format!("no exchange account {name:?} (a secret at exchanges/{name} with --type)"))
            }
            _ => e,
        })?;
        if let Some((v, a)) = self.accounts.read().ok().and_then(|m| m.get(name).cloned())
            && Arc::ptr_eq(&v, &version)
        {
            return Ok(a);
        }
        let account = Arc::new(Account::from_version(name, &version, &self.config.allow_upstream)?);
        if let Ok(mut m) = self.accounts.write()
            && self.barrier.is_current(unsealed)
        {
            m.insert(name.to_string(), (version, account.clone()));
        }
        Ok(account)
    }

    /// Drops every account (on seal).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut m) = self.accounts.write() {
            m.clear();
        }
    }

    /// A nonce above every earlier one: microseconds since the epoch, or one
    /// more than the last when calls come faster.
    fn next_nonce(&self, now_ms: i64) -> u64 {
        let floor = (now_ms.max(0) as u64).saturating_mul(1000);
        let mut last = self.nonce.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self.nonce.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}
