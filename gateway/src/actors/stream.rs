//! Actor hosting over `SubscribeActorEventsAlpha1`: the app opens a stream
//! to the gateway, registers its actor types in the first message, and then
//! receives invoke, timer, reminder and deactivate requests on it, answering
//! each by id. This is how a gRPC app (the Python SDK's `ActorGrpcHost`)
//! hosts actors; HTTP apps are asked `GET /dapr/config` instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use outrigger_proto::runtime as pb;
use pb::subscribe_actor_events_request_alpha1::RequestType as In;
use pb::subscribe_actor_events_response_alpha1::ResponseType as Out;

use super::config::{HostConfig, Reentrancy, TypeConfig};
use super::host::{Turn, TurnKind};
use crate::runtime::invoke::Reply;

/// How long the app may take to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Type URL of `google.protobuf.BytesValue`, which carries reminder and
/// timer data on the stream (as daprd sends it).
const BYTES_VALUE: &str = "type.googleapis.com/google.protobuf.BytesValue";

/// The app's answer to one request.
#[derive(Debug)]
enum Answer {
    Invoke {
        data: Vec<u8>,
        metadata: HashMap<String, String>,
        error: bool,
    },
    Fired {
        cancel: bool,
    },
    Deactivated,
    Failed {
        code: u32,
        message: String,
    },
}

/// The outgoing half of an app's actor stream and its unanswered requests.
#[derive(Debug)]
pub(crate) struct StreamApp {
    out: mpsc::Sender<Result<pb::SubscribeActorEventsResponseAlpha1, Status>>,
    /// `None` once the app's stream has ended: nothing more will be answered.
    pending: Mutex<Option<HashMap<String, oneshot::Sender<Answer>>>>,
    next: AtomicU64,
}

fn duration(raw: Option<prost_types::Duration>) -> Option<Duration> {
    raw.and_then(|d| {
        let secs = u64::try_from(d.seconds).ok()?;
        let nanos = u32::try_from(d.nanos).ok()?;
        Some(Duration::new(secs, nanos))
    })
}

fn reentrancy(raw: Option<pb::ActorReentrancyConfig>) -> Option<Reentrancy> {
    raw.map(|r| Reentrancy {
        enabled: r.enabled,
        max_stack_depth: r
            .max_stack_depth
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| *d > 0)
            .unwrap_or(32),
    })
}

/// The registration message as a host configuration.
pub(crate) fn host_config(initial: pb::SubscribeActorEventsRequestInitialAlpha1) -> HostConfig {
    let defaults = HostConfig::default();
    let mut per_type = HashMap::new();
    for entry in initial.entities_config {
        let settings = TypeConfig {
            idle_timeout: duration(entry.actor_idle_timeout),
            reentrancy: reentrancy(entry.reentrancy),
            reminder_partitions: None,
        };
        for entity in entry.entities {
            per_type.insert(entity, settings.clone());
        }
    }
    let mut entities = initial.entities;
    entities.retain(|e| !e.is_empty());
    entities.dedup();
    let idle_timeout = duration(initial.actor_idle_timeout).unwrap_or(defaults.idle_timeout);
    // The registration has no scan interval: scan often enough for the
    // shortest idle timeout (half of it), at most every 30 s as daprd.
    let shortest = per_type
        .values()
        .filter_map(|t: &TypeConfig| t.idle_timeout)
        .fold(idle_timeout, Duration::min);
    HostConfig {
        scan_interval: defaults
            .scan_interval
            .min(shortest / 2)
            .max(Duration::from_millis(100)),
        idle_timeout,
        entities,
        drain_timeout: duration(initial.drain_ongoing_call_timeout)
            .unwrap_or(defaults.drain_timeout),
        drain_rebalanced: initial
            .drain_rebalanced_actors
            .unwrap_or(defaults.drain_rebalanced),
        reentrancy: reentrancy(initial.reentrancy).unwrap_or_default(),
        per_type,
        ..defaults
    }
}

fn bytes_value(json: &serde_json::Value) -> Option<prost_types::Any> {
    if json.is_null() {
        return None;
    }
    let inner = serde_json::to_vec(json).unwrap_or_default();
    let mut value = Vec::with_capacity(inner.len() + 8);
    prost::encoding::bytes::encode(1, &inner, &mut value);
    Some(prost_types::Any {
        type_url: BYTES_VALUE.to_owned(),
        value,
    })
}

