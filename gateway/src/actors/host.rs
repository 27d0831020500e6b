//! The actors this gateway runs: one turn at a time per actor (a FIFO lock,
//! bounded queue, call timeout), reentrancy, activation under a lease, idle
//! deactivation, and the timers each actor holds (run in `timer.rs`). Turns
//! and deactivations are calls to the app (`app.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::app::ActorApp;
use super::config::HostConfig;
use super::placement::{Held, HostEntry, Owner, Placement};
use crate::error::{ApiError, codes};
use crate::runtime::invoke::Reply;

/// The header that carries a reentrant call chain's id.
pub const REENTRANCY_HEADER: &str = "Dapr-Reentrancy-Id";

/// Calls queued for one actor beyond this are refused.
const MAX_QUEUE: usize = 4096;

/// How long a call waits for its turn.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `(type, id)`.
pub(crate) type ActorKey = (String, String);

/// One active actor.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: ActorKey,
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    chain: Mutex<Option<(String, u32)>>,
    held: Mutex<Held>,
    last_used: Mutex<Instant>,
    dead: AtomicBool,
    /// Running timers by name: a serial (which start owns the entry) and
    /// the token that stops it (see `timer.rs`).
    pub(super) timers: Mutex<HashMap<String, (u64, CancellationToken)>>,
}

impl Slot {
    fn new(key: ActorKey, held: Held) -> Self {
        Self {
            key,
            turn: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            chain: Mutex::new(None),
            held: Mutex::new(held),
            last_used: Mutex::new(Instant::now()),
            dead: AtomicBool::new(false),
            timers: Mutex::new(HashMap::new()),
        }
    }

    fn touch(&self) {
        if let Ok(mut at) = self.last_used.lock() {
            *at = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    /// The lease as last known.
    pub(crate) fn held(&self) -> Option<Held> {
        self.held.lock().ok().map(|h| h.clone())
    }

    pub(crate) fn set_held(&self, held: Held) {
        if let Ok(mut h) = self.held.lock() {
            *h = held;
        }
    }

    /// Whether the actor was deactivated (calls must look for it again).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn cancel_timers(&self) {
        if let Ok(mut timers) = self.timers.lock() {
            for (_, (_, token)) in timers.drain() {
                token.cancel();
            }
        }
    }
}

/// Which callback of the app a turn is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnKind {
    /// An actor method, by name.
    Method(String),
    /// A timer firing, by timer name (the body is the timer's JSON).
    Timer(String),
    /// A reminder firing, by reminder name (the body is the reminder's JSON).
    Reminder(String),
}

/// What one turn asks the app.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub(crate) kind: TurnKind,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// A turn's result.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The app answered.
    Done(Reply),
    /// The actor is not here any more: look it up again.
    Moved,
}

/// Where an actor runs, from this host's side.
#[derive(Debug)]
pub(crate) enum Activation {
    Local(Arc<Slot>),
    Remote(HostEntry),
}

/// This gateway's actor host.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) config: HostConfig,
    pub(crate) placement: Arc<Placement>,
    app: ActorApp,
    actors: Mutex<HashMap<ActorKey, Arc<Slot>>>,
    closed: AtomicBool,
}

fn invoke_error(message: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_ACTOR_INVOKE_METHOD, message)
}

