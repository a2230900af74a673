//! Exchange accounts: the secret at `exchanges/<name>` with a type naming an
//! exchange. Its secret fields (`api_secret`, `private_key`, `passphrase`)
//! leave keyward only with `account:<name>:export`; changing the account
//! needs `account:<name>:admin`. Upstreams are https on the exchange's own
//! hosts and testnets, unless the server names other hosts with
//! `--allow-upstream` (tests, private gateways): a `base_url` is no way to
//! reach arbitrary addresses.

use crate::error::{Code, Error, Result};
use crate::secrets::Version;
use keyward_core::decision::DenyReason;
use keyward_core::secret::SecretData;
use keyward_exchanges::{Credentials, Exchange, SignError};
use url::Url;

/// Where exchange accounts live.
pub(crate) const PREFIX: &str = "exchanges/";

/// Fields never returned without `account:<name>:export`.
pub(crate) const SECRET_FIELDS: &[&str] = &["api_secret", "private_key", "passphrase"];

/// The account name of a secret path (`exchanges/binance-main` → `binance-main`).
pub(crate) fn account_name(path: &str) -> Option<&str> {
    path.strip_prefix(PREFIX).filter(|n| !n.is_empty() && !n.contains('/'))
}

/// Maps a signer's complaint about the account to an answer naming the field.
pub(crate) fn account_error(e: SignError) -> Error {
    match e {
        SignError::MissingField(_) | SignError::Field { .. } => Error::new(Code::AccountInvalid, e.to_string()),
        SignError::Request(_) => Error::new(DenyReason::RequestNotCanonical, e.to_string()),
        _ => Error::internal("signing failed"),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Code::AccountInvalid, message)
}

/// Checks that `raw` is an upstream this exchange (or the server's allowlist) permits.
pub(crate) fn check_upstream(ex: &dyn Exchange, raw: &str, allow: &[String]) -> Result<Url> {
    let bad = |why: &str| Error::new(Code::UpstreamNotAllowed, format!("upstream {raw:?}: {why}"));
    let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no credentials, query or fragment in an upstream"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad("an upstream is a scheme, host and port only"));
    }
    if allow.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        if url.scheme() == "https" || url.scheme() == "http" {
            return Ok(url);
        }
        return Err(bad("use http or https"));
    }
    if url.scheme() != "https" {
        return Err(bad("upstreams must use https"));
    }
    if !ex.own_hosts().contains(&host.as_str()) {
        return Err(bad(&format!(
            "not one of {}'s own hosts ({}); a server started with --allow-upstream may name others",
            ex.kind(),
            ex.own_hosts().join(", ")
        )));
    }
    Ok(url)
}

/// Prefix → URL overrides from `base_url` / `base_urls` fields.
fn overrides(data: &SecretData) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(map) = data.0.get("base_urls") {
        let v: serde_json::Value = serde_json::from_str(map.expose()).map_err(|_| {
            invalid("base_urls must be a JSON object of path prefix → URL, e.g. {\"/api\": \"https://testnet.binance.vision\"}")
        })?;
        let obj = v.as_object().ok_or_else(|| invalid("base_urls must be a JSON object"))?;
        for (prefix, url) in obj {
            let url = url.as_str().ok_or_else(|| invalid("base_urls values must be strings"))?;
            if !prefix.starts_with('/') {
                return Err(invalid(format!("base_urls prefix {prefix:?} must start with /")));
            }
            out.push((prefix.clone(), url.to_string()));
        }
    }
    if let Some(u) = data.0.get("base_url") {
        out.push(("/".into(), u.expose().to_string()));
    }
    Ok(out)
}

/// Validates an account's fields when it is written.
pub(crate) fn validate(kind: &str, data: &SecretData, allow: &[String]) -> Result<&'static dyn Exchange> {
    let ex = keyward_exchanges::by_kind(kind).ok_or_else(|| {
        let kinds: Vec<_> = keyward_exchanges::registry().iter().map(|e| e.kind()).collect();
        invalid(format!("unknown exchange type {kind:?}; known: {}", kinds.join(", ")))
    })?;
    ex.check_fields(&|f| data.0.get(f).map(|v| v.expose().to_string())).map_err(account_error)?;
    for (_, url) in overrides(data)? {
        check_upstream(ex, &url, allow)?;
    }
    Ok(ex)
}

/// A loaded account, ready to sign.
#[derive(Debug)]
pub(crate) struct Account {
    /// Its exchange.
    pub exchange: &'static dyn Exchange,
    /// Its credentials.
    pub creds: Credentials,
    /// Path prefix → checked upstream base URL (no trailing slash), or why
    /// it is refused: the account's overrides first, then the exchange's
    /// defaults. Checked once at load, not per request.
    upstreams: Vec<(String, Result<String>)>,
    /// How many of `upstreams` are overrides.
    overridden: usize,
}

impl Account {
    /// The upstream base URL for a request path (longest matching prefix,
    /// an override before a default).
    pub(crate) fn base_url(&self, path: &str) -> Result<String> {
        let (overrides, defaults) = self.upstreams.split_at(self.overridden);
        longest_prefix(overrides, path)
            .or_else(|| longest_prefix(defaults, path))
            .ok_or_else(|| Error::new(DenyReason::EndpointUnknown, "no upstream serves this path"))?
            .clone()
    }
}

fn longest_prefix<'a, T>(list: &'a [(String, T)], path: &str) -> Option<&'a T> {
    list.iter().filter(|(p, _)| path.starts_with(p.as_str())).max_by_key(|(p, _)| p.len()).map(|(_, t)| t)
}

impl Account {
    /// The account stored in `version` of `exchanges/<name>`: its exchange,
    /// credentials and upstreams (each checked once, here).
    pub(crate) fn from_version(name: &str, version: &Version, allow: &[String]) -> Result<Self> {
        let not_found =
            || Error::not_found(format!("no exchange account {name:?} (a secret at exchanges/{name} with --type)"));
        let kind = version.meta.kind.as_deref().ok_or_else(not_found)?;
        let exchange = keyward_exchanges::by_kind(kind).ok_or_else(not_found)?;
        let data = &version.data;
        let creds =
            Credentials::from_fields(|f| data.0.get(f).map(|v| v.expose().to_string())).map_err(account_error)?;
        let check =
            |url: &str| check_upstream(exchange, url, allow).map(|u| u.as_str().trim_end_matches('/').to_string());
        let mut upstreams: Vec<(String, Result<String>)> =
            overrides(data)?.into_iter().map(|(p, u)| (p, check(&u))).collect();
        let overridden = upstreams.len();
        upstreams.extend(exchange.base_urls().iter().map(|(p, u)| (p.to_string(), check(u))));
        Ok(Account { exchange, creds, upstreams, overridden })
    }
}
