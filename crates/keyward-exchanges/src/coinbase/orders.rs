//! Coinbase Advanced Trade orders as guards read them: `product_id`,
//! `side` (`BUY`/`SELL`) and one `order_configuration` variant, whose size
//! is `base_size` (base) or `quote_size` (quote), never both, and whose
//! prices are the limit, stop and trigger prices it names. Sources: the
//! Create Order page of Coinbase's Advanced Trade API reference and its
//! Python SDK (coinbase-advanced-py, `rest/orders.py`).

use crate::orders::{GuardError, Order, OrdersRead, json_decimal, priced_like, required, side, text};
use crate::{Body, CanonicalRequest};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A variant's price fields: the order's limit price, and the prices at
/// which it is placed when it triggers (a stop, a bracket's stop-loss).
struct Variant {
    name: &'static str,
    /// Market variants take no limit price.
    limit: bool,
    /// Trigger prices, each an order of the same size and side.
    triggers: &'static [&'static str],
}

const VARIANTS: &[Variant] = &[
    Variant { name: "market_market_ioc", limit: false, triggers: &[] },
    Variant { name: "market_market_fok", limit: false, triggers: &[] },
    Variant { name: "sor_limit_ioc", limit: true, triggers: &[] },
    Variant { name: "limit_limit_gtc", limit: true, triggers: &[] },
    Variant { name: "limit_limit_gtd", limit: true, triggers: &[] },
    Variant { name: "limit_limit_fok", limit: true, triggers: &[] },
    Variant { name: "twap_limit_gtd", limit: true, triggers: &[] },
    Variant { name: "stop_limit_stop_limit_gtc", limit: true, triggers: &["stop_price"] },
    Variant { name: "stop_limit_stop_limit_gtd", limit: true, triggers: &["stop_price"] },
    Variant { name: "trigger_bracket_gtc", limit: true, triggers: &["stop_trigger_price"] },
    Variant { name: "trigger_bracket_gtd", limit: true, triggers: &["stop_trigger_price"] },
];

/// Fields of a variant that neither size nor price an order (times, flags,
/// how a TWAP or a scaled order is cut up, a stop's direction).
const HARMLESS: &[&str] = &[
    "end_time",
    "start_time",
    "post_only",
    "rfq_disabled",
    "stop_direction",
    "bucket_size",
    "bucket_duration",
    "number_buckets",
    "num_orders",
    "price_distribution",
    "size_distribution",
    "size_diff",
    "size_ratio",
    "reduce_only",
];

/// Top-level fields of an order that hold no order of their own.
const TOP: &[&str] = &[
    "client_order_id",
    "product_id",
    "side",
    "order_configuration",
    "attached_order_configuration",
    "leverage",
    "margin_type",
    "retail_portfolio_id",
    "preview_id",
    "sor_preference",
    "prediction_metadata",
    "cost_basis_method",
    "self_trade_prevention_id",
];

fn object(req: &CanonicalRequest) -> Result<&Map<String, Value>, GuardError> {
    match &req.body {
        Body::Json(Value::Object(o)) => Ok(o),
        _ => Err(GuardError("expected one JSON order".into())),
    }
}

/// The one variant of an `order_configuration` object, and its fields.
fn variant<'a>(config: Option<&'a Value>, what: &str) -> Result<(&'a str, &'a Value), GuardError> {
    let map = config.and_then(Value::as_object).ok_or_else(|| GuardError(format!("{what} is not an object")))?;
    match map.iter().collect::<Vec<_>>().as_slice() {
        [(name, fields)] => Ok((name.as_str(), fields)),
        _ => Err(GuardError(format!("{what} names {} variants, not one", map.len()))),
    }
}

/// `base_size` or `quote_size`, exactly one.
fn size(fields: &Value) -> Result<(Option<Decimal>, Option<Decimal>), GuardError> {
    match (json_decimal(fields, "base_size")?, json_decimal(fields, "quote_size")?) {
        (Some(b), None) => Ok((Some(b), None)),
        (None, Some(q)) => Ok((None, Some(q))),
        _ => Err(GuardError("an order is sized by base_size or quote_size: one of them".into())),
    }
}

/// The orders one `order_configuration` places for `parent` (symbol, side
/// and client id set): the order itself, the orders its triggers place,
/// and a scaled order's ladder (each rung an order, its bounds prices).
fn configured(parent: &Order, name: &str, fields: &Value) -> OrdersRead {
    let map = fields.as_object().ok_or_else(|| GuardError(format!("{name} is not an object")))?;
    if name == "scaled_limit_gtc" {
        return scaled(parent, map);
    }
    let v = VARIANTS
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| GuardError(format!("order configuration {name:?} is not read by keyward's guards")))?;
    let known = |k: &str| {
        ["base_size", "quote_size", "limit_price"].contains(&k) || v.triggers.contains(&k) || HARMLESS.contains(&k)
    };
    if let Some(k) = map.keys().find(|k| !known(k)) {
        return Err(GuardError(format!("{name}.{k} is not a field keyward's guards read")));
    }
    let (qty, quote_qty) = size(fields)?;
    let price = json_decimal(fields, "limit_price")?;
    if v.limit != price.is_some() {
        return Err(GuardError(format!("{name} {} limit_price", if v.limit { "needs a" } else { "takes no" })));
    }
    let order = Order { qty, quote_qty, price, ..parent.clone() };
    let mut out = Vec::new();
    for t in v.triggers {
        let p = json_decimal(fields, t)?.ok_or_else(|| GuardError(format!("{name} needs {t}")))?;
        out.push(priced_like(&order, Some(p), None, false));
    }
    out.insert(0, order);
    Ok(out)
}