impl Host {
    pub(crate) fn new(config: HostConfig, placement: Arc<Placement>, app: ActorApp) -> Self {
        Self {
            config,
            placement,
            app,
            actors: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether the app hosts `actor_type`.
    pub(crate) fn hosts(&self, actor_type: &str) -> bool {
        self.config.entities.iter().any(|e| e == actor_type)
    }

    /// The slot of an actor active here.
    pub(crate) fn active(&self, actor_type: &str, id: &str) -> Option<Arc<Slot>> {
        let actors = self.actors.lock().ok()?;
        actors
            .get(&(actor_type.to_owned(), id.to_owned()))
            .filter(|s| !s.is_dead())
            .cloned()
    }

    /// Active actor ids of `actor_type`, sorted.
    pub(crate) fn active_ids(&self, actor_type: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .actors
            .lock()
            .map(|a| {
                a.keys()
                    .filter(|(t, _)| t == actor_type)
                    .map(|(_, id)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// How many actors of each type are active here.
    pub(crate) fn counts(&self) -> Vec<(String, usize)> {
        self.config
            .entities
            .iter()
            .map(|t| (t.clone(), self.active_ids(t).len()))
            .collect()
    }

    /// Run the actor here (taking its lease) unless another live host has it.
    pub(crate) async fn activate(
        &self,
        actor_type: &str,
        id: &str,
    ) -> Result<Activation, ApiError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ApiError::new(
                codes::ERR_ACTOR_RUNTIME_CLOSED,
                "the actor runtime is shutting down",
            ));
        }
        if let Some(slot) = self.active(actor_type, id) {
            return Ok(Activation::Local(slot));
        }
        if !self.placement.is_valid() {
            // A late renewal (a loaded machine) passes: callers retry this
            // code as they do for a moving actor, within 1.5 × the lease ttl.
            return Err(ApiError::new(
                codes::ERR_ACTOR_NO_PLACEMENT,
                format!(
                    "placing actor {actor_type}/{id}: this gateway's placement entry is not renewed yet"
                ),
            ));
        }
        let owner = self
            .placement
            .acquire(actor_type, id)
            .await
            .map_err(|e| invoke_error(format!("placing actor {actor_type}/{id}: {e}")))?;
        match owner {
            Owner::Me(held) => {
                let key = (actor_type.to_owned(), id.to_owned());
                let mut actors = self
                    .actors
                    .lock()
                    .map_err(|_| invoke_error("actor table poisoned"))?;
                let slot = actors
                    .entry(key.clone())
                    .and_modify(|s| {
                        if s.is_dead() {
                            *s = Arc::new(Slot::new(key.clone(), held.clone()));
                        }
                    })
                    .or_insert_with(|| Arc::new(Slot::new(key.clone(), held)));
                Ok(Activation::Local(Arc::clone(slot)))
            }
            Owner::Other(host) => Ok(Activation::Remote(host)),
            Owner::Free => Err(invoke_error(format!(
                "actor {actor_type}/{id} could not be placed"
            ))),
        }
    }

    /// Run one turn of `slot`: wait for it (FIFO), unless `chain` continues
    /// the reentrant chain now running.
    pub(crate) async fn turn(
        &self,
        slot: &Arc<Slot>,
        turn: &Turn,
        chain: Option<String>,
    ) -> Result<Outcome, ApiError> {
        let (actor_type, id) = (&slot.key.0, &slot.key.1);
        let reentrancy = self.config.reentrancy(actor_type);
        if reentrancy.enabled
            && let Some(chain_id) = &chain
        {
            let depth = slot.chain.lock().ok().and_then(|c| match c.as_ref() {
                Some((running, depth)) if running == chain_id => Some(*depth),
                _ => None,
            });
            if let Some(depth) = depth {
                if depth >= reentrancy.max_stack_depth {
                    return Err(ApiError::new(
                        codes::ERR_ACTOR_TOO_MANY_CALLS,
                        format!(
                            "actor {actor_type}/{id}: reentrancy depth {} exceeds maxStackDepth {}",
                            depth + 1,
                            reentrancy.max_stack_depth
                        ),
                    ));
                }
                self.set_depth(slot, chain_id, depth + 1);
                let reply = self.call_app(slot, &in_chain(turn, chain_id)).await;
                self.set_depth(slot, chain_id, depth);
                return reply.map(Outcome::Done);
            }
        }
        if slot.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUE {
            slot.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::new(
                codes::ERR_ACTOR_TOO_MANY_CALLS,
                format!("actor {actor_type}/{id} has {MAX_QUEUE} calls waiting already"),
            ));
        }
        let guard = tokio::time::timeout(CALL_TIMEOUT, slot.turn.lock()).await;
        slot.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(_guard) = guard else {
            return Err(invoke_error(format!(
                "actor {actor_type}/{id}: no turn within {CALL_TIMEOUT:?}"
            )));
        };
        if slot.is_dead() {
            return Ok(Outcome::Moved);
        }
        if !self.placement.is_valid() {
            // This gateway could not renew its placement entry: its leases
            // may lapse mid-turn, so it runs none; callers look elsewhere.
            tracing::debug!(
                actor_type,
                actor_id = id,
                "placement entry not renewed; refusing a turn"
            );
            return Ok(Outcome::Moved);
        }
        let chain_id = reentrancy
            .enabled
            .then(|| chain.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        let reply = match &chain_id {
            Some(chain_id) => {
                self.set_depth(slot, chain_id, 1);
                self.call_app(slot, &in_chain(turn, chain_id)).await
            }
            None => self.call_app(slot, turn).await,
        };
        if let Ok(mut c) = slot.chain.lock() {
            *c = None;
        }
        slot.touch();
        reply.map(Outcome::Done)
    }

    fn set_depth(&self, slot: &Slot, chain_id: &str, depth: u32) {
        if let Ok(mut c) = slot.chain.lock() {
            *c = Some((chain_id.to_owned(), depth));
        }
    }

    async fn call_app(&self, slot: &Slot, turn: &Turn) -> Result<Reply, ApiError> {
        let (actor_type, id) = (&slot.key.0, &slot.key.1);
        self.app
            .turn(actor_type, id, turn)
            .await
            .map_err(|why| invoke_error(format!("actor {actor_type}/{id}: {why}")))
    }

    /// Deactivate `slot`: wait for its turn, stop its timers, tell the app,
    /// give the lease back.
    pub(crate) async fn deactivate(&self, slot: &Arc<Slot>, release: bool) {
        let _turn = slot.turn.lock().await;
        if slot.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        slot.cancel_timers();
        if let Ok(mut actors) = self.actors.lock()
            && actors.get(&slot.key).is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            actors.remove(&slot.key);
        }
        let (actor_type, id) = (&slot.key.0, &slot.key.1);
        if let Err(why) = self.app.deactivate(actor_type, id).await {
            tracing::warn!(actor_type, actor_id = id, reason = %why, "deactivation call failed");
        }
        if release && let Some(held) = slot.held() {
            self.placement.release(actor_type, id, &held).await;
        }
        tracing::debug!(actor_type, actor_id = id, "actor deactivated");
    }

    /// Drop an actor whose lease is gone (a fenced write failed).
    pub(crate) async fn lost(&self, slot: &Arc<Slot>) {
        tracing::warn!(actor_type = %slot.key.0, actor_id = %slot.key.1, "actor lease taken by another gateway; deactivating here");
        self.deactivate(slot, false).await;
    }

    fn all(&self) -> Vec<Arc<Slot>> {
        self.actors
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Deactivate actors idle past their type's timeout.
    pub(crate) async fn sweep_idle(self: &Arc<Self>) {
        for slot in self.all() {
            if slot.waiting.load(Ordering::Acquire) == 0
                && slot.idle_for() >= self.config.idle_timeout(&slot.key.0)
                && slot.turn.try_lock().is_ok()
            {
                let host = Arc::clone(self);
                tokio::spawn(async move { host.deactivate(&slot, true).await });
            }
        }
    }

    /// This host lost its epoch: every actor here is void.
    pub(crate) async fn drop_all(&self) {
        for slot in self.all() {
            self.deactivate(&slot, false).await;
        }
    }

    /// Stop taking actors and hand every one back (drain).
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let drains = self.all().into_iter().map(|slot| async move {
            let done =
                tokio::time::timeout(self.config.drain_timeout, self.deactivate(&slot, true));
            if done.await.is_err() {
                tracing::warn!(actor_type = %slot.key.0, actor_id = %slot.key.1, "drain timed out");
            }
        });
        futures::future::join_all(drains).await;
    }
}

/// `turn` as a call of the reentrant chain `chain_id` (its header added).
fn in_chain(turn: &Turn, chain_id: &str) -> Turn {
    let mut turn = turn.clone();
    turn.headers
        .push((REENTRANCY_HEADER.to_owned(), chain_id.to_owned()));
    turn
}
