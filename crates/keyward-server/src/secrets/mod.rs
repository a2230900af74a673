//! Versioned secrets under envelope encryption: reads (the current version
//! served from memory once decrypted), writes through the node's group
//! commit (see `writer`), soft delete, undelete and destroy.
//!
//! Callers authorize first (scopes on the path, `account:<name>:admin` for
//! exchange accounts) and admit; every write here takes the [`Admitted`]
//! proof. Decryption goes through the seal barrier. Values are never logged.

mod requests;
mod rotate;
mod writer;

pub(crate) use requests::{NewSecret, PutRequest, VersionsRequest, parse_versions};
pub(crate) use rotate::{RotatePlan, RotateRequest, Staging, StepRequest};

use crate::error::{Code, Error, Result};
use crate::keys::Admitted;
use crate::seal::{Barrier, Unsealed};
use keyward_core::clock::Clock;
use keyward_core::secret::SecretData;
use keyward_store::{SecretMeta, Store, VersionRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use writer::{SecretWriter, WriteJob};

/// One version of a secret, decrypted.
#[derive(Debug)]
pub(crate) struct Version {
    /// The secret's metadata when read.
    pub meta: SecretMeta,
    /// The version.
    pub version: u64,
    /// When that version was written (ms).
    pub created_ms: i64,
    /// Its fields.
    pub data: SecretData,
}

/// Which versions a destroy removes.
#[derive(Debug, Clone)]
pub(crate) enum Destroy {
    /// Every version and the metadata.
    All,
    /// These versions.
    Versions(Vec<u64>),
}

/// The secrets service.
#[derive(Debug)]
pub(crate) struct Secrets {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    barrier: Arc<Barrier>,
    writer: SecretWriter,
    /// Decrypted current versions by path (`None`: known to have none);
    /// dropped on any change and on seal.
    current: RwLock<HashMap<String, Option<Arc<Version>>>>,
    /// Counts changes, so a read that raced a write does not cache the
    /// version it read before the write.
    changes: AtomicU64,
}

fn pending_untouched(path: &str, pending: u64) -> Error {
    Error::new(
        Code::RotationPending,
        format!("version {pending} of {path} is pending: drop it with `keyward secret rotate {path} --abandon`"),
    )
}

fn no_secret(path: &str) -> Error {
    Error::not_found(format!("no secret at {path}"))
}

impl Secrets {
    /// The service, with its writer task.
    pub(crate) fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, barrier: Arc<Barrier>) -> Self {
        let writer = SecretWriter::start(store.clone(), clock.clone());
        Self { store, clock, barrier, writer, current: RwLock::new(HashMap::new()), changes: AtomicU64::new(0) }
    }

    /// A secret's metadata.
    pub(crate) async fn meta(&self, path: &str) -> Result<Option<SecretMeta>> {
        Ok(self.store.secret_meta(path).await?)
    }

    /// Secrets whose path starts with `prefix`, in path order.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<SecretMeta>> {
        Ok(self.store.list_secrets(prefix).await?)
    }

    /// A secret's metadata and every version (no values).
    pub(crate) async fn history(&self, path: &str) -> Result<(SecretMeta, Vec<VersionRecord>)> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        Ok((meta, self.store.versions(path).await?))
    }

    /// The current version, from memory after its first read.
    pub(crate) async fn current(&self, unsealed: &Unsealed, path: &str) -> Result<Arc<Version>> {
        match self.current_opt(unsealed, path).await? {
            Some(v) => Ok(v),
            // Not cached as absent by a read that found it: read again for the precise reason.
            None => self.decrypt(unsealed, path, None).await,
        }
    }

    /// The current version, or `None` when the secret does not exist, has
    /// no current version yet, or its current version is deleted or
    /// destroyed; from memory after the first read either way (a path read
    /// on every request, such as an account's controls, costs no disk read
    /// when it does not exist).
    pub(crate) async fn current_opt(&self, unsealed: &Unsealed, path: &str) -> Result<Option<Arc<Version>>> {
        if let Some(v) = self.current.read().ok().and_then(|c| c.get(path).cloned()) {
            return Ok(v);
        }
        let generation = self.changes.load(Ordering::Acquire);
        let v = match self.decrypt(unsealed, path, None).await {
            Ok(v) => Some(v),
            Err(e) if matches!(e.code, Code::NotFound | Code::SecretDeleted | Code::SecretDestroyed) => None,
            Err(e) => return Err(e),
        };
        if let Ok(mut c) = self.current.write()
            && self.changes.load(Ordering::Acquire) == generation
            && self.barrier.is_current(unsealed)
        {
            c.insert(path.to_string(), v.clone());
        }
        Ok(v)
    }

    /// One version (the current one when `None`), decrypted.
    pub(crate) async fn read(&self, unsealed: &Unsealed, path: &str, version: Option<u64>) -> Result<Arc<Version>> {
        match version {
            None => self.current(unsealed, path).await,
            Some(_) => self.decrypt(unsealed, path, version).await,
        }
    }

    async fn decrypt(&self, unsealed: &Unsealed, path: &str, asked: Option<u64>) -> Result<Arc<Version>> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        let version = asked.unwrap_or(meta.current_version);
        if version == 0 {
            let pending = meta.pending_version.map(|p| format!(" (version {p} is pending)")).unwrap_or_default();
            return Err(Error::not_found(format!("{path} has no current version yet{pending}")));
        }
        let rec = self
            .store
            .version(path, version)
            .await?
            .ok_or_else(|| Error::not_found(format!("{path} has no version {version}")))?;
        if rec.destroyed {
            return Err(Error::new(Code::SecretDestroyed, format!("version {version} of {path} was destroyed")));
        }
        if rec.deleted_ms.is_some() {
            return Err(Error::new(
                Code::SecretDeleted,
                format!("version {version} of {path} is deleted (undelete it to read it)"),
            ));
        }
        let blob = rec.ciphertext.as_deref().ok_or_else(|| Error::internal("version without ciphertext"))?;
        let plain = unsealed.decrypt(path, version, blob)?;
        Ok(Arc::new(Version { meta, version, created_ms: rec.created_ms, data: SecretData::decode(&plain)? }))
    }

    /// Drops a path's decrypted version after a change.
    pub(crate) fn forget(&self, path: &str) {
        if let Ok(mut c) = self.current.write() {
            self.changes.fetch_add(1, Ordering::AcqRel);
            c.remove(path);
        }
    }

    /// Drops every decrypted version (on seal).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut c) = self.current.write() {
            self.changes.fetch_add(1, Ordering::AcqRel);
            c.clear();
        }
    }

    /// Writes a new version; durable when it returns. Without check-and-set,
    /// a write that lost to another node only moves the version on, so it
    /// goes again.
    pub(crate) async fn write(
        &self,
        _: &Admitted,
        unsealed: &Arc<Unsealed>,
        path: &str,
        new: NewSecret,
    ) -> Result<(SecretMeta, u64)> {
        let result = self.write_retrying(unsealed, path, &new).await;
        self.forget(path);
        result
    }

    async fn write_retrying(&self, unsealed: &Arc<Unsealed>, path: &str, new: &NewSecret) -> Result<(SecretMeta, u64)> {
        for _ in 0..16 {
            let job = WriteJob {
                path: path.to_string(),
                plain: new.data.encode(),
                cas: new.cas,
                stage: keyward_store::Stage::Current,
                kind: new.kind.clone(),
                rotation_period_s: new.rotation_period_s,
                unsealed: unsealed.clone(),
            };
            match self.writer.write(job).await {
                Err(e) if e.code == Code::CasMismatch && new.cas.is_none() => continue,
                other => return other,
            }
        }
        Err(Error::new(Code::CasMismatch, "too many concurrent writers; try again"))
    }

    /// Writes a new version of one of keyward's own documents (account
    /// controls, approvals: see `controls`) if the latest version is still
    /// `expected_latest`; `cas_mismatch` otherwise, for the caller to read
    /// again. The caller authorized the request that changes the document;
    /// the write may be part of admitting it (a withdrawal counted against
    /// a cap), so it takes no admission proof.
    pub(crate) async fn write_doc(
        &self,
        unsealed: &Arc<Unsealed>,
        path: &str,
        data: SecretData,
        expected_latest: u64,
    ) -> Result<u64> {
        let job = WriteJob {
            path: path.to_string(),
            plain: data.encode(),
            cas: Some(expected_latest),
            stage: keyward_store::Stage::Current,
            kind: None,
            rotation_period_s: None,
            unsealed: unsealed.clone(),
        };
        let result = self.writer.write(job).await;
        self.forget(path);
        result.map(|(_, v)| v)
    }

    /// Soft-deletes versions (the current one when `versions` is `None`);
    /// returns those changed.
    pub(crate) async fn delete(&self, _: &Admitted, path: &str, versions: Option<Vec<u64>>) -> Result<Vec<u64>> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        let versions = versions.unwrap_or_else(|| vec![meta.current_version]);
        if let Some(p) = meta.pending_version.filter(|p| versions.contains(p)) {
            return Err(pending_untouched(path, p));
        }
        let changed = self.store.set_deleted(path, &versions, Some(self.clock.now_ms())).await;
        self.forget(path);
        Ok(changed?)
    }

    /// Undoes soft deletes (the current version when `versions` is empty).
    pub(crate) async fn undelete(&self, _: &Admitted, path: &str, versions: Vec<u64>) -> Result<Vec<u64>> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        let versions = if versions.is_empty() { vec![meta.current_version] } else { versions };
        let changed = self.store.set_deleted(path, &versions, None).await;
        self.forget(path);
        Ok(changed?)
    }

    /// Destroys versions for good (or the whole secret). Returns the
    /// versions destroyed; for [`Destroy::All`], an empty list.
    pub(crate) async fn destroy(&self, _: &Admitted, path: &str, what: Destroy) -> Result<Vec<u64>> {
        let meta = self.meta(path).await?.ok_or_else(|| no_secret(path))?;
        if let (Destroy::Versions(v), Some(p)) = (&what, meta.pending_version)
            && v.contains(&p)
        {
            return Err(pending_untouched(path, p));
        }
        let result = match what {
            Destroy::All => self.store.destroy_secret(path).await.map(|_| Vec::new()),
            Destroy::Versions(v) => self.store.destroy_versions(path, &v).await,
        };
        self.forget(path);
        Ok(result?)
    }
}
