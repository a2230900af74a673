//! Calls keyward makes on an account by itself in an incident: cancelling
//! every open order (`keyward account freeze --cancel-orders`) and keeping
//! the exchange's cancel-on-disconnect timer armed (the dead-man switch),
//! so that if keyward stops or is sealed, the exchange cancels open orders
//! by itself.
//!
//! Some exchanges cancel everything in one call; others need a symbol (or
//! the orders' ids), so the plan lists the open orders first and builds the
//! cancellations from the listing.

use crate::CanonicalRequest;
use crate::canonical::Body;
use serde_json::Value;
use std::sync::Arc;

/// Builds calls from a listing's answer body.
pub type Then = Arc<dyn Fn(&[u8]) -> Result<Vec<CanonicalRequest>, String> + Send + Sync>;

/// Builds the call for one symbol.
pub type ForSymbol = Arc<dyn Fn(&str) -> CanonicalRequest + Send + Sync>;

/// One step of a plan.
#[derive(Clone)]
pub enum Sweep {
    /// One call.
    Call(CanonicalRequest),
    /// A listing (open orders), then the calls it gives: one per symbol, or
    /// one per batch of order ids. An empty listing gives no calls. The
    /// listing is asked again after its calls (a page holds a bounded
    /// number of orders) until it lists nothing.
    Listed {
        /// The listing call.
        list: CanonicalRequest,
        /// Builds the calls from the listing's answer body.
        then: Then,
    },
    /// One call per symbol with open orders: the symbols the listing names,
    /// and those of the orders keyward itself sent on paths starting with
    /// `market` (so a listing that fails or lags still leaves none out).
    PerSymbol {
        /// The listing of open orders (every symbol).
        list: CanonicalRequest,
        /// Where the listing's orders are (object keys from the root).
        path: &'static [&'static str],
        /// The symbol field of each order.
        field: &'static str,
        /// The path prefix of the orders this covers (`/fapi/`).
        market: &'static str,
        /// The call for one symbol.
        call: ForSymbol,
    },
}

impl std::fmt::Debug for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sweep::Call(r) => write!(f, "Call({} {})", r.method.as_str(), r.path),
            Sweep::Listed { list, .. } => write!(f, "Listed({} {})", list.method.as_str(), list.path),
            Sweep::PerSymbol { list, market, .. } => {
                write!(f, "PerSymbol({} {}, {market})", list.method.as_str(), list.path)
            }
        }
    }
}

impl Sweep {
    /// A listing, then the calls `then` builds from it.
    pub fn listed(
        list: CanonicalRequest,
        then: impl Fn(&[u8]) -> Result<Vec<CanonicalRequest>, String> + Send + Sync + 'static,
    ) -> Self {
        Sweep::Listed { list, then: Arc::new(then) }
    }

    /// One call per symbol with open orders in `market` (see [`Sweep::PerSymbol`]).
    pub fn per_symbol(
        list: CanonicalRequest,
        path: &'static [&'static str],
        field: &'static str,
        market: &'static str,
        call: impl Fn(&str) -> CanonicalRequest + Send + Sync + 'static,
    ) -> Self {
        Sweep::PerSymbol { list, path, field, market, call: Arc::new(call) }
    }
}

/// An exchange's cancel-on-disconnect timer.
#[derive(Debug, Clone, Copy)]
pub struct DeadMan {
    /// The endpoint's name, for people (`POST /api/v5/trade/cancel-all-after`).
    pub name: &'static str,
    /// Shortest timeout the exchange takes, in seconds.
    pub min_s: u32,
    /// Longest timeout the exchange takes, in seconds.
    pub max_s: u32,
    /// The calls that (re)arm the timer for `timeout_s` seconds; `0` disarms it.
    pub arm: fn(u32) -> Vec<Sweep>,
}

/// A request from fixed parts; the parts are keyward's own, so they are canonical.
pub fn request(method: &str, path: &str, query: &[(&str, &str)], json: Option<Value>) -> CanonicalRequest {
    CanonicalRequest {
        method: crate::Method::parse(method).unwrap_or(crate::Method::Get),
        path: path.to_string(),
        query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: json.map(Body::Json).unwrap_or(Body::Empty),
    }
}

/// A form-bodied request from fixed parts.
pub fn form(method: &str, path: &str, pairs: &[(&str, &str)]) -> CanonicalRequest {
    CanonicalRequest {
        method: crate::Method::parse(method).unwrap_or(crate::Method::Post),
        path: path.to_string(),
        query: Vec::new(),
        body: if pairs.is_empty() {
            Body::Empty
        } else {
            Body::Form(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        },
    }
}

/// The distinct values of `field` in the objects of the list found at
/// `path` (a sequence of object keys from the root; empty: the root is the
/// list), in first-seen order.
pub fn distinct(body: &[u8], path: &[&str], field: &str) -> Result<Vec<String>, String> {
    let list = list_at(body, path)?;
    let mut out: Vec<String> = Vec::new();
    for o in list {
        let v = o.get(field).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())));
        match v {
            Some(s) if !s.is_empty() => {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            _ => return Err(format!("an open order without {field}")),
        }
    }
    Ok(out)
}

/// The list of objects found at `path` in a JSON answer.
pub fn list_at(body: &[u8], path: &[&str]) -> Result<Vec<Value>, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|_| "the open-order listing is not JSON".to_string())?;
    for key in path {
        v = v.get(*key).cloned().ok_or_else(|| format!("the open-order listing has no {key}"))?;
    }
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        _ => Err("the open-order listing is not a list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_symbols_from_a_listing() {
        let body = br#"{"data":[{"instId":"BTC-USDT","ordId":"1"},{"instId":"ETH-USDT"},{"instId":"BTC-USDT"}]}"#;
        assert_eq!(distinct(body, &["data"], "instId").unwrap(), ["BTC-USDT", "ETH-USDT"]);
        assert!(distinct(br#"{"data":[{"x":1}]}"#, &["data"], "instId").is_err());
        assert!(distinct(b"[]", &[], "symbol").unwrap().is_empty());
        assert!(distinct(b"nope", &[], "symbol").is_err());
    }
}
