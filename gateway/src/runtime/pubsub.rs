//! Publishing: the CloudEvents envelope and the component calls.
//!
//! A body becomes a CloudEvent 1.0 (built with the `cloudevents-sdk` crate)
//! unless it already is one (`application/cloudevents+json`, passed through
//! with `topic` and `pubsubname` overwritten and missing attributes filled)
//! or `metadata.rawPayload=true` (sent as is). JSON content types embed
//! `data` as JSON, binary ones as `data_base64`, anything else as a string.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cloudevents::{AttributesWriter, Data, Event, EventBuilder, EventBuilderV10};

use outrigger_proto::components as pb;

use super::{component, unreachable};
use crate::components::unary::methods;
use crate::components::{Component, Registry};
use crate::error::{ApiError, codes};
use crate::resources::Block;

/// Content type of a CloudEvent in structured mode.
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Something to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The body as the app sent it.
    pub data: Vec<u8>,
    /// Its content type (`text/plain` when absent).
    pub content_type: Option<String>,
    /// Request metadata (`rawPayload`, `ttlInSeconds`, `cloudevent.*`).
    pub metadata: HashMap<String, String>,
    /// W3C trace context of the request, if any.
    pub traceparent: Option<String>,
    /// W3C trace state.
    pub tracestate: Option<String>,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkEntry {
    /// Unique id within the request.
    pub entry_id: String,
    /// The entry.
    pub message: Message,
}

/// An entry that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Its id.
    pub entry_id: String,
    /// Why.
    pub error: String,
}

/// The publish API of one gateway.
#[derive(Debug, Clone)]
pub struct PubSubApi {
    registry: Arc<Registry>,
    app_id: String,
    telemetry: crate::telemetry::Telemetry,
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml")
}

fn new_traceparent() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{id}-{span}-01")
}

fn bad_metadata(message: String) -> ApiError {
    ApiError::new(codes::ERR_PUBSUB_REQUEST_METADATA, message)
}

// === impl PubSubApi ===

impl PubSubApi {
    /// Over `registry`, publishing as `app_id`.
    pub fn new(registry: Arc<Registry>, app_id: impl Into<String>) -> Self {
        Self {
            registry,
            app_id: app_id.into(),
            telemetry: crate::telemetry::Telemetry::disabled(),
        }
    }

