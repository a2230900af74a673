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
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// The most often a node rereads every key row: notices that arrive
/// meanwhile wait and are put in force together, so another node's
/// traffic (a use-limited key spending on every request) costs this node
/// at most ten rereads a second, and a change is still in force well
/// within a second.
const KEY_REREAD_EVERY: Duration = Duration::from_millis(100);

/// Changes heard and not yet put in force, merged.
#[derive(Debug, Default)]
struct Heard {
    keys: bool,
    seal: bool,
    secrets: BTreeSet<String>,
    everything: bool,
}

impl Heard {
    fn add(&mut self, change: Result<Change, RecvError>) {
        match change {
            Ok(Change::Keys) => self.keys = true,
            Ok(Change::Secret(path)) => drop(self.secrets.insert(path)),
            Ok(Change::Seal) => self.seal = true,
            Ok(Change::Namespaces) => {}
            Ok(_) => self.everything = true,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "fell behind the other nodes' changes: rereading everything");
                self.everything = true;
            }
            Err(RecvError::Closed) => {}
        }
    }
}

/// Follows the other nodes until the process ends.
pub(crate) async fn run(state: AppState, mut changes: Receiver<Change>) {
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut last_reread = Instant::now().checked_sub(KEY_REREAD_EVERY).unwrap_or_else(Instant::now);
    loop {
        let mut heard = Heard::default();
        tokio::select! {
            c = changes.recv() => match c {
                Err(RecvError::Closed) => return,
                c => heard.add(c),
            },
            _ = tick.tick() => {
                let gap = last_heard.elapsed() > STALE_AFTER;
                if resync(&state).await {
                    if gap {
                        tracing::info!("the shared database answers again: rereading everything");
                        apply(&state, Heard { everything: true, ..Heard::default() }).await;
                    }
                    last_heard = Instant::now();
                }
                continue;
            }
        }
        if heard.keys || heard.everything {
            tokio::time::sleep(KEY_REREAD_EVERY.saturating_sub(last_reread.elapsed())).await;
            last_reread = Instant::now();
        }
        loop {
            match changes.try_recv() {
                Ok(c) => heard.add(Ok(c)),
                Err(TryRecvError::Lagged(n)) => heard.add(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        apply(&state, heard).await;
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
            tracing::warn!(error = %e.message, "cannot follow the shared database");
            false
        }
    }
}

/// Puts what was heard from other nodes in force on this one.
async fn apply(state: &AppState, heard: Heard) {
    let Ok(unsealed) = state.barrier.unsealed() else { return };
    if heard.seal || heard.everything {
        follow_seal(state).await;
    }
    if heard.everything {
        state.secrets.forget_all();
    } else {
        heard.secrets.iter().for_each(|p| state.secrets.forget(p));
    }
    if (heard.keys || heard.everything)
        && let Err(e) = state.keys.refresh(&unsealed).await
    {
        tracing::warn!(error = %e.message, "could not reread the access keys");
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
