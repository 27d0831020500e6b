//! Bulk subscriptions: messages delivered to an HTTP app in batches.
//!
//! A batch closes at `maxMessagesCount` messages or `maxAwaitDurationMs`
//! after its first one. The app receives one POST
//! `{"id","type":"com.dapr.event.sent.bulk","topic","pubsubname","metadata","entries":[{"entryId","event","contentType","metadata"}]}`
//! and answers `{"statuses":[{"entryId","status"}]}`; each entry is then
//! acked (SUCCESS), nacked (RETRY, or no status given) or dead-lettered and
//! acked (DROP). A non-2xx answer retries the whole batch; 404 drops it.

use std::collections::HashMap;

use outrigger_proto::components as pb;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::subscribe::{AppLink, BulkSubscribe, Subscription, Verdict, route_for};
use crate::app_channel::App;
use crate::components::Component;

/// Everything one bulk subscription stream needs.
pub(crate) struct BulkStream<'a> {
    pub(crate) link: &'a AppLink,
    pub(crate) app: &'a App,
    pub(crate) sub: &'a Subscription,
    pub(crate) config: &'a BulkSubscribe,
    pub(crate) component: &'a Component,
    pub(crate) acks: mpsc::Sender<pb::PullMessagesRequest>,
}

impl BulkStream<'_> {
    /// Deliver batches until the stream ends or `shutdown`.
    pub(crate) async fn run(
        self,
        mut stream: tonic::Streaming<pb::PullMessagesResponse>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let mut health = self.link.health.clone();
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                m = stream.next() => m,
            };
            let Some(first) = first.transpose().map_err(|s| s.message().to_owned())? else {
                return Ok(());
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.config.max_await;
            while batch.len() < self.config.max_messages {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    m = stream.next() => match m {
                        Some(Ok(m)) => batch.push(m),
                        Some(Err(s)) => return Err(s.message().to_owned()),
                        None => break,
                    },
                }
            }
            if let Some(health) = health.as_mut() {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    healthy = health.wait_for(|ok| *ok) => if healthy.is_err() { return Ok(()) },
                }
            }
            let verdicts = self.deliver(&batch).await;
            if shutdown.is_cancelled() {
                return Ok(());
            }
            for (m, verdict) in batch.into_iter().zip(verdicts) {
                let ack_error = self.settle(&m, verdict).await;
                let ack = pb::PullMessagesRequest {
                    ack_message_id: m.id,
                    ack_error,
                    ..Default::default()
                };
                self.acks.send(ack).await.map_err(|e| e.to_string())?;
            }
        }
    }

    /// POST one batch; a verdict per message, in order.
    async fn deliver(&self, batch: &[pb::PullMessagesResponse]) -> Vec<Verdict> {
        let events: Vec<serde_json::Value> = batch
            .iter()
            .map(|m| {
                serde_json::from_slice(&m.data).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&m.data).into_owned())
                })
            })
            .collect();
        let route = route_for(self.sub, &events[0]).unwrap_or_default();
        let http = match self.app {
            App::Http(http) => http,
            App::Grpc(grpc) => return self.deliver_grpc(grpc, batch, &events, &route).await,
        };
        let entries: Vec<serde_json::Value> = batch
            .iter()
            .zip(&events)
            .map(|(m, event)| {
                serde_json::json!({"entryId": m.id, "event": event, "contentType": "application/cloudevents+json", "metadata": m.metadata})
            })
            .collect();
        let body = serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "com.dapr.event.sent.bulk",
            "topic": self.sub.topic,
            "pubsubname": self.sub.pubsub,
            "metadata": {},
            "entries": entries,
        });
        let reply = http
            .call(
                "POST",
                &route,
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await;
        let all = |v: Verdict| vec![v; batch.len()];
        let reply = match reply {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(reason = %why, "bulk delivery failed");
                return all(Verdict::Retry);
            }
        };
        match reply.status {
            404 => all(Verdict::Drop),
            200..=299 => {
                let parsed: serde_json::Value =
                    serde_json::from_slice(&reply.body).unwrap_or_default();
                let statuses: HashMap<String, String> = parsed["statuses"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|s| {
                                Some((
                                    s["entryId"].as_str()?.to_owned(),
                                    s["status"].as_str().unwrap_or("").to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                batch
                    .iter()
                    .map(|m| match statuses.get(&m.id).map(String::as_str) {
                        Some("SUCCESS") => Verdict::Success,
                        Some("DROP") => Verdict::Drop,
                        _ => Verdict::Retry,
                    })
                    .collect()
            }
            _ => all(Verdict::Retry),
        }
    }

    /// A batch to a gRPC app with `OnBulkTopicEvent`; an app without it
    /// (`UNIMPLEMENTED`) gets everything back for redelivery, with a warning.
    async fn deliver_grpc(
        &self,
        grpc: &crate::app_channel::GrpcApp,
        batch: &[pb::PullMessagesResponse],
        events: &[serde_json::Value],
        route: &str,
    ) -> Vec<Verdict> {
        use outrigger_proto::runtime as rt;
        let entries = batch
            .iter()
            .zip(events)
            .map(|(m, event)| {
                let e = super::subscribe::topic_event_request(self.sub, route, event);
                rt::TopicEventBulkRequestEntry {
                    entry_id: m.id.clone(),
                    content_type: "application/cloudevents+json".into(),
                    metadata: m.metadata.clone(),
                    event: Some(rt::topic_event_bulk_request_entry::Event::CloudEvent(
                        rt::TopicEventCeRequest {
                            id: e.id,
                            source: e.source,
                            r#type: e.r#type,
                            spec_version: e.spec_version,
                            data_content_type: e.data_content_type,
                            data: e.data,
                            extensions: None,
                        },
                    )),
                }
            })
            .collect();
        let request = rt::TopicEventBulkRequest {
            id: uuid::Uuid::new_v4().to_string(),
            entries,
            metadata: HashMap::new(),
            topic: self.sub.topic.clone(),
            pubsub_name: self.sub.pubsub.clone(),
            r#type: "com.dapr.event.sent.bulk".into(),
            path: route.to_owned(),
        };
        match grpc
            .client()
            .on_bulk_topic_event(grpc.request(request))
            .await
        {
            Ok(reply) => {
                let statuses: HashMap<String, i32> = reply
                    .into_inner()
                    .statuses
                    .into_iter()
                    .map(|s| (s.entry_id, s.status))
                    .collect();
                batch
                    .iter()
                    .map(|m| match statuses.get(&m.id) {
                        Some(0) => Verdict::Success,
                        Some(2) => Verdict::Drop,
                        _ => Verdict::Retry,
                    })
                    .collect()
            }
            Err(status) => {
                tracing::warn!(%status, "bulk delivery to the gRPC app failed");
                vec![Verdict::Retry; batch.len()]
            }
        }
    }

    /// The ack error for `verdict` (none means ack), dead-lettering drops.
    async fn settle(
        &self,
        m: &pb::PullMessagesResponse,
        verdict: Verdict,
    ) -> Option<pb::AckMessageError> {
        match verdict {
            Verdict::Success => None,
            Verdict::Retry => Some(pb::AckMessageError {
                message: "the app asked for a retry".into(),
            }),
            Verdict::Drop => {
                let dlq = self.sub.dead_letter_topic.as_ref()?;
                let publish = pb::PublishRequest {
                    data: m.data.clone(),
                    pubsub_name: self.sub.pubsub.clone(),
                    topic: dlq.clone(),
                    ..Default::default()
                };
                self.component
                    .pubsub()
                    .publish(publish)
                    .await
                    .err()
                    .map(|s| pb::AckMessageError {
                        message: format!("dead-lettering failed: {}", s.message()),
                    })
            }
        }
    }
}
