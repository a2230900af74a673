//! Strict reading of requests: JSON bodies (size cap, unknown fields refused,
//! no value echoed back in an error), query strings (unknown and duplicate
//! parameters refused) and percent-encoded paths (invalid UTF-8 refused).

use crate::error::{ApiError, ApiResult};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is over 1 MiB")
}

/// Reads the body, refusing more than [`MAX_BODY`] bytes.
pub async fn body_bytes(req: Request) -> ApiResult<bytes::Bytes> {
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH)
        && len.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| too_large())
}

/// Parses JSON without echoing any value in the error (a misplaced secret
/// must not come back in an error message or a log).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        return Err(ApiError::bad("invalid_json", "the request needs a JSON body"));
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
        ApiError::bad("invalid_json", text)
    })
}

/// A JSON body parsed strictly.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> ApiResult<Self> {
        let bytes = body_bytes(req).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

/// Parses a query string: each name at most once, only names in `allowed`.
pub fn parse_query(query: Option<&str>, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(&value.replace('+', " "))
            .decode_utf8()
            .map_err(|_| ApiError::bad("invalid_query", format!("query parameter {name:?} is not valid UTF-8")))?
            .into_owned();
        if !allowed.contains(&name) {
            let accepted = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            return Err(ApiError::bad(
                "invalid_query",
                format!("unknown query parameter {name:?}; accepted: {accepted}"),
            ));
        }
        if out.insert(name.to_string(), value).is_some() {
            return Err(ApiError::bad("invalid_query", format!("query parameter {name:?} given twice")));
        }
    }
    Ok(out)
}

/// The rest of the request path after `prefix`, percent-decoded; invalid
/// escapes and invalid UTF-8 are refused with `invalid_path`.
pub fn path_after(raw_path: &str, prefix: &str) -> ApiResult<String> {
    let rest = raw_path.strip_prefix(prefix).unwrap_or("");
    let bad_escape = rest
        .as_bytes()
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .any(|(i, _)| rest.as_bytes().get(i + 1..i + 3).is_none_or(|h| !h.iter().all(u8::is_ascii_hexdigit)));
    if bad_escape {
        return Err(ApiError::bad("invalid_path", "invalid percent-escape in the path"));
    }
    percent_decode_str(rest)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad("invalid_path", "the path is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rules() {
        let q = parse_query(Some("version=2&field=a"), &["version", "field"]).unwrap();
        assert_eq!(q["version"], "2");
        assert_eq!(parse_query(Some("version=1&version=2"), &["version"]).unwrap_err().code, "invalid_query");
        assert_eq!(parse_query(Some("x=1"), &["version"]).unwrap_err().code, "invalid_query");
        assert!(parse_query(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn path_decoding() {
        assert_eq!(path_after("/v1/secrets/a%2Fb", "/v1/secrets/").unwrap(), "a/b");
        assert_eq!(path_after("/v1/secrets/a%00b", "/v1/secrets/").unwrap(), "a\0b");
        assert_eq!(path_after("/v1/secrets/%FF", "/v1/secrets/").unwrap_err().code, "invalid_path");
        assert_eq!(path_after("/v1/secrets/%zz", "/v1/secrets/").unwrap_err().code, "invalid_path");
        assert_eq!(path_after("/v1/secrets/a%2", "/v1/secrets/").unwrap_err().code, "invalid_path");
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
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = parse_json::<T>(br#"{"m":1}"#).unwrap_err();
        assert!(e.message.contains("unknown field"));
        assert_eq!(parse_json::<T>(b"{").unwrap_err().code, "invalid_json");
        assert_eq!(parse_json::<T>(b"").unwrap_err().code, "invalid_json");
    }
}
