//! Server state: the store, the clock, and the seal state with everything
//! that exists only while unsealed (keyring, key index).
//!
//! Sealing drops the unsealed state: the keyring's raw key bytes are zeroed
//! on drop, the key index goes with them.

use crate::error::{ApiError, ApiResult};
use crate::keys::KeyIndex;
use keyward_core::clock::Clock;
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
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Unseal key file (keyfile seal), to tell the operator where it is.
    pub unseal_key_file: Option<std::path::PathBuf>,
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
        Self(Arc::new(Inner {
            store,
            clock,
            seal: RwLock::new(SealState::Sealed { progress: None }),
            transition: tokio::sync::Mutex::new(()),
            config,
        }))
    }

    /// The unsealed state, or 503 `sealed`.
    pub fn unsealed(&self) -> ApiResult<Arc<Unsealed>> {
        match &*self
            .seal
            .read()
            .map_err(|_| ApiError::internal("seal lock poisoned"))?
        {
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
        let keyring = Keyring::new(root, record.active_term);
        let records = self.store.list_keys().await?;
        let keys = KeyIndex::load(&records, &keyring);
        let unsealed = Arc::new(Unsealed {
            keyring,
            keys: RwLock::new(keys),
        });
        *self
            .seal
            .write()
            .map_err(|_| ApiError::internal("seal lock poisoned"))? = SealState::Unsealed(unsealed);
        tracing::info!("unsealed");
        Ok(())
    }

    /// Seals: drops every key from memory.
    pub fn seal_now(&self) -> ApiResult<()> {
        *self
            .seal
            .write()
            .map_err(|_| ApiError::internal("seal lock poisoned"))? =
            SealState::Sealed { progress: None };
        tracing::info!("sealed");
        Ok(())
    }

    /// The seal record, which must exist once the server runs.
    pub async fn seal_record(&self) -> ApiResult<SealRecord> {
        self.store
            .seal_record()
            .await?
            .ok_or_else(|| ApiError::internal("the data has no seal record"))
    }
}
