//! The PKCS#11 seal: the root key is kept only wrapped, by an AES-256 key
//! that is made on the token and can never leave it (sensitive, not
//! extractable). Wrapping and unwrapping are AES-GCM encryptions done by the
//! token itself (`CKM_AES_GCM`, a fresh 96-bit IV each time, the purpose as
//! associated data), so a copy of the database holds 60 bytes nobody can
//! open without the token and its PIN.
//!
//! Every operation loads the library, opens a session (read-only unless a
//! key is made), logs in, works, logs out and finalizes again, on every
//! path: nothing of the token stays open between an unseal and the
//! next, and a token that was replaced or repaired meanwhile is seen afresh.
//! One operation runs at a time in the process (PKCS#11 allows one
//! `C_Initialize` per library). Each failure is its own [`HsmError`], with
//! what to do about it; none carries the PIN or key bytes. The calls block:
//! callers on the runtime use `spawn_blocking`.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use keyward_core::keyring::RootKey;
use ring::rand::{SecureRandom, SystemRandom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The associated data of the wrapped root key: what the ciphertext is for.
const AAD: &[u8] = b"keyward/v1/root-key";
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const ROOT_LEN: usize = 32;
/// The length of a wrapped root key: IV, ciphertext, tag.
pub(crate) const WRAPPED_LEN: usize = IV_LEN + ROOT_LEN + TAG_LEN;

/// Serialises PKCS#11 use in this process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the wrapping key is: library, slot and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The PKCS#11 library.
    pub lib: PathBuf,
    /// The slot id (as `softhsm2-util --show-slots` or `pkcs11-tool -L` print it).
    pub slot: u64,
    /// The wrapping key's label.
    pub key_label: String,
}

/// Why the HSM did not wrap or unwrap the root key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HsmError {
    /// The library is not there, or may not be loaded.
    #[error("cannot use the PKCS#11 library {lib}: {reason}")]
    Library {
        /// The path given.
        lib: String,
        /// Why.
        reason: String,
    },
    /// The PIN's environment variable is not set.
    #[error("the token's user PIN is not in the environment: set {0} (keyward never takes a PIN in argv or a file)")]
    PinMissing(String),
    /// No token in that slot.
    #[error("no token in slot {slot} of {lib} (slots with a token: {present})")]
    NoToken {
        /// The library.
        lib: String,
        /// The slot asked for.
        slot: u64,
        /// The slots that have one.
        present: String,
    },
    /// The token refused the PIN.
    #[error(
        "the token in slot {0} refused the PIN ({1}); keyward does not try a refused PIN again, so the token does not lock: restart with the right PIN, or give it with `keyward operator unseal --pin-env VAR`"
    )]
    PinRefused(u64, String),
    /// The token is locked.
    #[error("the token in slot {0} is locked after too many wrong PINs: its security officer must reset the user PIN")]
    PinLocked(u64),
    /// The token has one PIN try left.
    #[error(
        "the token in slot {0} allows one more PIN try: keyward will not spend it; log in once with the right PIN with the token's own tools (or have its security officer reset the PIN), then try again"
    )]
    PinNearlyLocked(u64),
    /// The server was not told which library to load.
    #[error(
        "this data is sealed by an HSM (through {0}): start keyward with --pkcs11-lib LIB; the library whose code runs in keyward is chosen by whoever starts it, never read from the data"
    )]
    LibraryNotGiven(String),
    /// No key with the label.
    #[error(
        "no AES key labelled {label:?} on the token in slot {slot}: it was deleted, or this is another token (the root key cannot be opened without it)"
    )]
    KeyMissing {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
    },
    /// More than one key with the label.
    #[error("{count} secret keys are labelled {label:?} on the token in slot {slot}: give each key its own label")]
    KeyAmbiguous {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
        /// How many.
        count: usize,
    },
    /// The key could leave the token, or is not an AES-256 key.
    #[error("the key labelled {label:?} is not fit to wrap the root key: {why}")]
    KeyUnfit {
        /// The label.
        label: String,
        /// What is wrong with it.
        why: String,
    },
    /// The token's key did not open the wrapped root key.
    #[error(
        "the key labelled {label:?} on the token in slot {slot} does not open this data's root key ({rv}): it is not the key this data was sealed with (or, if it is, the token failed while decrypting)"
    )]
    WrongKey {
        /// The label.
        label: String,
        /// The slot.
        slot: u64,
        /// What the token answered (tokens differ: SoftHSM2 says CKR_GENERAL_ERROR).
        rv: String,
    },
    /// The token failed during an operation.
    #[error(
        "the HSM failed while trying to {what}: {rv}; nothing was changed, the server stays sealed until it works again"
    )]
    Token {
        /// What was being done.
        what: &'static str,
        /// The PKCS#11 return value.
        rv: String,
    },
    /// The stored wrapped key is not one.
    #[error("the seal record's wrapped root key is malformed ({0} bytes, expected {WRAPPED_LEN})")]
    Malformed(usize),
}

