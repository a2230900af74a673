//! Order guards: the limits a key puts on the orders it may place, and their
//! evaluation on parsed orders and reference prices. Pure: the server
//! fetches reference prices and keeps the daily totals; this module only
//! decides.
//!
//! Limits: symbols, largest quantity and largest notional per order, largest
//! notional per UTC day (the server reserves it), and a price band around a
//! reference price. A sell's notional uses the larger of its price and the
//! reference; a market order without a price is refused when a notional cap
//! is set, unless it is sized in the quote currency (that amount is its
//! notional); a limit that needs a reference price keyward does not have
//! refuses the order.

use crate::order::{Order, Side, decimal};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Guards on a key's orders, as stored in its policy (under the row MAC).
/// Numbers are kept as the text the operator gave, so the MAC'd policy
/// never changes by re-encoding.
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

/// A guard setting that is not acceptable (at key creation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuardSettingError(pub String);

/// Why an order is refused: a sentence for the operator, no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuardRefusal(pub String);

fn refuse(msg: impl Into<String>) -> GuardRefusal {
    GuardRefusal(msg.into())
}

fn setting(field: &str, v: &Option<String>) -> Result<Option<Decimal>, GuardSettingError> {
    v.as_deref().map(|s| decimal(field, s).map_err(|e| GuardSettingError(format!("{field}: {e}")))).transpose()
}

/// `BTC-USDT`, `btc/usdt` and `BTC_USDT` name the same symbol.
fn normalise(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '-' | '/' | '_')).flat_map(char::to_uppercase).collect()
}

impl OrderGuard {
    /// True when any guard is set.
    pub fn is_set(&self) -> bool {
        *self != OrderGuard::default()
    }

    /// The limits as numbers; refuses settings that are not plain decimals,
    /// a band outside (0 %, 100 %) and empty or overlong symbols.
    pub fn limits(&self) -> Result<Limits, GuardSettingError> {
        let band = setting("price_band", &self.price_band_pct)?;
        if band.is_some_and(|p| p <= Decimal::ZERO || p >= Decimal::from(100)) {
            return Err(GuardSettingError("price_band must be between 0% and 100%, e.g. 5%".into()));
        }
        if self.symbols.iter().any(|s| s.is_empty() || s.len() > 64) {
            return Err(GuardSettingError("symbols are 1 to 64 characters, e.g. BTCUSDT,ETHUSDT".into()));
        }
        Ok(Limits {
            symbols: self.symbols.iter().map(|s| normalise(s)).collect(),
            max_qty: setting("max_qty", &self.max_qty)?,
            max_notional: setting("max_notional", &self.max_notional)?,
            max_notional_per_day: setting("max_notional_per_day", &self.max_notional_per_day)?,
            price_band_pct: band,
        })
    }
}

/// A guard's limits, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    symbols: Vec<String>,
    max_qty: Option<Decimal>,
    max_notional: Option<Decimal>,
    max_notional_per_day: Option<Decimal>,
    price_band_pct: Option<Decimal>,
}

/// The reference price of a symbol, where one is known.
pub type ReferencePrice<'a> = dyn Fn(&str) -> Option<Decimal> + 'a;

/// What evaluation decided for orders that pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// Notional of every order together, quote units: what the daily cap counts.
    pub notional: Decimal,
    /// The daily cap to reserve `notional` against, if the key has one.
    pub daily_cap: Option<Decimal>,
}

impl Limits {
    fn symbol_allowed(&self, symbol: &str) -> bool {
        self.symbols.is_empty() || self.symbols.contains(&normalise(symbol))
    }

    fn needs_notional(&self) -> bool {
        self.max_notional.is_some() || self.max_notional_per_day.is_some()
    }

    /// True when deciding on `o` takes a reference price: a band around a
    /// limit price, the notional of a sell sized in base units, or the
    /// quantity of an order sized in quote units. False for an order whose
    /// symbol is refused anyway, so no ticker is fetched for it.
    pub fn needs_reference(&self, o: &Order) -> bool {
        if o.symbol_only || !self.symbol_allowed(&o.symbol) {
            return false;
        }
        let sell_like = o.side != Some(Side::Buy);
        self.price_band_pct.is_some() && o.price.is_some()
            || self.needs_notional() && sell_like && o.qty.is_some() && o.quote_qty.is_none()
            || self.max_qty.is_some() && o.qty.is_none() && o.quote_qty.is_some()
    }

