//! Deribit (API v2): `Authorization: deri-hmac-sha256 id=…,ts=…,sig=…,nonce=…`
//! with sig = hex(HMAC-SHA256(client secret, ts \n nonce \n METHOD \n
//! path?query \n body \n)). Covers path, query and body. `public/auth`
//! mints session tokens that would bypass keyward: `admin`.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{hex, hmac_sha256};
use crate::orders::{GuardError, Lookup, Order, OrdersRead, Side, decimal, param_decimal, priced_like, text};
use crate::sweep::{Sweep, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h,
};
use rust_decimal::Decimal;

/// Deribit.
#[derive(Debug, Clone, Copy)]
pub struct Deribit;

use Class::{Admin, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::Get;

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v2/public/get_time", Public),
    ep(Get, "/api/v2/public/test", Public),
    ep(Get, "/api/v2/public/get_instruments", Public),
    ep(Get, "/api/v2/public/get_currencies", Public),
    ep(Get, "/api/v2/public/ticker", Public),
    ep(Get, "/api/v2/public/get_order_book", Public),
    ep(Get, "/api/v2/public/get_book_summary_by_currency", Public),
    ep(Get, "/api/v2/public/get_last_trades_by_instrument", Public),
    ep(Get, "/api/v2/public/get_tradingview_chart_data", Public),
    ep(Get, "/api/v2/public/get_funding_rate_history", Public),
    // Session tokens bypass keyward.
    ep(Get, "/api/v2/public/auth", Admin),
    ep(Get, "/api/v2/public/exchange_token", Admin),
    ep(Get, "/api/v2/public/fork_token", Admin),
    ep(Get, "/api/v2/private/get_account_summary", Read),
    ep(Get, "/api/v2/private/get_account_summaries", Read),
    ep(Get, "/api/v2/private/get_positions", Read),
    ep(Get, "/api/v2/private/get_position", Read),
    ep(Get, "/api/v2/private/get_open_orders_by_currency", Read),
    ep(Get, "/api/v2/private/get_open_orders_by_instrument", Read),
    ep(Get, "/api/v2/private/get_order_state", Read),
    ep(Get, "/api/v2/private/get_order_history_by_currency", Read),
    ep(Get, "/api/v2/private/get_order_history_by_instrument", Read),
    ep(Get, "/api/v2/private/get_user_trades_by_currency", Read),
    ep(Get, "/api/v2/private/get_user_trades_by_instrument", Read),
    ep(Get, "/api/v2/private/get_deposits", Read),
    ep(Get, "/api/v2/private/get_current_deposit_address", Read),
    ep(Get, "/api/v2/private/buy", Trade),
    ep(Get, "/api/v2/private/sell", Trade),
    ep(Get, "/api/v2/private/edit", Trade),
    ep(Get, "/api/v2/private/close_position", Trade),
    ep(Get, "/api/v2/private/cancel", Cancel),
    ep(Get, "/api/v2/private/cancel_all", Cancel),
    ep(Get, "/api/v2/private/cancel_all_by_currency", Cancel),
    ep(Get, "/api/v2/private/cancel_all_by_instrument", Cancel),
    ep(Get, "/api/v2/private/withdraw", Withdraw),
    ep(Get, "/api/v2/private/cancel_withdrawal", Withdraw),
    ep(Get, "/api/v2/private/get_withdrawals", Withdraw),
    ep(Get, "/api/v2/private/add_to_address_book", Withdraw),
    ep(Get, "/api/v2/private/submit_transfer_to_subaccount", Transfer),
    // Funds to another Deribit user: a withdrawal by destination.
    ep(Get, "/api/v2/private/submit_transfer_to_user", Withdraw),
    ep(Get, "/api/v2/private/submit_transfer_between_subaccounts", Transfer),
    ep(Get, "/api/v2/private/get_transfers", Transfer),
    ep(Get, "/api/v2/private/execute_block_trade", Transfer),
    ep(Get, "/api/v2/private/verify_block_trade", Transfer),
    ep(Get, "/api/v2/private/create_api_key", Admin),
    ep(Get, "/api/v2/private/edit_api_key", Admin),
    // Every key of the account, their scopes and trusted addresses (keyward account check reads it).
    ep(Get, "/api/v2/private/list_api_keys", Admin),
];

/// `private/withdraw`: to an address in Deribit's address book.
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "address",
    network: None,
    memo: None,
    harmless: &["priority", "tfa"],
};

/// `private/submit_transfer_to_user`: to another Deribit user.
const TO_USER: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "destination",
    network: None,
    memo: None,
    harmless: &[],
};

