//! keyward's server: the HTTP API in front of the store.
//!
//! Modules follow capabilities and depend one way:
//! `serve` → `http` (router, extractors, error type, client address,
//! OpenAPI, routes) → services (`auth`, `keys`, `secrets`, `exchange`,
//! `audit`, `seal`, `alerts`, `metrics`) → `keyward-core`,
//! `keyward-exchanges`, `keyward-store`. A service takes the narrow handles
//! it needs (store, barrier, auditor, clock), never a request or a route.
//!
//! Every request walks one pipeline: parse → identify the caller →
//! authorize → admit (limits spent last) → audit the decision → act →
//! audit the outcome → respond.
//!
//! No module logs a request body, a header value or a secret.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unreachable_pub)]

mod alerts;
mod approvals;
mod audit;
mod auth;
mod config;
mod controls;
mod error;
mod exchange;
mod follow;
mod http;
mod incident;
pub mod init;
/// Audit archives: the file format, written by the server, read by `keyward audit verify --archive`.
pub use audit::archive as audit_archive;
mod keys;
mod metrics;
mod rotation;
mod seal;
mod secrets;
mod serve;
mod spin;

pub use config::{AlertConfig, ApprovalConfig, AuditRetention, RuntimeConfig, SinkConfig, ThrottleConfig};
pub use seal::hsm;
pub use serve::{ConnectionLimits, DatabaseUrl, ServerOptions, StartError, open_store, run};

/// The OpenAPI document of the HTTP API (what `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    http::openapi::json()
}

/// What the in-process verification benchmark (`benches/verify.rs`)
/// drives: identification against an index of many keys, as a request pays
/// it before its handler runs. Not an API.
#[doc(hidden)]
pub mod bench {
    use crate::auth::find_key;
    use crate::keys::{KEYWARD_NAMESPACE, KeyIndex, Keys, new_record};
    use crate::seal::Unsealed;
    use keyward_core::access_key::AccessKeySecret;
    use keyward_core::clock::SystemClock;
    use keyward_core::keyring::{Keyring, RootKey};
    use keyward_core::policy::KeyPolicy;
    use std::net::IpAddr;
    use std::sync::Arc;

    /// `count` keys with `policy`, indexed in memory, and the keys themselves.
    #[derive(Debug)]
    pub struct VerifyFixture {
        keys: Keys,
        unsealed: Unsealed,
        secrets: Vec<AccessKeySecret>,
        record: crate::audit::Record,
    }

    impl VerifyFixture {
        /// Builds the index (a store is needed only for writes, which the benchmark never makes).
        pub fn new(store: Arc<dyn keyward_store::Store>, count: usize, policy: &KeyPolicy) -> Self {
            let unsealed = Unsealed::new(Keyring::new(RootKey::from_slice(&[7; 32]).expect("root key"), 1));
            let mut secrets = Vec::with_capacity(count);
            let mut records = Vec::with_capacity(count);
            for i in 0..count {
                let s = AccessKeySecret::generate("kw").expect("random");
                let name = format!("bot-{i}");
                records
                    .push(new_record(&unsealed, &s, &name, None, KEYWARD_NAMESPACE, policy, None, 1).expect("record"));
                secrets.push(s);
            }
            let keys = Keys::new(store, Arc::new(SystemClock), crate::keys::KeysConfig::default());
            keys.install(KeyIndex::load(&records, &unsealed, |_| true, None)).expect("index");
            Self { keys, unsealed, secrets, record: crate::audit::Record::default() }
        }

        /// How many keys.
        pub fn len(&self) -> usize {
            self.secrets.len()
        }

        /// True when there are none.
        pub fn is_empty(&self) -> bool {
            self.secrets.is_empty()
        }

        /// The `i`th key.
        pub fn key(&self, i: usize) -> &str {
            self.secrets[i].expose()
        }

        /// Identifies `presented` from `ip` at `now_ms` and spends a rate
        /// token: true when every check passed.
        pub fn verify(&self, presented: &str, ip: IpAddr, now_ms: i64) -> bool {
            match find_key(&self.keys, &self.unsealed, presented, ip, now_ms, &self.record) {
                Ok((key, _)) => key.policy.allows_address(ip) && key.limiter().is_none_or(|l| l.check().is_ok()),
                Err(_) => false,
            }
        }
    }
}
