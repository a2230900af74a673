#![allow(clippy::unwrap_used)]
//! In-process access-key verification with 100,000 keys loaded: checksum,
//! keyed hash (HMAC-SHA-256 with the pepper), index lookup, row-MAC verdict,
//! lifecycle, allowlist and rate limit: everything a request pays before
//! its handler runs, for a key without a use count (which adds one durable
//! write by design).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyward_core::access_key::AccessKeySecret;
use keyward_core::keyring::{Keyring, RootKey};
use keyward_core::scope::Scope;
use keyward_server::auth::identify;
use keyward_server::keys::{KEYWARD_NAMESPACE, KeyIndex, KeyPolicy};
use keyward_server::routes::keys::new_record;
use keyward_server::state::Unsealed;
use std::hint::black_box;
use std::net::IpAddr;

const KEYS: usize = 100_000;

fn setup(count: usize) -> (Unsealed, Vec<AccessKeySecret>) {
    let ring = Keyring::new(RootKey::from_slice(&[7; 32]).unwrap(), 1);
    let policy = KeyPolicy {
        scopes: vec!["secret:read:apps/*".parse::<Scope>().unwrap()],
        allow_ips: vec!["127.0.0.0/8".parse().unwrap()],
        rate: Some("1000000/s".parse().unwrap()),
        ..KeyPolicy::default()
    };
    let mut secrets = Vec::with_capacity(count);
    let mut records = Vec::with_capacity(count);
    for i in 0..count {
        let s = AccessKeySecret::generate("kw").unwrap();
        records.push(new_record(&ring, &s, &format!("bot-{i}"), None, KEYWARD_NAMESPACE, &policy, None, 1).unwrap());
        secrets.push(s);
    }
    let keys = KeyIndex::load(&records, &ring);
    (Unsealed::new(ring, keys), secrets)
}

fn verify(c: &mut Criterion) {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let now = 2;
    // The same with few keys (all in cache): the difference is memory latency.
    let (small, few) = setup(1000);
    let mut j = 0usize;
    c.bench_function("verify_1k_keys", |b| {
        b.iter(|| {
            j = (j + 7919) % few.len();
            let (key, _) = identify(&small, black_box(few[j].expose()), ip, now).unwrap();
            black_box(key.limiter.as_ref().map(|l| l.check().is_ok()))
        })
    });
    let (unsealed, secrets) = setup(KEYS);
    let mut i = 0usize;
    // The presented key is copied out of the table before timing, as a
    // request's key sits in a freshly received (cached) buffer; the index,
    // entry and limiter are then as cold as 100,000 keys make them.
    c.bench_function("verify_100k_keys", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % KEYS;
                secrets[i].expose().to_string()
            },
            |presented| {
                let (key, _) = identify(&unsealed, black_box(&presented), ip, now).unwrap();
                assert!(key.policy.allow_ips.iter().any(|n| n.contains(&ip)));
                let ok = key.limiter.as_ref().map(|l| l.check().is_ok()).unwrap_or(true);
                black_box(ok)
            },
            BatchSize::SmallInput,
        )
    });
    let unknown = AccessKeySecret::generate("kw").unwrap();
    c.bench_function("verify_unknown_key", |b| {
        b.iter(|| black_box(identify(&unsealed, black_box(unknown.expose()), ip, now).is_err()))
    });
    c.bench_function("verify_garbled_key", |b| {
        b.iter(|| {
            black_box(
                identify(&unsealed, black_box("kw_notakeyatall0000000000000000000000000000000000000"), ip, now)
                    .is_err(),
            )
        })
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
