//! Envelope encryption and decryption of a 200-byte secret, and hashing one
//! audit entry into the chain.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::audit::{AuditEntry, genesis};
use keyward_core::envelope;
use keyward_core::keyring::{Keyring, RootKey};
use std::hint::black_box;

fn primitives(c: &mut Criterion) {
    let ring = Keyring::new(RootKey::from_slice(&[7; 32]).unwrap(), 1);
    let secret = [0x5a_u8; 200];
    c.bench_function("envelope_seal_200b", |b| {
        b.iter(|| envelope::seal(&ring, "apps/bench", 3, black_box(&secret)).unwrap())
    });
    let blob = envelope::seal(&ring, "apps/bench", 3, &secret).unwrap();
    c.bench_function("envelope_open_200b", |b| {
        b.iter(|| envelope::open(&ring, "apps/bench", 3, black_box(&blob)).unwrap())
    });
    let mut e = AuditEntry {
        seq: 0,
        time_ms: 1_700_000_000_000,
        request_id: "abcdefghijklmnop".into(),
        key_id: "key_0123456789abcdef".into(),
        ip: "203.0.113.7".into(),
        action: "proxy.post".into(),
        target: "binance-main POST /api/v3/order".into(),
        class: "trade".into(),
        decision: "allow".into(),
        code: String::new(),
        detail: r#"{"orders":[{"symbol":"BTCUSDT","side":"buy","qty":"0.01","price":"50000"}]}"#.into(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    };
    let prev = genesis();
    c.bench_function("audit_entry_chain_hash", |b| b.iter(|| e.chain_after(black_box(41), &prev)));
}

criterion_group!(benches, primitives);
criterion_main!(benches);
