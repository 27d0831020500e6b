//! The conformance suite against outrigger-nats on a real nats-server
//! (`OUTRIGGER_NATS_URL`, started by `scripts/test.sh`), plus bad metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outrigger_conformance::{Block, SuiteConfig, Target, assert_pass, run};
use support::{serve, unique, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_suite_passes_against_real_nats() {
    let Some(url) = url() else { return };
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::Pubsub)
        .with_metadata("natsURL", url)
        .with_metadata("streamName", unique("conf"));
    let mut config = SuiteConfig::with_operations(["durable", "ordering", "ttl"]);
    config.bad_metadata = [("ackWait".to_owned(), "forever".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 10, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_suite_passes_against_real_nats() {
    let Some(url) = url() else { return };
    let (_dir, socket) = serve().await;
    let target = Target::new(&socket, Block::State)
        .with_metadata("natsURL", url)
        .with_metadata("bucket", unique("state"));
    let mut config = SuiteConfig::with_operations(["etag", "first-write", "ttl"]);
    config.bad_metadata = [("bucket".to_owned(), "not a bucket!".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 15, "{}", report.table());
}

async fn init_failure(block: Block, metadata: &[(&str, &str)]) -> String {
    let (_dir, socket) = serve().await;
    let mut target = Target::new(&socket, block);
    for (k, v) in metadata {
        target = target.with_metadata(*k, *v);
    }
    let report = run(&target, &SuiteConfig::default()).await;
    match report.init_failure() {
        Some(why) => why.to_owned(),
        None => panic!("expected an Init failure\n{}", report.table()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_url_is_an_init_error_naming_the_key() {
    for block in [Block::Pubsub, Block::State] {
        let why = init_failure(block, &[("streamName", "x")]).await;
        assert!(why.contains("natsURL"), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_an_init_error_naming_the_key() {
    for block in [Block::Pubsub, Block::State] {
        let why = init_failure(
            block,
            &[("natsURL", "nats://127.0.0.1:1"), ("noSuchKey", "1")],
        )
        .await;
        assert!(why.contains("noSuchKey"), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_an_init_error_naming_the_url() {
    let why = init_failure(Block::Pubsub, &[("natsURL", "nats://127.0.0.1:1")]).await;
    assert!(why.contains("natsURL"), "{why}");
}
