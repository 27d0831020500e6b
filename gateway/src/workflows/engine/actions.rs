//! A step's actions applied to the instance record and its history.

use super::*;

impl Engine {
    /// Apply a step's actions to `meta` and the events to append.
    pub(super) fn apply(
        &self,
        id: &str,
        meta: &mut Meta,
        appended: &mut Vec<dt::HistoryEvent>,
        response: &dt::WorkflowResponse,
    ) -> Effects {
        let mut effects = Effects::default();
        if meta.status() == Status::Pending {
            meta.status = Some(Status::Running);
        }
        if response.custom_status.is_some() {
            meta.custom_status.clone_from(&response.custom_status);
        }
        for action in &response.actions {
            let task_id = action.id;
            match &action.workflow_action_type {
                Some(Action::ScheduleTask(task)) => {
                    appended.push(confirming(
                        task_id,
                        EventType::TaskScheduled(dt::TaskScheduledEvent {
                            name: task.name.clone(),
                            version: task.version.clone(),
                            input: task.input.clone(),
                            task_execution_id: task.task_execution_id.clone(),
                            ..Default::default()
                        }),
                    ));
                    meta.activities.insert(
                        task_id,
                        PendingActivity {
                            name: task.name.clone(),
                            input: task.input.clone(),
                        },
                    );
                    effects.activities.push(task_id);
                }
                Some(Action::CreateTimer(timer)) => {
                    let fire_at = timer.fire_at.unwrap_or_else(events::now);
                    appended.push(confirming(
                        task_id,
                        EventType::TimerCreated(dt::TimerCreatedEvent {
                            fire_at: Some(fire_at),
                            name: timer.name.clone(),
                            origin: timer.origin.clone().map(timer_origin),
                            ..Default::default()
                        }),
                    ));
                    meta.timers.insert(task_id, events::millis(&fire_at));
                    effects.timers.push(task_id);
                }
                Some(Action::CreateChildWorkflow(child)) => {
                    let child_id = if child.instance_id.is_empty() {
                        format!("{id}-child-{task_id}")
                    } else {
                        child.instance_id.clone()
                    };
                    appended.push(confirming(
                        task_id,
                        EventType::ChildWorkflowInstanceCreated(
                            dt::ChildWorkflowInstanceCreatedEvent {
                                instance_id: child_id.clone(),
                                name: child.name.clone(),
                                version: child.version.clone(),
                                input: child.input.clone(),
                                ..Default::default()
                            },
                        ),
                    ));
                    meta.children.insert(
                        task_id,
                        PendingChild {
                            instance_id: child_id.clone(),
                            name: child.name.clone(),
                            input: child.input.clone(),
                        },
                    );
                    meta.all_children.push(child_id);
                    effects.children.push(task_id);
                }
                Some(Action::SendEvent(send)) => {
                    let target = send
                        .instance
                        .as_ref()
                        .map(|i| i.instance_id.clone())
                        .unwrap_or_default();
                    appended.push(confirming(
                        task_id,
                        EventType::EventSent(dt::EventSentEvent {
                            instance_id: target.clone(),
                            name: send.name.clone(),
                            input: send.data.clone(),
                        }),
                    ));
                    effects
                        .sends
                        .push((target, send.name.clone(), send.data.clone()));
                }
                Some(Action::TerminateWorkflow(terminate)) => {
                    effects.terminates.push((
                        terminate.instance_id.clone(),
                        terminate.reason.clone(),
                        terminate.recurse,
                    ));
                }
                Some(Action::CreateDetachedWorkflow(detached)) => {
                    effects.detached.push((
                        detached.instance_id.clone(),
                        detached.name.clone(),
                        detached.input.clone(),
                    ));
                }
                Some(Action::CompleteWorkflow(complete)) => {
                    let status =
                        Status::from_proto(complete.workflow_status).unwrap_or(Status::Completed);
                    if status == Status::ContinuedAsNew {
                        self.continue_as_new(id, meta, appended, complete);
                        effects.again = true;
                        // Actions after continue-as-new belong to the old run.
                        break;
                    }
                    appended.push(unscheduled(EventType::ExecutionCompleted(
                        dt::ExecutionCompletedEvent {
                            workflow_status: status.proto(),
                            result: complete.result.clone(),
                            failure_details: complete.failure_details.clone(),
                        },
                    )));
                    meta.status = Some(status);
                    meta.output.clone_from(&complete.result);
                    if status == Status::Failed {
                        meta.failure = Some(events::failure_of(complete.failure_details.as_ref()));
                    }
                    meta.activities.clear();
                    meta.timers.clear();
                    meta.inbox.clear();
                    effects.finished = true;
                }
                Some(Action::WorkflowVersionNotAvailable(_)) | None => {}
            }
        }
        let size = meta.history_len + appended.len() as u64;
        let bytes =
            meta.history_bytes + appended.iter().map(|e| e.encoded_len() as u64).sum::<u64>();
        if !effects.finished && (size > MAX_HISTORY_EVENTS || bytes > MAX_HISTORY_BYTES) {
            let failure = Failure {
                error_type: "HistoryTooLarge".into(),
                message: format!(
                    "workflow instance {id} would have {size} history events ({bytes} bytes); the limit is {MAX_HISTORY_EVENTS} events or {MAX_HISTORY_BYTES} bytes. Use continue-as-new to keep long-running workflows small"
                ),
                stack_trace: None,
            };
            appended.push(unscheduled(EventType::ExecutionCompleted(
                dt::ExecutionCompletedEvent {
                    workflow_status: Status::Failed.proto(),
                    result: None,
                    failure_details: Some(events::failure_details(&failure)),
                },
            )));
            meta.status = Some(Status::Failed);
            meta.failure = Some(failure);
            meta.activities.clear();
            meta.timers.clear();
            meta.inbox.clear();
            effects = Effects {
                finished: true,
                ..Effects::default()
            };
        }
        effects
    }

    pub(super) fn continue_as_new(
        &self,
        id: &str,
        meta: &mut Meta,
        appended: &mut Vec<dt::HistoryEvent>,
        complete: &dt::CompleteWorkflowAction,
    ) {
        let execution_id = uuid::Uuid::new_v4().simple().to_string();
        appended.clear();
        meta.history_len = 0;
        meta.history_bytes = 0;
        meta.execution_id.clone_from(&execution_id);
        meta.input.clone_from(&complete.result);
        meta.activities.clear();
        meta.timers.clear();
        meta.children.clear();
        meta.status = Some(Status::Running);
        let mut inbox = vec![events::pack(&events::started(
            &meta.name,
            id,
            &execution_id,
            complete.result.clone(),
            meta.parent.as_ref(),
        ))];
        inbox.extend(complete.carryover_events.iter().map(events::pack));
        inbox.append(&mut meta.inbox);
        meta.inbox = inbox;
    }
}

fn timer_origin(origin: dt::create_timer_action::Origin) -> dt::timer_created_event::Origin {
    use dt::create_timer_action::Origin as From;
    use dt::timer_created_event::Origin as To;
    match origin {
        From::CreateTimer(o) => To::CreateTimer(o),
        From::ExternalEvent(o) => To::ExternalEvent(o),
        From::ActivityRetry(o) => To::ActivityRetry(o),
        From::ChildWorkflowRetry(o) => To::ChildWorkflowRetry(o),
    }
}
