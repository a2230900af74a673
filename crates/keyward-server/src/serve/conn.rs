//! Connections: the accept loop in front of the router, for plain HTTP and
//! TLS alike. A client gets a bounded number of connections (per address
//! and in total, below the process's file-descriptor limit), a bounded time
//! to send a request's head (slowloris), and a bounded idle time; an accept
//! that fails (out of descriptors) waits and goes on instead of ending the
//! server. HTTP/1.1 only: every byte read passes [`FragmentGuard`].

use axum::extract::ConnectInfo;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::frames::RequestLines;
use super::spread::{Counted, Handed, Seat, Spread};
use crate::http::App;
use crate::spin;
use tower::ServiceExt;

/// Bounds on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's whole head.
    pub header_read: Duration,
    /// Time a connection may sit with nothing read or written.
    pub idle: Duration,
    /// Connections open at once, in total (also kept below the descriptor limit).
    pub max_total: usize,
    /// Connections open at once from one client address (IPv6: its /64).
    pub max_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(75),
            max_total: 4096,
            max_per_address: 256,
        }
    }
}

/// Connections fit below the descriptor limit, with room for the store,
/// the upstream clients and the logs.
fn total_cap(configured: usize) -> usize {
    let soft =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(s, _)| s).unwrap_or(1024);
    let room = (soft as usize).saturating_sub(64).max(16);
    configured.min(room)
}

fn bucket(ip: IpAddr) -> IpAddr {
    match keyward_core::policy::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back when it closes.
struct Slot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let ip = bucket(ip);
        let mut m = self.0.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.0.lock()
            && let Some(n) = m.get_mut(&self.1)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// HTTP/1.1 only, as [`RequestLines`] frames it.
fn http_builder(limits: &ConnectionLimits) -> Builder {
    let mut http = Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read).keep_alive(true);
    http
}

/// How often a serving thread wakes with nothing to do (see [`serve_per_thread`]).
const TICK: Duration = Duration::from_millis(500);

/// The bounds on connections, shared by every accept loop of a listener.
#[derive(Debug, Clone)]
pub(super) struct Gate {
    limits: ConnectionLimits,
    total: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
}

