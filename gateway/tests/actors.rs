//! Actors through real gateways, real state-store components and in-test
//! actor apps (axum servers speaking daprd's app-side actor protocol).
//!
//! - One gateway on SQLite: calls, turn order, state, timers, reminders,
//!   idle deactivation, reentrancy, the list APIs, and bad input.
//! - Three gateways on one PostgreSQL: 1 000 ids hammered from every
//!   gateway never run two turns at once; a gateway that dies loses its
//!   actors to the others within the lease time, and no reminder is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::{any, get};
use http_body_util::BodyExt;
use outrigger_component_sdk::ComponentServer;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What every app of a test saw, shared across the apps (one per gateway).
#[derive(Default)]
struct Seen {
    /// Actor ids in a turn right now.
    in_turn: Mutex<HashSet<String>>,
    /// Turns that began while another turn of the same id ran.
    overlaps: AtomicUsize,
    turns: AtomicUsize,
    /// `(app, kind, id, name)`: kind is `timer`, `remind`, `deactivate`.
    events: Mutex<Vec<(usize, String, String, String)>>,
    /// Reentrancy ids the app was called with.
    chains: Mutex<Vec<Option<String>>>,
}

impl Seen {
    fn count(&self, kind: &str, id: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k, i, _)| k == kind && (id.is_empty() || i == id))
            .count()
    }
}

