//! The dead-man switch: for each account with `dead_man_s` set, this node
//! keeps the exchange's cancel-on-disconnect timer armed, calling it again
//! every third of its timeout. If keyward stops, is sealed (it can no
//! longer sign) or loses the exchange, the timer runs out and the exchange
//! cancels the account's open orders by itself.
//!
//! Every node on a shared database arms the same timers: each call only
//! pushes the deadline back, so more nodes are only more heartbeats.

use super::Incident;
use crate::exchange::CallResult;
use crate::seal::Unsealed;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each account's timer was last armed, and whether that worked.
#[derive(Debug, Default)]
pub(crate) struct DeadMen {
    armed: Mutex<HashMap<String, (Instant, bool)>>,
}

/// An account whose timer was armed or failed to arm on this tick.
#[derive(Debug)]
pub(crate) struct Armed {
    /// The account.
    pub account: String,
    /// Every call made for it worked.
    pub ok: bool,
    /// It worked on the tick before (a change is worth an alert).
    pub was_ok: Option<bool>,
    /// The calls.
    pub calls: Vec<CallResult>,
}

impl Incident {
    /// Arms every timer due: those of accounts with a dead-man timeout
    /// whose last arming is a third of it old (or failed).
    pub(crate) async fn arm_dead_men(&self, unsealed: &Unsealed) -> Vec<Armed> {
        let Ok(all) = self.controls.all(unsealed).await else { return Vec::new() };
        let mut out = Vec::new();
        for (account, controls) in all {
            let Some(timeout_s) = controls.dead_man_s else {
                if let Ok(mut m) = self.dead_men.armed.lock() {
                    m.remove(&account);
                }
                continue;
            };
            let every = Duration::from_millis(u64::from(timeout_s) * 1000 / 3).max(Duration::from_secs(1));
            let last = self.dead_men.armed.lock().ok().and_then(|m| m.get(&account).copied());
            if last.is_some_and(|(at, ok)| ok && at.elapsed() < every) {
                continue;
            }
            out.push(self.arm(unsealed, &account, timeout_s, last.map(|(_, ok)| ok)).await);
        }
        out
    }

    /// Arms (`timeout_s` > 0) or disarms (0) one account's timer now.
    pub(crate) async fn arm(&self, unsealed: &Unsealed, account: &str, timeout_s: u32, was_ok: Option<bool>) -> Armed {
        let plan = match self.exchanges.account(unsealed, account).await {
            Ok(a) => a.exchange.dead_man(),
            Err(e) => {
                let failed = CallResult { call: "dead-man".into(), status: None, ok: false, error: Some(e.message) };
                return self.note(account, vec![failed], was_ok, timeout_s);
            }
        };
        let calls = match plan {
            Some(d) => self.exchanges.run_sweeps(unsealed, account, (d.arm)(timeout_s)).await,
            None => vec![CallResult {
                call: "dead-man".into(),
                status: None,
                ok: false,
                error: Some("this exchange has no cancel-on-disconnect timer a REST call arms".into()),
            }],
        };
        self.note(account, calls, was_ok, timeout_s)
    }

    fn note(&self, account: &str, calls: Vec<CallResult>, was_ok: Option<bool>, timeout_s: u32) -> Armed {
        let ok = calls.iter().all(|c| c.ok);
        if let Ok(mut m) = self.dead_men.armed.lock() {
            if timeout_s == 0 {
                m.remove(account);
            } else {
                m.insert(account.to_string(), (Instant::now(), ok));
            }
        }
        Armed { account: account.to_string(), ok, was_ok, calls }
    }

    /// Whether each account's timer is armed on this node (for metrics).
    pub(crate) fn dead_man_states(&self) -> Vec<(String, bool)> {
        self.dead_men.armed.lock().map(|m| m.iter().map(|(a, (_, ok))| (a.clone(), *ok)).collect()).unwrap_or_default()
    }
}
