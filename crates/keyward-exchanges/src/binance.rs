//! Binance: spot (`/api`), wallet and margin (`/sapi`), USD-M futures
//! (`/fapi`). Keys: HMAC-SHA256 (hex), Ed25519 or RSA (base64), over the
//! encoded parameters plus `timestamp` and `recvWindow`; the key goes in
//! `X-MBX-APIKEY`. The signature does not cover the path: a signature
//! handed out could be replayed on another endpoint with the same
//! parameters, so the sign API refuses Binance accounts without `admin`.

use crate::canonical::encode_pairs;
use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, flag};
use crate::mac::{b64, hex, hmac_sha256};
use crate::orders::{GuardError, Order, decimal, side};
use crate::sweep::{DeadMan, Sweep, form, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, KeyFamily, Method, Outgoing, PrivateKey, SignContext,
    SignError, Withdrawal, h,
};
use rust_decimal::Decimal;

/// Binance.
#[derive(Debug, Clone, Copy)]
pub struct Binance;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Delete, Get, Post, Put};

static CATALOG: &[Endpoint] = &[
    // Spot market data and exchange info.
    ep(Get, "/api/v3/ping", Public),
    ep(Get, "/api/v3/time", Public),
    ep(Get, "/api/v3/exchangeInfo", Public),
    ep(Get, "/api/v3/depth", Public),
    ep(Get, "/api/v3/trades", Public),
    ep(Get, "/api/v3/historicalTrades", Public),
    ep(Get, "/api/v3/aggTrades", Public),
    ep(Get, "/api/v3/klines", Public),
    ep(Get, "/api/v3/uiKlines", Public),
    ep(Get, "/api/v3/avgPrice", Public),
    ep(Get, "/api/v3/ticker/24hr", Public),
    ep(Get, "/api/v3/ticker/tradingDay", Public),
    ep(Get, "/api/v3/ticker/price", Public),
    ep(Get, "/api/v3/ticker/bookTicker", Public),
    ep(Get, "/api/v3/ticker", Public),
    // Spot account.
    ep(Get, "/api/v3/account", Read),
    ep(Get, "/api/v3/account/commission", Read),
    ep(Get, "/api/v3/order", Read),
    ep(Get, "/api/v3/openOrders", Read),
    ep(Get, "/api/v3/allOrders", Read),
    ep(Get, "/api/v3/myTrades", Read),
    ep(Get, "/api/v3/myPreventedMatches", Read),
    ep(Get, "/api/v3/myAllocations", Read),
    ep(Get, "/api/v3/rateLimit/order", Read),
    ep(Get, "/api/v3/orderList", Read),
    ep(Get, "/api/v3/allOrderList", Read),
    ep(Get, "/api/v3/openOrderList", Read),
    // Spot trading.
    ep(Post, "/api/v3/order", Trade),
    ep(Post, "/api/v3/order/test", Trade),
    ep(Post, "/api/v3/order/cancelReplace", Trade),
    ep(Put, "/api/v3/order/amend/keepPriority", Trade),
    ep(Post, "/api/v3/order/oco", Trade),
    ep(Post, "/api/v3/orderList/oco", Trade),
    ep(Post, "/api/v3/orderList/oto", Trade),
    ep(Post, "/api/v3/orderList/otoco", Trade),
    ep(Post, "/api/v3/sor/order", Trade),
    ep(Post, "/api/v3/sor/order/test", Trade),
    ep(Delete, "/api/v3/order", Cancel),
    ep(Delete, "/api/v3/openOrders", Cancel),
    ep(Delete, "/api/v3/orderList", Cancel),
    // Listen keys open the user-data stream: it only reads the account's events.
    ep(Post, "/api/v3/userDataStream", Read),
    ep(Put, "/api/v3/userDataStream", Read),
    ep(Delete, "/api/v3/userDataStream", Read),
    // Wallet: what ccxt's fetchCurrencies, fetchTradingFees, fetchDepositAddress read.
    ep(Get, "/sapi/v1/system/status", Public),
    ep(Get, "/sapi/v1/capital/config/getall", Read),
    ep(Get, "/sapi/v1/asset/tradeFee", Read),
    ep(Get, "/sapi/v1/asset/assetDetail", Read),
    ep(Post, "/sapi/v3/asset/getUserAsset", Read),
    ep(Get, "/sapi/v1/account/status", Read),
    ep(Get, "/sapi/v1/account/apiTradingStatus", Read),
    ep(Get, "/sapi/v1/capital/deposit/hisrec", Read),
    ep(Get, "/sapi/v1/capital/deposit/address", Read),
    ep(Get, "/sapi/v1/account/info", Read),
    // Fund movers.
    ep(Post, "/sapi/v1/capital/withdraw/apply", Withdraw),
    ep(Get, "/sapi/v1/capital/withdraw/history", Withdraw),
    ep(Get, "/sapi/v1/capital/withdraw/address/list", Withdraw),
    ep(Post, "/sapi/v1/giftcard/createCode", Withdraw),
    ep(Post, "/sapi/v1/giftcard/buyCode", Withdraw),
    ep(Post, "/sapi/v1/giftcard/redeemCode", Transfer),
    ep(Post, "/sapi/v1/asset/transfer", Transfer),
    ep(Get, "/sapi/v1/asset/transfer", Transfer),
    ep(Post, "/sapi/v1/margin/transfer", Transfer),
    ep(Post, "/sapi/v1/futures/transfer", Transfer),
    ep(Post, "/sapi/v1/asset/dust", Transfer),
    ep(Post, "/sapi/v1/asset/dust-btc", Transfer),
    ep(Post, "/sapi/v1/convert/getQuote", Transfer),
    ep(Post, "/sapi/v1/convert/acceptQuote", Transfer),
    ep(Post, "/sapi/v1/sub-account/transfer/subToMaster", Transfer),
    ep(Post, "/sapi/v1/sub-account/transfer/subToSub", Transfer),
    ep(Post, "/sapi/v1/sub-account/universalTransfer", Transfer),
    ep(Post, "/sapi/v1/sub-account/futures/transfer", Transfer),
    ep(Post, "/sapi/v1/sub-account/margin/transfer", Transfer),
    ep(Post, "/sapi/v1/margin/loan", Borrow),
    ep(Post, "/sapi/v1/margin/repay", Borrow),
    ep(Post, "/sapi/v1/margin/borrow-repay", Borrow),
    // API-key management.
    ep(Get, "/sapi/v1/account/apiRestrictions", Admin),
    // Margin listen keys (the user-data stream only reads).
    ep(Post, "/sapi/v1/userDataStream", Read),
    ep(Put, "/sapi/v1/userDataStream", Read),
    ep(Delete, "/sapi/v1/userDataStream", Read),
    ep(Post, "/sapi/v1/userDataStream/isolated", Read),
    ep(Put, "/sapi/v1/userDataStream/isolated", Read),
    ep(Delete, "/sapi/v1/userDataStream/isolated", Read),
    // Margin pairs (ccxt's load_markets reads them, signed).
    ep(Get, "/sapi/v1/margin/allPairs", Read),
    ep(Get, "/sapi/v1/margin/isolated/allPairs", Read),
    // Margin trading (an order may auto-borrow: see `classify`).
    ep(Get, "/sapi/v1/margin/account", Read),
    ep(Get, "/sapi/v1/margin/isolated/account", Read),
    ep(Get, "/sapi/v1/margin/order", Read),
    ep(Get, "/sapi/v1/margin/openOrders", Read),
    ep(Get, "/sapi/v1/margin/allOrders", Read),
    ep(Get, "/sapi/v1/margin/myTrades", Read),
    ep(Post, "/sapi/v1/margin/order", Trade),
    ep(Delete, "/sapi/v1/margin/order", Cancel),
    ep(Delete, "/sapi/v1/margin/openOrders", Cancel),
    // Symbols to be delisted (Freqtrade's DelistFilter reads them).
    ep(Get, "/sapi/v1/spot/delist-schedule", Read),
    ep(Get, "/sapi/v1/margin/delist-schedule", Read),
    // COIN-M futures: the markets ccxt loads by default (no trading listed).
    ep(Get, "/dapi/v1/ping", Public),
    ep(Get, "/dapi/v1/time", Public),
    ep(Get, "/dapi/v1/exchangeInfo", Public),
    // USD-M futures market data.
    ep(Get, "/fapi/v1/ping", Public),
    ep(Get, "/fapi/v1/time", Public),
    ep(Get, "/fapi/v1/exchangeInfo", Public),
    ep(Get, "/fapi/v1/depth", Public),
    ep(Get, "/fapi/v1/trades", Public),
    ep(Get, "/fapi/v1/historicalTrades", Public),
    ep(Get, "/fapi/v1/aggTrades", Public),
    ep(Get, "/fapi/v1/klines", Public),
    ep(Get, "/fapi/v1/continuousKlines", Public),
    ep(Get, "/fapi/v1/indexPriceKlines", Public),
    ep(Get, "/fapi/v1/markPriceKlines", Public),
    ep(Get, "/fapi/v1/premiumIndex", Public),
    ep(Get, "/fapi/v1/fundingRate", Public),
    ep(Get, "/fapi/v1/fundingInfo", Public),
    ep(Get, "/fapi/v1/ticker/24hr", Public),
    ep(Get, "/fapi/v1/ticker/price", Public),
    ep(Get, "/fapi/v2/ticker/price", Public),
    ep(Get, "/fapi/v1/ticker/bookTicker", Public),
    ep(Get, "/fapi/v1/openInterest", Public),
    // USD-M futures account.
    ep(Get, "/fapi/v2/account", Read),
    ep(Get, "/fapi/v3/account", Read),
    ep(Get, "/fapi/v2/balance", Read),
    ep(Get, "/fapi/v3/balance", Read),
    ep(Get, "/fapi/v2/positionRisk", Read),
    ep(Get, "/fapi/v3/positionRisk", Read),
    ep(Get, "/fapi/v1/order", Read),
    ep(Get, "/fapi/v1/openOrder", Read),
    ep(Get, "/fapi/v1/openOrders", Read),
    ep(Get, "/fapi/v1/allOrders", Read),
    ep(Get, "/fapi/v1/userTrades", Read),
    ep(Get, "/fapi/v1/income", Read),
    ep(Get, "/fapi/v1/leverageBracket", Read),
    ep(Get, "/fapi/v1/positionSide/dual", Read),
    ep(Get, "/fapi/v1/multiAssetsMargin", Read),
    ep(Get, "/fapi/v1/commissionRate", Read),
    ep(Get, "/fapi/v1/symbolConfig", Read),
    ep(Get, "/fapi/v1/accountConfig", Read),
    ep(Get, "/fapi/v1/adlQuantile", Read),
    ep(Get, "/fapi/v1/forceOrders", Read),
    ep(Get, "/fapi/v1/apiTradingStatus", Read),
    ep(Get, "/fapi/v1/rateLimit/order", Read),
    // USD-M futures trading.
    ep(Post, "/fapi/v1/order", Trade),
    ep(Put, "/fapi/v1/order", Trade),
    ep(Post, "/fapi/v1/order/test", Trade),
    ep(Post, "/fapi/v1/batchOrders", Trade),
    ep(Put, "/fapi/v1/batchOrders", Trade),
    ep(Post, "/fapi/v1/leverage", Trade),
    ep(Post, "/fapi/v1/marginType", Trade),
    ep(Post, "/fapi/v1/positionSide/dual", Trade),
    ep(Post, "/fapi/v1/multiAssetsMargin", Trade),
    ep(Post, "/fapi/v1/positionMargin", Trade),
    ep(Delete, "/fapi/v1/order", Cancel),
    ep(Delete, "/fapi/v1/batchOrders", Cancel),
    ep(Delete, "/fapi/v1/allOpenOrders", Cancel),
    ep(Post, "/fapi/v1/countdownCancelAll", Cancel),
    ep(Post, "/fapi/v1/listenKey", Read),
    ep(Put, "/fapi/v1/listenKey", Read),
    ep(Delete, "/fapi/v1/listenKey", Read),
];

