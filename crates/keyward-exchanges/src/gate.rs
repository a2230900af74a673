//! Gate (API v4): `SIGN` = hex(HMAC-SHA512(secret, method \n path \n query \n
//! hex(SHA-512(body)) \n timestamp)), timestamp in seconds. Covers path,
//! query and body.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{hex, hmac_sha512, sha512};
use crate::orders::{
    GuardError, Lookup, Order, OrdersRead, Side, decimal, json_decimal, objects, required, side, text,
};
use crate::sweep::{DeadMan, Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h,
};
use rust_decimal::Decimal;
use serde_json::Value;

/// Gate.
#[derive(Debug, Clone, Copy)]
pub struct Gate;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Delete, Get, Post, Put};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v4/spot/time", Public),
    ep(Get, "/api/v4/spot/currencies", Public),
    ep(Get, "/api/v4/spot/currency_pairs", Public),
    ep(Get, "/api/v4/spot/tickers", Public),
    ep(Get, "/api/v4/spot/order_book", Public),
    ep(Get, "/api/v4/spot/trades", Public),
    ep(Get, "/api/v4/spot/candlesticks", Public),
    ep(Get, "/api/v4/futures/{}/contracts", Public),
    ep(Get, "/api/v4/futures/{}/tickers", Public),
    ep(Get, "/api/v4/futures/{}/order_book", Public),
    // Every settle currency (usdt, btc): `{}`.
    ep(Get, "/api/v4/futures/{}/candlesticks", Public),
    ep(Get, "/api/v4/futures/{}/trades", Public),
    ep(Get, "/api/v4/delivery/{}/contracts", Public),
    ep(Get, "/api/v4/margin/currency_pairs", Public),
    ep(Get, "/api/v4/options/underlyings", Public),
    ep(Get, "/api/v4/spot/accounts", Read),
    // The key's trusted addresses and account mode (ccxt reads it when it loads markets).
    ep(Get, "/api/v4/account/detail", Read),
    ep(Get, "/api/v4/spot/orders", Read),
    ep(Get, "/api/v4/spot/orders/{}", Read),
    ep(Get, "/api/v4/spot/open_orders", Read),
    ep(Get, "/api/v4/spot/my_trades", Read),
    ep(Get, "/api/v4/wallet/fee", Read),
    ep(Get, "/api/v4/wallet/total_balance", Read),
    ep(Get, "/api/v4/wallet/deposit_address", Read),
    ep(Get, "/api/v4/wallet/deposits", Read),
    ep(Get, "/api/v4/futures/{}/accounts", Read),
    ep(Get, "/api/v4/futures/{}/positions", Read),
    ep(Get, "/api/v4/futures/{}/orders", Read),
    ep(Get, "/api/v4/futures/{}/orders/{}", Read),
    ep(Get, "/api/v4/futures/{}/my_trades", Read),
    ep(Get, "/api/v4/futures/{}/my_trades_timerange", Read),
    ep(Get, "/api/v4/futures/{}/account_book", Read),
    ep(Get, "/api/v4/spot/account_book", Read),
    ep(Get, "/api/v4/unified/accounts", Read),
    ep(Post, "/api/v4/spot/orders", Trade),
    ep(Post, "/api/v4/spot/batch_orders", Trade),
    ep(Post, "/api/v4/futures/{}/orders", Trade),
    ep(Post, "/api/v4/futures/{}/batch_orders", Trade),
    // Amends a futures order (size, price).
    ep(Put, "/api/v4/futures/{}/orders/{}", Trade),
    ep(Post, "/api/v4/futures/{}/positions/{}/leverage", Trade),
    ep(Delete, "/api/v4/spot/orders", Cancel),
    ep(Delete, "/api/v4/spot/orders/{}", Cancel),
    ep(Post, "/api/v4/spot/cancel_batch_orders", Cancel),
    ep(Delete, "/api/v4/futures/{}/orders", Cancel),
    ep(Delete, "/api/v4/futures/{}/orders/{}", Cancel),
    ep(Post, "/api/v4/spot/countdown_cancel_all", Cancel),
    ep(Post, "/api/v4/futures/{}/countdown_cancel_all", Cancel),
    ep(Post, "/api/v4/withdrawals", Withdraw),
    // A transfer to another Gate user by UID.
    ep(Post, "/api/v4/withdrawals/push", Withdraw),
    ep(Delete, "/api/v4/withdrawals/{}", Withdraw),
    ep(Get, "/api/v4/wallet/withdrawals", Withdraw),
    ep(Post, "/api/v4/wallet/transfers", Transfer),
    ep(Post, "/api/v4/wallet/sub_account_transfers", Transfer),
    ep(Get, "/api/v4/wallet/sub_account_transfers", Transfer),
    ep(Post, "/api/v4/wallet/small_balance", Transfer),
    ep(Post, "/api/v4/margin/uni/loans", Borrow),
    ep(Post, "/api/v4/margin/loans", Borrow),
    ep(Post, "/api/v4/unified/loans", Borrow),
    ep(Post, "/api/v4/sub_accounts/{}/keys", Admin),
];

