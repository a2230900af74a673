//! OKX v5: `OK-ACCESS-SIGN` = base64(HMAC-SHA256(secret, timestamp + method +
//! path[?query] + body)) with an ISO-8601 millisecond timestamp, plus the
//! plain passphrase. The signature covers path, query and body.

use crate::catalog::{Endpoint, ep};
use crate::check::{AnswerShape, CredentialCheck};
use crate::funds::WithdrawFields;
use crate::keyinfo::{KeyInfo, KeyInfoCall, KeySettings, address_list};
use crate::mac::{b64, hmac_sha256};
use crate::orders::{GuardError, Order, Side, decimal, json_decimal, json_orders, side, text};
use crate::sweep::{DeadMan, Sweep, list_at, request};
use crate::{
    Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, Withdrawal, h,
};
use rust_decimal::Decimal;
use serde_json::Value;

/// OKX.
#[derive(Debug, Clone, Copy)]
pub struct Okx;

use Class::{Admin, Borrow, Cancel, Public, Read, Trade, Transfer, Withdraw};
use Method::{Get, Post};

static CATALOG: &[Endpoint] = &[
    ep(Get, "/api/v5/public/time", Public),
    ep(Get, "/api/v5/system/status", Public),
    ep(Get, "/api/v5/public/instruments", Public),
    ep(Get, "/api/v5/public/funding-rate", Public),
    ep(Get, "/api/v5/public/funding-rate-history", Public),
    ep(Get, "/api/v5/public/mark-price", Public),
    ep(Get, "/api/v5/public/open-interest", Public),
    ep(Get, "/api/v5/public/price-limit", Public),
    ep(Get, "/api/v5/market/tickers", Public),
    ep(Get, "/api/v5/market/ticker", Public),
    ep(Get, "/api/v5/market/books", Public),
    ep(Get, "/api/v5/market/candles", Public),
    ep(Get, "/api/v5/market/history-candles", Public),
    ep(Get, "/api/v5/market/trades", Public),
    ep(Get, "/api/v5/market/history-trades", Public),
    ep(Get, "/api/v5/account/balance", Read),
    ep(Get, "/api/v5/account/positions", Read),
    ep(Get, "/api/v5/account/config", Read),
    ep(Get, "/api/v5/account/trade-fee", Read),
    ep(Get, "/api/v5/account/bills", Read),
    ep(Get, "/api/v5/account/bills-archive", Read),
    ep(Get, "/api/v5/account/max-size", Read),
    ep(Get, "/api/v5/account/max-avail-size", Read),
    ep(Get, "/api/v5/account/leverage-info", Read),
    ep(Get, "/api/v5/trade/order", Read),
    ep(Get, "/api/v5/trade/orders-pending", Read),
    ep(Get, "/api/v5/trade/orders-history", Read),
    ep(Get, "/api/v5/trade/orders-history-archive", Read),
    ep(Get, "/api/v5/trade/fills", Read),
    ep(Get, "/api/v5/trade/fills-history", Read),
    ep(Get, "/api/v5/trade/orders-algo-pending", Read),
    ep(Get, "/api/v5/asset/balances", Read),
    ep(Get, "/api/v5/asset/currencies", Read),
    ep(Get, "/api/v5/asset/deposit-address", Read),
    ep(Get, "/api/v5/asset/deposit-history", Read),
    ep(Post, "/api/v5/trade/order", Trade),
    ep(Post, "/api/v5/trade/batch-orders", Trade),
    ep(Post, "/api/v5/trade/amend-order", Trade),
    ep(Post, "/api/v5/trade/amend-batch-orders", Trade),
    ep(Post, "/api/v5/trade/close-position", Trade),
    ep(Post, "/api/v5/trade/order-algo", Trade),
    ep(Post, "/api/v5/account/set-leverage", Trade),
    ep(Post, "/api/v5/account/set-position-mode", Trade),
    ep(Post, "/api/v5/trade/cancel-order", Cancel),
    ep(Post, "/api/v5/trade/cancel-batch-orders", Cancel),
    ep(Post, "/api/v5/trade/cancel-algos", Cancel),
    ep(Post, "/api/v5/trade/mass-cancel", Cancel),
    ep(Post, "/api/v5/trade/cancel-all-after", Cancel),
    ep(Post, "/api/v5/asset/withdrawal-lightning", Withdraw),
    ep(Post, "/api/v5/asset/withdrawal", Withdraw),
    ep(Post, "/api/v5/asset/cancel-withdrawal", Withdraw),
    ep(Get, "/api/v5/asset/withdrawal-history", Withdraw),
    ep(Post, "/api/v5/asset/transfer", Transfer),
    ep(Get, "/api/v5/asset/transfer-state", Transfer),
    ep(Post, "/api/v5/asset/convert/estimate-quote", Transfer),
    ep(Post, "/api/v5/asset/convert/trade", Transfer),
    ep(Post, "/api/v5/asset/subaccount/transfer", Transfer),
    ep(Post, "/api/v5/rfq/create-rfq", Transfer),
    ep(Post, "/api/v5/rfq/create-quote", Transfer),
    ep(Post, "/api/v5/rfq/execute-quote", Transfer),
    ep(Post, "/api/v5/account/borrow-repay", Borrow),
    ep(Post, "/api/v5/account/spot-manual-borrow-repay", Borrow),
    ep(Post, "/api/v5/account/set-auto-repay", Borrow),
    ep(Post, "/api/v5/users/subaccount/apikey", Admin),
    ep(Post, "/api/v5/users/subaccount/modify-apikey", Admin),
    ep(Post, "/api/v5/users/subaccount/delete-apikey", Admin),
];

