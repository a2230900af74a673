//! Several keyward nodes on one database (PostgreSQL). Each node keeps its
//! own seal state and its own caches (the key index, decrypted secrets,
//! exchange accounts); this task keeps them in step with what the other
//! nodes write:
//!
//! - a change another node commits is heard at once (`LISTEN/NOTIFY`, sent
//!   in the same transaction as the change) and the matching cache is
//!   reread or dropped;
//! - every [`RESYNC_EVERY`] the node asks the database for the key
//!   ledger's revision and rereads the keys when it moved, which covers a
//!   notification missed while the listener reconnected;
//! - a node that has not heard from the database for [`STALE_AFTER`]
//!   authenticates no one (see `keys::follow`), and after a gap it rereads
//!   everything.

use crate::http::AppState;
use crate::keys::{RESYNC_EVERY, STALE_AFTER};
use keyward_store::Change;
use std::time::Instant;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Follows the other nodes until the process ends.
pub(crate) async fn run(state: AppState, mut changes: Receiver<Change>) {
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let change = tokio::select! {
            c = changes.recv() => match c {
                Ok(c) => c,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "fell behind the other nodes' changes: rereading everything");
                    Change::Resync
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let gap = last_heard.elapsed() > STALE_AFTER;
                if resync(&state).await {
                    if gap {
                        tracing::info!("the shared database answers again: rereading everything");
                        apply(&state, Change::Resync).await;
                    }
                    last_heard = Instant::now();
                }
                continue;
            }
        };
        apply(&state, change).await;
    }
}

/// The periodic check; true when the database answered.
async fn resync(state: &AppState) -> bool {
    let Ok(unsealed) = state.barrier.unsealed() else {
        return state.store.ledger_rev().await.is_ok();
    };
    match state.keys.resync(&unsealed).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot reach the shared database");
            false
        }
    }
}

/// Puts one change heard from another node in force on this one.
async fn apply(state: &AppState, change: Change) {
    let Ok(unsealed) = state.barrier.unsealed() else { return };
    let keys = |why: &'static str| {
        let (state, unsealed) = (state.clone(), unsealed.clone());
        async move {
            if let Err(e) = state.keys.refresh(&unsealed).await {
                tracing::warn!(error = %e.message, why, "could not reread the access keys");
            }
        }
    };
    match change {
        Change::Keys => keys("another node changed keys").await,
        Change::Secret(path) => state.secrets.forget(&path),
        Change::Seal => follow_seal(state).await,
        Change::Resync => {
            follow_seal(state).await;
            state.secrets.forget_all();
            keys("resync").await;
        }
        // Namespaces are read from the database when used.
        _ => {}
    }
}

async fn follow_seal(state: &AppState) {
    match state.barrier.follow_record().await {
        Ok(()) => {}
        Err(e) if e.code == crate::error::Code::Sealed => {
            if let Err(e) = state.seal() {
                tracing::error!(error = %e.message, "could not seal");
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "could not reread the seal record"),
    }
}
