//! Order guards before admission: the orders of a trade as the exchange
//! module reads them, every limit that needs no price, and (for an
//! amendment that names no symbol) the order it amends, looked up at
//! admission.

use super::Exchanges;
use super::accounts::Account;
use crate::auth::Caller;
use crate::error::{Error, Result};
use keyward_core::decision::DenyReason;
use keyward_core::guard::Limits;
use keyward_core::order::Order;
use keyward_core::scope::Class;
use keyward_exchanges::CanonicalRequest;
use serde::Serialize;

/// Guards still to evaluate with reference prices.
#[derive(Debug)]
pub(super) struct GuardPlan {
    pub(super) limits: Limits,
    pub(super) orders: Vec<Order>,
    /// An amendment that names no symbol: its orders are read once the
    /// order is looked up (at admission, within the key's rate).
    lookup: Option<keyward_exchanges::orders::Lookup>,
}

/// Order guards, as far as they go without a price: the orders as the
/// exchange module reads them (strictly: what it cannot read is refused to
/// a guarded key), then every limit a price is not needed for. Also the
/// symbols the request orders on (a freeze cancels on them).
pub(super) fn guard_plan(
    caller: &Caller,
    account: &Account,
    creq: &CanonicalRequest,
) -> Result<(Option<GuardPlan>, Vec<String>)> {
    let exchange = account.exchange;
    let Some(guard) = caller.key.policy.order_guard() else {
        // No guards: the orders are still read, as far as possible, for the audit trail.
        let orders = exchange.orders(creq).unwrap_or_default();
        caller.record.detail(order_detail(&orders));
        return Ok((None, symbols(&orders)));
    };
    let refuse = |msg: String| Error::new(DenyReason::OrderGuard, msg);
    if let Some(name) = keyward_exchanges::orders::near_duplicate(creq) {
        return Err(refuse(format!(
            "parameter {name:?} differs from an order field only by case, spaces or control characters; a key with order guards is refused it"
        )));
    }
    let orders = match exchange.orders(creq) {
        Ok(orders) => orders,
        Err(e) => {
            let Some(lookup) = exchange.order_lookup(creq) else {
                return Err(refuse(format!("this key has order guards: {e}")));
            };
            let limits =
                guard.limits().map_err(|e| Error::internal(&format!("a stored order guard is invalid: {e}")))?;
            return Ok((Some(GuardPlan { limits, orders: Vec::new(), lookup: Some(lookup) }), Vec::new()));
        }
    };
    if orders.is_empty() {
        // A trade endpoint with nothing to hold to the guards (no symbol read) is refused.
        return Err(refuse(format!("this key has order guards, and keyward reads no symbol in {}", creq.path)));
    }
    caller.record.detail(order_detail(&orders));
    let limits = guard.limits().map_err(|e| Error::internal(&format!("a stored order guard is invalid: {e}")))?;
    limits.precheck(&orders).map_err(|r| refuse(r.0))?;
    let traded = symbols(&orders);
    Ok((Some(GuardPlan { limits, orders, lookup: None }), traded))
}

fn symbols(orders: &[Order]) -> Vec<String> {
    let mut out: Vec<String> = orders.iter().map(|o| o.symbol.clone()).collect();
    out.dedup();
    out
}

impl Exchanges {
    /// The amendment's orders, read from the order it amends (looked up
    /// with a signed read call), then held to every limit a price is not
    /// needed for.
    pub(super) async fn looked_up(
        &self,
        caller: &Caller,
        name: &str,
        account: &Account,
        creq: &CanonicalRequest,
        plan: &GuardPlan,
    ) -> Result<Vec<Order>> {
        let refuse = |msg: String| Error::new(DenyReason::OrderGuard, msg);
        let Some(lookup) = &plan.lookup else { return Ok(plan.orders.clone()) };
        let reply = self.own_call(&caller.unsealed, name, Class::Read, &lookup.request).await.map_err(|e| {
            refuse(format!("keyward could not look up the order this amends ({}): {}", lookup.request.path, e.message))
        })?;
        let verdict = account.exchange.credential_check().answer.accepted(reply.status, &reply.body);
        let answer = verdict
            .and_then(|()| serde_json::from_slice::<serde_json::Value>(&reply.body).map_err(|_| "not JSON".to_string()))
            .map_err(|e| refuse(format!("keyward could not look up the order this amends: {e}")))?;
        let orders = (lookup.read)(creq, &answer).map_err(|e| refuse(format!("this key has order guards: {e}")))?;
        caller.record.detail(order_detail(&orders));
        plan.limits.precheck(&orders).map_err(|r| refuse(r.0))?;
        Ok(orders)
    }
}

/// The order fields of a trade, for the audit entry (no secret in them).
pub(super) fn order_detail(orders: &[Order]) -> String {
    if orders.is_empty() {
        return String::new();
    }
    // A field the order does not have is left out, not written as null:
    // every trade's entry carries this, and the log keeps it for good.
    #[derive(Serialize)]
    struct Fields<'a> {
        symbol: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        side: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        qty: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        quote_qty: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        orders: Vec<Fields<'a>>,
    }
    let orders = orders
        .iter()
        .map(|o| Fields {
            symbol: &o.symbol,
            side: o.side.map(|s| s.as_str()),
            qty: o.qty.map(|q| q.to_string()),
            quote_qty: o.quote_qty.map(|q| q.to_string()),
            price: o.price.map(|p| p.to_string()),
            client_order_id: o.client_order_id.as_deref(),
        })
        .collect();
    serde_json::to_string(&Detail { orders }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::order_detail;
    use keyward_core::order::{Order, Side, decimal};

    #[test]
    fn an_order_detail_names_what_the_order_has_and_nothing_else() {
        let market = Order {
            side: Some(Side::Sell),
            quote_qty: Some(decimal("quoteOrderQty", "25.50").unwrap()),
            ..Order::symbol_only("ETHUSDT").sized()
        };
        let limit = Order {
            side: Some(Side::Buy),
            qty: Some(decimal("quantity", "0.010").unwrap()),
            price: Some(decimal("price", "50000").unwrap()),
            client_order_id: Some("bot-7".into()),
            ..Order::symbol_only("BTCUSDT").sized()
        };
        assert_eq!(
            order_detail(&[market, limit, Order::symbol_only("SOLUSDT")]),
            r#"{"orders":[{"symbol":"ETHUSDT","side":"sell","quote_qty":"25.50"},{"symbol":"BTCUSDT","side":"buy","qty":"0.010","price":"50000","client_order_id":"bot-7"},{"symbol":"SOLUSDT"}]}"#
        );
        assert_eq!(order_detail(&[]), "");
    }
}
