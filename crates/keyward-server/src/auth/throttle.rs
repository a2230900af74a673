//! Throttling of failed authentications per client address.
//!
//! Repeated bad keys from one address (IPv6: its /64) are first slowed, then
//! refused for a while. The throttle only ever acts on a request whose key
//! already failed: a valid key from the same address is never slowed or
//! refused by it, so one broken bot behind a shared NAT cannot lock out the
//! others. Memory is bounded: past `MAX_TRACKED` addresses the stalest go.

use crate::config::ThrottleConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

const MAX_TRACKED: usize = 100_000;

/// What to do with a failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer with the failure at once.
    Answer,
    /// Answer with the failure after this delay.
    Delay(Duration),
    /// Refuse with `auth_throttled` for this long.
    Blocked(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start_ms: i64,
    failures: u32,
    blocked_until_ms: i64,
    last_ms: i64,
}

/// Failure counts per address.
#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// IPv6 addresses count per /64 (one host usually holds a whole /64).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

impl AuthThrottle {
    /// A throttle with these settings.
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Self { config, entries: Mutex::new(HashMap::new()) }
    }

    /// Records a failed authentication from `ip` at `now_ms`; says how to answer.
    pub(crate) fn fail(&self, ip: IpAddr, now_ms: i64) -> Verdict {
        let c = self.config;
        let Ok(mut map) = self.entries.lock() else { return Verdict::Answer };
        if map.len() >= MAX_TRACKED && !map.contains_key(&bucket(ip)) {
            let cutoff = now_ms - c.window.as_millis() as i64;
            map.retain(|_, e| e.last_ms >= cutoff || e.blocked_until_ms > now_ms);
            if map.len() >= MAX_TRACKED {
                // Still full: drop the stalest tenth.
                let mut ages: Vec<i64> = map.values().map(|e| e.last_ms).collect();
                ages.sort_unstable();
                let line = ages[ages.len() / 10];
                map.retain(|_, e| e.last_ms > line);
            }
        }
        let e = map.entry(bucket(ip)).or_insert(Entry {
            window_start_ms: now_ms,
            failures: 0,
            blocked_until_ms: 0,
            last_ms: now_ms,
        });
        e.last_ms = now_ms;
        if e.blocked_until_ms > now_ms {
            return Verdict::Blocked(Duration::from_millis((e.blocked_until_ms - now_ms) as u64));
        }
        if now_ms - e.window_start_ms >= c.window.as_millis() as i64 {
            e.window_start_ms = now_ms;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures > c.block_after {
            e.blocked_until_ms = now_ms + c.block_for.as_millis() as i64;
            e.failures = 0;
            e.window_start_ms = now_ms;
            return Verdict::Blocked(c.block_for);
        }
        if e.failures > c.slow_after {
            let steps = (e.failures - c.slow_after) as u64;
            return Verdict::Delay(Duration::from_millis(50 * steps).min(c.max_delay));
        }
        Verdict::Answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> AuthThrottle {
        AuthThrottle::new(ThrottleConfig {
            slow_after: 2,
            block_after: 4,
            window: Duration::from_secs(10),
            block_for: Duration::from_secs(30),
            max_delay: Duration::from_millis(120),
        })
    }

    #[test]
    fn slows_then_blocks_then_forgives() {
        let th = t();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(th.fail(ip, 0), Verdict::Answer);
        assert_eq!(th.fail(ip, 1), Verdict::Answer);
        assert_eq!(th.fail(ip, 2), Verdict::Delay(Duration::from_millis(50)));
        assert_eq!(th.fail(ip, 3), Verdict::Delay(Duration::from_millis(100)));
        assert_eq!(th.fail(ip, 4), Verdict::Blocked(Duration::from_secs(30)));
        assert_eq!(th.fail(ip, 5_000), Verdict::Blocked(Duration::from_millis(25_004)));
        assert_eq!(th.fail(ip, 30_004), Verdict::Answer, "the block ends");
        // Another address is unaffected.
        assert_eq!(th.fail("192.0.2.2".parse().unwrap(), 6), Verdict::Answer);
    }

    #[test]
    fn window_resets_counts() {
        let th = t();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        th.fail(ip, 0);
        th.fail(ip, 1);
        assert_eq!(th.fail(ip, 20_000), Verdict::Answer);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let th = t();
        for (i, a) in ["2001:db8::1", "2001:db8::2", "2001:db8::3:4", "2001:db8::ffff"].iter().enumerate() {
            th.fail(a.parse().unwrap(), i as i64);
        }
        assert!(matches!(th.fail("2001:db8::9".parse().unwrap(), 9), Verdict::Blocked(_)));
        assert_eq!(th.fail("2001:db8:0:1::1".parse().unwrap(), 9), Verdict::Answer);
    }
}
