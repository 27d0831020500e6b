//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP
//! headers, gRPC metadata, forwarded header lists and CloudEvents.
//!
//! gRPC metadata also carries `grpc-trace-bin`, the binary form daprd uses
//! on gRPC (OpenCensus layout: version 0, then field 0 = 16-byte trace id,
//! field 1 = 8-byte span id, field 2 = 1 byte of flags). It is read when
//! there is no `traceparent`, and written beside it.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The W3C trace parent header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C trace state header.
pub const TRACESTATE: &str = "tracestate";

/// The trace headers as header names: a lookup by `&str` first checks and
/// lowercases the name, ~300 instructions each time.
static TRACEPARENT_HEADER: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_HEADER: http::HeaderName = http::HeaderName::from_static(TRACESTATE);
static GRPC_TRACE_BIN_HEADER: http::HeaderName = http::HeaderName::from_static(GRPC_TRACE_BIN);

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            TRACEPARENT => self.0.get(&TRACEPARENT_HEADER),
            TRACESTATE => self.0.get(&TRACESTATE_HEADER),
            _ => self.0.get(key),
        };
        value.and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
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

/// The trace context in `headers` or gRPC metadata: `traceparent`, else
/// `grpc-trace-bin` (an empty context when there is none or it is malformed).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    let cx = extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        return cx;
    }
    use base64::Engine as _;
    headers
        .get(&GRPC_TRACE_BIN_HEADER)
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
    extract(&Pairs(headers))
}

/// The current context with the remote span `carrier`'s `traceparent` and
/// `tracestate` name, as the SDK's W3C propagator extracts it.
///
/// A `traceparent` in the form every tracer writes (version `00`, 55
/// characters, lowercase hex) is read here; anything else goes to the SDK's
/// propagator, so odd values get exactly its answer. Its parsing splits the
/// value into a vector and parses each part through `from_str_radix`: ~3 500
/// instructions, on every call a peer gateway sends (a test checks both
/// give the same context).
fn extract(carrier: &dyn Extractor) -> Context {
    let Some(value) = carrier.get(TRACEPARENT) else {
        return Context::current();
    };
    match canonical(value.as_bytes()) {
        Some((trace_id, span_id, flags)) => {
            let state = carrier
                .get(TRACESTATE)
                .map(|s| s.parse().unwrap_or_default())
                .unwrap_or_default();
            let sc = SpanContext::new(trace_id, span_id, flags, true, state);
            if sc.is_valid() {
                Context::current().with_remote_span_context(sc)
            } else {
                Context::current()
            }
        }
        None => TraceContextPropagator::new().extract(carrier),
    }
}

/// The ids and sampled flag of a `traceparent` of version `00` written as
/// the W3C specification spells it: `00-{32 hex}-{16 hex}-{2 hex}`, all
/// lowercase; `None` for any other shape.
fn canonical(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; N];
        if digits.len() != 2 * N {
            return None;
        }
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(out)
    }
    let [b'0', b'0', b'-', rest @ ..] = value else {
        return None;
    };
    if rest.len() != 52 || rest[32] != b'-' || rest[49] != b'-' {
        return None;
    }
    let trace: [u8; 16] = hex(&rest[..32])?;
    let span: [u8; 8] = hex(&rest[33..49])?;
    let [flags] = hex::<1>(&rest[50..])?;
    Some((
        TraceId::from_bytes(trace),
        SpanId::from_bytes(span),
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
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
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return HashMap::new();
    }
    HashMap::from([
        (TRACEPARENT.to_owned(), traceparent(sc)),
        (TRACESTATE.to_owned(), sc.trace_state().header()),
    ])
}

/// The `traceparent` of `cx`, if it has a valid span.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| traceparent(sc))
}

