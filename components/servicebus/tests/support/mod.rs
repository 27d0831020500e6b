//! Shared test helpers: the loopback Service Bus, an in-process component,
//! unique names.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod client;
pub mod fake;

use std::path::PathBuf;
use std::time::Duration;

use outrigger_component_sdk::ComponentServer;
use outrigger_servicebus::Transport;

pub use fake::FakeServiceBus;

/// Namespace, key name and key of the loopback Service Bus.
pub const NAMESPACE: &str = "outrigger-test";
pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "bG9vcGJhY2sta2V5LW5vdC1hLXNlY3JldA==";

/// A loopback Service Bus.
pub async fn fake() -> FakeServiceBus {
    FakeServiceBus::start(NAMESPACE, KEY_NAME, KEY).await
}

/// Serve outrigger-servicebus on a temp folder, reaching Service Bus through
/// `transport`; returns the folder and socket.
pub async fn serve(transport: Transport) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    tokio::spawn(
        outrigger_servicebus::services(ComponentServer::new(dir.path()), transport)
            .serve(std::future::pending()),
    );
    let socket = dir.path().join("servicebus.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (dir, socket)
}

/// Serve the component against `bus`.
pub async fn serve_fake(bus: &FakeServiceBus) -> (tempfile::TempDir, PathBuf) {
    serve(Transport::redirected(bus.url.parse().unwrap())).await
}

/// `prefix` plus a suffix unique to this process and moment.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}-{nanos:x}", std::process::id())
}