/// A field of a timer's or reminder's JSON body.
fn field(body: &serde_json::Value, name: &str) -> String {
    body.get(name)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl StreamApp {
    /// A stream app sending on `out`.
    pub(crate) fn new(
        out: mpsc::Sender<Result<pb::SubscribeActorEventsResponseAlpha1, Status>>,
    ) -> Self {
        Self {
            out,
            pending: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(1),
        }
    }

    async fn ask(&self, request: impl FnOnce(String) -> Out) -> Result<Answer, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().as_deref_mut() {
            Ok(Some(pending)) => {
                pending.insert(id.clone(), tx);
            }
            _ => return Err("the app's actor stream is closed".into()),
        }
        let message = pb::SubscribeActorEventsResponseAlpha1 {
            response_type: Some(request(id.clone())),
        };
        if self.out.send(Ok(message)).await.is_err() {
            self.forget(&id);
            return Err("the app's actor stream is closed".into());
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the app's actor stream closed before it answered".into()),
            Err(_) => {
                self.forget(&id);
                Err(format!("the app did not answer within {ANSWER_TIMEOUT:?}"))
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(Some(pending)) = self.pending.lock().as_deref_mut() {
            pending.remove(id);
        }
    }

    /// The app's stream ended: fail what it left unanswered, and whatever
    /// is asked later, at once.
    fn close(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.take();
        }
    }

    /// Route one message from the app to the request it answers.
    pub(crate) fn answer(&self, message: pb::SubscribeActorEventsRequestAlpha1) {
        let (id, answer) = match message.request_type {
            Some(In::InvokeResponse(r)) => (
                r.id,
                Answer::Invoke {
                    data: r.data,
                    metadata: r.metadata,
                    error: r.error,
                },
            ),
            Some(In::ReminderResponse(r) | In::TimerResponse(r)) => {
                (r.id, Answer::Fired { cancel: r.cancel })
            }
            Some(In::DeactivateResponse(r)) => (r.id, Answer::Deactivated),
            Some(In::RequestFailed(r)) => (
                r.id,
                Answer::Failed {
                    code: r.code,
                    message: r.message,
                },
            ),
            Some(In::InitialRequest(_)) | None => {
                tracing::warn!("ignoring an unexpected message on the actor stream");
                return;
            }
        };
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.as_mut().and_then(|p| p.remove(&id)));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(answer);
            }
            None => tracing::debug!(id, "an answer on the actor stream for no pending request"),
        }
    }

    /// Run one turn through the stream.
    pub(crate) async fn turn(
        &self,
        actor_type: &str,
        id: &str,
        turn: &Turn,
    ) -> Result<Reply, String> {
        let (actor_type, actor_id) = (actor_type.to_owned(), id.to_owned());
        let body: serde_json::Value = match turn.kind {
            TurnKind::Method(_) => serde_json::Value::Null,
            _ => serde_json::from_slice(&turn.body).unwrap_or_default(),
        };
        let answer = match &turn.kind {
            TurnKind::Method(method) => {
                let (method, data) = (method.clone(), turn.body.clone());
                let metadata = turn.headers.iter().cloned().collect();
                self.ask(|id| {
                    Out::InvokeRequest(pb::SubscribeActorEventsResponseInvokeRequestAlpha1 {
                        id,
                        actor_type,
                        actor_id,
                        method,
                        data,
                        metadata,
                    })
                })
                .await?
            }
            TurnKind::Timer(name) => {
                let name = name.clone();
                self.ask(|id| {
                    Out::TimerRequest(pb::SubscribeActorEventsResponseTimerRequestAlpha1 {
                        id,
                        actor_type,
                        actor_id,
                        name,
                        due_time: field(&body, "dueTime"),
                        period: field(&body, "period"),
                        callback: field(&body, "callback"),
                        data: body.get("data").and_then(bytes_value),
                        metadata: HashMap::new(),
                    })
                })
                .await?
            }
            TurnKind::Reminder(name) => {
                let name = name.clone();
                self.ask(|id| {
                    Out::ReminderRequest(pb::SubscribeActorEventsResponseReminderRequestAlpha1 {
                        id,
                        actor_type,
                        actor_id,
                        name,
                        due_time: field(&body, "dueTime"),
                        period: field(&body, "period"),
                        data: body.get("data").and_then(bytes_value),
                        metadata: HashMap::new(),
                    })
                })
                .await?
            }
        };
        Ok(match answer {
            Answer::Invoke {
                data,
                metadata,
                error,
            } => {
                let mut headers = crate::runtime::invoke::header_map(
                    metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                if error {
                    headers.insert(
                        http::HeaderName::from_static(super::ERROR_HEADER),
                        http::HeaderValue::from_static("true"),
                    );
                }
                Reply {
                    status: 200,
                    headers,
                    body: data,
                }
            }
            Answer::Fired { cancel } => Reply {
                status: 200,
                headers: if cancel {
                    http::HeaderMap::from_iter([(
                        http::HeaderName::from_static("x-daprremindercancel"),
                        http::HeaderValue::from_static("true"),
                    )])
                } else {
                    http::HeaderMap::new()
                },
                body: Vec::new(),
            },
            Answer::Deactivated => Reply {
                status: 200,
                headers: http::HeaderMap::new(),
                body: Vec::new(),
            },
            Answer::Failed { code, message } => Reply {
                // NOT_FOUND (an unknown method or type) is daprd's permanent failure.
                status: if code == tonic::Code::NotFound as u32 {
                    404
                } else {
                    500
                },
                headers: http::HeaderMap::new(),
                body: message.into_bytes(),
            },
        })
    }

    /// Ask the app to deactivate an actor.
    pub(crate) async fn deactivate(&self, actor_type: &str, id: &str) -> Result<(), String> {
        let (actor_type, actor_id) = (actor_type.to_owned(), id.to_owned());
        match self
            .ask(|id| {
                Out::DeactivateRequest(pb::SubscribeActorEventsResponseDeactivateRequestAlpha1 {
                    id,
                    actor_type,
                    actor_id,
                })
            })
            .await?
        {
            Answer::Failed { message, .. } => Err(message),
            _ => Ok(()),
        }
    }
}

