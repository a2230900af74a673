//! One pipeline for the sign API and the proxy, after the HTTP edge parsed
//! the request into its canonical form and identified the caller:
//!
//! authorize (a scope on the account, the endpoint's class, for the sign API
//! a signature that binds the request, order guards on pure inputs, and a
//! request the exchange module can sign; the signature stays here) → admit
//! last (rate, exchange budget, daily-notional reservation, one use) → audit
//! the decision → act (hand the signed request out, or forward it) → audit
//! the outcome.
//!
//! Nothing is spent before the caller is authorized. A reservation is given
//! back when a later step refuses, or when the exchange cannot have received
//! the request (no connection was made: refused, DNS, TLS). An order whose
//! outcome is unknown (sent, then timed out or cut off) keeps its
//! reservation: it may have been placed.

use super::accounts::{Account, account_error};
use super::forward::{self, Answer};
use super::guard_plan::{GuardPlan, guard_plan};
use super::{Exchanges, PREFIX};
use crate::audit::Verdict;
use crate::auth::Caller;
use crate::controls::{Planned, Reserved};
use crate::error::{Error, Result};
use crate::keys::Admitted;
use http::HeaderValue;
use keyward_core::audit::AuditEntry;
use keyward_core::decision::DenyReason;
use keyward_core::guard::Passed;
use keyward_core::scope::{Class, Need};
use keyward_exchanges::{CanonicalRequest, Outgoing, SignContext};
use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::Arc;

/// The receive window keyward asks for (exchanges refuse older requests).
pub(super) const RECV_WINDOW_MS: u64 = 5000;

/// Client-given time and nonce (accepted on test-clock servers only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    /// Timestamp to sign with.
    pub timestamp_ms: Option<i64>,
    /// Nonce to sign with.
    pub nonce: Option<u64>,
}

/// Which door an exchange request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// `POST /v1/sign/{account}`: the signed request goes back to the caller.
    SignApi,
    /// `/proxy/{account}/…`: keyward forwards it; no signature leaves.
    Proxy,
}

/// A request that passed authorization.
#[derive(Debug)]
struct Authorized {
    name: String,
    account: Arc<Account>,
    class: Class,
    creq: CanonicalRequest,
    base: String,
    /// The key's guards and the orders they hold, when it has guards and
    /// this is a trade: what can be decided without a price was decided.
    guard: Option<GuardPlan>,
    /// The symbols a trade orders on.
    symbols: Vec<String>,
    /// The withdrawal, when this is one, passed by the account's
    /// allowlist; its cap is spent at admission.
    withdrawal: Option<Planned>,
    /// The signed request (unsigned for public endpoints); it leaves
    /// keyward only once the request is admitted.
    out: Outgoing,
}

/// Daily notional taken for an order, to give back if it goes nowhere.
#[derive(Debug)]
struct Reservation {
    key_id: String,
    day: i64,
    micros: i64,
    /// The session it was made in (a give-back writes the ledger too).
    unsealed: Arc<crate::seal::Unsealed>,
}

/// A request that passed admission.
#[derive(Debug)]
struct Admission {
    _proof: Admitted,
    reservation: Option<Reservation>,
    /// A withdrawal counted against its cap.
    withdrawal: Option<Reserved>,
}

fn micros(d: Decimal) -> i64 {
    (d * Decimal::from(1_000_000)).trunc().try_into().unwrap_or(i64::MAX)
}

/// The refusal of a frozen account.
fn frozen(name: &str, f: &crate::controls::Frozen) -> Error {
    let reason = f.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    Error::new(
        DenyReason::AccountFrozen,
        format!(
            "exchange account {name} is frozen since {}{reason}: nothing is signed for it until `keyward account unfreeze {name}` is approved",
            keyward_core::clock::rfc3339(f.at_ms)
        ),
    )
}

/// A withdraw-class request read strictly and held to the account's
/// allowlist (its cap is spent at admission). A call that moves nothing
/// (history, quotas, a cancellation) needs no destination.
fn withdrawal_plan(
    caller: &Caller,
    name: &str,
    account: &Account,
    controls: &crate::controls::AccountControls,
    creq: &CanonicalRequest,
) -> Result<Option<Planned>> {
    let w = account.exchange.withdrawal(creq).map_err(|e| {
        Error::new(DenyReason::WithdrawPolicy, format!("keyward reads withdrawals strictly and refuses this one: {e}"))
    })?;
    let Some(w) = w else { return Ok(None) };
    caller.record.detail(
        serde_json::json!({"withdrawal": {"asset": w.asset, "amount": w.amount.to_string(), "address": w.address,
            "network": w.network, "memo": w.memo}})
        .to_string(),
    );
    controls.plan_withdrawal(name, w).map(Some)
}

