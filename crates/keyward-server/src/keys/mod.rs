//! Access keys: the in-memory index verification reads, admission (rate and
//! uses, spent only once a request is authorized), and the changes an
//! authorized caller may make (create, change state, roll, namespaces).
//!
//! Every change re-MACs the row under a root-derived key, moves the key
//! ledger forward (see [`ledger`]: a row written back from an earlier copy
//! no longer matches it) and updates the index before it returns, so a
//! revocation is in force for the very next request. Never logs or returns
//! a key after its creation answer.

mod admission;
mod create;
mod follow;
mod index;
pub(crate) mod ledger;
mod lookup;
mod manage;
mod terms;
mod uses;
mod verify;

pub(crate) use admission::{Admitted, RateInfo};
pub(crate) use follow::{RESYNC_EVERY, STALE_AFTER};
pub(crate) use index::{KeyEntry, KeyIndex, mac_input};
pub(crate) use ledger::{Changes, Ledger};
pub(crate) use manage::{CreateKey, CreateNamespace, ROLL_REFUSED, may_manage, new_record, state_change};
pub(crate) use verify::{VerifyAnswer, VerifyRequest, may_verify};

use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use keyward_core::access_key::{self, AccessKeySecret};
use keyward_core::clock::Clock;
use keyward_core::policy::{KeyPolicy, KeyState};
use keyward_core::scope::Scope;
use keyward_store::{KeyRecord, OrderUsage, Store, StoreError};
use std::sync::{Arc, RwLock};

/// The namespace of keyward's own keys; keys of any other namespace never
/// authenticate to keyward's API.
pub(crate) const KEYWARD_NAMESPACE: &str = "keyward";

/// The access-key service.
#[derive(Debug)]
pub(crate) struct Keys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    index: RwLock<KeyIndex>,
    /// The key ledger while unsealed (`None`: sealed, or it failed its
    /// check and nothing may change). Changes take turns here: each reads
    /// a row, changes it, writes it with the next ledger head and updates
    /// the index, and two interleaved (enable racing revoke) must not leave
    /// the index saying other than the store.
    ledger: tokio::sync::Mutex<Option<Ledger>>,
    /// Re-seal a ledger that fails its check at unseal (`--reseal-key-ledger`).
    reseal_ledger: bool,
    /// `--key-max-age` (seconds), for keyward's keys without their own.
    default_max_age_s: Option<u64>,
    /// Uses waiting for the next group commit (see [`uses`]).
    use_queue: std::sync::Mutex<Vec<uses::UseRequest>>,
    /// Keys waiting for the next group commit (see [`create`]).
    create_queue: std::sync::Mutex<Vec<create::CreateRequest>>,
    /// Other nodes on the same database (see [`follow`]).
    follow: follow::Follow,
}

/// How the key service runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeysConfig {
    /// `--reseal-key-ledger`.
    pub reseal_ledger: bool,
    /// `--key-max-age` (seconds).
    pub default_max_age_s: Option<u64>,
}

/// Says which keys a failed ledger check refuses, and what to do.
fn log_broken(broken: &ledger::Broken, ids: &[impl std::fmt::Debug]) {
    tracing::error!(
        why = broken.why,
        parts = broken.parts.len(),
        refused = ?ids,
        "the key ledger failed its check: these keys are refused (key_tampered) and cannot change; \
         see docs/threat-model.md, then restart once with --reseal-key-ledger"
    );
}

/// What a queued request does next (see [`Keys::enqueue`]).
enum Step<'a, Q, R> {
    /// It was answered.
    Answered(Result<R>),
    /// It holds the ledger's turn: write the batch.
    Write(Turn<'a>, Vec<Q>),
}

/// One turn at the ledger: the head as it stands, for one change.
pub(crate) type Turn<'a> = tokio::sync::MutexGuard<'a, Option<Ledger>>;

/// Key rows read a page at a time while loading.
const LOAD_PAGE: u64 = 10_000;

fn poisoned() -> Error {
    Error::internal("key index lock poisoned")
}

