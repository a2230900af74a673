//! `keyward server`.

use anyhow::Result;
use clap::Args;
use keyward_server::serve::{ServerOptions, run as serve};
use std::path::PathBuf;

/// Run the server.
///
/// With no flags: keeps its data in ./keyward-data (SQLite), creating it on
/// first start together with an unseal key file beside it
/// (./keyward-data.unseal.key), and prints a bootstrap admin key once.
/// Listens on 127.0.0.1:8300. Without TLS it refuses non-loopback addresses
/// unless --insecure-listen is given.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Run in memory, auto-unsealed, for trying things out. Nothing is kept.
    #[arg(long)]
    dev: bool,
    /// Data directory.
    #[arg(long, env = "KEYWARD_DATA", default_value = "./keyward-data")]
    data: PathBuf,
    /// Unseal key file (default: the data directory's name + .unseal.key, beside it).
    #[arg(long, env = "KEYWARD_UNSEAL_KEY_FILE")]
    unseal_key_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8300")]
    listen: String,
    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS (rustls).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow a non-loopback address without TLS (e.g. behind a TLS-terminating proxy).
    #[arg(long)]
    insecure_listen: bool,
    /// Log filter (tracing env-filter syntax), logs go to stderr.
    #[arg(long, env = "KEYWARD_LOG", default_value = "info")]
    log: String,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(a: ServerArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&a.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let opts = ServerOptions {
        dev: a.dev,
        data_dir: a.data,
        unseal_key_file: a.unseal_key_file,
        listen: a.listen,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        insecure_listen: a.insecure_listen,
    };
    serve(opts).await?;
    Ok(())
}
