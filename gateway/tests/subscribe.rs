//! Delivery to an HTTP app: programmatic (`/dapr/subscribe`) and declarative
//! subscriptions on the real outrigger-local pub/sub, RETRY redelivered,
//! 404 dropped to the dead-letter topic, every event a CloudEvent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use outrigger::runtime::pubsub::Message;
use outrigger_component_sdk::ComponentServer;
use tokio_util::sync::CancellationToken;

#[path = "support/mod.rs"]
mod support;

type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

async fn app(seen: Seen) -> u16 {
    let retried: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let record = |route: &'static str, seen: Seen| {
        move |Json(event): Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((route.to_owned(), event));
                Json(serde_json::json!({"status": "SUCCESS"}))
            }
        }
    };
    let orders = {
        let (seen, retried) = (seen.clone(), retried.clone());
        move |Json(event): Json<serde_json::Value>| {
            let (seen, retried) = (seen.clone(), retried.clone());
            async move {
                let id = event["id"].as_str().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(("orders".into(), event));
                let first = retried.lock().unwrap().insert(id, true).is_none();
                Json(serde_json::json!({"status": if first { "RETRY" } else { "SUCCESS" }}))
            }
        }
    };
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                Json(serde_json::json!([
                    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
                    {"pubsubname": "pubsub", "topic": "drops", "routes": {"default": "/drops"}, "deadLetterTopic": "poison"},
                    {"pubsubname": "pubsub", "topic": "poison", "route": "/poison"},
                    {"pubsubname": "pubsub", "topic": "flaky", "route": "/flaky", "deadLetterTopic": "flaky-dlq"},
                    {"pubsubname": "pubsub", "topic": "flaky-dlq", "route": "/flaky-dlq"},
                    {"pubsubname": "pubsub", "topic": "batch", "route": "/batch",
                     "bulkSubscribe": {"enabled": true, "maxMessagesCount": 5, "maxAwaitDurationMs": 300}}
                ]))
            }),
        )
        .route("/orders", post(orders))
        .route("/drops", post(|| async { axum::http::StatusCode::NOT_FOUND }))
        .route("/poison", post(record("poison", seen.clone())))
        .route("/declared", post(record("declared", seen.clone())))
        .route("/raw", post(record("raw", seen.clone())))
        .route("/flaky-dlq", post(record("flaky-dlq", seen.clone())))
        .route(
            "/batch",
            post({
                let seen = seen.clone();
                move |Json(batch): Json<serde_json::Value>| {
                    let seen = seen.clone();
                    async move {
                        let statuses: Vec<serde_json::Value> = batch["entries"]
                            .as_array()
                            .map(|e| e.iter().map(|e| serde_json::json!({"entryId": e["entryId"], "status": "SUCCESS"})).collect())
                            .unwrap_or_default();
                        seen.lock().unwrap().push(("batch".into(), batch));
                        Json(serde_json::json!({ "statuses": statuses }))
                    }
                }
            }),
        )
        .route(
            "/flaky",
            post({
                let seen = seen.clone();
                move |Json(event): Json<serde_json::Value>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(("flaky".into(), event));
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        )
        .route(
            "/ticks",
            axum::routing::options(|| async { axum::http::StatusCode::OK }).post({
                let seen = seen.clone();
                move |headers: axum::http::HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        let at = headers.get("readTimeUTC").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                        seen.lock().unwrap().push(("ticks".into(), serde_json::Value::String(at)));
                        "ok"
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_app_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let db = dir.path().join("bus.db");
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: redeliveryDelay, value: 50ms}}\n  - {{name: pollInterval, value: 20ms}}\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: declared}}\nspec:\n  pubsubname: pubsub\n  topic: declared\n  routes: {{default: /declared}}\n---\napiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {{name: raw}}\nspec:\n  pubsubname: pubsub\n  topic: raw\n  route: /raw\n  metadata: {{rawPayload: \"true\"}}\n---\nkind: Resiliency\nmetadata: {{name: retries}}\nspec:\n  policies:\n    retries:\n      twice: {{policy: constant, duration: 10ms, maxRetries: 2}}\n  targets:\n    components:\n      pubsub:\n        inbound: {{retry: twice}}\n---\nkind: Component\nmetadata: {{name: clock}}\nspec:\n  type: bindings.cron\n  version: v1\n  metadata:\n  - {{name: schedule, value: \"@every 200ms\"}}\n  - {{name: route, value: /ticks}}\n",
            db.display()
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
    let seen = Seen::default();
    let port = app(seen.clone()).await;
    let mut config = support::config(dir.path(), None);
    config.app_port = Some(port);
    config.app_max_concurrency = Some(4);
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    let rt = Arc::clone(&gateway.runtime);
    let publish = |topic: &'static str, body: &'static str| {
        let rt = Arc::clone(&rt);
        async move {
            let message = Message {
                data: body.as_bytes().to_vec(),
                content_type: Some("application/json".into()),
                ..Default::default()
            };
            rt.pubsub.publish("pubsub", topic, message).await.unwrap();
        }
    };
    for i in 0..3 {
        publish("orders", ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"][i]).await;
    }
    publish("drops", "{\"bad\":true}").await;
    publish("declared", "{\"d\":1}").await;
    publish("flaky", "{\"f\":1}").await;
    for _ in 0..7 {
        publish("batch", "{\"b\":1}").await;
    }
    let raw = Message {
        data: b"\x00raw bytes".to_vec(),
        metadata: HashMap::from([("rawPayload".to_owned(), "true".to_owned())]),
        ..Default::default()
    };
    rt.pubsub.publish("pubsub", "raw", raw).await.unwrap();

    let done = || {
        let seen = seen.lock().unwrap();
        let count = |route: &str| seen.iter().filter(|(r, _)| r == route).count();
        count("orders") >= 6
            && count("poison") >= 1
            && count("declared") >= 1
            && count("ticks") >= 2
            && count("raw") >= 1
            && count("flaky-dlq") >= 1
            && seen
                .iter()
                .filter(|(r, _)| r == "batch")
                .map(|(_, b)| b["entries"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
                >= 7
    };
    for _ in 0..300 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Acked batch entries must not come back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap().clone();
    assert!(done(), "not every delivery happened within 15 s: {seen:?}");
    let batched: usize = seen
        .iter()
        .filter(|(r, _)| r == "batch")
        .map(|(_, b)| b["entries"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(batched, 7, "each batch entry is delivered once and acked");
    let orders: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|(r, _)| r == "orders")
        .map(|(_, e)| e)
        .collect();
    for n in 0..3 {
        let deliveries = orders.iter().filter(|e| e["data"]["n"] == n).count();
        assert!(
            deliveries >= 2,
            "order {n}: RETRY must be followed by a redelivery ({deliveries} deliveries)"
        );
    }
    let event = orders[0];
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "pubsub");
    assert_eq!(event["source"], "test-app");
    let poison = &seen.iter().find(|(r, _)| r == "poison").unwrap().1;
    assert_eq!(
        poison["data"],
        serde_json::json!({"bad": true}),
        "404 sends the event to the dead-letter topic"
    );
    let batches: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|(r, _)| r == "batch")
        .map(|(_, b)| b)
        .collect();
    assert!(
        batches
            .iter()
            .all(|b| b["type"] == "com.dapr.event.sent.bulk" && b["topic"] == "batch"),
        "{batches:?}"
    );
    assert!(
        batches
            .iter()
            .any(|b| b["entries"].as_array().map_or(0, Vec::len) > 1),
        "messages were batched: {batches:?}"
    );
    assert!(
        batches
            .iter()
            .all(|b| b["entries"].as_array().map_or(0, Vec::len) <= 5),
        "maxMessagesCount is honoured"
    );
    let flaky = seen.iter().filter(|(r, _)| r == "flaky").count();
    assert_eq!(
        flaky, 3,
        "maxRetries: 2 means three attempts, then the dead-letter topic"
    );
    let raw = &seen.iter().find(|(r, _)| r == "raw").unwrap().1;
    assert_eq!(
        raw["data_base64"], "AHJhdyBieXRlcw==",
        "raw payloads arrive wrapped: {raw}"
    );
    assert_eq!(raw["datacontenttype"], "application/octet-stream");
    let tick = &seen.iter().find(|(r, _)| r == "ticks").unwrap().1;
    assert!(
        tick.as_str().is_some_and(|t| !t.is_empty()),
        "cron events carry their metadata as headers: {tick}"
    );
    stop.cancel();
}

/// With `--enable-app-health-check`, nothing is delivered while the app's
/// health endpoint fails, and delivery resumes when it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_app_gets_nothing_until_it_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: pollInterval, value: 20ms}}\n",
            dir.path().join("h.db").display()
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
    let healthy = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let delivered = Arc::new(Mutex::new(0usize));
    let router = axum::Router::new()
        .route("/dapr/subscribe", get(|| async { Json(serde_json::json!([{"pubsubname": "pubsub", "topic": "gated", "route": "/gated"}])) }))
        .route(
            "/healthz",
            get({
                let (healthy, probes) = (healthy.clone(), probes.clone());
                move || {
                    probes.fetch_add(1, Ordering::SeqCst);
                    let ok = healthy.load(Ordering::SeqCst);
                    async move { if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE } }
                }
            }),
        )
        .route(
            "/gated",
            post({
                let delivered = delivered.clone();
                move || {
                    *delivered.lock().unwrap() += 1;
                    async { "{}" }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut config = support::config(dir.path(), None);
    config.app_port = Some(port);
    config.app_health = Some(outrigger::config::AppHealthCheck {
        path: "/healthz".into(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
        threshold: 1,
    });
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    // Wait until failed probes have marked the app unhealthy, then publish.
    for _ in 0..400 {
        if probes.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        probes.load(Ordering::SeqCst) >= 2,
        "the gateway never probed the app"
    );
    let message = Message {
        data: b"{}".to_vec(),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    gateway
        .runtime
        .pubsub
        .publish("pubsub", "gated", message)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        *delivered.lock().unwrap(),
        0,
        "an unhealthy app must not receive events"
    );
    healthy.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        if *delivered.lock().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        *delivered.lock().unwrap(),
        1,
        "delivery resumes once the app is healthy"
    );
    stop.cancel();
}

/// `--app-socket`: the app channel over a Unix socket instead of TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_over_a_unix_socket_app_channel() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(
        dir.path().join("resources/pubsub.yaml"),
        format!(
            "kind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: pubsub.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: pollInterval, value: 20ms}}\n",
            dir.path().join("u.db").display()
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
    let seen = Seen::default();
    let router = axum::Router::new()
        .route(
            "/dapr/subscribe",
            get(|| async {
                Json(serde_json::json!([{"pubsubname": "pubsub", "topic": "uds", "route": "/uds"}]))
            }),
        )
        .route(
            "/uds",
            post({
                let seen = seen.clone();
                move |headers: axum::http::HeaderMap, Json(event): Json<serde_json::Value>| {
                    let seen = seen.clone();
                    async move {
                        // APP_API_TOKEN travels as dapr-api-token.
                        let token = headers
                            .get("dapr-api-token")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().push((token, event));
                        "{}"
                    }
                }
            }),
        );
    let app_socket = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&app_socket).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut config = support::config(dir.path(), None);
    config.app_socket = Some(app_socket);
    config.app_api_token = Some("app-secret".into());
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    let message = Message {
        data: br#"{"over":"uds"}"#.to_vec(),
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    gateway
        .runtime
        .pubsub
        .publish("pubsub", "uds", message)
        .await
        .unwrap();
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1["data"], serde_json::json!({"over": "uds"}));
    assert_eq!(
        seen[0].0, "app-secret",
        "the app token is sent with every call"
    );
    stop.cancel();
}