impl HsmError {
    /// True when the PIN itself was refused: retrying with it again only
    /// brings the token closer to locking.
    pub fn is_pin_refused(&self) -> bool {
        matches!(self, HsmError::PinRefused(..) | HsmError::PinLocked(_) | HsmError::PinNearlyLocked(_))
    }
}

/// Reads the PIN from the environment variable `var`.
pub fn pin_from_env(var: &str) -> Result<Zeroizing<String>, HsmError> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok(Zeroizing::new(p)),
        _ => Err(HsmError::PinMissing(var.to_string())),
    }
}

/// True for a name an environment variable may have.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn rv_text(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{rv:?} from {f:?}"),
        other => other.to_string(),
    }
}

fn token_err(what: &'static str) -> impl Fn(CkError) -> HsmError {
    move |e| HsmError::Token { what, rv: rv_text(&e) }
}

/// Refuses a library that is not an absolute path to a regular file only
/// its owner may change: loading a library runs its code in keyward.
fn check_library(lib: &Path) -> Result<(), HsmError> {
    let fail = |reason: String| HsmError::Library { lib: lib.display().to_string(), reason };
    if !lib.is_absolute() {
        return Err(fail("give an absolute path".into()));
    }
    let meta = std::fs::metadata(lib).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(fail(format!(
            "others may change it (mode {:o}); a library loaded into keyward must not be",
            mode & 0o777
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(fail(format!("it belongs to user {}, neither root nor the user keyward runs as", meta.uid())));
    }
    if let Some(dir) = lib.parent()
        && let Ok(d) = std::fs::metadata(dir)
        && d.permissions().mode() & 0o022 != 0
        && d.permissions().mode() & 0o1000 == 0
    {
        return Err(fail(format!("others may replace it: its directory {} is writable by them", dir.display())));
    }
    Ok(())
}

/// Finalizes the library however the operation ends (cryptoki does not on
/// drop): a later operation starts from a clean `C_Initialize`.
struct Initialized(Pkcs11);

impl Drop for Initialized {
    fn drop(&mut self) {
        let _ = self.0.clone().finalize();
    }
}

/// Refuses to spend a PIN try the token cannot spare.
fn check_pin_tries(ctx: &Pkcs11, slot: Slot, id: u64) -> Result<(), HsmError> {
    let info = ctx.get_token_info(slot).map_err(token_err("read the token's state"))?;
    if info.user_pin_locked() {
        return Err(HsmError::PinLocked(id));
    }
    // COUNT_LOW only says a wrong PIN was given since the last success
    // (SoftHSM2 sets it after one); the last try is never spent by keyward.
    if info.user_pin_final_try() {
        return Err(HsmError::PinNearlyLocked(id));
    }
    Ok(())
}

/// Runs `work` in a logged-in session on `token`'s slot (read-write only
/// when `rw`: a key is made).
fn with_session<T>(
    token: &Token,
    pin: &str,
    rw: bool,
    work: impl FnOnce(&Session) -> Result<T, HsmError>,
) -> Result<T, HsmError> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    check_library(&token.lib)?;
    let lib = token.lib.display().to_string();
    let ctx = Pkcs11::new(&token.lib).map_err(|e| HsmError::Library { lib: lib.clone(), reason: e.to_string() })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Left initialised by an earlier user of the library in this process: ours now.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(token_err("initialise the library")(e)),
    }
    let ctx = Initialized(ctx);
    let slots = ctx.0.get_slots_with_token().map_err(token_err("list its slots"))?;
    let Some(slot) = slots.iter().copied().find(|s| s.id() == token.slot) else {
        let present = slots.iter().map(|s| s.id().to_string()).collect::<Vec<_>>().join(", ");
        return Err(HsmError::NoToken {
            lib,
            slot: token.slot,
            present: if present.is_empty() { "none".into() } else { present },
        });
    };
    check_pin_tries(&ctx.0, slot, token.slot)?;
    let session = if rw { ctx.0.open_rw_session(slot) } else { ctx.0.open_ro_session(slot) }
        .map_err(token_err("open a session"))?;
    match session.login(UserType::User, Some(&AuthPin::from(pin.to_owned()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e @ CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange, _)) => {
            return Err(HsmError::PinRefused(token.slot, rv_text(&e)));
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(HsmError::PinLocked(token.slot)),
        Err(e) => return Err(token_err("log in")(e)),
    }
    let out = work(&session);
    let _ = session.logout();
    drop(session);
    out
}

/// The one secret key labelled `label` on the token, if any.
fn find_key(session: &Session, token: &Token) -> Result<Option<ObjectHandle>, HsmError> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(token.key_label.as_bytes().to_vec()),
        ])
        .map_err(token_err("find the wrapping key"))?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0])),
        count => Err(HsmError::KeyAmbiguous { label: token.key_label.clone(), slot: token.slot, count }),
    }
}

