//! `pubsub.azure.servicebus.topics`: a Dapr topic is a Service Bus topic;
//! each consumer group (`consumerID`) is a subscription on it.
//!
//! Publishing waits for the broker's 201, so an accepted publish is stored;
//! "server busy" answers are retried `publishMaxRetries` times with
//! exponential back-off from `publishInitialRetryIntervalInMs`. Topics and
//! subscriptions are created on first use unless `disableEntityManagement`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use azure_core::HttpClient;
use azure_messaging_servicebus::service_bus::TopicClient;
use outrigger_component_sdk::pubsub::*;
use outrigger_component_sdk::{ComponentError, Metadata, async_trait};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::entities::{Entities, Kind};
use crate::message::{Incoming, outgoing};
use crate::receiver::{Receiver, Recreate, Source};
use crate::send::send_with_retries;
use crate::settings::{Settings, TOPIC_KEYS, check_entity, check_keys, settings};

/// Longest topic path Service Bus accepts.
const MAX_TOPIC: usize = 260;
/// Longest subscription name Service Bus accepts.
const MAX_SUBSCRIPTION: usize = 50;

struct Open {
    http: Arc<dyn HttpClient>,
    settings: Settings,
    entities: Entities,
    /// `consumerID` from the component metadata, if any.
    consumer_id: Option<String>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

/// The topics pub/sub. Configure with `Init`.
pub struct Topics {
    http: Arc<dyn HttpClient>,
    open: OnceLock<Arc<Open>>,
}

impl Topics {
    /// A pub/sub whose requests go through `http`.
    pub fn new(http: Arc<dyn HttpClient>) -> Self {
        Self {
            http,
            open: OnceLock::new(),
        }
    }

    fn open(&self) -> Result<&Arc<Open>, ComponentError> {
        self.open
            .get()
            .ok_or_else(|| ComponentError::failed_precondition("Init has not been called"))
    }
}

impl Open {
    fn client(&self, topic: &str) -> Result<TopicClient, ComponentError> {
        let ns = &self.settings.namespace;
        TopicClient::new(
            self.http.clone(),
            &ns.name,
            topic,
            &ns.key_name,
            ns.key.clone(),
        )
        .map_err(|e| ComponentError::internal(format!("topic client for {topic}: {e}")))
    }

    /// Create `topic` once per process unless entity management is off.
    async fn ensure_topic(&self, topic: &str) -> Result<(), ComponentError> {
        let known = self
            .topics
            .lock()
            .map(|t| t.contains(topic))
            .unwrap_or(false);
        if known || !self.settings.manage_entities {
            return Ok(());
        }
        self.entities
            .ensure(Kind::Topic, topic, &self.settings.entity)
            .await?;
        if let Ok(mut topics) = self.topics.lock() {
            topics.insert(topic.to_owned());
        }
        Ok(())
    }

    async fn ensure_subscription(&self, topic: &str, group: &str) -> Result<(), ComponentError> {
        let path = format!("{topic}/subscriptions/{group}");
        if self.settings.manage_entities {
            self.ensure_topic(topic).await?;
            self.entities
                .ensure(Kind::Subscription, &path, &self.settings.entity)
                .await
        } else if self.entities.exists(Kind::Subscription, &path).await? {
            Ok(())
        } else {
            Err(ComponentError::not_found(format!(
                "subscription {group:?} (consumerID) of topic {topic:?} does not exist, and disableEntityManagement is true"
            )))
        }
    }
}

fn pulled(topic: String) -> impl Fn(Incoming) -> PulledMessage {
    move |m| PulledMessage {
        data: m.body,
        topic: topic.clone(),
        metadata: m.metadata,
        content_type: m.content_type,
    }
}

#[async_trait]
impl PubSub for Topics {
    #[tracing::instrument(skip_all, fields(component = "pubsub.azure.servicebus.topics"))]
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        check_keys(&metadata, TOPIC_KEYS)?;
        let settings = settings(&metadata)?;
        let consumer_id = metadata.get("consumerID").map(str::to_owned);
        if let Some(group) = &consumer_id {
            check_entity("consumerID", group, MAX_SUBSCRIPTION, false)?;
        }
        let entities = Entities::new(
            self.http.clone(),
            settings.namespace.clone(),
            settings.timeout,
        );
        let stop = CancellationToken::new();
        let open = Open {
            http: self.http.clone(),
            settings,
            entities,
            consumer_id,
            topics: Mutex::new(HashSet::new()),
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        };
        self.open.set(Arc::new(open)).map_err(|_| {
            ComponentError::failed_precondition("Init was already called on this instance")
        })
    }

    fn features(&self) -> Vec<PubSubFeature> {
        vec![PubSubFeature::MessageTtl]
    }

    #[tracing::instrument(skip_all, fields(topic = %request.topic))]
    async fn publish(&self, request: PublishRequest) -> Result<(), ComponentError> {
        let open = self.open()?;
        check_entity("topic", &request.topic, MAX_TOPIC, true)?;
        let message = outgoing(
            request.data,
            &request.metadata,
            request.content_type.as_deref(),
        )?;
        open.ensure_topic(&request.topic).await?;
        let sender = open.client(&request.topic)?.topic_sender();
        send_with_retries(
            &open.settings,
            &request.topic,
            "topic",
            message,
            |body, options| {
                let sender = sender.clone();
                async move { sender.send_message(&body, Some(options)).await }
            },
        )
        .await
        .inspect_err(|_| {
            // It may have been deleted: look it up again next time.
            if let Ok(mut topics) = open.topics.lock() {
                topics.remove(&request.topic);
            }
        })
    }

    #[tracing::instrument(skip_all, fields(topic = %topic.name))]
    async fn subscribe(&self, topic: Topic) -> Result<MessageStream, ComponentError> {
        let open = self.open()?.clone();
        check_entity("topic", &topic.name, MAX_TOPIC, true)?;
        let group = topic
            .metadata
            .get("consumerID")
            .filter(|g| !g.is_empty())
            .cloned()
            .or_else(|| open.consumer_id.clone())
            .ok_or_else(|| {
                ComponentError::invalid_argument(
                    "consumerID",
                    "no consumer group: set consumerID in the component or subscription metadata",
                )
            })?;
        check_entity("consumerID", &group, MAX_SUBSCRIPTION, false)?;
        open.ensure_subscription(&topic.name, &group).await?;
        let source = Source::Subscription(open.client(&topic.name)?.subscription_receiver(&group));
        let recreate: Option<Recreate> = open.settings.manage_entities.then(|| {
            let (open, name, group) = (open.clone(), topic.name.clone(), group.clone());
            Arc::new(move || {
                let (open, name, group) = (open.clone(), name.clone(), group.clone());
                Box::pin(async move {
                    if let Ok(mut topics) = open.topics.lock() {
                        topics.remove(&name);
                    }
                    open.ensure_subscription(&name, &group).await
                }) as futures::future::BoxFuture<'static, _>
            }) as Recreate
        });
        let (tx, rx) = mpsc::channel(1);
        let receiver = Receiver {
            source,
            entity: format!("{}/subscriptions/{group}", topic.name),
            settings: open.settings.clone(),
            recreate,
            stop: open.stop.child_token(),
            tx,
            wrap: Box::new(pulled(topic.name.clone())),
        };
        tokio::spawn(receiver.run());
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        self.open().map(drop)
    }
}
