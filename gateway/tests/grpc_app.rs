//! A gRPC app (a tonic `AppCallback` server) receiving a bulk subscription
//! through `OnBulkTopicEvent`, batched and acked per entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger::config::AppProtocol;
use outrigger::runtime::pubsub::Message;
use outrigger_component_sdk::ComponentServer;
use outrigger_proto::runtime as rt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct BulkApp {
    batches: Arc<Mutex<Vec<usize>>>,
}

#[tonic::async_trait]
impl rt::app_callback_server::AppCallback for BulkApp {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<rt::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(rt::ListTopicSubscriptionsResponse {
            subscriptions: vec![rt::TopicSubscription {
                pubsub_name: "pubsub".into(),
                topic: "bulk".into(),
                bulk_subscribe: Some(rt::BulkSubscribeConfig {
                    enabled: true,
                    max_messages_count: 4,
                    max_await_duration_ms: 300,
                }),
                ..Default::default()
            }],
        }))
    }

    async fn on_bulk_topic_event(
        &self,
        request: Request<rt::TopicEventBulkRequest>,
    ) -> Result<Response<rt::TopicEventBulkResponse>, Status> {
        let request = request.into_inner();
        self.batches.lock().unwrap().push(request.entries.len());
        let statuses = request
            .entries
            .into_iter()
            .map(|e| rt::TopicEventBulkResponseEntry {
                entry_id: e.entry_id,
                status: 0,
            })
            .collect();
        Ok(Response::new(rt::TopicEventBulkResponse { statuses }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_subscription_to_a_grpc_app() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: pollInterval, value: 20ms}}\n",
            dir.path().join("g.db").display()
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
    let app = BulkApp::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tonic::transport::Server::builder()
        .add_service(rt::app_callback_server::AppCallbackServer::new(app.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let mut config = support::config(dir.path(), None);
    config.app_port = Some(port);
    config.app_protocol = AppProtocol::Grpc;
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    // Give the gateway a moment to list the app's subscriptions, then publish.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for i in 0..10 {
        let message = Message {
            data: format!("{{\"i\":{i}}}").into_bytes(),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        gateway
            .runtime
            .pubsub
            .publish("pubsub", "bulk", message)
            .await
            .unwrap();
    }
    for _ in 0..300 {
        if app.batches.lock().unwrap().iter().sum::<usize>() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batches = app.batches.lock().unwrap().clone();
    assert_eq!(
        batches.iter().sum::<usize>(),
        10,
        "each entry once, acked: {batches:?}"
    );
    assert!(
        batches.iter().all(|n| *n <= 4),
        "maxMessagesCount honoured: {batches:?}"
    );
    stop.cancel();
}
