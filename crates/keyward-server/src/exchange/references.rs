//! Reference prices for order guards: the exchange's last price for a
//! symbol, from its public ticker, reused for a few seconds. Fetching is the
//! only I/O of guard evaluation; deciding is pure (`keyward_core::guard`).

use super::accounts::Account;
use crate::error::{Error, Result};
use keyward_core::decision::DenyReason;
use keyward_core::guard::Limits;
use keyward_core::order::Order;
use keyward_exchanges::CanonicalRequest;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reference price is reused.
const REFERENCE_TTL: Duration = Duration::from_secs(5);

fn refuse(msg: String) -> Error {
    Error::new(DenyReason::OrderGuard, msg)
}

/// Reference prices by (account, symbol).
#[derive(Debug, Default)]
pub(super) struct References {
    cache: Mutex<HashMap<(String, String), (Decimal, Instant)>>,
}

impl References {
    /// The reference price of every symbol whose order needs one; `learn`
    /// hears each ticker answer's path and headers (budget usage).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn gather(
        &self,
        client: &super::ExchangeClient,
        limits: &Limits,
        orders: &[Order],
        account: &str,
        acct: &Account,
        req: &CanonicalRequest,
        learn: &(dyn Fn(&str, &http::HeaderMap) + Sync),
    ) -> Result<HashMap<String, Decimal>> {
        let mut out = HashMap::new();
        for o in orders.iter().filter(|o| limits.needs_reference(o)) {
            if !out.contains_key(&o.symbol) {
                let price = self.fetch(client, (account, acct), &o.symbol, req, learn).await?;
                out.insert(o.symbol.clone(), price);
            }
        }
        Ok(out)
    }

    async fn fetch(
        &self,
        client: &super::ExchangeClient,
        (account, acct): (&str, &Account),
        symbol: &str,
        req: &CanonicalRequest,
        learn: &(dyn Fn(&str, &http::HeaderMap) + Sync),
    ) -> Result<Decimal> {
        let order_path = &req.path;
        let key = (account.to_string(), symbol.to_string());
        if let Some((p, at)) = self.cache.lock().ok().and_then(|c| c.get(&key).copied())
            && at.elapsed() < REFERENCE_TTL
        {
            return Ok(p);
        }
        let ex = acct.exchange;
        let ticker = ex
            .ticker(order_path, symbol, req)
            .ok_or_else(|| refuse(format!("keyward has no reference price for {symbol} on {}", ex.kind())))?;
        let base = acct.base_url(&ticker.path)?;
        let url = format!("{base}{}?{}", ticker.path, ticker.query_string());
        let unavailable = || refuse(format!("no reference price for {symbol}: the exchange's ticker did not answer"));
        let (headers, body) = client.get(&url).await.map_err(|_| unavailable())?;
        learn(&ticker.path, &headers);
        let price = ex.parse_ticker(&body).ok_or_else(unavailable)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (price, Instant::now()));
        }
        Ok(price)
    }
}
