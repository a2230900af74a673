//! HTTP routes, one module per resource.

pub mod audit;
pub mod keys;
pub mod secrets;
pub mod sign;
pub mod sys;
pub mod tokens;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 text of a time in ms since the epoch.
pub fn timestamp(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
