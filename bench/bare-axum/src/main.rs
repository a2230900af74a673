//! A bare axum handler answering a tiny JSON POST: the HTTP stack's limit on
//! this machine, for bench/run. Listens on the address given (127.0.0.1:0 by
//! default) and prints it. Same allocator and release profile as keyward,
//! so the comparison is of the work done, not of the build.

use axum::Router;
use axum::routing::post;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new().route("/echo", post(|body: String| async move { format!("{{\"len\":{}}}", body.len()) }));
    let l = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", l.local_addr()?);
    axum::serve(l, app).await
}
