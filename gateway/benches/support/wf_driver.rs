//! The workflow benchmark's drivers: starting a workflow and waiting for it,
//! one at a time and in a closed loop of N clients, and the checks for
//! instances a failed run left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use outrigger_proto::durabletask as dt;

use super::wf_worker::{Client, WORKFLOW, Worker};
use crate::{CHAIN, PATIENCE, Plan};

/// How a throughput client learns that its workflow finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// The worker's `CompleteWorkflow` was recorded.
    Worker,
    /// `WaitForInstanceCompletion` answered.
    Client,
}

/// `StartInstance` of `id` (a chain of [`CHAIN`]); `Err`: the gateway's message.
pub(crate) async fn start(client: &Client, worker: &Worker, id: &str) -> Result<(), String> {
    worker.mark_start(id);
    client
        .clone()
        .start_instance(dt::CreateInstanceRequest {
            instance_id: id.to_owned(),
            name: WORKFLOW.into(),
            input: Some(CHAIN.to_string()),
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// `WaitForInstanceCompletion`: `Ok` when it ended COMPLETED with the
/// chain's output, else what it said.
pub(crate) async fn wait_completed(client: &Client, id: &str) -> Result<(), String> {
    let reply = client
        .clone()
        .wait_for_instance_completion(dt::GetInstanceRequest {
            instance_id: id.to_owned(),
            get_inputs_and_outputs: true,
            router: None,
        })
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
        .into_inner();
    match reply.workflow_state {
        Some(s)
            if s.workflow_status == dt::OrchestrationStatus::Completed as i32
                && s.output.as_deref() == Some(&CHAIN.to_string()) =>
        {
            Ok(())
        }
        other => Err(format!("ended as {other:?}")),
    }
}

/// One workflow, `StartInstance` → `WaitForInstanceCompletion`.
pub(crate) async fn one(client: &Client, worker: &Worker, id: &str) -> Duration {
    let started = Instant::now();
    if let Err(why) = start(client, worker, id).await {
        panic!("StartInstance {id}: {why}");
    }
    let ok = tokio::time::timeout(Duration::from_secs(30), wait_completed(client, id)).await;
    assert!(
        matches!(ok, Ok(Ok(()))),
        "workflow {id} did not complete ({ok:?}); worker: {:?}",
        worker.problems()
    );
    started.elapsed()
}

/// The outcome of a throughput row.
#[derive(Debug, Default)]
pub(crate) struct Throughput {
    /// Workflows completed.
    pub(crate) workflows: usize,
    pub(crate) elapsed: Duration,
    /// Started, but not completed within [`PATIENCE`] (or not COMPLETED), and the
    /// first reason.
    pub(crate) failed: usize,
    pub(crate) failure: Option<String>,
    /// Ids whose `StartInstance` failed, and the first error.
    pub(crate) start_failed: Vec<String>,
    pub(crate) start_error: Option<String>,
}

impl Throughput {
    pub(crate) fn per_second(&self) -> f64 {
        self.workflows as f64 / self.elapsed.as_secs_f64()
    }
}

/// `concurrency` clients, each starting a workflow when its last one is done.
pub(crate) async fn closed_loop(
    client: &Client,
    worker: &Arc<Worker>,
    prefix: &str,
    concurrency: usize,
    plan: Plan,
    waiting: Waiting,
) -> Throughput {
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(std::sync::Mutex::new(Throughput::default()));
    let started = Instant::now();
    let deadline = started + plan.cap;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, worker) = (client.clone(), Arc::clone(worker));
        let (next, outcome, prefix) = (Arc::clone(&next), Arc::clone(&outcome), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.total || Instant::now() > deadline {
                    return;
                }
                let id = format!("{prefix}-{i}");
                let finished = worker.on_done(&id);
                if let Err(why) = start(&client, &worker, &id).await {
                    let mut outcome = outcome.lock().unwrap();
                    outcome.start_failed.push(id);
                    outcome.start_error.get_or_insert(why);
                    continue;
                }
                let patience = PATIENCE;
                let ended = match waiting {
                    Waiting::Worker => match tokio::time::timeout(patience, finished).await {
                        Ok(Ok(())) => Ok(()),
                        _ => Err(format!(
                            "the worker did not complete it within {} s",
                            PATIENCE.as_secs()
                        )),
                    },
                    Waiting::Client => {
                        match tokio::time::timeout(patience, wait_completed(&client, &id)).await {
                            Ok(ended) => {
                                ended.map_err(|why| format!("WaitForInstanceCompletion: {why}"))
                            }
                            Err(_) => Err(format!(
                                "WaitForInstanceCompletion: no answer within {} s",
                                PATIENCE.as_secs()
                            )),
                        }
                    }
                };
                let mut outcome = outcome.lock().unwrap();
                match ended {
                    Ok(()) => outcome.workflows += 1,
                    Err(why) => {
                        outcome.failed += 1;
                        outcome.failure.get_or_insert(why);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut outcome = std::mem::take(&mut *outcome.lock().unwrap());
    outcome.elapsed = started.elapsed();
    outcome
}

/// Report what became of instances whose `StartInstance` failed: how many
/// exist anyway, still PENDING after the engine's 1 s scan, and what a
/// second `StartInstance` of one of them answers.
pub(crate) async fn orphans(client: &Client, worker: &Worker, ids: &[String], why: &str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending = count_pending(client, ids).await;
    println!(
        "  !! {} StartInstance calls failed (first: {why}); 2 s later {pending} of those instances exist, still PENDING",
        ids.len()
    );
    if pending > 0 {
        for id in ids {
            if count_pending(client, std::slice::from_ref(id)).await == 1 {
                let again = start(client, worker, id).await;
                println!("     StartInstance of {id} again: {again:?}");
                break;
            }
        }
    }
}

/// Report instances started and still not COMPLETED 3 s after their row:
/// how many, and for a few what the worker last did and the last event
/// of their history.
pub(crate) async fn stuck(
    client: &Client,
    worker: &Worker,
    started: &[String],
    completed_then: usize,
) {
    let mut left = Vec::new();
    for id in started {
        if count_completed(client, std::slice::from_ref(id)).await == 0 {
            left.push(id.clone());
        }
    }
    println!(
        "  !! {completed_then} of the {} instances started were COMPLETED right after the row; 3 s later {} are not",
        started.len(),
        left.len()
    );
    for id in left.iter().take(3) {
        let history = client
            .clone()
            .get_instance_history(dt::GetInstanceHistoryRequest {
                instance_id: id.clone(),
            })
            .await
            .map(|r| r.into_inner().events)
            .unwrap_or_default();
        let last =
            history
                .last()
                .and_then(|e| e.event_type.as_ref())
                .map_or("none".to_owned(), |t| {
                    format!("{t:?}")
                        .split('(')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                });
        println!(
            "     {id}: worker {}; {} history events, the last {last}",
            worker.last_seen(id),
            history.len()
        );
    }
}

/// How many of `ids` exist and are in `status` (`GetInstance`).
pub(crate) async fn count_in(
    client: &Client,
    ids: &[String],
    status: dt::OrchestrationStatus,
) -> usize {
    let mut count = 0;
    for id in ids {
        let reply = client
            .clone()
            .get_instance(dt::GetInstanceRequest {
                instance_id: id.clone(),
                get_inputs_and_outputs: false,
                router: None,
            })
            .await
            .expect("GetInstance")
            .into_inner();
        if reply
            .workflow_state
            .is_some_and(|s| s.workflow_status == status as i32)
        {
            count += 1;
        }
    }
    count
}

/// How many of `ids` exist and are still PENDING.
pub(crate) async fn count_pending(client: &Client, ids: &[String]) -> usize {
    count_in(client, ids, dt::OrchestrationStatus::Pending).await
}

/// How many of `ids` are COMPLETED.
pub(crate) async fn count_completed(client: &Client, ids: &[String]) -> usize {
    count_in(client, ids, dt::OrchestrationStatus::Completed).await
}
