//! Restarting nats-server while messages flow: every publish the component
//! accepted (the broker acked it) reaches the subscriber at least once, and
//! the subscription stream survives the outage without being re-opened.
//!
//! The test runs its own nats-server (it must kill it), the binary
//! `scripts/test.sh` exports as `OUTRIGGER_NATS_SERVER`, on a free port with
//! its own store folder, restarted on the same port and folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use outrigger_proto::components as pb;
use tokio::net::UnixStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Endpoint, Uri};

const MESSAGES: u64 = 500;

struct Broker {
    bin: PathBuf,
    store: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("x-component-instance", "restart".parse().unwrap());
    r
}

async fn client(socket: &Path) -> pb::pub_sub_client::PubSubClient<tonic::transport::Channel> {
    let socket = socket.to_path_buf();
    let channel = Endpoint::from_static("http://nats.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap();
    pb::pub_sub_client::PubSubClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_no_accepted_message() {
    let Some(bin) = std::env::var_os("OUTRIGGER_NATS_SERVER").filter(|b| !b.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OUTRIGGER_NATS_SERVER is not set under CI"
        );
        eprintln!(
            "SKIPPED: OUTRIGGER_NATS_SERVER is not set; run `bash scripts/test.sh`, which installs nats-server"
        );
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let mut broker = Broker {
        bin: PathBuf::from(bin),
        store: store.path().join("js"),
        port: free_port(),
        child: None,
    };
    broker.start();
    let broker = Arc::new(Mutex::new(broker));

    let (_dir, socket) = support::serve().await;
    let mut c = client(&socket).await;
    let properties = HashMap::from([
        ("natsURL".to_owned(), broker.lock().unwrap().url()),
        ("streamName".to_owned(), "restart".to_owned()),
        ("ackWait".to_owned(), "5s".to_owned()),
        ("hearbeat".to_owned(), "1s".to_owned()),
    ]);
    c.init(request(pb::PubSubInitRequest {
        metadata: Some(pb::MetadataRequest { properties }),
    }))
    .await
    .unwrap();

    // Subscribe first: one stream for the whole test, never re-opened.
    let (acks, rx) = tokio::sync::mpsc::channel(1024);
    acks.send(pb::PullMessagesRequest {
        topic: Some(pb::Topic {
            name: "restart.orders".into(),
            metadata: HashMap::from([("consumerID".to_owned(), "restart-group".to_owned())]),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut messages = c
        .pull_messages(request(ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();

    // Consume and ack concurrently with publishing, counting deliveries.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<Option<u64>>();
    tokio::spawn(async move {
        while let Some(Ok(m)) = messages.next().await {
            let _ = acks
                .send(pb::PullMessagesRequest {
                    ack_message_id: m.id.clone(),
                    ..Default::default()
                })
                .await;
            let id = String::from_utf8_lossy(&m.data).parse::<u64>().ok();
            if seen_tx.send(id).is_err() {
                return;
            }
        }
    });

    // Publish MESSAGES ids, retrying each until the broker acks it; kill
    // and restart the broker half-way.
    let mut publisher = c.clone();
    let mut accepted = BTreeSet::new();
    let mut refused = 0u64;
    let started = Instant::now();
    let mut restart = None;
    let mut longest = Duration::ZERO;
    for i in 0..MESSAGES {
        if i == MESSAGES / 2 {
            // Kill it and restart it 6 s later while publishing goes on:
            // longer than the 5 s JetStream ack timeout, so some publishes
            // fail (Unavailable) and are retried; shorter waits are absorbed
            // by the client, which holds publishes until it reconnects.
            broker.lock().unwrap().kill();
            let broker = Arc::clone(&broker);
            restart = Some(std::thread::spawn(move || {
                let down = Instant::now();
                std::thread::sleep(Duration::from_secs(6));
                broker.lock().unwrap().start();
                down.elapsed()
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempt = Instant::now();
        loop {
            let result = publisher
                .publish(request(pb::PublishRequest {
                    data: i.to_string().into_bytes(),
                    pubsub_name: "restart".into(),
                    topic: "restart.orders".into(),
                    metadata: HashMap::new(),
                    content_type: "text/plain".into(),
                }))
                .await;
            match result {
                Ok(_) => {
                    // During the outage the client holds publishes until it
                    // reconnects (within the 5 s ack timeout) or fails them.
                    longest = longest.max(attempt.elapsed());
                    accepted.insert(i);
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    refused += 1;
                    assert!(
                        Instant::now() < deadline,
                        "message {i} was never accepted: {status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let published_in = started.elapsed();
    let outage = restart.map(|r| r.join().unwrap()).unwrap_or_default();

    // Wait until every accepted id came; count duplicates.
    let mut seen = BTreeSet::new();
    let mut deliveries = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !accepted.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, seen_rx.recv()).await {
            Ok(Some(id)) => {
                deliveries += 1;
                seen.extend(id);
            }
            other => panic!(
                "stream ended or stalled ({other:?}); missing {:?}",
                accepted.difference(&seen).take(20).collect::<Vec<_>>()
            ),
        }
    }
    // Late redeliveries still count as duplicates.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok(id) = seen_rx.try_recv() {
        deliveries += 1;
        seen.extend(id);
    }
    let unique = seen.len() as u64;
    eprintln!(
        "restart: {} accepted, {unique} distinct received, {deliveries} deliveries, {} duplicates, \
         {refused} refused publish attempts, longest publish {longest:?}, outage {outage:?}, \
         published in {published_in:?}",
        accepted.len(),
        deliveries - unique
    );
    assert_eq!(accepted.len() as u64, MESSAGES);
    assert!(
        refused > 0,
        "no publish failed Unavailable although the outage outlasted the ack timeout"
    );
}
