//! Time as a value passed in: the server reads a [`Clock`], tests set one.

use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place keyward reads the system clock (clippy.toml bans it elsewhere).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    // The same clock without a calendar date: every request reads it
    // (expiry, last use), and none needs the date.
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that stands still until told to move (tests, `--test-clock`).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock showing `ms` milliseconds since the epoch.
    pub fn new(ms: i64) -> Self {
        Self { ms: AtomicI64::new(ms) }
    }

    /// Sets the time.
    pub fn set_ms(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward (or back, with a negative `delta_ms`).
    pub fn advance_ms(&self, delta_ms: i64) {
        self.ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let ms = self.ms.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// RFC 3339 text of a time in ms since the epoch (`2030-03-17T17:46:40Z`);
/// empty for a time `time` cannot represent.
pub fn rfc3339(ms: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_and_its_text() {
        let c = ManualClock::new(1_900_000_000_000);
        c.advance_ms(1500);
        assert_eq!(c.now_ms(), 1_900_000_001_500);
        assert_eq!(rfc3339(c.now_ms()), "2030-03-17T17:46:41.5Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_system_clock_in_ms_is_its_calendar_time() {
        let before = (SystemClock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        let ms = SystemClock.now_ms();
        let after = (SystemClock.now().unix_timestamp_nanos() / 1_000_000) as i64;
        assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
    }
}