/// One order from its parameters (`get` reads a parameter by name), with
/// its stop and activation prices as orders of its size: every price is
/// held to the guards.
fn order(get: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Order>, GuardError> {
    let dec = |name: &str| get(name).filter(|v| !v.is_empty()).map(|v| decimal(name, &v)).transpose();
    let parent = Order {
        symbol: get("symbol").ok_or_else(|| GuardError("the order has no symbol".into()))?,
        side: Some(side(get("side"))?),
        qty: dec("quantity")?,
        quote_qty: dec("quoteOrderQty")?,
        price: dec("price")?,
        client_order_id: get("newClientOrderId"),
        symbol_only: false,
    };
    let mut out = Vec::new();
    for name in ["stopPrice", "activationPrice"] {
        if let Some(p) = dec(name)? {
            out.push(crate::orders::priced_like(&parent, Some(p), None, false));
        }
    }
    out.insert(0, parent);
    Ok(out)
}

/// Where a Binance withdrawal names each part. `walletType` (the source
/// wallet), `transactionFeeFlag` (who bears an internal transfer's fee)
/// and `withdrawOrderId` change neither destination nor amount; `name`
/// (saves the address to the address book) and anything else is refused.
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "coin",
    amount: "amount",
    address: "address",
    network: Some("network"),
    memo: Some("addressTag"),
    harmless: &["withdrawOrderId", "walletType", "transactionFeeFlag"],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Binance's API Management page (Edit restrictions)",
    withdraw: "Enable Withdrawals",
    transfer: "Permits Universal Transfer",
    margin: "Enable Margin Loan, Repay & Transfer",
    futures: "Enable Futures",
    trade: "Enable Spot & Margin Trading",
    ip: "Restrict access to trusted IPs only",
};

