//! Moving the root key from one seal to another (key file, HSM, Shamir
//! shares) while the server stays unsealed and serving. The root key does
//! not change, so no secret is re-encrypted; what changes is how it is kept.
//!
//! The caller must prove it could unseal the server with the seal in
//! force today ([`Barrier::prove_current`]: the key file's text, the
//! token's PIN, or a threshold of the shares): `sys:admin` alone never
//! turns into a root key in a file or in shares.
//!
//! In two steps, so the caller can put its decision on the audit log in
//! between: [`Barrier::prepare_migration`] makes the new seal (writes the
//! new key file, or wraps the key on the token and opens it again there to
//! prove it unseals, or splits new shares) without changing the record;
//! [`Barrier::commit_migration`] then switches the seal record in one
//! write. A failure before the switch leaves the old seal in force and
//! removes what was prepared ([`Migrated::abandon`]): never half-migrated.

use super::hsm::{self, Token};
use super::pkcs11::{blocking, hsm_error};
use super::{Barrier, poisoned};
use crate::error::{Code, Error, Result};
use keyward_core::keyring::{RootKey, hex_decode, hex_encode};
use keyward_core::shamir::{self, Share, UnsealProgress, UnsealStep};
use keyward_store::{SealKind, SealRecord};
use std::io::{Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The seal to move to.
#[derive(Debug)]
pub(crate) enum SealTarget {
    /// An unseal key file, written at this path (the server's own).
    KeyFile(PathBuf),
    /// A key on a PKCS#11 token; the PIN is read from `pin_env` in the
    /// server's environment, as it will be at every start.
    Pkcs11 {
        /// Library, slot and label.
        token: Token,
        /// The PIN's environment variable.
        pin_env: String,
    },
    /// New Shamir shares, encrypted to `recipients` when there are any.
    Shamir {
        /// Shares to make.
        shares: u8,
        /// Shares needed.
        threshold: u8,
        /// One age recipient per share, or none.
        recipients: Vec<age::x25519::Recipient>,
    },
}

/// What proves the caller could unseal with the seal in force: the one
/// its kind needs.
#[derive(Default)]
pub(crate) struct Proof {
    /// Key-file seal: the file's text.
    pub key: Option<Zeroizing<String>>,
    /// HSM seal: the token's user PIN.
    pub pin: Option<Zeroizing<String>>,
    /// Shamir seal: a threshold of the shares.
    pub shares: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("pin", &self.pin.as_ref().map(|_| "[redacted]"))
            .field("shares", &self.shares.len())
            .finish()
    }
}

/// A prepared migration: the new seal, not yet in force.
#[derive(Debug)]
pub(crate) struct Migrated {
    /// The seal the record will hold.
    pub kind: SealKind,
    /// New shares (Shamir), shown once; age ciphertext when `encrypted`.
    pub shares: Vec<Zeroizing<String>>,
    /// The shares are encrypted to their custodians.
    pub encrypted: bool,
    /// The key file written (key-file target).
    pub key_file: Option<PathBuf>,
}

impl Migrated {
    /// Removes what was prepared when the migration does not go ahead.
    pub(crate) fn abandon(&self) {
        if let Some(f) = &self.key_file {
            let _ = remove_key_file(f);
        }
    }
}

/// Refuses a share set that could not be split: the threshold is at least 2
/// and at most the shares (rekey and migration alike).
pub(super) fn check_share_counts(shares: u8, threshold: u8) -> Result<()> {
    if threshold < 2 || shares < threshold {
        return Err(Error::new(
            Code::ShareMalformed,
            format!(
                "{shares} shares with a threshold of {threshold}: the threshold is at least 2 and at most the shares"
            ),
        ));
    }
    Ok(())
}

/// Splits `root` into a new share set, each share encrypted to its
/// recipient when there are recipients. Answers the set id and the shares.
pub(super) fn split_shares(
    root: &RootKey,
    shares: u8,
    threshold: u8,
    recipients: &[age::x25519::Recipient],
) -> Result<(String, Vec<Zeroizing<String>>)> {
    let set_id = shamir::new_set_id()?;
    let parts = shamir::split(root, shares, threshold, &set_id)?;
    let answered = if recipients.is_empty() {
        parts.iter().map(Share::encode).collect()
    } else {
        parts
            .iter()
            .zip(recipients)
            .map(|(p, r)| keyward_core::custody::seal_share(&p.encode(), r).map(Zeroizing::new))
            .collect::<std::result::Result<_, _>>()?
    };
    Ok((set_id, answered))
}

/// Writes an unseal key file: mode 0600, synced, never over an existing
/// file (`AlreadyExists`).
pub(crate) fn write_key_file(path: &Path, root: &RootKey) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(root.to_unseal_file().as_bytes())?;
    f.sync_all()
}

/// Overwrites an unseal key file with zeros, syncs it, and removes it. The
/// key it held still opens this data: copies of it elsewhere must go too.
pub(crate) fn remove_key_file(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    f.rewind()?;
    f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)
}

