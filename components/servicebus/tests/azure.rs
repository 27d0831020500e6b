//! The conformance suite against a real Service Bus namespace, when
//! `SERVICEBUS_CONNECTION_STRING` names one (its policy needs Manage rights:
//! the suite creates a topic, subscriptions and a queue). Without it, each
//! test says loudly that it was skipped: the component is then verified only
//! against the loopback Service Bus (tests/support/fake.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outrigger_conformance::{Block, SuiteConfig, Target, assert_pass, run};
use outrigger_servicebus::Transport;
use support::{serve, unique};

fn connection_string() -> Option<String> {
    match std::env::var("SERVICEBUS_CONNECTION_STRING") {
        Ok(s) if !s.is_empty() => Some(s),
        _ => {
            eprintln!(
                "SKIPPED: SERVICEBUS_CONNECTION_STRING is not set, so outrigger-servicebus was NOT tested against Azure Service Bus \
                 (only against the loopback Service Bus in tests/support/fake.rs)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_suite_against_azure() {
    let Some(conn) = connection_string() else {
        return;
    };
    let (_dir, socket) = serve(Transport::azure()).await;
    let target = Target::new(&socket, Block::Pubsub)
        .with_metadata("connectionString", conn)
        .with_metadata("lockRenewalInSec", "5");
    let mut config = SuiteConfig::with_operations(["durable", "ordering", "ttl"]);
    config.bad_metadata = [("lockRenewalInSec".to_owned(), "soon".to_owned())].into();
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_suite_against_azure() {
    let Some(conn) = connection_string() else {
        return;
    };
    let (_dir, socket) = serve(Transport::azure()).await;
    let target = Target::new(&socket, Block::Bindings)
        .with_metadata("connectionString", conn)
        .with_metadata("queueName", unique("outrigger-conformance"));
    let mut config = SuiteConfig::with_operations(["input", "output"]);
    config.bad_metadata = [("maxDeliveryCount".to_owned(), "0".to_owned())].into();
    config.invoke = vec![("create".to_owned(), b"{\"order\":1}".to_vec())];
    let report = run(&target, &config).await;
    eprintln!("{}", report.table());
    assert_pass(&report);
}
