//! OKX v5: `OK-ACCESS-SIGN` = base64(HMAC-SHA256(secret, timestamp + method +
//! path[?query] + body)) with an ISO-8601 millisecond timestamp, plus the
//! plain passphrase. The signature covers path, query and body.

use crate::catalog::{Endpoint, ep};
use crate::mac::{b64, hmac_sha256};
use crate::{Body, CanonicalRequest, Class, Credentials, Exchange, Method, Outgoing, SignContext, SignError, h};
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

/// An order that may borrow: margin mode on a spot pair (`BTC-USDT`).
fn borrows(order: &Value) -> bool {
    let spot = order.get("instId").and_then(Value::as_str).is_some_and(|i| i.matches('-').count() == 1);
    let margin = order.get("tdMode").and_then(Value::as_str).is_some_and(|m| m == "cross" || m == "isolated");
    spot && margin
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

    fn classify(&self, req: &CanonicalRequest) -> Option<Class> {
        let class = crate::catalog::lookup(CATALOG, req.method, &req.path)?;
        if class == Trade {
            let any_borrow = match &req.body {
                Body::Json(Value::Array(orders)) => orders.iter().any(borrows),
                Body::Json(order) => borrows(order),
                _ => false,
            };
            if any_borrow {
                return Some(Borrow);
            }
        }
        Some(class)
    }

    fn key_header(&self) -> &'static str {
        "ok-access-key"
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

    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError> {
        if matches!(req.body, Body::Form(_)) {
            return Err(SignError::Request("OKX takes JSON bodies".into()));
        }
        let query = req.query_string();
        let target = if query.is_empty() { req.path.clone() } else { format!("{}?{query}", req.path) };
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
