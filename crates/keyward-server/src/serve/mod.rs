//! Starting the server: open (or create) the data, unseal with the key file
//! when that is the seal, and listen. Without TLS it listens only on loopback
//! unless told `--insecure-listen`.

use crate::config::RuntimeConfig;
use crate::http::AppState;
use crate::init::{self, SealChoice};
use keyward_core::clock::{Clock, ManualClock, SystemClock};
use keyward_store::{SealKind, SqliteStore, Store};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod conn;
mod frames;
mod spread;
mod storage;
mod tasks;

pub use conn::ConnectionLimits;
pub use storage::{DatabaseUrl, open_store};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// In memory, auto-unsealed, for trying things out.
    pub dev: bool,
    /// The data directory (the SQLite database; the default unseal key
    /// file sits beside it).
    pub data_dir: PathBuf,
    /// A PostgreSQL database instead of the SQLite file: several nodes may share it.
    pub database_url: Option<DatabaseUrl>,
    /// Where the unseal key file is (default: beside the data directory).
    pub unseal_key_file: Option<PathBuf>,
    /// Address to listen on.
    pub listen: String,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Allow a non-loopback address without TLS.
    pub insecure_listen: bool,
    /// Trusted proxies, throttle, token lifetime.
    pub runtime: RuntimeConfig,
    /// Run with a settable clock (tests only).
    pub test_clock: bool,
    /// An extra listener serving only `/metrics`, without a key.
    pub metrics_listen: Option<String>,
    /// Bounds on connections: how many, and how long they may be slow or idle.
    pub connections: ConnectionLimits,
    /// Threads serving HTTP, each with its connections and their requests
    /// (see `conn::serve_per_thread`); 0 for one per core. SQLite only:
    /// with PostgreSQL requests are served from the shared runtime.
    pub http_threads: usize,
    /// How long a serving thread may poll its sockets before it sleeps
    /// (see `crate::spin`); zero never polls. Serving threads only (SQLite).
    pub http_poll: std::time::Duration,
    /// While serving threads poll, keep one more CPU from halting (see
    /// `crate::spin::Awake`): for a client on the same machine.
    pub http_keep_awake: bool,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn err(e: impl std::fmt::Display) -> StartError {
    StartError(e.to_string())
}

async fn resolve(listen: &str) -> Result<SocketAddr, StartError> {
    let mut addrs = tokio::net::lookup_host(listen).await.map_err(|e| {
        StartError(format!("cannot resolve listen address {listen:?}: {e} (use HOST:PORT, e.g. 127.0.0.1:8300)"))
    })?;
    addrs.next().ok_or_else(|| StartError(format!("listen address {listen:?} resolves to nothing")))
}

/// Opens the data and serves until SIGINT or SIGTERM.
pub async fn run(opts: ServerOptions) -> Result<(), StartError> {
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => return Err(err("TLS needs both --tls-cert and --tls-key")),
    };
    let acceptor = match &tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let addr = resolve(&opts.listen).await?;
    if !addr.ip().is_loopback() && tls.is_none() && !opts.insecure_listen {
        return Err(StartError(format!(
            "refusing to listen on {addr} without TLS: give --tls-cert and --tls-key, or --insecure-listen if a TLS-terminating proxy sits in front"
        )));
    }
    crate::http::init_request_ids().map_err(err)?;
    let manual = opts.test_clock.then(|| Arc::new(ManualClock::new(SystemClock.now_ms())));
    let (state, mut banner) =
        if opts.dev { open_dev(&opts, manual.clone()).await? } else { open_data(&opts, manual.clone()).await? };
    if manual.is_some() {
        banner.push_str("WARNING: --test-clock: time is set through /v1/sys/test-clock; for tests only.\n");
    }
    if let Some(m) = &opts.metrics_listen {
        let maddr = resolve(m).await?;
        if !maddr.ip().is_loopback() && !opts.insecure_listen {
            return Err(StartError(format!(
                "refusing an open metrics listener on {maddr}: it has no TLS and no key; use loopback or --insecure-listen"
            )));
        }
        let l = tokio::net::TcpListener::bind(maddr)
            .await
            .map_err(|e| StartError(format!("cannot listen on {maddr}: {e}")))?;
        println!("keyward metrics on http://{}/metrics", l.local_addr().map_err(err)?);
        let router = crate::http::metrics_app(state.clone());
        let limits = opts.connections;
        tokio::spawn(conn::serve(l, router, None, limits, std::future::pending()));
    }
    if let Some(changes) = state.store.changes() {
        banner.push_str("keyward: the database is shared: this node follows the changes other nodes make\n");
        tokio::spawn(crate::follow::run(state.clone(), changes));
    }
    tasks::start(&state);
    let app = crate::http::app(state.clone());

    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    listener.set_nonblocking(true).map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("{banner}keyward listening on {scheme}://{local}");
    tracing::info!(%local, scheme, "listening");

    if state.store.shared() {
        // PostgreSQL: a database connection belongs to the runtime that
        // opened it, and a thread busy serving would hold back every other
        // thread's statements on the connections it opened. Served from
        // the shared runtime instead.
        let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
        conn::serve(listener, app, acceptor, opts.connections, shutdown_signal()).await;
    } else {
        let threads = match opts.http_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(64),
            n => n,
        };
        let polling = crate::spin::Polling { max: opts.http_poll, keep_awake: opts.http_keep_awake };
        conn::serve_per_thread(listener, app, acceptor, opts.connections, threads, polling, shutdown_signal())
            .await
            .map_err(|e| StartError(format!("cannot start the HTTP threads: {e}")))?;
    }
    // Last uses noted since the last tick.
    state.keys.flush_last_used().await;
    Ok(())
}

