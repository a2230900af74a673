//! Credential checks: the one signed read-class call (the account or
//! balance endpoint) that shows whether an exchange accepts a set of
//! credentials, and how to read the exchange's answer to it. A rotation
//! promotes new credentials only when this call succeeds with them.
//!
//! Exchanges say "refused" in different ways: an HTTP status (Binance,
//! Coinbase, Gate), a code field in a 200 answer (Bybit's `retCode`, OKX's
//! `code`, KuCoin's `200000`, Bitget's `00000`), an error list (Kraken) or a
//! JSON-RPC error (Deribit). [`AnswerShape`] names which, and the refusal's
//! text is the exchange's own words, trimmed.

use crate::canonical::{Body, CanonicalRequest, Method};
use serde_json::Value;

/// How an exchange answers a call it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerShape {
    /// A 2xx status is acceptance; a refusal's body has these fields.
    Status {
        /// The field holding the exchange's error code.
        code: &'static str,
        /// The field holding its message.
        message: &'static str,
    },
    /// A 2xx status whose `code` field equals `ok` is acceptance.
    CodeField {
        /// The field holding the code (a string or a number).
        code: &'static str,
        /// The value that means success.
        ok: &'static str,
        /// The field holding the message.
        message: &'static str,
    },
    /// Kraken: acceptance is an empty `error` list.
    ErrorList,
    /// JSON-RPC: acceptance is a 2xx answer without an `error` object.
    JsonRpc,
    /// HTX: v1 endpoints answer `status` `ok` (a refusal: `status` `error`
    /// with `err-code` and `err-msg`), v2 endpoints `code` 200 (a refusal:
    /// another `code` with `message`); either with a 2xx status.
    StatusOrCode,
}

/// The call that checks an account's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialCheck {
    /// Method.
    pub method: Method,
    /// Path (a `read` endpoint of the exchange's catalog).
    pub path: &'static str,
    /// Query parameters.
    pub query: &'static [(&'static str, &'static str)],
    /// How the exchange says no.
    pub answer: AnswerShape,
}

/// Longest piece of the exchange's own words kept in an answer.
const SAID_MAX: usize = 300;

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The exchange's words, printable and bounded.
fn trimmed(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim();
    match clean.char_indices().nth(SAID_MAX) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean.to_string(),
    }
}

fn joined(code: Option<String>, message: Option<String>) -> Option<String> {
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (c, m) => c.or(m),
    }
}

impl CredentialCheck {
    /// The request, in canonical form, ready for the exchange's signer.
    pub fn request(&self) -> CanonicalRequest {
        CanonicalRequest {
            method: self.method,
            path: self.path.to_string(),
            query: self.query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Body::Empty,
        }
    }

    /// Whether the exchange accepted the credentials; when not, what it said.
    pub fn accepted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        self.answer.accepted(status, body)
    }
}