/// Refuses a key that could leave the token or is not AES-256.
fn check_key(session: &Session, token: &Token, key: ObjectHandle) -> Result<(), HsmError> {
    let attrs = session
        .get_attributes(
            key,
            &[AttributeType::KeyType, AttributeType::Sensitive, AttributeType::Extractable, AttributeType::ValueLen],
        )
        .map_err(token_err("read the wrapping key's attributes"))?;
    let unfit = |why: &str| HsmError::KeyUnfit { label: token.key_label.clone(), why: why.into() };
    for a in attrs {
        match a {
            Attribute::KeyType(t) if t != KeyType::AES => return Err(unfit("it is not an AES key")),
            Attribute::Sensitive(false) => return Err(unfit("it is not sensitive (CKA_SENSITIVE is false)")),
            Attribute::Extractable(true) => return Err(unfit("it can be exported from the token (CKA_EXTRACTABLE)")),
            Attribute::ValueLen(n) if u64::from(n) != ROOT_LEN as u64 => {
                return Err(unfit("it is not a 256-bit key"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes the wrapping key on the token: AES-256, kept on the token,
/// private, sensitive, never extractable, for encryption only.
fn generate_key(session: &Session, token: &Token) -> Result<ObjectHandle, HsmError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen((ROOT_LEN as u64).into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Label(token.key_label.as_bytes().to_vec()),
    ];
    session.generate_key(&Mechanism::AesKeyGen, &template).map_err(token_err("make the wrapping key"))
}

fn decrypt(session: &Session, token: &Token, key: ObjectHandle, wrapped: &[u8]) -> Result<RootKey, HsmError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(HsmError::Malformed(wrapped.len()));
    }
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&wrapped[..IV_LEN]);
    let params = GcmParams::new(&mut iv, AAD, ((TAG_LEN * 8) as u64).into()).map_err(token_err("set up AES-GCM"))?;
    let plain =
        session.decrypt(&Mechanism::AesGcm(params), key, &wrapped[IV_LEN..]).map(Zeroizing::new).map_err(|e| {
            match &e {
                // A GCM tag that does not verify: the standard answer, and what SoftHSM2 says instead.
                CkError::Pkcs11(
                    RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::GeneralError
                    | RvError::FunctionFailed,
                    _,
                ) => HsmError::WrongKey { label: token.key_label.clone(), slot: token.slot, rv: rv_text(&e) },
                _ => token_err("unwrap the root key")(e),
            }
        })?;
    RootKey::from_slice(&plain)
        .map_err(|_| HsmError::Token { what: "unwrap the root key", rv: "it answered the wrong length".into() })
}

/// Wraps `root` with the token's key labelled as `token` says, making the
/// key first when `create` and none has that label. Before answering, the
/// wrapped key is opened again on the token and compared: what is stored
/// is known to unseal.
pub fn wrap(token: &Token, pin: &str, root: &RootKey, create: bool) -> Result<Vec<u8>, HsmError> {
    with_session(token, pin, true, |session| {
        let key = match find_key(session, token)? {
            Some(k) => k,
            None if create => generate_key(session, token)?,
            None => return Err(HsmError::KeyMissing { label: token.key_label.clone(), slot: token.slot }),
        };
        check_key(session, token, key)?;
        let mut iv = [0u8; IV_LEN];
        SystemRandom::new()
            .fill(&mut iv)
            .map_err(|_| HsmError::Token { what: "draw an IV", rv: "no system randomness".into() })?;
        let params =
            GcmParams::new(&mut iv, AAD, ((TAG_LEN * 8) as u64).into()).map_err(token_err("set up AES-GCM"))?;
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), key, root.expose_bytes())
            .map_err(token_err("wrap the root key"))?;
        // Read after the call: a token that makes its own IV writes it back here.
        let mut wrapped = iv.to_vec();
        wrapped.extend_from_slice(&sealed);
        let back = decrypt(session, token, key, &wrapped)?;
        if !back.matches_check(&root.check_value()) {
            return Err(HsmError::Token { what: "check the wrapped root key", rv: "it opened to another key".into() });
        }
        Ok(wrapped)
    })
}

