//! `Resiliency` outbound policies on state calls: a state store that fails
//! a few times is retried through, the same store without a policy fails at
//! once, and one that always fails trips its circuit breaker so the
//! component is no longer called.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_component_sdk::state::{
    DeleteRequest, GetRequest, SetRequest, StateItem, StateStore,
};
use outrigger_component_sdk::{ComponentError, ComponentServer, Metadata, async_trait};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use support::MemoryStore;

const RESOURCES: &str = r#"
kind: Component
metadata: {name: flakystore}
spec:
  type: state.flaky
  version: v1
  metadata: [{name: failures, value: "2"}]
---
kind: Component
metadata: {name: plainstore}
spec:
  type: state.flaky
  version: v1
  metadata: [{name: failures, value: "1"}]
---
kind: Component
metadata: {name: brokenstore}
spec:
  type: state.flaky
  version: v1
  metadata: [{name: failures, value: "1000"}]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: outbound}
spec:
  policies:
    timeouts: {short: 2s}
    retries:
      thrice: {policy: constant, duration: 10ms, maxRetries: 3}
    circuitBreakers:
      two: {timeout: 30s, trip: consecutiveFailures >= 2}
  targets:
    components:
      flakystore:
        outbound: {timeout: short, retry: thrice}
      brokenstore:
        outbound: {circuitBreaker: two}
"#;

/// Writes seen per instance, by its `failures` setting.
type Writes = Arc<Mutex<HashMap<String, u32>>>;

/// An in-memory store whose first `failures` writes are refused as unavailable.
struct Flaky {
    inner: MemoryStore,
    failures: Mutex<(String, u32)>,
    writes: Writes,
}

#[async_trait]
impl StateStore for Flaky {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        let failures = metadata.required("failures")?.to_owned();
        let n = failures.parse().unwrap();
        *self.failures.lock().unwrap() = (failures, n);
        Ok(())
    }
    async fn get(&self, request: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        self.inner.get(request).await
    }
    async fn set(&self, request: SetRequest) -> Result<(), ComponentError> {
        {
            let mut failures = self.failures.lock().unwrap();
            *self
                .writes
                .lock()
                .unwrap()
                .entry(failures.0.clone())
                .or_default() += 1;
            if failures.1 > 0 {
                failures.1 -= 1;
                return Err(ComponentError::unavailable("backend is restarting"));
            }
        }
        self.inner.set(request).await
    }
    async fn delete(&self, request: DeleteRequest) -> Result<(), ComponentError> {
        self.inner.delete(request).await
    }
}

async fn http(
    router: &axum::Router,
    method: Method,
    uri: &str,
    body: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_calls_follow_outbound_policies() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir_all(dir.path().join("resources")).unwrap();
    std::fs::write(dir.path().join("resources/state.yaml"), RESOURCES).unwrap();
    let writes = Writes::default();
    let seen = writes.clone();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = ComponentServer::new(&sockets).service("flaky", move |s| {
        let seen = seen.clone();
        s.state_store(move || Flaky {
            inner: MemoryStore::default(),
            failures: Mutex::new((String::new(), 0)),
            writes: seen.clone(),
        })
    });
    tokio::spawn(server.serve(async move { stopped.cancelled().await }));
    let socket = sockets.join("flaky.sock");
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutdown = CancellationToken::new();
    let gateway = outrigger::Gateway::start(support::config(dir.path(), None), shutdown.clone())
        .await
        .unwrap();
    let router = outrigger::api::http::router(Arc::clone(&gateway.runtime));
    let save = r#"[{"key":"k","value":"v"}]"#;
    let count = |n: &str| writes.lock().unwrap().get(n).copied().unwrap_or(0);

    // Two refusals, then the third attempt is stored.
    let (status, body) = http(&router, Method::POST, "/v1.0/state/flakystore", save).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(count("2"), 3);
    let (status, body) = http(&router, Method::GET, "/v1.0/state/flakystore/k", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "\"v\""));

    // No policy: the first refusal is the answer.
    let (status, body) = http(&router, Method::POST, "/v1.0/state/plainstore", save).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body.contains("ERR_STATE_SAVE") && body.contains("restarting"),
        "{body}"
    );
    assert_eq!(count("1"), 1);

    // Two failures trip the breaker; then the component is not called.
    for _ in 0..2 {
        let (_, body) = http(&router, Method::POST, "/v1.0/state/brokenstore", save).await;
        assert!(body.contains("restarting"), "{body}");
    }
    for _ in 0..3 {
        let (status, body) = http(&router, Method::POST, "/v1.0/state/brokenstore", save).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("ERR_STATE_SAVE")
                && body.contains("circuit breaker is open")
                && body.contains("brokenstore"),
            "{body}"
        );
    }
    assert_eq!(count("1000"), 2);
    shutdown.cancel();
    stop.cancel();
}
