//! kill -9 the gateway while an app consumes 10 000 messages; a new gateway
//! on the same component finishes the job: every message reaches the app at
//! least once. Prints the duplicate ratio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::components as pb;
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 10_000;

type Counts = Arc<Mutex<HashMap<u64, u32>>>;

async fn app(counts: Counts) -> u16 {
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async { axum::Json(serde_json::json!([{"pubsubname": "pubsub", "topic": "load", "route": "/load"}])) }),
        )
        .route(
            "/load",
            post(move |body: axum::body::Bytes| {
                let counts = counts.clone();
                async move {
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(n) = event["n"].as_u64() {
                        *counts.lock().unwrap().entry(n).or_default() += 1;
                    }
                    "{}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn start_gateway(dir: &std::path::Path, app_port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args([
            "--app-id",
            "crash-app",
            "--log-level",
            "warn",
            "--metrics-port",
            "0",
        ])
        .args([
            "--dapr-http-port",
            "0",
            "--dapr-grpc-port",
            "0",
            "--app-port",
            &app_port.to_string(),
        ])
        .arg("--resources-path")
        .arg(dir.join("resources"))
        .arg("--components-sockets-folder")
        .arg(dir.join("sockets"))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_gateway_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let db = dir.path().join("crash.db").display().to_string();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{db}\"}}\n  - {{name: ackWait, value: 2s}}\n  - {{name: pollInterval, value: 20ms}}\n"
        ),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(
        outrigger_local::services(ComponentServer::new(&sockets))
            .serve(async move { token.cancelled().await }),
    );
    while tokio::net::UnixStream::connect(sockets.join("local.sock"))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Publish straight to the component (the gateway under test only delivers).
    let channel = tonic::transport::Endpoint::from_static("http://local.invalid")
        .connect_with_connector(tower::service_fn({
            let socket = sockets.join("local.sock");
            move |_: http::Uri| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }
        }))
        .await
        .unwrap();
    let mut bus = pb::pub_sub_client::PubSubClient::new(channel);
    let mut init = tonic::Request::new(pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest {
            properties: HashMap::from([("databaseFile".to_owned(), db.clone())]),
        }),
    });
    init.metadata_mut()
        .insert("x-component-instance", "publisher".parse().unwrap());
    bus.init(init).await.unwrap();
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(1000) {
        let entries = chunk
            .iter()
            .map(|n| pb::BulkMessageEntry {
                entry_id: n.to_string(),
                event: format!("{{\"n\":{n}}}").into_bytes(),
                ..Default::default()
            })
            .collect();
        let mut req = tonic::Request::new(pb::BulkPublishRequest {
            entries,
            topic: "load".into(),
            ..Default::default()
        });
        req.metadata_mut()
            .insert("x-component-instance", "publisher".parse().unwrap());
        assert!(
            bus.bulk_publish(req)
                .await
                .unwrap()
                .into_inner()
                .failed_entries
                .is_empty()
        );
    }

    let counts = Counts::default();
    let port = app(counts.clone()).await;
    let mut first = start_gateway(dir.path(), port);
    wait_until(
        "the first gateway delivering 2 000 messages",
        Duration::from_secs(60),
        || counts.lock().unwrap().len() >= 2_000,
    )
    .await;
    first.kill().await.unwrap(); // SIGKILL, mid-stream
    let at_kill = counts.lock().unwrap().len();
    assert!(
        at_kill < MESSAGES,
        "the kill must come while messages are still owed"
    );

    let mut second = start_gateway(dir.path(), port);
    wait_until(
        "every message reaching the app",
        Duration::from_secs(120),
        || counts.lock().unwrap().len() == MESSAGES,
    )
    .await;
    let deliveries: u32 = counts.lock().unwrap().values().sum();
    eprintln!(
        "{MESSAGES} messages, {at_kill} seen before kill -9; {deliveries} deliveries in all: duplicates ratio {:.4}",
        f64::from(deliveries - MESSAGES as u32) / MESSAGES as f64
    );
    let _ = second.kill().await;
    stop.cancel();
}
