//! Bitget (v2): `ACCESS-SIGN` = base64(HMAC-SHA256(secret, timestamp +
//! method + path[?query] + body)), plus the plain passphrase. Covers path
//! and body.
//!
//! A self-generated RSA key (Bitget's "RSA" key type, made with its
//! api-rsa-generator or `keyward account keygen`) signs the same text with
//! RSA PKCS#1 v1.5 SHA-256, base64.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{b64, hmac_sha256};
use crate::orders::GuardError;
use crate::sweep::{Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, KeyFamily, Method, Outgoing, PrivateKey, SignContext,
    SignError, Withdrawal, h,
};

/// Bitget.
#[derive(Debug, Clone, Copy)]
pub struct Bitget;

fn rsa_only() -> SignError {
    SignError::Field { field: "private_key", reason: "Bitget takes RSA keys".into() }
}

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v2/public/time", Public),
    ep(Get, "/api/v2/spot/public/symbols", Public),
    ep(Get, "/api/v2/spot/public/coins", Public),
    ep(Get, "/api/v2/spot/market/tickers", Public),
    ep(Get, "/api/v2/spot/market/orderbook", Public),
    ep(Get, "/api/v2/spot/market/candles", Public),
    ep(Get, "/api/v2/spot/market/fills", Public),
    ep(Get, "/api/v2/mix/market/contracts", Public),
    ep(Get, "/api/v2/mix/market/tickers", Public),
    ep(Get, "/api/v2/mix/market/ticker", Public),
    ep(Get, "/api/v2/mix/market/merge-depth", Public),
    ep(Get, "/api/v2/mix/market/candles", Public),
    ep(Get, "/api/v2/mix/market/fills-history", Public),
    ep(Get, "/api/v2/spot/market/fills-history", Public),
    ep(Get, "/api/v2/margin/currencies", Public),
    // Unified trading accounts (v3): market data.
    ep(Get, "/api/v3/market/instruments", Public),
    ep(Get, "/api/v3/market/tickers", Public),
    ep(Get, "/api/v3/market/orderbook", Public),
    ep(Get, "/api/v3/market/candles", Public),
    ep(Get, "/api/v3/market/fills", Public),
    ep(Get, "/api/v2/spot/account/info", Read),
    ep(Get, "/api/v2/spot/account/assets", Read),
    ep(Get, "/api/v2/spot/account/bills", Read),
    ep(Get, "/api/v2/spot/trade/orderInfo", Read),
    ep(Get, "/api/v2/spot/trade/unfilled-orders", Read),
    ep(Get, "/api/v2/spot/trade/history-orders", Read),
    ep(Get, "/api/v2/spot/trade/fills", Read),
    ep(Get, "/api/v2/spot/wallet/deposit-address", Read),
    ep(Get, "/api/v2/spot/wallet/deposit-records", Read),
    ep(Get, "/api/v2/mix/account/accounts", Read),
    ep(Get, "/api/v2/mix/account/account", Read),
    ep(Get, "/api/v2/mix/position/all-position", Read),
    ep(Get, "/api/v2/mix/position/single-position", Read),
    ep(Get, "/api/v2/mix/order/detail", Read),
    ep(Get, "/api/v2/mix/order/orders-pending", Read),
    ep(Get, "/api/v2/mix/order/orders-history", Read),
    ep(Get, "/api/v2/mix/order/fills", Read),
    ep(Get, "/api/v2/mix/account/bill", Read),
    ep(Get, "/api/v2/common/trade-rate", Read),
    // Unified trading accounts (v3): ccxt asks for the settings first.
    ep(Get, "/api/v3/account/settings", Read),
    ep(Get, "/api/v3/account/assets", Read),
    ep(Get, "/api/v3/account/fee-rate", Read),
    ep(Get, "/api/v3/account/all-fee-rate", Read),
    ep(Get, "/api/v3/account/deposit-address", Read),
    ep(Get, "/api/v3/account/deposit-records", Read),
    ep(Get, "/api/v3/account/financial-records", Read),
    ep(Get, "/api/v3/position/current-position", Read),
    ep(Get, "/api/v3/trade/order-info", Read),
    ep(Get, "/api/v3/trade/unfilled-orders", Read),
    ep(Get, "/api/v3/trade/history-orders", Read),
    ep(Get, "/api/v3/trade/fills", Read),
    ep(Post, "/api/v2/spot/trade/place-order", Trade),
    ep(Post, "/api/v2/spot/trade/batch-orders", Trade),
    ep(Post, "/api/v2/spot/trade/cancel-replace-order", Trade),
    ep(Post, "/api/v2/mix/order/place-order", Trade),
    ep(Post, "/api/v2/mix/order/batch-place-order", Trade),
    ep(Post, "/api/v2/mix/order/modify-order", Trade),
    ep(Post, "/api/v2/mix/account/set-leverage", Trade),
    ep(Post, "/api/v2/mix/account/set-margin-mode", Trade),
    ep(Post, "/api/v3/trade/place-order", Trade),
    ep(Post, "/api/v3/trade/modify-order", Trade),
    ep(Post, "/api/v3/account/set-leverage", Trade),
    ep(Post, "/api/v2/spot/trade/cancel-order", Cancel),
    ep(Post, "/api/v2/spot/trade/batch-cancel-order", Cancel),
    ep(Post, "/api/v2/spot/trade/cancel-symbol-order", Cancel),
    ep(Post, "/api/v2/mix/order/cancel-order", Cancel),
    ep(Post, "/api/v2/mix/order/batch-cancel-orders", Cancel),
    ep(Post, "/api/v2/mix/order/cancel-all-orders", Cancel),
    ep(Post, "/api/v3/trade/cancel-order", Cancel),
    ep(Post, "/api/v3/trade/cancel-symbol-order", Cancel),
    ep(Post, "/api/v2/spot/wallet/withdrawal", Withdraw),
    ep(Post, "/api/v2/spot/wallet/cancel-withdrawal", Withdraw),
    ep(Get, "/api/v2/spot/wallet/withdrawal-records", Withdraw),
    ep(Post, "/api/v3/account/withdrawal", Withdraw),
    ep(Post, "/api/v3/account/cancel-withdrawal", Withdraw),
    ep(Get, "/api/v3/account/withdrawal-records", Withdraw),
    ep(Post, "/api/v3/account/transfer", Transfer),
    ep(Post, "/api/v2/spot/wallet/transfer", Transfer),
    ep(Post, "/api/v2/spot/wallet/subaccount-transfer", Transfer),
    ep(Get, "/api/v2/spot/account/transferRecords", Transfer),
    ep(Post, "/api/v2/convert/trade", Transfer),
    ep(Post, "/api/v2/margin/crossed/account/borrow", Borrow),
    ep(Post, "/api/v2/margin/crossed/account/repay", Borrow),
    ep(Post, "/api/v2/margin/isolated/account/borrow", Borrow),
    ep(Post, "/api/v2/margin/isolated/account/repay", Borrow),
    ep(Post, "/api/v2/user/create-virtual-subaccount-apikey", Admin),
    ep(Post, "/api/v2/user/modify-virtual-subaccount-apikey", Admin),
];

