//! One module per top-level command.

pub mod account;
pub mod approvals;
pub mod audit;
mod audit_archive;
mod backup;
pub mod database;
pub mod key;
pub mod operator;
pub mod rotation;
pub mod run;
pub mod scan;
mod scan_server;
mod seal;
pub mod secret;
mod secret_rotate;
pub mod server;
pub mod sign;

/// Prints `v` as pretty JSON.
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Text of a JSON value for tables: strings bare, null as `-`.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
