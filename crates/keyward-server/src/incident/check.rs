//! `keyward account check`: what the exchange says its API key may do,
//! compared with what keyward's keys on the account need, and whether the
//! exchange binds the key to keyward's egress address. Run on request and
//! once a day per account (a metric and an alert when it fails).

use super::Incident;
use crate::error::Result;
use crate::exchange::CallResult;
use crate::seal::Unsealed;
use keyward_core::clock::rfc3339;
use keyward_core::policy::KeyState;
use keyward_core::scope::{Class, Need, any_grants};
use keyward_exchanges::keyinfo::{Finding, KeyInfo, Needs, Severity, assess};
use serde::Serialize;
use std::net::IpAddr;

/// keyward's own egress addresses, as the exchanges see them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Egress {
    /// `--egress-ip`: given by the operator (behind NAT, the public address).
    pub given: Vec<IpAddr>,
}

/// What the exchange reported of its key, for the answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct KeySettingsSeen {
    /// Withdrawals enabled (`null`: the exchange does not say).
    pub withdraw: Option<bool>,
    /// Transfers enabled.
    pub transfer: Option<bool>,
    /// Margin or borrowing enabled.
    pub margin: Option<bool>,
    /// Futures enabled.
    pub futures: Option<bool>,
    /// Trading enabled.
    pub trade: Option<bool>,
    /// Bound to trusted addresses.
    pub ip_restricted: Option<bool>,
    /// The trusted addresses the exchange lists.
    pub ips: Vec<String>,
    /// When the key (or its trading permission) expires (RFC 3339).
    pub expires_at: Option<String>,
}

impl From<&KeyInfo> for KeySettingsSeen {
    fn from(i: &KeyInfo) -> Self {
        Self {
            withdraw: i.withdraw,
            transfer: i.transfer,
            margin: i.margin,
            futures: i.futures,
            trade: i.trade,
            ip_restricted: i.ip_restricted,
            ips: i.ips.clone(),
            expires_at: i.expires_ms.map(rfc3339),
        }
    }
}

/// The answer of `keyward account check`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckReport {
    /// The account.
    pub account: String,
    /// Its exchange.
    pub exchange: String,
    /// When (RFC 3339).
    pub checked_at: String,
    /// True when the exchange answered and nothing needs changing (notes may remain).
    pub ok: bool,
    /// The exchange has no key-information endpoint: nothing could be asked.
    pub supported: bool,
    /// The call made, and the exchange's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallResult>,
    /// What the exchange says its key may do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySettingsSeen>,
    /// What keyward's keys on the account need.
    pub needs: Vec<&'static str>,
    /// keyward's egress addresses compared with the key's trusted ones.
    pub egress: Vec<String>,
    /// Each setting broader than needed (a warning naming it), or unknown
    /// (a note): `{severity: warning|note, setting, message}`.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
    /// Why the check could not be made, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Egress {
    /// The given addresses, or else the local address this host sends from
    /// towards `host` (right unless a NAT sits between keyward and the
    /// exchange: then give --egress-ip).
    async fn for_host(&self, host: &str, port: u16) -> Vec<IpAddr> {
        if !self.given.is_empty() {
            return self.given.clone();
        }
        let Ok(mut addrs) = tokio::net::lookup_host((host, port)).await else { return Vec::new() };
        let Some(remote) = addrs.next() else { return Vec::new() };
        let any: std::net::SocketAddr =
            if remote.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        // A UDP "connect" sends nothing; it only asks the kernel for the route.
        let local = std::net::UdpSocket::bind(any).and_then(|s| s.connect(remote).and_then(|_| s.local_addr()));
        local.map(|l| vec![l.ip()]).unwrap_or_default()
    }
}

impl Incident {
    /// What keyward's keys on `account` need the exchange key to allow: the
    /// classes some live bot key may use there (operators' keys, which hold
    /// every class on every account, say nothing of what bots need).
    fn needs(&self, account: &str) -> Needs {
        let now = self.clock.now_ms();
        let live: Vec<_> = self
            .keys_on(account)
            .into_iter()
            .filter(|k| !k.tampered && !super::operator(k))
            .filter(|k| matches!(k.effective_state(now), KeyState::Active | KeyState::Pending))
            .collect();
        let may = |c: Class| live.iter().any(|k| any_grants(&k.policy.scopes, Need::Account(account, c)));
        Needs {
            withdraw: may(Class::Withdraw),
            transfer: may(Class::Transfer),
            borrow: may(Class::Borrow),
            trade: may(Class::Trade) || may(Class::Cancel),
        }
    }

    /// Asks the exchange about `account`'s key and compares.
    pub(crate) async fn check(&self, unsealed: &Unsealed, account: &str) -> Result<CheckReport> {
        let acct = self.exchanges.account(unsealed, account).await?;
        let exchange = acct.exchange;
        let needs = self.needs(account);
        let needed: Vec<&'static str> = [
            (needs.trade, "trade"),
            (needs.borrow, "borrow"),
            (needs.transfer, "transfer"),
            (needs.withdraw, "withdraw"),
        ]
        .into_iter()
        .filter_map(|(n, what)| n.then_some(what))
        .collect();
        let now = self.clock.now_ms();
        let mut report = CheckReport {
            account: account.to_string(),
            exchange: exchange.kind().to_string(),
            checked_at: rfc3339(now),
            ok: false,
            supported: false,
            call: None,
            key: None,
            needs: needed,
            egress: Vec::new(),
            findings: Vec::new(),
            error: None,
        };
        let Some(call) = exchange.key_info(&acct.creds) else {
            report.error = Some(format!("{} has no endpoint that tells what its API key may do", exchange.kind()));
            return Ok(report);
        };
        report.supported = true;
        let egress = match acct.base_url(&call.request.path).ok().and_then(|b| url::Url::parse(&b).ok()) {
            Some(u) => {
                let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
                self.egress.for_host(&host, u.port_or_known_default().unwrap_or(443)).await
            }
            None => self.egress.given.clone(),
        };
        report.egress = egress.iter().map(ToString::to_string).collect();
        let (result, info) = self.exchanges.key_info(unsealed, account, &call).await;
        report.call = Some(result);
        match info {
            Ok(info) => {
                report.findings = assess(exchange.kind(), &info, &call.settings, needs, &egress, now);
                report.ok = !report.findings.iter().any(|f| f.severity == Severity::Warning);
                report.key = Some(KeySettingsSeen::from(&info));
            }
            Err(e) => report.error = Some(e),
        }
        Ok(report)
    }
}
