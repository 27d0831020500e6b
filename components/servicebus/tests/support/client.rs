//! A gRPC client of the component socket, as the gateway uses it: `Init`,
//! publish, subscribe with acks and nacks, and the two binding directions.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outrigger_proto::components as pb;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

/// One component instance on the socket.
#[derive(Clone)]
pub struct Component {
    channel: Channel,
    instance: AsciiMetadataValue,
}

fn properties(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Component {
    pub async fn connect(socket: &Path, instance: &str) -> Self {
        let socket = socket.to_path_buf();
        let channel =
            Endpoint::from_static("http://component.invalid")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?))
                    }
                }))
                .await
                .unwrap();
        Self {
            channel,
            instance: AsciiMetadataValue::try_from(instance).unwrap(),
        }
    }

    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert("x-component-instance", self.instance.clone());
        r
    }

    fn pubsub(&self) -> pb::pub_sub_client::PubSubClient<Channel> {
        pb::pub_sub_client::PubSubClient::new(self.channel.clone())
    }

    pub async fn init_pubsub(&self, metadata: &[(&str, &str)]) {
        let metadata = Some(pb::MetadataRequest {
            properties: properties(metadata),
        });
        self.pubsub()
            .init(self.req(pb::PubSubInitRequest { metadata }))
            .await
            .unwrap();
    }

    pub async fn publish(
        &self,
        topic: &str,
        data: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), tonic::Status> {
        let req = pb::PublishRequest {
            data: data.as_bytes().to_vec(),
            pubsub_name: "servicebus".into(),
            topic: topic.into(),
            metadata: properties(metadata),
            content_type: "text/plain".into(),
        };
        self.pubsub().publish(self.req(req)).await.map(drop)
    }

    pub async fn subscribe(&self, topic: &str, group: &str) -> Subscription {
        let (answers, rx) = mpsc::channel(64);
        let first = pb::PullMessagesRequest {
            topic: Some(pb::Topic {
                name: topic.into(),
                metadata: properties(&[("consumerID", group)]),
            }),
            ..Default::default()
        };
        answers.send(first).await.unwrap();
        let messages = self
            .pubsub()
            .pull_messages(self.req(ReceiverStream::new(rx)))
            .await
            .unwrap()
            .into_inner();
        Subscription { answers, messages }
    }

    pub async fn init_output(&self, metadata: &[(&str, &str)]) -> Result<(), tonic::Status> {
        let metadata = Some(pb::MetadataRequest {
            properties: properties(metadata),
        });
        pb::output_binding_client::OutputBindingClient::new(self.channel.clone())
            .init(self.req(pb::OutputBindingInitRequest { metadata }))
            .await
            .map(drop)
    }

    pub async fn init_input(&self, metadata: &[(&str, &str)]) -> Result<(), tonic::Status> {
        let metadata = Some(pb::MetadataRequest {
            properties: properties(metadata),
        });
        pb::input_binding_client::InputBindingClient::new(self.channel.clone())
            .init(self.req(pb::InputBindingInitRequest { metadata }))
            .await
            .map(drop)
    }

    pub async fn create(&self, data: &str, metadata: &[(&str, &str)]) -> Result<(), tonic::Status> {
        let req = pb::InvokeRequest {
            data: data.as_bytes().to_vec(),
            metadata: properties(metadata),
            operation: "create".into(),
        };
        pb::output_binding_client::OutputBindingClient::new(self.channel.clone())
            .invoke(self.req(req))
            .await
            .map(drop)
    }

    pub async fn read(&self) -> Events {
        let (answers, rx) = mpsc::channel(64);
        let events = pb::input_binding_client::InputBindingClient::new(self.channel.clone())
            .read(self.req(ReceiverStream::new(rx)))
            .await
            .unwrap()
            .into_inner();
        Events { answers, events }
    }
}

/// An open subscription.
pub struct Subscription {
    answers: mpsc::Sender<pb::PullMessagesRequest>,
    messages: Streaming<pb::PullMessagesResponse>,
}

impl Subscription {
    /// The next message within `wait`, or `None`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<pb::PullMessagesResponse> {
        match tokio::time::timeout(wait, self.messages.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(s))) => panic!("subscription failed: {s:?}"),
            Ok(None) => panic!("the component closed the subscription"),
            Err(_) => None,
        }
    }

    /// The next message; fails the test after 10 s.
    pub async fn next(&mut self) -> pb::PullMessagesResponse {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("no message within 10 s")
    }

    pub async fn ack(&self, m: &pb::PullMessagesResponse) {
        let ack = pb::PullMessagesRequest {
            ack_message_id: m.id.clone(),
            ..Default::default()
        };
        self.answers.send(ack).await.unwrap();
    }

    pub async fn nack(&self, m: &pb::PullMessagesResponse) {
        let nack = pb::PullMessagesRequest {
            ack_message_id: m.id.clone(),
            ack_error: Some(pb::AckMessageError {
                message: "test: handler failed".into(),
            }),
            ..Default::default()
        };
        self.answers.send(nack).await.unwrap();
    }
}

/// An open input-binding read.
pub struct Events {
    answers: mpsc::Sender<pb::ReadRequest>,
    events: Streaming<pb::ReadResponse>,
}

impl Events {
    pub async fn next_within(&mut self, wait: Duration) -> Option<pb::ReadResponse> {
        match tokio::time::timeout(wait, self.events.next()).await {
            Ok(Some(Ok(e))) => Some(e),
            Ok(Some(Err(s))) => panic!("read failed: {s:?}"),
            Ok(None) => panic!("the component closed the read stream"),
            Err(_) => None,
        }
    }

    pub async fn next(&mut self) -> pb::ReadResponse {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("no event within 10 s")
    }

    pub async fn ack(&self, e: &pb::ReadResponse) {
        let ack = pb::ReadRequest {
            response_data: b"ok".to_vec(),
            message_id: e.message_id.clone(),
            response_error: None,
        };
        self.answers.send(ack).await.unwrap();
    }

    pub async fn nack(&self, e: &pb::ReadResponse) {
        let nack = pb::ReadRequest {
            response_data: Vec::new(),
            message_id: e.message_id.clone(),
            response_error: Some(pb::AckResponseError {
                message: "test: app failed".into(),
            }),
        };
        self.answers.send(nack).await.unwrap();
    }
}