/// `POST /api/v2/spot/wallet/withdrawal`: `transferType` `on_chain` to
/// `address` on `chain`, or `internal_transfer` to a Bitget user by
/// `innerToType` (`uid`, `email`, `mobile` with `areaCode`).
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "coin",
    amount: "size",
    address: "address",
    network: Some("chain"),
    memo: Some("tag"),
    harmless: &[
        "transferType",
        "innerToType",
        "areaCode",
        "remark",
        "clientOid",
        "memberCode",
        "identityType",
        "companyName",
        "firstName",
        "lastName",
    ],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Bitget's API management page",
    withdraw: "Wallet: Withdraw",
    transfer: "Wallet: Transfer",
    margin: "Margin (read and write)",
    futures: "Futures Orders (read and write)",
    trade: "Spot (read and write)",
    ip: "Linked IP address",
};

/// `GET /api/v2/spot/account/info`: `authorities` codes (`wwow` wallet
/// withdrawal, `wtow` wallet transfer, `stow` spot, `smow` margin, `coow`
/// and `cpow` futures; read-only codes end in `r`) and `ips`.
fn key_info(v: &serde_json::Value, _api_key: &str) -> Result<KeyInfo, String> {
    let d = v.get("data").filter(|d| d.is_object()).ok_or("the answer has no data")?;
    let auth: Vec<&str> = d
        .get("authorities")
        .and_then(serde_json::Value::as_array)
        .ok_or("the answer has no authorities")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    // Some answers carry only the coarse `trade` / `readonly`.
    let coded = auth.iter().any(|a| a.len() == 4 && a.ends_with(['w', 'r']));
    let has = |code: &str| coded.then(|| auth.contains(&code));
    let ips = address_list(d.get("ips"));
    Ok(KeyInfo {
        withdraw: has("wwow"),
        transfer: has("wtow"),
        margin: has("smow"),
        futures: has("coow").zip(has("cpow")).map(|(a, b)| a || b),
        trade: if coded {
            Some(["stow", "smow", "coow", "cpow"].iter().any(|c| auth.contains(c)))
        } else {
            Some(auth.contains(&"trade"))
        },
        ip_restricted: Some(!ips.is_empty()),
        ips,
        expires_ms: None,
    })
}

