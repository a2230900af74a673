//! HTX (formerly Huobi) spot REST, signature version 2. The query carries
//! `AccessKeyId`, `SignatureMethod` `HmacSHA256`, `SignatureVersion` `2`,
//! `Timestamp` (UTC, `YYYY-MM-DDThh:mm:ss`) and, for a GET, the request's
//! own parameters; `Signature` = base64(HMAC-SHA256(secret, METHOD \n
//! host \n path \n query)), the query's pairs sorted by name and
//! percent-encoded with upper-case hex, is appended to it. The host is part
//! of the signed text, so the signer is told where the request goes
//! ([`Exchange::sign_for`]). A POST's JSON body is not signed: a signature
//! handed out could carry another body (another order, another withdrawal
//! address) to the same path for as long as HTX accepts its timestamp (five
//! minutes), so the sign API refuses HTX accounts without `admin`.

use crate::canonical::{encode_component_into, encode_pairs};
use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{FirstCall, KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{b64, hmac_sha256};
use crate::orders::{
    GuardError, Order, OrdersRead, Side, decimal, json_decimal, objects, param_decimal, required, text, with_trigger,
};
use crate::sweep::{DeadMan, Sweep, list_at, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// HTX.
#[derive(Debug, Clone, Copy)]
pub struct Htx;

/// The host signed when the caller names none: HTX's documented host and
/// ccxt's default (`sign` alone, as the vector tests call it).
pub const HOST: &str = "api.huobi.pro";

/// Cancels up to 100 open orders a call, of every symbol (`account-id` left out, as ccxt does).
const CANCEL_OPEN: &str = "/v1/order/orders/batchCancelOpenOrders";

/// The dead-man timer: `timeout` in seconds, 0 disarms.
const DEAD_MAN: &str = "/v2/algo-orders/cancel-all-after";

/// The parameters keyward sets itself; a client's are removed before signing.
const AUTH: [&str; 5] = ["AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp", "Signature"];

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    // Reference and market data.
    ep(Get, "/v1/common/timestamp", Public),
    ep(Get, "/v1/common/symbols", Public),
    ep(Get, "/v1/common/currencys", Public),
    ep(Get, "/v1/common/exchange", Public),
    ep(Get, "/v1/settings/currencys", Public),
    ep(Get, "/v1/settings/common/chains", Public),
    ep(Get, "/v1/settings/common/currencys", Public),
    ep(Get, "/v1/settings/common/symbols", Public),
    ep(Get, "/v1/settings/common/market-symbols", Public),
    ep(Get, "/v2/market-status", Public),
    ep(Get, "/v2/reference/currencies", Public),
    ep(Get, "/v2/settings/common/currencies", Public),
    ep(Get, "/v2/settings/common/symbols", Public),
    ep(Get, "/v2/etp/reference", Public),
    ep(Get, "/v2/etp/rebalance", Public),
    ep(Get, "/market/history/kline", Public),
    ep(Get, "/market/history/candles", Public),
    ep(Get, "/market/detail/merged", Public),
    ep(Get, "/market/detail", Public),
    ep(Get, "/market/tickers", Public),
    ep(Get, "/market/depth", Public),
    ep(Get, "/market/trade", Public),
    ep(Get, "/market/history/trade", Public),
    ep(Get, "/market/etp", Public),
    // Accounts, balances, orders and fees.
    ep(Get, "/v1/account/accounts", Read),
    ep(Get, "/v1/account/accounts/{}/balance", Read),
    ep(Get, "/v1/account/history", Read),
    ep(Get, "/v2/account/ledger", Read),
    ep(Get, "/v2/account/asset-valuation", Read),
    ep(Get, "/v2/account/valuation", Read),
    ep(Get, "/v2/account/deposit/address", Read),
    ep(Get, "/v1/margin/accounts/balance", Read),
    ep(Get, "/v1/cross-margin/accounts/balance", Read),
    ep(Get, "/v2/user/uid", Read),
    ep(Get, "/v2/point/account", Read),
    ep(Get, "/v1/points/actions", Read),
    ep(Get, "/v1/points/orders", Read),
    ep(Get, "/v1/fee/fee-rate/get", Read),
    ep(Get, "/v2/reference/transact-fee-rate", Read),
    ep(Get, "/v1/order/openOrders", Read),
    ep(Get, "/v1/order/orders", Read),
    ep(Get, "/v1/order/history", Read),
    ep(Get, "/v1/order/matchresults", Read),
    ep(Get, "/v1/order/orders/getClientOrder", Read),
    ep(Get, "/v1/order/orders/{}", Read),
    ep(Get, "/v1/order/orders/{}/matchresults", Read),
    ep(Get, "/v1/order/orders/{}/matchresult", Read),
    ep(Get, "/v2/algo-orders/opening", Read),
    ep(Get, "/v2/algo-orders/history", Read),
    ep(Get, "/v2/algo-orders/specific", Read),
    ep(Get, "/v1/stable-coin/exchange_rate", Read),
    ep(Get, "/v1/stable_coin/exchange_rate", Read),
    ep(Get, "/v2/etp/transactions", Read),
    ep(Get, "/v2/etp/transaction", Read),
    ep(Get, "/v2/etp/limit", Read),
    ep(Get, "/v2/invitee/rebate/detail", Read),
    ep(Get, "/v2/invitee/rebate/history", Read),
    ep(Get, "/v2/invitee/rebate/referrals", Read),
    ep(Get, "/v2/invitee/rebate/all_rebate/detail", Read),
    ep(Get, "/v2/invitee/rebate/batcher_rebate/detail", Read),
    // Trading (a margin `source` trades a margin account; see `classify`).
    ep(Post, "/v1/order/orders/place", Trade),
    ep(Post, "/v1/order/batch-orders", Trade),
    ep(Post, "/v2/algo-orders", Trade),
    ep(Post, "/v1/order/orders/{}/submitcancel", Cancel),
    ep(Post, "/v1/order/orders/submitCancelClientOrder", Cancel),
    ep(Post, "/v1/order/orders/batchcancel", Cancel),
    ep(Post, CANCEL_OPEN, Cancel),
    ep(Post, "/v2/algo-orders/cancellation", Cancel),
    ep(Post, DEAD_MAN, Cancel),
    ep(Post, "/v2/etp/batch-cancel", Cancel),
    ep(Post, "/v2/etp/{}/cancel", Cancel),
    // Loans: an order that borrows and repays by itself, margin loans, C2C
    // lending, and every record of them (a loan's name is never a read).
    ep(Post, "/v1/order/auto/place", Borrow),
    ep(Post, "/v1/margin/orders", Borrow),
    ep(Post, "/v1/margin/orders/{}/repay", Borrow),
    ep(Get, "/v1/margin/loan-info", Borrow),
    ep(Get, "/v1/margin/loan-orders", Borrow),
    ep(Post, "/v1/cross-margin/orders", Borrow),
    ep(Post, "/v1/cross-margin/orders/{}/repay", Borrow),
    ep(Get, "/v1/cross-margin/loan-info", Borrow),
    ep(Get, "/v1/cross-margin/loan-orders", Borrow),
    ep(Post, "/v2/account/repayment", Borrow),
    ep(Get, "/v2/account/repayment", Borrow),
    ep(Get, "/v2/c2c/account", Borrow),
    ep(Post, "/v2/c2c/offer", Borrow),
    ep(Get, "/v2/c2c/offer", Borrow),
    ep(Get, "/v2/c2c/offers", Borrow),
    ep(Post, "/v2/c2c/cancellation", Borrow),
    ep(Post, "/v2/c2c/cancel-all", Borrow),
    ep(Get, "/v2/c2c/transactions", Borrow),
    ep(Post, "/v2/c2c/repayment", Borrow),
    ep(Get, "/v2/c2c/repayment", Borrow),
    // Moving funds between the user's (and its sub-users') accounts, and
    // converting one asset into another (stable coins, ETP creation).
    ep(Post, "/v1/account/transfer", Transfer),
    ep(Post, "/v2/account/transfer", Transfer),
    ep(Post, "/v1/futures/transfer", Transfer),
    ep(Post, "/v1/dw/transfer-in/margin", Transfer),
    ep(Post, "/v1/dw/transfer-out/margin", Transfer),
    ep(Post, "/v1/cross-margin/transfer-in", Transfer),
    ep(Post, "/v1/cross-margin/transfer-out", Transfer),
    ep(Post, "/v1/subuser/transfer", Transfer),
    ep(Post, "/v2/point/transfer", Transfer),
    ep(Post, "/v2/c2c/transfer", Transfer),
    ep(Post, "/v5/account/universal_transfer", Transfer),
    ep(Get, "/v5/account/universal_transfer_records", Transfer),
    ep(Get, "/v1/stable-coin/quote", Transfer),
    ep(Post, "/v1/stable-coin/exchange", Transfer),
    ep(Post, "/v2/etp/creation", Transfer),
    ep(Post, "/v2/etp/redemption", Transfer),
    // Withdrawals, and what is read about them (deposits alone are a read:
    // see `classify`).
    ep(Post, "/v1/dw/withdraw/api/create", Withdraw),
    ep(Post, "/v1/dw/withdraw-virtual/{}/cancel", Withdraw),
    ep(Get, "/v2/account/withdraw/quota", Withdraw),
    ep(Get, "/v2/account/withdraw/address", Withdraw),
    ep(Get, "/v1/query/deposit-withdraw", Withdraw),
    ep(Get, "/v1/query/withdraw/client-order-id", Withdraw),
    // API keys and sub-users: what the key may do (keyward account check
    // reads it), and the parent's view and control of its sub-users.
    ep(Get, "/v2/user/api-key", Admin),
    ep(Post, "/v2/sub-user/creation", Admin),
    ep(Post, "/v2/sub-user/api-key-generation", Admin),
    ep(Post, "/v2/sub-user/api-key-modification", Admin),
    ep(Post, "/v2/sub-user/api-key-deletion", Admin),
    ep(Post, "/v2/sub-user/management", Admin),
    ep(Post, "/v2/sub-user/tradable-market", Admin),
    ep(Post, "/v2/sub-user/transferability", Admin),
    ep(Post, "/v2/sub-user/deduct-mode", Admin),
    ep(Get, "/v2/sub-user/user-list", Admin),
    ep(Get, "/v2/sub-user/user-state", Admin),
    ep(Get, "/v2/sub-user/account-list", Admin),
    ep(Get, "/v2/sub-user/deposit-address", Admin),
    ep(Get, "/v2/sub-user/query-deposit", Admin),
    ep(Get, "/v1/subuser/aggregate-balance", Admin),
    ep(Get, "/v1/account/accounts/{}", Admin),
    // Listed by ccxt, documented nowhere keyward read: what it switches on is unknown.
    ep(Post, "/v1/trust/user/active/credit", Admin),
];

/// `source` values HTX documents: spot (`api` in its own example) or a margin
/// account; none borrows by itself (`/v1/margin/orders`, `auto/place` do).
const SOURCES: [&str; 5] = ["spot-api", "api", "margin-api", "super-margin-api", "c2c-margin-api"];

/// Order types keyward reads, after `buy-`/`sell-` (no grid orders: not by API).
const KINDS: [&str; 7] = ["market", "limit", "ioc", "limit-maker", "limit-fok", "stop-limit", "stop-limit-fok"];

/// One `/v1/order/orders/place` or `batch-orders` object. `amount` is the
/// base quantity, except for `buy-market`, where it is the quote amount to
/// spend. HTX ignores a market order's `price`, so one that carries a price
/// is refused rather than read (a low one would understate a market sell's
/// notional); every other type needs its price.
fn v1_order(o: &Value) -> OrdersRead {
    let symbol = required(o, "symbol")?;
    let kind_text = required(o, "type")?;
    let (side, kind) = match kind_text.split_once('-') {
        Some(("buy", k)) => (Side::Buy, k),
        Some(("sell", k)) => (Side::Sell, k),
        _ => return Err(GuardError(format!("order type {kind_text:?} does not start with buy- or sell-"))),
    };
    if !KINDS.contains(&kind) {
        return Err(GuardError(format!("{kind_text:?} orders are not read by keyward's guards")));
    }
    let amount = json_decimal(o, "amount")?.ok_or_else(|| GuardError("the order has no amount".into()))?;
    let market = kind == "market";
    let price = json_decimal(o, "price")?;
    if market == price.is_some() {
        return Err(GuardError(format!("a {kind_text} order {} a price", if market { "with" } else { "without" })));
    }
    let in_quote = market && side == Side::Buy;
    let parent = Order {
        symbol,
        side: Some(side),
        qty: (!in_quote).then_some(amount),
        quote_qty: in_quote.then_some(amount),
        price,
        client_order_id: o.get("client-order-id").and_then(text),
        symbol_only: false,
    };
    Ok(with_trigger(parent, json_decimal(o, "stop-price")?))
}

/// One `/v2/algo-orders` conditional order: sized by `orderValue` (quote)
/// for a market buy and by `orderSize` (base) otherwise, never both;
/// `orderPrice` for a limit order only; `stopPrice` is its trigger. A
/// trailing stop (`trailingRate`) is a market order.
fn algo_order(o: &Value) -> OrdersRead {
    let symbol = required(o, "symbol")?;
    let side = match o.get("orderSide").and_then(Value::as_str) {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        _ => return Err(GuardError("the conditional order's orderSide is not buy or sell".into())),
    };
    let market = match o.get("orderType").and_then(Value::as_str) {
        Some("market") => true,
        Some("limit") => false,
        _ => return Err(GuardError("the conditional order's orderType is not limit or market".into())),
    };
    let price = json_decimal(o, "orderPrice")?;
    if market == price.is_some() {
        return Err(GuardError("a conditional limit order needs orderPrice; a market one takes none".into()));
    }
    let (size, value) = (json_decimal(o, "orderSize")?, json_decimal(o, "orderValue")?);
    let (qty, quote_qty) = match (market && side == Side::Buy, size, value) {
        (true, None, Some(value)) => (None, Some(value)),
        (false, Some(size), None) => (Some(size), None),
        _ => return Err(GuardError("orderValue sizes a market buy, orderSize any other: one of them".into())),
    };
    let parent = Order {
        symbol,
        side: Some(side),
        qty,
        quote_qty,
        price,
        client_order_id: o.get("clientOrderId").and_then(text),
        symbol_only: false,
    };
    Ok(with_trigger(parent, json_decimal(o, "stopPrice")?))
}

/// The orders `read` finds in each object of a request: one object, or (`batch-orders`) a list.
fn each(req: &CanonicalRequest, list: bool, read: fn(&Value) -> OrdersRead) -> OrdersRead {
    let mut out = Vec::new();
    for o in objects(req, list)? {
        out.extend(read(o)?);
    }
    Ok(out)
}

/// Where an HTX withdrawal names each part (the fee: see `create`). The client
/// id and the travel-rule names change neither destination nor amount.
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "currency",
    amount: "amount",
    address: "address",
    network: Some("chain"),
    memo: Some("addr-tag"),
    harmless: &["fee", "client-order-id", "exchange-vasp", "user-name-vasp"],
};