const SETTINGS: KeySettings = KeySettings {
    page: "Deribit's API page (Account → API, the key's scopes)",
    withdraw: "Wallet: read_write",
    transfer: "Wallet: read_write",
    margin: "",
    futures: "",
    trade: "Trade: read_write",
    ip: "IP whitelist",
};

/// `private/list_api_keys`: every key of the account; ours is the one whose
/// `client_id` is the account's key. `max_scope` is space-separated
/// (`wallet:read_write` lets it withdraw), `ip_whitelist` a list.
fn key_info(v: &serde_json::Value, api_key: &str) -> Result<KeyInfo, String> {
    let keys = v.get("result").and_then(serde_json::Value::as_array).ok_or("the answer has no result")?;
    let key = keys
        .iter()
        .find(|k| k.get("client_id").and_then(serde_json::Value::as_str) == Some(api_key))
        .ok_or("the account's key is not among those Deribit lists")?;
    let scope: Vec<String> = match key.get("max_scope") {
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => return Err("the key has no max_scope".into()),
    };
    let has = |s: &str| Some(scope.iter().any(|x| x == s));
    let ips = address_list(key.get("ip_whitelist"));
    Ok(KeyInfo {
        withdraw: has("wallet:read_write"),
        transfer: has("wallet:read_write"),
        margin: None,
        futures: None,
        trade: has("trade:read_write"),
        ip_restricted: Some(!ips.is_empty()),
        ips,
        expires_ms: None,
    })
}

/// What `amount` counts on an instrument, by its name: US dollars on an
/// inverse future or perpetual (`BTC-PERPETUAL`, `BTC-27DEC24`), the base
/// coin on a linear one or on spot (`BTC_USDC-PERPETUAL`, `BTC_USDC`).
/// Options (priced in the coin) and combinations are not read.
fn in_usd(instrument: &str) -> Result<bool, GuardError> {
    let parts: Vec<&str> = instrument.split('-').collect();
    match parts.as_slice() {
        [pair] | [pair, _] if pair.contains('_') => Ok(false),
        [_, _] => Ok(true),
        _ => Err(GuardError(format!("{instrument}: options and combinations are not read by keyward's guards"))),
    }
}

/// `private/edit` of the order `get_order_state` answered: its new `amount`
/// in the instrument's unit (or `contracts`), `price` and `trigger_price`.
fn edited(req: &CanonicalRequest, answer: &serde_json::Value) -> OrdersRead {
    let order = answer.get("result").ok_or_else(|| GuardError("the order lookup has no result".into()))?;
    let instrument =
        order.get("instrument_name").and_then(text).ok_or_else(|| GuardError("the order has no instrument".into()))?;
    let side = crate::orders::side(order.get("direction").and_then(text))?;
    if req.param("advanced").is_some() {
        return Err(GuardError("advanced is not read by keyward's guards".into()));
    }
    let usd = in_usd(&instrument)?;
    let amount = param_decimal(req, "amount")?;
    let parent = Order {
        symbol: instrument,
        side: Some(side),
        qty: amount.filter(|_| !usd),
        quote_qty: amount.filter(|_| usd),
        price: param_decimal(req, "price")?,
        client_order_id: None,
        symbol_only: false,
    };
    let stop = param_decimal(req, "trigger_price")?.map(|t| priced_like(&parent, Some(t), None, false));
    Ok(std::iter::once(parent).chain(stop).collect())
}

/// `private/buy` or `private/sell` (the side is the path). `amount` in the
/// instrument's unit (see [`in_usd`]), or `contracts`, which keyward does
/// not convert (such an order states no quantity guards can check). Limit
/// types need `price`, market types take none; a stop or take order is
/// placed at `trigger_price`. Linked orders (`otoco_config`) and option
/// pricing (`advanced`) are not read.
fn place(req: &CanonicalRequest, side: Side) -> OrdersRead {
    for unread in ["otoco_config", "linked_order_type", "advanced"] {
        if req.param(unread).is_some() {
            return Err(GuardError(format!("{unread} is not read by keyward's guards")));
        }
    }
    let instrument = crate::orders::required_symbol(req, "instrument_name")?;
    let usd = in_usd(&instrument)?;
    let kind = req.param("type").unwrap_or_else(|| "limit".into());
    let (limit, triggered) = match kind.as_str() {
        "limit" => (true, false),
        "stop_limit" | "take_limit" => (true, true),
        "market" | "market_limit" | "trailing_stop" => (false, false),
        "stop_market" | "take_market" => (false, true),
        other => return Err(GuardError(format!("order type {other:?} is not read by keyward's guards"))),
    };
    let price = param_decimal(req, "price")?;
    if limit != price.is_some() {
        return Err(GuardError(format!("a {kind} order {} a price", if limit { "needs" } else { "takes no" })));
    }
    let trigger = param_decimal(req, "trigger_price")?;
    if triggered && trigger.is_none() {
        return Err(GuardError(format!("a {kind} order needs trigger_price")));
    }
    let amount = param_decimal(req, "amount")?;
    if amount.is_none() && param_decimal(req, "contracts")?.is_none() {
        return Err(GuardError("the order has neither amount nor contracts".into()));
    }
    let parent = Order {
        symbol: instrument,
        side: Some(side),
        qty: amount.filter(|_| !usd),
        quote_qty: amount.filter(|_| usd),
        price,
        client_order_id: req.param("label"),
        symbol_only: false,
    };
    let stop = trigger.map(|t| priced_like(&parent, Some(t), None, false));
    Ok(std::iter::once(parent).chain(stop).collect())
}