/// `POST /api/v4/withdrawals`: on-chain (or to a Gate address, free).
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "address",
    network: Some("chain"),
    memo: Some("memo"),
    harmless: &["withdraw_order_id"],
};

/// `POST /api/v4/withdrawals/push`: to another Gate user, by UID.
const PUSH: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "receive_uid",
    network: None,
    memo: None,
    harmless: &[],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Gate's API key management page (APIv4 keys)",
    withdraw: "Withdrawal",
    transfer: "Wallet",
    margin: "Margin",
    futures: "Perpetual Futures",
    trade: "Spot/Margin Trade",
    ip: "IP Permissions (bind IP)",
};

/// `GET /api/v4/account/detail`: the key's `ip_whitelist`; Gate says
/// nothing there of its permissions.
fn key_info(v: &serde_json::Value, _api_key: &str) -> Result<KeyInfo, String> {
    if !v.is_object() || v.get("ip_whitelist").is_none() && v.get("user_id").is_none() {
        return Err("the answer has no ip_whitelist".into());
    }
    let ips = address_list(v.get("ip_whitelist"));
    Ok(KeyInfo { ip_restricted: Some(!ips.is_empty()), ips, ..KeyInfo::default() })
}

/// Gate's orders are flat: a nested object (ccxt passes `stopLoss` and
/// `takeProfit` objects through) is something keyward would not read.
fn flat(o: &Value) -> Result<(), GuardError> {
    match o.as_object().and_then(|m| m.iter().find(|(_, v)| v.is_object() || v.is_array())) {
        Some((k, _)) => Err(GuardError(format!("{k} is not a field keyward's guards read"))),
        None => Ok(()),
    }
}

/// A spot order: `amount` is the quote amount of a market buy, base
/// otherwise; a limit order (the default type) needs `price`, a market
/// order takes none (refused rather than read).
fn spot(o: &Value) -> OrdersRead {
    flat(o)?;
    let side = side(o.get("side").and_then(text))?;
    let market = match o.get("type").and_then(Value::as_str) {
        None | Some("limit") => false,
        Some("market") => true,
        Some(other) => return Err(GuardError(format!("order type {other:?} is not limit or market"))),
    };
    let price = json_decimal(o, "price")?;
    if market == price.is_some() {
        return Err(GuardError("a limit order needs a price; a market one takes none".into()));
    }
    let amount = json_decimal(o, "amount")?.ok_or_else(|| GuardError("the order has no amount".into()))?;
    let in_quote = market && side == Side::Buy;
    Ok(vec![Order {
        symbol: required(o, "currency_pair")?,
        side: Some(side),
        qty: (!in_quote).then_some(amount),
        quote_qty: in_quote.then_some(amount),
        price,
        client_order_id: o.get("text").and_then(text),
        symbol_only: false,
    }])
}

