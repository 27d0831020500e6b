//! The workflow API tests' harness: a gateway on an `outrigger-local` actor
//! store (or none), HTTP calls through its router, error and list helpers.
//! Shared by `workflows_api.rs` and `workflows_grpc.rs`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_component_sdk::ComponentServer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support;

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

/// A gateway with the SQLite state store as its actor state store (or,
/// with `actor_store: false`, no component at all).
pub async fn node(actor_store: bool) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    let component_stop = CancellationToken::new();
    if actor_store {
        let yaml = format!(
            "kind: Component\nmetadata: {{name: actorstore}}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - {{name: databaseFile, value: \"{}\"}}\n  - {{name: actorStateStore, value: \"true\"}}\n",
            dir.path().join("actors.db").display()
        );
        std::fs::write(dir.path().join("resources/actorstore.yaml"), yaml).unwrap();
        let server = outrigger_local::services(ComponentServer::new(&sockets));
        let until = component_stop.clone();
        tokio::spawn(server.serve(async move { until.cancelled().await }));
        let socket = sockets.join(format!("{}.sock", outrigger_local::SOCKET));
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let stop = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), stop.clone())
        .await
        .unwrap();
    Node {
        _dir: dir,
        gateway,
        stop,
        component_stop,
    }
}

/// One HTTP request through the router: status and body (JSON, or the raw
/// text as a JSON string when it is not JSON, `null` when empty).
pub async fn call(node: &Node, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let response = outrigger::api::http::router(Arc::clone(&node.gateway.runtime))
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Assert a Dapr error answer: status and `errorCode`.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["errorCode"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

pub fn properties(body: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(body["properties"].clone()).unwrap()
}

pub fn parse_time(raw: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = raw.as_str().unwrap_or_else(|| panic!("not a time: {raw}"));
    assert!(text.ends_with('Z'), "{text} is not UTC");
    chrono::DateTime::parse_from_rfc3339(text).unwrap()
}

/// `(instanceID, runtimeStatus)` of the list API with `query`.
pub async fn list(node: &Node, query: &str) -> Vec<(String, String)> {
    let (status, body) = call(
        node,
        Method::GET,
        &format!("/v1.0-alpha1/workflows/dapr{query}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instanceID"].as_str().unwrap().to_owned(),
                i["runtimeStatus"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
