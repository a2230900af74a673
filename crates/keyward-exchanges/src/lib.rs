//! Exchange knowledge for keyward, one module per exchange behind one
//! [`Exchange`] trait: how to sign, which endpoints exist and what class each
//! belongs to, where the client puts its key, and which hosts are the
//! exchange's own. Pure: no I/O, no clock (time and nonces are passed in).
//!
//! Adding an exchange touches one new file and one line in [`registry`].
//! Never logs. Error messages name fields and parameters, never their values.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod binance;
pub mod bitget;
pub mod borrow;
pub mod bybit;
pub mod canonical;
pub mod catalog;
pub mod check;
pub mod coinbase;
pub mod credentials;
pub mod deribit;
pub mod funds;
pub mod gate;
pub mod htx;
pub mod keygen;
pub mod keyinfo;
pub mod kraken;
pub mod kucoin;
pub mod mac;
pub mod okx;
pub mod orders;
pub mod sweep;

pub use canonical::{Body, CanonicalRequest, Method, NotCanonical};
pub use catalog::Endpoint;
pub use check::{AnswerShape, CredentialCheck};
pub use credentials::{Credentials, PrivateKey};
pub use funds::Withdrawal;
pub use keygen::{KeyAlg, KeyFamily, KeyPair};
pub use keyinfo::{FirstCall, KeyInfo, KeyInfoCall, KeySettings};
pub use keyward_core::scope::Class;
pub use sweep::{DeadMan, Sweep};

/// Why signing failed. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A required account field is missing.
    #[error("the account has no {0} field")]
    MissingField(&'static str),
    /// An account field is malformed.
    #[error("the account's {field} field is malformed: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The request cannot be signed as given (e.g. a body the exchange does not take).
    #[error("cannot sign this request: {0}")]
    Request(String),
    /// The crypto library refused.
    #[error("signing failed")]
    Crypto,
}

/// Time and nonce for one signature. keyward alone sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignContext {
    /// Milliseconds since the epoch, corrected for the exchange's clock offset.
    pub timestamp_ms: i64,
    /// A strictly increasing nonce (exchanges that want one).
    pub nonce: u64,
    /// Receive window in milliseconds (at most 5000).
    pub recv_window_ms: u64,
}

/// What to send: method, path, encoded query, headers and body.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Method.
    pub method: Method,
    /// Path (no query).
    pub path: String,
    /// Encoded query string without `?` (may be empty).
    pub query: String,
    /// Headers to set, including the exchange's auth headers.
    pub headers: Vec<(String, String)>,
    /// Body: content type and bytes.
    pub body: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("body_len", &self.body.as_ref().map(|(_, b)| b.len()))
            .finish()
    }
}

impl Outgoing {
    /// Path and query as one request target.
    pub fn target(&self) -> String {
        canonical::request_target(&self.path, &self.query)
    }

