//! Shared test helpers: the server URL, an in-process component, unique names.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use outrigger_component_sdk::ComponentServer;

/// The server URL; outside the test script, a loud skip (under CI, a failure).
pub fn url() -> Option<String> {
    match std::env::var("OUTRIGGER_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "OUTRIGGER_NATS_URL is not set under CI: scripts/test.sh starts nats-server and sets it"
            );
            eprintln!(
                "SKIPPED: OUTRIGGER_NATS_URL is not set; run `bash scripts/test.sh`, which starts nats-server"
            );
            None
        }
    }
}

/// Serve outrigger-nats on a temp folder; returns the folder and socket.
pub async fn serve() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    tokio::spawn(
        outrigger_nats::services(ComponentServer::new(dir.path())).serve(std::future::pending()),
    );
    let socket = dir.path().join("nats.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (dir, socket)
}

/// `prefix` plus a suffix unique to this process and moment.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}-{nanos:x}", std::process::id())
}