/// `POST /v1/dw/withdraw/api/create`, to an address of the user's HTX
/// address list. HTX takes the `fee` the request offers on top of `amount`,
/// so it counts towards the caps. `UID:`, `PHONE:` or `MAIL:` before the
/// address sends to another HTX user: the network reads `uid`, `phone` or
/// `mail` and the address is the recipient; `addr-tag` (which HTX wants to
/// repeat a UID) may not name anyone else.
fn create(req: &CanonicalRequest) -> Result<Withdrawal, GuardError> {
    let mut w = WITHDRAW.read(req)?;
    if let Some(fee) = param_decimal(req, "fee")? {
        w.amount = w.amount.checked_add(fee).ok_or_else(|| GuardError("amount and fee are out of range".into()))?;
    }
    let Some((kind, to)) = w.address.split_once(':').map(|(k, t)| (k.to_ascii_uppercase(), t.to_string())) else {
        return Ok(w);
    };
    let network = match kind.as_str() {
        "UID" => "uid",
        "PHONE" => "phone",
        "MAIL" => "mail",
        // Some chains' addresses carry a prefix of their own (`bitcoincash:`).
        _ => return Ok(w),
    };
    if to.is_empty() || w.memo.as_deref().is_some_and(|m| m != to) {
        return Err(GuardError(format!("{kind}: the address and addr-tag do not name one recipient")));
    }
    Ok(Withdrawal { address: to, network: Some(network.into()), memo: None, ..w })
}

