//! Key pairs made inside keyward for exchanges that accept a public key
//! the user generated (`keyward account keygen`): the private half is born
//! here and never leaves; the exchange's key page gets the public half.
//!
//! Ed25519 comes from ring, keyward's crypto library. ring cannot generate
//! RSA keys, so RSA key generation alone uses the `rsa` crate (RustCrypto),
//! fed from the same OS CSPRNG as everything else; the key is then loaded
//! and used for signing by ring like any imported key. (The `rsa` crate's
//! known timing weakness, RUSTSEC-2023-0071, is in its private-key
//! operations, which keyward never uses.)

use crate::SignError;
use crate::credentials::PrivateKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::Ed25519KeyPair;
use std::fmt;
use zeroize::Zeroizing;

/// A key algorithm an exchange accepts for self-generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// Ed25519.
    Ed25519,
    /// RSA with this many bits, signing with PKCS#1 v1.5 SHA-256.
    Rsa(usize),
}

impl KeyAlg {
    /// Parses `ed25519`, `rsa` (2048 bits), `rsa2048` or `rsa4096`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Some(Self::Ed25519),
            "rsa" | "rsa2048" | "rsa-2048" => Some(Self::Rsa(2048)),
            "rsa4096" | "rsa-4096" => Some(Self::Rsa(4096)),
            _ => None,
        }
    }

    /// The family: Ed25519 or RSA (of any size).
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Ed25519 => KeyFamily::Ed25519,
            Self::Rsa(_) => KeyFamily::Rsa,
        }
    }
}

/// A family of key algorithms, as an exchange names what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// Ed25519.
    Ed25519,
    /// RSA, 2048 bits or more, PKCS#1 v1.5 SHA-256 signatures.
    Rsa,
}

impl KeyFamily {
    /// `ed25519` or `rsa`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ed25519 => f.write_str("ed25519"),
            Self::Rsa(bits) => write!(f, "rsa{bits}"),
        }
    }
}

/// A fresh key pair. `Debug` shows only the public half.
pub struct KeyPair {
    /// The algorithm.
    pub alg: KeyAlg,
    /// PKCS#8 PEM of the private key, the value of the account's `private_key` field.
    pub private_pem: Zeroizing<String>,
    /// SubjectPublicKeyInfo DER of the public key.
    pub public_der: Vec<u8>,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("alg", &self.alg)
            .field("private_pem", &"[redacted]")
            .field("public_pem", &self.public_pem())
            .finish()
    }
}

impl KeyPair {
    /// Generates a key pair from the OS CSPRNG. RSA 4096 takes seconds.
    pub fn generate(alg: KeyAlg) -> Result<Self, SignError> {
        let rng = SystemRandom::new();
        let (private_der, public_der) = match alg {
            KeyAlg::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SignError::Crypto)?;
                let der = Zeroizing::new(doc.as_ref().to_vec());
                let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| SignError::Crypto)?;
                (der, ed25519_spki(ring::signature::KeyPair::public_key(&pair).as_ref()))
            }
            KeyAlg::Rsa(bits) => rsa_pair(&rng, bits)?,
        };
        let pair = Self { alg, private_pem: pem("PRIVATE KEY", &private_der), public_der };
        // What keyward will sign with must load the way an imported key does.
        PrivateKey::from_pem(&pair.private_pem)?;
        Ok(pair)
    }

    /// The public key as PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.public_der).to_string()
    }

    /// The public key as one line of base64 (the PEM body without its lines).
    pub fn public_base64(&self) -> String {
        STANDARD.encode(&self.public_der)
    }
}

/// SubjectPublicKeyInfo for an Ed25519 public key (RFC 8410): a fixed
/// 12-byte prefix, then the 32 key bytes.
fn ed25519_spki(public: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(public);
    out
}

fn rsa_pair(rng: &SystemRandom, bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), SignError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    if !(2048..=8192).contains(&bits) {
        return Err(SignError::Request(format!("RSA keys have 2048 to 8192 bits, not {bits}")));
    }
    let key = rsa::RsaPrivateKey::new(&mut OsRng(rng), bits).map_err(|_| SignError::Crypto)?;
    let private = key.to_pkcs8_der().map_err(|_| SignError::Crypto)?;
    let public = key.to_public_key().to_public_key_der().map_err(|_| SignError::Crypto)?;
    Ok((Zeroizing::new(private.as_bytes().to_vec()), public.as_bytes().to_vec()))
}

/// ring's system CSPRNG as the `rand_core` source the `rsa` crate asks for.
struct OsRng<'a>(&'a SystemRandom);

impl rsa::rand_core::RngCore for OsRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // The OS CSPRNG does not fail once the process runs; if it ever
        // does, no key may come out of it.
        self.0.fill(dest).expect("the OS random number generator failed");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.0.fill(dest).map_err(|_| rsa::rand_core::Error::from(std::num::NonZeroU32::new(1).expect("non-zero")))
    }
}

impl rsa::rand_core::CryptoRng for OsRng<'_> {}

/// PEM with 64-character lines.
fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    /// The public key inside an SPKI: what ring's verifiers take.
    fn spki_key(spki: &[u8]) -> &[u8] {
        // Ed25519: after the 12-byte prefix. RSA: the BIT STRING's content
        // (RSAPublicKey), found after the 0x03 0x82 LL LL 0x00 tag.
        if spki.len() == 44 {
            return &spki[12..];
        }
        let at = spki.windows(2).position(|w| w == [0x03, 0x82]).expect("bit string");
        &spki[at + 5..]
    }

    #[test]
    fn ed25519_pairs_sign_and_verify_with_the_printed_key() {
        let pair = KeyPair::generate(KeyAlg::Ed25519).unwrap();
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pair.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
        let key = PrivateKey::from_pem(&pair.private_pem).unwrap();
        let sig = key.sign(b"symbol=BTCUSDT").unwrap();
        UnparsedPublicKey::new(&ED25519, spki_key(&pair.public_der)).verify(b"symbol=BTCUSDT", &sig).unwrap();
        assert_ne!(KeyPair::generate(KeyAlg::Ed25519).unwrap().public_der, pair.public_der);
    }

    #[test]
    fn rsa_pairs_sign_and_verify_with_the_printed_key() {
        let pair = KeyPair::generate(KeyAlg::Rsa(2048)).unwrap();
        assert!(pair.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
        let key = PrivateKey::from_pem(&pair.private_pem).unwrap();
        assert!(matches!(key, PrivateKey::Rsa(_)));
        let sig = key.sign(b"payload").unwrap();
        assert_eq!(sig.len(), 256);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki_key(&pair.public_der))
            .verify(b"payload", &sig)
            .unwrap();
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let pair = KeyPair::generate(KeyAlg::Ed25519).unwrap();
        let shown = format!("{pair:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn algorithms_parse() {
        assert_eq!(KeyAlg::parse("Ed25519"), Some(KeyAlg::Ed25519));
        assert_eq!(KeyAlg::parse("rsa"), Some(KeyAlg::Rsa(2048)));
        assert_eq!(KeyAlg::parse("rsa4096"), Some(KeyAlg::Rsa(4096)));
        assert_eq!(KeyAlg::parse("dsa"), None);
        assert!(KeyPair::generate(KeyAlg::Rsa(1024)).is_err());
    }
}
