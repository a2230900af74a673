//! Orders as guards see them: every field that sizes or prices an order,
//! parsed strictly from single, batch and amend requests. A request whose
//! size fields cannot be parsed strictly is refused for a guarded key.

use crate::{Body, CanonicalRequest};
pub use keyward_core::order::{GuardError, Order, Side, decimal};
use rust_decimal::Decimal;
use serde_json::Value;

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
