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
    let reason = report
        .init_failure()
        .unwrap_or_else(|| panic!("expected an Init failure\n{}", report.table()));
    assert!(reason.contains("connectionString"), "{reason}");
}

/// A table left by schema version 1 (no `value_json`) is migrated on `Init`,
/// its rows backfilled, and queries see them: an upgrade loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_schema_version_1_keeps_data() {
    let Some(url) = url() else { return };
    let table = table();
    let meta = format!("meta_{}", &uuid_like()[..10]);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for ddl in [
        format!(
            "CREATE TABLE {table} (key TEXT PRIMARY KEY NOT NULL, value BYTEA NOT NULL, etag BIGINT NOT NULL, expires_at TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ),
        format!(
            "INSERT INTO {table} (key, value, etag) VALUES ('old-1', '{{\"city\":\"Oslo\"}}'::bytea, 1), ('old-2', 'not json'::bytea, 2)"
        ),
        format!("CREATE TABLE {meta} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"),
        format!("INSERT INTO {meta} VALUES ('schema-version-{table}', '1')"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&pool)
            .await
            .unwrap();
    }
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::State)
        .with_metadata("connectionString", url)
        .with_metadata("tableName", table.clone())
        .with_metadata("metadataTableName", meta.clone());
    let mut config = SuiteConfig::with_operations(["etag", "query"]);
    config.filter = Some("state/basic/get-missing-key".into());
    assert_pass(&run(&target, &config).await);
    let version: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT value FROM {meta} WHERE key = 'schema-version-{table}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(version, "2");
    let backfilled: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT value_json::text FROM {table} WHERE key = 'old-1'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(backfilled.as_deref(), Some(r#"{"city": "Oslo"}"#));
    let untouched: Vec<u8> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT value FROM {table} WHERE key = 'old-2'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        untouched, b"not json",
        "non-JSON values are kept as they were"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_suite_passes_against_real_postgres() {
    let Some(url) = url() else { return };
    let (_dir, socket) = serve().await;
    let table = format!("cfg_{}", &uuid_like()[..12]);
    let target = Target::new(&socket, Block::Configuration)
        .with_metadata("connectionString", url.clone())
        .with_metadata("table", table.clone());
    let mut config = SuiteConfig::with_operations(["subscribe"]);
    config.bad_metadata = [("table".to_owned(), "no; drop".to_owned())].into();
    // The suite changes items through psql (Debian's client, beside the server).
    config.writer = Some(format!(
        "psql -q -v ON_ERROR_STOP=1 '{url}' -c \"INSERT INTO {table} (key, value, version) \
         VALUES ('$CONFIGURATION_KEY', '$CONFIGURATION_VALUE', '1') ON CONFLICT (key) DO UPDATE \
         SET value = excluded.value, version = ({table}.version::int + 1)::text\""
    ));
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert_eq!(report.passed(), 7, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_suite_passes_against_real_postgres() {
    let Some(url) = url() else { return };
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::Bindings).with_metadata("connectionString", url);
    let mut config = SuiteConfig::with_operations(["output"]);
    config.invoke = vec![
        ("exec".to_owned(), Vec::new()),
        ("query".to_owned(), Vec::new()),
        ("close".to_owned(), Vec::new()),
    ];
    config.invoke_metadata = [("sql".to_owned(), "SELECT 1".to_owned())].into();
    config.bad_metadata = [("noSuchKey".to_owned(), "x".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 4, "{}", report.table());
}
