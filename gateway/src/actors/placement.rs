//! Placement by leases in the actor state store: no placement service.
//!
//! - Every gateway whose app hosts actor types keeps an entry in one
//!   directory record (`outrigger||actors||hosts`): its id, address, types,
//!   an epoch and an expiry it renews every `ttl / 4`.
//! - An actor's lease (`outrigger||actors||lease||{type}||{id}`) names a
//!   host and that host's epoch. It is valid while that host's entry is
//!   unexpired and still at that epoch, so one heartbeat renews every lease
//!   a gateway holds, however many actors it runs.
//! - A gateway takes a lease by compare-and-set: insert-if-absent, or over
//!   the ETag of a lease whose host is gone. Each take raises the lease's
//!   generation: the fencing token. A host that missed its own expiry
//!   (paused, partitioned) starts a new epoch, which voids all its old
//!   leases at once, and drops its actors.
//!
//! Clocks: expiries are wall-clock milliseconds, so gateways must agree on
//! the time to well within `ttl` (docs/actors.md says what happens if not).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::store::{PREFIX, Store, StoreError};
use outrigger_proto::components as pb;

/// How long the directory read is reused for routing decisions.
const DIRECTORY_CACHE: Duration = Duration::from_millis(250);

/// One hosting gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HostEntry {
    pub(crate) id: String,
    pub(crate) app_id: String,
    /// `host:port` of its gRPC API (where `CallActor` is served).
    pub(crate) address: String,
    pub(crate) types: Vec<String>,
    pub(crate) epoch: u64,
    pub(crate) expires_ms: i64,
}

impl HostEntry {
    fn live(&self, now: i64) -> bool {
        self.expires_ms > now
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Directory {
    hosts: Vec<HostEntry>,
}

/// Who may run an actor's turns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lease {
    host: String,
    epoch: u64,
    generation: u64,
}

/// A lease this gateway holds: its ETag and fencing generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) etag: String,
    pub(crate) generation: u64,
}

/// The outcome of looking up or taking an actor's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This gateway holds it.
    Me(Held),
    /// Another live gateway holds it.
    Other(HostEntry),
    /// Nobody live holds it.
    Free,
}

/// This gateway as a host.
#[derive(Debug)]
struct Me {
    id: String,
    app_id: String,
    address: String,
    types: Vec<String>,
    state: Mutex<MeState>,
}

#[derive(Debug, Default)]
struct MeState {
    epoch: u64,
    joined: bool,
    valid_until: Option<Instant>,
}

/// Placement as seen from one gateway.
#[derive(Debug)]
pub(crate) struct Placement {
    store: Store,
    me: Option<Me>,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Vec<HostEntry>)>>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lease_key(actor_type: &str, id: &str) -> String {
    format!("{PREFIX}||lease||{actor_type}||{id}")
}

fn directory_key() -> String {
    format!("{PREFIX}||hosts")
}

