//! The workflows benchmark's worker: what an SDK worker does on the wire,
//! for one workflow, written out by hand. It holds one `GetWorkItems`
//! stream and answers every work item in a task of its own, echoing the
//! completion token:
//!
//! - a `workflowRequest` is decided from `pastEvents` + `newEvents`, as an
//!   SDK replays them: the chain's length is the `executionStarted` input;
//!   with fewer `taskCompleted` than that, one `ScheduleTask` action, else a
//!   `CompleteWorkflow` action with status COMPLETED. Actions are numbered
//!   as the Python SDK numbers them (the k-th action the orchestration ever
//!   emitted has id k, from 1), and every `taskScheduled` must carry its
//!   action's id and every `taskCompleted` name one of them;
//! - an `activityRequest` is completed at once.
//!
//! It timestamps the hand-offs so the benchmark can split a step's latency
//! (see [`Hops`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use dt::history_event::EventType;
use dt::workflow_action::WorkflowActionType as Action;
use outrigger::components::channel::UdsChannel;
use outrigger_proto::durabletask as dt;

/// The client of the gateway's `TaskHubSidecarService`.
pub(crate) type Client =
    dt::task_hub_sidecar_service_client::TaskHubSidecarServiceClient<UdsChannel>;

/// The workflow's name.
pub(crate) const WORKFLOW: &str = "Chain";
/// The activity's name.
pub(crate) const ACTIVITY: &str = "Step";

/// Latencies the worker saw, each measured on the worker's clock.
#[derive(Debug, Default)]
pub(crate) struct Hops {
    /// `StartInstance` sent → the instance's first `workflowRequest` here.
    pub(crate) start_to_step: Vec<Duration>,
    /// `CompleteActivityTask` sent → the instance's next `workflowRequest`.
    pub(crate) activity_to_step: Vec<Duration>,
    /// `CompleteOrchestratorTask` (with a `ScheduleTask`) sent → its `activityRequest`.
    pub(crate) step_to_activity: Vec<Duration>,
    /// `CompleteActivityTask` round trip (answered once the result is recorded).
    pub(crate) complete_activity: Vec<Duration>,
    /// `CompleteOrchestratorTask` round trip (answered once the step is committed).
    pub(crate) complete_step: Vec<Duration>,
}

/// The last hand-off of an instance, and when.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Started(Instant),
    ActivityDone(Instant),
    StepDone(Instant),
}

