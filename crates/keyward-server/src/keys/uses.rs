//! Uses of use-limited keys, group-committed: each use is durable before
//! it is granted, and concurrent uses share one ledger write (one
//! transaction, one fsync) instead of taking turns at one each. A request
//! queues its use, then takes the ledger's turn; whoever holds the turn
//! writes every queued use and answers each one, so a request that finds
//! its answer already there returns at once.

use super::{Changes, Keys, Step, Turn, follow};
use crate::error::{Error, Result};
use crate::seal::Unsealed;
use keyward_core::decision::DenyReason;
use keyward_store::KeyRecord;
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// One use asked for: the key and where its answer goes (uses left after it).
#[derive(Debug)]
pub(super) struct UseRequest {
    key_id: String,
    answer: oneshot::Sender<Result<i64>>,
}

fn exhausted() -> Error {
    Error::new(DenyReason::UsesExhausted, "this key has no uses left")
}

impl Keys {
    /// Takes one use of `key_id` durably; the uses left after it.
    pub(super) async fn spend_use(&self, unsealed: &Unsealed, key_id: &str) -> Result<i64> {
        let (tx, mut rx) = oneshot::channel();
        self.enqueue(&self.use_queue, UseRequest { key_id: key_id.to_string(), answer: tx }, "use")?;
        loop {
            match self.next_step(&self.use_queue, &mut rx, "use").await {
                Step::Answered(answer) => return answer,
                Step::Write(mut turn, batch) => self.write_uses(&mut turn, unsealed, batch).await,
            }
        }
    }

    async fn write_uses(&self, turn: &mut Turn<'_>, unsealed: &Unsealed, batch: Vec<UseRequest>) {
        let mut by_key: BTreeMap<String, Vec<oneshot::Sender<Result<i64>>>> = BTreeMap::new();
        for r in batch {
            by_key.entry(r.key_id).or_default().push(r.answer);
        }
        let mut changes = Changes::default();
        let mut granted: Vec<(String, oneshot::Sender<Result<i64>>, i64)> = Vec::new();
        for (id, answers) in by_key {
            let stored = match self.store.key(&id).await {
                Ok(Some(row)) => row,
                Ok(None) => {
                    answers.into_iter().for_each(|a| drop(a.send(Err(Error::not_found("no such key")))));
                    continue;
                }
                Err(e) => {
                    let e = Error::from(e);
                    answers.into_iter().for_each(|a| drop(a.send(Err(e.clone()))));
                    continue;
                }
            };
            let mut left = stored.uses_remaining.unwrap_or(0);
            for a in answers {
                if left <= 0 {
                    let _ = a.send(Err(exhausted()));
                } else {
                    left -= 1;
                    granted.push((id.clone(), a, left));
                }
            }
            if Some(left) != stored.uses_remaining {
                let spent = KeyRecord { uses_remaining: Some(left), ..stored.clone() };
                changes.update_keys.push((stored, spent));
            }
        }
        if changes.update_keys.is_empty() {
            return;
        }
        // One write for every key in the batch: all granted, or none.
        match self.commit(turn, unsealed, changes).await {
            Ok(()) => granted.into_iter().for_each(|(_, a, left)| drop(a.send(Ok(left)))),
            // Another node spent or changed one of these keys meanwhile: the
            // rows were reread; the uses wait for the next turn, counted again.
            Err(e) if follow::is_moved(&e) => {
                if let Ok(mut q) = self.use_queue.lock() {
                    q.extend(granted.into_iter().map(|(key_id, answer, _)| UseRequest { key_id, answer }));
                }
            }
            Err(e) => granted.into_iter().for_each(|(_, a, _)| drop(a.send(Err(e.clone())))),
        }
    }
}
