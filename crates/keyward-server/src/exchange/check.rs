//! A rotation's two exchange-side steps: asking the exchange whether the
//! pending credentials work (one signed read-class call through the
//! account's upstream, see `keyward_exchanges::check`), and, after the
//! switch, waiting until no request in flight still signs with the old
//! version.
//!
//! The check builds its account from the pending version directly: nothing
//! else ever signs with a pending version, and the account cache is left
//! alone until the promotion.

use super::accounts::Account;
use super::pipeline::Overrides;
use super::{Exchanges, forward};
use crate::error::Result;
use crate::secrets::Version;
use keyward_core::scope::Class;
use serde::Serialize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// What the exchange said to the pending credentials.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckOutcome {
    /// The call made (`GET /api/v3/account`).
    pub call: String,
    /// The exchange's HTTP status.
    pub status: u16,
    /// Whether it accepted them.
    pub accepted: bool,
    /// What it said when it did not (its own words, trimmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_said: Option<String>,
}

/// Requests still signing with an account's old version after a switch.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(crate) struct Drain {
    /// In flight when the switch was made (on this node).
    pub in_flight: usize,
    /// Still in flight when the answer left (0 unless `no_wait` or the wait ran out).
    pub still_in_flight: usize,
    /// How long the answer waited (ms).
    pub waited_ms: u64,
}

/// The old version's account, held until its requests finish.
#[derive(Debug, Default)]
pub(crate) struct InUse(Option<Weak<Account>>);

impl Exchanges {
    /// Makes the exchange's credential-check call signed with `version`'s
    /// credentials, through that version's upstream.
    pub(crate) async fn check_credentials(&self, name: &str, version: &Version) -> Result<CheckOutcome> {
        let account = Account::from_version(name, version, &self.config.allow_upstream)?;
        let check = account.exchange.credential_check();
        let creq = check.request();
        let call = format!("{} {}", creq.method.as_str(), creq.path);
        let base = account.base_url(&creq.path)?;
        let out = self.outgoing(name, &account, Class::Read, &creq, Overrides::default())?;
        let answer = forward::send(&self.client, &base, out, Vec::new(), true).await.map_err(|f| f.error)?;
        let now = self.clock.now_ms();
        let header = |n: &str| answer.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        self.clocks.observe(name, header("date").as_deref(), now);
        let body = match &answer.body {
            forward::AnswerBody::Whole(b) => b.clone(),
            forward::AnswerBody::Stream(_) => bytes::Bytes::new(),
        };
        let verdict = check.accepted(answer.status, &body);
        Ok(CheckOutcome { call, status: answer.status, accepted: verdict.is_ok(), exchange_said: verdict.err() })
    }

    /// The account requests are signing with now, to wait for after a switch.
    pub(crate) fn in_use(&self, name: &str) -> InUse {
        InUse(self.accounts.read().ok().and_then(|m| m.get(name).map(|(_, a)| Arc::downgrade(a))))
    }

    /// After a switch: drops the old account from the cache, then waits (up
    /// to `limit`; not at all when it is zero) until no request holds it.
    pub(crate) async fn drain(&self, name: &str, old: InUse, limit: Duration) -> Drain {
        let Some(old) = old.0 else { return Drain { in_flight: 0, still_in_flight: 0, waited_ms: 0 } };
        if let Ok(mut m) = self.accounts.write()
            && m.get(name).is_some_and(|(_, a)| Weak::ptr_eq(&Arc::downgrade(a), &old))
        {
            m.remove(name);
        }
        let in_flight = old.strong_count();
        let start = Instant::now();
        while old.strong_count() > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Drain { in_flight, still_in_flight: old.strong_count(), waited_ms: start.elapsed().as_millis() as u64 }
    }
}