/// Rendezvous hashing: the host with the highest score for `id` wins, so
/// ids spread evenly and only a leaving host's share moves.
fn score(host: &str, id: &str) -> u64 {
    // FNV-1a: stable across processes and releases (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes().chain([0xff]).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV alone barely mixes the last bytes, which
    // is where ids like `order-17` differ.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

impl Placement {
    /// Placement for a gateway that hosts no actor types (it only calls).
    pub(crate) fn caller(store: Store, ttl: Duration) -> Self {
        Self {
            store,
            me: None,
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// Placement for a host of `types`, reachable at `address`.
    pub(crate) fn host(
        store: Store,
        ttl: Duration,
        app_id: &str,
        address: String,
        types: Vec<String>,
    ) -> Self {
        Self {
            store,
            me: Some(Me {
                id: uuid::Uuid::new_v4().to_string(),
                app_id: app_id.to_owned(),
                address,
                types,
                state: Mutex::new(MeState::default()),
            }),
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// This host's id (empty for a caller).
    pub(crate) fn id(&self) -> &str {
        self.me.as_ref().map_or("", |m| m.id.as_str())
    }

    /// The lease time-to-live.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn my_epoch(&self) -> Option<u64> {
        let me = self.me.as_ref()?;
        me.state.lock().ok().map(|s| s.epoch)
    }

    /// Whether this host may start turns: its last renewal is still good.
    pub(crate) fn is_valid(&self) -> bool {
        self.me.as_ref().is_some_and(|me| {
            me.state
                .lock()
                .ok()
                .and_then(|s| s.valid_until)
                .is_some_and(|until| Instant::now() < until)
        })
    }

    /// Renew this host's entry. `Ok(true)` when the host had lapsed and
    /// started a new epoch: every lease it held is void and its actors must go.
    pub(crate) async fn heartbeat(&self) -> Result<bool, StoreError> {
        let Some(me) = &self.me else {
            return Ok(false);
        };
        let started = Instant::now();
        let (joined, epoch) = match me.state.lock() {
            Ok(s) => (s.joined, s.epoch),
            Err(_) => return Err(StoreError::Failed("host state poisoned".into())),
        };
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let (new_epoch, lapsed) = self
            .store
            .update::<Directory, _>(&directory_key(), |current| {
                let mut dir = current.unwrap_or_default();
                let now = now_ms();
                let mine = dir.hosts.iter().position(|h| h.id == me.id);
                let lapsed = joined
                    && mine.is_none_or(|i| !dir.hosts[i].live(now) || dir.hosts[i].epoch != epoch);
                let next_epoch = if !joined {
                    1
                } else if lapsed {
                    epoch + 1
                } else {
                    epoch
                };
                // Forget hosts dead for ten lease times.
                dir.hosts
                    .retain(|h| h.id == me.id || h.expires_ms + 10 * ttl_ms > now);
                let entry = HostEntry {
                    id: me.id.clone(),
                    app_id: me.app_id.clone(),
                    address: me.address.clone(),
                    types: me.types.clone(),
                    epoch: next_epoch,
                    expires_ms: now.saturating_add(ttl_ms),
                };
                match dir.hosts.iter_mut().find(|h| h.id == me.id) {
                    Some(slot) => *slot = entry,
                    None => dir.hosts.push(entry),
                }
                (Some(dir), (next_epoch, lapsed))
            })
            .await?;
        if let Ok(mut s) = me.state.lock() {
            s.joined = true;
            s.epoch = new_epoch;
            // A margin of a tenth of the TTL for clock drift between hosts.
            s.valid_until = Some(started + self.ttl - self.ttl / 10);
        }
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
        Ok(lapsed)
    }

    /// Leave the directory (a clean shutdown, after releasing leases).
    pub(crate) async fn leave(&self) -> Result<(), StoreError> {
        let Some(me) = &self.me else {
            return Ok(());
        };
        if let Ok(mut s) = me.state.lock() {
            s.valid_until = None;
        }
        self.store
            .update::<Directory, _>(&directory_key(), |current| {
                let mut dir = current.unwrap_or_default();
                dir.hosts.retain(|h| h.id != me.id);
                (Some(dir), ())
            })
            .await
    }

    /// Every host entry (live or not), at most [`DIRECTORY_CACHE`] old unless `fresh`.
    pub(crate) async fn directory(&self, fresh: bool) -> Result<Vec<HostEntry>, StoreError> {
        if !fresh
            && let Ok(cache) = self.cache.lock()
            && let Some((at, hosts)) = cache.as_ref()
            && at.elapsed() < DIRECTORY_CACHE
        {
            return Ok(hosts.clone());
        }
        let hosts = self
            .store
            .get::<Directory>(&directory_key())
            .await?
            .map(|d| d.value.hosts)
            .unwrap_or_default();
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), hosts.clone()));
        }
        Ok(hosts)
    }

    /// Live hosts of `actor_type`.
    pub(crate) async fn hosts_of(&self, actor_type: &str) -> Result<Vec<HostEntry>, StoreError> {
        let now = now_ms();
        Ok(self
            .directory(false)
            .await?
            .into_iter()
            .filter(|h| h.live(now) && h.types.iter().any(|t| t == actor_type))
            .collect())
    }

    /// Where an actor without a live lease should be activated (from a
    /// fresh read of the directory, so a host that just joined gets its share).
    pub(crate) async fn choose(
        &self,
        actor_type: &str,
        id: &str,
    ) -> Result<Option<HostEntry>, StoreError> {
        let now = now_ms();
        Ok(self
            .directory(true)
            .await?
            .into_iter()
            .filter(|h| h.live(now) && h.types.iter().any(|t| t == actor_type))
            .max_by_key(|h| score(&h.id, id)))
    }

    /// Whether `host` is a live entry at `epoch` (`fresh` rereads the directory).
    async fn live_holder(
        &self,
        lease: &Lease,
        fresh: bool,
    ) -> Result<Option<HostEntry>, StoreError> {
        let now = now_ms();
        Ok(self
            .directory(fresh)
            .await?
            .into_iter()
            .find(|h| h.id == lease.host && h.epoch == lease.epoch && h.live(now)))
    }

    fn held_by_me(&self, lease: &Lease) -> bool {
        self.me.as_ref().is_some_and(|m| m.id == lease.host) && self.my_epoch() == Some(lease.epoch)
    }

    /// Who holds the actor's lease now.
    pub(crate) async fn owner(&self, actor_type: &str, id: &str) -> Result<Owner, StoreError> {
        let Some(found) = self.store.get::<Lease>(&lease_key(actor_type, id)).await? else {
            return Ok(Owner::Free);
        };
        if self.held_by_me(&found.value) {
            return Ok(Owner::Me(Held {
                etag: found.etag,
                generation: found.value.generation,
            }));
        }
        Ok(match self.live_holder(&found.value, false).await? {
            Some(host) => Owner::Other(host),
            None => Owner::Free,
        })
    }

    /// Take the actor's lease unless another live host holds it.
    pub(crate) async fn acquire(&self, actor_type: &str, id: &str) -> Result<Owner, StoreError> {
        let Some(me) = &self.me else {
            return Err(StoreError::Failed(
                "this gateway hosts no actor types".into(),
            ));
        };
        if !self.is_valid() {
            return Err(StoreError::Failed(
                "this gateway's placement entry is not renewed yet".into(),
            ));
        }
        let key = lease_key(actor_type, id);
        for _ in 0..8 {
            let epoch = self.my_epoch().unwrap_or(0);
            let current = self.store.get::<Lease>(&key).await?;
            let (generation, etag) = match &current {
                None => (1, None),
                Some(found) if self.held_by_me(&found.value) => {
                    return Ok(Owner::Me(Held {
                        etag: found.etag.clone(),
                        generation: found.value.generation,
                    }));
                }
                Some(found) => {
                    if let Some(host) = self.live_holder(&found.value, true).await? {
                        return Ok(Owner::Other(host));
                    }
                    (found.value.generation + 1, Some(found.etag.as_str()))
                }
            };
            let lease = Lease {
                host: me.id.clone(),
                epoch,
                generation,
            };
            match self.store.put(&key, &lease, etag).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(other) => return Err(other),
            }
            // Read back for the ETag that fences this holder's writes.
            if let Some(found) = self.store.get::<Lease>(&key).await?
                && self.held_by_me(&found.value)
            {
                return Ok(Owner::Me(Held {
                    etag: found.etag,
                    generation: found.value.generation,
                }));
            }
        }
        Err(StoreError::Failed(format!(
            "lease of actor {actor_type}/{id} kept changing hands"
        )))
    }

    /// Give the lease back (best effort: a changed lease is not ours any more).
    pub(crate) async fn release(&self, actor_type: &str, id: &str, held: &Held) {
        match self
            .store
            .delete(&lease_key(actor_type, id), Some(&held.etag))
            .await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(StoreError::Failed(why)) => {
                tracing::warn!(actor_type, actor_id = id, reason = %why, "could not release an actor lease; it lapses with this gateway's entry");
            }
        }
    }

    /// The transaction operation that makes a write conditional on still
    /// holding the lease (rewriting it unchanged over its ETag).
    pub(crate) fn fence(
        &self,
        actor_type: &str,
        id: &str,
        held: &Held,
    ) -> Result<pb::TransactionalStateOperation, StoreError> {
        let lease = Lease {
            host: self.id().to_owned(),
            epoch: self.my_epoch().unwrap_or(0),
            generation: held.generation,
        };
        let set = super::store::set_request(&lease_key(actor_type, id), &lease, Some(&held.etag))?;
        Ok(pb::TransactionalStateOperation {
            request: Some(pb::transactional_state_operation::Request::Set(set)),
        })
    }

    /// The lease's ETag after a fenced write changed it.
    pub(crate) async fn reread(
        &self,
        actor_type: &str,
        id: &str,
    ) -> Result<Option<Held>, StoreError> {
        Ok(self
            .store
            .get::<Lease>(&lease_key(actor_type, id))
            .await?
            .filter(|found| self.held_by_me(&found.value))
            .map(|found| Held {
                etag: found.etag,
                generation: found.value.generation,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_and_is_stable() {
        let hosts = [
            "4b0e2c1a-54f3-4c55-9a0e-6f1f0d2f9a11",
            "4b0e2c1a-54f3-4c55-9a0e-6f1f0d2f9a12",
            "9e7d1f00-0000-4000-8000-000000000001",
        ];
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let id = format!("actor-{i}");
            let best = (0..3)
                .max_by_key(|&h| score(hosts[h], &id))
                .unwrap_or_default();
            counts[best] += 1;
            // Removing a host that did not win does not move the actor.
            let loser = (0..3).find(|&h| h != best).unwrap_or_default();
            let rest: Vec<usize> = (0..3).filter(|&h| h != loser).collect();
            let again = rest
                .into_iter()
                .max_by_key(|&h| score(hosts[h], &id))
                .unwrap_or_default();
            assert_eq!(again, best);
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread: {counts:?}");
        }
    }
}
