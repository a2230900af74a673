//! Bybit v5: `X-BAPI-SIGN` = hex(HMAC-SHA256(secret, timestamp + api key +
//! recv window + payload)) where the payload is the query string (GET) or the
//! JSON body (POST); RSA keys sign the same text (base64). The signature does
//! not cover the path, so the sign API refuses Bybit accounts without `admin`.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list, flag};
use crate::mac::{b64, hex, hmac_sha256};
use crate::orders::{GuardError, Order, Side, decimal, json_decimal, side, text};
use crate::sweep::{Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, KeyFamily, Method, Outgoing, PrivateKey, SignContext,
    SignError, Withdrawal, h,
};
use rust_decimal::Decimal;
use serde_json::Value;

/// Bybit.
#[derive(Debug, Clone, Copy)]
pub struct Bybit;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/v5/market/time", Public),
    ep(Get, "/v5/market/instruments-info", Public),
    ep(Get, "/v5/market/tickers", Public),
    ep(Get, "/v5/market/orderbook", Public),
    ep(Get, "/v5/market/kline", Public),
    ep(Get, "/v5/market/mark-price-kline", Public),
    ep(Get, "/v5/market/index-price-kline", Public),
    ep(Get, "/v5/market/recent-trade", Public),
    ep(Get, "/v5/market/funding/history", Public),
    ep(Get, "/v5/market/open-interest", Public),
    ep(Get, "/v5/market/risk-limit", Public),
    ep(Get, "/v5/account/wallet-balance", Read),
    ep(Get, "/v5/account/info", Read),
    ep(Get, "/v5/account/fee-rate", Read),
    ep(Get, "/v5/account/transaction-log", Read),
    ep(Get, "/v5/position/list", Read),
    ep(Get, "/v5/position/closed-pnl", Read),
    ep(Get, "/v5/order/realtime", Read),
    ep(Get, "/v5/order/history", Read),
    ep(Get, "/v5/execution/list", Read),
    ep(Get, "/v5/asset/coin/query-info", Read),
    ep(Get, "/v5/asset/deposit/query-address", Read),
    ep(Get, "/v5/asset/deposit/query-record", Read),
    ep(Post, "/v5/order/create", Trade),
    ep(Post, "/v5/order/amend", Trade),
    ep(Post, "/v5/order/create-batch", Trade),
    ep(Post, "/v5/order/amend-batch", Trade),
    ep(Post, "/v5/position/set-leverage", Trade),
    ep(Post, "/v5/position/switch-mode", Trade),
    ep(Post, "/v5/position/trading-stop", Trade),
    ep(Post, "/v5/order/cancel", Cancel),
    ep(Post, "/v5/order/cancel-all", Cancel),
    ep(Post, "/v5/order/cancel-batch", Cancel),
    ep(Post, "/v5/order/disconnected-cancel-all", Cancel),
    ep(Post, "/v5/account/set-margin-mode", Trade),
    ep(Post, "/v5/position/switch-isolated", Trade),
    ep(Get, "/v5/account/contract-transaction-log", Read),
    ep(Post, "/v5/asset/withdraw/create", Withdraw),
    ep(Post, "/v5/asset/withdraw/cancel", Withdraw),
    ep(Get, "/v5/asset/withdraw/query-record", Withdraw),
    ep(Post, "/v5/asset/transfer/inter-transfer", Transfer),
    ep(Post, "/v5/asset/transfer/universal-transfer", Transfer),
    ep(Get, "/v5/asset/transfer/query-inter-transfer-list", Transfer),
    ep(Post, "/v5/asset/exchange/convert-execute", Transfer),
    ep(Post, "/v5/spot-margin-trade/switch-mode", Borrow),
    ep(Post, "/v5/account/borrow", Borrow),
    ep(Post, "/v5/account/repay", Borrow),
    ep(Get, "/v5/user/query-api", Admin),
    ep(Post, "/v5/user/create-sub-api", Admin),
    ep(Post, "/v5/user/update-api", Admin),
    ep(Post, "/v5/user/delete-api", Admin),
];

