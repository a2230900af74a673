//! Key creation, group-committed: each new key is durable (with its ledger
//! head) before it is answered, and keys created at once share one ledger
//! write (one transaction, one fsync) instead of taking turns at one each.
//! A request queues its key, then takes the ledger's turn; whoever holds
//! the turn writes every queued key and answers each one.

use super::manage::{NewKey, new_record};
use super::{Changes, KeyEntry, Keys, Step, Turn, follow};
use crate::error::Result;
use crate::keys::Admitted;
use crate::seal::Unsealed;
use keyward_core::access_key::AccessKeySecret;
use keyward_core::policy::KeyState;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a creation answers: the new key's entry and its secret (shown once).
type Created = Result<(Arc<KeyEntry>, AccessKeySecret)>;

/// One key asked for, and where its answer goes.
#[derive(Debug)]
pub(super) struct CreateRequest {
    new: NewKey,
    answer: oneshot::Sender<Created>,
}

impl Keys {
    /// Creates a key (durable, in the ledger, in the index) and returns its
    /// entry and secret.
    pub(crate) async fn create(&self, _: &Admitted, unsealed: &Unsealed, new: NewKey) -> Created {
        let (tx, mut rx) = oneshot::channel();
        self.enqueue(&self.create_queue, CreateRequest { new, answer: tx }, "key creation")?;
        loop {
            match self.next_step(&self.create_queue, &mut rx, "key creation").await {
                Step::Answered(answer) => return answer,
                Step::Write(mut turn, batch) => self.write_creates(&mut turn, unsealed, batch).await,
            }
        }
    }

    async fn write_creates(&self, turn: &mut Turn<'_>, unsealed: &Unsealed, batch: Vec<CreateRequest>) {
        let now = self.clock.now_ms();
        let mut made = Vec::with_capacity(batch.len());
        // Each namespace's prefix read once a batch, not once a key.
        let mut prefixes: HashMap<String, String> = HashMap::new();
        for r in batch {
            let prefix = match prefixes.get(&r.new.namespace) {
                Some(p) => Ok(p.clone()),
                None => self.namespace_prefix(&r.new.namespace, now).await.inspect(|p| {
                    prefixes.insert(r.new.namespace.clone(), p.clone());
                }),
            };
            match prefix.and_then(|prefix| self.record_for(unsealed, &r.new, &prefix, now)) {
                Ok((rec, secret)) => made.push((r, rec, secret)),
                Err(e) => drop(r.answer.send(Err(e))),
            }
        }
        if made.is_empty() {
            return;
        }
        let changes =
            Changes { insert_keys: made.iter().map(|(_, rec, _)| rec.clone()).collect(), ..Changes::default() };
        match self.commit(turn, unsealed, changes).await {
            Ok(()) => {
                for (r, rec, secret) in made {
                    let _ = r.answer.send(self.upsert(KeyEntry::from_record(&rec, unsealed)).map(|e| (e, secret)));
                }
            }
            // Another node wrote meanwhile: the ledger was reread; the keys
            // wait for the next turn (with new secrets: these were never stored).
            Err(e) if follow::is_moved(&e) => {
                if let Ok(mut q) = self.create_queue.lock() {
                    q.extend(made.into_iter().map(|(r, _, _)| r));
                }
            }
            Err(e) => made.into_iter().for_each(|(r, _, _)| drop(r.answer.send(Err(e.clone())))),
        }
    }

    /// A new key's row and secret, its key starting with `prefix` (its
    /// namespace's).
    fn record_for(
        &self,
        unsealed: &Unsealed,
        new: &NewKey,
        prefix: &str,
        now: i64,
    ) -> Result<(keyward_store::KeyRecord, AccessKeySecret)> {
        let secret = AccessKeySecret::generate(prefix)?;
        let uses = new.policy.uses.map(|u| u.min(i64::MAX as u64) as i64);
        let mut rec =
            new_record(unsealed, &secret, &new.name, new.owner.clone(), &new.namespace, &new.policy, uses, now)?;
        if new.disabled {
            rec.state = KeyState::Disabled.as_str().to_string();
            rec.mac = unsealed.row_mac(&super::index::mac_input(&rec)).to_vec();
        }
        Ok((rec, secret))
    }
}
