//! Distributed tracing across two real gateways and two HTTP apps, checked
//! at an in-test OTLP receiver (gRPC `TraceService/Export`, and OTLP/HTTP
//! `POST /v1/traces`): one trace id from the first request to the last app,
//! the publisher's trace id in a delivered CloudEvent, `samplingRate: "0"`
//! exporting nothing, and bad `spec.tracing` settings stopping start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tracing/apps.rs"]
mod apps;
#[path = "tracing/otlp.rs"]
mod otlp;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::HeaderMap;
use tokio_util::sync::CancellationToken;

use apps::{Seen, app_a, app_b, post, subscriber, traceparent};
use otlp::{Spans, grpc_receiver, http_receiver};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn tracing_config(dir: &Path, rate: &str, endpoint: SocketAddr, protocol: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {{name: tracing}}\nspec:\n  tracing:\n    samplingRate: \"{rate}\"\n    otel:\n      endpointAddress: \"{endpoint}\"\n      isSecure: false\n      protocol: {protocol}\n"
        ),
    )
    .unwrap();
    path
}

async fn gateway(
    app_id: &str,
    app_port: Option<u16>,
    registry: &Path,
    dir: &Path,
    config_file: PathBuf,
) -> outrigger::Gateway {
    std::fs::create_dir_all(dir.join("resources")).unwrap();
    let mut config = support::config(dir, None);
    config.app_id = app_id.into();
    config.app_port = app_port;
    config.registry_folder = Some(registry.to_path_buf());
    config.config_file = Some(config_file);
    outrigger::Gateway::start(config, CancellationToken::new())
        .await
        .unwrap()
}

