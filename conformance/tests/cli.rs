//! The CLI against a served component: a table, exit 0 on pass and non-zero
//! on failure, 64 on bad flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../component-sdk/examples/memory.rs"]
mod memory;

use std::time::Duration;

use outrigger_component_sdk::ComponentServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let server = ComponentServer::new(dir.path())
        .service("memory", |s| s.state_store(memory::MemoryStore::default));
    tokio::spawn(server.serve(std::future::pending()));
    let socket = dir.path().join("memory.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bin = env!("CARGO_BIN_EXE_outrigger-conformance");
    let pass = tokio::process::Command::new(bin)
        .args([
            "--block",
            "state",
            "--operations",
            "etag,transaction",
            "--socket",
        ])
        .arg(&socket)
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&pass.stdout);
    assert!(pass.status.success(), "{table}");
    assert!(
        table.contains("state/etag/set-stale") && table.contains(" failed, "),
        "{table}"
    );

    // TTL declared but not supported: non-zero exit, the failing case named.
    let fail = tokio::process::Command::new(bin)
        .args([
            "--block",
            "state",
            "--operations",
            "etag,ttl",
            "--filter",
            "ttl",
            "--case-timeout",
            "10",
            "--json",
            "--socket",
        ])
        .arg(&socket)
        .output()
        .await
        .unwrap();
    assert!(!fail.status.success());
    let json: serde_json::Value = serde_json::from_slice(&fail.stdout).unwrap();
    assert!(json["failed"].as_u64().unwrap() >= 1, "{json}");

    let bad = tokio::process::Command::new(bin)
        .args(["--block", "cache"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
}
