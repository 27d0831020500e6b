//! Access control and invocation metrics between two real gateways found
//! through one registry folder: the callee's `Configuration` allows
//! `GET /orders/*` from `acl-a` and denies everything else, so a denied call
//! is 403 `ERR_DIRECT_INVOKE` over HTTP and `PermissionDenied` over gRPC
//! `InvokeService` (daprd's answers) while an allowed one reaches the app;
//! `/metrics` then shows daprd's service invocation and ACL counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const CALLEE_CONFIG: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: acl
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: acl-a
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /orders/*
        httpVerb: [GET]
        action: allow
"#;

/// An app that answers `/orders/{id}` for any verb.
async fn app() -> u16 {
    let router = axum::Router::new().route(
        "/orders/{id}",
        axum::routing::any(|method: Method, UrlPath(id): UrlPath<String>| async move {
            format!("order {id} {method}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn config(app_id: &str, registry: &Path, dir: &Path) -> outrigger::config::Config {
    std::fs::create_dir_all(dir.join("resources")).unwrap();
    let mut config = support::config(dir, None);
    config.app_id = app_id.into();
    config.registry_folder = Some(registry.to_path_buf());
    config
}

async fn http(gateway: &outrigger::Gateway, method: Method, uri: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = outrigger::api::http::router(std::sync::Arc::clone(&gateway.runtime))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// The value of the sample of `name` carrying every label in `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|l| line.contains(l)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_policies_allow_and_deny_and_calls_are_counted() {
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_file = dir_b.path().join("config.yaml");
    std::fs::write(&config_file, CALLEE_CONFIG).unwrap();
    let mut callee = config("acl-b", registry.path(), dir_b.path());
    callee.app_port = Some(app().await);
    callee.config_file = Some(config_file.clone());
    let _b = outrigger::Gateway::start(callee.clone(), CancellationToken::new())
        .await
        .unwrap();
    let metrics_port = support::free_port();
    let mut caller = config("acl-a", registry.path(), dir_a.path());
    caller.metrics_port = Some(metrics_port);
    let a = outrigger::Gateway::start(caller, CancellationToken::new())
        .await
        .unwrap();

    // Allowed: GET /orders/*.
    let (status, body) = http(&a, Method::GET, "/v1.0/invoke/acl-b/method/orders/7").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "order 7 GET"));

    // Denied: another verb on the same operation, and another operation.
    for (verb, uri) in [
        (Method::DELETE, "/v1.0/invoke/acl-b/method/orders/7"),
        (Method::GET, "/v1.0/invoke/acl-b/method/admin"),
    ] {
        let (status, body) = http(&a, verb, uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("access control policy has denied access")
                && message.contains("spiffe://public/ns/default/acl-a"),
            "{message}"
        );
    }

    // The same over gRPC InvokeService.
    let mut client = pb::dapr_client::DaprClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .unwrap();
    let request = |verb: common_pb::http_extension::Verb| pb::InvokeServiceRequest {
        id: "acl-b".into(),
        message: Some(common_pb::InvokeRequest {
            method: "orders/9".into(),
            data: None,
            content_type: String::new(),
            http_extension: Some(common_pb::HttpExtension {
                verb: verb as i32,
                querystring: String::new(),
            }),
        }),
    };
    let reply = client
        .invoke_service(request(common_pb::http_extension::Verb::Get))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data.unwrap().value, b"order 9 GET");
    let denied = client
        .invoke_service(request(common_pb::http_extension::Verb::Post))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    // Metrics, as Prometheus scrapes them from the caller's /metrics (both
    // gateways run in this process, so the callee's series are there too).
    let metrics = scrape(metrics_port).await;
    let sent = sample(
        &metrics,
        "dapr_runtime_service_invocation_req_sent_total",
        &[
            r#"app_id="acl-a""#,
            r#"dst_app_id="acl-b""#,
            r#"type="unary""#,
        ],
    );
    assert_eq!(sent, Some(5.0), "{metrics}");
    let ok = sample(
        &metrics,
        "dapr_runtime_service_invocation_res_recv_total",
        &[
            r#"app_id="acl-a""#,
            r#"src_app_id="acl-b""#,
            r#"status="200""#,
        ],
    );
    assert_eq!(ok, Some(2.0), "{metrics}");
    let latency = sample(
        &metrics,
        "dapr_runtime_service_invocation_res_recv_latency_ms_count",
        &[
            r#"app_id="acl-a""#,
            r#"src_app_id="acl-b""#,
            r#"status="200""#,
        ],
    );
    assert_eq!(latency, Some(2.0), "{metrics}");
    let received = sample(
        &metrics,
        "dapr_runtime_service_invocation_req_recv_total",
        &[r#"app_id="acl-b""#, r#"src_app_id="acl-a""#],
    );
    assert_eq!(
        received,
        Some(2.0),
        "denied calls are not received: {metrics}"
    );
    let answered = sample(
        &metrics,
        "dapr_runtime_service_invocation_res_sent_total",
        &[
            r#"app_id="acl-b""#,
            r#"dst_app_id="acl-a""#,
            r#"status="200""#,
        ],
    );
    assert_eq!(answered, Some(2.0), "{metrics}");
    let blocked = sample(
        &metrics,
        "dapr_runtime_acl_app_policy_action_blocked_total",
        &[
            r#"app_id="acl-a""#,
            r#"namespace="default""#,
            r#"trustDomain="public""#,
        ],
    );
    assert_eq!(blocked, Some(3.0), "{metrics}");

    // daprd's HTTP server metrics of the caller's API (low cardinality:
    // an empty path label): one 200 GET, one 403 DELETE, one 403 GET.
    let served = sample(
        &metrics,
        "dapr_http_server_request_count",
        &[
            r#"app_id="acl-a""#,
            r#"method="DELETE""#,
            r#"path="""#,
            r#"status="403""#,
        ],
    );
    assert_eq!(served, Some(1.0), "{metrics}");
    let timed = sample(
        &metrics,
        "dapr_http_server_latency_count",
        &[r#"app_id="acl-a""#, r#"method="GET""#, r#"status="200""#],
    );
    assert_eq!(timed, Some(1.0), "{metrics}");

    // A malformed policy stops start-up, naming the file and the field.
    std::fs::write(
        &config_file,
        CALLEE_CONFIG.replace("action: allow", "action: permit"),
    )
    .unwrap();
    let err = outrigger::Gateway::start(callee, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.yaml")
            && err.contains("spec.accessControl.policies[0].operations[0].action"),
        "{err}"
    );
}

/// Plain gRPC calls proxied by `dapr-app-id` are checked on the callee's
/// gateway too, with the full method name and no verb (daprd's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_grpc_calls_are_checked_by_the_callee() {
    let app_port = support::empty_grpc_app().await;
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_file = dir_c.path().join("config.yaml");
    std::fs::write(
        &config_file,
        "kind: Configuration\nmetadata: {name: acl}\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n    - appId: proxy-a\n      trustDomain: public\n      namespace: default\n      operations:\n      - name: /dapr.proto.runtime.v1.AppCallbackHealthCheck/*\n        action: allow\n",
    )
    .unwrap();
    let mut callee = config("proxy-c", registry.path(), dir_c.path());
    callee.app_port = Some(app_port);
    callee.app_protocol = outrigger::config::AppProtocol::Grpc;
    callee.config_file = Some(config_file);
    let _c = outrigger::Gateway::start(callee, CancellationToken::new())
        .await
        .unwrap();
    let a = outrigger::Gateway::start(
        config("proxy-a", registry.path(), dir_a.path()),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    let channel = tonic::transport::Endpoint::try_from(format!("http://{}", a.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health =
        pb::app_callback_health_check_client::AppCallbackHealthCheckClient::new(channel.clone());
    health
        .health_check(support::with_app_id((), "proxy-c"))
        .await
        .expect("allowed by the operation");

    // A spoofed caller header is replaced by the calling gateway's own.
    let mut callback = pb::app_callback_client::AppCallbackClient::new(channel);
    let mut request = support::with_app_id(common_pb::InvokeRequest::default(), "proxy-c");
    request
        .metadata_mut()
        .insert("outrigger-caller-app-id", "someone-else".parse().unwrap());
    let denied = callback.on_invoke(request).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(
        denied
            .message()
            .contains("spiffe://public/ns/default/proxy-a")
            && denied
                .message()
                .contains("/dapr.proto.runtime.v1.AppCallback/OnInvoke"),
        "{}",
        denied.message()
    );
}
