//! Steps: at most one running per instance, each showing the workflow its
//! history and inbox, committing the answer in one transaction over the
//! instance record, then carrying out the committed side effects.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::{Effects, Engine, RunState, now_ms};
use crate::actors::store::{StoreError, set_json_op, set_raw_op};
use crate::workflows::events;
use crate::workflows::ownership::Claim;
use crate::workflows::records::{self, Meta};
use crate::workflows::workers::Completion;
use outrigger_proto::durabletask as dt;

impl Engine {
    /// Make sure a step runs for `id` (again, if one is running now).
    pub(super) fn kick(&self, id: &str) {
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

    pub(super) async fn run(self: Arc<Self>, id: String) {
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
                Err(why) if why == crate::workflows::workers::SHUTTING_DOWN => break,
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

    pub(super) async fn load_history(
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
    pub(super) async fn commit(
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
    pub(super) async fn step(&self, id: &str, repair: bool) -> Result<(), String> {
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
    pub(super) async fn after(
        &self,
        id: &str,
        meta: &Meta,
        effects: Effects,
        status_changed: bool,
    ) {
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
}
