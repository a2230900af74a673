//! The JWT a Coinbase CDP key signs for each request, as Coinbase's CDP SDK
//! and ccxt make it: header `{"alg","typ":"JWT","kid","nonce"}`, then for
//! an Ed25519 key (EdDSA) claims `{"aud":["cdp_service"],"iss":"cdp","nbf",
//! "exp","sub","iat","uris":[uri]}`, for an EC P-256 key (ES256)
//! `{"aud":["retail_rest_api_proxy"],"iss":"coinbase-cloud","nbf","exp",
//! "sub","iat","uri"}`; `uri` = `METHOD api.coinbase.com/path` (no query),
//! valid for two minutes; `kid` and `sub` are the key's name.
//!
//! The key is the account's PEM `private_key`, or its `api_secret` in the
//! form Coinbase hands out and ccxt takes as `secret`: the base64 of an
//! Ed25519 key (64 bytes, seed and public key; or the 32-byte seed), or an
//! EC key in PEM (pasted from Coinbase's JSON file, its line breaks may be
//! the two characters `\n`).

use super::HOST;
use crate::credentials::PrivateKey;
use crate::mac::b64_decode;
use crate::{Credentials, SignError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::Ed25519KeyPair;
use serde::Serialize;
use zeroize::Zeroizing;

/// The signing key of a Coinbase account.
pub(super) enum JwtKey<'a> {
    /// The account's `private_key` field.
    Field(&'a PrivateKey),
    /// An EC key given in PEM as `api_secret`.
    Pem(PrivateKey),
    /// An Ed25519 key given in base64 as `api_secret`.
    Ed25519(Ed25519KeyPair),
}

fn bad(reason: &str) -> SignError {
    SignError::Field { field: "api_secret", reason: reason.into() }
}

/// The account's signing key, or an error naming the field at fault.
pub(super) fn key(creds: &Credentials) -> Result<JwtKey<'_>, SignError> {
    if let Some(k) = &creds.private_key {
        return match k {
            PrivateKey::EcdsaP256(_) | PrivateKey::Ed25519(_) => Ok(JwtKey::Field(k)),
            PrivateKey::Rsa(_) => {
                Err(SignError::Field { field: "private_key", reason: "Coinbase takes EC P-256 or Ed25519 keys".into() })
            }
        };
    }
    let secret = creds.secret()?.trim();
    if secret.starts_with("-----BEGIN") {
        let pem = Zeroizing::new(secret.replace("\\n", "\n"));
        return match PrivateKey::from_pem(&pem) {
            Ok(k @ (PrivateKey::EcdsaP256(_) | PrivateKey::Ed25519(_))) => Ok(JwtKey::Pem(k)),
            Ok(PrivateKey::Rsa(_)) => Err(bad("an RSA key: Coinbase takes EC P-256 (ECDSA) or Ed25519 keys")),
            Err(SignError::Field { reason, .. }) => Err(bad(&reason)),
            Err(e) => Err(e),
        };
    }
    let raw = Zeroizing::new(b64_decode(secret).ok_or_else(|| {
        bad("neither a PEM key nor base64: give the Ed25519 private key Coinbase shows (base64) or the EC key's PEM")
    })?);
    let pair = match raw.len() {
        64 => Ed25519KeyPair::from_seed_and_public_key(&raw[..32], &raw[32..])
            .map_err(|_| bad("a 64-byte Ed25519 key whose second half is not the public key of its first"))?,
        32 => Ed25519KeyPair::from_seed_unchecked(&raw).map_err(|_| bad("not an Ed25519 seed"))?,
        n => return Err(bad(&format!("{n} bytes of base64: an Ed25519 key is 64 bytes (or its 32-byte seed)"))),
    };
    Ok(JwtKey::Ed25519(pair))
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
    nonce: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: [&'a str; 1],
    iss: &'a str,
    nbf: i64,
    exp: i64,
    sub: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uris: Option<[&'a str; 1]>,
}

/// The JWT for one request at `now_s` (seconds) with `nonce` (ccxt and the
/// CDP SDK use 16 random bytes in hex).
pub fn token(creds: &Credentials, method: &str, path: &str, now_s: i64, nonce: &str) -> Result<String, SignError> {
    let key = key(creds)?;
    let ec = matches!(key, JwtKey::Field(PrivateKey::EcdsaP256(_)) | JwtKey::Pem(PrivateKey::EcdsaP256(_)));
    let uri = format!("{method} {HOST}{path}");
    let header = Header { alg: if ec { "ES256" } else { "EdDSA" }, typ: "JWT", kid: &creds.api_key, nonce };
    let claims = Claims {
        aud: [if ec { "retail_rest_api_proxy" } else { "cdp_service" }],
        iss: if ec { "coinbase-cloud" } else { "cdp" },
        nbf: now_s,
        exp: now_s + 120,
        sub: &creds.api_key,
        iat: now_s,
        uri: ec.then_some(uri.as_str()),
        uris: (!ec).then_some([uri.as_str()]),
    };
    let header = serde_json::to_string(&header).map_err(|_| SignError::Crypto)?;
    let claims = serde_json::to_string(&claims).map_err(|_| SignError::Crypto)?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = match key {
        JwtKey::Field(k) => k.sign(signing_input.as_bytes())?,
        JwtKey::Pem(k) => k.sign(signing_input.as_bytes())?,
        JwtKey::Ed25519(k) => k.sign(signing_input.as_bytes()).as_ref().to_vec(),
    };
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// 16 random bytes in hex: the `nonce` of a JWT.
pub(super) fn nonce() -> Result<String, SignError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| SignError::Crypto)?;
    Ok(crate::mac::hex(&bytes))
}
