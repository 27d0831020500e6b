//! The loopback Service Bus of the tests, as a process: prints its base URL
//! and a connection string on two lines, then serves until killed.
//!
//!     cargo run -p outrigger-servicebus --example loopback_servicebus
//!     OUTRIGGER_SERVICEBUS_ENDPOINT=<url> outrigger-servicebus   # talks to it
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../tests/support/fake.rs"]
mod fake;

#[tokio::main]
async fn main() {
    let bus = fake::FakeServiceBus::start(
        "outrigger-loopback",
        "RootManageSharedAccessKey",
        "bG9vcGJhY2sta2V5LW5vdC1hLXNlY3JldA==",
    )
    .await;
    println!("{}", bus.url);
    println!("{}", bus.connection_string());
    std::future::pending::<()>().await;
}
