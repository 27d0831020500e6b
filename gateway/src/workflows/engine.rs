//! The engine: one orchestration step at a time per instance.
//!
//! A step shows the workflow (through a connected SDK worker) its stored
//! history and its inbox of new events, and gets back actions. The new
//! events, the confirmations of those actions, the outbox (activities,
//! timers, children) and the status are then written in one transaction,
//! conditional on the instance record's ETag. Only after that commit are
//! activities sent, timers armed and children started; a crash in between
//! is repaired on restart from the stored outbox. A result (activity,
//! timer, child, external event) is appended to the inbox by
//! compare-and-set and accepted only while its task is still outstanding,
//! so a duplicate never reaches the workflow twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use dt::history_event::EventType;
use dt::workflow_action::WorkflowActionType as Action;
use outrigger_proto::durabletask as dt;

use super::ListFilter;

mod actions;
mod client;
mod index;
mod outbox;
mod step;
mod watch;
use super::events::{self, confirming, unscheduled};
use super::ownership::Ownership;
use super::records::{
    self, Failure, Instance, Meta, Parent, PendingActivity, PendingChild, Status,
};
use super::workers::{Completion, Workers};
use crate::actors::ActorStore;
use crate::actors::store::{StoreError, delete_op};
use crate::error::{ApiError, codes};

/// Most history events an instance may have before it is failed (Temporal
/// stops at 51 200; stopping earlier keeps each step's read small).
const MAX_HISTORY_EVENTS: u64 = 20_000;

/// Most history bytes an instance may have.
const MAX_HISTORY_BYTES: u64 = 16 * 1024 * 1024;

/// Side effects of a committed step.
#[derive(Debug, Default)]
struct Effects {
    activities: Vec<i32>,
    timers: Vec<i32>,
    children: Vec<i32>,
    sends: Vec<(String, String, Option<String>)>,
    terminates: Vec<(String, Option<String>, bool)>,
    detached: Vec<(String, String, Option<String>)>,
    finished: bool,
    again: bool,
}

#[derive(Debug, Default)]
struct RunState {
    again: bool,
}

/// The workflow engine of one gateway (one app id).
#[derive(Debug)]
pub(crate) struct Engine {
    app_id: String,
    store: ActorStore,
    workers: Arc<Workers>,
    running: Mutex<HashMap<String, RunState>>,
    outstanding: Mutex<HashSet<(String, String, i32)>>,
    watchers: watch::Watchers,
    cache: Mutex<HashMap<String, (String, Vec<dt::HistoryEvent>)>>,
    context: OnceLock<(TaskTracker, CancellationToken)>,
    me: OnceLock<std::sync::Weak<Engine>>,
    /// Set once placement is joined; `distributed` says whether to wait for it.
    ownership: OnceLock<Arc<Ownership>>,
    distributed: std::sync::atomic::AtomicBool,
    index_writers: Mutex<HashMap<u32, Arc<index::Writer>>>,
}

fn failed(entry: codes::Entry) -> impl Fn(StoreError) -> ApiError {
    move |err| ApiError::new(entry, err.to_string())
}

