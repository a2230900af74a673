//! Rate specifications as operators write them: `10/s`, `600/m`,
//! `5000/h`, `10/s,burst=20`. The limiter itself (GCRA) lives in the server.

use crate::CoreError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// `count` requests per `period_s` seconds, with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    /// Requests per period.
    pub count: u32,
    /// The period in seconds (1, 60 or 3600).
    pub period_s: u32,
    /// Largest burst; defaults to `count`.
    pub burst: u32,
}

impl RateSpec {
    /// Nanoseconds between two replenished requests.
    pub fn interval_ns(&self) -> u64 {
        (self.period_s as u64 * 1_000_000_000) / self.count as u64
    }
}

impl FromStr for RateSpec {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        let bad = || {
            CoreError::InvalidField(format!(
                "rate {s:?}: use COUNT/UNIT with UNIT s, m or h, optionally ,burst=N: 10/s, 600/m, 10/s,burst=20"
            ))
        };
        let (main, burst) = match s.split_once(',') {
            Some((m, b)) => (m, Some(b.trim().strip_prefix("burst=").ok_or_else(bad)?)),
            None => (s, None),
        };
        let (count, unit) = main.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0).ok_or_else(bad)?;
        let period_s = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        let burst = match burst {
            Some(b) => b.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?,
            None => count,
        };
        if count as u64 > 1_000_000 * period_s as u64 {
            return Err(bad());
        }
        Ok(Self { count, period_s, burst })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_s {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.burst != self.count {
            write!(f, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

impl Serialize for RateSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let r: RateSpec = "10/s".parse().unwrap();
        assert_eq!((r.count, r.period_s, r.burst), (10, 1, 10));
        let r: RateSpec = "10/s,burst=20".parse().unwrap();
        assert_eq!(r.burst, 20);
        assert_eq!(r.to_string(), "10/s,burst=20");
        assert_eq!("600/m".parse::<RateSpec>().unwrap().interval_ns(), 100_000_000);
        for bad in ["", "10", "10/d", "0/s", "x/s", "10/s,burst=0", "10/s,bursts=2", "10/s;burst=2"] {
            let e = bad.parse::<RateSpec>().unwrap_err().to_string();
            assert!(e.contains("10/s,burst=20"), "{bad}: {e}");
        }
    }
}