/// The worker.
#[derive(Debug)]
pub(crate) struct Worker {
    client: Client,
    marks: Mutex<HashMap<String, Mark>>,
    hops: Mutex<Hops>,
    done: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Work items answered.
    pub(crate) items: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Worker {
    /// Connect `GetWorkItems` and answer work items until the task is aborted.
    pub(crate) async fn start(client: Client) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let worker = Arc::new(Self {
            client: client.clone(),
            marks: Mutex::default(),
            hops: Mutex::default(),
            done: Mutex::default(),
            items: AtomicU64::new(0),
            problems: Mutex::default(),
        });
        let mut stream = client
            .clone()
            .get_work_items(dt::GetWorkItemsRequest::default())
            .await
            .expect("GetWorkItems")
            .into_inner();
        let me = Arc::clone(&worker);
        let task = tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(item)) => {
                        let me = Arc::clone(&me);
                        tokio::spawn(async move { me.answer(item).await });
                    }
                    Ok(None) => return,
                    Err(status) => {
                        me.problem(format!("GetWorkItems ended: {status}"));
                        return;
                    }
                }
            }
        });
        (worker, task)
    }

    fn problem(&self, what: String) {
        if let Ok(mut problems) = self.problems.lock() {
            problems.push(what);
        }
    }

    /// What went wrong so far (protocol surprises, failed calls).
    pub(crate) fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Call before `StartInstance` of `id`, to time its first step.
    pub(crate) fn mark_start(&self, id: &str) {
        self.mark(id, Mark::Started(Instant::now()));
    }

    fn mark(&self, id: &str, mark: Mark) -> Option<Mark> {
        self.marks
            .lock()
            .ok()
            .and_then(|mut m| m.insert(id.to_owned(), mark))
    }

    fn take_mark(&self, id: &str) -> Option<Mark> {
        self.marks.lock().ok().and_then(|mut m| m.remove(id))
    }

    /// What the worker last did for `id`, in words (for stuck instances).
    pub(crate) fn last_seen(&self, id: &str) -> &'static str {
        match self.marks.lock().ok().and_then(|m| m.get(id).copied()) {
            Some(Mark::Started(_)) => "started; no workflowRequest came",
            Some(Mark::StepDone(_)) => "answered a step with ScheduleTask; no activityRequest came",
            Some(Mark::ActivityDone(_)) => "completed an activity; no next workflowRequest came",
            None => "nothing outstanding",
        }
    }

    /// Resolves once this worker's `CompleteWorkflow` for `id` was
    /// recorded (its `CompleteOrchestratorTask` answered).
    pub(crate) fn on_done(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut done) = self.done.lock() {
            done.insert(id.to_owned(), tx);
        }
        rx
    }

    /// The latencies since the last call.
    pub(crate) fn take_hops(&self) -> Hops {
        self.hops
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }

    fn hop(&self, pick: impl FnOnce(&mut Hops) -> &mut Vec<Duration>, took: Duration) {
        if let Ok(mut hops) = self.hops.lock() {
            pick(&mut hops).push(took);
        }
    }

    async fn answer(&self, item: dt::WorkItem) {
        let arrived = Instant::now();
        let token = item.completion_token;
        match item.request {
            Some(dt::work_item::Request::WorkflowRequest(request)) => {
                self.step(request, token, arrived).await;
            }
            Some(dt::work_item::Request::ActivityRequest(request)) => {
                self.activity(request, token, arrived).await;
            }
            Some(dt::work_item::Request::HealthPing(_)) | None => return,
        }
        self.items.fetch_add(1, Ordering::Relaxed);
    }

    async fn step(&self, request: dt::WorkflowRequest, token: String, arrived: Instant) {
        let id = request.instance_id.clone();
        match self.take_mark(&id) {
            Some(Mark::Started(at)) => self.hop(|h| &mut h.start_to_step, arrived - at),
            Some(Mark::ActivityDone(at)) => self.hop(|h| &mut h.activity_to_step, arrived - at),
            Some(Mark::StepDone(_)) => {
                // The step is repeated (its commit failed after we answered).
                self.problem(format!(
                    "{id}: a workflowRequest again before its activity ran (a step repeated)"
                ));
            }
            None => {}
        }
        let action = match decide(&request) {
            Ok(action) => action,
            Err(why) => {
                self.problem(format!("{id}: {why}"));
                None
            }
        };
        let finishing = matches!(
            action
                .as_ref()
                .and_then(|a| a.workflow_action_type.as_ref()),
            Some(Action::CompleteWorkflow(_))
        );
        let response = dt::WorkflowResponse {
            instance_id: id.clone(),
            actions: action.into_iter().collect(),
            completion_token: token,
            ..Default::default()
        };
        if !finishing {
            self.mark(&id, Mark::StepDone(Instant::now()));
        }
        let sent = Instant::now();
        // Deprecated in the proto for `CompleteWorkflowTask`, but what the
        // Python SDK calls (the engine treats both alike).
        #[allow(deprecated)]
        let answered = self
            .client
            .clone()
            .complete_orchestrator_task(response)
            .await;
        match answered {
            Ok(_) => {
                self.hop(|h| &mut h.complete_step, sent.elapsed());
                if finishing {
                    let waiter = self.done.lock().ok().and_then(|mut d| d.remove(&id));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(());
                    }
                }
            }
            Err(status) => self.problem(format!("{id}: CompleteOrchestratorTask: {status}")),
        }
    }

    async fn activity(&self, request: dt::ActivityRequest, token: String, arrived: Instant) {
        let id = request
            .workflow_instance
            .as_ref()
            .map(|i| i.instance_id.clone())
            .unwrap_or_default();
        if let Some(Mark::StepDone(at)) = self.take_mark(&id) {
            self.hop(|h| &mut h.step_to_activity, arrived - at);
        }
        if request.name != ACTIVITY {
            self.problem(format!("{id}: activity {:?}", request.name));
        }
        let response = dt::ActivityResponse {
            instance_id: id.clone(),
            task_id: request.task_id,
            result: Some(format!("\"done {}\"", request.task_id)),
            completion_token: token,
            ..Default::default()
        };
        self.mark(&id, Mark::ActivityDone(Instant::now()));
        let sent = Instant::now();
        match self.client.clone().complete_activity_task(response).await {
            Ok(_) => self.hop(|h| &mut h.complete_activity, sent.elapsed()),
            Err(status) => self.problem(format!("{id}: CompleteActivityTask: {status}")),
        }
    }
}

/// The chain workflow replayed over its history: the next action, if any.
fn decide(request: &dt::WorkflowRequest) -> Result<Option<dt::WorkflowAction>, String> {
    let mut chain = None;
    let mut scheduled = Vec::new();
    let mut completed = 0usize;
    for event in request.past_events.iter().chain(&request.new_events) {
        match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => {
                chain = started
                    .input
                    .as_deref()
                    .and_then(|i| i.parse::<usize>().ok());
            }
            Some(EventType::TaskScheduled(_)) => {
                let expected = i32::try_from(scheduled.len() + 1).unwrap_or(i32::MAX);
                if event.event_id != expected {
                    return Err(format!(
                        "taskScheduled has eventId {}, the action's id was {expected}",
                        event.event_id
                    ));
                }
                scheduled.push(event.event_id);
            }
            Some(EventType::TaskCompleted(done)) => {
                if !scheduled.contains(&done.task_scheduled_id) {
                    return Err(format!(
                        "taskCompleted for taskScheduledId {} that was never scheduled",
                        done.task_scheduled_id
                    ));
                }
                completed += 1;
            }
            Some(EventType::TaskFailed(failed)) => {
                return Err(format!("task failed: {:?}", failed.failure_details));
            }
            _ => {}
        }
    }
    let chain = chain.ok_or("no executionStarted with the chain's length as input")?;
    if completed < scheduled.len() {
        // An activity is still due: nothing new to do (as an SDK would).
        return Err("a step with no new result".into());
    }
    // The SDK's numbering: the k-th action ever emitted has id k.
    let id = i32::try_from(completed + 1).unwrap_or(i32::MAX);
    let kind = if completed < chain {
        Action::ScheduleTask(dt::ScheduleTaskAction {
            name: ACTIVITY.into(),
            input: Some(completed.to_string()),
            ..Default::default()
        })
    } else {
        Action::CompleteWorkflow(dt::CompleteWorkflowAction {
            workflow_status: dt::OrchestrationStatus::Completed as i32,
            result: Some(completed.to_string()),
            ..Default::default()
        })
    };
    Ok(Some(dt::WorkflowAction {
        id,
        workflow_action_type: Some(kind),
        router: None,
    }))
}
