//! The SDK workers connected over `GetWorkItems`, and work items waiting for
//! their completion (`CompleteOrchestratorTask` / `CompleteWorkflowTask` /
//! `CompleteActivityTask`, matched by the completion token we issued).
//!
//! A work item goes to the connected workers in turn; if its worker
//! disconnects before completing it, the caller is told and sends it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tonic::Status;

use outrigger_proto::durabletask as dt;

/// What [`Workers::run`] answers once the gateway is stopping.
pub(crate) const SHUTTING_DOWN: &str = "the gateway is shutting down";

/// A token never cancelled, for workers without a stop token.
static NEVER: std::sync::LazyLock<tokio_util::sync::CancellationToken> =
    std::sync::LazyLock::new(tokio_util::sync::CancellationToken::new);

/// How often workers that asked for health pings get one.
const HEALTH_PING_EVERY: Duration = Duration::from_secs(10);

/// A worker's answer to a work item.
#[derive(Debug)]
pub enum Completion {
    /// An orchestration step's actions.
    Workflow(dt::WorkflowResponse),
    /// An activity's result.
    Activity(dt::ActivityResponse),
}

type Outbox = mpsc::Sender<Result<dt::WorkItem, Status>>;

/// Told once a completion is durably recorded; the worker's `Complete*`
/// call is answered only then.
pub(crate) type Ack = oneshot::Sender<()>;

/// A work item's worker, and who waits for its completion.
type Waiting = (u64, oneshot::Sender<(Completion, Ack)>);

#[derive(Debug, Default)]
struct Connected {
    streams: Vec<(u64, Outbox)>,
    turn: usize,
}

/// The connected workers.
#[derive(Debug, Default)]
pub struct Workers {
    connected: Mutex<Connected>,
    pending: Mutex<HashMap<String, Waiting>>,
    next: AtomicU64,
    joined: Notify,
    stop: std::sync::OnceLock<tokio_util::sync::CancellationToken>,
}

/// Removes a worker when its stream is dropped (the client went away).
#[derive(Debug)]
pub struct Registration {
    workers: Arc<Workers>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.workers.disconnect(self.id);
    }
}

impl Workers {
    /// A worker connects: its work items arrive on the returned receiver
    /// until the [`Registration`] is dropped. With `health_pings`, it gets a
    /// `healthPing` item every 10 s.
    pub fn connect(
        self: &Arc<Self>,
        health_pings: bool,
    ) -> (Registration, mpsc::Receiver<Result<dt::WorkItem, Status>>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1024);
        if let Ok(mut connected) = self.connected.lock() {
            connected.streams.push((id, tx.clone()));
        }
        if health_pings {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEALTH_PING_EVERY).await;
                    let ping = dt::WorkItem {
                        request: Some(dt::work_item::Request::HealthPing(dt::HealthPing {})),
                        completion_token: String::new(),
                    };
                    if tx.send(Ok(ping)).await.is_err() {
                        return;
                    }
                }
            });
        }
        tracing::info!(worker = id, "workflow worker connected");
        self.joined.notify_waiters();
        (
            Registration {
                workers: Arc::clone(self),
                id,
            },
            rx,
        )
    }

    fn disconnect(&self, id: u64) {
        if let Ok(mut connected) = self.connected.lock() {
            connected.streams.retain(|(w, _)| *w != id);
        }
        // Its unfinished work items fail, so they are sent to another worker.
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|_, (w, _)| *w != id);
        }
        tracing::info!(worker = id, "workflow worker disconnected");
    }

    /// How many workers are connected.
    pub fn count(&self) -> usize {
        self.connected.lock().map(|c| c.streams.len()).unwrap_or(0)
    }

    /// Stop waiting (for workers and completions) once `stop` is cancelled.
    pub(crate) fn stop_on(&self, stop: tokio_util::sync::CancellationToken) {
        let _ = self.stop.set(stop);
    }

    fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        match self.stop.get() {
            Some(stop) => stop.cancelled(),
            None => NEVER.cancelled(),
        }
    }

    /// Wait until at least one worker is connected.
    pub(crate) async fn wait_for_any(&self) {
        loop {
            let joined = self.joined.notified();
            if self.count() > 0 {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), joined).await;
        }
    }

    fn pick(&self) -> Option<(u64, Outbox)> {
        let mut connected = self.connected.lock().ok()?;
        if connected.streams.is_empty() {
            return None;
        }
        connected.turn = (connected.turn + 1) % connected.streams.len();
        connected.streams.get(connected.turn).cloned()
    }

    /// Send `request` to a worker (waiting for one to connect) and wait for
    /// its completion. `Err` when the worker went away first.
    pub(crate) async fn run(
        &self,
        request: dt::work_item::Request,
    ) -> Result<(Completion, Ack), String> {
        let (worker, outbox) = loop {
            let joined = self.joined.notified();
            if let Some(found) = self.pick() {
                break found;
            }
            // Wait for a worker (re-checking now and then), or shutdown.
            tokio::select! {
                () = self.stopping() => return Err(SHUTTING_DOWN.into()),
                _ = tokio::time::timeout(Duration::from_secs(1), joined) => {}
            }
        };
        let token = format!("{worker}-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(token.clone(), (worker, tx));
        }
        let item = dt::WorkItem {
            request: Some(request),
            completion_token: token.clone(),
        };
        if outbox.send(Ok(item)).await.is_err() {
            self.disconnect(worker);
            return Err("the worker's stream closed".into());
        }
        tokio::select! {
            () = self.stopping() => Err(SHUTTING_DOWN.into()),
            answer = rx => answer
                .map_err(|_| "the worker disconnected before completing the work item".into()),
        }
    }

    /// A worker completes the work item of `token`; the receiver resolves
    /// once the completion is recorded.
    ///
    /// # Errors
    /// `NOT_FOUND` for a token nobody waits for (completed already, or its
    /// worker reconnected).
    pub fn complete(
        &self,
        token: &str,
        completion: Completion,
    ) -> Result<oneshot::Receiver<()>, Status> {
        let waiter = self
            .pending
            .lock()
            .map_err(|_| Status::internal("pending table poisoned"))?
            .remove(token);
        match waiter {
            Some((_, tx)) => {
                let (ack, recorded) = oneshot::channel();
                let _ = tx.send((completion, ack));
                Ok(recorded)
            }
            None => Err(Status::not_found(format!(
                "completionToken {token:?}: no work item is waiting for it"
            ))),
        }
    }
}
