//! The signing proxy: `/proxy/{account}/{exchange path}`.
//!
//! A bot points its exchange base URL here and uses its keyward key where the
//! exchange key would go (`Authorization: Bearer`, or the exchange's own key
//! header, so ccxt works unchanged). The proxy parses the request into its
//! canonical form, drops every signature, key and auth header or parameter
//! the client sent, classifies the endpoint, checks the key's scopes, signs
//! with the real credentials, forwards over a pooled TLS connection
//! (following no redirects) to the account's upstream, and streams the
//! answer back. Only an allowlist of request headers is forwarded: never
//! `Authorization`, cookies, hop-by-hop or forwarding headers. The bot
//! never sees the exchange secret, and no signature leaves keyward except
//! towards the exchange.

use crate::accounts;
use crate::auth::{authenticate, bearer, peer};
use crate::error::{ApiError, ApiResult};
use crate::request::body_bytes;
use crate::routes::sign::{RECV_WINDOW_MS, require_some_account_scope};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use keyward_core::scope::{Class, Need};
use keyward_exchanges::canonical::METHOD_OVERRIDE_HEADERS;
use keyward_exchanges::{CanonicalRequest, Outgoing, SignContext};

/// Request headers a client may have forwarded; everything else stays here.
const FORWARD_HEADERS: &[&str] = &["accept", "accept-language", "user-agent", "x-simulated-trading"];

/// Response headers never passed back (hop-by-hop, cookies).
const DROP_RESPONSE_HEADERS: &[&str] =
    &["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "set-cookie", "proxy-authenticate"];

/// Every method on `/proxy/{account}/{*path}`.
pub async fn proxy(State(state): State<AppState>, req: Request) -> Response {
    match forward(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn forward(state: &AppState, req: Request) -> ApiResult<Response> {
    let unsealed = state.unsealed()?;
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix("/proxy/").unwrap_or("");
    let (account, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let account = account.to_string();
    let upstream_path = format!("/{tail}");
    keyward_core::secret_path::SecretPath::parse(&format!("{}{account}", accounts::PREFIX))
        .map_err(|_| ApiError::bad("invalid_path", "invalid account name"))?;

    // Nothing about the account is read before the key is checked.
    let credential = credential(&parts);
    let who = authenticate(
        state,
        unsealed.clone(),
        &parts.headers,
        peer(&parts)?,
        credential.as_deref().map_err(Clone::clone),
    )
    .await?;
    require_some_account_scope(&who, &account)?;
    let acct = accounts::cached(state, &unsealed, &account).await?;
    let exchange = acct.exchange;

    for h in METHOD_OVERRIDE_HEADERS {
        if parts.headers.contains_key(*h) {
            return Err(ApiError::bad("request_not_canonical", format!("method-override header {h}")));
        }
    }
    let bytes = body_bytes(Request::from_parts(parts.clone(), body)).await?;
    let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mut creq = CanonicalRequest::parse(parts.method.as_str(), &upstream_path, parts.uri.query(), ctype, &bytes)
        .map_err(|e| ApiError::bad("request_not_canonical", e.to_string()))?;
    creq.remove_params(exchange.auth_params());
    let class = exchange.classify(&creq).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "endpoint_unknown",
            format!(
                "{} {} is not in keyward's {} catalog; it is refused until reviewed",
                creq.method.as_str(),
                creq.path,
                exchange.kind()
            ),
        )
    })?;
    if class != Class::Public {
        who.require(
            Need::Account(&account, class),
            &format!("{} on account {account} (account:{account}:{})", class.as_str(), class.as_str()),
        )?;
    }
    if matches!(class, Class::Trade | Class::Borrow) {
        crate::guards::check(state, &who, &account, &acct, &creq).await?;
    }
    let base = acct.base_url(&creq.path, &state.config.allow_upstream)?;
    let out = if class == Class::Public {
        Outgoing {
            method: creq.method,
            path: creq.path.clone(),
            query: creq.query_string(),
            headers: Vec::new(),
            body: creq.body_bytes().map(|(t, b)| (t.to_string(), b)),
        }
    } else {
        let now = state.clock.now_ms();
        let ctx = SignContext {
            timestamp_ms: state.clocks.exchange_now(&account, now),
            nonce: state.next_nonce(now),
            recv_window_ms: RECV_WINDOW_MS,
        };
        exchange.sign(&creq, &acct.creds, &ctx).map_err(accounts::account_error)?
    };
    let bucket = exchange.budget_bucket(&creq.path);
    state.budgets.check(&account, bucket, state.clock.now_ms())?;
    send(state, &account, exchange, &base, out, &parts.headers).await
}

/// The keyward key of a proxied request: a bearer token; the key name inside
/// a JWT an exchange client built (Coinbase: `kid`); the `id` of a Deribit
/// `deri-hmac-sha256` header; or the exchange's own API-key header.
fn credential(parts: &axum::http::request::Parts) -> ApiResult<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let text = v.to_str().map_err(|_| ApiError::key_invalid("the Authorization header is not ASCII"))?;
        if let Some(rest) = text.strip_prefix("deri-hmac-sha256 ") {
            return rest
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("id="))
                .map(str::to_string)
                .ok_or_else(|| ApiError::key_invalid("no id= in the deri-hmac-sha256 header"));
        }
        let token = bearer(parts)?;
        let mut pieces = token.split('.');
        if let (Some(head), Some(_), Some(_), None) = (pieces.next(), pieces.next(), pieces.next(), pieces.next())
            && let Some(kid) = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, head)
                .ok()
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
                .and_then(|h| h["kid"].as_str().map(str::to_string))
        {
            return Ok(kid);
        }
        return Ok(token.to_string());
    }
    keyward_exchanges::registry()
        .iter()
        .find_map(|ex| parts.headers.get(ex.key_header()))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .ok_or_else(|| {
            ApiError::key_invalid(
                "no access key: send your keyward key as the exchange API key or as `Authorization: Bearer`",
            )
        })
}

async fn send(
    state: &AppState,
    account: &str,
    exchange: &dyn keyward_exchanges::Exchange,
    base: &str,
    out: Outgoing,
    client_headers: &HeaderMap,
) -> ApiResult<Response> {
    let method =
        reqwest::Method::from_bytes(out.method.as_str().as_bytes()).map_err(|_| ApiError::internal("method"))?;
    let mut rb = state.upstream.request(method, format!("{base}{}", out.target()));
    for name in FORWARD_HEADERS {
        if let Some(v) = client_headers.get(*name) {
            rb = rb.header(*name, v.as_bytes());
        }
    }
    for (k, v) in &out.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some((ctype, body)) = out.body {
        rb = rb.header(reqwest::header::CONTENT_TYPE, ctype).body(body);
    }
    let resp = rb.send().await.map_err(|e| {
        if e.is_timeout() {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "the exchange did not answer in time")
        } else {
            ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", "the exchange could not be reached")
        }
    })?;
    let now = state.clock.now_ms();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(u) = exchange.usage(&out.path, &header, now) {
        state.budgets.record(account, u, now);
    }
    state.clocks.observe(account, header("date").as_deref(), now);
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if DROP_RESPONSE_HEADERS.contains(&k.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(k.as_str().as_bytes()), HeaderValue::from_bytes(v.as_bytes()))
        {
            headers.append(name, value);
        }
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
