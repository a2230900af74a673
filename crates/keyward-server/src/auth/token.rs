//! Short-lived tokens: `kwt_<payload>.<mac>`, minted from an access key,
//! bound to the caller's address and to a subset of the key's scopes.
//!
//! Stateless: the payload (parent key id, scopes, address, expiry) is MAC'd
//! with a root-derived key, so tokens survive restarts and work on every node.
//! The parent key is looked up on every use: once it is revoked, disabled
//! or expired, its tokens are refused too.

use crate::error::{Error, Result};
use crate::seal::Unsealed;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_core::scope::Scope;
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The token prefix (a scanner recognises it).
pub(crate) const PREFIX: &str = "kwt_";
const LABEL: &str = "keyward/v1/short-lived-token";

/// What a token carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenClaims {
    /// Parent key id.
    pub key: String,
    /// Scopes, a subset of the parent's at minting time.
    pub scopes: Vec<Scope>,
    /// The address the token is bound to.
    pub ip: IpAddr,
    /// Expiry (ms).
    pub exp: i64,
    /// Random, so two tokens minted in the same millisecond differ.
    pub nonce: String,
}

fn key(unsealed: &Unsealed) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, unsealed.derive(LABEL).as_ref())
}

/// Mints a token.
pub(crate) fn mint(unsealed: &Unsealed, claims: &TokenClaims) -> Result<String> {
    let json = serde_json::to_vec(claims).map_err(|e| Error::internal(&format!("token claims: {e}")))?;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mac = URL_SAFE_NO_PAD.encode(hmac::sign(&key(unsealed), payload.as_bytes()));
    Ok(format!("{PREFIX}{payload}.{mac}"))
}

/// Checks a token's MAC and decodes its claims; `None` for anything forged or malformed.
pub(crate) fn open(unsealed: &Unsealed, token: &str) -> Option<TokenClaims> {
    let body = token.strip_prefix(PREFIX)?;
    let (payload, mac) = body.split_once('.')?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    hmac::verify(&key(unsealed), payload.as_bytes(), &mac).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::keyring::{Keyring, RootKey};

    fn session(byte: u8) -> Unsealed {
        Unsealed::new(Keyring::new(RootKey::from_slice(&[byte; 32]).unwrap(), 1))
    }

    #[test]
    fn round_trip_and_forgery() {
        let ring = session(3);
        let claims = TokenClaims {
            key: "key_x".into(),
            scopes: vec!["secret:read:a/*".parse().unwrap()],
            ip: "127.0.0.1".parse().unwrap(),
            exp: 99,
            nonce: "n".into(),
        };
        let t = mint(&ring, &claims).unwrap();
        assert!(t.starts_with("kwt_"));
        assert_eq!(open(&ring, &t), Some(claims.clone()));
        // Widened scopes in the payload, same MAC: refused.
        let mut wide = claims;
        wide.scopes = vec!["secret:read:*".parse().unwrap()];
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wide).unwrap());
        let mac = t.rsplit_once('.').unwrap().1;
        assert_eq!(open(&ring, &format!("kwt_{forged_payload}.{mac}")), None);
        let other = session(4);
        assert_eq!(open(&other, &t), None);
        assert_eq!(open(&ring, "kwt_x.y"), None);
        assert_eq!(open(&ring, "kw_nope"), None);
    }
}