const SETTINGS: KeySettings = KeySettings {
    page: "HTX's API Management page",
    withdraw: "Withdraw",
    // Transfers and margin trading come with "Trade"; HTX has no futures on this key.
    transfer: "",
    margin: "",
    futures: "",
    trade: "Trade",
    ip: "Bind IP address",
};

/// `GET /v2/user/api-key?uid=…&accessKey=…`: `permission` (`readOnly,trade,withdraw`),
/// `ipAddresses` (comma-separated, `""`: none bound), `status` (`normal`,
/// `expired`) and `validDays` (days left, −1: no expiry). `validDays` counts
/// from now, which this pure reader does not know: only an expired key gets
/// a date (the epoch).
fn key_info(v: &Value, api_key: &str) -> Result<KeyInfo, String> {
    let keys = v.get("data").and_then(Value::as_array).ok_or("the answer has no data")?;
    let key = keys
        .iter()
        .find(|k| k.get("accessKey").and_then(Value::as_str) == Some(api_key))
        .ok_or("the account's key is not among those HTX lists")?;
    let perm = key.get("permission").and_then(Value::as_str).ok_or("the key has no permission")?;
    let perms: Vec<&str> = perm.split(',').map(str::trim).collect();
    let ips = address_list(key.get("ipAddresses"));
    Ok(KeyInfo {
        withdraw: Some(perms.contains(&"withdraw")),
        transfer: None,
        margin: None,
        futures: None,
        trade: Some(perms.contains(&"trade")),
        ip_restricted: Some(!ips.is_empty()),
        ips,
        expires_ms: (key.get("status").and_then(Value::as_str) == Some("expired")).then_some(0),
    })
}

