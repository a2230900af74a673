//! Reading requests: the caller (its credential and client address, handed
//! to identification), JSON bodies (size cap, unknown fields refused, no
//! value echoed back in an error), query strings (unknown and duplicate
//! parameters refused) and percent-encoded paths (invalid UTF-8 refused).

use super::client_ip::client_ip;
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::audit::Record;
use crate::auth::Caller;
use crate::error::{Code, Error};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

fn bad(code: Code, message: impl Into<String>) -> ApiError {
    ApiError(Error::new(code, message))
}

/// The TCP peer of a request (in-process tests give it with `MockConnectInfo`).
pub(super) fn peer(parts: &Parts) -> ApiResult<IpAddr> {
    peer_of(&parts.extensions).ok_or_else(|| ApiError(Error::internal("no peer address on the connection")))
}

/// The TCP peer recorded on a request's extensions.
pub(super) fn peer_of(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>().map(|m| m.0.ip()))
}

/// The bearer token of a request, if the header is well-formed.
pub(super) fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::key_invalid("no access key: send `Authorization: Bearer kw_…`"))?;
    let value = value.to_str().map_err(|_| Error::key_invalid("the Authorization header is not ASCII"))?;
    let (scheme, token) =
        value.split_once(' ').ok_or_else(|| Error::key_invalid("expected `Authorization: Bearer kw_…`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::key_invalid("expected `Authorization: Bearer kw_…`"));
    }
    Ok(token.trim())
}

/// The request's audit record (a detached one outside the audit middleware).
pub(super) fn record(parts: &Parts) -> Record {
    parts.extensions.get::<Record>().cloned().unwrap_or_default()
}

/// Identifies the caller presenting `credential` on this request.
pub(super) async fn identify(state: &AppState, parts: &Parts, credential: Result<&str, Error>) -> ApiResult<Caller> {
    super::note_route(parts);
    let ip = client_ip(peer(parts)?, &parts.headers, &state.config.trusted_proxies);
    Ok(state.auth.identify(credential, ip, record(parts)).await?)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        identify(state, parts, bearer(parts)).await
    }
}

/// Largest accepted request body.
pub(super) const MAX_BODY: usize = 1024 * 1024;

fn too_large() -> ApiError {
    bad(Code::BodyTooLarge, "the request body is over 1 MiB")
}

/// Reads the body, refusing more than [`MAX_BODY`] bytes.
pub(super) async fn body_bytes(req: Request) -> ApiResult<bytes::Bytes> {
    let (parts, body) = req.into_parts();
    read_body(&parts.headers, body).await
}

/// Reads a body whose request had these headers, refusing more than [`MAX_BODY`] bytes.
pub(super) async fn read_body(headers: &axum::http::HeaderMap, body: axum::body::Body) -> ApiResult<bytes::Bytes> {
    if let Some(len) = headers.get(header::CONTENT_LENGTH)
        && len.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| too_large())
}

/// Parses JSON without echoing any value in the error (a misplaced secret
/// must not come back in an error message or a log).
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        return Err(bad(Code::InvalidJson, "the request needs a JSON body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let keep =
            ["unknown field", "missing field", "duplicate field", "duplicate key"].iter().any(|p| msg.starts_with(p));
        let text = if keep {
            msg
        } else if e.is_data() {
            format!("a field has the wrong type or value (line {}, column {})", e.line(), e.column())
        } else {
            format!("malformed JSON (line {}, column {})", e.line(), e.column())
        };
        bad(Code::InvalidJson, text)
    })
}

/// A JSON body parsed strictly.
#[derive(Debug)]
pub(super) struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let bytes = body_bytes(req).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

/// Parses a query string: each name at most once, only names in `allowed`.
pub(super) fn parse_query(query: Option<&str>, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(&value.replace('+', " "))
            .decode_utf8()
            .map_err(|_| bad(Code::InvalidQuery, format!("query parameter {name:?} is not valid UTF-8")))?
            .into_owned();
        if !allowed.contains(&name) {
            let accepted = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            return Err(bad(Code::InvalidQuery, format!("unknown query parameter {name:?}; accepted: {accepted}")));
        }
        if out.insert(name.to_string(), value).is_some() {
            return Err(bad(Code::InvalidQuery, format!("query parameter {name:?} given twice")));
        }
    }
    Ok(out)
}

/// The rest of the request path after `prefix`, percent-decoded; invalid
/// escapes and invalid UTF-8 are refused with `invalid_path`.
pub(super) fn path_after(raw_path: &str, prefix: &str) -> ApiResult<String> {
    let rest = raw_path.strip_prefix(prefix).unwrap_or("");
    let bad_escape = rest
        .as_bytes()
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .any(|(i, _)| rest.as_bytes().get(i + 1..i + 3).is_none_or(|h| !h.iter().all(u8::is_ascii_hexdigit)));
    if bad_escape {
        return Err(bad(Code::InvalidPath, "invalid percent-escape in the path"));
    }
    percent_decode_str(rest)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad(Code::InvalidPath, "the path is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rules() {
        let q = parse_query(Some("version=2&field=a"), &["version", "field"]).unwrap();
        assert_eq!(q["version"], "2");
        assert_eq!(parse_query(Some("version=1&version=2"), &["version"]).unwrap_err().0.code, Code::InvalidQuery);
        assert_eq!(parse_query(Some("x=1"), &["version"]).unwrap_err().0.code, Code::InvalidQuery);
        assert!(parse_query(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn path_decoding() {
        assert_eq!(path_after("/v1/secrets/a%2Fb", "/v1/secrets/").unwrap(), "a/b");
        assert_eq!(path_after("/v1/secrets/a%00b", "/v1/secrets/").unwrap(), "a\0b");
        assert_eq!(path_after("/v1/secrets/%FF", "/v1/secrets/").unwrap_err().0.code, Code::InvalidPath);
        assert_eq!(path_after("/v1/secrets/%zz", "/v1/secrets/").unwrap_err().0.code, Code::InvalidPath);
        assert_eq!(path_after("/v1/secrets/a%2", "/v1/secrets/").unwrap_err().0.code, Code::InvalidPath);
    }

    #[test]
    fn json_errors_never_echo_values() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            n: u64,
        }
        let e = parse_json::<T>(br#"{"n":"hunter2"}"#).unwrap_err();
        assert!(!e.0.message.contains("hunter2"), "{}", e.0.message);
        let e = parse_json::<T>(br#"{"m":1}"#).unwrap_err();
        assert!(e.0.message.contains("unknown field"));
        assert_eq!(parse_json::<T>(b"{").unwrap_err().0.code, Code::InvalidJson);
        assert_eq!(parse_json::<T>(b"").unwrap_err().0.code, Code::InvalidJson);
    }
}