    /// Decides on every order of a request (single, batch or amend): one
    /// refused order refuses them all. `reference` gives the reference price
    /// of a symbol, where [`Limits::needs_reference`] asked for one.
    pub fn evaluate(&self, orders: &[Order], reference: &ReferencePrice<'_>) -> Result<Passed, GuardRefusal> {
        let mut total = Decimal::ZERO;
        for o in orders {
            total += self.evaluate_one(o, Some(reference))?;
        }
        Ok(Passed { notional: total, daily_cap: self.max_notional_per_day })
    }

    /// Everything that can be decided without a reference price (symbols,
    /// stated quantities, notionals a price bounds from below): what passes
    /// here may still be refused by [`Limits::evaluate`], what fails here
    /// fails there too. Lets a caller refuse before asking the exchange for
    /// a price.
    pub fn precheck(&self, orders: &[Order]) -> Result<(), GuardRefusal> {
        orders.iter().try_for_each(|o| self.evaluate_one(o, None).map(|_| ()))
    }

    /// Checks one order; its notional (zero when no notional cap is set).
    /// Without `reference` (a precheck), checks that need one are skipped
    /// and a sell is valued at its own price, the least it can be valued at.
    fn evaluate_one(&self, o: &Order, reference: Option<&ReferencePrice<'_>>) -> Result<Decimal, GuardRefusal> {
        if !self.symbol_allowed(&o.symbol) {
            return Err(refuse(format!("{} is not among this key's symbols", o.symbol)));
        }
        if o.symbol_only {
            return Ok(Decimal::ZERO);
        }
        let reference = match reference {
            Some(lookup) if self.needs_reference(o) => match lookup(&o.symbol) {
                Some(r) if r > Decimal::ZERO => Some(r),
                _ => return Err(refuse(format!("keyward has no usable reference price for {}", o.symbol))),
            },
            _ => None,
        };
        let precheck = reference.is_none() && self.needs_reference(o);
        if let Some(max) = self.max_qty {
            let qty = match (o.qty, o.quote_qty, reference) {
                (Some(q), _, _) => q,
                (None, Some(quote), Some(r)) => quote / r,
                (None, Some(_), None) if precheck => Decimal::ZERO,
                _ => return Err(refuse("the order states no quantity keyward can check")),
            };
            if qty > max {
                return Err(refuse(format!("quantity {qty} is above this key's limit of {max}")));
            }
        }
        if let (Some(band), Some(p), Some(r)) = (self.price_band_pct, o.price, reference) {
            let off = ((p - r).abs() / r) * Decimal::from(100);
            if off > band {
                return Err(refuse(format!(
                    "price {p} is {off:.2}% from the reference {r}, beyond this key's band of {band}%"
                )));
            }
        }
        if !self.needs_notional() {
            return Ok(Decimal::ZERO);
        }
        let sell_like = o.side != Some(Side::Buy);
        let notional = match (o.quote_qty, o.qty, o.price) {
            (Some(quote), _, _) => quote,
            (None, Some(q), Some(p)) if sell_like => q * p.max(reference.unwrap_or(p)),
            (None, Some(q), Some(p)) => q * p,
            _ => return Err(refuse("a market order without a price is refused when a notional cap is set")),
        };
        if let Some(max) = self.max_notional
            && notional > max
        {
            return Err(refuse(format!("notional {notional} is above this key's limit of {max}")));
        }
        Ok(notional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn order(symbol: &str, side: Side, qty: Option<&str>, quote: Option<&str>, price: Option<&str>) -> Order {
        Order {
            symbol: symbol.into(),
            side: Some(side),
            qty: qty.map(d),
            quote_qty: quote.map(d),
            price: price.map(d),
            client_order_id: None,
            symbol_only: false,
        }
    }

    fn limits(g: OrderGuard) -> Limits {
        g.limits().unwrap()
    }

    const REF: &dyn Fn(&str) -> Option<Decimal> = &|_| Some(Decimal::from(50_000));
    const NO_REF: &dyn Fn(&str) -> Option<Decimal> = &|_| None;

    #[test]
    fn symbols_compare_without_separators_or_case() {
        let l = limits(OrderGuard { symbols: vec!["BTC-USDT".into()], ..Default::default() });
        for ok in ["BTCUSDT", "btc/usdt", "BTC_USDT"] {
            assert!(l.evaluate(&[order(ok, Side::Buy, Some("1"), None, Some("1"))], NO_REF).is_ok(), "{ok}");
        }
        let e = l.evaluate(&[order("ETHUSDT", Side::Buy, Some("1"), None, Some("1"))], REF).unwrap_err();
        assert!(e.0.contains("not among this key's symbols"), "{e}");
        assert!(!l.needs_reference(&order("ETHUSDT", Side::Sell, Some("1"), None, Some("1"))));
    }

    #[test]
    fn quantity_in_base_units_or_through_the_reference() {
        let l = limits(OrderGuard { max_qty: Some("0.5".into()), ..Default::default() });
        assert!(l.evaluate(&[order("B", Side::Buy, Some("0.5"), None, None)], NO_REF).is_ok());
        assert!(l.evaluate(&[order("B", Side::Buy, Some("0.51"), None, None)], NO_REF).is_err());
        // Sized in quote units: 20,000 / 50,000 = 0.4 base units.
        let quote = order("B", Side::Buy, None, Some("20000"), None);
        assert!(l.needs_reference(&quote));
        assert!(l.evaluate(std::slice::from_ref(&quote), REF).is_ok());
        assert!(l.evaluate(&[order("B", Side::Buy, None, Some("30000"), None)], REF).is_err());
        assert!(l.evaluate(&[quote], NO_REF).unwrap_err().0.contains("reference price"));
        let none = order("B", Side::Buy, None, None, Some("1"));
        assert!(l.evaluate(&[none], REF).unwrap_err().0.contains("no quantity"));
    }

    #[test]
    fn price_band_around_the_reference() {
        let l = limits(OrderGuard { price_band_pct: Some("5".into()), ..Default::default() });
        assert!(l.evaluate(&[order("B", Side::Buy, Some("1"), None, Some("52500"))], REF).is_ok());
        let e = l.evaluate(&[order("B", Side::Buy, Some("1"), None, Some("52501"))], REF).unwrap_err();
        assert!(e.0.contains("beyond this key's band"), "{e}");
        // No reference, or a reference of zero: refused, never waved through.
        assert!(l.evaluate(&[order("B", Side::Buy, Some("1"), None, Some("1"))], NO_REF).is_err());
        let zero: &dyn Fn(&str) -> Option<Decimal> = &|_| Some(Decimal::ZERO);
        assert!(l.evaluate(&[order("B", Side::Buy, Some("1"), None, Some("1"))], zero).is_err());
        // A market order has no price to hold to the band.
        assert!(!l.needs_reference(&order("B", Side::Buy, Some("1"), None, None)));
    }

    #[test]
    fn notional_per_order_buys_sells_and_market_orders() {
        let l = limits(OrderGuard { max_notional: Some("1000".into()), ..Default::default() });
        assert!(l.evaluate(&[order("B", Side::Buy, Some("0.02"), None, Some("50000"))], NO_REF).is_ok());
        assert!(l.evaluate(&[order("B", Side::Buy, Some("0.0201"), None, Some("50000"))], NO_REF).is_err());
        // A sell is valued at the larger of its price and the reference.
        let low_sell = order("B", Side::Sell, Some("0.0201"), None, Some("48000"));
        assert!(l.needs_reference(&low_sell));
        assert!(l.evaluate(&[low_sell], REF).unwrap_err().0.contains("notional"));
        assert!(l.evaluate(&[order("B", Side::Sell, Some("0.02"), None, Some("48000"))], REF).is_ok());
        // Quote-sized: the amount is the notional.
        assert!(l.evaluate(&[order("B", Side::Buy, None, Some("1000"), None)], NO_REF).is_ok());
        assert!(l.evaluate(&[order("B", Side::Buy, None, Some("1001"), None)], NO_REF).is_err());
        let market = order("B", Side::Buy, Some("0.01"), None, None);
        assert!(l.evaluate(&[market], REF).unwrap_err().0.contains("market order without a price"));
    }

    #[test]
    fn a_batch_passes_whole_or_not_at_all_and_sums_for_the_day() {
        let l = limits(OrderGuard {
            max_qty: Some("0.5".into()),
            max_notional_per_day: Some("2000".into()),
            ..Default::default()
        });
        let a = order("B", Side::Buy, Some("0.01"), None, Some("50000"));
        let b = order("B", Side::Buy, Some("0.02"), None, Some("50000"));
        let passed = l.evaluate(&[a.clone(), b], NO_REF).unwrap();
        assert_eq!(passed, Passed { notional: d("1500"), daily_cap: Some(d("2000")) });
        assert!(l.evaluate(&[a, order("B", Side::Buy, Some("0.9"), None, Some("1"))], NO_REF).is_err());
        // Without a notional cap nothing is summed.
        let q = limits(OrderGuard { max_qty: Some("1".into()), ..Default::default() });
        assert_eq!(q.evaluate(&[order("B", Side::Buy, Some("1"), None, Some("9"))], NO_REF).unwrap().notional, d("0"));
    }

    #[test]
    fn a_precheck_refuses_only_what_evaluation_would() {
        let l = limits(OrderGuard {
            symbols: vec!["B".into()],
            max_qty: Some("0.5".into()),
            max_notional: Some("1000".into()),
            price_band_pct: Some("5".into()),
            ..Default::default()
        });
        // Decidable without a price: refused at once.
        for o in [
            order("C", Side::Buy, Some("0.1"), None, Some("50000")),
            order("B", Side::Buy, Some("0.6"), None, Some("50000")),
            order("B", Side::Buy, Some("0.03"), None, Some("50000")),
            order("B", Side::Sell, Some("0.03"), None, Some("50000")),
            order("B", Side::Buy, Some("0.01"), None, None),
        ] {
            assert!(l.precheck(std::slice::from_ref(&o)).is_err(), "{o:?}");
            assert!(l.evaluate(std::slice::from_ref(&o), REF).is_err(), "{o:?}");
        }
        // Needs the price: passes the precheck, evaluation decides.
        let off_band = order("B", Side::Buy, Some("0.01"), None, Some("40000"));
        assert!(l.precheck(std::slice::from_ref(&off_band)).is_ok());
        assert!(l.evaluate(&[off_band], REF).is_err());
        let q = limits(OrderGuard { max_qty: Some("0.5".into()), ..Default::default() });
        let quote_sized = order("B", Side::Buy, None, Some("30000"), None);
        assert!(q.precheck(std::slice::from_ref(&quote_sized)).is_ok());
        assert!(q.evaluate(&[quote_sized], REF).is_err(), "30000 / 50000 = 0.6 > 0.5");
        let n = limits(OrderGuard { max_notional: Some("999".into()), ..Default::default() });
        let cheap_sell = order("B", Side::Sell, Some("0.02"), None, Some("30000"));
        assert!(n.precheck(std::slice::from_ref(&cheap_sell)).is_ok(), "600 at its own price");
        assert!(n.evaluate(&[cheap_sell], REF).is_err(), "0.02 at the reference 50000 is 1000");
    }

    #[test]
    fn a_symbol_only_request_is_held_to_the_symbols_alone() {
        let l = limits(OrderGuard {
            symbols: vec!["BTCUSDT".into()],
            max_qty: Some("0.5".into()),
            max_notional: Some("1".into()),
            price_band_pct: Some("5".into()),
            ..Default::default()
        });
        let ok = Order::symbol_only("BTCUSDT");
        assert!(!l.needs_reference(&ok));
        assert_eq!(l.evaluate(&[ok], NO_REF).unwrap().notional, d("0"));
        assert!(l.evaluate(&[Order::symbol_only("ETHUSDT")], NO_REF).is_err());
        let sized = Order { qty: Some(d("0.6")), ..Order::symbol_only("BTCUSDT") }.sized();
        assert!(l.precheck(&[sized]).is_err(), "a sized amendment is held to the quantity");
    }

    #[test]
    fn settings_are_plain_decimals_and_a_sane_band() {
        for bad in [
            OrderGuard { max_qty: Some("1e3".into()), ..Default::default() },
            OrderGuard { max_notional: Some("-5".into()), ..Default::default() },
            OrderGuard { price_band_pct: Some("150".into()), ..Default::default() },
            OrderGuard { price_band_pct: Some("0".into()), ..Default::default() },
            OrderGuard { symbols: vec![String::new()], ..Default::default() },
        ] {
            assert!(bad.limits().is_err(), "{bad:?}");
        }
        assert!(!OrderGuard::default().is_set());
        assert!(OrderGuard { max_qty: Some("1".into()), ..Default::default() }.is_set());
    }
}
