//! Coinbase Advanced Trade with CDP keys: every request carries its own JWT
//! (`Authorization: Bearer`, see [`jwt`]), signed ES256 (EC key, PEM) or
//! EdDSA (Ed25519 key, base64). The JWT does not cover the body: a JWT
//! handed out could carry another order, so the sign API refuses Coinbase
//! accounts without `admin`.

pub mod jwt;
mod orders;

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, flag};
use crate::orders::GuardError;
use crate::sweep::{Sweep, list_at, request};
use crate::{CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h};
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
    ep(Get, "/v2/exchange-rates", Public),
    ep(Get, "/v2/time", Public),
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
    ep(Get, "/api/v3/brokerage/key_permissions", Read),
    ep(Get, "/api/v3/brokerage/cfm/balance_summary", Read),
    ep(Get, "/api/v3/brokerage/cfm/positions", Read),
    // Fiat withdrawals made: a read of withdrawals, classed with them.
    ep(Get, "/v2/accounts/{}/withdrawals", Withdraw),
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
    ep(Post, "/v2/accounts/{}/withdrawals/{}/commit", Withdraw),
    ep(Post, "/v2/accounts/{}/deposits", Transfer),
    ep(Post, "/api/v3/brokerage/portfolios/move_funds", Transfer),
    ep(Post, "/api/v3/brokerage/convert/quote", Transfer),
    ep(Post, "/api/v3/brokerage/convert/trade/{}", Transfer),
    ep(Post, "/api/v3/brokerage/cfm/sweeps/schedule", Transfer),
];

/// `POST /v2/accounts/{id}/transactions` with `type` `send`: crypto to
/// `to` (an address, or a Coinbase user's email) on `network`.
const SEND: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "to",
    network: Some("network"),
    memo: Some("destination_tag"),
    harmless: &["type", "description", "skip_notifications", "idem", "travel_rule_data"],
};

/// `POST /v2/accounts/{id}/withdrawals`: fiat to a payment method (its id
/// is the destination an allowlist entry holds).
const FIAT: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "payment_method",
    network: None,
    memo: None,
    harmless: &["commit"],
};

const SETTINGS: KeySettings = KeySettings {
    page: "the Coinbase Developer Platform's API key page",
    withdraw: "Transfer",
    transfer: "Transfer",
    margin: "",
    futures: "",
    trade: "Trade",
    ip: "IP allowlist",
};

/// `GET /api/v3/brokerage/key_permissions`: `can_view`, `can_trade`,
/// `can_transfer` (sending and withdrawing). The IP allowlist and any
/// expiry are not exposed.
fn key_info(v: &serde_json::Value, _api_key: &str) -> Result<KeyInfo, String> {
    if v.get("can_view").is_none() && v.get("can_trade").is_none() {
        return Err("the answer has no can_view or can_trade".into());
    }
    let transfer = flag(v.get("can_transfer"));
    Ok(KeyInfo { withdraw: transfer, transfer, trade: flag(v.get("can_trade")), ..KeyInfo::default() })
}

/// The open orders' ids from a listing, cancelled 100 at a time.
fn cancel_listed(body: &[u8]) -> Result<Vec<CanonicalRequest>, String> {
    let mut ids = Vec::new();
    for o in list_at(body, &["orders"])? {
        ids.push(
            o.get("order_id").and_then(serde_json::Value::as_str).ok_or("an open order without order_id")?.to_string(),
        );
    }
    Ok(ids
        .chunks(100)
        .map(|c| request("POST", "/api/v3/brokerage/orders/batch_cancel", &[], Some(json!({"order_ids": c}))))
        .collect())
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

    /// ccxt signs with a CDP key (a JWT whose `kid` keyward reads), or,
    /// given a secret that is neither base64 of a key nor a PEM, the way
    /// Coinbase's legacy API keys did: `CB-ACCESS-KEY` and an HMAC.
    fn key_header(&self) -> &'static str {
        "cb-access-key"
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["authorization", "cb-access-key", "cb-access-sign", "cb-access-timestamp", "cb-access-passphrase"]
    }
    fn signature_binds_request(&self) -> bool {
        false
    }
    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        jwt::key(&creds).map(|_| ())
    }
    /// A commit carries out a fiat withdrawal made (and checked) before.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        let segments: Vec<&str> = req.path.split('/').collect();
        match (req.method, segments.as_slice()) {
            (Method::Post, ["", "v2", "accounts", _, "transactions"]) => match req.param("type").as_deref() {
                Some("send") => SEND.read(req).map(Some),
                other => Err(GuardError(format!("keyward reads sends (type send), not type {other:?}"))),
            },
            (Method::Post, ["", "v2", "accounts", _, "withdrawals"]) => FIAT.read(req).map(Some),
            (Method::Post, ["", "v2", "accounts", _, "withdrawals", _, "commit"]) => Ok(None),
            (Method::Get, ["", "v2", "accounts", _, "transactions" | "withdrawals"]) => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    /// Orders and previews; closing a position holds only its product; an
    /// edit names no product (refused to guarded keys).
    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<crate::orders::Order>, GuardError> {
        match req.path.as_str() {
            "/api/v3/brokerage/orders" | "/api/v3/brokerage/orders/preview" => orders::create(req),
            "/api/v3/brokerage/orders/close_position" => orders::close_position(req),
            "/api/v3/brokerage/orders/edit" => {
                Err(GuardError("an edit names no product: keyward looks the order up first".into()))
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    /// An edit keeps the order's product and side: the order, by its id.
    fn order_lookup(&self, req: &CanonicalRequest) -> Option<crate::orders::Lookup> {
        let id = req.param("order_id").filter(|id| !id.is_empty() && req.path == "/api/v3/brokerage/orders/edit")?;
        let path = format!("/api/v3/brokerage/orders/historical/{}", crate::canonical::encode_component(&id));
        let request = CanonicalRequest::parse("GET", &path, None, None, b"").ok()?;
        Some(crate::orders::Lookup { request, read: orders::edited })
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let path = format!("/api/v3/brokerage/market/products/{}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", &path, None, None, b"").ok()
    }

    /// The public product: `{"product_id":"BTC-USD","price":"140.21",…}`.
    fn parse_ticker(&self, body: &[u8]) -> Option<rust_decimal::Decimal> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        crate::orders::decimal("price", v.get("price")?.as_str()?).ok().filter(|p| !p.is_zero() && p.is_sign_positive())
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v3/brokerage/key_permissions", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// Coinbase has no cancel-all: the open orders are listed, then cancelled by id.
    fn cancel_all(&self) -> Vec<Sweep> {
        vec![Sweep::listed(
            request("GET", "/api/v3/brokerage/orders/historical/batch", &[("order_status", "OPEN")], None),
            cancel_listed,
        )]
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        let token = jwt::token(creds, req.method.as_str(), &req.path, ctx.timestamp_ms / 1000, &jwt::nonce()?)?;
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query: req.query_string(),
            headers: vec![h("Authorization", format!("Bearer {token}"))],
            body: req.body_bytes().map(|(t, b)| (t.to_string(), b)),
        })
    }
}