/// `scaled_limit_gtc`: `orders`, each a limit order of its own size, and
/// the ladder's `min_price` and `max_price`.
fn scaled(parent: &Order, map: &Map<String, Value>) -> OrdersRead {
    let fields = Value::Object(map.clone());
    let rungs = map.get("orders").and_then(Value::as_array).filter(|l| !l.is_empty());
    let rungs = rungs.ok_or_else(|| GuardError("scaled_limit_gtc has no orders".into()))?;
    let mut out = Vec::new();
    for rung in rungs {
        out.extend(configured(parent, "limit_limit_gtc", rung)?);
    }
    let (qty, quote_qty) = size(&fields)?;
    for bound in ["min_price", "max_price"] {
        let p = json_decimal(&fields, bound)?.ok_or_else(|| GuardError(format!("scaled_limit_gtc needs {bound}")))?;
        out.push(Order { qty, quote_qty, price: Some(p), client_order_id: None, ..parent.clone() });
    }
    Ok(out)
}

/// `POST /api/v3/brokerage/orders` and `orders/preview`: one order, the
/// orders its configuration triggers, and an attached take-profit and
/// stop-loss (`trigger_bracket_gtc`, the parent's size on the other side).
pub(super) fn create(req: &CanonicalRequest) -> OrdersRead {
    let o = object(req)?;
    if let Some(k) = o.keys().find(|k| !TOP.contains(&k.as_str())) {
        return Err(GuardError(format!("{k} is not a field keyward's guards read")));
    }
    let body = Value::Object(o.clone());
    let parent = Order {
        symbol: required(&body, "product_id")?,
        side: Some(side(o.get("side").and_then(text))?),
        qty: None,
        quote_qty: None,
        price: None,
        client_order_id: o.get("client_order_id").and_then(text),
        symbol_only: false,
    };
    let (name, fields) = variant(o.get("order_configuration"), "order_configuration")?;
    let mut out = configured(&parent, name, fields)?;
    if o.contains_key("attached_order_configuration") {
        let (name, fields) = variant(o.get("attached_order_configuration"), "attached_order_configuration")?;
        if name != "trigger_bracket_gtc" || fields.get("base_size").is_some() || fields.get("quote_size").is_some() {
            return Err(GuardError("an attached order is a trigger_bracket_gtc of the parent's size".into()));
        }
        let placed = out[0].clone();
        for p in ["limit_price", "stop_trigger_price"] {
            let price = json_decimal(fields, p)?.ok_or_else(|| GuardError(format!("the attached order needs {p}")))?;
            out.push(priced_like(&placed, Some(price), None, true));
        }
    }
    Ok(out)
}

/// `POST /api/v3/brokerage/orders/close_position`: it reduces a position
/// of `product_id`, which is all guards hold.
pub(super) fn close_position(req: &CanonicalRequest) -> OrdersRead {
    Ok(vec![Order::symbol_only(crate::orders::required_symbol(req, "product_id")?)])
}

/// `POST /api/v3/brokerage/orders/edit` of the order looked up (`{"order":
/// {"product_id","side","order_configuration",…}}`): its new `size` in the
/// base currency, `price`, `stop_price` and attached bracket. An order sized
/// in the quote currency is refused: Coinbase does not say what an edit's
/// `size` counts then.
pub(super) fn edited(req: &CanonicalRequest, answer: &Value) -> OrdersRead {
    let order = answer.get("order").ok_or_else(|| GuardError("the order lookup has no order".into()))?;
    let (_, fields) = variant(order.get("order_configuration"), "the order's configuration")?;
    if fields.get("quote_size").is_some() {
        return Err(GuardError("an edit of an order sized in the quote currency is not read".into()));
    }
    let o = object(req)?;
    const EDIT: &[&str] = &[
        "order_id",
        "size",
        "price",
        "stop_price",
        "attached_order_configuration",
        "cancel_attached_order",
        "average_entry_price",
    ];
    if let Some(k) = o.keys().find(|k| !EDIT.contains(&k.as_str())) {
        return Err(GuardError(format!("{k} is not a field keyward's guards read")));
    }
    let body = Value::Object(o.clone());
    let parent = Order {
        symbol: required(order, "product_id")?,
        side: Some(side(order.get("side").and_then(text))?),
        qty: json_decimal(&body, "size")?,
        quote_qty: None,
        price: json_decimal(&body, "price")?,
        client_order_id: None,
        symbol_only: false,
    };
    let mut out = Vec::new();
    if let Some(p) = json_decimal(&body, "stop_price")? {
        out.push(priced_like(&parent, Some(p), None, false));
    }
    if o.contains_key("attached_order_configuration") {
        let (_, fields) = variant(o.get("attached_order_configuration"), "attached_order_configuration")?;
        let map = fields.as_object().ok_or_else(|| GuardError("the attached order is not an object".into()))?;
        for (k, _) in map {
            let p = json_decimal(fields, k)?;
            if !["limit_price", "stop_price", "stop_trigger_price"].contains(&k.as_str()) {
                return Err(GuardError(format!("the attached order's {k} is not read")));
            }
            out.push(priced_like(&parent, p, None, true));
        }
    }
    out.insert(0, parent);
    Ok(out)
}
