//! Order guards set on a key: symbols, largest quantity, largest notional
//! (per order and per UTC day, in the quote currency), and a price band
//! around a reference price from the exchange's public ticker.
//!
//! Every order of a single, batch or amend request is checked. A sell's
//! notional uses the larger of its price and the reference price; a market
//! order without a price is refused when a notional cap is set (unless sized
//! in the quote currency, which is its notional); a guarded key is refused
//! any trade endpoint whose size fields keyward cannot read strictly.

use crate::accounts::Account;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use keyward_exchanges::orders::{Order, Side, decimal};
use keyward_exchanges::{CanonicalRequest, Exchange};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reference price is reused.
const REFERENCE_TTL: Duration = Duration::from_secs(5);

/// Guards on a key's orders (stored in its policy, under the row MAC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderGuard {
    /// Symbols the key may trade (exchange notation; compared without `-`, `/`, `_` and case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<String>,
    /// Largest quantity per order, base units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_qty: Option<String>,
    /// Largest notional per order, quote units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_notional: Option<String>,
    /// Largest cumulative notional per UTC day, quote units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_notional_per_day: Option<String>,
    /// Largest distance of a limit price from the reference price, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_band_pct: Option<String>,
}

fn dec(field: &str, v: &Option<String>) -> ApiResult<Option<Decimal>> {
    v.as_deref()
        .map(|s| decimal(field, s).map_err(|e| ApiError::bad("invalid_request", format!("{field}: {e}"))))
        .transpose()
}

impl OrderGuard {
    /// Checks the values at key creation (plain decimals, a percentage).
    pub fn validate(&self) -> ApiResult<()> {
        dec("max_qty", &self.max_qty)?;
        dec("max_notional", &self.max_notional)?;
        dec("max_notional_per_day", &self.max_notional_per_day)?;
        if let Some(p) = dec("price_band", &self.price_band_pct)?
            && (p <= Decimal::ZERO || p >= Decimal::from(100))
        {
            return Err(ApiError::bad("invalid_request", "price_band must be between 0% and 100%, e.g. 5%"));
        }
        if self.symbols.iter().any(|s| s.is_empty() || s.len() > 64) {
            return Err(ApiError::bad("invalid_request", "symbols are 1 to 64 characters, e.g. BTCUSDT,ETHUSDT"));
        }
        Ok(())
    }

    /// True when any guard is set.
    pub fn is_set(&self) -> bool {
        *self != OrderGuard::default()
    }
}

fn norm(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '-' | '/' | '_')).flat_map(char::to_uppercase).collect()
}

fn refuse(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "order_guard", msg)
}

/// Reference prices by (account, symbol).
#[derive(Debug, Default)]
pub struct ReferencePrices {
    cache: Mutex<HashMap<(String, String), (Decimal, Instant)>>,
}

async fn reference(
    state: &AppState,
    account: &str,
    acct: &Account,
    order_path: &str,
    symbol: &str,
    req: &CanonicalRequest,
) -> ApiResult<Decimal> {
    let key = (account.to_string(), symbol.to_string());
    if let Some((p, at)) = state.references.cache.lock().ok().and_then(|c| c.get(&key).copied())
        && at.elapsed() < REFERENCE_TTL
    {
        return Ok(p);
    }
    let ex: &dyn Exchange = acct.exchange;
    let ticker = ex
        .ticker(order_path, symbol, req)
        .ok_or_else(|| refuse(format!("keyward has no reference price for {symbol} on {}", ex.kind())))?;
    let base = acct.base_url(&ticker.path)?;
    let url = format!("{base}{}?{}", ticker.path, ticker.query_string());
    let unavailable = || refuse(format!("no reference price for {symbol}: the exchange's ticker did not answer"));
    let resp = state.upstream.get(url).send().await.map_err(|_| unavailable())?;
    let body = resp.bytes().await.map_err(|_| unavailable())?;
    let price = ex.parse_ticker(&body).ok_or_else(unavailable)?;
    if let Ok(mut c) = state.references.cache.lock() {
        c.insert(key, (price, Instant::now()));
    }
    Ok(price)
}

/// Checks a trade request against the key's guards; returns its orders (for the audit trail).
pub async fn check(
    state: &AppState,
    who: &Principal,
    account: &str,
    acct: &Account,
    req: &CanonicalRequest,
) -> ApiResult<Vec<Order>> {
    let Some(g) = who.key.policy.guard.as_ref().filter(|g| g.is_set()) else {
        // No guards: the orders are still read, as far as possible, for the audit trail.
        return Ok(acct.exchange.orders(req).unwrap_or_default());
    };
    let orders = acct.exchange.orders(req).map_err(|e| refuse(format!("this key has order guards: {e}")))?;
    let max_qty = dec("max_qty", &g.max_qty)?;
    let max_notional = dec("max_notional", &g.max_notional)?;
    let per_day = dec("max_notional_per_day", &g.max_notional_per_day)?;
    let band = dec("price_band", &g.price_band_pct)?;
    let mut day_total = Decimal::ZERO;
    for o in &orders {
        if !g.symbols.is_empty() && !g.symbols.iter().any(|s| norm(s) == norm(&o.symbol)) {
            return Err(refuse(format!("{} is not among this key's symbols", o.symbol)));
        }
        let needs_notional = max_notional.is_some() || per_day.is_some();
        let sell_like = o.side != Some(Side::Buy);
        let needs_reference = band.is_some() && o.price.is_some()
            || needs_notional && sell_like && o.qty.is_some() && o.quote_qty.is_none()
            || max_qty.is_some() && o.qty.is_none() && o.quote_qty.is_some();
        let reference = if needs_reference {
            Some(reference(state, account, acct, &req.path, &o.symbol, req).await?)
        } else {
            None
        };
        if let Some(max) = max_qty {
            let qty = match (o.qty, o.quote_qty, reference) {
                (Some(q), _, _) => q,
                (None, Some(quote), Some(r)) if r > Decimal::ZERO => quote / r,
                _ => return Err(refuse("the order states no quantity keyward can check")),
            };
            if qty > max {
                return Err(refuse(format!("quantity {qty} is above this key's limit of {max}")));
            }
        }
        if let (Some(b), Some(p), Some(r)) = (band, o.price, reference)
            && r > Decimal::ZERO
        {
            let off = ((p - r).abs() / r) * Decimal::from(100);
            if off > b {
                return Err(refuse(format!(
                    "price {p} is {off:.2}% from the reference {r}, beyond this key's band of {b}%"
                )));
            }
        }
        if needs_notional {
            let notional = match (o.quote_qty, o.qty, o.price) {
                (Some(quote), _, _) => quote,
                (None, Some(q), Some(p)) if sell_like => q * p.max(reference.unwrap_or(p)),
                (None, Some(q), Some(p)) => q * p,
                _ => return Err(refuse("a market order without a price is refused when a notional cap is set")),
            };
            if let Some(max) = max_notional
                && notional > max
            {
                return Err(refuse(format!("notional {notional} is above this key's limit of {max}")));
            }
            day_total += notional;
        }
    }
    if let Some(cap) = per_day {
        let micros = |d: Decimal| (d * Decimal::from(1_000_000)).trunc().try_into().unwrap_or(i64::MAX);
        let day = state.clock.now_ms().div_euclid(86_400_000);
        if !state.store.add_order_notional(&who.key.id, day, micros(day_total), micros(cap)).await? {
            return Err(refuse(format!("this order would take the key past its daily notional of {cap}")));
        }
    }
    Ok(orders)
}