impl Keys {
    /// An empty service (sealed: nothing loaded). With `reseal_ledger`, a
    /// key ledger that fails its check at unseal is re-sealed over the rows
    /// as they are instead of refusing every key.
    pub(crate) fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: KeysConfig) -> Self {
        Self {
            clock,
            index: RwLock::new(KeyIndex::default()),
            ledger: tokio::sync::Mutex::new(None),
            reseal_ledger: config.reseal_ledger,
            default_max_age_s: config.default_max_age_s,
            use_queue: std::sync::Mutex::new(Vec::new()),
            create_queue: std::sync::Mutex::new(Vec::new()),
            follow: follow::Follow::new(store.shared()),
            store,
        }
    }

    /// Loads every key row, checking each MAC and the key ledger over all
    /// of them (on unseal). Where the ledger does not hold, its keys are
    /// refused as tampered and cannot change, and the log says why.
    ///
    /// Rows are read and checked a page at a time (a million keys load in
    /// a second or two, and the rows read are not all held at once); the
    /// rare starts that rewrite rows (no ledger head yet, a ledger to
    /// re-seal) read them all first ([`Keys::load_whole`]).
    pub(crate) async fn load(&self, unsealed: &Unsealed) -> Result<()> {
        let mut turn = self.ledger.lock().await;
        let started = std::time::Instant::now();
        for _ in 0..follow::RETRIES {
            let Some(head) = self.store.ledger_head().await? else { break };
            let expected = head.count.min(100_000_000) as usize;
            let mut ledger = Ledger::with_capacity(expected);
            let mut idx = KeyIndex::new(self.default_max_age_s, expected);
            let mut policies = index::Policies::default();
            // The next page is read while this one is checked.
            let mut pages = self.store.key_pages(LOAD_PAGE).await?;
            while let Some(page) = pages.next().await? {
                ledger.add_keys(unsealed, &page);
                idx.add(&page, unsealed, &mut policies);
            }
            ledger.add_usage(unsealed, &self.store.list_order_usage().await?);
            // Another node wrote while the pages were read: read them again.
            if self.store.ledger_rev().await? != Some(head.rev) {
                continue;
            }
            self.follow.heard();
            let (ledger, broken) = ledger.against(unsealed, &head);
            if let Some(broken) = broken {
                if self.reseal_ledger {
                    break;
                }
                let ids = idx.mark_tampered(|id| !ledger.holds(id));
                log_broken(&broken, &ids);
            }
            let keys = idx.len();
            self.install(idx)?;
            *turn = Some(ledger);
            tracing::info!(keys, ms = started.elapsed().as_millis() as u64, "access keys loaded");
            return Ok(());
        }
        self.load_whole(unsealed, &mut turn).await
    }

    /// [`Keys::load`] over every row read at once: the first start with a
    /// key ledger (rows written before it existed), and a re-seal.
    async fn load_whole(&self, unsealed: &Unsealed, turn: &mut Turn<'_>) -> Result<()> {
        let mut records = self.store.list_keys().await?;
        let usage = self.store.list_order_usage().await?;
        let head = self.store.ledger_head().await?;
        // Just read: fresh (a node unsealed long after it started).
        self.follow.heard();
        let (mut ledger, broken) = match &head {
            Some(h) => Ledger::check(unsealed, h, &records, &usage),
            None => self.first_ledger(unsealed, &mut records, &usage).await?,
        };
        if let Some(broken) = broken {
            if self.reseal_ledger {
                ledger = self.reseal(unsealed, &mut records, &usage, &ledger, head.map(|h| h.rev), &broken).await?;
            } else {
                let ids: Vec<&str> = records.iter().filter(|r| !ledger.holds(&r.id)).map(|r| r.id.as_str()).collect();
                log_broken(&broken, &ids);
            }
        }
        self.install(KeyIndex::load(&records, unsealed, |id| ledger.holds(id), self.default_max_age_s))?;
        **turn = Some(ledger);
        Ok(())
    }

    /// `--reseal-key-ledger`: revokes every key of a part that did not hold
    /// (a written-back copy may have un-revoked it, and keyward cannot tell
    /// which), then writes a head over the rows as they are.
    async fn reseal(
        &self,
        unsealed: &Unsealed,
        records: &mut Vec<KeyRecord>,
        usage: &[OrderUsage],
        checked: &Ledger,
        stored_rev: Option<u64>,
        broken: &ledger::Broken,
    ) -> Result<Ledger> {
        let mut revoked = Vec::new();
        for r in records.iter_mut().filter(|r| !checked.holds(&r.id)) {
            if r.state != KeyState::Revoked.as_str() {
                r.state = KeyState::Revoked.as_str().to_string();
                r.mac = unsealed.row_mac(&mac_input(r)).to_vec();
                revoked.push(r.clone());
            }
        }
        let ids: Vec<String> = revoked.iter().map(|r| r.id.clone()).collect();
        tracing::warn!(
            why = broken.why,
            revoked = ?ids,
            "re-sealing the key ledger over the rows as they are (--reseal-key-ledger); every key of the parts \
             that did not hold is now revoked: create new keys for the bots that used them"
        );
        // Revoking an admin key must not lock the operator out.
        let admin_lost = revoked.iter().any(|r| {
            serde_json::from_str::<KeyPolicy>(&r.policy)
                .is_ok_and(|p| p.scopes.iter().any(|s| matches!(s, Scope::SysAdmin | Scope::KeyAdmin)))
        });
        let recovery = if admin_lost {
            let secret = AccessKeySecret::generate(access_key::DEFAULT_PREFIX)?;
            let policy = KeyPolicy { scopes: Scope::all(), ..KeyPolicy::default() };
            let now = self.clock.now_ms();
            let owner = Some("operator".to_string());
            let rec = new_record(unsealed, &secret, "recovery-admin", owner, KEYWARD_NAMESPACE, &policy, None, now)?;
            records.push(rec.clone());
            Some((secret, rec))
        } else {
            None
        };
        let (l, mut write) = Ledger::reseal(unsealed, records, usage, stored_rev, revoked);
        write.insert_keys.extend(recovery.iter().map(|(_, rec)| rec.clone()));
        self.store.commit_ledger(&write).await?;
        if let Some((secret, rec)) = recovery {
            tracing::warn!(id = %rec.id, "an admin key was revoked: a recovery admin key was created");
            println!(
                "\nThe key ledger was re-sealed and the admin keys of its broken parts revoked.\n\
                 Recovery admin key (shown once; it holds every scope, keep it safe):\n\n    export KEYWARD_TOKEN={}\n",
                secret.expose()
            );
        }
        Ok(l)
    }

    /// No ledger head is stored. Rows written since the ledger exists
    /// (`v2` MACs) mean it was deleted: every part is broken. Rows from
    /// before it are re-MACed and the first head is written over them (the
    /// upgrade).
    async fn first_ledger(
        &self,
        unsealed: &Unsealed,
        records: &mut [KeyRecord],
        usage: &[OrderUsage],
    ) -> Result<(Ledger, Option<ledger::Broken>)> {
        if records.iter().any(|r| unsealed.verify_row_mac(&mac_input(r), &r.mac)) {
            return Ok((
                Ledger::broken_over(unsealed, records, usage),
                Some(ledger::Broken::everywhere("the ledger head is missing")),
            ));
        }
        // The upgrade is taken only over rows that are all keyward's own:
        // rows that fail both MACs may be newer ones garbled to pass as old.
        if records.iter().any(|r| !unsealed.verify_row_mac(&index::mac_input_v1(r), &r.mac)) {
            let broken = ledger::Broken::everywhere("no ledger head, and some key rows are not keyward's");
            return Ok((Ledger::broken_over(unsealed, records, usage), Some(broken)));
        }
        let mut rewrite = Vec::new();
        for r in records.iter_mut() {
            r.mac = unsealed.row_mac(&mac_input(r)).to_vec();
            rewrite.push(r.clone());
        }
        let (l, write) = Ledger::reseal(unsealed, records, usage, None, rewrite);
        self.store.commit_ledger(&write).await?;
        tracing::warn!(keys = records.len(), "key ledger written over the existing keys (first start after upgrade)");
        Ok((l, None))
    }

    /// Takes a turn at the ledger.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        self.ledger.lock().await
    }

    /// Group commit on the key ledger: a request joins its queue
    /// ([`Keys::enqueue`]), then waits for its answer or the ledger's turn,
    /// whichever comes first. With the turn it writes everything queued by
    /// then in one step, answering each request on its own channel, so
    /// concurrent requests share one ledger write and one fsync.
    fn enqueue<Q>(&self, queue: &std::sync::Mutex<Vec<Q>>, request: Q, what: &str) -> Result<()> {
        queue.lock().map_err(|_| Error::internal(&format!("{what} queue poisoned")))?.push(request);
        Ok(())
    }

    /// The next step of a queued request (see [`Keys::enqueue`]).
    async fn next_step<Q, R>(
        &self,
        queue: &std::sync::Mutex<Vec<Q>>,
        rx: &mut tokio::sync::oneshot::Receiver<Result<R>>,
        what: &str,
    ) -> Step<'_, Q, R> {
        use tokio::sync::oneshot::error::TryRecvError;
        let answered = |rx: &mut tokio::sync::oneshot::Receiver<Result<R>>| match rx.try_recv() {
            Ok(answer) => Some(answer),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => Some(Err(Error::internal(&format!("a {what} was dropped unanswered")))),
        };
        if let Some(answer) = answered(rx) {
            return Step::Answered(answer);
        }
        let turn = self.turn().await;
        if let Some(answer) = answered(rx) {
            return Step::Answered(answer);
        }
        match queue.lock() {
            Ok(mut q) => Step::Write(turn, std::mem::take(&mut *q)),
            Err(_) => Step::Answered(Err(Error::internal(&format!("{what} queue poisoned")))),
        }
    }

    /// Writes `changes` with the next ledger head, in one transaction.
    pub(crate) async fn commit(&self, turn: &mut Turn<'_>, unsealed: &Unsealed, changes: Changes) -> Result<()> {
        let Some(ledger) = turn.as_mut() else { return Err(Error::sealed()) };
        let (next, write) = match ledger.step(unsealed, changes) {
            Ok(step) => step,
            Err(ledger::Refused::Broken(id)) => {
                return Err(Error::new(
                    Code::RowTampered,
                    format!("the key ledger part holding key {id} failed its check at unseal: it cannot change"),
                ));
            }
            Err(ledger::Refused::Stale(id)) if self.follow.shared && self.store.ledger_rev().await? != ledger.rev() => {
                // Another node wrote since this one last read: read again.
                tracing::debug!(key_id = %id, "the key ledger moved on another node; rereading it");
                self.refresh_locked(turn, unsealed).await?;
                return Err(follow::moved());
            }
            Err(ledger::Refused::Stale(id)) => {
                // keyward keeps serving what it last wrote; the restart check
                // will refuse the part, and nothing is written on top of it.
                ledger.quarantine(&id);
                tracing::error!(
                    key_id = %id,
                    "a key row or counter in the database is not the one keyward last wrote (edited, or an \
                     earlier copy written back); its part of the key ledger is frozen"
                );
                return Err(Error::new(
                    Code::RowTampered,
                    format!("the stored record of key {id} is not the one keyward wrote; it cannot change"),
                ));
            }
        };
        match self.store.commit_ledger(&write).await {
            Ok(()) => {
                ledger.apply(next);
                Ok(())
            }
            Err(StoreError::Conflict { current }) => {
                // Written by someone else, or a commit whose answer was lost:
                // take the stored head if it still holds over the stored rows.
                if self.follow.shared {
                    tracing::debug!(expected = ?write.expected_rev, current, "the key ledger moved; rereading it");
                } else {
                    tracing::warn!(expected = ?write.expected_rev, current, "the key ledger moved; reloading it");
                }
                // Kept as it was if the reread fails: the next write conflicts and rereads again.
                if let Err(e) = self.refresh_locked(turn, unsealed).await {
                    tracing::warn!(error = %e.message, "could not reread the key ledger");
                }
                Err(follow::moved())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the index.
    pub(crate) fn install(&self, index: KeyIndex) -> Result<()> {
        *self.index.write().map_err(|_| poisoned())? = index;
        Ok(())
    }

    /// Drops the index (on seal): no key verifies until the next unseal.
    pub(crate) fn unload(&self) {
        if let Ok(mut idx) = self.index.write() {
            *idx = KeyIndex::default();
        }
        if let Ok(mut l) = self.ledger.try_lock() {
            *l = None;
        }
    }

    /// The key stored under this keyed hash.
    pub(crate) fn by_hash(&self, hash: &[u8; 32]) -> Result<Option<Arc<KeyEntry>>> {
        self.follow.check()?;
        Ok(self.index.read().map_err(|_| poisoned())?.by_hash(hash))
    }

    /// The key with this id.
    pub(crate) fn by_id(&self, id: &str) -> Result<Option<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.by_id(id))
    }

    /// Every key, in no order.
    pub(crate) fn all(&self) -> Result<Vec<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.all())
    }

    /// Every entry, oldest first.
    pub(crate) fn all_sorted(&self) -> Result<Vec<Arc<KeyEntry>>> {
        let mut v = self.all()?;
        v.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Every entry `keep` keeps, in no order (a scan of a million keys
    /// that clones only what it keeps).
    pub(crate) fn filtered(&self, keep: impl Fn(&KeyEntry) -> bool) -> Result<Vec<Arc<KeyEntry>>> {
        Ok(self.index.read().map_err(|_| poisoned())?.filtered(keep))
    }

    /// How many keys are loaded.
    pub(crate) fn count(&self) -> usize {
        self.index.read().map(|i| i.len()).unwrap_or(0)
    }

    fn upsert(&self, entry: KeyEntry) -> Result<Arc<KeyEntry>> {
        Ok(self.index.write().map_err(|_| poisoned())?.upsert(entry))
    }

    /// Writes the last use of every key used since the last flush.
    pub(crate) async fn flush_last_used(&self) {
        let Ok(dirty) = self.filtered(|k| k.take_dirty()) else { return };
        for k in dirty {
            let ip = k.last_used_ip().map(|i| i.to_string()).unwrap_or_default();
            if let Err(e) = self.store.touch_key(&k.id, k.last_used_ms(), &ip).await {
                tracing::warn!(error = %e, "could not record last use");
                k.still_dirty();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::clock::SystemClock;
    use keyward_core::keyring::{Keyring, RootKey};
    use keyward_store::{LedgerWrite, SqliteStore};

    fn raw(db: &std::path::Path, statement: &str) -> impl std::future::Future<Output = ()> {
        let (url, statement) = (format!("sqlite://{}", db.display()), statement.to_string());
        async move {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(&statement).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    }

    /// Keys as keyward wrote them before the key ledger: `v1` row MACs and
    /// no head (with `edit`, one row edited since).
    async fn before_the_ledger(db: &std::path::Path, u: &Unsealed, edit: bool) -> Vec<AccessKeySecret> {
        let store = SqliteStore::open(db).await.unwrap();
        let mut secrets = Vec::new();
        let mut rows = Vec::new();
        for name in ["a", "b", "c"] {
            let secret = AccessKeySecret::generate("kw").unwrap();
            let policy = KeyPolicy { scopes: vec![Scope::SysMetrics], ..KeyPolicy::default() };
            let mut rec = new_record(u, &secret, name, None, KEYWARD_NAMESPACE, &policy, Some(5), 1).unwrap();
            rec.mac = u.row_mac(&index::mac_input_v1(&rec)).to_vec();
            rows.push(rec);
            secrets.push(secret);
        }
        if edit {
            rows[2].name = "edited".into();
        }
        store.commit_ledger(&LedgerWrite { insert_keys: rows, ..LedgerWrite::default() }).await.unwrap();
        drop(store);
        raw(db, "DELETE FROM key_ledger").await;
        secrets
    }

    fn keys_on(store: Arc<dyn Store>) -> Keys {
        Keys::new(store, Arc::new(SystemClock), KeysConfig::default())
    }

    #[tokio::test]
    async fn keys_from_before_the_ledger_are_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("k.db");
        let u = Unsealed::new(Keyring::new(RootKey::from_slice(&[5; 32]).unwrap(), 1));
        let secrets = before_the_ledger(&db, &u, false).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
        let keys = keys_on(store.clone());
        keys.load(&u).await.unwrap();
        let tampered = |k: &Keys, s: &AccessKeySecret| {
            k.by_hash(&u.access_key_hash(s.expose().as_bytes())).unwrap().unwrap().tampered
        };
        assert!(secrets.iter().all(|s| !tampered(&keys, s)));
        assert!(store.ledger_head().await.unwrap().is_some(), "the first head was written");
        for r in &store.list_keys().await.unwrap() {
            assert!(u.verify_row_mac(&mac_input(r), &r.mac), "{}: re-MACed as v2", r.name);
        }
        // Loaded again, the ledger holds; without its head, the v2 rows say it was deleted.
        let again = keys_on(store.clone());
        again.load(&u).await.unwrap();
        assert!(!tampered(&again, &secrets[0]));
        drop((keys, again, store));
        raw(&db, "DELETE FROM key_ledger").await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
        let deleted = keys_on(store);
        deleted.load(&u).await.unwrap();
        assert!(secrets.iter().all(|s| tampered(&deleted, s)), "no key is taken over a second time");
    }

    #[tokio::test]
    async fn an_upgrade_over_rows_that_are_not_all_keywards_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("k.db");
        let u = Unsealed::new(Keyring::new(RootKey::from_slice(&[5; 32]).unwrap(), 1));
        let secrets = before_the_ledger(&db, &u, true).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
        let keys = keys_on(store.clone());
        keys.load(&u).await.unwrap();
        for s in &secrets {
            assert!(keys.by_hash(&u.access_key_hash(s.expose().as_bytes())).unwrap().unwrap().tampered);
        }
        assert!(store.ledger_head().await.unwrap().is_none(), "nothing was taken over");
    }
}
