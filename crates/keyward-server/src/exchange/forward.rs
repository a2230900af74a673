//! Sending a signed request to the exchange and streaming its answer back:
//! a pooled rustls client that follows no redirects, an allowlist of the
//! client's headers, and the answer's hop-by-hop headers and cookies
//! dropped. What the exchange says about budgets and its clock is learned
//! here.

use crate::error::{Code, Error, Result};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{HeaderMap, HeaderName, HeaderValue};
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

/// The upstream client: rustls, no redirects, no Nagle, bounded connect and
/// answer times. Building it is part of starting: a server that cannot
/// build it does not start (no fallback to a default client).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

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

/// Sends `out` to `base` and reads the answer's head.
pub(super) async fn send(
    client: &reqwest::Client,
    base: &str,
    out: Outgoing,
    client_headers: Vec<(&'static str, HeaderValue)>,
    keep_body: bool,
) -> Result<Answer, SendFailure> {
    let method = reqwest::Method::from_bytes(out.method.as_str().as_bytes())
        .map_err(|_| SendFailure { error: Error::internal("method"), maybe_received: false })?;
    let mut rb = client.request(method, format!("{base}{}", out.target()));
    for (name, v) in client_headers {
        rb = rb.header(name, v.as_bytes());
    }
    for (k, v) in &out.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some((ctype, body)) = out.body {
        rb = rb.header(reqwest::header::CONTENT_TYPE, ctype).body(body);
    }
    let resp = rb.send().await.map_err(|e| SendFailure {
        maybe_received: !e.is_connect(),
        error: if e.is_timeout() {
            Error::new(Code::UpstreamTimeout, "the exchange did not answer in time")
        } else {
            Error::new(Code::UpstreamUnavailable, "the exchange could not be reached")
        },
    })?;
    let status = resp.status().as_u16();
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
    let (body, order_ids) = if keep_body {
        let bytes = resp.bytes().await.map_err(|_| SendFailure {
            error: Error::new(Code::UpstreamUnavailable, "the exchange's answer broke off"),
            maybe_received: true,
        })?;
        let ids = order_ids(&bytes);
        (AnswerBody::Whole(bytes), ids)
    } else {
        (AnswerBody::Stream(Box::pin(resp.bytes_stream().map_err(std::io::Error::other))), Vec::new())
    };
    Ok(Answer { status, headers, body, order_ids })
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
