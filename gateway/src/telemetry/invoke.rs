//! Spans of service invocation: one on the caller's gateway around the
//! whole call, one on the callee's gateway around the call of its app. The
//! trace context travels in the forwarded headers (so an HTTP app sees
//! `traceparent`), in the peer call's gRPC metadata, and back to the caller
//! in the reply's `traceparent` header, as daprd returns it.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

use super::Telemetry;
use super::propagation::{self, TRACEPARENT};
use crate::error::ApiError;
use crate::runtime::invoke::{Call, Reply};

/// Open the caller's span for a call of `target` (child of the current
/// context, else of the app's `traceparent`) and put its context in the
/// call's headers.
pub fn caller_span(telemetry: &Telemetry, target: &str, call: &mut Call) -> Context {
    let parent = super::current_or(|| propagation::extract_http(&call.headers));
    let cx = telemetry.start(SpanKind::Client, &parent, || {
        (
            format!("invoke/{target}/{}", call.method).into(),
            vec![
                KeyValue::new("rpc.system", "dapr"),
                KeyValue::new("rpc.service", "ServiceInvocation"),
                KeyValue::new("rpc.method", call.method.clone()),
                KeyValue::new("peer.service", target.to_owned()),
                KeyValue::new("http.request.method", call.verb.clone()),
            ],
        )
    });
    propagation::inject_http(&cx, &mut call.headers);
    cx
}

/// Open the callee's span for a call a peer gateway sent, and hand its
/// context to the app. The parent is the current context, which the gRPC
/// listener extracted from the call's metadata (`Services::call`), else the
/// trace context in the forwarded headers.
pub fn callee_span(telemetry: &Telemetry, app_id: &str, call: &mut Call) -> Context {
    let parent = super::current_or(|| propagation::extract_http(&call.headers));
    let cx = telemetry.start(SpanKind::Server, &parent, || {
        (
            format!("CallLocal/{app_id}/{}", call.method).into(),
            vec![
                KeyValue::new("rpc.system", "dapr"),
                KeyValue::new("rpc.service", "ServiceInvocation"),
                KeyValue::new("rpc.method", call.method.clone()),
                KeyValue::new("http.request.method", call.verb.clone()),
            ],
        )
    });
    propagation::inject_http(&cx, &mut call.headers);
    cx
}

/// End the span in `cx` with the call's outcome; a reply carries the
/// span's `traceparent` back, so the caller can continue the trace.
///
/// # Errors
/// `result`'s error, unchanged.
pub fn finish(cx: &Context, result: Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    match result {
        Ok(mut reply) => {
            super::end(cx, Some(reply.status));
            if let Some(parent) = propagation::traceparent_of(cx)
                .and_then(|parent| http::HeaderValue::try_from(parent).ok())
            {
                reply
                    .headers
                    .insert(http::HeaderName::from_static(TRACEPARENT), parent);
            }
            Ok(reply)
        }
        Err(err) => {
            super::fail(cx, &err.message);
            Err(err)
        }
    }
}
