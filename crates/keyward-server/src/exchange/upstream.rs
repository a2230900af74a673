//! What keyward learns from the exchanges' answers: the request budget each
//! account has left (shared by every bot on it, public calls included), and
//! how far each exchange's clock is from ours.

use crate::error::{Error, Result};
use keyward_core::decision::DenyReason;
use keyward_exchanges::Usage;
use std::collections::HashMap;
use std::sync::Mutex;

/// Share of a budget keyward keeps in reserve: it refuses at 90% spent,
/// before the exchange would ban the account's address.
const RESERVE_PERCENT: u64 = 10;

/// Offsets below this are the noise of a one-second `Date` header.
const OFFSET_FLOOR_MS: i64 = 1500;

/// The last usage seen per (account, bucket), with when it was seen (ms).
type Seen = HashMap<(String, &'static str), (Usage, i64)>;

/// Budgets by (account, bucket).
#[derive(Debug, Default)]
pub(super) struct Budgets {
    seen: Mutex<Seen>,
}

impl Budgets {
    /// Refuses with 429 `exchange_budget` while the bucket is nearly spent.
    pub(super) fn check(&self, account: &str, bucket: Option<&'static str>, now_ms: i64) -> Result<()> {
        let Some(bucket) = bucket else { return Ok(()) };
        let Some((u, at)) = self.seen.lock().ok().and_then(|m| m.get(&(account.to_string(), bucket)).copied()) else {
            return Ok(());
        };
        let resets_at = at + u.resets_in_ms as i64;
        if now_ms < resets_at && u.used * 100 >= u.limit * (100 - RESERVE_PERCENT) {
            let wait_ms = (resets_at - now_ms).max(1) as u64;
            return Err(Error::new(
                DenyReason::ExchangeBudget,
                format!(
                    "account {account} has used {} of its {} {bucket} budget; keyward holds requests for {wait_ms} ms so the exchange does not ban it",
                    u.used, u.limit
                ),
            )
            .retry_after(wait_ms.div_ceil(1000)));
        }
        Ok(())
    }

    /// Records what an answer said.
    pub(super) fn record(&self, account: &str, usage: Usage, now_ms: i64) {
        if let Ok(mut m) = self.seen.lock() {
            m.insert((account.to_string(), usage.bucket), (usage, now_ms));
        }
    }
}

/// Exchange clock offsets by account.
#[derive(Debug, Default)]
pub(super) struct Clocks {
    offsets: Mutex<HashMap<String, i64>>,
}

impl Clocks {
    /// Learns from an answer's `Date` header (one-second resolution, so only
    /// a real skew counts).
    pub(super) fn observe(&self, account: &str, date: Option<&str>, now_ms: i64) {
        let Some(t) = date.and_then(|d| httpdate::parse_http_date(d).ok()) else { return };
        let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) else { return };
        let server_ms = d.as_millis() as i64 + 500;
        let offset = server_ms - now_ms;
        if let Ok(mut m) = self.offsets.lock() {
            if offset.abs() >= OFFSET_FLOOR_MS {
                m.insert(account.to_string(), offset);
            } else {
                m.remove(account);
            }
        }
    }

    /// Now on the exchange's clock.
    pub(super) fn exchange_now(&self, account: &str, now_ms: i64) -> i64 {
        now_ms + self.offsets.lock().ok().and_then(|m| m.get(account).copied()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_near_the_limit_until_the_window_resets() {
        let b = Budgets::default();
        let u = |used| Usage { bucket: "api-weight", used, limit: 6000, resets_in_ms: 30_000 };
        b.record("a", u(5000), 0);
        assert!(b.check("a", Some("api-weight"), 1).is_ok());
        b.record("a", u(5400), 0);
        let e = b.check("a", Some("api-weight"), 1).unwrap_err();
        assert_eq!((e.code.as_str(), e.retry_after), ("exchange_budget", Some(30)));
        assert!(b.check("a", Some("api-weight"), 30_000).is_ok(), "the window reset");
        assert!(b.check("b", Some("api-weight"), 1).is_ok(), "other accounts are separate");
        assert!(b.check("a", Some("fapi-weight"), 1).is_ok(), "other buckets are separate");
    }

    #[test]
    fn clock_offsets_from_date_headers() {
        let c = Clocks::default();
        let now = 1_700_000_000_000;
        c.observe("a", Some("Tue, 14 Nov 2023 22:13:25 GMT"), now);
        assert_eq!(c.exchange_now("a", now), now + 5500);
        c.observe("a", Some("Tue, 14 Nov 2023 22:13:20 GMT"), now);
        assert_eq!(c.exchange_now("a", now), now, "sub-second noise is ignored");
        c.observe("a", Some("garbage"), now);
        assert_eq!(c.exchange_now("b", now), now);
    }
}
