use super::*;

fn settings(yaml: &str) -> Result<TracingSettings, TelemetryError> {
    TracingSettings::from_spec(&serde_yaml_ng::from_str(yaml).unwrap())
}

#[test]
fn defaults_follow_dapr() {
    assert_eq!(settings("{}").unwrap(), TracingSettings::default());
    assert_eq!(
        settings("tracing: {}").unwrap().sampling_rate,
        DEFAULT_SAMPLING_RATE
    );
}

#[test]
fn reads_rate_and_otel() {
    let s = settings(
        "tracing:\n  samplingRate: \"1\"\n  otel:\n    endpointAddress: localhost:4317\n    isSecure: false\n    protocol: grpc\n",
    )
    .unwrap();
    assert_eq!(s.sampling_rate, 1.0);
    assert_eq!(
        s.otlp,
        Some(OtlpSettings {
            endpoint: "localhost:4317".into(),
            protocol: OtlpProtocol::Grpc
        })
    );
    let s = settings(
        "tracing:\n  samplingRate: \"0.5\"\n  otel: {endpointAddress: \"localhost:4318\", protocol: http}\n",
    )
    .unwrap();
    assert_eq!(s.sampling_rate, 0.5);
    assert_eq!(s.otlp.map(|o| o.protocol), Some(OtlpProtocol::Http));
    assert_eq!(
        settings("tracing: {samplingRate: 1}")
            .unwrap()
            .sampling_rate,
        1.0
    );
}

#[test]
fn bad_settings_name_the_field() {
    for (yaml, field) in [
        (
            "tracing: {samplingRate: \"lots\"}",
            "spec.tracing.samplingRate",
        ),
        (
            "tracing: {samplingRate: \"1.5\"}",
            "spec.tracing.samplingRate",
        ),
        (
            "tracing: {samplingRate: \"-0.1\"}",
            "spec.tracing.samplingRate",
        ),
        (
            "tracing: {otel: {endpointAddress: x, protocol: zipkin}}",
            "spec.tracing.otel.protocol",
        ),
        (
            "tracing: {otel: {endpointAddress: x, isSecure: true}}",
            "spec.tracing.otel.isSecure",
        ),
        (
            "tracing: {otel: {endpointAddress: [x]}}",
            "spec.tracing.otel.endpointAddress",
        ),
    ] {
        let err = settings(yaml).unwrap_err().to_string();
        assert!(err.starts_with(field), "{yaml}: {err}");
    }
}

#[test]
fn rate_zero_passes_the_parent_through() {
    let telemetry = Telemetry::new(
        &TracingSettings {
            sampling_rate: 0.0,
            otlp: None,
        },
        "app",
    )
    .unwrap();
    let parent = propagation::extract_values(
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        None,
    );
    let cx = telemetry.start(SpanKind::Server, &parent, || ("x".into(), Vec::new()));
    assert_eq!(
        propagation::traceparent_of(&cx),
        propagation::traceparent_of(&parent)
    );
}

#[test]
fn a_span_continues_the_parent_trace() {
    let telemetry = Telemetry::new(
        &TracingSettings {
            sampling_rate: 1.0,
            otlp: None,
        },
        "app",
    )
    .unwrap();
    let parent = propagation::extract_values(
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        None,
    );
    let cx = telemetry.start(SpanKind::Server, &parent, || ("x".into(), Vec::new()));
    let child = propagation::traceparent_of(&cx).unwrap();
    assert!(child.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
    assert!(!child.contains("b7ad6b7169203331"));
    assert!(child.ends_with("-01"));
    // A new trace when there is no parent.
    let root = telemetry.start(SpanKind::Server, &Context::new(), || {
        ("y".into(), Vec::new())
    });
    assert!(propagation::traceparent_of(&root).is_some());
}