/// Opens a wrapped root key on the token. The caller still checks it
/// against the seal record's check value before using it.
pub fn unwrap(token: &Token, pin: &str, wrapped: &[u8]) -> Result<RootKey, HsmError> {
    with_session(token, pin, false, |session| {
        let key = find_key(session, token)?
            .ok_or_else(|| HsmError::KeyMissing { label: token.key_label.clone(), slot: token.slot })?;
        decrypt(session, token, key, wrapped)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert!(valid_env_name("KEYWARD_HSM_PIN"));
        assert!(valid_env_name("_PIN2"));
        for bad in ["", "pin", "2PIN", "A-B", "A B", "PIN$"] {
            assert!(!valid_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_library_others_may_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib.so");
        std::fs::write(&lib, b"").unwrap();
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_library(&lib).unwrap_err();
        assert!(e.to_string().contains("others may change it"), "{e}");
        assert!(check_library(Path::new("relative.so")).unwrap_err().to_string().contains("absolute"));
        assert!(check_library(dir.path()).unwrap_err().to_string().contains("not a regular file"));
        let missing = check_library(&dir.path().join("nope.so")).unwrap_err();
        assert!(matches!(missing, HsmError::Library { .. }), "{missing}");
    }

    #[test]
    fn a_malformed_wrapped_key_is_named() {
        assert_eq!(
            HsmError::Malformed(3).to_string(),
            "the seal record's wrapped root key is malformed (3 bytes, expected 60)"
        );
    }
}
