//! Orders as guards see them: the fields that size or price an order, already
//! parsed by an exchange module. Only the strict decimal reader lives here
//! with the type, so every exchange reads sizes the same way.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// `buy` or `sell`, as the audit trail writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
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
    /// The request names this symbol but places, sizes and prices nothing
    /// (leverage, margin mode, closing a position): only the symbol is held
    /// to the guards.
    pub symbol_only: bool,
}

impl Order {
    /// The same order held to every guard (not only its symbol).
    pub fn sized(mut self) -> Self {
        self.symbol_only = false;
        self
    }

    /// A request on `symbol` that sizes and prices nothing.
    pub fn symbol_only(symbol: impl Into<String>) -> Self {
        Order {
            symbol: symbol.into(),
            side: None,
            qty: None,
            quote_qty: None,
            price: None,
            client_order_id: None,
            symbol_only: true,
        }
    }
}

/// Why an order could not be read strictly (the request is refused to a guarded key).
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
