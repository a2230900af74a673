//! Initialisation: make a root key, seal it (Shamir shares, an unseal key
//! file, or memory for `--dev`), write the seal record and a bootstrap admin
//! key. Runs locally on the data, never over the network, so nobody on the
//! network can initialise a server.

use crate::keys::{KEYWARD_NAMESPACE, new_record};
use crate::seal::Unsealed;
use keyward_core::access_key::{self, AccessKeySecret};
use keyward_core::keyring::{Keyring, RootKey, hex_encode};
use keyward_core::policy::KeyPolicy;
use keyward_core::scope::Scope;
use keyward_core::shamir::{self, Share};
use keyward_store::{SealKind, SealRecord, Store, StoreError};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How the new root key is kept.
#[derive(Debug, Clone)]
pub enum SealChoice {
    /// In an unseal key file at this path (the embedded default).
    KeyFile(PathBuf),
    /// As Shamir shares.
    Shamir {
        /// Shares to print.
        shares: u8,
        /// Shares needed to unseal.
        threshold: u8,
    },
    /// Wrapped by a key on a PKCS#11 token (made there if none has the label).
    Pkcs11 {
        /// Library, slot and key label.
        token: crate::hsm::Token,
        /// The environment variable the server reads the PIN from.
        pin_env: String,
        /// The PIN, read from that variable by whoever initialises.
        pin: Zeroizing<String>,
    },
    /// Only in memory (`server --dev`).
    Memory,
}

/// What initialisation produced; shown once.
#[derive(Debug)]
pub struct InitOutcome {
    /// The bootstrap admin key (every scope).
    pub admin_key: AccessKeySecret,
    /// The key id of the bootstrap key.
    pub admin_key_id: String,
    /// Shamir shares (empty unless Shamir).
    pub shares: Vec<Share>,
    /// The root key, for a server that unseals right away (key file, memory).
    pub root: Option<RootKey>,
    /// The seal record written.
    pub record: SealRecord,
}

/// Why initialisation failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The data is already initialised.
    #[error("this data is already initialised")]
    AlreadyInitialized,
    /// Refused to overwrite an unseal key file.
    #[error(
        "an unseal key file already exists at {0}, but the data is not initialised: refusing to overwrite it. Move it away if it is stale, or point --data at the data it belongs to"
    )]
    KeyFileExists(PathBuf),
    /// File system trouble.
    #[error("{0}")]
    Io(String),
    /// The HSM did not wrap the root key.
    #[error("{0}")]
    Hsm(#[from] crate::hsm::HsmError),
    /// Core refusal (parameters, randomness).
    #[error("{0}")]
    Core(#[from] keyward_core::CoreError),
    /// Store trouble.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for InitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyInitialized => InitError::AlreadyInitialized,
            other => InitError::Store(other.to_string()),
        }
    }
}

/// The default unseal key file of a data directory: beside it, not inside
/// (`./keyward-data` → `./keyward-data.unseal.key`), so one copied backup of
/// the directory does not hold both.
pub fn default_key_file(data_dir: &Path) -> PathBuf {
    let s = data_dir.as_os_str().to_string_lossy();
    let trimmed = s.trim_end_matches('/');
    PathBuf::from(format!("{}.unseal.key", if trimmed.is_empty() { "." } else { trimmed }))
}

/// The database file inside a data directory.
pub fn database_file(data_dir: &Path) -> PathBuf {
    data_dir.join("keyward.db")
}

/// Creates the data directory (mode 0700) if missing.
pub fn ensure_data_dir(dir: &Path) -> Result<(), InitError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| InitError::Io(format!("cannot create data directory {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Reads an unseal key file, refusing one that others may read.
pub fn read_key_file(path: &Path) -> Result<RootKey, InitError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        InitError::Io(format!(
            "cannot read the unseal key file {}: {e}. This data was initialised with an unseal key file; give its location with --unseal-key-file",
            path.display()
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(InitError::Io(format!(
            "the unseal key file {} is readable by other users (mode {mode:o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| InitError::Io(format!("cannot read {}: {e}", path.display())))?,
    );
    Ok(RootKey::from_unseal_file(&text)?)
}

/// Initialises `store`. For a key file, the file is written first (mode
/// 0600, refusing to overwrite) and removed again if the store write fails.
pub async fn initialize(store: &dyn Store, choice: &SealChoice, now_ms: i64) -> Result<InitOutcome, InitError> {
    if store.seal_record().await?.is_some() {
        return Err(InitError::AlreadyInitialized);
    }
    let root = RootKey::generate()?;
    let (kind, shares) = match choice {
        SealChoice::Shamir { shares, threshold } => {
            let set_id = shamir::new_set_id()?;
            let parts = shamir::split(&root, *shares, *threshold, &set_id)?;
            (SealKind::Shamir { shares: *shares, threshold: *threshold, set_id }, parts)
        }
        SealChoice::KeyFile(path) => {
            crate::seal::write_key_file(path, &root).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => InitError::KeyFileExists(path.to_path_buf()),
                _ => InitError::Io(format!("cannot write unseal key file {}: {e}", path.display())),
            })?;
            (SealKind::Keyfile, Vec::new())
        }
        SealChoice::Pkcs11 { token, pin_env, pin } => {
            let wrapped = crate::hsm::wrap(token, pin, &root, true)?;
            let kind = SealKind::Pkcs11 {
                lib: token.lib.display().to_string(),
                slot: token.slot,
                key_label: token.key_label.clone(),
                pin_env: pin_env.clone(),
                wrapped: hex_encode(&wrapped),
            };
            (kind, Vec::new())
        }
        SealChoice::Memory => (SealKind::Keyfile, Vec::new()),
    };
    let record = SealRecord {
        kind,
        check: hex_encode(&root.check_value()),
        created_ms: now_ms,
        active_term: 1,
        retired_terms: vec![],
    };
    let session = Unsealed::new(Keyring::new(RootKey::from_slice(root.expose_bytes())?, 1));
    let admin_key = AccessKeySecret::generate(access_key::DEFAULT_PREFIX)?;
    let policy = KeyPolicy { scopes: Scope::all(), ..KeyPolicy::default() };
    let rec = new_record(
        &session,
        &admin_key,
        "bootstrap-admin",
        Some("operator".into()),
        KEYWARD_NAMESPACE,
        &policy,
        None,
        now_ms,
    )
    .map_err(|e| InitError::Io(e.message))?;
    let (_, first) = crate::keys::Ledger::reseal(&session, std::slice::from_ref(&rec), &[], None, Vec::new());
    let first = keyward_store::LedgerWrite { insert_keys: vec![rec.clone()], ..first };
    if let Err(e) = store.initialize(&record, &first).await {
        if let SealChoice::KeyFile(path) = choice {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.into());
    }
    let keep_root = matches!(choice, SealChoice::KeyFile(_) | SealChoice::Memory);
    Ok(InitOutcome { admin_key, admin_key_id: rec.id, shares, root: keep_root.then_some(root), record })
}
