//! Access keys: the in-memory index verification reads, admission (rate and
//! uses, spent only once a request is authorized), and the changes an
//! authorized caller may make (create, change state, roll, namespaces).
//!
//! Every change re-MACs the row under a root-derived key and updates the
//! index before it returns, so a revocation is in force for the very next
//! request. Never logs or returns a key after its creation answer.

mod admission;
mod index;
mod manage;
mod verify;

pub(crate) use admission::{Admitted, RateInfo};
pub(crate) use index::{KeyEntry, KeyIndex, mac_input};
pub(crate) use manage::{CreateKey, CreateNamespace, may_manage, new_record, state_change};
pub(crate) use verify::{VerifyAnswer, VerifyRequest, may_verify};

use crate::error::{Error, Result};
use crate::seal::Unsealed;
use keyward_core::clock::Clock;
use keyward_store::Store;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

/// The namespace of keyward's own keys; keys of any other namespace never
/// authenticate to keyward's API.
pub(crate) const KEYWARD_NAMESPACE: &str = "keyward";

/// The access-key service.
#[derive(Debug)]
pub(crate) struct Keys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    index: RwLock<KeyIndex>,
    /// Changes take turns: each reads a row, changes it, writes it and
    /// updates the index, and two interleaved (enable racing revoke) must not
    /// leave the index saying other than the store.
    writes: tokio::sync::Mutex<()>,
}

fn poisoned() -> Error {
    Error::internal("key index lock poisoned")
}

impl Keys {
    /// An empty service (sealed: nothing loaded).
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, index: RwLock::new(KeyIndex::default()), writes: tokio::sync::Mutex::new(()) }
    }

    /// Loads every key row, checking each MAC (on unseal).
    pub(crate) async fn load(&self, unsealed: &Unsealed) -> Result<()> {
        let records = self.store.list_keys().await?;
        self.install(KeyIndex::load(&records, unsealed))
    }

    /// Replaces the index.
    pub(crate) fn install(&self, index: KeyIndex) -> Result<()> {
        *self.index.write().map_err(|_| poisoned())? = index;
        Ok(())
    }

    /// Drops the index (on seal): no key verifies until the next unseal.
    pub(crate) fn unload(&self) {
        if let Ok(mut idx) = self.index.write() {
            *idx = KeyIndex::default();
        }
    }

    /// The key stored under this keyed hash.
    pub(crate) fn by_hash(&self, hash: &[u8; 32]) -> Result<Option<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.by_hash(hash))
    }

    /// The key with this id.
    pub(crate) fn by_id(&self, id: &str) -> Result<Option<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.by_id(id))
    }

    /// Every key, oldest first.
    pub(crate) fn all(&self) -> Result<Vec<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.all())
    }

    /// How many keys are loaded.
    pub(crate) fn count(&self) -> usize {
        self.index.read().map(|i| i.len()).unwrap_or(0)
    }

    fn upsert(&self, entry: KeyEntry) -> Result<Arc<KeyEntry>> {
        Ok(self.index.write().map_err(|_| poisoned())?.upsert(entry))
    }

    /// Writes the last use of every key used since the last flush.
    pub(crate) async fn flush_last_used(&self) {
        let dirty: Vec<_> = match self.all() {
            Ok(all) => all.into_iter().filter(|k| k.dirty.swap(false, Ordering::Relaxed)).collect(),
            Err(_) => return,
        };
        for k in dirty {
            let ms = k.last_used_ms.load(Ordering::Relaxed);
            let ip = k.last_used_ip.lock().ok().and_then(|g| *g).map(|i| i.to_string()).unwrap_or_default();
            if let Err(e) = self.store.touch_key(&k.id, ms, &ip).await {
                tracing::warn!(error = %e, "could not record last use");
                k.dirty.store(true, Ordering::Relaxed);
            }
        }
    }
}
