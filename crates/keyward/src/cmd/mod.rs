//! One module per top-level command.

pub mod audit;
pub mod key;
pub mod operator;
pub mod secret;
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
