//! Per-account incident controls: whether an exchange account is frozen,
//! its withdrawal address allowlist and caps, its dead-man timer, and the
//! withdrawals counted against the caps over the last 24 hours.
//!
//! They are keyward's own documents, kept as encrypted secret versions
//! under `_keyward/` (which the secrets API never serves or writes): a
//! copy of the database reads nothing from them, a write to it cannot
//! forge one (the envelope's AEAD binds each version to its path and
//! number), every change is a new version written with check-and-set (two
//! nodes racing on one account both see the other's change), and other
//! nodes hear each change like any secret's. The sign API and the proxy read
//! them on every request, from memory.
//!
//! Never logs a document; addresses are no secret, but they stay out of logs too.

mod withdrawals;

pub(crate) use withdrawals::{Planned, Reserved};

use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use crate::secrets::{Secrets, Version};
use keyward_core::clock::Clock;
use keyward_core::secret::{SecretData, SecretValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Where keyward keeps its own documents. The secrets API refuses every
/// path below it.
pub(crate) const INTERNAL_PREFIX: &str = "_keyward/";

/// Where an account's controls live.
const ACCOUNTS: &str = "_keyward/accounts/";

/// The one field of a document's secret version.
const DOC_FIELD: &str = "doc";

/// How many times a check-and-set write is tried against other writers.
const CAS_TRIES: usize = 32;

/// The path of an account's controls.
fn controls_path(account: &str) -> String {
    format!("{ACCOUNTS}{account}/controls")
}

/// What freezing an account recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct Frozen {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The key that froze it.
    pub by: String,
    /// Why, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One destination withdrawals may go to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct AllowedAddress {
    /// The asset, upper-case.
    pub asset: String,
    /// The address (or, for Kraken, the withdrawal key's name).
    pub address: String,
    /// The network; `None`: any network the exchange takes for the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The memo or tag; `None`: the withdrawal may carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// When it was added (ms).
    pub added_ms: i64,
    /// The key that asked for it.
    pub by: String,
}

/// An account's controls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct AccountControls {
    /// Set while the account is frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
    /// Where withdrawals may go; nowhere when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AllowedAddress>,
    /// Asset → the most that may leave in any 24 hours (a decimal); an
    /// asset without a cap is held to its addresses only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caps: BTreeMap<String, String>,
    /// The exchange's cancel-on-disconnect timer, in seconds, kept armed
    /// while keyward runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_man_s: Option<u32>,
}

/// A document read from its secret version.
fn parse<T: DeserializeOwned + Default>(path: &str, v: Option<&Version>) -> Result<T> {
    let Some(v) = v else { return Ok(T::default()) };
    let text = v.data.0.get(DOC_FIELD).map(|d| d.expose().to_string()).unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| Error::internal(&format!("keyward's document {path} does not read: {e}")))
}

fn encode<T: Serialize>(doc: &T) -> Result<SecretData> {
    let text = serde_json::to_string(doc).map_err(|e| Error::internal(&e.to_string()))?;
    let mut data = SecretData::default();
    data.0.insert(DOC_FIELD.to_string(), SecretValue::new(text));
    Ok(data)
}

/// Parsed controls, with the version they were parsed from.
type Parsed = (Option<Arc<Version>>, Arc<AccountControls>);

/// The controls service.
#[derive(Debug)]
pub(crate) struct Controls {
    secrets: Arc<Secrets>,
    clock: Arc<dyn Clock>,
    parsed: RwLock<HashMap<String, Parsed>>,
}

fn same(a: &Option<Arc<Version>>, b: &Option<Arc<Version>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl Controls {
    /// The service over the secrets service.
    pub(crate) fn new(secrets: Arc<Secrets>, clock: Arc<dyn Clock>) -> Self {
        Self { secrets, clock, parsed: RwLock::new(HashMap::new()) }
    }

    /// An account's controls as they stand (none set: the default), from
    /// memory after the first read of each version.
    pub(crate) async fn get(&self, unsealed: &Unsealed, account: &str) -> Result<Arc<AccountControls>> {
        let path = controls_path(account);
        let version = self.secrets.current_opt(unsealed, &path).await?;
        if let Some((v, c)) = self.parsed.read().ok().and_then(|m| m.get(&path).cloned())
            && same(&v, &version)
        {
            return Ok(c);
        }
        let controls: Arc<AccountControls> = Arc::new(parse(&path, version.as_deref())?);
        if let Ok(mut m) = self.parsed.write() {
            m.insert(path, (version, controls.clone()));
        }
        Ok(controls)
    }

    /// Changes one of keyward's documents with check-and-set: reads the
    /// latest version, applies `change` (which may refuse: nothing is
    /// written), writes it if nobody wrote meanwhile, otherwise reads again.
    /// Returns the document as written and what `change` returned.
    pub(crate) async fn update_doc<T, R>(
        &self,
        unsealed: &Arc<Unsealed>,
        path: &str,
        change: impl Fn(&mut T) -> Result<R>,
    ) -> Result<(T, R)>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        for _ in 0..CAS_TRIES {
            let meta = self.secrets.meta(path).await?;
            let (latest, mut doc) = match &meta {
                Some(m) if m.current_version > 0 => {
                    let v = self.secrets.read(unsealed, path, Some(m.current_version)).await?;
                    (m.latest_version, parse::<T>(path, Some(&v))?)
                }
                Some(m) => (m.latest_version, T::default()),
                None => (0, T::default()),
            };
            let out = change(&mut doc)?;
            match self.secrets.write_doc(unsealed, path, encode(&doc)?, latest).await {
                Ok(_) => return Ok((doc, out)),
                Err(e) if e.code == Code::CasMismatch => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(Code::CasMismatch, format!("{path} is changing too often; try again")))
    }

    /// Changes an account's controls (see [`Controls::update_doc`]).
    pub(crate) async fn update<R>(
        &self,
        unsealed: &Arc<Unsealed>,
        account: &str,
        change: impl Fn(&mut AccountControls) -> Result<R>,
    ) -> Result<(AccountControls, R)> {
        self.update_doc(unsealed, &controls_path(account), change).await
    }

    /// One of keyward's documents as it stands (`None`: it does not exist).
    pub(crate) async fn doc<T: DeserializeOwned + Default>(
        &self,
        unsealed: &Unsealed,
        path: &str,
    ) -> Result<Option<T>> {
        match self.secrets.current_opt(unsealed, path).await? {
            Some(v) => parse(path, Some(&v)).map(Some),
            None => Ok(None),
        }
    }

    /// The paths of keyward's documents under `prefix` (which starts with [`INTERNAL_PREFIX`]).
    pub(crate) async fn doc_paths(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.secrets.list(prefix).await?.into_iter().map(|m| m.path).collect())
    }

    /// Every account that has controls, with them.
    pub(crate) async fn all(&self, unsealed: &Unsealed) -> Result<Vec<(String, Arc<AccountControls>)>> {
        let mut out = Vec::new();
        for meta in self.secrets.list(ACCOUNTS).await? {
            let Some(account) = meta.path.strip_prefix(ACCOUNTS).and_then(|p| p.strip_suffix("/controls")) else {
                continue;
            };
            out.push((account.to_string(), self.get(unsealed, account).await?));
        }
        Ok(out)
    }

    /// Now, on keyward's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Drops every parsed document (on seal).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut m) = self.parsed.write() {
            m.clear();
        }
    }
}