    /// The whole URL: `base` (scheme and host, no trailing `/`), then the
    /// request target, built in one allocation.
    pub fn url(&self, base: &str) -> String {
        let mut url = String::with_capacity(base.len() + self.path.len() + 1 + self.query.len());
        url.push_str(base);
        url.push_str(&self.path);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        url
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Request-budget usage an exchange reported on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Which budget: requests in one bucket share it (e.g. Binance spot weight).
    pub bucket: &'static str,
    /// Spent in the current window.
    pub used: u64,
    /// The window's limit.
    pub limit: u64,
    /// Milliseconds until the window resets.
    pub resets_in_ms: u64,
}

/// One exchange.
pub trait Exchange: Send + Sync + std::fmt::Debug + 'static {
    /// The account type (`binance`).
    fn kind(&self) -> &'static str;
    /// Default upstream per path prefix, longest prefix first wins.
    fn base_urls(&self) -> &'static [(&'static str, &'static str)];
    /// The exchange's own hosts and testnets: the only upstreams allowed
    /// without an explicit server allowlist.
    fn own_hosts(&self) -> &'static [&'static str];
    /// The endpoint catalog.
    fn catalog(&self) -> &'static [Endpoint];
    /// The class the exchange's own catalog gives a request. Exchanges whose
    /// class depends on a parameter (auto-borrow on a margin order) override this.
    fn classify_listed(&self, req: &CanonicalRequest) -> Option<Class> {
        catalog::lookup(self.catalog(), req.method, &req.path)
    }
    /// The class of a request: the exchange's catalog first, then the
    /// fund-movers table (an endpoint the catalog does not list whose name
    /// says it moves funds, manages keys or borrows); `None` is
    /// `endpoint_unknown`. Not overridden.
    fn classify(&self, req: &CanonicalRequest) -> Option<Class> {
        self.classify_listed(req).or_else(|| catalog::fund_mover(self.kind(), req.method, &req.path))
    }
    /// The signed read-class call (account or balance) that shows whether a
    /// set of credentials works, and how the exchange says it does not.
    fn credential_check(&self) -> CredentialCheck;
    /// The header the exchange's own clients put the API key in.
    fn key_header(&self) -> &'static str;
    /// The query parameter the exchange's own clients put the API key in,
    /// when they put it in the URL rather than a header (HTX's
    /// `AccessKeyId`): the proxy looks for a keyward key there too.
    fn key_param(&self) -> Option<&'static str> {
        None
    }
    /// True when the signature covers the host the request goes to (HTX):
    /// the server then signs with [`Exchange::sign_for`] and the upstream's host.
    fn signs_host(&self) -> bool {
        false
    }
    /// Auth headers a client may send, removed before forwarding.
    fn auth_headers(&self) -> &'static [&'static str];
    /// Auth parameters a client may send (signature, timestamp, …), removed before signing.
    fn auth_params(&self) -> &'static [&'static str] {
        &[]
    }
    /// False when the signature does not cover the path (or the body): such a
    /// signature handed out could be replayed elsewhere.
    fn signature_binds_request(&self) -> bool {
        true
    }
    /// True when the exchange refuses a nonce not above the last one it saw
    /// for the key (Kraken): several keyward nodes on one database then
    /// take the nonces of an account from one counter in the database.
    fn nonce_must_increase(&self) -> bool {
        false
    }
    /// Key algorithms the exchange accepts for a key pair made by its user
    /// (`keyward account keygen`); empty when only the exchange makes keys.
    fn self_generated_keys(&self) -> &'static [KeyFamily] {
        &[]
    }
    /// Account fields the exchange needs, checked when the account is stored.
    fn check_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), SignError> {
        let creds = Credentials::from_fields(get)?;
        if creds.private_key.is_none() {
            creds.secret()?;
        }
        Ok(())
    }
    /// The orders a trade request places or amends, for guards. `Ok(vec![])`
    /// for trade endpoints that size no order (leverage, margin mode); an
    /// error where size fields cannot be read strictly (refused to guarded keys).
    fn orders(&self, _req: &CanonicalRequest) -> Result<Vec<orders::Order>, orders::GuardError> {
        Err(orders::GuardError(format!("keyward does not read {} orders yet", self.kind())))
    }
    /// For an amendment whose orders [`Exchange::orders`] cannot read
    /// because it names no symbol: the order's lookup.
    fn order_lookup(&self, _req: &CanonicalRequest) -> Option<orders::Lookup> {
        None
    }
    /// The public request for a symbol's last price (reference for guards).
    fn ticker(&self, _order_path: &str, _symbol: &str, _req: &CanonicalRequest) -> Option<CanonicalRequest> {
        None
    }
    /// The last price in a ticker answer.
    fn parse_ticker(&self, _body: &[u8]) -> Option<rust_decimal::Decimal> {
        None
    }
    /// The budget bucket a request path spends from (shared by every bot on the account).
    fn budget_bucket(&self, _path: &str) -> Option<&'static str> {
        None
    }
    /// Reads the exchange's usage headers on an answer (public calls included).
    fn usage(&self, _path: &str, _header: &dyn Fn(&str) -> Option<String>, _now_ms: i64) -> Option<Usage> {
        None
    }
    /// The withdrawal a withdraw-class request makes, read strictly for
    /// the account's address allowlist and caps: `Ok(None)` for a
    /// withdraw-class call that moves nothing (history, quotas, a
    /// cancellation), an error for anything keyward cannot read (refused
    /// with `withdraw_policy`).
    fn withdrawal(&self, req: &CanonicalRequest) -> Result<Option<Withdrawal>, orders::GuardError> {
        Err(orders::GuardError(format!(
            "keyward does not read {} withdrawals at {} {}",
            self.kind(),
            req.method.as_str(),
            req.path
        )))
    }
    /// The exchange's key-information call (what its API key may do), when
    /// it has one; `creds` gives the key for exchanges that take it as a
    /// parameter.
    fn key_info(&self, _creds: &Credentials) -> Option<KeyInfoCall> {
        None
    }
    /// The calls that cancel every open order on the account (spot and the
    /// derivatives the catalog lists).
    fn cancel_all(&self) -> Vec<Sweep> {
        Vec::new()
    }
    /// The exchange's cancel-on-disconnect timer, where it has one that a
    /// REST call arms.
    fn dead_man(&self) -> Option<DeadMan> {
        None
    }
    /// Signs a canonical request bound for `host`, the upstream's host name
    /// (lower-case, no port). Exchanges whose signature covers the host
    /// override this; for the others it is [`Exchange::sign`].
    fn sign_for(
        &self,
        _host: &str,
        req: &CanonicalRequest,
        creds: &Credentials,
        ctx: &SignContext,
    ) -> Result<Outgoing, SignError> {
        self.sign(req, creds, ctx)
    }
    /// Signs a canonical request.
    fn sign(&self, req: &CanonicalRequest, creds: &Credentials, ctx: &SignContext) -> Result<Outgoing, SignError>;
}

/// Every supported exchange, by account type.
pub fn registry() -> &'static [&'static dyn Exchange] {
    &[
        &binance::Binance,
        &bitget::Bitget,
        &bybit::Bybit,
        &coinbase::Coinbase,
        &deribit::Deribit,
        &gate::Gate,
        &htx::Htx,
        &kraken::Kraken,
        &kucoin::Kucoin,
        &okx::Okx,
    ]
}

/// The exchange for an account type.
pub fn by_kind(kind: &str) -> Option<&'static dyn Exchange> {
    registry().iter().copied().find(|e| e.kind() == kind)
}

/// Header list helper: name and value.
pub(crate) fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_the_base_then_the_request_target() {
        let mut out = Outgoing {
            method: Method::Get,
            path: "/api/v3/account".into(),
            query: String::new(),
            headers: Vec::new(),
            body: None,
        };
        for query in ["", "timestamp=1&signature=ab"] {
            out.query = query.into();
            assert_eq!(out.url("https://api.binance.com"), format!("https://api.binance.com{}", out.target()));
        }
    }
}