/// The TLS acceptor for a certificate chain and key in PEM files: rustls,
/// HTTP/1.1 only (the request-line guard reads HTTP/1 framing).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |e: &dyn std::fmt::Display| {
        StartError(format!("cannot load TLS certificate {} / key {}: {e}", cert.display(), key.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(&e))?;
    if chain.is_empty() {
        return Err(fail(&"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| fail(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn new_state(
    store: Arc<dyn Store>,
    manual: Option<Arc<ManualClock>>,
    config: RuntimeConfig,
) -> Result<AppState, StartError> {
    let clock: Arc<dyn Clock> = match &manual {
        Some(m) => m.clone(),
        None => Arc::new(SystemClock),
    };
    AppState::build(store, clock, manual, config).map_err(|e| StartError(format!("cannot start: {}", e.message)))
}

async fn open_dev(opts: &ServerOptions, manual: Option<Arc<ManualClock>>) -> Result<(AppState, String), StartError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.map_err(err)?);
    let out = init::initialize(store.as_ref(), &SealChoice::Memory, SystemClock.now_ms()).await.map_err(err)?;
    let state = new_state(store, manual, opts.runtime.clone())?;
    let root = out.root.ok_or_else(|| err("dev init kept no root key"))?;
    state.unseal(root, &out.record).await.map_err(|e| err(e.message))?;
    let banner = format!(
        "keyward DEV MODE: everything is in memory and lost on exit; never use it for real keys.\n\
         Bootstrap admin key (shown once; it holds every scope):\n\n    export KEYWARD_TOKEN={}\n\n",
        out.admin_key.expose()
    );
    Ok((state, banner))
}

async fn open_data(opts: &ServerOptions, manual: Option<Arc<ManualClock>>) -> Result<(AppState, String), StartError> {
    let key_file = opts.unseal_key_file.clone().unwrap_or_else(|| init::default_key_file(&opts.data_dir));
    let store = open_store(opts.database_url.as_ref(), &opts.data_dir).await?;
    let data = match &opts.database_url {
        Some(url) => format!("the PostgreSQL database {}", url.redacted()),
        None => opts.data_dir.display().to_string(),
    };
    let mut banner = String::new();
    let record = match store.seal_record().await.map_err(err)? {
        Some(r) => r,
        None => {
            let out = init::initialize(store.as_ref(), &SealChoice::KeyFile(key_file.clone()), SystemClock.now_ms())
                .await
                .map_err(err)?;
            banner = format!(
                "keyward: initialised new data in {data}\n\
                 Unseal key file: {} (mode 0600, beside the data directory, not inside it)\n\
                 WARNING: anyone who can read both the unseal key file and the data can read every secret.\n\
                 In production, initialise with Shamir shares (keyward operator init --shares 5 --threshold 3) or an HSM.\n\n\
                 Bootstrap admin key (shown once; it holds every scope, keep it safe):\n\n    export KEYWARD_TOKEN={}\n\n",
                key_file.display(),
                out.admin_key.expose()
            );
            out.record
        }
    };
    let config = RuntimeConfig { unseal_key_file: Some(key_file.clone()), ..opts.runtime.clone() };
    let state = new_state(store, manual, config)?;
    match &record.kind {
        SealKind::Keyfile => {
            let root = init::read_key_file(&key_file).map_err(err)?;
            if !root.matches_check(&keyward_core::keyring::hex_decode(&record.check).unwrap_or_default()) {
                return Err(StartError(format!(
                    "the unseal key file {} does not belong to the data in {data}",
                    key_file.display(),
                )));
            }
            state.unseal(root, &record).await.map_err(|e| err(e.message))?;
        }
        SealKind::Shamir { threshold, shares, .. } => {
            banner.push_str(&format!(
                "keyward is sealed: unseal with {threshold} of the {shares} shares (keyward operator unseal)\n"
            ));
        }
        SealKind::Pkcs11 { .. } => {
            let lib = state.config.pkcs11_lib.clone();
            match state.barrier.hsm_root(&record, lib.as_deref(), None).await {
                Ok(root) => state.unseal(root, &record).await.map_err(|e| err(e.message))?,
                Err(e) => banner.push_str(&format!(
                    "keyward is sealed: the HSM did not unseal it: {}\n\
                     Fix that, then run `keyward operator unseal` (or restart keyward).\n",
                    e.message
                )),
            }
        }
    }
    Ok((state, banner))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
