//! What the exchange says its own API key may do: withdrawals, transfers,
//! margin, futures, trading, its trusted addresses and its expiry, read
//! from the exchange's key-information endpoint (Binance
//! `apiRestrictions`, Bybit `query-api`, OKX `account/config`, …). The
//! safest deployment is an exchange key that cannot do more than keyward's
//! keys on it need, usable only from keyward's address: [`assess`] names
//! each exchange-side setting that is broader, by the name the exchange's
//! own API management page gives it.

use crate::CanonicalRequest;
use crate::check::AnswerShape;
use serde_json::Value;
use std::net::IpAddr;

/// What an exchange key may do, as the exchange reports it (`None`: the
/// exchange does not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// Withdrawals (moving funds off the exchange).
    pub withdraw: Option<bool>,
    /// Internal, universal or sub-account transfers.
    pub transfer: Option<bool>,
    /// Margin trading or borrowing.
    pub margin: Option<bool>,
    /// Futures or other derivatives.
    pub futures: Option<bool>,
    /// Placing orders at all.
    pub trade: Option<bool>,
    /// Whether the key works only from trusted addresses.
    pub ip_restricted: Option<bool>,
    /// The trusted addresses (or networks), as the exchange lists them.
    pub ips: Vec<String>,
    /// When the key (or its trading permission) expires, ms since the epoch.
    pub expires_ms: Option<i64>,
}

/// The names of the settings on the exchange's API management page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// The page itself.
    pub page: &'static str,
    /// The withdrawal permission.
    pub withdraw: &'static str,
    /// The transfer permission.
    pub transfer: &'static str,
    /// Margin or borrowing.
    pub margin: &'static str,
    /// Futures or derivatives.
    pub futures: &'static str,
    /// Trading.
    pub trade: &'static str,
    /// The trusted-address restriction.
    pub ip: &'static str,
}

/// A call made before the key-information call, whose answer completes it
/// (HTX's key query needs the account's UID, which `GET /v2/user/uid` gives).
#[derive(Debug, Clone)]
pub struct FirstCall {
    /// The signed read call.
    pub request: CanonicalRequest,
    /// The query parameters its answer gives the key-information call.
    pub params: ParamsFrom,
}

/// Reads the query parameters a first call's answer gives.
pub type ParamsFrom = fn(&Value) -> Result<Vec<(String, String)>, String>;

/// How to ask an exchange about its key.
#[derive(Debug, Clone)]
pub struct KeyInfoCall {
    /// The signed read call.
    pub request: CanonicalRequest,
    /// A call made first, whose answer gives `request` more parameters.
    pub first: Option<FirstCall>,
    /// How the exchange says it refused.
    pub answer: AnswerShape,
    /// Reads the answer; the second argument is the account's API key (an
    /// exchange that lists every key of the account is searched for it).
    pub parse: fn(&Value, &str) -> Result<KeyInfo, String>,
    /// The settings' names on the exchange's page.
    pub settings: KeySettings,
}

/// What keyward's own keys on an account need the exchange key to allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Some key may withdraw.
    pub withdraw: bool,
    /// Some key may transfer.
    pub transfer: bool,
    /// Some key may borrow.
    pub borrow: bool,
    /// Some key may trade (or cancel).
    pub trade: bool,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The exchange key is broader than it needs to be, or will stop working soon.
    Warning,
    /// keyward cannot tell (the exchange does not say, or keyward's address is unknown).
    Note,
}

/// One finding of [`assess`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The exchange-side setting concerned, by its name on the exchange's page.
    pub setting: String,
    /// What to do, for people.
    pub message: String,
}

const WEEK_MS: i64 = 7 * 86_400_000;

/// True when `ip` is one of the exchange's trusted entries (an address or a network).
fn listed(ips: &[String], ip: IpAddr) -> bool {
    ips.iter().any(|entry| {
        let entry = entry.trim();
        entry.parse::<IpAddr>().is_ok_and(|a| a == ip) || entry.parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&ip))
    })
}

