//! Service invocation between two real gateways found through one local
//! registry folder, each in front of its own HTTP app: path, query, headers,
//! body and the callee's status pass through, on HTTP (`/v1.0/invoke`, the
//! `dapr-app-id` header) and gRPC (`InvokeService`); stale registry entries
//! are skipped; unknown apps get `ERR_DIRECT_INVOKE`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use outrigger_proto::common as common_pb;
use outrigger_proto::runtime as pb;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// An app that answers `/echo` with what it got, `/fail` with 418, and
/// `/orders/{id}` with the id.
async fn app(name: &'static str) -> u16 {
    let router = axum::Router::new()
        .route(
            "/echo",
            axum::routing::any(
                move |method: Method,
                      RawQuery(query): RawQuery,
                      headers: HeaderMap,
                      body: String| async move {
                    let seen = headers
                        .get("x-caller")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // Every `x-tag` the app got, in order.
                    let tags = headers
                        .get_all("x-tag")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect::<Vec<_>>()
                        .join(",");
                    (
                        StatusCode::CREATED,
                        axum::response::AppendHeaders([
                            ("x-served-by", name.to_owned()),
                            ("x-tags", tags),
                            ("set-cookie", "a=1".to_owned()),
                            ("set-cookie", "b=2".to_owned()),
                        ]),
                        format!(
                            "{name} {method} {} {seen} {body}",
                            query.unwrap_or_default()
                        ),
                    )
                },
            ),
        )
        .route(
            "/fail",
            axum::routing::post(|| async {
                (StatusCode::IM_A_TEAPOT, "no coffee").into_response()
            }),
        )
        .route(
            "/orders/{id}",
            axum::routing::get(|UrlPath(id): UrlPath<String>| async move { format!("order {id}") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

async fn gateway(app_id: &str, app_port: u16, registry: &Path, dir: &Path) -> outrigger::Gateway {
    std::fs::create_dir_all(dir.join("resources")).unwrap();
    let mut config = support::config(dir, None);
    config.app_id = app_id.into();
    config.app_port = Some(app_port);
    config.registry_folder = Some(registry.to_path_buf());
    outrigger::Gateway::start(config, CancellationToken::new())
        .await
        .unwrap()
}

async fn http(
    gateway: &outrigger::Gateway,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = outrigger::api::http::router(std::sync::Arc::clone(&gateway.runtime))
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_invoke_each_other() {
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = gateway("app-a", app("a").await, registry.path(), dir_a.path()).await;
    let b = gateway("app-b", app("b").await, registry.path(), dir_b.path()).await;

    // A stale entry of a dead gateway for app-b is skipped (and removed).
    let stale = registry.path().join("app-b/999999999-1.json");
    std::fs::write(
        &stale,
        r#"{"appId":"app-b","grpc":"127.0.0.1:1","pid":999999999}"#,
    )
    .unwrap();

    let (status, headers, body) = http(
        &a,
        Method::PUT,
        "/v1.0/invoke/app-b/method/echo?size=L",
        &[("x-caller", "tester"), ("content-type", "text/plain")],
        "hello",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, "b PUT size=L tester hello");
    assert_eq!(headers["x-served-by"], "b");
    assert!(!stale.exists(), "the stale entry was removed");

    // A header sent twice arrives twice, both ways, in order.
    let (status, headers, _) = http(
        &a,
        Method::POST,
        "/v1.0/invoke/app-b/method/echo",
        &[("x-tag", "one"), ("x-tag", "two")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-tags"], "one,two");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);

    // The callee's error status comes back unchanged.
    let (status, _, body) = http(&a, Method::POST, "/v1.0/invoke/app-b/method/fail", &[], "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::IM_A_TEAPOT, "no coffee")
    );

    // Method paths with slashes, the namespace form, and the header form.
    let (status, _, body) = http(
        &b,
        Method::GET,
        "/v1.0/invoke/app-a.default/method/orders/42",
        &[],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "order 42"));
    let (status, _, body) = http(
        &a,
        Method::GET,
        "/orders/7",
        &[("dapr-app-id", "app-b")],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "order 7"));

    // Calling one's own app id goes straight to the app.
    let (_, headers, _) = http(&a, Method::POST, "/v1.0/invoke/app-a/method/echo", &[], "").await;
    assert_eq!(headers["x-served-by"], "a");

    // Unknown app.
    let (status, _, body) =
        http(&a, Method::POST, "/v1.0/invoke/nobody/method/echo", &[], "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"].as_str().unwrap().contains("nobody"),
        "{body}"
    );

    // A body over the limit is refused before anything is called.
    let big = "x".repeat(70 * 1024);
    let (status, _, body) = http(
        &a,
        Method::POST,
        "/v1.0/invoke/app-b/method/echo",
        &[],
        &big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("ERR_BODY_READ"), "{body}");

    // gRPC InvokeService, as the SDKs' invoke_method over gRPC sends it.
    let mut c = pb::dapr_client::DaprClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .unwrap();
    let request = |method: &str| pb::InvokeServiceRequest {
        id: "app-b".into(),
        message: Some(common_pb::InvokeRequest {
            method: method.into(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: b"over grpc".to_vec(),
            }),
            content_type: "text/plain".into(),
            http_extension: Some(common_pb::HttpExtension {
                verb: common_pb::http_extension::Verb::Post as i32,
                querystring: "q=1".into(),
            }),
        }),
    };
    let reply = c
        .invoke_service(request("echo"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data.unwrap().value, b"b POST q=1  over grpc");
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let failed = c.invoke_service(request("fail")).await.unwrap_err();
    assert!(failed.message().contains("418"), "{}", failed.message());
    // A content type that cannot be an HTTP header is refused, naming it.
    let mut bad = request("echo");
    if let Some(message) = bad.message.as_mut() {
        message.content_type = "text/plain\nx-injected: 1".into();
    }
    let refused = c.invoke_service(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("content_type"),
        "{}",
        refused.message()
    );

    // A gateway that stopped is no longer found.
    b.runtime.shutdown.cancel();
    b.wait().await;
    let (status, _, _) = http(&a, Method::POST, "/v1.0/invoke/app-b/method/echo", &[], "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// A callee gateway that is up in front of an app that is not: the caller
/// gets `ERR_DIRECT_INVOKE` naming the app and why, on HTTP and gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_app_behind_a_live_gateway_is_a_clear_error() {
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A port nothing listens on: bound, then released.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = gateway("caller", app("a").await, registry.path(), dir_a.path()).await;
    let _b = gateway("appless", dead_port, registry.path(), dir_b.path()).await;

    let (status, _, body) = http(
        &a,
        Method::POST,
        "/v1.0/invoke/appless/method/echo",
        &[],
        "hi",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("appless"), "{message}");

    let mut c = pb::dapr_client::DaprClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .unwrap();
    let failed = c
        .invoke_service(pb::InvokeServiceRequest {
            id: "appless".into(),
            message: Some(common_pb::InvokeRequest {
                method: "echo".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_ne!(failed.code(), tonic::Code::Ok);
    assert!(failed.message().contains("appless"), "{}", failed.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_grpc_calls_are_proxied_by_app_id() {
    let app_port = support::empty_grpc_app().await;
    let registry = tempfile::tempdir().unwrap();
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = gateway("app-a", app("a").await, registry.path(), dir_a.path()).await;
    std::fs::create_dir_all(dir_c.path().join("resources")).unwrap();
    let mut config = support::config(dir_c.path(), None);
    config.app_id = "app-c".into();
    config.app_port = Some(app_port);
    config.app_protocol = outrigger::config::AppProtocol::Grpc;
    config.registry_folder = Some(registry.path().to_path_buf());
    let _c = outrigger::Gateway::start(config, CancellationToken::new())
        .await
        .unwrap();

    let channel = tonic::transport::Endpoint::try_from(format!("http://{}", a.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // app → gateway A → gateway C → app C, and back.
    let mut health =
        pb::app_callback_health_check_client::AppCallbackHealthCheckClient::new(channel.clone());
    health
        .health_check(support::with_app_id((), "app-c"))
        .await
        .expect("proxied through two gateways");

    // The app's own error comes back unchanged.
    let mut callback = pb::app_callback_client::AppCallbackClient::new(channel.clone());
    let from_app = callback
        .on_invoke(support::with_app_id(
            common_pb::InvokeRequest::default(),
            "app-c",
        ))
        .await
        .unwrap_err();
    assert_eq!(from_app.code(), tonic::Code::Unimplemented);
    assert!(
        !from_app.message().contains("not served by this gateway"),
        "{}",
        from_app.message()
    );

    // Without dapr-app-id the gateway says it does not serve the service.
    let unknown = health
        .health_check(tonic::Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);
    assert!(
        unknown.message().contains("dapr-app-id"),
        "{}",
        unknown.message()
    );

    // An app nobody serves.
    let nobody = health
        .health_check(support::with_app_id((), "nobody"))
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), tonic::Code::Unavailable);
    assert!(nobody.message().contains("nobody"), "{}", nobody.message());
    // app-a is an HTTP app: nothing to proxy gRPC to.
    let http_app = health
        .health_check(support::with_app_id((), "app-a"))
        .await
        .unwrap_err();
    assert_eq!(http_app.code(), tonic::Code::Unavailable);
}

/// `nameResolution` in the Configuration file: a static table finds a
/// gateway the local registry does not know; a bad one stops start-up
/// naming the file and field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_name_resolution_from_the_configuration() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Separate registry folders: only the static table can find app-b.
    let b = gateway(
        "app-b",
        app("b").await,
        &dir_b.path().join("registry"),
        dir_b.path(),
    )
    .await;
    let config_file = dir_a.path().join("config.yaml");
    std::fs::write(
        &config_file,
        format!(
            "kind: Configuration\nmetadata: {{name: resolve}}\nspec:\n  nameResolution:\n    component: static\n    configuration:\n      apps:\n        app-b: \"{}\"\n",
            b.grpc_addr
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir_a.path().join("resources")).unwrap();
    let mut config = support::config(dir_a.path(), None);
    config.app_id = "app-a".into();
    config.config_file = Some(config_file.clone());
    config.registry_folder = Some(dir_a.path().join("registry"));
    let a = outrigger::Gateway::start(config.clone(), CancellationToken::new())
        .await
        .unwrap();
    let (status, _, body) = http(
        &a,
        Method::GET,
        "/v1.0/invoke/app-b/method/orders/9",
        &[],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "order 9"));

    std::fs::write(
        &config_file,
        "kind: Configuration\nmetadata: {name: resolve}\nspec:\n  nameResolution:\n    component: consul\n",
    )
    .unwrap();
    let err = outrigger::Gateway::start(config, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.yaml") && err.contains("nameResolution.component"),
        "{err}"
    );
}

/// One raw gRPC call to `path` at `addr`: the body sent as the given DATA
/// frames; the answer's `grpc-status`, `grpc-message` and body.
async fn raw_grpc(
    addr: std::net::SocketAddr,
    path: &str,
    encoding: Option<&str>,
    frames: Vec<Vec<u8>>,
) -> (String, String, Vec<u8>) {
    let io = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        request = request.header("grpc-encoding", encoding);
    }
    let (answer, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.into_iter().enumerate() {
        // The gateway may answer (and close the stream) before the whole
        // body is sent: a message over the limit is refused early.
        if send.send_data(frame.into(), i == last).is_err() {
            break;
        }
    }
    let (parts, mut recv) = answer.await.unwrap().into_parts();
    let mut body = Vec::new();
    // A stream the gateway ended early (NO_ERROR, the body not all read)
    // has no more data; the status is in its headers then.
    while let Some(Ok(data)) = recv.data().await {
        let _ = recv.flow_control().release_capacity(data.len());
        body.extend_from_slice(&data);
    }
    let trailers = recv.trailers().await.ok().flatten().unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (field("grpc-status"), field("grpc-message"), body)
}

/// A gRPC message with compression flag `flag`, declaring `declared` bytes.
fn framed(flag: u8, declared: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend(u32::try_from(declared).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `CallLocal`, which the gateway reads without tonic's codec: a plain call
/// in one DATA frame or several is answered; every body out of the ordinary
/// gets the answer tonic's server gives the same body on `ListActors`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_local_answers_plain_calls_and_leaves_odd_bodies_to_tonic() {
    use outrigger_proto::outrigger::internal::v1 as internal_pb;
    use prost::Message;

    let registry = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = gateway("app-b", app("b").await, registry.path(), dir.path()).await;
    const CALL_LOCAL: &str = "/outrigger.internal.v1.GatewayInvoke/CallLocal";
    const LIST_ACTORS: &str = "/outrigger.internal.v1.GatewayInvoke/ListActors";
    let message = internal_pb::LocalCall {
        app_id: "app-b".into(),
        method: "echo".into(),
        verb: "POST".into(),
        headers: vec![internal_pb::Header {
            key: "x-tag".into(),
            value: "raw".into(),
        }],
        body: b"hi".to_vec().into(),
        ..Default::default()
    }
    .encode_to_vec();
    let whole = framed(0, message.len(), &message);

    for frames in [
        vec![whole.clone()],
        vec![whole[..3].to_vec(), whole[3..].to_vec()],
    ] {
        let (status, why, body) = raw_grpc(b.grpc_addr, CALL_LOCAL, None, frames).await;
        assert_eq!(status, "0", "{why}");
        let reply = internal_pb::LocalReply::decode(&body[5..]).unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(&reply.body[..], b"b POST   hi");
        let tags: Vec<_> = reply.headers.iter().filter(|h| h.key == "x-tags").collect();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].value, "raw");
    }

    let over = 64 * 1024 + 1;
    let odd = vec![
        (
            "compressed",
            Some("gzip"),
            vec![framed(1, message.len(), &message)],
        ),
        (
            "flagged, no encoding",
            None,
            vec![framed(1, message.len(), &message)],
        ),
        (
            "over the limit",
            None,
            vec![framed(0, over, &vec![0; over])],
        ),
        (
            "cut short",
            None,
            vec![framed(0, message.len() + 10, &message)],
        ),
        ("no message", None, vec![Vec::new()]),
        (
            "not a LocalCall",
            None,
            vec![framed(0, 3, &[0xff, 0xff, 0xff])],
        ),
    ];
    for (case, encoding, frames) in odd {
        let ours = raw_grpc(b.grpc_addr, CALL_LOCAL, encoding, frames.clone()).await;
        let tonic = raw_grpc(b.grpc_addr, LIST_ACTORS, encoding, frames).await;
        assert_ne!(ours.0, "0", "{case}: {ours:?}");
        assert_eq!((&ours.0, &ours.1), (&tonic.0, &tonic.1), "{case}");
    }
    // tonic answers a unary call's first message and ignores a second; so
    // does the gateway, by handing such a body to tonic.
    let two = vec![whole.clone(), whole];
    let (status, why, body) = raw_grpc(b.grpc_addr, CALL_LOCAL, None, two).await;
    assert_eq!(status, "0", "{why}");
    assert_eq!(
        internal_pb::LocalReply::decode(&body[5..]).unwrap().status,
        201
    );
}
