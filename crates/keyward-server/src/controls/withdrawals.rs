//! Withdrawal controls: a withdrawal goes only to a destination on its
//! account's allowlist (asset, address, network, memo), and within the
//! asset's cap over any 24 hours. The allowlist is checked when the request
//! is authorized (pure); the cap is spent at admission, last, as one
//! check-and-set write of the account's withdrawal ledger, and given back
//! when a later step refuses or the exchange cannot have received it.

use super::{ACCOUNTS, AccountControls, AllowedAddress, Controls};
use crate::error::{Error, Result};
use crate::seal::Unsealed;
use keyward_core::decision::DenyReason;
use keyward_exchanges::Withdrawal;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The window caps count over.
const WINDOW_MS: i64 = 24 * 3_600_000;

fn ledger_path(account: &str) -> String {
    format!("{ACCOUNTS}{account}/withdrawals")
}

/// One withdrawal counted against a cap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Counted {
    at_ms: i64,
    asset: String,
    amount: String,
    request_id: String,
}

/// The withdrawals of the last 24 hours (older ones are dropped on each write).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ledger {
    #[serde(default)]
    entries: Vec<Counted>,
}

impl Ledger {
    fn spent(&self, asset: &str, now_ms: i64) -> Decimal {
        self.entries
            .iter()
            .filter(|e| e.asset == asset && now_ms - e.at_ms < WINDOW_MS)
            .filter_map(|e| e.amount.parse::<Decimal>().ok())
            .sum()
    }
}

/// A withdrawal that passed the allowlist, with the cap it is held to.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The withdrawal.
    pub withdrawal: Withdrawal,
    /// The asset's cap over 24 hours, if it has one.
    pub cap: Option<Decimal>,
}

/// A withdrawal counted against its cap, to give back if it goes nowhere.
#[derive(Debug)]
pub(crate) struct Reserved {
    account: String,
    request_id: String,
    unsealed: Arc<Unsealed>,
}

fn refuse(message: String) -> Error {
    Error::new(DenyReason::WithdrawPolicy, message)
}

/// Addresses compare exactly, but for hex addresses (`0x…`), whose letters'
/// case is only a checksum.
fn same_address(a: &str, b: &str) -> bool {
    let hex =
        |s: &str| s.len() > 2 && s[..2].eq_ignore_ascii_case("0x") && s[2..].bytes().all(|c| c.is_ascii_hexdigit());
    if hex(a) && hex(b) { a.eq_ignore_ascii_case(b) } else { a == b }
}

impl AllowedAddress {
    /// True when `w` goes to this destination: the same asset and address;
    /// the same network when this entry names one; exactly this memo (none
    /// when it has none: a memo routes funds to someone else at an exchange's
    /// deposit address).
    pub(crate) fn matches(&self, w: &Withdrawal) -> bool {
        self.asset.eq_ignore_ascii_case(&w.asset)
            && same_address(&self.address, &w.address)
            && self.network.as_ref().is_none_or(|n| w.network.as_ref().is_some_and(|m| m.eq_ignore_ascii_case(n)))
            && self.memo == w.memo
    }
}

impl AccountControls {
    /// Authorizes a withdrawal against the allowlist; the cap it will be
    /// held to at admission.
    pub(crate) fn plan_withdrawal(&self, account: &str, w: Withdrawal) -> Result<Planned> {
        if !self.addresses.iter().any(|a| a.matches(&w)) {
            let dest = format!(
                "{} to {}{}{}",
                w.asset,
                w.address,
                w.network.as_deref().map(|n| format!(" on {n}")).unwrap_or_default(),
                w.memo.as_deref().map(|m| format!(" (memo {m})")).unwrap_or_default()
            );
            return Err(refuse(format!(
                "{dest} is not on account {account}'s withdrawal allowlist; add it with `keyward account allow-address {account} {} {}` (needs approvals)",
                w.asset, w.address
            )));
        }
        let cap = match self.caps.get(&w.asset) {
            Some(c) => Some(
                c.parse::<Decimal>()
                    .map_err(|_| Error::internal(&format!("the stored cap of {} is no decimal", w.asset)))?,
            ),
            None => None,
        };
        if let Some(cap) = cap
            && w.amount > cap
        {
            return Err(refuse(format!(
                "{} {} is over account {account}'s cap of {cap} {} per 24 hours",
                w.amount, w.asset, w.asset
            )));
        }
        Ok(Planned { withdrawal: w, cap })
    }
}

impl Controls {
    /// Counts a withdrawal against its asset's cap (nothing to count
    /// without one); refused with `withdraw_policy` when the last 24 hours'
    /// withdrawals and this one would pass it.
    pub(crate) async fn reserve(
        &self,
        unsealed: &Arc<Unsealed>,
        account: &str,
        planned: &Planned,
        request_id: &str,
    ) -> Result<Option<Reserved>> {
        let Some(cap) = planned.cap else { return Ok(None) };
        let w = &planned.withdrawal;
        let now = self.now_ms();
        let entry =
            Counted { at_ms: now, asset: w.asset.clone(), amount: w.amount.to_string(), request_id: request_id.into() };
        self.update_doc(unsealed, &ledger_path(account), |ledger: &mut Ledger| {
            ledger.entries.retain(|e| now - e.at_ms < WINDOW_MS);
            let spent = ledger.spent(&w.asset, now);
            if spent + w.amount > cap {
                return Err(refuse(format!(
                    "{} {} would take account {account}'s {} withdrawals in the last 24 hours to {}, over its cap of {cap}; {} are left",
                    w.amount,
                    w.asset,
                    w.asset,
                    spent + w.amount,
                    (cap - spent).max(Decimal::ZERO)
                )));
            }
            ledger.entries.push(entry.clone());
            Ok(())
        })
        .await?;
        Ok(Some(Reserved {
            account: account.to_string(),
            request_id: request_id.to_string(),
            unsealed: unsealed.clone(),
        }))
    }

