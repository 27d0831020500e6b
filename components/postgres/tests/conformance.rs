//! The conformance suite against outrigger-postgres on a real PostgreSQL
//! (`OUTRIGGER_POSTGRES_URL`, started by `scripts/test.sh`), plus the
//! PostgreSQL-specific checks: bad metadata, migrations re-run safely, and
//! ETag races between two component processes' pools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outrigger_component_sdk::ComponentServer;
use outrigger_conformance::{Block, SuiteConfig, Target, assert_pass, run};

/// The server URL; outside the test script, a loud skip (under CI, a failure).
fn url() -> Option<String> {
    match std::env::var("OUTRIGGER_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "OUTRIGGER_POSTGRES_URL is not set under CI: scripts/test.sh starts PostgreSQL and sets it"
            );
            eprintln!(
                "SKIPPED: OUTRIGGER_POSTGRES_URL is not set; run `bash scripts/test.sh`, which starts PostgreSQL"
            );
            None
        }
    }
}

async fn serve() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    tokio::spawn(
        outrigger_postgres::services(ComponentServer::new(dir.path()))
            .serve(std::future::pending()),
    );
    let socket = dir.path().join("postgres.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (dir, socket)
}

fn table() -> String {
    format!("state_{}", &uuid_like()[..12])
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_suite_passes_against_real_postgres() {
    let Some(url) = url() else { return };
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::State)
        .with_metadata("connectionString", url)
        .with_metadata("tableName", table());
    let mut config =
        SuiteConfig::with_operations(["etag", "first-write", "transaction", "ttl", "query"]);
    config.bad_metadata = [("tableName".to_owned(), "not a table; drop".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 20, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_with_one_etag_winner() {
    let Some(url) = url() else { return };
    // Two component servers (two pools) on one table: the race is decided by PostgreSQL.
    let (_a, socket_a) = serve().await;
    let (_b, socket_b) = serve().await;
    let table = table();
    let target_a = Target::new(&socket_a, Block::State)
        .with_metadata("connectionString", url.clone())
        .with_metadata("tableName", table.clone());
    let target_b = Target::new(&socket_b, Block::State)
        .with_metadata("connectionString", url)
        .with_metadata("tableName", table);
    let mut config = SuiteConfig::with_operations(["etag"]);
    config.filter = Some("etag".into());
    // Both run the ETag cases concurrently on the same table with distinct keys.
    let (ra, rb) = tokio::join!(run(&target_a, &config), run(&target_b, &config));
    assert_pass(&ra);
    assert_pass(&rb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_clear_init_error() {
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::State).with_metadata(
        "connectionString",
        "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
    );
    let report = run(&target, &SuiteConfig::default()).await;
    let reason = match report.outcome("state/init/connect-and-init") {
        Some(outrigger_conformance::Outcome::Fail(why)) => why.clone(),
        other => panic!("expected an Init failure, got {other:?}"),
    };
    assert!(reason.contains("connectionString"), "{reason}");
}
