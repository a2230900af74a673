//! Incident response on an exchange account: freezing it in one step
//! (every bot key on it disabled, nothing signed for it, open orders
//! cancelled on request), unfreezing it (each key back as it was), asking
//! the exchange what its key may do (`check`), and keeping the exchange's
//! cancel-on-disconnect timer armed (`dead_man`).
//!
//! Callers authorize and admit, and put the decision on the audit log
//! before calling here; what each step did comes back as a summary for the
//! answer and the log. Never logs a secret; the exchange's answers are
//! reported in its own words, trimmed.

mod check;
mod dead_man;

pub(crate) use check::{CheckReport, Egress, KeySettingsSeen};
pub(crate) use dead_man::DeadMen;

use crate::controls::{Controls, Frozen};
use crate::error::Result;
use crate::exchange::{CallResult, Exchanges};
use crate::keys::{Admitted, KEYWARD_NAMESPACE, KeyEntry, Keys};
use crate::seal::Unsealed;
use keyward_core::clock::{Clock, rfc3339};
use keyward_core::policy::KeyState;
use keyward_core::scope::{Scope, glob_match};
use serde::Serialize;
use std::sync::Arc;

/// A key a freeze or unfreeze acted on, or left alone.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyNote {
    /// Key id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Why it was left alone (kept keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What a freeze did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FreezeSummary {
    /// The account.
    pub account: String,
    /// Since when it is frozen (RFC 3339); earlier than now when it already was.
    pub frozen_at: String,
    /// It was frozen already (this call disabled any key enabled meanwhile, and cancelled if asked).
    pub already_frozen: bool,
    /// Why, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Keys disabled now (they answer `key_disabled`).
    pub keys_disabled: Vec<KeyNote>,
    /// Keys with a scope on the account left as they were, and why.
    pub keys_kept: Vec<KeyNote>,
    /// Open orders: whether cancelling was asked, and each call's result.
    pub cancel_orders: bool,
    /// The cancel-all calls and what the exchange said.
    pub cancel_calls: Vec<CallResult>,
    /// How many of them failed.
    pub cancel_failed: usize,
}

/// What an unfreeze did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct UnfreezeSummary {
    /// The account.
    pub account: String,
    /// Keys enabled again.
    pub keys_enabled: Vec<KeyNote>,
    /// Keys the freeze disabled that stay disabled (another account of
    /// theirs is still frozen, or they were revoked meanwhile).
    pub keys_still_disabled: Vec<KeyNote>,
}

/// The incident service.
#[derive(Debug)]
pub(crate) struct Incident {
    keys: Arc<Keys>,
    controls: Arc<Controls>,
    exchanges: Arc<Exchanges>,
    clock: Arc<dyn Clock>,
    /// Dead-man timers this node keeps armed.
    pub(crate) dead_men: DeadMen,
    /// keyward's own egress addresses (`--egress-ip`).
    pub(crate) egress: Egress,
}

/// True when a scope names the account (any class).
fn names_account(scopes: &[Scope], account: &str) -> bool {
    scopes.iter().any(|s| matches!(s, Scope::Account(glob, _) if glob_match(glob, account)))
}

/// Operators' keys stay on in a freeze: they are needed to respond, and
/// they cannot sign for the frozen account either.
fn operator(k: &KeyEntry) -> bool {
    k.policy.scopes.iter().any(|s| matches!(s, Scope::SysAdmin | Scope::KeyAdmin | Scope::Approve))
}

fn note(k: &KeyEntry, why: Option<&str>) -> KeyNote {
    KeyNote { id: k.id.to_string(), name: k.name.to_string(), why: why.map(str::to_string) }
}

impl Incident {
    /// The service.
    pub(crate) fn new(
        keys: Arc<Keys>,
        controls: Arc<Controls>,
        exchanges: Arc<Exchanges>,
        clock: Arc<dyn Clock>,
        egress: Egress,
    ) -> Self {
        Self { keys, controls, exchanges, clock, dead_men: DeadMen::default(), egress }
    }