impl Gate {
    pub(super) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            total: Arc::new(Semaphore::new(total_cap(limits.max_total))),
            per_address: Arc::new(PerAddress::default()),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish for up to ten seconds.
pub(super) async fn serve(
    listener: TcpListener,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    serve_gated(listener, app, tls, Gate::new(limits), None, shutdown).await
}

/// [`serve`] on `threads` threads, each with a single-threaded runtime of
/// its own accepting from a copy of `listener` (the nginx model): a request,
/// its handler and its call to the exchange stay on the thread that
/// accepted the connection, with no work stealing and no wake-ups across
/// threads on the way. The bounds on connections hold across all threads.
/// Returns once `shutdown` completed and every thread's connections ended.
pub(super) async fn serve_per_thread(
    listener: std::net::TcpListener,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    threads: usize,
    poll: spin::Polling,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let gate = Gate::new(limits);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut ended = Vec::new();
    // Another CPU to keep awake while the serving threads poll; on one CPU
    // there is none.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let awake = if poll.max.is_zero() || !poll.keep_awake || cpus < 2 {
        None
    } else {
        spin::Awake::start()
            .inspect_err(|e| tracing::warn!(error = %e, "cannot start the thread keeping a CPU awake; serving without"))
            .ok()
            .map(Arc::new)
    };
    for (i, seat) in Spread::seats(threads.max(1)).into_iter().enumerate() {
        // Built here, so a thread that cannot start stops the server starting.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(spin::before_park)
            .on_thread_unpark(spin::after_unpark)
            .build()?;
        let listener = {
            let _in = runtime.enter();
            TcpListener::from_std(listener.try_clone()?)?
        };
        let (app, tls, gate, mut stopped) = (app.clone(), tls.clone(), gate.clone(), stopped.clone());
        let awake = awake.clone();
        let (end, ended_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("keyward-http-{i}")).spawn(move || {
            if let Err(e) = spin::install(poll.max, runtime.metrics(), awake.as_deref()) {
                tracing::warn!(error = %e, "cannot poll before sleeping; serving without");
            }
            spin::watch(&listener);
            // The runtime's timer wakes the thread when a timer is set
            // earlier than the wake-up it planned when it last slept: every
            // request's header timeout (seconds away) would otherwise cost
            // the thread a self-wake, a syscall and an extra turn of its
            // event loop. A tick at least this often keeps the planned
            // wake-up nearer than any timeout a request sets.
            runtime.spawn(async {
                loop {
                    tokio::time::sleep(TICK).await;
                }
            });
            runtime.block_on(serve_gated(listener, app, tls, gate, Some(seat), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
            let _ = end.send(());
        })?;
        ended.push(ended_rx);
    }
    drop(listener);
    shutdown.await;
    let _ = stop.send(true);
    for e in ended {
        let _ = e.await;
    }
    Ok(())
}

/// What a connection holds while open: its places under the bounds.
type Held = (tokio::sync::OwnedSemaphorePermit, Slot);

/// What a serving thread's accept loop hears next.
enum Next {
    Accepted(io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>),
    Handed(Handed<Held>),
    Stop,
}

/// A connection handed over by another serving thread; never, without a seat.
async fn handed(seat: &mut Option<Seat<Held>>) -> Option<Handed<Held>> {
    match seat {
        Some(seat) => seat.inbox.recv().await,
        None => std::future::pending().await,
    }
}

async fn serve_gated(
    listener: TcpListener,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gate: Gate,
    mut seat: Option<Seat<Held>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Gate { limits, total, per_address } = gate;
    let graceful = GracefulShutdown::new();
    let open = Open { app, tls, http: http_builder(&limits), limits };
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            accepted = listener.accept() => Next::Accepted(accepted),
            Some(h) = handed(&mut seat) => Next::Handed(h),
            _ = &mut shutdown => Next::Stop,
        };
        let (tcp, peer) = match next {
            Next::Accepted(Ok(a)) => a,
            Next::Accepted(Err(e)) => {
                // Out of descriptors (or a connection reset before accept): wait, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Next::Handed(h) => {
                // Registered with this thread's runtime from here on.
                if let Ok(tcp) = tokio::net::TcpStream::from_std(h.tcp) {
                    open.serve(tcp, h.peer, (h.held, Some(h.count)), &graceful);
                }
                continue;
            }
            Next::Stop => break,
        };
        // Over a cap, the connection is closed at once: its descriptor comes back.
        let Ok(permit) = total.clone().try_acquire_owned() else { continue };
        let Some(slot) = per_address.take(peer.ip(), limits.max_per_address) else { continue };
        let _ = tcp.set_nodelay(true);
        let Some(seat) = &seat else {
            open.serve(tcp, peer, ((permit, slot), None), &graceful);
            continue;
        };
        let (to, count) = seat.spread.place(seat.me);
        if to == seat.me {
            open.serve(tcp, peer, ((permit, slot), Some(count)), &graceful);
            continue;
        }
        // Another thread serves fewer: the socket moves to its runtime. A
        // failure here (or that thread already stopped, at shutdown) closes
        // the connection, as a cap does.
        if let Ok(tcp) = tcp.into_std() {
            let _ = seat.spread.hand(to, Handed { tcp, peer, held: (permit, slot), count });
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after ten seconds; closing them");
    }
}

/// What serving a connection needs, shared by a thread's connections.
struct Open {
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http: Builder,
    limits: ConnectionLimits,
}

impl Open {
    /// Serves one accepted connection in a task of its own on this thread.
    fn serve(
        &self,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        held: (Held, Option<Counted>),
        graceful: &GracefulShutdown,
    ) {
        spin::watch(&tcp);
        let app = self.app.clone();
        let lines = Lines::default();
        let seen = lines.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            spin::served();
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            mark_fragment(&seen, &mut req);
            app.clone().oneshot(req)
        });
        let (tls, http, limits) = (self.tls.clone(), self.http.clone(), self.limits);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _held = held;
            let io: Box<dyn Io> = match tls {
                None => Box::new(tcp),
                Some(acceptor) => match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => Box::new(stream),
                    _ => return,
                },
            };
            let io = FragmentGuard::new(Idle::new(io, limits.idle), lines);
            let conn = http.serve_connection(TokioIo::new(io), service);
            let _ = watcher.watch(conn).await;
        });
    }
}

