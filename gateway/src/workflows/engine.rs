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
mod watch;
use super::events::{self, confirming, unscheduled};
use super::ownership::{Claim, Ownership};
use super::records::{
    self, Failure, Instance, Meta, Parent, PendingActivity, PendingChild, Status,
};
use super::workers::{Completion, Workers};
use crate::actors::ActorStore;
use crate::actors::store::{StoreError, delete_op, set_json_op, set_raw_op};
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

    // === steps ===

    /// Make sure a step runs for `id` (again, if one is running now).
    fn kick(&self, id: &str) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if let Some(state) = running.get_mut(id) {
            state.again = true;
            return;
        }
        running.insert(id.to_owned(), RunState::default());
        let Some(engine) = self.this() else {
            running.remove(id);
            return;
        };
        let id = id.to_owned();
        self.spawn(async move { engine.run(id).await });
    }

    async fn run(self: Arc<Self>, id: String) {
        let mut pause = Duration::from_millis(50);
        let mut repair = false;
        loop {
            if let Some((_, stop)) = self.context.get()
                && stop.is_cancelled()
            {
                break;
            }
            match self.step(&id, repair).await {
                Ok(()) => {
                    pause = Duration::from_millis(50);
                    repair = false;
                }
                Err(why) if why == super::workers::SHUTTING_DOWN => break,
                Err(why) => {
                    // The failed step may have committed without our hearing
                    // of it: the next one re-sends what is outstanding.
                    repair = true;
                    tracing::warn!(instance_id = %id, reason = %why, "workflow step failed; retrying");
                    let stop = self
                        .context
                        .get()
                        .map(|(_, s)| s.clone())
                        .unwrap_or_default();
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
            let Ok(mut running) = self.running.lock() else {
                break;
            };
            match running.get_mut(&id) {
                Some(state) if state.again => state.again = false,
                _ => {
                    running.remove(&id);
                    break;
                }
            }
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
    }

    async fn load_history(
        &self,
        id: &str,
        meta: &Meta,
    ) -> Result<Vec<dt::HistoryEvent>, StoreError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((execution, events)) = cache.get(id)
            && *execution == meta.execution_id
            && events.len() as u64 == meta.history_len
        {
            return Ok(events.clone());
        }
        let keys: Vec<String> = (0..meta.history_len)
            .map(|n| records::event_key(&self.app_id, id, n))
            .collect();
        let mut events = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            for (key, raw) in chunk.iter().zip(self.store.get_many_raw(chunk).await?) {
                let raw = raw
                    .ok_or_else(|| StoreError::Failed(format!("history event {key} is missing")))?;
                let event = dt::HistoryEvent::decode(raw.as_slice()).map_err(|e| {
                    StoreError::Failed(format!("history event {key} does not decode: {e}"))
                })?;
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Write `meta` over `etag` with `appended` history events, in one
    /// transaction. `Ok(false)`: the record changed meanwhile.
    async fn commit(
        &self,
        id: &str,
        etag: &str,
        mut meta: Meta,
        appended: Vec<dt::HistoryEvent>,
    ) -> Result<bool, StoreError> {
        let start = meta.history_len;
        let mut ops = Vec::with_capacity(appended.len() + 1);
        for (i, event) in appended.iter().enumerate() {
            let bytes = event.encode_to_vec();
            meta.history_bytes += bytes.len() as u64;
            ops.push(set_raw_op(
                &records::event_key(&self.app_id, id, start + i as u64),
                bytes,
            ));
        }
        meta.history_len = start + appended.len() as u64;
        meta.history_high = meta.history_high.max(meta.history_len);
        meta.updated_ms = now_ms();
        ops.push(set_json_op(&self.meta_key(id), &meta, Some(etag))?);
        match self.store.transact(ops).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(false),
            Err(err) => return Err(err),
        }
        if let Ok(mut cache) = self.cache.lock() {
            match cache.get_mut(id) {
                Some((execution, events))
                    if *execution == meta.execution_id && events.len() as u64 == start =>
                {
                    events.extend(appended);
                }
                _ if start == 0 => {
                    cache.insert(id.to_owned(), (meta.execution_id.clone(), appended));
                }
                _ => {
                    cache.remove(id);
                }
            }
        }
        Ok(true)
    }

    /// One step: show the workflow its history and inbox, apply its actions.
    async fn step(&self, id: &str, repair: bool) -> Result<(), String> {
        let key = self.meta_key(id);
        let Some(found) = self
            .store
            .get::<Meta>(&key)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let read_etag = found.etag;
        let meta = found.value;
        if meta.status().is_terminal() {
            if repair {
                // Its last step committed unheard: finish the bookkeeping
                // (index, parent), which tolerates being done twice.
                self.finished(id, &meta).await;
            }
            if let Some(ownership) = self.ownership.get() {
                ownership.forget(id);
            }
            return Ok(());
        }
        if let Some(ownership) = self.ownership.get() {
            match ownership.claim(id).await.map_err(|e| e.to_string())? {
                Claim::Elsewhere => return Ok(()),
                Claim::Taken => self.resume_outbox(id, &meta),
                Claim::Held if repair => self.resume_outbox(id, &meta),
                Claim::Held => {}
            }
        } else if repair {
            self.resume_outbox(id, &meta);
        } else if self.distributed.load(std::sync::atomic::Ordering::Acquire) {
            // Not in placement yet (no worker connected): the scan after
            // joining runs it.
            return Ok(());
        }
        if meta.suspended || meta.inbox.is_empty() {
            return Ok(());
        }
        if let Some(at) = meta.start_at_ms
            && at > now_ms()
        {
            // A scheduled start: come back then.
            self.wake_at(id, at);
            return Ok(());
        }
        let taken = meta.inbox.clone();
        let mut new_events = vec![events::step_started()];
        new_events.extend(taken.iter().filter_map(|e| events::unpack(e)));
        let past = self
            .load_history(id, &meta)
            .await
            .map_err(|e| e.to_string())?;
        let request = dt::WorkflowRequest {
            instance_id: id.to_owned(),
            execution_id: Some(meta.execution_id.clone()),
            past_events: past,
            new_events: new_events.clone(),
            ..Default::default()
        };
        let (response, ack) = match self
            .workers
            .run(dt::work_item::Request::WorkflowRequest(request))
            .await?
        {
            (Completion::Workflow(response), ack) => (response, ack),
            (Completion::Activity(_), _) => {
                return Err("an activity result answered a workflow step".into());
            }
        };
        // The first commit goes over the record as read above: usually
        // nothing changed meanwhile, and a change fails the compare-and-set
        // and rereads.
        let mut first = Some((read_etag, meta.clone()));
        loop {
            let (etag, current) = match first.take() {
                Some(read) => read,
                None => match self
                    .store
                    .get::<Meta>(&key)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(found) => (found.etag, found.value),
                    None => return Ok(()),
                },
            };
            let before = current.status();
            let mut next = current;
            if next.execution_id != meta.execution_id
                || next.status().is_terminal()
                || !next.inbox.starts_with(&taken)
            {
                // Terminated, restarted or changed under us: this answer is stale.
                return Ok(());
            }
            next.inbox.drain(..taken.len());
            let mut appended = new_events.clone();
            let effects = self.apply(id, &mut next, &mut appended, &response);
            let status_changed = before != next.status();
            match self.commit(id, &etag, next.clone(), appended).await {
                Ok(true) => {
                    let _ = ack.send(());
                    self.after(id, &next, effects, status_changed).await;
                    return Ok(());
                }
                Ok(false) => continue,
                Err(err) => return Err(err.to_string()),
            }
        }
    }

    /// Carry out a committed step's side effects.
    async fn after(&self, id: &str, meta: &Meta, effects: Effects, status_changed: bool) {
        for task_id in &effects.activities {
            if let Some(activity) = meta.activities.get(task_id) {
                self.send_activity(id, &meta.execution_id, *task_id, activity.clone());
            }
        }
        for timer_id in &effects.timers {
            if let Some(fire_ms) = meta.timers.get(timer_id) {
                self.arm_timer(id, &meta.execution_id, *timer_id, *fire_ms);
            }
        }
        for task_id in &effects.children {
            if let Some(child) = meta.children.get(task_id) {
                self.start_child(id, meta, *task_id, child.clone());
            }
        }
        for (target, name, data) in effects.sends {
            if let Err(err) = self.raise_event(&target, &name, data).await {
                tracing::warn!(instance_id = id, target, error = %err, "a workflow's event could not be delivered");
            }
        }
        for (target, reason, recurse) in effects.terminates {
            if let Err(err) = Box::pin(self.terminate(&target, reason, recurse)).await {
                tracing::warn!(instance_id = id, target, error = %err, "a workflow could not terminate another");
            }
        }
        for (target, name, input) in effects.detached {
            if let Err(err) = Box::pin(self.start_instance(&name, &target, input, None, None)).await
            {
                tracing::warn!(instance_id = id, target, error = %err, "a detached workflow could not start");
            }
        }
        if effects.finished {
            self.finished(id, meta).await;
        } else if status_changed
            && let Err(err) = self.set_index(id, Some(meta.view(id).status)).await
        {
            tracing::warn!(instance_id = id, error = %err, "could not update the workflow index");
        }
        if effects.again {
            self.kick(id);
        }
        if status_changed || effects.finished {
            self.changed(id);
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
