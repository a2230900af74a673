//! Kraken spot. Private calls are POSTs with a form body that carries a
//! nonce; `API-Sign` = base64(HMAC-SHA512(base64-decoded secret, path +
//! SHA-256(nonce + body))); the key goes in `API-Key`. The signature covers
//! path and body.

use crate::canonical::encode_pairs;
use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{b64, b64_decode, hmac_sha512, sha256};
use crate::orders::{GuardError, Order, decimal, param_decimal, side};
use crate::sweep::{DeadMan, Sweep, form};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h,
};
use rust_decimal::Decimal;

/// Kraken.
#[derive(Debug, Clone, Copy)]
pub struct Kraken;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/0/public/Time", Public),
    ep(Get, "/0/public/SystemStatus", Public),
    ep(Get, "/0/public/Assets", Public),
    ep(Get, "/0/public/AssetPairs", Public),
    ep(Get, "/0/public/Ticker", Public),
    ep(Get, "/0/public/OHLC", Public),
    ep(Get, "/0/public/Depth", Public),
    ep(Get, "/0/public/Trades", Public),
    ep(Get, "/0/public/Spread", Public),
    ep(Post, "/0/private/Balance", Read),
    ep(Post, "/0/private/BalanceEx", Read),
    ep(Post, "/0/private/TradeBalance", Read),
    ep(Post, "/0/private/OpenOrders", Read),
    ep(Post, "/0/private/ClosedOrders", Read),
    ep(Post, "/0/private/QueryOrders", Read),
    ep(Post, "/0/private/OrderAmends", Read),
    ep(Post, "/0/private/TradesHistory", Read),
    ep(Post, "/0/private/QueryTrades", Read),
    ep(Post, "/0/private/OpenPositions", Read),
    ep(Post, "/0/private/Ledgers", Read),
    ep(Post, "/0/private/QueryLedgers", Read),
    ep(Post, "/0/private/TradeVolume", Read),
    ep(Post, "/0/private/DepositMethods", Read),
    ep(Post, "/0/private/DepositAddresses", Read),
    ep(Post, "/0/private/DepositStatus", Read),
    ep(Post, "/0/private/AddOrder", Trade),
    ep(Post, "/0/private/AddOrderBatch", Trade),
    ep(Post, "/0/private/EditOrder", Trade),
    ep(Post, "/0/private/AmendOrder", Trade),
    ep(Post, "/0/private/CancelOrder", Cancel),
    ep(Post, "/0/private/CancelAll", Cancel),
    ep(Post, "/0/private/CancelAllOrdersAfter", Cancel),
    ep(Post, "/0/private/CancelOrderBatch", Cancel),
    ep(Post, "/0/private/WithdrawMethods", Withdraw),
    ep(Post, "/0/private/WithdrawAddresses", Withdraw),
    ep(Post, "/0/private/WithdrawInfo", Withdraw),
    ep(Post, "/0/private/Withdraw", Withdraw),
    ep(Post, "/0/private/WithdrawStatus", Withdraw),
    ep(Post, "/0/private/WithdrawCancel", Withdraw),
    ep(Post, "/0/private/WalletTransfer", Transfer),
    ep(Post, "/0/private/AccountTransfer", Transfer),
    ep(Post, "/0/private/CreateSubaccount", Admin),
    // What the key itself may do (keyward account check reads it).
    ep(Post, "/0/private/GetApiKeyInfo", Admin),
    // A WebSocket token would let its holder trade outside keyward.
    ep(Post, "/0/private/GetWebSocketsToken", Admin),
];

