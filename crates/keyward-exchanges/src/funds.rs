//! Withdrawals as keyward's withdrawal controls see them: the asset, the
//! amount, the destination address, its network and its memo (tag), read
//! strictly from a withdraw-class request. A withdraw-class call that moves
//! nothing (history, quotas, a cancellation) reads as `None`; one keyward
//! cannot read (a gift card, an unknown parameter that could change where
//! the funds go, an amount that is no plain decimal) is an error, and the
//! server refuses it.

use crate::CanonicalRequest;
use crate::canonical::Body;
use keyward_core::order::{GuardError, decimal};
use rust_decimal::Decimal;
use serde_json::Value;

/// One withdrawal, as the exchange would carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The asset, upper-case (`BTC`).
    pub asset: String,
    /// How much leaves (as the request states it).
    pub amount: Decimal,
    /// Where it goes: an address, or for an exchange's own transfers, the
    /// recipient the exchange names (a Kraken withdrawal key's name).
    pub address: String,
    /// The network (chain), when the request names one.
    pub network: Option<String>,
    /// The memo or tag, when the request gives one.
    pub memo: Option<String>,
}

/// Where an exchange module finds each part of a withdrawal.
#[derive(Debug, Clone, Copy)]
pub struct WithdrawFields {
    /// The asset parameter.
    pub asset: &'static str,
    /// The amount parameter.
    pub amount: &'static str,
    /// The address parameter.
    pub address: &'static str,
    /// The network parameter, if the endpoint takes one.
    pub network: Option<&'static str>,
    /// The memo parameter, if the endpoint takes one.
    pub memo: Option<&'static str>,
    /// Every other parameter the endpoint may carry that changes neither
    /// where the funds go nor how much leaves (a client id, a fee flag).
    /// Anything else is refused: keyward does not guess what it does.
    pub harmless: &'static [&'static str],
}

fn refuse<T>(why: impl Into<String>) -> Result<T, GuardError> {
    Err(GuardError(why.into()))
}

/// The parameter names a request carries (query, form, top-level JSON).
/// A nested JSON value is refused unless its name is in `nested_ok` (a
/// travel-rule declaration, which routes nothing).
pub fn param_names(req: &CanonicalRequest, nested_ok: &[&str]) -> Result<Vec<String>, GuardError> {
    let mut names: Vec<String> = req.query.iter().map(|(k, _)| k.clone()).collect();
    match &req.body {
        Body::Empty => {}
        Body::Form(p) => names.extend(p.iter().map(|(k, _)| k.clone())),
        Body::Json(Value::Object(m)) => {
            for (k, v) in m {
                if matches!(v, Value::Object(_) | Value::Array(_)) && !nested_ok.contains(&k.as_str()) {
                    return refuse(format!("the withdrawal's {k} is nested; keyward reads flat withdrawals only"));
                }
                names.push(k.clone());
            }
        }
        Body::Json(_) => return refuse("a withdrawal body must be one JSON object"),
    }
    Ok(names)
}

/// A printable value without spaces or control characters, at most 256
/// bytes: what an address, asset, network or memo may look like.
fn plain(name: &str, v: &str) -> Result<String, GuardError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse(format!("the withdrawal's {name} is empty or not one printable word"));
    }
    Ok(v.to_string())
}

impl WithdrawFields {
    /// Reads a withdrawal strictly: every parameter known, the amount a
    /// plain positive decimal, the asset and address present.
    pub fn read(&self, req: &CanonicalRequest) -> Result<Withdrawal, GuardError> {
        let known: Vec<&str> = [self.asset, self.amount, self.address]
            .into_iter()
            .chain(self.network)
            .chain(self.memo)
            .chain(self.harmless.iter().copied())
            .collect();
        for name in param_names(req, self.harmless)? {
            if !known.contains(&name.as_str()) {
                return refuse(format!(
                    "the withdrawal carries {name:?}, which keyward does not read; it is refused rather than guessed"
                ));
            }
        }
        let get = |name: &str| req.param(name).filter(|v| !v.trim().is_empty());
        for name in [self.asset, self.amount, self.address].into_iter().chain(self.network).chain(self.memo) {
            if let Body::Json(Value::Object(m)) = &req.body
                && m.get(name).is_some_and(|v| !matches!(v, Value::String(_) | Value::Number(_) | Value::Null))
            {
                return refuse(format!("the withdrawal's {name} is not text"));
            }
        }
        let asset =
            plain(self.asset, &get(self.asset).ok_or_else(|| GuardError(format!("{} is missing", self.asset)))?)?;
        let amount_text = get(self.amount).ok_or_else(|| GuardError(format!("{} is missing", self.amount)))?;
        let amount = decimal(self.amount, amount_text.trim())?;
        if amount <= Decimal::ZERO {
            return refuse(format!("{} must be above zero", self.amount));
        }
        let address =
            plain(self.address, &get(self.address).ok_or_else(|| GuardError(format!("{} is missing", self.address)))?)?;
        let network = self.network.and_then(get).map(|v| plain("network", &v)).transpose()?;
        let memo = self.memo.and_then(get).map(|v| plain("memo", &v)).transpose()?;
        Ok(Withdrawal { asset: asset.to_ascii_uppercase(), amount, address, network, memo })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: WithdrawFields = WithdrawFields {
        asset: "coin",
        amount: "amount",
        address: "address",
        network: Some("network"),
        memo: Some("addressTag"),
        harmless: &["withdrawOrderId"],
    };

    fn req(q: &str) -> CanonicalRequest {
        CanonicalRequest::parse("POST", "/w", Some(q), None, b"").unwrap()
    }

    #[test]
    fn reads_every_part_and_refuses_the_unknown() {
        let w = F.read(&req("coin=btc&amount=0.5&address=bc1qxyz&network=BTC&withdrawOrderId=7")).unwrap();
        assert_eq!(
            w,
            Withdrawal {
                asset: "BTC".into(),
                amount: "0.5".parse().unwrap(),
                address: "bc1qxyz".into(),
                network: Some("BTC".into()),
                memo: None
            }
        );
        for bad in [
            "coin=BTC&amount=1&address=x&walletType=1",
            "coin=BTC&amount=1e3&address=x",
            "coin=BTC&amount=-1&address=x",
            "coin=BTC&amount=0&address=x",
            "coin=BTC&amount=1",
            "coin=BTC&amount=1&address=a%20b",
            "amount=1&address=x",
        ] {
            assert!(F.read(&req(bad)).is_err(), "{bad}");
        }
    }
}
