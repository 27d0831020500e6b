//! `outrigger-servicebus`: Dapr's `pubsub.azure.servicebus.topics` and
//! `bindings.azure.servicebusqueues` on Azure Service Bus, through the
//! REST-based `azure_messaging_servicebus` 0.21 crate (no AMQP).
//!
//! # Layout
//! - [`namespace`]: the connection string, SAS tokens, and [`Transport`],
//!   the HTTP client every request goes through (and the seam tests use to
//!   reach a loopback Service Bus).
//! - `settings`: every metadata key, checked at `Init`.
//! - `entities`: creating queues, topics and subscriptions (Atom REST API).
//! - `message`: Dapr metadata to broker and application properties and back.
//! - `receiver`: the peek-lock loop: lock renewal, complete, abandon.
//! - [`pubsub`] and [`bindings`]: the two building blocks.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bindings;
mod entities;
mod message;
pub mod namespace;
pub mod pubsub;
mod receiver;
mod send;
mod settings;

use outrigger_component_sdk::ComponentServer;

pub use namespace::Transport;

/// Socket name (`pubsub.azure.servicebus.topics` and
/// `bindings.azure.servicebusqueues` map to it).
pub const SOCKET: &str = "servicebus";

/// This component's socket on `server`, reaching Service Bus through `transport`.
pub fn services(server: ComponentServer, transport: Transport) -> ComponentServer {
    let http = transport.shared();
    let (topics, input, output) = (http.clone(), http.clone(), http);
    server.service(SOCKET, move |s| {
        s.pubsub(move || pubsub::Topics::new(topics.clone()))
            .input_binding(move || bindings::QueueInput::new(input.clone()))
            .output_binding(move || bindings::QueueOutput::new(output.clone()))
    })
}