/// `GET /sapi/v1/account/apiRestrictions`: booleans per permission and
/// `ipRestrict`; the trusted addresses themselves are not listed.
fn key_info(v: &serde_json::Value, _api_key: &str) -> Result<KeyInfo, String> {
    if !v.is_object() || v.get("ipRestrict").is_none() {
        return Err("the answer has no ipRestrict".into());
    }
    let f = |name: &str| flag(v.get(name));
    let either = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => None,
        _ => Some(false),
    };
    Ok(KeyInfo {
        withdraw: f("enableWithdrawals"),
        transfer: either(f("permitsUniversalTransfer"), f("enableInternalTransfer")),
        margin: f("enableMargin"),
        futures: f("enableFutures"),
        trade: either(f("enableSpotAndMarginTrading"), f("enableFutures")),
        ip_restricted: f("ipRestrict"),
        ips: Vec::new(),
        expires_ms: v.get("tradingAuthorityExpirationTime").and_then(serde_json::Value::as_i64).filter(|t| *t > 0),
    })
}

impl Exchange for Binance {
    fn kind(&self) -> &'static str {
        "binance"
    }

    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("/api", "https://api.binance.com"),
            ("/sapi", "https://api.binance.com"),
            ("/fapi", "https://fapi.binance.com"),
            ("/futures/data", "https://fapi.binance.com"),
            ("/dapi", "https://dapi.binance.com"),
        ]
    }

    fn own_hosts(&self) -> &'static [&'static str] {
        &[
            "api.binance.com",
            "api1.binance.com",
            "api2.binance.com",
            "api3.binance.com",
            "api4.binance.com",
            "api-gcp.binance.com",
            "fapi.binance.com",
            "dapi.binance.com",
            "testnet.binance.vision",
            "testnet.binancefuture.com",
            "demo-api.binance.com",
            "demo-fapi.binance.com",
        ]
    }

    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // An order that borrows is a loan, whatever its endpoint says: a
        // side effect other than none or repaying borrows.
        let borrows = crate::borrow::any(req, "sideEffectType", &|v| {
            crate::borrow::is_exactly(v, "NO_SIDE_EFFECT") || crate::borrow::is_exactly(v, "AUTO_REPAY")
        });
        if class == Trade && borrows {
            return Some(Borrow);
        }
        Some(class)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v3/account",
            query: &[("omitZeroBalances", "true")],
            answer: AnswerShape::Status { code: "code", message: "msg" },
        }
    }

    fn key_header(&self) -> &'static str {
        "x-mbx-apikey"
    }

    fn budget_bucket(&self, path: &str) -> Option<&'static str> {
        if path.starts_with("/fapi/") || path.starts_with("/futures/") {
            Some("fapi-weight")
        } else if path.starts_with("/api/") || path.starts_with("/sapi/") {
            Some("api-weight")
        } else {
            None
        }
    }

    /// `X-MBX-USED-WEIGHT-1M`: weight used in the current minute, per egress
    /// address; spot allows 6,000 a minute, USD-M futures 2,400.
    fn usage(&self, path: &str, header: &dyn Fn(&str) -> Option<String>, now_ms: i64) -> Option<crate::Usage> {
        let used = header("x-mbx-used-weight-1m")?.trim().parse().ok()?;
        let bucket = self.budget_bucket(path)?;
        let limit = if bucket == "fapi-weight" { 2400 } else { 6000 };
        Some(crate::Usage { bucket, used, limit, resets_in_ms: (60_000 - now_ms.rem_euclid(60_000)) as u64 })
    }

    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let flat = |name: &str| req.param(name);
        match (req.method, req.path.as_str()) {
            (
                Post,
                "/api/v3/order"
                | "/api/v3/order/test"
                | "/api/v3/sor/order"
                | "/api/v3/sor/order/test"
                | "/api/v3/order/cancelReplace"
                | "/fapi/v1/order"
                | "/fapi/v1/order/test"
                | "/sapi/v1/margin/order",
            )
            | (Put, "/fapi/v1/order") => order(&flat),
            (Post | Put, "/fapi/v1/batchOrders") => {
                let list = req.param("batchOrders").ok_or_else(|| GuardError("batchOrders is missing".into()))?;
                let list: Vec<serde_json::Value> = crate::canonical::parse_json(list.as_bytes())
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .ok_or_else(|| GuardError("batchOrders is not a JSON list".into()))?;
                let mut out = Vec::new();
                for o in &list {
                    out.extend(order(&|n: &str| o.get(n).and_then(crate::orders::text))?);
                }
                Ok(out)
            }
            // keepPriority amendments change only the quantity (downwards).
            (Put, "/api/v3/order/amend/keepPriority") => Ok(vec![
                Order {
                    qty: Some(
                        crate::orders::param_decimal(req, "newQty")?
                            .ok_or_else(|| GuardError("the amendment has no newQty".into()))?,
                    ),
                    ..Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)
                }
                .sized(),
            ]),
            // Leverage, margin type and a position's margin name a symbol and size no order.
            (Post, "/fapi/v1/leverage" | "/fapi/v1/marginType" | "/fapi/v1/positionMargin") => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)])
            }
            _ => Err(GuardError(format!("keyward's guards do not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn ticker(&self, order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let path = if order_path.starts_with("/fapi/") { "/fapi/v1/ticker/price" } else { "/api/v3/ticker/price" };
        CanonicalRequest::parse(
            "GET",
            path,
            Some(&format!("symbol={}", crate::canonical::encode_component(symbol))),
            None,
            b"",
        )
        .ok()
    }

    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        decimal("price", v.get("price")?.as_str()?).ok()
    }

    fn auth_headers(&self) -> &'static [&'static str] {
        &["x-mbx-apikey"]
    }

    fn auth_params(&self) -> &'static [&'static str] {
        &["signature", "timestamp", "recvWindow"]
    }

    fn signature_binds_request(&self) -> bool {
        false
    }

    fn self_generated_keys(&self) -> &'static [KeyFamily] {
        &[KeyFamily::Ed25519, KeyFamily::Rsa]
    }

    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        match &creds.private_key {
            Some(PrivateKey::EcdsaP256(_)) => {
                Err(SignError::Field { field: "private_key", reason: "Binance takes Ed25519 or RSA keys".into() })
            }
            Some(_) => Ok(()),
            None => creds.secret().map(|_| ()),
        }
    }

    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/sapi/v1/capital/withdraw/apply") => WITHDRAW.read(req).map(Some),
            (Get, "/sapi/v1/capital/withdraw/history" | "/sapi/v1/capital/withdraw/address/list") => Ok(None),
            _ => Err(GuardError(format!(
                "{} {} sends funds to no address keyward can hold to an allowlist (a gift card is a bearer code)",
                req.method.as_str(),
                req.path
            ))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/sapi/v1/account/apiRestrictions", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// Spot, then USD-M futures: both need a symbol, so the open orders
    /// (of every symbol) are listed first.
    fn cancel_all(&self) -> Vec<Sweep> {
        vec![
            Sweep::per_symbol(request("GET", "/api/v3/openOrders", &[], None), &[], "symbol", "/api/", |s| {
                request("DELETE", "/api/v3/openOrders", &[("symbol", s)], None)
            }),
            Sweep::per_symbol(request("GET", "/fapi/v1/openOrders", &[], None), &[], "symbol", "/fapi/", |s| {
                request("DELETE", "/fapi/v1/allOpenOrders", &[("symbol", s)], None)
            }),
        ]
    }

    /// USD-M futures only (spot has no countdown), one timer per symbol
    /// with open orders.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /fapi/v1/countdownCancelAll (USD-M futures, per symbol with open orders)",
            min_s: 10,
            max_s: 3600,
            arm: |timeout_s| {
                let ms = (u64::from(timeout_s) * 1000).to_string();
                vec![Sweep::per_symbol(
                    request("GET", "/fapi/v1/openOrders", &[], None),
                    &[],
                    "symbol",
                    "/fapi/",
                    move |s| form("POST", "/fapi/v1/countdownCancelAll", &[("symbol", s), ("countdownTime", &ms)]),
                )]
            },
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        let form: &[(String, String)] = match &req.body {
            Body::Empty => &[],
            Body::Form(p) => p,
            Body::Json(_) => return Err(SignError::Request("Binance takes form parameters, not JSON".into())),
        };
        // The query, the form, then the order of Binance's own worked example.
        let mut payload = encode_pairs(&req.query);
        // Room for the form, the time fields and an HMAC signature: the
        // payload is not grown pair by pair (escapes and longer signatures
        // may still grow it once).
        payload.reserve(form.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>() + 160);
        for (k, v) in form.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([
            ("recvWindow", ctx.recv_window_ms.to_string().as_str()),
            ("timestamp", ctx.timestamp_ms.to_string().as_str()),
        ]) {
            if !payload.is_empty() {
                payload.push('&');
            }
            crate::canonical::encode_component_into(&mut payload, k);
            payload.push('=');
            crate::canonical::encode_component_into(&mut payload, v);
        }
        let signature = match &creds.private_key {
            Some(k @ (PrivateKey::Ed25519(_) | PrivateKey::Rsa(_))) => b64(&k.sign(payload.as_bytes())?),
            Some(PrivateKey::EcdsaP256(_)) => {
                return Err(SignError::Field {
                    field: "private_key",
                    reason: "Binance takes Ed25519 or RSA keys".into(),
                });
            }
            None => hex(&hmac_sha256(creds.secret()?.as_bytes(), payload.as_bytes())),
        };
        // The signed payload, then the signature: what encoding all the
        // pairs again would give, without doing it.
        let mut encoded = payload;
        encoded.push_str("&signature=");
        crate::canonical::encode_component_into(&mut encoded, &signature);
        let headers = vec![h("X-MBX-APIKEY", creds.api_key.clone())];
        Ok(match req.method {
            Get | Delete => {
                Outgoing { method: req.method, path: req.path.clone(), query: encoded, headers, body: None }
            }
            Post | Put => Outgoing {
                method: req.method,
                path: req.path.clone(),
                query: String::new(),
                headers,
                body: Some(("application/x-www-form-urlencoded".into(), encoded.into_bytes())),
            },
        })
    }
}
