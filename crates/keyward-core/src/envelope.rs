//! Envelope encryption of secret versions.
//!
//! Each version gets a fresh 256-bit data key. The data is sealed with
//! AES-256-GCM under that key; the data key is sealed under the wrapping key
//! of the keyring's active term. Both seals take as associated data the
//! secret's path and version, so a ciphertext copied to another row (another
//! path, another version) no longer decrypts. The storage backend only ever
//! sees the blob below, never a key:
//!
//! ```text
//! "KWE1" | term u32 BE | wrap nonce (12) | wrapped data key (32+16) | data nonce (12) | data + tag
//! ```

use crate::keyring::Keyring;
use crate::{CoreError, random};
use ring::aead::{self, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"KWE1";
const TAG_LEN: usize = 16;
const DEK_LEN: usize = 32;
const HEADER_LEN: usize = 4 + 4 + NONCE_LEN + DEK_LEN + TAG_LEN + NONCE_LEN;

fn associated_data(purpose: &[u8], term: u32, path: &str, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + path.len());
    aad.extend_from_slice(b"keyward/v1/");
    aad.extend_from_slice(purpose);
    aad.push(0);
    aad.extend_from_slice(&term.to_be_bytes());
    aad.extend_from_slice(&(path.len() as u32).to_be_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Encrypts `plaintext` as version `version` of the secret at `path`.
pub fn seal(ring: &Keyring, path: &str, version: u64, plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
    let term = ring.active_term();
    let wrap = ring.wrap_key(term)?;
    let dek = Zeroizing::new(random::bytes::<DEK_LEN>()?);
    let wrap_nonce = random::bytes::<NONCE_LEN>()?;
    let data_nonce = random::bytes::<NONCE_LEN>()?;

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&wrap_nonce);

    let mut wrapped = Zeroizing::new(dek.to_vec());
    wrap.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(wrap_nonce),
        Aad::from(associated_data(b"data-key", term, path, version)),
        &mut *wrapped,
    )
    .map_err(|_| CoreError::Random)?;
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&data_nonce);

    let data_key = data_key(dek.as_ref())?;
    let mut body = Zeroizing::new(plaintext.to_vec());
    data_key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(data_nonce),
            Aad::from(associated_data(b"data", term, path, version)),
            &mut *body,
        )
        .map_err(|_| CoreError::Random)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a blob made by [`seal`] for the same `path` and `version`.
pub fn open(ring: &Keyring, path: &str, version: u64, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    if blob.len() < HEADER_LEN + TAG_LEN {
        return Err(CoreError::Envelope("too short"));
    }
    if &blob[..4] != MAGIC {
        return Err(CoreError::Envelope("unknown format marker"));
    }
    let term = term_of(blob)?;
    let wrap = ring.wrap_key(term)?;
    let mut at = 8;
    let wrap_nonce = nonce(&blob[at..at + NONCE_LEN])?;
    at += NONCE_LEN;
    let mut wrapped = Zeroizing::new(blob[at..at + DEK_LEN + TAG_LEN].to_vec());
    at += DEK_LEN + TAG_LEN;
    let dek = wrap
        .open_in_place(wrap_nonce, Aad::from(associated_data(b"data-key", term, path, version)), &mut wrapped)
        .map_err(|_| CoreError::Decrypt)?;
    let data_key = data_key(dek)?;
    let data_nonce = nonce(&blob[at..at + NONCE_LEN])?;
    at += NONCE_LEN;
    let mut body = Zeroizing::new(blob[at..].to_vec());
    let plain_len = data_key
        .open_in_place(data_nonce, Aad::from(associated_data(b"data", term, path, version)), &mut body)
        .map_err(|_| CoreError::Decrypt)?
        .len();
    body.truncate(plain_len);
    Ok(body)
}

/// The keyring term a blob was written under (for rewrapping).
pub fn term_of(blob: &[u8]) -> Result<u32, CoreError> {
    let bytes: [u8; 4] = blob.get(4..8).and_then(|b| b.try_into().ok()).ok_or(CoreError::Envelope("too short"))?;
    Ok(u32::from_be_bytes(bytes))
}

fn data_key(dek: &[u8]) -> Result<LessSafeKey, CoreError> {
    UnboundKey::new(&AES_256_GCM, dek).map(LessSafeKey::new).map_err(|_| CoreError::Envelope("bad data key length"))
}

fn nonce(bytes: &[u8]) -> Result<Nonce, CoreError> {
    Nonce::try_assume_unique_for_key(bytes).map_err(|_| CoreError::Envelope("bad nonce"))
}

// Keeps the `aead` import honest about which algorithm the format promises.
const _: () = assert!(aead::MAX_TAG_LEN == TAG_LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::RootKey;

    fn ring() -> Keyring {
        Keyring::new(RootKey::from_slice(&[9u8; 32]).unwrap(), 1)
    }

    #[test]
    fn round_trip() {
        let r = ring();
        let blob = seal(&r, "apps/x", 3, b"hunter2").unwrap();
        assert_eq!(&*open(&r, "apps/x", 3, &blob).unwrap(), b"hunter2");
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn fresh_data_key_and_nonce_each_time() {
        let r = ring();
        assert_ne!(seal(&r, "p", 1, b"same").unwrap(), seal(&r, "p", 1, b"same").unwrap());
    }

    #[test]
    fn moved_rows_do_not_decrypt() {
        let r = ring();
        let blob = seal(&r, "apps/x", 1, b"v").unwrap();
        assert_eq!(open(&r, "apps/y", 1, &blob), Err(CoreError::Decrypt));
        assert_eq!(open(&r, "apps/x", 2, &blob), Err(CoreError::Decrypt));
    }

    #[test]
    fn edited_bytes_and_wrong_keys_fail() {
        let r = ring();
        let mut blob = seal(&r, "p", 1, b"value").unwrap();
        let other = Keyring::new(RootKey::from_slice(&[8u8; 32]).unwrap(), 1);
        assert_eq!(open(&other, "p", 1, &blob), Err(CoreError::Decrypt));
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(open(&r, "p", 1, &blob), Err(CoreError::Decrypt));
        assert!(open(&r, "p", 1, &blob[..10]).is_err());
    }

    #[test]
    fn old_terms_still_decrypt_after_rotation() {
        let mut r = ring();
        let old = seal(&r, "p", 1, b"old").unwrap();
        assert_eq!(r.rotate(), 2);
        let new = seal(&r, "p", 2, b"new").unwrap();
        assert_eq!(term_of(&old).unwrap(), 1);
        assert_eq!(term_of(&new).unwrap(), 2);
        assert_eq!(&*open(&r, "p", 1, &old).unwrap(), b"old");
        let before = Keyring::new(RootKey::from_slice(&[9u8; 32]).unwrap(), 1);
        assert_eq!(open(&before, "p", 2, &new), Err(CoreError::UnknownTerm(2)));
    }
}
