//! Publish → app delivery through the gateway vs the component's own pull
//! stream, in one run: throughput and p50/p99 latency.
//!
//! Run with:
//!     cargo bench -p outrigger --bench delivery          (add `-- --quick` for a short run)
//! Both sides read the same `outrigger-local` pub/sub (served in this
//! process). "direct" consumes `PullMessages` itself and acks each message;
//! "gateway" runs the real `outrigger` binary delivering to an HTTP app in
//! this process, which answers 200 at once. Each message carries its publish
//! time, so latency is publish → handler. With `OUTRIGGER_NATS_URL` set, the
//! same again on NATS JetStream: async-nats directly vs `outrigger-nats`
//! behind the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support {
    pub(crate) mod gateway_cmd;
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::components as pb;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

fn now_us(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

fn request<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("x-component-instance", "bench".parse().unwrap());
    r
}

async fn publish_all(
    bus: &mut pb::pub_sub_client::PubSubClient<Channel>,
    topic: &str,
    n: usize,
    origin: Instant,
) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let body = format!("{{\"i\":{i},\"t\":{}}}", now_us(origin));
        bus.publish(request(pb::PublishRequest {
            data: body.into_bytes(),
            topic: topic.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    start.elapsed()
}

/// A pub/sub client on `socket`, once something listens there.
async fn connect(socket: &std::path::Path) -> pb::pub_sub_client::PubSubClient<Channel> {
    while tokio::net::UnixStream::connect(socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let socket = socket.to_path_buf();
    let channel = tonic::transport::Endpoint::from_static("http://component.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    pb::pub_sub_client::PubSubClient::new(channel)
}

/// Run the real gateway over `resources` and `sockets`, delivering `topic`
/// to an HTTP app in this process; publish `n` messages on `bus` and wait
/// for all of them to arrive.
async fn via_gateway(
    resources: &std::path::Path,
    sockets: &std::path::Path,
    bus: &mut pb::pub_sub_client::PubSubClient<Channel>,
    topic: &str,
    n: usize,
    origin: Instant,
) -> (Vec<u64>, Duration) {
    let subscribed = topic.to_owned();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let recorded = seen.clone();
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(move || {
                let topic = subscribed.clone();
                async move {
                    axum::Json(
                        serde_json::json!([{"pubsubname": "pubsub", "topic": topic, "route": "/gw"}]),
                    )
                }
            }),
        )
        .route(
            "/gw",
            post(move |body: axum::body::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let event: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(t) = event["t"].as_u64() {
                        recorded
                            .lock()
                            .unwrap()
                            .push(now_us(origin).saturating_sub(t));
                    }
                    "{}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut gateway = support::gateway_cmd::command("bench")
        .args(["--dapr-http-port", "0", "--dapr-grpc-port", "0"])
        .args(["--app-port", &app_port.to_string()])
        .arg("--resources-path")
        .arg(resources)
        .arg("--components-sockets-folder")
        .arg(sockets)
        .spawn()
        .unwrap();
    // Let the gateway subscribe before the clock starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    publish_all(bus, topic, n, origin).await;
    while seen.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    let latencies = seen.lock().unwrap().clone();
    let _ = gateway.kill().await;
    (latencies, elapsed)
}

fn summary(name: &str, latencies: &mut [u64], elapsed: Duration) {
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "{name:<13} {:>8.0} msg/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = if std::env::args().any(|a| a == "--quick") {
        1_000
    } else {
        5_000
    };
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let db = dir.path().join("bench.db").display().to_string();
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!("kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{db}\"}}\n  - {{name: pollInterval, value: 5ms}}\n"),
    )
    .unwrap();
    tokio::spawn(
        outrigger_local::services(ComponentServer::new(&sockets)).serve(std::future::pending()),
    );
    let mut bus = connect(&sockets.join("local.sock")).await;
    let props = HashMap::from([
        ("databaseFile".to_owned(), db.clone()),
        ("pollInterval".to_owned(), "5ms".to_owned()),
    ]);
    bus.init(request(pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest { properties: props }),
    }))
    .await
    .unwrap();
    let origin = Instant::now();

    // Direct: our own PullMessages consumer.
    let (acks, rx) = tokio::sync::mpsc::channel(1024);
    let mut topic_meta = HashMap::new();
    topic_meta.insert("consumerID".to_owned(), "direct".to_owned());
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: "direct".into(),
            metadata: topic_meta,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = bus
        .pull_messages(request(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let consumer = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        let mut first = None;
        while latencies.len() < n {
            let m = stream.next().await.unwrap().unwrap();
            first.get_or_insert_with(Instant::now);
            let event: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
            latencies.push(now_us(origin).saturating_sub(event["t"].as_u64().unwrap()));
            acks.send(pb::PullMessagesRequest {
                ack_message_id: m.id,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        latencies
    });
    let start = Instant::now();
    publish_all(&mut bus, "direct", n, origin).await;
    let mut direct = consumer.await.unwrap();
    let direct_elapsed = start.elapsed();

    // Through the gateway to an HTTP app.
    let (mut via_gateway, gateway_elapsed) = via_gateway(
        &dir.path().join("resources"),
        &sockets,
        &mut bus,
        "gw",
        n,
        origin,
    )
    .await;

    println!("publish → consumer, {n} messages published one at a time (2-core machine)");
    summary("direct", &mut direct, direct_elapsed);
    summary("gateway", &mut via_gateway, gateway_elapsed);
    println!(
        "gateway / direct throughput: {:.2}x",
        direct_elapsed.as_secs_f64() / gateway_elapsed.as_secs_f64()
    );

    match std::env::var("OUTRIGGER_NATS_URL") {
        Ok(url) => nats(&url, n, origin).await,
        Err(_) => {
            println!("NATS rows skipped: set OUTRIGGER_NATS_URL to a nats-server with JetStream")
        }
    }
}

/// The same on NATS JetStream: async-nats publishing and pulling directly,
/// vs `outrigger-nats` (served in this process) behind the real gateway.
async fn nats(url: &str, n: usize, origin: Instant) {
    use async_nats::jetstream::{self, consumer, stream};

    let pid = std::process::id();
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let (name, subject) = (format!("bench_direct_{pid}"), format!("bdirect{pid}"));
    let created = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let pull: consumer::PullConsumer = created
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = pull.messages().await.unwrap();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let m = messages.next().await.unwrap().unwrap();
            let event: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            latencies.push(now_us(origin).saturating_sub(event["t"].as_u64().unwrap()));
            m.ack().await.unwrap();
        }
        latencies
    });
    let start = Instant::now();
    for i in 0..n {
        let body = format!("{{\"i\":{i},\"t\":{}}}", now_us(origin));
        js.publish(subject.clone(), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut direct = receiver.await.unwrap();
    let direct_elapsed = start.elapsed();
    js.delete_stream(&name).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    let stream_name = format!("bench_gw_{pid}");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!("kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - {{name: natsURL, value: \"{url}\"}}\n  - {{name: streamName, value: {stream_name}}}\n"),
    )
    .unwrap();
    tokio::spawn(
        outrigger_nats::services(ComponentServer::new(&sockets)).serve(std::future::pending()),
    );
    let mut bus = connect(&sockets.join("nats.sock")).await;
    let props = HashMap::from([
        ("natsURL".to_owned(), url.to_owned()),
        ("streamName".to_owned(), stream_name.clone()),
    ]);
    bus.init(request(pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest { properties: props }),
    }))
    .await
    .unwrap();
    let topic = format!("bgw{pid}");
    let (mut via_gateway, gateway_elapsed) = via_gateway(
        &dir.path().join("resources"),
        &sockets,
        &mut bus,
        &topic,
        n,
        origin,
    )
    .await;
    js.delete_stream(&stream_name).await.unwrap();

    println!("NATS JetStream: publish (awaiting the broker's ack) → consumer, {n} messages");
    summary("nats direct", &mut direct, direct_elapsed);
    summary("nats gateway", &mut via_gateway, gateway_elapsed);
    println!(
        "gateway / direct throughput on NATS: {:.2}x",
        direct_elapsed.as_secs_f64() / gateway_elapsed.as_secs_f64()
    );
}
