//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP
//! headers, gRPC metadata, forwarded header lists and CloudEvents.
//!
//! gRPC metadata also carries `grpc-trace-bin`, the binary form daprd uses
//! on gRPC (OpenCensus layout: version 0, then field 0 = 16-byte trace id,
//! field 1 = 8-byte span id, field 2 = 1 byte of flags). It is read when
//! there is no `traceparent`, and written beside it.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
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
        if let (Ok(name), Ok(mut value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            // A trace context differs on every call: over HTTP/2, kept out of
            // the HPACK table, where it would only evict the entries that do
            // repeat (and make each lookup walk a chain of dead trace ids).
            value.set_sensitive(true);
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

/// The trace context in `headers` or gRPC metadata: `traceparent`, else
/// `grpc-trace-bin` (an empty context when there is none or it is malformed).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        return cx;
    }
    use base64::Engine as _;
    headers
        .get(GRPC_TRACE_BIN)
        .and_then(|v| {
            // gRPC sends binary metadata base64-encoded, padding optional.
            let text = v.to_str().ok()?.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .ok()
        })
        .and_then(|bytes| from_binary(&bytes))
        .map_or(cx, |sc| Context::new().with_remote_span_context(sc))
}

/// The binary trace context header of gRPC.
pub const GRPC_TRACE_BIN: &str = "grpc-trace-bin";

/// The trace context in gRPC `metadata` (see [`extract_http`]).
pub fn extract_grpc(metadata: &tonic::metadata::MetadataMap) -> Context {
    extract_http(metadata.as_ref())
}

fn from_binary(bytes: &[u8]) -> Option<SpanContext> {
    // version, then (field id, value) pairs in order.
    match bytes {
        [0, 0, rest @ ..] if rest.len() >= 16 + 1 + 8 => {
            let trace: [u8; 16] = rest[..16].try_into().ok()?;
            let rest = &rest[16..];
            if rest[0] != 1 {
                return None;
            }
            let span: [u8; 8] = rest[1..9].try_into().ok()?;
            let flags = match &rest[9..] {
                [2, flags, ..] => *flags,
                _ => 0,
            };
            let sc = SpanContext::new(
                TraceId::from_bytes(trace),
                SpanId::from_bytes(span),
                TraceFlags::new(flags & 1),
                true,
                TraceState::default(),
            );
            sc.is_valid().then_some(sc)
        }
        _ => None,
    }
}

fn to_binary(sc: &SpanContext) -> Vec<u8> {
    let mut out = Vec::with_capacity(29);
    out.extend([0, 0]);
    out.extend(sc.trace_id().to_bytes());
    out.push(1);
    out.extend(sc.span_id().to_bytes());
    out.extend([2, sc.trace_flags().to_u8()]);
    out
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

/// Write `cx` into gRPC `metadata` (`traceparent`, `tracestate` and
/// `grpc-trace-bin`).
pub fn inject_grpc(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    inject_http(cx, metadata.as_mut());
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        metadata.insert_bin(
            GRPC_TRACE_BIN,
            tonic::metadata::BinaryMetadataValue::from_bytes(&to_binary(sc)),
        );
    }
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

/// The trace context a CloudEvent (JSON bytes) carries: `traceparent`,
/// else Dapr's older `traceid`, and `tracestate`. Only these fields are
/// decoded; anything that is not such an event gives an empty context.
pub fn extract_event(event: &[u8]) -> Context {
    #[derive(serde::Deserialize)]
    struct Fields {
        traceparent: Option<String>,
        traceid: Option<String>,
        tracestate: Option<String>,
    }
    match serde_json::from_slice::<Fields>(event) {
        Ok(f) => extract_values(
            f.traceparent.as_deref().or(f.traceid.as_deref()),
            f.tracestate.as_deref(),
        ),
        Err(_) => Context::new(),
    }
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

        let event = format!(r#"{{"data":{{"a":[1]}},"traceid":"{PARENT}"}}"#);
        assert_eq!(
            traceparent_of(&extract_event(event.as_bytes())).as_deref(),
            Some(PARENT)
        );
        assert!(traceparent_of(&extract_event(b"\x00raw")).is_none());
    }

    #[test]
    fn grpc_trace_bin_is_read_and_written() {
        let cx = extract_values(Some(PARENT), None);
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject_grpc(&cx, &mut metadata);
        let bin = metadata
            .get_bin(GRPC_TRACE_BIN)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(bin.len(), 29);
        assert_eq!(
            &bin[2..18],
            &[
                0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
                0x31, 0x9c
            ]
        );
        // Only the binary form: still the same trace and parent span.
        metadata.remove(TRACEPARENT);
        assert_eq!(
            traceparent_of(&extract_grpc(&metadata)).as_deref(),
            Some(PARENT)
        );
        // Garbage is ignored.
        let mut bad = tonic::metadata::MetadataMap::new();
        bad.insert_bin(
            GRPC_TRACE_BIN,
            tonic::metadata::BinaryMetadataValue::from_bytes(&[0, 0, 1, 2]),
        );
        assert!(traceparent_of(&extract_grpc(&bad)).is_none());
    }

    #[test]
    fn nothing_is_written_without_a_span() {
        let mut headers = http::HeaderMap::new();
        inject_http(&Context::new(), &mut headers);
        assert!(headers.is_empty());
        assert!(headers_of(&Context::new()).is_empty());
    }
}
