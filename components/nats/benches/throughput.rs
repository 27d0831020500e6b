//! outrigger-nats publish→receive: throughput and latency through the
//! component socket, against the same JetStream work done with async-nats
//! directly, in one run.
//!
//! Needs a nats-server with JetStream: `OUTRIGGER_NATS_URL`, else one it
//! starts from `OUTRIGGER_NATS_SERVER` (both set by `scripts/test.sh`).
//!
//! Run with:
//!     cargo bench -p outrigger-nats --bench throughput          (add `-- --quick` for a short run)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use outrigger_proto::components as pb;
use tokio::net::UnixStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Endpoint, Uri};

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    single: Duration,
}

fn figures(n: usize, elapsed: Duration, mut latencies: Vec<Duration>, single: Duration) -> Figures {
    latencies.sort();
    Figures {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        single,
    }
}

fn stamp(origin: Instant) -> Vec<u8> {
    (origin.elapsed().as_nanos() as u64).to_le_bytes().to_vec()
}

fn since(origin: Instant, data: &[u8]) -> Duration {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    origin.elapsed() - Duration::from_nanos(u64::from_le_bytes(b))
}

async fn direct(url: &str, n: usize, origin: Instant) -> Figures {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let name = support::unique("bench-direct");
    let subject = format!("{name}.t");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    // One message at a time: publish, receive, ack.
    let start = Instant::now();
    for _ in 0..50 {
        js.publish(subject.clone(), stamp(origin).into())
            .await
            .unwrap()
            .await
            .unwrap();
        let m = messages.next().await.unwrap().unwrap();
        m.ack().await.unwrap();
    }
    let single = start.elapsed() / 50;
    // Pipelined: a publisher awaiting each broker ack, a receiver acking.
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let m = messages.next().await.unwrap().unwrap();
            latencies.push(since(origin, &m.payload));
            m.ack().await.unwrap();
        }
        latencies
    });
    let start = Instant::now();
    for _ in 0..n {
        js.publish(subject.clone(), stamp(origin).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let latencies = receiver.await.unwrap();
    let elapsed = start.elapsed();
    js.delete_stream(&name).await.unwrap();
    figures(n, elapsed, latencies, single)
}

fn request<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("x-component-instance", "bench".parse().unwrap());
    r
}

async fn through_socket(url: &str, n: usize, origin: Instant) -> Figures {
    let (_dir, socket) = support::serve().await;
    let channel = Endpoint::from_static("http://nats.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap();
    let mut bus = pb::pub_sub_client::PubSubClient::new(channel);
    let stream_name = support::unique("bench-socket");
    let topic = format!("{stream_name}.t");
    bus.init(request(pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest {
            properties: HashMap::from([
                ("natsURL".to_owned(), url.to_owned()),
                ("streamName".to_owned(), stream_name.clone()),
            ]),
        }),
    }))
    .await
    .unwrap();
    let (acks, rx) = tokio::sync::mpsc::channel(4096);
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: topic.clone(),
            metadata: HashMap::from([("consumerID".to_owned(), "bench".to_owned())]),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut messages = bus
        .pull_messages(request(ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let publish = |bus: &mut pb::pub_sub_client::PubSubClient<_>| {
        let req = pb::PublishRequest {
            data: stamp(origin),
            pubsub_name: "bench".into(),
            topic: topic.clone(),
            metadata: HashMap::new(),
            content_type: String::new(),
        };
        let mut bus: pb::pub_sub_client::PubSubClient<tonic::transport::Channel> = bus.clone();
        async move { bus.publish(request(req)).await.unwrap() }
    };
    let start = Instant::now();
    for _ in 0..50 {
        publish(&mut bus).await;
        let m = messages.next().await.unwrap().unwrap();
        acks.send(pb::PullMessagesRequest {
            ack_message_id: m.id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let single = start.elapsed() / 50;
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let m = messages.next().await.unwrap().unwrap();
            latencies.push(since(origin, &m.data));
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
    for _ in 0..n {
        publish(&mut bus).await;
    }
    let latencies = receiver.await.unwrap();
    let elapsed = start.elapsed();
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    js.delete_stream(&stream_name).await.unwrap();
    figures(n, elapsed, latencies, single)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = if std::env::args().any(|a| a == "--quick") {
        500
    } else {
        5000
    };
    let mut own_server = None;
    let url = match std::env::var("OUTRIGGER_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => url,
        None => match std::env::var_os("OUTRIGGER_NATS_SERVER") {
            Some(bin) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let store = tempfile::tempdir().unwrap();
                let child = std::process::Command::new(bin)
                    .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                    .arg(store.path())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                own_server = Some((child, store));
                format!("nats://127.0.0.1:{port}")
            }
            None => {
                println!(
                    "SKIPPED: set OUTRIGGER_NATS_URL or OUTRIGGER_NATS_SERVER (scripts/test.sh does)"
                );
                return;
            }
        },
    };
    let origin = Instant::now();
    let d = direct(&url, n, origin).await;
    let s = through_socket(&url, n, origin).await;
    println!("outrigger-nats publish→receive, {n} messages, file-backed stream, explicit acks");
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>16}",
        "", "msg/s", "p50", "p99", "one-at-a-time"
    );
    for (label, f) in [
        ("async-nats directly", &d),
        ("through the component socket", &s),
    ] {
        println!(
            "{label:<28} {:>12.0} {:>12.2?} {:>12.2?} {:>16.2?}",
            f.rate, f.p50, f.p99, f.single
        );
    }
    println!("socket / direct throughput: {:.2}", s.rate / d.rate);
    if let Some((mut child, _store)) = own_server {
        let _ = child.kill();
        let _ = child.wait();
    }
}
