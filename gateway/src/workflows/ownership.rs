//! Which gateway runs an instance: the actor placement leases again, with
//! each instance an "actor" of the internal type
//! `dapr.internal.{namespace}.{appId}.workflow` (daprd's name for it).
//!
//! A gateway joins placement for that type when its first SDK worker
//! connects (only gateways whose app registered workflows run them), takes
//! an instance's lease before its first step there, and re-sends the
//! instance's outbox when it takes over an instance from a dead gateway.
//! Every second it looks for instances nobody live holds and takes them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::actors::placement::{Owner, Placement};
use crate::actors::store::StoreError;

/// The outcome of claiming an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Held here already.
    Held,
    /// Taken just now (its outbox must be re-sent).
    Taken,
    /// Another live gateway runs it.
    Elsewhere,
}

/// This gateway's share of the workflow instances.
#[derive(Debug)]
pub(crate) struct Ownership {
    placement: Arc<Placement>,
    kind: String,
    owned: Mutex<HashSet<String>>,
}

impl Ownership {
    pub(crate) fn new(placement: Arc<Placement>, kind: String) -> Self {
        Self {
            placement,
            kind,
            owned: Mutex::new(HashSet::new()),
        }
    }

    /// Hold `id`'s lease (taking it if nobody live does).
    pub(crate) async fn claim(&self, id: &str) -> Result<Claim, StoreError> {
        let known = self.owned.lock().is_ok_and(|o| o.contains(id));
        if known && self.placement.is_valid() {
            return Ok(Claim::Held);
        }
        match self.placement.acquire(&self.kind, id).await? {
            Owner::Me(_) => {
                let fresh = self
                    .owned
                    .lock()
                    .map(|mut o| o.insert(id.to_owned()))
                    .unwrap_or(true);
                Ok(if fresh { Claim::Taken } else { Claim::Held })
            }
            Owner::Other(_) | Owner::Free => {
                self.forget(id);
                Ok(Claim::Elsewhere)
            }
        }
    }

    /// Whether another live gateway holds `id`.
    pub(crate) async fn elsewhere(&self, id: &str) -> Result<bool, StoreError> {
        if self.owned.lock().is_ok_and(|o| o.contains(id)) {
            return Ok(false);
        }
        Ok(matches!(
            self.placement.owner(&self.kind, id).await?,
            Owner::Other(_)
        ))
    }

    /// Drop an instance (finished, purged, or its lease lost).
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut owned) = self.owned.lock() {
            owned.remove(id);
        }
    }

    /// This gateway's entry lapsed: every lease it held is void.
    pub(crate) fn forget_all(&self) {
        if let Ok(mut owned) = self.owned.lock() {
            owned.clear();
        }
    }
}
