//! Delivering subscribed messages to the app, at least once.
//!
//! Subscriptions come from the app (`GET /dapr/subscribe`) and from
//! `Subscription` resources. Each opens a `PullMessages` stream on its
//! pub/sub component with the app id as consumer group, POSTs every message
//! to its route as `application/cloudevents+json`, and answers the component
//! only after the app did: 2xx with status `SUCCESS` (or an empty or
//! unparsable body) acks; `RETRY`, an unknown status or any non-2xx but 404
//! nacks (the component delivers again); `DROP` and 404 ack, after
//! publishing to the dead-letter topic when one is set. Messages are
//! delivered concurrently (up to `MAX_IN_FLIGHT` per subscription), each
//! acked on its own success. A stream that ends is opened again with
//! back-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use outrigger_proto::components as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app_channel::{App, GrpcApp};
use crate::components::Registry;
use crate::resources::Block;

/// Deliveries to the app in flight per subscription.
pub const MAX_IN_FLIGHT: usize = 64;

mod definition;
#[cfg(test)]
mod tests;

pub use definition::*;

/// What the app's answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Processed: ack.
    Success,
    /// Deliver again: nack.
    Retry,
    /// Give up: ack (dead-letter first, if configured).
    Drop,
}

/// Dapr's HTTP subscriber rules.
pub fn verdict(status: u16, body: &[u8]) -> Verdict {
    match status {
        200..=299 => {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            match parsed
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(|s| s.as_str())
            {
                None | Some("") | Some("SUCCESS") => Verdict::Success,
                Some("DROP") => Verdict::Drop,
                Some(_) => Verdict::Retry,
            }
        }
        404 => Verdict::Drop,
        _ => Verdict::Retry,
    }
}

/// Everything deliveries to one app share.
#[derive(Debug, Clone)]
pub struct AppLink {
    /// The components.
    pub registry: Arc<Registry>,
    /// The app.
    pub app: App,
    /// Its id (the consumer group).
    pub app_id: String,
    /// `--app-max-concurrency`, when set.
    pub limit: Option<Arc<Semaphore>>,
    /// App health, when probed (`true` while healthy).
    pub health: Option<tokio::sync::watch::Receiver<bool>>,
    /// The gateway's tracer (deliveries continue the publisher's trace).
    pub telemetry: crate::telemetry::Telemetry,
}

