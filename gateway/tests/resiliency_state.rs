//! `Resiliency` outbound policies on component calls: a state store that
//! fails a few times is retried through, the same store without a policy
//! fails at once, and one that always fails trips its circuit breaker so the
//! component is no longer called; a flaky pub/sub and output binding are
//! retried through too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_component_sdk::bindings::{InvokeRequest, InvokeResponse, OutputBinding};
use outrigger_component_sdk::pubsub::{MessageStream, PubSub, PublishRequest, Topic};
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
kind: Component
metadata: {name: flakypubsub}
spec:
  type: pubsub.flaky
  version: v1
  metadata: [{name: failures, value: "3"}]
---
kind: Component
metadata: {name: flakybinding}
spec:
  type: bindings.flaky
  version: v1
  metadata: [{name: failures, value: "4"}]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: outbound}
spec:
  policies:
    timeouts: {short: 2s}
    retries:
      thrice: {policy: constant, duration: 10ms, maxRetries: 3}
      fourTimes: {policy: exponential, initialInterval: 5ms, maxRetries: 4}
    circuitBreakers:
      two: {timeout: 30s, trip: consecutiveFailures >= 2}
  targets:
    components:
      flakystore:
        outbound: {timeout: short, retry: thrice}
      brokenstore:
        outbound: {circuitBreaker: two}
      flakypubsub:
        outbound: {retry: thrice}
      flakybinding:
        outbound: {retry: fourTimes}
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
        configure(&self.failures, &metadata)
    }
    async fn get(&self, request: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        self.inner.get(request).await
    }
    async fn set(&self, request: SetRequest) -> Result<(), ComponentError> {
        refuse(&self.failures, &self.writes)?;
        self.inner.set(request).await
    }
    async fn delete(&self, request: DeleteRequest) -> Result<(), ComponentError> {
        self.inner.delete(request).await
    }
}

/// Counts a call for `failures`, and whether it must be refused.
fn refuse(failures: &Mutex<(String, u32)>, writes: &Writes) -> Result<(), ComponentError> {
    let mut failures = failures.lock().unwrap();
    *writes
        .lock()
        .unwrap()
        .entry(failures.0.clone())
        .or_default() += 1;
    if failures.1 > 0 {
        failures.1 -= 1;
        return Err(ComponentError::unavailable("backend is restarting"));
    }
    Ok(())
}

fn configure(failures: &Mutex<(String, u32)>, metadata: &Metadata) -> Result<(), ComponentError> {
    let text = metadata.required("failures")?.to_owned();
    let n = text.parse().unwrap();
    *failures.lock().unwrap() = (text, n);
    Ok(())
}

/// A pub/sub whose first `failures` publishes are refused.
struct FlakyPubSub {
    failures: Mutex<(String, u32)>,
    writes: Writes,
}

#[async_trait]
impl PubSub for FlakyPubSub {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        configure(&self.failures, &metadata)
    }
    async fn publish(&self, _: PublishRequest) -> Result<(), ComponentError> {
        refuse(&self.failures, &self.writes)
    }
    async fn subscribe(&self, _: Topic) -> Result<MessageStream, ComponentError> {
        Err(ComponentError::unimplemented("subscribe"))
    }
}

/// An output binding whose first `failures` invocations are refused.
struct FlakyBinding {
    failures: Mutex<(String, u32)>,
    writes: Writes,
}

#[async_trait]
impl OutputBinding for FlakyBinding {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        configure(&self.failures, &metadata)
    }
    fn operations(&self) -> Vec<String> {
        vec!["create".into()]
    }
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ComponentError> {
        refuse(&self.failures, &self.writes)?;
        Ok(InvokeResponse {
            data: request.data,
            metadata: HashMap::new(),
            content_type: None,
        })
    }
}

async fn http(
    router: &outrigger::api::http::Api,
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
        let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
        s.state_store(move || Flaky {
            inner: MemoryStore::default(),
            failures: Mutex::new((String::new(), 0)),
            writes: a.clone(),
        })
        .pubsub(move || FlakyPubSub {
            failures: Mutex::new((String::new(), 0)),
            writes: b.clone(),
        })
        .output_binding(move || FlakyBinding {
            failures: Mutex::new((String::new(), 0)),
            writes: c.clone(),
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

    // Publishing and output bindings: retried through their refusals.
    let (status, body) = http(
        &router,
        Method::POST,
        "/v1.0/publish/flakypubsub/orders",
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(count("3"), 4);
    let (status, body) = http(
        &router,
        Method::POST,
        "/v1.0/bindings/flakybinding",
        r#"{"operation":"create","data":"hi"}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hi"));
    assert_eq!(count("4"), 5);
    shutdown.cancel();
    stop.cancel();
}
