//! Orders as guards see them: every field that sizes or prices an order,
//! parsed strictly from single, batch and amend requests. A request whose
//! size fields cannot be parsed strictly is refused for a guarded key.

use crate::{Body, CanonicalRequest};
pub use keyward_core::order::{GuardError, Order, Side, decimal};
use rust_decimal::Decimal;
use serde_json::Value;

/// An order riding on `parent` or pricing it again (a take-profit, a
/// stop-loss, a trigger or a close order): the parent's symbol and size
/// unless it states its own size, its own price (`None`: at market), the
/// opposite side when it closes what the parent opens. Guards hold it like
/// any order: every price in a request to the band, every size to the limits.
pub fn priced_like(parent: &Order, price: Option<Decimal>, qty: Option<Decimal>, closes: bool) -> Order {
    let side = match (closes, parent.side) {
        (true, Some(Side::Buy)) => Some(Side::Sell),
        (true, Some(Side::Sell)) => Some(Side::Buy),
        (_, s) => s,
    };
    let (qty, quote_qty) = match qty {
        Some(q) => (Some(q), None),
        None => (parent.qty, parent.quote_qty),
    };
    Order { side, qty, quote_qty, price, client_order_id: None, ..parent.clone() }
}

/// What an exchange module's order readers give: the orders, or why they cannot be read strictly.
pub type OrdersRead = Result<Vec<Order>, GuardError>;

/// An amendment that names no symbol (Deribit's `edit`, Coinbase's
/// `orders/edit`, Gate's futures amendment): the signed read call that
/// looks the order up, and how its answer completes the amendment's orders
/// (its symbol, side and units are the order's). keyward makes the call
/// only for a key with order guards, after the key's rate and the
/// account's budget admitted the request.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The read call (the order by its id).
    pub request: CanonicalRequest,
    /// The amendment's orders, from the request and the order looked up.
    pub read: fn(&CanonicalRequest, &Value) -> OrdersRead,
}

/// A required text field of a JSON order (non-empty; numbers keep their text).
pub fn required(o: &Value, name: &str) -> Result<String, GuardError> {
    o.get(name).and_then(text).filter(|s| !s.is_empty()).ok_or_else(|| GuardError(format!("the order has no {name}")))
}

/// An order and its trigger price (an order placed at that price when it
/// triggers), which guards hold to the band like any price.
pub fn with_trigger(parent: Order, trigger: Option<Decimal>) -> Vec<Order> {
    let stop = trigger.map(|p| priced_like(&parent, Some(p), None, false));
    std::iter::once(parent).chain(stop).collect()
}

/// The JSON objects of a request: one object, or (`list`) a top-level list of them.
pub fn objects(req: &CanonicalRequest, list: bool) -> Result<Vec<&Value>, GuardError> {
    match (&req.body, list) {
        (Body::Json(Value::Array(a)), true) => Ok(a.iter().collect()),
        (Body::Json(o @ Value::Object(_)), false) => Ok(vec![o]),
        _ => Err(GuardError(format!("expected {}", if list { "a JSON list of orders" } else { "one JSON order" }))),
    }
}

/// The list of orders at `name` in a JSON object (a batch's `orderList`).
pub fn list_of<'a>(o: &'a Value, name: &str) -> Result<&'a Vec<Value>, GuardError> {
    o.get(name)
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| GuardError(format!("{name} is not a list of orders")))
}

