//! The pub/sub building block: [`PubSub`] and its message types.
//!
//! Publishing is a plain call. Subscribing returns a [`DeliveryStream`] of
//! [`PulledMessage`]s; the host acks or nacks each one, and the component
//! learns the verdict from the [`crate::OutcomeReceiver`] it kept when it made
//! the [`crate::Delivery`]. A message whose stream closes before an answer
//! comes back as [`crate::Outcome::Abandoned`]: deliver it again.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{ComponentError, DeliveryStream, Metadata};

pub(crate) mod adaptor;

/// Capabilities a pub/sub component can advertise (Dapr's feature strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubSubFeature {
    /// Honours `ttlInSeconds` per message itself.
    MessageTtl,
    /// Topic names with wildcards in subscriptions.
    SubscribeWildcards,
    /// Native bulk publish and subscribe.
    BulkPubSub,
    /// Bulk subscribe delivering immediately.
    BulkSubscribeImmediate,
}

impl PubSubFeature {
    /// The wire name, e.g. `MESSAGE_TTL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageTtl => "MESSAGE_TTL",
            Self::SubscribeWildcards => "SUBSCRIBE_WILDCARDS",
            Self::BulkPubSub => "BULK_PUBSUB",
            Self::BulkSubscribeImmediate => "BULK_SUBSCRIBE_IMMEDIATE",
        }
    }
}

/// One message to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    /// The payload: usually a serialized CloudEvent, raw bytes with `rawPayload`.
    pub data: Vec<u8>,
    /// Name of the pub/sub component (YAML `metadata.name`).
    pub pubsub_name: String,
    /// Destination topic.
    pub topic: String,
    /// Message metadata (e.g. `ttlInSeconds`).
    pub metadata: HashMap<String, String>,
    /// Content type, when the host sends one (daprd does not).
    pub content_type: Option<String>,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkEntry {
    /// Caller-chosen id, unique within the request.
    pub entry_id: String,
    /// The payload.
    pub event: Vec<u8>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Per-entry metadata.
    pub metadata: HashMap<String, String>,
}

/// Several messages to one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkPublishRequest {
    /// The entries.
    pub entries: Vec<BulkEntry>,
    /// Name of the pub/sub component.
    pub pubsub_name: String,
    /// Destination topic.
    pub topic: String,
    /// Request-wide metadata.
    pub metadata: HashMap<String, String>,
}

/// An entry that could not be published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its `entry_id`.
    pub entry_id: String,
    /// Why.
    pub error: String,
}

/// What a subscription asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Subscription metadata (e.g. `consumerID`, the consumer group).
    pub metadata: HashMap<String, String>,
}

/// A message pulled from a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledMessage {
    /// The payload as published.
    pub data: Vec<u8>,
    /// The topic it came from.
    pub topic: String,
    /// Message metadata.
    pub metadata: HashMap<String, String>,
    /// Its content type, when known.
    pub content_type: Option<String>,
}

/// A subscription: pulled messages, each acked (`()`) or nacked by the host.
pub type MessageStream = DeliveryStream<PulledMessage, ()>;

/// A pub/sub component.
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Configure from component metadata. Called once per instance.
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError>;

    /// Capabilities this component offers.
    fn features(&self) -> Vec<PubSubFeature> {
        Vec::new()
    }

    /// Publish one message.
    async fn publish(&self, request: PublishRequest) -> Result<(), ComponentError>;

    /// Publish several messages; returns the entries that failed. The default
    /// publishes them one by one.
    async fn bulk_publish(
        &self,
        request: BulkPublishRequest,
    ) -> Result<Vec<FailedEntry>, ComponentError> {
        let mut failed = Vec::new();
        for entry in request.entries {
            let single = PublishRequest {
                data: entry.event,
                pubsub_name: request.pubsub_name.clone(),
                topic: request.topic.clone(),
                metadata: request
                    .metadata
                    .iter()
                    .chain(entry.metadata.iter())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                content_type: entry.content_type,
            };
            if let Err(err) = self.publish(single).await {
                failed.push(FailedEntry {
                    entry_id: entry.entry_id,
                    error: err.to_string(),
                });
            }
        }
        Ok(failed)
    }

    /// Start delivering messages of `topic`. The stream lives as long as the
    /// host keeps the subscription open.
    async fn subscribe(&self, topic: Topic) -> Result<MessageStream, ComponentError>;

    /// Stop handing out new messages until [`PubSub::resume`] (idempotent).
    async fn pause(&self) -> Result<(), ComponentError> {
        Err(ComponentError::unimplemented("pause"))
    }

    /// Resume after [`PubSub::pause`] (idempotent).
    async fn resume(&self) -> Result<(), ComponentError> {
        Err(ComponentError::unimplemented("resume"))
    }

    /// Liveness check of the backend.
    async fn ping(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}
