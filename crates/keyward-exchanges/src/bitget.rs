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
use crate::orders::{
    GuardError, Order, OrdersRead, Side, decimal, json_decimal, list_of, objects, priced_like, required, side, text,
    with_trigger,
};
use crate::sweep::{Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, KeyFamily, Method, Outgoing, PrivateKey, SignContext,
    SignError, Withdrawal, h,
};
use rust_decimal::Decimal;
use serde_json::Value;

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

/// Take-profit and stop-loss prices of a spot order (trigger and execution).
const SPOT_TPSL: [&str; 4] =
    ["presetTakeProfitPrice", "executeTakeProfitPrice", "presetStopLossPrice", "executeStopLossPrice"];
/// The same on a futures order.
const MIX_TPSL: [&str; 4] =
    ["presetStopSurplusPrice", "presetStopLossPrice", "presetStopSurplusExecutePrice", "presetStopLossExecutePrice"];
/// And on a futures amendment, where `0` deletes one.
const MIX_NEW_TPSL: [&str; 2] = ["newPresetStopSurplusPrice", "newPresetStopLossPrice"];

/// Each take-profit or stop-loss price among `names`: an order of the
/// parent's size on the other side (`0` sets none: it deletes one).
fn tp_sl(parent: &Order, o: &Value, names: &[&str]) -> OrdersRead {
    let mut out = Vec::new();
    for name in names {
        if let Some(p) = json_decimal(o, name)?.filter(|p| !p.is_zero()) {
            out.push(priced_like(parent, Some(p), None, true));
        }
    }
    Ok(out)
}

/// `orderType` `limit` (which needs a price) or `market` (which takes none:
/// Bitget ignores it, so one is refused rather than read).
fn is_market(o: &Value, price: Option<Decimal>) -> Result<bool, GuardError> {
    let market = match o.get("orderType").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("limit") => false,
        Some("market") => true,
        _ => return Err(GuardError("orderType is not limit or market".into())),
    };
    if market == price.is_some() {
        return Err(GuardError("a limit order needs a price; a market one takes none".into()));
    }
    Ok(market)
}

/// The symbol of an item of a batch for `top`: the top-level one, which
/// Bitget trades (unless the spot batch's `batchMode` is `multiple`); an
/// item naming another is refused.
fn item_symbol(item: &Value, top: &str, multiple: bool) -> Result<String, GuardError> {
    match (item.get("symbol").and_then(text), multiple) {
        (Some(own), true) => Ok(own),
        (None, true) => Err(GuardError("a batch in multiple mode names each order's symbol".into())),
        (Some(own), false) if own != top => Err(GuardError(format!("an order on {own} in a batch for {top}"))),
        _ => Ok(top.to_string()),
    }
}