/// An order with every price it carries: its secondary price, and the
/// close order it attaches (`close[ordertype]`, `close[price]`,
/// `close[price2]`), each an order of its volume on the other side. Any
/// other `close[…]` field is not read: refused to a guarded key.
fn close_orders(req: &CanonicalRequest, parent: Order) -> Result<Vec<Order>, GuardError> {
    let names: Vec<String> = match &req.body {
        crate::Body::Form(p) => p.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    if let Some(other) = names.iter().chain(req.query.iter().map(|(k, _)| k)).find(|k| {
        k.starts_with("close") && !matches!(k.as_str(), "close[ordertype]" | "close[price]" | "close[price2]")
    }) {
        return Err(GuardError(format!("{other} is not read by keyward's guards")));
    }
    let mut out = Vec::new();
    if let Some(p) = param_decimal(req, "price2")? {
        out.push(crate::orders::priced_like(&parent, Some(p), None, false));
    }
    let close_prices = [param_decimal(req, "close[price]")?, param_decimal(req, "close[price2]")?];
    if req.param("close[ordertype]").is_some() || close_prices.iter().any(Option::is_some) {
        let priced: Vec<_> = close_prices.into_iter().flatten().collect();
        if priced.is_empty() {
            out.push(crate::orders::priced_like(&parent, None, None, true));
        }
        out.extend(priced.into_iter().map(|p| crate::orders::priced_like(&parent, Some(p), None, true)));
    }
    out.insert(0, parent);
    Ok(out)
}

/// Where a Kraken withdrawal names each part. Its destination is `key`,
/// the name of a withdrawal address approved on Kraken's website (that name
/// is what an allowlist entry holds); `address` only makes Kraken check the
/// key's address, and `max_fee` caps the fee.
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "asset",
    amount: "amount",
    address: "key",
    network: None,
    memo: None,
    harmless: &["address", "max_fee", "aclass", "nonce", "otp"],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Kraken's API key settings (Settings → API)",
    withdraw: "Withdraw Funds",
    transfer: "Withdraw Funds",
    margin: "",
    futures: "",
    trade: "Create & Modify Orders",
    ip: "IP allowlist",
};

/// `POST /0/private/GetApiKeyInfo`: `permissions` (`withdraw-funds`,
/// `modify-trades`, …), `ipAllowlist` (empty: any address), `validUntil`
/// (Unix seconds, `"0"`: no expiry).
fn key_info(v: &serde_json::Value, _api_key: &str) -> Result<KeyInfo, String> {
    let r = v.get("result").filter(|r| r.is_object()).ok_or("the answer has no result")?;
    let perms: Vec<&str> = r
        .get("permissions")
        .and_then(serde_json::Value::as_array)
        .ok_or("the answer has no permissions")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let ips = address_list(r.get("ipAllowlist"));
    let until = r.get("validUntil").and_then(|t| t.as_str().and_then(|s| s.parse::<i64>().ok()).or(t.as_i64()));
    Ok(KeyInfo {
        withdraw: Some(perms.contains(&"withdraw-funds")),
        // Transfers to the futures wallet need the withdrawal permission.
        transfer: Some(perms.contains(&"withdraw-funds")),
        margin: None,
        futures: None,
        trade: Some(perms.contains(&"modify-trades")),
        ip_restricted: Some(!ips.is_empty()),
        ips,
        expires_ms: until.filter(|t| *t > 0).map(|t| t * 1000),
    })
}

