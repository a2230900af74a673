//! The seal barrier: the only holder of the keyring and the only caller of
//! envelope encryption above the store. Sealed, it holds no key material and
//! every service that needs a key gets `sealed`; unsealed, it hands out an
//! [`Unsealed`] view whose methods encrypt, decrypt and derive, so no other
//! module touches the root key. Key-term rotation and rewrap belong here.
//!
//! Never logs key material; the keyring's bytes are zeroed when the last
//! [`Unsealed`] of a session is dropped.

use crate::error::{Code, Error, Result};
use keyward_core::audit::{public_key, signing_key};
use keyward_core::envelope;
use keyward_core::keyring::{Keyring, RootKey, hex_decode};
use keyward_core::shamir::{Share, UnsealProgress, UnsealStep};
use keyward_store::{SealKind, SealRecord, Store};
use ring::signature::Ed25519KeyPair;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

pub(crate) mod backup;
pub mod hsm;
mod migrate;
mod pkcs11;

pub(crate) use migrate::{Proof, SealTarget, remove_key_file, write_key_file};

/// What exists only while unsealed: the keyring, behind methods that use it.
#[derive(Debug)]
pub(crate) struct Unsealed {
    keyring: Keyring,
}

impl Unsealed {
    /// A session over `keyring` (tests and benchmarks build one directly).
    pub(crate) fn new(keyring: Keyring) -> Self {
        Self { keyring }
    }

    /// Encrypts a secret version for `path` and `version` (bound into the AEAD data).
    pub(crate) fn encrypt(&self, path: &str, version: u64, plain: &[u8]) -> Result<Vec<u8>> {
        Ok(envelope::seal(&self.keyring, path, version, plain)?)
    }

    /// Decrypts a secret version stored for `path` and `version`.
    pub(crate) fn decrypt(&self, path: &str, version: u64, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(envelope::open(&self.keyring, path, version, blob)?)
    }

    /// The keyed hash an access key is stored and looked up under.
    pub(crate) fn access_key_hash(&self, key: &[u8]) -> [u8; 32] {
        self.keyring.access_key_hash(key)
    }

    /// The MAC of an access-key row.
    pub(crate) fn row_mac(&self, row: &[u8]) -> [u8; 32] {
        self.keyring.row_mac(row)
    }

    /// Checks an access-key row's MAC in constant time.
    pub(crate) fn verify_row_mac(&self, row: &[u8], mac: &[u8]) -> bool {
        self.keyring.verify_row_mac(row, mac)
    }

    /// A root-derived key for `label` (short-lived tokens).
    pub(crate) fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        self.keyring.root().derive(label)
    }

    /// The key audit checkpoints are signed with.
    pub(crate) fn audit_signing_key(&self) -> Ed25519KeyPair {
        signing_key(self.keyring.root())
    }

    /// The public half of the checkpoint key.
    pub(crate) fn audit_public_key(&self) -> Vec<u8> {
        public_key(&self.audit_signing_key())
    }

    /// The keyring term new writes use.
    pub(crate) fn active_term(&self) -> u32 {
        self.keyring.active_term()
    }
}

/// Sealed (maybe collecting shares) or unsealed.
#[derive(Debug)]
enum SealState {
    Sealed { progress: Option<UnsealProgress> },
    Unsealed(Arc<Unsealed>),
}

/// Unseal progress as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Shares given so far.
    pub have: u8,
    /// Shares needed.
    pub threshold: u8,
}

/// The outcome of one unseal submission.
#[derive(Debug)]
pub(crate) enum Submitted {
    /// More shares are needed.
    NeedMore,
    /// The root key is whole and verified: the caller installs it.
    Root(RootKey),
    /// The server was already unsealed.
    AlreadyUnsealed,
}

/// A rekey in progress: old shares collected until their threshold, then
/// a new share set is made. Only in memory: a restart starts it over.
#[derive(Debug)]
struct Rekey {
    nonce: String,
    shares: u8,
    threshold: u8,
    recipients: Vec<age::x25519::Recipient>,
    progress: UnsealProgress,
}

