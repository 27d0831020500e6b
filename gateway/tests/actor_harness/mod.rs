//! The actor tests' harness: an in-test actor app speaking daprd's
//! app-side protocol, gateways with their own state-store component, and
//! helpers to call and wait on them. Shared by `actors.rs` and `actors_grpc.rs`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
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

use crate::support;

/// What every app of a test saw, shared across the apps (one per gateway).
#[derive(Default)]
pub struct Seen {
    /// Actor ids in a turn right now.
    pub in_turn: Mutex<HashSet<String>>,
    /// Turns that began while another turn of the same id ran.
    pub overlaps: AtomicUsize,
    pub turns: AtomicUsize,
    /// `(app, kind, id, name)`: kind is `timer`, `remind`, `deactivate`.
    pub events: Mutex<Vec<(usize, String, String, String)>>,
    /// Reentrancy ids the app was called with.
    pub chains: Mutex<Vec<Option<String>>>,
}

impl Seen {
    pub fn count(&self, kind: &str, id: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k, i, _)| k == kind && (id.is_empty() || i == id))
            .count()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub index: usize,
    pub seen: Arc<Seen>,
    pub config: serde_json::Value,
    pub gateway_http: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

pub async fn dapr_config(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(app.config.clone())
}

/// Methods: `work` (a short turn, answers which app ran it), `fail`
/// (an actor error), `nested` (calls the same actor again through the
/// gateway: needs reentrancy), `timer/*` and `remind/*` (recorded).
pub async fn method(
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

pub async fn deactivate(
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
pub async fn actor_app(state: AppState) -> u16 {
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

pub struct Node {
    pub _dir: tempfile::TempDir,
    pub gateway: outrigger::Gateway,
    pub stop: CancellationToken,
    pub component_stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        self.component_stop.cancel();
    }
}

/// A gateway with its own state-store component (`state_yaml`, served by
/// `serve`) marked as the actor store, and, with `app`, an actor app.
/// Every test gateway's actor lease time: short, so a death is seen soon,
/// yet long enough that a renewal delayed by a loaded 2-core CI machine
/// (three gateways, their components and apps in one process) is not a lapse.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

pub async fn node(
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
    config.actor_lease_ttl = LEASE_TTL;
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

pub fn sqlite_yaml(db: &std::path::Path) -> String {
    format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
        db.display()
    )
}

pub fn postgres_yaml(url: &str, table: &str) -> String {
    format!(
        "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - {{name: connectionString, value: \"{url}\"}}\n  - {{name: tableName, value: {table}}}\n  - {{name: actorStateStore, value: \"true\"}}\n"
    )
}

pub async fn call(node: &Node, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
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
pub async fn host_ready(node: &Node) {
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

pub async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn config(extra: serde_json::Value) -> serde_json::Value {
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