/// A spot order: `size` is the quote amount of a market buy, base otherwise.
fn spot(o: &Value, symbol: String) -> OrdersRead {
    let side = side(o.get("side").and_then(text))?;
    let price = json_decimal(o, "price")?;
    let in_quote = is_market(o, price)? && side == Side::Buy;
    let size = json_decimal(o, "size")?.ok_or_else(|| GuardError("the order has no size".into()))?;
    let parent = Order {
        symbol,
        side: Some(side),
        qty: (!in_quote).then_some(size),
        quote_qty: in_quote.then_some(size),
        price,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    let mut out = tp_sl(&parent, o, &SPOT_TPSL)?;
    out.splice(0..0, with_trigger(parent, json_decimal(o, "triggerPrice")?));
    Ok(out)
}

/// A futures order, sized in the base coin. In hedge mode `side` is the
/// position's: `tradeSide` `close` trades the other way.
fn mix(o: &Value, symbol: String) -> OrdersRead {
    let mut side = side(o.get("side").and_then(text))?;
    match o.get("tradeSide").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        None | Some("open") => {}
        Some("close") => side = if side == Side::Buy { Side::Sell } else { Side::Buy },
        Some(other) => return Err(GuardError(format!("tradeSide {other:?} is not open or close"))),
    }
    let price = json_decimal(o, "price")?;
    is_market(o, price)?;
    let parent = Order {
        symbol,
        side: Some(side),
        qty: Some(json_decimal(o, "size")?.ok_or_else(|| GuardError("the order has no size".into()))?),
        quote_qty: None,
        price,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    let mut out = tp_sl(&parent, o, &MIX_TPSL)?;
    out.insert(0, parent);
    Ok(out)
}

/// An amendment: a new size (base) and price for an order of `symbol`,
/// whose side it does not restate, and its new take-profit and stop-loss.
fn amend(o: &Value, size: &str, price: &str, tpsl: &[&str]) -> OrdersRead {
    let parent = Order {
        symbol: required(o, "symbol")?,
        side: None,
        qty: json_decimal(o, size)?,
        quote_qty: None,
        price: json_decimal(o, price)?,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    let mut out = tp_sl(&parent, o, tpsl)?;
    out.insert(0, parent);
    Ok(out)
}

/// A unified-account (v3) order: `qty` in the base coin, except a spot or
/// margin market buy, whose unit Bitget does not document (it states no
/// quantity guards can check); `takeProfit` and `stopLoss` trigger prices
/// and their limit prices close it.
fn unified(o: &Value) -> OrdersRead {
    let side = side(o.get("side").and_then(text))?;
    let price = json_decimal(o, "price")?;
    let market = is_market(o, price)?;
    let spot = matches!(
        o.get("category").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref(),
        Some("SPOT" | "MARGIN")
    );
    let qty = json_decimal(o, "qty")?.ok_or_else(|| GuardError("the order has no qty".into()))?;
    let parent = Order {
        symbol: required(o, "symbol")?,
        side: Some(side),
        qty: (!(spot && market && side == Side::Buy)).then_some(qty),
        quote_qty: None,
        price,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    let mut out = tp_sl(&parent, o, &["takeProfit", "stopLoss", "tpLimitPrice", "slLimitPrice"])?;
    out.insert(0, parent);
    Ok(out)
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

    /// Spot and futures orders, batches and amendments (v2), unified-account
    /// orders (v3); leverage and margin mode hold only the symbol.
    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let o = objects(req, false)?[0];
        let batch = |read: fn(&Value, String) -> OrdersRead, multiple: bool| -> OrdersRead {
            let top = if multiple { String::new() } else { required(o, "symbol")? };
            let mut out = Vec::new();
            for item in list_of(o, "orderList")? {
                out.extend(read(item, item_symbol(item, &top, multiple)?)?);
            }
            Ok(out)
        };
        match req.path.as_str() {
            "/api/v2/spot/trade/place-order" => spot(o, required(o, "symbol")?),
            "/api/v2/spot/trade/batch-orders" => match o.get("batchMode").and_then(Value::as_str) {
                None | Some("single") => batch(spot, false),
                Some("multiple") => batch(spot, true),
                Some(other) => Err(GuardError(format!("batchMode {other:?} is not single or multiple"))),
            },
            "/api/v2/spot/trade/cancel-replace-order" => amend(o, "size", "price", &SPOT_TPSL),
            "/api/v2/mix/order/place-order" => mix(o, required(o, "symbol")?),
            "/api/v2/mix/order/batch-place-order" => batch(mix, false),
            "/api/v2/mix/order/modify-order" => amend(o, "newSize", "newPrice", &MIX_NEW_TPSL),
            "/api/v3/trade/place-order" => unified(o),
            "/api/v3/trade/modify-order" => amend(o, "qty", "price", &[]),
            "/api/v2/mix/account/set-leverage"
            | "/api/v2/mix/account/set-margin-mode"
            | "/api/v3/account/set-leverage" => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)])
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    /// Spot's ticker, or the futures product type's (which every futures
    /// order names; a unified order's category is its product type).
    fn ticker(&self, order_path: &str, symbol: &str, req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let sym = crate::canonical::encode_component(symbol);
        let product = req
            .param("productType")
            .or_else(|| req.param("category"))
            .filter(|c| !matches!(c.to_ascii_uppercase().as_str(), "SPOT" | "MARGIN"));
        match product {
            Some(p) if order_path.starts_with("/api/v2/mix/") || order_path.starts_with("/api/v3/") => {
                let q = format!("symbol={sym}&productType={}", crate::canonical::encode_component(&p));
                CanonicalRequest::parse("GET", "/api/v2/mix/market/ticker", Some(&q), None, b"").ok()
            }
            _ => {
                CanonicalRequest::parse("GET", "/api/v2/spot/market/tickers", Some(&format!("symbol={sym}")), None, b"")
                    .ok()
            }
        }
    }

    /// `{"code":"00000","data":[{"symbol":"BTCUSDT","lastPr":"34413.1",…}]}`.
    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        decimal("lastPr", v.get("data")?.get(0)?.get("lastPr")?.as_str()?).ok().filter(|p| *p > Decimal::ZERO)
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
