//! The signing proxy: `/proxy/{account}/{exchange path}`.
//!
//! A bot points its exchange base URL here and uses its keyward key where the
//! exchange key would go (`Authorization: Bearer`, or the exchange's own key
//! header, so ccxt works unchanged). Parse (the request in its canonical
//! form; method overrides refused) → identify the caller → the exchange
//! pipeline (see `exchange::pipeline`), which signs with the real
//! credentials and forwards; the answer streams back. The bot never sees
//! the exchange secret, and no signature leaves keyward except towards the
//! exchange.

use crate::error::Error;
use crate::exchange::{AnswerBody, check_account_name, forwardable};
use crate::http::extract::{bearer, identify, read_body, record};
use crate::http::{ApiError, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::decision::DenyReason;
use keyward_exchanges::CanonicalRequest;
use keyward_exchanges::canonical::METHOD_OVERRIDE_HEADERS;
use zeroize::Zeroizing;

/// Every method on `/proxy/{account}/{*path}`.
pub(crate) async fn proxy(State(state): State<AppState>, req: Request) -> Response {
    match forward(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn not_canonical(message: impl Into<String>) -> ApiError {
    ApiError(Error::new(DenyReason::RequestNotCanonical, message))
}

async fn forward(state: &AppState, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    crate::http::note_route(&parts);
    let (account, creq) = parse(&parts, body).await?;
    record(&parts).target(format!("{account} {} {}", creq.method.as_str(), creq.path));
    let credential = credential(&parts);
    let caller = identify(state, &parts, credential.as_deref().map(String::as_str).map_err(Clone::clone)).await?;
    let answer = state.exchanges.proxy_request(&caller, &account, creq, forwardable(&parts.headers)).await?;
    let body = match answer.body {
        AnswerBody::Whole(bytes) => Body::from(bytes),
        AnswerBody::Stream(stream) => Body::from_stream(stream),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = answer.headers;
    Ok(response)
}

/// The account and the request in its canonical form.
async fn parse(parts: &Parts, body: Body) -> ApiResult<(String, CanonicalRequest)> {
    let rest = parts.uri.path().strip_prefix("/proxy/").unwrap_or("");
    let (account, tail) = rest.split_once('/').unwrap_or((rest, ""));
    check_account_name(account)?;
    if let Some(h) = METHOD_OVERRIDE_HEADERS.iter().find(|h| parts.headers.contains_key(**h)) {
        return Err(not_canonical(format!("method-override header {h}")));
    }
    let bytes = read_body(&parts.headers, body).await?;
    let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let creq = CanonicalRequest::parse(parts.method.as_str(), &format!("/{tail}"), parts.uri.query(), ctype, &bytes)
        .map_err(|e| not_canonical(e.to_string()))?;
    Ok((account.to_string(), creq))
}

/// The keyward key of a proxied request, from where exchange clients put
/// their API key: the exchange's own API-key header; its API-key query
/// parameter (HTX); `Authorization`: a bearer token, the key name inside a
/// JWT an exchange client built (Coinbase: `kid`), or the `id` of a Deribit
/// `deri-hmac-sha256` header. When several are sent, the first that is
/// well-formed (its checksum holds) is the key, in that order: a client may
/// send a public-only key as its bearer (for the calls that carry no API
/// key, and which a bot's logs may show) and its trading key as the
/// exchange API key.
fn credential(parts: &Parts) -> Result<Zeroizing<String>, Error> {
    let header = keyward_exchanges::registry()
        .iter()
        .map(|ex| ex.key_header())
        .filter(|h| *h != "authorization")
        .find_map(|h| parts.headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(|v| Zeroizing::new(v.trim().to_string()))
        .filter(|v| !v.is_empty());
    let authorization = parts.headers.get(header::AUTHORIZATION).map(|_| authorization_key(parts));
    let candidates: Vec<Result<Zeroizing<String>, Error>> =
        [header.map(Ok), query_key(parts).map(Ok), authorization].into_iter().flatten().collect();
    let well_formed = |c: &Result<Zeroizing<String>, Error>| {
        c.as_ref().is_ok_and(|k| keyward_core::access_key::check_format(k).is_some())
    };
    match candidates.iter().position(well_formed) {
        Some(i) => candidates.into_iter().nth(i).unwrap_or_else(|| Err(Error::key_invalid("no access key"))),
        None => candidates.into_iter().next().unwrap_or_else(|| {
            Err(Error::key_invalid(
                "no access key: send your keyward key as the exchange API key or as `Authorization: Bearer`",
            ))
        }),
    }
}

/// The keyward key in an `Authorization` header: a Deribit
/// `deri-hmac-sha256` header's `id`, a JWT's `kid`, or the bearer token.
fn authorization_key(parts: &Parts) -> Result<Zeroizing<String>, Error> {
    let text = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| Error::key_invalid("the Authorization header is not ASCII")))
        .transpose()?
        .unwrap_or_default();
    if let Some(rest) = text.strip_prefix("deri-hmac-sha256 ") {
        return rest
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("id="))
            .map(|id| Zeroizing::new(id.to_string()))
            .ok_or_else(|| Error::key_invalid("no id= in the deri-hmac-sha256 header"));
    }
    let token = bearer(parts)?;
    Ok(Zeroizing::new(jwt_kid(token).unwrap_or_else(|| token.to_string())))
}

/// A keyward key where an exchange's clients put the API key in the query
/// (HTX's `AccessKeyId`). The parameter is an auth parameter of that
/// exchange, so it never goes upstream: keyward sets the real key there.
fn query_key(parts: &Parts) -> Option<Zeroizing<String>> {
    let pairs = keyward_exchanges::canonical::parse_pairs(parts.uri.query()?).ok()?;
    keyward_exchanges::registry()
        .iter()
        .filter_map(|ex| ex.key_param())
        .find_map(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| Zeroizing::new(v.trim().to_string())))
}

/// The `kid` of a JWT's header, if `token` is a JWT: the key name an
/// exchange client put there (Coinbase), which is the keyward key.
fn jwt_kid(token: &str) -> Option<String> {
    let mut pieces = token.split('.');
    let (Some(head), Some(_), Some(_), None) = (pieces.next(), pieces.next(), pieces.next(), pieces.next()) else {
        return None;
    };
    let header = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, head).ok()?;
    Some(serde_json::from_slice::<serde_json::Value>(&header).ok()?.get("kid")?.as_str()?.to_string())
}