/// Serve one `SubscribeActorEventsAlpha1` stream: register, host until the
/// stream ends (or the gateway stops), then hand the actors back.
pub(crate) async fn serve(
    actors: Arc<super::Actors>,
    mut inbound: tonic::Streaming<pb::SubscribeActorEventsRequestAlpha1>,
) -> Result<tonic::codegen::BoxStream<pb::SubscribeActorEventsResponseAlpha1>, Status> {
    let first = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("initial_request: the stream closed before it"))?;
    let Some(In::InitialRequest(initial)) = first.request_type else {
        return Err(Status::invalid_argument(
            "initial_request: the first message must register the actor types",
        ));
    };
    let config = host_config(initial);
    if config.entities.is_empty() {
        return Err(Status::invalid_argument(
            "initial_request.entities: must name at least one actor type",
        ));
    }
    let (tx, rx) = mpsc::channel(256);
    let app = Arc::new(StreamApp::new(tx.clone()));
    let (stop, over) = actors.host_stream(config, Arc::clone(&app))?;
    tx.send(Ok(pb::SubscribeActorEventsResponseAlpha1 {
        response_type: Some(Out::InitialResponse(
            pb::SubscribeActorEventsResponseInitialAlpha1 {},
        )),
    }))
    .await
    .map_err(|_| Status::cancelled("the app closed the stream"))?;
    tokio::spawn(async move {
        // Answers are read until hosting is over, not merely stopping: at
        // shutdown the actors are deactivated through this stream.
        loop {
            tokio::select! {
                () = over.cancelled() => break,
                message = inbound.message() => match message {
                    Ok(Some(message)) => app.answer(message),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        // The stream is gone: nothing unanswered will be, and hosting stops
        // (its actors move elsewhere).
        app.close();
        stop.cancel();
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Encoded length check used by tests: a BytesValue wrapping `json`.
#[cfg(test)]
fn unwrap_bytes_value(any: &prost_types::Any) -> Vec<u8> {
    use prost::Message;
    #[derive(Message)]
    struct BytesValue {
        #[prost(bytes = "vec", tag = "1")]
        value: Vec<u8>,
    }
    BytesValue::decode(any.value.as_slice())
        .map(|b| b.value)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_travels_as_a_bytes_value_of_the_json() {
        let any = bytes_value(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(any.type_url, BYTES_VALUE);
        assert_eq!(unwrap_bytes_value(&any), br#"{"a":1}"#);
        assert!(bytes_value(&serde_json::Value::Null).is_none());
    }

    #[test]
    fn registration_becomes_a_host_config() {
        let config = host_config(pb::SubscribeActorEventsRequestInitialAlpha1 {
            entities: vec!["A".into(), "B".into()],
            actor_idle_timeout: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            reentrancy: Some(pb::ActorReentrancyConfig {
                enabled: true,
                max_stack_depth: None,
            }),
            entities_config: vec![pb::ActorEntityConfig {
                entities: vec!["B".into()],
                reentrancy: Some(pb::ActorReentrancyConfig {
                    enabled: false,
                    max_stack_depth: Some(3),
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(config.entities, ["A", "B"]);
        assert_eq!(config.idle_timeout("A"), Duration::from_secs(2));
        assert!(config.reentrancy("A").enabled);
        assert_eq!(config.reentrancy("A").max_stack_depth, 32);
        assert!(!config.reentrancy("B").enabled);
    }
}