/// Checks an account name: one secret path segment under `exchanges/`
/// (a `/`, even percent-encoded, would name a secret that is no account).
pub(crate) fn check_account_name(name: &str) -> Result<()> {
    let segment =
        !name.contains('/') && keyward_core::secret_path::SecretPath::parse(&format!("{PREFIX}{name}")).is_ok();
    if segment { Ok(()) } else { Err(Error::new(crate::error::Code::InvalidPath, "invalid account name")) }
}

impl Exchanges {
    /// The sign API: what to send to the exchange, signed.
    pub(crate) async fn sign_request(
        &self,
        caller: &Caller,
        account: &str,
        creq: CanonicalRequest,
        overrides: Overrides,
    ) -> Result<Signed> {
        if overrides != Overrides::default() && !self.config.allow_overrides {
            return Err(Error::invalid(
                "keyward sets timestamps and nonces itself; overrides are accepted only on a test-clock server",
            ));
        }
        let a = self.authorize(caller, Via::SignApi, account, creq, overrides).await?;
        let admission = self.admit(caller, &a).await?;
        let a = self.with_shared_nonce(a, &admission, overrides).await?;
        Ok(Signed::new(a))
    }

    /// The proxy: the request signed and forwarded, and the exchange's
    /// answer. The decision is on record (durably, for a sensitive class)
    /// before anything is forwarded; the outcome after.
    pub(crate) async fn proxy_request(
        &self,
        caller: &Caller,
        account: &str,
        creq: CanonicalRequest,
        client_headers: Vec<(&'static str, HeaderValue)>,
    ) -> Result<Answer> {
        let a = self.authorize(caller, Via::Proxy, account, creq, Overrides::default()).await?;
        let admission = self.admit(caller, &a).await?;
        let a = self.with_shared_nonce(a, &admission, Overrides::default()).await?;
        let decision = match self.record_decision(caller, &a).await {
            Ok(entry) => entry,
            Err(e) => {
                self.release(&admission).await;
                return Err(e);
            }
        };
        let result = self.forward(a, &admission, client_headers).await;
        self.record_outcome(decision, &result);
        result
    }

    /// Authorization: nothing is read about the account before the key is
    /// known to hold a scope on it, so a key without one learns nothing
    /// (not even whether the account exists).
    async fn authorize(
        &self,
        caller: &Caller,
        via: Via,
        name: &str,
        mut creq: CanonicalRequest,
        overrides: Overrides,
    ) -> Result<Authorized> {
        if !caller.has_scope_on_account(name) {
            return Err(Error::scope_missing(format!("this key has no scope on account {name}")));
        }
        let account = self.account(&caller.unsealed, name).await?;
        let controls = self.controls.get(&caller.unsealed, name).await?;
        if let Some(f) = &controls.frozen {
            return Err(frozen(name, f));
        }
        let exchange = account.exchange;
        creq.remove_params(exchange.auth_params());
        let class = exchange.classify(&creq).ok_or_else(|| {
            Error::new(
                DenyReason::EndpointUnknown,
                format!(
                    "{} {} is not in keyward's {} catalog; it is refused until reviewed",
                    creq.method.as_str(),
                    creq.path,
                    exchange.kind()
                ),
            )
        })?;
        // The target (`{name} {method} {path}`) is on the record already:
        // both doors name it before identifying the caller.
        caller.record.class(class);
        if class != Class::Public && !caller.may(Need::Account(name, class)) {
            caller.require(
                Need::Account(name, class),
                &format!("{} on account {name} (account:{name}:{})", class.as_str(), class.as_str()),
            )?;
        }
        if via == Via::SignApi && class != Class::Public && !exchange.signature_binds_request() {
            caller.require(
                Need::Account(name, Class::Admin),
                &format!(
                    "signing for {name}: {} signatures do not cover the path, so a signature handed out could be replayed on another endpoint; the sign API needs account:{name}:admin (use the proxy instead)",
                    exchange.kind()
                ),
            )?;
        }
        let base = account.base_url(&creq.path)?;
        let (guard, symbols) = if matches!(class, Class::Trade | Class::Borrow) {
            guard_plan(caller, &account, &creq)?
        } else {
            (None, Vec::new())
        };
        let withdrawal =
            if class == Class::Withdraw { withdrawal_plan(caller, name, &account, &controls, &creq)? } else { None };
        let out = self.outgoing(name, &account, class, &creq, overrides)?;
        Ok(Authorized { name: name.to_string(), account, class, creq, base, guard, symbols, withdrawal, out })
    }

    /// Admission, last: rate, the account's shared exchange budget, the
    /// guards that need the exchange's price, the key's daily notional, then
    /// one use. A price is asked of the exchange only for a request within
    /// the key's rate and the account's budget, so a key cannot make keyward
    /// call the exchange more often than it may call it itself. Whatever a
    /// later step refuses gives the reservation back.
    async fn admit(&self, caller: &Caller, a: &Authorized) -> Result<Admission> {
        let rate = caller.spend_rate()?;
        let now = self.clock.now_ms();
        self.budgets.check(&a.name, a.account.exchange.budget_bucket(&a.creq.path), now)?;
        if caller.key.policy.uses.is_some() && caller.key.uses_remaining.load(std::sync::atomic::Ordering::Relaxed) == 0
        {
            // Known spent (the store stays the authority for the last use).
            return Err(Error::new(DenyReason::UsesExhausted, "this key has no uses left"));
        }
        let passed = match &a.guard {
            Some(plan) => Some(self.evaluate(caller, a, plan).await?),
            None => None,
        };
        let reservation = self.reserve(caller, passed.as_ref(), now).await?;
        let withdrawal = match &a.withdrawal {
            Some(planned) => {
                match self.controls.reserve(&caller.unsealed, &a.name, planned, &caller.record.request_id()).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.give_back(reservation.as_ref()).await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        match caller.take_use(rate).await {
            Ok(proof) => Ok(Admission { _proof: proof, reservation, withdrawal }),
            Err(e) => {
                self.give_back(reservation.as_ref()).await;
                if let Some(w) = &withdrawal {
                    self.controls.release(w).await;
                }
                Err(e)
            }
        }
    }

    /// Several nodes on one database: an exchange that refuses a nonce not
    /// above the last (Kraken) gets one from the account's counter in the
    /// database, taken once the request is admitted (a refused request
    /// moves no counter), and the request is signed again with it.
    async fn with_shared_nonce(
        &self,
        mut a: Authorized,
        admission: &Admission,
        overrides: Overrides,
    ) -> Result<Authorized> {
        if !self.store.shared()
            || !a.account.exchange.nonce_must_increase()
            || overrides.nonce.is_some()
            || a.class == Class::Public
        {
            return Ok(a);
        }
        let floor = (self.clock.now_ms().max(0) as u64).saturating_mul(1000);
        let nonce = match self.store.next_nonce(&a.name, floor).await {
            Ok(n) => n,
            Err(e) => {
                self.release(admission).await;
                return Err(e.into());
            }
        };
        a.out = self.outgoing(&a.name, &a.account, a.class, &a.creq, Overrides { nonce: Some(nonce), ..overrides })?;
        Ok(a)
    }

    /// The guards with reference prices, fetched from the exchange's ticker
    /// (what the ticker says of the budget is learned like any answer).
    async fn evaluate(&self, caller: &Caller, a: &Authorized, plan: &GuardPlan) -> Result<Passed> {
        let orders = self.looked_up(caller, &a.name, &a.account, &a.creq, plan).await?;
        let learn = |path: &str, headers: &http::HeaderMap| {
            let now = self.clock.now_ms();
            let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            if let Some(u) = a.account.exchange.usage(path, &header, now) {
                self.budgets.record(&a.name, u, now);
            }
        };
        let refs =
            self.references.gather(&self.client, &plan.limits, &orders, &a.name, &a.account, &a.creq, &learn).await?;
        plan.limits.evaluate(&orders, &|s| refs.get(s).copied()).map_err(|r| Error::new(DenyReason::OrderGuard, r.0))
    }

    async fn reserve(&self, caller: &Caller, passed: Option<&Passed>, now_ms: i64) -> Result<Option<Reservation>> {
        let Some(Passed { notional, daily_cap: Some(cap) }) = passed else { return Ok(None) };
        let r = Reservation {
            key_id: caller.key.id.to_string(),
            day: now_ms.div_euclid(86_400_000),
            micros: micros(*notional),
            unsealed: caller.unsealed.clone(),
        };
        if !self.keys.reserve_notional(&r.unsealed, &r.key_id, r.day, r.micros, micros(*cap)).await? {
            return Err(Error::new(
                DenyReason::OrderGuard,
                format!("this order would take the key past its daily notional of {cap}"),
            ));
        }
        Ok(Some(r))
    }

    async fn give_back(&self, reservation: Option<&Reservation>) {
        let Some(r) = reservation else { return };
        if let Err(e) = self.keys.release_notional(&r.unsealed, &r.key_id, r.day, r.micros).await {
            tracing::warn!(error = %e, key_id = %r.key_id, "could not give back a daily-notional reservation");
        }
    }

    async fn release(&self, admission: &Admission) {
        self.give_back(admission.reservation.as_ref()).await;
        if let Some(w) = &admission.withdrawal {
            self.controls.release(w).await;
        }
    }

    /// What to send: public requests unsigned, everything else signed with
    /// keyward's own time (on the exchange's clock) and nonce.
    pub(super) fn outgoing(
        &self,
        name: &str,
        account: &Account,
        class: Class,
        creq: &CanonicalRequest,
        overrides: Overrides,
    ) -> Result<Outgoing> {
        if class == Class::Public {
            return Ok(Outgoing {
                method: creq.method,
                path: creq.path.clone(),
                query: creq.query_string(),
                headers: Vec::new(),
                body: creq.body_bytes().map(|(t, b)| (t.to_string(), b)),
            });
        }
        let now = overrides.timestamp_ms.unwrap_or_else(|| self.clocks.exchange_now(name, self.clock.now_ms()));
        let ctx = SignContext {
            timestamp_ms: now,
            nonce: overrides.nonce.unwrap_or_else(|| self.next_nonce(now)),
            recv_window_ms: RECV_WINDOW_MS,
        };
        if account.exchange.signs_host() {
            // The signature covers the host the request goes to (HTX).
            let base = account.base_url(&creq.path)?;
            let host =
                url::Url::parse(&base).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default();
            return account.exchange.sign_for(&host, creq, &account.creds, &ctx).map_err(account_error);
        }
        account.exchange.sign(creq, &account.creds, &ctx).map_err(account_error)
    }

    /// Forwards the signed request; learns the budget and clock from the answer.
    async fn forward(
        &self,
        a: Authorized,
        admission: &Admission,
        client_headers: Vec<(&'static str, HeaderValue)>,
    ) -> Result<Answer> {
        let out = a.out;
        let path = out.path.clone();
        let keep_body = matches!(a.class, Class::Trade | Class::Borrow);
        self.traded.note(&a.name, &path, &a.symbols);
        let sent_at = std::time::Instant::now();
        match forward::send(&self.client, &a.base, out, client_headers, keep_body).await {
            Ok(answer) => {
                self.metrics.upstream(&a.name, sent_at.elapsed().as_secs_f64());
                let now = self.clock.now_ms();
                let header = |n: &str| answer.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                if let Some(u) = a.account.exchange.usage(&path, &header, now) {
                    self.budgets.record(&a.name, u, now);
                }
                self.clocks.observe(&a.name, header("date").as_deref(), now);
                Ok(answer)
            }
            Err(failure) => {
                if !failure.maybe_received {
                    self.release(admission).await;
                }
                Err(failure.error)
            }
        }
    }

    /// The decision entry, before anything is forwarded; durable first for
    /// a sensitive class. The request's own entry is then this one.
    async fn record_decision(&self, caller: &Caller, a: &Authorized) -> Result<AuditEntry> {
        let note = caller.record.note();
        let entry = note.entry(Verdict::Allow, "", &a.name);
        if a.class.is_sensitive() {
            self.auditor.record_durable(entry.clone()).await?;
        } else {
            self.auditor.record(entry.clone());
        }
        caller.record.recorded();
        Ok(entry)
    }

    /// The outcome entry: the exchange's status and order ids, or why it failed.
    fn record_outcome(&self, decision: AuditEntry, result: &Result<Answer>) {
        let (code, detail) = match result {
            Ok(answer) if answer.order_ids.is_empty() => (answer.status.to_string(), String::new()),
            Ok(answer) => {
                (answer.status.to_string(), serde_json::json!({"exchange_order_ids": answer.order_ids}).to_string())
            }
            Err(e) => (e.code.as_str().to_string(), String::new()),
        };
        self.auditor.record(AuditEntry { decision: Verdict::Outcome.as_str().into(), code, detail, ..decision });
    }
}

/// The answer of `POST /v1/sign/{account}`: what to send, signed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Signed {
    method: &'static str,
    url: String,
    /// Header name → value, in the order to send them.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    headers: HeaderList,
    body: Option<String>,
    class: &'static str,
}

impl Signed {
    fn new(a: Authorized) -> Self {
        let out = a.out;
        let url = out.url(&a.base);
        let mut headers = out.headers;
        let body = out.body.map(|(t, b)| {
            headers.push(("Content-Type".into(), t));
            // Signers build bodies from text; invalid UTF-8 would be a bug, shown, not hidden.
            String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        });
        Self { method: out.method.as_str(), url, headers: HeaderList(headers), body, class: a.class.as_str() }
    }
}

/// Headers as a JSON object, in the order the signer gave them.
#[derive(Debug)]
struct HeaderList(Vec<(String, String)>);

impl Serialize for HeaderList {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