impl Exchange for Kraken {
    fn kind(&self) -> &'static str {
        "kraken"
    }

    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/0", "https://api.kraken.com")]
    }

    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.kraken.com"]
    }

    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // Spot margin: an order with leverage other than `none` borrows
        // (single, batch, edit and amend alike).
        let leveraged = crate::borrow::any(req, "leverage", &|v| v == "none");
        if class == Trade && leveraged {
            return Some(Borrow);
        }
        Some(class)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck { method: Method::Post, path: "/0/private/Balance", query: &[], answer: AnswerShape::ErrorList }
    }

    fn nonce_must_increase(&self) -> bool {
        true
    }
    fn key_header(&self) -> &'static str {
        "api-key"
    }

    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let pair = || req.param("pair").ok_or_else(|| GuardError("the order has no pair".into()));
        match req.path.as_str() {
            "/0/private/AddOrder" => {
                let ordertype = req.param("ordertype").unwrap_or_default();
                if ordertype != "market" && ordertype != "limit" {
                    return Err(GuardError(format!("{ordertype:?} orders are not read by keyward's guards")));
                }
                // viqc: the volume is in the quote currency.
                let viqc = req.param("oflags").is_some_and(|f| f.split(',').any(|x| x == "viqc"));
                let volume = param_decimal(req, "volume")?;
                let parent = Order {
                    symbol: pair()?,
                    side: Some(side(req.param("type"))?),
                    qty: if viqc { None } else { volume },
                    quote_qty: if viqc { volume } else { None },
                    price: if ordertype == "limit" { param_decimal(req, "price")? } else { None },
                    client_order_id: req.param("cl_ord_id").or_else(|| req.param("userref")),
                    symbol_only: false,
                };
                close_orders(req, parent)
            }
            "/0/private/EditOrder" => {
                let parent = Order {
                    symbol: pair()?,
                    side: None,
                    qty: param_decimal(req, "volume")?,
                    quote_qty: None,
                    price: param_decimal(req, "price")?,
                    client_order_id: None,
                    symbol_only: false,
                };
                close_orders(req, parent)
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let q = format!("pair={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/0/public/Ticker", Some(&q), None, b"").ok()
    }

    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let (_, t) = v.get("result")?.as_object()?.iter().next()?;
        decimal("last", t.get("c")?.get(0)?.as_str()?).ok()
    }

    fn auth_headers(&self) -> &'static [&'static str] {
        &["api-key", "api-sign"]
    }

    fn auth_params(&self) -> &'static [&'static str] {
        &["nonce"]
    }

    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        b64_decode(creds.secret()?).ok_or(SignError::Field { field: "api_secret", reason: "not base64".into() })?;
        Ok(())
    }

    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match req.path.as_str() {
            "/0/private/Withdraw" => {
                if req.param("aclass").is_some_and(|c| c != "currency") {
                    return Err(GuardError("keyward reads currency withdrawals only (aclass currency)".into()));
                }
                WITHDRAW.read(req).map(Some)
            }
            "/0/private/WithdrawMethods"
            | "/0/private/WithdrawAddresses"
            | "/0/private/WithdrawInfo"
            | "/0/private/WithdrawStatus"
            | "/0/private/WithdrawCancel" => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {}", req.path))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: form("POST", "/0/private/GetApiKeyInfo", &[]),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    fn cancel_all(&self) -> Vec<Sweep> {
        vec![Sweep::Call(form("POST", "/0/private/CancelAll", &[]))]
    }

    /// Account-wide; Kraken recommends 60 seconds, re-armed every 15 to 30.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /0/private/CancelAllOrdersAfter",
            min_s: 10,
            max_s: 86_399,
            arm: |timeout_s| {
                vec![Sweep::Call(form(
                    "POST",
                    "/0/private/CancelAllOrdersAfter",
                    &[("timeout", &timeout_s.to_string())],
                ))]
            },
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if req.method != Post {
            return Err(SignError::Request("Kraken's private endpoints take POST".into()));
        }
        let mut params = vec![("nonce".to_string(), ctx.nonce.to_string())];
        params.extend(req.query.iter().cloned());
        match &req.body {
            Body::Empty => {}
            Body::Form(p) => params.extend(p.iter().cloned()),
            Body::Json(_) => return Err(SignError::Request("Kraken takes form parameters, not JSON".into())),
        }
        let body = encode_pairs(&params);
        let secret =
            b64_decode(creds.secret()?).ok_or(SignError::Field { field: "api_secret", reason: "not base64".into() })?;
        let mut msg = req.path.as_bytes().to_vec();
        msg.extend(sha256(format!("{}{body}", ctx.nonce).as_bytes()));
        let sig = b64(&hmac_sha512(&secret, &msg));
        Ok(Outgoing {
            method: Post,
            path: req.path.clone(),
            query: String::new(),
            headers: vec![h("API-Key", creds.api_key.clone()), h("API-Sign", sig)],
            body: Some(("application/x-www-form-urlencoded".into(), body.into_bytes())),
        })
    }
}
