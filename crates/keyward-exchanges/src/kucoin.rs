//! KuCoin (API key version 2 or 3): `KC-API-SIGN` = base64(HMAC-SHA256(secret,
//! timestamp + method + path[?query] + body)), the passphrase HMAC'd the same
//! way, `KC-API-KEY-VERSION` from the account's `key_version` field (default 2).

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{b64, hmac_sha256};
use crate::orders::{
    GuardError, Order, OrdersRead, decimal, json_decimal, list_of, objects, priced_like, required, side, text,
    with_trigger,
};
use crate::sweep::{DeadMan, Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h,
};
use rust_decimal::Decimal;
use serde_json::Value;

/// KuCoin.
#[derive(Debug, Clone, Copy)]
pub struct Kucoin;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Delete, Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v1/timestamp", Public),
    ep(Get, "/api/v1/status", Public),
    ep(Get, "/api/v1/symbols", Public),
    ep(Get, "/api/v2/symbols", Public),
    ep(Get, "/api/v1/currencies", Public),
    ep(Get, "/api/v3/currencies", Public),
    ep(Get, "/api/v1/market/allTickers", Public),
    ep(Get, "/api/v1/market/orderbook/level1", Public),
    ep(Get, "/api/v1/market/orderbook/level2_20", Public),
    ep(Get, "/api/v1/market/orderbook/level2_100", Public),
    ep(Get, "/api/v1/market/stats", Public),
    ep(Get, "/api/v1/market/histories", Public),
    ep(Get, "/api/v1/market/candles", Public),
    ep(Get, "/api/v1/prices", Public),
    ep(Get, "/api/v3/margin/symbols", Public),
    ep(Get, "/api/v1/isolated/symbols", Public),
    // Unified trading accounts: market data.
    ep(Get, "/api/ua/v1/market/instrument", Public),
    ep(Get, "/api/ua/v1/market/ticker", Public),
    ep(Get, "/api/ua/v1/market/orderbook", Public),
    ep(Get, "/api/ua/v1/market/kline", Public),
    ep(Get, "/api/ua/v1/market/trade", Public),
    ep(Get, "/api/ua/v1/asset/currencies", Public),
    ep(Get, "/api/v1/accounts", Read),
    // Named before the `{}` pattern below, which would take them for an id.
    ep(Get, "/api/v1/accounts/ledgers", Read),
    ep(Get, "/api/v1/accounts/transferable", Transfer),
    ep(Get, "/api/v1/orders/byClientOid", Read),
    ep(Delete, "/api/v1/orders/multi-cancel", Cancel),
    // ccxt asks which kind of account the key trades (HF, unified) first.
    ep(Get, "/api/v1/hf/accounts/opened", Read),
    ep(Get, "/api/ua/v1/account/mode", Read),
    ep(Get, "/api/v1/hf/accounts/ledgers", Read),
    ep(Get, "/api/v3/market/orderbook/level2", Read),
    // Unified trading accounts (`{}`: the account mode ccxt puts in the path).
    ep(Get, "/api/ua/v1/account/balance", Read),
    ep(Get, "/api/ua/v1/account/ledger", Read),
    ep(Get, "/api/ua/v1/asset/deposit/address", Read),
    ep(Get, "/api/ua/v1/user/fee-rate", Read),
    ep(Get, "/api/ua/v1/{}/account/balance", Read),
    ep(Get, "/api/ua/v1/{}/order/detail", Read),
    ep(Get, "/api/ua/v1/{}/order/execution", Read),
    ep(Get, "/api/ua/v1/{}/order/history", Read),
    ep(Get, "/api/ua/v1/{}/order/open-list", Read),
    ep(Get, "/api/ua/v1/{}/position/open-list", Read),
    ep(Get, "/api/v1/accounts/{}", Read),
    ep(Get, "/api/v1/base-fee", Read),
    ep(Get, "/api/v1/trade-fees", Read),
    ep(Get, "/api/v1/orders", Read),
    ep(Get, "/api/v1/orders/{}", Read),
    ep(Get, "/api/v1/order/client-order/{}", Read),
    ep(Get, "/api/v1/fills", Read),
    ep(Get, "/api/v1/limit/fills", Read),
    ep(Get, "/api/v1/hf/orders/active", Read),
    ep(Get, "/api/v1/hf/orders/done", Read),
    ep(Get, "/api/v1/hf/orders/{}", Read),
    ep(Get, "/api/v1/hf/fills", Read),
    ep(Get, "/api/v1/deposit-addresses", Read),
    ep(Get, "/api/v2/deposit-addresses", Read),
    ep(Post, "/api/v1/deposit-addresses", Read),
    ep(Get, "/api/v1/deposits", Read),
    ep(Post, "/api/v1/orders", Trade),
    ep(Post, "/api/v1/orders/multi", Trade),
    ep(Post, "/api/v1/hf/orders", Trade),
    ep(Post, "/api/v1/hf/orders/sync", Trade),
    ep(Post, "/api/v1/hf/orders/multi", Trade),
    ep(Post, "/api/v1/hf/orders/alter", Trade),
    ep(Post, "/api/v1/margin/order", Trade),
    ep(Post, "/api/v3/hf/margin/order", Trade),
    ep(Post, "/api/ua/v1/{}/order/place", Trade),
    ep(Post, "/api/ua/v1/{}/account/modify-leverage", Trade),
    ep(Post, "/api/ua/v1/{}/order/cancel", Cancel),
    ep(Post, "/api/ua/v1/{}/order/cancel-all", Cancel),
    ep(Delete, "/api/v1/orders/{}", Cancel),
    ep(Delete, "/api/v1/orders", Cancel),
    ep(Delete, "/api/v1/order/client-order/{}", Cancel),
    ep(Delete, "/api/v1/hf/orders/{}", Cancel),
    ep(Delete, "/api/v1/hf/orders/cancelAll", Cancel),
    ep(Delete, "/api/v1/hf/orders", Cancel),
    ep(Get, "/api/v1/hf/orders/active/symbols", Read),
    // The HF dead-man switch ("Disconnection Protect").
    ep(Post, "/api/v1/hf/orders/dead-cancel-all", Cancel),
    ep(Get, "/api/v1/hf/orders/dead-cancel-all/query", Read),
    // What the key itself may do (keyward account check reads it).
    ep(Get, "/api/v1/user/api-key", Admin),
    // ccxt's withdraw() calls v3.
    ep(Post, "/api/v3/withdrawals", Withdraw),
    ep(Post, "/api/v1/withdrawals", Withdraw),
    ep(Get, "/api/v1/withdrawals", Withdraw),
    ep(Get, "/api/v1/withdrawals/quotas", Withdraw),
    ep(Delete, "/api/v1/withdrawals/{}", Withdraw),
    ep(Post, "/api/v2/accounts/inner-transfer", Transfer),
    ep(Post, "/api/v3/accounts/universal-transfer", Transfer),
    ep(Post, "/api/v2/accounts/sub-transfer", Transfer),
    ep(Post, "/api/v3/margin/borrow", Borrow),
    ep(Post, "/api/v3/margin/repay", Borrow),
    // WebSocket tokens (private and public) bypass keyward.
    ep(Post, "/api/v1/bullet-private", Admin),
    ep(Post, "/api/v1/bullet-public", Admin),
];

