//! Admission: the limits a request spends once it is authorized, last of
//! all, so a refusal spends nothing. Rate first (in memory), then whatever
//! the caller reserves of its own (the exchange pipeline: budget and daily
//! notional), then one use of a use-limited key (durable, and the only step
//! that cannot be given back, so it comes last).

use super::{Changes, KeyEntry, Keys};
use crate::error::{Error, Result};
use crate::seal::Unsealed;
use governor::clock::Clock as _;
use keyward_core::decision::DenyReason;
use keyward_store::OrderUsage;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// Rate-limit state after a request, for the verify API.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct RateInfo {
    /// Burst size.
    pub limit: u32,
    /// Requests left in the current burst.
    pub remaining: u32,
    /// Milliseconds until the burst is full again.
    pub reset_ms: u64,
}

/// Proof that a request was authorized and admitted: what changes state
/// takes one, and only [`Keys::take_use`] makes one.
#[derive(Debug)]
pub(crate) struct Admitted {
    remaining: Option<i64>,
    ratelimit: Option<RateInfo>,
}

impl Admitted {
    /// keyward acting by itself on a schedule, for no request (the clean-up
    /// of an approval request that expired): only the server's background
    /// tasks make one, never a route.
    pub(crate) fn by_keyward() -> Self {
        Self { remaining: None, ratelimit: None }
    }

    /// Uses left after this request (use-limited keys).
    pub(crate) fn remaining(&self) -> Option<i64> {
        self.remaining
    }

    /// Rate-limit state after this request (rate-limited keys).
    pub(crate) fn ratelimit(&self) -> Option<RateInfo> {
        self.ratelimit
    }
}

impl Keys {
    /// Spends one request of the key's rate, or refuses with `rate_limited`.
    pub(crate) fn spend_rate(&self, key: &KeyEntry) -> Result<Option<RateInfo>> {
        let Some(lim) = key.limiter() else { return Ok(None) };
        match lim.check() {
            Ok(snap) => {
                let q = snap.quota();
                let used = q.burst_size().get().saturating_sub(snap.remaining_burst_capacity());
                Ok(Some(RateInfo {
                    limit: q.burst_size().get(),
                    remaining: snap.remaining_burst_capacity(),
                    reset_ms: (q.replenish_interval() * used).as_millis() as u64,
                }))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(super::index::clock().now());
                Err(Error::new(
                    DenyReason::RateLimited,
                    format!("this key's rate limit is reached; retry in {} ms", wait.as_millis()),
                )
                .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64))
            }
        }
    }

    /// Takes one use of a use-limited key, durably and through the key
    /// ledger (group-committed with concurrent uses, see [`super::uses`]),
    /// and notes the use: the last step of admission. Refuses with
    /// `uses_exhausted`.
    pub(crate) async fn take_use(
        &self,
        unsealed: &Unsealed,
        key: &KeyEntry,
        ip: IpAddr,
        ratelimit: Option<RateInfo>,
    ) -> Result<Admitted> {
        let mut remaining = None;
        if key.policy.uses.is_some() {
            match self.spend_use(unsealed, &key.id).await {
                Ok(left) => {
                    key.uses_remaining.store(left, Ordering::Relaxed);
                    remaining = Some(left);
                }
                Err(e) => {
                    if e.code == crate::error::Code::Deny(DenyReason::UsesExhausted) {
                        key.uses_remaining.store(0, Ordering::Relaxed);
                    }
                    return Err(e);
                }
            }
        }
        key.note_use(self.clock.now_ms(), ip);
        Ok(Admitted { remaining, ratelimit })
    }

    /// Adds `add` to a key's order notional for `day` if the total stays
    /// at most `cap`, durably and through the key ledger; false (nothing
    /// added) if it would not.
    pub(crate) async fn reserve_notional(
        &self,
        unsealed: &Unsealed,
        key_id: &str,
        day: i64,
        add: i64,
        cap: i64,
    ) -> Result<bool> {
        self.retrying(|| async {
            let mut turn = self.turn().await;
            let stored = self.store.order_usage(key_id, day).await?;
            let used = stored.unwrap_or(0);
            if add < 0 || used.checked_add(add).is_none_or(|total| total > cap) {
                return Ok(false);
            }
            let old = stored.map(|used| OrderUsage { key_id: key_id.to_string(), day, used });
            let new = OrderUsage { key_id: key_id.to_string(), day, used: used + add };
            self.commit(&mut turn, unsealed, Changes { usage: vec![(old, new)], ..Changes::default() }).await?;
            Ok(true)
        })
        .await
    }

    /// Gives back `amount` reserved with [`Keys::reserve_notional`] for an
    /// order refused later or that cannot have reached the exchange; the
    /// total never goes below zero.
    pub(crate) async fn release_notional(
        &self,
        unsealed: &Unsealed,
        key_id: &str,
        day: i64,
        amount: i64,
    ) -> Result<()> {
        self.retrying(|| async {
            let mut turn = self.turn().await;
            let Some(used) = self.store.order_usage(key_id, day).await? else { return Ok(()) };
            let old = OrderUsage { key_id: key_id.to_string(), day, used };
            let new = OrderUsage { used: used.saturating_sub(amount.max(0)).max(0), ..old.clone() };
            self.commit(&mut turn, unsealed, Changes { usage: vec![(Some(old), new)], ..Changes::default() }).await
        })
        .await
    }

    /// Rate, then a use: the whole admission of a request with nothing of its own to reserve.
    pub(crate) async fn admit(&self, unsealed: &Unsealed, key: &KeyEntry, ip: IpAddr) -> Result<Admitted> {
        let rate = self.spend_rate(key)?;
        self.take_use(unsealed, key, ip, rate).await
    }
}
