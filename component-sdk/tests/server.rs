//! The socket server: discovery by reflection, health, instance
//! multiplexing, stale sockets and shutdown, all over a real Unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/memory.rs"]
mod memory;
mod support;

use std::collections::BTreeSet;

use outrigger_component_sdk::{ComponentServer, ServeError};
use outrigger_proto::components as pb;
use pb::state_store_client::StateStoreClient;
use prost::Message;
use support::{Running, channel, to};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_reflection::pb::{v1, v1alpha};

fn memory_only(server: ComponentServer) -> ComponentServer {
    server.service("memory", |s| s.state_store(memory::MemoryStore::default))
}

const STATE_SERVICES: [&str; 4] = [
    "dapr.proto.components.v1.StateStore",
    "dapr.proto.components.v1.TransactionalStateStore",
    "dapr.proto.components.v1.QueriableStateStore",
    "dapr.proto.components.v1.TransactionalStoreMultiMaxSize",
];

/// daprd discovers components with `grpc.reflection.v1alpha`: it must list
/// exactly the block services served here (plus reflection itself).
#[tokio::test]
async fn reflection_v1alpha_lists_the_served_blocks() {
    let running = Running::start("memory", memory_only).await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(
        channel(&running.socket("memory")).await,
    );
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("expected a service list, got {reply:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in STATE_SERVICES {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    for absent in [
        "dapr.proto.components.v1.PubSub",
        "dapr.proto.components.v1.SecretStore",
        "dapr.proto.runtime.v1.Dapr",
    ] {
        assert!(
            !names.contains(absent),
            "{absent} is not served but listed: {names:?}"
        );
    }
}

/// Reflection v1 answers too, and resolves a service to its file descriptor.
#[tokio::test]
async fn reflection_v1_lists_services_and_serves_descriptors() {
    let running = Running::start("memory", memory_only).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(
        channel(&running.socket("memory")).await,
    );
    let requests = [
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "dapr.proto.components.v1.StateStore".into(),
                ),
            ),
        },
    ];
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let first = replies.next().await.unwrap().unwrap().message_response;
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = first
    else {
        panic!("expected a service list, got {first:?}");
    };
    assert!(list.service.iter().any(|s| s.name == STATE_SERVICES[0]));

    let second = replies.next().await.unwrap().unwrap().message_response;
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        second
    else {
        panic!("expected file descriptors, got {second:?}");
    };
    let state_file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.service.iter().any(|s| s.name() == "StateStore"))
        .expect("a file declaring StateStore");
    assert_eq!(state_file.package(), "dapr.proto.components.v1");
}

#[tokio::test]
async fn health_reports_serving() {
    let running = Running::start("memory", memory_only).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel(&running.socket("memory")).await,
    );
    for service in ["", STATE_SERVICES[0]] {
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "service {service:?}"
        );
    }
}

/// One socket, two YAML components: each `x-component-instance` gets its own object.
#[tokio::test]
async fn two_instances_on_one_socket_keep_separate_data() {
    let running = Running::start("memory", memory_only).await;
    let mut client = StateStoreClient::new(channel(&running.socket("memory")).await);
    for instance in ["orders", "carts"] {
        client
            .init(to(instance, pb::InitRequest::default()))
            .await
            .unwrap();
    }
    let set = pb::SetRequest {
        key: "k".into(),
        value: b"in orders".to_vec(),
        ..Default::default()
    };
    client.set(to("orders", set)).await.unwrap();
    let get = pb::GetRequest {
        key: "k".into(),
        ..Default::default()
    };
    let in_orders = client
        .get(to("orders", get.clone()))
        .await
        .unwrap()
        .into_inner();
    let in_carts = client.get(to("carts", get)).await.unwrap().into_inner();
    assert_eq!(in_orders.data, b"in orders");
    assert!(
        in_carts.data.is_empty() && in_carts.etag.is_none(),
        "{in_carts:?}"
    );
}

#[tokio::test]
async fn calls_before_init_are_refused() {
    let running = Running::start("memory", memory_only).await;
    let mut client = StateStoreClient::new(channel(&running.socket("memory")).await);
    let err = client
        .get(to(
            "never-initialised",
            pb::GetRequest {
                key: "k".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("never-initialised"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn shutdown_removes_the_socket() {
    let running = Running::start("memory", memory_only).await;
    let socket = running.socket("memory");
    assert!(socket.exists());
    running.stop().await.unwrap();
    assert!(!socket.exists(), "socket left behind after shutdown");
}

/// A socket file left by a dead process is replaced, not an error.
#[tokio::test]
async fn stale_socket_is_replaced() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("memory.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(
        path.exists(),
        "the stale socket file stays after its listener is gone"
    );
    let server = memory_only(ComponentServer::new(folder.path()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    support::wait_for_socket(&path).await;
    let mut client = StateStoreClient::new(channel(&path).await);
    client
        .init(to("a", pb::InitRequest::default()))
        .await
        .unwrap();
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// A socket that a live process still serves is never stolen.
#[tokio::test]
async fn live_socket_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("memory.sock");
    let _live = tokio::net::UnixListener::bind(&path).unwrap();
    let err = memory_only(ComponentServer::new(folder.path()))
        .serve(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServeError::SocketInUse(ref p) if *p == path),
        "{err}"
    );
    assert!(path.exists(), "the live socket must stay");
}

#[tokio::test]
async fn invalid_services_are_rejected_before_binding() {
    let folder = tempfile::tempdir().unwrap();
    let empty = ComponentServer::new(folder.path())
        .service("nothing", |s| s)
        .serve(std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(empty, ServeError::Empty(_)), "{empty}");
    let bad_name = ComponentServer::new(folder.path())
        .service("../escape", |s| s.state_store(memory::MemoryStore::default))
        .serve(std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(bad_name, ServeError::InvalidName(_)), "{bad_name}");
    let twice = ComponentServer::new(folder.path())
        .service("m", |s| s.state_store(memory::MemoryStore::default))
        .service("m", |s| s.state_store(memory::MemoryStore::default))
        .serve(std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(twice, ServeError::Duplicate(_)), "{twice}");
    assert_eq!(
        std::fs::read_dir(folder.path()).unwrap().count(),
        0,
        "nothing bound"
    );
}

#[test]
fn socket_folder_comes_from_the_environment() {
    let server = ComponentServer::from_lookup(|key| {
        (key == "DAPR_COMPONENTS_SOCKETS_FOLDER").then(|| "/run/components".to_owned())
    });
    assert_eq!(
        server.socket_path("pg"),
        std::path::Path::new("/run/components/pg.sock")
    );
    let default = ComponentServer::from_lookup(|_| None);
    assert_eq!(
        default.folder(),
        std::path::Path::new("/tmp/dapr-components-sockets")
    );
}