/// One Bybit order object of `category`. Spot market orders are sized by
/// `marketUnit` (default: quote for a buy, base for a sell); linear sizes are
/// base units; inverse and option sizes are not read.
fn order(category: &str, o: &Value, amend: bool) -> Result<Vec<Order>, GuardError> {
    if category != "spot" && category != "linear" {
        return Err(GuardError(format!("{category} sizes are not read by keyward's guards")));
    }
    let symbol = o.get("symbol").and_then(text).ok_or_else(|| GuardError("the order has no symbol".into()))?;
    let side = if amend { None } else { Some(side(o.get("side").and_then(text))?) };
    let qty = json_decimal(o, "qty")?;
    let market = o.get("orderType").and_then(Value::as_str) == Some("Market");
    let unit = o.get("marketUnit").and_then(Value::as_str);
    let in_quote =
        category == "spot" && market && (unit == Some("quoteCoin") || (unit.is_none() && side == Some(Side::Buy)));
    let parent = Order {
        symbol,
        side,
        qty: if in_quote { None } else { qty },
        quote_qty: if in_quote { qty } else { None },
        price: json_decimal(o, "price")?,
        client_order_id: o.get("orderLinkId").and_then(text),
        symbol_only: false,
    };
    // Its trigger, take-profit and stop-loss prices (0 cancels one on an
    // amendment) are orders of its size too: every price is held to the guards.
    let mut out = vec![];
    for (name, closes) in [
        ("triggerPrice", false),
        ("takeProfit", true),
        ("stopLoss", true),
        ("tpLimitPrice", true),
        ("slLimitPrice", true),
    ] {
        if let Some(p) = json_decimal(o, name)?.filter(|p| !p.is_zero()) {
            out.push(crate::orders::priced_like(&parent, Some(p), None, closes));
        }
    }
    out.insert(0, parent);
    Ok(out)
}

/// Where a Bybit withdrawal names each part; `forceChain` decides how
/// `address` is read (see [`Bybit::withdrawal`]).
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "coin",
    amount: "amount",
    address: "address",
    network: Some("chain"),
    memo: Some("tag"),
    harmless: &[
        "timestamp",
        "accountType",
        "feeType",
        "requestId",
        "forceChain",
        "transactionPurpose",
        "questionnaire",
    ],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Bybit's API management page",
    withdraw: "Withdrawal",
    transfer: "Account Transfer",
    margin: "",
    futures: "Contracts",
    trade: "Read-Write",
    ip: "IP access restrictions (Only IPs with permissions granted are allowed to access the OpenAPI)",
};

/// `GET /v5/user/query-api`: permissions as lists per area, `ips` (`["*"]`:
/// not bound), `expiredAt` for keys bound to no address.
fn key_info(v: &Value, _api_key: &str) -> Result<KeyInfo, String> {
    let r = v.get("result").filter(|r| r.is_object()).ok_or("the answer has no result")?;
    let perms = r.get("permissions").ok_or("the answer has no permissions")?;
    let has = |area: &str, p: &str| {
        perms.get(area).and_then(Value::as_array).map(|a| a.iter().any(|x| x.as_str() == Some(p)))
    };
    let any_in = |area: &str| perms.get(area).and_then(Value::as_array).map(|a| !a.is_empty());
    let transfer = match (
        has("Wallet", "AccountTransfer"),
        has("Wallet", "SubMemberTransfer"),
        has("Wallet", "SubMemberTransferList"),
    ) {
        (Some(a), Some(b), Some(c)) => Some(a || b || c),
        (a, b, c) => a.or(b).or(c).filter(|x| *x),
    };
    let ips = address_list(r.get("ips"));
    let unbound = ips.is_empty() || ips.iter().any(|i| i == "*");
    let expires_ms = r
        .get("expiredAt")
        .and_then(Value::as_str)
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .filter(|ms| *ms > 0);
    Ok(KeyInfo {
        withdraw: has("Wallet", "Withdraw"),
        transfer,
        margin: None,
        futures: match (any_in("ContractTrade"), any_in("Derivatives")) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        },
        trade: flag(r.get("readOnly")).map(|read_only| !read_only),
        ip_restricted: Some(!unbound),
        ips: if unbound { Vec::new() } else { ips },
        expires_ms,
    })
}

