//! Coinbase keys as Coinbase issues them, stored and checked with an error
//! naming the field: a CDP Ed25519 key (base64 of the 64-byte key, or its
//! 32-byte seed, in `api_secret`: ccxt's `secret`), an EC P-256 key in PEM
//! (in `api_secret`, its line breaks real or the two characters `\n`, or in
//! `private_key`). Signing each is checked against ccxt in ccxt_vectors.rs.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward_exchanges::{Credentials, Exchange, KeyAlg, KeyPair, SignError, coinbase::Coinbase};
use serde_json::Value;

const ED25519: &str = "fVNgpStRGAC9pkjBjqr1lvpisnk5ce5rtaZ+1QCuWNfPJPiq8mr8VcyAu+qnYtYLDSSAe9oPKATMTrX/Mc5C2A==";
const EC: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIDtZnT4r656LQOMYNUI6j5IFCxvS0dvX4AjER83Qxtm+oAoGCCqGSM49\nAwEHoUQDQgAEIyhexokQ2yCZr8TVJgTMjbHiVpm8LasWAp4FHRWeTZGm3M1JyNoX\nmiYEcgzC6EYNXRcKySCZRuR7bVOavvvjnA==\n-----END EC PRIVATE KEY-----\n";

fn check(field: &str, value: &str) -> Result<(), SignError> {
    let get = |f: &str| match f {
        "api_key" => Some("organizations/o/apiKeys/k".to_string()),
        f if f == field => Some(value.to_string()),
        _ => None,
    };
    Coinbase.check_fields(&get)
}

fn field_of(e: SignError) -> (&'static str, String) {
    match e {
        SignError::Field { field, reason } => (field, reason),
        other => panic!("not a field error: {other:?}"),
    }
}

/// The algorithm of the JWT a stored key signs.
fn alg(field: &str, value: &str) -> String {
    let c = Credentials::from_fields(|f| match f {
        "api_key" => Some("k".to_string()),
        f if f == field => Some(value.to_string()),
        _ => None,
    })
    .unwrap();
    let token = keyward_exchanges::coinbase::jwt::token(&c, "GET", "/api/v3/brokerage/accounts", 1, "n").unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["alg"].as_str().unwrap().to_string()
}

#[test]
fn both_key_types_are_stored_in_the_forms_coinbase_hands_out() {
    check("api_secret", ED25519).unwrap();
    let seed = STANDARD.encode(&STANDARD.decode(ED25519).unwrap()[..32]);
    check("api_secret", &seed).unwrap();
    check("api_secret", EC).unwrap();
    let escaped = EC.replace('\n', "\\n");
    check("api_secret", &escaped).unwrap();
    check("private_key", EC).unwrap();
    check("private_key", &escaped).unwrap();
    assert_eq!(alg("api_secret", ED25519), "EdDSA");
    assert_eq!(alg("api_secret", &seed), "EdDSA");
    assert_eq!(alg("api_secret", &escaped), "ES256");
    assert_eq!(alg("private_key", EC), "ES256");
}

#[test]
fn a_key_that_is_not_one_names_the_field() {
    let mut mismatched = STANDARD.decode(ED25519).unwrap();
    mismatched[40] ^= 1;
    for (value, says) in [
        (STANDARD.encode(&mismatched), "public key"),
        (STANDARD.encode([7u8; 48]), "48 bytes"),
        ("not base64 at all!".to_string(), "neither a PEM key nor base64"),
        ("-----BEGIN EC PRIVATE KEY-----\ngarbage\n-----END EC PRIVATE KEY-----".to_string(), "EC key"),
    ] {
        let (field, reason) = field_of(check("api_secret", &value).unwrap_err());
        assert_eq!(field, "api_secret");
        assert!(reason.contains(says), "{reason}");
        assert!(!reason.contains(&value), "the error repeats the secret");
    }
    let rsa = KeyPair::generate(KeyAlg::Rsa(2048)).unwrap();
    let (field, reason) = field_of(check("api_secret", &rsa.private_pem).unwrap_err());
    assert_eq!((field, reason.contains("RSA")), ("api_secret", true));
    let (field, _) = field_of(check("private_key", &rsa.private_pem).unwrap_err());
    assert_eq!(field, "private_key");
    assert!(matches!(check("passphrase", "x"), Err(SignError::MissingField("api_secret"))));
}
