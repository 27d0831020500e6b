//! Spans of pub/sub: the publisher's gateway opens a producer span and
//! writes its context into the CloudEvent (`traceparent`, `traceid`,
//! `tracestate`); the subscriber's gateway continues that trace with a
//! consumer span per delivery and hands its context to the app.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

use super::Telemetry;
use super::propagation::{self, TRACESTATE};
use crate::runtime::pubsub::Message;

/// Open the producer span for publishing `message` to `topic` of `pubsub`
/// (child of the current context, else of the message's trace context) and
/// make the message carry it.
pub fn publish_span(
    telemetry: &Telemetry,
    pubsub: &str,
    topic: &str,
    message: &mut Message,
) -> Context {
    let parent = super::current_or(|| {
        propagation::extract_values(
            message.traceparent.as_deref(),
            message.tracestate.as_deref(),
        )
    });
    let cx = telemetry.start(SpanKind::Producer, &parent, || {
        (
            format!("publish/{pubsub}/{topic}").into(),
            vec![
                KeyValue::new("messaging.system", "dapr"),
                KeyValue::new("messaging.destination.name", topic.to_owned()),
                KeyValue::new("messaging.operation.type", "publish"),
            ],
        )
    });
    let mut fresh = propagation::headers_of(&cx);
    if let Some(parent) = fresh.remove(propagation::TRACEPARENT) {
        message.traceparent = Some(parent);
        message.tracestate = fresh.remove(TRACESTATE).or(message.tracestate.take());
    }
    cx
}

/// Open the consumer span for delivering `event` (a CloudEvent's JSON, or
/// anything else for a new trace) from `topic`.
pub fn deliver_span(telemetry: &Telemetry, topic: &str, event: &[u8]) -> Context {
    let parent = propagation::extract_event(event);
    telemetry.start(SpanKind::Consumer, &parent, || {
        (
            format!("deliver/{topic}").into(),
            vec![
                KeyValue::new("messaging.system", "dapr"),
                KeyValue::new("messaging.destination.name", topic.to_owned()),
                KeyValue::new("messaging.operation.type", "process"),
            ],
        )
    })
}