/// Run `subscription` until `shutdown`, retrying the app per `retry`.
pub async fn deliver(
    link: AppLink,
    retry: Option<crate::resiliency::RetryPolicy>,
    subscription: Subscription,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = deliver_once(&link, &subscription, retry.as_ref(), &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => {
                tracing::info!(pubsub = %subscription.pubsub, topic = %subscription.topic, "subscription stream ended; reopening")
            }
            Err(why) => {
                tracing::warn!(pubsub = %subscription.pubsub, topic = %subscription.topic, reason = %why, "subscription failed; retrying")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn deliver_once(
    link: &AppLink,
    sub: &Subscription,
    retry: Option<&crate::resiliency::RetryPolicy>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let (app, app_id, app_limit) = (&link.app, link.app_id.as_str(), link.limit.as_ref());
    let mut health = link.health.clone();
    let component = link
        .registry
        .get(&sub.pubsub)
        .filter(|c| c.spec.block == Block::PubSub)
        .ok_or_else(|| format!("pubsub {} is not declared", sub.pubsub))?;
    component.ensure_ready()?;
    let mut metadata = sub.metadata.clone();
    metadata
        .entry("consumerID".into())
        .or_insert_with(|| app_id.to_owned());
    let (acks, rx) = mpsc::channel(MAX_IN_FLIGHT * 2);
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: sub.topic.clone(),
            metadata,
        }),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut stream = component
        .pubsub()
        .pull_messages(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("PullMessages: {}", s.message()))?
        .into_inner();
    tracing::info!(pubsub = %sub.pubsub, topic = %sub.topic, rules = sub.rules.len(), "delivering to the app");
    if let Some(config) = &sub.bulk {
        let bulk = super::bulk::BulkStream {
            link,
            app,
            sub,
            config,
            component: &component,
            acks,
        };
        return bulk.run(stream, shutdown).await;
    }
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let tracker = TaskTracker::new();
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            m = stream.next() => m,
        };
        let message = match message {
            None => break,
            Some(Err(status)) => return Err(format!("stream error: {}", status.message())),
            Some(Ok(m)) => m,
        };
        // An unhealthy app gets nothing until it recovers (the message waits here).
        if let Some(health) = health.as_mut() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                healthy = health.wait_for(|ok| *ok) => if healthy.is_err() { break },
            }
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        // `--app-max-concurrency` bounds deliveries across all subscriptions.
        let app_slot = match app_limit {
            Some(limit) => match Arc::clone(limit).acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => break,
            },
            None => None,
        };
        let retry = retry.cloned();
        let (app, acks, sub, component, stop) = (
            app.clone(),
            acks.clone(),
            sub.clone(),
            Arc::clone(&component),
            shutdown.clone(),
        );
        let telemetry = link.telemetry.clone();
        tracker.spawn(async move {
            let span =
                crate::telemetry::pubsub::deliver_span(&telemetry, &sub.topic, &message.data);
            let handled = handle(&app, &sub, retry.as_ref(), &component, &message);
            let outcome = crate::telemetry::within(span.clone(), handled).await;
            match &outcome {
                Ok(()) => crate::telemetry::end(&span, None),
                Err(why) => crate::telemetry::fail(&span, why),
            }
            drop(slot);
            drop(app_slot);
            // On shutdown nothing is answered, so nothing is acked by mistake.
            if stop.is_cancelled() {
                return;
            }
            let ack = pb::PullMessagesRequest {
                ack_message_id: message.id,
                ack_error: outcome.err().map(|message| pb::AckMessageError { message }),
                ..Default::default()
            };
            let _ = acks.send(ack).await;
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Deliver one message; `Ok` acks, `Err(reason)` nacks.
async fn handle(
    app: &App,
    sub: &Subscription,
    retry: Option<&crate::resiliency::RetryPolicy>,
    component: &crate::components::Component,
    m: &pb::PullMessagesResponse,
) -> Result<(), String> {
    let raw = sub
        .metadata
        .get("rawPayload")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let body = if raw {
        wrap_raw(sub, &m.data)?
    } else {
        m.data.clone()
    };
    if expired(&body) {
        tracing::debug!(topic = %sub.topic, "dropping an expired event");
        return Ok(());
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let Some(route) = route_for(sub, &event) else {
        tracing::debug!(topic = %sub.topic, "no route matches the event; dropping it");
        return Ok(());
    };
    // With an inbound retry policy (Resiliency), the gateway retries the app
    // itself; once retries run out the event goes to the dead-letter topic,
    // or back to the component when there is none.
    let mut attempt = 0u32;
    let answer = loop {
        let answer = match app {
            App::Http(http) => match http
                .call_with_headers(
                    "POST",
                    &route,
                    "application/cloudevents+json",
                    body.clone(),
                    &crate::telemetry::propagation::headers_of(&opentelemetry::Context::current()),
                )
                .await
            {
                Ok(reply) => verdict(reply.status, &reply.body),
                Err(why) => {
                    tracing::debug!(reason = %why, "delivery to the app failed");
                    Verdict::Retry
                }
            },
            App::Grpc(grpc) => grpc_verdict(grpc, sub, &route, &event).await,
        };
        let Some(policy) = retry.filter(|_| answer == Verdict::Retry) else {
            break answer;
        };
        attempt += 1;
        if policy.max_retries.is_some_and(|max| attempt > max) {
            break if sub.dead_letter_topic.is_some() {
                Verdict::Drop
            } else {
                Verdict::Retry
            };
        }
        tokio::time::sleep(policy.wait(attempt)).await;
    };
    match answer {
        Verdict::Success => Ok(()),
        Verdict::Retry => Err("the app asked for a retry".to_owned()),
        Verdict::Drop => {
            if let Some(dlq) = &sub.dead_letter_topic {
                component
                    .pubsub()
                    .publish(pb::PublishRequest {
                        data: m.data.clone(),
                        pubsub_name: sub.pubsub.clone(),
                        topic: dlq.clone(),
                        metadata: HashMap::new(),
                        content_type: String::new(),
                    })
                    .await
                    .map_err(|s| {
                        format!("publishing to dead-letter topic {dlq}: {}", s.message())
                    })?;
            }
            Ok(())
        }
    }
}

/// Deliver to a gRPC app with `OnTopicEvent`. `UNIMPLEMENTED` means the app
/// has no handler: ack (dropped), as daprd does; any other error retries.
async fn grpc_verdict(
    app: &GrpcApp,
    sub: &Subscription,
    route: &str,
    event: &serde_json::Value,
) -> Verdict {
    let request = topic_event_request(sub, route, event);
    match app.client().on_topic_event(app.request(request)).await {
        Ok(reply) => match reply.into_inner().status {
            0 => Verdict::Success,
            2 => Verdict::Drop,
            _ => Verdict::Retry,
        },
        Err(status) if status.code() == tonic::Code::Unimplemented => Verdict::Success,
        Err(status) => {
            tracing::debug!(%status, "the gRPC app failed the event; retrying");
            Verdict::Retry
        }
    }
}

/// A CloudEvent (as JSON) in the shape of the gRPC callback's request.
pub fn topic_event_request(
    sub: &Subscription,
    route: &str,
    event: &serde_json::Value,
) -> outrigger_proto::runtime::TopicEventRequest {
    use base64::Engine as _;
    let text = |k: &str| {
        event
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let data = match (
        event.get("data_base64").and_then(|v| v.as_str()),
        event.get("data"),
    ) {
        (Some(b64), _) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        (None, Some(serde_json::Value::String(s))) => s.clone().into_bytes(),
        (None, Some(serde_json::Value::Null) | None) => Vec::new(),
        (None, Some(other)) => serde_json::to_vec(other).unwrap_or_default(),
    };
    outrigger_proto::runtime::TopicEventRequest {
        id: text("id"),
        source: text("source"),
        r#type: text("type"),
        spec_version: text("specversion"),
        data_content_type: text("datacontenttype"),
        data,
        topic: sub.topic.clone(),
        pubsub_name: sub.pubsub.clone(),
        path: route.to_owned(),
        extensions: None,
    }
}

/// A raw-payload message, wrapped in a CloudEvent as daprd does: random id,
/// `application/octet-stream`, the bytes in `data_base64`.
fn wrap_raw(sub: &Subscription, data: &[u8]) -> Result<Vec<u8>, String> {
    use cloudevents::{EventBuilder, EventBuilderV10};
    let mut event = EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source(sub.pubsub.clone())
        .ty("com.dapr.event.sent")
        .data(
            "application/octet-stream",
            cloudevents::Data::Binary(data.to_vec()),
        )
        .build()
        .map_err(|e| e.to_string())?;
    cloudevents::AttributesWriter::set_source(&mut event, sub.pubsub.clone());
    event.set_extension("topic", sub.topic.clone());
    event.set_extension("pubsubname", sub.pubsub.clone());
    serde_json::to_vec(&event).map_err(|e| e.to_string())
}

fn expired(data: &[u8]) -> bool {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    event
        .get("expiration")
        .and_then(|e| e.as_str())
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
        .is_some_and(|at| at < chrono::Utc::now())
}
