//! Sending a signed request to the exchange and streaming its answer back:
//! a pooled rustls client that follows no redirects, an allowlist of the
//! client's headers, and the answer's hop-by-hop headers and cookies
//! dropped. What the exchange says about budgets and its clock is learned
//! here.

use super::client::{self, ExchangeClient, Failure};
use crate::error::{Code, Error, Result};
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body_util::Full;
use keyward_exchanges::Outgoing;
use std::pin::Pin;
use std::time::Duration;

/// Request headers a client may have forwarded; everything else stays here
/// (never `Authorization`, cookies, hop-by-hop or forwarding headers).
pub(super) const FORWARD_HEADERS: &[&str] = &["accept", "accept-language", "user-agent", "x-simulated-trading"];

/// Response headers never passed back (hop-by-hop, cookies).
const DROP_RESPONSE_HEADERS: &[&str] =
    &["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "set-cookie", "proxy-authenticate"];

/// The client's headers that may go upstream.
pub(crate) fn forwardable(headers: &HeaderMap) -> Vec<(&'static str, HeaderValue)> {
    FORWARD_HEADERS.iter().filter_map(|name| headers.get(*name).map(|v| (*name, v.clone()))).collect()
}

/// The client for alerts and audit sinks (webhooks): rustls, no
/// redirects, bounded connect and answer times. Building it is part of
/// starting: a server that cannot build it does not start.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// Answers up to this size are read whole and sent on in one piece;
/// larger or unsized ones stream through.
const WHOLE_UP_TO: u64 = 64 * 1024;

/// An answer's body: read whole (trades, to note the exchange's order ids)
/// or streamed through.
pub(crate) enum AnswerBody {
    /// The whole body.
    Whole(Bytes),
    /// A stream of chunks.
    Stream(Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>),
}

impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerBody::Whole(b) => write!(f, "Whole({} bytes)", b.len()),
            AnswerBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The exchange's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its status.
    pub status: u16,
    /// Its headers, hop-by-hop ones and cookies dropped.
    pub headers: HeaderMap,
    /// Its body.
    pub body: AnswerBody,
    /// Order ids found in a whole body (for reconciliation).
    pub order_ids: Vec<String>,
}

/// Why a send failed, and whether the exchange can have received the request.
#[derive(Debug)]
pub(super) struct SendFailure {
    /// The error to answer with.
    pub error: Error,
    /// False only when no connection was made (refused, DNS, TLS): the
    /// exchange cannot have seen the request.
    pub maybe_received: bool,
}

/// Sends `out` to `base` and reads the answer: whole when `keep_body`
/// (trades, to note the exchange's order ids) or small, streamed otherwise.
pub(super) async fn send(
    client: &ExchangeClient,
    base: &str,
    out: Outgoing,
    client_headers: Vec<(&'static str, HeaderValue)>,
    keep_body: bool,
) -> Result<Answer, SendFailure> {
    let unsent = |what: &str| SendFailure { error: Error::internal(what), maybe_received: false };
    let uri = client::uri(&out.url(base)).ok_or_else(|| unsent("the request's URL"))?;
    let mut headers = HeaderMap::with_capacity(client_headers.len() + out.headers.len() + 2);
    for (name, v) in client_headers {
        headers.append(name, v);
    }
    if !headers.contains_key(header::ACCEPT) {
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    for (k, v) in &out.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| unsent("a signed header's name"))?;
        headers.append(name, HeaderValue::from_str(v).map_err(|_| unsent("a signed header's value"))?);
    }
    let body = match out.body {
        Some((ctype, body)) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&ctype).map_err(|_| unsent("content type"))?);
            Bytes::from(body)
        }
        None => Bytes::new(),
    };
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::from_bytes(out.method.as_str().as_bytes()).map_err(|_| unsent("method"))?;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let (resp, deadline) = client.send(req).await.map_err(failed)?;
    let (mut parts, body) = resp.into_parts();
    for name in DROP_RESPONSE_HEADERS {
        parts.headers.remove(*name);
    }
    let small = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n <= WHOLE_UP_TO);
    let (body, order_ids) = if keep_body || small {
        let bytes = client::whole(body, deadline).await.map_err(failed)?;
        let ids = if keep_body { order_ids(&bytes) } else { Vec::new() };
        (AnswerBody::Whole(bytes), ids)
    } else {
        (AnswerBody::Stream(Box::pin(client::stream(body, deadline))), Vec::new())
    };
    Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body, order_ids })
}

/// The error for a request that got no (whole) answer.
fn failed(f: Failure) -> SendFailure {
    match f {
        Failure::Connect => SendFailure {
            error: Error::new(Code::UpstreamUnavailable, "the exchange could not be reached"),
            maybe_received: false,
        },
        Failure::Timeout => SendFailure {
            error: Error::new(Code::UpstreamTimeout, "the exchange did not answer in time"),
            maybe_received: true,
        },
        Failure::Broken => SendFailure {
            error: Error::new(Code::UpstreamUnavailable, "the exchange's answer broke off"),
            maybe_received: true,
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_from_each_exchange_shape() {
        assert_eq!(order_ids(br#"{"orderId":42,"symbol":"BTCUSDT"}"#), ["42"]);
        assert_eq!(order_ids(br#"{"data":[{"ordId":"7"},{"ordId":"8"}]}"#), ["7", "8"]);
        assert_eq!(order_ids(br#"{"result":{"txid":["OABC","ODEF"]}}"#), ["OABC", "ODEF"]);
        assert!(order_ids(b"not json").is_empty());
    }

    #[test]
    fn only_allowlisted_headers_go_upstream() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer kw_x"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "1.2.3.4"),
            ("user-agent", "ccxt"),
            ("accept", "*/*"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let names: Vec<_> = forwardable(&h).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["accept", "user-agent"]);
    }
}