/// A futures order: `size` counts contracts, positive to buy and negative
/// to sell. keyward does not convert contracts to coins, so the order states
/// no quantity guards can check (a key with size caps is refused it); its
/// contract and price still are. Price `0` is a market order; size `0`
/// with `close` or `auto_size` closes a position (only its contract is held).
fn futures(o: &Value) -> OrdersRead {
    flat(o)?;
    let contract = required(o, "contract")?;
    let size = required(o, "size")?;
    let (side, count) = match size.strip_prefix('-') {
        Some(n) => (Side::Sell, decimal("size", n)?),
        None => (Side::Buy, decimal("size", &size)?),
    };
    if count.is_zero() {
        let closes = o.get("close") == Some(&Value::Bool(true)) || o.get("auto_size").and_then(text).is_some();
        return if closes {
            Ok(vec![Order::symbol_only(contract)])
        } else {
            Err(GuardError("size 0 is only a close (close or auto_size)".into()))
        };
    }
    let price = json_decimal(o, "price")?.ok_or_else(|| GuardError("the order has no price (0 at market)".into()))?;
    Ok(vec![Order {
        symbol: contract,
        side: Some(side),
        qty: None,
        quote_qty: None,
        price: (!price.is_zero()).then_some(price),
        client_order_id: o.get("text").and_then(text),
        symbol_only: false,
    }])
}

/// A futures amendment (`size` in contracts, `price`) of the order looked
/// up: its contract, and its side (the sign of its size). The new size,
/// counted in contracts, states no quantity guards can check.
fn amended(req: &CanonicalRequest, order: &Value) -> OrdersRead {
    let contract = required(order, "contract")?;
    let side = if required(order, "size")?.starts_with('-') { Side::Sell } else { Side::Buy };
    let Body::Json(body) = &req.body else { return Err(GuardError("expected a JSON amendment".into())) };
    flat(body)?;
    if let Some(size) = body.get("size").and_then(text) {
        decimal("size", size.trim_start_matches('-'))?;
    }
    let price = json_decimal(body, "price")?;
    Ok(vec![Order {
        symbol: contract,
        side: Some(side),
        qty: None,
        quote_qty: None,
        price,
        client_order_id: None,
        symbol_only: false,
    }])
}

fn all_of(req: &CanonicalRequest, list: bool, read: fn(&Value) -> OrdersRead) -> OrdersRead {
    let mut out = Vec::new();
    for o in objects(req, list)? {
        out.extend(read(o)?);
    }
    Ok(out)
}