/// Compares what the exchange key allows with what keyward's keys need,
/// and its trusted addresses with keyward's `egress` addresses (empty:
/// unknown). `exchange` names the exchange in the messages.
pub fn assess(
    exchange: &str,
    info: &KeyInfo,
    settings: &KeySettings,
    needs: Needs,
    egress: &[IpAddr],
    now_ms: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let page = settings.page;
    let mut broader = |allowed: Option<bool>, needed: bool, setting: &str, what: &str| {
        match allowed {
        Some(true) if !needed => out.push(Finding {
            severity: Severity::Warning,
            setting: setting.to_string(),
            message: format!(
                "the {exchange} key allows {what}, and no keyward key on this account may: switch off \"{setting}\" on {page}"
            ),
        }),
        None if !needed && !setting.is_empty() => out.push(Finding {
            severity: Severity::Note,
            setting: setting.to_string(),
            message: format!("{exchange} does not say whether its key allows {what}: check \"{setting}\" on {page}"),
        }),
        _ => {}
    }
    };
    broader(info.withdraw, needs.withdraw, settings.withdraw, "withdrawals");
    broader(info.transfer, needs.transfer, settings.transfer, "transfers");
    broader(info.margin, needs.borrow, settings.margin, "margin and borrowing");
    broader(info.trade, needs.trade, settings.trade, "trading");
    let ours = egress.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let (severity, message) = match (info.ip_restricted, egress.is_empty(), info.ips.is_empty()) {
        (Some(false), _, _) => (
            Severity::Warning,
            format!(
                "the {exchange} key works from any address: set \"{}\" on {page} to keyward's address{}",
                settings.ip,
                if egress.is_empty() { String::new() } else { format!(" ({ours})") }
            ),
        ),
        (Some(true), true, _) => (
            Severity::Note,
            format!(
                "the {exchange} key is bound to {}; keyward does not know its own egress address (start the server with --egress-ip)",
                if info.ips.is_empty() { "trusted addresses".to_string() } else { info.ips.join(", ") }
            ),
        ),
        (Some(true), false, true) => (
            Severity::Note,
            format!(
                "the {exchange} key is bound to trusted addresses {exchange} does not list: make sure keyward's address ({ours}) is among them under \"{}\"",
                settings.ip
            ),
        ),
        (Some(true), false, false) if !egress.iter().any(|ip| listed(&info.ips, *ip)) => (
            Severity::Warning,
            format!(
                "keyward's address ({ours}) is not among the {exchange} key's trusted addresses ({}): the exchange will refuse keyward's requests; add it under \"{}\" on {page}",
                info.ips.join(", "),
                settings.ip
            ),
        ),
        (None, _, _) if !settings.ip.is_empty() => (
            Severity::Note,
            format!(
                "{exchange} does not say whether its key is bound to addresses: check \"{}\" on {page}",
                settings.ip
            ),
        ),
        _ => (Severity::Note, String::new()),
    };
    if !message.is_empty() {
        out.push(Finding { severity, setting: settings.ip.to_string(), message });
    }
    if let Some(exp) = info.expires_ms {
        if exp <= now_ms {
            out.push(Finding {
                severity: Severity::Warning,
                setting: "expiry".into(),
                message: format!("the {exchange} key (or its trading permission) has expired: renew it on {page}"),
            });
        } else if exp - now_ms <= WEEK_MS {
            out.push(Finding {
                severity: Severity::Warning,
                setting: "expiry".into(),
                message: format!(
                    "the {exchange} key (or its trading permission) expires within {} days: renew it on {page}",
                    ((exp - now_ms) as u64).div_ceil(86_400_000)
                ),
            });
        }
    }
    out
}