/// Where a rekey stands after a share.
#[derive(Debug)]
pub(crate) enum RekeyStep {
    /// More old shares are needed.
    NeedMore {
        /// Old shares given so far.
        have: u8,
        /// Old shares needed.
        threshold: u8,
    },
    /// The new shares (shown once); the old ones no longer unseal.
    Done {
        /// The new share set's id.
        set_id: String,
        /// The new shares, encoded.
        shares: Vec<Zeroizing<String>>,
        /// Shares needed to unseal from now on.
        threshold: u8,
        /// Each share is age-encrypted to its recipient.
        encrypted: bool,
    },
}

/// The label of the root-derived key backups are sealed with.
const BACKUP_LABEL: &str = "keyward/v1/backup";

/// What one rewrap batch did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rewrapped {
    /// Versions re-encrypted under `term`.
    pub rewrapped: u64,
    /// Versions changed (destroyed) between read and write: left alone.
    pub changed_meanwhile: u64,
    /// The term they were re-encrypted under.
    pub term: u32,
}

/// The barrier between the services and the root key.
#[derive(Debug)]
pub(crate) struct Barrier {
    store: Arc<dyn Store>,
    state: RwLock<SealState>,
    transition: tokio::sync::Mutex<()>,
    rekey: std::sync::Mutex<Option<Rekey>>,
    hsm: std::sync::Mutex<pkcs11::HsmState>,
}

fn poisoned() -> Error {
    Error::internal("seal lock poisoned")
}

