//! The conformance suite against outrigger-local, every block, with the
//! configs shipped in conformance/config (database file moved to a temp folder).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;

use outrigger_conformance::config::FileConfig;
use outrigger_conformance::{assert_pass, run};
use support::Local;

async fn suite(local: &Local, config: &str, socket: &str, overrides: &[(&str, String)]) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/config")
        .join(config);
    let (mut target, config) = FileConfig::load(&file)
        .unwrap()
        .into_parts(Some(local.socket(socket)))
        .unwrap();
    for (k, v) in overrides {
        target.metadata.insert((*k).to_owned(), v.clone());
    }
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 2, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_passes() {
    let local = Local::start().await;
    suite(
        &local,
        "state/local.yaml",
        "local",
        &[("databaseFile", local.db().display().to_string())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_passes() {
    let local = Local::start().await;
    suite(
        &local,
        "pubsub/local.yaml",
        "local",
        &[("databaseFile", local.db().display().to_string())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_binding_passes() {
    let local = Local::start().await;
    suite(&local, "bindings/local-cron.yaml", "local", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_secrets_pass() {
    let local = Local::start().await;
    let file = local.dir.path().join("secrets.json");
    std::fs::write(&file, r#"{"db":{"password":"s3cret"}}"#).unwrap();
    let target = outrigger_conformance::Target::new(
        local.socket("local"),
        outrigger_conformance::Block::Secrets,
    )
    .with_metadata("secretsFile", file.display().to_string());
    let mut config = outrigger_conformance::SuiteConfig::with_operations(["bulk"]);
    config.secrets = HashMap::from([(
        "db:password".to_owned(),
        HashMap::from([("db:password".to_owned(), "s3cret".to_owned())]),
    )]);
    config.bad_metadata = HashMap::from([("multiValued".to_owned(), "perhaps".to_owned())]);
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
}
