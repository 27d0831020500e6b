//! Waiting for an instance's status (`WaitForInstanceStart`,
//! `WaitForInstanceCompletion`): each waiter is woken by changes of its own
//! instance only. One notification for every waiter on every commit made
//! each of N waiters reread its instance on each of the others' steps, and
//! with 200 clients waiting those rereads were most of the store's calls.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::Engine;

/// The waiters of one instance; dropping the last one forgets the instance.
pub(super) struct Watch<'a> {
    engine: &'a Engine,
    id: String,
    pub(super) notify: Arc<Notify>,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if let Ok(mut watchers) = self.engine.watchers.lock() {
            // The map's reference and ours: no other waiter is left.
            if watchers
                .get(&self.id)
                .is_some_and(|n| Arc::strong_count(n) <= 2)
            {
                watchers.remove(&self.id);
            }
        }
    }
}

/// Waiters by instance id.
pub(super) type Watchers = std::sync::Mutex<HashMap<String, Arc<Notify>>>;

impl Engine {
    /// Start watching `id`'s status.
    pub(super) fn watch(&self, id: &str) -> Watch<'_> {
        let notify = self
            .watchers
            .lock()
            .map(|mut w| Arc::clone(w.entry(id.to_owned()).or_default()))
            .unwrap_or_default();
        Watch {
            engine: self,
            id: id.to_owned(),
            notify,
        }
    }

    /// `id`'s status (or record) changed: wake its waiters.
    pub(super) fn changed(&self, id: &str) {
        if let Ok(watchers) = self.watchers.lock()
            && let Some(notify) = watchers.get(id)
        {
            notify.notify_waiters();
        }
    }
}
