//! Hosting: ask the app which types it hosts, join placement, renew, sweep
//! idle actors, fire reminders, and drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::app::ActorApp;
use super::host::{Activation, Host, Outcome, Turn, TurnKind};
use super::placement::{self, Placement};
use super::reminders::{self, Reminders};
use super::store::Store;
use super::stream::StreamApp;
use super::{Actors, config};
use crate::app_channel::HttpApp;
use crate::error::ApiError;

/// Reminders fired at once by one gateway.
const FIRING: usize = 64;

/// What hosting needs from the gateway: where peers reach it, where its
/// background tasks run, and when it stops.
#[derive(Debug, Clone)]
pub(super) struct Context {
    address: String,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Context {
    /// Where peers reach this gateway.
    pub(super) fn address(&self) -> &str {
        &self.address
    }
}

impl Actors {
    /// Make this gateway able to host actors, reachable by peers at
    /// `address` (its gRPC API). With an HTTP `app`, ask it which actor types
    /// it hosts (`GET /dapr/config`, retried until it answers) and host them;
    /// a gRPC app registers its types over `SubscribeActorEventsAlpha1`
    /// instead. Hosting joins placement, renews, sweeps idle actors, fires
    /// reminders, and on `shutdown` drains.
    pub fn start_hosting(
        self: &Arc<Self>,
        app: Option<HttpApp>,
        address: String,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let context = Context {
            address,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        if self.hosting.set(context).is_err() {
            return;
        }
        let Some(app) = app else {
            return;
        };
        let actors = Arc::clone(self);
        tracker.spawn(async move {
            let config = loop {
                match app.call("GET", "/dapr/config", "application/json", Vec::new()).await {
                    Ok(reply) if reply.status == 404 => return,
                    Ok(reply) if (200..300).contains(&reply.status) => {
                        match config::HostConfig::parse(&reply.body) {
                            Ok(config) => break config,
                            Err(why) => {
                                tracing::error!(reason = %why, "the app's actor configuration is invalid; not hosting actors");
                                let _ = actors.failure.set(why);
                                return;
                            }
                        }
                    }
                    Ok(reply) => tracing::debug!(status = reply.status, "GET /dapr/config not answered yet"),
                    Err(why) => tracing::debug!(reason = %why, "app not reachable for /dapr/config yet"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            };
            if config.entities.is_empty() {
                return;
            }
            if let Some(store) = actors.store_for(&config.entities) {
                actors.host_until(store, config, ActorApp::Http(Box::new(app)), shutdown).await;
            }
        });
    }

    /// The actor store, or `None` with the failure recorded and logged.
    fn store_for(&self, entities: &[String]) -> Option<Store> {
        match &self.store {
            Ok(store) => Some(store.clone()),
            Err(why) => {
                tracing::error!(types = ?entities, reason = %why, "the app hosts actor types but there is no actor state store");
                let _ = self
                    .failure
                    .set(format!("the app hosts actor types {entities:?} but {why}"));
                None
            }
        }
    }

    /// Host for a gRPC app's actor stream. Cancelling the first token (or
    /// the gateway's shutdown) stops hosting; the second is cancelled once
    /// hosting is over, its actors deactivated (through the stream, so its
    /// answers must be read until then).
    pub(super) fn host_stream(
        self: &Arc<Self>,
        config: config::HostConfig,
        app: Arc<StreamApp>,
    ) -> Result<(CancellationToken, CancellationToken), tonic::Status> {
        let Some(context) = self.hosting.get() else {
            return Err(tonic::Status::unavailable("the gateway is still starting"));
        };
        if self.host().is_some() {
            return Err(tonic::Status::failed_precondition(
                "this gateway's app already hosts actors",
            ));
        }
        let Some(store) = self.store_for(&config.entities) else {
            return Err(ApiError::new(
                crate::error::codes::ERR_ACTOR_RUNTIME_NOT_FOUND,
                "no state store has the metadata actorStateStore: \"true\"; actors need one",
            )
            .into());
        };
        let stop = context.shutdown.child_token();
        let over = CancellationToken::new();
        let (actors, until, done) = (Arc::clone(self), stop.clone(), over.clone());
        context.tracker.spawn(async move {
            actors
                .host_until(store, config, ActorApp::Stream(app), until.clone())
                .await;
            until.cancel();
            done.cancel();
        });
        Ok((stop, over))
    }

    async fn host_until(
        self: Arc<Self>,
        store: Store,
        config: config::HostConfig,
        app: ActorApp,
        shutdown: CancellationToken,
    ) {
        let Some(context) = self.hosting.get().cloned() else {
            return;
        };
        let placement = Arc::new(Placement::host(
            store,
            self.lease_ttl,
            &self.app_id,
            context.address.clone(),
            config.entities.clone(),
        ));
        loop {
            match placement.heartbeat().await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "joining actor placement failed; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        if let Some(reminders) = &self.reminders {
            for actor_type in &config.entities {
                if let Err(err) = reminders
                    .declare(actor_type, config.reminder_partitions(actor_type))
                    .await
                {
                    tracing::warn!(actor_type, error = %err, "could not record reminder partitions");
                }
            }
        }
        let host = Arc::new(Host::new(config, Arc::clone(&placement), app));
        match self.host.write() {
            Ok(mut slot) if slot.is_none() => *slot = Some(Arc::clone(&host)),
            _ => return,
        }
        tracing::info!(types = ?host.config.entities, host_id = placement.id(), "hosting actors");
        let tracker = &context.tracker;
        tracker.spawn(renew(Arc::clone(&host), shutdown.clone()));
        tracker.spawn(sweep(Arc::clone(&host), shutdown.clone()));
        tracker.spawn(Arc::clone(&self).fire_reminders(Arc::clone(&host), shutdown.clone()));
        shutdown.cancelled().await;
        host.close().await;
        if let Err(err) = placement.leave().await {
            tracing::warn!(error = %err, "could not leave actor placement; the entry lapses");
        }
        if let Ok(mut slot) = self.host.write() {
            *slot = None;
        }
    }

    async fn fire_reminders(self: Arc<Self>, host: Arc<Host>, shutdown: CancellationToken) {
        let Some(reminders) = self.reminders.clone() else {
            return;
        };
        let Some(tracker) = self.hosting.get().map(|c| c.tracker.clone()) else {
            return;
        };
        let firing = Arc::new(tokio::sync::Semaphore::new(FIRING));
        loop {
            let mut sleep = Duration::from_secs(1);
            for actor_type in &host.config.entities {
                let (due, next) = match reminders.due(actor_type).await {
                    Ok(found) => found,
                    Err(err) => {
                        tracing::warn!(actor_type, error = %err, "reading reminders failed");
                        continue;
                    }
                };
                if let Some(next) = next {
                    let wait = u64::try_from(next - placement::now_ms()).unwrap_or(0);
                    sleep = sleep.min(Duration::from_millis(wait));
                }
                for item in due {
                    let owner = host
                        .placement
                        .owner(actor_type, &item.reminder.actor_id)
                        .await;
                    if matches!(owner, Ok(placement::Owner::Other(_))) || owner.is_err() {
                        // Its holder fires it; look again soon in case it dies.
                        sleep = sleep.min(Duration::from_millis(250));
                        continue;
                    }
                    if reminders.claim(actor_type, &item.reminder) {
                        // At most FIRING reminders in flight: the scan waits.
                        let Ok(permit) = Arc::clone(&firing).acquire_owned().await else {
                            return;
                        };
                        let (host, reminders, wake) = (
                            Arc::clone(&host),
                            Arc::clone(&reminders),
                            Arc::clone(&self.wake),
                        );
                        let actor_type = actor_type.clone();
                        tracker.spawn(async move {
                            fire(host, reminders, actor_type, item, wake).await;
                            drop(permit);
                        });
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
            }
        }
    }
}

/// Fire one due reminder here (taking the actor's lease), then record it.
async fn fire(
    host: Arc<Host>,
    reminders: Arc<Reminders>,
    actor_type: String,
    item: reminders::Due,
    rescan: Arc<tokio::sync::Notify>,
) {
    let r = &item.reminder;
    let mut cancel = false;
    if item.calls > 0 {
        let slot = match host.activate(&actor_type, &r.actor_id).await {
            Ok(Activation::Local(slot)) => slot,
            Ok(Activation::Remote(_)) => {
                reminders.unclaim(&actor_type, r);
                return;
            }
            Err(err) => {
                tracing::warn!(actor_type, actor_id = %r.actor_id, error = %err, "cannot activate an actor for its reminder; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                reminders.unclaim(&actor_type, r);
                return;
            }
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "dueTime": r.due_time,
            "period": r.period,
            "data": r.data,
        }))
        .unwrap_or_default();
        for _ in 0..item.calls {
            let turn = Turn {
                kind: TurnKind::Reminder(r.name.clone()),
                headers: Vec::new(),
                body: body.clone(),
            };
            match host.turn(&slot, &turn, None).await {
                Ok(Outcome::Done(reply)) if reply.status == 200 => {
                    cancel |= reply
                        .headers
                        .get_all("x-daprremindercancel")
                        .iter()
                        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                    if cancel {
                        break;
                    }
                }
                outcome => {
                    let why = match outcome {
                        Ok(Outcome::Done(reply)) => format!("the app answered {}", reply.status),
                        Ok(Outcome::Moved) => "the actor moved".to_owned(),
                        Err(err) => err.to_string(),
                    };
                    tracing::warn!(actor_type, actor_id = %r.actor_id, reminder = %r.name, reason = %why, "reminder not delivered; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    reminders.unclaim(&actor_type, r);
                    return;
                }
            }
        }
    }
    if let Err(err) = reminders.fired(&actor_type, r, item.calls, cancel).await {
        tracing::warn!(actor_type, actor_id = %r.actor_id, reminder = %r.name, error = %err, "could not record a fired reminder; it may fire again");
    }
    reminders.unclaim(&actor_type, r);
    // Its next due time is known now: let the scan sleep until then.
    rescan.notify_one();
}

/// Renew this host's placement entry every quarter lease; a lapse voids
/// every actor here. A failed renewal (a busy store, a lost compare-and-set
/// race) is retried soon rather than a quarter lease later, so one slow
/// store call does not leave the host unable to start turns.
async fn renew(host: Arc<Host>, shutdown: CancellationToken) {
    let every = host.placement.ttl() / 4;
    let soon = (every / 5).max(Duration::from_millis(20));
    let mut wait = every;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = match host.placement.heartbeat().await {
            Ok(false) => every,
            Ok(true) => {
                tracing::warn!(
                    "this gateway's actor placement entry had lapsed; its actors were voided"
                );
                host.drop_all().await;
                every
            }
            Err(err) => {
                tracing::warn!(error = %err, "renewing the actor placement entry failed");
                soon
            }
        };
    }
}

/// Deactivate idle actors every `actorScanInterval`.
async fn sweep(host: Arc<Host>, shutdown: CancellationToken) {
    let every = host.config.scan_interval.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        host.sweep_idle().await;
    }
}
