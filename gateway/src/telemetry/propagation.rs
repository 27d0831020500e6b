//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP
//! headers, gRPC metadata, forwarded header lists and CloudEvents.
//!
//! `grpc-trace-bin` (the binary form some gRPC clients send) is not read:
//! apps that want their trace continued over gRPC send `traceparent`.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The W3C trace parent header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C trace state header.
pub const TRACESTATE: &str = "tracestate";

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct Pairs<'a>(&'a [(String, String)]);

impl Extractor for Pairs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

struct Map(HashMap<String, String>);

impl Injector for Map {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// The trace context in `headers` (an empty context when there is none or
/// it is malformed).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// The trace context in gRPC `metadata`.
pub fn extract_grpc(metadata: &tonic::metadata::MetadataMap) -> Context {
    extract_http(metadata.as_ref())
}

/// The trace context in a forwarded header list (names matched without case).
pub fn extract_pairs(headers: &[(String, String)]) -> Context {
    TraceContextPropagator::new().extract(&Pairs(headers))
}

/// The trace context of explicit `traceparent` / `tracestate` values.
pub fn extract_values(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    let mut pairs = Vec::new();
    if let Some(parent) = traceparent {
        pairs.push((TRACEPARENT.to_owned(), parent.to_owned()));
    }
    if let Some(state) = tracestate {
        pairs.push((TRACESTATE.to_owned(), state.to_owned()));
    }
    extract_pairs(&pairs)
}

/// `traceparent` and `tracestate` of `cx` (empty when it has no valid span).
pub fn headers_of(cx: &Context) -> HashMap<String, String> {
    let mut map = Map(HashMap::new());
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut map);
    }
    map.0
}

/// The `traceparent` of `cx`, if it has a valid span.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    headers_of(cx).remove(TRACEPARENT)
}

/// Write `cx` into `headers`, replacing any trace context already there.
pub fn inject_http(cx: &Context, headers: &mut http::HeaderMap) {
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut HeadersMut(headers));
    }
}

/// Write `cx` into gRPC `metadata`.
pub fn inject_grpc(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    inject_http(cx, metadata.as_mut());
}

/// Write the current context (see [`super::within`]) into gRPC `metadata`.
pub fn inject_current_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    inject_grpc(&Context::current(), metadata);
}

/// Replace the trace context in a forwarded header list with `cx`'s.
pub fn set_pairs(cx: &Context, headers: &mut Vec<(String, String)>) {
    let fresh = headers_of(cx);
    if fresh.is_empty() {
        return;
    }
    headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case(TRACEPARENT) && !k.eq_ignore_ascii_case(TRACESTATE)
    });
    headers.extend(fresh);
}

/// The trace context a CloudEvent carries (`traceparent`, else Dapr's
/// older `traceid`, and `tracestate`).
pub fn extract_event(event: &serde_json::Value) -> Context {
    let field = |name: &str| event.get(name).and_then(serde_json::Value::as_str);
    extract_values(
        field(TRACEPARENT).or_else(|| field("traceid")),
        field(TRACESTATE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn round_trips_through_every_carrier() {
        let cx = extract_values(Some(PARENT), Some("congo=t61rcWkgMzE"));
        assert_eq!(traceparent_of(&cx).as_deref(), Some(PARENT));

        let mut headers = http::HeaderMap::new();
        inject_http(&cx, &mut headers);
        assert_eq!(headers.get(TRACEPARENT).unwrap(), PARENT);
        assert_eq!(headers.get(TRACESTATE).unwrap(), "congo=t61rcWkgMzE");
        assert_eq!(
            traceparent_of(&extract_http(&headers)).as_deref(),
            Some(PARENT)
        );

        let mut metadata = tonic::metadata::MetadataMap::new();
        inject_grpc(&cx, &mut metadata);
        assert_eq!(
            traceparent_of(&extract_grpc(&metadata)).as_deref(),
            Some(PARENT)
        );

        let mut pairs = vec![
            ("Traceparent".to_owned(), "00-garbage".to_owned()),
            ("x-other".to_owned(), "1".to_owned()),
        ];
        assert!(traceparent_of(&extract_pairs(&pairs)).is_none());
        set_pairs(&cx, &mut pairs);
        assert_eq!(
            traceparent_of(&extract_pairs(&pairs)).as_deref(),
            Some(PARENT)
        );
        assert_eq!(pairs.len(), 3);

        let event = serde_json::json!({"traceid": PARENT});
        assert_eq!(
            traceparent_of(&extract_event(&event)).as_deref(),
            Some(PARENT)
        );
    }

    #[test]
    fn nothing_is_written_without_a_span() {
        let mut headers = http::HeaderMap::new();
        inject_http(&Context::new(), &mut headers);
        assert!(headers.is_empty());
        assert!(headers_of(&Context::new()).is_empty());
    }
}
