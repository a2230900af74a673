//! Calls keyward makes on an account by itself, for no bot: cancelling
//! every open order when an account is frozen, (re)arming the exchange's
//! dead-man timer, asking the exchange what its API key may do. They are
//! signed like any request, with keyward's own time and nonce, sent to the
//! account's upstream, and each call's result is reported as the exchange
//! gave it (its status and its own words), never a secret.

use super::accounts::Account;
use super::pipeline::Overrides;
use super::{Exchanges, forward};
use crate::error::Result;
use crate::seal::Unsealed;
use keyward_core::scope::Class;
use keyward_exchanges::keyinfo::KeyInfo;
use keyward_exchanges::sweep::distinct;
use keyward_exchanges::{CanonicalRequest, KeyInfoCall, Sweep};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

/// How many times a listing is asked again after its calls (a page of
/// open orders is bounded; the next listing holds the rest).
const LISTING_ROUNDS: usize = 5;

/// One call and what the exchange said.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CallResult {
    /// `DELETE /api/v3/openOrders symbol=BTCUSDT`.
    pub call: String,
    /// The exchange's status (none: it could not be reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Whether the exchange did it.
    pub ok: bool,
    /// What went wrong, in the exchange's words when it gave any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The symbols of the orders keyward sent for each account, with the path
/// each went to: a freeze or a dead-man timer that needs a symbol covers
/// them even when the exchange's listing of open orders fails or lags.
#[derive(Debug, Default)]
pub(super) struct Traded(Mutex<HashMap<String, BTreeSet<(String, String)>>>);

impl Traded {
    /// Notes the symbols of an order sent to `path`.
    pub(super) fn note(&self, account: &str, path: &str, symbols: &[String]) {
        if symbols.is_empty() {
            return;
        }
        if let Ok(mut m) = self.0.lock() {
            let set = m.entry(account.to_string()).or_default();
            for s in symbols {
                if set.len() < MAX_TRADED && !set.contains(&(path.to_string(), s.clone())) {
                    set.insert((path.to_string(), s.clone()));
                }
            }
        }
    }

    /// The symbols of orders sent for `account` on paths starting with `market`.
    fn on(&self, account: &str, market: &str) -> Vec<String> {
        let Ok(m) = self.0.lock() else { return Vec::new() };
        let mut out: Vec<String> = m
            .get(account)
            .into_iter()
            .flatten()
            .filter(|(path, _)| path.starts_with(market))
            .map(|(_, s)| s.clone())
            .collect();
        out.dedup();
        out
    }
}

/// Bound on the (path, symbol) pairs remembered per account.
const MAX_TRADED: usize = 10_000;

/// What an exchange answered to a call, and the account it was made for.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: bytes::Bytes,
    account: Arc<Account>,
}

fn describe(req: &CanonicalRequest) -> String {
    let mut d = format!("{} {}", req.method.as_str(), req.path);
    let params: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !params.is_empty() {
        d.push(' ');
        d.push_str(&params.join(" "));
    }
    if let Some((_, body)) = req.body_bytes() {
        let body = String::from_utf8_lossy(&body);
        d.push(' ');
        d.push_str(&body.chars().take(160).collect::<String>());
    }
    d
}

impl Exchanges {
    /// Signs and sends one of keyward's own calls on account `name`.
    pub(super) async fn own_call(
        &self,
        unsealed: &Unsealed,
        name: &str,
        class: Class,
        req: &CanonicalRequest,
    ) -> Result<Reply> {
        let account = self.account(unsealed, name).await?;
        let base = account.base_url(&req.path)?;
        let mut overrides = Overrides::default();
        if self.store.shared() && account.exchange.nonce_must_increase() {
            let floor = (self.clock.now_ms().max(0) as u64).saturating_mul(1000);
            overrides.nonce = Some(self.store.next_nonce(name, floor).await?);
        }
        let out = self.outgoing(name, &account, class, req, overrides)?;
        let path = out.path.clone();
        let answer = forward::send(&self.client, &base, out, Vec::new(), true).await.map_err(|f| f.error)?;
        let now = self.clock.now_ms();
        let header = |n: &str| answer.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(u) = account.exchange.usage(&path, &header, now) {
            self.budgets.record(name, u, now);
        }
        self.clocks.observe(name, header("date").as_deref(), now);
        let body = match answer.body {
            forward::AnswerBody::Whole(b) => b,
            forward::AnswerBody::Stream(_) => bytes::Bytes::new(),
        };
        Ok(Reply { status: answer.status, body, account })
    }