/// A JSON value read as a boolean the way exchanges write them: `true`,
/// `1`, `"1"`, `"true"` (and the opposites). Anything else is unknown.
pub fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A list of addresses as exchanges write them: a JSON array, or one string
/// separated by commas, semicolons or spaces; empty entries dropped.
pub fn address_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).map(str::to_string).collect(),
        Some(Value::String(s)) => {
            s.split([',', ';', ' ']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
        }
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|x| !x.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: KeySettings = KeySettings {
        page: "the API management page",
        withdraw: "Enable Withdrawals",
        transfer: "Permits Universal Transfer",
        margin: "Enable Margin",
        futures: "Enable Futures",
        trade: "Enable Spot & Margin Trading",
        ip: "Restrict access to trusted IPs only",
    };

    #[test]
    fn a_broad_key_warns_by_setting_and_a_tight_one_passes() {
        let egress = ["203.0.113.7".parse().unwrap()];
        let broad = KeyInfo {
            withdraw: Some(true),
            transfer: Some(true),
            margin: Some(false),
            futures: Some(false),
            trade: Some(true),
            ip_restricted: Some(false),
            ips: vec![],
            expires_ms: None,
        };
        let needs = Needs { trade: true, ..Needs::default() };
        let found = assess("binance", &broad, &S, needs, &egress, 0);
        let settings: Vec<_> =
            found.iter().filter(|f| f.severity == Severity::Warning).map(|f| f.setting.as_str()).collect();
        assert_eq!(
            settings,
            ["Enable Withdrawals", "Permits Universal Transfer", "Restrict access to trusted IPs only"]
        );
        assert!(found[0].message.contains("switch off \"Enable Withdrawals\""), "{}", found[0].message);

        let tight = KeyInfo {
            withdraw: Some(false),
            transfer: Some(false),
            margin: Some(false),
            trade: Some(true),
            ip_restricted: Some(true),
            ips: vec!["203.0.113.0/24".into()],
            ..KeyInfo::default()
        };
        assert_eq!(assess("binance", &tight, &S, needs, &egress, 0), []);
        // keyward's address missing from the list.
        let elsewhere = KeyInfo { ips: vec!["198.51.100.1".into()], ..tight.clone() };
        let found = assess("binance", &elsewhere, &S, needs, &egress, 0);
        assert!(found[0].message.contains("not among"), "{found:?}");
        // A withdrawal that keyward keys may make is needed, so not a warning.
        let w = KeyInfo { withdraw: Some(true), ..tight };
        assert_eq!(
            assess("binance", &w, &S, Needs { withdraw: true, trade: true, ..Needs::default() }, &egress, 0),
            []
        );
    }

    #[test]
    fn expiry_soon_or_past_warns() {
        let info = KeyInfo { expires_ms: Some(3 * 86_400_000), ..KeyInfo::default() };
        let s = KeySettings { withdraw: "", transfer: "", margin: "", trade: "", ip: "", ..S };
        let found = assess("okx", &info, &s, Needs::default(), &[], 0);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("within 3 days"), "{found:?}");
        assert!(assess("okx", &info, &s, Needs::default(), &[], 4 * 86_400_000)[0].message.contains("has expired"));
    }

    #[test]
    fn flags_and_lists_in_the_exchanges_spellings() {
        assert_eq!(flag(Some(&serde_json::json!(true))), Some(true));
        assert_eq!(flag(Some(&serde_json::json!(0))), Some(false));
        assert_eq!(flag(Some(&serde_json::json!("1"))), Some(true));
        assert_eq!(flag(Some(&serde_json::json!("maybe"))), None);
        assert_eq!(address_list(Some(&serde_json::json!("1.2.3.4, 5.6.7.8"))), ["1.2.3.4", "5.6.7.8"]);
        assert_eq!(address_list(Some(&serde_json::json!(["1.2.3.4"]))), ["1.2.3.4"]);
        assert!(address_list(Some(&serde_json::json!(""))).is_empty());
    }
}