    /// Trace publishing with `telemetry`.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    fn pubsub(&self, name: &str, topic: &str) -> Result<Arc<Component>, ApiError> {
        let found = component(
            &self.registry,
            Block::PubSub,
            name,
            codes::ERR_PUBSUB_NOT_CONFIGURED,
            codes::ERR_PUBSUB_NOT_FOUND,
        )?;
        if topic.is_empty() {
            return Err(ApiError::new(
                codes::ERR_TOPIC_NAME_EMPTY,
                format!("topic is empty in pubsub {name}"),
            ));
        }
        Ok(found)
    }

    /// The bytes to hand the component for `message`.
    pub fn envelope(
        &self,
        pubsub: &Component,
        topic: &str,
        message: &Message,
    ) -> Result<Vec<u8>, ApiError> {
        let meta = &message.metadata;
        if let Some(ttl) = meta.get("ttlInSeconds")
            && ttl.trim().parse::<i64>().is_err()
        {
            return Err(bad_metadata(format!(
                "metadata.ttlInSeconds: {ttl:?} is not a whole number"
            )));
        }
        let raw = match meta.get("rawPayload").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(bad_metadata(format!(
                    "metadata.rawPayload: {v:?} is not true or false"
                )));
            }
        };
        if raw {
            return Ok(message.data.clone());
        }
        let content_type = message
            .content_type
            .clone()
            .unwrap_or_else(|| "text/plain".to_owned());
        let traceparent = meta
            .get("cloudevent.traceparent")
            .or(meta.get("cloudevent.traceid"))
            .cloned()
            .or_else(|| message.traceparent.clone())
            .unwrap_or_else(new_traceparent);
        let tracestate = meta
            .get("cloudevent.tracestate")
            .cloned()
            .or_else(|| message.tracestate.clone());
        let mut event =
            if content_type.split(';').next().unwrap_or("").trim() == CLOUDEVENT_CONTENT_TYPE {
                self.existing_event(&message.data)?
            } else {
                let data = if is_json(&content_type) {
                    Data::Json(serde_json::from_slice(&message.data).map_err(|e| {
                        ApiError::new(
                            codes::ERR_PUBSUB_CLOUD_EVENTS_SER,
                            format!("body is not the JSON its content type says: {e}"),
                        )
                    })?)
                } else if is_text(&content_type) {
                    match String::from_utf8(message.data.clone()) {
                        Ok(text) => Data::String(text),
                        Err(_) => Data::Binary(message.data.clone()),
                    }
                } else {
                    Data::Binary(message.data.clone())
                };
                EventBuilderV10::new()
                    .id(uuid::Uuid::new_v4().to_string())
                    .source(self.app_id.clone())
                    .ty("com.dapr.event.sent")
                    .time(chrono::Utc::now())
                    .data(content_type.clone(), data)
                    .build()
                    .map_err(|e| ApiError::new(codes::ERR_PUBSUB_CLOUD_EVENTS_SER, e.to_string()))?
            };
        if let Some(id) = meta.get("cloudevent.id") {
            event.set_id(id.clone());
        }
        if let Some(source) = meta.get("cloudevent.source") {
            event.set_source(source.clone());
        }
        if let Some(ty) = meta.get("cloudevent.type") {
            event.set_type(ty.clone());
        }
        if let Some(subject) = meta.get("cloudevent.subject") {
            event.set_subject(Some(subject.clone()));
        }
        event.set_extension("topic", topic.to_owned());
        event.set_extension("pubsubname", pubsub.spec.name.clone());
        if event.extension("traceparent").is_none() {
            event.set_extension("traceparent", traceparent.clone());
            event.set_extension("traceid", traceparent);
        }
        if let Some(state) = tracestate
            && event.extension("tracestate").is_none()
        {
            event.set_extension("tracestate", state);
        }
        if let Some(ttl) = meta.get("ttlInSeconds")
            && !pubsub.has_feature("MESSAGE_TTL")
            && let Ok(seconds) = ttl.trim().parse::<i64>()
        {
            let expiration = chrono::Utc::now() + chrono::Duration::seconds(seconds);
            event.set_extension(
                "expiration",
                expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        serde_json::to_vec(&event)
            .map_err(|e| ApiError::new(codes::ERR_PUBSUB_CLOUD_EVENTS_SER, e.to_string()))
    }

    /// Parse a CloudEvent the app built, filling the attributes it left out.
    fn existing_event(&self, body: &[u8]) -> Result<Event, ApiError> {
        let invalid = |why: String| {
            ApiError::new(
                codes::ERR_PUBSUB_CLOUD_EVENTS_SER,
                format!("invalid CloudEvent: {why}"),
            )
        };
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let defaults = [
            (
                "id",
                serde_json::Value::String(uuid::Uuid::new_v4().to_string()),
            ),
            ("source", self.app_id.clone().into()),
            ("type", "com.dapr.event.sent".into()),
            ("specversion", "1.0".into()),
            ("time", chrono::Utc::now().to_rfc3339().into()),
        ];
        for (key, value) in defaults {
            object.entry(key).or_insert(value);
        }
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| invalid(e.to_string()))
    }

    /// Publish one message.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "pubsub", op = "publish", pubsub = name, topic))]
    pub async fn publish(
        &self,
        name: &str,
        topic: &str,
        mut message: Message,
    ) -> Result<(), ApiError> {
        let span =
            crate::telemetry::pubsub::publish_span(&self.telemetry, name, topic, &mut message);
        let published = crate::metrics::timed("pubsub", "publish", async {
            let pubsub = self.pubsub(name, topic)?;
            let data = self.envelope(&pubsub, topic, &message)?;
            let mut metadata = message.metadata;
            metadata.remove("rawPayload");
            let request = pb::PublishRequest {
                data,
                pubsub_name: name.to_owned(),
                topic: topic.to_owned(),
                metadata,
                content_type: String::new(),
            };
            let component = Arc::clone(&pubsub);
            crate::resiliency::outbound::call(pubsub.outbound_policy(), request, move |request| {
                let component = Arc::clone(&component);
                async move { component.call(&methods::PUBLISH, request).await }
            })
            .await
            .map(drop)
            .map_err(|s| ApiError::new(codes::ERR_PUBSUB_PUBLISH_MESSAGE, unreachable(&pubsub, &s)))
        });
        let result = crate::telemetry::within(span.clone(), published).await;
        match &result {
            Ok(()) => crate::telemetry::end(&span, None),
            Err(err) => crate::telemetry::fail(&span, &err.message),
        }
        result
    }

    /// Publish several messages; returns the entries that failed.
    #[tracing::instrument(level = "debug", skip_all, fields(block = "pubsub", op = "bulk_publish", pubsub = name, topic))]
    pub async fn bulk_publish(
        &self,
        name: &str,
        topic: &str,
        entries: Vec<BulkEntry>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<FailedEntry>, ApiError> {
        crate::metrics::timed("pubsub", "bulk_publish", async {
            let pubsub = self.pubsub(name, topic)?;
            let mut seen = HashSet::new();
            let mut wire = Vec::with_capacity(entries.len());
            for (i, entry) in entries.into_iter().enumerate() {
                if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.clone()) {
                    return Err(ApiError::new(
                        codes::ERR_PUBSUB_EVENTS_SER,
                        format!(
                            "entries[{i}].entryId: must be present and unique within the request"
                        ),
                    ));
                }
                let mut message = entry.message;
                for (k, v) in &metadata {
                    message
                        .metadata
                        .entry(k.clone())
                        .or_insert_with(|| v.clone());
                }
                let event = self.envelope(&pubsub, topic, &message)?;
                let raw = message
                    .metadata
                    .remove("rawPayload")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                wire.push(pb::BulkMessageEntry {
                    entry_id: entry.entry_id,
                    event,
                    content_type: if raw {
                        message.content_type.unwrap_or_default()
                    } else {
                        CLOUDEVENT_CONTENT_TYPE.to_owned()
                    },
                    metadata: message.metadata,
                });
            }
            let reply = pubsub
                .pubsub()
                .bulk_publish(pb::BulkPublishRequest {
                    entries: wire,
                    pubsub_name: name.to_owned(),
                    topic: topic.to_owned(),
                    metadata,
                })
                .await
                .map_err(|s| {
                    ApiError::new(codes::ERR_PUBSUB_PUBLISH_MESSAGE, unreachable(&pubsub, &s))
                })?
                .into_inner();
            Ok(reply
                .failed_entries
                .into_iter()
                .map(|f| FailedEntry {
                    entry_id: f.entry_id,
                    error: f.error,
                })
                .collect())
        })
        .await
    }
}