/// A byte stream a connection runs over (TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Closes a connection after `limit` with nothing read or written. A read
/// or write only notes the time; the timer is re-armed when it fires and
/// the connection was busy since, so the hot path never touches the timer
/// wheel.
struct Idle<T> {
    inner: T,
    limit: Duration,
    last: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Idle<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self { inner, limit, last: tokio::time::Instant::now(), timer: Box::pin(tokio::time::sleep(limit)) }
    }

    fn touch(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    /// True once `limit` passed with no activity; re-arms the timer otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last + self.limit;
            if deadline <= tokio::time::Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection closed")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads every byte before hyper does, noting for each request line
/// whether it held a raw `#` (see [`RequestLines`]); a stream it cannot
/// frame ends with an error, which closes the connection.
struct FragmentGuard<T> {
    inner: T,
    lines: Lines,
}

/// The request lines of one connection, shared by its reader and its service.
type Lines = Arc<Mutex<RequestLines>>;

impl<T> FragmentGuard<T> {
    fn new(inner: T, lines: Lines) -> Self {
        Self { inner, lines }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FragmentGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let fed = match self.lines.lock() {
                Ok(mut lines) => lines.feed(&buf.filled()[before..]).map_err(|e| e.to_string()),
                Err(_) => Err("request lines poisoned".to_string()),
            };
            if let Err(e) = fed {
                tracing::debug!(error = %e, "connection closed");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
        r
    }
}

/// Marks a request whose request line held a raw `#` (or that was not
/// seen as its own request line), for the router to refuse.
fn mark_fragment(lines: &Lines, req: &mut hyper::Request<axum::body::Body>) {
    let clean = lines.lock().ok().and_then(|mut l| l.next_request()) == Some(false);
    if !clean {
        req.extensions_mut().insert(crate::http::RawFragment);
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FragmentGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A small deterministic generator (no test depends on a seed's luck).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Text that looks like a request line with a fragment.
    const DECOY: &str = "GET /decoy#x HTTP/1.1\r\nHost: d\r\n\r\n";

    /// One pipelined stream: the requests' bytes, and for each request
    /// whether its request line holds a raw `#`.
    fn stream(rng: &mut Lcg) -> (Vec<u8>, Vec<bool>) {
        let mut out = Vec::new();
        let mut hashes = Vec::new();
        let n = 1 + rng.next(6);
        for i in 0..n {
            for _ in 0..rng.next(3) {
                out.extend_from_slice(b"\r\n");
            }
            let hash = rng.next(3) == 0;
            let query = if rng.next(2) == 0 { "?a=1&b=2" } else { "" };
            let frag = if hash { "#/../x?coin=1" } else { "" };
            let method = if rng.next(2) == 0 { "GET" } else { "POST" };
            out.extend_from_slice(format!("{method} /r{i}{query}{frag} HTTP/1.1\r\nHost: h\r\n").as_bytes());
            if rng.next(3) == 0 {
                out.extend_from_slice(format!("X-Note: {}\r\n", DECOY.replace("\r\n", " ")).as_bytes());
            }
            match rng.next(3) {
                0 => out.extend_from_slice(b"\r\n"),
                1 => {
                    let body = DECOY.repeat(1 + rng.next(3) as usize);
                    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
                }
                _ => {
                    let te = if rng.next(2) == 0 { "chunked" } else { "gzip, chunked" };
                    out.extend_from_slice(format!("Transfer-Encoding: {te}\r\n\r\n").as_bytes());
                    for _ in 0..1 + rng.next(3) {
                        let data = &DECOY[..1 + rng.next(DECOY.len() as u64) as usize];
                        let ext = if rng.next(2) == 0 { ";e=\"v\"" } else { "" };
                        out.extend_from_slice(format!("{:X}{ext}\r\n{data}\r\n", data.len()).as_bytes());
                    }
                    out.extend_from_slice(b"0\r\n");
                    if rng.next(2) == 0 {
                        out.extend_from_slice(b"X-Trailer: GET /t#t HTTP/1.1\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
            hashes.push(hash);
        }
        (out, hashes)
    }

    /// Runs `bytes` through hyper behind [`FragmentGuard`], as the server
    /// does; returns, for each request hyper dispatched, whether it was
    /// marked, after the whole stream (fed in pieces of `step` bytes).
    async fn marks(bytes: Vec<u8>, step: usize) -> Vec<bool> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let lines = Lines::default();
        let seen = lines.clone();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            mark_fragment(&seen, &mut req);
            let marked = req.extensions().get::<crate::http::RawFragment>().is_some();
            record.lock().unwrap().push(marked);
            async move {
                // Read the body, as handlers do, before answering.
                let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
                Ok::<_, std::convert::Infallible>(hyper::Response::new(axum::body::Body::empty()))
            }
        });
        let http = http_builder(&ConnectionLimits::default());
        let conn = tokio::spawn(async move {
            let io = FragmentGuard::new(server, lines);
            let _ = http.serve_connection(TokioIo::new(io), service).await;
        });
        for piece in bytes.chunks(step) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        client.shutdown().await.unwrap();
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        let _ = conn.await;
        got.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn every_request_hyper_dispatches_carries_its_own_request_lines_mark() {
        let mut rng = Lcg(0x6b65_7977_6172_6421);
        for round in 0..300 {
            let (bytes, hashes) = stream(&mut rng);
            let step = [1, 3, 17, 64, 1 << 20][round % 5];
            let got = marks(bytes.clone(), step).await;
            assert_eq!(got, hashes, "round {round}, step {step}: {}", String::from_utf8_lossy(&bytes));
        }
    }
}
