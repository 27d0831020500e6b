//! `outrigger-nats`: Dapr's `pubsub.jetstream` on NATS JetStream and a state
//! store (`state.jetstream`) on JetStream key/value buckets.
//!
//! # Layout
//! - [`connect`]: connection metadata shared by both blocks (`natsURL`,
//!   credentials, TLS, JetStream domain / API prefix) and the metadata key check.
//! - [`pubsub`]: publish with broker acks, a durable pull consumer per
//!   consumer group and topic, explicit ack / NAK, a pull loop that survives
//!   broker restarts.
//! - [`state`]: one KV bucket per store; ETag = revision; first-write via
//!   `create`, conditional update and delete via expected revisions; keys
//!   base64url-encoded.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod connect;
pub mod pubsub;
pub mod state;

use outrigger_component_sdk::ComponentServer;

/// Socket name (`pubsub.jetstream` and `state.jetstream` map to it).
pub const SOCKET: &str = "nats";

/// This component's socket on `server`.
pub fn services(server: ComponentServer) -> ComponentServer {
    server.service(SOCKET, |s| {
        s.pubsub(pubsub::JetStreamPubSub::default)
            .state_store(state::KvState::default)
    })
}
