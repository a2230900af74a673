//! An exchange account's credentials, parsed once per use from the account
//! secret's fields. Secret material stays in zeroizing types; `Debug` is
//! redacted. The field names are the same for every exchange: `api_key`,
//! `api_secret`, `private_key` (PEM), `passphrase`.

use crate::SignError;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::fmt;
use zeroize::Zeroizing;

/// An asymmetric signing key from a PEM `private_key` field.
pub enum PrivateKey {
    /// Ed25519 (Binance, Coinbase CDP).
    Ed25519(Ed25519KeyPair),
    /// RSA (Binance, Bybit), signed with PKCS#1 v1.5 SHA-256.
    Rsa(RsaKeyPair),
    /// ECDSA P-256 (Coinbase CDP ES256).
    EcdsaP256(EcdsaKeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            PrivateKey::Ed25519(_) => "Ed25519",
            PrivateKey::Rsa(_) => "Rsa",
            PrivateKey::EcdsaP256(_) => "EcdsaP256",
        };
        write!(f, "PrivateKey::{kind}([redacted])")
    }
}

fn bad(field: &'static str, why: &str) -> SignError {
    SignError::Field { field, reason: why.to_string() }
}

impl PrivateKey {
    /// Parses a PEM private key: PKCS#8 (Ed25519, RSA, P-256), PKCS#1 RSA or SEC1 P-256.
    pub fn from_pem(pem: &str) -> Result<Self, SignError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| bad("private_key", "not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)"))?;
        let rng = SystemRandom::new();
        match der {
            PrivateKeyDer::Pkcs8(p8) => {
                let bytes = Zeroizing::new(p8.secret_pkcs8_der().to_vec());
                if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes) {
                    return Ok(PrivateKey::Ed25519(k));
                }
                if let Ok(k) = RsaKeyPair::from_pkcs8(&bytes) {
                    return Ok(PrivateKey::Rsa(k));
                }
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &bytes, &rng)
                    .map(PrivateKey::EcdsaP256)
                    .map_err(|_| bad("private_key", "a PKCS#8 key that is not Ed25519, RSA or ECDSA P-256"))
            }
            PrivateKeyDer::Pkcs1(p1) => RsaKeyPair::from_der(p1.secret_pkcs1_der())
                .map(PrivateKey::Rsa)
                .map_err(|_| bad("private_key", "an RSA key ring cannot use (2048 to 8192 bits)")),
            PrivateKeyDer::Sec1(s1) => {
                let p8 = Zeroizing::new(sec1_p256_to_pkcs8(s1.secret_sec1_der())?);
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &p8, &rng)
                    .map(PrivateKey::EcdsaP256)
                    .map_err(|_| bad("private_key", "an EC key that is not P-256 with its public key"))
            }
            _ => Err(bad("private_key", "unsupported key format")),
        }
    }

    /// Signs `msg`: Ed25519, RSA PKCS#1 v1.5 SHA-256, or ECDSA P-256 SHA-256 (fixed r||s).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match self {
            PrivateKey::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig).map_err(|_| SignError::Crypto)?;
                Ok(sig)
            }
            PrivateKey::EcdsaP256(k) => Ok(k.sign(&rng, msg).map_err(|_| SignError::Crypto)?.as_ref().to_vec()),
        }
    }

    /// The public key bytes (for tests and key checks).
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            PrivateKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
            PrivateKey::Rsa(k) => k.public().as_ref().to_vec(),
            PrivateKey::EcdsaP256(k) => k.public_key().as_ref().to_vec(),
        }
    }
}

/// Wraps a SEC1 P-256 key (`BEGIN EC PRIVATE KEY`, as Coinbase hands them out)
/// in PKCS#8, which is what ring reads. The DER prefix is fixed for P-256.
fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, SignError> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID id-ecPublicKey, OID prime256v1 }, OCTET STRING sec1 }
    const ALG: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x03, 0x01, 0x07,
    ];
    fn len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else if n < 0x100 {
            vec![0x81, n as u8]
        } else {
            vec![0x82, (n >> 8) as u8, n as u8]
        }
    }
    if sec1.len() > 0xffff - 64 {
        return Err(bad("private_key", "EC key too long"));
    }
    let mut octet = vec![0x04];
    octet.extend(len(sec1.len()));
    octet.extend_from_slice(sec1);
    let mut inner = vec![0x02, 0x01, 0x00];
    inner.extend_from_slice(ALG);
    inner.extend(octet);
    let mut out = vec![0x30];
    out.extend(len(inner.len()));
    out.extend(inner);
    Ok(out)
}

/// The credentials of one exchange account.
pub struct Credentials {
    /// The exchange's key id (Deribit's client id, Coinbase's key name).
    pub api_key: String,
    /// HMAC secret (Deribit's client secret).
    pub api_secret: Option<Zeroizing<String>>,
    /// Asymmetric key, when the account signs with one.
    pub private_key: Option<PrivateKey>,
    /// Passphrase (OKX, KuCoin, Bitget).
    pub passphrase: Option<Zeroizing<String>>,
    /// KuCoin's API key version (`2` or `3`).
    pub key_version: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"[redacted]")
            .field("api_secret", &self.api_secret.as_ref().map(|_| "[redacted]"))
            .field("private_key", &self.private_key)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Credentials {
    /// Builds credentials from an account secret's fields.
    pub fn from_fields(get: impl Fn(&str) -> Option<String>) -> Result<Self, SignError> {
        let api_key = get("api_key").filter(|k| !k.trim().is_empty()).ok_or(SignError::MissingField("api_key"))?;
        // A PEM pasted from a JSON file may carry its line breaks as the two characters `\n`.
        let pem = |p: String| {
            let p = Zeroizing::new(p);
            if p.contains('\n') { p } else { Zeroizing::new(p.replace("\\n", "\n")) }
        };
        let private_key = get("private_key").map(|p| PrivateKey::from_pem(&pem(p))).transpose()?;
        Ok(Self {
            api_key,
            api_secret: get("api_secret").filter(|s| !s.is_empty()).map(Zeroizing::new),
            private_key,
            passphrase: get("passphrase").map(Zeroizing::new),
            key_version: get("key_version"),
        })
    }

    /// The HMAC secret, or an error naming the missing field.
    pub fn secret(&self) -> Result<&str, SignError> {
        self.api_secret.as_deref().map(String::as_str).ok_or(SignError::MissingField("api_secret"))
    }

    /// The passphrase, or an error naming the missing field.
    pub fn passphrase(&self) -> Result<&str, SignError> {
        self.passphrase.as_deref().map(String::as_str).ok_or(SignError::MissingField("passphrase"))
    }
}
