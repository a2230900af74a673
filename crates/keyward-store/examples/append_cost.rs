//! What an audit entry costs to append: CPU time (every thread of the
//! process, from /proc) and wall time per entry, in batches the size the
//! server's writer gathers at about 22,000 requests a second (5 ms).
//!
//! ```text
//! cargo run --release -p keyward-store --example append_cost [BATCH] [ENTRIES]
//! ```
//!
//! Building and chaining the entries is timed apart and left out. Linux only.

use keyward_core::audit::{AuditEntry, genesis};
use keyward_store::{SqliteStore, Store};
use std::time::{Duration, Instant};

/// CPU time of the whole process so far, in microseconds.
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 * 1e6 / 100.0
}

/// A signing request's entry, chained after (`seq`, `hash`).
fn entry(seq: &mut u64, hash: &mut Vec<u8>, batch: usize, i: usize) -> AuditEntry {
    let mut e = AuditEntry {
        time_ms: 1_700_000_000_000 + batch as i64,
        request_id: format!("req-{batch:08}-{i:04}-abcdefghij"),
        key_id: "kw_ak_0123456789abcdef".into(),
        ip: "127.0.0.1".into(),
        action: "sign".into(),
        target: "binance/main".into(),
        class: "trade".into(),
        decision: "allow".into(),
        code: String::new(),
        detail: r#"{"method":"POST","path":"/api/v3/order"}"#.into(),
        ..Default::default()
    };
    e.chain_after(*seq, hash);
    (*seq, *hash) = (e.seq, e.hash.clone());
    e
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let batch = args.next().transpose()?.unwrap_or(110);
    let total = args.next().transpose()?.unwrap_or(220_000);
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("keyward.db")).await?;
    let (mut seq, mut hash) = (0, genesis());
    let (mut building, mut cpu, mut wall) = (Duration::ZERO, 0.0, Duration::ZERO);
    for b in 0..total.div_ceil(batch) {
        let started = Instant::now();
        let entries: Vec<AuditEntry> = (0..batch).map(|i| entry(&mut seq, &mut hash, b, i)).collect();
        building += started.elapsed();
        let (c, w) = (cpu_us(), Instant::now());
        store.append_audit(&entries, None).await?;
        (cpu, wall) = (cpu + cpu_us() - c, wall + w.elapsed());
    }
    let n = (total.div_ceil(batch) * batch) as f64;
    println!(
        "batches of {batch}: {:.2} µs of CPU and {:.2} µs of wall time an entry (building them: {:.2} µs, left out)",
        cpu / n,
        wall.as_secs_f64() * 1e6 / n,
        building.as_secs_f64() * 1e6 / n,
    );
    Ok(())
}