impl Exchange for Deribit {
    fn kind(&self) -> &'static str {
        "deribit"
    }
    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/api", "https://www.deribit.com")]
    }
    fn own_hosts(&self) -> &'static [&'static str] {
        &["www.deribit.com", "test.deribit.com"]
    }
    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }
    /// Buys and sells; closing a position holds only the instrument (it
    /// reduces); an edit names no instrument (refused to guarded keys).
    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        match req.path.as_str() {
            "/api/v2/private/buy" => place(req, Side::Buy),
            "/api/v2/private/sell" => place(req, Side::Sell),
            "/api/v2/private/close_position" => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "instrument_name")?)])
            }
            "/api/v2/private/edit" => {
                Err(GuardError("an edit names no instrument: keyward looks the order up first".into()))
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    /// An edit keeps the order's instrument and direction, which
    /// `private/get_order_state` gives.
    fn order_lookup(&self, req: &CanonicalRequest) -> Option<Lookup> {
        let id = req.param("order_id").filter(|id| !id.is_empty() && req.path == "/api/v2/private/edit")?;
        let q = format!("order_id={}", crate::canonical::encode_component(&id));
        let request = CanonicalRequest::parse("GET", "/api/v2/private/get_order_state", Some(&q), None, b"").ok()?;
        Some(Lookup { request, read: edited })
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let q = format!("instrument_name={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/api/v2/public/ticker", Some(&q), None, b"").ok()
    }

    /// `{"jsonrpc":"2.0","result":{"last_price":8044.5,…}}`: a JSON number.
    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let last = text(v.get("result")?.get("last_price")?)?;
        decimal("last_price", &last)
            .ok()
            .or_else(|| Decimal::from_scientific(&last).ok())
            .filter(|p| *p > Decimal::ZERO)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v2/private/get_account_summary",
            query: &[("currency", "BTC")],
            answer: AnswerShape::JsonRpc,
        }
    }

    fn key_header(&self) -> &'static str {
        // Deribit's clients put the client id inside Authorization; keyward
        // reads a keyward key from `Authorization: Bearer` instead.
        "authorization"
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["authorization"]
    }
    /// A transfer to another user reads as network `deribit-user`.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match req.path.as_str() {
            "/api/v2/private/withdraw" => WITHDRAW.read(req).map(Some),
            "/api/v2/private/submit_transfer_to_user" => {
                TO_USER.read(req).map(|w| Some(Withdrawal { network: Some("deribit-user".into()), ..w }))
            }
            "/api/v2/private/cancel_withdrawal" | "/api/v2/private/get_withdrawals" => Ok(None),
            _ => Err(GuardError(format!(
                "{}: Deribit's address book is kept on Deribit's website; keyward's allowlist is the account's own",
                req.path
            ))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v2/private/list_api_keys", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    fn cancel_all(&self) -> Vec<Sweep> {
        vec![Sweep::Call(request("GET", "/api/v2/private/cancel_all", &[], None))]
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("Deribit takes query parameters or JSON-RPC bodies".into()));
        }
        let query = req.query_string();
        let uri = crate::canonical::request_target(&req.path, &query);
        let body = req.body_bytes();
        let text = body.as_ref().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let (ts, nonce) = (ctx.timestamp_ms.to_string(), ctx.nonce.to_string());
        let data = format!("{ts}\n{nonce}\n{}\n{uri}\n{text}\n", req.method.as_str());
        let sig = hex(&hmac_sha256(creds.secret()?.as_bytes(), data.as_bytes()));
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![h(
                "Authorization",
                format!("deri-hmac-sha256 id={},ts={ts},sig={sig},nonce={nonce}", creds.api_key),
            )],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
