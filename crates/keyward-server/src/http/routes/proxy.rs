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
use keyward_core::scope::Class;
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
    crate::audit::note(&parts.extensions, |c| {
        c.key_id = who.key.id.clone();
        c.ip = who.ip.to_string();
    });
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
    let class = crate::routes::sign::authorize(&who, &account, exchange, &mut creq, &parts.extensions)?;
    let orders = if matches!(class, Class::Trade | Class::Borrow) {
        crate::guards::check(state, &who, &account, &acct, &creq).await?
    } else {
        Vec::new()
    };
    let base = acct.base_url(&creq.path)?;
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
    // The decision is on record before anything is forwarded; a sensitive
    // one is durable first.
    let decision = keyward_core::audit::AuditEntry {
        request_id: parts.extensions.get::<crate::RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
        key_id: who.key.id.clone(),
        ip: who.ip.to_string(),
        action: format!("proxy.{}", creq.method.as_str().to_ascii_lowercase()),
        target: format!("{account} {} {}", creq.method.as_str(), creq.path),
        class: class.as_str().to_string(),
        decision: "allow".into(),
        code: String::new(),
        detail: order_detail(&orders),
        ..Default::default()
    };
    if matches!(class, Class::Withdraw | Class::Transfer | Class::Admin | Class::Export) {
        state.auditor.record_durable(decision.clone()).await?;
    } else {
        state.auditor.record(decision.clone());
    }
    crate::audit::note(&parts.extensions, |c| c.recorded = true);
    let keep_body = matches!(class, Class::Trade | Class::Borrow);
    let (resp, order_ids) =
        send(state, &account, exchange, &base, out, &parts.headers, keep_body).await.inspect_err(|e| {
            state.auditor.record(keyward_core::audit::AuditEntry {
                decision: "outcome".into(),
                code: e.code.to_string(),
                detail: String::new(),
                ..decision.clone()
            });
        })?;
    state.auditor.record(keyward_core::audit::AuditEntry {
        decision: "outcome".into(),
        code: resp.status().as_u16().to_string(),
        detail: if order_ids.is_empty() {
            String::new()
        } else {
            serde_json::json!({"exchange_order_ids": order_ids}).to_string()
        },
        ..decision
    });
    Ok(resp)
}

/// The order fields of a trade, for the audit entry (no secret in them).
pub fn order_detail(orders: &[keyward_exchanges::orders::Order]) -> String {
    if orders.is_empty() {
        return String::new();
    }
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        symbol: &'a str,
        side: Option<&'static str>,
        qty: Option<String>,
        quote_qty: Option<String>,
        price: Option<String>,
        client_order_id: &'a Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Detail<'a> {
        orders: Vec<Fields<'a>>,
    }
    let orders = orders
        .iter()
        .map(|o| Fields {
            symbol: &o.symbol,
            side: o.side.map(|s| if s == keyward_exchanges::orders::Side::Buy { "buy" } else { "sell" }),
            qty: o.qty.map(|q| q.to_string()),
            quote_qty: o.quote_qty.map(|q| q.to_string()),
            price: o.price.map(|p| p.to_string()),
            client_order_id: &o.client_order_id,
        })
        .collect();
    serde_json::to_string(&Detail { orders }).unwrap_or_default()
}

/// Order ids in an exchange's answer (Binance `orderId`, OKX `ordId`, Bybit
/// `orderId`, Kraken `txid`, Coinbase `order_id`), for reconciliation.
fn order_ids(body: &[u8]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if matches!(k.as_str(), "orderId" | "ordId" | "txid" | "order_id") {
                        match x {
                            serde_json::Value::Array(a) => {
                                out.extend(a.iter().filter_map(keyward_exchanges::orders::text))
                            }
                            other => out.extend(keyward_exchanges::orders::text(other)),
                        }
                    } else {
                        walk(x, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, &mut out);
    }
    out.truncate(64);
    out
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
    keep_body: bool,
) -> ApiResult<(Response, Vec<String>)> {
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
    let sent_at = std::time::Instant::now();
    let resp = rb.send().await.map_err(|e| {
        if e.is_timeout() {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "the exchange did not answer in time")
        } else {
            ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", "the exchange could not be reached")
        }
    })?;
    state.metrics.upstream(account, sent_at.elapsed().as_secs_f64());
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
    // Trades are read whole (they are small) to note the exchange's order ids;
    // everything else streams through.
    let (body, ids) = if keep_body {
        let bytes = resp.bytes().await.map_err(|_| {
            ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", "the exchange's answer broke off")
        })?;
        let ids = order_ids(&bytes);
        (Body::from(bytes), ids)
    } else {
        (Body::from_stream(resp.bytes_stream().map_err(std::io::Error::other)), Vec::new())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok((response, ids))
}