/// An order that may borrow: on anything but a derivative (whose instrument
/// id has two dashes or more, `BTC-USDT-SWAP`), a trade mode other than
/// exactly `cash` borrows; so does an order that names its trade mode in
/// another spelling, or its instrument twice. Every object of the body is
/// an order here (single, batch, attached orders).
fn borrows(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            let modes: Vec<&Value> =
                m.iter().filter(|(k, _)| crate::borrow::loosely_named(k, "tdmode")).map(|(_, x)| x).collect();
            let ids: Vec<&Value> =
                m.iter().filter(|(k, _)| crate::borrow::loosely_named(k, "instid")).map(|(_, x)| x).collect();
            let derivative =
                matches!(ids.as_slice(), [Value::String(i)] if i.matches('-').count() >= 2) && m.contains_key("instId");
            let strict = modes.len() == 1 && m.get("tdMode") == Some(&Value::String("cash".into()));
            (!modes.is_empty() && !derivative && !strict) || m.values().any(borrows)
        }
        Value::Array(a) => a.iter().any(borrows),
        _ => false,
    }
}

/// `2020-12-08T09:08:57.715Z` from milliseconds since the epoch.
pub fn iso8601_ms(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// One OKX order object. Spot sizes are base units except market orders
/// sized in the quote currency (`tgtCcy`, whose default for a market buy is
/// the quote currency); derivative sizes are contracts, which keyward does
/// not convert: refused to guarded keys.
fn order(o: &Value, amend: bool) -> Result<Vec<Order>, GuardError> {
    let inst = o.get("instId").and_then(text).ok_or_else(|| GuardError("the order has no instId".into()))?;
    if inst.matches('-').count() != 1 {
        return Err(GuardError(format!("{inst}: sizes in contracts are not read by keyward's guards")));
    }
    let (sz_name, px_name) = if amend { ("newSz", "newPx") } else { ("sz", "px") };
    let sz = json_decimal(o, sz_name)?;
    let px = json_decimal(o, px_name)?;
    let side = if amend { None } else { Some(side(o.get("side").and_then(text))?) };
    let market = o.get("ordType").and_then(Value::as_str) == Some("market");
    let tgt = o.get("tgtCcy").and_then(Value::as_str);
    let in_quote = market && (tgt == Some("quote_ccy") || (tgt.is_none() && side == Some(Side::Buy)));
    let parent = Order {
        symbol: inst,
        side,
        qty: if in_quote { None } else { sz },
        quote_qty: if in_quote { sz } else { None },
        price: px,
        client_order_id: o.get("clOrdId").and_then(text),
        symbol_only: false,
    };
    let mut out = attached(&parent, o, None)?;
    if let Some(list) = o.get("attachAlgoOrds") {
        let list = list.as_array().ok_or_else(|| GuardError("attachAlgoOrds is not a list".into()))?;
        for a in list {
            let size = match (json_decimal(a, "sz")?, json_decimal(a, "newSz")?) {
                (Some(s), _) | (None, Some(s)) => Some(s),
                _ => None,
            };
            out.extend(attached(&parent, a, size)?);
        }
    }
    out.insert(0, parent);
    Ok(out)
}

/// Every order of a single or batch request, attached ones included.
fn all(req: &CanonicalRequest, amend: bool) -> Result<Vec<Order>, GuardError> {
    let mut out = Vec::new();
    for o in json_orders(req)? {
        out.extend(order(o, amend)?);
    }
    Ok(out)
}

/// The take-profit and stop-loss prices of an order or of one of its
/// attached algo orders, each an order of `size` (default: the parent's).
/// `-1` is an order price at market.
fn attached(parent: &Order, o: &Value, size: Option<rust_decimal::Decimal>) -> Result<Vec<Order>, GuardError> {
    const PRICES: [&str; 8] = [
        "tpTriggerPx",
        "tpOrdPx",
        "slTriggerPx",
        "slOrdPx",
        "newTpTriggerPx",
        "newTpOrdPx",
        "newSlTriggerPx",
        "newSlOrdPx",
    ];
    let mut out = Vec::new();
    for name in PRICES {
        match o.get(name) {
            None | Some(Value::Null) => {}
            Some(v) if text(v).as_deref() == Some("") => {}
            Some(v) if text(v).as_deref() == Some("-1") && name.ends_with("OrdPx") => {
                out.push(crate::orders::priced_like(parent, None, size, true))
            }
            Some(_) => {
                let p = json_decimal(o, name)?;
                out.push(crate::orders::priced_like(parent, p, size, true));
            }
        }
    }
    Ok(out)
}

/// Where an OKX withdrawal names each part: `toAddr` is the address, with
/// a memo after a `:` on chains that take one (`address:tag`); `dest` 4 is
/// on-chain, 3 an OKX account (see [`Okx::withdrawal`]).
const WITHDRAW: WithdrawFields = WithdrawFields {
    asset: "ccy",
    amount: "amt",
    address: "toAddr",
    network: Some("chain"),
    memo: None,
    harmless: &["dest", "clientId", "fee", "toAddrType", "areaCode", "rcvrInfo"],
};

const SETTINGS: KeySettings = KeySettings {
    page: "OKX's API management page",
    withdraw: "Withdraw",
    transfer: "",
    margin: "",
    futures: "",
    trade: "Trade",
    ip: "IP address (linked IP addresses)",
};

/// `GET /api/v5/account/config`: `perm` (`read_only,withdraw,trade`) and
/// `ip` (comma-separated, `""`: none bound) of the calling key. OKX has no
/// separate transfer or margin permission (both are `trade`), and no expiry.
fn key_info(v: &Value, _api_key: &str) -> Result<KeyInfo, String> {
    let d = v.get("data").and_then(|d| d.get(0)).ok_or("the answer has no data")?;
    let perm = d.get("perm").and_then(Value::as_str).ok_or("the answer has no perm")?;
    let perms: Vec<&str> = perm.split(',').map(str::trim).collect();
    let ips = address_list(d.get("ip"));
    Ok(KeyInfo {
        withdraw: Some(perms.contains(&"withdraw")),
        transfer: None,
        margin: None,
        futures: None,
        trade: Some(perms.contains(&"trade")),
        ip_restricted: Some(!ips.is_empty()),
        ips,
        expires_ms: None,
    })
}

/// Batches of `size` `{instId, <id>}` objects from a listing.
fn batches(body: &[u8], id: &'static str, size: usize, path: &'static str) -> Result<Vec<CanonicalRequest>, String> {
    let orders = list_at(body, &["data"])?;
    let mut items = Vec::new();
    for o in &orders {
        let (Some(inst), Some(oid)) = (o.get("instId").and_then(Value::as_str), o.get(id).and_then(Value::as_str))
        else {
            return Err(format!("an open order without instId or {id}"));
        };
        items.push(serde_json::json!({"instId": inst, id: oid}));
    }
    Ok(items.chunks(size).map(|c| request("POST", path, &[], Some(Value::Array(c.to_vec())))).collect())
}

impl Exchange for Okx {
    fn kind(&self) -> &'static str {
        "okx"
    }

    fn base_urls(&self) -> &'static [(&'static str, &'static str)] {
        &[("/api", "https://www.okx.com")]
    }

    fn own_hosts(&self) -> &'static [&'static str] {
        &["www.okx.com", "aws.okx.com", "eea.okx.com", "us.okx.com", "app.okx.com"]
    }

    fn catalog(&self) -> &'static [Endpoint] {
        CATALOG
    }

    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        if class == Trade {
            let any_borrow = match &req.body {
                Body::Json(v) => borrows(v),
                _ => false,
            };
            if any_borrow {
                return Some(Borrow);
            }
        }
        Some(class)
    }

    fn credential_check(&self) -> CredentialCheck {
        CredentialCheck {
            method: Method::Get,
            path: "/api/v5/account/balance",
            query: &[],
            answer: AnswerShape::CodeField { code: "code", ok: "0", message: "msg" },
        }
    }

    fn key_header(&self) -> &'static str {
        "ok-access-key"
    }

    fn orders(&self, req: &CanonicalRequest) -> Result<Vec<Order>, GuardError> {
        match req.path.as_str() {
            "/api/v5/trade/order" | "/api/v5/trade/batch-orders" => all(req, false),
            "/api/v5/trade/amend-order" | "/api/v5/trade/amend-batch-orders" => all(req, true),
            // Closing a position reduces it, and leverage sizes nothing: the
            // instrument is still held to the key's symbols.
            "/api/v5/trade/close-position" | "/api/v5/account/set-leverage" => {
                Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "instId")?)])
            }
            other => Err(GuardError(format!("keyward's guards do not read {other}"))),
        }
    }

    fn ticker(&self, _order_path: &str, symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        let q = format!("instId={}", crate::canonical::encode_component(symbol));
        CanonicalRequest::parse("GET", "/api/v5/market/ticker", Some(&q), None, b"").ok()
    }

    fn parse_ticker(&self, body: &[u8]) -> Option<Decimal> {
        let v: Value = serde_json::from_slice(body).ok()?;
        decimal("last", v.get("data")?.get(0)?.get("last")?.as_str()?).ok()
    }

    fn auth_headers(&self) -> &'static [&'static str] {
        &["ok-access-key", "ok-access-sign", "ok-access-timestamp", "ok-access-passphrase"]
    }

    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        creds.secret()?;
        creds.passphrase()?;
        Ok(())
    }

    /// `dest` 4 (on-chain): `toAddr` is `address[:memo]`. `dest` 3 (an OKX
    /// account by email, phone with `areaCode`, account name, or with
    /// `toAddrType` 2 a UID): the network reads `internal` (or
    /// `internal-uid`), and a phone's address reads `AREA-PHONE`.
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, GuardError> {
        match (req.method, req.path.as_str()) {
            (Post, "/api/v5/asset/withdrawal") => {
                let mut w = WITHDRAW.read(req)?;
                let to_type = req.param("toAddrType");
                match (req.param("dest").as_deref(), to_type.as_deref()) {
                    (Some("4"), None | Some("1")) => {
                        if req.param("areaCode").is_some() {
                            return Err(GuardError("areaCode belongs to internal transfers (dest 3)".into()));
                        }
                        if let Some((address, memo)) = w.address.split_once(':') {
                            w.memo = Some(memo.to_string()).filter(|m| !m.is_empty());
                            w.address = address.to_string();
                        }
                    }
                    (Some("3"), None | Some("1") | Some("2")) => {
                        w.network =
                            Some(if to_type.as_deref() == Some("2") { "internal-uid" } else { "internal" }.into());
                        if let Some(area) = req.param("areaCode") {
                            w.address = format!("{area}-{}", w.address);
                        }
                    }
                    (dest, kind) => {
                        return Err(GuardError(format!(
                            "dest {dest:?} with toAddrType {kind:?}: keyward reads dest 4 (on-chain) and 3 (an OKX account)"
                        )));
                    }
                }
                Ok(Some(w))
            }
            (Post, "/api/v5/asset/cancel-withdrawal") | (Get, "/api/v5/asset/withdrawal-history") => Ok(None),
            _ => Err(GuardError(format!(
                "{} {} pays to no address keyward can hold to an allowlist (a Lightning invoice)",
                req.method.as_str(),
                req.path
            ))),
        }
    }

    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        Some(KeyInfoCall {
            request: request("GET", "/api/v5/account/config", &[], None),
            first: None,
            answer: self.credential_check().answer,
            parse: key_info,
            settings: SETTINGS,
        })
    }

    /// OKX has no cancel-all: the pending orders are listed (100 a page)
    /// and cancelled 20 at a time, then the algo orders (trigger, TP/SL,
    /// trailing) 10 at a time.
    fn cancel_all(&self) -> Vec<Sweep> {
        let algo = |kinds: &'static str| {
            Sweep::listed(request("GET", "/api/v5/trade/orders-algo-pending", &[("ordType", kinds)], None), |b| {
                batches(b, "algoId", 10, "/api/v5/trade/cancel-algos")
            })
        };
        vec![
            Sweep::listed(request("GET", "/api/v5/trade/orders-pending", &[("limit", "100")], None), |b| {
                batches(b, "ordId", 20, "/api/v5/trade/cancel-batch-orders")
            }),
            algo("conditional,oco"),
            algo("trigger"),
            algo("move_order_stop"),
        ]
    }

    /// Account-wide; 10 to 120 seconds, 0 disarms.
    fn dead_man(&self) -> Option<DeadMan> {
        Some(DeadMan {
            name: "POST /api/v5/trade/cancel-all-after",
            min_s: 10,
            max_s: 120,
            arm: |timeout_s| {
                vec![Sweep::Call(request(
                    "POST",
                    "/api/v5/trade/cancel-all-after",
                    &[],
                    Some(serde_json::json!({"timeOut": timeout_s.to_string()})),
                ))]
            },
        })
    }

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("OKX takes JSON bodies".into()));
        }
        let query = req.query_string();
        let target = crate::canonical::request_target(&req.path, &query);
        let body = req.body_bytes();
        let body_text = body.as_ref().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let ts = iso8601_ms(ctx.timestamp_ms);
        let prehash = format!("{ts}{}{target}{body_text}", req.method.as_str());
        let sign = b64(&hmac_sha256(creds.secret()?.as_bytes(), prehash.as_bytes()));
        Ok(Outgoing {
            method: req.method,
            path: req.path.clone(),
            query,
            headers: vec![
                h("OK-ACCESS-KEY", creds.api_key.clone()),
                h("OK-ACCESS-SIGN", sign),
                h("OK-ACCESS-TIMESTAMP", ts),
                h("OK-ACCESS-PASSPHRASE", creds.passphrase()?.to_string()),
            ],
            body: body.map(|(t, b)| (t.to_string(), b)),
        })
    }
}
