//! Coinbase Advanced Trade with CDP keys: every request carries its own JWT
//! (`Authorization: Bearer`), signed ES256 (EC key, PEM) or EdDSA (Ed25519
//! key, base64), with claims `sub`/`kid` = key name, `iss` = "cdp", `nbf`,
//! `exp` (two minutes) and `uri` = "METHOD host/path". The JWT does not cover
//! the body: a JWT handed out could carry another order, so the sign API
//! refuses Coinbase accounts without `admin`.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::credentials::PrivateKey;
use crate::mac::b64_decode;
use crate::{CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, h};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::Ed25519KeyPair;
use serde_json::json;

/// Coinbase Advanced Trade.
#[derive(Debug, Clone, Copy)]
pub struct Coinbase;

/// The host named in the JWT's `uri` claim.
pub const HOST: &str = "api.coinbase.com";

use Class::{Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v3/brokerage/time", Public),
    ep(Get, "/api/v3/brokerage/market/products", Public),
    ep(Get, "/api/v3/brokerage/market/products/{}", Public),
    ep(Get, "/api/v3/brokerage/market/products/{}/ticker", Public),
    ep(Get, "/api/v3/brokerage/market/products/{}/candles", Public),
    ep(Get, "/api/v3/brokerage/market/product_book", Public),
    ep(Get, "/v2/currencies", Public),
    ep(Get, "/v2/currencies/crypto", Public),
    ep(Get, "/api/v3/brokerage/accounts", Read),
    ep(Get, "/api/v3/brokerage/accounts/{}", Read),
    ep(Get, "/api/v3/brokerage/products", Read),
    ep(Get, "/api/v3/brokerage/products/{}", Read),
    ep(Get, "/api/v3/brokerage/products/{}/ticker", Read),
    ep(Get, "/api/v3/brokerage/products/{}/candles", Read),
    ep(Get, "/api/v3/brokerage/product_book", Read),
    ep(Get, "/api/v3/brokerage/best_bid_ask", Read),
    ep(Get, "/api/v3/brokerage/orders/historical/batch", Read),
    ep(Get, "/api/v3/brokerage/orders/historical/fills", Read),
    ep(Get, "/api/v3/brokerage/orders/historical/{}", Read),
    ep(Get, "/api/v3/brokerage/transaction_summary", Read),
    ep(Get, "/api/v3/brokerage/portfolios", Read),
    ep(Get, "/v2/accounts", Read),
    ep(Get, "/v2/accounts/{}", Read),
    ep(Get, "/v2/accounts/{}/addresses", Read),
    ep(Post, "/v2/accounts/{}/addresses", Read),
    ep(Get, "/v2/accounts/{}/deposits", Read),
    ep(Post, "/api/v3/brokerage/orders", Trade),
    ep(Post, "/api/v3/brokerage/orders/edit", Trade),
    ep(Post, "/api/v3/brokerage/orders/preview", Trade),
    ep(Post, "/api/v3/brokerage/orders/close_position", Trade),
    ep(Post, "/api/v3/brokerage/orders/batch_cancel", Cancel),
    // Sending crypto is a withdrawal; so is reading what was sent.
    ep(Post, "/v2/accounts/{}/transactions", Withdraw),
    ep(Get, "/v2/accounts/{}/transactions", Withdraw),
    ep(Post, "/v2/accounts/{}/withdrawals", Withdraw),
    ep(Post, "/v2/accounts/{}/deposits", Transfer),
    ep(Post, "/api/v3/brokerage/portfolios/move_funds", Transfer),
    ep(Post, "/api/v3/brokerage/convert/quote", Transfer),
    ep(Post, "/api/v3/brokerage/convert/trade/{}", Transfer),
    ep(Post, "/api/v3/brokerage/cfm/sweeps/schedule", Transfer),
];

/// The signing key: the PEM `private_key` (EC P-256 or Ed25519), or an
/// Ed25519 key given base64 in `api_secret` (seed, or seed and public key).
enum JwtKey<'a> {
    Pem(&'a PrivateKey),
    Ed25519(Ed25519KeyPair),
}

fn jwt_key(creds: &Credentials) -> Result<JwtKey<'_>, SignError> {
    if let Some(k) = &creds.private_key {
        return match k {
            PrivateKey::EcdsaP256(_) | PrivateKey::Ed25519(_) => Ok(JwtKey::Pem(k)),
            PrivateKey::Rsa(_) => {
                Err(SignError::Field { field: "private_key", reason: "Coinbase takes EC P-256 or Ed25519 keys".into() })
            }
        };
    }
    let raw = zeroize::Zeroizing::new(
        b64_decode(creds.secret()?).ok_or(SignError::Field { field: "api_secret", reason: "not base64".into() })?,
    );
    let bad = || SignError::Field { field: "api_secret", reason: "not an Ed25519 key (32 or 64 bytes)".into() };
    let pair = match raw.len() {
        64 => Ed25519KeyPair::from_seed_and_public_key(&raw[..32], &raw[32..]).map_err(|_| bad())?,
        32 => Ed25519KeyPair::from_seed_unchecked(&raw).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(JwtKey::Ed25519(pair))
}

/// Builds the JWT for one request.
pub fn jwt(creds: &Credentials, method: &str, path: &str, ctx: &SignContext) -> Result<String, SignError> {
    let key = jwt_key(creds)?;
    let alg = match &key {
        JwtKey::Pem(PrivateKey::EcdsaP256(_)) => "ES256",
        _ => "EdDSA",
    };
    let now = ctx.timestamp_ms / 1000;
    let header = json!({"alg": alg, "kid": creds.api_key, "nonce": format!("{:016x}", ctx.nonce), "typ": "JWT"});
    let claims = json!({"sub": creds.api_key, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": format!("{method} {HOST}{path}")});
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = match key {
        JwtKey::Pem(k) => k.sign(signing_input.as_bytes())?,
        JwtKey::Ed25519(k) => k.sign(signing_input.as_bytes()).as_ref().to_vec(),
    };
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

impl Exchange for Coinbase {
    fn kind(&self) -> &'static str {
        "coinbase"
    }
    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/", "https://api.coinbase.com")]
    }
    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.coinbase.com"]
    }
    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }
    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v3/brokerage/accounts",
            query: &[],
            answer: AnswerShape::Status { code: "error", message: "message" },
        }
    }

    fn key_header(&self) -> &'static str {
        "authorization"
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["authorization"]
    }
    fn signature_binds_request(&self) -> bool {
        false
    }
    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        jwt_key(&creds).map(|_| ())
    }
    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        let token = jwt(creds, req.method.as_str(), &req.path, ctx)?;
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query: req.query_string(),
            headers: vec![h("Authorization", format!("Bearer {token}"))],
            body: req.body_bytes().map(|(t, b)| (t.to_string(), b)),
        })
    }
}