    /// One call, reported.
    async fn report(
        &self,
        unsealed: &Unsealed,
        name: &str,
        class: Class,
        req: &CanonicalRequest,
    ) -> (CallResult, Option<Reply>) {
        let call = describe(req);
        match self.own_call(unsealed, name, class, req).await {
            Ok(reply) => {
                let verdict = reply.account.exchange.credential_check().answer.accepted(reply.status, &reply.body);
                let result = CallResult { call, status: Some(reply.status), ok: verdict.is_ok(), error: verdict.err() };
                (result, Some(reply))
            }
            Err(e) => (CallResult { call, status: None, ok: false, error: Some(e.message) }, None),
        }
    }

    /// Runs a plan (cancel-all, dead-man): each call, and each listing
    /// with the calls it gives, until the listing is empty. Every call's
    /// result is reported; a failure does not stop the others.
    pub(crate) async fn run_sweeps(&self, unsealed: &Unsealed, name: &str, steps: Vec<Sweep>) -> Vec<CallResult> {
        let mut results = Vec::new();
        for step in steps {
            match step {
                Sweep::Call(req) => results.push(self.report(unsealed, name, Class::Cancel, &req).await.0),
                Sweep::PerSymbol { list, path, field, market, call } => {
                    let (listed, reply) = self.report(unsealed, name, Class::Read, &list).await;
                    let mut symbols = match reply.filter(|_| listed.ok).map(|r| distinct(&r.body, path, field)) {
                        Some(Ok(s)) => s,
                        Some(Err(why)) => {
                            results.push(CallResult { error: Some(why), ok: false, ..listed });
                            Vec::new()
                        }
                        None => {
                            results.push(listed);
                            Vec::new()
                        }
                    };
                    for s in self.traded.on(name, market) {
                        if !symbols.contains(&s) {
                            symbols.push(s);
                        }
                    }
                    for s in symbols {
                        results.push(self.report(unsealed, name, Class::Cancel, &call(&s)).await.0);
                    }
                }
                Sweep::Listed { list, then } => {
                    for _ in 0..LISTING_ROUNDS {
                        let (listed, reply) = self.report(unsealed, name, Class::Read, &list).await;
                        let Some(reply) = reply.filter(|_| listed.ok) else {
                            results.push(listed);
                            break;
                        };
                        let calls = match then(&reply.body) {
                            Ok(calls) => calls,
                            Err(why) => {
                                results.push(CallResult { error: Some(why), ok: false, ..listed });
                                break;
                            }
                        };
                        if calls.is_empty() {
                            break;
                        }
                        let mut any_ok = false;
                        for call in &calls {
                            let (r, _) = self.report(unsealed, name, Class::Cancel, call).await;
                            any_ok |= r.ok;
                            results.push(r);
                        }
                        if !any_ok {
                            break;
                        }
                    }
                }
            }
        }
        results
    }

    /// Asks the exchange what the account's API key may do.
    pub(crate) async fn key_info(
        &self,
        unsealed: &Unsealed,
        name: &str,
        call: &KeyInfoCall,
    ) -> (CallResult, std::result::Result<KeyInfo, String>) {
        let mut request = call.request.clone();
        if let Some(first) = &call.first {
            let (result, reply) = self.report(unsealed, name, Class::Read, &first.request).await;
            let params = match reply {
                Some(reply) if result.ok => serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .map_err(|_| "the answer is not JSON".to_string())
                    .and_then(|v| (first.params)(&v)),
                _ => Err(result.error.clone().unwrap_or_else(|| "the exchange did not answer".into())),
            };
            match params {
                Ok(p) => request.query.extend(p),
                Err(e) => return (result, Err(e)),
            }
        }
        let (result, reply) = self.report(unsealed, name, Class::Read, &request).await;
        let info = match reply {
            Some(reply) if result.ok => serde_json::from_slice::<serde_json::Value>(&reply.body)
                .map_err(|_| "the answer is not JSON".to_string())
                .and_then(|v| (call.parse)(&v, &reply.account.creds.api_key)),
            _ => Err(result.error.clone().unwrap_or_else(|| "the exchange did not answer".into())),
        };
        (result, info)
    }
}