/// The symbol a request names in `field`, required (non-empty text).
pub fn required_symbol(req: &CanonicalRequest, field: &str) -> Result<String, GuardError> {
    req.param(field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GuardError(format!("the request names no symbol ({field}) keyward can hold to the key's list")))
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

/// Names of the fields the exchange modules read to size, price, place or
/// classify an order (every exchange together).
const ORDER_FIELDS: &[&str] = &[
    "symbol",
    "side",
    "type",
    "quantity",
    "quoteOrderQty",
    "price",
    "stopPrice",
    "batchOrders",
    "sideEffectType",
    "newClientOrderId",
    "category",
    "orderType",
    "qty",
    "marketUnit",
    "isLeverage",
    "triggerPrice",
    "takeProfit",
    "stopLoss",
    "tpLimitPrice",
    "slLimitPrice",
    "orderLinkId",
    "request",
    "instId",
    "tdMode",
    "ordType",
    "sz",
    "px",
    "newSz",
    "newPx",
    "tgtCcy",
    "clOrdId",
    "attachAlgoOrds",
    "tpOrdPx",
    "slOrdPx",
    "tpTriggerPx",
    "slTriggerPx",
    "pair",
    "ordertype",
    "volume",
    "price2",
    "leverage",
    "oflags",
    "close[ordertype]",
    "close[price]",
    "close[price2]",
    "orders",
    "size",
    "funds",
    "autoBorrow",
    "currency_pair",
    "amount",
    "auto_borrow",
    "account",
    "account-id",
    "stop-price",
    "client-order-id",
    "source",
    "accountId",
    "orderSide",
    "orderPrice",
    "orderSize",
    "orderValue",
    "clientOrderId",
    "trailingRate",
    "clientOid",
    "orderList",
    "newSize",
    "newPrice",
    "stop",
    "sizeUnit",
    "tpTriggerPrice",
    "slTriggerPrice",
    "batchMode",
    "tradeSide",
    "productType",
    "presetTakeProfitPrice",
    "executeTakeProfitPrice",
    "presetStopLossPrice",
    "executeStopLossPrice",
    "presetStopSurplusPrice",
    "presetStopSurplusExecutePrice",
    "presetStopLossExecutePrice",
    "newPresetStopSurplusPrice",
    "newPresetStopLossPrice",
    "contract",
    "tif",
    "close",
    "auto_size",
    "text",
    "instrument_name",
    "contracts",
    "trigger_price",
    "label",
    "advanced",
    "otoco_config",
    "linked_order_type",
    "product_id",
    "order_configuration",
    "attached_order_configuration",
    "base_size",
    "quote_size",
    "limit_price",
    "stop_price",
    "stop_trigger_price",
    "min_price",
    "max_price",
    "client_order_id",
];

/// A name as an exchange's lenient parser might read it: lower case,
/// without whitespace or control characters.
fn lenient(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace() && !c.is_control()).flat_map(char::to_lowercase).collect()
}

/// The first parameter (query, form or JSON key, at any depth) that differs
/// from an order field only by case, spaces or control characters, or that
/// carries spaces or control characters at all (`SZ` beside `sz`, `"qty "`,
/// `"sz\u{0}"`): what keyward reads and what the exchange reads could then
/// be two different values. Refused to a guarded key.
pub fn near_duplicate(req: &CanonicalRequest) -> Option<String> {
    let mut names: Vec<&str> = req.query.iter().map(|(k, _)| k.as_str()).collect();
    match &req.body {
        Body::Form(p) => names.extend(p.iter().map(|(k, _)| k.as_str())),
        Body::Json(v) => json_names(v, &mut names),
        Body::Empty => {}
    }
    names
        .into_iter()
        .find(|n| {
            n.chars().any(|c| c.is_whitespace() || c.is_control())
                || ORDER_FIELDS.iter().any(|f| f != n && lenient(f) == lenient(n) && !ORDER_FIELDS.contains(n))
        })
        .map(str::to_string)
}

fn json_names<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k);
                json_names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| json_names(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> CanonicalRequest {
        CanonicalRequest::parse("POST", "/x", None, Some("application/json"), body.as_bytes()).unwrap()
    }

    #[test]
    fn near_duplicates_of_order_fields_are_found() {
        assert_eq!(near_duplicate(&json(r#"{"sz":"1","SZ":"100"}"#)), Some("SZ".into()));
        assert_eq!(near_duplicate(&json(r#"{"qty ":"100"}"#)), Some("qty ".into()));
        assert_eq!(near_duplicate(&json(r#"{"sz\u0000":"100"}"#)), Some("sz\u{0}".into()));
        assert_eq!(near_duplicate(&json(r#"{"request":[{"instId ":"X"}]}"#)), Some("instId ".into()));
        let form = |b: &str| {
            CanonicalRequest::parse("POST", "/x", None, Some("application/x-www-form-urlencoded"), b.as_bytes())
                .unwrap()
        };
        assert_eq!(near_duplicate(&form("quantity=1&Quantity=5")), Some("Quantity".into()));
        assert_eq!(near_duplicate(&form("symbol=A&quantity=1&price=2&timeInForce=GTC")), None);
        assert_eq!(
            near_duplicate(&json(r#"{"orderType":"Limit","ordertype":"x","qty":"1"}"#)),
            None,
            "both are fields"
        );
    }
}