#[derive(Clone)]
struct AppState {
    index: usize,
    seen: Arc<Seen>,
    config: serde_json::Value,
    gateway_http: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

async fn dapr_config(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(app.config.clone())
}

/// Methods: `work` (a short turn, answers which app ran it), `fail`
/// (an actor error), `nested` (calls the same actor again through the
/// gateway: needs reentrancy), `timer/*` and `remind/*` (recorded).
async fn method(
    State(app): State<AppState>,
    Path((actor_type, id, method)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let seen = &app.seen;
    let chain = headers
        .get("dapr-reentrancy-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.chains.lock().unwrap().push(chain.clone());
    if let Some((kind, name)) = method.split_once('/') {
        seen.events
            .lock()
            .unwrap()
            .push((app.index, kind.to_owned(), id.clone(), name.to_owned()));
        if name == "cancel-me" {
            return (StatusCode::OK, [("X-Daprremindercancel", "true")], "").into_response();
        }
        return (StatusCode::OK, "").into_response();
    }
    match method.as_str() {
        "fail" => {
            return (
                StatusCode::OK,
                [("X-Daprerrorresponseheader", "true")],
                "it broke",
            )
                .into_response();
        }
        "missing" => return (StatusCode::NOT_FOUND, "no such method").into_response(),
        "nested" => {
            let gateway = app.gateway_http.lock().unwrap().unwrap();
            let mut request = Request::builder()
                .method(Method::PUT)
                .uri(format!(
                    "http://{gateway}/v1.0/actors/{actor_type}/{id}/method/work"
                ))
                .header("content-type", "application/json");
            if let Some(chain) = &chain {
                request = request.header("Dapr-Reentrancy-Id", chain);
            }
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Body>();
            let nested = client.request(request.body(Body::from("{}")).unwrap());
            return match tokio::time::timeout(Duration::from_millis(1500), nested).await {
                Ok(Ok(reply)) => (
                    StatusCode::OK,
                    format!("nested:{}", reply.status().as_u16()),
                )
                    .into_response(),
                Ok(Err(err)) => (StatusCode::OK, format!("nested:error {err}")).into_response(),
                Err(_) => (StatusCode::OK, "nested:blocked").into_response(),
            };
        }
        _ => {}
    }
    if !seen.in_turn.lock().unwrap().insert(id.clone()) {
        seen.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    seen.in_turn.lock().unwrap().remove(&id);
    seen.turns.fetch_add(1, Ordering::SeqCst);
    let echoed = String::from_utf8_lossy(&body).into_owned();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({"app": app.index, "got": echoed}).to_string(),
    )
        .into_response()
}

async fn deactivate(
    State(app): State<AppState>,
    Path((_actor_type, id)): Path<(String, String)>,
) -> StatusCode {
    app.seen
        .events
        .lock()
        .unwrap()
        .push((app.index, "deactivate".into(), id, String::new()));
    StatusCode::OK
}

/// Start an actor app; returns its port.
async fn actor_app(state: AppState) -> u16 {
    let router = axum::Router::new()
        .route("/dapr/config", get(dapr_config))
        .route("/actors/{actor_type}/{id}/method/{*method}", any(method))
        .route(
            "/actors/{actor_type}/{id}",
            axum::routing::delete(deactivate),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

struct Node {
    _dir: tempfile::TempDir,
    gateway: outrigger::Gateway,
    stop: CancellationToken,
    component_stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        self.component_stop.cancel();
    }
}

/// A gateway with its own state-store component (`state_yaml`, served by
/// `serve`) marked as the actor store, and, with `app`, an actor app.
async fn node(
    component: &str,
    state_yaml: &str,
    app: Option<(usize, Arc<Seen>, serde_json::Value)>,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(dir.path().join("resources/actorstore.yaml"), state_yaml).unwrap();
    let component_stop = CancellationToken::new();
    let server = ComponentServer::new(&sockets);
    let server = match component {
        "postgres" => outrigger_postgres::services(server),
        _ => outrigger_local::services(server),
    };
    let until = component_stop.clone();
    tokio::spawn(server.serve(async move { until.cancelled().await }));
    let socket = sockets.join(format!(
        "{}.sock",
        if component == "postgres" {
            "postgres"
        } else {
            outrigger_local::SOCKET
        }
    ));
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut config = support::config(dir.path(), None);
    config.actor_lease_ttl = Duration::from_secs(2);
    let gateway_http = Arc::new(Mutex::new(None));
    if let Some((index, seen, actor_config)) = app {
        config.app_port = Some(
            actor_app(AppState {
                index,
                seen,
                config: actor_config,
                gateway_http: Arc::clone(&gateway_http),
            })
            .await,
        );
    }
    let stop = CancellationToken::new();
    let gateway = outrigger::Gateway::start(config, stop.clone())
        .await
        .unwrap();
    *gateway_http.lock().unwrap() = Some(gateway.http_addr);
    Node {
        _dir: dir,
        gateway,
        stop,
        component_stop,
    }
}

fn sqlite_yaml(db: &std::path::Path) -> String {
    format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
        db.display()
    )
}

fn postgres_yaml(url: &str, table: &str) -> String {
    format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {table}}}\n  - {{name: actorStateStore, value: \"true\"}}\n"
    )
}

async fn call(node: &Node, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
    let response = outrigger::api::http::router(Arc::clone(&node.gateway.runtime))
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Wait until the gateway hosts actors (its placement entry is renewed).
async fn host_ready(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = call(node, Method::GET, "/v1.0/metadata", "").await;
        let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
        if meta["actorRuntime"]["hostReady"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "host never ready: {meta}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "entities": ["Counter", "Reentrant"],
        "actorIdleTimeout": "1h",
        "actorScanInterval": "30s",
        "entitiesConfig": [{"entities": ["Reentrant"], "reentrancy": {"enabled": true, "maxStackDepth": 4}}],
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_calls_state_timers_reminders_and_errors() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let node = node(
        "local",
        &yaml,
        Some((0, Arc::clone(&seen), config(serde_json::json!({})))),
    )
    .await;
    host_ready(&node).await;

    // A call reaches the app with the body; 200 with its answer.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/work",
        "\"hi\"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"app":0,"got":"\"hi\""}"#);

    // 50 concurrent calls to one id run one at a time.
    let calls = (0..50).map(|_| {
        call(
            &node,
            Method::PUT,
            "/v1.0/actors/Counter/busy/method/work",
            "{}",
        )
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "two turns of one actor overlapped"
    );

    // An app error header → 500 with the app's body; an app 404 → ERR_ACTOR_INVOKE_METHOD.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/fail",
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "it broke")
    );
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/method/missing",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_INVOKE_METHOD") && body.contains("404"),
        "{body}"
    );

