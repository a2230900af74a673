//! The router's state: every service, built once at start, each holding
//! only the handles it needs. Building fails (and the server does not
//! start) when a client or setting cannot be built. Seal and unseal touch
//! several services and are orchestrated here.

use crate::alerts::Alerts;
use crate::approvals::Approvals;
use crate::audit::{Auditor, Sinks};
use crate::auth::Auth;
use crate::config::RuntimeConfig;
use crate::controls::Controls;
use crate::error::{Error, Result};
use crate::exchange::{self, ExchangeConfig, Exchanges, Handles};
use crate::incident::{Egress, Incident};
use crate::keys::{Keys, KeysConfig};
use crate::metrics::Metrics;
use crate::seal::Barrier;
use crate::secrets::Secrets;
use keyward_core::clock::{Clock, ManualClock};
use keyward_core::keyring::RootKey;
use keyward_store::{SealRecord, Store};
use std::sync::Arc;

/// Shared state of the HTTP server.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Services>);

/// The services behind the router.
#[derive(Debug)]
pub(crate) struct Services {
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The settable clock, when the server runs with `--test-clock`.
    pub test_clock: Option<Arc<ManualClock>>,
    /// Settings.
    pub config: RuntimeConfig,
    /// The seal barrier (keyring, encryption).
    pub barrier: Arc<Barrier>,
    /// Access keys.
    pub keys: Arc<Keys>,
    /// Identification.
    pub auth: Auth,
    /// Secrets.
    pub secrets: Arc<Secrets>,
    /// Exchange accounts: the sign API and the proxy.
    pub exchanges: Arc<Exchanges>,
    /// Freezing accounts, checking their keys, dead-man timers.
    pub incident: Incident,
    /// M-of-N approvals.
    pub approvals: Approvals,
    /// Frozen accounts, withdrawal allowlists and caps, dead-man timers.
    pub controls: Arc<Controls>,
    /// The audit queue and writer.
    pub auditor: Arc<Auditor>,
    /// Audit sinks and alert rules.
    pub sinks: Arc<Sinks>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The store (for following other nodes on a shared database).
    pub store: Arc<dyn Store>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Builds every service over `store`, sealed. `test_clock` is the
    /// settable clock of a `--test-clock` server (it is then also `clock`).
    pub(crate) fn build(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        test_clock: Option<Arc<ManualClock>>,
        config: RuntimeConfig,
    ) -> Result<Self> {
        let client = exchange::client(config.upstream_timeout)
            .map_err(|e| Error::internal(&format!("cannot build the webhook HTTP client: {e}")))?;
        let exchange_client = exchange::ExchangeClient::new(config.upstream_timeout)
            .map_err(|e| Error::internal(&format!("cannot build the exchange HTTP client: {e}")))?;
        let alerts = Arc::new(Alerts::start(config.alerts.clone(), client.clone()));
        let sinks = Arc::new(Sinks::start(config.sinks.clone(), client.clone(), alerts));
        let metrics = Arc::new(Metrics::default());
        let barrier = Arc::new(Barrier::new(store.clone()));
        let auditor = Auditor::start(store.clone(), clock.clone(), barrier.clone(), sinks.clone(), metrics.clone());
        let keys_config = KeysConfig {
            reseal_ledger: config.reseal_key_ledger,
            default_max_age_s: config.key_max_age.map(|d| d.as_secs()),
        };
        let keys = Arc::new(Keys::new(store.clone(), clock.clone(), keys_config));
        let auth = Auth::new(keys.clone(), barrier.clone(), clock.clone(), config.throttle);
        let secrets = Arc::new(Secrets::start(store.clone(), clock.clone(), barrier.clone()));
        let controls = Arc::new(Controls::new(secrets.clone(), clock.clone()));
        let exchanges = Arc::new(Exchanges::new(
            ExchangeConfig { allow_upstream: config.allow_upstream.clone(), allow_overrides: test_clock.is_some() },
            Handles {
                secrets: secrets.clone(),
                barrier: barrier.clone(),
                keys: keys.clone(),
                clock: clock.clone(),
                auditor: auditor.clone(),
                metrics: metrics.clone(),
                store: store.clone(),
                controls: controls.clone(),
            },
            exchange_client,
        ));
        let egress = Egress { given: config.egress_ips.clone() };
        let incident = Incident::new(keys.clone(), controls.clone(), exchanges.clone(), clock.clone(), egress);
        let approvals = Approvals::new(controls.clone(), keys.clone(), clock.clone(), config.approvals);
        Ok(Self(Arc::new(Services {
            clock,
            test_clock,
            config,
            barrier,
            keys,
            auth,
            secrets,
            exchanges,
            incident,
            approvals,
            controls,
            auditor,
            sinks,
            metrics,
            store,
        })))
    }

    /// Unseals with a verified root key: the key index loads with the new
    /// session, then the session is put in force. Until then requests answer
    /// `sealed`, never `key_invalid` for a key the index has not loaded yet.
    pub(crate) async fn unseal(&self, root: RootKey, record: &SealRecord) -> Result<()> {
        let session = Barrier::session(root, record);
        self.keys.load(&session).await?;
        self.barrier.publish(session)
    }

    /// Reloads every service from the store with the root key in force
    /// (after a restore): sealed for the moment it takes, then unsealed
    /// with the restored key index. If the reload fails, the server stays
    /// sealed, never half-loaded.
    pub(crate) async fn reload(&self) -> Result<()> {
        let root = self.barrier.root_copy()?;
        let record = self.barrier.record().await?;
        self.seal()?;
        self.unseal(root, &record).await
    }

    /// Seals: the keyring, the key index and every decrypted secret leave
    /// memory. The barrier seals first, so no cache takes anything after it
    /// is cleared (see [`Barrier::is_current`]).
    pub(crate) fn seal(&self) -> Result<()> {
        self.barrier.seal()?;
        self.keys.unload();
        self.secrets.forget_all();
        self.exchanges.forget_all();
        self.controls.forget_all();
        Ok(())
    }
}