/// Test → gateway A → app A → gateway A → gateway B → app B, started with
/// `PARENT`; exported to `receiver` over `protocol`, then flushed (or, with
/// `stop`, exported by the gateways' shutdown).
async fn one_trace_across_two_gateways(
    protocol: &str,
    receiver: SocketAddr,
    spans: &Spans,
    stop: bool,
) {
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let gateway_a_addr = Arc::new(OnceLock::new());
    let port_a = app_a(seen_a.clone(), gateway_a_addr.clone()).await;
    let port_b = app_b(seen_b.clone()).await;
    let config_a = tracing_config(dir_a.path(), "1", receiver, protocol);
    let config_b = tracing_config(dir_b.path(), "1", receiver, protocol);
    let a = gateway(
        "app-a",
        Some(port_a),
        registry.path(),
        dir_a.path(),
        config_a,
    )
    .await;
    let b = gateway(
        "app-b",
        Some(port_b),
        registry.path(),
        dir_b.path(),
        config_b,
    )
    .await;
    gateway_a_addr.set(a.http_addr).unwrap();

    let (status, headers, body) = post(
        &format!("http://{}/v1.0/invoke/app-a/method/start", a.http_addr),
        &[("traceparent", PARENT)],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "b got from a"));
    // The reply carries the gateway's span, in the caller's trace.
    let returned = traceparent(&headers);
    assert!(returned.starts_with(&format!("00-{TRACE}-")), "{returned}");
    assert_ne!(returned, PARENT);

    // Both apps saw the trace, each with a span id of its gateway's span.
    for seen in [&seen_a, &seen_b] {
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with(&format!("00-{TRACE}-")), "{seen:?}");
        assert!(seen[0].ends_with("-01") && seen[0] != PARENT, "{seen:?}");
    }
    assert_ne!(seen_a.lock().unwrap()[0], seen_b.lock().unwrap()[0]);

    for gateway in [a, b] {
        if stop {
            gateway.runtime.shutdown.cancel();
            gateway.wait().await;
        } else {
            gateway.runtime.telemetry.flush().await;
        }
    }
    let all = spans.wait_for(&["app-a", "app-b"]).await;
    assert!(all.iter().all(|s| s.trace_id == TRACE), "{all:?}");
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|s| (s.service.as_str(), s.name.as_str()))
        .collect();
    let api = "POST /v1.0/invoke/{app_id}/method/{*method}";
    for expected in [
        ("app-a", api),
        ("app-a", "invoke/app-a/start"),
        ("app-a", "invoke/app-b/echo"),
        ("app-b", "CallLocal/app-b/echo"),
    ] {
        assert!(names.contains(&expected), "{expected:?} not in {names:?}");
    }
    // One tree: the first API span is a child of the caller's span, and
    // every other span is a child of one exported before it in the chain.
    let find = |name: &str| all.iter().find(|s| s.name == name).unwrap();
    let parent_of = |child: &otlp::Exported| all.iter().find(|s| s.span_id == child.parent);
    let call_local = find("CallLocal/app-b/echo");
    let invoke_b = parent_of(call_local).expect("CallLocal has its parent");
    assert_eq!(invoke_b.name, "invoke/app-b/echo");
    let api_b = parent_of(invoke_b).expect("invoke has its parent");
    assert_eq!(api_b.name, api);
    let roots: Vec<_> = all.iter().filter(|s| parent_of(s).is_none()).collect();
    assert_eq!(roots.len(), 1, "{all:?}");
    assert_eq!(roots[0].parent, "00f067aa0ba902b7");
    assert_eq!(roots[0].name, api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_both_gateways_and_apps_over_otlp_grpc() {
    let (receiver, spans) = grpc_receiver().await;
    one_trace_across_two_gateways("grpc", receiver, &spans, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_both_gateways_and_apps_over_otlp_http() {
    let (receiver, spans) = http_receiver().await;
    // Exported by the gateways' shutdown, without an explicit flush.
    one_trace_across_two_gateways("http", receiver, &spans, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_rate_zero_exports_nothing_but_passes_the_context_on() {
    let (receiver, spans) = grpc_receiver().await;
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seen_b = Seen::default();
    let port_b = app_b(seen_b.clone()).await;
    let config_a = tracing_config(dir_a.path(), "0", receiver, "grpc");
    let config_b = tracing_config(dir_b.path(), "0", receiver, "grpc");
    let a = gateway("app-a", None, registry.path(), dir_a.path(), config_a).await;
    let b = gateway(
        "app-b",
        Some(port_b),
        registry.path(),
        dir_b.path(),
        config_b,
    )
    .await;

    let (status, _, body) = post(
        &format!("http://{}/v1.0/invoke/app-b/method/echo", a.http_addr),
        &[("traceparent", PARENT)],
        "x",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "b got x"));
    assert_eq!(*seen_b.lock().unwrap(), vec![PARENT.to_owned()]);

    a.runtime.telemetry.flush().await;
    b.runtime.telemetry.flush().await;
    // Longer than the exporter's 500 ms batch delay: nothing may arrive.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(spans.all().is_empty(), "{:?}", spans.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tracing_settings_stop_start_up_naming_file_and_field() {
    for (tracing, field) in [
        ("samplingRate: \"often\"", "spec.tracing.samplingRate"),
        ("samplingRate: \"2\"", "spec.tracing.samplingRate"),
        (
            "otel: {endpointAddress: \"localhost:4317\", protocol: thrift}",
            "spec.tracing.otel.protocol",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("resources")).unwrap();
        let file = dir.path().join("tracing-config.yaml");
        std::fs::write(
            &file,
            format!(
                "kind: Configuration\nmetadata: {{name: c}}\nspec:\n  tracing: {{{tracing}}}\n"
            ),
        )
        .unwrap();
        let mut config = support::config(dir.path(), None);
        config.config_file = Some(file);
        let err = outrigger::Gateway::start(config, CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tracing-config.yaml") && err.contains(field),
            "{tracing}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_continues_the_publishers_trace() {
    let (receiver, spans) = grpc_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: pollInterval, value: 20ms}}\n",
            dir.path().join("bus.db").display()
        ),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(
        outrigger_local::services(outrigger_component_sdk::ComponentServer::new(&sockets))
            .serve(async move { token.cancelled().await }),
    );
    while tokio::net::UnixStream::connect(sockets.join("local.sock"))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut config = support::config(dir.path(), None);
    config.app_id = "shop".into();
    config.app_port = Some(subscriber(seen.clone()).await);
    config.config_file = Some(tracing_config(dir.path(), "1", receiver, "grpc"));
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();

    let (status, _, body) = post(
        &format!("http://{}/v1.0/publish/pubsub/orders", gateway.http_addr),
        &[
            ("traceparent", PARENT),
            ("content-type", "application/json"),
        ],
        "{\"order\":1}",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mut delivered = None;
    for _ in 0..100 {
        if let Some(first) = seen.lock().unwrap().first() {
            delivered = Some(first.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (event, header) = delivered.expect("the event is delivered");
    let in_event = event["traceparent"].as_str().unwrap_or_default().to_owned();
    // The event carries the publisher's gateway span, in the caller's trace.
    assert!(in_event.starts_with(&format!("00-{TRACE}-")), "{event}");
    assert_ne!(in_event, PARENT);
    assert_eq!(event["traceid"], event["traceparent"]);
    // The app gets the delivery span, a child in the same trace.
    assert!(header.starts_with(&format!("00-{TRACE}-")), "{header}");
    assert_ne!(header, in_event);

    gateway.runtime.telemetry.flush().await;
    let mut names = Vec::new();
    for _ in 0..100 {
        names = spans
            .all()
            .into_iter()
            .map(|s| (s.trace_id, s.name))
            .collect();
        if names.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for expected in [
        "POST /v1.0/publish/{pubsub}/{*topic}",
        "publish/pubsub/orders",
        "deliver/orders",
    ] {
        assert!(
            names.contains(&(TRACE.to_owned(), expected.to_owned())),
            "{expected} not in {names:?}"
        );
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_calls_carry_the_current_trace_context() {
    // A stand-in component: an HTTP/2 server on a Unix socket that records
    // the `traceparent` of every call.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("spy.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let seen = Seen::default();
    let recorded = seen.clone();
    let router = axum::Router::new().fallback(move |headers: HeaderMap| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(traceparent(&headers));
            ""
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );

    let mut channel = outrigger::components::channel::lazy(&socket);
    let call = |channel: &mut outrigger::components::channel::UdsChannel| {
        let request = http::Request::post("/dapr.proto.components.v1.StateStore/Ping")
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::empty())
            .unwrap();
        tower::Service::call(channel, request)
    };
    let cx = outrigger::telemetry::propagation::extract_values(Some(PARENT), None);
    outrigger::telemetry::within(cx, async { call(&mut channel).await })
        .await
        .unwrap();
    // Outside any trace, nothing is added.
    call(&mut channel).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![PARENT.to_owned(), String::new()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_invoke_service_continues_the_callers_trace() {
    use outrigger_proto::common as common_pb;
    use outrigger_proto::runtime as pb;

    let (receiver, spans) = grpc_receiver().await;
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seen_b = Seen::default();
    let port_b = app_b(seen_b.clone()).await;
    let config_a = tracing_config(dir_a.path(), "1", receiver, "grpc");
    let config_b = tracing_config(dir_b.path(), "1", receiver, "grpc");
    let a = gateway("app-a", None, registry.path(), dir_a.path(), config_a).await;
    let b = gateway(
        "app-b",
        Some(port_b),
        registry.path(),
        dir_b.path(),
        config_b,
    )
    .await;

    let mut client = pb::dapr_client::DaprClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .unwrap();
    let request = || {
        tonic::Request::new(pb::InvokeServiceRequest {
            id: "app-b".into(),
            message: Some(common_pb::InvokeRequest {
                method: "echo".into(),
                data: Some(prost_types::Any {
                    type_url: String::new(),
                    value: b"over grpc".to_vec(),
                }),
                content_type: "text/plain".into(),
                http_extension: None,
            }),
        })
    };
    // `traceparent` metadata, then daprd's binary `grpc-trace-bin` form.
    let mut with_text = request();
    with_text
        .metadata_mut()
        .insert("traceparent", PARENT.parse().unwrap());
    let mut with_binary = request();
    let mut binary = vec![0, 0];
    binary.extend((0..16).map(|i| u8::from_str_radix(&TRACE[i * 2..i * 2 + 2], 16).unwrap()));
    binary.extend([1, 0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 2, 1]);
    with_binary.metadata_mut().insert_bin(
        "grpc-trace-bin",
        tonic::metadata::BinaryMetadataValue::from_bytes(&binary),
    );
    for request in [with_text, with_binary] {
        let reply = client.invoke_service(request).await.unwrap().into_inner();
        assert_eq!(reply.data.unwrap().value, b"b got over grpc");
    }
    let seen = seen_b.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for parent in &seen {
        assert!(parent.starts_with(&format!("00-{TRACE}-")), "{seen:?}");
    }

    a.runtime.telemetry.flush().await;
    b.runtime.telemetry.flush().await;
    let all = spans.wait_for(&["app-a", "app-b"]).await;
    assert!(all.iter().all(|s| s.trace_id == TRACE), "{all:?}");
}
