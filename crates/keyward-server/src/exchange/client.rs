//! The client keyward talks to exchanges with: hyper's pooled HTTP/1
//! client over rustls (ring, the webpki roots), no redirects followed, no
//! Nagle, a bounded connect and a bounded answer.
//!
//! Not reqwest, measured (issue 18): on the proxy path its per-request URL
//! parsing (twice, with IDNA), its redirect and timeout layers, and its
//! copies of every header cost about as much CPU as keyward's own
//! authorization, signing and audit together. Requests here are
//! `http::Request`s built once from the signed request; nothing else
//! touches them on the way out.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a TCP (and TLS) connection to an exchange may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
const IDLE: Duration = Duration::from_secs(90);

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection was made (refused, DNS, TLS, connect timeout): the
    /// exchange cannot have seen the request.
    Connect,
    /// No answer in time, after the request may have left.
    Timeout,
    /// The connection broke after the request may have left.
    Broken,
}

type Pool = Client<HttpsConnector<Watched>, Full<Bytes>>;

thread_local! {
    /// Each thread's pools, by [`ExchangeClient`] (a server has one).
    static POOLS: std::cell::RefCell<Vec<(u64, Pool)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The exchange client (cheap to clone). Each thread keeps its own pool of
/// connections, so a request served on one thread (see `serve`) writes to
/// and reads from the exchange on that thread too, never waking another.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeClient {
    id: u64,
    connector: HttpsConnector<Watched>,
    timeout: Duration,
}

impl ExchangeClient {
    /// A client whose answers must be complete within `timeout`. Building
    /// it is part of starting: a server that cannot does not start.
    pub(crate) fn new(timeout: Duration) -> Result<Self, String> {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(Watched(http));
        Ok(Self { id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed), connector, timeout })
    }

    /// Sends `req` and waits for the answer's head; the deadline returned
    /// bounds reading its body.
    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Result<(Response<Incoming>, Instant), Failure> {
        let deadline = Instant::now() + self.timeout;
        let answer = POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, pool)) = pools.iter().find(|(id, _)| *id == self.id) {
                return pool.request(req);
            }
            let pool: Pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(IDLE)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.connector.clone());
            let answer = pool.request(req);
            pools.push((self.id, pool));
            answer
        });
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(resp)) => Ok((resp, deadline)),
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect),
            Ok(Err(_)) => Err(Failure::Broken),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// `GET url`: the answer's headers and whole body.
    pub(crate) async fn get(&self, url: &str) -> Result<(HeaderMap, Bytes), Failure> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri(url).ok_or(Failure::Connect)?;
        let (resp, deadline) = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        Ok((parts.headers, whole(body, deadline).await?))
    }
}

/// hyper's connector, whose connections the serving thread that opened
/// them polls before it sleeps (see `crate::spin`): the exchange's answer
/// is what a proxied request waits for.
#[derive(Debug, Clone)]
pub(crate) struct Watched(HttpConnector);

type Connecting = std::pin::Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Watched {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            crate::spin::watch(io.inner());
            Ok(io)
        })
    }
}

/// A URL as a request URI. A signed request's target is percent-encoded
/// already; anything `http` refuses is encoded the way browsers do first.
pub(crate) fn uri(url: &str) -> Option<Uri> {
    Uri::try_from(url).ok().or_else(|| Uri::try_from(url::Url::parse(url).ok()?.as_str()).ok())
}

/// A body read whole before `deadline`.
pub(crate) async fn whole(body: Incoming, deadline: Instant) -> Result<Bytes, Failure> {
    match tokio::time::timeout_at(deadline, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(Failure::Broken),
        Err(_) => Err(Failure::Timeout),
    }
}

/// A body as a stream of chunks that ends in an error at `deadline`.
pub(crate) fn stream(
    body: Incoming,
    deadline: Instant,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        loop {
            return match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the exchange's answer timed out")),
                    None,
                )),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => Some((Ok(data), Some(body))),
                    Err(_trailers) => None,
                },
            };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection's first request with `answer`
    /// (or nothing, when `None`), and counts the connections it took.
    async fn serve(answer: Option<String>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    match answer {
                        Some(a) => {
                            let _ = s.write_all(a.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        (url, seen)
    }

    fn get(url: &str) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri(url).unwrap();
        req
    }

    #[tokio::test]
    async fn a_redirect_is_answered_never_followed() {
        let (elsewhere, visits) = serve(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into())).await;
        let to = format!("HTTP/1.1 302 Found\r\nlocation: {elsewhere}/steal\r\ncontent-length: 0\r\n\r\n");
        let (exchange, _) = serve(Some(to)).await;
        let client = ExchangeClient::new(Duration::from_secs(5)).unwrap();
        let (resp, _) = client.send(get(&format!("{exchange}/api/v3/account"))).await.unwrap();
        assert_eq!(resp.status(), 302);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(visits.load(std::sync::atomic::Ordering::SeqCst), 0, "the redirect's target was never called");
    }

    #[tokio::test]
    async fn failures_say_whether_the_request_may_have_left() {
        let client = ExchangeClient::new(Duration::from_millis(300)).unwrap();
        // Nothing listens: no connection, the exchange cannot have seen it.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        assert_eq!(client.send(get(&format!("http://{closed}/x"))).await.err(), Some(Failure::Connect));
        // Taken and never answered: it may have been received.
        let (silent, _) = serve(None).await;
        assert_eq!(client.send(get(&format!("{silent}/x"))).await.err(), Some(Failure::Timeout));
        // Cut off before an answer.
        let (rude, _) = serve(Some(String::new())).await;
        assert_eq!(client.send(get(&format!("{rude}/x"))).await.err(), Some(Failure::Broken));
    }

    #[test]
    fn targets_become_uris() {
        assert_eq!(uri("http://127.0.0.1:8080/api/v3/order?a=1&b=%20").unwrap().path(), "/api/v3/order");
        // `http` refuses a raw `"` or `[`; they are encoded, not dropped.
        let u = uri("https://api.binance.com/api/v3/ticker?symbols=[\"BTCUSDT\"]").unwrap();
        assert_eq!(u.query(), Some("symbols=[%22BTCUSDT%22]"));
        assert!(uri("not a url").is_none());
    }
}