    /// Gives a reservation back (the withdrawal went nowhere).
    pub(crate) async fn release(&self, reserved: &Reserved) {
        let result = self
            .update_doc(&reserved.unsealed, &ledger_path(&reserved.account), |ledger: &mut Ledger| {
                ledger.entries.retain(|e| e.request_id != reserved.request_id);
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e.message, account = %reserved.account, "could not give back a withdrawal reservation");
        }
    }

    /// What was withdrawn of each capped asset in the last 24 hours.
    pub(crate) async fn spent(&self, unsealed: &Unsealed, account: &str) -> Result<Vec<(String, Decimal)>> {
        let path = ledger_path(account);
        let Some(v) = self.secrets.current_opt(unsealed, &path).await? else { return Ok(Vec::new()) };
        let ledger: Ledger = super::parse(&path, Some(&v))?;
        let now = self.now_ms();
        let mut assets: Vec<String> = ledger.entries.iter().map(|e| e.asset.clone()).collect();
        assets.sort();
        assets.dedup();
        Ok(assets.into_iter().map(|a| (a.clone(), ledger.spent(&a, now))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(address: &str, network: Option<&str>, memo: Option<&str>) -> Withdrawal {
        Withdrawal {
            asset: "BTC".into(),
            amount: "0.5".parse().unwrap(),
            address: address.into(),
            network: network.map(str::to_string),
            memo: memo.map(str::to_string),
        }
    }

    fn entry(network: Option<&str>, memo: Option<&str>) -> AllowedAddress {
        AllowedAddress {
            asset: "BTC".into(),
            address: "bc1qcold".into(),
            network: network.map(str::to_string),
            memo: memo.map(str::to_string),
            added_ms: 0,
            by: "k".into(),
        }
    }

    #[test]
    fn a_destination_matches_exactly() {
        assert!(entry(None, None).matches(&w("bc1qcold", Some("BTC"), None)));
        assert!(entry(None, None).matches(&w("bc1qcold", None, None)));
        assert!(!entry(None, None).matches(&w("bc1qCOLD", None, None)), "bech32 is compared as given");
        assert!(entry(Some("BTC"), None).matches(&w("bc1qcold", Some("btc"), None)));
        assert!(!entry(Some("BTC"), None).matches(&w("bc1qcold", None, None)), "the network must be named");
        assert!(!entry(Some("BTC"), None).matches(&w("bc1qcold", Some("LIGHTNING"), None)));
        assert!(!entry(None, None).matches(&w("bc1qcold", None, Some("123"))), "a memo sends elsewhere");
        assert!(entry(None, Some("123")).matches(&w("bc1qcold", None, Some("123"))));
        assert!(!entry(None, Some("123")).matches(&w("bc1qcold", None, None)));
        let eth = AllowedAddress { address: "0xAbC0000000000000000000000000000000000001".into(), ..entry(None, None) };
        assert!(eth.matches(&w("0xabc0000000000000000000000000000000000001", None, None)), "hex case is a checksum");
    }

    #[test]
    fn the_allowlist_and_a_single_amount_over_the_cap_are_refused_before_admission() {
        let mut c = AccountControls { addresses: vec![entry(None, None)], ..AccountControls::default() };
        assert!(c.plan_withdrawal("a", w("bc1qelse", None, None)).is_err());
        assert!(c.plan_withdrawal("a", w("bc1qcold", None, None)).unwrap().cap.is_none());
        c.caps.insert("BTC".into(), "0.4".into());
        let e = c.plan_withdrawal("a", w("bc1qcold", None, None)).unwrap_err();
        assert_eq!(e.code.as_str(), "withdraw_policy");
        c.caps.insert("BTC".into(), "1".into());
        assert_eq!(c.plan_withdrawal("a", w("bc1qcold", None, None)).unwrap().cap, Some(Decimal::ONE));
    }

    #[test]
    fn the_window_is_24_hours() {
        let l = Ledger {
            entries: vec![
                Counted { at_ms: 0, asset: "BTC".into(), amount: "1".into(), request_id: "a".into() },
                Counted { at_ms: 10, asset: "BTC".into(), amount: "2".into(), request_id: "b".into() },
                Counted { at_ms: 10, asset: "ETH".into(), amount: "5".into(), request_id: "c".into() },
            ],
        };
        assert_eq!(l.spent("BTC", WINDOW_MS - 1), Decimal::from(3));
        assert_eq!(l.spent("BTC", WINDOW_MS), Decimal::from(2));
        assert_eq!(l.spent("BTC", WINDOW_MS + 10), Decimal::ZERO);
    }
}
