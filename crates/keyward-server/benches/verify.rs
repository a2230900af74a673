#![allow(clippy::unwrap_used)]
//! In-process access-key verification with 100,000 and 1,000,000 keys
//! loaded: checksum,
//! keyed hash (HMAC-SHA-256 with the pepper), index lookup, row-MAC verdict,
//! lifecycle, allowlist and rate limit: everything a request pays before
//! its handler runs, for a key without a use count (which adds one durable
//! write by design).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyward_core::access_key::AccessKeySecret;
use keyward_core::policy::KeyPolicy;
use keyward_core::scope::Scope;
use keyward_server::bench::VerifyFixture;
use keyward_store::SqliteStore;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

/// The allocator the `keyward` binary ships with: where the index's entries
/// land in memory is part of what a lookup costs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture(count: usize) -> VerifyFixture {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = Arc::new(rt.block_on(SqliteStore::in_memory()).unwrap());
    let policy = KeyPolicy {
        scopes: vec!["secret:read:apps/*".parse::<Scope>().unwrap()],
        allow_ips: vec!["127.0.0.0/8".parse().unwrap()],
        rate: Some("1000000/s".parse().unwrap()),
        ..KeyPolicy::default()
    };
    VerifyFixture::new(store, count, &policy)
}

fn verify(c: &mut Criterion) {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let now = 2;
    // The same with few keys (all in cache): the difference is memory latency.
    let small = fixture(1000);
    let mut j = 0usize;
    c.bench_function("verify_1k_keys", |b| {
        b.iter(|| {
            j = (j + 7919) % small.len();
            assert!(small.verify(black_box(small.key(j)), ip, now));
        })
    });
    // The presented key is copied out of the table before timing, as a
    // request's key sits in a freshly received (cached) buffer; the index,
    // entry and limiter are then as cold as that many keys make them.
    let mut big = None;
    for (count, name) in [(100_000, "verify_100k_keys"), (1_000_000, "verify_1m_keys")] {
        let keys = fixture(count);
        let mut i = 0usize;
        c.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i = (i + 7919) % count;
                    keys.key(i).to_string()
                },
                |presented| black_box(keys.verify(black_box(&presented), ip, now)),
                BatchSize::SmallInput,
            )
        });
        big = Some(keys);
    }
    let big = big.unwrap();
    let unknown = AccessKeySecret::generate("kw").unwrap();
    c.bench_function("verify_unknown_key", |b| b.iter(|| black_box(big.verify(black_box(unknown.expose()), ip, now))));
    c.bench_function("verify_garbled_key", |b| {
        b.iter(|| black_box(big.verify(black_box("kw_notakeyatall0000000000000000000000000000000000000"), ip, now)))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
