//! Streams and the other blocks over a real socket: pub/sub `PullMessages`
//! acks, nacks and abandonment; input binding `Read`; output bindings;
//! secret stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger_component_sdk::bindings::*;
use outrigger_component_sdk::pubsub::*;
use outrigger_component_sdk::secrets::*;
use outrigger_component_sdk::{ComponentError, Delivery, Metadata, Outcome, async_trait};
use outrigger_proto::components as pb;
use support::{Running, channel, to};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

type Outcomes = Arc<Mutex<Vec<(String, Outcome<()>)>>>;

/// Emits three messages per subscription and records what became of each.
#[derive(Default)]
struct Recorder {
    outcomes: Outcomes,
    published: Arc<Mutex<Vec<PublishRequest>>>,
}

#[async_trait]
impl PubSub for Recorder {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        metadata.bool_or("strict", false).map(|_| ())
    }
    async fn publish(&self, request: PublishRequest) -> Result<(), ComponentError> {
        if request.data == b"reject" {
            return Err(ComponentError::unavailable("broker said no"));
        }
        self.published.lock().unwrap().push(request);
        Ok(())
    }
    async fn subscribe(&self, topic: Topic) -> Result<MessageStream, ComponentError> {
        let (tx, rx) = mpsc::channel(8);
        let outcomes = Arc::clone(&self.outcomes);
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            for body in ["one", "two", "three"] {
                let message = PulledMessage {
                    data: body.as_bytes().to_vec(),
                    topic: topic.name.clone(),
                    metadata: HashMap::from([("seq".to_owned(), body.to_owned())]),
                    content_type: Some("text/plain".into()),
                };
                let (delivery, outcome) = Delivery::new(message);
                if tx.send(Ok(delivery)).await.is_err() {
                    return;
                }
                waiting.push((body.to_owned(), outcome));
            }
            for (body, outcome) in waiting {
                let outcome = outcome.await;
                outcomes.lock().unwrap().push((body, outcome));
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

async fn eventually(check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn pull_messages_routes_acks_nacks_and_abandonment() {
    let outcomes = Outcomes::default();
    let recorded = Arc::clone(&outcomes);
    let running = Running::start("bus", move |s| {
        s.service("bus", move |s| {
            s.pubsub(move || Recorder {
                outcomes: Arc::clone(&recorded),
                ..Default::default()
            })
        })
    })
    .await;
    let mut client = pb::pub_sub_client::PubSubClient::new(channel(&running.socket("bus")).await);
    client
        .init(to("bus", pb::PubSubInitRequest::default()))
        .await
        .unwrap();

    let (requests, rx) = mpsc::channel(8);
    requests
        .send(pb::PullMessagesRequest {
            topic: Some(pb::Topic {
                name: "orders".into(),
                metadata: HashMap::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = client
        .pull_messages(to("bus", ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(messages.next().await.unwrap().unwrap());
    }
    assert_eq!(received[0].data, b"one");
    assert_eq!(received[0].topic_name, "orders");
    assert_eq!(received[0].content_type, "text/plain");
    assert_eq!(received[0].metadata["seq"], "one");
    let ids: std::collections::HashSet<_> = received.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), 3, "each message gets its own id");

    // Ack the first, nack the second, and drop the stream without answering the third.
    requests
        .send(pb::PullMessagesRequest {
            ack_message_id: received[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    requests
        .send(pb::PullMessagesRequest {
            ack_message_id: received[1].id.clone(),
            ack_error: Some(pb::AckMessageError {
                message: "app failed".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(|| outcomes.lock().unwrap().len() >= 2).await;
    drop(requests);
    drop(messages);
    eventually(|| outcomes.lock().unwrap().len() == 3).await;
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes,
        vec![
            ("one".to_owned(), Outcome::Acked(())),
            ("two".to_owned(), Outcome::Nacked("app failed".into())),
            ("three".to_owned(), Outcome::Abandoned),
        ]
    );
}

#[tokio::test]
async fn pull_messages_needs_a_topic_first() {
    let running =
        Running::start("bus", |s| s.service("bus", |s| s.pubsub(Recorder::default))).await;
    let mut client = pb::pub_sub_client::PubSubClient::new(channel(&running.socket("bus")).await);
    client
        .init(to("bus", pb::PubSubInitRequest::default()))
        .await
        .unwrap();
    let first = pb::PullMessagesRequest {
        ack_message_id: "1".into(),
        ..Default::default()
    };
    let err = client
        .pull_messages(to("bus", tokio_stream::iter([first])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("topic"), "{}", err.message());
}

#[tokio::test]
async fn shutdown_ends_open_subscriptions() {
    let running =
        Running::start("bus", |s| s.service("bus", |s| s.pubsub(Recorder::default))).await;
    let mut client = pb::pub_sub_client::PubSubClient::new(channel(&running.socket("bus")).await);
    client
        .init(to("bus", pb::PubSubInitRequest::default()))
        .await
        .unwrap();
    let (requests, rx) = mpsc::channel(1);
    requests
        .send(pb::PullMessagesRequest {
            topic: Some(pb::Topic {
                name: "t".into(),
                metadata: HashMap::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = client
        .pull_messages(to("bus", ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    messages.next().await.unwrap().unwrap();
    // The host keeps its side open; shutdown must still finish within the grace period.
    running.stop().await.unwrap();
    while let Some(Ok(_)) = messages.next().await {}
}

#[tokio::test]
async fn publish_bulk_falls_back_and_reports_failed_entries() {
    let running =
        Running::start("bus", |s| s.service("bus", |s| s.pubsub(Recorder::default))).await;
    let mut client = pb::pub_sub_client::PubSubClient::new(channel(&running.socket("bus")).await);
    let init = pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest {
            properties: HashMap::from([("strict".to_owned(), "sometimes".to_owned())]),
        }),
    };
    let err = client.init(to("bus", init)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("strict"),
        "bad metadata names its key: {}",
        err.message()
    );
    client
        .init(to("bus", pb::PubSubInitRequest::default()))
        .await
        .unwrap();

    let entry = |id: &str, body: &[u8]| pb::BulkMessageEntry {
        entry_id: id.into(),
        event: body.to_vec(),
        content_type: "text/plain".into(),
        metadata: HashMap::new(),
    };
    let reply = client
        .bulk_publish(to(
            "bus",
            pb::BulkPublishRequest {
                entries: vec![entry("a", b"ok"), entry("b", b"reject")],
                pubsub_name: "bus".into(),
                topic: "t".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.failed_entries.len(), 1);
    assert_eq!(reply.failed_entries[0].entry_id, "b");
    assert!(reply.failed_entries[0].error.contains("broker said no"));

    let err = client
        .bulk_publish(to(
            "bus",
            pb::BulkPublishRequest {
                entries: vec![entry("a", b"1"), entry("a", b"2")],
                pubsub_name: "bus".into(),
                topic: "t".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("entries[1].entry_id"),
        "{}",
        err.message()
    );

    let err = client
        .publish(to("bus", pb::PublishRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("topic"), "{}", err.message());
}

/// Emits one event and records the app's reply.
#[derive(Default)]
struct OneEvent {
    replies: Arc<Mutex<Vec<Outcome<Vec<u8>>>>>,
}

#[async_trait]
impl InputBinding for OneEvent {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn read(&self) -> Result<EventStream, ComponentError> {
        let (delivery, outcome) = Delivery::new(InputEvent {
            data: b"tick".to_vec(),
            ..Default::default()
        });
        let replies = Arc::clone(&self.replies);
        tokio::spawn(async move {
            let outcome = outcome.await;
            replies.lock().unwrap().push(outcome);
        });
        Ok(Box::pin(
            tokio_stream::iter([Ok(delivery)]).chain(tokio_stream::pending()),
        ))
    }
}

#[tokio::test]
async fn input_binding_read_returns_the_app_reply() {
    let replies = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&replies);
    let running = Running::start("cron", move |s| {
        s.service("cron", move |s| {
            s.input_binding(move || OneEvent {
                replies: Arc::clone(&shared),
            })
        })
    })
    .await;
    let mut client =
        pb::input_binding_client::InputBindingClient::new(channel(&running.socket("cron")).await);
    client
        .init(to("cron", pb::InputBindingInitRequest::default()))
        .await
        .unwrap();
    // daprd sends nothing before the first event arrives.
    let (answers, rx) = mpsc::channel(1);
    let mut events = client
        .read(to("cron", ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let event = events.next().await.unwrap().unwrap();
    assert_eq!(event.data, b"tick");
    answers
        .send(pb::ReadRequest {
            response_data: b"handled".to_vec(),
            message_id: event.message_id,
            response_error: None,
        })
        .await
        .unwrap();
    eventually(|| !replies.lock().unwrap().is_empty()).await;
    assert_eq!(
        replies.lock().unwrap()[0],
        Outcome::Acked(b"handled".to_vec())
    );
}

struct Echo;

#[async_trait]
impl OutputBinding for Echo {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    fn operations(&self) -> Vec<String> {
        vec!["create".into(), "get".into()]
    }
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        Ok(InvokeResponse {
            data: request.data,
            metadata: HashMap::from([("operation".to_owned(), request.operation)]),
            content_type: Some("application/octet-stream".into()),
        })
    }
}

#[tokio::test]
async fn output_binding_lists_and_checks_operations() {
    let running =
        Running::start("echo", |s| s.service("echo", |s| s.output_binding(|| Echo))).await;
    let mut client =
        pb::output_binding_client::OutputBindingClient::new(channel(&running.socket("echo")).await);
    client
        .init(to("echo", pb::OutputBindingInitRequest::default()))
        .await
        .unwrap();
    let ops = client
        .list_operations(to("echo", pb::ListOperationsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ops.operations, ["create", "get"]);
    let reply = client
        .invoke(to(
            "echo",
            pb::InvokeRequest {
                data: b"x".to_vec(),
                metadata: HashMap::new(),
                operation: "create".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data, b"x");
    assert_eq!(reply.metadata["operation"], "create");
    let err = client
        .invoke(to(
            "echo",
            pb::InvokeRequest {
                operation: "drop-table".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("drop-table") && err.message().contains("create"));
}

struct Vault;

#[async_trait]
impl SecretStore for Vault {
    async fn init(&self, _: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn get(&self, key: &str, _: HashMap<String, String>) -> Result<Secret, ComponentError> {
        match key {
            "db" => Ok(HashMap::from([("db".to_owned(), "s3cret".to_owned())])),
            other => Err(ComponentError::not_found(format!("no secret {other:?}"))),
        }
    }
    async fn bulk_get(
        &self,
        _: HashMap<String, String>,
    ) -> Result<HashMap<String, Secret>, ComponentError> {
        Ok(HashMap::from([(
            "db".to_owned(),
            HashMap::from([("db".to_owned(), "s3cret".to_owned())]),
        )]))
    }
}

#[tokio::test]
async fn secret_store_get_bulk_and_missing() {
    let running = Running::start("vault", |s| {
        s.service("vault", |s| s.secret_store(|| Vault))
    })
    .await;
    let mut client =
        pb::secret_store_client::SecretStoreClient::new(channel(&running.socket("vault")).await);
    client
        .init(to("v", pb::SecretStoreInitRequest::default()))
        .await
        .unwrap();
    let one = client
        .get(to(
            "v",
            pb::GetSecretRequest {
                key: "db".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.data["db"], "s3cret");
    let all = client
        .bulk_get(to("v", pb::BulkGetSecretRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.data["db"].secrets["db"], "s3cret");
    let missing = client
        .get(to(
            "v",
            pb::GetSecretRequest {
                key: "nope".into(),
                metadata: HashMap::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}
