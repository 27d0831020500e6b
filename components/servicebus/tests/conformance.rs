//! The conformance suite against outrigger-servicebus talking to the
//! loopback Service Bus (tests/support/fake.rs): pub/sub on topics, and the
//! queue binding in both directions. Plus `Init` errors that name their key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outrigger_conformance::{Block, SuiteConfig, Target, assert_pass, run};
use support::{fake, serve_fake, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_suite_passes_against_the_loopback_service_bus() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let target = Target::new(&socket, Block::Pubsub)
        .with_metadata("connectionString", bus.connection_string())
        .with_metadata("lockRenewalInSec", "1");
    let mut config = SuiteConfig::with_operations(["durable", "ordering", "ttl"]);
    config.bad_metadata = [("lockRenewalInSec".to_owned(), "soon".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 12, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_suite_passes_against_the_loopback_service_bus() {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let queue = unique("conformance");
    let target = Target::new(&socket, Block::Bindings)
        .with_metadata("connectionString", bus.connection_string())
        .with_metadata("queueName", &queue);
    let mut config = SuiteConfig::with_operations(["input", "output"]);
    config.bad_metadata = [("maxDeliveryCount".to_owned(), "0".to_owned())].into();
    config.invoke = vec![("create".to_owned(), b"{\"order\":1}".to_vec())];
    config.invoke_metadata = [("MessageId".to_owned(), "conformance-1".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
    assert!(report.passed() >= 5, "{}", report.table());
    assert!(bus.exists(&queue), "Init did not create the queue");
}

async fn init_failure(block: Block, metadata: &[(&str, &str)]) -> String {
    let bus = fake().await;
    let (_dir, socket) = serve_fake(&bus).await;
    let mut target = Target::new(&socket, block);
    for (k, v) in metadata {
        let v = v.replace("{conn}", &bus.connection_string());
        target = target.with_metadata(*k, v);
    }
    let report = run(&target, &SuiteConfig::default()).await;
    match report.init_failure() {
        Some(why) => why.to_owned(),
        None => panic!("expected an Init failure\n{}", report.table()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_connection_strings_are_init_errors_naming_the_key() {
    for block in [Block::Pubsub, Block::Bindings] {
        for bad in [
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=n",
            "Endpoint=sb://ns.example.com/;SharedAccessKeyName=n;SharedAccessKey=k",
            "not a connection string",
        ] {
            let why = init_failure(block, &[("connectionString", bad), ("queueName", "q")]).await;
            assert!(why.contains("connectionString"), "{bad}: {why}");
        }
        let why = init_failure(block, &[("queueName", "q")]).await;
        assert!(why.contains("connectionString"), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_id_and_unknown_keys_are_init_errors_naming_the_key() {
    let why = init_failure(
        Block::Pubsub,
        &[("namespaceName", "ns.servicebus.windows.net")],
    )
    .await;
    assert!(
        why.contains("namespaceName") && why.contains("connectionString"),
        "{why}"
    );
    let why = init_failure(
        Block::Pubsub,
        &[("connectionString", "{conn}"), ("noSuchKey", "1")],
    )
    .await;
    assert!(why.contains("noSuchKey"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_without_entity_management_is_an_init_error_naming_queue_name() {
    let why = init_failure(
        Block::Bindings,
        &[
            ("connectionString", "{conn}"),
            ("queueName", "never-created"),
            ("disableEntityManagement", "true"),
        ],
    )
    .await;
    assert!(
        why.contains("queueName") && why.contains("never-created"),
        "{why}"
    );
    let why = init_failure(Block::Bindings, &[("connectionString", "{conn}")]).await;
    assert!(why.contains("queueName"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_an_init_error_naming_the_connection_string() {
    let why = init_failure(
        Block::Bindings,
        &[
            (
                "connectionString",
                "Endpoint=sb://outrigger-test.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=wrong",
            ),
            ("queueName", "q"),
        ],
    )
    .await;
    assert!(
        why.contains("401") && why.contains("connectionString"),
        "{why}"
    );
}