/// `POST /api/v1/withdrawals`: an on-chain address (or a KuCoin one with
/// `isInner`).
const WITHDRAW_V1: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "address",
    network: Some("chain"),
    memo: Some("memo"),
    harmless: &["isInner", "remark", "feeDeductType"],
};

/// `POST /api/v3/withdrawals`: `toAddress` read as `withdrawType` says.
const WITHDRAW_V3: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "toAddress",
    network: Some("chain"),
    memo: Some("memo"),
    harmless: &["withdrawType", "isInner", "remark", "feeDeductType"],
};

const SETTINGS: KeySettings = KeySettings {
    page: "KuCoin's API management page",
    withdraw: "Withdrawal",
    transfer: "Flex Transfers",
    margin: "Margin Trading",
    futures: "Futures Trading",
    trade: "Spot Trading",
    ip: "IP Restriction",
};

/// `GET /api/v1/user/api-key`: `permission` (`General,Spot,Margin,Futures,
/// InnerTransfer,Transfer,Earn`; `Transfer` is the website's
/// "Withdrawal"), `ipWhitelist` (comma-separated, masked: `203.**.154`).
fn key_info(v: &Value, _api_key: &str) -> Result<KeyInfo, String> {
    let d = v.get("data").filter(|d| d.is_object()).ok_or("the answer has no data")?;
    let perm = d.get("permission").and_then(Value::as_str).ok_or("the answer has no permission")?;
    let perms: Vec<&str> = perm.split(',').map(str::trim).collect();
    let has = |p: &str| Some(perms.contains(&p));
    let ips = address_list(d.get("ipWhitelist"));
    // Masked addresses cannot be compared with keyward's.
    let masked = ips.iter().any(|i| i.contains('*'));
    Ok(KeyInfo {
        withdraw: has("Transfer"),
        transfer: has("InnerTransfer"),
        margin: has("Margin"),
        futures: has("Futures"),
        trade: Some(perms.iter().any(|p| matches!(*p, "Spot" | "Margin" | "Futures"))),
        ip_restricted: Some(!ips.is_empty()),
        ips: if masked { Vec::new() } else { ips },
        expires_ms: None,
    })
}