/// `GET /v2/user/uid` answers `{"code":200,"data":63628520}`: the UID the
/// key query needs.
fn uid(v: &Value) -> Result<Vec<(String, String)>, String> {
    let uid = v.get("data").and_then(text).filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()));
    Ok(vec![("uid".into(), uid.ok_or("the answer has no UID")?)])
}

fn cancel_open() -> CanonicalRequest {
    request("POST", CANCEL_OPEN, &[], Some(json!({})))
}

/// Another cancellation while the last one says open orders remain
/// (`next-id` −1: none left) and it cancelled some.
fn more_open(body: &[u8]) -> Result<Vec<CanonicalRequest>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the cancellation's answer is not JSON".to_string())?;
    let data = v.get("data").ok_or("the cancellation's answer has no data")?;
    let next = data.get("next-id").and_then(Value::as_i64).ok_or("the cancellation's answer has no next-id")?;
    let cancelled = data.get("success-count").and_then(Value::as_i64).unwrap_or(0);
    Ok(if next == -1 || cancelled == 0 { Vec::new() } else { vec![cancel_open()] })
}

/// Conditional orders not yet triggered, cancelled 50 client ids at a time.
fn cancel_algos(body: &[u8]) -> Result<Vec<CanonicalRequest>, String> {
    let ids = list_at(body, &["data"])?
        .iter()
        .map(|o| o.get("clientOrderId").and_then(Value::as_str).map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or("a conditional order without clientOrderId")?;
    Ok(ids
        .chunks(50)
        .map(|c| request("POST", "/v2/algo-orders/cancellation", &[], Some(json!({"clientOrderIds": c}))))
        .collect())
}

/// `2017-05-11T15:19:30`: UTC, whole seconds (truncated; HTX accepts a
/// timestamp for five minutes).
fn timestamp(ms: i64) -> String {
    let iso = crate::okx::iso8601_ms(ms);
    iso.get(..19).unwrap_or(iso.as_str()).to_string()
}

/// Signs for `host`: the auth parameters and (GET) the request's own,
/// sorted by name (byte order: HTX's "ASCII order"; names are unique in a
/// canonical request), encoded as HTX wants (`%3A`, `%20`, upper-case hex).
/// The query sent is the signed one, then `Signature`.
fn sign_to(host: &str, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
    if let Some((k, _)) = req.query.iter().find(|(k, _)| AUTH.contains(&k.as_str())) {
        return Err(SignError::Request(format!("{k} is keyward's to set")));
    }
    let mut pairs = vec![
        ("AccessKeyId".to_string(), creds.api_key.clone()),
        ("SignatureMethod".to_string(), "HmacSHA256".to_string()),
        ("SignatureVersion".to_string(), "2".to_string()),
        ("Timestamp".to_string(), timestamp(ctx.timestamp_ms)),
    ];
    let body = match (req.method, &req.body) {
        (Get, _) => {
            pairs.extend(req.query.iter().cloned());
            None
        }
        // A POST query would be signed as if HTX read it, and it does not.
        (Post, _) if !req.query.is_empty() => {
            return Err(SignError::Request("HTX takes a POST's parameters in its JSON body".into()));
        }
        (Post, Body::Json(_)) => req.body_bytes().map(|(t, b)| (t.to_string(), b)),
        // As ccxt does: HTX wants a JSON body on every POST.
        (Post, Body::Empty) => Some(("application/json".to_string(), b"{}".to_vec())),
        (Post, Body::Form(_)) => return Err(SignError::Request("HTX takes JSON bodies, not forms".into())),
        _ => return Err(SignError::Request("HTX's REST API takes GET and POST".into())),
    };
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut query = encode_pairs(&pairs);
    let payload = format!("{}\n{}\n{}\n{query}", req.method.as_str(), host.to_ascii_lowercase(), req.path);
    let signature = b64(&hmac_sha256(creds.secret()?.as_bytes(), payload.as_bytes()));
    query.push_str("&Signature=");
    encode_component_into(&mut query, &signature);
    Ok(Outgoing { method: req.method, path: req.path.clone(), query, headers: Vec::new(), body })
}

impl Exchange for Htx {
    fn kind(&self) -> &'static str {
        "htx"
    }
    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/", "https://api.huobi.pro")]
    }
    fn own_hosts(&self) -> &'static [&'static str] {
        &["api.huobi.pro", "api-aws.huobi.pro", "api.htx.com"]
    }
    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }
    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        // One history holds deposits and withdrawals; deposits alone are a read.
        if req.path == "/v1/query/deposit-withdraw" && req.param("type").as_deref() == Some("deposit") {
            return Some(Read);
        }
        // An order names its account by `source`: spot or margin, neither of
        // which borrows; another value (or spelling) is read as borrowing.
        let unknown_source =
            crate::borrow::any(req, "source", &|v| SOURCES.iter().any(|s| crate::borrow::is_exactly(v, s)));
        if class == Trade && unknown_source {
            return Some(Borrow);
        }
        Some(class)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/v1/account/accounts",
            query: &[],
            // v1 answers `status` `ok`, v2 `code` 200: keyward's own calls use both.
            answer: AnswerShape::StatusOrCode,
        }
    }

    fn key_header(&self) -> &'static str {
        // HTX's clients send no key header: the key is the `AccessKeyId`
        // query parameter (`key_param`). keyward also reads a keyward key
        // from `Authorization: Bearer`.
        "authorization"
    }
    fn key_param(&self) -> Option<&'static str> {
        Some("AccessKeyId")
    }
    fn signs_host(&self) -> bool {
        true
    }
    fn auth_headers(&self) -> &'static [&'static str] {
        &["authorization"]
    }
    fn auth_params(&self) -> &'static [&'static str] {
        &AUTH
    }
    fn signature_binds_request(&self) -> bool {
        false
    }
    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        // HMAC only: a PEM key (HTX's Ed25519 keys) is not signed with yet.
        Credentials::from_fields(get)?.secret().map(|_| ())
    }

    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/v1/order/orders/place") => each(req, false, v1_order),
            (Post, "/v1/order/batch-orders") => each(req, true, v1_order),
            (Post, "/v2/algo-orders") => each(req, false, algo_order),
            _ => Err(GuardError(format!("keyward's guards do not read {} {}", req.method.as_str(), req.path))),
        }
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let q = format!("symbol={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/market/detail/merged", Some(&q), None, b"").ok()
    }

    /// `{"status":"ok","tick":{"close":9146.86,…}}`: a JSON number, small
    /// ones at times in exponent form (a reference price, not an order field).
    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let close = text(v.get("tick")?.get("close")?)?;
        decimal("close", &close).ok().or_else(|| Decimal::from_scientific(&close).ok()).filter(|p| *p > Decimal::ZERO)
    }

    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        let segments: Vec<&str> = req.path.split('/').collect();
        match (req.method, segments.as_slice()) {
            (Post, ["", "v1", "dw", "withdraw", "api", "create"]) => create(req).map(Some),
            (Post, ["", "v1", "dw", "withdraw-virtual", _, "cancel"])
            | (Get, ["", "v2", "account", "withdraw", "quota" | "address"])
            | (Get, ["", "v1", "query", "deposit-withdraw"])
            | (Get, ["", "v1", "query", "withdraw", "client-order-id"]) => Ok(None),
            _ => Err(GuardError(format!("keyward does not read {} {}", req.method.as_str(), req.path))),
        }
    }

    /// The key query needs the account's UID, which HTX gives the key
    /// itself (`GET /v2/user/uid`): asked first. HTX answers it for a
    /// parent user's key only.
    fn key_info(&self, creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/v2/user/api-key", &[("accessKey", creds.api_key.as_str())], None),
            first: Some(FirstCall { request: request("GET", "/v2/user/uid", &[], None), params: uid }),
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// `batchCancelOpenOrders` (every symbol, 100 a call), then again as a
    /// listing whose answer asks for more while HTX says orders remain; then
    /// the conditional orders not yet triggered, which only
    /// `algo-orders/cancellation` cancels.
    fn cancel_all(&self) -> Vec<Sweep> {
        vec![
            Sweep::Call(cancel_open()),
            Sweep::listed(cancel_open(), more_open),
            Sweep::listed(request("GET", "/v2/algo-orders/opening", &[("limit", "500")], None), cancel_algos),
        ]
    }

    /// Every order on HTX's spot market (at most 500 when it fires); 0 or at
    /// least 5 seconds, 60 re-armed every 15 recommended, no maximum named: keyward keeps to an hour.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /v2/algo-orders/cancel-all-after",
            min_s: 5,
            max_s: 3600,
            arm: |timeout_s| vec![Sweep::Call(request("POST", DEAD_MAN, &[], Some(json!({"timeout": timeout_s}))))],
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        sign_to(HOST, req, creds, ctx)
    }

    fn sign_for(
        &self,
        host: &str,
        req: &CanonicalRequest,
        creds: &Credentials,
        ctx: &SignContext,
    ) -> Result<Outgoing, SignError> {
        sign_to(host, req, creds, ctx)
    }
}
