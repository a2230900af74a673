//! The listener task: follows `keyward_changes` on one pooled connection
//! and rebroadcasts other nodes' changes to this node.
//!
//! A lost connection means notifications may have been missed: once the
//! listener is back on the channel it sends [`Change::Resync`]. Reconnecting
//! is retried forever with a backoff of at most a second. The task ends
//! when the store's last clone is dropped (its stop signal resolves) or the
//! pool is closed.
//!
//! A connection can also die without saying so (a network cut with no
//! reset): every [`PING_EVERY`] the listener sends itself a `ping` through
//! the pool, and when it has not heard its own ping for [`DEAF_AFTER`] it
//! takes the connection for dead, reconnects and sends a resync.

use super::CHANNEL;
use crate::Change;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How often the listener pings itself.
const PING_EVERY: Duration = Duration::from_secs(1);

/// A listener that has not heard its own ping for this long is deaf.
const DEAF_AFTER: Duration = Duration::from_secs(3);

/// The payload of a ping (never a change).
const PING: &str = "ping";

/// A listener on the channel, on a connection of `pool`.
pub(super) async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// What a payload `<node id>|<change>` means here: `None` for our own.
fn heard(payload: &str, node: &str) -> Option<Change> {
    match payload.split_once('|') {
        Some((from, _)) if from == node => None,
        Some((_, PING)) => None,
        Some((_, change)) => Some(Change::decode(change)),
        // Not one of ours: reread everything rather than miss a change.
        None => Some(Change::Resync),
    }
}

/// Follows the channel until `stop` resolves or the pool closes.
pub(super) async fn run(
    pool: PgPool,
    mut listener: PgListener,
    node: Arc<str>,
    out: broadcast::Sender<Change>,
    mut stop: oneshot::Receiver<()>,
) {
    let ping = format!("{node}|{PING}");
    loop {
        // Pings go out from their own task, so nothing ever cancels a
        // receive half-way but the verdict that the connection is deaf.
        let heard_at = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
        let deaf = Arc::new(tokio::sync::Notify::new());
        let pinger = tokio::spawn(pinger(pool.clone(), ping.clone(), heard_at.clone(), deaf.clone()));
        loop {
            let next = tokio::select! {
                _ = &mut stop => {
                    pinger.abort();
                    return;
                }
                _ = deaf.notified() => break,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(n)) if n.payload() == ping => {
                    if let Ok(mut at) = heard_at.lock() {
                        *at = tokio::time::Instant::now();
                    }
                }
                Ok(Some(n)) => {
                    if let Some(change) = heard(n.payload(), &node) {
                        // No receiver is no error: nobody follows yet.
                        let _ = out.send(change);
                    }
                }
                // The connection dropped and the listener reconnected.
                Ok(None) => {
                    let _ = out.send(Change::Resync);
                }
                Err(sqlx::Error::PoolClosed) => {
                    pinger.abort();
                    return;
                }
                Err(_) => break,
            }
        }
        pinger.abort();
        drop(listener);
        let mut backoff = Duration::from_millis(50);
        listener = loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(backoff) => {}
            }
            let attempt = tokio::select! {
                _ = &mut stop => return,
                attempt = subscribe(&pool) => attempt,
            };
            match attempt {
                Ok(listener) => break listener,
                Err(sqlx::Error::PoolClosed) => return,
                Err(_) => backoff = (backoff * 2).min(MAX_BACKOFF),
            }
        };
        let _ = out.send(Change::Resync);
    }
}

/// Sends a ping every [`PING_EVERY`]; wakes `deaf` once the listener has
/// not heard one for [`DEAF_AFTER`].
async fn pinger(
    pool: PgPool,
    ping: String,
    heard_at: Arc<std::sync::Mutex<tokio::time::Instant>>,
    deaf: Arc<tokio::sync::Notify>,
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        tick.tick().await;
        let silent = heard_at.lock().map(|at| at.elapsed() > DEAF_AFTER).unwrap_or(true);
        if silent {
            deaf.notify_one();
            return;
        }
        let send = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&ping).execute(&pool);
        let _ = tokio::time::timeout(PING_EVERY, send).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_messages_are_dropped_and_others_decoded() {
        assert_eq!(heard("abc|keys", "abc"), None);
        assert_eq!(heard("def|keys", "abc"), Some(Change::Keys));
        assert_eq!(heard("def|secret:a|b", "abc"), Some(Change::Secret("a|b".into())));
        assert_eq!(heard("garbage", "abc"), Some(Change::Resync));
        assert_eq!(heard("def|ping", "abc"), None, "another node's ping is no change");
    }
}