/// One spot, HF or margin order. A limit order is sized by `size` (base);
/// a market order by `size` (base) or `funds` (quote), never both, and
/// takes no price (KuCoin ignores one: refused rather than read). A
/// `stopPrice` makes it a stop order placed when that price trades.
fn order(o: &Value, symbol: Option<&str>) -> OrdersRead {
    flat(o)?;
    let own = o.get("symbol").and_then(text);
    let symbol = match (symbol, own) {
        (Some(top), Some(item)) if top != item => {
            return Err(GuardError(format!("an order on {item} in a batch for {top}")));
        }
        (Some(top), _) => top.to_string(),
        (None, Some(item)) => item,
        (None, None) => return Err(GuardError("the order has no symbol".into())),
    };
    let side = side(o.get("side").and_then(text))?;
    let market = match o.get("type").and_then(Value::as_str) {
        None | Some("limit") => false,
        Some("market") => true,
        Some(other) => return Err(GuardError(format!("order type {other:?} is not limit or market"))),
    };
    let (size, funds, price) = (json_decimal(o, "size")?, json_decimal(o, "funds")?, json_decimal(o, "price")?);
    let (qty, quote_qty) = match (size, funds) {
        (Some(q), None) => (Some(q), None),
        (None, Some(f)) => (None, Some(f)),
        _ => return Err(GuardError("an order is sized by size (base) or funds (quote): one of them".into())),
    };
    if market == price.is_some() {
        return Err(GuardError(format!(
            "a {} order {} a price",
            if market { "market" } else { "limit" },
            if market { "with" } else { "without" }
        )));
    }
    let parent = Order {
        symbol,
        side: Some(side),
        qty,
        quote_qty,
        price,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    Ok(with_trigger(parent, json_decimal(o, "stopPrice")?))
}

/// `POST /api/v1/hf/orders/alter`: a new size (base) or price for an order
/// of `symbol`, whose side it does not restate.
fn alter(o: &Value) -> OrdersRead {
    let (qty, price) = (json_decimal(o, "newSize")?, json_decimal(o, "newPrice")?);
    if qty.is_none() && price.is_none() {
        return Err(GuardError("the amendment changes neither newSize nor newPrice".into()));
    }
    let client_order_id = o.get("clientOid").and_then(text);
    Ok(vec![Order {
        symbol: required(o, "symbol")?,
        side: None,
        qty,
        quote_qty: None,
        price,
        client_order_id,
        symbol_only: false,
    }])
}

/// A unified-account order (`/api/ua/v1/{mode}/order/place`): `size` in
/// the unit `sizeUnit` names (base, quote, or contracts, which keyward
/// does not convert: such an order states no quantity guards can check);
/// take-profit and stop-loss triggers close it, `triggerPrice` places it.
fn unified(o: &Value) -> OrdersRead {
    flat(o)?;
    let symbol = required(o, "symbol")?;
    let side = side(o.get("side").and_then(text))?;
    let market = match o.get("orderType").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        Some("LIMIT") => false,
        Some("MARKET") => true,
        _ => return Err(GuardError("orderType is not LIMIT or MARKET".into())),
    };
    let size = json_decimal(o, "size")?.ok_or_else(|| GuardError("the order has no size".into()))?;
    let (qty, quote_qty) = match o.get("sizeUnit").and_then(Value::as_str) {
        None | Some("BASECCY") => (Some(size), None),
        Some("QUOTECCY") => (None, Some(size)),
        Some("UNIT") => (None, None),
        Some(other) => return Err(GuardError(format!("sizeUnit {other:?} is not BASECCY, QUOTECCY or UNIT"))),
    };
    let price = json_decimal(o, "price")?;
    if market == price.is_some() {
        return Err(GuardError("a LIMIT order needs a price; a MARKET one takes none".into()));
    }
    let parent = Order {
        symbol,
        side: Some(side),
        qty,
        quote_qty,
        price,
        client_order_id: o.get("clientOid").and_then(text),
        symbol_only: false,
    };
    let mut out = Vec::new();
    for name in ["tpTriggerPrice", "slTriggerPrice"] {
        if let Some(p) = json_decimal(o, name)? {
            out.push(priced_like(&parent, Some(p), None, true));
        }
    }
    let mut all = with_trigger(parent, json_decimal(o, "triggerPrice")?);
    all.extend(out);
    Ok(all)
}

