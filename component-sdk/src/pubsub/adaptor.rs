//! The tonic `PubSub` service behind a [`PubSub`] component.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use outrigger_proto::components as pb;

use crate::ComponentError;
use crate::instance::Instances;
use crate::pubsub::*;
use crate::stream::{Answer, bridge};

/// Serves one socket's pub/sub instances.
#[derive(Clone)]
pub(crate) struct PubSubAdaptor {
    instances: Arc<Instances<dyn PubSub>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl PubSubAdaptor {
    pub(crate) fn new(
        instances: Instances<dyn PubSub>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            instances: Arc::new(instances),
            shutdown,
            tracker,
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl pb::pub_sub_server::PubSub for PubSubAdaptor {
    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "init", instance))]
    async fn init(
        &self,
        request: Request<pb::PubSubInitRequest>,
    ) -> Result<Response<pb::PubSubInitResponse>, Status> {
        let (headers, _, body) = request.into_parts();
        self.instances
            .init_call(
                &headers,
                body.metadata,
                |c, m| async move { c.init(m).await },
            )
            .await?;
        Ok(Response::new(pb::PubSubInitResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "features"))]
    async fn features(
        &self,
        request: Request<pb::FeaturesRequest>,
    ) -> Result<Response<pb::FeaturesResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let features = c
            .features()
            .into_iter()
            .map(|f| f.as_str().to_owned())
            .collect();
        Ok(Response::new(pb::FeaturesResponse { features }))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "publish", topic))]
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let req = request.into_inner();
        tracing::Span::current().record("topic", req.topic.as_str());
        if req.topic.is_empty() {
            return Err(ComponentError::invalid_argument("topic", "must not be empty").into());
        }
        c.publish(PublishRequest {
            data: req.data,
            pubsub_name: req.pubsub_name,
            topic: req.topic,
            metadata: req.metadata,
            content_type: non_empty(req.content_type),
        })
        .await?;
        Ok(Response::new(pb::PublishResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "bulk_publish", topic, count))]
    async fn bulk_publish(
        &self,
        request: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        let c = self.instances.get(request.metadata())?;
        let req = request.into_inner();
        let span = tracing::Span::current();
        span.record("topic", req.topic.as_str());
        span.record("count", req.entries.len());
        if req.topic.is_empty() {
            return Err(ComponentError::invalid_argument("topic", "must not be empty").into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in req.entries.iter().enumerate() {
            if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.as_str()) {
                return Err(ComponentError::invalid_argument(
                    format!("entries[{i}].entry_id"),
                    "must be present and unique within the request",
                )
                .into());
            }
        }
        let failed = c
            .bulk_publish(BulkPublishRequest {
                entries: req
                    .entries
                    .into_iter()
                    .map(|e| BulkEntry {
                        entry_id: e.entry_id,
                        event: e.event,
                        content_type: non_empty(e.content_type),
                        metadata: e.metadata,
                    })
                    .collect(),
                pubsub_name: req.pubsub_name,
                topic: req.topic,
                metadata: req.metadata,
            })
            .await?;
        Ok(Response::new(pb::BulkPublishResponse {
            failed_entries: failed
                .into_iter()
                .map(|f| pb::BulkPublishResponseFailedEntry {
                    entry_id: f.entry_id,
                    error: f.error,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "pull_messages", topic))]
    async fn pull_messages(
        &self,
        request: Request<Streaming<pb::PullMessagesRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::PullMessagesResponse>>, Status> {
        let c = self.instances.get(request.metadata())?;
        let mut inbound = request.into_inner();
        // The host's first message names the topic and nothing else.
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("topic: the stream closed before naming a topic")
        })?;
        let topic = first.topic.filter(|t| !t.name.is_empty()).ok_or_else(|| {
            ComponentError::invalid_argument("topic", "the first message must name the topic")
        })?;
        tracing::Span::current().record("topic", topic.name.as_str());
        let deliveries = c
            .subscribe(Topic {
                name: topic.name,
                metadata: topic.metadata,
            })
            .await?;
        let outbound = bridge(
            deliveries,
            inbound,
            |id, m: PulledMessage| pb::PullMessagesResponse {
                data: m.data,
                topic_name: m.topic,
                metadata: m.metadata,
                content_type: m.content_type.unwrap_or_default(),
                id,
            },
            |ack: pb::PullMessagesRequest| Answer {
                id: ack.ack_message_id,
                verdict: match ack.ack_error {
                    None => Ok(()),
                    Some(e) => Err(e.message),
                },
            },
            self.shutdown.clone(),
            &self.tracker,
        );
        Ok(Response::new(Box::pin(outbound)))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "pause"))]
    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::PauseResponse>, Status> {
        self.instances.get(request.metadata())?.pause().await?;
        Ok(Response::new(pb::PauseResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "resume"))]
    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        self.instances.get(request.metadata())?.resume().await?;
        Ok(Response::new(pb::ResumeResponse {}))
    }

    #[tracing::instrument(skip_all, fields(block = "pubsub", op = "ping"))]
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        self.instances.get(request.metadata())?.ping().await?;
        Ok(Response::new(pb::PingResponse {}))
    }
}