    /// The keys of keyward's namespace with a scope on `account`.
    fn keys_on(&self, account: &str) -> Vec<Arc<KeyEntry>> {
        self.keys
            .all_sorted()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| &*k.namespace == KEYWARD_NAMESPACE && names_account(&k.policy.scopes, account))
            .collect()
    }

    /// Freezes `account`: nothing is signed for it from now on
    /// (`account_frozen`), every active key with a scope on it but the
    /// operators' is disabled in one ledger write (`key_disabled`, marked
    /// with the account so only an unfreeze enables it), and with `cancel`,
    /// every open order is cancelled through the exchange's cancel-all calls.
    pub(crate) async fn freeze(
        &self,
        admitted: &Admitted,
        unsealed: &Arc<Unsealed>,
        account: &str,
        by: &str,
        reason: Option<String>,
        cancel: bool,
    ) -> Result<FreezeSummary> {
        // Exists, and is an exchange account (before anything changes).
        self.exchanges.account(unsealed, account).await?;
        let now = self.clock.now_ms();
        let mark = Frozen { at_ms: now, by: by.to_string(), reason: reason.clone() };
        let (controls, already) = self
            .controls
            .update(unsealed, account, |c| {
                let already = c.frozen.is_some();
                if !already {
                    c.frozen = Some(mark.clone());
                }
                Ok(already)
            })
            .await?;
        let now = self.clock.now_ms();
        let (mut to_disable, mut kept) = (Vec::new(), Vec::new());
        for k in self.keys_on(account) {
            let state = k.effective_state(now);
            if k.tampered {
                kept.push(note(&k, Some("its stored record failed its integrity check; it is refused anyway")));
            } else if operator(&k) {
                kept.push(note(
                    &k,
                    Some("an operator key (sys:admin, key:admin or approve); it cannot sign for a frozen account"),
                ));
            } else if k.state == KeyState::Active {
                to_disable.push(k.id.to_string());
            } else {
                kept.push(note(&k, Some(&format!("already {}", state.as_str()))));
            }
        }
        let name = account.to_string();
        let disabled = self
            .keys
            .change_many(admitted, unsealed, &to_disable, |rec, policy| {
                if rec.state != KeyState::Active.as_str() {
                    return Ok(false);
                }
                rec.state = KeyState::Disabled.as_str().to_string();
                if !policy.frozen_by.contains(&name) {
                    policy.frozen_by.push(name.clone());
                }
                Ok(true)
            })
            .await?;
        let cancel_calls = if cancel {
            let plan = self.exchanges.account(unsealed, account).await?.exchange.cancel_all();
            self.exchanges.run_sweeps(unsealed, account, plan).await
        } else {
            Vec::new()
        };
        let frozen = controls.frozen.unwrap_or(mark);
        Ok(FreezeSummary {
            account: account.to_string(),
            frozen_at: rfc3339(frozen.at_ms),
            already_frozen: already,
            reason: frozen.reason,
            keys_disabled: disabled.iter().map(|k| note(k, None)).collect(),
            keys_kept: kept,
            cancel_orders: cancel,
            cancel_failed: cancel_calls.iter().filter(|c| !c.ok).count(),
            cancel_calls,
        })
    }

    /// Unfreezes `account` (an approved request, or at once where
    /// approvals are not in force): signing resumes, and each key the
    /// freeze disabled is enabled again unless another frozen account
    /// still holds it or it left `disabled` meanwhile (revoked, compromised).
    pub(crate) async fn unfreeze(
        &self,
        admitted: &Admitted,
        unsealed: &Arc<Unsealed>,
        account: &str,
    ) -> Result<UnfreezeSummary> {
        self.controls
            .update(unsealed, account, |c| {
                c.frozen = None;
                Ok(())
            })
            .await?;
        let held: Vec<Arc<KeyEntry>> = self
            .keys
            .all_sorted()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k.policy.frozen_by.iter().any(|a| a == account))
            .collect();
        let ids: Vec<String> = held.iter().map(|k| k.id.to_string()).collect();
        let name = account.to_string();
        let changed = self
            .keys
            .change_many(admitted, unsealed, &ids, |rec, policy| {
                if !policy.frozen_by.contains(&name) {
                    return Ok(false);
                }
                policy.frozen_by.retain(|a| a != &name);
                if policy.frozen_by.is_empty() && rec.state == KeyState::Disabled.as_str() {
                    rec.state = KeyState::Active.as_str().to_string();
                }
                Ok(true)
            })
            .await?;
        let (enabled, still): (Vec<_>, Vec<_>) = changed.iter().partition(|k| k.state == KeyState::Active);
        Ok(UnfreezeSummary {
            account: account.to_string(),
            keys_enabled: enabled.iter().map(|k| note(k, None)).collect(),
            keys_still_disabled: still.iter().map(|k| note(k, None)).collect(),
        })
    }
}