impl Exchange for Gate {
    fn kind(&self) -> &'static str {
        "gate"
    }
    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/api", "https://api.gateio.ws")]
    }
    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.gateio.ws", "fx-api-testnet.gateio.ws", "api-testnet.gateapi.io"]
    }
    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // A spot order on a margin, cross-margin or unified account borrows
        // what it lacks when auto_borrow is on: anything but false (single and batch).
        if class == Trade && crate::borrow::any(req, "auto_borrow", &|v| *v == serde_json::Value::Bool(false)) {
            return Some(Borrow);
        }
        Some(class)
    }
    /// Spot and futures orders, single and batch; a futures amendment names
    /// no contract (refused to guarded keys); leverage holds the contract.
    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        let segments: Vec<&str> = req.path.split('/').collect();
        match segments.as_slice() {
            ["", "api", "v4", "spot", "orders"] => all_of(req, false, spot),
            ["", "api", "v4", "spot", "batch_orders"] => all_of(req, true, spot),
            ["", "api", "v4", "futures", _, "orders"] => all_of(req, false, futures),
            ["", "api", "v4", "futures", _, "batch_orders"] => all_of(req, true, futures),
            ["", "api", "v4", "futures", _, "positions", contract, "leverage"] if !contract.is_empty() => {
                Ok(vec![Order::symbol_only(*contract)])
            }
            ["", "api", "v4", "futures", _, "orders", _] => {
                Err(GuardError("a futures amendment names no contract keyward can hold to the key's guards".into()))
            }
            _ => Err(GuardError(format!("keyward's guards do not read {}", req.path))),
        }
    }

    /// A futures amendment keeps the order's contract and side (the sign
    /// of its size), which the order itself gives.
    fn order_lookup(&self, req: &CanonicalRequest) -> Option<Lookup> {
        let segments: Vec<&str> = req.path.split('/').collect();
        match (req.method, segments.as_slice()) {
            (Put, ["", "api", "v4", "futures", settle, "orders", id]) if !settle.is_empty() && !id.is_empty() => {
                let request = CanonicalRequest::parse("GET", &req.path, None, None, b"").ok()?;
                Some(Lookup { request, read: amended })
            }
            _ => None,
        }
    }

    fn ticker(&self, order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let sym = crate::canonical::encode_component(symbol);
        match order_path.split('/').collect::<Vec<_>>().as_slice() {
            ["", "api", "v4", "futures", settle, ..] => {
                let path = format!("/api/v4/futures/{settle}/tickers");
                CanonicalRequest::parse("GET", &path, Some(&format!("contract={sym}")), None, b"").ok()
            }
            _ => {
                CanonicalRequest::parse("GET", "/api/v4/spot/tickers", Some(&format!("currency_pair={sym}")), None, b"")
                    .ok()
            }
        }
    }

    /// `[{"currency_pair":"BTC_USDT","last":"48600.5",…}]` (futures: `contract`).
    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        decimal("last", v.get(0)?.get("last")?.as_str()?).ok().filter(|p| *p > Decimal::ZERO)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v4/spot/accounts",
            query: &[],
            answer: AnswerShape::Status { code: "label", message: "message" },
        }
    }

    fn key_header(&self) -> &'static str {
        "key"
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["key", "sign", "timestamp"]
    }
    /// A UID transfer reads as network `UID`.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/api/v4/withdrawals") => WITHDRAW.read(req).map(Some),
            (Post, "/api/v4/withdrawals/push") => {
                PUSH.read(req).map(|w| Some(Withdrawal { network: Some("UID".into()), ..w }))
            }
            (Delete, _) | (Get, "/api/v4/wallet/withdrawals") => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v4/account/detail", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// Spot (every pair and account) and USDT futures (every contract).
    fn cancel_all(&self) -> Vec<Sweep> {
        vec![
            Sweep::Call(request("DELETE", "/api/v4/spot/orders", &[], None)),
            Sweep::Call(request("DELETE", "/api/v4/futures/usdt/orders", &[], None)),
        ]
    }

    /// Spot and USDT futures, each its own timer; at least 5 seconds, 0 disarms.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /api/v4/spot/countdown_cancel_all and /api/v4/futures/usdt/countdown_cancel_all",
            min_s: 5,
            max_s: 86_400,
            arm: |timeout_s| {
                let body = serde_json::json!({"timeout": timeout_s});
                vec![
                    Sweep::Call(request("POST", "/api/v4/spot/countdown_cancel_all", &[], Some(body.clone()))),
                    Sweep::Call(request("POST", "/api/v4/futures/usdt/countdown_cancel_all", &[], Some(body))),
                ]
            },
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("Gate takes JSON bodies".into()));
        }
        let query = req.query_string();
        let body = req.body_bytes();
        let payload = body.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
        let ts = (ctx.timestamp_ms / 1000).to_string();
        let text = format!("{}\n{}\n{query}\n{}\n{ts}", req.method.as_str(), req.path, hex(&sha512(&payload)));
        let sign = hex(&hmac_sha512(creds.secret()?.as_bytes(), text.as_bytes()));
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![h("KEY", creds.api_key.clone()), h("SIGN", sign), h("Timestamp", ts)],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