impl Exchange for Bitget {
    fn kind(&self) -> &'static str {
        "bitget"
    }
    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/api", "https://api.bitget.com")]
    }
    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.bitget.com"]
    }
    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }
    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v2/spot/account/assets",
            query: &[],
            answer: AnswerShape::CodeField { code: "code", ok: "00000", message: "msg" },
        }
    }

    fn key_header(&self) -> &'static str {
        "access-key"
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["access-key", "access-sign", "access-timestamp", "access-passphrase"]
    }
    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        match &creds.private_key {
            Some(PrivateKey::Rsa(_)) => {}
            Some(_) => return Err(rsa_only()),
            None => {
                creds.secret()?;
            }
        }
        creds.passphrase()?;
        Ok(())
    }

    fn self_generated_keys(&self) -> &'static [KeyFamily] {
        &[KeyFamily::Rsa]
    }
    /// An internal transfer reads as network `internal-<innerToType>`; a
    /// mobile number as `AREA-NUMBER`.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/api/v2/spot/wallet/withdrawal" | "/api/v3/account/withdrawal") => {
                let mut w = WITHDRAW.read(req)?;
                match req.param("transferType").as_deref() {
                    Some("on_chain") => {
                        if req.param("innerToType").is_some() || req.param("areaCode").is_some() {
                            return Err(GuardError("innerToType and areaCode belong to internal transfers".into()));
                        }
                    }
                    Some("internal_transfer") => {
                        let to = req.param("innerToType").unwrap_or_else(|| "uid".into());
                        if !matches!(to.as_str(), "uid" | "email" | "mobile") {
                            return Err(GuardError(format!("innerToType {to:?} is not uid, email or mobile")));
                        }
                        if let Some(area) = req.param("areaCode") {
                            w.address = format!("{area}-{}", w.address);
                        }
                        w.network = Some(format!("internal-{to}"));
                    }
                    other => {
                        return Err(GuardError(format!("transferType {other:?} is not on_chain or internal_transfer")));
                    }
                }
                Ok(Some(w))
            }
            (Post, "/api/v2/spot/wallet/cancel-withdrawal") | (Get, "/api/v2/spot/wallet/withdrawal-records") => {
                Ok(None)
            }
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v2/spot/account/info", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// Spot needs a symbol: the unfilled orders (of every symbol) are
    /// listed first; futures cancel by product type.
    fn cancel_all(&self) -> Vec<Sweep> {
        let mix = |product: &str| {
            Sweep::Call(request(
                "POST",
                "/api/v2/mix/order/cancel-all-orders",
                &[],
                Some(serde_json::json!({"productType": product})),
            ))
        };
        vec![
            Sweep::per_symbol(
                request("GET", "/api/v2/spot/trade/unfilled-orders", &[], None),
                &["data"],
                "symbol",
                "/api/v2/spot/",
                |s| {
                    request(
                        "POST",
                        "/api/v2/spot/trade/cancel-symbol-order",
                        &[],
                        Some(serde_json::json!({"symbol": s})),
                    )
                },
            ),
            mix("USDT-FUTURES"),
            mix("USDC-FUTURES"),
            mix("COIN-FUTURES"),
        ]
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("Bitget takes JSON bodies".into()));
        }
        let query = req.query_string();
        let target = crate::canonical::request_target(&req.path, &query);
        let body = req.body_bytes();
        let text = body.as_ref().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let ts = ctx.timestamp_ms.to_string();
        let prehash = format!("{ts}{}{target}{text}", req.method.as_str());
        let sign = match &creds.private_key {
            Some(k @ PrivateKey::Rsa(_)) => b64(&k.sign(prehash.as_bytes())?),
            Some(_) => return Err(rsa_only()),
            None => b64(&hmac_sha256(creds.secret()?.as_bytes(), prehash.as_bytes())),
        };
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![
                h("ACCESS-KEY", creds.api_key.clone()),
                h("ACCESS-SIGN", sign),
                h("ACCESS-TIMESTAMP", ts),
                h("ACCESS-PASSPHRASE", creds.passphrase()?.to_string()),
                h("locale", "en-US"),
            ],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
