//! The forensic report of a key reported compromised, built from its audit
//! entries in a window: every action with time, address, decision and
//! code; the addresses it came from (first and last seen); its denials; and
//! the orders it placed with the exchange's order ids. Pure over entries,
//! so it reads the same from the database or an export.

use keyward_core::audit::AuditEntry;
use keyward_core::clock::rfc3339;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One action of the key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Action {
    /// Audit sequence number.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Client address.
    pub ip: String,
    /// What was asked (`proxy.post`, `secrets.get`, …).
    pub action: String,
    /// On what (secret path, account and endpoint, key id).
    pub target: String,
    /// Permission class, if any.
    pub class: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Reason code, if any.
    pub code: String,
}

/// An address the key was used from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Address {
    /// The address.
    pub ip: String,
    /// First request from it in the window.
    pub first_seen: String,
    /// Last request from it in the window.
    pub last_seen: String,
    /// Requests from it.
    pub requests: u64,
    /// Of which refused.
    pub denied: u64,
}

/// An order the key sent to an exchange.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct PlacedOrder {
    /// When it was decided (RFC 3339).
    pub time: String,
    /// Client address.
    pub ip: String,
    /// Account and endpoint.
    pub target: String,
    /// The order as keyward read it (symbol, side, size, price).
    #[schema(value_type = Object)]
    pub order: Value,
    /// The exchange's answer status, or why it failed.
    pub outcome: String,
    /// The exchange's order ids from its answer.
    pub exchange_order_ids: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Report {
    /// The key.
    pub key_id: String,
    /// Start of the window (RFC 3339).
    pub from: String,
    /// End of the window (RFC 3339).
    pub until: String,
    /// Requests allowed in the window.
    pub allowed: u64,
    /// Requests refused in the window.
    pub denied: u64,
    /// Every action, oldest first.
    pub actions: Vec<Action>,
    /// Addresses, by first use.
    pub addresses: Vec<Address>,
    /// The refused actions.
    pub denials: Vec<Action>,
    /// Orders sent to an exchange.
    pub orders: Vec<PlacedOrder>,
    /// True when the window held more entries than the report reads.
    pub truncated: bool,
}

/// The answer of `POST /v1/keys/{id}/compromised` (for the API description).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CompromisedAnswer {
    /// The key as it is now (`compromised`).
    #[schema(value_type = Object)]
    pub key: Value,
    /// The report.
    pub report: Report,
}

fn action(e: &AuditEntry) -> Action {
    Action {
        seq: e.seq,
        time: rfc3339(e.time_ms),
        ip: e.ip.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        class: e.class.clone(),
        decision: e.decision.clone(),
        code: e.code.clone(),
    }
}

/// Builds the report of `key_id` from `entries` (oldest first) between
/// `from_ms` and `until_ms`.
pub(crate) fn report(key_id: &str, entries: &[AuditEntry], from_ms: i64, until_ms: i64, truncated: bool) -> Report {
    let mine: Vec<&AuditEntry> =
        entries.iter().filter(|e| e.key_id == key_id && e.time_ms >= from_ms && e.time_ms <= until_ms).collect();
    let outcomes: HashMap<&str, &AuditEntry> =
        mine.iter().filter(|e| e.decision == "outcome").map(|e| (e.request_id.as_str(), *e)).collect();
    let mut addresses: BTreeMap<&str, (i64, i64, u64, u64, u64)> = BTreeMap::new();
    let mut out = Report {
        key_id: key_id.to_string(),
        from: rfc3339(from_ms),
        until: rfc3339(until_ms),
        allowed: 0,
        denied: 0,
        actions: Vec::new(),
        addresses: Vec::new(),
        denials: Vec::new(),
        orders: Vec::new(),
        truncated,
    };
    for e in mine.iter().filter(|e| e.decision != "outcome") {
        let denied = e.decision == "deny";
        if denied {
            out.denied += 1;
        } else {
            out.allowed += 1;
        }
        let a = addresses.entry(e.ip.as_str()).or_insert((e.time_ms, e.time_ms, e.seq, 0, 0));
        a.1 = e.time_ms;
        a.3 += 1;
        a.4 += u64::from(denied);
        out.actions.push(action(e));
        if denied {
            out.denials.push(action(e));
        }
        let order: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
        let is_order = !denied && e.class == "trade" && !order.is_null();
        if let Some(o) = outcomes.get(e.request_id.as_str()).filter(|_| is_order) {
            let detail: Value = serde_json::from_str(&o.detail).unwrap_or(Value::Null);
            let ids = detail["exchange_order_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            out.orders.push(PlacedOrder {
                time: rfc3339(e.time_ms),
                ip: e.ip.clone(),
                target: e.target.clone(),
                order,
                outcome: o.code.clone(),
                exchange_order_ids: ids,
            });
        }
    }
    let mut by_first: Vec<_> = addresses.into_iter().collect();
    by_first.sort_by_key(|(_, (_, _, seq, _, _))| *seq);
    out.addresses = by_first
        .into_iter()
        .map(|(ip, (first, last, _, requests, denied))| Address {
            ip: ip.to_string(),
            first_seen: rfc3339(first),
            last_seen: rfc3339(last),
            requests,
            denied,
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, t: i64, ip: &str, decision: &str, class: &str, code: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            seq,
            time_ms: t,
            request_id: format!("r{}", if decision == "outcome" { seq - 1 } else { seq }),
            key_id: "key_x".into(),
            ip: ip.into(),
            action: "proxy.post".into(),
            target: "bin POST /api/v3/order".into(),
            class: class.into(),
            decision: decision.into(),
            code: code.into(),
            detail: detail.into(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    #[test]
    fn actions_addresses_denials_and_orders_with_their_exchange_ids() {
        let order = r#"{"orders":[{"symbol":"BTCUSDT","side":"buy","qty":"0.01"}]}"#;
        let mut other = entry(9, 150, "10.0.0.9", "allow", "read", "", "");
        other.key_id = "key_other".into();
        let entries = vec![
            entry(1, 100, "10.0.0.1", "allow", "trade", "", order),
            entry(2, 110, "10.0.0.1", "outcome", "trade", "200", r#"{"exchange_order_ids":["42"]}"#),
            entry(3, 200, "203.0.113.5", "deny", "withdraw", "scope_missing", ""),
            entry(4, 300, "10.0.0.1", "allow", "read", "", ""),
            other,
            entry(5, 5_000, "10.0.0.1", "allow", "read", "", ""),
        ];
        let r = report("key_x", &entries, 100, 1_000, false);
        assert_eq!(
            (r.allowed, r.denied, r.actions.len()),
            (2, 1, 3),
            "outcomes, other keys and later entries left out"
        );
        assert_eq!(r.denials[0].code, "scope_missing");
        assert_eq!(r.addresses.iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(), ["10.0.0.1", "203.0.113.5"]);
        assert_eq!((r.addresses[0].requests, r.addresses[1].denied), (2, 1));
        assert_eq!(r.addresses[0].last_seen, rfc3339(300));
        assert_eq!(r.orders.len(), 1);
        assert_eq!((r.orders[0].outcome.as_str(), r.orders[0].exchange_order_ids.clone()), ("200", vec!["42".into()]));
        assert_eq!(r.orders[0].order["orders"][0]["symbol"], "BTCUSDT");
    }
}