impl Exchange for Bybit {
    fn kind(&self) -> &'static str {
        "bybit"
    }

    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/v5", "https://api.bybit.com")]
    }

    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.bybit.com", "api.bytick.com", "api-testnet.bybit.com", "api-demo.bybit.com"]
    }

    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // Spot margin orders borrow: isLeverage other than 0 (single and batch).
        let leveraged = crate::borrow::any(req, "isLeverage", &|v| crate::borrow::is_exactly(v, "0"));
        if class == Trade && leveraged {
            return Some(Borrow);
        }
        Some(class)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/v5/account/wallet-balance",
            query: &[("accountType", "UNIFIED")],
            answer: AnswerShape::CodeField { code: "retCode", ok: "0", message: "retMsg" },
        }
    }

    fn key_header(&self) -> &'static str {
        "x-bapi-api-key"
    }

    fn budget_bucket(&self, path: &str) -> Option<&'static str> {
        // Bybit limits each private endpoint separately; order placement is the one bots exhaust.
        match path {
            "/v5/order/create" | "/v5/order/create-batch" => Some("order-create"),
            "/v5/order/amend" | "/v5/order/amend-batch" => Some("order-amend"),
            "/v5/order/cancel" | "/v5/order/cancel-batch" | "/v5/order/cancel-all" => Some("order-cancel"),
            p if p.starts_with("/v5/") => Some("other"),
            _ => None,
        }
    }

    /// `X-Bapi-Limit-Status` (requests left), `X-Bapi-Limit` and
    /// `X-Bapi-Limit-Reset-Timestamp`.
    fn usage(&self, path: &str, header: &dyn Fn(&str) -> Option<String>, now_ms: i64) -> Option<crate::Usage> {
        let left: u64 = header("x-bapi-limit-status")?.trim().parse().ok()?;
        let limit: u64 = header("x-bapi-limit").and_then(|l| l.trim().parse().ok()).unwrap_or(left.max(1));
        let reset: i64 =
            header("x-bapi-limit-reset-timestamp").and_then(|r| r.trim().parse().ok()).unwrap_or(now_ms + 1000);
        Some(crate::Usage {
            bucket: self.budget_bucket(path)?,
            used: limit.saturating_sub(left),
            limit,
            resets_in_ms: (reset - now_ms).clamp(0, 60_000) as u64,
        })
    }

    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let Body::Json(body) = &req.body else {
            return Err(GuardError("expected a JSON order".into()));
        };
        let category = body.get("category").and_then(Value::as_str).unwrap_or("");
        let batch = |amend: bool| -> Result<Vec<Order>, GuardError> {
            let list = body
                .get("request")
                .and_then(Value::as_array)
                .ok_or_else(|| GuardError("request list missing".into()))?;
            let mut out = Vec::new();
            for o in list {
                out.extend(order(category, o, amend)?);
            }
            Ok(out)
        };
        match req.path.as_str() {
            "/v5/order/create" => order(category, body, false),
            "/v5/order/amend" => order(category, body, true),
            "/v5/order/create-batch" => batch(false),
            "/v5/order/amend-batch" => batch(true),
            // Leverage and margin mode of one symbol's position size no order.
            "/v5/position/set-leverage" | "/v5/position/switch-mode" => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)])
            }
            // Take-profit and stop-loss of a position carry prices and sizes
            // keyward does not hold to guards yet: only the bare symbol is.
            "/v5/position/trading-stop" => {
                let priced = [
                    "takeProfit",
                    "stopLoss",
                    "tpLimitPrice",
                    "slLimitPrice",
                    "tpSize",
                    "slSize",
                    "trailingStop",
                    "activePrice",
                ]
                .iter()
                .any(|f| req.param(f).is_some_and(|v| !v.is_empty() && v != "0"));
                if priced {
                    return Err(GuardError(
                        "keyward does not read a position's take-profit and stop-loss prices yet".into(),
                    ));
                }
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "symbol")?)])
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    fn ticker(&self, _order_path: &str, symbol: &str, req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let category = match &req.body {
            Body::Json(b) => b.get("category").and_then(Value::as_str).unwrap_or("spot").to_string(),
            _ => "spot".to_string(),
        };
        let q = format!("category={category}&symbol={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/v5/market/tickers", Some(&q), None, b"").ok()
    }

    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        decimal("lastPrice", v.get("result")?.get("list")?.get(0)?.get("lastPrice")?.as_str()?).ok()
    }

    fn auth_headers(&self) -> &'static [&'static str] {
        &["x-bapi-api-key", "x-bapi-sign", "x-bapi-timestamp", "x-bapi-recv-window", "x-bapi-sign-type"]
    }

    fn signature_binds_request(&self) -> bool {
        false
    }

    fn self_generated_keys(&self) -> &'static [KeyFamily] {
        &[KeyFamily::Rsa]
    }

    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        match &creds.private_key {
            Some(PrivateKey::Rsa(_)) => Ok(()),
            Some(_) => Err(SignError::Field { field: "private_key", reason: "Bybit takes RSA keys".into() }),
            None => creds.secret().map(|_| ()),
        }
    }

    /// `forceChain` 0 (default) or 1 sends to the address on its chain; 2
    /// sends to the Bybit account of the UID in `address`, read as network
    /// `UID` (an allowlist entry must name that network).
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/v5/asset/withdraw/create") => {
                let mut w = WITHDRAW.read(req)?;
                match req.param("forceChain").as_deref() {
                    None | Some("0") | Some("1") => {}
                    Some("2") => w.network = Some("UID".into()),
                    Some(other) => return Err(GuardError(format!("forceChain {other:?} is not 0, 1 or 2"))),
                }
                Ok(Some(w))
            }
            (Post, "/v5/asset/withdraw/cancel") | (Get, "/v5/asset/withdraw/query-record") => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/v5/user/query-api", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// Spot (normal, TP/SL and stop orders: each filter is its own call),
    /// USDT and USDC linear contracts, and options. Inverse contracts need a
    /// symbol or coin and are left to the bot.
    fn cancel_all(&self) -> Vec<Sweep> {
        let spot = |filter: &str| {
            Sweep::Call(request(
                "POST",
                "/v5/order/cancel-all",
                &[],
                Some(serde_json::json!({"category": "spot", "orderFilter": filter})),
            ))
        };
        let linear = |coin: &str| {
            Sweep::Call(request(
                "POST",
                "/v5/order/cancel-all",
                &[],
                Some(serde_json::json!({"category": "linear", "settleCoin": coin})),
            ))
        };
        vec![
            spot("Order"),
            spot("tpslOrder"),
            spot("StopOrder"),
            linear("USDT"),
            linear("USDC"),
            Sweep::Call(request("POST", "/v5/order/cancel-all", &[], Some(serde_json::json!({"category": "option"})))),
        ]
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("Bybit takes JSON bodies".into()));
        }
        let query = req.query_string();
        let body = req.body_bytes();
        let payload = match (&req.method, &body) {
            (Get, _) | (_, None) => query.clone(),
            (_, Some((_, b))) => String::from_utf8_lossy(b).into_owned(),
        };
        let ts = ctx.timestamp_ms.to_string();
        let recv = ctx.recv_window_ms.to_string();
        let text = format!("{ts}{}{recv}{payload}", creds.api_key);
        let sign = match &creds.private_key {
            Some(k @ PrivateKey::Rsa(_)) => b64(&k.sign(text.as_bytes())?),
            Some(_) => return Err(SignError::Field { field: "private_key", reason: "Bybit takes RSA keys".into() }),
            None => hex(&hmac_sha256(creds.secret()?.as_bytes(), text.as_bytes())),
        };
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![
                h("X-BAPI-API-KEY", creds.api_key.clone()),
                h("X-BAPI-SIGN", sign),
                h("X-BAPI-SIGN-TYPE", "2"),
                h("X-BAPI-TIMESTAMP", ts),
                h("X-BAPI-RECV-WINDOW", recv),
            ],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
