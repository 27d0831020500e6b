//! The instance index: instance id → status, in `INDEX_PARTITIONS` records
//! (for listing and for resuming after a restart).
//!
//! Every start and every end of an instance changes its partition's record
//! by compare-and-set. Under load many such changes wait for one partition
//! at once, so whoever holds a partition's writer applies every change
//! queued so far in one read and one write, and the callers whose changes
//! went with it return without touching the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Engine;
use crate::actors::store::StoreError;
use crate::workflows::records::{self, Index, Status};

/// One partition's writer on this gateway.
#[derive(Debug, Default)]
pub(super) struct Writer {
    turn: tokio::sync::Mutex<()>,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Changes not yet in the store (`None` removes the instance).
    changes: HashMap<String, Option<Status>>,
    /// Tickets handed out, one per change queued.
    queued: u64,
    /// Every ticket up to this one is in the store.
    applied: u64,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Failed("the workflow index queue is poisoned".into())
}

impl Engine {
    /// Every indexed instance and its status, sorted by id.
    pub(super) async fn index(&self) -> Result<Vec<(String, Status)>, StoreError> {
        let mut all = Vec::new();
        for p in 0..records::INDEX_PARTITIONS {
            if let Some(part) = self
                .store
                .get::<Index>(&records::index_key(&self.app_id, p))
                .await?
            {
                all.extend(part.value.instances);
            }
        }
        all.sort();
        Ok(all)
    }

    /// Record `id`'s status (`None`: drop it) in the index; returns once
    /// the change is stored, by this call or by one batched with it.
    pub(super) async fn set_index(
        &self,
        id: &str,
        status: Option<Status>,
    ) -> Result<(), StoreError> {
        let partition = records::partition(id);
        let writer = self
            .index_writers
            .lock()
            .map(|mut w| Arc::clone(w.entry(partition).or_default()))
            .map_err(poisoned)?;
        let ticket = {
            let mut queue = writer.queue.lock().map_err(poisoned)?;
            queue.changes.insert(id.to_owned(), status);
            queue.queued += 1;
            queue.queued
        };
        let _turn = writer.turn.lock().await;
        let (changes, upto) = {
            let mut queue = writer.queue.lock().map_err(poisoned)?;
            if queue.applied >= ticket {
                return Ok(());
            }
            (std::mem::take(&mut queue.changes), queue.queued)
        };
        let key = records::index_key(&self.app_id, partition);
        let stored = self
            .store
            .update::<Index, _>(&key, |current| {
                let mut part = current.unwrap_or_default();
                for (id, status) in &changes {
                    match status {
                        Some(status) => part.instances.insert(id.clone(), *status),
                        None => part.instances.remove(id),
                    };
                }
                (Some(part), ())
            })
            .await;
        let mut queue = writer.queue.lock().map_err(poisoned)?;
        match stored {
            Ok(()) => {
                queue.applied = queue.applied.max(upto);
                Ok(())
            }
            Err(err) => {
                // Queue again what no later change replaced: the next
                // writer stores it (its callers see this error or retry).
                for (id, status) in changes {
                    queue.changes.entry(id).or_insert(status);
                }
                Err(err)
            }
        }
    }
}