impl Barrier {
    /// A sealed barrier over `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            state: RwLock::new(SealState::Sealed { progress: None }),
            transition: Default::default(),
            rekey: Default::default(),
            hsm: Default::default(),
        }
    }

    /// The unsealed session, or `sealed`.
    pub(crate) fn unsealed(&self) -> Result<Arc<Unsealed>> {
        match &*self.state.read().map_err(|_| poisoned())? {
            SealState::Unsealed(u) => Ok(u.clone()),
            SealState::Sealed { .. } => Err(Error::sealed()),
        }
    }

    /// True while sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        self.unsealed().is_err()
    }

    /// The seal record, which must exist once the server runs.
    pub(crate) async fn record(&self) -> Result<SealRecord> {
        self.store.seal_record().await?.ok_or_else(|| Error::internal("the data has no seal record"))
    }

    /// Shares given so far and needed (zero and zero for a key-file seal).
    pub(crate) fn progress(&self, record: &SealRecord) -> Result<Progress> {
        let state = self.state.read().map_err(|_| poisoned())?;
        Ok(match (&*state, &record.kind) {
            (SealState::Sealed { progress: Some(p) }, _) => Progress { have: p.have(), threshold: p.threshold() },
            (_, SealKind::Shamir { threshold, .. }) => Progress { have: 0, threshold: *threshold },
            _ => Progress { have: 0, threshold: 0 },
        })
    }

    /// Serialises seal and unseal: hold the guard across a transition.
    pub(crate) async fn transition(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.transition.lock().await
    }

    /// Forgets the shares given so far.
    pub(crate) fn reset_progress(&self) -> Result<()> {
        if let SealState::Sealed { progress } = &mut *self.state.write().map_err(|_| poisoned())? {
            *progress = None;
        }
        Ok(())
    }

    /// Takes one share (Shamir seal) or the key file's text (key-file seal).
    /// A wrong key file, or shares that combine into a key other than the
    /// one recorded at init, is refused; nothing is installed here (see
    /// [`Barrier::install`]).
    pub(crate) fn submit(&self, record: &SealRecord, share: Option<&str>, key_file: Option<&str>) -> Result<Submitted> {
        if !self.is_sealed() {
            return Ok(Submitted::AlreadyUnsealed);
        }
        let check = hex_decode(&record.check).ok_or_else(|| Error::internal("bad check value"))?;
        match (&record.kind, share, key_file) {
            (SealKind::Shamir { set_id, threshold, .. }, Some(text), None) => {
                let share = Share::parse(text)?;
                let mut guard = self.state.write().map_err(|_| poisoned())?;
                let SealState::Sealed { progress } = &mut *guard else { return Ok(Submitted::AlreadyUnsealed) };
                let p = progress.get_or_insert_with(|| UnsealProgress::new(set_id, *threshold));
                match p.add(share, &check)? {
                    UnsealStep::Progress { .. } => Ok(Submitted::NeedMore),
                    UnsealStep::Complete(root) => Ok(Submitted::Root(root)),
                }
            }
            (SealKind::Keyfile, None, Some(text)) => {
                let root = RootKey::from_unseal_file(text)?;
                if !root.matches_check(&check) {
                    return Err(Error::new(
                        Code::UnsealKeyMismatch,
                        "this unseal key does not belong to this keyward data",
                    ));
                }
                Ok(Submitted::Root(root))
            }
            (SealKind::Shamir { .. }, _, _) => {
                Err(Error::invalid("this server unseals with Shamir shares: send {\"share\": \"kws1-…\"}"))
            }
            (SealKind::Keyfile, _, _) => Err(Error::invalid(
                "this server unseals with its unseal key file: send {\"key\": \"<file contents>\"} or restart it",
            )),
            (SealKind::Pkcs11 { .. }, _, _) => Err(Error::invalid(
                "this server unseals through its HSM: send {\"hsm\": true} (keyward operator unseal), or restart it",
            )),
        }
    }

    /// A session over a verified root key, not yet in force: the services
    /// load what they need with it (the key index) before [`Barrier::publish`].
    pub(crate) fn session(root: RootKey, record: &SealRecord) -> Arc<Unsealed> {
        let mut ring = Keyring::new(root, record.active_term);
        for t in &record.retired_terms {
            ring.retire(*t);
        }
        Arc::new(Unsealed::new(ring))
    }

    /// Puts a session in force: from now on requests are served with it.
    pub(crate) fn publish(&self, session: Arc<Unsealed>) -> Result<()> {
        *self.state.write().map_err(|_| poisoned())? = SealState::Unsealed(session);
        tracing::info!("unsealed");
        Ok(())
    }

    /// True while `session` is the one in force. A service caching what it
    /// decrypted with a session checks this under its cache lock, so a
    /// request that began before a seal cannot put plaintext back after the
    /// seal cleared the caches.
    pub(crate) fn is_current(&self, session: &Unsealed) -> bool {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            SealState::Unsealed(u) => std::ptr::eq(u.as_ref(), session),
            SealState::Sealed { .. } => false,
        }
    }

    /// Adds a keyring term and makes it the one new writes use: the seal
    /// record first (durable), then a session with the new term is put in
    /// force. Every older term stays derivable from the root key, so all
    /// data written before still decrypts; requests in flight finish with
    /// the session they hold. Hold [`Barrier::transition`] across it.
    pub(crate) async fn rotate_term(&self) -> Result<u32> {
        let current = self.unsealed()?;
        let mut record = self.record().await?;
        let next = record.active_term.max(current.active_term()).saturating_add(1);
        record.active_term = next;
        self.store.put_seal_record(&record).await?;
        self.replace_session(&current, &record)?;
        tracing::info!(term = next, "keyring term rotated");
        Ok(next)
    }

    /// Puts in force a session over the same root key as `current`, built
    /// for `record`; `sealed` if `current` is no longer the one in force.
    fn replace_session(&self, current: &Arc<Unsealed>, record: &SealRecord) -> Result<()> {
        let root = RootKey::from_slice(current.keyring.root().expose_bytes())?;
        let session = Self::session(root, record);
        let mut state = self.state.write().map_err(|_| poisoned())?;
        match &*state {
            SealState::Unsealed(u) if Arc::ptr_eq(u, current) => *state = SealState::Unsealed(session),
            // Sealed meanwhile: the record is what the next unseal builds from.
            _ => return Err(Error::sealed()),
        }
        Ok(())
    }

    /// Another node changed the seal record (a term rotated or retired):
    /// puts in force a session over the same root key built for the record
    /// as stored, so this node encrypts under the same term. A record of
    /// another root key (the data was re-initialised) answers `sealed`:
    /// the caller seals this node.
    pub(crate) async fn follow_record(&self) -> Result<()> {
        let Ok(current) = self.unsealed() else { return Ok(()) };
        let record = self.record().await?;
        let check = keyward_core::keyring::hex_decode(&record.check).unwrap_or_default();
        if !current.keyring.root().matches_check(&check) {
            tracing::error!("the seal record in the database belongs to another root key: sealing");
            return Err(Error::sealed());
        }
        if record.active_term != current.active_term() || !record.retired_terms.is_empty() {
            self.replace_session(&current, &record)?;
            tracing::info!(term = record.active_term, "keyring terms follow the seal record another node wrote");
        }
        Ok(())
    }

    /// Re-encrypts up to `limit` secret versions written under an older
    /// term with the active one, each replaced only if unchanged since it
    /// was read. Each batch is one durable transaction, so a rewrap stopped
    /// at any point (even by SIGKILL) resumes where it was.
    pub(crate) async fn rewrap_batch(&self, limit: u32) -> Result<Rewrapped> {
        let u = self.unsealed()?;
        let term = u.active_term();
        let mut out = Rewrapped { rewrapped: 0, changed_meanwhile: 0, term };
        let read = self.store.versions_below_term(term, limit).await?;
        let mut batch = Vec::with_capacity(read.len());
        for c in read {
            let plain = u.decrypt(&c.path, c.version, &c.ciphertext).map_err(|e| {
                Error::new(e.code, format!("version {} of {} cannot be rewrapped: {}", c.version, c.path, e.message))
            })?;
            let fresh = u.encrypt(&c.path, c.version, &plain)?;
            batch.push((c, fresh));
        }
        // One transaction per batch: each row still applies only if unchanged.
        out.rewrapped = self.store.replace_ciphertexts(&batch).await?;
        out.changed_meanwhile = batch.len() as u64 - out.rewrapped;
        Ok(out)
    }

    /// Retires `term` once nothing depends on it: refused for the active
    /// term and while any secret version is still encrypted under it. Hold
    /// [`Barrier::transition`] across it.
    pub(crate) async fn retire_term(&self, term: u32) -> Result<()> {
        let current = self.unsealed()?;
        let mut record = self.record().await?;
        if term == 0 || term > record.active_term {
            return Err(Error::invalid(format!("there is no term {term} (the active term is {})", record.active_term)));
        }
        if term == record.active_term {
            return Err(Error::new(Code::InvalidState, format!("term {term} is the active term; rotate first")));
        }
        let left = self.store.versions_by_term().await?.get(&term).copied().unwrap_or(0);
        if left > 0 {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "term {term} still encrypts {left} secret version(s); run `keyward operator rewrap` until none is left"
                ),
            ));
        }
        if !record.retired_terms.contains(&term) {
            record.retired_terms.push(term);
            record.retired_terms.sort_unstable();
            self.store.put_seal_record(&record).await?;
        }
        self.replace_session(&current, &record)?;
        tracing::info!(term, "keyring term retired");
        Ok(())
    }

    /// Starts a rekey to `shares` shares with `threshold` (replacing one in
    /// progress): the server stays unsealed and serving throughout.
    /// Returns the nonce each share must come with and the old threshold.
    pub(crate) async fn rekey_start(
        &self,
        shares: u8,
        threshold: u8,
        recipients: Vec<age::x25519::Recipient>,
    ) -> Result<(String, u8)> {
        self.unsealed()?;
        let record = self.record().await?;
        let SealKind::Shamir { set_id, threshold: old, .. } = &record.kind else {
            return Err(Error::invalid(format!(
                "this server unseals with {}, not shares: there are no shares to rekey (see `keyward operator migrate-seal`)",
                match record.kind {
                    SealKind::Pkcs11 { .. } => "its HSM",
                    _ => "a key file",
                }
            )));
        };
        migrate::check_share_counts(shares, threshold)?;
        let nonce = keyward_core::shamir::new_set_id()?;
        let progress = UnsealProgress::new(set_id, *old);
        *self.rekey.lock().map_err(|_| poisoned())? =
            Some(Rekey { nonce: nonce.clone(), shares, threshold, recipients, progress });
        Ok((nonce, *old))
    }

    /// Takes one old share of the rekey `nonce`; at the old threshold, the
    /// root key is rebuilt, checked, and split into a new set, which the
    /// seal record takes (durable) before the shares are answered.
    pub(crate) async fn rekey_submit(&self, nonce: &str, share: &str) -> Result<RekeyStep> {
        self.unsealed()?;
        let record = self.record().await?;
        let check = hex_decode(&record.check).ok_or_else(|| Error::internal("bad check value"))?;
        let share = Share::parse(share)?;
        let (root, shares, threshold, recipients) = {
            let mut guard = self.rekey.lock().map_err(|_| poisoned())?;
            let Some(rekey) = guard.as_mut().filter(|r| r.nonce == nonce) else {
                return Err(Error::new(
                    Code::InvalidState,
                    "no rekey with this nonce is in progress: start one with `keyward operator rekey`",
                ));
            };
            match rekey.progress.add(share, &check)? {
                UnsealStep::Progress { have, threshold } => return Ok(RekeyStep::NeedMore { have, threshold }),
                UnsealStep::Complete(root) => {
                    let (shares, threshold) = (rekey.shares, rekey.threshold);
                    let recipients = std::mem::take(&mut rekey.recipients);
                    *guard = None;
                    (root, shares, threshold, recipients)
                }
            }
        };
        // Sealed to their custodians before anything changes: a failure here leaves the old set.
        let encrypted = !recipients.is_empty();
        let (set_id, answered) = migrate::split_shares(&root, shares, threshold, &recipients)?;
        let mut record = record;
        record.kind = SealKind::Shamir { shares, threshold, set_id: set_id.clone() };
        self.store.put_seal_record(&record).await?;
        tracing::info!(set_id = %set_id, shares, threshold, "rekeyed: the old shares no longer unseal");
        Ok(RekeyStep::Done { set_id, shares: answered, threshold, encrypted })
    }

    /// Drops a rekey in progress (and the old shares it collected).
    pub(crate) fn rekey_cancel(&self) -> Result<bool> {
        Ok(self.rekey.lock().map_err(|_| poisoned())?.take().is_some())
    }

    /// Takes a consistent snapshot of the data while it serves and seals it
    /// into a backup file (see [`backup`]).
    pub(crate) async fn backup(&self, now_ms: i64) -> Result<(Vec<u8>, backup::BackupHeader)> {
        let u = self.unsealed()?;
        let record = self.record().await?;
        let snapshot = Zeroizing::new(self.store.snapshot().await?);
        backup::seal(&u.derive(BACKUP_LABEL), &record, now_ms, &snapshot)
    }

    /// Checks and opens a backup of this data. Refused too when a term
    /// its data may use has been retired since (nothing could read it).
    pub(crate) async fn open_backup(&self, file: &[u8]) -> Result<(backup::BackupHeader, Zeroizing<Vec<u8>>)> {
        let u = self.unsealed()?;
        let record = self.record().await?;
        let (header, plain) = backup::open(&u.derive(BACKUP_LABEL), &record, file)?;
        let lost: Vec<u32> =
            (1..=header.term).filter(|t| record.retired_terms.contains(t) && !header.retired.contains(t)).collect();
        if let Some(t) = lost.first() {
            return Err(Error::new(
                Code::InvalidState,
                format!(
                    "this backup may hold data under keyring term {t}, retired since it was made: nothing could read it, so it is not restored"
                ),
            ));
        }
        Ok((header, plain))
    }

    /// The keys a restore of `snapshot` would bring back from revoked or compromised.
    pub(crate) async fn restore_preview(&self, snapshot: &[u8]) -> Result<Vec<keyward_store::RevivedKey>> {
        self.unsealed()?;
        Ok(self.store.snapshot_revived(snapshot).await?)
    }

    /// Writes an opened snapshot's secrets, keys and ledger over the
    /// store's (one transaction); the caller reloads the services after.
    /// Hold [`Barrier::transition`] across it.
    pub(crate) async fn restore(&self, snapshot: &[u8]) -> Result<()> {
        self.unsealed()?;
        Ok(self.store.restore_snapshot(snapshot).await?)
    }

    /// A copy of the root key in force, to reload the services with it
    /// after a restore.
    pub(crate) fn root_copy(&self) -> Result<RootKey> {
        Ok(RootKey::from_slice(self.unsealed()?.keyring.root().expose_bytes())?)
    }

    /// How many stored secret versions each keyring term still encrypts.
    pub(crate) async fn versions_by_term(&self) -> Result<std::collections::BTreeMap<u32, u64>> {
        Ok(self.store.versions_by_term().await?)
    }

    /// Seals: drops the keyring (its bytes are zeroed once no request holds it).
    pub(crate) fn seal(&self) -> Result<()> {
        *self.state.write().map_err(|_| poisoned())? = SealState::Sealed { progress: None };
        tracing::info!("sealed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Envelope encryption has one caller above the store: this module.
    #[test]
    fn only_the_barrier_calls_envelope_encryption() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if !path.starts_with(root.join("seal"))
                    && std::fs::read_to_string(&path).unwrap().contains("envelope::")
                {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(offenders.is_empty(), "envelope encryption outside the seal barrier: {offenders:?}");
    }
}
