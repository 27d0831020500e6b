//! Restarting nats-server while messages flow end to end: an app publishes
//! through the gateway's HTTP API, the gateway delivers from `outrigger-nats`
//! to an HTTP app, and nats-server is killed (SIGKILL) and restarted on the
//! same port and store mid-way. Every publish the gateway accepted (204)
//! reaches the app at least once; publishes refused during the outage get
//! an error status, never a false 204.
//!
//! Runs its own nats-server (it must kill it): `OUTRIGGER_NATS_SERVER`,
//! exported by `scripts/test.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use outrigger_component_sdk::ComponentServer;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const MESSAGES: u64 = 300;

struct Broker {
    bin: PathBuf,
    store: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(&mut self) {
        self.child = Some(
            Command::new(&self.bin)
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(self.store.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
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
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_loses_no_accepted_message_end_to_end() {
    let Some(bin) = std::env::var_os("OUTRIGGER_NATS_SERVER") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OUTRIGGER_NATS_SERVER is not set under CI"
        );
        eprintln!("SKIPPED: OUTRIGGER_NATS_SERVER is not set; run `bash scripts/test.sh`");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut broker = Broker {
        bin: PathBuf::from(bin),
        store: tempfile::tempdir().unwrap(),
        port,
        child: None,
    };
    broker.start();

    // The app: records every event id it is handed.
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new()
        .route(
            "/dapr/subscribe",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!([{"pubsubname": "pubsub", "topic": "flow", "route": "/flow"}]))
            }),
        )
        .route(
            "/flow",
            axum::routing::post(move |body: axum::body::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(n) = event["data"]["n"].as_u64() {
                        recorded.lock().unwrap().push(n);
                    }
                    "{}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // outrigger-nats and the gateway.
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!("kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - {{name: natsURL, value: \"nats://127.0.0.1:{port}\"}}\n  - {{name: streamName, value: flow}}\n"),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let component_stop = stop.clone();
    tokio::spawn(
        outrigger_nats::services(ComponentServer::new(&sockets))
            .serve(async move { component_stop.cancelled().await }),
    );
    while tokio::net::UnixStream::connect(sockets.join("nats.sock"))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut config = support::config(dir.path(), None);
    config.app_port = Some(app_port);
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    let router = outrigger::api::http::router(Arc::clone(&gateway.runtime));

    let mut accepted = BTreeSet::new();
    let mut refused = 0u32;
    let mut restarted = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut n = 0u64;
    while accepted.len() < MESSAGES as usize {
        assert!(
            Instant::now() < deadline,
            "publishing did not finish: {} accepted",
            accepted.len()
        );
        if accepted.len() == (MESSAGES / 2) as usize && !restarted {
            restarted = true;
            broker.kill();
            // Stay down a moment, with publishes failing meanwhile.
            for _ in 0..2 {
                n += 1;
                let status = publish(&router, n).await;
                assert_ne!(
                    status,
                    StatusCode::NO_CONTENT,
                    "publish {n} accepted while the broker was down"
                );
                refused += 1;
            }
            broker.start();
        }
        n += 1;
        match publish(&router, n).await {
            StatusCode::NO_CONTENT => {
                accepted.insert(n);
            }
            _ => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // Every accepted message arrives, at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<u64> = seen.lock().unwrap().iter().copied().collect();
        let missing: Vec<_> = accepted.difference(&got).take(10).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted messages never arrived, e.g. {missing:?}",
            accepted.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = seen.lock().unwrap().len();
    eprintln!(
        "{} accepted, {refused} refused during the outage, {delivered} deliveries ({} duplicates)",
        accepted.len(),
        delivered.saturating_sub(accepted.len())
    );
    stop.cancel();
}

async fn publish(router: &outrigger::api::http::Api, n: u64) -> StatusCode {
    let request = Request::post("/v1.0/publish/pubsub/flow")
        .header("content-type", "application/json")
        .body(Body::from(format!("{{\"n\":{n}}}")))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(20), router.clone().oneshot(request)).await {
        Ok(Ok(response)) => response.status(),
        _ => StatusCode::GATEWAY_TIMEOUT,
    }
}