fn same_seal(from: &SealKind, to: &SealTarget) -> bool {
    match (from, to) {
        (SealKind::Keyfile, SealTarget::KeyFile(_)) => true,
        (SealKind::Pkcs11 { slot, key_label, .. }, SealTarget::Pkcs11 { token, .. }) => {
            *slot == token.slot && *key_label == token.key_label
        }
        _ => false,
    }
}

impl Barrier {
    /// Checks that `proof` yields the root key in force. The record must
    /// still name that key (its check value): a record changed in the
    /// database is refused, so a forged seal cannot make a forged proof
    /// pass. The key file's text proves it whatever the seal (so a key file
    /// kept after moving to shares still recovers a lost answer); a PIN
    /// proves it through the record's token; shares through the record's set.
    pub(crate) async fn prove_current(&self, record: &SealRecord, proof: Proof, lib: Option<&Path>) -> Result<()> {
        let live = self.root_copy()?.check_value();
        let stored = hex_decode(&record.check).ok_or_else(|| Error::internal("bad check value"))?;
        // Check values are not secret (the database holds them): a plain comparison.
        if stored.as_slice() != live.as_slice() {
            return Err(Error::new(
                Code::InvalidState,
                "the seal record no longer names the root key in force: it was changed in the database; nothing is migrated",
            ));
        }
        let missing = |what: String| {
            Error::invalid(format!("moving the seal needs proof that you can unseal with the current one: {what}"))
        };
        if let Some(text) = proof.key {
            if !RootKey::from_unseal_file(&text)?.matches_check(&live) {
                return Err(Error::new(
                    Code::UnsealKeyMismatch,
                    "this unseal key does not belong to this keyward data",
                ));
            }
            return Ok(());
        }
        match &record.kind {
            SealKind::Keyfile => Err(missing("the unseal key file's text (current.key)".into())),
            SealKind::Pkcs11 { .. } => {
                let pin = proof.pin.ok_or_else(|| missing("the token's user PIN (current.pin)".into()))?;
                self.hsm_root(record, lib, Some(pin)).await.map(drop)
            }
            SealKind::Shamir { set_id, threshold, .. } => {
                let mut progress = UnsealProgress::new(set_id, *threshold);
                for s in &proof.shares {
                    if let UnsealStep::Complete(_) = progress.add(Share::parse(s)?, &live)? {
                        return Ok(());
                    }
                }
                Err(missing(format!("{threshold} of the current shares (current.shares)")))
            }
        }
    }

    /// Makes the new seal for the root key in force; the record is not
    /// changed (see the module doc). Hold [`Barrier::transition`] across
    /// it and [`Barrier::commit_migration`].
    pub(crate) async fn prepare_migration(&self, target: SealTarget) -> Result<Migrated> {
        let root = self.root_copy()?;
        let record = self.record().await?;
        if same_seal(&record.kind, &target) {
            return Err(Error::new(Code::InvalidState, "the root key is already sealed this way"));
        }
        match target {
            SealTarget::KeyFile(path) => {
                write_key_file(&path, &root).map_err(|e| {
                    Error::new(Code::InvalidState, format!("cannot write the unseal key file {}: {e}", path.display()))
                })?;
                Ok(Migrated { kind: SealKind::Keyfile, shares: Vec::new(), encrypted: false, key_file: Some(path) })
            }
            SealTarget::Pkcs11 { token, pin_env } => {
                let pin = hsm::pin_from_env(&pin_env).map_err(|e| hsm_error(&e))?;
                let (lib, slot, key_label) = (token.lib.display().to_string(), token.slot, token.key_label.clone());
                let wrapped = blocking(move || hsm::wrap(&token, &pin, &root, true)).await?.map_err(|e| {
                    tracing::error!(error = %e, "the HSM did not wrap the root key; the seal is unchanged");
                    hsm_error(&e)
                })?;
                let kind = SealKind::Pkcs11 { lib, slot, key_label, pin_env, wrapped: hex_encode(&wrapped) };
                Ok(Migrated { kind, shares: Vec::new(), encrypted: false, key_file: None })
            }
            SealTarget::Shamir { shares, threshold, recipients } => {
                check_share_counts(shares, threshold)?;
                let (set_id, answered) = split_shares(&root, shares, threshold, &recipients)?;
                Ok(Migrated {
                    kind: SealKind::Shamir { shares, threshold, set_id },
                    shares: answered,
                    encrypted: !recipients.is_empty(),
                    key_file: None,
                })
            }
        }
    }

    /// Puts a prepared seal in force: one write of the seal record. A rekey
    /// in progress is dropped (its shares belong to the old seal).
    pub(crate) async fn commit_migration(&self, m: &Migrated) -> Result<()> {
        let mut record = self.record().await?;
        record.kind = m.kind.clone();
        self.store.put_seal_record(&record).await?;
        *self.rekey.lock().map_err(|_| poisoned())? = None;
        tracing::info!("the root key's seal was migrated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_file_is_zeroed_first() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, b"secret key text").unwrap();
        let linked = dir.path().join("hard");
        std::fs::hard_link(&f, &linked).unwrap();
        remove_key_file(&f).unwrap();
        assert!(!f.exists());
        // Another name for the same file sees the zeros.
        assert_eq!(std::fs::read(&linked).unwrap(), vec![0u8; 15]);
    }
}
