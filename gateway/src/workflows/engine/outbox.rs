//! The outbox: activities sent to workers, durable timers, child
//! workflows, and scheduled wake-ups, each recorded back into the inbox.

use super::*;

impl Engine {
    /// Run a step for `id` at `at_ms` (Unix ms).
    pub(super) fn wake_at(&self, id: &str, at_ms: i64) {
        let Some(engine) = self.this() else {
            return;
        };
        let id = id.to_owned();
        self.spawn(async move {
            let wait = u64::try_from(at_ms - now_ms()).unwrap_or(0);
            let stop = engine
                .context
                .get()
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(wait)) => engine.kick(&id),
            }
        });
    }

    // === outbox ===

    pub(super) fn claim(&self, id: &str, execution: &str, task_id: i32) -> bool {
        self.outstanding
            .lock()
            .is_ok_and(|mut o| o.insert((id.to_owned(), execution.to_owned(), task_id)))
    }

    pub(super) fn unclaim(&self, id: &str, execution: &str, task_id: i32) {
        if let Ok(mut o) = self.outstanding.lock() {
            o.remove(&(id.to_owned(), execution.to_owned(), task_id));
        }
    }

    pub(super) fn send_activity(
        &self,
        id: &str,
        execution: &str,
        task_id: i32,
        activity: PendingActivity,
    ) {
        if !self.claim(id, execution, task_id) {
            return;
        }
        let Some(engine) = self.this() else {
            return;
        };
        let (id, execution) = (id.to_owned(), execution.to_owned());
        self.spawn(async move {
            let request = dt::ActivityRequest {
                name: activity.name.clone(),
                input: activity.input.clone(),
                workflow_instance: Some(dt::WorkflowInstance {
                    instance_id: id.clone(),
                    execution_id: Some(execution.clone()),
                }),
                task_id,
                ..Default::default()
            };
            let (response, ack) = loop {
                if let Some((_, stop)) = engine.context.get()
                    && stop.is_cancelled()
                {
                    engine.unclaim(&id, &execution, task_id);
                    return;
                }
                match engine
                    .workers
                    .run(dt::work_item::Request::ActivityRequest(request.clone()))
                    .await
                {
                    Ok((Completion::Activity(response), ack)) => break (response, ack),
                    Ok((Completion::Workflow(_), _)) => {
                        tracing::warn!(instance_id = %id, "a workflow step answered an activity; sending it again");
                    }
                    Err(why) if why == crate::workflows::workers::SHUTTING_DOWN => {
                        engine.unclaim(&id, &execution, task_id);
                        return;
                    }
                    Err(why) => {
                        tracing::debug!(instance_id = %id, task_id, reason = %why, "activity not completed; sending it again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            let kind = match response.failure_details {
                Some(failure) => EventType::TaskFailed(dt::TaskFailedEvent {
                    task_scheduled_id: task_id,
                    failure_details: Some(failure),
                    ..Default::default()
                }),
                None => EventType::TaskCompleted(dt::TaskCompletedEvent {
                    task_scheduled_id: task_id,
                    result: response.result,
                    ..Default::default()
                }),
            };
            let mut delay = Duration::from_millis(100);
            loop {
                if let Some((_, stop)) = engine.context.get()
                    && stop.is_cancelled()
                {
                    // Not recorded: the next owner sends it again.
                    break;
                }
                match engine
                    .deliver(&id, Some(&execution), unscheduled(kind.clone()), |m| {
                        m.activities.remove(&task_id).is_some()
                    })
                    .await
                {
                    Ok(_) => {
                        let _ = ack.send(());
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(instance_id = %id, task_id, error = %err, "recording an activity result failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            engine.unclaim(&id, &execution, task_id);
        });
    }

    pub(super) fn arm_timer(&self, id: &str, execution: &str, timer_id: i32, fire_ms: i64) {
        if !self.claim(id, execution, -1 - timer_id) {
            return;
        }
        let Some(engine) = self.this() else {
            return;
        };
        let (id, execution) = (id.to_owned(), execution.to_owned());
        self.spawn(async move {
            let wait = u64::try_from(fire_ms - now_ms()).unwrap_or(0);
            let stop = engine.context.get().map(|(_, s)| s.clone()).unwrap_or_default();
            tokio::select! {
                () = stop.cancelled() => {
                    engine.unclaim(&id, &execution, -1 - timer_id);
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
            let fired = unscheduled(EventType::TimerFired(dt::TimerFiredEvent {
                fire_at: Some(events::timestamp(fire_ms)),
                timer_id,
            }));
            let mut delay = Duration::from_millis(100);
            loop {
                if let Some((_, stop)) = engine.context.get()
                    && stop.is_cancelled()
                {
                    // Not recorded: the next owner sends it again.
                    break;
                }
                match engine
                    .deliver(&id, Some(&execution), fired.clone(), |m| {
                        m.timers.remove(&timer_id).is_some()
                    })
                    .await
                {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(instance_id = %id, timer_id, error = %err, "firing a workflow timer failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            engine.unclaim(&id, &execution, -1 - timer_id);
        });
    }

    pub(super) fn start_child(&self, id: &str, meta: &Meta, task_id: i32, child: PendingChild) {
        let Some(engine) = self.this() else {
            return;
        };
        let parent = Parent {
            instance_id: id.to_owned(),
            execution_id: meta.execution_id.clone(),
            task_id,
            name: meta.name.clone(),
        };
        self.spawn(async move {
            if let Err(err) = engine
                .start_instance(&child.name, &child.instance_id, child.input, Some(parent), None)
                .await
            {
                tracing::warn!(child = %child.instance_id, error = %err, "a child workflow could not start");
            }
        });
    }
}
