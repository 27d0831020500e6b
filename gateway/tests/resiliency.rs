//! `Resiliency` app targets applied to service invocation on the caller's
//! gateway, between real gateways found through one registry folder: retries
//! of a flaky callee (and none without a policy), a circuit breaker that
//! trips on an always-failing callee, fails fast without calling it, and
//! closes after one trial call once it is healthy, a timeout on a slow
//! callee, and a malformed resiliency file stopping the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const RESILIENCY: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: invoke}
spec:
  policies:
    timeouts:
      short: 300ms
    retries:
      quick:
        policy: constant
        duration: 20ms
        maxRetries: 5
        matching: {httpStatusCodes: "500-504"}
    circuitBreakers:
      tripAfterThree: {maxRequests: 1, timeout: 1s, trip: consecutiveFailures >= 3}
  targets:
    apps:
      callee: {retry: quick}
      fragile: {circuitBreaker: tripAfterThree}
      sluggish: {timeout: short}
      ghost: {circuitBreaker: tripAfterThree}
"#;

/// What the test app has been asked, per route.
#[derive(Default)]
struct Seen {
    flaky: AtomicUsize,
    teapot: AtomicUsize,
    sick: AtomicUsize,
    slow: AtomicUsize,
    healthy: AtomicBool,
}

/// `/flaky`: 500 three times, then 200; `/teapot`: 418; `/sick`: 500 until
/// `healthy`; `/slow`: answers after 3 s.
async fn app(seen: Arc<Seen>) -> u16 {
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen);
    let router = axum::Router::new()
        .route(
            "/flaky",
            axum::routing::post(move || async move {
                if s1.flaky.fetch_add(1, Ordering::SeqCst) < 3 {
                    (StatusCode::INTERNAL_SERVER_ERROR, "not yet")
                } else {
                    (StatusCode::OK, "ok")
                }
            }),
        )
        .route(
            "/teapot",
            axum::routing::post(move || async move {
                s2.teapot.fetch_add(1, Ordering::SeqCst);
                (StatusCode::IM_A_TEAPOT, "no coffee")
            }),
        )
        .route(
            "/sick",
            axum::routing::post(move || async move {
                s3.sick.fetch_add(1, Ordering::SeqCst);
                if s3.healthy.load(Ordering::SeqCst) {
                    (StatusCode::OK, "better")
                } else {
                    (StatusCode::INTERNAL_SERVER_ERROR, "sick")
                }
            }),
        )
        .route(
            "/slow",
            axum::routing::post(move || async move {
                s4.slow.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// A caller gateway with [`RESILIENCY`] and one callee gateway per id in
/// `callees`, all in front of the same app.
struct Mesh {
    caller: outrigger::Gateway,
    _callees: Vec<outrigger::Gateway>,
    _dirs: Vec<tempfile::TempDir>,
    seen: Arc<Seen>,
}

async fn gateway(
    app_id: &str,
    app_port: Option<u16>,
    registry: &Path,
    dir: &Path,
    resiliency: Option<&str>,
) -> outrigger::Gateway {
    std::fs::create_dir_all(dir.join("resources")).unwrap();
    if let Some(yaml) = resiliency {
        std::fs::write(dir.join("resources/resiliency.yaml"), yaml).unwrap();
    }
    let mut config = support::config(dir, None);
    config.app_id = app_id.into();
    config.app_port = app_port;
    config.registry_folder = Some(registry.to_path_buf());
    outrigger::Gateway::start(config, CancellationToken::new())
        .await
        .unwrap()
}

async fn mesh(callees: &[&str]) -> Mesh {
    let seen = Arc::new(Seen::default());
    let port = app(seen.clone()).await;
    let registry = tempfile::tempdir().unwrap();
    let caller_dir = tempfile::tempdir().unwrap();
    let caller = gateway(
        "caller",
        None,
        registry.path(),
        caller_dir.path(),
        Some(RESILIENCY),
    )
    .await;
    let mut dirs = vec![registry, caller_dir];
    let mut gateways = Vec::new();
    for id in callees {
        let dir = tempfile::tempdir().unwrap();
        gateways.push(gateway(id, Some(port), dirs[0].path(), dir.path(), None).await);
        dirs.push(dir);
    }
    Mesh {
        caller,
        _callees: gateways,
        _dirs: dirs,
        seen,
    }
}

/// POST `/v1.0/invoke/{app}/method/{method}` on the caller's gateway.
async fn invoke(mesh: &Mesh, app: &str, method: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1.0/invoke/{app}/method/{method}"))
        .body(Body::empty())
        .unwrap();
    let response = outrigger::api::http::router(Arc::clone(&mesh.caller.runtime))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn error_of(body: &str) -> (String, String) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    (
        json["errorCode"].as_str().unwrap_or_default().to_owned(),
        json["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_callee_succeeds_after_retries_and_without_a_policy_the_500_comes_back() {
    let mesh = mesh(&["callee", "plain"]).await;

    let (status, body) = invoke(&mesh, "callee", "flaky").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(mesh.seen.flaky.load(Ordering::SeqCst), 4, "3 failures + 1");

    // A status outside `matching` is not retried, and passes through as is.
    let (status, body) = invoke(&mesh, "callee", "teapot").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::IM_A_TEAPOT, "no coffee")
    );
    assert_eq!(mesh.seen.teapot.load(Ordering::SeqCst), 1);

    // No policy targets `plain`: the callee's 500 comes straight back.
    mesh.seen.flaky.store(0, Ordering::SeqCst);
    let (status, body) = invoke(&mesh, "plain", "flaky").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "not yet")
    );
    assert_eq!(mesh.seen.flaky.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_trips_fails_fast_and_closes_after_a_trial_call() {
    let mesh = mesh(&["fragile"]).await;

    // Three failures pass through unchanged and trip the breaker.
    let before_trip = Instant::now();
    for _ in 0..3 {
        let (status, body) = invoke(&mesh, "fragile", "sick").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "sick")
        );
    }
    assert_eq!(mesh.seen.sick.load(Ordering::SeqCst), 3);

    // Open: calls fail fast with daprd's error, and the app is not called.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = invoke(&mesh, "fragile", "sick").await;
        assert!(started.elapsed() < Duration::from_millis(200), "fail fast");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = error_of(&body);
        assert_eq!(code, "ERR_DIRECT_INVOKE", "{body}");
        assert!(
            message.contains("circuit breaker is open")
                && message.contains("tripAfterThree")
                && message.contains("fragile"),
            "{message}"
        );
    }
    assert_eq!(
        mesh.seen.sick.load(Ordering::SeqCst),
        3,
        "no call while open"
    );

    // Healthy again: once `timeout` (1 s) has passed, one trial call goes
    // through and closes the breaker.
    mesh.seen.healthy.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = invoke(&mesh, "fragile", "sick").await;
        if status == StatusCode::OK {
            assert_eq!(body, "better");
            break;
        }
        assert!(body.contains("circuit breaker is open"), "{body}");
        assert_eq!(
            mesh.seen.sick.load(Ordering::SeqCst),
            3,
            "no call while open"
        );
        assert!(Instant::now() < deadline, "the breaker never half-opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        before_trip.elapsed() >= Duration::from_secs(1),
        "open for its timeout"
    );
    assert_eq!(
        mesh.seen.sick.load(Ordering::SeqCst),
        4,
        "exactly one trial call"
    );
    for _ in 0..3 {
        assert_eq!(invoke(&mesh, "fragile", "sick").await.0, StatusCode::OK);
    }
    assert_eq!(mesh.seen.sick.load(Ordering::SeqCst), 7, "closed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_callee_trips_the_breaker_too() {
    // `ghost` has a registry entry whose gateway is gone (nothing listens).
    let mesh = mesh(&[]).await;
    let registry = mesh._dirs[0].path().join("ghost");
    std::fs::create_dir_all(&registry).unwrap();
    let entry = format!(
        r#"{{"appId":"ghost","grpc":"127.0.0.1:1","pid":{}}}"#,
        std::process::id()
    );
    std::fs::write(
        registry.join(format!("{}-1.json", std::process::id())),
        entry,
    )
    .unwrap();
    for _ in 0..3 {
        let (status, body) = invoke(&mesh, "ghost", "anything").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = error_of(&body);
        assert_eq!(code, "ERR_DIRECT_INVOKE");
        assert!(!message.contains("circuit breaker"), "{message}");
    }
    let (_, body) = invoke(&mesh, "ghost", "anything").await;
    let (code, message) = error_of(&body);
    assert_eq!(code, "ERR_DIRECT_INVOKE");
    assert!(message.contains("circuit breaker is open"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fires_on_a_slow_callee() {
    let mesh = mesh(&["sluggish"]).await;

    let started = Instant::now();
    let (status, body) = invoke(&mesh, "sluggish", "slow").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = error_of(&body);
    assert_eq!(code, "ERR_DIRECT_INVOKE", "{body}");
    assert!(
        message.contains("sluggish") && message.contains("timeout") && message.contains("300ms"),
        "{message}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(mesh.seen.slow.load(Ordering::SeqCst), 1);

    // Over gRPC (InvokeService) the same timeout is DEADLINE_EXCEEDED.
    let mut client =
        pb::dapr_client::DaprClient::connect(format!("http://{}", mesh.caller.grpc_addr))
            .await
            .unwrap();
    let status = client
        .invoke_service(pb::InvokeServiceRequest {
            id: "sluggish".into(),
            message: Some(common_pb::InvokeRequest {
                method: "slow".into(),
                data: None,
                content_type: String::new(),
                http_extension: Some(common_pb::HttpExtension {
                    verb: common_pb::http_extension::Verb::Post as i32,
                    querystring: String::new(),
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("timeout"), "{status:?}");
}

#[tokio::test]
async fn a_malformed_resiliency_file_stops_the_binary_with_64_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("resiliency.yaml"),
        RESILIENCY.replace(
            "consecutiveFailures >= 3",
            "consecutiveFailures >= 3 || requests > 9",
        ),
    )
    .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
            .arg("--app-id")
            .arg("caller")
            .arg("--resources-path")
            .arg(&resources)
            .arg("--registry-folder")
            .arg(dir.path().join("registry"))
            .args([
                "--dapr-http-port",
                "0",
                "--dapr-grpc-port",
                "0",
                "--metrics-port",
                "0",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the gateway exits")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("resiliency.yaml")
            && stderr.contains("spec.policies.circuitBreakers.tripAfterThree.trip"),
        "{stderr}"
    );
}
