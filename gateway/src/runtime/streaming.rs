//! Streaming subscriptions (`SubscribeTopicEventsAlpha1`): the app holds a
//! gRPC stream, receives events and answers each one.

use std::collections::HashMap;
use std::sync::Arc;

use outrigger_proto::components as pb;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::subscribe::{MAX_IN_FLIGHT, Subscription, Verdict, topic_event_request};
use crate::components::Registry;
use crate::resources::Block;

/// An app's answer to one streamed event: its CloudEvent id and verdict.
pub type Processed = (String, Verdict);

/// Open a streaming subscription for the app itself: events come out of the
/// returned receiver; answers go into the returned sender. Each component
/// message is acked only when its answer says SUCCESS or DROP (dead-lettered
/// first when a topic is set); RETRY nacks; messages left unanswered when the
/// app's stream ends are never acked, so they are delivered again.
///
/// # Errors
/// An unknown or not-ready pub/sub, or a component refusing the subscription.
pub async fn open_stream(
    registry: Arc<Registry>,
    app_id: String,
    sub: Subscription,
) -> Result<
    (
        mpsc::Receiver<outrigger_proto::runtime::TopicEventRequest>,
        mpsc::Sender<Processed>,
    ),
    crate::error::ApiError,
> {
    use crate::error::{ApiError, codes};
    let component = super::component(
        &registry,
        Block::PubSub,
        &sub.pubsub,
        codes::ERR_PUBSUB_NOT_CONFIGURED,
        codes::ERR_PUBSUB_NOT_FOUND,
    )?;
    if sub.topic.is_empty() {
        return Err(ApiError::new(
            codes::ERR_TOPIC_NAME_EMPTY,
            format!("topic is empty in pubsub {}", sub.pubsub),
        ));
    }
    let mut metadata = sub.metadata.clone();
    metadata
        .entry("consumerID".into())
        .or_insert_with(|| app_id.clone());
    let (acks, rx) = mpsc::channel(MAX_IN_FLIGHT * 2);
    let first = pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: sub.topic.clone(),
            metadata,
        }),
        ..Default::default()
    };
    acks.send(first)
        .await
        .map_err(|e| ApiError::new(codes::ERR_PUBSUB_PUBLISH_MESSAGE, e.to_string()))?;
    let mut messages = component
        .pubsub()
        .pull_messages(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| {
            ApiError::new(
                codes::ERR_PUBSUB_PUBLISH_MESSAGE,
                super::unreachable(&component, &s),
            )
        })?
        .into_inner();
    let (events_tx, events_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let (answers_tx, mut answers_rx) = mpsc::channel::<Processed>(MAX_IN_FLIGHT);
    tokio::spawn(async move {
        // CloudEvent id → the component's message id and bytes (for dead-lettering).
        let mut pending: HashMap<String, (String, Vec<u8>)> = HashMap::new();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(Ok(m)) = message else { return };
                    let event: serde_json::Value = serde_json::from_slice(&m.data).unwrap_or(serde_json::Value::Null);
                    let request = topic_event_request(&sub, "", &event);
                    let id = if request.id.is_empty() { m.id.clone() } else { request.id.clone() };
                    let request = outrigger_proto::runtime::TopicEventRequest { id: id.clone(), ..request };
                    pending.insert(id, (m.id, m.data));
                    if events_tx.send(request).await.is_err() {
                        return;
                    }
                }
                answer = answers_rx.recv() => {
                    let Some((id, verdict)) = answer else { return };
                    let Some((message_id, data)) = pending.remove(&id) else {
                        tracing::warn!(%id, "answer for an unknown event");
                        continue;
                    };
                    let mut ack_error = None;
                    match verdict {
                        Verdict::Success => {}
                        Verdict::Retry => ack_error = Some(pb::AckMessageError { message: "the app asked for a retry".into() }),
                        Verdict::Drop => {
                            if let Some(dlq) = &sub.dead_letter_topic {
                                let publish = pb::PublishRequest { data, pubsub_name: sub.pubsub.clone(), topic: dlq.clone(), ..Default::default() };
                                if let Err(status) = component.pubsub().publish(publish).await {
                                    ack_error = Some(pb::AckMessageError { message: format!("dead-lettering failed: {}", status.message()) });
                                }
                            }
                        }
                    }
                    let ack = pb::PullMessagesRequest { ack_message_id: message_id, ack_error, ..Default::default() };
                    if acks.send(ack).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok((events_rx, answers_tx))
}
