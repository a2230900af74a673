//! Following the other nodes of a shared database (PostgreSQL): when
//! another node changes a key, a counter or the ledger, this node rereads
//! the rows and the ledger head and rebuilds its index (keeping each key's
//! live state: its rate limiter and last use), so a revocation made on one
//! node is in force on every node as soon as it is heard.
//!
//! A node that has not heard from the database for longer than
//! [`STALE_AFTER`] refuses to authenticate anyone (`store_unavailable`)
//! rather than serve a revocation list that may be out of date.

use super::{Keys, Ledger, Turn, ledger};
use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a node asks the database whether the key ledger moved,
/// whatever the notifications said (a resync covers any it missed).
pub(crate) const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// A node that has not heard from the database for this long refuses
/// authentication: a revocation made elsewhere is never missed for longer.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(2);

/// The answer of a write that lost a race with another node (or found the
/// ledger moved): the rows were reread, the caller starts again.
const MOVED: &str = "the key ledger changed during this write; try again";

/// How often a change is tried again after losing a race.
pub(super) const RETRIES: u32 = 8;

pub(super) fn moved() -> Error {
    Error::new(Code::StoreUnavailable, MOVED)
}

/// True for the answer of [`moved`]: start the change again.
pub(super) fn is_moved(e: &Error) -> bool {
    e.code == Code::StoreUnavailable && e.message == MOVED
}

/// Whether this node shares its database, and when it last heard from it.
#[derive(Debug)]
pub(super) struct Follow {
    /// The database is shared with other nodes.
    pub(super) shared: bool,
    epoch: Instant,
    /// Milliseconds after `epoch` until which the index counts as fresh.
    fresh_until_ms: AtomicU64,
}

impl Follow {
    pub(super) fn new(shared: bool) -> Self {
        let f = Self { shared, epoch: Instant::now(), fresh_until_ms: AtomicU64::new(0) };
        f.heard();
        f
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The database answered: fresh for [`STALE_AFTER`] more.
    pub(super) fn heard(&self) {
        let until = self.now_ms() + STALE_AFTER.as_millis() as u64;
        self.fresh_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Refuses while a shared database has not been heard from.
    pub(super) fn check(&self) -> Result<()> {
        if !self.shared || self.now_ms() <= self.fresh_until_ms.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(Error::new(
            Code::StoreUnavailable,
            format!(
                "this node has not reached the shared database for more than {}s: it authenticates no one \
                 rather than miss a revocation made on another node",
                STALE_AFTER.as_secs()
            ),
        )
        .retry_after(1))
    }
}

impl Keys {
    /// The periodic resync: asks the database for the ledger's revision and
    /// rereads everything when it is not the one this node holds. Counts
    /// as hearing from the database when it answers.
    pub(crate) async fn resync(&self, unsealed: &Unsealed) -> Result<()> {
        let stored = self.store.ledger_rev().await?;
        self.follow.heard();
        let mut turn = self.turn().await;
        if turn.as_ref().is_some_and(|l| l.rev() != stored) {
            self.refresh_locked(&mut turn, unsealed).await?;
        }
        Ok(())
    }

    /// Another node changed keys: reread them now.
    pub(crate) async fn refresh(&self, unsealed: &Unsealed) -> Result<()> {
        let mut turn = self.turn().await;
        if turn.is_none() {
            return Ok(());
        }
        self.refresh_locked(&mut turn, unsealed).await
    }

    /// Rereads the rows, the counters and the head (one consistent read:
    /// the revision is the same before and after), checks the head over
    /// them and rebuilds the index. A head older than the one held is
    /// never taken: a database rolled back to an earlier copy would bring
    /// revoked keys back.
    pub(super) async fn refresh_locked(&self, turn: &mut Turn<'_>, unsealed: &Unsealed) -> Result<()> {
        let held = turn.as_ref().and_then(Ledger::rev);
        for _ in 0..RETRIES {
            let before = self.store.ledger_rev().await?;
            let records = self.store.list_keys().await?;
            let usage = self.store.list_order_usage().await?;
            let Some(head) = self.store.ledger_head().await? else {
                return Err(Error::new(Code::RowTampered, "the key ledger head is gone from the database"));
            };
            if before != Some(head.rev) {
                continue;
            }
            self.follow.heard();
            if held.is_some_and(|h| head.rev < h) {
                tracing::error!(
                    held = ?held,
                    stored = head.rev,
                    "the key ledger in the database went backwards (an earlier copy written back?): not taken"
                );
                return Err(Error::new(Code::RowTampered, "the key ledger in the database went backwards"));
            }
            let (l, broken) = Ledger::check(unsealed, &head, &records, &usage);
            if let Some(ledger::Broken { why, parts }) = &broken {
                tracing::error!(why, parts = parts.len(), "the key ledger failed its check after another node's write");
            }
            let index =
                self.index.read().map_err(|_| super::poisoned())?.reloaded(&records, unsealed, |id| l.holds(id));
            self.install(index)?;
            **turn = Some(l);
            return Ok(());
        }
        Err(moved())
    }

    /// Runs a change, again from the start (up to [`RETRIES`] times) when it
    /// lost a race with another node's write: each try rereads what it changes.
    pub(super) async fn retrying<T, F, Fut>(&self, mut once: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match once().await {
                Err(e) if is_moved(&e) && tries < RETRIES => tries += 1,
                done => return done,
            }
        }
    }

    /// The key ledger's revision held (`None` while sealed).
    pub(crate) async fn rev(&self) -> Option<u64> {
        self.turn().await.as_ref().and_then(Ledger::rev)
    }

    /// Moves the stored head past revision `held` if it is at or below it
    /// (after a restore brought an older head back).
    pub(crate) async fn advance_past(&self, unsealed: &Unsealed, held: u64) -> Result<()> {
        let mut turn = self.turn().await;
        let Some(ledger) = turn.as_mut() else { return Ok(()) };
        if ledger.rev().is_some_and(|r| r > held) {
            return Ok(());
        }
        let (next, write) = ledger.jump(unsealed, held + 1);
        self.store.commit_ledger(&write).await?;
        ledger.apply(next);
        Ok(())
    }
}