/// KuCoin's orders are flat: a nested object (ccxt passes a `stopLoss`
/// object through) is something keyward would not read.
fn flat(o: &Value) -> Result<(), GuardError> {
    match o.as_object().and_then(|m| m.iter().find(|(_, v)| v.is_object() || v.is_array())) {
        Some((k, _)) => Err(GuardError(format!("{k} is not a field keyward's guards read"))),
        None => Ok(()),
    }
}

fn each_in(list: &[Value], symbol: Option<&str>) -> OrdersRead {
    let mut out = Vec::new();
    for o in list {
        out.extend(order(o, symbol)?);
    }
    Ok(out)
}

impl Exchange for Kucoin {
    fn kind(&self) -> &'static str {
        "kucoin"
    }

    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/api", "https://api.kucoin.com")]
    }

    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.kucoin.com", "openapi-sandbox.kucoin.com"]
    }

    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // A margin order borrows unless autoBorrow is absent or false.
        if class == Trade && crate::borrow::any(req, "autoBorrow", &|v| *v == serde_json::Value::Bool(false)) {
            return Some(Borrow);
        }
        Some(class)
    }

    /// Spot, high-frequency, margin and unified-account orders; a classic
    /// batch trades its top-level symbol (an item naming another is
    /// refused), an HF batch each item's.
    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let one = || objects(req, false).map(|o| o[0]);
        match req.path.as_str() {
            "/api/v1/orders"
            | "/api/v1/hf/orders"
            | "/api/v1/hf/orders/sync"
            | "/api/v1/margin/order"
            | "/api/v3/hf/margin/order" => order(one()?, None),
            "/api/v1/orders/multi" => {
                let o = one()?;
                each_in(list_of(o, "orderList")?, Some(&required(o, "symbol")?))
            }
            "/api/v1/hf/orders/multi" => each_in(list_of(one()?, "orderList")?, None),
            "/api/v1/hf/orders/alter" => alter(one()?),
            p if p.starts_with("/api/ua/v1/") && p.ends_with("/order/place") => unified(one()?),
            p if p.starts_with("/api/ua/v1/") && p.ends_with("/account/modify-leverage") => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)])
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let q = format!("symbol={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/api/v1/market/orderbook/level1", Some(&q), None, b"").ok()
    }

    /// `{"code":"200000","data":{"price":"67269",…}}`: the last trade's price.
    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        decimal("price", v.get("data")?.get("price")?.as_str()?).ok().filter(|p| *p > Decimal::ZERO)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v1/accounts",
            query: &[],
            answer: AnswerShape::CodeField { code: "code", ok: "200000", message: "msg" },
        }
    }

    fn key_header(&self) -> &'static str {
        "kc-api-key"
    }

    fn auth_headers(&self) -> &'static [&'static str] {
        &["kc-api-key", "kc-api-sign", "kc-api-timestamp", "kc-api-passphrase", "kc-api-key-version"]
    }

    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        creds.secret()?;
        creds.passphrase()?;
        match get("key_version").as_deref() {
            None | Some("2") | Some("3") => Ok(()),
            Some(_) => Err(SignError::Field { field: "key_version", reason: "must be 2 or 3".into() }),
        }
    }

    /// v3's `withdrawType` `UID`, `MAIL` or `PHONE` sends to a KuCoin user:
    /// the network reads `uid`, `mail` or `phone`.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/api/v1/withdrawals") => WITHDRAW_V1.read(req).map(Some),
            (Post, "/api/v3/withdrawals") => {
                let mut w = WITHDRAW_V3.read(req)?;
                match req.param("withdrawType").as_deref() {
                    Some("ADDRESS") => {}
                    Some(kind @ ("UID" | "MAIL" | "PHONE")) => w.network = Some(kind.to_ascii_lowercase()),
                    other => {
                        return Err(GuardError(format!("withdrawType {other:?} is not ADDRESS, UID, MAIL or PHONE")));
                    }
                }
                Ok(Some(w))
            }
            (Get, "/api/v1/withdrawals" | "/api/v1/withdrawals/quotas") | (Delete, _) => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v1/user/api-key", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// High-frequency orders of every symbol, then classic spot orders.
    fn cancel_all(&self) -> Vec<Sweep> {
        vec![
            Sweep::Call(request("DELETE", "/api/v1/hf/orders/cancelAll", &[], None)),
            Sweep::Call(request("DELETE", "/api/v1/orders", &[], None)),
        ]
    }

    /// HF orders; 5 to 86,400 seconds, and -1 (not 0) disarms.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /api/v1/hf/orders/dead-cancel-all (high-frequency orders)",
            min_s: 5,
            max_s: 86_400,
            arm: |timeout_s| {
                let timeout = if timeout_s == 0 { -1 } else { i64::from(timeout_s) };
                vec![Sweep::Call(request(
                    "POST",
                    "/api/v1/hf/orders/dead-cancel-all",
                    &[],
                    Some(serde_json::json!({"timeout": timeout})),
                ))]
            },
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("KuCoin takes JSON bodies".into()));
        }
        let query = req.query_string();
        let target = crate::canonical::request_target(&req.path, &query);
        let body = req.body_bytes();
        let body_text = body.as_ref().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let ts = ctx.timestamp_ms.to_string();
        let secret = creds.secret()?.as_bytes();
        let prehash = format!("{ts}{}{target}{body_text}", req.method.as_str());
        let sign = b64(&hmac_sha256(secret, prehash.as_bytes()));
        let passphrase = b64(&hmac_sha256(secret, creds.passphrase()?.as_bytes()));
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![
                h("KC-API-KEY", creds.api_key.clone()),
                h("KC-API-SIGN", sign),
                h("KC-API-TIMESTAMP", ts),
                h("KC-API-PASSPHRASE", passphrase),
                h("KC-API-KEY-VERSION", creds.key_version.clone().unwrap_or_else(|| "2".into())),
            ],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