impl AnswerShape {
    /// Whether the exchange did what was asked; when not, what it said
    /// (its own words, trimmed).
    pub fn accepted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name)).and_then(text);
        let ok_status = (200..300).contains(&status);
        let refusal = match *self {
            AnswerShape::Status { code, message } if !ok_status => Some(joined(field(code), field(message))),
            AnswerShape::Status { .. } => None,
            AnswerShape::CodeField { code, ok, message } => {
                let c = field(code);
                (!ok_status || c.as_deref() != Some(ok)).then(|| joined(c, field(message)))
            }
            AnswerShape::ErrorList => {
                let errors: Vec<String> = json
                    .as_ref()
                    .and_then(|j| j.get("error"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(text).collect())
                    .unwrap_or_default();
                (!ok_status || !errors.is_empty() || json.is_none())
                    .then(|| (!errors.is_empty()).then(|| errors.join(", ")))
            }
            AnswerShape::JsonRpc => {
                let error = json.as_ref().and_then(|j| j.get("error")).filter(|e| !e.is_null());
                (!ok_status || error.is_some())
                    .then(|| error.and_then(|e| joined(e.get("code").and_then(text), e.get("message").and_then(text))))
            }
            AnswerShape::StatusOrCode => {
                let (status, code) = (field("status"), field("code"));
                let ok = match status.as_deref() {
                    Some(s) => s == "ok",
                    None => code.as_deref() == Some("200"),
                };
                (!ok_status || !ok)
                    .then(|| joined(field("err-code").or(code), field("err-msg").or_else(|| field("message"))))
            }
        };
        match refusal {
            None if json.is_some() || body.is_empty() => Ok(()),
            None => Err(format!("HTTP {status}, an answer that is not JSON")),
            Some(said) => Err(format!("HTTP {status}, {}", trimmed(&said.unwrap_or_else(|| "no message".into())))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(answer: AnswerShape) -> CredentialCheck {
        CredentialCheck { method: Method::Get, path: "/x", query: &[], answer }
    }

    #[test]
    fn each_shape_reads_acceptance_and_refusal() {
        let status = check(AnswerShape::Status { code: "code", message: "msg" });
        assert_eq!(status.accepted(200, br#"{"balances":[]}"#), Ok(()));
        assert_eq!(
            status.accepted(401, br#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#),
            Err("HTTP 401, -2015: Invalid API-key, IP, or permissions for action.".into())
        );
        assert_eq!(status.accepted(502, b"<html>bad gateway</html>"), Err("HTTP 502, no message".into()));

        let code = check(AnswerShape::CodeField { code: "retCode", ok: "0", message: "retMsg" });
        assert_eq!(code.accepted(200, br#"{"retCode":0,"retMsg":"OK"}"#), Ok(()));
        assert_eq!(
            code.accepted(200, br#"{"retCode":10003,"retMsg":"API key is invalid."}"#),
            Err("HTTP 200, 10003: API key is invalid.".into())
        );
        assert!(code.accepted(200, br#"{"result":{}}"#).is_err(), "no code is no acceptance");

        let kraken = check(AnswerShape::ErrorList);
        assert_eq!(kraken.accepted(200, br#"{"error":[],"result":{"ZUSD":"1"}}"#), Ok(()));
        assert_eq!(
            kraken.accepted(200, br#"{"error":["EAPI:Invalid key"]}"#),
            Err("HTTP 200, EAPI:Invalid key".into())
        );
        assert!(kraken.accepted(200, b"not json").is_err());

        let htx = check(AnswerShape::StatusOrCode);
        assert_eq!(htx.accepted(200, br#"{"status":"ok","data":[]}"#), Ok(()));
        assert_eq!(htx.accepted(200, br#"{"code":200,"message":"success","data":1}"#), Ok(()));
        assert_eq!(
            htx.accepted(
                200,
                br#"{"status":"error","err-code":"api-signature-not-valid","err-msg":"Signature not valid"}"#
            ),
            Err("HTTP 200, api-signature-not-valid: Signature not valid".into())
        );
        assert_eq!(
            htx.accepted(200, br#"{"code":1003,"message":"invalid signature"}"#),
            Err("HTTP 200, 1003: invalid signature".into())
        );
        assert!(htx.accepted(200, br#"{"data":1}"#).is_err(), "neither status nor code");

        let rpc = check(AnswerShape::JsonRpc);
        assert_eq!(rpc.accepted(200, br#"{"jsonrpc":"2.0","result":{}}"#), Ok(()));
        assert_eq!(
            rpc.accepted(400, br#"{"error":{"code":13004,"message":"invalid_credentials"}}"#),
            Err("HTTP 400, 13004: invalid_credentials".into())
        );
    }

    #[test]
    fn the_exchanges_words_are_bounded_and_printable() {
        let status = check(AnswerShape::Status { code: "code", message: "msg" });
        let long = format!(r#"{{"msg":"{}\u001b[2J"}}"#, "é".repeat(400));
        let said = status.accepted(401, long.as_bytes()).unwrap_err();
        assert!(said.chars().count() < SAID_MAX + 20 && !said.contains('\u{1b}'), "{said}");
    }

    #[test]
    fn every_exchange_checks_with_a_read_endpoint_of_its_catalog() {
        for ex in crate::registry() {
            let req = ex.credential_check().request();
            assert_eq!(ex.classify(&req), Some(crate::Class::Read), "{}: {}", ex.kind(), req.path);
        }
    }
}
