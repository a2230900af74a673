//! Orders as guards see them: every field that sizes or prices an order,
//! parsed strictly from single, batch and amend requests. A request whose
//! size fields cannot be parsed strictly is refused for a guarded key.

use crate::{Body, CanonicalRequest};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// One order, as far as guards care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Symbol in the exchange's own notation.
    pub symbol: String,
    /// Side; `None` for an amendment that does not restate it.
    pub side: Option<Side>,
    /// Quantity in the base currency, when the order states one.
    pub qty: Option<Decimal>,
    /// Amount in the quote currency, when the order is sized that way.
    pub quote_qty: Option<Decimal>,
    /// Limit price, if any.
    pub price: Option<Decimal>,
    /// The client's order id, for the audit trail.
    pub client_order_id: Option<String>,
}

/// Why an order could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuardError(pub String);

/// A strict decimal: digits, at most one '.', no sign, no exponent, no spaces.
pub fn decimal(field: &str, s: &str) -> Result<Decimal, GuardError> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1
        && s.bytes().any(|b| b.is_ascii_digit())
        && !s.starts_with('.')
        && !s.ends_with('.');
    if !ok {
        return Err(GuardError(format!("{field} is not a plain decimal number")));
    }
    Decimal::from_str(s).map_err(|_| GuardError(format!("{field} is out of range")))
}

/// A JSON or form value as text (numbers keep their text).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a field of a flat request (query, form or JSON object).
pub fn field(req: &CanonicalRequest, name: &str) -> Option<String> {
    req.param(name)
}

/// Parses an optional decimal field of a JSON object.
pub fn json_decimal(o: &Value, name: &str) -> Result<Option<Decimal>, GuardError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match text(v) {
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => decimal(name, &t).map(Some),
            None => Err(GuardError(format!("{name} is not a number"))),
        },
    }
}

/// Parses an optional decimal parameter of a flat request.
pub fn param_decimal(req: &CanonicalRequest, name: &str) -> Result<Option<Decimal>, GuardError> {
    match req.param(name) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) => decimal(name, &t).map(Some),
    }
}

/// Side from the usual spellings.
pub fn side(s: Option<String>) -> Result<Side, GuardError> {
    match s.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("buy") => Ok(Side::Buy),
        Some("sell") => Ok(Side::Sell),
        _ => Err(GuardError("the order has no side (buy or sell)".into())),
    }
}

/// The JSON body as a list of objects (a single object is a list of one).
pub fn json_orders(req: &CanonicalRequest) -> Result<Vec<&Value>, GuardError> {
    match &req.body {
        Body::Json(Value::Array(a)) => Ok(a.iter().collect()),
        Body::Json(o @ Value::Object(_)) => Ok(vec![o]),
        _ => Err(GuardError("expected a JSON order".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_strict() {
        assert_eq!(decimal("q", "0.5").unwrap().to_string(), "0.5");
        assert_eq!(decimal("q", "1000").unwrap().to_string(), "1000");
        for bad in ["", "-1", "+1", "1e3", "1.2.3", ".5", "5.", " 1", "0x10", "NaN", "1,5"] {
            assert!(decimal("q", bad).is_err(), "{bad:?}");
        }
    }
}