fn not_found(instance_id: &str) -> ApiError {
    ApiError::new(
        codes::ERR_INSTANCE_ID_NOT_FOUND,
        format!("workflow instance {instance_id} was not found"),
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Engine {
    pub(crate) fn new(app_id: &str, store: ActorStore, workers: Arc<Workers>) -> Self {
        Self {
            app_id: app_id.to_owned(),
            store,
            workers,
            running: Mutex::new(HashMap::new()),
            outstanding: Mutex::new(HashSet::new()),
            watchers: watch::Watchers::default(),
            cache: Mutex::new(HashMap::new()),
            context: OnceLock::new(),
            me: OnceLock::new(),
            ownership: OnceLock::new(),
            distributed: std::sync::atomic::AtomicBool::new(false),
            index_writers: Mutex::new(HashMap::new()),
        }
    }

    fn this(&self) -> Option<Arc<Self>> {
        self.me.get().and_then(std::sync::Weak::upgrade)
    }

    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, task: F) {
        match self.context.get() {
            Some((tracker, _)) => {
                tracker.spawn(task);
            }
            None => {
                tokio::spawn(task);
            }
        }
    }

    fn meta_key(&self, id: &str) -> String {
        records::meta_key(&self.app_id, id)
    }

    /// Resume unfinished instances; run until `shutdown`. With `placement`,
    /// instances are shared with the other gateways of this app by leases.
    pub(crate) fn start(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        placement: Option<Arc<crate::actors::placement::Placement>>,
    ) {
        let _ = self.me.set(Arc::downgrade(self));
        if self
            .context
            .set((tracker.clone(), shutdown.clone()))
            .is_err()
        {
            return;
        }
        self.workers.stop_on(shutdown.clone());
        if let Some(placement) = placement {
            self.distributed
                .store(true, std::sync::atomic::Ordering::Release);
            let engine = Arc::clone(self);
            tracker.spawn(async move { engine.share(placement, shutdown).await });
            return;
        }
        let engine = Arc::clone(self);
        tracker.spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match engine.recover().await {
                    Ok(count) => {
                        if count > 0 {
                            tracing::info!(count, "resumed unfinished workflow instances");
                        }
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "resuming workflows failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    async fn recover(&self) -> Result<usize, StoreError> {
        let mut resumed = 0;
        for (id, status) in self.index().await? {
            if status.is_terminal() {
                continue;
            }
            let Some(found) = self.store.get::<Meta>(&self.meta_key(&id)).await? else {
                continue;
            };
            self.resume_outbox(&id, &found.value);
            self.kick(&id);
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Join placement once a worker is connected, renew, and take every
    /// instance nobody live runs; leave on shutdown.
    async fn share(
        self: Arc<Self>,
        placement: Arc<crate::actors::placement::Placement>,
        shutdown: CancellationToken,
    ) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = self.workers.wait_for_any() => {}
        }
        let mut delay = Duration::from_millis(200);
        loop {
            match placement.heartbeat().await {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "joining workflow placement failed; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let ownership = Arc::new(Ownership::new(
            Arc::clone(&placement),
            super::Workflows::placement_type(&self.app_id),
        ));
        let _ = self.ownership.set(Arc::clone(&ownership));
        tracing::info!(host_id = placement.id(), "running workflows");
        // The scan runs in a task of its own: under load a scan can take
        // longer than a quarter lease, and must never delay the renewal.
        let (engine, owned, stop) = (Arc::clone(&self), Arc::clone(&ownership), shutdown.clone());
        self.spawn(async move {
            let mut scan = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = scan.tick() => {
                        if let Err(err) = engine.scan(&owned).await {
                            tracing::warn!(error = %err, "looking for unowned workflow instances failed");
                        }
                    }
                }
            }
        });
        let mut renew = tokio::time::interval(placement.ttl() / 4);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = renew.tick() => match placement.heartbeat().await {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::warn!("this gateway's workflow placement entry had lapsed; taking instances again");
                        ownership.forget_all();
                    }
                    Err(err) => tracing::warn!(error = %err, "renewing the workflow placement entry failed"),
                },
            }
        }
        if let Err(err) = placement.leave().await {
            tracing::warn!(error = %err, "could not leave workflow placement; the entry lapses");
        }
    }

    /// Run a step for every unfinished instance no other live gateway runs.
    async fn scan(&self, ownership: &Ownership) -> Result<(), StoreError> {
        for (id, status) in self.index().await? {
            if status.is_terminal() || ownership.elsewhere(&id).await? {
                continue;
            }
            self.kick(&id);
        }
        Ok(())
    }

    /// (Re)send what a committed step left outstanding.
    fn resume_outbox(&self, id: &str, meta: &Meta) {
        for (task_id, activity) in &meta.activities {
            self.send_activity(id, &meta.execution_id, *task_id, activity.clone());
        }
        for (timer_id, fire_ms) in &meta.timers {
            self.arm_timer(id, &meta.execution_id, *timer_id, *fire_ms);
        }
        for (task_id, child) in &meta.children {
            self.start_child(id, meta, *task_id, child.clone());
        }
    }

    /// A finished instance: index it, tell its parent.
    async fn finished(&self, id: &str, meta: &Meta) {
        if let Err(err) = self.set_index(id, Some(meta.status())).await {
            tracing::warn!(instance_id = id, error = %err, "could not update the workflow index");
        }
        if let Some(parent) = &meta.parent {
            let kind = match meta.status() {
                Status::Completed => EventType::ChildWorkflowInstanceCompleted(
                    dt::ChildWorkflowInstanceCompletedEvent {
                        task_scheduled_id: parent.task_id,
                        result: meta.output.clone(),
                        ..Default::default()
                    },
                ),
                _ => EventType::ChildWorkflowInstanceFailed(dt::ChildWorkflowInstanceFailedEvent {
                    task_scheduled_id: parent.task_id,
                    failure_details: Some(events::failure_details(
                        &meta.failure.clone().unwrap_or(Failure {
                            error_type: meta.status().name().to_owned(),
                            message: format!("child workflow {id} ended {}", meta.status().name()),
                            stack_trace: None,
                        }),
                    )),
                    ..Default::default()
                }),
            };
            let task_id = parent.task_id;
            let delivered = self
                .deliver(
                    &parent.instance_id,
                    Some(&parent.execution_id),
                    unscheduled(kind),
                    |m| m.children.remove(&task_id).is_some(),
                )
                .await;
            if let Err(err) = delivered {
                tracing::warn!(instance_id = id, parent = %parent.instance_id, error = %err, "could not tell the parent workflow");
            }
        }
        self.changed(id);
    }

    /// Append `event` to an instance's inbox (of execution `execution`, when
    /// given) if `accept` agrees, and run a step. `Ok(None)`: no such instance.
    async fn deliver(
        &self,
        id: &str,
        execution: Option<&str>,
        event: dt::HistoryEvent,
        mut accept: impl FnMut(&mut Meta) -> bool,
    ) -> Result<Option<bool>, StoreError> {
        let packed = events::pack(&event);
        let outcome = self
            .store
            .update::<Meta, _>(&self.meta_key(id), |current| {
                let Some(mut meta) = current else {
                    return (None, None);
                };
                let live = !meta.status().is_terminal()
                    && execution.is_none_or(|e| e == meta.execution_id);
                if !live || !accept(&mut meta) {
                    return (Some(meta), Some(false));
                }
                meta.inbox.push(packed.clone());
                (Some(meta), Some(true))
            })
            .await?;
        if outcome == Some(true) {
            self.kick(id);
        }
        Ok(outcome)
    }
}