/// The W3C `traceparent` of `sc`: version 00, trace id, span id and the
/// sampled flag, in lowercase hex. Written here rather than through the
/// SDK's propagator: this runs on every component call, and the
/// propagator's `format!` of the ids cost ~2 400 instructions where this
/// costs ~200.
fn traceparent(sc: &SpanContext) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Written by index into a fixed array (no capacity check or UTF-8
    // encoding per character, as `String::push` does).
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, byte) in bytes.iter().enumerate() {
            out[at + 2 * i] = DIGITS[usize::from(byte >> 4)];
            out[at + 2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
    };
    put(3, &sc.trace_id().to_bytes());
    put(36, &sc.span_id().to_bytes());
    put(
        53,
        &[sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()],
    );
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Write `cx` into `headers`, replacing any trace context already there.
/// An empty `tracestate` is left out (W3C allows it; it saves a header on
/// every component call).
pub fn inject_http(cx: &Context, headers: &mut http::HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    // A trace context differs on every call: over HTTP/2, kept out of the
    // HPACK table, where it would only evict the entries that do repeat
    // (and make each lookup walk a chain of dead trace ids).
    let sensitive = |value: String| {
        http::HeaderValue::try_from(value).ok().map(|mut value| {
            value.set_sensitive(true);
            value
        })
    };
    if let Some(value) = sensitive(traceparent(sc)) {
        headers.insert(TRACEPARENT_HEADER.clone(), value);
    }
    let state = sc.trace_state().header();
    match sensitive(state).filter(|v| !v.is_empty()) {
        Some(value) => {
            headers.insert(TRACESTATE_HEADER.clone(), value);
        }
        None => {
            headers.remove(&TRACESTATE_HEADER);
        }
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

        // A forwarded call's headers: a malformed trace context is replaced.
        let mut forwarded = http::HeaderMap::new();
        forwarded.insert(TRACEPARENT, http::HeaderValue::from_static("00-garbage"));
        forwarded.insert("x-other", http::HeaderValue::from_static("1"));
        assert!(traceparent_of(&extract_http(&forwarded)).is_none());
        inject_http(&cx, &mut forwarded);
        assert_eq!(
            traceparent_of(&extract_http(&forwarded)).as_deref(),
            Some(PARENT)
        );
        assert_eq!(forwarded.len(), 3);
        assert_eq!(forwarded.get_all(TRACEPARENT).iter().count(), 1);

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

    #[test]
    fn traceparent_is_what_the_sdk_propagator_writes() {
        use opentelemetry::propagation::Injector;
        struct Sdk(HashMap<String, String>);
        impl Injector for Sdk {
            fn set(&mut self, key: &str, value: String) {
                self.0.insert(key.to_owned(), value);
            }
        }
        let unsampled = "00-00000000000000000000000000000001-00000000000000ff-00";
        for parent in [PARENT, unsampled] {
            let cx = extract_values(Some(parent), None);
            let mut sdk = Sdk(HashMap::new());
            TraceContextPropagator::new().inject_context(&cx, &mut sdk);
            assert_eq!(traceparent_of(&cx), sdk.0.remove(TRACEPARENT));
            assert_eq!(traceparent_of(&cx).as_deref(), Some(parent));
        }
    }

    /// Every `traceparent` shape, canonical or not, gets the context the
    /// SDK's propagator extracts.
    #[test]
    fn extraction_agrees_with_the_sdk_propagator() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        let values = [
            format!("00-{id}-{span}-01"),
            format!("00-{id}-{span}-00"),
            format!("00-{id}-{span}-03"),
            format!("00-{id}-{span}-ff"),
            format!("00-{id}-{span}-0g"),
            format!("00-{id}-{span}-1"),
            format!("00-{id}-{span}-01-"),
            format!("00-{id}-{span}-01-extra"),
            format!("01-{id}-{span}-01-extra"),
            format!("02-{id}-{span}-09"),
            format!("ff-{id}-{span}-01"),
            format!("00-{}-{span}-01", id.to_uppercase()),
            format!("00-{id}-{}-01", span.to_uppercase()),
            format!("00-{id}-{span}-A1"),
            format!(" 00-{id}-{span}-01 "),
            format!("00-{}-{span}-01", "0".repeat(32)),
            format!("00-{id}-{}-01", "0".repeat(16)),
            format!("00-{id}0-{span}-01"),
            format!("00-{id}-{span}0-01"),
            format!("00-{id}-{span}01"),
            format!("00_{id}-{span}-01"),
            String::from("00-ab-cd-01"),
            format!("00-{id}-{span}"),
            String::from("00-garbage"),
            String::new(),
        ];
        for value in &values {
            for state in [None, Some(""), Some("congo=t61rcWkgMzE"), Some("bad state")] {
                let mut pairs = vec![(TRACEPARENT.to_owned(), value.clone())];
                if let Some(state) = state {
                    pairs.push((TRACESTATE.to_owned(), state.to_owned()));
                }
                let ours = extract_pairs(&pairs);
                let sdk = TraceContextPropagator::new().extract(&Pairs(&pairs));
                assert_eq!(
                    ours.span().span_context(),
                    sdk.span().span_context(),
                    "{value:?} / {state:?}"
                );
            }
        }
        let canonical = extract_values(Some(&values[0]), None);
        assert!(canonical.span().span_context().is_sampled());
        assert!(canonical.span().span_context().is_remote());
    }

    #[test]
    fn an_empty_tracestate_replaces_an_old_one_by_leaving_it_out() {
        let mut headers = http::HeaderMap::new();
        inject_http(&extract_values(Some(PARENT), Some("a=1")), &mut headers);
        assert_eq!(headers.get(TRACESTATE).unwrap(), "a=1");
        assert!(headers.get(TRACEPARENT).unwrap().is_sensitive());
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        inject_http(&extract_values(Some(other), None), &mut headers);
        assert_eq!(headers.get(TRACEPARENT).unwrap(), other);
        assert!(headers.get(TRACESTATE).is_none());
        assert_eq!(headers.len(), 1);
    }
}