    // State: a transaction, then reads; HTTP stores the value's JSON.
    let tx = r#"[{"operation":"upsert","request":{"key":"count","value":{"n":3}}},
                 {"operation":"upsert","request":{"key":"gone","value":1}},
                 {"operation":"delete","request":{"key":"gone"}}]"#;
    let (status, body) = call(&node, Method::POST, "/v1.0/actors/Counter/a1/state", tx).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a1/state/count",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"n":3}"#));
    let (status, _) = call(&node, Method::GET, "/v1.0/actors/Counter/a1/state/gone", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Another actor's key of the same name is separate.
    let (status, _) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a2/state/count",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A timer fires three times (R3), under the actor's turn.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/a1/timers/tick",
        r#"{"dueTime":"0s","period":"R3/PT0.1S","callback":"onTick","data":{"x":1}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    wait_for("3 timer firings", 5, || seen.count("timer", "a1") >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("timer", "a1"), 3, "R3 means exactly three");

    // Reminders: one every 100 ms five times; one that the app cancels.
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r1/reminders/five",
        r#"{"dueTime":"0s","period":"R5/PT0.1S","data":"payload"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r1/reminders/five",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (got["period"].as_str(), got["data"].as_str()),
        (Some("R5/PT0.1S"), Some("payload"))
    );
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r2/reminders/cancel-me",
        r#"{"period":"0.1s"}"#,
    )
    .await;
    let (_, listed) = call(
        &node,
        Method::GET,
        "/v1.0-alpha1/actors/Counter/reminders",
        "",
    )
    .await;
    assert!(
        listed.contains("\"five\"") && listed.contains("cancel-me"),
        "{listed}"
    );
    wait_for("5 reminder firings", 10, || {
        eprintln!("r1 {}", seen.count("remind", "r1"));
        seen.count("remind", "r1") >= 5
    })
    .await;
    wait_for("the cancelled reminder to go", 5, || {
        seen.count("remind", "r2") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(seen.count("remind", "r1"), 5, "R5 means exactly five");
    assert_eq!(
        seen.count("remind", "r2"),
        1,
        "X-Daprremindercancel stops a reminder"
    );
    let (status, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r1/reminders/five",
        "",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a finished reminder is gone: {body}"
    );
    assert!(body.contains("ERR_ACTOR_REMINDER_NOT_FOUND"), "{body}");

    // A TTL ends a periodic reminder (counted from its due time).
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r4/reminders/brief",
        r#"{"period":"100ms","ttl":"PT0.35S"}"#,
    )
    .await;
    wait_for("the TTL reminder to fire", 5, || {
        seen.count("remind", "r4") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let fired = seen.count("remind", "r4");
    assert!(
        (2..=4).contains(&fired),
        "a 350 ms TTL at 100 ms allows at most 4 firings, got {fired}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("remind", "r4"), fired, "fired after its TTL");

    // Deleting a reminder stops it.
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/r3/reminders/r",
        r#"{"dueTime":"1h"}"#,
    )
    .await;
    let (status, _) = call(
        &node,
        Method::DELETE,
        "/v1.0/actors/Counter/r3/reminders/r",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/r3/reminders/r",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Reentrancy: on for Reentrant (the chain id comes back), off for Counter (blocked).
    let (_, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Reentrant/x/method/nested",
        "",
    )
    .await;
    assert_eq!(body, "nested:200", "reentrant self-call");
    let (_, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Counter/y/method/nested",
        "",
    )
    .await;
    assert_eq!(
        body, "nested:blocked",
        "a non-reentrant actor cannot call itself"
    );
    assert!(seen.chains.lock().unwrap().iter().any(Option::is_some));

    // The list API shows the active actors.
    let (status, body) = call(&node, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("\"a1\"") && body.contains("\"busy\""),
        "{body}"
    );

    // Bad input, each naming the problem.
    for (uri, payload, code, needle) in [
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"period":"often"}"#,
            "ERR_MALFORMED_REQUEST",
            "period",
        ),
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"dueTime":"soon"}"#,
            "ERR_MALFORMED_REQUEST",
            "dueTime",
        ),
        (
            "/v1.0/actors/Counter/a1/reminders/r",
            r#"{"misfirePolicy":"maybe"}"#,
            "ERR_MALFORMED_REQUEST",
            "misfirePolicy",
        ),
        (
            "/v1.0/actors/Counter/a1/timers/t",
            r#"{"ttl":"never"}"#,
            "ERR_MALFORMED_REQUEST",
            "ttl",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            r#"[{"operation":"merge","request":{"key":"k"}}]"#,
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
            "operation",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            r#"[{"operation":"upsert","request":{}}]"#,
            "ERR_MALFORMED_REQUEST",
            "key",
        ),
        (
            "/v1.0/actors/Counter/a1/state",
            "not json",
            "ERR_MALFORMED_REQUEST",
            "deserializ",
        ),
        (
            "/v1.0/actors/Nobody/a1/method/work",
            "",
            "ERR_ACTOR_NO_PLACEMENT",
            "Nobody",
        ),
    ] {
        let (status, body) = call(&node, Method::POST, uri, payload).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{uri}: {status}"
        );
        assert!(
            body.contains(code) && body.contains(needle),
            "{uri} {payload}: {status} {body}"
        );
    }
    // The state written earlier is untouched by the failed requests.
    let (_, body) = call(
        &node,
        Method::GET,
        "/v1.0/actors/Counter/a1/state/count",
        "",
    )
    .await;
    assert_eq!(body, r#"{"n":3}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_deactivated_and_reminders_survive_a_restart() {
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let idle =
        config(serde_json::json!({"actorIdleTimeout": "300ms", "actorScanInterval": "100ms"}));
    let first = node("local", &yaml, Some((0, Arc::clone(&seen), idle.clone()))).await;
    host_ready(&first).await;
    call(
        &first,
        Method::POST,
        "/v1.0/actors/Counter/sleepy/method/work",
        "",
    )
    .await;
    wait_for("idle deactivation", 5, || {
        seen.count("deactivate", "sleepy") == 1
    })
    .await;
    let (_, body) = call(&first, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
    assert!(
        !body.contains("sleepy"),
        "deactivated actors are not listed: {body}"
    );

    // A reminder due in 1.5 s; the gateway stops (draining its actors) first.
    let (status, _) = call(
        &first,
        Method::POST,
        "/v1.0/actors/Counter/durable/reminders/later",
        r#"{"dueTime":"1500ms"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.count("remind", "durable"), 0);
    let second = node("local", &yaml, Some((1, Arc::clone(&seen), idle))).await;
    host_ready(&second).await;
    wait_for("the reminder after the restart", 10, || {
        seen.count("remind", "durable") == 1
    })
    .await;
    let fired_by: Vec<usize> = seen
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.1 == "remind")
        .map(|e| e.0)
        .collect();
    assert_eq!(fired_by, [1], "fired once, by the restarted gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_actor_state_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let stop = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), stop.clone())
        .await
        .unwrap();
    let node = Node {
        _dir: dir,
        gateway,
        stop,
        component_stop: CancellationToken::new(),
    };
    let (status, body) = call(&node, Method::POST, "/v1.0/actors/Counter/a/method/m", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_RUNTIME_NOT_FOUND") && body.contains("actorStateStore"),
        "{body}"
    );
}

/// 1 000 ids called from three gateways at once, each gateway with its own
/// app and `outrigger-postgres` component on one table; then one gateway
/// dies (its component stops, so it cannot renew) and its actors and
/// reminders move to the two others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_postgresql_never_overlap_and_survive_a_death() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let table = format!("actors_{}", std::process::id());
    let yaml = postgres_yaml(&url, &table);
    let seen = Arc::new(Seen::default());
    let mut nodes = Vec::new();
    for index in 0..3 {
        let n = node(
            "postgres",
            &yaml,
            Some((index, Arc::clone(&seen), config(serde_json::json!({})))),
        )
        .await;
        host_ready(&n).await;
        nodes.push(Arc::new(n));
    }

    let ids: Vec<String> = (0..1000).map(|i| format!("id-{i}")).collect();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for node in &nodes {
        for chunk in ids.chunks(50) {
            let (node, chunk) = (Arc::clone(node), chunk.to_vec());
            callers.spawn(async move {
                for id in chunk {
                    let uri = format!("/v1.0/actors/Counter/{id}/method/work");
                    let (status, body) = call(&node, Method::PUT, &uri, "{}").await;
                    assert_eq!(status, StatusCode::OK, "{id}: {body}");
                }
            });
        }
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    eprintln!("3 000 calls over 1 000 ids in {:?}", started.elapsed());
    assert_eq!(seen.turns.load(Ordering::SeqCst), 3000);
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "two turns of one id overlapped"
    );

    // Every id is active on exactly one gateway, and all three host some.
    let mut hosts: HashMap<String, usize> = HashMap::new();
    let mut per_app = [0usize; 3];
    for n in &nodes {
        let (_, body) = call(n, Method::GET, "/v1.0-alpha1/actors/Counter", "").await;
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let listed = listed["actors"].as_array().unwrap().clone();
        assert_eq!(listed.len(), 1000, "every gateway lists all actors");
    }
    for (i, n) in nodes.iter().enumerate() {
        let local = n.gateway.runtime.actors.local_ids("Counter");
        per_app[i] = local.len();
        for id in local {
            assert!(
                hosts.insert(id.clone(), i).is_none(),
                "{id} active on two gateways"
            );
        }
    }
    assert_eq!(hosts.len(), 1000);
    assert!(
        per_app.iter().all(|n| *n > 200),
        "placement spreads: {per_app:?}"
    );

    // Reminders on 30 ids, every 200 ms.
    let reminded: Vec<String> = ids.iter().take(30).cloned().collect();
    for id in &reminded {
        let uri = format!("/v1.0/actors/Counter/{id}/reminders/beat");
        let (status, body) = call(&nodes[0], Method::POST, &uri, r#"{"period":"200ms"}"#).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    wait_for("every reminder firing", 10, || {
        reminded.iter().all(|id| seen.count("remind", id) >= 2)
    })
    .await;

    // Gateway 0 dies: it can no longer reach the store to renew.
    let dead: Vec<String> = nodes[0].gateway.runtime.actors.local_ids("Counter");
    assert!(!dead.is_empty());
    nodes[0].component_stop.cancel();
    let died = Instant::now();
    let counts: HashMap<String, usize> = reminded
        .iter()
        .map(|id| (id.clone(), seen.count("remind", id)))
        .collect();

    // Its actors keep answering: from it while its lease lasts (2 s), then
    // from the two others.
    let first = &dead[0];
    let uri = format!("/v1.0/actors/Counter/{first}/method/work");
    let moved = loop {
        let (status, body) = call(&nodes[1], Method::PUT, &uri, "{}").await;
        assert_eq!(status, StatusCode::OK, "{first}: {body}");
        let app: serde_json::Value = serde_json::from_str(&body).unwrap();
        if app["app"] != 0 {
            break died.elapsed();
        }
        assert!(
            died.elapsed() < Duration::from_secs(10),
            "{first} never moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the dead gateway's actors answered elsewhere after {moved:?} (lease 2 s)");
    assert!(moved < Duration::from_millis(3500), "moving took {moved:?}");
    for id in dead.iter().skip(1).take(100) {
        let uri = format!("/v1.0/actors/Counter/{id}/method/work");
        let (status, body) = call(&nodes[2], Method::PUT, &uri, "{}").await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        let app: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_ne!(app["app"], 0, "{id} still ran on the dead gateway");
    }

    // No reminder is lost: each fires again after the death, elsewhere.
    wait_for("every reminder after the death", 10, || {
        reminded
            .iter()
            .all(|id| seen.count("remind", id) >= counts[id] + 2)
    })
    .await;
    assert_eq!(seen.overlaps.load(Ordering::SeqCst), 0);
    for node in &nodes {
        node.stop.cancel();
    }
}

/// The gRPC actor rpcs reach the same runtime as HTTP, and read each
/// other's writes; bad input is `INVALID_ARGUMENT` naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_actor_api() {
    use outrigger_proto::runtime as pb;
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let seen = Arc::new(Seen::default());
    let node = node(
        "local",
        &yaml,
        Some((0, Arc::clone(&seen), config(serde_json::json!({})))),
    )
    .await;
    host_ready(&node).await;
    let mut client =
        pb::dapr_client::DaprClient::connect(format!("http://{}", node.gateway.grpc_addr))
            .await
            .unwrap();

    let reply = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            method: "work".into(),
            data: b"7".to_vec(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data, br#"{"app":0,"got":"7"}"#);
    let failed = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            method: "fail".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Internal);
    assert_eq!(failed.message(), "it broke");

    // gRPC stores raw bytes; HTTP reads them back as stored.
    client
        .execute_actor_state_transaction(pb::ExecuteActorStateTransactionRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            operations: vec![pb::TransactionalActorStateOperation {
                operation_type: "upsert".into(),
                key: "k".into(),
                value: Some(prost_types::Any {
                    type_url: String::new(),
                    value: b"raw".to_vec(),
                }),
                metadata: HashMap::new(),
            }],
        })
        .await
        .unwrap();
    let state = client
        .get_actor_state(pb::GetActorStateRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            key: "k".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.data, b"raw");
    let (_, body) = call(&node, Method::GET, "/v1.0/actors/Counter/g1/state/k", "").await;
    assert_eq!(body, "raw");

    // Reminders: register, get, list, unregister by type.
    client
        .register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
            due_time: "1h".into(),
            data: br#"{"n":1}"#.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = client
        .get_actor_reminder(pb::GetActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.due_time.as_deref(), Some("1h"));
    // Stored as daprd does: the JSON of the raw bytes, a base64 string.
    assert_eq!(got.data.unwrap().value, br#""eyJuIjoxfQ==""#);
    let listed = client
        .list_actor_reminders(pb::ListActorRemindersRequest {
            actor_type: "Counter".into(),
            actor_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.reminders.len(), 1);
    assert_eq!(listed.reminders[0].name, "later");
    client
        .unregister_actor_reminders_by_type(pb::UnregisterActorRemindersByTypeRequest {
            actor_type: "Counter".into(),
            actor_id: None,
        })
        .await
        .unwrap();
    let missing = client
        .get_actor_reminder(pb::GetActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "later".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // Timers over gRPC fire like HTTP ones.
    client
        .register_actor_timer(pb::RegisterActorTimerRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            name: "t".into(),
            due_time: "0s".into(),
            period: "R2/PT0.05S".into(),
            callback: "cb".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    wait_for("two gRPC timer firings", 5, || {
        seen.count("timer", "g1") == 2
    })
    .await;

    // Bad input.
    let empty = client
        .invoke_actor(pb::InvokeActorRequest {
            actor_type: "Counter".into(),
            method: "work".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(empty.message().contains("actor id"), "{}", empty.message());
    let bad = client
        .register_actor_reminder(pb::RegisterActorReminderRequest {
            actor_type: "Counter".into(),
            actor_id: "g2".into(),
            name: "r".into(),
            period: "sometimes".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("period"), "{}", bad.message());
    let op = client
        .execute_actor_state_transaction(pb::ExecuteActorStateTransactionRequest {
            actor_type: "Counter".into(),
            actor_id: "g1".into(),
            operations: vec![pb::TransactionalActorStateOperation {
                operation_type: "merge".into(),
                key: "k".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(op.code(), tonic::Code::InvalidArgument);
    let meta = client
        .get_metadata(pb::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    let runtime = meta.actor_runtime.unwrap();
    assert!(runtime.host_ready);
    assert!(
        runtime
            .active_actors
            .iter()
            .any(|a| a.r#type == "Counter" && a.count >= 1)
    );
}

/// A gRPC app hosts actors over `SubscribeActorEventsAlpha1`: it registers
/// its types, answers invoke, reminder and deactivate requests by id, and
/// when its stream ends the gateway stops hosting (so it can register again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_app_hosts_actors_over_the_event_stream() {
    use outrigger_proto::runtime as pb;
    use pb::subscribe_actor_events_request_alpha1::RequestType as In;
    use pb::subscribe_actor_events_response_alpha1::ResponseType as Out;
    let db = tempfile::tempdir().unwrap();
    let yaml = sqlite_yaml(&db.path().join("actors.db"));
    let node = Arc::new(node("local", &yaml, None).await);
    let mut client =
        pb::dapr_client::DaprClient::connect(format!("http://{}", node.gateway.grpc_addr))
            .await
            .unwrap();

    // A first message that is not a registration is refused.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(pb::SubscribeActorEventsRequestAlpha1 {
        request_type: Some(In::InvokeResponse(Default::default())),
    })
    .await
    .unwrap();
    let refused = client
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("initial_request"),
        "{}",
        refused.message()
    );

    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(pb::SubscribeActorEventsRequestAlpha1 {
        request_type: Some(In::InitialRequest(
            pb::SubscribeActorEventsRequestInitialAlpha1 {
                entities: vec!["Streamed".into()],
                actor_idle_timeout: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut events = client
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert!(matches!(first.response_type, Some(Out::InitialResponse(_))));

    // The app side: answer every request, recording what came.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok(Some(message)) = events.message().await {
            let reply = match message.response_type {
                Some(Out::InvokeRequest(r)) => {
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("invoke {} {}", r.actor_id, r.method));
                    if r.method == "nope" {
                        In::RequestFailed(pb::SubscribeActorEventsRequestFailedAlpha1 {
                            id: r.id,
                            code: tonic::Code::NotFound as u32,
                            message: "no method nope".into(),
                        })
                    } else {
                        let mut data = b"echo:".to_vec();
                        data.extend(r.data);
                        In::InvokeResponse(pb::SubscribeActorEventsRequestInvokeResponseAlpha1 {
                            id: r.id,
                            data,
                            error: r.method == "boom",
                            ..Default::default()
                        })
                    }
                }
                Some(Out::ReminderRequest(r)) => {
                    let data = r.data.map(|d| d.type_url).unwrap_or_default();
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("remind {} {} {data}", r.actor_id, r.name));
                    In::ReminderResponse(pb::SubscribeActorEventsRequestReminderResponseAlpha1 {
                        id: r.id,
                        cancel: true,
                    })
                }
                Some(Out::DeactivateRequest(r)) => {
                    recorded
                        .lock()
                        .unwrap()
                        .push(format!("deactivate {}", r.actor_id));
                    In::DeactivateResponse(
                        pb::SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: r.id },
                    )
                }
                _ => continue,
            };
            if tx
                .send(pb::SubscribeActorEventsRequestAlpha1 {
                    request_type: Some(reply),
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    host_ready(&node).await;

    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/hello",
        "42",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "echo:42"));
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/boom",
        "x",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "echo:x")
    );
    let (status, body) = call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s1/method/nope",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("ERR_ACTOR_INVOKE_METHOD") && body.contains("no method nope"),
        "{body}"
    );

    // A reminder arrives on the stream with its data as a BytesValue; the app cancels it.
    call(
        &node,
        Method::POST,
        "/v1.0/actors/Streamed/s2/reminders/r",
        r#"{"period":"100ms","data":{"a":1}}"#,
    )
    .await;
    let remind = "remind s2 r type.googleapis.com/google.protobuf.BytesValue".to_owned();
    wait_for("the reminder on the stream", 5, || {
        seen.lock().unwrap().contains(&remind)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fired = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| **s == remind)
        .count();
    assert_eq!(fired, 1, "cancel: true ends the reminder");

    // Idle actors are deactivated through the stream.
    wait_for("deactivation on the stream", 5, || {
        seen.lock().unwrap().iter().any(|s| s == "deactivate s1")
    })
    .await;
}
