//! The barrier's side of the PKCS#11 seal: opening the root key through
//! the HSM (at start, and when an operator asks), and remembering why the
//! last attempt failed so that health can say it and a refused PIN is
//! never tried again.
//!
//! The unseal request is anonymous (a sealed server can verify no key), so
//! what it may make the HSM do is bounded: with no PIN in the request it
//! only retries after a failure of the HSM (a token that came back), never
//! after an operator sealed the server on purpose and never with a PIN the
//! token refused; a PIN sent in the request is the credential, refused at
//! most three times per process and never on the token's last try, so
//! nobody on the network can lock the token.

use super::Barrier;
use super::hsm::{self, HsmError, Token};
use crate::error::{Code, Error, Result};
use keyward_core::keyring::{RootKey, hex_decode};
use keyward_store::{SealKind, SealRecord};
use std::path::Path;
use zeroize::Zeroizing;

/// What the barrier remembers of the HSM between attempts.
#[derive(Debug, Default)]
pub(super) struct HsmState {
    /// The last attempt's failure, for health and status.
    failure: Option<HsmError>,
    /// Sealed by an operator (`operator seal`), not by a failure.
    operator_sealed: bool,
    /// PINs from unseal requests the token refused (never reset but by a restart).
    request_pins_refused: u32,
}

/// The token a PKCS#11 seal record names, reached through `lib`, the
/// library the server was started with: never one the data names (loading
/// a library runs its code in keyward).
pub(crate) fn token_of(record: &SealRecord, lib: Option<&Path>) -> std::result::Result<(Token, String), HsmError> {
    match &record.kind {
        SealKind::Pkcs11 { lib: recorded, slot, key_label, pin_env, .. } => {
            let lib = lib.ok_or_else(|| HsmError::LibraryNotGiven(recorded.clone()))?;
            Ok((Token { lib: lib.to_path_buf(), slot: *slot, key_label: key_label.clone() }, pin_env.clone()))
        }
        _ => Err(HsmError::LibraryNotGiven("no HSM".into())),
    }
}

/// Refused PINs from unseal requests after which no more are tried until a
/// restart, whatever the token's own counter allows.
const REQUEST_PIN_LIMIT: u32 = 3;

/// Runs a blocking HSM call off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, HsmError> + Send + 'static,
) -> Result<std::result::Result<T, HsmError>> {
    tokio::task::spawn_blocking(work).await.map_err(|_| Error::internal("the HSM task panicked"))
}

/// The `hsm_unavailable` error for an HSM failure.
pub(crate) fn hsm_error(e: &HsmError) -> Error {
    Error::new(Code::HsmUnavailable, e.to_string())
}

impl Barrier {
    /// Opens the root key of a PKCS#11 seal through the HSM and checks it
    /// against the record. `pin` comes from an unseal request; without it
    /// the server's own environment variable is read, which is refused
    /// after an operator seal or a refused PIN (see the module doc).
    /// Nothing is installed here: the caller unseals with the key.
    pub(crate) async fn hsm_root(
        &self,
        record: &SealRecord,
        lib_override: Option<&Path>,
        pin: Option<Zeroizing<String>>,
    ) -> Result<RootKey> {
        if !matches!(record.kind, SealKind::Pkcs11 { .. }) {
            return Err(Error::invalid("this server does not unseal through an HSM"));
        }
        let (token, pin_env) = token_of(record, lib_override).map_err(|e| self.remember(e))?;
        let SealKind::Pkcs11 { wrapped, .. } = &record.kind else { unreachable!("checked above") };
        let from_request = pin.is_some();
        let pin = match pin {
            Some(p) => {
                let refused = self.hsm.lock().map_err(|_| super::poisoned())?.request_pins_refused;
                if refused >= REQUEST_PIN_LIMIT {
                    return Err(Error::new(
                        Code::InvalidState,
                        format!(
                            "{refused} PINs sent with unseal requests were refused: no more are tried until keyward restarts, so the token does not lock"
                        ),
                    ));
                }
                p
            }
            None => {
                let st = self.hsm.lock().map_err(|_| super::poisoned())?;
                if st.operator_sealed {
                    return Err(Error::new(
                        Code::InvalidState,
                        format!(
                            "an operator sealed this server: unseal it with the token's PIN (keyward operator unseal --pin-env {pin_env}) or restart it"
                        ),
                    ));
                }
                if let Some(f) = st.failure.as_ref().filter(|f| f.is_pin_refused()) {
                    return Err(hsm_error(f));
                }
                drop(st);
                hsm::pin_from_env(&pin_env).map_err(|e| self.remember(e))?
            }
        };
        let wrapped = hex_decode(wrapped).ok_or_else(|| Error::internal("the wrapped root key is not hex"))?;
        let opened = blocking(move || hsm::unwrap(&token, &pin, &wrapped)).await?;
        let root = match opened {
            Ok(root) => root,
            // A PIN from a request that the token refused is counted, not
            // remembered: a stranger's wrong PIN must not stop the server's
            // own retries.
            Err(e) if from_request && e.is_pin_refused() => {
                tracing::warn!(error = %e, "an unseal request's PIN was refused by the token");
                if let Ok(mut st) = self.hsm.lock() {
                    st.request_pins_refused += 1;
                }
                return Err(hsm_error(&e));
            }
            Err(e) => return Err(self.remember(e)),
        };
        let check = hex_decode(&record.check).ok_or_else(|| Error::internal("bad check value"))?;
        if !root.matches_check(&check) {
            return Err(Error::new(
                Code::UnsealKeyMismatch,
                "the HSM opened a key that is not this data's root key: the seal record was changed",
            ));
        }
        let mut st = self.hsm.lock().map_err(|_| super::poisoned())?;
        (st.failure, st.operator_sealed) = (None, false);
        Ok(root)
    }

    /// Records an HSM failure (logged without any secret) and makes the error.
    pub(crate) fn remember(&self, e: HsmError) -> Error {
        tracing::error!(error = %e, "the HSM did not unseal keyward; it stays sealed");
        let err = hsm_error(&e);
        if let Ok(mut st) = self.hsm.lock() {
            st.failure = Some(e);
        }
        err
    }

    /// Why the HSM last failed, while sealed.
    pub(crate) fn hsm_failure(&self) -> Option<String> {
        if !self.is_sealed() {
            return None;
        }
        self.hsm.lock().ok().and_then(|st| st.failure.as_ref().map(ToString::to_string))
    }

    /// Notes that an operator sealed the server: the HSM is not asked to
    /// unseal it again without the PIN.
    pub(crate) fn note_operator_seal(&self) {
        if let Ok(mut st) = self.hsm.lock() {
            st.operator_sealed = true;
        }
    }
}
